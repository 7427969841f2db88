"""``dsatok`` entry point: builds the argparse tree and maps known errors to one-line messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__

# Subcommand modules; each has ``register(subparsers)`` setting ``func`` on its parsers.
_COMMANDS = ("bench", "codec", "corpus", "demo", "eval", "lm", "train")


class CLIError(Exception):
    """An error to show as one line (``dsatok: error: ...``) with exit status ``code``."""

    def __init__(self, msg: str, code: int = 2) -> None:
        super().__init__(msg)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="dsatok", description="Disentangled speech tokenizers (DSA-Tokenizer, DashengTokenizer).")
    p.add_argument("--version", action="version", version=f"dsatok {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        importlib.import_module(f".{name}", __package__).register(sub)
    return p


def _known_errors() -> tuple[type[BaseException], ...]:
    from ..audio import AudioError
    from ..config import ConfigError
    from ..data.manifests import CorpusError
    from ..data.phonemes import PhonemizerError
    from ..data.voices import SynthesisError
    from ..models.io import ModelLoadError
    from ..latents import LatentFileError
    from ..tokens import TokenFileError

    return (CLIError, AudioError, ConfigError, CorpusError, SynthesisError, FileNotFoundError, ModelLoadError,
            TokenFileError, LatentFileError, PhonemizerError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("dsatok: interrupted", file=sys.stderr)
        return 130
    except _known_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"dsatok: error: {msg}", file=sys.stderr)
        return getattr(e, "code", 2)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
