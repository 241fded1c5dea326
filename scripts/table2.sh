#!/usr/bin/env bash
# Every run behind the results tables. Resumable: finished runs are skipped or only re-evaluated,
# interrupted ones continue from their last epoch. On 2 CPU cores this takes days (two lanes of one
# thread each); the ablation took 15 minutes on one H200 (scripts/ablation.py --workers 14).
#   bash scripts/table2.sh            (logs in runs/*.log; tables: python scripts/results.py --write)
set -euo pipefail
cd "$(dirname "$0")/.."
# The first improved recipe (docs/results.md, "Choosing the recipe, first screening"), kept in the
# tables as what the ablation was measured against.
EARLIER=(shift-gain-mix-spec-last --time-shift --gain-db 6 --mix-prob 0.5 --spec-masks 2 --schedule cosine
         --epochs 40 --patience 0 --keep last)
MODELS=(convdb conv2d convdf convdt)

bash scripts/reproduce.sh  # the faithful random-split runs (skipped when finished)

lane() {  # lane FOLDS: the paper's and the earlier recipe of every model on these test folds
  for model in "${MODELS[@]}"; do
    FOLDS="$1" bash scripts/foldwise.sh "$model" paper --threads 1
    FOLDS="$1" bash scripts/foldwise.sh "$model" "${EARLIER[@]}" --threads 1
  done
}
lane 1,2 & lane 3,10 &
wait

# Each change measured fold-wise on ConvDB, the kept ones chosen by a fixed rule, that recipe
# fold-wise for all four models and each trained on every clip (runs/MODEL-all-abl-CHOSEN).
.venv/bin/python scripts/ablation.py --workers "$(nproc)" --threads 1
chosen=$(.venv/bin/python -c "import json; print(json.load(open('runs/ablation.json'))['chosen_cell'])")
.venv/bin/python scripts/results.py --write  # copies the summaries into docs/ for ship.py
for model in "${MODELS[@]}"; do
  .venv/bin/realtime-sed export "runs/$model-all-$chosen/best.pt"
  .venv/bin/python scripts/ship.py "$model" --run "runs/$model-all-$chosen" \
    --foldwise "docs/foldwise/$model-$chosen.json" --ablation docs/ablation.json
done
.venv/bin/python scripts/results.py --write
