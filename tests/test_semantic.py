"""Semantic tokenizer: shapes, bitrate, strict save/load, CTC helpers, HF local-directory back end."""

import json

import pytest
import torch

from dsatok.models.io import ModelLoadError
from dsatok.models.semantic import (SemanticConfig, SemanticTokenizer, ctc_greedy, ids_to_text, text_to_ids)


def _tiny(**kw) -> SemanticTokenizer:
    torch.manual_seed(0)
    return SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, **kw)).eval()


@pytest.mark.parametrize("rate,expect", [(25.0, 25), (50.0, 50), (12.5, 13)])
def test_encode_rates_and_lengths(rate, expect):
    tok = _tiny(frame_rate=rate)
    wav = torch.randn(2, 16000) * 0.1
    idx, lens = tok.encode(wav, torch.tensor([16000, 8000]))
    assert idx.shape == (2, expect) and lens[0] == expect and lens[1] < lens[0]
    assert idx.dtype == torch.long and int(idx.max()) < tok.codebook_size
    assert tok.embed(idx).shape == (2, expect, 32)
    assert abs(tok.bitrate - rate * torch.log2(torch.tensor(1000.0)).item()) < 1e-3


def test_batched_equals_single():
    tok = _tiny()
    a, b = torch.randn(16000) * 0.1, torch.randn(9600) * 0.1
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9600] = a, b
    idx, lens = tok.encode(batch, torch.tensor([16000, 9600]))
    single, _ = tok.encode(b[None])
    assert torch.equal(idx[1, : lens[1]], single[0])


def test_save_load_strict(tmp_path):
    tok = _tiny()
    tok.save_pretrained(tmp_path / "s")
    back = SemanticTokenizer.from_pretrained(tmp_path / "s")
    wav = torch.randn(1, 8000) * 0.1
    assert torch.equal(tok.encode(wav)[0], back.encode(wav)[0])
    assert not any(p.requires_grad for p in back.parameters())
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    cfg["config"]["layers"] = 2
    (tmp_path / "s" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="do not match"):
        SemanticTokenizer.from_pretrained(tmp_path / "s")


def test_ctc_helpers():
    ids = text_to_ids("it's ok")
    assert ids_to_text(ids) == "it's ok"
    v = 29
    seq = [ids[0], ids[0], 0, ids[1], 0, 0, ids[1]]
    lp = torch.full((1, len(seq), v), -10.0)
    for i, s in enumerate(seq):
        lp[0, i, s] = 0.0
    assert ctc_greedy(lp, torch.tensor([len(seq)])) == ["itt"]


def test_hf_backend_from_local_directory(tmp_path):
    """A tiny random HuBERT saved by the test, loaded offline with layer choice and weighted sum."""
    from transformers import HubertConfig, HubertModel

    hc = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      conv_dim=(16, 16), conv_stride=(5, 64), conv_kernel=(10, 64), num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2)
    HubertModel(hc).save_pretrained(tmp_path / "hubert")
    for weighted in (False, True):
        tok = SemanticTokenizer.from_encoder_dir(tmp_path / "hubert", SemanticConfig(hf_weighted=weighted, hf_layer=1,
                                                                                     finetune_top=1))
        assert tok.cfg.backend == "hubert"
        trainable = [n for n, p in tok.named_parameters() if p.requires_grad]
        assert any("layers.1." in n for n in trainable) and not any("layers.0." in n for n in trainable)
        idx, lens = tok.eval().encode(torch.randn(1, 16000) * 0.1)
        assert idx.shape[1] == 25 and lens[0] <= 25
        tok.save_pretrained(tmp_path / f"exp{weighted}")
        back = SemanticTokenizer.from_pretrained(tmp_path / f"exp{weighted}")  # no source directory needed
        w = torch.randn(1, 8000) * 0.1
        assert torch.equal(tok.encode(w)[0], back.encode(w)[0])
    with pytest.raises(ModelLoadError, match="not a transformers model directory"):
        SemanticTokenizer.from_encoder_dir(tmp_path / "nothing", SemanticConfig())
