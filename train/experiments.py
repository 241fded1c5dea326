"""`realtime-sed experiments ...`: every run behind docs/results.md, as recipes (train/recipes.py),
rules (train/rules.py) and this code, which calls the training directly (no command lines of our
own). Each subcommand is resumable: finished runs are skipped, interrupted ones continue from their
last epoch. Run folders are relative to the current folder (run it from the project's folder).

    faithful      the paper's recipe on the random split, each model      runs/MODEL-random
    foldwise      one model and recipe, each test fold in turn            runs/MODEL-folds-RECIPE
    ablation      each change on ConvDB, the kept ones for all models     runs/MODEL-{folds,all}-abl-CELL
    placement     a recipe with and without time shift, fold-wise         runs/placement/
    final         a fold-wise recipe on every clip                        runs/MODEL-all-RECIPE
    ship          a trained model into models/ with its card
    reevaluate    newer metrics for finished runs
    results       the tables of README.md and docs/results.md
    demo          models on the bundled demo, through the streaming path
    teacher-heads which head on the teacher's embedding, each candidate fold-wise  docs/teacher-heads.json
    table2        all of the above, in order

Trainings run in a pool of `workers` processes (spawned, so they may share a GPU) until an optional
deadline; past it the running ones are stopped, and the next call resumes them. Each training's log
is beside its run folder (RUN.log, or CV.foldK.log), and its card records the `realtime-sed train`
command that repeats it alone.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from realtime_sed.errors import SedError
from train import recipes, rules
from train.commands import (finish_run, first_command, summarize_cv, train_command, train_fold, train_single,
                            wanted_folds)
from train.loop import TrainConfig
from train.settings import (AblationSettings, DemoSettings, ExportSettings, FaithfulSettings, FinalSettings,
                            FoldwiseSettings, PlacementSettings, ReevaluateSettings, ResultsSettings,
                            ShipSettings, Table2Settings, TeacherHeadsSettings, TrainRun)

MAX_FAILURES = 2  # failed trainings after which a pool stops: something is broken, not one unlucky run


@dataclass(frozen=True)
class Job:
    """One training: a single run in cfg.out, or one test fold of the cross-validation in cfg.out."""

    cfg: TrainConfig
    fold: int | None = None
    export: bool = True  # write the ONNX model too (else only its card)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out) / f"fold{self.fold}" if self.fold is not None else Path(self.cfg.out)

    @property
    def log(self) -> Path:
        out = Path(self.cfg.out)
        return out.parent / (f"{out.name}.fold{self.fold}.log" if self.fold is not None else f"{out.name}.log")

    def done(self) -> bool:
        return finished(self.run_dir)

    def command(self) -> str:
        fold = self.fold is not None
        return train_command(self.cfg, TrainRun(cv=fold, folds=str(self.fold) if fold else None, quiet=True,
                                                no_onnx=not self.export))


def run_job(job: Job) -> None:
    """A pool process: trains the job (resuming it), its output appended to the job's log."""
    log = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    sys.stdout.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        if job.fold is None:
            train_single(job.cfg, job.command(), resume=(job.run_dir / "last.pt").exists(), quiet=True,
                         export=job.export)
        else:
            train_fold(job.cfg, job.fold, job.command(), resume=True, quiet=True, export=job.export)
    except SedError as exc:
        print(f"realtime-sed: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.stdout.flush()


class Pool:
    """Runs jobs in `workers` processes, in the order given, until the deadline (seconds since the
    epoch); past it, stops the running ones (their last.pt stays, so the next call resumes them)."""

    def __init__(self, workers: int, deadline: float = float("inf")):
        if workers < 1:
            raise SedError(f"--workers {workers}: give 1 or more")
        self.workers, self.deadline = workers, deadline
        self.failed: list[str] = []
        self.stopped: list[Job] = []

    def run(self, jobs: list[Job]) -> bool:
        """True when every job is finished."""
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with CUDA
        todo = [j for j in jobs if not j.done()]
        running: list[tuple[multiprocessing.process.BaseProcess, Job]] = []
        try:
            while todo or running:
                while todo and len(running) < self.workers and time.time() < self.deadline:
                    job = todo.pop(0)
                    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
                    proc = context.Process(target=run_job, args=(job,))
                    proc.start()
                    running.append((proc, job))
                if not running:
                    break
                time.sleep(0.2)
                for proc, job in list(running):
                    if not proc.is_alive():
                        proc.join()
                        running.remove((proc, job))
                        if proc.exitcode != 0:
                            self.failed.append(f"{job.command()}: exit {proc.exitcode}, see {job.log}")
                            if len(self.failed) >= MAX_FAILURES:
                                self.deadline = 0
                    elif time.time() > self.deadline:
                        proc.terminate()
                        proc.join(30)
                        running.remove((proc, job))
                        self.stopped.append(job)
        finally:  # stopped by a signal or an error here: no training is left running unseen
            for proc, _ in running:
                proc.terminate()
                proc.join(30)
        return all(j.done() for j in jobs)

    def report(self) -> None:
        if self.stopped:
            print(f"stopped at the deadline (run again to resume): {len(self.stopped)} trainings")
        if self.failed:
            print("failed runs:\n  " + "\n  ".join(self.failed))


def _deadline(minutes: float | None) -> float:
    return time.time() + 60 * minutes if minutes is not None else float("inf")


def _folds(text: str) -> list[int]:
    try:
        return [int(f) for f in text.split(",")]
    except ValueError:
        raise SedError(f"--folds {text}: give test folds as numbers, e.g. 1,2,3,10") from None


def _models(text: str) -> list[str]:
    from realtime_sed.constants import MODEL_NAMES

    models = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise SedError(f"--models {text}: give some of {', '.join(MODEL_NAMES)}")
    return models


def _smoke(cfg: TrainConfig, epochs: int | None) -> TrainConfig:
    return cfg if epochs is None else replace(cfg, epochs=epochs)


def fold_jobs(cfg: TrainConfig, folds: list[int], export: bool = True) -> list[Job]:
    return [Job(cfg, fold, export) for fold in folds]


def finished(run: Path) -> bool:
    return (run / "metrics.json").exists() and (run / "run.json").exists()


def summary_if_done(out: Path, folds: list[int]) -> dict | None:
    """The cross-validation summary of `out` (cv.json, written again) once every fold is finished."""
    if not all(finished(out / f"fold{f}") for f in folds):
        return None
    return summarize_cv(out)


def _print_summary(name: str, s: dict | None) -> None:
    if s is None:
        print(f"{name}: unfinished")
        return
    per_fold = "  ".join(f"{k}: {v['acc']:.3f}" for k, v in s["folds"].items())
    print(f"  {name:<36} {s['acc_mean']:.3f} ± {s['acc_std']:.3f}   {per_fold}", flush=True)


# ---------------------------------------------------------------- the subcommands


def run_faithful(s: FaithfulSettings) -> int:
    jobs = [Job(_smoke(recipes.recipe("paper", model=m, data=s.data, split="random", seed=0,
                                      out=str(Path(s.runs) / f"{m}-random"), threads=s.threads), s.epochs))
            for m in _models(s.models)]
    pool = Pool(s.workers)
    pool.run(jobs)
    for job in jobs:
        metrics = json.loads((job.run_dir / "metrics.json").read_text()) if job.done() else None
        print(f"{job.cfg.model} random split: " + (f"ACC {metrics['acc']:.3f}" if metrics else "unfinished"))
    pool.report()
    return 0 if not pool.failed else 1


def build_bank_once(cfg: TrainConfig, workers: int) -> None:
    """A recipe's bank of views, built in all the pool's processes before its lanes start: each lane
    would otherwise build the same bank alone, side by side (twice the CPU for a 15-minute job with
    two lanes), and only one of the two copies is kept. A bank in the cache is only read."""
    from train.data import build_cache, read_metadata
    from train.loop import view_bank

    cache = build_cache(read_metadata(cfg.data)[0], cfg.cache_dir, progress=False)
    view_bank(cfg, cache, workers)


def run_foldwise(s: FoldwiseSettings) -> int:
    out = Path(s.runs) / f"{s.model}-folds-{s.recipe}"
    cfg = _smoke(recipes.recipe(s.recipe, model=_models(s.model)[0], data=s.data, out=str(out),
                                threads=s.threads), s.epochs)
    folds = wanted_folds(cfg, s.folds)
    if cfg.views and not all(Job(cfg, f).done() for f in folds):
        build_bank_once(cfg, s.workers)
    pool = Pool(s.workers)
    pool.run(fold_jobs(cfg, folds))
    finished = [f for f in folds if Job(cfg, f).done()]
    if finished:
        summary = summarize_cv(out)
        print(f"{out}: fold-wise ACC {summary['acc_mean']:.3f} ± {summary['acc_std']:.3f} over folds "
              f"{', '.join(map(str, summary['folds']))}")
    pool.report()
    return 0 if not pool.failed else 1


def _ablation_cells(only: str | None) -> dict[str, TrainConfig]:
    cells = recipes.ablation_cells()
    if not only:
        return cells
    named = {"base": recipes.cell_name(()), "seed1": recipes.SEED_CHECK,
             "all": recipes.cell_name(recipes.EARLIER_RECIPE)}
    given = [c.strip() for c in only.split(",") if c.strip()]
    wanted = {named.get(c) or recipes.cell_name((c,)) for c in given}
    if not given or any(c not in named and c not in recipes.CHANGES for c in given):
        raise SedError(f"--only {only}: give cells out of base, seed1, all, {', '.join(recipes.CHANGES)}")
    return {k: v for k, v in cells.items() if k in wanted}


def _pool_record(s: AblationSettings) -> dict:
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"workers": s.workers, "threads": s.threads, "device_name": name}


