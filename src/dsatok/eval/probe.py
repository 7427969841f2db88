"""Disentanglement probing (seed Table 4): what each token stream says about words and speakers.

For every token stream (semantic, each acoustic layer, or a single-stream tokenizer) two probes
are trained from scratch on frozen tokens, with the seed's architecture: embedding (128) →
2-layer CNN → BiLSTM (256), then

* **ASR**: CTC over characters (each frame emits ``up`` distinct outputs so 25 Hz streams can
  spell fast speech); trained on the corpus's train split, selected on dev CER, reported on test;
* **speaker ID**: masked mean pooling → MLP over the speakers of the dev + test splits (voices
  the tokenizer never saw), their utterances split 70 / 15 / 15 per speaker; selected on
  probe-dev accuracy, reported on probe-test. Chance is ``1 / n_speakers``.

Low WER and chance-level speaker accuracy mean a stream carries content only; the reverse,
voice only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ProbeConfig", "TokenProbe", "StreamData", "extract_streams", "train_asr_probe", "train_speaker_probe",
           "probe_streams", "semantic_source", "dsa_source"]


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    embed: int = 128
    channels: int = 256
    hidden: int = 256  # BiLSTM output (both directions)
    epochs: int = 12
    lr: float = 1e-3
    batch: int = 32
    seed: int = 0


class TokenProbe(nn.Module):
    """``tokens [B, T] (lens [B]) -> features [B, T, hidden]``; heads for CTC and speaker ID."""

    def __init__(self, codebook: int, cfg: ProbeConfig, vocab: int = 0, speakers: int = 0, up: int = 1) -> None:
        super().__init__()
        self.up, self.vocab = up, vocab
        self.emb = nn.Embedding(codebook, cfg.embed)
        self.cnn = nn.Sequential(nn.Conv1d(cfg.embed, cfg.channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv1d(cfg.channels, cfg.channels, 3, padding=1), nn.ReLU())
        self.lstm = nn.LSTM(cfg.channels, cfg.hidden // 2, batch_first=True, bidirectional=True)
        self.ctc = nn.Linear(cfg.hidden, vocab * up) if vocab else None
        self.spk = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, speakers)) if speakers else None

    def features(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        h = self.cnn(self.emb(x).transpose(1, 2)).transpose(1, 2)
        packed = nn.utils.rnn.pack_padded_sequence(h, lens.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def ctc_logprobs(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        h = self.features(x, lens)
        b, t, _ = h.shape
        return self.ctc(h).view(b, t * self.up, self.vocab).log_softmax(-1)

    def speaker_logits(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        h = self.features(x, lens)
        m = (torch.arange(x.shape[1], device=x.device)[None] < lens[:, None]).float()[..., None]
        return self.spk((h * m).sum(1) / m.sum(1).clamp_min(1))


@dataclasses.dataclass
class StreamData:
    """Token streams of one corpus split: ``streams[name][i]`` is a LongTensor ``[T_i]``."""

    ids: list[str]
    texts: list[str]
    speakers: list[str]
    streams: dict[str, list[torch.Tensor]]


# ---------------------------------------------------------------------------- token sources
TokenSource = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # wav [N] -> {stream: tokens [T]}


def semantic_source(tok: Any) -> tuple[TokenSource, dict[str, int], dict[str, float]]:
    """A :class:`SemanticTokenizer` as a one-stream source."""

    def fn(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        idx, lens = tok.encode(wav[None])
        return {"semantic": idx[0, : int(lens[0])]}

    return fn, {"semantic": tok.codebook_size}, {"semantic": tok.frame_rate}


def dsa_source(model: Any) -> tuple[TokenSource, dict[str, int], dict[str, float]]:
    """A :class:`DSATokenizer`: the semantic stream and each acoustic layer."""
    names = ["semantic"] + [f"acoustic_l{i}" for i in range(model.acoustic_layers)]

    def fn(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        t = model.encode(wav)
        out = {"semantic": t.semantic[0, : int(t.semantic_lengths[0])]}
        for i in range(model.acoustic_layers):
            out[f"acoustic_l{i}"] = t.acoustic[0, i, : int(t.acoustic_lengths[0])]
        return out

    sizes = {n: (model.codebook_sizes[0] if n == "semantic" else model.codebook_sizes[1]) for n in names}
    rates = {n: (model.frame_rates[0] if n == "semantic" else model.frame_rates[1]) for n in names}
    return fn, sizes, rates


@torch.no_grad()
def extract_streams(source: TokenSource, corpus: str | Path, split: str, limit: int = 0,
                    progress: bool = True) -> StreamData:
    """Encode every utterance of ``split`` (the first ``limit`` when > 0)."""
    from tqdm import tqdm

    from ..data.manifests import load_cuts
    from ..data.batches import load_cut_audio

    cuts = list(load_cuts(str(corpus), split))
    if limit:
        cuts = cuts[:limit]
    data = StreamData([], [], [], {})
    for c in tqdm(cuts, desc=f"tokens ({split})", disable=not progress):
        sup = c.supervisions[0]
        out = source(torch.from_numpy(load_cut_audio(c)))
        data.ids.append(c.id)
        data.texts.append(sup.text or "")
        data.speakers.append(sup.speaker or "")
        for k, v in out.items():
            data.streams.setdefault(k, []).append(v.cpu().long())
    return data


# ---------------------------------------------------------------------------- training loops
def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([max(1, s.shape[0]) for s in seqs])
    x = torch.zeros(len(seqs), int(lens.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : s.shape[0]] = s
    return x, lens


def _batches(n: int, size: int, rng: random.Random | None) -> list[list[int]]:
    order = list(range(n))
    if rng is not None:
        rng.shuffle(order)
    return [order[i : i + size] for i in range(0, n, size)]


def train_asr_probe(codebook: int, frame_rate: float, train: tuple[list[torch.Tensor], list[str]],
                    dev: tuple[list[torch.Tensor], list[str]], test: tuple[list[torch.Tensor], list[str]],
                    cfg: ProbeConfig = ProbeConfig()) -> dict[str, float]:
    """CTC character probe; returns test WER / CER of the epoch with the best dev CER."""
    from ..models.semantic import CHAR_VOCAB, ctc_greedy, text_to_ids
    from ..judges.text import cer, wer

    torch.manual_seed(cfg.seed)
    up = max(1, int(math.ceil(50.0 / frame_rate)))
    model = TokenProbe(codebook, cfg, vocab=len(CHAR_VOCAB), up=up)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = random.Random(cfg.seed)

    def decode(seqs: list[torch.Tensor]) -> list[str]:
        model.eval()
        out = []
        with torch.no_grad():
            for b in _batches(len(seqs), 64, None):
                x, lens = _pad([seqs[i] for i in b])
                out += ctc_greedy(model.ctc_logprobs(x, lens), lens * up)
        return out

    best: dict[str, float] = {"dev_cer": float("inf")}
    for epoch in range(cfg.epochs):
        model.train()
        for b in _batches(len(train[0]), cfg.batch, rng):
            x, lens = _pad([train[0][i] for i in b])
            tgt = [torch.tensor(text_to_ids(train[1][i])) for i in b]
            lp = model.ctc_logprobs(x, lens)
            loss = F.ctc_loss(lp.transpose(0, 1), torch.cat(tgt), lens * up, torch.tensor([len(t) for t in tgt]),
                              zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        d = cer(dev[1], decode(dev[0]))
        if d < best["dev_cer"]:
            hyp = decode(test[0])
            best = {"dev_cer": d, "test_cer": cer(test[1], hyp), "test_wer": wer(test[1], hyp), "epoch": epoch + 1}
    return best


def _speaker_split(ids: list[str], speakers: list[str]) -> tuple[list[int], list[int], list[int]]:
    """70 / 15 / 15 per speaker, by a hash of the utterance id (deterministic)."""
    tr, dv, te = [], [], []
    by: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        by.setdefault(s, []).append(i)
    for s, idx in by.items():
        idx = sorted(idx, key=lambda i: hashlib.sha1(ids[i].encode()).hexdigest())
        n = len(idx)
        a, b = int(round(0.7 * n)), int(round(0.85 * n))
        tr += idx[:a]
        dv += idx[a:b]
        te += idx[b:]
    return tr, dv, te


def train_speaker_probe(codebook: int, seqs: list[torch.Tensor], ids: list[str], speakers: list[str],
                        cfg: ProbeConfig = ProbeConfig()) -> dict[str, float]:
    """Speaker-ID probe; returns test accuracy of the epoch with the best dev accuracy, and chance."""
    torch.manual_seed(cfg.seed)
    names = sorted(set(speakers))
    y = torch.tensor([names.index(s) for s in speakers])
    tr, dv, te = _speaker_split(ids, speakers)
    model = TokenProbe(codebook, cfg, speakers=len(names))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = random.Random(cfg.seed)

    def acc(idx: list[int]) -> float:
        model.eval()
        ok = 0
        with torch.no_grad():
            for b in _batches(len(idx), 64, None):
                x, lens = _pad([seqs[idx[i]] for i in b])
                ok += int((model.speaker_logits(x, lens).argmax(-1) == y[[idx[i] for i in b]]).sum())
        return ok / max(1, len(idx))

    best: dict[str, float] = {"dev_acc": -1.0}
    for epoch in range(cfg.epochs):
        model.train()
        for b in _batches(len(tr), cfg.batch, rng):
            x, lens = _pad([seqs[tr[i]] for i in b])
            loss = F.cross_entropy(model.speaker_logits(x, lens), y[[tr[i] for i in b]])
            opt.zero_grad()
            loss.backward()
            opt.step()
        d = acc(dv)
        if d > best["dev_acc"]:
            best = {"dev_acc": d, "test_acc": acc(te), "epoch": epoch + 1}
    best.update({"chance": 1.0 / len(names), "speakers": len(names), "train_utts": len(tr), "test_utts": len(te)})
    return best


def probe_streams(source: TokenSource, sizes: dict[str, int], rates: dict[str, float], corpus: str | Path,
                  cfg: ProbeConfig = ProbeConfig(), limit: int = 0, progress: bool = True,
                  log: Callable[[str], None] = print, tasks: tuple[str, ...] = ("asr", "speaker")) -> dict[str, Any]:
    """The probes in ``tasks`` (``asr``, ``speaker``) for every stream of ``source``; the Table-4 rows.

    The speaker probe alone needs only the dev and test splits, so the train split is not tokenised then.
    """
    bad = [t for t in tasks if t not in ("asr", "speaker")]
    if bad or not tasks:
        raise ValueError(f"probe tasks must be among asr, speaker; got {', '.join(tasks) or 'none'}")
    t0 = time.perf_counter()
    splits = ("train", "dev", "test") if "asr" in tasks else ("dev", "test")
    data = {s: extract_streams(source, corpus, s, limit, progress) for s in splits}
    rows: dict[str, Any] = {}
    spk_ids = data["dev"].ids + data["test"].ids
    spk_names = data["dev"].speakers + data["test"].speakers
    nan = float("nan")
    for name in sizes:
        dv, te = data["dev"].streams[name], data["test"].streams[name]
        asr = train_asr_probe(sizes[name], rates[name], (data["train"].streams[name], data["train"].texts),
                              (dv, data["dev"].texts), (te, data["test"].texts), cfg) if "asr" in tasks else {}
        spk = train_speaker_probe(sizes[name], dv + te, spk_ids, spk_names, cfg) if "speaker" in tasks else {}
        rows[name] = {"asr": asr, "speaker": spk, "frame_rate": rates[name], "codebook_size": sizes[name]}
        log(f"probe {name}: WER {asr.get('test_wer', nan):.3f}  speaker acc {spk.get('test_acc', nan):.3f} "
            f"(chance {spk.get('chance', nan):.3f})")
    return {"corpus": str(corpus), "probe": dataclasses.asdict(cfg), "streams": rows, "tasks": list(tasks),
            "utterances": {s: len(d.ids) for s, d in data.items()}, "seconds": round(time.perf_counter() - t0, 1)}
