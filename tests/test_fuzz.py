"""Property-based tests of the public surface (issue 31): whatever goes in, ``encode`` / ``Tokens.load`` /
``decode`` either succeed with finite audio of the promised length or raise one of dsatok's own
errors with a one-line message, never anything else.

Three input spaces, each on a tiny random-initialised model: audio arrays (and files, lists)
into ``encode``; damaged token files into ``Tokens.load`` + ``decode``; hand-made ``Tokens`` and
decode options into ``decode``. Sizes are bounded (≤ 1.4 s of audio, ≤ 60 semantic tokens), so a
case that hangs fails the per-test timeout. The default suite runs ``FAST`` examples per space,
``-m slow`` runs ``SLOW`` per space (``--hypothesis-show-statistics`` prints the counts).
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dsatok.audio import AudioError
from dsatok.config import ConfigError
from dsatok.models.io import ModelLoadError
from dsatok.tokens import TokenFileError, Tokens

DSATOK_ERRORS = (AudioError, TokenFileError, ConfigError, ModelLoadError)
FAST, SLOW = 110, 1100
SR = 16000


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def model():
    from test_tokenizer import tiny_model

    torch.set_num_threads(1)
    return tiny_model()


def _one_line_dsatok_error(e: BaseException) -> None:
    """The only acceptable failure: a dsatok error whose message is one non-empty line."""
    assert isinstance(e, DSATOK_ERRORS), f"{type(e).__name__} escaped: {e}"
    event(f"refused: {type(e).__name__}")
    msg = str(e)
    assert msg and "\n" not in msg, repr(msg)


def _check_decoded(model, tok: Tokens, wavs: list[torch.Tensor]) -> None:
    assert len(wavs) == len(tok)
    event("decoded")
    for w, n in zip(wavs, tok.num_samples.tolist()):
        assert w.dim() == 1 and w.shape[0] == n and bool(torch.isfinite(w).all())


def _decode(model, tok: Tokens, **kw) -> None:
    """Decode and check; a dsatok error is accepted (its message checked), anything else fails."""
    try:
        wavs = model.decode(tok, **{"steps": 1, **kw})
    except Exception as e:  # noqa: BLE001 - the property is about which exceptions escape
        _one_line_dsatok_error(e)
        return
    _check_decoded(model, tok, wavs)


# ----------------------------------------------------------------------------- audio into encode

DTYPES = ("float32", "float32", "float64", "float16", "int16", "int16", "int32", "int8", "uint8", "int64", "uint16",
          "bool", "complex64", "object")
KINDS = ("speech", "speech", "speech", "zeros", "const", "nan", "inf", "huge", "tiny", "full_scale")
LENGTHS = (0, 1, 159, 160, 1599, 1600, 1601, 4000, 12000, 22000)


def _signal(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """A float64 signal of ``shape`` in roughly [-1, 1] (or deliberately not, by ``kind``)."""
    n = shape[-1] if shape else 1
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 400) * t) + 0.05 * rng.standard_normal(shape)
    x = np.broadcast_to(x, shape).copy() if shape else np.array(x[0])
    if kind == "zeros":
        x = np.zeros(shape)
    elif kind == "const":
        x = np.full(shape, 0.5)
    elif kind == "nan" and x.size:
        x.flat[rng.integers(x.size)] = np.nan
    elif kind == "inf" and x.size:
        x.flat[rng.integers(x.size)] = -np.inf
    elif kind == "huge":
        x = x * 3e4
    elif kind == "tiny":
        x = x * 1e-9
    elif kind == "full_scale":
        x = np.clip(x * 4, -1, 1)
    return x


def _as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        y = np.nan_to_num(np.clip(x, -1, 1)) * (info.max if dtype.startswith("int") else info.max / 2)
        with np.errstate(invalid="ignore"):
            return np.asarray(y + (0 if dtype.startswith("int") else info.max / 2)).astype(dtype)
    if dtype == "bool":
        return x > 0
    if dtype == "complex64":
        return (x + 0.1j).astype(np.complex64)
    if dtype == "object":
        return x.astype(object)
    with np.errstate(over="ignore"):
        return x.astype(dtype)


@st.composite
def array_inputs(draw):
    """``(audio, lengths, n_items or None)``: an array / tensor / list / file, possibly bad."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if draw(st.booleans()):  # half the cases are plausible input, so the deep paths run too
        b = draw(st.integers(1, 3))
        shape = (b, draw(st.integers(1600, 22000)))[2 - draw(st.integers(1, 2)):]
        x = np.asarray(_as_dtype(_signal(rng, shape, "speech"), draw(st.sampled_from(("float32", "int16", "float64")))))
        return (torch.from_numpy(x) if draw(st.booleans()) else x), None
    ndim = draw(st.sampled_from((1, 1, 1, 2, 2, 0, 3)))
    n = draw(st.sampled_from(LENGTHS) | st.integers(0, 22000))
    b = draw(st.integers(0, 3))
    shape = {0: (), 1: (n,), 2: (b, n), 3: (b, 2, n)}[ndim]
    x = np.asarray(_as_dtype(np.asarray(_signal(rng, shape, draw(st.sampled_from(KINDS)))),
                             draw(st.sampled_from(DTYPES))))
    if draw(st.booleans()) and x.dtype != object:
        try:
            x = torch.from_numpy(np.ascontiguousarray(x))
        except TypeError:
            pass
    lengths = None
    if ndim == 2 and draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(("ok", "ok", "range", "size", "float", "2d", "list")))
        vals = [int(v) for v in rng.integers(1, max(2, n + 1), size=b)]
        if kind == "range":
            vals = [draw(st.integers(-3, n + 3)) for _ in range(b)]
        elif kind == "size":
            vals = vals + [1]
        lengths = {"float": torch.tensor(vals, dtype=torch.float32), "2d": torch.tensor([vals]),
                   "list": vals}.get(kind, torch.tensor(vals, dtype=torch.long))
    return x, lengths


