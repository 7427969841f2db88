import itertools

import torch

from dsatok.data.manifests import load_cuts
from dsatok.data.batches import AudioBatchDataset, ResumableBatches, make_sampler


def _ids(batches, n):
    return [tuple(b.ids) for b in itertools.islice(iter(batches), n)]


def _batches(corpus, workers=0, seed=0, max_frames=2500):
    cuts = load_cuts(corpus, "train")
    return ResumableBatches(make_sampler(cuts, max_frames=max_frames, num_buckets=2, seed=seed),
                            AudioBatchDataset(), num_workers=workers, seed=seed)


def test_batches_respect_frame_budget_and_pad(tiny_corpus):
    for b in itertools.islice(iter(_batches(tiny_corpus)), 6):
        assert b.wav.shape[0] == len(b.ids) == b.wav_lens.shape[0]
        assert int(b.wav_lens.sum()) / 160 <= 2500
        assert b.wav.shape[1] == int(b.wav_lens.max())
        i = int(b.wav_lens.argmin())
        assert torch.all(b.wav[i, int(b.wav_lens[i]):] == 0)
        assert all(b.texts) and all(b.speakers)


def test_workers_give_the_same_batches_in_the_same_order(tiny_corpus):
    a = _ids(_batches(tiny_corpus, workers=0), 12)
    b = _ids(_batches(tiny_corpus, workers=2), 12)
    assert a == b


def test_epochs_reshuffle_and_resume_mid_epoch(tiny_corpus):
    ref = _batches(tiny_corpus)
    it = iter(ref)
    seq = [tuple(next(it).ids) for _ in range(15)]
    epochs = ref.epoch
    assert epochs >= 1  # the tiny corpus has fewer than 15 batches per epoch
    # resume at batch 7 of a fresh iterator: the same continuation
    r = _batches(tiny_corpus)
    it2 = iter(r)
    for _ in range(7):
        next(it2)
    st = r.state_dict()
    r2 = _batches(tiny_corpus)
    r2.load_state_dict(st)
    assert _ids(r2, 8) == seq[7:15]
    # a different seed gives a different order
    assert _ids(_batches(tiny_corpus, seed=1), 6) != seq[:6]


def test_tensorboard_media(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from dsatok.train.media import log_audio, log_mel, mel_image

    img = mel_image(torch.randn(100, 50))
    assert img.shape == (3, 100, 50) and 0 <= img.min() and img.max() <= 1
    w = SummaryWriter(str(tmp_path))
    log_mel(w, "mel", torch.randn(100, 50), 1)
    log_audio(w, "audio", torch.randn(1600) * 0.1, 1)
    w.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path), size_guidance={"images": 0, "audio": 0})
    ea.Reload()
    assert ea.Tags()["images"] == ["mel"] and ea.Tags()["audio"] == ["audio"]


def test_preview_leaves_the_resume_position(tiny_corpus):
    for workers in (0, 1):
        b = _batches(tiny_corpus, workers=workers)
        ref = _ids(_batches(tiny_corpus), 4)
        seen = [tuple(x.ids) for x in b.preview(3)]
        assert seen == ref[:3] and b.state_dict() == {"epoch": 0, "batch_in_epoch": 0}
        assert _ids(b, 4) == ref
