"""Train the DashengTokenizer's acoustic injection and decoder (the semantic encoder stays frozen).

Per batch: the frozen semantic encoder and the acoustic projection run on whole utterances
(the Whisper-based DSA back end remembers each utterance's features), then a random window of
``segment_frames`` latent frames and the matching waveform are cut out for the decoder. Losses:
mel L1 of the decoded window, HiFi-GAN/Vocos adversarial and feature-matching losses after
``gan_start`` steps (a decoder with ``phase="griffinlim"`` is trained on its magnitudes instead:
:func:`.spectral.magnitude_losses`, no waveform and no discriminator), and
``latent_weight · ||unified − semantic||²`` which keeps the unified latent close to the semantic
one (the acoustic injection stays a small correction).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, lengths_to_mask
from ..config import ConfigError, MelConfig
from ..dasheng_tokenizer import DASHENG_PRESETS, DashengConfig, DashengTokenizer
from .config import TrainConfig, load_stage_config
from .gan import Discriminators, GANModel, gan_losses
from .spectral import SpectralLossConfig, magnitude_losses, spectral_losses

__all__ = ["DashengStageConfig", "DashengTask", "DASHENG_STAGE_PRESETS", "injection_patches", "pca_injection_init", "run"]

SAMPLES_PER_FRAME = 640


@dataclasses.dataclass(frozen=True)
class DashengStageConfig:
    model: DashengConfig = DashengConfig()
    train: TrainConfig = TrainConfig()
    semantic: str = ""  # backend 'dsa': exported stage-1 tokenizer directory
    dasheng_path: str = ""  # backend 'vit': local directory of original Dasheng weights (else random, frozen)
    segment_frames: int = 32  # 1.28 s windows for the decoder
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    adv_weight: float = 1.0
    latent_weight: float = 1.0
    gan_start: int = 0
    spectral: SpectralLossConfig = SpectralLossConfig()  # supervised spectral losses (train/spectral.py)
    mpd_channels: int = 16
    mrd_channels: int = 32
    feature_memo_gb: float = 4.0
    # initial acoustic injection: "random" (PyTorch's default) or "pca": W = the top principal
    # directions of the training corpus's mel patches, with a bias that keeps LayerNorm's output
    # linear in the patch (see pca_injection_init); measured in docs/experiments/dasheng.md
    inject_init: str = "random"
    inject_init_utts: int = 200  # training utterances the PCA is computed on

    def __post_init__(self) -> None:
        if self.inject_init not in ("random", "pca"):
            raise ConfigError(f"inject_init must be random or pca, got '{self.inject_init}'")
        if self.inject_init_utts < 1:
            raise ConfigError(f"inject_init_utts must be >= 1, got {self.inject_init_utts}")


_TRAIN = {"optim": {"lr": 5e-4, "warmup_steps": 200, "betas": [0.8, 0.99], "weight_decay": 0.0, "grad_clip": 10.0},
          "best_metric": "mel_l1", "ckpt_every": 250, "eval_every": 250, "eval_batches": 4,
          "data": {"max_frames": 3000, "num_workers": 1}}
DASHENG_STAGE_PRESETS: dict[str, dict] = {
    # offline: our frozen stage-1 semantic encoder (Whisper back end, 256-d) as the semantic part
    "dsa": {"model": {"backend": "dsa", "dim": 256,
                      "decoder": {**DASHENG_PRESETS["tiny"]["decoder"], "in_dim": 256}},
            "train": {"max_steps": 20_000, **_TRAIN}},
    "tiny": {"model": DASHENG_PRESETS["tiny"], "train": {"max_steps": 20_000, **_TRAIN}},
    "base": {"model": DASHENG_PRESETS["base"], "train": {"max_steps": 1_000_000, **_TRAIN}},
}



class DashengTask:
    """:class:`~dsatok.train.engine.Task` for the DashengTokenizer."""

    def __init__(self, cfg: DashengStageConfig) -> None:
        self.cfg = cfg
        self.fe = MelFrontend(MelConfig())  # the shared 100-bin mel for the reconstruction loss

    def build_model(self) -> nn.Module:
        c = self.cfg
        sem = None
        if c.model.backend == "dsa":
            if not c.semantic:
                raise ConfigError("dasheng backend 'dsa' needs the frozen stage-1 tokenizer: --semantic DIR")
            from ..models.semantic import SemanticTokenizer

            sem = SemanticTokenizer.from_pretrained(c.semantic)
            if sem.encoder.out_dim != c.model.dim:
                raise ConfigError(f"{c.semantic}: semantic width {sem.encoder.out_dim} != dasheng dim {c.model.dim}")
            if sem.frame_rate != 25:
                raise ConfigError(f"{c.semantic}: semantic frame rate {sem.frame_rate} Hz, Dasheng needs 25 Hz")
            if sem.encoder.whisper is not None:
                sem.encoder.whisper.memo_limit = int(c.feature_memo_gb * 2**30)
        tok = DashengTokenizer(c.model, sem)
        if c.model.backend == "vit" and c.dasheng_path:
            from ..models.dasheng import load_dasheng_weights

            load_dasheng_weights(tok.semantic, c.dasheng_path)
        if c.inject_init == "pca" and c.model.inject_acoustic:
            waves = _corpus_waves(c.train.data.corpus, c.inject_init_utts)
            pca_injection_init(tok, torch.cat([injection_patches(tok, w) for w in waves]))
        return GANModel(tok, Discriminators(c.mpd_channels, c.mrd_channels))

    def _window(self, z, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random ``segment_frames`` window of latents ``[B, S, D]`` (and their semantic part) with
        the matching waveform ``[B, S * 640]``; frames past an item's end are zero."""
        seg = self.cfg.segment_frames
        b, t, d = z.unified.shape
        uni = z.unified.new_zeros(b, seg, d)
        sem = z.unified.new_zeros(b, seg, d)
        real = wav.new_zeros(b, seg * SAMPLES_PER_FRAME)
        for i, n in enumerate(z.lengths.tolist()):
            s = int(torch.randint(0, max(1, n - seg) + 1, (1,)).item())
            k = min(seg, n - s)
            uni[i, :k], sem[i, :k] = z.unified[i, s : s + k], z.semantic[i, s : s + k]
            piece = wav[i, s * SAMPLES_PER_FRAME : (s + k) * SAMPLES_PER_FRAME]
            real[i, : piece.shape[0]] = piece
        return uni, sem, real

    def training_step(self, model, batch, step):
        return model(self._loss, batch, step)

    def _loss(self, m: GANModel, batch, step: int):
        z = m.gen.encode(batch.wav, batch.wav_lens)
        uni, sem, real = self._window(z, batch.wav)
        mask = lengths_to_mask(z.lengths, z.unified.shape[1])[..., None].float()
        latent = ((z.unified - z.semantic).pow(2) * mask).sum() / (mask.sum() * z.unified.shape[-1]).clamp(min=1)
        if m.gen.decoder.trains_on_magnitudes:  # no waveform, no GAN phase
            mag, mp = magnitude_losses(m.gen.decoder, uni.transpose(1, 2), real)
            loss = self.cfg.mel_weight * mag + self.cfg.latent_weight * latent
            return loss, {"latent": float(latent.detach()), **{k: float(v.detach()) for k, v in mp.items()}}
        fake, spectral, parts = spectral_losses(m.gen.decoder, uni.transpose(1, 2), real, self.cfg.spectral)
        mel_real, _ = self.fe(real)
        mel_fake, _ = self.fe.compute(fake)
        mel_l1 = F.l1_loss(mel_fake, mel_real)
        loss = self.cfg.mel_weight * mel_l1 + self.cfg.latent_weight * latent + spectral
        logs = {"mel_l1": float(mel_l1.detach()), "latent": float(latent.detach()),
                **{k: float(v.detach()) for k, v in parts.items()}}
        if step >= self.cfg.gan_start:
            g = gan_losses(m.disc, real, fake)
            loss = loss + g["d_loss"] + self.cfg.adv_weight * g["g_adv"] + self.cfg.fm_weight * g["fm"]
            logs.update({k: float(v.detach()) for k, v in g.items()})
        return loss, logs

    @torch.no_grad()
    def eval_step(self, model, batch) -> dict[str, float]:
        m = model.module if hasattr(model, "module") else model
        z = m.gen.encode(batch.wav, batch.wav_lens)
        out: dict[str, float] = {}
        for name, lat in (("", z.unified), ("sem_", z.semantic)):
            fake = m.gen.decode(lat)
            n = z.lengths * SAMPLES_PER_FRAME
            real = batch.wav[:, : fake.shape[-1]]
            mel_r, lens = self.fe(real, n)
            mel_f, _ = self.fe(fake, n)
            mk = lengths_to_mask(lens, mel_r.shape[-1])[:, None].float()
            out[f"{name}mel_l1"] = float(((mel_f - mel_r).abs() * mk).sum() / (mk.sum() * mel_r.shape[1]))
        return out

    def log_media(self, model, batch, writer, step) -> None:
        from .media import log_audio

        m = model.module if hasattr(model, "module") else model
        z = m.gen.encode(batch.wav[:1], batch.wav_lens[:1])
        log_audio(writer, "dasheng/audio", m.gen.decode(z.unified)[0], step, 16000)

    def export(self, model, out_dir: Path) -> None:
        m = model.module if hasattr(model, "module") else model
        m.gen.save_pretrained(out_dir)


