"""DashengTokenizer: latents, weight loading, save/load, training task; the linear-probe suite."""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch

from dsatok.config import from_dict
from dsatok.dasheng_tokenizer import DASHENG_PRESETS, DashengConfig, DashengTokenizer
from dsatok.models.dasheng import DashengViT, load_dasheng_weights
from dsatok.models.io import ModelLoadError


def _tiny() -> DashengTokenizer:
    torch.manual_seed(0)
    return DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).eval()


def test_unified_is_semantic_plus_injection_and_batching_is_exact():
    m = _tiny()
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 48000, generator=g) * 0.1
    lens = torch.tensor([48000, 30000])
    z = m.encode(wav, lens)
    assert z.unified.shape == (2, 75, 192) and z.lengths.tolist() == [75, 46]
    assert torch.allclose(z.unified, z.semantic + z.acoustic, atol=1e-6)
    assert float(z.unified[1, 46:].detach().abs().max()) == 0.0  # padding frames are zero
    alone = m.encode(wav[1:2, :30000])
    assert torch.allclose(alone.unified[0, :46], z.unified[1, :46], atol=1e-4)
    assert m.decode(z.unified).shape == (2, 75 * 640)


def test_acoustic_injection_is_one_linear_patch_projection():
    m = _tiny()
    p = m.acoustic_proj
    assert isinstance(p, torch.nn.Conv2d) and p.kernel_size == (128, 4) and p.stride == (128, 4)
    # the injection is linear in the log-mel patches before its LayerNorm
    mel = torch.randn(1, 1, 128, 8)
    a, b = p(mel), p(2 * mel)
    assert torch.allclose(b - p.bias[None, :, None, None], 2 * (a - p.bias[None, :, None, None]), atol=1e-4)


def test_original_dasheng_weights_load_and_mismatch_is_refused(tmp_path):
    from safetensors.torch import save_file

    m = _tiny()
    state = {f"encoder.{k}": v for k, v in m.semantic.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    torch.manual_seed(1)
    vit = DashengViT(m.cfg.vit)
    assert not torch.equal(vit.time_pos_embed, m.semantic.time_pos_embed)
    load_dasheng_weights(vit, tmp_path)
    assert torch.equal(vit.time_pos_embed, m.semantic.time_pos_embed)
    bigger = DashengViT(from_dict(DashengConfig, {**DASHENG_PRESETS["tiny"], "vit": {"embed_dim": 192, "depth": 5,
                                                                                     "heads": 3}}).vit)
    with pytest.raises(ModelLoadError, match="missing"):
        load_dasheng_weights(bigger, tmp_path)
    with pytest.raises(ModelLoadError, match="Dasheng weights"):
        load_dasheng_weights(vit, tmp_path / "nothing")


def test_dsa_backend_round_trips_with_its_semantic_encoder(tmp_path):
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer

    torch.manual_seed(0)
    sem = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2)).eval()
    dec = {**DASHENG_PRESETS["tiny"]["decoder"], "in_dim": 32, "dim": 64, "intermediate": 128, "layers": 2}
    m = DashengTokenizer(from_dict(DashengConfig, {"backend": "dsa", "dim": 32, "decoder": dec}), sem).eval()
    m.save_pretrained(tmp_path / "d")
    back = DashengTokenizer.from_pretrained(tmp_path / "d")
    wav = torch.randn(16000) * 0.1
    a, b = m.encode(wav), back.encode(wav)
    assert torch.allclose(a.unified, b.unified, atol=1e-6)
    assert torch.allclose(m.decode(a.unified), back.decode(b.unified), atol=1e-5)


