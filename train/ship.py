"""Ships a trained model into models/: its ONNX file, unchanged weights, with a card that gathers
everything known about the architecture: how this model was trained, the fold-wise accuracy of its
recipe, and the faithful random-split metrics of the same architecture (`realtime-sed experiments
ship`, see README).

`run` is a run folder made by `realtime-sed train` (it holds MODEL.onnx and MODEL.json);
`foldwise` a cross-validation summary (cv.json, copied into docs/foldwise/ by `experiments
results --write`) of the same recipe. The card also takes the faithful card docs/faithful/MODEL.json
and, for a model of another recipe, the paper recipe's fold-wise summary docs/foldwise/MODEL-paper.json,
so that one card compares the three. The rules that may refuse a model are in train/rules.py.
Needs onnx, not torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from realtime_sed.constants import CARD_METADATA_KEY
from realtime_sed.errors import SedError
from train import rules

ROOT = Path(__file__).resolve().parent.parent  # the project: docs/, models/, runs/


def foldwise_section(summary: dict) -> dict:
    return {
        "protocol": "each of folds 1, 2, 3, 10 is the test fold in turn; training on the other folds plus "
                    "the scattered clips of folds 4-9; validation on 10% of each class's training clips "
                    "as whole recordings",
        "recipe": summary["recipe"],
        "acc_mean": summary["acc_mean"], "acc_std": summary["acc_std"],
        "f1_macro_mean": summary["f1_macro_mean"], "f1_macro_std": summary["f1_macro_std"],
        "best_epoch_median": summary["best_epoch_median"],
        "folds": {k: {key: v[key] for key in ("acc", "f1_macro", "test_clips", "best_epoch", "epochs_run")}
                  for k, v in summary["folds"].items()},
        "training_seconds": summary["training_seconds"],
        "commands": sorted({v["command"] for v in summary["folds"].values()}),
    }


def faithful_section(card: dict) -> dict:
    t = card["training"]
    return {
        "protocol": f"the paper's: {t['split']}; train {t['train_clips']}, val {t['val_clips']}, "
                    f"test {t['test_clips']} clips",
        "recipe": t["recipe"], "metrics": card["metrics"]["test"],
        "best_epoch": t["best_epoch"], "epochs_run": t["epochs_run"],
        "seconds_per_epoch_median": t["seconds_per_epoch_median"],
        "total_training_seconds": t["total_training_seconds"], "command": card["command"],
    }


def ablation_section(decision: dict) -> dict:
    """How the recipe was chosen (train/experiments.py): each change's fold-wise gain over the base."""
    return {"how": "each change alone on top of the base recipe, fold-wise, ConvDB (realtime-sed experiments ablation)",
            "rule": decision["rule"], "base_acc_mean": decision["base_acc_mean"],
            "seed_difference": decision["seed_difference"],
            "changes": {k: {key: v[key] for key in ("gain", "folds_better", "kept")}
                        for k, v in decision["changes"].items()},
            "kept": decision["kept"], "details": "docs/results.md#measuring-each-change"}


def placement_section(added: list[str], with_it: dict, without: dict, seed_difference: float) -> dict:
    """Why a change the ablation did not keep is in the recipe after all: the ablation scored clips
    at the window's start, a live stream puts them anywhere (train.data.place_randomly)."""
    def short(s: dict) -> dict:
        return {"recipe": s["recipe"], "acc_mean": s["acc_mean"],
                "acc_random_placement_mean": s["acc_random_placement_mean"],
                "folds": {k: {"acc": v["acc"], "acc_random_placement": v["acc_random_placement"],
                              "device": v.get("device")} for k, v in s["folds"].items()}}

    verdict = rules.placement(with_it, without, seed_difference)
    if not verdict.passes:
        raise SedError(f"adding {', '.join(added)} does not pass the placement rule (placed "
                       f"{verdict.gain_random_placement:+.3f}, plain {verdict.gain_plain:+.3f}, seed difference "
                       f"{seed_difference:.3f})")
    return {"changes": added, "rule": rules.PLACEMENT_RULE, "gain_random_placement": verdict.gain_random_placement,
            "gain_plain": verdict.gain_plain, "with": short(with_it), "without": short(without)}