def _corpus_waves(corpus: str, n: int) -> Iterator[torch.Tensor]:
    """Waveforms ``[N]`` of ``n`` training utterances spread over a corpus's train split."""
    from ..data.batches import load_cut_audio
    from ..data.manifests import load_cuts, spread

    if not corpus:
        raise ConfigError("inject_init=pca needs a corpus (train.data.corpus)")
    for cut in spread(list(load_cuts(corpus, "train")), n):
        yield torch.from_numpy(load_cut_audio(cut))


@torch.no_grad()
def injection_patches(tok: DashengTokenizer, wav: torch.Tensor) -> torch.Tensor:
    """The acoustic injection's inputs for a waveform ``[N]``: log-mel patches ``[T, n_mels * 4]``,
    flattened in the projection's ``(n_mels, 4)`` kernel layout."""
    n_mels, width = tok.acoustic_proj.kernel_size
    mel, _ = tok.acoustic_mel(wav.reshape(1, -1).float())
    t = mel.shape[-1] // width
    return mel[0, :, : t * width].reshape(n_mels, t, width).permute(1, 0, 2).reshape(t, -1)


@torch.no_grad()
def pca_injection_init(tok: DashengTokenizer, patches: torch.Tensor, margin: float = 3.0, scale: float = 1.0) -> None:
    """Start the acoustic injection ``LN(W · patch + b)`` on the patches' top principal components.

    A randomly started projection keeps ``dim`` random directions of the ``n_mels × 4`` patch, and
    training does not turn it towards the ones that carry the spectrum: a ridge regression back
    to the patch misses by 0.77 (random start) and 0.66 (the bundled, trained injection) per
    log-mel bin, against 0.13 for the top 256 principal components
    (docs/experiments/dasheng_bottleneck.py). Here the rows of ``W`` are the top ``dim`` principal
    directions of ``patches`` ``[N, n_mels * 4]`` (:func:`injection_patches`), and
    ``b = −W·mean + c·s`` with ``s`` a ±1 pattern and ``c = margin ×`` the top coefficient's std:
    LayerNorm's statistics are then set by the constant ``c·s`` and its output stays nearly linear
    in the patch. The LayerNorm's affine maps it back to ``coefficient / std(top) · scale``.
    """
    if not tok.cfg.inject_acoustic:
        raise ConfigError("pca_injection_init: this DashengTokenizer has no acoustic injection")
    proj, norm = tok.acoustic_proj, tok.acoustic_norm
    d, x = tok.cfg.dim, patches.double()
    if x.dim() != 2 or x.shape[1] != proj.weight[0].numel():
        raise ConfigError(f"pca_injection_init: patches must be [N, {proj.weight[0].numel()}], got {tuple(x.shape)}")
    if len(x) < d:
        raise ConfigError(f"pca_injection_init: {len(x)} patches cannot give {d} principal components")
    mean = x.mean(0)
    _, sv, vt = torch.linalg.svd(x - mean, full_matrices=False)
    w, sd = vt[:d], sv[:d] / math.sqrt(len(x))
    c = margin * float(sd[0])
    sign = torch.ones(d, dtype=x.dtype)
    sign[1::2] = -1
    ln_std = math.sqrt(c * c + float(sd.pow(2).mean()))  # LayerNorm's std of a typical frame
    gamma = scale * ln_std / float(sd[0])
    proj.weight.copy_(w.reshape(proj.weight.shape).float())
    proj.bias.copy_((c * sign - w @ mean).float())
    norm.weight.fill_(gamma)
    norm.bias.copy_((-gamma * c / ln_std * sign).float())


def run(corpus: str, preset: str = "dsa", semantic: str | None = None, config: str | None = None,
        overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    from .data import corpus_batches
    from .engine import Trainer

    ov = [f"semantic={semantic}"] if semantic else []
    cfg = load_stage_config(DashengStageConfig, DASHENG_STAGE_PRESETS, preset, corpus, config,
                            ov + list(overrides or []))
    batches, dev = corpus_batches(cfg.train.data, seed=cfg.train.seed)
    return Trainer(DashengTask(cfg), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
