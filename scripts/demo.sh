#!/usr/bin/env bash
# The README's demo: set up (once), pretrain SimCLR on Fashion-MNIST with a sigmoid-attention ViT
# on CPU, then linear- and kNN-probe it beside the same network at random init.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ssl-suite pretrain configs/demo.yaml --overwrite "$@"  # each demo run starts afresh
.venv/bin/ssl-suite eval all configs/demo.yaml "$@"
