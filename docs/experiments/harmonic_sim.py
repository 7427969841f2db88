"""Does pitch-aligned harmonic structure on μ give the speaker encoder its voice, and keep the words?

The prior's mel μ is a smooth envelope; the true fine structure added back lifts SIM but no model
has generated it so far (blur_sim.py, wrong_detail.py). Its main part in voiced speech is the
harmonic comb at the speaker's pitch. For N test utterances spread over a corpus's test split
(reconstruction; the given model), μ is vocoded as it is and with the detail (mel minus its gaussian
envelope, σ 1 bin × 1 frame) of a *synthetic* harmonic signal added in voiced frames: equal
harmonics of an F0 contour, through the model's own mel transform. F0 and voicing are pYIN's on the
input (an oracle for what a pitch predictor could give). Rows: μ; μ + the true detail (reference);
μ + comb detail of the true contour, scaled per utterance to the true detail's spread (oracle
scale) and with one fixed scale (the median of those); the same with the contour flattened to
the utterance's median F0 (register without intonation); the contour one octave off (wrong pitch).
Prints WER (tiny.en, base) and SIM:

    python3 docs/experiments/harmonic_sim.py MODEL N CORPUS      # e.g. dsa-default 30 corpora/c4n
"""
import argparse

import librosa
import numpy as np
import torch

from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread
from dsatok.eval.asr import load_asr
from dsatok.judges.speaker import cosine, load_speaker_encoder
from dsatok.judges.text import wer
from dsatok.train.refiner import smooth_mel

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("n", type=int)
ap.add_argument("corpus")
ap.add_argument("--sigma", type=float, default=1.0)
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
mel_tf = m.acoustic.mel
sr, hop = mel_tf.cfg.sample_rate, mel_tf.cfg.hop_length
judges = {k: load_asr(k) for k in ("tiny", "base")}
spk = load_speaker_encoder()
cuts = spread(list(load_cuts(a.corpus, "test")), a.n)


def f0_track(wav: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """pYIN F0 [t] (Hz, 0 where unvoiced) and voicing probability [t] at the mel frame rate."""
    f0, vflag, vprob = librosa.pyin(wav, fmin=60, fmax=450, sr=sr, frame_length=1024, hop_length=hop)
    f0 = np.where(vflag, np.nan_to_num(f0), 0.0)
    out = np.zeros(t), np.zeros(t)
    n = min(t, len(f0))
    out[0][:n], out[1][:n] = f0[:n], np.where(vflag, vprob, 0.0)[:n]
    return out


def comb_detail(f0: np.ndarray, n_samples: int) -> torch.Tensor:
    """Detail ``[n_mels, T]`` of an equal-amplitude harmonic signal following ``f0 [T]``."""
    t = len(f0)
    fs = np.interp(np.arange(n_samples) / hop, np.arange(t), np.where(f0 > 0, f0, np.nan_to_num(
        np.median(f0[f0 > 0]) if (f0 > 0).any() else 120.0)))
    phase = 2 * np.pi * np.cumsum(fs) / sr
    k = np.arange(1, int(sr / 2 / fs.min()) + 1)[:, None]
    sig = (np.sin(k * phase[None]) * (k * fs[None] < sr / 2 - 100)).sum(0)
    sig = (sig / (np.abs(sig).max() + 1e-9) * 0.5).astype(np.float32)
    w = torch.from_numpy(sig)[None]
    mel, _ = mel_tf(w, torch.tensor([n_samples]))
    mel = mel[..., :t]
    return (mel - smooth_mel(mel, a.sigma))[0]


data = []
for c in cuts:
    wav = load_cut_audio(c)
    w = torch.from_numpy(wav)
    with torch.no_grad():
        toks = m.encode(w)
        mel, _ = mel_tf(w[None], torch.tensor([w.shape[0]]))
        t = mel.shape[-1]
        mu = m.decoder.denormalize(m.decoder_context(toks, t).mu)[0]
    f0, vp = f0_track(wav, t)
    true_det = (mel - smooth_mel(mel, a.sigma))[0]
    v = torch.from_numpy(vp).float()[None]
    comb = comb_detail(f0, len(wav))
    med = np.median(f0[f0 > 0]) if (f0 > 0).any() else 120.0
    flat = comb_detail(np.where(f0 > 0, med, 0.0), len(wav))
    octave = comb_detail(np.where(f0 > 0, f0 * (0.5 if med > 165 else 2.0), 0.0), len(wav))
    sel = vp > 0.5
    scale = float(true_det[:, sel].std() / comb[:, sel].std()) if sel.sum() > 5 else 0.0
    data.append(dict(wav=wav, text=c.supervisions[0].text, mu=mu, true=true_det, v=v, comb=comb, flat=flat,
                     octave=octave, scale=scale))

fixed = float(np.median([d["scale"] for d in data if d["scale"] > 0]))
print(f"{len(data)} utterances of {a.corpus} test; detail sigma {a.sigma}; fixed comb scale {fixed:.3f}")
variants = {
    "mu": lambda d: d["mu"],
    "mu + own true detail": lambda d: d["mu"] + d["true"],
    "mu + comb of true F0, oracle scale": lambda d: d["mu"] + d["scale"] * d["v"] * d["comb"],
    "mu + comb of true F0, fixed scale": lambda d: d["mu"] + fixed * d["v"] * d["comb"],
    "mu + comb of flat median F0, fixed scale": lambda d: d["mu"] + fixed * d["v"] * d["flat"],
    "mu + comb one octave off, fixed scale": lambda d: d["mu"] + fixed * d["v"] * d["octave"],
}
print("| mel | WER tiny.en | WER base | SIM |\n|---|---|---|---|", flush=True)
refs = [d["text"] for d in data]
for name, fn in variants.items():
    hyp = {j: [] for j in judges}
    sims = []
    for d in data:
        y = m.vocoder.synthesize(fn(d)[None])[0].clamp(-1, 1).numpy()
        sims.append(cosine(spk.embed(d["wav"]), spk.embed(y)))
        for j, asr in judges.items():
            hyp[j].append(asr.transcribe(y))
    print(f"| {name} | {wer(refs, hyp['tiny']):.3f} | {wer(refs, hyp['base']):.3f} | {np.mean(sims):.3f} |",
          flush=True)
