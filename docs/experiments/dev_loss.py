"""Seeded dev flow loss of a stage-2 run's checkpoints (EMA weights), and of its init (step 0).

    python3 docs/experiments/dev_loss.py RUN 0 200 400     # steps; 0 = the weights the run started from (init_from)
"""
import sys, tempfile, torch
from dsatok.train.acoustic import AcousticStageConfig, ACOUSTIC_PRESETS, AcousticTask
from dsatok.train.config import load_stage_config
from dsatok.train.pack import pack_batches
from dsatok.train.engine import Trainer
from dsatok.train.checkpoint import load_checkpoint
torch.set_num_threads(1)
run = sys.argv[1]
cfg = load_stage_config(AcousticStageConfig, ACOUSTIC_PRESETS, "tiny", "", f"{run}/config.json",
                        [f"train.run_dir={tempfile.mkdtemp()}", "train.time_limit_s=0"])
batches, dev, _ = pack_batches(cfg.train.data, seed=cfg.train.seed)
tr = Trainer(AcousticTask(cfg, None), cfg.train, batches, dev, full_config=cfg, progress=False, log=lambda *a: None)
for step in sys.argv[2:]:
    if step != "0":
        ms, st = load_checkpoint(__import__("pathlib").Path(f"{run}/checkpoints/step-{int(step):08d}"))
        tr.unwrapped.load_state_dict(ms, strict=True)
        tr.ema.load_state_dict(st["ema"])
    print(step, tr.evaluate(), flush=True)
