"""DSATokenizer: the public model. Audio → (semantic, acoustic) tokens → audio, and recombination.

A model directory holds one sub-directory per part, each ``config.json`` + ``model.safetensors``::

    MODEL/config.json        {"kind": "dsatok-tokenizer", "dsatok_version", "vocoder", "decode": {...}}
    MODEL/semantic/          SemanticTokenizer (frozen stage-1 encoder + FSQ)
    MODEL/acoustic/          AcousticTokenizer (SEANet on mel + FSQ)
    MODEL/decoder/           FlowDecoder (hierarchical flow-matching DiT)
    MODEL/vocoder/           VocosVocoder (absent when ``"vocoder"`` is ``"griffinlim[:N]"``)

Long inputs are encoded and decoded in overlapping chunks, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from . import __version__
from .audio import MIN_DURATION_S, as_waveforms
from .config import ConfigError
from .files import atomic_write_json
from .models.acoustic import AcousticTokenizer
from .models.flow_decoder import DecoderContext, FlowDecoder, prior_mel
from .models.io import ModelLoadError, read_model_meta
from .models.refiner import MelRefiner, ac_at_mel_rate
from .models.semantic import SemanticTokenizer
from .models.vocoder import GriffinLim, check_mel_match, griffin_lim_iterations, griffin_lim_spec, load_vocoder
from .options import DecodeOptions, check_int, check_number
from .resources import default_model_dir, resolve_model
from .tokens import Tokens, TokenFileError

__all__ = ["DSATokenizer", "DecodeOptions", "default_model_dir", "AudioInput"]

KIND = "dsatok-tokenizer"
AudioInput = Union[str, Path, np.ndarray, torch.Tensor]


def _check_refiner(refiner: MelRefiner, decoder: FlowDecoder, acoustic: AcousticTokenizer) -> None:
    """A refiner must fit the decoder's prior (mel bins, voice statistics) and the acoustic latent."""
    c, d = refiner.cfg, decoder.cfg
    if not (d.prior and d.prior_kind == "renderer"):
        raise ModelLoadError("refiner: the decoder has no renderer prior whose mel it could refine")
    if c.n_mels != d.mel.n_mels or c.voice_dim != 2 * d.mel.n_mels:
        raise ModelLoadError(f"refiner: made for {c.n_mels} mel bins / voice {c.voice_dim}, but the decoder has "
                             f"{d.mel.n_mels} bins / voice {2 * d.mel.n_mels}")
    if c.ac_dim and c.ac_dim != acoustic.cfg.latent_dim:
        raise ModelLoadError(f"refiner: reads a {c.ac_dim}-d acoustic latent, the model's is {acoustic.cfg.latent_dim}-d")


