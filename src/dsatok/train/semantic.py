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
from ..models.semantic import (SemanticConfig, SemanticTokenizer, ctc_greedy, ctc_greedy_ids, ctc_vocab,
                               text_to_ids)
from ..quant.fsq import codebook_stats
from .config import TrainConfig, load_stage_config

__all__ = ["SemanticStageConfig", "CTCHead", "SemanticCTCModel", "SemanticTask", "SEMANTIC_PRESETS", "load_ctc_model", "CTCTargets",
           "phoneme_inventory", "resolve_phonemes"]


@dataclasses.dataclass(frozen=True)
class SemanticStageConfig:
    model: SemanticConfig = SemanticConfig()
    train: TrainConfig = TrainConfig()
    encoder_path: str = ""  # local transformers directory for hubert / wavlm / wav2vec2
    aux_ctc_weight: float = 0.3  # CTC on the continuous encoder output too (keeps it informative early)
    bound_weight: float = 1.0  # FSQ pre-bound penalty (see Quantizer.bound_penalty)
    feature_memo_gb: float = 4.0  # frozen Whisper back end: keep its outputs per utterance (computed once)
    # render head: a small mel renderer (dsatok.nn.render.MelRenderer) on the *quantised* sequence,
    # L1 to the normalised log-mel with the utterance's own mel statistics as the voice; its gradient
    # reaches the encoder through FSQ's straight-through estimator, so the tokens keep what a decoder
    # needs to render words (dropped after training, like the CTC head). 0: off
    render_weight: float = 0.0
    render_dim: int = 128
    render_blocks: int = 4
    # feature distillation (SpeechTokenizer's, with the frozen front end as teacher): a linear map of
    # the *quantised* sequence predicts the front end's features averaged to the token rate (Whisper's
    # encoder states; the log-mel for the conformer), loss 1 - cosine per frame; like the render
    # head it reaches the encoder through FSQ and is dropped after training. 0: off
    distill_weight: float = 0.0


RENDER_MEL_MEAN, RENDER_MEL_STD = -5.0, 2.5  # the render head's log-mel normalisation (as the flow decoder's)

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


class CTCHead(nn.Module):
    """Stage-1 CTC head over characters: ``[B, T_s, D] -> log-probs [B, T_s * up, V]``.

    Each token frame emits ``up`` *distinct* output frames (one linear map to ``up × V``), so a
    25 Hz token stream can spell up to 50 characters per second; repeating one distribution
    ``up`` times would cap it at 25 and make CTC infeasible for fast speech.
    """

    def __init__(self, dim: int, vocab: int, upsample: int = 2) -> None:
        super().__init__()
        self.up, self.vocab = upsample, vocab
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.out = nn.Linear(dim, vocab * upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        b, t, _ = h.shape
        return self.out(h).view(b, t * self.up, self.vocab).log_softmax(-1)


class SemanticCTCModel(nn.Module):
    """Tokenizer + CTC head: ``(wav, lens) -> (log_probs [B, T, V], out_lens [B], indices [B, T_s], tok_lens)``.

    ``render`` (training only): a :class:`~dsatok.nn.render.MelRenderer` over the quantised
    sequence ``[B, T_s, D]`` (see ``SemanticStageConfig.render_weight``).
    """

    def __init__(self, tokenizer: SemanticTokenizer, render: nn.Module | None = None,
                 distill: nn.Module | None = None) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        c = tokenizer.cfg
        self.head = CTCHead(tokenizer.dim, c.vocab_size, c.ctc_upsample)
        self.aux_head = CTCHead(tokenizer.dim, c.vocab_size, c.ctc_upsample)
        self.render = render
        self.distill = distill  # quantised sequence -> the front end's features (training only)

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor, aux: bool = False):
        """``(log_probs, out_lens, indices, token_lens)``; with ``aux`` also the continuous-path
        log-probs, the FSQ bound penalty and the quantised sequence ``q [B, T_s, D]``."""
        h, lens = self.tokenizer.encoder(wav, wav_lens)
        q, idx = self.tokenizer.fsq(h)
        lp = self.head(q)
        out = (lp, lens * self.head.up, idx[:, 0], lens)
        if aux:
            return out + (self.aux_head(h), self.tokenizer.fsq.bound_penalty(h), q)
        return out


