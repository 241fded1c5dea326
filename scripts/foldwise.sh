#!/usr/bin/env bash
# The honest protocol (issue: reproduce Table 2): each of folds 1, 2, 3 and 10 in turn is the test
# fold; training uses the other folds plus the scattered clips of folds 4-9; validation is 10% of
# each class's training clips as whole recordings (fsIDs), never the test fold. Resumable like
# reproduce.sh.
#   bash scripts/foldwise.sh MODEL [RECIPE-NAME RECIPE-FLAGS...]
#   bash scripts/foldwise.sh convdb
#   bash scripts/foldwise.sh convdb shift-gain --time-shift --gain-db 6 --epochs 40 --patience 0 --schedule cosine
#   FOLDS=1,3 bash scripts/foldwise.sh convdb   (some folds only: run the others in a second process)
# Later flags win, so a recipe may replace the paper's 200 epochs / patience 25. The summary
# (mean ± std over the finished folds) is runs/MODEL-folds-RECIPE/cv.json.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; shift
recipe="${1:-paper}"; [ $# -gt 0 ] && shift
out="runs/${model}-folds-${recipe}"
mkdir -p runs
folds=(); [ -n "${FOLDS:-}" ] && folds=(--folds "$FOLDS")
.venv/bin/realtime-sed train --model "$model" --cv "${folds[@]}" --seed 0 --epochs 200 --patience 25 \
  --out "$out" --quiet --resume "$@" >> "${out}.log" 2>&1
