"""The named recipes (train/recipes.py) are the ones the committed results were trained with."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from realtime_sed.errors import SedError
from tests.conftest import REPO
from train.loop import TrainConfig
from train.recipes import (ABLATION_BASE, BRANCHES_FROM, CHANGES, DISTILLATION_ABLATION, EARLIER_RECIPE, RECIPES,
                           SEED_CHECK, ablation_cells, cell_name, recipe, seed_repeats, with_changes)

SUMMARIES = sorted([*(REPO / "docs" / "foldwise").glob("*.json"), *(REPO / "docs" / "screening").glob("*.json")])
RUN_FIELDS = {"model", "data", "split"}  # set by the experiment, not by the recipe


def test_every_committed_summary_has_a_recipe():
    assert len(SUMMARIES) >= 20
    names = {json.loads(p.read_text())["recipe_name"] for p in SUMMARIES}
    assert names <= set(RECIPES), sorted(names - set(RECIPES))


@pytest.mark.parametrize("path", SUMMARIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_recipe_is_the_config_its_summary_was_trained_with(path):
    summary = json.loads(path.read_text())
    cfg = recipe(summary["recipe_name"], model=summary["model"])
    saved = {k: v for k, v in summary["config"].items() if k not in RUN_FIELDS}
    assert {k: getattr(cfg, k) for k in saved} == saved
    assert cfg.recipe == summary["recipe"]  # the recipe in words, as the tables print it


def test_an_ablation_cell_is_the_base_plus_its_changes_whatever_their_order():
    assert cell_name(("smooth", "mix")) == cell_name(("mix", "smooth")) == "abl-mix-smooth"
    assert recipe("abl-mix-smooth") == replace(ABLATION_BASE, mix_prob=0.5, label_smoothing=0.1)
    assert recipe("abl-gain-spec") == with_changes(ABLATION_BASE, ("spec", "gain"))
    cells = ablation_cells()
    assert list(cells)[:3] == ["abl-base", SEED_CHECK, cell_name(EARLIER_RECIPE)]
    assert len(cells) == 3 + len(CHANGES) and cells[SEED_CHECK] == replace(ABLATION_BASE, seed=1)
    assert ABLATION_BASE == TrainConfig(epochs=40, patience=0, keep="last")


def test_a_branch_of_the_distillation_ablation_is_one_change_to_an_earlier_step():
    """The ablation table says what each row adds to the one it grew from; a branch must add one thing."""
    for step, parent in BRANCHES_FROM.items():
        assert DISTILLATION_ABLATION.index(parent) < DISTILLATION_ABLATION.index(step)
        a, b = RECIPES[parent], RECIPES[step]
        changed = [f for f in TrainConfig.__dataclass_fields__ if getattr(a, f) != getattr(b, f)]
        assert len(changed) == 1, (step, changed)


def test_a_seed_repeat_is_a_branch_that_changes_the_seed_alone():
    assert seed_repeats("kd-mixup-long") == ["kd-mixup-long-seed1", "kd-mixup-long-seed2"]
    assert seed_repeats("kd-mixup-16v") == [] and seed_repeats("no-such-recipe") == []


def test_a_recipe_takes_the_experiments_fields():
    cfg = recipe("kd", model="conv2d", out="runs/x", threads=1)
    assert (cfg.model, cfg.out, cfg.threads, cfg.views, cfg.distill) == ("conv2d", "runs/x", 1, 8, 0.7)
    assert RECIPES["kd"].model == TrainConfig().model  # the table itself is unchanged


@pytest.mark.parametrize("name", ["nosuch", "abl-nosuch", "abl-smooth-mix"])
def test_an_unknown_recipe_is_one_line(name):
    with pytest.raises(SedError, match=f"no recipe named {name} "):
        recipe(name)

