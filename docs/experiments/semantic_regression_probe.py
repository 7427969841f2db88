"""Diagnostic: can the bundled semantic tokens alone drive intelligible speech?

A plain regression decoder (token embedding -> x4 upsample -> residual conv stack, FiLM by the
utterance's own mel mean/std as a voice vector) trained with L1 on log-mel for a fixed wall time on
the pack's train split; then 20 test utterances (unseen voices) -> regressed mel -> bundled vocoder
-> faster-whisper WER. Not a dsatok model: a capacity probe of the token stream.
    python3 docs/experiments/semantic_regression_probe.py PACK SECONDS CORPUS [N_TEST]
(PACK: `dsatok corpus pack CORPUS PACK --semantic MODEL/semantic`; one thread; the bundled model's
semantic tokenizer, vocoder and mel front end.)
"""
import sys, time, json, random
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from dsatok.train.pack import PackedSplit
from dsatok.tokenizer import DSATokenizer
from dsatok.audio import MelFrontend
from dsatok.data.manifests import load_cuts
from dsatok.data.batches import load_cut_audio
torch.set_num_threads(1); torch.manual_seed(0); random.seed(0)
pack, budget = sys.argv[1], float(sys.argv[2])
corpus = sys.argv[3]
n_test = int(sys.argv[4]) if len(sys.argv) > 4 else 20
tok = DSATokenizer.from_pretrained()
fe = MelFrontend(tok.decoder.cfg.mel)
STD = tok.decoder.cfg.mel_std  # mel L1 back in log-mel units


def mel_of(w):
    """Normalised log-mel ``[n_mels, T]``, scaled as the flow decoder scales its mel."""
    with torch.no_grad():
        return tok.decoder.normalize(fe(torch.from_numpy(w)[None])[0][0])

tr = PackedSplit(pack, "train")
data = []
for w, s in zip(tr.wavs, tr.sem):
    m = mel_of(w); T = min(m.shape[1] // 4, len(s))
    data.append((torch.from_numpy(s[:T]), m[:, : 4 * T]))
print("train items", len(data), flush=True)

class Res(nn.Module):
    def __init__(s, d):
        super().__init__(); s.c1 = nn.Conv1d(d, d, 5, padding=2); s.c2 = nn.Conv1d(d, d, 5, padding=2); s.film = nn.Linear(200, 2 * d)
    def forward(s, x, v):
        g, b = s.film(v)[..., None].chunk(2, 1)
        h = F.gelu(s.c1(x)); h = F.group_norm(h, 1) * (1 + g) + b
        return x + s.c2(h)

class Reg(nn.Module):
    def __init__(s, d=192, n=6):
        super().__init__(); s.emb = nn.Embedding(1024, d); s.blocks = nn.ModuleList(Res(d) for _ in range(n)); s.out = nn.Conv1d(d, 100, 1)
    def forward(s, idx, v):
        x = s.emb(idx).transpose(1, 2).repeat_interleave(4, 2)
        for b in s.blocks: x = b(x, v)
        return s.out(x)

def voice(m):
    return torch.cat([m.mean(1), m.std(1)])

net = Reg(); opt = torch.optim.Adam(net.parameters(), 1e-3)
t0, step, L = time.time(), 0, 100  # 100 tokens = 4 s crops
while time.time() - t0 < budget:
    xs, ys, vs = [], [], []
    for _ in range(16):
        s, m = random.choice(data)
        if len(s) > L:
            o = random.randrange(len(s) - L); s, mm = s[o:o + L], m[:, 4 * o: 4 * (o + L)]
        else:
            mm = m
            s = F.pad(s, (0, L - len(s))); mm = F.pad(mm, (0, 4 * L - mm.shape[1]))
        xs.append(s); ys.append(mm); vs.append(voice(m))
    x, y, v = torch.stack(xs), torch.stack(ys), torch.stack(vs)
    loss = (net(x, v) - y).abs().mean()
    opt.zero_grad(); loss.backward(); opt.step(); step += 1
    if step % 200 == 0:
        print(step, round(time.time() - t0), float(loss.detach()), flush=True)
print("trained steps", step, flush=True)

from dsatok.eval.tables import load_evaluators
from dsatok.judges.text import wer
ev = load_evaluators(mos=())
refs, hyps, l1 = [], [], []
net.eval()
for c in list(load_cuts(corpus, "test"))[:n_test]:
    w = load_cut_audio(c)
    t = tok.encode(torch.from_numpy(w)); s = t.semantic[0, : int(t.semantic_lengths[0])]
    m = mel_of(w); T = min(m.shape[1] // 4, len(s))
    with torch.no_grad():
        p = net(s[None, :T], voice(m)[None])[0]
    l1.append(float((p - m[:, : 4 * T]).abs().mean() * STD))
    y = tok.vocode(tok.decoder.denormalize(p)).numpy()
    refs.append(c.supervisions[0].text); hyps.append(ev.asr.transcribe(y))
    print(c.id, round(wer([refs[-1]], [hyps[-1]]), 3), "|", hyps[-1][:80], flush=True)
print(json.dumps({"steps": step, "seconds": budget, "test_wer": wer(refs, hyps), "test_mel_l1_logmel": float(np.mean(l1)),
                  "per_utt_le_25": float(np.mean([wer([r], [h]) <= 0.25 for r, h in zip(refs, hyps)]))}))