def run_ablation(s: AblationSettings) -> int:
    """The ablation's protocol, fixed before any of its runs (docs/results.md, "Measuring each change"):
    each change alone on top of the base (recipes.ABLATION_BASE), the earlier recipe as one cell, the
    base again with seed 1; rules.decide_ablation keeps what beats the seed difference on 3 of 4 folds;
    the kept changes together are then run fold-wise for every model, and each model on every clip."""
    from train.data import build_cache, read_metadata

    folds, models, runs = _folds(s.folds), _models(s.models), Path(s.runs)
    cells = _ablation_cells(s.only)
    t0 = time.time()
    build_cache(read_metadata(s.data)[0], TrainConfig().cache_dir, progress=False)  # once, not in every worker
    print(f"log-mel cache ready in {time.time() - t0:.0f} s", flush=True)

    def cell_cfg(model: str, cell: str, base: TrainConfig, final: bool) -> TrainConfig:
        where = {"train_on_all": True} if final else {}
        name = f"{model}-{'all' if final else 'folds'}-{cell}"
        return _smoke(replace(base, model=model, data=s.data, out=str(runs / name), threads=s.threads, **where),
                      s.epochs)

    pool = Pool(s.workers, _deadline(s.deadline_minutes))
    pool.run([j for cell, base in cells.items()
              for j in fold_jobs(cell_cfg("convdb", cell, base, False), folds, export=False)])
    results = {cell: summary for cell in cells
               if (summary := summary_if_done(runs / f"convdb-folds-{cell}", folds))}
    print(f"grid: {len(results)} of {len(cells)} cells finished after {time.time() - t0:.0f} s", flush=True)
    for cell, summary in results.items():
        _print_summary(cell, summary)
    pool.report()
    if recipes.cell_name(()) not in results:
        print("the base did not finish: no decision yet (run again to resume)")
        return 1
    decision = rules.decide_ablation(results, folds, tuple(recipes.CHANGES), recipes.cell_name,
                                     recipes.SEED_CHECK)
    decision["grid"] = {cell: {"acc_mean": r["acc_mean"], "acc_std": r["acc_std"],
                               "f1_macro_mean": r["f1_macro_mean"]} for cell, r in results.items()}
    decision["pool"] = _pool_record(s)
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "ablation.json").write_text(json.dumps(decision, indent=1))
    print(json.dumps({k: v for k, v in decision.items() if k != "grid"}, indent=1), flush=True)
    if s.grid_only or len(results) < len(cells):
        return 0 if not pool.failed else 1

    chosen = decision["chosen_cell"]
    base = recipes.recipe(chosen)
    finals = [Job(cell_cfg(m, chosen, base, True), None, export=False) for m in models]
    pool.run(finals + [j for m in models for j in fold_jobs(cell_cfg(m, chosen, base, False), folds, export=False)])
    for model, final in zip(models, finals):
        summary = summary_if_done(runs / f"{model}-folds-{chosen}", folds)
        print(f"{model} {chosen}: fold-wise "
              + (f"{summary['acc_mean']:.3f} ± {summary['acc_std']:.3f}" if summary else "unfinished")
              + f"; all-data final {'done' if final.done() else 'unfinished'}", flush=True)
    pool.report()
    print(f"total {time.time() - t0:.0f} s")
    return 0 if not pool.failed else 1


