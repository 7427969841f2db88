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
from ..data.batches import AudioBatch
from ..config import ConfigError
from ..models.acoustic import AcousticConfig, AcousticTokenizer
from ..models.flow_decoder import DecoderConfig, FlowDecoder, with_fresh_voice_attention
from ..models.prior import load_render_head
from ..models.semantic import SemanticTokenizer
from ..nn.pooling import AttentiveStatsPool
from ..nn.render import voice_stats
from ..models.semantic import CHAR_VOCAB, text_to_ids
from .config import TrainConfig, load_stage_config
from .semantic import CTCHead

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
    init_parts: tuple[str, ...] = ("acoustic", "decoder", "speaker_pool")  # what init_from loads
    # (e.g. ["acoustic", "speaker_pool"]: a new decoder over an exported model's acoustic tokens)
    prior_weight: float = 1.0  # |mu - mel| of the decoder's semantic prior (decoder.prior=true)
    #: weight of the flow-matching loss; 0 trains the prior alone (the DiT gets no gradient and its
    #: forward is skipped: a prior-only fine-tune of a decoder that decodes through mu)
    flow_weight: float = 1.0
    prior_ctc_weight: float = 0.0  # auxiliary character CTC on the prior's token-rate states
    #: L1 of a renderer prior's predicted voice statistics against the target's (decoder.prior_kind=renderer)
    prior_voice_weight: float = 1.0
    #: a stage-1 checkpoint (RUN/checkpoints/step-N) whose render head starts a renderer prior
    prior_init: str = ""
    t_schedule: str = "uniform"  # flow-time sampling: uniform | cosine | logit_normal
    #: training crops: each utterance longer than this is cut to a random window of this many seconds
    #: (starting on a semantic-token boundary) before the mel, the tokens and the recombination split;
    #: cropped items skip the prior's CTC (their transcript covers the whole utterance). 0: off
    crop_seconds: float = 0.0

    def __post_init__(self) -> None:
        for k in ("recomb_prob", "p_uncond", "p_drop_sem", "p_drop_ac"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ConfigError(f"{k} must be a probability in [0, 1], got {getattr(self, k)}")
        lo, hi = self.tau_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"tau_range must satisfy 0 <= low <= high <= 1, got {list(self.tau_range)}")
        for k in ("spk_weight", "bound_weight", "prior_weight", "prior_ctc_weight", "prior_voice_weight", "flow_weight"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        if not (self.crop_seconds == 0 or 0.2 <= self.crop_seconds <= 600):
            raise ConfigError(f"crop_seconds must be 0 (off) or in [0.2, 600], got {self.crop_seconds}")
        if self.flow_weight == 0 and not self.decoder.prior:
            raise ConfigError("flow_weight=0 trains the decoder's prior alone: it needs decoder.prior=true")
        if self.t_schedule not in T_SCHEDULES:
            raise ConfigError(f"t_schedule must be one of {', '.join(T_SCHEDULES)}, got '{self.t_schedule}'")
        bad = set(self.init_parts) - set(INIT_PARTS)
        if bad:
            raise ConfigError(f"init_parts: unknown part(s) {sorted(bad)}; choose from {', '.join(INIT_PARTS)}")
        if {"decoder", "decoder_dit"} <= set(self.init_parts):
            raise ConfigError("init_parts: 'decoder' and 'decoder_dit' exclude each other")


T_SCHEDULES = ("uniform", "cosine", "logit_normal")
#: what ``init_from`` can load: "decoder" all of it (strict), "decoder_dit" the flow decoder's DiT, time
#: embedding and acoustic-context decoder only (a new semantic pathway over a trained DiT)
INIT_PARTS = ("acoustic", "decoder", "decoder_dit", "speaker_pool")


def sample_flow_time(n: int, schedule: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[n]`` flow times in (0, 1): uniform, cosine (``1 - cos(u π/2)``: more weight near the noise
    end) or logit-normal (SD3: ``sigmoid(N(0, 1))``, more weight in the middle)."""
    u = torch.rand(n, device=device)
    if schedule == "cosine":
        return 1 - torch.cos(u * torch.pi / 2)
    if schedule == "logit_normal":
        return torch.sigmoid(torch.randn(n, device=device))
    return u


_PRIOR_PRESET: dict = {
    "decoder": {"prior": True, "start": "prior", "start_sigma": 1.0, "adapter_zero_init": False},
    "prior_ctc_weight": 0.1, "t_schedule": "logit_normal",
    "train": {"max_steps": 20_000, "optim": {"lr": 5e-4, "warmup_steps": 300}, "ckpt_every": 250,
              "eval_every": 250, "eval_batches": 6, "ema_decay": 0.999,
              "data": {"max_frames": 4000, "num_workers": 1}}}

ACOUSTIC_PRESETS: dict[str, dict] = {
    # the decoder with a semantic prior (issue 29); decoder.sem_levels must be the semantic tokenizer's
    "prior": _PRIOR_PRESET,
    # the prior as stage 1's render head (same width and depth as render_dim / render_blocks = 128 / 4),
    # meant to start from it with prior_init=RUN/checkpoints/step-N
    "prior_render": {**_PRIOR_PRESET,
                     "decoder": {**_PRIOR_PRESET["decoder"], "prior_kind": "renderer", "prior_dim": 128,
                                 "prior_mel_blocks": 4}},
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


def crop_batch(batch: AudioBatch, max_samples: int, align: int, generator: torch.Generator | None = None
               ) -> tuple[AudioBatch, torch.Tensor]:
    """Cut every item longer than ``max_samples`` to a random window of ``max_samples // align * align``
    samples starting on a multiple of ``align`` (one semantic token), with its precomputed semantic
    tokens (``batch.sem``) cut to match. Returns the batch and ``cropped [B]`` (bool)."""
    win = max(align, max_samples // align * align)
    lens = batch.wav_lens.clone()
    cropped = lens > win
    if not bool(cropped.any()):
        return batch, cropped
    starts = torch.zeros_like(lens)
    for i in cropped.nonzero().flatten().tolist():
        slots = int(lens[i] - win) // align + 1
        starts[i] = align * int(torch.randint(0, slots, (1,), generator=generator))
        lens[i] = win
    n = int(lens.max())
    wav = torch.zeros(batch.wav.shape[0], n, dtype=batch.wav.dtype, device=batch.wav.device)
    for i in range(wav.shape[0]):
        wav[i, : int(lens[i])] = batch.wav[i, int(starts[i]) : int(starts[i]) + int(lens[i])]
    sem = batch.sem
    if sem is not None:
        t = -(-n // align)
        sem = torch.zeros(sem.shape[0], t, dtype=sem.dtype, device=sem.device)
        for i in range(sem.shape[0]):
            a = int(starts[i]) // align
            piece = batch.sem[i, a : a + -(-int(lens[i]) // align)]
            sem[i, : piece.shape[0]] = piece
    return dataclasses.replace(batch, wav=wav, wav_lens=lens, sem=sem), cropped


def _load_dit(decoder: FlowDecoder, f: Path) -> None:
    """Load every tensor of an exported decoder except its semantic pathway (``sem_embed``,
    ``prior``, ``adapter``); the rest must match this decoder's names and shapes."""
    from safetensors.torch import load_file

    if not f.is_file():
        raise ConfigError(f"init_from: missing {f}")
    own = decoder.state_dict()
    keep = {k: v for k, v in load_file(str(f)).items() if not k.startswith(("sem_embed.", "prior.", "adapter."))}
    bad = sorted(k for k, v in keep.items() if k not in own or own[k].shape != v.shape)
    missing = sorted(k for k in own if k not in keep and not k.startswith(("sem_embed.", "prior.", "adapter.")))
    if bad or missing:
        raise ConfigError(f"{f}: the DiT does not fit this decoder config "
                          f"({(bad or missing)[0]}{' and more' if len(bad) + len(missing) > 1 else ''})")
    decoder.load_state_dict(keep, strict=False)


class Stage2Model(nn.Module):
    """Frozen semantic tokenizer + trainable acoustic tokenizer, decoder and speaker pooling."""

    def __init__(self, semantic: SemanticTokenizer | None, acoustic: AcousticTokenizer, decoder: FlowDecoder,
                 spk_dim: int, *, freeze_acoustic: bool = False, prior_ctc: bool = False) -> None:
        super().__init__()
        # None when the tokens come precomputed with the batches (training packs)
        self.semantic = semantic.requires_grad_(False).eval() if semantic is not None else None
        self.acoustic, self.decoder = acoustic, decoder
        self.freeze_acoustic = freeze_acoustic
        if freeze_acoustic:
            self.acoustic.requires_grad_(False).eval()
        self.pool = AttentiveStatsPool(acoustic.cfg.latent_dim, spk_dim)
        # training-only: character CTC on the decoder prior's token-rate states (not exported)
        self.prior_ctc = CTCHead(decoder.cfg.prior_dim, len(CHAR_VOCAB)) if prior_ctc else None

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


@torch.no_grad()
def stream_sensitivity(m: Stage2Model, batch, t: float = 0.5) -> dict[str, float]:
    """How much the decoder's output depends on each token stream (a dev metric; no path may stay dead).

    The velocity at flow time ``t`` from one fixed noisy input, with the batch's own tokens against
    the same with only the semantic (``sens_sem``) or only the acoustic (``sens_ac``) tokens taken
    from another item of the batch (rolled by one): mean ``|v - v'|`` over the valid frames relative
    to mean ``|v|``. With a prior, the same for ``mu`` (``sens_sem_mu``). Zero for a batch of one.
    """
    if batch.wav.shape[0] < 2:
        return {}
    g = torch.Generator().manual_seed(0)
    mel, mel_lens = m.acoustic.mel(batch.wav, batch.wav_lens)
    b, n, t_mel = mel.shape
    sem = m.semantic_tokens(batch)
    ac_q, _, ac_lens = m.acoustic.quantize_mel(mel, mel_lens)
    noise = torch.randn(b, n, t_mel, generator=g).to(mel.device)
    tt = torch.full((b,), t, device=mel.device)
    x1 = m.decoder.normalize(mel)
    mask = lengths_to_mask(mel_lens, t_mel)[:, None].to(mel.dtype)

    def run(s: torch.Tensor, a: torch.Tensor, al: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        ctx = m.decoder.prepare(s, mel_lens, t_mel, a, al)
        x0 = m.decoder.start_noise(ctx, noise)
        return m.decoder.velocity((1 - t) * x0 + t * x1, tt, ctx), ctx.mu

    def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
        return float(((a - ref).abs() * mask).sum() / (ref.abs() * mask).sum().clamp_min(1e-8))

    v, mu = run(sem, ac_q, ac_lens)
    v_s, mu_s = run(sem.roll(1, 0), ac_q, ac_lens)
    v_a, _ = run(sem, ac_q.roll(1, 0), ac_lens.roll(1, 0))
    out = {"sens_sem": rel(v_s, v), "sens_ac": rel(v_a, v)}
    if mu is not None and mu_s is not None:
        out["sens_sem_mu"] = rel(mu_s, mu)
    return out


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
        if c.decoder.prior and c.train.data.pack and not c.decoder.sem_levels:
            raise ConfigError("decoder.prior needs decoder.sem_levels (the semantic tokenizer's fsq_levels)")
        if c.decoder.prior and sem is not None and tuple(c.decoder.sem_levels) != tuple(sem.cfg.fsq_levels):
            if c.decoder.sem_levels:
                raise ConfigError(f"decoder.sem_levels {list(c.decoder.sem_levels)} differ from the semantic "
                                  f"tokenizer's fsq_levels {list(sem.cfg.fsq_levels)}")
            c = dataclasses.replace(c, decoder=dataclasses.replace(c.decoder, sem_levels=tuple(sem.cfg.fsq_levels)))
            self.cfg = c
        model = Stage2Model(sem, AcousticTokenizer(c.acoustic), FlowDecoder(c.decoder), c.spk_dim,
                            freeze_acoustic=c.freeze_acoustic,
                            prior_ctc=c.decoder.prior and c.prior_ctc_weight > 0)
        if c.init_from:
            self._init_from(model, Path(c.init_from), c.init_parts)
        if c.prior_init:
            if not (c.decoder.prior and c.decoder.prior_kind == "renderer"):
                raise ConfigError("prior_init needs decoder.prior=true and decoder.prior_kind='renderer'")
            try:
                load_render_head(model.decoder.prior, c.prior_init)
            except ValueError as e:
                raise ConfigError(f"prior_init: {e}") from None
        return model

    @staticmethod
    def _init_from(model: Stage2Model, d: Path, parts: tuple[str, ...] = ("acoustic", "decoder", "speaker_pool")
                   ) -> None:
        """Load an export's acoustic, decoder and speaker-pool weights (strict: same architecture).

        The speaker pool is a training-only head that tokenizer exports (the bundled model among
        them) do not ship; when ``speaker_pool.safetensors`` is absent the pool starts fresh.
        """
        from safetensors.torch import load_file

        for part, mod in (("acoustic/model.safetensors", model.acoustic), ("decoder/model.safetensors", model.decoder),
                          ("speaker_pool.safetensors", model.pool)):
            name = part.split("/")[0].removesuffix(".safetensors")
            if mod is model.decoder and "decoder_dit" in parts:
                _load_dit(model.decoder, d / part)
                continue
            if name not in parts:
                continue
            f = d / part
            if not f.is_file():
                if mod is model.pool:
                    continue
                raise ConfigError(f"init_from {d}: missing {part}")
            sd = load_file(str(f))
            if mod is model.decoder:  # exported before its prior had voice attention: those layers start fresh
                sd = with_fresh_voice_attention(model.decoder, sd)
            try:
                mod.load_state_dict(sd, strict=True)
            except RuntimeError as e:
                raise ConfigError(f"{f}: does not fit this config ({str(e).splitlines()[0]})") from None

    def _forward(self, model: nn.Module, batch, train: bool) -> tuple[torch.Tensor, dict[str, float]]:
        return model(self._loss, batch, train)

    def _loss(self, m: Stage2Model, batch, train: bool) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        cropped = None
        if train and c.crop_seconds > 0:
            align = round(m.acoustic.cfg.mel.sample_rate / m.decoder.cfg.sem_frame_rate)
            batch, cropped = crop_batch(batch, int(c.crop_seconds * m.acoustic.cfg.mel.sample_rate), align)
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
        logs = {"recomb": float(recomb)}
        loss = x1.new_zeros(())
        if c.flow_weight > 0 or not train:
            x0 = m.decoder.start_noise(ctx, torch.randn_like(x1), detach=True)
            tt = sample_flow_time(b, c.t_schedule, dev)
            xt = (1 - tt)[:, None, None] * x0 + tt[:, None, None] * x1
            v = m.decoder.velocity(xt, tt, ctx)
            fm = flow_loss(v, x1 - x0, loss_mask)
            loss = c.flow_weight * fm
            logs["flow"] = float(fm.detach())
        if ctx.mu is not None:
            mk = loss_mask[:, None].to(x1.dtype)
            prior = ((ctx.mu - x1).abs() * mk).sum() / (mk.sum() * x1.shape[1]).clamp_min(1.0)
            loss = loss + c.prior_weight * prior
            logs["prior"] = float(prior.detach())
            if ctx.voice is not None and c.prior_voice_weight > 0:
                voice = (ctx.voice - voice_stats(x1, valid)).abs().mean()
                loss = loss + c.prior_voice_weight * voice
                logs["prior_voice"] = float(voice.detach())
            keep = None if cropped is None else (~cropped).nonzero().flatten()
            if m.prior_ctc is not None and c.prior_ctc_weight > 0 and (keep is None or keep.numel() > 0):
                states, ctc_lens, texts = ctx.prior_states, mel_lens, batch.texts
                if keep is not None and keep.numel() < len(texts):
                    states, ctc_lens = states[keep], mel_lens[keep]
                    texts = [texts[i] for i in keep.tolist()]
                ctc = self._prior_ctc(m, states, ctc_lens, texts)
                loss = loss + c.prior_ctc_weight * ctc
                logs["prior_ctc"] = float(ctc.detach())
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

    @staticmethod
    def _prior_ctc(m: Stage2Model, states: torch.Tensor, mel_lens: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Character CTC of the prior's token-rate ``states [B, T_s, D]`` against the transcripts."""
        factor = max(1, round(m.decoder.cfg.mel.sample_rate / m.decoder.cfg.mel.hop_length / m.decoder.cfg.sem_frame_rate))
        tok_lens = ((mel_lens + factor - 1) // factor).clamp(max=states.shape[1])
        lp = m.prior_ctc(states)
        out_lens = tok_lens * m.prior_ctc.up
        ids = [text_to_ids(t) for t in texts]
        tgt = torch.tensor([i for x in ids for i in x], dtype=torch.long, device=lp.device)
        tgt_lens = torch.tensor([len(x) for x in ids], dtype=torch.long, device=lp.device)
        return F.ctc_loss(lp.transpose(0, 1).float(), tgt, out_lens, tgt_lens, blank=0, reduction="mean",
                          zero_infinity=True)

    def training_step(self, model, batch, step):
        return self._forward(model, batch, True)

    def eval_step(self, model, batch) -> dict[str, float]:
        loss, logs = self._forward(model, batch, False)
        m = model.module if hasattr(model, "module") else model
        out = {"loss": float(logs["flow"]), **{k: logs[k] for k in ("spk", "prior", "prior_ctc", "prior_voice") if k in logs}}
        return {**out, **stream_sensitivity(m, batch)}

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
