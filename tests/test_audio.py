import numpy as np
import pytest
import soundfile as sf

from dsatok.audio import AudioError, check_samples, load, save


def _sine(sr, dur, f=440.0, ch=1):
    t = np.arange(int(sr * dur)) / sr
    x = 0.5 * np.sin(2 * np.pi * f * t).astype(np.float32)
    return np.stack([x] * ch, 1) if ch > 1 else x


def test_load_resamples_and_mixes_to_mono(tmp_path):
    p = tmp_path / "stereo.wav"
    x = _sine(22050, 1.0, ch=2)
    x[:, 1] = 0.0  # right channel silent: mono mix halves the amplitude
    sf.write(p, x, 22050)
    y = load(p, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) <= 1
    assert 0.2 < np.abs(y).max() < 0.3


def test_load_flac_roundtrip(tmp_path):
    p = tmp_path / "a.flac"
    save(p, _sine(16000, 0.5), 16000)
    y = load(p)
    assert len(y) == 8000 and np.allclose(y, _sine(16000, 0.5), atol=1e-3)


@pytest.mark.parametrize("case,reason", [
    ("missing", "file not found"),
    ("dir", "is a directory"),
    ("garbage", "unreadable audio"),
    ("empty", "empty audio"),
    ("short", "too short"),
    ("nan", "NaN"),
    ("silent", "silent"),
])
def test_load_errors_are_one_line_and_name_the_file(tmp_path, case, reason):
    p = tmp_path / f"{case}.wav"
    if case == "dir":
        p.mkdir()
    elif case == "garbage":
        p.write_bytes(b"this is not audio at all" * 10)
    elif case == "empty":
        sf.write(p, np.zeros(0, np.float32), 16000)
    elif case == "short":
        sf.write(p, _sine(16000, 0.05), 16000)
    elif case == "nan":
        x = _sine(16000, 0.5)
        x[100] = np.nan
        sf.write(p, x, 16000, subtype="FLOAT")
    elif case == "silent":
        sf.write(p, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError) as e:
        load(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and reason in msg


def test_check_samples_rejects_multichannel_array():
    with pytest.raises(AudioError, match="mono"):
        check_samples(np.ones((2, 16000), np.float32), 16000)


def test_save_is_atomic_no_partial_left(tmp_path):
    p = tmp_path / "out.wav"
    save(p, _sine(16000, 0.3))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.wav"]
    assert sf.info(p).frames == 4800
