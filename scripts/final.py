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
from dataclasses import replace
from pathlib import Path

from train.loop import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
def final_command(cv_dir: Path, threads: int | None) -> tuple[list[str], Path]:
    summary = json.loads((cv_dir / "cv.json").read_text())
    cfg, model = summary["config"], summary["model"]
    epochs = int(round(summary["best_epoch_median"]))
    out = Path("runs") / f"{model}-all-{summary['recipe_name']}"
    recipe = TrainConfig(**{k: v for k, v in cfg.items() if k in TrainConfig.__dataclass_fields__})
    final = replace(recipe, train_on_all=True, split="random", test_fold=None, val_fold=None,
                    epochs=epochs, out=str(out), threads=None, device="auto")
    args = ["realtime-sed", "train", *final.to_argv(always=("model", "data", "seed", "epochs", "out"))]
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
