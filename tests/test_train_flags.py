"""`realtime-sed train` and TrainConfig: every field has the flag of its name, a flag's default is the
field's (or None, meaning the field's), and `TrainConfig.to_argv()` gives back the same config."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from realtime_sed.cli import build_parser
from train.commands import config_from_args
from train.loop import TrainConfig

RUN_FLAGS = {"cv", "folds", "resume", "force", "quiet", "no_onnx", "command", "help"}  # how to run, not what


def train_parser() -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["train"]


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
    assert config_from_args(args) == cfg
