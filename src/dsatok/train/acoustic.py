"""Stage 2 (seed 3.1.2, 3.1.3, 3.2): acoustic tokenizer + flow-matching decoder, trained jointly.

Each batch is *reconstruction* (full z_a, loss on all frames) or, with ``recomb_prob``,
*recombination / contextual inpainting*: a split τ per utterance, z_a only from frames before τ
(codes zeroed before the SEANet decoder and keys masked), loss only on frames ≥ τ. A speaker
consistency loss ``1 − cos(s_ref, AttnPool(e_a))`` ties the acoustic stream to the speaker.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import lengths_to_mask
from ..config import ConfigError
from ..models.acoustic import AcousticConfig, AcousticTokenizer
from ..models.flow_decoder import DecoderConfig, FlowDecoder
from ..models.semantic import SemanticTokenizer
from ..nn.pooling import AttentiveStatsPool
from .config import TrainConfig, load_stage_config

__all__ = ["AcousticStageConfig", "Stage2Model", "AcousticTask", "ACOUSTIC_PRESETS", "flow_loss"]


@dataclasses.dataclass(frozen=True)
class AcousticStageConfig:
    acoustic: AcousticConfig = AcousticConfig()
    decoder: DecoderConfig = DecoderConfig()
    train: TrainConfig = TrainConfig()
    semantic: str = ""  # exported stage-1 tokenizer directory
    speaker_encoder: str = "resemblyzer"  # or a local WavLM-SV directory
    spk_dim: int = 256
    speaker_loss: bool = True
    spk_weight: float = 1.0
    recombination: bool = True
    recomb_prob: float = 0.5
    tau_range: tuple[float, float] = (0.3, 0.7)
    p_uncond: float = 0.1  # drop e_s and e_a together (CFG)
    p_drop_sem: float = 0.05
    p_drop_ac: float = 0.05
    bound_weight: float = 1.0  # acoustic FSQ pre-bound penalty: without it |z| drifted to ~14 and the
    # tokens collapsed to a handful of saturated codes per utterance (the decoder then ignored them)
    feature_memo_gb: float = 4.0  # Whisper semantic back end: keep its outputs per utterance
    init_from: str = ""  # stage-2 export (acoustic/, decoder/, speaker_pool.safetensors) to start from
    # (weights only: fresh optimizer and schedule; a run's own checkpoints still take precedence)
    freeze_acoustic: bool = False  # train the decoder only: the acoustic tokenizer (and so the tokens
    # and the model fingerprint) stays as loaded, e.g. a decoder fine-tune of an exported model

    def __post_init__(self) -> None:
        for k in ("recomb_prob", "p_uncond", "p_drop_sem", "p_drop_ac"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ConfigError(f"{k} must be a probability in [0, 1], got {getattr(self, k)}")
        lo, hi = self.tau_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"tau_range must satisfy 0 <= low <= high <= 1, got {list(self.tau_range)}")
        for k in ("spk_weight", "bound_weight"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")


ACOUSTIC_PRESETS: dict[str, dict] = {
    "tiny": {"train": {"max_steps": 20_000, "optim": {"lr": 5e-4, "warmup_steps": 300}, "ckpt_every": 250,
                       "eval_every": 250, "eval_batches": 6, "ema_decay": 0.999,
                       "data": {"max_frames": 4000, "num_workers": 1}}},
    "paper": {"acoustic": {"enc_dims": [512, 1024, 1024, 1024], "latent_dim": 512},
              "decoder": {"dim": 1024, "blocks": 22, "heads": 16, "ff_mult": 4, "ac_latent_dim": 512, "adanorm": "shared",
                          "ac_dec_dims": [1024, 1024, 1024, 1024]},
              "train": {"max_steps": 400_000, "ema_decay": 0.9999,
                        "optim": {"lr": 7.5e-5, "warmup_steps": 32_000, "decay": "linear"},
                        "data": {"max_frames": 30_000}}},
}


class Stage2Model(nn.Module):
    """Frozen semantic tokenizer + trainable acoustic tokenizer, decoder and speaker pooling."""

    def __init__(self, semantic: SemanticTokenizer | None, acoustic: AcousticTokenizer, decoder: FlowDecoder,
                 spk_dim: int, *, freeze_acoustic: bool = False) -> None:
        super().__init__()
        # None when the tokens come precomputed with the batches (training packs)
        self.semantic = semantic.requires_grad_(False).eval() if semantic is not None else None
        self.acoustic, self.decoder = acoustic, decoder
        self.freeze_acoustic = freeze_acoustic
        if freeze_acoustic:
            self.acoustic.requires_grad_(False).eval()
        self.pool = AttentiveStatsPool(acoustic.cfg.latent_dim, spk_dim)

    def forward(self, fn, *args):
        """Run ``fn(self, *args)`` inside the (DDP-wrapped) forward, so gradient sync hooks fire."""
        return fn(self, *args)

    def train(self, mode: bool = True) -> "Stage2Model":
        super().train(mode)
        if self.semantic is not None:
            self.semantic.eval()  # frozen: no dropout, ever
        if self.freeze_acoustic:
            self.acoustic.eval()
        return self

    def semantic_tokens(self, batch) -> torch.Tensor:
        """``[B, S]`` tokens of ``batch``: its precomputed ``sem``, else the frozen tokenizer's."""
        if getattr(batch, "sem", None) is not None:
            return batch.sem
        if not self.decoder.cfg.use_semantic:  # single-stream baseline: the decoder zeroes e_s anyway
            return torch.zeros(batch.wav.shape[0], 1, dtype=torch.long, device=batch.wav.device)
        if self.semantic is None:
            raise ConfigError("this stage-2 model has no semantic tokenizer and the batch carries no tokens")
        with torch.no_grad():
            return self.semantic.encode(batch.wav, batch.wav_lens)[0]