def test_dasheng_task_trains_and_exports(tiny_corpus, tmp_path):
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer
    from dsatok.train.dasheng import run

    SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2)).save_pretrained(tmp_path / "sem")
    dec = {**DASHENG_PRESETS["tiny"]["decoder"], "in_dim": 32, "dim": 64, "intermediate": 128, "layers": 2}
    out = run(str(tiny_corpus), "dsa", str(tmp_path / "sem"),
              overrides=[f"train.run_dir={tmp_path / 'run'}", "train.max_steps=3", "train.eval_every=3",
                         "train.eval_batches=1", "train.log_every=1", "model.dim=32", "gan_start=1",
                         "train.data.max_frames=2500", "train.data.max_duration=10", "train.data.num_buckets=2", "train.data.num_workers=0"] + [f"model.decoder.{k}={v}" for k, v in dec.items() if k != "mel"],
              progress=False)
    assert out["step"] == 3 and np.isfinite(out["dev"]["mel_l1"]) and "sem_mel_l1" in out["dev"]
    back = DashengTokenizer.from_pretrained(tmp_path / "run" / "final")
    assert back.encode(torch.randn(8000) * 0.1).unified.shape[-1] == 32
    # a magnitude-only decoder (phase="griffinlim"): trained without waveforms or discriminators
    out = run(str(tiny_corpus), "dsa", str(tmp_path / "sem"),
              overrides=[f"train.run_dir={tmp_path / 'gl'}", "train.max_steps=2", "train.eval_every=2",
                         "train.eval_batches=1", "train.log_every=1", "model.dim=32", "gan_start=0",
                         "model.decoder.phase=griffinlim", "model.decoder.gl_iterations=4",
                         "train.data.max_frames=2500", "train.data.max_duration=10", "train.data.num_buckets=2", "train.data.num_workers=0"] + [f"model.decoder.{k}={v}" for k, v in dec.items() if k != "mel"],
              progress=False)
    logs = [json.loads(x) for x in (tmp_path / "gl" / "train_log.jsonl").read_text().splitlines()]
    step_logs = [x for x in logs if "mag_l1" in x]
    assert step_logs and all("d_loss" not in x for x in step_logs) and np.isfinite(out["dev"]["mel_l1"])
    gl = DashengTokenizer.from_pretrained(tmp_path / "gl" / "final")
    assert gl.decode(gl.encode(torch.randn(6400) * 0.1).unified).shape[-1] == 6400


def test_linear_probe_separates_what_is_there_and_not_what_is_not():
    from dsatok.eval.linear_probe import linear_probe

    g = torch.Generator().manual_seed(0)
    y = [str(i % 3) for i in range(300)]
    centers = torch.randn(3, 16, generator=g) * 3
    x = torch.stack([centers[int(c)] for c in y]) + torch.randn(300, 16, generator=g)
    parts = [(x[a:b], y[a:b]) for a, b in ((0, 200), (200, 250), (250, 300))]
    assert linear_probe(*parts, epochs=30)["test_acc"] > 0.9
    noise = torch.randn(300, 16, generator=g)
    r = linear_probe(*[(noise[a:b], y[a:b]) for a, b in ((0, 200), (200, 250), (250, 300))], epochs=30)
    assert r["test_acc"] < 0.6 and r["chance"] == pytest.approx(1 / 3)


def test_generated_noises_have_their_spectral_slopes():
    from dsatok.data.noise import add_noise, make_noise

    rng = np.random.default_rng(0)

    def hf_share(x):
        p = np.abs(np.fft.rfft(x)) ** 2
        return p[len(p) // 2 :].sum() / p.sum()

    shares = {k: hf_share(make_noise(k, 16000, rng)) for k in ("white", "pink", "brown", "hum")}
    assert shares["white"] > 0.4 > shares["pink"] > shares["brown"]
    assert shares["hum"] < 1e-3
    clean = np.sin(np.arange(16000) / 10).astype(np.float32)
    noisy = add_noise(clean, "white", 5.0, rng)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 5.0) < 0.2



def test_pca_injection_init_keeps_more_of_the_patch_than_a_random_start():
    from dsatok.train.dasheng import injection_patches, pca_injection_init

    g = torch.Generator().manual_seed(1)
    # patches with a decaying spectrum of variance (as log-mel patches have), 512-d
    basis = torch.linalg.qr(torch.randn(512, 512, generator=g))[0]
    scales = 10.0 / torch.arange(1, 513).float()
    x = -8 + (torch.randn(1200, 512, generator=g) * scales) @ basis.T
    train, test = x[:800], x[800:]

    def miss(m: DashengTokenizer) -> float:
        """Held-out mean |error| of a least-squares map from ``LN(W · patch + b)`` back to the patch."""
        f = lambda p: m.acoustic_norm(m.acoustic_proj(p.reshape(-1, 1, 128, 4)).flatten(1)).double()
        with torch.no_grad():
            a = torch.cat([f(train), torch.ones(len(train), 1, dtype=torch.float64)], 1)
            w = torch.linalg.lstsq(a, train.double()).solution
            b = torch.cat([f(test), torch.ones(len(test), 1, dtype=torch.float64)], 1)
            return float((b @ w - test).abs().mean())

    m = _tiny()  # dim 192
    before = miss(m)
    pca_injection_init(m, train)
    after = miss(m)
    assert after < 0.75 * before, (before, after)
    assert injection_patches(m, torch.randn(16000) * 0.1).shape == (25, 512)
    with pytest.raises(Exception, match="principal components"):
        pca_injection_init(_tiny(), train[:100])
