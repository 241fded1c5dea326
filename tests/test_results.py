"""The results pages are generated from files (train/results.py), none of their figures typed by hand."""

from __future__ import annotations

from tests.conftest import REPO
from train.results import and_list, pages


def test_the_results_pages_are_what_the_committed_files_make():
    """docs/results.md and README.md's tables are generated (`realtime-sed experiments results
    --write`) from docs/*.json and models/*.json: a figure edited by hand, or a summary added
    without regenerating, shows here."""
    results_md, readme = pages()
    assert results_md == (REPO / "docs" / "results.md").read_text()
    assert readme == (REPO / "README.md").read_text()



def test_the_derived_figures_are_the_ones_once_typed_by_hand():
    """Clip counts, the dataset's share, the screening's standard error and the GPU pool, now read
    from the cards, summaries and docs/ablation.json, give what the page said before."""
    results_md, _ = pages()
    for text in ("the 2,625 clips we have (30% of UrbanSound8K)", "one test fold, 437 clips, so ± 0.024 is one "
                 "standard error", "GPU runs shared one H200, 14 at a time", "(constant LR, no augmentation, 40 "
                 "epochs, last epoch kept)", "the demo's 10 reference segments"):
        assert text in results_md, text


def test_the_improved_column_shows_the_recipe_the_shipped_model_was_trained_with():
    """kd-mixup and kd-mixup-long have the same recipe text and differ only in length: the
    side-by-side table must show the fold-wise figure of the one the card's model was trained with."""
    from train.results import foldwise_summaries, shipped_cards, side_by_side_table, trained_alike

    card, folds = shipped_cards()["convdt"], foldwise_summaries()
    matching = [r for (m, r), s in folds.items() if m == "convdt" and trained_alike(s, card)]
    assert matching == ["kd-mixup-long"]
    row = next(line for line in side_by_side_table().splitlines() if line.startswith("| ConvDT |"))
    long = folds[("convdt", "kd-mixup-long")]
    assert f"{long['acc_mean']:.3f} ± {long['acc_std']:.3f}" in row
    assert "the improved recipe on all 2,625 clips, 100 epochs" in row


def test_a_seed_repeat_of_the_shipped_recipe_is_not_taken_for_it():
    """kd-mixup-long-seed1 has kd-mixup-long's recipe text: only the seed tells the shipped ConvDB's
    recipe from its repeat, in the side-by-side table and in README's pooled confusion matrices."""
    from train.results import foldwise_summaries, shipped_cards, trained_alike

    card, folds = shipped_cards()["convdb"], foldwise_summaries()
    matching = [r for (m, r), s in folds.items() if m == "convdb" and trained_alike(s, card)]
    assert matching == ["kd-mixup-long"]


def test_the_ablation_names_its_branches_as_a_sentence():
    assert and_list(["kd-mixup-16v"]) == "kd-mixup-16v"
    assert and_list(["a", "b"]) == "a and b"
    assert and_list(["a", "b", "c"]) == "a, b and c"
