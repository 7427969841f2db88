"""Batches of audio from lhotse CutSets: duration-bucketed dynamic batching, resumable order.

* :func:`make_sampler` builds a ``DynamicBucketingSampler`` whose batches hold at most
  ``max_frames`` 100 Hz frames of audio in total; each rank of a distributed run gets its own
  batches (``world_size`` / ``rank``), and the order is a function of ``(seed, epoch)``.
* :class:`ResumableBatches` iterates epochs forever and can start mid-epoch: it skips the
  batches a checkpoint says were consumed by replaying the sampler only (no audio is read), so
  a resumed run sees exactly the batches an unbroken one would.
* :class:`AudioBatchDataset` turns a CutSet batch into padded 16 kHz waveforms with lengths,
  texts and speakers; the mel is computed on the training device by the task.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["AudioBatch", "AudioBatchDataset", "make_sampler", "ResumableBatches", "load_cut_audio"]


@dataclasses.dataclass
class AudioBatch:
    """A padded batch. ``wav [B, N]`` float32, ``wav_lens [B]`` samples; metadata lists of B."""

    wav: torch.Tensor
    wav_lens: torch.Tensor
    ids: list[str]
    texts: list[str]
    speakers: list[str]
    custom: list[dict]
    sem: torch.Tensor | None = None  # [B, S] precomputed semantic tokens (training packs), zero-padded

    def to(self, device: torch.device | str) -> "AudioBatch":
        return dataclasses.replace(self, wav=self.wav.to(device), wav_lens=self.wav_lens.to(device),
                                   sem=None if self.sem is None else self.sem.to(device))

    def __len__(self) -> int:
        return len(self.ids)


def load_cut_audio(cut: Any, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of a lhotse cut at ``sample_rate`` (soundfile + soxr; no torchaudio)."""
    import soundfile as sf

    from ..audio import _to_mono_resampled

    src = cut.recording.sources[0]
    if src.type != "file":
        audio = cut.load_audio()  # lhotse handles in-memory / url sources itself
        data, sr = audio.T, cut.sampling_rate
    else:
        sr = cut.recording.sampling_rate
        start = int(round(cut.start * sr))
        frames = int(round(cut.duration * sr))
        data, sr = sf.read(src.source, start=start, frames=frames, dtype="float32", always_2d=True)
    return _to_mono_resampled(np.asarray(data, dtype=np.float32), sr, sample_rate, src.source)


class AudioBatchDataset(Dataset):
    """Map-style lhotse dataset: ``dataset[cuts] -> AudioBatch`` (padded with zeros)."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate

    def __getitem__(self, cuts: Any) -> AudioBatch:
        cuts = sorted(cuts, key=lambda c: c.id)  # batch content order independent of bucketing internals
        wavs = [load_cut_audio(c, self.sample_rate) for c in cuts]
        n = max(len(w) for w in wavs)
        out = torch.zeros(len(wavs), n)
        for i, w in enumerate(wavs):
            out[i, : len(w)] = torch.from_numpy(w)
        sups = [c.supervisions[0] if c.supervisions else None for c in cuts]
        return AudioBatch(
            wav=out,
            wav_lens=torch.tensor([len(w) for w in wavs], dtype=torch.long),
            ids=[c.id for c in cuts],
            texts=[(s.text or "") if s else "" for s in sups],
            speakers=[(s.speaker or "") if s else "" for s in sups],
            custom=[dict(s.custom or {}) if s else {} for s in sups],
        )


def make_sampler(cuts: Any, *, max_frames: int, num_buckets: int = 8, shuffle: bool = True, seed: int = 0,
                 world_size: int = 1, rank: int = 0, drop_last: bool = True):
    """``DynamicBucketingSampler`` with at most ``max_frames`` 100 Hz frames of audio per batch."""
    from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler

    if num_buckets <= 1:  # no bucketing (e.g. a dev set in corpus order)
        return DynamicCutSampler(cuts, max_duration=max_frames / 100.0, shuffle=shuffle, seed=seed,
                                 world_size=world_size, rank=rank, drop_last=drop_last)
    return DynamicBucketingSampler(
        cuts, max_duration=max_frames / 100.0, num_buckets=num_buckets, shuffle=shuffle, seed=seed,
        world_size=world_size, rank=rank, drop_last=drop_last, num_cuts_for_bins_estimate=2000,
        buffer_size=5000,
    )


class ResumableBatches:
    """Endless iterator of batches over epochs, resumable at ``(epoch, batch_in_epoch)``.

    Args:
        sampler: a lhotse sampler (``set_epoch`` decides the order).
        dataset: maps a CutSet batch to a tensor batch.
        num_workers: DataLoader workers (the sampler stays in the main process).
    """

    def __init__(self, sampler: Any, dataset: Dataset, num_workers: int = 0, seed: int = 0) -> None:
        self.sampler = sampler
        self.dataset = dataset
        self.num_workers = num_workers
        self.seed = seed
        self.epoch = 0
        self.batch_in_epoch = 0

    def state_dict(self) -> dict[str, int]:
        """Position of the next batch to be consumed."""
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, sd: dict[str, int]) -> None:
        self.epoch = int(sd["epoch"])
        self.batch_in_epoch = int(sd["batch_in_epoch"])

    def preview(self, n: int) -> Iterator[Any]:
        """The next ``n`` batches, leaving the resume position where it was: a trainer iterating
        afterwards starts at the same batch (used to measure data statistics before training)."""
        state = self.state_dict()
        it = iter(self)
        try:
            for _ in range(n):
                yield next(it)
        finally:
            it.close()  # shuts the DataLoader (and its workers) down
            self.load_state_dict(state)

    def _epoch_batches(self, skip: int) -> Iterator[Any]:
        self.sampler.set_epoch(self.epoch)
        for i, cuts in enumerate(self.sampler):
            if i >= skip:
                yield cuts

    def __iter__(self) -> Iterator[Any]:
        while True:
            skip = self.batch_in_epoch
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            loader = DataLoader(_ListSampled(self.dataset, functools.partial(self._epoch_batches, skip)), batch_size=None,
                                num_workers=self.num_workers, generator=gen,
                                persistent_workers=False, prefetch_factor=2 if self.num_workers else None)
            produced = 0
            for batch in loader:
                produced += 1
                self.batch_in_epoch += 1
                yield batch
            if produced == 0 and skip == 0:
                raise RuntimeError("the sampler produced no batch: corpus empty or max_frames too small")
            self.epoch += 1
            self.batch_in_epoch = 0


class _ListSampled(torch.utils.data.IterableDataset):
    """Feeds sampler batches to the dataset; with workers, batches are dealt round-robin."""

    def __init__(self, dataset: Dataset, batches: Callable[[], Iterator[Any]]) -> None:
        self.dataset = dataset
        self.batches = batches

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        if info is None:
            for cuts in self.batches():
                yield self.dataset[cuts]
            return
        for i, cuts in enumerate(self.batches()):
            if i % info.num_workers == info.id:
                yield self.dataset[cuts]
