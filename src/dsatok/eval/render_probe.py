"""Renderability probe: how many of the words can a fixed small decoder render from a token stream?

One fixed regression decoder for every input (:class:`~dsatok.nn.render.MelRenderer`: an input map,
x4 repetition to the mel rate, FiLM residual conv blocks), the voice given as an oracle (the
utterance's own mel mean and std per bin), L1 on the flow decoder's normalised log-mel, trained for a
fixed step budget from a fixed seed on 4 s crops of the corpus's train split. Then test utterances of
voices the tokenizer never saw → regressed mel → a vocoder → the ASR judges. Only the input changes:

* ``continuous``: the semantic encoder's output before FSQ;
* ``codes``: the semantic tokens as their frozen FSQ code values (``SemanticTokenizer.embed``);
* ``table``: the semantic token ids through a learnt embedding table;
* ``codes+acoustic``: ``codes`` beside a DSA model's acoustic code values (stacked to the semantic rate);
* ``acoustic``: the acoustic code values alone.

It is stage 1's selection metric beside CER, and a floor for a flow decoder on the same tokens.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["RenderProbeConfig", "RENDER_INPUTS", "RenderItem", "load_probe_source", "extract_items",
           "train_render_probe", "evaluate_render_probe", "render_probe"]

RENDER_INPUTS = ("continuous", "codes", "table", "codes+acoustic", "acoustic")
MEL_MEAN, MEL_STD = -5.0, 2.5  # the flow decoder's log-mel normalisation


@dataclasses.dataclass(frozen=True)
class RenderProbeConfig:
    steps: int = 2500
    batch: int = 16
    crop_tokens: int = 100  # 4 s at 25 Hz
    dim: int = 192
    blocks: int = 6
    lr: float = 1e-3
    seed: int = 0


@dataclasses.dataclass
class RenderItem:
    """One utterance: probe input ``x`` (``[T_s, D]`` float, or ``[T_s]`` ids for ``table``), the
    normalised log-mel ``mel [n_mels, T_s * up]``, and its transcript / speaker."""

    x: torch.Tensor
    mel: torch.Tensor
    text: str
    speaker: str


Featurizer = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # wav [N] -> {kind: x [T_s, D] or ids [T_s]}


def load_probe_source(model_dir: str | Path, kinds: list[str]) -> tuple[Featurizer, dict[str, int], float, int]:
    """``(featurize, in_dims, token_rate, codebook)`` for a semantic tokenizer directory or a DSA model
    directory (one with ``semantic/``); the acoustic inputs need the latter. One encoder pass gives
    every kind in ``kinds``."""
    from ..models.semantic import SemanticTokenizer

    bad = [k for k in kinds if k not in RENDER_INPUTS]
    if bad or not kinds:
        raise ValueError(f"render probe: unknown input '{','.join(bad)}' (choose from {', '.join(RENDER_INPUTS)})")
    d = Path(model_dir)
    acoustic = None
    need_ac = any("acoustic" in k for k in kinds)
    if (d / "semantic" / "config.json").is_file():
        sem = SemanticTokenizer.from_pretrained(d / "semantic").eval()
        if need_ac:
            from ..models.acoustic import AcousticTokenizer

            acoustic = AcousticTokenizer.from_pretrained(d / "acoustic").eval()
    else:
        if need_ac:
            raise ValueError(f"render probe: the acoustic inputs need a DSA model directory (with semantic/ and "
                             f"acoustic/), got the semantic tokenizer {model_dir}")
        sem = SemanticTokenizer.from_pretrained(d).eval()

    @torch.no_grad()
    def featurize(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        lens = torch.tensor([wav.shape[-1]])
        h, tl = sem.encoder(wav[None], lens)
        n = int(tl[0])
        q, idx = sem.fsq(h)
        feats = {"continuous": h[0, :n], "table": idx[0, 0, :n].long(), "codes": q[0, :n]}
        if acoustic is not None:
            aq, _, al = acoustic.quantize(wav[None], lens)
            a = aq[0, : int(al[0])]
            r = max(1, round(acoustic.frame_rate / sem.frame_rate))
            a = torch.nn.functional.pad(a, (0, 0, 0, max(0, n * r - a.shape[0])))[: n * r].reshape(n, -1)
            feats["acoustic"], feats["codes+acoustic"] = a, torch.cat([feats["codes"], a], dim=-1)
        return {k: feats[k] for k in kinds}

    probe = featurize(torch.zeros(16000))
    dims = {k: (0 if k == "table" else int(v.shape[-1])) for k, v in probe.items()}
    return featurize, dims, sem.frame_rate, sem.codebook_size


@torch.no_grad()
def extract_items(featurize: Featurizer, corpus: str | Path, split: str, up: int, limit: int = 0,
                  spread: bool = False, progress: bool = True) -> dict[str, list[RenderItem]]:
    """Probe inputs (one list per kind) and mel targets of ``split`` (the first ``limit``, or ``limit``
    spread evenly over the split with ``spread``)."""
    from tqdm import tqdm

    from ..audio import MelFrontend
    from ..data.batches import load_cut_audio
    from ..data.manifests import load_cuts, spread as spread_cuts

    fe = MelFrontend()
    cuts = list(load_cuts(str(corpus), split))
    if limit and limit < len(cuts):
        cuts = spread_cuts(cuts, limit) if spread else cuts[:limit]
    items: dict[str, list[RenderItem]] = {}
    for c in tqdm(cuts, desc=f"render probe inputs ({split})", disable=not progress):
        w = torch.from_numpy(load_cut_audio(c))
        feats = featurize(w)
        mel = (fe(w[None])[0][0] - MEL_MEAN) / MEL_STD
        t = min(min(x.shape[0] for x in feats.values()), mel.shape[1] // up)
        if t < 1:
            continue
        sup = c.supervisions[0]
        m = mel[:, : t * up].clone()
        for k, x in feats.items():
            items.setdefault(k, []).append(RenderItem(x[:t].clone(), m, sup.text or "", sup.speaker or ""))
    return items


def _batch(items: list[RenderItem], rng: random.Random, cfg: RenderProbeConfig, up: int):
    from ..nn.render import voice_stats

    L = cfg.crop_tokens
    xs, ys, ms, vs = [], [], [], []
    for it in (rng.choice(items) for _ in range(cfg.batch)):
        vs.append(voice_stats(it.mel[None])[0])
        n = it.x.shape[0]
        o = rng.randrange(n - L + 1) if n > L else 0
        x, y = it.x[o:o + L], it.mel[:, up * o: up * (o + L)]
        k = x.shape[0]
        pad = (0, L - k) if x.dim() == 1 else (0, 0, 0, L - k)
        xs.append(torch.nn.functional.pad(x, pad))
        ys.append(torch.nn.functional.pad(y, (0, up * (L - k))))
        ms.append(torch.arange(up * L) < up * k)
    return torch.stack(xs), torch.stack(ys), torch.stack(ms), torch.stack(vs)


def train_render_probe(train: list[RenderItem], in_dim: int, codebook: int, up: int, cfg: RenderProbeConfig,
                       progress: bool = True) -> tuple[torch.nn.Module, dict[str, float]]:
    """A :class:`MelRenderer` fitted for ``cfg.steps`` steps (masked L1 on 4 s crops)."""
    from tqdm import tqdm

    from ..nn.render import MelRenderer

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    is_ids = train[0].x.dim() == 1
    net = MelRenderer(in_dim, train[0].mel.shape[0], cfg.dim, cfg.blocks, up, embedding=codebook if is_ids else 0)
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    t0, last = time.time(), float("nan")
    for _ in tqdm(range(cfg.steps), desc="render probe", disable=not progress):
        x, y, m, v = _batch(train, rng, cfg, up)
        w = m[:, None, :].float()
        loss = ((net(x, v) - y).abs() * w).sum() / (w.sum() * y.shape[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(loss.detach())
    return net.eval(), {"train_l1_last": last, "train_seconds": round(time.time() - t0, 1)}


@torch.no_grad()
def evaluate_render_probe(net: torch.nn.Module, test: list[RenderItem], vocoder: Any, ev: Any,
                          progress: bool = True) -> dict[str, Any]:
    """Regressed mel → ``vocoder`` → every ASR judge of ``ev``: WER per judge, mel L1 (log-mel units)."""
    from tqdm import tqdm

    from ..judges.text import wer
    from ..nn.render import voice_stats

    refs, hyps, extra, l1 = [], [], {}, []
    for it in tqdm(test, desc="render probe test", disable=not progress):
        p = net(it.x[None], voice_stats(it.mel[None]))[0]
        l1.append(float((p - it.mel).abs().mean()) * MEL_STD)
        wav = vocoder.synthesize((p * MEL_STD + MEL_MEAN)[None])[0].clamp(-1, 1).numpy()
        refs.append(it.text)
        hyps.append(ev.asr.transcribe(wav))
        ev.transcribe_extra(wav, extra)
    row: dict[str, Any] = {"n": len(test), "wer": round(wer(refs, hyps), 4)}
    for label, hs in extra.items():
        row[f"wer_{label}"] = round(wer(refs, hs), 4)
    row["mel_l1"] = round(sum(l1) / max(1, len(l1)), 4)
    row["by_speaker"] = _by_speaker([it.speaker for it in test], refs, {"": hyps, **extra})
    row["examples"] = [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:5]]
    return row


def _by_speaker(speakers: list[str], refs: list[str], hyps: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Per test speaker: utterances, reference words and WER per judge (``wer``, ``wer_<label>``), so
    groups of voices (e.g. natural vs classical) can be compared by word-weighted averages."""
    from ..judges.text import normalize_text, wer

    out: dict[str, dict[str, Any]] = {}
    for spk in sorted(set(speakers)):
        idx = [i for i, s in enumerate(speakers) if s == spk]
        r = [refs[i] for i in idx]
        row: dict[str, Any] = {"n": len(idx), "words": sum(len(normalize_text(x).split()) for x in r)}
        for label, hs in hyps.items():
            row[f"wer_{label}" if label else "wer"] = round(wer(r, [hs[i] for i in idx]), 4)
        out[spk] = row
    return out


def render_probe(model_dir: str | Path, corpus: str | Path, inputs: list[str], ev: Any, vocoder: Any,
                 cfg: RenderProbeConfig = RenderProbeConfig(), limit: int = 40, train_limit: int = 0,
                 progress: bool = True) -> dict[str, Any]:
    """The probe for each input kind: ``{"inputs": {kind: row}, "config": ..., ...}``."""
    out: dict[str, Any] = {"model": str(model_dir), "corpus": str(corpus), "config": dataclasses.asdict(cfg),
                           "evaluators": ev.names(), "inputs": {}}
    featurize, dims, rate, codebook = load_probe_source(model_dir, inputs)
    up = round(100 / rate)
    train = extract_items(featurize, corpus, "train", up, train_limit, progress=progress)
    test = extract_items(featurize, corpus, "test", up, limit, spread=True, progress=progress)
    out.update({"token_rate": rate, "codebook": codebook, "bitrate": round(rate * math.log2(codebook), 1)})
    for kind in inputs:
        net, info = train_render_probe(train[kind], dims[kind], codebook, up, cfg, progress)
        out["inputs"][kind] = {**evaluate_render_probe(net, test[kind], vocoder, ev, progress), **info,
                               "train_items": len(train[kind])}
    return out
