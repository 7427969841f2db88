"""Does speech-like but misaligned fine structure keep the words?

For 16 test utterances spread over the default corpus's test split (reconstruction; the bundled
model), μ is vocoded as it is and with fine structure (the mel minus its gaussian envelope, σ = 1
bin × 1 frame) added from: the utterance's own true mel; another test utterance of the same speaker
(real speech of the right voice at the wrong time); the own detail shifted by 10 frames (100 ms).
Prints WER (tiny.en, base), SIM and the number of utterances per row:

    python3 docs/experiments/wrong_detail.py          # 4 min, one thread; needs corpora/c4n
"""
import numpy as np, torch
from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread
from dsatok.eval.asr import load_asr
from dsatok.judges.speaker import cosine, load_speaker_encoder
from dsatok.judges.text import wer
from dsatok.train.refiner import smooth_mel
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(None)
judges = {k: load_asr(k) for k in ("tiny", "base")}; spk = load_speaker_encoder()
allc = list(load_cuts("corpora/c4n", "test")); cuts = spread(allc, 16)
rows = {}; texts = []
for c in cuts:
    spk_of = c.supervisions[0].speaker
    other = next((o for o in allc if o.supervisions[0].speaker == spk_of and o.id != c.id and o.duration >= c.duration),
                 None)
    wav = torch.from_numpy(load_cut_audio(c)); texts.append(c.supervisions[0].text); e_in = spk.embed(wav.numpy())
    with torch.no_grad():
        toks = m.encode(wav); mel, _ = m.acoustic.mel(wav[None], torch.tensor([wav.shape[0]])); t = mel.shape[-1]
        mu = m.decoder.denormalize(m.decoder_context(toks, t).mu)
        det = mel - smooth_mel(mel, 1.0)
        V = {"mu": mu, "mu + own true detail (sigma 1)": mu + det}
        if other is not None:
            w2 = torch.from_numpy(load_cut_audio(other)); mel2, _ = m.acoustic.mel(w2[None], torch.tensor([w2.shape[0]]))
            V["mu + same speaker's detail, other utterance"] = mu + (mel2 - smooth_mel(mel2, 1.0))[..., :t]
        V["mu + own detail shifted 10 frames"] = mu + torch.roll(det, 10, -1)
    for k, x in V.items():
        r = rows.setdefault(k, {"hyp": {j: [] for j in judges}, "sim": [], "refs": []})
        y = m.vocoder.synthesize(x)[0].clamp(-1, 1).numpy()
        r["sim"].append(cosine(e_in, spk.embed(y))); r["refs"].append(texts[-1])
        for j, asr in judges.items(): r["hyp"][j].append(asr.transcribe(y))
for k, r in rows.items():
    w = {j: wer(r["refs"], h) for j, h in r["hyp"].items()}
    print(f"| {k} | {w['tiny']:.3f} | {w['base']:.3f} | {np.mean(r['sim']):.3f} | {len(r['refs'])} |", flush=True)