@st.composite
def any_audio(draw):
    """An array input, a list of them (possibly empty, possibly with junk), or a path."""
    how = draw(st.sampled_from(("array",) * 6 + ("list", "list", "junk")))
    if how == "array":
        return draw(array_inputs())
    if how == "list":
        items = [draw(array_inputs())[0] for _ in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):
            items.append(draw(st.sampled_from(("/nonexistent/x.wav", 3, None, [0.1, 0.2], b"RIFF"))))
        return items, None
    return draw(st.sampled_from((None, 3.5, "", "/nonexistent.wav", {"x": 1}, b"\x00" * 100, [], ()))), None


def _encode_property(model, case) -> None:
    audio, lengths = case
    try:
        tok = model.encode(audio, lengths)
    except Exception as e:  # noqa: BLE001
        _one_line_dsatok_error(e)
        return
    assert len(tok) >= 1 and bool((tok.num_samples >= SR * 0.1).all())
    tok.validate()  # what encode makes is well-formed
    _decode(model, tok)


@_settings(FAST)
@given(case=any_audio())
def test_fuzz_audio_into_encode(model, case):
    _encode_property(model, case)


@pytest.mark.slow
@_settings(SLOW)
@given(case=any_audio())
def test_fuzz_audio_into_encode_slow(model, case):
    _encode_property(model, case)


RATES = (1, 100, 3999, 4000, 8000, 16000, 16000, 22050, 44100, 44100, 192000, 192001, 1_000_000)


