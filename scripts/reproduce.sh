#!/usr/bin/env bash
# The faithful reproduction of Table 2: the four models, the paper's random 80/10/10 split, one
# seed for all, up to 200 epochs with early stopping (patience 25 on validation loss), the
# checkpoint with the lowest validation loss. Safe to re-run: finished runs are skipped and
# interrupted ones resume from their last epoch.
#   bash scripts/reproduce.sh [DATA]        (logs in runs/MODEL-random.log)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/UrbanSound8K}"
for model in convdb conv2d convdf convdt; do
  out="runs/${model}-random"
  resume=()
  [ -f "$out/last.pt" ] && resume=(--resume)
  .venv/bin/realtime-sed train --model "$model" --data "$data" --split random --seed 0 \
    --epochs 200 --patience 25 --out "$out" --quiet "${resume[@]}" >> "runs/${model}-random.log" 2>&1
done
