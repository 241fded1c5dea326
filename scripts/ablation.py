"""Which changes to the training recipe help? Each one is measured fold-wise, alone on top of a
base recipe, and only what helps is kept (issue 5: "measure each change with the fold-wise
protocol, and keep only what helps").

The protocol, fixed before any of its runs:
- Base: Table 1's ConvDB, Adam 1e-3, batch 32, constant learning rate, no augmentation, 40 epochs,
  the last epoch kept. (Fold-wise, the lowest-validation-loss checkpoint of ~2,000 training clips
  is an early and worse one; see docs/results.md.)
- Each change in CHANGES is added to the base alone, and all of the earlier improved recipe
  together ("all") is run too. A second base run with seed 1 shows how far the seed alone moves
  the result.
- A change is kept when its mean fold-wise accuracy beats the base's by more than that seed
  difference and it is better on at least 3 of the 4 test folds.
- The kept changes together ("chosen") are run fold-wise for all four models, and each model is
  trained on every clip with that recipe for the same 40 epochs: the candidates to ship.

Each run is a `realtime-sed train --cv --folds K` process, resumable; a pool of them runs in
priority order until a deadline, so the plan spreads over many cores or a GPU, and an interrupted
plan continues where it stopped (run it again). Run folders: runs/MODEL-folds-abl-CELL and
runs/MODEL-all-abl-CELL; the decision is written to runs/ablation.json.

    python scripts/ablation.py [--workers 12] [--threads 1] [--deadline-minutes 8]
    python scripts/ablation.py --folds 10 --epochs 1 --only base,cosine   (a quick smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_sed.constants import MODEL_NAMES  # noqa: E402

DATA = os.environ.get("SED_DATA", "../shared/data/UrbanSound8K")
FOLDS = (1, 2, 3, 10)
EPOCHS = 40
BASE = ["--patience", "0", "--keep", "last"]  # constant LR, no augmentation, last epoch kept
CHANGES = {  # cell name -> the flags it adds to the base (the order names combined cells)
    "cosine": ["--schedule", "cosine"],
    "shift": ["--time-shift"],
    "gain": ["--gain-db", "6"],
    "mix": ["--mix-prob", "0.5"],
    "spec": ["--spec-masks", "2"],
    "smooth": ["--label-smoothing", "0.1"],
}
EARLIER_RECIPE = ("cosine", "shift", "gain", "mix", "spec")  # the recipe shipped before this
SEED_CHECK = "abl-base-seed1"
MIN_FOLDS_BETTER = 3
RUNS = ROOT / "runs"


def cell_name(changes: tuple[str, ...]) -> str:
    ordered = [c for c in CHANGES if c in changes]
    return "abl-" + ("-".join(ordered) if ordered else "base")


def cell_flags(changes: tuple[str, ...]) -> list[str]:
    return BASE + [flag for c in CHANGES if c in changes for flag in CHANGES[c]]


def train_command(model: str, cell: str, flags: list[str], seed: int, epochs: int, threads: int,
                  fold: int | None) -> tuple[list[str], Path]:
    """One fold of a fold-wise run (fold given), or the all-data final (fold None)."""
    if fold is None:
        out = RUNS / f"{model}-all-{cell}"
        where = ["--train-on-all"]
    else:
        out = RUNS / f"{model}-folds-{cell}"
        where = ["--cv", "--folds", str(fold)]
    cmd = [sys.executable, "-m", "realtime_sed.cli", "train", "--model", model, "--data", DATA, *where,
           "--seed", str(seed), "--epochs", str(epochs), "--out", str(out.relative_to(ROOT)), *flags,
           "--threads", str(threads), "--quiet", "--no-onnx"]
    if fold is not None or (out / "last.pt").exists():
        cmd.append("--resume")  # with --cv, each fold resumes if it has a last.pt
    return cmd, out


def finished(out: Path, fold: int | None) -> bool:
    run = out if fold is None else out / f"fold{fold}"
    return (run / "metrics.json").exists() and (run / "run.json").exists()


class Pool:
    """Runs train commands in parallel until the deadline; past it, stops the running ones (their
    last.pt stays, so the next call resumes them)."""

    def __init__(self, workers: int, deadline: float):
        self.executor = ThreadPoolExecutor(workers)
        self.deadline = deadline
        self.failed: list[str] = []

    def _run(self, cmd: list[str], log: Path) -> int:
        if time.time() > self.deadline:
            return -1
        with open(log, "a") as f:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
            while proc.poll() is None:
                if time.time() > self.deadline:
                    proc.terminate()
                    proc.wait(30)
                    return -1
                time.sleep(1)
        if proc.returncode != 0:
            self.failed.append(f"{' '.join(cmd[3:])}: exit {proc.returncode}, see {log}")
        return proc.returncode

    def submit(self, cmd: list[str], log: Path) -> Future:
        return self.executor.submit(self._run, cmd, log)

    def run_all(self, jobs: list[tuple[list[str], Path]]) -> None:
        pending = {self.submit(cmd, log) for cmd, log in jobs}
        while pending:
            done, pending = wait(pending, timeout=10, return_when=FIRST_COMPLETED)
            if len(self.failed) >= 2:  # something is broken, not one unlucky run: stop early
                self.deadline = 0
            for fut in done:
                fut.result()


def jobs_for(cells: list[tuple[str, list[str], int]], models: list[str], folds: list[int],
             epochs: int, threads: int, finals: bool = False) -> list[tuple[list[str], Path]]:
    jobs = []
    for model in models:
        for cell, flags, seed in cells:
            for fold in ([None] if finals else folds):
                cmd, out = train_command(model, cell, flags, seed, epochs, threads, fold)
                if finished(out, fold):
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                log = out.parent / f"{out.name}{'' if fold is None else f'.fold{fold}'}.log"
                jobs.append((cmd, log))
    return jobs


def summarize(model: str, cell: str, folds: list[int]) -> dict | None:
    from train.commands import summarize_cv

    out = RUNS / f"{model}-folds-{cell}"
    if not all(finished(out, f) for f in folds):
        return None
    return summarize_cv(out)


def decide(results: dict[str, dict], folds: list[int]) -> dict:
    """The rule of the module docstring, applied to the grid's fold-wise summaries."""
    base = results[cell_name(())]
    seed = results.get(SEED_CHECK)
    noise = abs(seed["acc_mean"] - base["acc_mean"]) if seed else None
    changes = {}
    for change in CHANGES:
        s = results.get(cell_name((change,)))
        if s is None:
            continue
        deltas = [s["folds"][f]["acc"] - base["folds"][f]["acc"] for f in folds]
        gain = s["acc_mean"] - base["acc_mean"]
        better = sum(d > 0 for d in deltas)
        changes[change] = {"acc_mean": s["acc_mean"], "gain": gain, "per_fold_gain": deltas,
                           "folds_better": better,
                           "kept": bool(noise is not None and gain > noise and better >= MIN_FOLDS_BETTER)}
    kept = tuple(c for c in CHANGES if changes.get(c, {}).get("kept"))
    return {"rule": f"kept when the mean fold-wise ACC gain over the base exceeds the seed difference "
                    f"(|base seed 1 - base seed 0|) and at least {MIN_FOLDS_BETTER} of {len(folds)} "
                    f"test folds are better",
            "base_acc_mean": base["acc_mean"], "seed_difference": noise, "changes": changes,
            "kept": list(kept), "chosen_cell": cell_name(kept)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--deadline-minutes", type=float, default=None,
                        help="start no run after this, and stop the running ones (they resume)")
    parser.add_argument("--folds", default=",".join(map(str, FOLDS)))
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="only for smoke runs")
    parser.add_argument("--only", default=None, help="grid cells to run (comma list), e.g. base,cosine")
    parser.add_argument("--grid-only", action="store_true", help="stop after the decision")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help="models of the second step (the chosen recipe)")
    parser.add_argument("--runs", default="runs", help="folder of the run folders, inside the project")
    args = parser.parse_args(argv)
    global RUNS
    RUNS = ROOT / args.runs
    models = args.models.split(",")
    folds = [int(f) for f in args.folds.split(",")]
    deadline = time.time() + 60 * args.deadline_minutes if args.deadline_minutes else float("inf")
    t0 = time.time()

    from train.data import build_cache, read_metadata  # once here, not in every worker at once

    build_cache(read_metadata(DATA)[0], os.environ.get("SED_CACHE", ROOT / ".cache/realtime-sed"),
                progress=False)
    print(f"log-mel cache ready in {time.time() - t0:.0f} s", flush=True)

    grid = [(cell_name(()), cell_flags(()), 0), (SEED_CHECK, cell_flags(()), 1),
            (cell_name(EARLIER_RECIPE), cell_flags(EARLIER_RECIPE), 0)]
    grid += [(cell_name((c,)), cell_flags((c,)), 0) for c in CHANGES]
    if args.only:
        named = {"base": cell_name(()), "seed1": SEED_CHECK, "all": cell_name(EARLIER_RECIPE)}
        wanted = {named.get(c) or cell_name((c,)) for c in args.only.split(",")}
        grid = [g for g in grid if g[0] in wanted]
    pool = Pool(args.workers, deadline)
    pool.run_all(jobs_for(grid, ["convdb"], folds, args.epochs, args.threads))
    results = {cell: s for cell, _, _ in grid if (s := summarize("convdb", cell, folds))}
    print(f"grid: {len(results)} of {len(grid)} cells finished after {time.time() - t0:.0f} s", flush=True)
    for cell, s in results.items():
        per_fold = "  ".join(f"{k}: {v['acc']:.3f}" for k, v in s["folds"].items())
        print(f"  {cell:<36} {s['acc_mean']:.3f} ± {s['acc_std']:.3f}   {per_fold}", flush=True)
    if pool.failed:
        print("failed runs:\n  " + "\n  ".join(pool.failed))
    if cell_name(()) not in results:
        print("the base did not finish: no decision yet (run again to resume)")
        return 1
    decision = decide(results, folds)
    decision["grid"] = {cell: {"acc_mean": s["acc_mean"], "acc_std": s["acc_std"],
                               "f1_macro_mean": s["f1_macro_mean"]} for cell, s in results.items()}
    (RUNS / "ablation.json").write_text(json.dumps(decision, indent=1))
    print(json.dumps({k: v for k, v in decision.items() if k != "grid"}, indent=1), flush=True)
    if args.grid_only or len(results) < len(grid):
        return 0 if not pool.failed else 1

    chosen = decision["chosen_cell"]
    chosen_flags = cell_flags(tuple(decision["kept"]))
    phase2 = jobs_for([(chosen, chosen_flags, 0)], models, folds, args.epochs, args.threads, finals=True)
    phase2 += jobs_for([(chosen, chosen_flags, 0)], models, folds, args.epochs, args.threads)
    pool.run_all(phase2)
    for model in models:
        s = summarize(model, chosen, folds)
        final = finished(RUNS / f"{model}-all-{chosen}", None)
        print(f"{model} {chosen}: fold-wise "
              + (f"{s['acc_mean']:.3f} ± {s['acc_std']:.3f}" if s else "unfinished")
              + f"; all-data final {'done' if final else 'unfinished'}", flush=True)
    if pool.failed:
        print("failed runs:\n  " + "\n  ".join(pool.failed))
    print(f"total {time.time() - t0:.0f} s")
    return 0 if not pool.failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
