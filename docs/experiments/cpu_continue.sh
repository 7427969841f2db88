#!/bin/bash
# Continue training the decoder of an exported DSA model on a CPU, its tokens unchanged (acoustic
# tokenizer frozen, so the fingerprint and every token file stay valid), from a training pack.
# No speaker loss: it pools the acoustic tokens, so with the tokenizer frozen it would train only
# its own pooling head. Resumable: run it again with the same RUN and it resumes from RUN's last checkpoint.
#   dsatok corpus pack CORPUS PACK --semantic MODEL/semantic --codec flac      # once, ~6 min on 2 cores
#   bash docs/experiments/cpu_continue.sh MODEL PACK RUN MAX_STEPS SECONDS [extra dsatok train flags]
#   dsatok export RUN/final -o OUT --vocoder MODEL/vocoder
set -euo pipefail
MODEL=$(realpath "${1:?model dir}"); PACK=${2:?pack dir}; RUN=${3:?run dir}; M=${4:?max steps}; T=${5:?seconds}; shift 5
SEM=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['semantic']['codebook_size'])" "$PACK/pack.json")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
exec python3 -m dsatok train acoustic --pack "$PACK" --quiet --run-dir "$RUN" \
  --set init_from="$MODEL" --set freeze_acoustic=true --no-speaker-loss --set decoder.sem_codebook_size="$SEM" \
  --set train.max_steps="$M" --set train.data.max_frames=16000 --set train.optim.lr=2.5e-4 \
  --set train.optim.warmup_steps=100 --set train.ema_decay=0.999 --set train.ckpt_every=100 \
  --set train.eval_every=200 --set train.log_every=10 --set train.data.num_workers=0 --set train.time_limit_s="$T" "$@"