@st.composite
def audio_files(draw):
    """Bytes of a WAV file with any declared rate / channels / length, or damaged bytes."""
    import soundfile as sf

    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    rate = draw(st.sampled_from(RATES))
    frames = draw(st.sampled_from((0, 1, 400, 4000, 12000, 12000)))
    ch = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(KINDS[:5]))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.wav"
        sig = np.nan_to_num(_signal(rng, (ch, frames), kind)).clip(-1, 1).astype(np.float32).T
        sf.write(str(p), sig, rate, subtype=draw(st.sampled_from(("PCM_16", "FLOAT", "PCM_U8"))))
        data = bytearray(p.read_bytes())
    damage = draw(st.sampled_from(("none", "none", "none", "truncate", "flip", "rate", "garbage")))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        i = draw(st.integers(0, len(data) * 8 - 1))
        data[i // 8] ^= 1 << (i % 8)
    elif damage == "rate" and len(data) >= 28:  # the fmt chunk's sample rate (canonical 44-byte header)
        data[24:28] = struct.pack("<I", draw(st.sampled_from((0, 1, 2 ** 32 - 1, 96000))))
    elif damage == "garbage":
        data = bytes(rng.integers(0, 256, size=draw(st.integers(0, 300)), dtype=np.uint8))
    return bytes(data)


def _file_property(model, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.wav"
        p.write_bytes(data)
        _encode_property(model, (p, None))


@_settings(FAST // 2)
@given(data=audio_files())
def test_fuzz_audio_files_into_encode(model, data):
    _file_property(model, data)


@pytest.mark.slow
@_settings(SLOW // 2)
@given(data=audio_files())
def test_fuzz_audio_files_into_encode_slow(model, data):
    _file_property(model, data)


# ----------------------------------------------------------------------------- damaged token files

@pytest.fixture(scope="module")
def token_file(model, tmp_path_factory) -> bytes:
    t = np.arange(int(0.7 * SR)) / SR
    a = torch.from_numpy((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))
    p = tmp_path_factory.mktemp("tok") / "x.dsatok"
    model.encode([a, a[: int(0.4 * SR)] * 0.5]).save(p)
    return p.read_bytes()


ODD_VALUES = (None, [], {}, "x", -1, 0, 1.5, True, [1, 2, 3], [0, 0], [25.0, -50.0], 2 ** 70, "1", [1e400, 1])


def _rewrite(data: bytes, draw) -> bytes:
    """Re-save the token file with one field of its header or one of its tensors changed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t"
        p.write_bytes(data)
        with safe_open(str(p), framework="pt") as f:
            meta = json.loads(f.metadata()["dsatok"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        target = draw(st.sampled_from(("header", "tensor", "tensor", "value")))
        if target == "header":
            key = draw(st.sampled_from(("format", "version", "fingerprint", "frame_rates", "codebook_sizes",
                                        "sample_rate")))
            if draw(st.booleans()):
                meta.pop(key)
            else:
                meta[key] = draw(st.sampled_from(ODD_VALUES))
        else:
            key = draw(st.sampled_from(sorted(tensors)))
            v = tensors[key]
            if target == "tensor":
                op = draw(st.sampled_from(("float", "bool", "int8", "int64", "drop", "unsqueeze", "batch", "empty")))
                if op == "drop":
                    tensors.pop(key)
                elif op == "unsqueeze":
                    tensors[key] = v[None].contiguous()
                elif op == "batch":
                    tensors[key] = v[:1].contiguous()
                elif op == "empty":
                    tensors[key] = v[:0].contiguous()
                else:
                    tensors[key] = v.to({"float": torch.float32, "bool": torch.bool, "int8": torch.int8,
                                         "int64": torch.int64}[op])
            elif v.numel():
                flat = v.reshape(-1).clone()
                flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from(
                    (-1, 0, 1, 2, 999, 1000, 1024, 65535, 65536, 2 ** 31 - 1, -(2 ** 31), 100000, 48000)))
                tensors[key] = flat.reshape(v.shape)
        save_file(tensors, str(p), metadata={"dsatok": json.dumps(meta)})
        return p.read_bytes()


@st.composite
def damaged_token_files(draw, base: bytes):
    data = bytearray(base)
    for _ in range(draw(st.sampled_from((0, 0, 1, 1, 2, 3)))):
        op = draw(st.sampled_from(("flip", "flip", "truncate", "overwrite", "append", "rewrite", "rewrite")))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) * 8 - 1))
            data[i // 8] ^= 1 << (i % 8)
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "overwrite" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i : i + 4] = draw(st.binary(min_size=1, max_size=4))
        elif op == "append":
            data += draw(st.binary(max_size=64))
        elif op == "rewrite":
            try:
                data = bytearray(_rewrite(bytes(data), draw))
            except Exception:  # noqa: BLE001 - already damaged beyond re-reading: keep the bytes
                pass
    return bytes(data)


def _token_file_property(model, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.dsatok"
        p.write_bytes(data)
        try:
            tok = Tokens.load(p)
        except Exception as e:  # noqa: BLE001
            _one_line_dsatok_error(e)
            assert str(p) in str(e)  # the message names the file
            return
        _decode(model, tok)


@_settings(FAST)
@given(data=st.data())
def test_fuzz_damaged_token_files(model, token_file, data):
    _token_file_property(model, data.draw(damaged_token_files(token_file)))


@pytest.mark.slow
@_settings(SLOW)
@given(data=st.data())
def test_fuzz_damaged_token_files_slow(model, token_file, data):
    _token_file_property(model, data.draw(damaged_token_files(token_file)))


# ----------------------------------------------------------------------------- hand-made Tokens

ODD_INTS = (-1, 0, 1, 2, 999, 1000, 4095, 65536, 2 ** 40)


@st.composite
def hand_made(draw, model):
    """``(tokens, decode kwargs)``: mostly well-formed tokens of ``model`` with 0-2 things wrong."""
    b = draw(st.integers(1, 3))
    ts = draw(st.integers(3, 60))
    ta = 2 * ts + draw(st.integers(-3, 3)) if draw(st.booleans()) else draw(st.integers(1, 120))
    ta = max(ta, 1)
    s_len = [draw(st.integers(1, ts)) for _ in range(b)]
    a_len = [draw(st.integers(1, ta)) for _ in range(b)]
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31)))
    f = dict(semantic=torch.randint(0, model.codebook_sizes[0], (b, ts), generator=g),
             acoustic=torch.randint(0, model.codebook_sizes[1], (b, model.acoustic_layers, ta), generator=g),
             semantic_lengths=torch.tensor(s_len), acoustic_lengths=torch.tensor(a_len),
             num_samples=torch.tensor([draw(st.integers(1600, max(1600, n * 640 + 639))) for n in s_len]),
             frame_rates=model.frame_rates, codebook_sizes=model.codebook_sizes, sample_rate=model.sample_rate,
             fingerprint=model.fingerprint)
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 2)))):
        key = draw(st.sampled_from(sorted(f)))
        v = f[key]
        if key in ("frame_rates", "codebook_sizes", "sample_rate", "fingerprint"):
            f[key] = draw(st.sampled_from(({"frame_rates": (25.0, 0.0), "codebook_sizes": (1000, 3),
                                            "sample_rate": 8000, "fingerprint": "0" * 16}[key], None, -1, "x")))
        elif isinstance(v, torch.Tensor):
            op = draw(st.sampled_from(("value", "value", "dtype", "shape", "batch", "numpy")))
            if op == "value" and v.numel():
                v = v.clone()
                v.view(-1)[draw(st.integers(0, v.numel() - 1))] = draw(st.sampled_from(ODD_INTS))
            elif op == "dtype":
                v = v.to(draw(st.sampled_from((torch.float32, torch.bool, torch.int32, torch.uint8, torch.float64))))
            elif op == "shape":
                v = draw(st.sampled_from((v[None], v.reshape(-1), v[..., :0])))
            elif op == "batch":
                v = torch.cat([v, v[:1]])
            else:
                v = v.numpy()
            f[key] = v
    kw = {}
    if draw(st.integers(0, 3)) == 0:
        kw = {k: draw(st.sampled_from(vals)) for k, vals in (
            ("steps", (1, 1, 2, 0, -1, 1.5, True, 10 ** 6, "2")),
            ("cfg_scale", (1.0, 0.0, 2, math.nan, math.inf, -1.0, 1e9)),
            ("solver", ("euler", "midpoint", "rk4", "", 3)),
            ("sway", ("default", None, -1.0, 0.5, 5.0, math.nan)),
            ("seed", (0, 1, -1, 2 ** 70, 1.5, "x")),
            ("chunk_frames", (1500, 100, 120, 0, -5, 2.5)),
            ("overlap", (48, 0, 10 ** 6, -1)))}
    return Tokens(**f), kw


def _hand_made_property(model, case) -> None:
    tok, kw = case
    _decode(model, tok, **kw)


@_settings(FAST)
@given(data=st.data())
def test_fuzz_hand_made_tokens_into_decode(model, data):
    _hand_made_property(model, data.draw(hand_made(model)))


@pytest.mark.slow
@_settings(SLOW)
@given(data=st.data())
def test_fuzz_hand_made_tokens_into_decode_slow(model, data):
    _hand_made_property(model, data.draw(hand_made(model)))
