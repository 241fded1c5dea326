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
