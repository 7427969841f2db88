"""Speed and memory benchmarks (``dsatok bench``): real-time factor and peak memory.

Each measurement runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its
own. Rows are reported against named references measured in the same run (the mel front end and
vocoder copy-synthesis of the same audio), as ratios.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["long_audio", "run_case", "bench_codec"]


def long_audio(corpus: str | Path | None, seconds: float, out: str | Path) -> Path:
    """A WAV of ``seconds`` s: test utterances of ``corpus`` back to back (or the bundled examples)."""
    from ..audio import load, save

    if corpus:
        files = sorted((Path(corpus) / "wavs" / "test").rglob("*.flac"))
    else:
        files = sorted((Path(__file__).resolve().parent.parent / "resources" / "examples").glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{corpus}: no test audio to build a long input from")
    parts, n, i = [], 0, 0
    need = int(seconds * 16000)
    while n < need:
        x = load(files[i % len(files)])
        parts.append(x)
        n += x.shape[0]
        i += 1
    save(out, np.concatenate(parts)[:need])
    return Path(out)


_HEAD = r"""
import json, resource, sys, time, torch
from dsatok.audio import load, MelFrontend
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
"""
# after the model is loaded: the input, and a clock that a case may restart after its set-up
_START = r"""
x = torch.from_numpy(load(a["wav"]))
secs = x.shape[0] / 16000
clock = {}
def restart():
    clock["t0"] = time.perf_counter()
    clock["base"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
restart()
"""
_TAIL = r"""
dt = time.perf_counter() - clock["t0"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "rtf": dt / secs, "peak_rss_mib": peak / 1024, "audio_seconds": secs,
                  "rss_before_mib": clock["base"] / 1024}))
"""

_CASE = _HEAD + r"""
from dsatok.tokenizer import DSATokenizer
m = DSATokenizer.from_pretrained(a["model"], vocoder=a.get("vocoder"))
""" + _START + r"""
if a["case"] == "mel":
    MelFrontend()(x)
elif a["case"] == "vocoder":
    m.vocode(MelFrontend()(x)[0][0])
elif a["case"] == "encode":
    m.encode(x)
elif a["case"] == "decode":
    tok = m.encode(x)
    restart()
    m.decode(tok, steps=a["steps"], **a.get("guidance", {}))
elif a["case"] == "reconstruct":
    m.reconstruct(x, steps=a["steps"], **a.get("guidance", {}))
""" + _TAIL

_DASHENG_CASE = _HEAD + r"""
if a["case"] == "enhance":
    from dsatok.models.enhancer import SpeechEnhancer
    m = SpeechEnhancer.from_pretrained(a["model"])
else:
    from dsatok.dasheng_tokenizer import DashengTokenizer
    m = DashengTokenizer.from_pretrained(a["model"])
""" + _START + r"""
with torch.no_grad():
    if a["case"] == "mel":
        MelFrontend()(x)
    elif a["case"] == "encode":
        m.encode(x)
    elif a["case"] == "decode":
        z = m.encode(x)
        restart()
        m.decode(z.unified)
    elif a["case"] == "enhance":
        m.enhance(x, steps=a["steps"])
""" + _TAIL


def run_case(case: str, model: str, wav: str, steps: int = 16, threads: int = 2, vocoder: str | None = None,
             script: str = _CASE, guidance: dict[str, float] | None = None) -> dict[str, Any]:
    """One measurement in a subprocess; returns its JSON line. ``guidance``: decode keyword
    arguments (``cfg_scale``, ``voice_cfg``, ``content_cfg``, ``prior_only``; None: the model's) for the
    decode cases."""
    arg = json.dumps({"case": case, "model": model, "wav": wav, "steps": steps, "threads": threads, "vocoder": vocoder,
                      "guidance": guidance or {}})
    p = subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bench case {case} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_codec(model: str, wav: str, steps: list[int | str], threads: int = 2, vocoder: str | None = None,
                log=print, guidance: dict[str, float] | None = None) -> dict[str, Any]:
    """Mel front end and vocoder (references), encode, and decode at each of ``steps`` (with the
    scales in ``guidance``, the model's where absent or None: each extra guidance term is one more
    decoder pass per step). A step entry ``"prior"`` times the semantic prior's mel alone (no flow);
    numbered entries always run the flow, whatever the model's stored default."""
    rows: dict[str, Any] = {}
    t0 = time.perf_counter()
    for case, st in [("mel", 0), ("vocoder", 0), ("encode", 0)] + [("decode", s) for s in steps]:
        name = f"{case}@{st}" if case == "decode" else case
        g = dict(guidance or {})
        if case == "decode":
            g["prior_only"] = st == "prior"
        rows[name] = run_case(case, model, wav, st if isinstance(st, int) and st > 0 else 16, threads, vocoder,
                              guidance=g)
        log(f"{name}: RTF {rows[name]['rtf']:.4f}  peak {rows[name]['peak_rss_mib']:.0f} MiB")
    ref = rows["vocoder"]["rtf"]
    for r in rows.values():
        r["rtf_vs_vocoder"] = r["rtf"] / ref if ref > 0 else float("nan")
    return {"model": model, "wav": wav, "threads": threads, "guidance": guidance or {}, "rows": rows,
            "seconds": round(time.perf_counter() - t0, 1)}


def bench_dasheng(model: str, wav: str, threads: int = 2, enhancer: str | None = None, steps: int | None = None,
                  log=print) -> dict[str, Any]:
    """DashengTokenizer encode and decode (and a latent enhancer at ``steps``; None: its
    ``default_steps``), against the mel front end as the reference."""
    if enhancer and steps is None:
        from ..models.enhancer import KIND, EnhancerConfig
        from ..models.io import load_model_config

        steps = load_model_config(EnhancerConfig, enhancer, KIND)[0].default_steps
    rows: dict[str, Any] = {}
    t0 = time.perf_counter()
    cases = [("mel", model), ("encode", model), ("decode", model)] + ([("enhance", enhancer)] if enhancer else [])
    for case, d in cases:
        rows[case] = run_case(case, d, wav, steps, threads, script=_DASHENG_CASE)
        log(f"{case}: RTF {rows[case]['rtf']:.4f}  peak {rows[case]['peak_rss_mib']:.0f} MiB")
    ref = rows["mel"]["rtf"]
    for r in rows.values():
        r["rtf_vs_mel"] = r["rtf"] / ref if ref > 0 else float("nan")
    return {"model": model, "enhancer": enhancer, "wav": wav, "threads": threads, "steps": steps, "rows": rows,
            "seconds": round(time.perf_counter() - t0, 1)}
