"""Evaluates finished runs again without training them: after a metric is added to the evaluation,
old runs get it too. For each run folder (a fold of a cross-validation, or a single run) it loads
the saved settings and best.pt and rewrites metrics.json, the figures and the card (MODEL.json; the
ONNX file is left as it is). Then each cross-validation's summary (cv.json) is written again.

    python scripts/reevaluate.py runs/convdb-folds-paper runs/convdb-random ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from train.commands import first_command, finish_run, summarize_cv  # noqa: E402
from train.loop import TrainConfig  # noqa: E402


def reevaluate(run: Path) -> None:
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    finish_run(cfg, run, first_command(run, ""), export=False)


def main(argv: list[str]) -> int:
    for folder in map(Path, argv):
        folds = sorted(p for p in folder.glob("fold*") if (p / "run.json").exists())
        for run in folds or [folder]:
            print(f"== {run}", flush=True)
            reevaluate(run)
        if folds:
            summary = summarize_cv(folder)
            print(f"{folder}: ACC {summary['acc_mean']:.3f}, short clips placed at random "
                  f"{summary['acc_random_placement_mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
