"""dsatok bench codec: each case in its own process, with RTF and peak memory of that process."""

from __future__ import annotations

from dsatok.eval.bench import bench_codec, long_audio
from dsatok.tokenizer import default_model_dir


def test_bench_codec_measures_every_case_on_the_bundled_model(tmp_path):
    wav = long_audio(None, 2.0, tmp_path / "x.wav")  # the bundled examples back to back
    rep = bench_codec(str(default_model_dir()), str(wav), [4, 2], threads=1, log=lambda *a: None)
    assert list(rep["rows"]) == ["mel", "vocoder", "encode", "decode@4", "decode@2"]
    for r in rep["rows"].values():
        assert r["rtf"] > 0 and r["audio_seconds"] == 2.0 and r["peak_rss_mib"] >= r["rss_before_mib"] > 0
    assert rep["rows"]["vocoder"]["rtf_vs_vocoder"] == 1.0


def test_bench_codec_passes_the_guidance_to_decode(tmp_path):
    import pytest

    from dsatok.eval.bench import run_case

    wav = long_audio(None, 1.0, tmp_path / "x.wav")
    with pytest.raises(RuntimeError, match="voice_cfg: expected a finite number"):  # it reached decode
        run_case("decode", str(default_model_dir()), str(wav), 1, 1, guidance={"voice_cfg": float("nan")})
    r = run_case("decode", str(default_model_dir()), str(wav), 1, 1, guidance={"voice_cfg": 1.0, "content_cfg": 1.0})
    assert r["rtf"] > 0


def test_bench_codec_steps_take_prior_and_refuse_nonsense():
    import pytest

    from dsatok.cli.bench import _steps_list
    from dsatok.config import ConfigError

    assert _steps_list("8, prior,4") == [8, "prior", 4]
    for bad in ("0", "-2", "x", ",", "8,fast"):
        with pytest.raises(ConfigError, match="--steps"):
            _steps_list(bad)
