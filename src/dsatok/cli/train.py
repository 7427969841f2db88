"""``dsatok train STAGE``: train one stage on the shared training engine."""

from __future__ import annotations

import argparse
import json

STAGES = ("semantic", "vocoder", "acoustic", "dasheng", "enhance", "refiner")
# each stage's presets, for --help without importing torch (tests check them against the stages' tables)
PRESETS = {"semantic": ("tiny", "whisper", "paper"), "vocoder": ("tiny", "base"), "acoustic": ("tiny", "paper", "prior", "prior_render"),
           "dasheng": ("dsa", "tiny", "base"), "enhance": ("tiny", "base"),
           "refiner": ("tiny", "aligned")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a stage (semantic, vocoder, acoustic, dasheng, enhance, refiner)")
    ps = p.add_subparsers(dest="stage", metavar="STAGE")
    ps.required = True
    for stage in STAGES:
        s = ps.add_parser(stage, help=f"train the {stage} stage")
        s.add_argument("--corpus", default="", help="corpus directory (dsatok corpus build/import)")
        s.add_argument("--preset", default="tiny", help=" | ".join(PRESETS[stage]))
        s.add_argument("--config", default=None, help="YAML/JSON config file")
        s.add_argument("--run-dir", default=None, help="run directory (resumes when it has checkpoints)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.max_steps=100 (repeatable)")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        s.add_argument("--pack", default="", help="training pack (dsatok corpus pack) instead of --corpus")
        if stage == "semantic":
            s.add_argument("--encoder-path", default="", help="local transformers hubert/wavlm/wav2vec2 directory")
        if stage == "dasheng":
            s.add_argument("--semantic", default="", help="backend dsa: exported stage-1 semantic tokenizer")
            s.add_argument("--dasheng-path", default="", help="backend vit: local directory of Dasheng weights")
        if stage == "enhance":
            s.add_argument("--tokenizer", default="", help="trained DashengTokenizer directory (frozen)")
        if stage == "refiner":
            s.add_argument("--tokenizer", default="", help="DSA-Tokenizer directory (frozen; default: the bundled one)")
        if stage == "acoustic":
            s.add_argument("--semantic", default="", help="exported semantic tokenizer directory (stage 1)")
            s.add_argument("--no-speaker-loss", action="store_true", help="ablation: no speaker-consistency loss")
            s.add_argument("--no-recombination", action="store_true", help="ablation: reconstruction batches only")
            s.add_argument("--single-stream", action="store_true",
                           help="baseline: acoustic tokens only (decoder ignores the semantic stream; no recombination)")
        s.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    import importlib

    mod = importlib.import_module(f"..train.{a.stage}", __package__)
    ov = list(a.overrides)
    if a.run_dir:
        ov.insert(0, f"train.run_dir={a.run_dir}")
    if a.pack:
        ov.append(f"train.data.pack={a.pack}")
    kw = {}
    if a.stage == "semantic":
        kw["encoder_path"] = a.encoder_path
    if a.stage == "acoustic":
        kw["semantic"] = a.semantic
        if a.no_speaker_loss:
            ov.append("speaker_loss=false")
        if a.no_recombination or a.single_stream:
            ov.append("recombination=false")
        if a.single_stream:
            ov.append("decoder.use_semantic=false")
    if a.stage == "dasheng":
        if a.dasheng_path:
            ov.append(f"dasheng_path={a.dasheng_path}")
        out = mod.run(a.corpus, a.preset, a.semantic or None, a.config, ov, progress=not a.quiet)
        print(json.dumps(out, default=str))
        return 0
    if a.stage == "enhance":
        out = mod.run(a.corpus, a.preset, a.tokenizer or None, a.config, ov, progress=not a.quiet)
        print(json.dumps(out, default=str))
        return 0
    if a.stage == "refiner" and a.tokenizer:
        ov.append(f"tokenizer={a.tokenizer}")
    out = mod.run(a.corpus, a.preset, a.config, ov, progress=not a.quiet, **kw)
    print(json.dumps(out, default=str))
    return 0
