"""Vocoders for the shared mel front end: a Vocos-style neural vocoder and a Griffin-Lim fallback.

Both implement :class:`Vocoder`: ``vocoder(mel [B, n_mels, T]) -> wav [B, T * hop]`` for the
``MelConfig`` they were built for; :meth:`Vocoder.synthesize` runs long inputs in overlapping
chunks with bounded memory.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import mel_filterbank
from ..config import ConfigError, MelConfig, to_dict
from ..nn.conv import ConvNeXtBlock
from .io import ModelLoadError, load_model_config, load_weights, save_model

__all__ = ["VocoderConfig", "VocosVocoder", "GriffinLim", "integrate_phase", "Vocoder", "load_vocoder",
           "check_mel_match", "VOCODER_PRESETS", "griffin_lim", "griffin_lim_iterations", "griffin_lim_spec",
           "with_gl_iterations", "gl_iterations_config", "stft_window"]

KIND = "dsatok-vocoder"


@dataclasses.dataclass(frozen=True)
class VocoderConfig:
    """Vocos-style vocoder: ConvNeXt backbone over input frames, iSTFT head at ``mel.hop_length``.

    ``in_dim``: input channels (0: ``mel.n_mels``); ``upsample``: transposed-conv factor applied to
    the input first (e.g. 4 for 25 Hz latents → 100 Hz frames; the Dasheng decoder path).
    ``phase``: ``"direct"`` — the head outputs each frame's phase (Vocos); ``"integrated"`` — it
    outputs each bin's phase advance since the previous frame (instantaneous frequency, as in
    GANSynth) and the phase is its running sum, so frame-to-frame coherence is a local prediction;
    ``"griffinlim"`` — the head outputs only the log magnitude and ``gl_iterations`` of fast
    Griffin-Lim find the phase (Tacotron's mel → linear post-net; trained on magnitudes alone, no
    discriminator); on mel input (``in_dim`` 0, ``upsample`` 1) the head is a correction to the mel
    pseudo-inverse, zero at initialisation, so an untrained model is the Griffin-Lim fallback;
    ``"refine"`` — Griffin-Lim first (``gl_iterations`` from a zero phase on the mel pseudo-inverse),
    then the backbone reads that spectrum (log magnitude, phase and phase advance as cos / sin) and the
    head outputs a log-magnitude and a phase correction per bin, zero at initialisation (a one-stage
    Deep Griffin-Lim, Masuyama et al. 2019): the phase is learnt as a refinement of a consistent
    one, so supervised losses (mel L1, ``spectral.mrstft``) can train it without a discriminator;
    mel input only.
    """

    mel: MelConfig = MelConfig()
    dim: int = 256
    intermediate: int = 768
    layers: int = 8
    in_dim: int = 0
    upsample: int = 1
    n_fft: int = 640  # iSTFT head (4 × hop)
    phase: Literal["direct", "integrated", "griffinlim", "refine"] = "direct"
    gl_iterations: int = 32  # phase="griffinlim" or "refine" only

    @property
    def mel_input(self) -> bool:
        """True when the input is the mel at the head's frame rate (``in_dim`` 0, ``upsample`` 1)."""
        return self.in_dim == 0 and self.upsample == 1

    def __post_init__(self) -> None:
        if self.phase not in _PHASE_MODES:
            raise ConfigError(f"vocoder.phase must be one of {', '.join(map(repr, _PHASE_MODES))}, got {self.phase!r}")
        if _PHASE_MODES[self.phase].uses_griffin_lim and self.n_fft != self.mel.n_fft:
            raise ConfigError(f"vocoder.phase={self.phase!r} needs n_fft = mel.n_fft (its magnitudes are the "
                              "mel's STFT bins)")
        if self.phase == "refine" and not self.mel_input:
            raise ConfigError("vocoder.phase='refine' needs the mel as input (in_dim 0, upsample 1)")
        if self.gl_iterations < 1:
            raise ConfigError(f"vocoder.gl_iterations must be >= 1, got {self.gl_iterations}")
        if self.upsample < 1:
            raise ConfigError(f"vocoder.upsample must be >= 1, got {self.upsample}")
        if self.n_fft < self.mel.hop_length:
            raise ConfigError("vocoder.n_fft must be >= mel.hop_length")


