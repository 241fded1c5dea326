"""`realtime-sed train` and TrainConfig: every field has the flag of its name, a flag's default is the
field's (or None, meaning the field's), and `TrainConfig.to_argv()` gives back the same config. The
other training-side commands: each option fills the settings field of its name, with its default."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

import pytest

from realtime_sed.cli import build_parser, settings_of, train_settings_from_args
from train.commands import resolve_config, train_command
from train.loop import TrainConfig
from train.experiments import SETTINGS as EXPERIMENTS
from train.settings import CalibrateSettings, EvaluateSettings, ExportSettings, QuantizeSettings, TrainRun

# how to run, not what: TrainRun's fields (but `given`, which the parsed options fill)
RUN_FLAGS = {f.name for f in fields(TrainRun)} - {"given"} | {"command", "help"}


def subparser(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def train_parser() -> argparse.ArgumentParser:
    return subparser("train")


def test_every_field_has_its_flag_and_every_flag_a_field():
    dests = {a.dest: a for a in train_parser()._actions}
    for f in fields(TrainConfig):
        assert f.name in dests, f"TrainConfig.{f.name} has no --{f.name.replace('_', '-')}"
        flag_default = dests[f.name].default
        if f.name != "cache_dir":  # its default comes from SED_CACHE at run time
            assert flag_default is None or flag_default == getattr(TrainConfig(), f.name), f.name
    extra = set(dests) - {f.name for f in fields(TrainConfig)} - RUN_FLAGS
    assert not extra, f"train flags with no TrainConfig field: {sorted(extra)}"


@pytest.mark.parametrize("cfg", [
    TrainConfig(),
    TrainConfig(model="convdt", split="fold", test_fold=3, time_shift=True, mix_prob=0.5, lr=3e-4,
                schedule="cosine", keep="last"),
    TrainConfig(model="conv2d", train_on_all=True, epochs=30, views=8, distill=0.7, embed_weight=0.3,
                negatives=0.5, head_views="all", teacher="x/yamnet.tflite"),
])
def test_to_argv_parses_back_to_the_same_config(cfg, tmp_path):
    argv = cfg.to_argv()
    assert argv[:2] == ["--model", cfg.model]
    args = build_parser().parse_args(["train", *argv, "--cache-dir", cfg.cache_dir])
    parsed, run = train_settings_from_args(args)
    assert parsed == cfg and resolve_config(parsed, run) == cfg


def test_the_run_flags_fill_train_run_and_given_names_the_options_set():
    args = build_parser().parse_args(["train", "--cv", "--folds", "1,3", "--resume", "--quiet", "--no-onnx",
                                      "--epochs", "40", "--out", "runs/x"])
    cfg, run = train_settings_from_args(args)
    assert run == TrainRun(cv=True, folds="1,3", resume=True, quiet=True, no_onnx=True, given=run.given)
    assert {"epochs", "out"} <= run.given and "lr" not in run.given and "split" not in run.given
    assert cfg.epochs == 40 and cfg.lr == TrainConfig().lr


def test_a_recorded_train_command_parses_back_to_its_config_and_run(tmp_path):
    """What the experiments record in a card: a `realtime-sed train` line that repeats the run."""
    cfg = TrainConfig(model="convdf", epochs=40, patience=0, keep="last", mix_prob=0.5, out=str(tmp_path / "r"),
                      cache_dir=str(tmp_path / "cache"))
    run = TrainRun(cv=True, folds="2", resume=True, quiet=True, no_onnx=True)
    line = train_command(cfg, run)
    assert line.startswith("realtime-sed train --model convdf ")
    parsed, parsed_run = train_settings_from_args(
        build_parser().parse_args([*line.split()[1:], "--cache-dir", cfg.cache_dir]))
    assert parsed == cfg and parsed_run == TrainRun(**{**run.__dict__, "given": parsed_run.given})


@pytest.mark.parametrize("command, cls", [("export", ExportSettings), ("evaluate", EvaluateSettings),
                                          ("calibrate", CalibrateSettings), ("quantize", QuantizeSettings)])
def test_each_option_of_a_training_command_is_a_settings_field_with_its_default(command, cls):
    dests = {a.dest: a for a in subparser(command)._actions if a.dest != "help"}
    assert set(dests) == {f.name for f in fields(cls)}, command
    for f in fields(cls):
        if f.default is not MISSING:
            default = dests[f.name].default
            assert (tuple(default) if isinstance(default, list) else default) == f.default, f.name


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_option_of_an_experiment_is_a_settings_field_with_its_default(name):
    action = next(a for a in subparser("experiments")._actions if isinstance(a, argparse._SubParsersAction))
    dests = {a.dest: a for a in action.choices[name]._actions if a.dest != "help"}
    cls = EXPERIMENTS[name]
    assert set(dests) == {f.name for f in fields(cls)}, name
    for f in fields(cls):
        if f.default is not MISSING:
            default = dests[f.name].default
            assert (tuple(default) if isinstance(default, list) else default) == f.default, f.name


def test_settings_of_builds_the_commands_settings_from_the_parsed_options():
    args = build_parser().parse_args(["calibrate", "runs/cv", "--compare", "a.onnx", "--compare", "b.onnx"])
    assert settings_of(CalibrateSettings, args) == CalibrateSettings("runs/cv", ("a.onnx", "b.onnx"))
    args = build_parser().parse_args(["evaluate", "--model", "m.onnx", "--split", "fold", "--test-fold", "2"])
    assert settings_of(EvaluateSettings, args) == EvaluateSettings("m.onnx", split="fold", test_fold=2)