class CTCTargets:
    """Texts → CTC target ids for a tokenizer's head: characters, or espeak-ng phonemes.

    ``symbols(texts)`` gives the reference symbol sequences (phoneme heads) used for error rates.
    """

    def __init__(self, cfg: SemanticConfig, corpus: str | Path = "") -> None:
        self.cfg = cfg
        self.phonemizer = None
        if cfg.ctc_target == "phonemes":
            from ..data.phonemes import Phonemizer

            cache = Path(corpus) / "cache" / f"phonemes-{cfg.phoneme_voice}.json" if corpus else None
            self.phonemizer = Phonemizer(cfg.phoneme_voice, cache)
            self._index = {p: i for i, p in enumerate(ctc_vocab(cfg))}

    def symbols(self, texts: list[str]) -> list[list[str]]:
        assert self.phonemizer is not None
        return self.phonemizer(texts)

    def ids(self, texts: list[str]) -> list[list[int]]:
        if self.phonemizer is None:
            return [text_to_ids(t) for t in texts]
        return [[self._index[p] for p in seq if p in self._index] for seq in self.symbols(texts)]

    def __call__(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.ids(texts)
        flat = torch.tensor([i for x in ids for i in x], dtype=torch.long, device=device)
        return flat, torch.tensor([len(x) for x in ids], dtype=torch.long, device=device)

    def decode(self, log_probs: torch.Tensor, out_lens: torch.Tensor) -> list[Any]:
        """Greedy CTC hypotheses: texts (characters) or symbol lists (phonemes)."""
        if self.phonemizer is None:
            return ctc_greedy(log_probs, out_lens)
        vocab = ctc_vocab(self.cfg)
        return [[vocab[i] for i in seq] for seq in ctc_greedy_ids(log_probs, out_lens)]

    def score(self, texts: list[str], hyps: list[Any]) -> dict[str, float]:
        """Corpus error rates of ``hyps`` against ``texts``: ``cer`` / ``wer`` (characters) or
        ``per`` / ``pwer`` (phonemes; ``pwer`` counts a word wrong unless its whole phoneme spelling is right)."""
        from ..judges.text import cer, symbol_error_rate, symbol_word_error_rate, wer

        if self.phonemizer is None:
            return {"cer": cer(texts, hyps), "wer": wer(texts, hyps)}
        refs = self.symbols(texts)
        return {"per": symbol_error_rate(refs, hyps), "pwer": symbol_word_error_rate(refs, hyps)}

    def error_rates(self, log_probs: torch.Tensor, out_lens: torch.Tensor, texts: list[str]) -> dict[str, float]:
        return self.score(texts, self.decode(log_probs, out_lens))


def phoneme_inventory(corpus: str | Path, voice: str = "en-us", splits: tuple[str, ...] = ("train", "dev")) -> tuple[str, ...]:
    """The sorted espeak-ng phoneme symbols of every text in ``splits`` of ``corpus`` (word boundary excluded)."""
    from ..data.manifests import load_cuts
    from ..data.phonemes import WORD, Phonemizer

    texts = sorted({c.supervisions[0].text or "" for s in splits for c in load_cuts(str(corpus), s)})
    ph = Phonemizer(voice, Path(corpus) / "cache" / f"phonemes-{voice}.json")
    return tuple(sorted({p for seq in ph(texts) for p in seq if p != WORD}))


class SemanticTask:
    """:class:`~dsatok.train.engine.Task` for stage 1."""

    def __init__(self, cfg: SemanticStageConfig) -> None:
        from ..audio import MelFrontend

        self.cfg = cfg
        self.targets = CTCTargets(cfg.model, cfg.train.data.corpus)
        self._mel = MelFrontend()  # the render head's target: the decoders' 100-bin, 100 Hz log-mel

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
        render = None
        if self.cfg.render_weight > 0:
            from ..nn.render import MelRenderer

            up = round(self._mel.cfg.sample_rate / self._mel.cfg.hop_length / c.frame_rate)
            render = MelRenderer(tok.dim, self._mel.cfg.n_mels, self.cfg.render_dim, self.cfg.render_blocks, up)
        distill = None
        if self.cfg.distill_weight > 0:
            if tok.encoder.hf is not None:
                raise ConfigError(f"semantic: distill_weight needs a frozen front end (whisper or conformer back end), "
                                  f"not '{c.backend}'")
            front = tok.encoder.whisper.out_dim if tok.encoder.whisper is not None else c.mel.n_mels
            distill = nn.Linear(tok.dim, front)
        return SemanticCTCModel(tok, render, distill)

    def _distill_loss(self, model, q: torch.Tensor, lens: torch.Tensor, batch) -> torch.Tensor:
        """``1 - cos`` between the distillation map of ``q [B, T_s, D]`` and the frozen front end's
        features averaged over each token's frames, over the valid token frames."""
        m = model.module if hasattr(model, "module") else model
        with torch.no_grad():
            feats, _, k = m.tokenizer.encoder.front_features(batch.wav, batch.wav_lens)
            tgt = F.avg_pool1d(feats.transpose(1, 2), k, k, ceil_mode=True).transpose(1, 2)
        t = min(q.shape[1], tgt.shape[1])
        cos = F.cosine_similarity(m.distill(q[:, :t]), tgt[:, :t].to(q.dtype), dim=-1)  # [B, t]
        w = lengths_to_mask(lens.clamp(max=t), t).to(q.dtype)
        return ((1 - cos) * w).sum() / w.sum().clamp(min=1.0)

    def _render_loss(self, model, q: torch.Tensor, lens: torch.Tensor, batch) -> torch.Tensor:
        """Masked L1 between the render head's mel and the normalised log-mel of the batch."""
        from ..nn.render import voice_stats

        m = model.module if hasattr(model, "module") else model
        self._mel = self._mel.to(q.device)
        mel, mel_lens = self._mel(batch.wav, batch.wav_lens)
        mel = (mel - RENDER_MEL_MEAN) / RENDER_MEL_STD
        up = m.render.up
        t = min(q.shape[1] * up, mel.shape[2])
        n = torch.minimum(mel_lens, lens * up).clamp(max=t)
        mask = lengths_to_mask(n, t)
        tgt = mel[:, :, :t]
        pred = m.render(q, voice_stats(tgt, mask))[:, :, :t]
        w = mask[:, None, :].to(pred.dtype)
        return ((pred - tgt).abs() * w).sum() / (w.sum() * pred.shape[1]).clamp(min=1.0)

    @staticmethod
    def _ctc(lp, out_lens, tgt, tgt_lens):
        return F.ctc_loss(lp.transpose(0, 1).float(), tgt, out_lens, tgt_lens, blank=0, reduction="mean",
                          zero_infinity=True)

    def _loss(self, model, batch):
        lp, out_lens, idx, lens = model(batch.wav, batch.wav_lens)
        tgt, tgt_lens = self.targets(batch.texts, lp.device)
        return self._ctc(lp, out_lens, tgt, tgt_lens), lp, out_lens, idx, lens

    def training_step(self, model, batch, step):
        lp, out_lens, idx, lens, lp_aux, bound, q = model(batch.wav, batch.wav_lens, aux=True)
        tgt, tgt_lens = self.targets(batch.texts, lp.device)
        ctc = self._ctc(lp, out_lens, tgt, tgt_lens)
        ctc_aux = self._ctc(lp_aux, out_lens, tgt, tgt_lens)
        loss = ctc + self.cfg.aux_ctc_weight * ctc_aux + self.cfg.bound_weight * bound
        st = codebook_stats(idx, self.cfg.model.codebook_size, lengths_to_mask(lens, idx.shape[1]))
        logs = {"ctc": float(ctc.detach()), "ctc_aux": float(ctc_aux.detach()), "bound": float(bound.detach()),
                "usage": st["usage"], "perplexity": st["perplexity"]}
        if self.cfg.render_weight > 0:
            ren = self._render_loss(model, q, lens, batch)
            loss = loss + self.cfg.render_weight * ren
            logs["render_l1"] = float(ren.detach())
        if self.cfg.distill_weight > 0:
            dis = self._distill_loss(model, q, lens, batch)
            loss = loss + self.cfg.distill_weight * dis
            logs["distill"] = float(dis.detach())
        return loss, logs

    def eval_step(self, model, batch) -> dict[str, float]:
        if self.cfg.render_weight <= 0 and self.cfg.distill_weight <= 0:
            loss, lp, out_lens, idx, lens = self._loss(model, batch)
        else:  # one encoder pass serves the CTC, the render and the distillation paths
            lp, out_lens, idx, lens, _, _, q = model(batch.wav, batch.wav_lens, aux=True)
            loss = self._ctc(lp, out_lens, *self.targets(batch.texts, lp.device))
        st = codebook_stats(idx, self.cfg.model.codebook_size, lengths_to_mask(lens, idx.shape[1]))
        out = {"loss": float(loss), **self.targets.error_rates(lp, out_lens, batch.texts), **st}
        if self.cfg.render_weight > 0:
            out["render_l1"] = float(self._render_loss(model, q, lens, batch))
        if self.cfg.distill_weight > 0:
            out["distill"] = float(self._distill_loss(model, q, lens, batch))
        return out

    def export(self, model, out_dir: Path) -> None:
        """The frozen tokenizer (``config.json`` + ``model.safetensors``); the CTC head goes to
        ``ctc_head.safetensors`` beside it, for measuring CER after training (never loaded by the tokenizer),
        and a render head with the FSQ output projection to ``render_head.safetensors``."""
        from safetensors.torch import save_file

        m = model.module if hasattr(model, "module") else model
        m.tokenizer.save_pretrained(out_dir)
        save_file({k: v.contiguous() for k, v in m.head.state_dict().items()}, str(Path(out_dir) / "ctc_head.safetensors"))
        if m.render is not None:  # what a decoder's renderer prior can start from (decoder prior_init)
            keep = {f"render.{k}": v for k, v in m.render.state_dict().items()}
            keep.update({k: v for k, v in m.state_dict().items() if k.startswith("tokenizer.fsq.fsq.project_out.")})
            save_file({k: v.contiguous() for k, v in keep.items()}, str(Path(out_dir) / "render_head.safetensors"))


def load_ctc_model(model_dir: str | Path) -> SemanticCTCModel:
    """An exported tokenizer with its stage-1 CTC head re-attached (for evaluation)."""
    from safetensors.torch import load_file

    m = SemanticCTCModel(SemanticTokenizer.from_pretrained(model_dir))
    p = Path(model_dir) / "ctc_head.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"{model_dir}: no ctc_head.safetensors (was it exported by stage 1?)")
    m.head.load_state_dict(load_file(str(p)), strict=True)
    return m.eval()


def resolve_phonemes(cfg: SemanticStageConfig) -> SemanticStageConfig:
    """For a phoneme CTC target: fill the inventory from the training corpus (when not given), size
    the head's vocabulary to it, and select checkpoints on ``per`` where the preset said ``cer``."""
    m = cfg.model
    if m.ctc_target != "phonemes":
        return cfg
    if not m.phonemes:
        if not cfg.train.data.corpus:
            raise ConfigError("semantic: ctc_target=phonemes needs --corpus (its texts give the phoneme inventory) "
                              "or model.phonemes")
        phones = phoneme_inventory(cfg.train.data.corpus, m.phoneme_voice)
        m = dataclasses.replace(m, phonemes=phones, vocab_size=len(phones) + 2)
    # a given inventory with a mismatched vocab_size is refused by SemanticConfig itself
    train = cfg.train
    if train.best_metric in ("cer", "wer"):
        train = dataclasses.replace(train, best_metric="per" if train.best_metric == "cer" else "pwer")
    return dataclasses.replace(cfg, model=m, train=train)


def run(corpus: str, preset: str = "tiny", config: str | None = None, overrides: list[str] | None = None,
        encoder_path: str = "", progress: bool = True) -> dict[str, Any]:
    """Train stage 1 from a corpus directory; returns the trainer summary."""
    from .data import corpus_batches
    from .engine import Trainer

    ov: list[str] = []
    if encoder_path:
        ov.append(f"encoder_path={encoder_path}")
    cfg = load_stage_config(SemanticStageConfig, SEMANTIC_PRESETS, preset, corpus, config, ov + list(overrides or []))
    cfg = resolve_phonemes(cfg)
    batches, dev = corpus_batches(cfg.train.data, seed=cfg.train.seed)
    return Trainer(SemanticTask(cfg), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
