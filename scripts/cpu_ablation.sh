#!/usr/bin/env bash
# Table 3 on a CPU: step-matched fine-tunes of one stage-2 model (default: the bundled one), two at a
# time on one thread each, then `dsatok eval ablation` over all of them.
#   bash scripts/cpu_ablation.sh CORPUS RUNS_DIR REPORT_DIR [STEPS] [MODEL_DIR]
# Rows: full (all losses), nospk (--no-speaker-loss), norec (--no-recombination), single
# (--single-stream), each STEPS steps (default 300) from MODEL_DIR's weights with the same schedule
# (warm-up 30, cosine, LR 3e-4, no EMA so the export is the fine-tuned weights), plus the untouched
# starting model as "start". From-scratch ablations need a GPU (scripts/gpu_stage2.sh).
set -euo pipefail
CORPUS=${1:?corpus dir}; RUNS=${2:?runs dir}; OUT=${3:?report dir}; STEPS=${4:-300}
MODEL=${5:-$(python3 -c "from dsatok.tokenizer import default_model_dir; print(default_model_dir())")}
mkdir -p "$RUNS" "$OUT"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
C=(--corpus "$CORPUS" --semantic "$MODEL/semantic" --quiet --set "init_from=$MODEL" --set decoder.sem_codebook_size=1024
   --set "train.max_steps=$STEPS" --set train.optim.lr=3e-4 --set train.optim.warmup_steps=30 --set train.ema_decay=0
   --set train.eval_every=100 --set train.ckpt_every=100)
# speaker embeddings are cached per corpus: compute them once before the runs share them
python3 -c "from dsatok.train.speaker_cache import speaker_cache; speaker_cache('$CORPUS', ('train', 'dev'), progress=False)"
run() {  # name, flags...
  local name=$1; shift; local t0=$SECONDS
  python3 -m dsatok train acoustic "${C[@]}" "$@" --run-dir "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  python3 -m dsatok export "$RUNS/$name/final" -o "$RUNS/$name/model" --vocoder griffinlim --steps 16 --cfg 2 >> "$RUNS/$name.log" 2>&1
  echo "$name: $((SECONDS - t0)) s" | tee -a "$OUT/timings.txt"
}
(run full; run norec --no-recombination) &
(run nospk --no-speaker-loss; run single --single-stream) &
wait
t0=$SECONDS
OMP_NUM_THREADS=2 python3 -m dsatok eval ablation start="$MODEL" full="$RUNS/full/model" nospk="$RUNS/nospk/model" \
  norec="$RUNS/norec/model" single="$RUNS/single/model" --corpus "$CORPUS" --limit 20 --recomb-limit 20 --mos dnsmos \
  -o "$OUT" --quiet
echo "eval ablation: $((SECONDS - t0)) s" | tee -a "$OUT/timings.txt"
