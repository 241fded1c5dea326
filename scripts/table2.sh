#!/usr/bin/env bash
# Every run behind the results tables, in two lanes of one thread each (two single-threaded
# trainings get more done on 2 cores than one with two threads). Resumable: finished runs are
# only re-evaluated, interrupted ones continue from their last epoch. Takes many hours on 2 cores.
#   bash scripts/table2.sh            (logs in runs/*.log; then python scripts/results.py --write)
set -euo pipefail
cd "$(dirname "$0")/.."
# The improved recipe, chosen by the screening in docs/results.md ("Choosing the recipe").
RECIPE=(shift-gain-mix-spec-last --time-shift --gain-db 6 --mix-prob 0.5 --spec-masks 2 --schedule cosine
        --epochs 40 --patience 0 --keep last)
MODELS=(convdb conv2d convdf convdt)

bash scripts/reproduce.sh  # the faithful random-split runs (skipped when finished)

lane() {  # lane FOLDS: both recipes of every model on these test folds
  for model in "${MODELS[@]}"; do
    FOLDS="$1" bash scripts/foldwise.sh "$model" paper --threads 1
    FOLDS="$1" bash scripts/foldwise.sh "$model" "${RECIPE[@]}" --threads 1
  done
}
lane 1,2 & lane 3,10 &
wait

final() {  # the shipped model: the recipe on every clip, for the epochs its folds chose
  .venv/bin/python scripts/final.py "runs/$1-folds-${RECIPE[0]}" --threads 1 >> "runs/$1-all-${RECIPE[0]}.log" 2>&1
}
final convdb & final conv2d & wait
final convdf & final convdt & wait
.venv/bin/python scripts/results.py --write