def distilled_sections(card: dict, run: Path, foldwise: dict, current: dict, distilled: Path,
                       seed_difference: float) -> dict:
    """What a distilled model's card adds: the teacher and its head per fold, the distillation and
    negative-data settings, the calibrated thresholds and how they were chosen, the false alarms,
    and the fold-wise comparison with the recipe it replaces (the rule refuses a change in the noise).

    DISTILLED is the fold-wise folder (with calibration.json) or, once its fold runs are gone, the
    committed calibration record (docs/calibration/MODEL-RECIPE.json): the record holds every
    per-fold figure the card needs; only the teacher head's validation accuracy lives in the fold
    runs alone (the record names them), so it is added while they exist.

    A final run calibrated on its own held-out negatives (RUN/calibration.json, made by
    `realtime-sed calibrate RUN`) gives the card its thresholds; the folds' are kept beside them.
    Re-shipping a recipe for that is shipping it again against the recipe it replaced."""
    record = distilled if distilled.is_file() else distilled / "calibration.json"
    calibration = json.loads(record.read_text())
    own_path = run / "calibration.json"
    own = json.loads(own_path.read_text()) if own_path.exists() else None
    comparison, passes = rules.ship(foldwise, current, seed_difference)
    gain, better = comparison.gain, comparison.folds_better
    if not passes:
        raise SedError(f"the new recipe does not pass the ship rule: {gain:+.3f} mean ACC, "
                       f"{better} of {comparison.folds} folds better (seed difference {seed_difference:.3f})")
    config = card["training"]["config"]
    teacher_folds = {}
    for k in foldwise["folds"]:
        fold = calibration["folds"][k]
        teacher_folds[k] = {"test_acc": fold["teacher_test_acc"],
                            "student_agreement": fold.get("student_teacher_agreement")}
        fold_run = ROOT / fold["run"] / "run.json" if "run" in fold else None
        if fold_run and fold_run.exists():
            teacher_folds[k]["val_acc"] = json.loads(fold_run.read_text())["teacher"]["val_acc"]
    teacher_acc = np.array([v["test_acc"] for v in teacher_folds.values()])
    head = json.loads((run / "run.json").read_text())["teacher"]["head"]  # the shipped model's own teacher
    chosen = own["thresholds"] if own else calibration["thresholds"]
    sections = {
        "teacher": {"model": "YAMNet (AudioSet, 521 classes, 3.7M parameters; Apache 2.0), TFLite, training only",
                    "file": Path(config["teacher"]).name,
                    "head": head,
                    "foldwise_test_acc_mean": float(teacher_acc.mean()),
                    "foldwise_test_acc_std": float(teacher_acc.std()), "folds": teacher_folds},
        "distillation": {k: config[k] for k in ("views", "head_views", "distill", "temperature",
                                                "embed_weight", "label_smoothing")},
        "negative_data": {"outlier_exposure_weight": config["negatives"],
                          "negative_share": config["negative_share"],
                          "esc50_other": config["esc_data"], "synthetic_per_kind": config["synthetic_per_kind"],
                          "held_out_of_training": calibration["stream"]["kinds"]},
        "thresholds": {"on": chosen["on"], "off": chosen["off"]},
        "calibration": {"rule": calibration["thresholds"]["rule"],
                        "per_class": calibration["thresholds"]["per_class"],
                        # every rule calibrate measured, with its recall and false events per hour
                        **({"rules": calibration["rules"]} if "rules" in calibration else {}),
                        "target_recall_out_of_fold": calibration["pooled"],
                        "false_alarm_stream": calibration["stream"],
                        "folds": calibration["folds"],
                        "command": calibration.get("command", f"realtime-sed calibrate {run_name(record.parent)}")},
        "foldwise_current_recipe": foldwise_section(current),
        "ship_rule": {"rule": rules.SHIP_RULE, "gain": gain, "folds_better": int(better),
                      "seed_difference": seed_difference},
    }
    if own:  # the card's thresholds are this model's own; "calibration" above stays the folds' record
        sections["calibration"]["thresholds_of_the_folds"] = calibration["thresholds"]["on"]
        sections["own_calibration"] = {
            "rule": own["thresholds"]["rule"].replace("out-of-fold negative views",
                                                      "views of the negatives held out of its training"),
            "negatives": own["negatives"], "per_class": own["thresholds"]["per_class"], "rules": own["rules"],
            "false_events_per_hour_0.5": own["false_events_per_hour_0.5"],
            "false_events_per_hour": own["false_events_per_hour_calibrated"],
            "false_alarm_stream": own["stream"], "command": own["command"]}
    return sections