VOCODER_PRESETS = {"tiny": {"dim": 256, "intermediate": 768, "layers": 8},
                   "base": {"dim": 512, "intermediate": 1536, "layers": 8}}


class Vocoder(Protocol):
    mel_config: MelConfig

    def __call__(self, mel: torch.Tensor) -> torch.Tensor: ...

    def synthesize(self, mel: torch.Tensor, chunk_frames: int = 1000) -> torch.Tensor: ...


def check_mel_match(vocoder_mel: MelConfig, decoder_mel: MelConfig, where: str = "vocoder") -> None:
    """Raise a one-line error when a vocoder was trained for other mel settings than the decoder's."""
    if vocoder_mel != decoder_mel:
        a, b = to_dict(vocoder_mel), to_dict(decoder_mel)
        diff = [f"{k}={a[k]} (decoder {b[k]})" for k in a if a[k] != b[k]]
        raise ModelLoadError(f"{where}: mel settings differ from the decoder's: {', '.join(diff)}")


def _chunked(fn, x: torch.Tensor, size: int, context: int, scale: int) -> torch.Tensor:
    """``fn`` over ``x [..., T]`` in chunks of ``size`` frames, each computed with up to ``context``
    frames either side of which only the chunk's own ``scale`` outputs per frame are kept (``scale``:
    output frames or samples per input frame); one call when ``x`` fits in one window."""
    t = x.shape[-1]
    if t <= size + 2 * context:
        return fn(x)
    outs = []
    for s in range(0, t, size):
        e = min(t, s + size)
        a, b = max(0, s - context), min(t, e + context)
        outs.append(fn(x[..., a:b])[..., (s - a) * scale : (e - a) * scale])
    return torch.cat(outs, dim=-1)


class _ChunkedMixin:
    """Overlapping-chunk synthesis: each chunk is computed with ``context`` frames either side and
    only its centre is kept, so the result equals one-shot synthesis up to float error."""

    context: int = 48

    def synthesize(self, mel: torch.Tensor, chunk_frames: int = 1000) -> torch.Tensor:
        """``mel [B, C, T] -> wav [B, T * hop * upsample]`` with bounded memory."""
        return _chunked(self, mel, chunk_frames, self.context, self.samples_per_frame)  # type: ignore[arg-type,attr-defined]


