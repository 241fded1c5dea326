"""The experiments' decision rules (train/rules.py) on hand-made fold-wise summaries."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_sed.errors import SedError
from train import rules
from train.recipes import CHANGES, SEED_CHECK, cell_name

FOLDS = ("1", "2", "3", "10")


def summary(*accs, placed=None, device="cpu"):
    s = {"acc_mean": float(np.mean(accs)),
         "folds": {f: {"acc": a, "device": device} for f, a in zip(FOLDS, accs)}}
    if placed is not None:
        s["acc_random_placement_mean"] = placed
    return s


def test_ablation_keeps_a_change_only_above_the_seed_difference_on_most_folds():
    results = {cell_name(()): summary(0.40, 0.50, 0.40, 0.50),
               SEED_CHECK: summary(0.42, 0.50, 0.40, 0.52),                  # seeds differ by 0.01
               cell_name(("mix",)): summary(0.45, 0.55, 0.39, 0.55),         # +0.035, 3 folds: kept
               cell_name(("gain",)): summary(0.50, 0.49, 0.39, 0.49),        # +0.0175, 1 fold: not
               cell_name(("spec",)): summary(0.405, 0.505, 0.405, 0.505)}    # all 4, +0.005: not
    decision = rules.decide_ablation(results, FOLDS, tuple(CHANGES), cell_name, SEED_CHECK)
    assert decision["seed_difference"] == pytest.approx(0.01)
    assert decision["kept"] == ["mix"] and decision["chosen_cell"] == "abl-mix"
    assert decision["changes"]["gain"]["folds_better"] == 1 and not decision["changes"]["gain"]["kept"]
    assert decision["changes"]["spec"]["folds_better"] == 4 and not decision["changes"]["spec"]["kept"]
    assert set(decision["changes"]) == {"mix", "gain", "spec"}  # cells not run are not decided
    assert decision["rule"].endswith("at least 3 of 4 test folds are better")


def test_without_the_seed_check_nothing_is_kept():
    results = {cell_name(()): summary(0.40, 0.50, 0.40, 0.50), cell_name(("mix",)): summary(0.6, 0.6, 0.6, 0.6)}
    decision = rules.decide_ablation(results, FOLDS, tuple(CHANGES), cell_name, SEED_CHECK)
    assert decision["seed_difference"] is None and decision["kept"] == [] and decision["chosen_cell"] == "abl-base"


@pytest.mark.parametrize("new, ships", [
    ((0.53, 0.53, 0.53, 0.49), True),     # +0.02 mean, 3 of 4 better
    ((0.60, 0.60, 0.40, 0.40), False),    # +0.0 mean
    ((0.58, 0.58, 0.49, 0.49), False),    # +0.035 mean but only 2 folds better
    ((0.505, 0.505, 0.505, 0.505), False),  # 4 folds better, +0.005 is inside the seed difference
])
def test_the_ship_rule_needs_a_gain_above_the_seed_difference_on_3_of_4_folds(new, ships):
    current = summary(0.50, 0.50, 0.50, 0.50)
    comparison, passes = rules.ship(summary(*new), current, noise=0.013)
    assert passes is ships
    assert comparison.folds == 4 and comparison.gain == pytest.approx(np.mean(new) - 0.5)


def test_the_ship_rules_noise_is_the_current_recipes_own_seed_difference_where_larger():
    current = summary(0.60, 0.50, 0.55, 0.65)
    again = summary(0.50, 0.55, 0.55, 0.58)  # the same recipe with seed 1: 0.03 lower on average
    assert rules.ship_noise(0.013, current, [again]) == pytest.approx(0.03)
    assert rules.ship_noise(0.013, current, []) == 0.013
    assert rules.ship_noise(0.05, current, [again]) == 0.05
    # a recipe 0.02 better on 3 of 4 folds passes the ablation's noise but not the recipe's own
    new = summary(0.63, 0.53, 0.57, 0.65)
    assert rules.ship(new, current, 0.013)[1] and not rules.ship(new, current, rules.ship_noise(0.013, current, [again]))[1]


def test_the_ship_rule_compares_the_same_folds_only():
    new = summary(0.6, 0.6, 0.6, 0.6)
    del new["folds"]["10"]
    new["folds"]["4"] = {"acc": 0.6}
    with pytest.raises(SedError, match="fold 4 is not in both summaries"):
        rules.ship(new, summary(0.5, 0.5, 0.5, 0.5), noise=0.01)


@pytest.mark.parametrize("placed, plain, passes", [
    (0.50, 0.495, True),    # +0.056 placed, +0.009 plain: ConvDB's time shift
    (0.45, 0.495, False),   # +0.006 placed: inside the seed difference
    (0.50, 0.47, False),    # placed better, but the plain score drops by more than the noise
])
def test_the_placement_rule(placed, plain, passes):
    without = summary(0.486, 0.486, 0.486, 0.486, placed=0.444)
    with_it = summary(plain, plain, plain, plain, placed=placed)
    verdict = rules.placement(with_it, without, noise=0.013)
    assert verdict.passes is passes
    assert verdict.gain_random_placement == pytest.approx(placed - 0.444)


def test_the_placement_rule_refuses_other_hardware_or_folds():
    without = summary(0.5, 0.5, 0.5, 0.5, placed=0.4)
    with pytest.raises(SedError, match="same four test folds and hardware"):
        rules.placement(summary(0.5, 0.5, 0.5, 0.5, placed=0.5, device="cuda"), without, noise=0.01)
    three = summary(0.5, 0.5, 0.5, 0.5, placed=0.5)
    del three["folds"]["10"]
    with pytest.raises(SedError, match="same four test folds and hardware"):
        rules.placement(three, without, noise=0.01)