def flow_loss(v: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over ``mask [B, T]`` frames of ``[B, n_mels, T]`` tensors."""
    m = mask[:, None].to(v.dtype)
    return ((v - target) ** 2 * m).sum() / (m.sum() * v.shape[1]).clamp_min(1.0)


class AcousticTask:
    def __init__(self, cfg: AcousticStageConfig, speaker_emb: dict[str, torch.Tensor] | None = None) -> None:
        self.cfg = cfg
        self.spk = speaker_emb or {}
        if cfg.speaker_loss and cfg.spk_weight > 0 and not self.spk:
            raise ConfigError("speaker_loss needs reference speaker embeddings (speaker cache)")

    def build_model(self) -> nn.Module:
        c = self.cfg
        sem: SemanticTokenizer | None = None
        if c.train.data.pack:  # tokens precomputed in the pack: the frozen tokenizer is not run
            from .pack import read_pack_meta

            meta = read_pack_meta(c.train.data.pack).get("semantic")
            if not meta:
                raise ConfigError(f"{c.train.data.pack}: pack has no semantic tokens (dsatok corpus pack --semantic DIR)")
            where, size, rate = c.train.data.pack, int(meta["codebook_size"]), float(meta["frame_rate"])
        else:
            if not c.semantic:
                raise ConfigError("stage 2 needs the frozen semantic tokenizer: --semantic DIR (dsatok train semantic)")
            sem = SemanticTokenizer.from_pretrained(c.semantic)
            if sem.encoder.whisper is not None:  # frozen and deterministic: encode each utterance once
                sem.encoder.whisper.memo_limit = int(c.feature_memo_gb * 2**30)
            where, size, rate = c.semantic, sem.codebook_size, sem.frame_rate
        if size != c.decoder.sem_codebook_size or rate != c.decoder.sem_frame_rate:
            raise ConfigError(f"{where}: semantic codebook {size} @ {rate} Hz does not match "
                              f"decoder.sem_codebook_size {c.decoder.sem_codebook_size} @ {c.decoder.sem_frame_rate} Hz")
        if c.acoustic.latent_dim != c.decoder.ac_latent_dim:
            raise ConfigError("acoustic.latent_dim must equal decoder.ac_latent_dim")
        if list(c.decoder.ac_strides)[::-1] != list(c.acoustic.strides):
            raise ConfigError(f"decoder.ac_strides {list(c.decoder.ac_strides)} must mirror acoustic.strides "
                              f"{list(c.acoustic.strides)}")
        model = Stage2Model(sem, AcousticTokenizer(c.acoustic), FlowDecoder(c.decoder), c.spk_dim,
                            freeze_acoustic=c.freeze_acoustic)
        if c.init_from:
            self._init_from(model, Path(c.init_from))
        return model

    @staticmethod
    def _init_from(model: Stage2Model, d: Path) -> None:
        """Load an export's acoustic, decoder and speaker-pool weights (strict: same architecture).

        The speaker pool is a training-only head that tokenizer exports (the bundled model among
        them) do not ship; when ``speaker_pool.safetensors`` is absent the pool starts fresh.
        """
        from safetensors.torch import load_file

        for part, mod in (("acoustic/model.safetensors", model.acoustic), ("decoder/model.safetensors", model.decoder),
                          ("speaker_pool.safetensors", model.pool)):
            f = d / part
            if not f.is_file():
                if mod is model.pool:
                    continue
                raise ConfigError(f"init_from {d}: missing {part}")
            try:
                mod.load_state_dict(load_file(str(f)), strict=True)
            except RuntimeError as e:
                raise ConfigError(f"{f}: does not fit this config ({str(e).splitlines()[0]})") from None

    def _forward(self, model: nn.Module, batch, train: bool) -> tuple[torch.Tensor, dict[str, float]]:
        return model(self._loss, batch, train)

    def _loss(self, m: Stage2Model, batch, train: bool) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        wav, lens = batch.wav, batch.wav_lens
        mel, mel_lens = m.acoustic.mel(wav, lens)
        b, _, t = mel.shape
        sem_idx = m.semantic_tokens(batch)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not m.freeze_acoustic):
            ac_q, _, ac_lens, ac_h = m.acoustic.quantize_mel_latent(mel, mel_lens)
        valid = lengths_to_mask(mel_lens, t)
        dev = mel.device
        recomb = train and c.recombination and bool(torch.rand(()) < c.recomb_prob)
        visible, loss_mask = None, valid
        if recomb:
            lo, hi = c.tau_range
            tau = ((lo + (hi - lo) * torch.rand(b, device=dev)) * mel_lens).long()  # [B] mel frames
            stride = m.acoustic.cfg.stride
            visible = (torch.arange(ac_q.shape[1], device=dev)[None] * stride + stride) <= tau[:, None]
            loss_mask = valid & (torch.arange(t, device=dev)[None] >= tau[:, None])
        drop_sem = drop_ac = None
        if train:
            both = torch.rand(b, device=dev) < c.p_uncond
            drop_sem = both | (torch.rand(b, device=dev) < c.p_drop_sem)
            drop_ac = both | (torch.rand(b, device=dev) < c.p_drop_ac)
        ctx = m.decoder.prepare(sem_idx, mel_lens, t, ac_q, ac_lens, visible=visible, drop_sem=drop_sem,
                                drop_ac=drop_ac)
        x1 = m.decoder.normalize(mel)
        x0 = torch.randn_like(x1)
        tt = torch.rand(b, device=dev)
        xt = (1 - tt)[:, None, None] * x0 + tt[:, None, None] * x1
        v = m.decoder.velocity(xt, tt, ctx)
        fm = flow_loss(v, x1 - x0, loss_mask)
        loss = fm
        logs = {"flow": float(fm.detach()), "recomb": float(recomb)}
        if c.bound_weight > 0 and not m.freeze_acoustic:  # frozen: the penalty is a constant
            bound = m.acoustic.fsq.bound_penalty(ac_h)
            loss = loss + c.bound_weight * bound
            logs["bound"] = float(bound.detach())
        if c.speaker_loss and c.spk_weight > 0:
            ref = torch.stack([self.spk[i] for i in batch.ids]).to(dev)
            amask = lengths_to_mask(ac_lens, ac_q.shape[1])
            if visible is not None:
                amask = amask & visible
            pooled = m.pool(ac_q, amask)
            spk = (1 - F.cosine_similarity(pooled, ref, dim=-1)).mean()
            loss = loss + c.spk_weight * spk
            logs["spk"] = float(spk.detach())
        return loss, logs

    def training_step(self, model, batch, step):
        return self._forward(model, batch, True)

    def eval_step(self, model, batch) -> dict[str, float]:
        loss, logs = self._forward(model, batch, False)
        return {"loss": float(logs["flow"]), **({"spk": logs["spk"]} if "spk" in logs else {})}

    def log_media(self, model, batch, writer, step) -> None:
        from ..models.flow_decoder import sample
        from .media import log_mel

        m = model.module if hasattr(model, "module") else model
        wav, lens = batch.wav[:1], batch.wav_lens[:1]
        mel, mel_lens = m.acoustic.mel(wav, lens)
        sem_idx = m.semantic_tokens(batch)[:1]
        ac_q, _, ac_lens = m.acoustic.quantize_mel(mel, mel_lens)
        ctx = m.decoder.prepare(sem_idx, mel_lens, mel.shape[-1], ac_q, ac_lens)
        gen = sample(m.decoder, ctx, mel.shape[-1], steps=8, generator=torch.Generator().manual_seed(0))
        log_mel(writer, "stage2/mel_true", mel[0], step)
        log_mel(writer, "stage2/mel_reconstructed", gen[0], step)

    def export(self, model, out_dir: Path) -> None:
        """``out_dir/{semantic,acoustic,decoder}`` (+ ``speaker_pool.safetensors``, training only)."""
        from safetensors.torch import save_file

        m = model.module if hasattr(model, "module") else model
        out = Path(out_dir)
        if m.semantic is not None:
            m.semantic.save_pretrained(out / "semantic")
        elif self.cfg.semantic and (Path(self.cfg.semantic) / "config.json").is_file():
            shutil.copytree(self.cfg.semantic, out / "semantic", dirs_exist_ok=True)
        # else (pack-trained, no --semantic): the export lacks semantic/; add the pack's tokenizer
        m.acoustic.save_pretrained(out / "acoustic")
        m.decoder.save_pretrained(out / "decoder")
        save_file({k: v.contiguous() for k, v in m.pool.state_dict().items()}, str(out / "speaker_pool.safetensors"))


def run(corpus: str, preset: str = "tiny", config: str | None = None, overrides: list[str] | None = None,
        semantic: str = "", progress: bool = True) -> dict[str, Any]:
    from .data import corpus_batches
    from .engine import Trainer
    from .speaker_cache import speaker_cache

    ov: list[str] = []
    if semantic:
        ov.append(f"semantic={semantic}")
    cfg = load_stage_config(AcousticStageConfig, ACOUSTIC_PRESETS, preset, corpus, config, ov + list(overrides or []))
    spk = None
    d = cfg.train.data
    if d.pack:
        from .pack import pack_batches

        batches, dev, train_split = pack_batches(d, seed=cfg.train.seed)
        if cfg.speaker_loss and cfg.spk_weight > 0:
            if train_split.meta.get("speaker_encoder") != cfg.speaker_encoder:
                raise ConfigError(f"{d.pack}: pack speaker embeddings are from "
                                  f"{train_split.meta.get('speaker_encoder')!r}, speaker_encoder is {cfg.speaker_encoder!r}")
            spk = {**train_split.speaker_embeddings(), **dev.split.speaker_embeddings()}
        return Trainer(AcousticTask(cfg, spk), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
    if cfg.speaker_loss and cfg.spk_weight > 0:
        spk = speaker_cache(d.corpus, (d.train_split, d.dev_split), cfg.speaker_encoder, progress=progress)
    batches, dev = corpus_batches(cfg.train.data, seed=cfg.train.seed)
    return Trainer(AcousticTask(cfg, spk), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
