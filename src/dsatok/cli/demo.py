"""``dsatok demo OUT``: the README's main job. Recombine two bundled test utterances with a model.

The content source (what is said) and the voice source (who says it) are test-split utterances of
the offline corpus, from voices the bundled model never saw in training; the true target (the
content's text synthesised with the voice's settings) ships beside them. Writes the WAVs, a PNG of
their log-mel spectrograms and ``summary.json`` (with WER and speaker similarity when the
evaluation extras are installed).

When the DashengTokenizer is bundled too, the demo also writes its reconstruction of the content
example, a noisy copy of it (pink noise at 0 dB, fixed seed) and that copy through the bundled
latent enhancer, with their mels in ``dasheng.png`` and their scores under ``summary["dasheng"]``.
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
    p.add_argument("--no-dasheng", action="store_true", help="skip the DashengTokenizer and enhancer part")
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
    if not a.no_dasheng:
        summary["dasheng"] = _dasheng(out, content, meta, evaluate=not a.no_eval)
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


def _dasheng(out: Path, content: str, meta: dict, evaluate: bool = True) -> dict:
    """The bundled DashengTokenizer's reconstruction of ``content``, a 0 dB noisy copy and its enhancement."""
    import numpy as np
    import torch

    from ..audio import MelFrontend, load, save
    from ..data.noise import add_noise
    from ..eval.plots import plot_mels
    from ..models.enhancer import SpeechEnhancer
    from ..resources import bundled_enhancer_dir, bundled_model_dir

    try:
        bundled_model_dir("dasheng"), bundled_enhancer_dir()
    except FileNotFoundError as e:
        return {"skipped": str(e)}
    enh = SpeechEnhancer.from_pretrained()
    clean = load(content)
    noisy = add_noise(clean, "pink", 0.0, np.random.default_rng(0)).astype(np.float32)
    t0 = time.perf_counter()
    (rec,) = enh.tokenizer.reconstruct(clean)
    t_rec = time.perf_counter() - t0
    den = enh.enhance(torch.from_numpy(noisy))
    wavs = {"dasheng_reconstructed": rec.numpy(), "noisy_0db": noisy, "enhanced": den.numpy().reshape(-1)}
    for k, w in wavs.items():
        save(out / f"{k}.wav", w, 16000)
    fe = MelFrontend()
    mels = {k: fe(torch.from_numpy(np.asarray(w, dtype=np.float32))[None])[0][0].numpy()
            for k, w in {"content (clean)": clean, **wavs}.items()}
    plot_mels(mels, out / "dasheng.png", title="DashengTokenizer: reconstruction and latent enhancement (0 dB pink noise)")
    res: dict = {"fingerprint": enh.tokenizer.fingerprint, "reconstruct_seconds": round(t_rec, 2),
                 "outputs": [str(out / f"{k}.wav") for k in wavs] + [str(out / "dasheng.png")]}
    if evaluate:
        try:
            from ..eval.asr import WhisperASR
            from ..eval.metrics import pesq_wb, stoi
            from ..judges.text import wer
        except ImportError as e:
            res["measured"] = {"skipped": f"evaluation extras missing ({e.name})"}
            return res
        asr, text = WhisperASR(), meta["content"]["text"]
        m = {}
        for k, w in wavs.items():
            hyp = asr.transcribe(w)
            m[k] = {"transcript": hyp, "wer": round(wer([text], [hyp]), 3), "stoi": round(stoi(clean, w), 3),
                    "pesq": round(pesq_wb(clean, w), 3)}
        res["measured"] = {"text": text, **m, "evaluators": {"asr": asr.name}}
    return res
