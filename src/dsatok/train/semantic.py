"""Stage 1: train the semantic tokenizer (encoder + FSQ) with a character CTC head, export it frozen."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import lengths_to_mask
from ..config import ConfigError
from ..models.semantic import CHAR_VOCAB, CTCHead, SemanticConfig, SemanticTokenizer, ctc_greedy, text_to_ids
from ..quant.fsq import codebook_stats
from .config import TrainConfig, load_stage_config

__all__ = ["SemanticStageConfig", "SemanticCTCModel", "SemanticTask", "SEMANTIC_PRESETS", "load_ctc_model"]


@dataclasses.dataclass(frozen=True)
class SemanticStageConfig:
    model: SemanticConfig = SemanticConfig()
    train: TrainConfig = TrainConfig()
    encoder_path: str = ""  # local transformers directory for hubert / wavlm / wav2vec2
    aux_ctc_weight: float = 0.3  # CTC on the continuous encoder output too (keeps it informative early)
    bound_weight: float = 1.0  # FSQ pre-bound penalty (see Quantizer.bound_penalty)
    feature_memo_gb: float = 4.0  # frozen Whisper back end: keep its outputs per utterance (computed once)


SEMANTIC_PRESETS: dict[str, dict] = {
    "tiny": {"model": {"dim": 256, "layers": 6, "heads": 4},
             "train": {"max_steps": 6000, "optim": {"lr": 5e-4, "warmup_steps": 300}, "ckpt_every": 250,
                       "eval_every": 250, "eval_batches": 8, "best_metric": "cer",
                       "data": {"max_frames": 6000, "num_workers": 1}}},
    # frozen pretrained Whisper encoder (CTranslate2, shipped offline) + a small conformer on top:
    # the offline stand-in for the seed's pretrained HuBERT; converges in minutes on a CPU
    "whisper": {"model": {"backend": "whisper", "dim": 256, "layers": 2, "heads": 4, "dropout": 0.05,
                          "fsq_levels": [4, 4, 4, 4, 4]},
                "train": {"max_steps": 4000, "optim": {"lr": 2e-3, "warmup_steps": 200}, "ckpt_every": 200,
                          "eval_every": 200, "eval_batches": 8, "best_metric": "cer",
                          "data": {"max_frames": 6000, "num_workers": 1}}},
    # HuBERT-large-sized conformer (24 layers, dim 1024, 16 heads)
    "paper": {"model": {"dim": 1024, "layers": 24, "heads": 16, "kernel": 31},
              "train": {"max_steps": 200_000, "best_metric": "cer", "ema_decay": 0.999,
                        "optim": {"lr": 2e-4, "warmup_steps": 10_000}, "data": {"max_frames": 30_000}}},
}


class SemanticCTCModel(nn.Module):
    """Tokenizer + CTC head: ``(wav, lens) -> (log_probs [B, T, V], out_lens [B], indices [B, T_s], tok_lens)``."""

    def __init__(self, tokenizer: SemanticTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        c = tokenizer.cfg
        self.head = CTCHead(tokenizer.dim, c.vocab_size, c.ctc_upsample)
        self.aux_head = CTCHead(tokenizer.dim, c.vocab_size, c.ctc_upsample)

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor, aux: bool = False):
        """``(log_probs, out_lens, indices, token_lens)``; with ``aux`` also the continuous-path
        log-probs and the FSQ bound penalty."""
        h, lens = self.tokenizer.encoder(wav, wav_lens)
        q, idx = self.tokenizer.fsq(h)
        lp = self.head(q)
        out = (lp, lens * self.head.up, idx[:, 0], lens)
        if aux:
            return out + (self.aux_head(h), self.tokenizer.fsq.bound_penalty(h))
        return out


def _targets(texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [text_to_ids(t) for t in texts]
    flat = torch.tensor([i for x in ids for i in x], dtype=torch.long, device=device)
    return flat, torch.tensor([len(x) for x in ids], dtype=torch.long, device=device)


class SemanticTask:
    """:class:`~dsatok.train.engine.Task` for stage 1."""

    def __init__(self, cfg: SemanticStageConfig) -> None:
        self.cfg = cfg

    def build_model(self) -> nn.Module:
        c = self.cfg.model
        if c.backend not in ("conformer", "whisper"):
            if not self.cfg.encoder_path:
                raise ConfigError(f"semantic backend '{c.backend}' needs encoder_path (--encoder-path DIR)")
            tok = SemanticTokenizer.from_encoder_dir(self.cfg.encoder_path, c)
        else:
            tok = SemanticTokenizer(c)
            if tok.encoder.whisper is not None:
                tok.encoder.whisper.memo_limit = int(self.cfg.feature_memo_gb * 2**30)
        return SemanticCTCModel(tok)

    @staticmethod
    def _ctc(lp, out_lens, tgt, tgt_lens):
        return F.ctc_loss(lp.transpose(0, 1).float(), tgt, out_lens, tgt_lens, blank=0, reduction="mean",
                          zero_infinity=True)

    def _loss(self, model, batch):
        lp, out_lens, idx, lens = model(batch.wav, batch.wav_lens)
        tgt, tgt_lens = _targets(batch.texts, lp.device)
        return self._ctc(lp, out_lens, tgt, tgt_lens), lp, out_lens, idx, lens

    def training_step(self, model, batch, step):
        lp, out_lens, idx, lens, lp_aux, bound = model(batch.wav, batch.wav_lens, aux=True)
        tgt, tgt_lens = _targets(batch.texts, lp.device)
        ctc = self._ctc(lp, out_lens, tgt, tgt_lens)
        ctc_aux = self._ctc(lp_aux, out_lens, tgt, tgt_lens)
        loss = ctc + self.cfg.aux_ctc_weight * ctc_aux + self.cfg.bound_weight * bound
        st = codebook_stats(idx, self.cfg.model.codebook_size, lengths_to_mask(lens, idx.shape[1]))
        return loss, {"ctc": float(ctc), "ctc_aux": float(ctc_aux), "bound": float(bound), "usage": st["usage"],
                      "perplexity": st["perplexity"]}

    def eval_step(self, model, batch) -> dict[str, float]:
        from ..eval.text import cer, wer

        loss, lp, out_lens, idx, lens = self._loss(model, batch)
        hyp = ctc_greedy(lp, out_lens)
        st = codebook_stats(idx, self.cfg.model.codebook_size, lengths_to_mask(lens, idx.shape[1]))
        return {"loss": float(loss), "cer": cer(batch.texts, hyp), "wer": wer(batch.texts, hyp), **st}

    def export(self, model, out_dir: Path) -> None:
        """The frozen tokenizer (``config.json`` + ``model.safetensors``); the CTC head goes to
        ``ctc_head.safetensors`` beside it, for measuring CER after training (never loaded by the tokenizer)."""
        from safetensors.torch import save_file

        m = model.module if hasattr(model, "module") else model
        m.tokenizer.save_pretrained(out_dir)
        save_file({k: v.contiguous() for k, v in m.head.state_dict().items()}, str(Path(out_dir) / "ctc_head.safetensors"))


def load_ctc_model(model_dir: str | Path) -> SemanticCTCModel:
    """An exported tokenizer with its stage-1 CTC head re-attached (for evaluation)."""
    from safetensors.torch import load_file

    m = SemanticCTCModel(SemanticTokenizer.from_pretrained(model_dir))
    p = Path(model_dir) / "ctc_head.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"{model_dir}: no ctc_head.safetensors (was it exported by stage 1?)")
    m.head.load_state_dict(load_file(str(p)), strict=True)
    return m.eval()


def run(corpus: str, preset: str = "tiny", config: str | None = None, overrides: list[str] | None = None,
        encoder_path: str = "", progress: bool = True) -> dict[str, Any]:
    """Train stage 1 from a corpus directory; returns the trainer summary."""
    from .data import corpus_batches
    from .engine import Trainer

    ov: list[str] = []
    if encoder_path:
        ov.append(f"encoder_path={encoder_path}")
    cfg = load_stage_config(SemanticStageConfig, SEMANTIC_PRESETS, preset, corpus, config, ov + list(overrides or []))
    batches, dev = corpus_batches(cfg.train.data, seed=cfg.train.seed)
    return Trainer(SemanticTask(cfg), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
