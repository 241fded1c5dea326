"""Trains the model to ship: the recipe of a fold-wise cross-validation, on every clip, for the epoch
count those folds chose (the median of their kept epochs), and with --ship puts it into models/
with scripts/ship.py. Prints the exact `realtime-sed train` command it runs; the card records it.

    python scripts/final.py runs/convdb-folds-full [--threads 1] [--dry-run] [--ship]

Shipping is a separate, deliberate step: check the model on the demo first (`realtime-sed
classify demo/urban-demo.ogg --model runs/.../MODEL.onnx`) and run the tests, which use it.

The run folder is runs/MODEL-all-RECIPE; re-running resumes it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE_FLAGS = {  # TrainConfig field -> command-line flag (the settings a recipe is made of)
    "time_shift": "--time-shift", "gain_db": "--gain-db", "mix_prob": "--mix-prob",
    "spec_masks": "--spec-masks", "label_smoothing": "--label-smoothing", "schedule": "--schedule",
    "batch_size": "--batch-size", "lr": "--lr", "keep": "--keep",
}


def final_command(cv_dir: Path, threads: int | None) -> tuple[list[str], Path]:
    summary = json.loads((cv_dir / "cv.json").read_text())
    cfg, model = summary["config"], summary["model"]
    epochs = int(round(summary["best_epoch_median"]))
    out = Path("runs") / f"{model}-all-{summary['recipe_name']}"
    args = ["realtime-sed", "train", "--model", model, "--data", cfg["data"], "--train-on-all",
            "--seed", str(cfg["seed"]), "--epochs", str(epochs), "--out", str(out)]
    for field, flag in RECIPE_FLAGS.items():
        value = cfg[field]
        if value is True:
            args.append(flag)
        elif value not in (False, None, 0, 0.0, "constant", "best"):
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if threads:
        args += ["--threads", str(threads)]
    return args + ["--quiet"], out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cv_dir", type=Path, help="a runs/MODEL-folds-RECIPE folder with cv.json")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.add_argument("--ship", action="store_true", help="then put it into models/ (scripts/ship.py)")
    args = parser.parse_args(argv)
    command, out = final_command(args.cv_dir, args.threads)
    print(shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    exe = [str(Path(sys.executable).parent / "realtime-sed"), *command[1:]]
    if (ROOT / out / "last.pt").exists():
        exe.append("--resume")
    subprocess.run(exe, cwd=ROOT, check=True)
    model = command[command.index("--model") + 1]
    recipe = out.name.split("-all-")[1]
    if not args.ship:
        print(f"trained {out}; to ship it: python scripts/ship.py {model} --run {out} "
              f"--foldwise {args.cv_dir / 'cv.json'}")
        return 0
    ship = [sys.executable, str(ROOT / "scripts" / "ship.py"), model, "--run", str(ROOT / out),
            "--foldwise", str(args.cv_dir / "cv.json")]
    subprocess.run(ship, cwd=ROOT, check=True)
    print(f"shipped {model} ({recipe} recipe) from {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
