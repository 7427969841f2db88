#!/usr/bin/env bash
# Measure a DSA model directory on a corpus: the numbers of its model card.
#   bash scripts/eval_bundle.sh MODEL_DIR CORPUS_DIR OUT_DIR [SEMANTIC_RUN_DIR]
# Writes OUT_DIR/{recon,recomb}/report.{json,md}, OUT_DIR/bench.json, OUT_DIR/probe.{json,md}
# and, with a stage-1 run directory (it holds the CTC head), OUT_DIR/semantic_test.json.
set -euo pipefail
MODEL=${1:?model dir}; CORPUS=${2:?corpus dir}; OUT=${3:?output dir}; SEM=${4:-}
mkdir -p "$OUT"
t() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "$name: $((SECONDS - t0)) s" | tee -a "$OUT/timings.txt"; }
t recon  python3 -m dsatok eval recon  --model "$MODEL" --corpus "$CORPUS" --limit 60 -o "$OUT/recon" --quiet
t recomb python3 -m dsatok eval recomb --model "$MODEL" --corpus "$CORPUS" -o "$OUT/recomb" --quiet
t bench  python3 -m dsatok bench codec --model "$MODEL" --corpus "$CORPUS" --seconds 600 --steps 32,16,8,4 -o "$OUT/bench.json"
t probe  python3 -m dsatok eval probe  --model "$MODEL" --corpus "$CORPUS" --limit 400 -o "$OUT/probe.json" --quiet
if [ -n "$SEM" ]; then
  t semantic python3 -m dsatok eval semantic "$SEM" --corpus "$CORPUS" --split test -o "$OUT/semantic_test.json" --quiet
fi
