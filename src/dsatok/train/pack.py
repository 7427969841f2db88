"""Training packs: corpus splits in one folder, with the frozen models' outputs precomputed.

Stage 2 needs, per utterance, the audio, the frozen semantic tokenizer's tokens and a reference
speaker embedding. A pack stores the three, so that training runs where neither the corpus's
files, lhotse, nor the Whisper back end (CTranslate2) are installed, e.g. a rented GPU machine,
and never spends time re-encoding the frozen stage. (Peers do the same: CosyVoice and DualCodec
extract their semantic tokens offline.)

Layout of a pack folder::

    pack.json      {"version": 1, "sample_rate", "codec", "semantic": {...} | null,
                    "speaker_encoder": str | null, "items": [{"id", "split", "speaker", "text",
                    "custom", "num_samples", "audio": [offset, size], "sem": [offset, count]}]}
    audio.bin      concatenated encoded files (FLAC: lossless; Ogg Opus: lossy, ~10x smaller)
    semantic.npy   int16 [sum of token counts]   (when built with a semantic tokenizer)
    speaker.npy    float32 [items, D]           (when built with a speaker encoder)

:func:`pack_batches` serves a pack like :func:`~dsatok.train.data.corpus_batches` serves a corpus:
resumable, duration-bucketed dynamic batches of :class:`~dsatok.data.batches.AudioBatch`, whose
``sem [B, S]`` holds the tokens. All audio of a split is decoded into memory once.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..data.batches import AudioBatch, ResumableBatches

__all__ = ["build_pack", "PackedSplit", "PackSampler", "pack_batches", "read_pack_meta", "PACK_CODECS"]

PACK_VERSION = 1
PACK_CODECS = ("flac", "opus")


def read_pack_meta(path: str | Path) -> dict[str, Any]:
    """``pack.json`` of a pack folder; a clear error when it is missing or not a pack."""
    p = Path(path) / "pack.json"
    if not p.is_file():
        raise ConfigError(f"{path}: not a training pack (no pack.json; build one with dsatok corpus pack)")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: unreadable ({e.msg})") from None
    if meta.get("version") != PACK_VERSION:
        raise ConfigError(f"{p}: pack version {meta.get('version')} (this dsatok reads {PACK_VERSION})")
    return meta


def _encode_audio(wav: np.ndarray, sr: int, codec: str, quality: float) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    if codec == "flac":
        sf.write(buf, wav, sr, format="FLAC", subtype="PCM_16")
    else:  # Opus: compression_level 0 = highest bitrate
        sf.write(buf, wav, sr, format="OGG", subtype="OPUS", compression_level=quality)
    return buf.getvalue()


def _decode_audio(blob: bytes, num_samples: int) -> np.ndarray:
    import soundfile as sf

    data, _ = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    out = np.zeros(num_samples, dtype=np.float32)  # Opus may add or drop a few samples at the ends
    n = min(num_samples, data.shape[0])
    out[:n] = data[:n, 0]
    return out


def build_pack(corpus: str, out: str | Path, *, splits: tuple[str, ...] = ("train", "dev"),
               semantic: str | None = None, speaker_encoder: str | None = "resemblyzer", codec: str = "flac",
               opus_level: float = 0.9, limit: int = 0, progress: bool = True) -> dict[str, Any]:
    """Write a pack of ``splits`` of ``corpus`` to ``out``; returns a summary.

    Args:
        semantic: exported semantic tokenizer directory whose tokens are stored (None: no tokens).
        speaker_encoder: reference speaker encoder spec (None: no embeddings), as in stage 2.
        codec: ``flac`` (lossless) or ``opus`` (lossy; ``opus_level`` 0..1, 0 = highest bitrate).
        limit: keep at most this many utterances per split (0: all).
    """
    from tqdm import tqdm

    from ..data.manifests import load_cuts
    from ..data.batches import load_cut_audio

    if codec not in PACK_CODECS:
        raise ConfigError(f"pack codec must be one of {PACK_CODECS}, got {codec!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sem_model = None
    sem_meta = None
    if semantic:
        from ..models.semantic import SemanticTokenizer

        sem_model = SemanticTokenizer.from_pretrained(semantic).eval()
        sem_meta = {"source": str(semantic), "codebook_size": int(sem_model.codebook_size),
                    "frame_rate": float(sem_model.frame_rate)}
    spk: dict[str, torch.Tensor] = {}
    if speaker_encoder:
        from .speaker_cache import speaker_cache

        spk = speaker_cache(corpus, splits, speaker_encoder, progress=progress)
    items: list[dict[str, Any]] = []
    sem_parts: list[np.ndarray] = []
    spk_rows: list[np.ndarray] = []
    audio_off = sem_off = 0
    tmp_audio = out / "audio.bin.tmp"
    with open(tmp_audio, "wb") as fa:
        for split in splits:
            cuts = list(load_cuts(corpus, split))
            if limit:
                cuts = cuts[:limit]
            for c in tqdm(cuts, desc=f"pack {split}", disable=not progress):
                wav = load_cut_audio(c)
                blob = _encode_audio(wav, 16000, codec, opus_level)
                fa.write(blob)
                sup = c.supervisions[0] if c.supervisions else None
                item = {"id": c.id, "split": split, "speaker": (sup.speaker or "") if sup else "",
                        "text": (sup.text or "") if sup else "", "custom": dict(sup.custom or {}) if sup else {},
                        "num_samples": int(len(wav)), "audio": [audio_off, len(blob)]}
                audio_off += len(blob)
                if sem_model is not None:
                    with torch.no_grad():
                        idx, lens = sem_model.encode(torch.from_numpy(wav)[None])
                    tok = idx[0, : int(lens[0])].numpy().astype(np.int16)
                    sem_parts.append(tok)
                    item["sem"] = [sem_off, int(len(tok))]
                    sem_off += len(tok)
                if spk:
                    spk_rows.append(spk[c.id].float().numpy())
                items.append(item)
    if not items:
        raise ConfigError(f"{corpus}: nothing to pack in splits {list(splits)}")
    if sem_parts:
        np.save(out / "semantic.npy", np.concatenate(sem_parts))
    if spk_rows:
        np.save(out / "speaker.npy", np.stack(spk_rows).astype(np.float32))
    os.replace(tmp_audio, out / "audio.bin")
    meta = {"version": PACK_VERSION, "sample_rate": 16000, "codec": codec, "semantic": sem_meta,
            "speaker_encoder": speaker_encoder if spk else None, "corpus": str(corpus), "items": items}
    tmp = out / "pack.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, out / "pack.json")  # written last: a pack without it is incomplete
    hours = sum(i["num_samples"] for i in items) / 16000 / 3600
    return {"pack": str(out), "items": len(items), "hours": round(hours, 3), "audio_mb": round(audio_off / 2**20, 2),
            "codec": codec, "semantic": sem_meta is not None, "speaker": bool(spk)}


class PackedSplit:
    """One split of a pack, decoded into memory.

    Attributes:
        ids, texts, speakers, custom: per item metadata.
        wavs: float32 ``[N_i]`` waveforms at 16 kHz.
        sem: int64 ``[S_i]`` semantic tokens per item, or None.
        spk: float32 ``[D]`` speaker embedding per item, or None.
    """

    def __init__(self, path: str | Path, split: str, min_duration: float = 0.0, max_duration: float = 1e9,
                 threads: int = 8) -> None:
        path = Path(path)
        meta = read_pack_meta(path)
        self.meta = meta
        all_items = meta["items"]
        rows = [(k, it) for k, it in enumerate(all_items) if it["split"] == split
                and min_duration <= it["num_samples"] / meta["sample_rate"] <= max_duration]
        if not rows:
            raise ConfigError(f"{path}: no {split} utterance between {min_duration} and {max_duration} s")
        raw = np.memmap(path / "audio.bin", dtype=np.uint8, mode="r")
        blobs = [bytes(raw[it["audio"][0]: it["audio"][0] + it["audio"][1]]) for _, it in rows]
        with ThreadPoolExecutor(max(1, threads)) as ex:
            self.wavs = list(ex.map(_decode_audio, blobs, [it["num_samples"] for _, it in rows]))
        self.ids = [it["id"] for _, it in rows]
        self.texts = [it["text"] for _, it in rows]
        self.speakers = [it["speaker"] for _, it in rows]
        self.custom = [it["custom"] for _, it in rows]
        self.sem: list[np.ndarray] | None = None
        if meta.get("semantic"):
            toks = np.load(path / "semantic.npy")
            self.sem = [toks[it["sem"][0]: it["sem"][0] + it["sem"][1]].astype(np.int64) for _, it in rows]
        self.spk: list[np.ndarray] | None = None
        if meta.get("speaker_encoder"):
            emb = np.load(path / "speaker.npy")
            self.spk = [emb[k] for k, _ in rows]

    def __len__(self) -> int:
        return len(self.ids)

    def durations(self) -> np.ndarray:
        return np.array([len(w) for w in self.wavs], dtype=np.float64) / 16000.0

    def batch(self, indices: list[int]) -> AudioBatch:
        """Zero-padded batch of ``indices`` (sorted by id, as the lhotse path does)."""
        indices = sorted(indices, key=lambda i: self.ids[i])
        wavs = [self.wavs[i] for i in indices]
        wav = torch.zeros(len(wavs), max(len(w) for w in wavs))
        for r, w in enumerate(wavs):
            wav[r, : len(w)] = torch.from_numpy(w)
        sem = None
        if self.sem is not None:
            toks = [self.sem[i] for i in indices]
            sem = torch.zeros(len(toks), max(1, max(len(t) for t in toks)), dtype=torch.long)
            for r, t in enumerate(toks):
                sem[r, : len(t)] = torch.from_numpy(t)
        return AudioBatch(wav=wav, wav_lens=torch.tensor([len(w) for w in wavs], dtype=torch.long),
                          ids=[self.ids[i] for i in indices], texts=[self.texts[i] for i in indices],
                          speakers=[self.speakers[i] for i in indices], custom=[self.custom[i] for i in indices],
                          sem=sem)

    def speaker_embeddings(self) -> dict[str, torch.Tensor]:
        if self.spk is None:
            return {}
        return {i: torch.from_numpy(np.asarray(e)) for i, e in zip(self.ids, self.spk)}


class PackSampler:
    """Duration-bucketed dynamic batches of item indices, each at most ``max_frames`` 100 Hz frames.

    The order is a function of ``(seed, epoch)``: items are shuffled, cut into pools of
    ``pool`` items, each pool sorted by duration and packed greedily, and the batches shuffled.
    """

    def __init__(self, durations: np.ndarray, max_frames: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, pool: int = 512) -> None:
        self.frames = np.ceil(np.asarray(durations) * 100).astype(np.int64)
        self.max_frames, self.seed, self.shuffle, self.drop_last, self.pool = max_frames, seed, shuffle, drop_last, pool
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.frames)) if self.shuffle else np.arange(len(self.frames))
        batches: list[list[int]] = []
        for s in range(0, len(order), self.pool):
            chunk = order[s: s + self.pool]
            if self.shuffle:
                chunk = chunk[np.argsort(self.frames[chunk], kind="stable")]
            cur: list[int] = []
            total = 0
            for i in chunk:
                f = int(self.frames[i])
                if cur and total + f > self.max_frames:
                    batches.append(cur)
                    cur, total = [], 0
                cur.append(int(i))
                total += f
            if cur and (not self.drop_last or total >= self.max_frames // 2):
                batches.append(cur)
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        yield from batches


class _PackDataset(torch.utils.data.Dataset):
    def __init__(self, split: PackedSplit) -> None:
        self.split = split

    def __getitem__(self, indices: list[int]) -> AudioBatch:
        return self.split.batch(indices)


def pack_batches(data: Any, *, seed: int = 0) -> tuple[ResumableBatches, Any, PackedSplit]:
    """Train batches, a dev-batch factory and the train split, from ``data.pack``
    (a :class:`~dsatok.train.config.DataConfig`); the counterpart of ``corpus_batches``."""
    kw = dict(min_duration=data.min_duration, max_duration=data.max_duration, threads=max(1, os.cpu_count() or 1))
    train = PackedSplit(data.pack, data.train_split, **kw)
    dev = PackedSplit(data.pack, data.dev_split, **kw)
    sampler = PackSampler(train.durations(), data.max_frames, seed=seed, shuffle=data.shuffle)
    batches = ResumableBatches(sampler, _PackDataset(train), num_workers=0, seed=seed)

    def dev_batches() -> Iterator[AudioBatch]:
        s = PackSampler(dev.durations(), data.max_frames, shuffle=False, drop_last=False)
        return (dev.batch(ix) for ix in s)

    dev_batches.split = dev  # type: ignore[attr-defined]
    return batches, dev_batches, train
