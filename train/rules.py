"""The decision rules of the experiments, as plain functions of fold-wise summaries (`cv.json`:
"acc_mean", "folds": {fold: {"acc", ...}}, and for the placement rule "acc_random_placement_mean").

- The ablation keeps a change, and a new recipe ships, when its mean fold-wise ACC gain over the
  recipe it is measured against exceeds the seed difference (how far the seed alone moved the
  base) and at least 3 of the 4 test folds are better: `beats`.
- The placement rule adds a change the ablation did not keep when, on the same folds and hardware,
  it raises the mean ACC with short clips placed at random in the window by more than the seed
  difference and lowers the plain mean ACC by no more than that: `placement`.

No torch, no files: the experiments (train/experiments.py) and the card writer (train/ship.py)
apply these to the summaries they read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from realtime_sed.errors import SedError

MIN_FOLDS_BETTER = 3

ABLATION_RULE = ("kept when the mean fold-wise ACC gain over the base exceeds the seed difference "
                 "(|base seed 1 - base seed 0|) and at least {min_folds} of {folds} test folds are better")
PLACEMENT_RULE = ("a change is added after the ablation when, over the same four test folds on the same "
                  "hardware, it raises the mean accuracy with short test clips placed at random in the "
                  "window by more than the ablation's seed difference, and lowers the plain mean accuracy "
                  "by no more than that")
SHIP_RULE = ("the new recipe ships when its fold-wise mean ACC beats the current recipe's by more than "
             "the seed difference (the ablation's, or the current recipe's own where it was run again with "
             "another seed, whichever is larger), with at least 3 of the 4 test folds better")


@dataclass(frozen=True)
class Comparison:
    """A fold-wise summary against another on the same test folds."""

    gain: float  # difference of the mean ACCs
    per_fold_gain: list[float]  # in the order of the folds compared
    folds_better: int

    @property
    def folds(self) -> int:
        return len(self.per_fold_gain)


def compare(new: dict, old: dict, folds: Iterable | None = None) -> Comparison:
    """`new` against `old`: the mean gain, and the gain on each of `folds` (default: new's folds)."""
    folds = list(new["folds"] if folds is None else folds)
    missing = [f for f in folds if f not in new["folds"] or f not in old["folds"]]
    if missing:
        raise SedError(f"fold {missing[0]} is not in both summaries: they must share their test folds")
    per_fold = [new["folds"][f]["acc"] - old["folds"][f]["acc"] for f in folds]
    return Comparison(new["acc_mean"] - old["acc_mean"], per_fold, sum(d > 0 for d in per_fold))


def seed_difference(base: dict, other_seed: dict) -> float:
    """How far the seed alone moves the mean fold-wise ACC of one recipe."""
    return abs(other_seed["acc_mean"] - base["acc_mean"])


def ship_noise(ablation_seed_difference: float, current: dict, seed_repeats: Iterable[dict] = ()) -> float:
    """The noise the ship rule compares a gain with. The ablation measured its seed difference on its
    40-epoch base without a teacher; a distilled recipe run again with another seed (`seed_repeats`,
    fold-wise summaries of the current recipe) shows its own, and the larger of the two counts."""
    return max([ablation_seed_difference, *(seed_difference(current, r) for r in seed_repeats)])


def beats(c: Comparison, noise: float | None, min_folds_better: int = MIN_FOLDS_BETTER) -> bool:
    """The ablation's and the ship rule: a gain above the noise, on at least 3 folds."""
    return noise is not None and c.gain > noise and c.folds_better >= min_folds_better


def decide_ablation(results: dict[str, dict], folds: Sequence, changes: Sequence[str],
                    cell_name: Callable[[tuple[str, ...]], str], seed_check: str) -> dict:
    """Which changes the ablation keeps: each change's cell against the base's (`cell_name(())`),
    with the seed difference from the base's cell of another seed (`seed_check`). `results` maps
    cell names to fold-wise summaries; cells not run yet are left out of the decision."""
    base = results[cell_name(())]
    seed = results.get(seed_check)
    noise = seed_difference(base, seed) if seed else None
    verdicts = {}
    for change in changes:
        s = results.get(cell_name((change,)))
        if s is None:
            continue
        c = compare(s, base, folds)
        verdicts[change] = {"acc_mean": s["acc_mean"], "gain": c.gain, "per_fold_gain": c.per_fold_gain,
                            "folds_better": c.folds_better, "kept": beats(c, noise)}
    kept = tuple(c for c in changes if verdicts.get(c, {}).get("kept"))
    return {"rule": ABLATION_RULE.format(min_folds=MIN_FOLDS_BETTER, folds=len(folds)),
            "base_acc_mean": base["acc_mean"], "seed_difference": noise, "changes": verdicts,
            "kept": list(kept), "chosen_cell": cell_name(kept)}


@dataclass(frozen=True)
class PlacementVerdict:
    gain_random_placement: float
    gain_plain: float
    passes: bool


def placement(with_it: dict, without: dict, noise: float) -> PlacementVerdict:
    """The placement rule, for a recipe with a change against the same recipe without it. Refuses
    (SedError) summaries that are not on the same four test folds and the same hardware."""
    devices = [{v.get("device") for v in s["folds"].values()} for s in (with_it, without)]
    if len(with_it["folds"]) != 4 or set(with_it["folds"]) != set(without["folds"]) or devices[0] != devices[1]:
        raise SedError("the placement check needs both recipes on the same four test folds and hardware")
    placed = with_it["acc_random_placement_mean"] - without["acc_random_placement_mean"]
    plain = with_it["acc_mean"] - without["acc_mean"]
    return PlacementVerdict(placed, plain, placed > noise and plain >= -noise)


def ship(new: dict, current: dict, noise: float) -> tuple[Comparison, bool]:
    """The ship rule: the new recipe's fold-wise summary against the current recipe's."""
    c = compare(new, current)
    return c, beats(c, noise)
