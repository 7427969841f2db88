"""``dsatok demo OUT``: the README's main job. Recombine two bundled test utterances with a model.

The content source (what is said) and the voice source (who says it) are test-split utterances of
the offline corpus, from voices the bundled model never saw in training; the true target (the
content's text synthesised with the voice's settings) ships beside them. Writes the WAVs, a PNG of
their log-mel spectrograms and ``summary.json`` (with WER and speaker similarity when the
evaluation extras are installed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ..files import atomic_write_json
from .codec import _common, _decode_kw, load_model, plot_recombination


def examples_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources" / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="recombine two bundled test utterances (content + voice) with the bundled model")
    p.add_argument("out", nargs="?", default="dsatok-demo", help="output directory (default ./dsatok-demo)")
    p.add_argument("--no-eval", action="store_true", help="skip WER / speaker-similarity measurement")
    _common(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..audio import save

    ex = examples_dir()
    meta = json.loads((ex / "examples.json").read_text())
    out = Path(a.out)
    model = load_model(a, out_dirs=[a.out])  # device and output directory are checked first
    content, voice, target = (str(ex / meta[k]["file"]) for k in ("content", "voice", "target"))
    t0 = time.perf_counter()
    (rec,) = model.recombine(content, voice, **_decode_kw(a))
    t_rec = time.perf_counter() - t0
    (recon,) = model.reconstruct(content, **_decode_kw(a))
    save(out / "recombined.wav", rec, model.sample_rate)
    save(out / "reconstructed.wav", recon, model.sample_rate)
    for k, f in (("content", content), ("voice", voice), ("target", target)):
        shutil.copyfile(f, out / f"{k}.wav")
    plot_recombination(model, content, voice, rec, str(out / "mels.png"), target=target)
    summary: dict = {"model": a.model or "bundled", "content": meta["content"], "voice": meta["voice"],
                     "recombine_seconds": round(t_rec, 2), "audio_seconds": round(rec.shape[0] / model.sample_rate, 2),
                     "outputs": [str(out / f) for f in ("recombined.wav", "reconstructed.wav", "content.wav",
                                                         "voice.wav", "target.wav", "mels.png")]}
    if not a.no_eval:
        summary["measured"] = _measure(out, meta)
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=1))
    return 0


def _measure(out: Path, meta: dict) -> dict:
    """WER (faster-whisper) of the outputs and resemblyzer similarity of the recombination to A and S."""
    try:
        from ..audio import load
        from ..eval.asr import WhisperASR
        from ..judges.speaker import cosine, load_speaker_encoder
        from ..judges.text import wer
    except ImportError as e:  # evaluation extras not installed
        return {"skipped": f"evaluation extras missing ({e.name})"}
    wavs = {k: load(out / f"{k}.wav") for k in ("recombined", "reconstructed", "content", "voice", "target")}
    asr = WhisperASR()
    text = meta["content"]["text"]
    hyp = {k: asr.transcribe(wavs[k]) for k in ("recombined", "reconstructed", "content")}
    spk = load_speaker_encoder("resemblyzer")
    emb = {k: spk.embed(w) for k, w in wavs.items()}
    return {"text": text, "transcripts": hyp, "wer": {k: round(wer([text], [h]), 3) for k, h in hyp.items()},
            "sim_recombined_to_voice": round(cosine(emb["recombined"], emb["voice"]), 3),
            "sim_recombined_to_content": round(cosine(emb["recombined"], emb["content"]), 3),
            "sim_recombined_to_target": round(cosine(emb["recombined"], emb["target"]), 3),
            "sim_voice_to_content": round(cosine(emb["voice"], emb["content"]), 3),
            "evaluators": {"asr": asr.name, "speaker": spk.name}}
