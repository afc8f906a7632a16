#!/usr/bin/env bash
# One-time, idempotent set-up on Debian/Ubuntu with Python 3.11: Fashion-MNIST through apt
# (where apt exists), a virtual environment in .venv, and this package with its test extra.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "[setup] installing Debian's dataset-fashion-mnist"
  $SUDO apt-get update -qq >/dev/null || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || echo "[setup] apt could not install dataset-fashion-mnist: see README 'Other systems'"
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
# SETUP_EXTRAS: the package's extras to install ("dev": tests and linters; empty: what running
# needs, as the demo does). A stamp per extras set, so the test script still gets its tools.
EXTRAS=${SETUP_EXTRAS-dev}
stamp=.venv/.ssl-suite-installed${EXTRAS:+-$EXTRAS}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing ssl-suite and its dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch and torchvision first, pinned together so pip never mixes builds.
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" \
    || .venv/bin/python -m pip install -q "torch>=2.4,<2.15" "torchvision>=0.19,<0.30"
  .venv/bin/python -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
  touch "$stamp"
fi
