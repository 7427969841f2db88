"""Gather run exports into one safetensors file per run (keys part|stem|name), to ship weights off a machine:
    python3 scripts/pack_weights.py OUT fp16|fp32 RUN...   (runs under .dev/runs)
"""
import json, sys, tarfile, io
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file

out = Path(sys.argv[1]); dtype = {"fp16": torch.float16, "fp32": torch.float32}[sys.argv[2]]
for run in sys.argv[3:]:
    r = Path(".dev/runs") / run
    src = r / "final"
    if not src.is_dir():
        print("no final/ in", r); continue
    tensors, meta = {}, {}
    for f in sorted(src.rglob("*.safetensors")):
        part = str(f.parent.relative_to(src)) if f.parent != src else "."
        for k, v in load_file(str(f)).items():
            tensors[f"{part}|{f.stem}|{k}"] = v.to(dtype) if v.is_floating_point() else v
    for f in sorted(src.rglob("config.json")):
        meta[str(f.relative_to(src))] = f.read_text()
    save_file(tensors, str(out / f"{run}.safetensors"), metadata={"configs": json.dumps(meta)})
    print(run, round((out / f"{run}.safetensors").stat().st_size / 2**20, 1), "MiB")
with tarfile.open(out / "logs.tar.gz", "w:gz") as t:
    for run in sys.argv[3:]:
        for name in ("train_log.jsonl", "config.json"):
            p = Path(".dev/runs") / run / name
            if p.is_file():
                t.add(p, arcname=f"{run}/{name}")
    for p in Path(".dev/runs").glob("*.log"):
        t.add(p, arcname=p.name)
