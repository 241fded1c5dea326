#!/usr/bin/env bash
# The whole test suite: set up (runtime + training + test tools), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train,dev,cluster
exec .venv/bin/python -m pytest -q "$@"
