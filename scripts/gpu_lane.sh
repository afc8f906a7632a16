#!/usr/bin/env bash
# The GPU lane in one command: the CUDA tests, the kernel check, the CUDA halves of the
# benchmarks and the kernels' tile sweep, each step time-boxed (T_<STEP> seconds) so one slow
# step cannot starve the rest. Logs go to $LANE_OUT (default runs/gpu_lane), one file per step.
#   bash scripts/gpu_lane.sh                                  # every step (~20 min at most)
#   LANE_STEPS="check bench_attention pytest_gpu" bash scripts/gpu_lane.sh   # a subset, in this order
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${LANE_OUT:-runs/gpu_lane}
py=${PYTHON:-python}
steps=${LANE_STEPS:-check bench_attention check_tanh bench_attention_tanh pytest_gpu tune_triton bench_train}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  echo "=== $name (at most ${limit} s): $*"
  # -k: Lightning traps SIGTERM (to checkpoint on a cluster's pre-emption), so KILL follows
  timeout -k 10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n "${TAIL:-60}" "$out/$name.log"
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
for s in $steps; do
  case $s in
    check) step check "${T_CHECK:-90}" "$py" -m flash_sigmoid.check --device cuda ;;
    bench_attention) step bench_attention "${T_ATTN:-120}" "$py" scripts/bench_attention.py --device cuda --reps 5 ;;
    # the opt-in one-op sigmoid (bf16 only): right, and faster? (docs/gpu_h200.md)
    check_tanh) step check_tanh "${T_CHECK:-90}" env FLASH_SIGMOID_TANH=1 "$py" -m flash_sigmoid.check --device cuda ;;
    bench_attention_tanh)
      step bench_attention_tanh "${T_ATTN:-120}" env FLASH_SIGMOID_TANH=1 "$py" scripts/bench_attention.py \
        --device cuda --dtype bf16 --reps 5 ;;
    # the tests compile (trainer.compile=auto is on for CUDA): ~10-60 s per case
    pytest_gpu) step pytest_gpu "${T_PYTEST:-420}" "$py" -m pytest -m gpu tests/gpu -v -p no:cacheprovider -o addopts=-ra \
      --durations=0 ;;
    tune_triton) step tune_triton "${T_TUNE:-240}" "$py" scripts/tune_triton.py --quick ;;
    bench_train) step bench_train "${T_TRAIN:-180}" "$py" scripts/bench_train.py --cases demo,vit_s16 --device cuda \
      --precision bf16-mixed --compile ;;
    *) echo "gpu_lane.sh: unknown step '$s' in LANE_STEPS" >&2; exit 2 ;;
  esac
done
