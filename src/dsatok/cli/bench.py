"""``dsatok bench codec``: real-time factor and peak memory of encode / decode on a long input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import atomic_write_text
from .codec import add_guidance_args, guidance_kw, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed and memory benchmarks")
    ps = p.add_subparsers(dest="what", metavar="WHAT")
    ps.required = True
    s = ps.add_parser("codec", help="encode / decode RTF and peak memory (references: mel front end, vocoder)")
    s.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    s.add_argument("--input", default=None, help="audio file (default: built from --corpus test audio)")
    s.add_argument("--corpus", default=None, help="corpus whose test utterances make the long input")
    s.add_argument("--seconds", type=float, default=600.0, help="length of the built input")
    s.add_argument("--steps", default="32,8,4",
                   help="decode steps to measure (comma list; 'prior': the semantic prior's mel alone, no flow)")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--vocoder", default=None)
    add_guidance_args(s)
    s.add_argument("-o", "--out", default=None, help="write the JSON report here")
    s.set_defaults(func=_codec)

    s = ps.add_parser("dasheng", help="DashengTokenizer encode / decode (and enhancer) RTF and peak memory")
    s.add_argument("--model", default=None,
                   help="DashengTokenizer directory (default: the bundled dasheng model, with its enhancer)")
    s.add_argument("--enhancer", default=None, help="also time a latent enhancer directory")
    s.add_argument("--steps", type=positive_int, default=None, help="enhancer ODE steps (default: the model's default_steps)")
    s.add_argument("--input", default=None, help="audio file (default: built from --corpus test audio)")
    s.add_argument("--corpus", default=None, help="corpus whose test utterances make the long input")
    s.add_argument("--seconds", type=float, default=60.0, help="length of the built input")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("-o", "--out", default=None, help="write the JSON report here")
    s.set_defaults(func=_dasheng)


def _steps_list(text: str) -> list[int | str]:
    """``--steps`` as decode cases: positive integers and ``prior``; anything else is a one-line error."""
    from ..config import ConfigError

    out: list[int | str] = []
    for s in (x.strip() for x in text.split(",")):
        if s == "prior":
            out.append(s)
        elif s.isdigit() and int(s) > 0:
            out.append(int(s))
        elif s:
            raise ConfigError(f"--steps: expected positive integers or 'prior', got {s!r}")
    if not out:
        raise ConfigError("--steps: no decode case given")
    return out


def _codec(a: argparse.Namespace) -> int:
    import tempfile

    from ..eval.bench import bench_codec, long_audio
    from ..tokenizer import default_model_dir

    model = a.model or str(default_model_dir())
    with tempfile.TemporaryDirectory() as td:
        wav = a.input or str(long_audio(a.corpus, a.seconds, Path(td) / "long.wav"))
        rep = bench_codec(model, wav, _steps_list(a.steps), a.threads, a.vocoder,
                          guidance=guidance_kw(a))
    text = json.dumps(rep, indent=1)
    if a.out:
        atomic_write_text(a.out, text + "\n")
    print(text)
    return 0


def _dasheng(a: argparse.Namespace) -> int:
    import tempfile

    from ..eval.bench import bench_dasheng, long_audio
    from ..resources import bundled_enhancer_dir, bundled_model_dir

    if a.model is None:
        a.model = str(bundled_model_dir("dasheng"))
        if a.enhancer is None:
            a.enhancer = str(bundled_enhancer_dir())
    with tempfile.TemporaryDirectory() as td:
        wav = a.input or str(long_audio(a.corpus, a.seconds, Path(td) / "long.wav"))
        rep = bench_dasheng(a.model, wav, a.threads, a.enhancer, a.steps)
    text = json.dumps(rep, indent=1)
    if a.out:
        atomic_write_text(a.out, text + "\n")
    print(text)
    return 0
