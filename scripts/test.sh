#!/usr/bin/env bash
# The README's test command: set up (once), the linters (ruff, mypy), then the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Linters first (seconds): a style or type error fails the run before the tests start.
.venv/bin/ruff check ssl_suite kernels scripts tests
.venv/bin/ruff format --check ssl_suite kernels scripts tests
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
