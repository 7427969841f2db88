"""The flow decoder's semantic prior (issue 29): code values, persistence, and no dead stream."""

import dataclasses

import pytest
import torch

from dsatok.config import ConfigError
from dsatok.models.flow_decoder import DecoderConfig, FlowDecoder, prior_mel, sample
from dsatok.models.prior import fsq_code_table

LEVELS = (4, 4, 4)
DEC = DecoderConfig(dim=32, blocks=2, heads=2, sem_codebook_size=64, ac_latent_dim=16, ac_dec_dims=(16, 16, 16, 16),
                    prior=True, sem_levels=LEVELS, prior_dim=32, prior_token_blocks=2, prior_mel_blocks=1,
                    start="prior", adapter_zero_init=False)


@pytest.mark.parametrize("levels", [(4, 4, 4, 4, 4), (8, 8, 8, 6, 5), (8, 5, 5, 5)])
def test_code_table_is_the_fsq_implicit_codebook(levels):
    from vector_quantize_pytorch import FSQ

    fsq = FSQ(levels=list(levels))
    n = 1
    for lv in levels:
        n *= lv
    idx = torch.arange(n)
    assert torch.allclose(fsq_code_table(levels), fsq.indices_to_codes(idx).float(), atol=1e-6)


def test_prior_config_is_checked():
    with pytest.raises(ConfigError, match="sem_levels"):
        dataclasses.replace(DEC, sem_levels=(4, 4))
    with pytest.raises(ConfigError, match="start"):
        dataclasses.replace(DEC, prior=False, sem_levels=(), start="prior")
    with pytest.raises(ConfigError, match="start_sigma"):
        dataclasses.replace(DEC, start_sigma=0.0)


def test_prior_decoder_round_trip(tmp_path):
    torch.manual_seed(0)
    dec = FlowDecoder(DEC).eval()
    dec.save_pretrained(tmp_path / "d")
    back = FlowDecoder.from_pretrained(tmp_path / "d")
    assert back.cfg == dec.cfg
    for k, v in dec.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    assert "prior.codes" not in dec.state_dict()  # derived from the config, not stored


def _toy_batch(g: torch.Generator, b: int, table: torch.Tensor, voice_map: torch.Tensor):
    """Tokens and a per-utterance acoustic vector; the mel is the tokens' pattern plus the voice's offset."""
    t_s, t_mel = 10, 40
    sem = torch.randint(0, 64, (b, t_s), generator=g)
    voice = torch.randn(b, 16, generator=g)
    ac_q = voice[:, None, :].expand(b, 20, 16).contiguous()
    x1 = table[sem].repeat_interleave(4, dim=1).transpose(1, 2) + (voice @ voice_map.T)[..., None]
    return sem, ac_q, x1


def _train_toy(cfg: DecoderConfig, steps: int):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(64, 4, generator=g) @ torch.randn(4, 100, generator=g) / 2  # low-rank patterns
    voice_map = torch.randn(100, 16, generator=g) * 0.5
    dec = FlowDecoder(cfg)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    lens = torch.full((16,), 40)
    first = last = None
    for _ in range(steps):
        sem, ac_q, x1 = _toy_batch(g, 16, table, voice_map)
        ctx = dec.prepare(sem, lens, 40, ac_q, torch.full((16,), 20))
        x0 = dec.start_noise(ctx, torch.randn(x1.shape, generator=g), detach=True)
        t = torch.rand(16, generator=g)
        xt = (1 - t)[:, None, None] * x0 + t[:, None, None] * x1
        loss = ((dec.velocity(xt, t, ctx) - (x1 - x0)) ** 2).mean()
        if ctx.mu is not None:
            loss = loss + (ctx.mu - x1).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        last = float(loss.detach())
    return dec.eval(), table, voice_map, first, last


@pytest.mark.parametrize("kind", ["convnext", "renderer", "renderer+attn"])
def test_output_depends_on_each_stream_after_training(kind):
    """A tiny prior decoder trained for a few hundred steps on a toy task: changing only the semantic
    tokens, or only the acoustic ones, changes the decoded mel, and the prior follows the tokens.
    (The same toy with start="noise" and no prior left the semantic path nearly dead: a relative
    change of 0.019 against 0.33 here, which is why the shipped preset starts from the prior.)"""
    torch.set_num_threads(1)
    cfg = dataclasses.replace(DEC, prior_kind=kind.removesuffix("+attn"), prior_voice_attn=int(kind.endswith("+attn")))
    dec, table, voice_map, first, last = _train_toy(cfg, 250)
    assert last < 0.6 * first
    g = torch.Generator().manual_seed(1)
    sem, ac_q, x1 = _toy_batch(g, 4, table, voice_map)
    sem2, ac_q2, _ = _toy_batch(g, 4, table, voice_map)
    lens, ac_lens = torch.full((4,), 40), torch.full((4,), 20)

    def decode(s, a):
        ctx = dec.prepare(s, lens, 40, a, ac_lens)
        return sample(dec, ctx, 40, steps=4, cfg_scale=0.0, sway=None, generator=torch.Generator().manual_seed(0))

    base = decode(sem, ac_q)
    rel = lambda y: float((y - base).abs().mean() / (base - base.mean()).abs().mean())  # noqa: E731
    d_sem, d_ac = rel(decode(sem2, ac_q)), rel(decode(sem, ac_q2))
    print(f"toy sensitivity ({kind}): semantic {d_sem:.3f}, acoustic {d_ac:.3f}, loss {first:.3f} -> {last:.3f}")
    assert d_sem > 0.15
    assert d_ac > 0.05
    # the prior follows the tokens: closer to its own target than to another item's
    with torch.no_grad():
        mu = dec.prepare(sem, lens, 40, ac_q, ac_lens).mu
    assert float((mu - x1).abs().mean()) < float((mu - x1.roll(1, 0)).abs().mean())


