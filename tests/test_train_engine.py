import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _env(**kw):
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    env.update(kw)
    return env


def _losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "train_log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" not in r:  # dev-evaluation lines carry metrics, not a training loss
            continue
        out[r["step"]] = r["loss"]  # a resumed run rewrites steps after its checkpoint: keep the last
    return out


def _run(corpus, run_dir, steps, **env):
    r = subprocess.run([sys.executable, str(HERE / "tiny_task.py"), str(corpus), str(run_dir), str(steps)],
                       capture_output=True, text=True, env=_env(**env), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_sigkill_and_resume_equals_unbroken(tiny_corpus, tmp_path):
    _run(tiny_corpus, tmp_path / "unbroken", 16)
    ref = _losses(tmp_path / "unbroken")
    assert sorted(ref) == list(range(1, 17))

    broken = tmp_path / "broken"
    p = subprocess.Popen([sys.executable, str(HERE / "tiny_task.py"), str(tiny_corpus), str(broken), "16"],
                         env=_env(DSATOK_TEST_STEP_DELAY="0.3"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 300:
        log = broken / "train_log.jsonl"
        if log.exists() and sum('"dev"' not in l for l in log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed_at = max(_losses(broken))
    assert 11 <= killed_at < 16, killed_at
    r = _run(tiny_corpus, broken, 16)
    resumed = int(r.stdout.split("resumed from")[1].split("(step ")[1].split(")")[0])
    assert 10 <= resumed <= killed_at  # ckpt_every=5, plus the best step's checkpoint
    got = _losses(broken)
    assert sorted(got) == list(range(1, 17))
    for s in range(1, 17):
        assert abs(got[s] - ref[s]) <= 1e-6, (s, got[s], ref[s])
    # exported weights are strict-loadable inference weights
    from safetensors.torch import load_file

    from tiny_task import TinyMelTask

    final = load_file(str(broken / "final" / "model.safetensors"))
    TinyMelTask().build_model().load_state_dict(final, strict=True)
    ref_final = load_file(str(tmp_path / "unbroken" / "final" / "model.safetensors"))
    assert all(float((final[k] - ref_final[k]).abs().max()) <= 1e-6 for k in final)  # EMA restored too
    assert (broken / "best" / "config.json").exists() and (broken / "config.json").exists()
    kept = sorted(p.name for p in (broken / "checkpoints").iterdir())
    assert "step-00000016" in kept and len(kept) <= 3  # keep_last=2 plus the best


def test_time_limit_stops_with_a_resumable_checkpoint(tiny_corpus, tmp_path, monkeypatch):
    import tiny_task

    monkeypatch.setenv("DSATOK_TEST_STEP_DELAY", "0.2")
    out = tiny_task.run(str(tiny_corpus), str(tmp_path / "r"), 40, extra=("time_limit_s=0.5",))
    stopped = out["step"]
    assert 1 <= stopped < 40
    assert (tmp_path / "r" / "checkpoints" / f"step-{stopped:08d}").is_dir()  # off the ckpt_every grid too
    assert (tmp_path / "r" / "final" / "model.safetensors").is_file()
    monkeypatch.setenv("DSATOK_TEST_STEP_DELAY", "0")
    again = tiny_task.run(str(tiny_corpus), str(tmp_path / "r"), 12)
    assert again["step"] == 12 and min(_losses(tmp_path / "r")) == 1


def test_stop_step_is_a_segment_of_the_full_schedule(tiny_corpus, tmp_path):
    import tiny_task

    tiny_task.run(str(tiny_corpus), str(tmp_path / "whole"), 12)
    out = tiny_task.run(str(tiny_corpus), str(tmp_path / "seg"), 12, extra=("stop_step=7",))
    assert out["step"] == 7 and (tmp_path / "seg" / "final" / "model.safetensors").is_file()
    whole, seg = _losses(tmp_path / "whole"), _losses(tmp_path / "seg")
    assert sorted(seg) == list(range(1, 8))
    # the learning rate followed the 12-step schedule, so the segment is the whole run's first 7 steps
    assert all(abs(seg[s] - whole[s]) <= 1e-6 for s in seg)
    again = tiny_task.run(str(tiny_corpus), str(tmp_path / "seg"), 12)
    assert again["step"] == 12 and abs(_losses(tmp_path / "seg")[12] - whole[12]) <= 1e-6


def test_corrupt_checkpoint_falls_back_to_previous(tiny_corpus, tmp_path):
    run = tmp_path / "r"
    _run(tiny_corpus, run, 10)
    ref = _losses(run)
    ck = run / "checkpoints" / "step-00000010" / "state.pt"
    ck.write_bytes(ck.read_bytes()[:100])  # truncated
    r = _run(tiny_corpus, run, 10)
    assert "state.pt: checksum mismatch" in r.stdout
    resumed = int(r.stdout.split("resumed from")[1].split("(step ")[1].split(")")[0])
    assert resumed < 10  # the previous good checkpoint
    got = _losses(run)
    assert all(abs(got[s] - ref[s]) <= 1e-6 for s in range(1, 11))


def test_checkpoint_refused_with_clear_error(tmp_path):
    import torch

    from dsatok.train.checkpoint import CheckpointError, latest_valid, load_checkpoint, save_checkpoint

    p = save_checkpoint(tmp_path, 3, {"w": torch.ones(2)}, {"step": 3})
    (p / "model.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum mismatch"):
        load_checkpoint(p)
    logs = []
    assert latest_valid(tmp_path, log=logs.append) is None and "checksum mismatch" in logs[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_double_batch(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    r = subprocess.run([sys.executable, str(HERE / "ddp_script.py"), str(one), "3"], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(_free_port()), str(HERE / "ddp_script.py"), str(two), "3"],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a.keys() == b.keys()
    for k in a:
        assert max(abs(x - y) for x, y in zip(a[k], b[k])) <= 1e-6, k
    # the updates really moved the weights (so equality is not trivial)
    assert max(abs(x - y) for x, y in zip(a["weight"], a["init.weight"])) > 1e-2


def test_bad_config_fails_at_start(tmp_path):
    from dsatok.config import ConfigError
    from dsatok.train.config import PRESETS, TrainConfig, load_config

    (tmp_path / "c.yaml").write_text("max_steps: 10\noptim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key 'optim\.lrr'"):
        load_config(TrainConfig, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="max_steps must be > 0"):
        load_config(TrainConfig, overrides=["max_steps=0"])
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(TrainConfig, overrides=["optim.lr=fast"])
    cfg = load_config(TrainConfig, preset=PRESETS["paper"])
    assert cfg.optim.lr == 7.5e-5 and cfg.optim.warmup_steps == 32000 and cfg.data.max_frames == 30000


def test_lr_schedule():
    from dsatok.train.engine import lr_lambda

    assert lr_lambda(0, 10, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_lambda(9, 10, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_lambda(100, 10, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_lambda(55, 10, 100, "linear", 0.0) == pytest.approx(0.5)


def test_ema_averages_trainable_weights_only():
    """Frozen parameters and buffers come back bit for bit (their 'average' used to drift by ~1e-6);
    trainable ones are averaged."""
    import torch
    from torch import nn

    from dsatok.train.ema import EMA

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 8))
    model[0].requires_grad_(False)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("0.")}
    ema = EMA(model, 0.9)
    model[2].weight.data.add_(1.0)
    for _ in range(50):
        model(torch.randn(4, 8))  # moves the BatchNorm running statistics
        ema.update(model)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    out = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 8))
    out.load_state_dict(live)
    out[0].requires_grad_(False)
    ema.copy_to(out)
    sd = out.state_dict()
    assert all(torch.equal(sd[k], frozen[k]) for k in frozen)
    assert torch.equal(sd["1.running_mean"], live["1.running_mean"])
    w = sd["2.weight"]
    assert not torch.equal(w, live["2.weight"]) and (w - live["2.weight"]).abs().max() < 1.0


def test_dev_evaluation_is_seeded_and_leaves_the_training_rng(tiny_corpus, tmp_path):
    """A stochastic dev loss (random noise, like the flow loss's t and x0) is the same at every
    evaluation of the same weights, and evaluating does not move the training RNG."""
    import torch
    import tiny_task

    from dsatok.train.config import TrainConfig, load_config
    from dsatok.train.data import corpus_batches
    from dsatok.train.engine import Trainer

    class NoisyEval(tiny_task.TinyMelTask):
        def eval_step(self, model, batch):
            return {"loss": float(self._loss(model, batch, True))}

    cfg = load_config(TrainConfig, overrides=[f"run_dir={tmp_path / 'r'}", "max_steps=2", "eval_batches=2",
                                              f"data.corpus={tiny_corpus}", "data.num_workers=0", "data.max_frames=2500",
                                              "data.max_duration=10", "data.num_buckets=2"])
    batches, dev = corpus_batches(cfg.data, seed=cfg.seed)
    tr = Trainer(NoisyEval(), cfg, batches, dev, progress=False, log=lambda *a: None)
    torch.manual_seed(123)
    first = tr.evaluate()
    after_eval = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_eval)  # the training RNG continues as if no evaluation ran
    torch.manual_seed(456)
    assert tr.evaluate() == first and first["loss"] > 0
    unseeded = NoisyEval()
    model = tr._weights_for_export().eval()
    b = next(iter(dev()))
    assert unseeded.eval_step(model, b) != unseeded.eval_step(model, b)  # the loss itself is random
