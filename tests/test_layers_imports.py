"""The package's layers import one way (read from the source with ``ast``; nothing is imported).

::

    cli ─► train ─┐
      │           ├─► data, judges ─► DSATokenizer, DashengTokenizer ─► models ─► nn, quant
      └──► eval ──┘                   (dsatok/*.py: audio, config, tokens, files below all)

``train`` and ``eval`` never import each other; ``data`` and ``judges`` import neither; model code
(``models``, ``nn``, ``quant``) and the top-level public modules (``dsatok/*.py``: the two
tokenizers, audio, tokens) import no training, evaluation, data or CLI code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dsatok"

#: layer -> sub-packages it must never import (at module level or inside a function)
FORBIDDEN: dict[str, set[str]] = {
    "train": {"eval", "cli"},
    "eval": {"train", "cli"},
    "data": {"train", "eval", "cli"},
    "judges": {"train", "eval", "data", "cli"},
    "models": {"train", "eval", "data", "cli"},
    "nn": {"train", "eval", "data", "cli"},
    "quant": {"train", "eval", "data", "cli"},
    "top": {"train", "eval", "data", "judges", "cli"},  # DSATokenizer, DashengTokenizer, audio, tokens
}


def imported_packages(path: Path, root: Path = SRC) -> set[tuple[str, int]]:
    """``(first sub-package of dsatok, line)`` for every import of a dsatok module in ``path``
    (``root``: the ``dsatok`` package directory)."""
    package = path.relative_to(root).parts[:-1]  # e.g. ("train",) for train/enhance.py
    out: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[tuple[str, ...]] = []
        if isinstance(node, ast.Import):
            names = [tuple(a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = tuple(node.module.split(".")) if node.module else ()
            if node.level:  # relative: resolve against this module's package
                if node.level - 1 > len(package):
                    continue
                full = ("dsatok",) + package[: len(package) - (node.level - 1)] + mod
                names = [full + (a.name,) for a in node.names] if not mod else [full]
            else:
                names = [mod + (a.name,) for a in node.names] if mod == ("dsatok",) else [mod]
        for n in names:
            if len(n) >= 2 and n[0] == "dsatok":
                out.add((n[1], node.lineno))
    return out


def _modules(layer: str) -> list[Path]:
    if layer == "top":  # the public facade: dsatok/*.py (the CLI entry point __main__ aside)
        return sorted(p for p in SRC.glob("*.py") if p.name != "__main__.py")
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer):
    assert _modules(layer), f"no modules under dsatok/{layer}"
    bad = [f"{p.relative_to(SRC)}:{line} imports dsatok.{pkg}"
           for p in _modules(layer) for pkg, line in sorted(imported_packages(p)) if pkg in FORBIDDEN[layer]]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    d = tmp_path / "dsatok" / "train"
    d.mkdir(parents=True)
    f = d / "x.py"
    f.write_text("from ..eval.asr import A\nfrom . import engine\nimport dsatok.data.batches\n"
                 "def g():\n    from dsatok import eval\n    from .. import cli\n")
    got = {pkg for pkg, _ in imported_packages(f, tmp_path / "dsatok")}
    assert got == {"eval", "train", "data", "cli"}


def test_both_tokenizers_are_top_level_and_old_imports_still_work():
    import dsatok
    from dsatok.dasheng_tokenizer import DashengConfig, DashengTokenizer
    from dsatok.models import dasheng as old
    from dsatok.tokenizer import DSATokenizer

    assert dsatok.DashengTokenizer is DashengTokenizer and dsatok.DSATokenizer is DSATokenizer
    assert old.DashengTokenizer is DashengTokenizer and old.DashengConfig is DashengConfig