def test_prior_mel_needs_a_prior():
    dec = FlowDecoder(dataclasses.replace(DEC, prior=False, start="noise")).eval()
    ctx = dec.prepare(torch.zeros(1, 10, dtype=torch.long), torch.tensor([40]), 40, torch.zeros(1, 20, 16),
                      torch.tensor([20]))
    with pytest.raises(ValueError, match="no semantic prior"):
        prior_mel(dec, ctx)
    dec = FlowDecoder(DEC).eval()
    ctx = dec.prepare(torch.zeros(1, 10, dtype=torch.long), torch.tensor([30]), 40, torch.zeros(1, 20, 16),
                      torch.tensor([20]))
    mel = prior_mel(dec, ctx)
    assert mel.shape == (1, 100, 40) and torch.isfinite(mel).all()
    assert torch.all(mel[..., 30:] == torch.log(torch.tensor(dec.cfg.mel.log_floor)))


def test_tokenizer_decodes_the_prior_alone_and_refuses_it_without_a_prior(tmp_path):
    from test_tokenizer import AC, _wav, tiny_model

    from dsatok.config import ConfigError
    from dsatok.models.acoustic import AcousticTokenizer
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer
    from dsatok.models.vocoder import GriffinLim
    from dsatok.tokenizer import DSATokenizer

    with pytest.raises(ConfigError, match="prior_only"):
        tiny_model().decode_mel(tiny_model().encode(_wav(0.5, 0)), prior_only=True)
    torch.manual_seed(0)
    sem = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=(4, 4, 4)))
    cfg = dataclasses.replace(DEC, sem_codebook_size=64, ac_latent_dim=AC.latent_dim)
    model = DSATokenizer(sem, AcousticTokenizer(AC), FlowDecoder(cfg), GriffinLim(cfg.mel, n_iter=4))
    tok = model.encode(_wav(0.8, 1))
    (prior,) = model.decode_mel(tok, prior_only=True)
    (flow_a,) = model.decode_mel(tok, steps=2, seed=0)
    (flow_b,) = model.decode_mel(tok, steps=2, seed=1)
    assert prior.shape == flow_a.shape and torch.isfinite(prior).all()
    assert not torch.equal(flow_a, flow_b)  # the flow samples noise ...
    ctx = model.decoder_context(tok)  # what decoding conditions on, for experiments
    assert ctx.mu.shape[-1] == prior.shape[-1] and torch.equal(prior_mel(model.decoder, ctx)[0], prior)
    (again,) = model.decode_mel(tok, prior_only=True, seed=1)
    assert torch.equal(prior, again)  # ... the prior alone is deterministic
    model.save_pretrained(tmp_path / "m")
    back = DSATokenizer.from_pretrained(tmp_path / "m", vocoder="griffinlim:4")
    assert torch.equal(back.decode_mel(tok, prior_only=True)[0], prior)


def test_renderer_prior_shapes_config_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="prior_kind"):
        dataclasses.replace(DEC, prior_kind="lstm")
    cfg = dataclasses.replace(DEC, prior_kind="renderer", prior_dim=16, prior_mel_blocks=2)
    dec = FlowDecoder(cfg).eval()
    ctx = dec.prepare(torch.zeros(2, 10, dtype=torch.long), torch.tensor([41, 30]), 41, torch.zeros(2, 20, 16),
                      torch.tensor([20, 15]))
    assert ctx.mu.shape == (2, 100, 41) and ctx.prior_states.shape == (2, 10, 16) and ctx.voice.shape == (2, 200)
    assert ctx.cat(ctx).voice.shape == (4, 200)
    one = ctx.row(1)  # one item keeps the prior's fields, so a sampler can start from its mu
    assert one.mu.shape == (1, 100, 41) and one.voice.shape == (1, 200) and one.prior_states.shape == (1, 10, 16)
    assert torch.equal(one.mu, ctx.mu[1:]) and torch.equal(one.kv[0][0], ctx.kv[0][0][1:])
    assert torch.equal(ctx.row(-1).voice, one.voice)
    with pytest.raises(IndexError, match="out of range"):
        ctx.row(2)
    dec.save_pretrained(tmp_path / "d")
    back = FlowDecoder.from_pretrained(tmp_path / "d")
    assert back.cfg.prior_kind == "renderer"
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in dec.state_dict().items())


