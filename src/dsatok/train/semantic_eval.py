"""Stage-1 measurements: greedy CTC CER / WER from the semantic tokens and codebook usage.

The CTC head saved beside an exported tokenizer (``ctc_head.safetensors``) reads the *quantized*
tokens, so its error rate is a lower bound on what the tokens carry of the words.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["evaluate_semantic"]


@torch.no_grad()
def evaluate_semantic(model_dir: str | Path, corpus: str | Path, split: str = "test", limit: int = 0,
                      max_frames: int = 6000, progress: bool = True, train_corpus: str | Path | None = None,
                      reference_asr: Any = None) -> dict[str, Any]:
    """CER / WER of greedy CTC decoding and codebook usage / perplexity over ``split`` of ``corpus``.

    Also per speaker (``by_speaker``) and, for a character head, the word errors split by whether
    the word occurs in the ``train`` texts of ``train_corpus`` (default ``corpus``): a CTC head
    spells words it never saw by ear, so ``wer_oov`` far above ``wer_in_vocab`` says the errors are
    spelling, not hearing.

    ``reference_asr`` (an :class:`~dsatok.eval.asr.ASR`): also transcribe the same clean audio with
    it (``reference``), the ceiling to read the tokens' error rates against.
    """
    from tqdm import tqdm

    from ..audio import lengths_to_mask
    from ..data.manifests import load_cuts
    from ..quant.fsq import codebook_stats
    from ..data.batches import AudioBatchDataset, make_sampler
    from .semantic import CTCTargets, load_ctc_model

    model = load_ctc_model(model_dir)
    targets = CTCTargets(model.tokenizer.cfg, corpus)
    cuts = load_cuts(str(corpus), split)
    if limit:
        cuts = cuts.subset(first=limit)
    ds = AudioBatchDataset()
    refs, hyps, spks, all_idx, ref_hyps = [], [], [], [], []
    t0 = time.perf_counter()
    audio_s = 0.0
    sampler = make_sampler(cuts.to_eager(), max_frames=max_frames, num_buckets=1, shuffle=False, drop_last=False)
    for cb in tqdm(sampler, desc=f"semantic eval ({split})", disable=not progress):
        b = ds[cb]
        lp, out_lens, idx, lens = model(b.wav, b.wav_lens)
        refs += b.texts
        spks += b.speakers
        if reference_asr is not None:
            ref_hyps += [reference_asr.transcribe(b.wav[i, : int(n)].numpy()) for i, n in enumerate(b.wav_lens)]
        hyps += targets.decode(lp, out_lens)
        all_idx.append(idx[lengths_to_mask(lens, idx.shape[1])])
        audio_s += float(b.wav_lens.sum()) / 16000
    flat = torch.cat(all_idx)
    groups: dict[str, list[int]] = {}
    for i, spk in enumerate(spks):
        groups.setdefault(spk, []).append(i)
    by_spk: dict[str, Any] = {}
    for spk, sel in sorted(groups.items()):
        by_spk[spk] = {"utterances": len(sel),
                       **{k: round(v, 4) for k, v in targets.score([refs[i] for i in sel], [hyps[i] for i in sel]).items()}}
    reference: dict[str, Any] = {}
    if reference_asr is not None:
        from ..judges.text import cer, wer

        reference = {"asr": getattr(reference_asr, "name", type(reference_asr).__name__),
                     "cer": round(cer(refs, ref_hyps), 4), "wer": round(wer(refs, ref_hyps), 4)}
        for spk, row in by_spk.items():
            sel = groups[spk]
            row["reference_cer"] = round(cer([refs[i] for i in sel], [ref_hyps[i] for i in sel]), 4)
            row["reference_wer"] = round(wer([refs[i] for i in sel], [ref_hyps[i] for i in sel]), 4)
    vocab_split: dict[str, Any] = {}
    if targets.phonemizer is None:
        from ..judges.text import normalize_text, wer_by_vocabulary

        src = train_corpus or corpus
        vocab = {w for c in load_cuts(str(src), "train") for s in c.supervisions for w in normalize_text(s.text or "").split()}
        vocab_split = {"train_corpus": str(src), "train_vocabulary": len(vocab),
                       **{k: round(v, 4) for k, v in wer_by_vocabulary(refs, hyps, vocab).items()}}
    st = codebook_stats(flat, model.tokenizer.codebook_size)
    return {"model": str(model_dir), "corpus": str(corpus), "split": split, "utterances": len(refs),
            "ctc_target": model.tokenizer.cfg.ctc_target,
            **{k: round(v, 4) for k, v in targets.score(refs, hyps).items()},
            "codebook_usage": round(st["usage"], 4), "perplexity": round(st["perplexity"], 1),
            "codebook_size": model.tokenizer.codebook_size, "bitrate_bps": round(model.tokenizer.bitrate, 1),
            "rtf": round((time.perf_counter() - t0) / max(audio_s, 1e-9), 4),
            "by_speaker": by_spk, "vocabulary_split": vocab_split, "reference": reference,
            "examples": [{"ref": r, "hyp": h if isinstance(h, str) else " ".join(h)} for r, h in list(zip(refs, hyps))[:3]]}