def run_placement(s: PlacementSettings) -> int:
    """The placement check (rules.placement): the ablation scored clips at the window's start; this
    trains a recipe with and without time shift on the same folds and hardware, and scores both
    with short clips placed at random too."""
    folds, runs = _folds(s.folds), Path(s.runs) / "placement"
    cfgs = {name: _smoke(recipes.recipe(name, model=_models(s.model)[0], data=s.data,
                                        out=str(runs / f"{s.model}-folds-{name}"), threads=s.threads), s.epochs)
            for name in recipes.PLACEMENT}
    jobs = [Job(cfg, fold, export=False) for fold in folds for cfg in cfgs.values()]  # both lanes fold by fold
    pool = Pool(s.workers)
    pool.run(jobs)
    summaries = {name: summary_if_done(Path(cfg.out), folds) for name, cfg in cfgs.items()}
    for name, summary in summaries.items():
        _print_summary(f"{s.model} {name}", summary)
    without, with_it = (summaries[n] for n in recipes.PLACEMENT)
    ablation = Path("docs") / "ablation.json"
    if without and with_it and ablation.exists() and len(folds) == 4:
        noise = json.loads(ablation.read_text())["seed_difference"]
        verdict = rules.placement(with_it, without, noise)
        print(f"placement rule: {'passes' if verdict.passes else 'fails'} (placed "
              f"{verdict.gain_random_placement:+.3f}, plain {verdict.gain_plain:+.3f}, seed difference {noise:.3f})")
    pool.report()
    return 0 if not pool.failed else 1


