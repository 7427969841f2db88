"""Layers: RoPE attention, masked pooling, SEANet shapes, FSQ round trip, DiT identity at init."""

import torch

from dsatok.nn.attention import Attention, RotaryEmbedding, apply_rope
from dsatok.nn.conv import SEANetDecoder, SEANetEncoder
from dsatok.nn.dit import DiTBlock, TimestepEmbedding
from dsatok.nn.pooling import AttentiveStatsPool
from dsatok.quant.fsq import Quantizer, bitrate, codebook_stats


def test_rope_is_relative():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(pq, pk):
        cq, sq = rope(torch.tensor([float(pq)]))
        ck, sk = rope(torch.tensor([float(pk)]))
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()
    assert torch.allclose(score(3, 1), score(10, 8), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_attention_ignores_masked_keys():
    torch.manual_seed(0)
    att = Attention(16, 2, ctx_dim=8).eval()
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 8)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 4:] = False
    a = att(x, ctx, key_mask=mask)
    ctx2 = ctx.clone()
    ctx2[:, 4:] = 100.0
    assert torch.allclose(a, att(x, ctx2, key_mask=mask), atol=1e-5)
    none = torch.zeros(2, 7, dtype=torch.bool)
    assert torch.allclose(att(x, ctx, key_mask=none), att.out.bias.expand(2, 5, 16), atol=1e-6)


def test_pooling_ignores_padding():
    torch.manual_seed(0)
    pool = AttentiveStatsPool(8, 4)
    x = torch.randn(1, 6, 8)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    padded = torch.cat([x[:, :4], torch.full((1, 2, 8), 50.0)], dim=1)
    assert torch.allclose(pool(x[:, :4]), pool(padded, mask), atol=1e-5)


def test_seanet_rates():
    enc = SEANetEncoder(100, [16, 32, 32, 32], [2, 2, 1], 24)
    dec = SEANetDecoder(24, [32, 32, 32, 32], [1, 2, 2], 40)
    for t in (97, 100, 103):
        z = enc(torch.randn(2, 100, t))
        assert z.shape == (2, 24, -(-t // 4))
        assert dec(z).shape == (2, 40, z.shape[-1] * 4)


def test_fsq_roundtrip_and_stats():
    torch.manual_seed(0)
    for layers in (1, 2):
        q = Quantizer(32, [4] * 8, layers)
        x = torch.randn(2, 9, 32, requires_grad=True)
        out, idx = q(x)
        assert idx.shape == (2, layers, 9) and int(idx.max()) < 4**8
        assert torch.allclose(q.decode(idx), out, atol=1e-5)
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0  # straight-through
    s = codebook_stats(torch.tensor([[0, 1, 1, 3]]), 4)
    assert s["usage"] == 0.75 and 2.0 < s["perplexity"] < 3.0
    assert abs(bitrate(1024, 1, 25) - 250.0) < 1e-9


def test_fsq_bound_penalty_only_beyond_limit():
    q = Quantizer(4, [8, 5, 5, 5])  # dim == len(levels): no projection, z = x
    assert float(q.bound_penalty(torch.full((1, 2, 4), 1.0))) == 0.0
    assert float(q.bound_penalty(torch.full((1, 2, 4), 5.0))) > 0.0


def test_dit_block_is_identity_at_init():
    torch.manual_seed(0)
    blk = DiTBlock(16, 2, ctx_dim=8)
    x, c = torch.randn(2, 5, 16), TimestepEmbedding(16)(torch.rand(2))
    rope = RotaryEmbedding(8)(torch.arange(7))
    kv = blk.cross_att.kv(torch.randn(2, 7, 8), rope)
    out = blk(x, c, torch.ones(2, 5, dtype=torch.bool), (rope[0][:5], rope[1][:5]), kv, torch.ones(2, 7, dtype=torch.bool))
    assert torch.allclose(out, x)


def test_spec_augment_masks_within_valid_frames_only():
    from dsatok.nn.augment import spec_augment

    torch.manual_seed(0)
    x = torch.ones(3, 50, 16)
    lens = torch.tensor([50, 20, 0])
    y = spec_augment(x, lens, time_masks=3, time_width=8, time_frac=0.2, freq_masks=0, freq_width=4)
    assert torch.equal(x, torch.ones(3, 50, 16))  # input untouched
    zeroed = (y == 0).all(-1)  # [B, T] frames fully masked
    assert zeroed[0].any() and zeroed[0].sum() <= 3 * 8
    assert not zeroed[1, 20:].any() and zeroed[1].sum() <= 3 * 4  # at most 0.2 * 20 frames per mask
    assert not zeroed[2].any()
    z = spec_augment(x, lens, time_masks=0, time_width=8, time_frac=0.2, freq_masks=2, freq_width=5)
    bands = (z == 0).all(1)  # [B, C] channels masked at every frame
    assert bands.any() and (bands.sum(-1) <= 10).all() and ((z == 0) == bands[:, None, :]).all()


def test_semantic_specaug_only_in_training():
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer

    torch.manual_seed(0)
    tok = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, dropout=0.0, specaug_time_masks=4,
                                           specaug_freq_masks=2, specaug_freq_width=20))
    wav, lens = torch.randn(1, 16000) * 0.1, torch.tensor([16000])
    tok.eval()
    a, b = tok.encoder(wav, lens)[0], tok.encoder(wav, lens)[0]
    assert torch.equal(a, b)
    tok.train()
    c = tok.encoder(wav, lens)[0]
    assert not torch.allclose(a, c)