class _PhaseMode:
    """What one ``VocoderConfig.phase`` changes in :class:`VocosVocoder` (no weights of its own):
    the input the backbone reads, the head's width, how its output becomes a spectrum, and how that
    spectrum becomes a waveform, one-shot and in chunks. This base class is ``"direct"`` (Vocos)."""

    embed_kernel = 7
    uses_griffin_lim = False  # the mel pseudo-inverse and fast Griffin-Lim are part of the model
    magnitudes_only = False  # the head predicts magnitudes only: trained on them, no waveform, no GAN

    def in_channels(self, cfg: VocoderConfig) -> int:
        return cfg.in_dim or cfg.mel.n_mels

    def head_channels(self, cfg: VocoderConfig) -> int:
        return 2 * (cfg.n_fft // 2 + 1)

    def backbone_input(self, v: "VocosVocoder", mel: torch.Tensor) -> tuple[torch.Tensor, object]:
        """``mel -> (backbone input, what :meth:`head_spectrum` needs besides the head's output)``."""
        return mel, None

    def head_spectrum(self, v: "VocosVocoder", h: torch.Tensor, mel: torch.Tensor, base: object
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Head output ``h [B, head_channels, T]`` → ``(log_mag, phase or phase advance)``."""
        log_mag, ph = h.chunk(2, dim=1)
        return log_mag, ph

    def phase(self, ph: torch.Tensor) -> torch.Tensor:
        """The head's phase output → the phase of the spectrum."""
        return ph

    def waveform(self, v: "VocosVocoder", mel: torch.Tensor) -> torch.Tensor:
        return v.istft(*v.spectrum(mel))

    def synthesize(self, v: "VocosVocoder", mel: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        return _chunked(v, mel, chunk_frames, v.context, v.samples_per_frame)


class _IntegratedPhase(_PhaseMode):
    """``"integrated"``: the head outputs phase advances; the phase is their running sum."""

    def phase(self, ph: torch.Tensor) -> torch.Tensor:
        return integrate_phase(ph)

    def synthesize(self, v: "VocosVocoder", mel: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        """The advances of all chunks are summed over the whole input, so chunks join without phase jumps."""
        up, hop = v.cfg.upsample, v.cfg.mel.hop_length
        head = _chunked(lambda x: torch.cat(v.head_output(x), dim=1), mel, chunk_frames, v.context, up)
        log_mag, advance = head.chunk(2, dim=1)
        spec = torch.cat([log_mag, integrate_phase(advance)], dim=1)
        return _chunked(lambda z: v.istft(*z.chunk(2, dim=1)), spec, chunk_frames * up, v.context, hop)


class _GriffinLimPhase(_PhaseMode):
    """``"griffinlim"``: the head outputs the log magnitude only (a correction to the mel
    pseudo-inverse on mel input) and fast Griffin-Lim finds the phase."""

    uses_griffin_lim = True
    magnitudes_only = True

    def head_channels(self, cfg: VocoderConfig) -> int:
        return cfg.n_fft // 2 + 1

    def head_spectrum(self, v: "VocosVocoder", h: torch.Tensor, mel: torch.Tensor, base: object
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        log_mag = v.pinv_log_mag(mel) + h if v.cfg.mel_input else h
        return log_mag, torch.zeros_like(h)

    def waveform(self, v: "VocosVocoder", mel: torch.Tensor) -> torch.Tensor:
        return v.griffin_lim_wave(v.log_magnitude(mel))

    def synthesize(self, v: "VocosVocoder", mel: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        """Magnitudes in chunks (exact), then Griffin-Lim in chunks with :data:`GL_CONTEXT` frames of
        context, as :class:`GriffinLim` does."""
        up = v.cfg.upsample
        log_mag = _chunked(v.log_magnitude, mel, chunk_frames, v.context, up)
        return _chunked(v.griffin_lim_wave, log_mag, chunk_frames * up, GL_CONTEXT, v.cfg.mel.hop_length)


class _RefinePhase(_PhaseMode):
    """``"refine"``: Griffin-Lim first; the backbone reads its spectrum and the head corrects it.
    Griffin-Lim runs inside each chunk's window, so the base class's chunking applies."""

    embed_kernel = 3  # the input is 5 × bins wide
    uses_griffin_lim = True

    def in_channels(self, cfg: VocoderConfig) -> int:
        return 5 * (cfg.n_fft // 2 + 1)

    def backbone_input(self, v: "VocosVocoder", mel: torch.Tensor) -> tuple[torch.Tensor, object]:
        base_mag, base_ph, feats = v.griffin_lim_features(mel)
        return feats, (base_mag, base_ph)

    def head_spectrum(self, v: "VocosVocoder", h: torch.Tensor, mel: torch.Tensor, base: object
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        base_mag, base_ph = base  # type: ignore[misc]
        d_mag, d_ph = h.chunk(2, dim=1)
        return base_mag + d_mag, base_ph + d_ph


_PHASE_MODES: dict[str, type[_PhaseMode]] = {"direct": _PhaseMode, "integrated": _IntegratedPhase,
                                              "griffinlim": _GriffinLimPhase, "refine": _RefinePhase}


class VocosVocoder(_ChunkedMixin, nn.Module):
    """``forward(mel [B, C, T]) -> wav [B, T * upsample * hop]`` (Vocos: ConvNeXt + iSTFT head).

    Everything ``cfg.phase`` changes lives in one phase-mode object (``self.mode``); the weights are
    the same modules for every mode."""

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mode = _PHASE_MODES[cfg.phase]()
        c_in = self.mode.in_channels(cfg)
        self.up = (nn.ConvTranspose1d(c_in, c_in, 2 * cfg.upsample, stride=cfg.upsample, padding=cfg.upsample // 2)
                   if cfg.upsample > 1 else None)
        k = self.mode.embed_kernel
        self.embed = nn.Conv1d(c_in, cfg.dim, k, padding=k // 2)
        self.norm = nn.LayerNorm(cfg.dim)
        mult = cfg.intermediate / cfg.dim
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.dim, int(round(mult)), 1.0 / cfg.layers) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, self.mode.head_channels(cfg))
        # the Griffin-Lim-based modes invert the mel's own STFT, so they use its window (Hann of
        # mel.win_length, centred in n_fft); the others keep Vocos's Hann of n_fft
        gl_based = self.mode.uses_griffin_lim
        self.register_buffer("window", stft_window(cfg.mel) if gl_based else torch.hann_window(cfg.n_fft),
                             persistent=False)
        if gl_based:
            fbank = mel_filterbank(cfg.mel).float()
            if self.mode.magnitudes_only:  # its magnitudes are trained through the mel filterbank
                self.register_buffer("fbank", fbank, persistent=False)
            if cfg.mel_input:  # start as Griffin-Lim: zero corrections
                nn.init.zeros_(self.head.weight)
                nn.init.zeros_(self.head.bias)
                self.register_buffer("pinv", torch.linalg.pinv(fbank), persistent=False)

    @property
    def mel_config(self) -> MelConfig:
        return self.cfg.mel

    @property
    def samples_per_frame(self) -> int:
        return self.cfg.mel.hop_length * self.cfg.upsample

    @property
    def trains_on_magnitudes(self) -> bool:
        """True when the head predicts magnitudes only (``phase="griffinlim"``): no waveform loss, no GAN."""
        return self.mode.magnitudes_only

    def spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel [B, C, T] -> (log_mag, phase)``, each ``[B, n_fft // 2 + 1, T * upsample]``: the
        head's STFT before the iSTFT (log magnitude clamped at log 100; phase any real: with
        ``phase="integrated"`` the running sum of the head's phase advances, wrapped to [0, 2π))."""
        log_mag, ph = self.head_output(mel)
        return log_mag, self.mode.phase(ph)

    def head_output(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel [B, C, T] -> (log_mag, phase or phase advance)`` ``[B, F, T * upsample]``; each frame
        depends on ``mel`` within the receptive field only (what chunked synthesis relies on)."""
        x, base = self.mode.backbone_input(self, mel)
        if self.up is not None:
            t = x.shape[-1] * self.cfg.upsample
            x = self.up(x)[..., :t]
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for b in self.blocks:
            x = b(x)
        h = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2)
        log_mag, ph = self.mode.head_spectrum(self, h, mel, base)
        return log_mag.clamp(max=math.log(1e2)), ph

    @torch.no_grad()
    def griffin_lim_features(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``phase="refine"``: ``mel [B, n_mels, T] -> (log_mag, phase [B, F, T], features [B, 5F, T])``
        of the Griffin-Lim spectrum the head corrects: the pseudo-inverse magnitude (floored at 1e-5)
        and the phase of the STFT of ``gl_iterations`` of fast Griffin-Lim from a zero phase; the
        features are the log magnitude, the phase's cos / sin and the cos / sin of its advance since
        the previous frame."""
        mag = pinv_magnitude(self.pinv, mel, self.cfg.mel.power).clamp_min(1e-5)
        wav = griffin_lim(mag, self.cfg.n_fft, self.cfg.mel.hop_length, self.window, self.cfg.gl_iterations,
                          start=torch.ones_like(mag).to(torch.cfloat))
        spec = self.analyse(wav, mag.shape[-1])
        ang = spec / spec.abs().clamp_min(1e-8)
        adv = ang * torch.conj(F.pad(ang[..., :-1], (1, 0), value=1.0))
        log_mag = mag.log()
        feats = torch.cat([log_mag, ang.real, ang.imag, adv.real, adv.imag], dim=1)
        return log_mag, torch.angle(spec), feats

    def pinv_log_mag(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel [B, n_mels, T] -> [B, n_fft // 2 + 1, T]``: log of the mel pseudo-inverse magnitude
        (floored at 1e-5), the baseline the ``griffinlim`` head corrects."""
        return torch.log(pinv_magnitude(self.pinv, mel, self.cfg.mel.power).clamp_min(1e-5))

    def log_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel [B, C, T] -> [B, n_fft // 2 + 1, T * upsample]``: the head's log magnitude."""
        return self.head_output(mel)[0]

    def analyse(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """``wav [B, N] -> [B, n_fft // 2 + 1, frames]``: the head's STFT (complex), the inverse of :meth:`istft`."""
        n_fft = self.cfg.n_fft
        return torch.stft(wav, n_fft, self.cfg.mel.hop_length, n_fft, window=self.window, center=True,
                          return_complex=True)[..., :frames]

    def istft(self, log_mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``(log_mag, phase) [B, F, T] -> wav [B, T * hop]`` (the head's inverse STFT)."""
        mag = torch.exp(log_mag)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        hop = self.cfg.mel.hop_length
        return torch.istft(spec, self.cfg.n_fft, hop, self.cfg.n_fft, window=self.window, center=True,
                           length=phase.shape[-1] * hop)

    def griffin_lim_wave(self, log_mag: torch.Tensor) -> torch.Tensor:
        """``log_mag [B, F, T] -> wav [B, T * hop]`` by ``gl_iterations`` of fast Griffin-Lim (no gradient)."""
        with torch.no_grad():
            return griffin_lim(torch.exp(log_mag), self.cfg.n_fft, self.cfg.mel.hop_length, self.window,
                               self.cfg.gl_iterations)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.mode.waveform(self, mel)

    def synthesize(self, mel: torch.Tensor, chunk_frames: int = 1000) -> torch.Tensor:
        """``mel [B, C, T] -> wav``, in overlapping chunks (how depends on ``cfg.phase``; see the phase modes)."""
        return self.mode.synthesize(self, mel, chunk_frames)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        return save_model(self, self.cfg, KIND, out_dir)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "VocosVocoder":
        cfg, _ = load_model_config(VocoderConfig, model_dir, KIND)
        return load_weights(cls(cfg), model_dir).requires_grad_(False)


def integrate_phase(advance: torch.Tensor) -> torch.Tensor:
    """Running sum over frames of phase advances ``[B, F, T]`` (in float64, so hours of audio keep
    their precision), wrapped to ``[0, 2π)``."""
    return torch.remainder(torch.cumsum(advance.double(), dim=-1), 2 * math.pi).to(advance.dtype)


class GriffinLim(_ChunkedMixin, nn.Module):
    """No-weights fallback: pseudo-inverse of the mel filterbank, then fast Griffin-Lim (momentum 0.99).

    ``forward(mel [B, n_mels, T]) -> wav [B, T * hop]`` for the given :class:`MelConfig`.
    """

    DEFAULT_ITERATIONS = 32

    def __init__(self, mel: MelConfig = MelConfig(), n_iter: int = DEFAULT_ITERATIONS,
                 momentum: float = 0.99) -> None:
        super().__init__()
        if n_iter < 1:
            raise ConfigError(f"Griffin-Lim needs >= 1 iterations, got {n_iter}")
        self.cfg_mel, self.n_iter, self.momentum = mel, n_iter, momentum
        fb = mel_filterbank(mel).float()
        self.register_buffer("pinv", torch.linalg.pinv(fb), persistent=False)
        self.register_buffer("window", stft_window(mel), persistent=False)
        self.context = GL_CONTEXT

    @property
    def mel_config(self) -> MelConfig:
        return self.cfg_mel

    @property
    def samples_per_frame(self) -> int:
        return self.cfg_mel.hop_length

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        c = self.cfg_mel
        mag = pinv_magnitude(self.pinv.to(mel.device), mel, c.power)
        return griffin_lim(mag, c.n_fft, c.hop_length, self.window.to(mel.device), self.n_iter, self.momentum)


GL_CONTEXT = 16  # frames of context either side of a chunk for chunked Griffin-Lim


def stft_window(mel: MelConfig) -> torch.Tensor:
    """``[mel.n_fft]``: the mel front end's analysis window (Hann of ``win_length``, zero-padded to
    ``n_fft`` on both sides, as ``torch.stft`` centres it)."""
    win = torch.hann_window(mel.win_length)
    if mel.win_length < mel.n_fft:
        lp = (mel.n_fft - mel.win_length) // 2
        win = F.pad(win, (lp, mel.n_fft - mel.win_length - lp))
    return win


def pinv_magnitude(pinv: torch.Tensor, mel: torch.Tensor, power: float) -> torch.Tensor:
    """Linear magnitude ``[B, n_fft // 2 + 1, T]`` from a log-mel ``[B, n_mels, T]`` through the
    filterbank's pseudo-inverse ``pinv`` (negative values clipped; ``power`` undone)."""
    lin = (pinv @ mel.float().exp()).clamp_min(0.0)
    return lin.pow(1.0 / power) if power != 1.0 else lin


def griffin_lim(mag: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, n_iter: int,
                momentum: float = 0.99, start: torch.Tensor | None = None) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): ``mag [B, n_fft // 2 + 1, T] -> wav [B, T * hop]``,
    from the unit-modulus complex phase ``start`` (same shape) or else a seeded random phase (the
    same input always gives the same output)."""
    n = mag.shape[-1] * hop
    if start is None:
        g = torch.Generator(device="cpu").manual_seed(0)
        ang = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=g)).to(mag.device)
    else:
        ang = start.to(mag.device)
    prev = torch.zeros_like(ang)
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window, center=True)
    wav = torch.istft(mag * ang, length=n, **kw)
    for _ in range(n_iter):
        spec = torch.stft(wav, return_complex=True, **kw)[..., : mag.shape[-1]]
        new = spec / spec.abs().clamp_min(1e-8)
        ang = new - momentum / (1 + momentum) * prev
        ang = ang / ang.abs().clamp_min(1e-8)
        prev = new
        wav = torch.istft(mag * ang, length=n, **kw)
    return wav


_GL_NAMES = ("griffinlim", "griffin-lim", "gl")


def griffin_lim_iterations(spec: str | Path | None) -> int | None:
    """Iterations named by a Griffin-Lim spec — ``"griffinlim"`` (32, also None) or
    ``"griffinlim:N"`` — or None when ``spec`` names something else (a directory)."""
    if spec is None:
        return GriffinLim.DEFAULT_ITERATIONS
    name, sep, n = str(spec).lower().partition(":")
    if name not in _GL_NAMES:
        return None
    if not sep:
        return GriffinLim.DEFAULT_ITERATIONS
    if not n.isdigit() or int(n) < 1:
        raise ConfigError(f"vocoder {spec!r}: expected griffinlim:N with N >= 1 iterations")
    return int(n)


def griffin_lim_spec(vocoder: "GriffinLim") -> str:
    """The spec that rebuilds ``vocoder``: ``"griffinlim"`` at the default iterations, else ``"griffinlim:N"``."""
    return "griffinlim" if vocoder.n_iter == GriffinLim.DEFAULT_ITERATIONS else f"griffinlim:{vocoder.n_iter}"


def load_vocoder(spec: str | Path | None, mel: MelConfig = MelConfig()) -> nn.Module:
    """``"griffinlim"`` / ``"griffinlim:N"`` (or None) → :class:`GriffinLim` for ``mel`` (N iterations,
    default 32); a directory → :class:`VocosVocoder` (its mel settings must equal ``mel``)."""
    n_iter = griffin_lim_iterations(spec)
    if n_iter is not None:
        return GriffinLim(mel, n_iter=n_iter)
    voc = VocosVocoder.from_pretrained(spec)
    check_mel_match(voc.cfg.mel, mel, str(spec))
    return voc


def with_gl_iterations(vocoder: nn.Module, n_iter: int) -> nn.Module:
    """A copy of ``vocoder`` with ``n_iter`` Griffin-Lim iterations (``vocoder`` is left as it is): a
    new :class:`GriffinLim`, or a :class:`VocosVocoder` whose head uses Griffin-Lim, sharing its
    weights (they do not depend on the count; see :func:`gl_iterations_config`)."""
    if isinstance(vocoder, GriffinLim):
        return GriffinLim(vocoder.cfg_mel, n_iter=n_iter, momentum=vocoder.momentum)
    cfg = getattr(vocoder, "cfg", None)
    if not isinstance(cfg, VocoderConfig):
        raise ConfigError(f"a {type(vocoder).__name__} runs no Griffin-Lim iterations")
    out = copy.copy(vocoder)  # shallow: parameters and buffers are shared, only ``cfg`` differs
    out.cfg = gl_iterations_config(cfg, n_iter)
    return out


def gl_iterations_config(cfg: VocoderConfig, n_iter: int) -> VocoderConfig:
    """``cfg`` with ``gl_iterations = n_iter``; a ConfigError unless its ``phase`` uses Griffin-Lim
    (``"griffinlim"`` or ``"refine"``) or ``n_iter`` < 1."""
    if not _PHASE_MODES[cfg.phase].uses_griffin_lim:
        raise ConfigError(f"a vocoder with phase {cfg.phase!r} runs no Griffin-Lim iterations")
    return dataclasses.replace(cfg, gl_iterations=n_iter)