def final_config(cv_dir: Path, runs: str = "runs", threads: int | None = None) -> TrainConfig:
    """The recipe of a fold-wise cross-validation on every clip, for the epoch count its folds
    chose (the median of their kept epochs): runs/MODEL-all-RECIPE. It trains on every negative:
    thresholds of its own, from a held-out group (`train --hold-out-negatives`), were measured and
    made more false events than the folds' (README, "False alarms")."""
    path = Path(cv_dir) / "cv.json"
    if not path.exists():
        raise SedError(f"{path}: not found; give a fold-wise run folder with a summary")
    summary = json.loads(path.read_text())
    fields = TrainConfig.__dataclass_fields__
    recipe = TrainConfig(**{k: v for k, v in summary["config"].items() if k in fields})
    return replace(recipe, model=summary["model"], train_on_all=True, split="random", test_fold=None,
                   val_fold=None, epochs=int(round(summary["best_epoch_median"])),
                   out=str(Path(runs) / f"{summary['model']}-all-{summary['recipe_name']}"),
                   threads=threads, device="auto")


def run_final(s: FinalSettings) -> int:
    cfg = final_config(Path(s.cv_dir), s.runs, s.threads)
    job = Job(cfg)
    print(job.command(), flush=True)
    if s.dry_run:
        return 0
    out = Path(cfg.out)
    train_single(cfg, job.command(), resume=(out / "last.pt").exists())
    if not s.ship:
        print(f"trained {out}; to ship it: realtime-sed experiments ship {cfg.model} --run {out} "
              f"--foldwise {Path(s.cv_dir) / 'cv.json'}")
        return 0
    return run_ship(ShipSettings(cfg.model, str(out), foldwise=str(Path(s.cv_dir) / "cv.json")))


def run_ship(s: ShipSettings) -> int:
    from train.ship import ship

    if s.distilled and not (s.current and s.foldwise):
        raise SedError("--distilled needs --foldwise and --current")
    if s.added and not (s.ablation and s.without and s.foldwise):
        raise SedError("--added needs --ablation, --foldwise and --without")
    path = lambda p: Path(p) if p else None  # noqa: E731
    shipped = ship(s.model, Path(s.run), path(s.foldwise), Path(s.out), path(s.ablation),
                   s.added.split(",") if s.added else None, path(s.without), path(s.distilled), path(s.current))
    print(f"shipped {shipped}")
    return 0


def run_reevaluate(s: ReevaluateSettings) -> int:
    """Finished runs evaluated again without training (after a metric is added to the evaluation):
    each run's saved settings and best.pt; metrics.json, the figures and the card (MODEL.json; the
    ONNX file is left as it is) are rewritten, and each cross-validation's cv.json."""
    for folder in map(Path, s.folders):
        folds = sorted(p for p in folder.glob("fold*") if (p / "run.json").exists())
        for run in folds or [folder]:
            print(f"== {run}", flush=True)
            if not (run / "config.json").exists():
                raise SedError(f"{run}: no config.json; give run folders made by `train`")
            cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
            finish_run(cfg, run, first_command(run, ""), export=False)
        if folds:
            summary = summarize_cv(folder)
            print(f"{folder}: ACC {summary['acc_mean']:.3f}, short clips placed at random "
                  f"{summary['acc_random_placement_mean']:.3f}")
    return 0


def run_results(s: ResultsSettings) -> int:
    from train import results

    return results.run_results(s.write)


def run_demo(s: DemoSettings) -> int:
    from train.democheck import run_demo as demo

    return demo(s.models)


