"""What a training-side command is asked to do, as plain dataclasses built once by `realtime_sed/cli.py`
(one field per option, of the option's name; each field owns its default). Nothing under train/
reads an argparse Namespace. What to train is `train.loop.TrainConfig`; `TrainRun` is how to run
it. This module imports no torch, so the command line can read the defaults without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime_sed.constants import DATA_DIR


@dataclass(frozen=True)
class TrainRun:
    """How `realtime-sed train` runs a TrainConfig (none of it changes what is trained)."""

    cv: bool = False  # each fold with at least 100 clips is the test fold in turn
    folds: str | None = None  # with cv: only these test folds, e.g. "1,3"
    resume: bool = False  # continue OUT/last.pt with OUT/config.json
    force: bool = False  # start over in an --out folder that holds a run
    quiet: bool = False  # no progress bar
    no_onnx: bool = False  # write the card, skip the ONNX export
    # The TrainConfig fields the command line set (the others are the fields' defaults): on
    # resume only RESUMABLE ones of these replace the saved run's, and --test-fold implies
    # --split fold unless --split was given.
    given: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ExportSettings:
    checkpoint: str  # a .pt file inside a run folder made by `train`
    out: str | None = None  # the .onnx path (default: beside the checkpoint)


@dataclass(frozen=True)
class EvaluateSettings:
    model: str  # an .onnx file or a model name
    data: str = DATA_DIR
    split: str = "random"  # random (its test part), fold (one test fold) or all
    test_fold: int | None = None
    seed: int = 0  # seed of the random split
    out: str | None = None  # where metrics.json and confusion.png go


@dataclass(frozen=True)
class CalibrateSettings:
    folds_dir: str  # the --out folder of a fold-wise run
    compare: tuple[str, ...] = ()  # models whose false events are counted on the same stream


@dataclass(frozen=True)
class QuantizeSettings:
    model: str  # an .onnx file or a model name
    out: str | None = None  # default: MODEL-int8.onnx beside the model
    data: str = DATA_DIR
    folds: str = "10,1,2,3"  # evaluation folds; calibration uses the others
    calibration: int = 200  # most calibration clips
    seed: int = 0  # seed of the calibration sample
    json: str | None = None  # also write the figures here


# `realtime-sed experiments ...` (train/experiments.py): the runs behind docs/results.md. Run folders
# are under `runs`, relative to the current folder like `train --out`; trainings run in `workers`
# processes of `threads` torch threads each; `epochs` replaces the recipe's epoch count (smoke runs).
ALL_MODELS = "convdb,conv2d,convdf,convdt"


@dataclass(frozen=True)
class FaithfulSettings:
    """The paper's recipe and random 80/10/10 split, seed 0, for each model: runs/MODEL-random."""

    models: str = ALL_MODELS
    data: str = DATA_DIR
    runs: str = "runs"
    workers: int = 1
    threads: int | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class FoldwiseSettings:
    """One model and recipe, each test fold in turn: runs/MODEL-folds-RECIPE."""

    model: str
    recipe: str = "paper"
    folds: str | None = None  # default: every fold with at least 100 clips
    data: str = DATA_DIR
    runs: str = "runs"
    workers: int = 1
    threads: int | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class AblationSettings:
    """Each change alone on top of the base, fold-wise on ConvDB; the rule's kept changes then for
    every model, fold-wise and on all clips (train/recipes.py, train/rules.py)."""

    workers: int = 1
    threads: int | None = 1
    deadline_minutes: float | None = None  # start no run after this, and stop the running ones (they resume)
    folds: str = "1,2,3,10"
    epochs: int | None = None
    only: str | None = None  # grid cells to run, e.g. "base,seed1,mix" (base, seed1, all, or a change)
    grid_only: bool = False  # stop after the decision
    models: str = ALL_MODELS  # the models of the second step
    data: str = DATA_DIR
    runs: str = "runs"


@dataclass(frozen=True)
class PlacementSettings:
    """A recipe with and without time shift (recipes.PLACEMENT), fold-wise: runs/placement/."""

    model: str = "convdb"
    folds: str = "1,2,3,10"
    data: str = DATA_DIR
    runs: str = "runs"
    workers: int = 2
    threads: int | None = 1
    epochs: int | None = None


@dataclass(frozen=True)
class FinalSettings:
    """A fold-wise recipe on every clip for the median of its folds' kept epochs: runs/MODEL-all-RECIPE."""

    cv_dir: str
    runs: str = "runs"
    threads: int | None = None
    dry_run: bool = False  # print the equivalent `realtime-sed train` command, run nothing
    ship: bool = False  # then put it into models/


@dataclass(frozen=True)
class ShipSettings:
    model: str
    run: str  # run folder with MODEL.onnx
    foldwise: str | None = None  # cv.json summary of the same recipe
    ablation: str | None = None  # the decision that chose the recipe
    added: str | None = None  # changes added after the ablation by the placement rule, e.g. "shift"
    without: str | None = None  # with added: the fold-wise summary of the recipe without them
    distilled: str | None = None  # the fold-wise folder of a distilled recipe, with calibration.json
    current: str | None = None  # with distilled: the fold-wise summary of the recipe it replaces
    out: str = "models"


@dataclass(frozen=True)
class ReevaluateSettings:
    folders: tuple[str, ...]  # run folders, or cross-validation folders (foldK/ inside)


@dataclass(frozen=True)
class ResultsSettings:
    write: bool = False  # collect from runs/ and rewrite README.md's tables and docs/results.md


@dataclass(frozen=True)
class DemoSettings:
    models: tuple[str, ...] = ("convdb",)


@dataclass(frozen=True)
class TeacherHeadsSettings:
    """Which head on the teacher's embedding: each candidate fold-wise (train.teacher.compare_heads)."""

    data: str = DATA_DIR
    folds: str = "1,2,3,10"
    out: str = "docs/teacher-heads.json"


@dataclass(frozen=True)
class Table2Settings:
    """Every run behind the results tables, in order, then the shipped models and the pages."""

    data: str = DATA_DIR
    runs: str = "runs"
    workers: int = 2
    threads: int | None = 1