def _state_digest(*modules: nn.Module) -> str:
    """sha256 over the configs and weights of ``modules`` (what defines the token streams)."""
    from .config import to_dict

    h = hashlib.sha256()
    for m in modules:
        cfg = to_dict(m.cfg)
        for k in getattr(m.cfg, "NOT_IN_FINGERPRINT", ()):
            cfg.pop(k, None)
        h.update(json.dumps(cfg, sort_keys=True).encode())
        for k, v in sorted(m.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class DSATokenizer(nn.Module):
    """Semantic tokenizer + acoustic tokenizer + flow-matching decoder + vocoder.

    - ``encode(audio) -> Tokens``: a path, a waveform ``[N]`` / ``[B, N]`` (16 kHz) or a list of them;
    - ``decode(tokens, *, steps, cfg_scale, seed) -> list[Tensor [N_i]]``;
    - ``reconstruct(audio)`` and ``recombine(content=..., voice=...)``.
    """

    def __init__(self, semantic: SemanticTokenizer, acoustic: AcousticTokenizer, decoder: FlowDecoder,
                 vocoder: nn.Module | None = None, decode_options: DecodeOptions = DecodeOptions(),
                 refiner: MelRefiner | None = None) -> None:
        super().__init__()
        if semantic.codebook_size != decoder.cfg.sem_codebook_size:
            raise ModelLoadError(f"semantic codebook {semantic.codebook_size} != decoder's {decoder.cfg.sem_codebook_size}")
        if refiner is not None:
            _check_refiner(refiner, decoder, acoustic)
        self.semantic, self.acoustic, self.decoder = semantic.eval(), acoustic.eval(), decoder.eval()
        #: optional GAN post-filter of the prior's mel (:mod:`dsatok.models.refiner`), used by prior-only decodes
        self.refiner = refiner.eval() if refiner is not None else None
        self.vocoder = (vocoder or GriffinLim(decoder.cfg.mel)).eval()
        check_mel_match(self.vocoder.mel_config, decoder.cfg.mel)
        self.decode_options = decode_options
        self.requires_grad_(False)
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        return self.decoder.cfg.mel.sample_rate

    @property
    def frame_rates(self) -> tuple[float, float]:
        """(semantic, acoustic) tokens per second."""
        return (self.semantic.frame_rate, self.acoustic.frame_rate)

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        return (self.semantic.codebook_size, self.acoustic.codebook_size)

    @property
    def acoustic_layers(self) -> int:
        return self.acoustic.cfg.fsq_layers

    @property
    def single_stream(self) -> bool:
        """True for the acoustic-only baseline (its decoder ignores semantic tokens)."""
        return not self.decoder.cfg.use_semantic

    @property
    def bitrate(self) -> float:
        """Bits per second of the streams the decoder uses (acoustic only for the single-stream baseline)."""
        return self.acoustic.bitrate + (0.0 if self.single_stream else self.semantic.bitrate)

    @property
    def fingerprint(self) -> str:
        """Identifies the token streams: a hash of the semantic and acoustic tokenizers."""
        if self._fingerprint is None:
            self._fingerprint = _state_digest(self.semantic, self.acoustic)
        return self._fingerprint

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    @property
    def _hop(self) -> int:
        return self.decoder.cfg.mel.hop_length

    @property
    def _sem_factor(self) -> int:
        """Mel frames per semantic token."""
        return int(round(self.decoder.cfg.mel.frame_rate / self.semantic.frame_rate))

    def set_refiner(self, refiner: MelRefiner | None) -> None:
        """Attach (or with ``None`` remove) a mel refiner, checked against the decoder and acoustic latent."""
        if refiner is not None:
            _check_refiner(refiner, self.decoder, self.acoustic)
            refiner = refiner.eval().requires_grad_(False).to(self.device)
        self.refiner = refiner

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, model_dir: str | Path | None = None, *, device: str | torch.device = "cpu",
                        vocoder: str | Path | None = None) -> "DSATokenizer":
        """Load a model directory (default: the bundled model). ``vocoder`` overrides the model's own
        (a Vocos directory, or ``"griffinlim"``)."""
        d = resolve_model(model_dir)
        p = d / "config.json"
        hint = " (the bundled model is missing: reinstall dsatok)" if model_dir is None else ""
        meta = read_model_meta(d, KIND, hint)
        from .config import ConfigError, from_dict

        try:
            opts = from_dict(DecodeOptions, meta.get("decode", {}))
        except ConfigError as e:
            raise ModelLoadError(f"{p}: {e}") from None
        own = str(meta.get("vocoder", ""))
        spec = vocoder if vocoder is not None else (own if griffin_lim_iterations(own) is not None else d / "vocoder")
        return cls.from_parts(d, spec, opts, refiner=bool(meta.get("refiner", False))).to(device)

    @classmethod
    def from_parts(cls, stage2_dir: str | Path, vocoder: str | Path | None = "griffinlim",
                   decode_options: DecodeOptions = DecodeOptions(), refiner: bool | None = None) -> "DSATokenizer":
        """Assemble a model from a stage-2 export (``semantic/``, ``acoustic/``, ``decoder/``) and a
        vocoder export directory (or ``"griffinlim"`` / ``"griffinlim:N"`` for N iterations); with
        ``refiner`` (None: when the directory has one) its ``refiner/`` too."""
        from .config import ConfigError

        d = Path(stage2_dir)
        dec = FlowDecoder.from_pretrained(d / "decoder")
        try:
            voc = load_vocoder(vocoder, dec.cfg.mel)
        except ConfigError as e:
            raise ModelLoadError(str(e)) from None
        if refiner is None:
            refiner = (d / "refiner").is_dir()
        ref = MelRefiner.from_pretrained(d / "refiner") if refiner else None
        return cls(SemanticTokenizer.from_pretrained(d / "semantic"), AcousticTokenizer.from_pretrained(d / "acoustic"),
                   dec, voc, decode_options, ref)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write every part; the directory is complete only once ``config.json`` exists."""
        from .config import to_dict

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.semantic.save_pretrained(out / "semantic")
        self.acoustic.save_pretrained(out / "acoustic")
        self.decoder.save_pretrained(out / "decoder")
        if self.refiner is not None:
            self.refiner.save_pretrained(out / "refiner")
        is_gl = isinstance(self.vocoder, GriffinLim)
        if not is_gl:
            self.vocoder.save_pretrained(out / "vocoder")
        meta = {"kind": KIND, "dsatok_version": __version__,
                "vocoder": griffin_lim_spec(self.vocoder) if is_gl else "vocos",
                "decode": to_dict(self.decode_options), "refiner": self.refiner is not None,
                "fingerprint": self.fingerprint,
                "frame_rates": list(self.frame_rates), "codebook_sizes": list(self.codebook_sizes),
                "bitrate": self.bitrate}
        atomic_write_json(out / "config.json", meta)
        return out

    # ------------------------------------------------------------------ inputs
    def _waves(self, audio: AudioInput | Sequence[AudioInput], lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Normalise any accepted input to a list of mono 1-D float tensors at the model rate
        (checked once, in :func:`dsatok.audio.as_waveforms`)."""
        return as_waveforms(audio, self.sample_rate, lengths)

    # ------------------------------------------------------------------ encode
    def _encode_batch(self, waves: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        dev = self.device
        lens = torch.tensor([w.shape[0] for w in waves], device=dev)
        x = torch.zeros(len(waves), int(lens.max()), device=dev)
        for i, w in enumerate(waves):
            x[i, : w.shape[0]] = w.to(dev)
        if self.single_stream:  # its decoder ignores semantic tokens: placeholders, the encoder is never run
            s_lens = self.semantic.encoder.token_lengths(lens)
            s_idx = torch.zeros(len(waves), int(s_lens.max()), dtype=torch.long, device=dev)
        else:
            s_idx, s_lens = self.semantic.encode(x, lens)
        a_idx, a_lens = self.acoustic.encode(x, lens)
        return ([s_idx[i, : int(s_lens[i])] for i in range(len(waves))],
                [a_idx[i, :, : int(a_lens[i])] for i in range(len(waves))])

    def _encode_long(self, w: torch.Tensor, chunk_s: float, context_s: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One long waveform in chunks with ``context_s`` seconds of context either side."""
        unit = self._hop * self._sem_factor  # samples per semantic token (a multiple of the acoustic one)
        chunk = max(unit, int(chunk_s * self.sample_rate) // unit * unit)
        ctx = int(context_s * self.sample_rate) // unit * unit
        n = w.shape[0]
        s_per, a_per = unit, self._hop * self.acoustic.cfg.stride
        sems, acs = [], []
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            a, b = max(0, s - ctx), min(n, e + ctx)
            if b - a < unit:  # a tail shorter than one token: borrow context from before
                a = max(0, b - unit)
            (si,), (ai,) = self._encode_batch([w[a:b]])
            sems.append(si[(s - a) // s_per : (s - a) // s_per + -(-(e - s) // s_per)])
            acs.append(ai[:, (s - a) // a_per : (s - a) // a_per + -(-(e - s) // a_per)])
        n_sem = int(self.semantic.encoder.token_lengths(torch.tensor([n])))
        n_ac = int(self.acoustic.token_lengths(torch.tensor([n // self._hop])))
        return torch.cat(sems)[:n_sem], torch.cat(acs, dim=1)[:, :n_ac]

    @torch.no_grad()
    def encode(self, audio: AudioInput | Sequence[AudioInput], lengths: torch.Tensor | None = None, *,
               chunk_seconds: float = 30.0, context_seconds: float = 2.0, batch_seconds: float = 120.0) -> Tokens:
        """Tokens of one or more utterances (batched, padded; long ones in chunks).

        A single-stream model's semantic stream is all zeros (its decoder does not read it; the
        semantic encoder is not run), with the lengths a full model would give."""
        check_number("encode option chunk_seconds", chunk_seconds, 1.0, 3600.0)
        check_number("encode option context_seconds", context_seconds, 0.0, 60.0)
        check_number("encode option batch_seconds", batch_seconds, 1.0, 24 * 3600.0)
        waves = self._waves(audio, lengths)
        sem: list[torch.Tensor | None] = [None] * len(waves)
        ac: list[torch.Tensor | None] = [None] * len(waves)
        limit = int((chunk_seconds + 2 * context_seconds) * self.sample_rate)
        short = [i for i, w in enumerate(waves) if w.shape[0] <= limit]
        for i in (i for i, w in enumerate(waves) if w.shape[0] > limit):
            sem[i], ac[i] = self._encode_long(waves[i], chunk_seconds, context_seconds)
        short.sort(key=lambda i: waves[i].shape[0])  # similar lengths together: little padding
        groups: list[list[int]] = [[]]
        for i in short:
            if groups[-1] and (len(groups[-1]) + 1) * waves[i].shape[0] > batch_seconds * self.sample_rate:
                groups.append([])
            groups[-1].append(i)
        for g in (g for g in groups if g):
            for k, s_, a_ in zip(g, *self._encode_batch([waves[k] for k in g])):
                sem[k], ac[k] = s_, a_
        return self.make_tokens([s for s in sem if s is not None], [a for a in ac if a is not None],
                          [w.shape[0] for w in waves])

    def make_tokens(self, sem: list[torch.Tensor], ac: list[torch.Tensor], num_samples: list[int]) -> Tokens:
        """A padded :class:`Tokens` of this model from per-item semantic ``[T_s]`` and acoustic
        ``[L, T_a]`` indices (e.g. generated by a language model) and output lengths in samples."""
        b = len(sem)
        s_len = torch.tensor([s.shape[0] for s in sem])
        a_len = torch.tensor([a.shape[-1] for a in ac])
        S = torch.zeros(b, int(s_len.max()), dtype=torch.long)
        A = torch.zeros(b, self.acoustic_layers, int(a_len.max()), dtype=torch.long)
        for i in range(b):
            S[i, : s_len[i]] = sem[i].cpu()
            A[i, :, : a_len[i]] = ac[i].cpu()
        return Tokens(S, A, s_len, a_len, torch.tensor(num_samples), self.frame_rates, self.codebook_sizes,
                      self.sample_rate, self.fingerprint)

    # ------------------------------------------------------------------ decode
    def check_tokens(self, tokens: Tokens, where: str = "tokens") -> None:
        """Refuse malformed tokens (:meth:`Tokens.validate`), tokens made by another model
        (fingerprint, codebooks, rates) and items shorter than encode accepts, with one line."""
        if not isinstance(tokens, Tokens):
            raise TokenFileError(f"{where}: expected dsatok.Tokens, got {type(tokens).__name__}")
        tokens.validate(where)
        if tokens.fingerprint != self.fingerprint:
            raise TokenFileError(f"{where}: made by a model with fingerprint {tokens.fingerprint}, but this model's "
                                 f"is {self.fingerprint}; decode them with the model that encoded them")
        if tuple(tokens.codebook_sizes) != self.codebook_sizes or tokens.acoustic.shape[1] != self.acoustic_layers:
            raise TokenFileError(f"{where}: codebooks {tokens.codebook_sizes} x {tokens.acoustic.shape[1]} layers do not "
                                 f"match the model's {self.codebook_sizes} x {self.acoustic_layers}")
        if tuple(tokens.frame_rates) != self.frame_rates or tokens.sample_rate != self.sample_rate:
            raise TokenFileError(f"{where}: frame rates {tuple(tokens.frame_rates)} at {tokens.sample_rate} Hz do not "
                                 f"match the model's {self.frame_rates} at {self.sample_rate} Hz")
        shortest = int(MIN_DURATION_S * self.sample_rate)  # what encode accepts, so what decode promises
        if int(tokens.num_samples.min()) < shortest:
            raise TokenFileError(f"{where}: num_samples {int(tokens.num_samples.min())} is shorter than "
                                 f"{MIN_DURATION_S} s ({shortest} samples)")

    @torch.no_grad()
    def decoder_context(self, tokens: Tokens, t_mel: int | None = None, **prepare_kw: Any) -> DecoderContext:
        """What the flow decoder conditions on for item 0 of ``tokens`` (its own lengths): a
        :class:`~dsatok.models.flow_decoder.DecoderContext` for ``t_mel`` mel frames (default: the
        source length in frames), with the prior's ``mu [1, n_mels, t_mel]`` when the decoder has a
        prior. ``prepare_kw`` go to :meth:`FlowDecoder.prepare` (``drop_sem``, ``drop_ac``, ``visible``).
        For experiments that read the prior or run their own sampler; decoding does not need it."""
        t = tokens[0]
        t_mel = int(t.num_samples[0]) // self._hop if t_mel is None else int(t_mel)
        if t_mel < 1:
            raise ValueError(f"t_mel must be >= 1, got {t_mel}")
        dev = self.device
        ac = t.acoustic.to(dev)
        return self.decoder.prepare(t.semantic.to(dev), torch.tensor([t_mel], device=dev), t_mel,
                                    self.acoustic.embed(ac), torch.tensor([ac.shape[-1]], device=dev), **prepare_kw)

    def _mel_window(self, sem: torch.Tensor, ac: torch.Tensor, t_mel: int, o: DecodeOptions,
                    gen: torch.Generator, aligned: bool = True) -> torch.Tensor:
        """``sem [T_s]``, ``ac [L, T_a]`` → log-mel ``[n_mels, t_mel]`` (one :meth:`FlowDecoder.generate`;
        prior-only decodes of a model with a refiner: its refinement of the prior's mel, reading the
        acoustic latent frame by frame only when it is ``aligned`` with the output, as in reconstruction)."""
        dev = self.device
        ac_q = self.acoustic.embed(ac[None].to(dev))
        ac_lens = torch.tensor([ac.shape[-1]], device=dev)
        if not (o.prior_only and o.refine and self.refiner is not None):
            return self.decoder.generate(sem[None].to(dev), ac_q, ac_lens, t_mel, o, gen)[0]
        ctx = self.decoder.prepare(sem[None].to(dev), torch.tensor([t_mel], device=dev), t_mel, ac_q, ac_lens)
        ac_mel = (ac_at_mel_rate(ac_q, t_mel, self.acoustic.cfg.stride)
                  if aligned and self.refiner.cfg.ac_dim else None)
        mu = self.refiner(ctx.mu, ctx.voice, ac_mel, generator=gen)
        return prior_mel(self.decoder, dataclasses.replace(ctx, mu=mu))[0]

    def _decode_mel(self, sem: torch.Tensor, ac: torch.Tensor, t_mel: int, o: DecodeOptions, gen: torch.Generator,
                    chunk_frames: int, overlap: int, max_voice_frames: int) -> torch.Tensor:
        """One item; long items in windows of ``chunk_frames`` mel frames, cross-faded over ``overlap``."""
        f = self._sem_factor
        stride = self.acoustic.cfg.stride
        aligned = abs(ac.shape[-1] * stride - t_mel) <= 2 * stride  # reconstruction, not recombination
        if not aligned:
            ac = ac[:, : max_voice_frames // stride]
        if t_mel <= chunk_frames + overlap:
            return self._mel_window(sem, ac, t_mel, o, gen, aligned)
        step = chunk_frames // f * f
        ov = overlap // f * f
        out = torch.zeros(self.decoder.cfg.mel.n_mels, t_mel, device=self.device)
        weight = torch.zeros(t_mel, device=self.device)
        for s in range(0, t_mel, step):
            a, b = max(0, s - ov), min(t_mel, s + step + ov)
            a_ac = ac[:, a // stride : -(-b // stride)] if aligned else ac
            m = self._mel_window(sem[a // f : -(-b // f)], a_ac, b - a, o, gen, aligned)
            w = torch.ones(b - a, device=self.device)
            if a > 0:
                w[: 2 * ov] = torch.linspace(0, 1, 2 * ov + 2, device=self.device)[1:-1][: w[: 2 * ov].shape[0]]
            if b < t_mel:
                w[-2 * ov :] = torch.minimum(w[-2 * ov :], torch.linspace(1, 0, 2 * ov + 2, device=self.device)[1:-1])
            out[:, a:b] += m * w
            weight[a:b] += w
        return out / weight.clamp_min(1e-6)

    def options(self, options: DecodeOptions | None = None, **overrides: Any) -> DecodeOptions:
        """The decode options of one call: ``options`` (default: the model's ``decode_options``) with
        the given fields replaced (``None`` keeps a field, except ``sway=None``: no sway). An unknown
        or bad field is one :class:`~dsatok.config.ConfigError` naming it."""
        fields = {f.name for f in dataclasses.fields(DecodeOptions)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(f"decode option {unknown[0]}: unknown (choose from {', '.join(sorted(fields))})")
        o = dataclasses.replace(options or self.decode_options,
                                **{k: v for k, v in overrides.items() if v is not None or k == "sway"})
        if o.prior_only and not self.decoder.cfg.prior:
            raise ConfigError("decode option prior_only: this model's decoder has no semantic prior")
        return o

    @torch.no_grad()
    def decode_mel(self, tokens: Tokens, options: DecodeOptions | None = None, *, seed: int = 0,
                   chunk_frames: int = 1500, overlap: int = 48, max_voice_seconds: float = 20.0,
                   **overrides: Any) -> list[torch.Tensor]:
        """Tokens → log-mel ``[n_mels, T_i]`` per item (``T_i = num_samples // hop``).

        ``options`` (default: the model's ``decode_options``) with any of its fields overridden by
        keyword (``steps=8, content_cfg=2.0, prior_only=True``; see :meth:`options`). ``seed`` fixes
        the noise; long items decode in windows of ``chunk_frames`` cross-faded over ``overlap``.
        """
        self.check_tokens(tokens)
        o = self.options(options, **overrides)
        check_int("seed", seed, -(2 ** 63), 2 ** 64 - 1)
        check_int("chunk_frames", chunk_frames, 100)
        check_int("overlap", overlap, 0, chunk_frames // 2)
        check_number("max_voice_seconds", max_voice_seconds, 0.1, 24 * 3600.0)
        gen = torch.Generator().manual_seed(int(seed))
        mels = []
        for t in tokens.split():
            t_mel = int(t.num_samples[0]) // self._hop
            mels.append(self._decode_mel(t.semantic[0], t.acoustic[0], t_mel, o, gen, chunk_frames, overlap,
                                         int(max_voice_seconds * 100)))
        return mels

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[n_mels, T]`` → waveform ``[T * hop]`` (chunked, bounded memory)."""
        return self.vocoder.synthesize(mel[None].to(self.device))[0].clamp(-1, 1)

    @torch.no_grad()
    def decode(self, tokens: Tokens, **kw: Any) -> list[torch.Tensor]:
        """Tokens → waveforms ``[N_i]`` (float32, ``sample_rate``), one per item, exact source length."""
        out = []
        for mel, n in zip(self.decode_mel(tokens, **kw), tokens.num_samples.tolist()):
            w = self.vocode(mel)
            out.append(torch.nn.functional.pad(w, (0, max(0, int(n) - w.shape[0])))[: int(n)].cpu())
        return out

    # ------------------------------------------------------------------ conveniences
    def reconstruct(self, audio: AudioInput | Sequence[AudioInput], **kw: Any) -> list[torch.Tensor]:
        """Encode then decode (one waveform per input)."""
        return self.decode(self.encode(audio), **kw)

    def recombine_tokens(self, content: Tokens, voice: Tokens) -> Tokens:
        """Semantic tokens of ``content`` with the acoustic tokens of ``voice`` (item-wise; lengths may differ)."""
        if self.single_stream:
            raise ModelLoadError("this is a single-stream model (acoustic tokens only): it cannot recombine")
        self.check_tokens(content, "content")
        self.check_tokens(voice, "voice")
        if len(content) != len(voice):
            raise TokenFileError(f"recombine: {len(content)} content items but {len(voice)} voice items")
        a = [voice.acoustic[i, :, : int(voice.acoustic_lengths[i])] for i in range(len(voice))]
        s = [content.semantic[i, : int(content.semantic_lengths[i])] for i in range(len(content))]
        return self.make_tokens(s, a, content.num_samples.tolist())

    def recombine(self, content: AudioInput | Sequence[AudioInput], voice: AudioInput | Sequence[AudioInput],
                  **kw: Any) -> list[torch.Tensor]:
        """What ``content`` says, in the voice of ``voice``: one waveform per pair, content's length."""
        return self.decode(self.recombine_tokens(self.encode(content), self.encode(voice)), **kw)

    def info(self) -> dict[str, Any]:
        """A summary for ``dsatok info``."""
        def n(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        return {"fingerprint": self.fingerprint, "sample_rate": self.sample_rate,
                "frame_rates_hz": {"semantic": self.frame_rates[0], "acoustic": self.frame_rates[1]},
                "codebook_sizes": {"semantic": self.codebook_sizes[0], "acoustic": self.codebook_sizes[1]},
                "acoustic_layers": self.acoustic_layers, "bitrate_bps": round(self.bitrate, 1),
                "semantic_backend": self.semantic.cfg.backend,
                "vocoder": type(self.vocoder).__name__,
                "refiner": self.refiner is not None,
                "parameters": {"semantic": n(self.semantic), "acoustic": n(self.acoustic), "decoder": n(self.decoder),
                               "vocoder": n(self.vocoder),
                               **({"refiner": n(self.refiner)} if self.refiner is not None else {})},
                "decode": dataclasses.asdict(self.decode_options)}
