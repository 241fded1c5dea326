"""`realtime-sed experiments`: the pool trains recipes directly (no command lines of our own), the
runs resume, and each card records a `realtime-sed train` command that repeats its run alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from realtime_sed.cli import build_parser, train_settings_from_args
from realtime_sed.constants import CLASSES
from tests.conftest import run_cli, write_metadata
from tests.test_train import _demo_clips
from train.recipes import recipe


def write_fold_dataset(root: Path, per_fold: dict[int, int]) -> Path:
    """UrbanSound8K's layout with enough clips in a fold for it to be a test fold (100): 1 s slices
    of the demo's real segments, one recording (fsID) per clip."""
    segments = _demo_clips()
    rows, k = [], 0
    for fold, n in per_fold.items():
        (root / "audio" / f"fold{fold}").mkdir(parents=True)
        for i in range(n):
            seg, label = segments[k % len(segments)]
            start = (k * 5000) % max(1, len(seg) - 22050)
            name = f"{2000 + k}-{label}-0-0.wav"
            sf.write(root / "audio" / f"fold{fold}" / name, seg[start : start + 22050], 22050)
            rows.append([name, 2000 + k, 0, 1.0, 1, fold, label, CLASSES[label]])
            k += 1
    return write_metadata(root, rows)


@pytest.fixture(scope="module")
def fold_data(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("experiments")
    data = write_fold_dataset(root / "UrbanSound8K", {1: 100, 2: 40, 3: 40})
    return data, {"SED_CACHE": str(root / "cache")}


def card_config(run: Path, model: str, cache: str):
    """The config that the card's recorded command gives when `train` parses it."""
    command = json.loads((run / f"{model}.json").read_text())["command"].split()
    assert command[:2] == ["realtime-sed", "train"]
    return train_settings_from_args(build_parser().parse_args([*command[1:], "--cache-dir", cache]))


def test_the_ablation_trains_its_cells_in_a_pool_decides_and_resumes(fold_data, tmp_path):
    data, env = fold_data
    runs = tmp_path / "runs"
    argv = ["experiments", "ablation", "--data", data, "--runs", runs, "--folds", "1", "--epochs", "1",
            "--only", "base,seed1,mix", "--grid-only", "--workers", "2", "--threads", "1"]
    first = run_cli(*argv, env=env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "grid: 3 of 3 cells finished" in first.stdout
    decision = json.loads((runs / "ablation.json").read_text())
    assert set(decision["changes"]) == {"mix"} and decision["pool"]["workers"] == 2
    base, seed1 = (json.loads((runs / f"convdb-folds-{c}" / "cv.json").read_text())
                   for c in ("abl-base", "abl-base-seed1"))
    assert decision["seed_difference"] == pytest.approx(abs(seed1["acc_mean"] - base["acc_mean"]))

    fold = runs / "convdb-folds-abl-mix" / "fold1"
    cfg, run = card_config(fold, "convdb", env["SED_CACHE"])
    expected = recipe("abl-mix", data=str(data), out=str(runs / "convdb-folds-abl-mix"), epochs=1, threads=1,
                      cache_dir=env["SED_CACHE"])
    assert cfg == expected and run.cv and run.folds == "1" and run.no_onnx
    assert json.loads((fold / "config.json").read_text())["mix_prob"] == 0.5  # what was trained is the recipe
    assert not (fold / "convdb.onnx").exists()  # the ablation writes cards only
    logs = {p: p.stat().st_size for p in runs.glob("*.fold1.log")}
    assert len(logs) == 3 and all(logs.values())

    again = run_cli(*argv, env=env, timeout=300)  # everything finished: nothing trains again
    assert again.returncode == 0, again.stderr
    assert "grid: 3 of 3 cells finished" in again.stdout
    assert {p: p.stat().st_size for p in runs.glob("*.fold1.log")} == logs


def test_past_the_deadline_no_training_starts(fold_data, tmp_path):
    data, env = fold_data
    r = run_cli("experiments", "ablation", "--data", data, "--runs", tmp_path / "runs", "--folds", "1",
                "--epochs", "1", "--only", "base", "--deadline-minutes", "0", env=env)
    assert r.returncode == 1 and "the base did not finish: no decision yet" in r.stdout
    assert not (tmp_path / "runs" / "convdb-folds-abl-base" / "fold1" / "last.pt").exists()


def test_faithful_trains_a_single_run_with_its_onnx_model(fold_data, tmp_path):
    data, env = fold_data
    runs = tmp_path / "runs"
    r = run_cli("experiments", "faithful", "--models", "convdt", "--data", data, "--runs", runs, "--epochs", "1",
                "--threads", "1", env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "convdt random split: ACC" in r.stdout
    run_dir = runs / "convdt-random"
    assert (run_dir / "convdt.onnx").exists() and (runs / "convdt-random.log").stat().st_size > 0
    cfg, run = card_config(run_dir, "convdt", env["SED_CACHE"])
    assert cfg == recipe("paper", model="convdt", data=str(data), split="random", out=str(run_dir), epochs=1,
                         threads=1, cache_dir=env["SED_CACHE"])
    assert not run.cv and not run.no_onnx


@pytest.mark.parametrize("argv, fragment", [
    (["ablation", "--only", "nosuch"], "--only nosuch: give cells out of base, seed1, all"),
    (["ablation", "--models", "convxx", "--deadline-minutes", "0"], "--models convxx: give some of"),
    (["foldwise", "convdb", "nosuch"], "no recipe named nosuch"),
    (["final", "nosuch-dir"], "nosuch-dir/cv.json: not found"),
    (["ship", "convdb", "--run", "r", "--added", "shift"], "--added needs --ablation, --foldwise and --without"),
])
def test_bad_experiment_arguments_are_one_line(argv, fragment):
    r = run_cli("experiments", *argv)
    assert r.returncode == 2 and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_failed_training_is_reported_with_its_log_and_the_exit_code(tmp_path):
    runs = tmp_path / "runs"
    r = run_cli("experiments", "faithful", "--models", "convdt,convdf", "--data", tmp_path / "nosuch", "--runs", runs,
                "--epochs", "1")
    assert r.returncode == 1 and "failed runs:" in r.stdout, r.stdout + r.stderr
    assert f"exit 2, see {runs / 'convdt-random.log'}" in r.stdout and "convdf-random" in r.stdout
    log = (runs / "convdt-random.log").read_text().strip().splitlines()
    assert log[-1].startswith("realtime-sed: error: ") and "nosuch" in log[-1]
