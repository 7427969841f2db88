import dataclasses
import json

import pytest

from dsatok.config import ConfigError, MelConfig, apply_overrides, from_dict, load_json, save_json, to_dict


@dataclasses.dataclass(frozen=True)
class Inner:
    dims: tuple[int, ...] = (1, 2)
    kind: str = "a"


@dataclasses.dataclass(frozen=True)
class Outer:
    mel: MelConfig = MelConfig()
    inner: Inner = Inner()
    lr: float = 1e-3
    steps: int | None = None


def test_json_round_trip(tmp_path):
    cfg = Outer(mel=MelConfig(n_mels=80), inner=Inner(dims=(3, 4, 5)), lr=2.0, steps=7)
    save_json(cfg, tmp_path / "c.json")
    back = load_json(Outer, tmp_path / "c.json")
    assert back == cfg and isinstance(back.inner.dims, tuple)


def test_unknown_key_names_the_key():
    d = to_dict(Outer())
    d["inner"]["dimz"] = [1]
    with pytest.raises(ConfigError, match=r"unknown config key 'inner\.dimz'"):
        from_dict(Outer, d)


@pytest.mark.parametrize("key,val,msg", [("lr", "fast", "expected a number"), ("steps", 1.5, "expected an integer"),
                                         ("mel", 3, "expected an object")])
def test_bad_types_fail(key, val, msg):
    d = to_dict(Outer())
    d[key] = val
    with pytest.raises(ConfigError, match=msg):
        from_dict(Outer, d)


def test_bad_literal_value():
    with pytest.raises(ConfigError, match="window"):
        from_dict(MelConfig, {"window": "kaiser"})


def test_overrides():
    cfg = apply_overrides(Outer(), ["lr=0.5", "inner.dims=[9]", "mel.n_mels=64", "inner.kind=b"])
    assert cfg.lr == 0.5 and cfg.inner.dims == (9,) and cfg.mel.n_mels == 64 and cfg.inner.kind == "b"
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        apply_overrides(Outer(), ["nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Outer(), ["lr"])


def test_load_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_json(Outer, tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(Outer, tmp_path / "bad.json")
    (tmp_path / "v.json").write_text(json.dumps({"mel": {"n_mels": -1}}))
    with pytest.raises(ConfigError, match="positive"):
        load_json(Outer, tmp_path / "v.json")