def run_table2(s: Table2Settings) -> int:
    """Every run behind the results tables, resumable. On 2 CPU cores this takes days; the ablation
    took 15 minutes on one H200 with 14 workers (`experiments ablation --workers 14`)."""
    from train.commands import run_export

    steps = [
        run_faithful(FaithfulSettings(data=s.data, runs=s.runs, workers=s.workers)),
        # the paper's and the earlier recipe of every model, fold-wise
        *(run_foldwise(FoldwiseSettings(m, r, data=s.data, runs=s.runs, workers=s.workers, threads=s.threads))
          for m in _models(FaithfulSettings.models) for r in ("paper", "shift-gain-mix-spec-last")),
        run_ablation(AblationSettings(workers=s.workers, threads=s.threads, data=s.data, runs=s.runs)),
        run_placement(PlacementSettings(data=s.data, runs=s.runs, workers=s.workers, threads=s.threads)),
    ]
    if any(steps):
        print("some runs failed or are unfinished: run again to resume")
        return 1
    runs = Path(s.runs)
    chosen = json.loads((runs / "ablation.json").read_text())["chosen_cell"]
    with_shift, without = (f"{runs}/placement/convdb-folds-{n}" for n in reversed(recipes.PLACEMENT))
    run_final(FinalSettings(with_shift, runs=s.runs, threads=s.threads))
    run_results(ResultsSettings(write=True))  # copies the summaries into docs/ for the cards
    for model in ("conv2d", "convdf", "convdt"):
        run_export(ExportSettings(f"{runs}/{model}-all-{chosen}/best.pt"))
        run_ship(ShipSettings(model, f"{runs}/{model}-all-{chosen}", foldwise=f"docs/foldwise/{model}-{chosen}.json",
                              ablation="docs/ablation.json"))
    name = Path(with_shift).name.split("-folds-")[1]
    run_ship(ShipSettings("convdb", f"{runs}/convdb-all-{name}", foldwise=f"docs/foldwise/convdb-{name}.json",
                          ablation="docs/ablation.json", added="shift",
                          without=f"docs/foldwise/{Path(without).name.replace('-folds-', '-')}.json"))
    return run_results(ResultsSettings(write=True))


def run_teacher_heads(s: TeacherHeadsSettings) -> int:
    """Each candidate head fitted on every fold run's training clips (the clean views of the view
    bank, as train.distill fits the shipped one), scored on its validation and test clips."""
    import numpy as np

    from train.data import build_cache, read_metadata
    from train.loop import make_split
    from train.teacher import compare_heads
    from train.views import ViewSettings, all_negatives, bank_for

    cfg = TrainConfig(data=s.data, views=recipes.RECIPES["kd"].views)
    cache = build_cache(read_metadata(cfg.data)[0], cfg.cache_dir, progress=False)
    bank = bank_for(cache.clips, ViewSettings(n_views=cfg.views, seed=cfg.seed),
                    all_negatives(cfg.esc_data, cfg.synthetic_per_kind, cfg.seed), cfg.cache_dir, cfg.teacher)
    parts = {}
    for fold in wanted_folds(cfg, s.folds):
        split = make_split(replace(cfg, split="fold", test_fold=fold), cache)
        parts[fold] = tuple(np.asarray(p, dtype=np.int64) * bank.n_views for p in (split.train, split.val, split.test))
    result = compare_heads(np.asarray(bank.embeddings, np.float32), np.asarray(bank.label), parts)
    result["command"] = f"realtime-sed experiments teacher-heads --folds {s.folds}"
    Path(s.out).parent.mkdir(parents=True, exist_ok=True)
    Path(s.out).write_text(json.dumps(result, indent=1) + "\n")
    for name, m in result["mean"].items():
        print(f"{name:22s} val {m['val']:.3f}  test {m['test']:.3f}" + ("  <- best on val" if name == result["best_on_val"] else ""))
    print(f"wrote {s.out}")
    return 0


COMMANDS = {"faithful": run_faithful, "foldwise": run_foldwise, "ablation": run_ablation,
            "placement": run_placement, "final": run_final, "ship": run_ship, "reevaluate": run_reevaluate,
            "results": run_results, "demo": run_demo, "table2": run_table2,
            "teacher-heads": run_teacher_heads}
SETTINGS = {"faithful": FaithfulSettings, "foldwise": FoldwiseSettings, "ablation": AblationSettings,
            "placement": PlacementSettings, "final": FinalSettings, "ship": ShipSettings,
            "reevaluate": ReevaluateSettings, "results": ResultsSettings, "demo": DemoSettings,
            "table2": Table2Settings, "teacher-heads": TeacherHeadsSettings}
