"""Training batches from a corpus or a pack (the batching itself lives in :mod:`dsatok.data.batches`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..data.batches import AudioBatch, AudioBatchDataset, ResumableBatches, make_sampler

__all__ = ["corpus_batches"]


def corpus_batches(data: Any, *, seed: int = 0, world_size: int = 1, rank: int = 0):
    """Train batches and a dev-batch factory for a :class:`~dsatok.train.config.DataConfig`.

    Cuts outside ``[min_duration, max_duration]`` are dropped. Each rank gets its own train
    batches; dev batches come in corpus order (no shuffling, nothing dropped).

    Returns:
        ``(ResumableBatches, dev_batches)`` where ``dev_batches()`` yields ``AudioBatch``es.
    """
    from ..data.manifests import CorpusError, load_cuts

    if getattr(data, "pack", ""):
        from .pack import pack_batches

        batches, dev_fn, _ = pack_batches(data, seed=seed)
        return batches, dev_fn
    if not data.corpus:
        raise CorpusError("no corpus given: set data.corpus (or --corpus DIR, or --pack DIR)")

    def _cuts(split: str):
        cuts = load_cuts(data.corpus, split)
        kept = cuts.filter(lambda c: data.min_duration <= c.duration <= data.max_duration).to_eager()
        if len(kept) == 0:
            raise CorpusError(f"{data.corpus}: no {split} utterance between {data.min_duration} and "
                              f"{data.max_duration} s")
        return kept

    train = _cuts(data.train_split)
    sampler = make_sampler(train, max_frames=data.max_frames, num_buckets=data.num_buckets, shuffle=data.shuffle,
                           seed=seed, world_size=world_size, rank=rank)
    ds = AudioBatchDataset(data.sample_rate)
    batches = ResumableBatches(sampler, ds, num_workers=data.num_workers, seed=seed)
    dev = _cuts(data.dev_split)

    def dev_batches() -> Iterator[AudioBatch]:
        s = make_sampler(dev, max_frames=data.max_frames, num_buckets=1, shuffle=False, drop_last=False)
        return (ds[c] for c in s)

    return batches, dev_batches