def test_renderer_prior_starts_as_the_stage1_render_head(tmp_path):
    """Loaded from a stage-1 checkpoint, the prior's renderer over code values computes exactly what the
    render head computed over the projected FSQ output; a checkpoint without a head is refused."""
    from safetensors.torch import save_file

    from dsatok.models.prior import RendererPrior, load_render_head
    from dsatok.models.semantic import SemanticConfig
    from dsatok.train.semantic import SemanticStageConfig, SemanticTask

    torch.manual_seed(0)
    stage = SemanticStageConfig(model=SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=LEVELS),
                                render_weight=1.0, render_dim=16, render_blocks=2)
    model = SemanticTask(stage).build_model()
    (tmp_path / "ck").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "ck" / "model.safetensors"))
    prior = RendererPrior(LEVELS, 16, 2, 8, 100, 4)
    load_render_head(prior, tmp_path / "ck")
    idx = torch.randint(0, 64, (2, 7))
    stats = torch.rand(2, 200)
    with torch.no_grad():
        want = model.render(model.tokenizer.fsq.decode(idx[:, None]), stats)
        got = prior.net(prior.codes[idx], stats)
    assert torch.allclose(got, want, atol=1e-5)
    save_file({"tokenizer.fsq.fsq.project_out.weight": torch.zeros(32, 3)}, str(tmp_path / "none.safetensors"))
    SemanticTask(stage).export(model, tmp_path / "best")  # an export carries the head beside the tokenizer
    prior2 = RendererPrior(LEVELS, 16, 2, 8, 100, 4)
    load_render_head(prior2, tmp_path / "best")
    assert torch.allclose(prior2.net(prior2.codes[idx], stats), got, atol=1e-6)
    with pytest.raises(ValueError, match="no render head"):
        load_render_head(prior, tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="does not fit"):
        load_render_head(RendererPrior(LEVELS, 16, 3, 8, 100, 4), tmp_path / "ck")


def test_renderer_prior_takes_given_voice_statistics():
    """Statistics passed in replace the predicted ones exactly; with neither, a clear error."""
    from dsatok.models.prior import RendererPrior

    torch.manual_seed(0)
    prior = RendererPrior(LEVELS, 16, 2, 8, 100, 4).eval()
    with torch.no_grad():
        prior.voice[-1].weight.normal_()  # predicted statistics that depend on the voice
        idx, voice = torch.randint(0, 64, (2, 7)), torch.randn(2, 8)
        pred = prior(idx, 28, voice)
        same = prior(idx, 28, None, stats=prior.voice(voice))
        other = prior(idx, 28, voice, stats=torch.rand(2, 200))
    assert torch.equal(pred.mu, same.mu) and torch.equal(pred.voice, same.voice)
    assert not torch.allclose(other.mu, pred.mu)
    with pytest.raises(ValueError, match="voice statistics"):
        prior(idx, 28, None)


def test_voice_attention_config_start_and_older_weights():
    """The prior's voice attention: only on a renderer prior; a decoder saved without it loads into one
    with it (fresh layers) and computes the same mu, since the layers start silent; after a few
    steps on the toy task the layers are used (mu moves when they are zeroed again)."""
    from dsatok.models.flow_decoder import with_fresh_voice_attention

    with pytest.raises(ConfigError, match="prior_voice_attn"):
        dataclasses.replace(DEC, prior_voice_attn=1)  # convnext prior
    with pytest.raises(ConfigError, match="prior_voice_attn"):
        dataclasses.replace(DEC, prior_kind="renderer", prior_voice_attn=2)  # more layers than blocks
    torch.manual_seed(0)
    old = FlowDecoder(dataclasses.replace(DEC, prior_kind="renderer", prior_dim=16, prior_mel_blocks=2)).eval()
    new = FlowDecoder(dataclasses.replace(old.cfg, prior_voice_attn=2)).eval()
    sd = with_fresh_voice_attention(new, old.state_dict())
    new.load_state_dict(sd, strict=True)
    assert with_fresh_voice_attention(new, sd) is sd  # complete already: unchanged
    g = torch.Generator().manual_seed(0)
    sem, ac_q = torch.randint(0, 64, (2, 10), generator=g), torch.randn(2, 20, 16, generator=g)
    lens, ac_lens = torch.tensor([40, 33]), torch.tensor([20, 17])
    with torch.no_grad():
        a = old.prepare(sem, lens, 40, ac_q, ac_lens).mu
        b = new.prepare(sem, lens, 40, ac_q, ac_lens).mu
    assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="Missing"):  # an older decoder file does not load as-is
        new.load_state_dict(old.state_dict(), strict=True)

    cfg = dataclasses.replace(DEC, prior_kind="renderer", prior_voice_attn=1)
    dec, *_ = _train_toy(cfg, 60)
    with torch.no_grad():
        mu = dec.prepare(sem, lens, 40, ac_q, ac_lens).mu
        for layer in dec.prior.attn:
            layer.att.out.weight.zero_()
            layer.att.out.bias.zero_()
        silent = dec.prepare(sem, lens, 40, ac_q, ac_lens).mu
    assert float((mu - silent).abs().mean()) > 1e-3
