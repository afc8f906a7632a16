#!/usr/bin/env bash
# The README's demo: set up (once), pretrain SimCLR on Fashion-MNIST with a sigmoid-attention ViT
# on CPU, then probe it (linear and kNN) beside the same network at random init and raw pixels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP_EXTRAS="" bash scripts/setup.sh  # no test tools: the demo only runs
# bf16-mixed where the CPU multiplies bf16 natively (AMX, AVX512-BF16): 1.4-1.6x the fp32 step there
precision=$(.venv/bin/python -c "import flash_sigmoid.cpu as c; print('bf16-mixed' if c.NATIVE_BF16 else '32-true')")
echo "[demo] trainer.precision=$precision"
.venv/bin/ssl-suite pretrain configs/demo.yaml --overwrite trainer.precision="$precision" "$@"  # each run starts afresh
.venv/bin/ssl-suite eval linear,knn configs/demo.yaml "$@"
echo
echo "Next: every probe (logistic, few-shot, fairness, calibration) on this checkpoint:"
echo "  .venv/bin/ssl-suite eval all configs/demo.yaml $*"
