"""Rebuild run exports from collect.py files: unpack.py FILE.safetensors OUT_DIR [SEMANTIC_DIR]."""
import json, shutil, sys
from collections import defaultdict
from pathlib import Path
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

f, out = Path(sys.argv[1]), Path(sys.argv[2])
with safe_open(str(f), "pt") as h:
    configs = json.loads(h.metadata()["configs"])
groups = defaultdict(dict)
for k, v in load_file(str(f)).items():
    part, stem, name = k.split("|", 2)
    groups[(part, stem)][name] = v.float() if v.is_floating_point() else v
for (part, stem), sd in groups.items():
    d = out / part if part != "." else out
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(d / f"{stem}.safetensors"))
for rel, text in configs.items():
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_text(text)
if len(sys.argv) > 3:
    shutil.copytree(sys.argv[3], out / "semantic", dirs_exist_ok=True)
print("unpacked", f, "->", out, sorted({p for p, _ in groups}))
