"""Issue 15, training side: arguments refused before any work, no earlier run overwritten, one line
for a checkpoint that is not one, and a word when an evaluation scores clips the model trained on."""

from __future__ import annotations

import json
import re

import pytest

from realtime_sed.cli import build_parser, train_settings_from_args
from realtime_sed.errors import SedError
from tests.conftest import REPO, SHARED_DATA, needs_data, run_cli
from tests.test_bad_input import assert_one_line_error
from tests.test_train import tiny_dataset  # noqa: F401  (a fixture)
from train.commands import check_train, training_overlap
from train.data import read_metadata


REFUSED = [
    (["--epochs", "0"], "--epochs 0"),
    (["--patience", "-1"], "--patience -1"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--lr", "nan"], "--lr nan"),
    (["--split", "fold"], "--split fold needs --test-fold"),
    (["--split", "random", "--test-fold", "2"], "--test-fold goes with --split fold"),
]


@pytest.mark.parametrize("args, fragment", [REFUSED[0], REFUSED[4]])
def test_bad_training_arguments_are_refused_before_any_work(tmp_path, args, fragment):
    cache = tmp_path / "cache"
    r = run_cli("train", "--out", tmp_path / "run", "--cache-dir", cache, *args)
    assert_one_line_error(r, fragment, code=2)
    assert not cache.exists() and not (tmp_path / "run").exists()  # no cache built, no run started


@pytest.mark.parametrize("args, fragment", REFUSED)
def test_every_bad_training_argument_is_refused(tmp_path, args, fragment):
    with pytest.raises(SedError, match=re.escape(fragment)):
        check_train(*train_settings(["--out", str(tmp_path / "run"), *args]))


def train_settings(argv: list[str]):
    """What the command line hands `train`: (TrainConfig, TrainRun)."""
    return train_settings_from_args(build_parser().parse_args(["train", *argv]))


def test_a_test_fold_implies_the_fold_split(tmp_path):
    cfg = check_train(*train_settings(["--test-fold", "2", "--out", str(tmp_path / "run")]))
    assert cfg.split == "fold" and cfg.test_fold == 2


def test_an_earlier_run_is_not_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.txt").write_text("epoch 1 of the earlier run\n")
    with pytest.raises(SedError, match="already holds a run; --resume continues it, --force starts over"):
        check_train(*train_settings(["--out", str(run), "--epochs", "1"]))
    assert (run / "log.txt").read_text() == "epoch 1 of the earlier run\n"
    check_train(*train_settings(["--out", str(run), "--force"]))  # --force is the way to start over
    check_train(*train_settings(["--out", str(run), "--resume"]))


def test_export_of_a_missing_or_foreign_file_is_one_line(tmp_path):
    assert_one_line_error(run_cli("export", tmp_path / "nosuch.pt"), "nosuch.pt", "no such checkpoint", code=2)
    log = tmp_path / "log.txt"
    log.write_text("epoch 1: loss 2.1\n")
    assert_one_line_error(run_cli("export", log), "log.txt", "not a checkpoint", code=2)


def _card(name: str) -> dict:
    return json.loads((REPO / "models" / f"{name}.json").read_text())


@needs_data
def test_evaluating_on_the_training_clips_names_the_overlap():
    """The shipped models trained on every clip of the shared dataset: any split of it overlaps."""
    clips, _ = read_metadata(SHARED_DATA)
    card = _card("convdb")
    assert card["training"]["config"]["train_on_all"]
    idx = list(range(0, len(clips), 7))
    warning = training_overlap(card, clips, idx, SHARED_DATA)
    assert warning and warning.startswith(f"{len(idx)} of {len(idx)} evaluated clips")
    assert clips[idx[0]].path.name in warning


@needs_data
def test_a_fold_model_warns_only_about_its_training_folds():
    clips, _ = read_metadata(SHARED_DATA)
    card = _card("convdb")
    config = {**card["training"]["config"], "train_on_all": False, "split": "fold", "test_fold": 1,
              "val_fold": None}
    card = {**card, "training": {**card["training"], "config": config}}
    test_fold = [i for i, c in enumerate(clips) if c.fold == 1]
    other = [i for i, c in enumerate(clips) if c.fold == 2]
    assert training_overlap(card, clips, test_fold, SHARED_DATA) is None
    assert training_overlap(card, clips, other, SHARED_DATA).startswith(f"{len(other)} of {len(other)}")


def test_another_dataset_is_not_the_cards(tiny_dataset):  # noqa: F811
    clips, _ = read_metadata(tiny_dataset)
    assert training_overlap(_card("convdb"), clips, list(range(len(clips))), tiny_dataset) is None
