#!/usr/bin/env bash
# Regenerates requirements.lock: every package, transitive ones included, that the runtime and every
# extra in pyproject.toml (train, dev, ...) need, pinned for Python 3.11 on Linux x86_64.
# After adding or changing a dependency in pyproject.toml, run this and commit both files together:
#   bash scripts/lock.sh                          versions already in the lock stay where they still fit
#   bash scripts/lock.sh --upgrade-package NAME   move one package to its newest fitting version
# scripts/setup.sh installs through the lock (pip install -c requirements.lock ...), and
# tests/test_lock.py fails when the lock and pyproject.toml disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
[ -x .venv/bin/python ] || bash scripts/setup.sh
if ! .venv/bin/uv --version 2>/dev/null | grep -qx "uv $UV_VERSION.*"; then
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
fi
exec .venv/bin/uv pip compile pyproject.toml --all-extras --constraint scripts/lock-constraints.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --output-file requirements.lock --custom-compile-command "bash scripts/lock.sh  # uv $UV_VERSION: uv pip compile pyproject.toml --all-extras --constraint scripts/lock-constraints.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28" "$@"