def seed_repeat_summaries(model: str, recipe_name: str) -> list[dict]:
    """The committed fold-wise summaries of a recipe run again with other seeds (train.recipes.seed_repeats)."""
    from train.recipes import seed_repeats

    paths = [ROOT / "docs" / "foldwise" / f"{model}-{name}.json" for name in seed_repeats(recipe_name)]
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def ship(model: str, run: Path, foldwise: Path | None, out_dir: Path, ablation: Path | None = None,
         added: list[str] | None = None, without: Path | None = None, distilled: Path | None = None,
         current: Path | None = None) -> Path:
    import onnx

    proto = onnx.load(str(run / f"{model}.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    card = json.loads(meta[CARD_METADATA_KEY])
    faithful = ROOT / "docs" / "faithful" / f"{model}.json"
    if faithful.exists():
        card["faithful_random_split"] = faithful_section(json.loads(faithful.read_text()))
    if foldwise:
        summary = json.loads(foldwise.read_text())
        if summary["model"] != model:
            raise SedError(f"{foldwise}: a summary of {summary['model']}, not {model}")
        card["foldwise"] = foldwise_section(summary)
    paper_path = ROOT / "docs" / "foldwise" / f"{model}-paper.json"
    paper = json.loads(paper_path.read_text()) if paper_path.exists() else None
    if paper and card["training"]["recipe"] != paper["recipe"]:
        card["foldwise_paper_recipe"] = foldwise_section(paper)
    if ablation:
        decision = json.loads(ablation.read_text())
        card["recipe_choice"] = ablation_section(decision)
        if added:
            card["recipe_choice"]["added_after_ablation"] = placement_section(
                added, json.loads(foldwise.read_text()), json.loads(without.read_text()),
                decision["seed_difference"])
    if distilled:
        current_summary = json.loads(current.read_text())
        seed_difference = rules.ship_noise(
            json.loads((ROOT / "docs" / "ablation.json").read_text())["seed_difference"], current_summary,
            seed_repeat_summaries(model, current_summary.get("recipe_name", "")))
        card.update(distilled_sections(card, run, summary, current_summary, distilled, seed_difference))
    exported_later = "--no-onnx" in card["command"].split()
    card["commands"] = {"this_model": card["command"],
                        **({"export": f"realtime-sed export {run_name(run)}/best.pt"} if exported_later else {}),
                        **({"recipe_choice": "realtime-sed experiments ablation"} if ablation else {}),
                        **({"foldwise": card["foldwise"]["commands"]} if foldwise else {}),
                        **({"faithful": card["faithful_random_split"]["command"]}
                           if "faithful_random_split" in card else {})}
    for prop in proto.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            prop.value = json.dumps(card)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model}.onnx"
    onnx.save(proto, str(path))
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def run_name(run: Path) -> str:
    run = run.resolve()
    return str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run)
