#!/usr/bin/env bash
# The README's demo: set up (once), pretrain SimCLR on Fashion-MNIST with a sigmoid-attention ViT
# on CPU, then probe it (linear and kNN) beside the same network at random init and raw pixels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ssl-suite pretrain configs/demo.yaml --overwrite "$@"  # each demo run starts afresh
.venv/bin/ssl-suite eval linear,knn configs/demo.yaml "$@"
echo
echo "Next: every probe (logistic, few-shot, fairness, calibration) on this checkpoint:"
echo "  .venv/bin/ssl-suite eval all configs/demo.yaml $*"
