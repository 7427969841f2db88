#!/usr/bin/env bash
# Table 3 on a CPU: four stage-2 models trained for the same number of steps, two at a time on one
# thread each, then `dsatok eval ablation` over all of them.
#   bash docs/experiments/cpu_ablation.sh CORPUS RUNS_DIR REPORT_DIR [STEPS] [MODEL_DIR]     # fine-tunes of MODEL_DIR
#   SCRATCH_PACK=PACK bash docs/experiments/cpu_ablation.sh CORPUS RUNS_DIR REPORT_DIR STEPS   # from scratch
# Rows: full (all losses), nospk (--no-speaker-loss), norec (--no-recombination), single
# (--single-stream).
# * Fine-tunes (default): STEPS steps (default 300) from MODEL_DIR's weights (default: the bundled
#   model) with the same schedule (warm-up 30, cosine, LR 3e-4, no EMA so the export is the
#   fine-tuned weights), plus the untouched starting model as "start". They inherit what MODEL_DIR
#   learnt with every loss, so they do not test the seed's claims.
# * From scratch (SCRATCH_PACK set: `dsatok corpus pack CORPUS PACK --semantic MODEL_DIR/semantic`):
#   fresh weights, the tiny preset's schedule (warm-up 300, cosine to STEPS, LR 5e-4) with EMA
#   $EMA (default 0.998), batches of 4,000 mel frames, trained on the pack's tokens; this is the
#   seed's ablation at CPU scale (--semantic only names the stage-1 tokenizer the exports carry:
#   it must be the one the pack was made with). Every export gets MODEL_DIR's vocoder and decodes with CFG 1.
# Extra env: EVAL_LIMIT / EVAL_RECOMB_LIMIT (test utterances / pairs, default 20 / 20).
set -euo pipefail
CORPUS=${1:?corpus dir}; RUNS=${2:?runs dir}; OUT=${3:?report dir}; STEPS=${4:-300}
MODEL=${5:-$(python3 -c "from dsatok.tokenizer import default_model_dir; print(default_model_dir())")}
PACK=${SCRATCH_PACK:-}
mkdir -p "$RUNS" "$OUT"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
if [ -n "$PACK" ]; then
  C=(--pack "$PACK" --semantic "$MODEL/semantic" --quiet --set decoder.sem_codebook_size=1024 --set "train.max_steps=$STEPS"
     --set "train.ema_decay=${EMA:-0.998}" --set train.data.max_frames=4000 --set train.data.num_workers=0
     --set train.eval_every=250 --set train.ckpt_every=250)
  EXPORT=(--vocoder "$MODEL/vocoder" --steps 16 --cfg 1)
  START=()
else
  C=(--corpus "$CORPUS" --semantic "$MODEL/semantic" --quiet --set "init_from=$MODEL" --set decoder.sem_codebook_size=1024
     --set "train.max_steps=$STEPS" --set train.optim.lr=3e-4 --set train.optim.warmup_steps=30 --set train.ema_decay=0
     --set train.eval_every=100 --set train.ckpt_every=100)
  EXPORT=(--vocoder griffinlim --steps 16 --cfg 2)
  START=(start="$MODEL")
  # speaker embeddings are cached per corpus: compute them once before the runs share them
  python3 -c "from dsatok.train.speaker_cache import speaker_cache; speaker_cache('$CORPUS', ('train', 'dev'), progress=False)"
fi
run() {  # name, flags...
  local name=$1; shift; local t0=$SECONDS
  python3 -m dsatok train acoustic "${C[@]}" "$@" --run-dir "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  python3 -m dsatok export "$RUNS/$name/final" -o "$RUNS/$name/model" "${EXPORT[@]}" >> "$RUNS/$name.log" 2>&1
  echo "$name: $((SECONDS - t0)) s" | tee -a "$OUT/timings.txt"
}
(run full; run norec --no-recombination) &
(run nospk --no-speaker-loss; run single --single-stream) &
wait
t0=$SECONDS
OMP_NUM_THREADS=2 python3 -m dsatok eval ablation "${START[@]}" full="$RUNS/full/model" nospk="$RUNS/nospk/model" \
  norec="$RUNS/norec/model" single="$RUNS/single/model" --corpus "$CORPUS" --limit "${EVAL_LIMIT:-20}" \
  --recomb-limit "${EVAL_RECOMB_LIMIT:-20}" --mos dnsmos -o "$OUT" --quiet
echo "eval ablation: $((SECONDS - t0)) s" | tee -a "$OUT/timings.txt"
