#!/bin/bash
# Stage 2 (full + ablations + single-stream) and the vocoder, concurrently on one GPU, from a training pack.
# This is the recipe the bundled model and the ablation table of this session came from (H100, one call).
#   dsatok corpus pack CORPUS .dev/pack --semantic SEMANTIC_DIR --codec opus
#   bash docs/experiments/gpu_stage2.sh T M MV full nospk norec single voc     (T: seconds; M / MV: max steps)
T=$1; M=$2; MV=$3; shift 3
export OMP_NUM_THREADS=3 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
(nvidia-cuda-mps-control -d && echo "MPS on") 2>&1 | tail -1
mkdir -p .dev/runs
C="--pack .dev/pack --quiet --set decoder.sem_codebook_size=1024 --set train.max_steps=$M --set train.data.max_frames=16000 --set train.time_limit_s=$T --set train.data.num_workers=0 --set train.ckpt_every=1000 --set train.eval_every=1000 --set train.log_every=100 --set train.optim.warmup_steps=500"
for r in "$@"; do
  case $r in
    full) python3 -m dsatok train acoustic $C --run-dir .dev/runs/full > .dev/runs/full.log 2>&1 & ;;
    nospk) python3 -m dsatok train acoustic $C --no-speaker-loss --run-dir .dev/runs/nospk > .dev/runs/nospk.log 2>&1 & ;;
    norec) python3 -m dsatok train acoustic $C --no-recombination --run-dir .dev/runs/norec > .dev/runs/norec.log 2>&1 & ;;
    single) python3 -m dsatok train acoustic $C --single-stream --run-dir .dev/runs/single > .dev/runs/single.log 2>&1 & ;;
    voc) python3 -m dsatok train vocoder --pack .dev/pack --quiet --run-dir .dev/runs/voc --set train.max_steps=$MV --set train.data.max_frames=8000 --set gan_start=3000 --set train.time_limit_s=$T --set train.data.num_workers=0 --set train.ckpt_every=1000 --set train.eval_every=1000 --set train.log_every=100 > .dev/runs/voc.log 2>&1 & ;;
  esac
done
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
wait
for r in "$@"; do echo "== $r"; tail -n 2 .dev/runs/$r.log | cut -c1-300; grep '"loss"' .dev/runs/$r/train_log.jsonl | tail -n 1 | cut -c1-400; grep '"dev"' .dev/runs/$r/train_log.jsonl | tail -n 1; done
