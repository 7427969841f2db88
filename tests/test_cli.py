import subprocess
import sys

from dsatok.cli.main import main


def test_import_dsatok_is_light():
    code = ("import sys, dsatok; dsatok.__version__; "
            "heavy = [m for m in ('torch', 'lhotse', 'accelerate', 'transformers', 'faster_whisper', 'resemblyzer', "
            "'matplotlib', 'tensorboard') if m in sys.modules]; print(heavy); assert not heavy, heavy; "
            "import dsatok.audio, dsatok.config; "
            "heavy = [m for m in ('lhotse', 'accelerate', 'transformers', 'faster_whisper', 'resemblyzer', "
            "'matplotlib', 'tensorboard') if m in sys.modules]; assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_m_dsatok_help():
    r = subprocess.run([sys.executable, "-m", "dsatok", "corpus", "build", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--hours" in r.stdout


def test_bad_input_gives_one_line_error(capsys, tmp_path):
    assert main(["corpus", "build", str(tmp_path / "c"), "--hours", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dsatok: error: --hours must be > 0, got -1.0"
    assert main(["corpus", "import", str(tmp_path / "nope.tsv"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dsatok: error: ") and "nope.tsv" in err and "\n" not in err
    assert main(["corpus", "report", str(tmp_path)]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main(["eval", "vocoder", f"v={tmp_path / 'novoc'}", "--corpus", str(tmp_path), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "novoc: vocoder directory not found" in err and "\n" not in err
    assert main(["eval", "vocoder", "griffinlim", "--corpus", str(tmp_path), "-o", str(tmp_path)]) == 2
    assert "expected NAME=DIR" in capsys.readouterr().err


def test_cli_build_small(tmp_path, capsys):
    rc = main(["corpus", "build", str(tmp_path / "c"), "--hours", "0.01", "--engines", "mbrola",
               "--test-speakers", "3", "--dev-speakers", "2", "--pairs", "3", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "3 recombination pairs" in out


def test_info_preset_counts_the_parameters_the_training_preset_would_build(capsys):
    import json

    from dsatok.cli.main import main
    from dsatok.config import from_dict
    from dsatok.models.acoustic import AcousticTokenizer
    from dsatok.models.flow_decoder import FlowDecoder
    from dsatok.train.acoustic import ACOUSTIC_PRESETS, AcousticStageConfig

    assert main(["info", "--preset", "tiny"]) == 0
    rep = json.loads(capsys.readouterr().out)
    cfg = from_dict(AcousticStageConfig, {k: v for k, v in ACOUSTIC_PRESETS["tiny"].items() if k != "train"})
    real = sum(p.numel() for m in (AcousticTokenizer(cfg.acoustic), FlowDecoder(cfg.decoder)) for p in m.parameters())
    assert rep["total"] == real and rep["paper_total_millions"] == 430.0
    assert main(["info", "--preset", "paper"]) == 0
    paper = json.loads(capsys.readouterr().out)
    assert paper["parameters"]["decoder"] > 50 * rep["parameters"]["decoder"] and paper["total_millions"] > 100


def test_train_help_lists_each_stages_real_presets():
    from dsatok.cli.train import PRESETS, STAGES
    from dsatok.train.acoustic import ACOUSTIC_PRESETS
    from dsatok.train.dasheng import DASHENG_STAGE_PRESETS
    from dsatok.train.enhance import ENHANCE_STAGE_PRESETS
    from dsatok.train.refiner import REFINER_STAGE_PRESETS
    from dsatok.train.semantic import SEMANTIC_PRESETS
    from dsatok.train.vocoder import VOCODER_STAGE_PRESETS

    tables = {"semantic": SEMANTIC_PRESETS, "vocoder": VOCODER_STAGE_PRESETS, "acoustic": ACOUSTIC_PRESETS,
              "dasheng": DASHENG_STAGE_PRESETS, "enhance": ENHANCE_STAGE_PRESETS, "refiner": REFINER_STAGE_PRESETS}
    assert set(PRESETS) == set(STAGES) == set(tables)
    for stage, table in tables.items():
        assert set(PRESETS[stage]) == set(table), stage


def test_export_finds_the_stage_of_a_run_config(tmp_path):
    import dataclasses
    import json

    import pytest

    from dsatok.cli.codec import _run_stage
    from dsatok.config import ConfigError
    from dsatok.train.acoustic import AcousticStageConfig
    from dsatok.train.dasheng import DashengStageConfig
    from dsatok.train.vocoder import VocoderStageConfig

    from dsatok.train.refiner import RefinerStageConfig

    for name, cfg in (("stage2", AcousticStageConfig()), ("vocoder", VocoderStageConfig()), ("dasheng", DashengStageConfig()),
                      ("refiner", RefinerStageConfig())):
        (tmp_path / "c.json").write_text(json.dumps(dataclasses.asdict(cfg)))
        assert _run_stage(tmp_path / "c.json")[0] == name
    (tmp_path / "c.json").write_text(json.dumps({"model": {}, "lm_layers": 2}))
    with pytest.raises(ConfigError, match="not the config of"):
        _run_stage(tmp_path / "c.json")
    # a stage's own config with a bad value is reported as such, not as a foreign config
    bad = dataclasses.asdict(AcousticStageConfig())
    bad["recomb_prob"] = 2.0
    (tmp_path / "c.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="recomb_prob") as e:
        _run_stage(tmp_path / "c.json")
    assert "not the config of" not in str(e.value)
    # a run written before a field existed still loads (missing keys take their defaults)
    old = dataclasses.asdict(VocoderStageConfig())
    del old["init_from"]
    (tmp_path / "c.json").write_text(json.dumps(old))
    assert _run_stage(tmp_path / "c.json")[0] == "vocoder"


def test_bad_decode_flags_are_usage_errors_before_any_work(tmp_path):
    """--steps 0 or a non-finite guidance scale used to reach the sampler and end in a traceback."""
    wav = str(tmp_path / "missing.wav")  # never read: the flags are refused first
    for flags, msg in ((["--steps", "0"], "argument --steps: must be at least 1, got 0"),
                       (["--cfg", "nan"], "argument --cfg: must be a finite number, got nan"),
                       (["--voice-cfg", "x"], "argument --voice-cfg: expected a number, got 'x'"),
                       (["--content-cfg", "inf"], "argument --content-cfg: must be a finite number, got inf")):
        for cmd in (["reconstruct", wav, "-o", str(tmp_path / "o.wav")], ["eval", "recon", "--corpus", wav, "-o", wav]):
            r = subprocess.run([sys.executable, "-m", "dsatok", *cmd, *flags], capture_output=True, text=True)
            assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(msg), (cmd, flags, r.stderr)
            assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.wav").exists()
