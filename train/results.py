"""Writes the results tables into README.md and docs/results.md (`realtime-sed experiments results`).
Every figure comes from a file that `realtime-sed train` or the experiments wrote; none is typed in
by hand, except the paper's own (PAPER, PAPER_TEST_CLIPS) and the size of the full dataset.

Sources, committed under docs/ so the tables can be rebuilt without the run folders:
  docs/faithful/MODEL.json         the faithful run's card (paper recipe, random 80/10/10 split)
  docs/foldwise/MODEL-RECIPE.json  a fold-wise cross-validation summary (cv.json of a run folder)
  docs/screening/MODEL-RECIPE.json recipe screening runs on one test fold (runs/screening/)
  docs/ablation.json               each recipe change measured fold-wise (experiments ablation),
                                   with the pool it ran in (workers, threads, device)
  docs/calibration/MODEL-RECIPE.json  thresholds and false alarms of a distilled recipe (realtime-sed calibrate)
  models/MODEL.json                the shipped model's card (made by experiments ship)
With --write, finished runs in runs/ are first copied there (runs/MODEL-random/MODEL.json,
runs/MODEL-folds-RECIPE/cv.json), with their figures into docs/figures/.

    realtime-sed experiments results            # print the tables
    realtime-sed experiments results --write    # collect from runs/, update README.md and docs/results.md
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent  # the project: docs/, models/, runs/, README.md
DOCS = ROOT / "docs"
URBANSOUND8K_CLIPS = 8732  # the full dataset (its metadata lists 8,732 clips); we have a part of it
PAPER_TEST_CLIPS = 874  # the paper's test part of the full dataset
PAPER = {  # Table 2 of the paper: ACC, macro P, R, F1 on PAPER_TEST_CLIPS test clips of the full dataset
    "conv2d": (0.847, 0.874, 0.858, 0.857),
    "convdf": (0.882, 0.897, 0.889, 0.888),
    "convdt": (0.891, 0.906, 0.897, 0.896),
    "convdb": (0.914, 0.921, 0.917, 0.917),
}
NAMES = {"conv2d": "Conv2D", "convdf": "ConvDF", "convdt": "ConvDT", "convdb": "ConvDB"}
PAPER_RECIPE = "paper"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def faithful_cards() -> dict:
    return {k: c for k in NAMES if (c := load(DOCS / "faithful" / f"{k}.json"))}


def foldwise_summaries(folder: str = "foldwise") -> dict:
    """{(model, recipe_name): summary}, models in Table 2's order, the paper recipe first."""
    found = {}
    for path in (DOCS / folder).glob("*.json"):
        s = json.loads(path.read_text())
        if "recipe_name" in s:
            found[(s["model"], s["recipe_name"])] = s
    order = list(NAMES)
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] != PAPER_RECIPE,
                                                      kv[0][1])))


def shipped_cards() -> dict:
    return {k: c for k in NAMES if (c := load(ROOT / "models" / f"{k}.json"))}


def mean_std(s: dict, key: str = "acc") -> str:
    return f"{s[f'{key}_mean']:.3f} ± {s[f'{key}_std']:.3f}"


def folds_note(s: dict) -> str:
    return "" if len(s["folds"]) == 4 else f" ({len(s['folds'])} of 4 folds: {', '.join(s['folds'])})"


def faithful_table() -> str:
    rows = ["| model | trainable params | ACC | P macro | R macro | F1 macro | paper ACC / P / R / F1 | best epoch / run | s per epoch |",
            "|---|---|---|---|---|---|---|---|---|"]
    found = faithful_cards()
    for key, name in NAMES.items():
        paper = " / ".join(f"{v:.3f}" for v in PAPER[key])
        if key not in found:
            rows.append(f"| {name} | | not trained yet | | | | {paper} | | |")
            continue
        card = found[key]
        m, t = card["metrics"]["test"], card["training"]
        rows.append(f"| {name} | {card['architecture']['trainable_parameters']:,} | {m['acc']:.3f} | "
                    f"{m['precision_macro']:.3f} | {m['recall_macro']:.3f} | {m['f1_macro']:.3f} | {paper} | "
                    f"{t['best_epoch']} / {t['epochs_run']} | {t['seconds_per_epoch_median']:.0f} |")
    n = {c["metrics"]["test"]["n"] for c in found.values()}
    note = (f"**Faithful reproduction**: the paper's recipe and random 80/10/10 split (seed 0) of the "
            f"{dataset_clips(found.values())}: **{', '.join(map(str, sorted(n))) or 'no'} test clips**, "
            f"against the paper's {PAPER_TEST_CLIPS} on the full set. The random split lets slices of one "
            "recording fall on both sides, which inflates these scores (the dataset authors warn against it).")
    return note + "\n\n" + "\n".join(rows)


def dataset_clips(cards) -> str:
    """'2,625 clips we have (30% of UrbanSound8K)', from the cards' clip counts."""
    clips = sorted({c["training"]["clips"] for c in cards})
    if not clips:
        return "clips we have"
    return (f"{' / '.join(f'{n:,}' for n in clips)} clips we have "
            f"({100 * clips[0] / URBANSOUND8K_CLIPS:.0f}% of UrbanSound8K)")


ALIKE_FIELDS = ("epochs", "seed")  # config fields that the recipe's text leaves out


def trained_alike(summary: dict, card: dict) -> bool:
    """The card's model was trained with this fold-wise recipe. The recipe's text leaves out its
    length and its seed (kd-mixup and kd-mixup-long differ in nothing but epochs, kd-mixup-long and
    kd-mixup-long-seed1 in nothing but the seed), so those are compared too."""
    t = card["training"]
    ours, theirs = summary.get("config", {}), t.get("config", {})
    return summary["recipe"] == t["recipe"] and all(ours.get(f) == theirs.get(f) for f in ALIKE_FIELDS)


def side_by_side_table() -> str:
    """Per model: the faithful recipe and the improved one, both under the honest protocol."""
    faithful, folds, shipped = faithful_cards(), foldwise_summaries(), shipped_cards()
    rows = ["| model | faithful: random-split ACC | faithful: fold-wise ACC | gap | improved recipe | "
            "improved: fold-wise ACC | shipped `models/` file |",
            "|---|---|---|---|---|---|---|"]
    for key, name in NAMES.items():
        rand = faithful.get(key, {}).get("metrics", {}).get("test", {}).get("acc")
        paper = folds.get((key, PAPER_RECIPE))
        improved = [s for (m, r), s in folds.items() if m == key and r != PAPER_RECIPE]
        card = shipped.get(key)
        # the shipped model's own recipe when it has one, else the best fold-wise alternative
        own = [s for s in improved if card and trained_alike(s, card)]
        best = own[0] if own else max(improved, key=lambda s: (len(s["folds"]), s["acc_mean"]), default=None)
        shipped_txt = "—"
        if card:
            t = card["training"]
            shipped_txt = (f"the improved recipe on all {t['train_clips']:,} clips, {t['epochs_run']} epochs"
                           if best and trained_alike(best, card) else f"{t['recipe']}; {t['split']}")
        gap = f"{rand - paper['acc_mean']:+.3f}" if paper and rand is not None else ""
        rows.append(
            f"| {name} | {f'{rand:.3f}' if rand is not None else 'not yet'} | "
            f"{mean_std(paper) + folds_note(paper) if paper else 'not yet'} | {gap} | "
            f"{best['recipe'] if best else 'not yet'} | "
            f"{mean_std(best) + folds_note(best) if best else 'not yet'} | {shipped_txt} |")
    test_folds = ", ".join(sorted({f for s in folds.values() for f in s["folds"]}, key=int))
    return (f"**Faithful vs improved**, fold-wise: test on one whole fold ({test_folds} in turn), train on "
            "the others plus the scattered clips of folds 4-9. The gap is how much the random split "
            "flatters the faithful recipe.\n\n" + "\n".join(rows))


def trained_on(s: dict) -> str:
    devices = {v.get("device") for v in s["folds"].values()} - {None}
    return ", ".join(sorted(devices)).replace("cuda", "GPU").replace("cpu", "CPU") or "CPU"


def foldwise_table(all_recipes: bool = True) -> str:
    """Every fold-wise summary; without `all_recipes`, the ablation's cells only where shipped."""
    shipped = {k: c["training"]["recipe"] for k, c in shipped_cards().items()}
    rows = ["| model | recipe | ACC mean ± std | F1 macro mean ± std | fold 1 | fold 2 | fold 3 | fold 10 | "
            "best epochs | last epoch's ACC, mean | ACC, short clips placed at random | training time |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (key, recipe), s in foldwise_summaries().items():
        if not all_recipes and recipe.startswith("abl-") and shipped.get(key) != s["recipe"]:
            continue
        per_fold = [f"{s['folds'][f]['acc']:.3f}" if f in s["folds"] else "" for f in ("1", "2", "3", "10")]
        epochs = ", ".join(f"{v['best_epoch']}/{v['epochs_run']}" for v in s["folds"].values())
        last = f"{s['acc_last_epoch_mean']:.3f}" if s.get("acc_last_epoch_mean") is not None else ""
        placed = (f"{s['acc_random_placement_mean']:.3f}" if s.get("acc_random_placement_mean") is not None
                  else "not measured")
        rows.append(f"| {NAMES[key]} | {recipe}: {s['recipe']} | {mean_std(s)} | {mean_std(s, 'f1_macro')} | "
                    + " | ".join(per_fold) + f" | {epochs} | {last} | {placed} | {training_time(s)} |")
    clips = {}
    for s in foldwise_summaries().values():
        clips.update({f: v["test_clips"] for f, v in s["folds"].items()})
    sizes = ", ".join(f"fold {f}: {n}" for f, n in sorted(clips.items(), key=lambda kv: int(kv[0])))
    return (f"**Fold-wise protocol** (test clips: {sizes}; validation: 10% of each class's training clips, "
            "whole recordings, never the test fold). Std is over folds; best epochs are kept/run per fold; "
            "the last epoch's ACC shows what keeping the last epoch instead would have scored. The dataset's "
            "clips all start with the window; a live stream puts sounds anywhere in it, so the next column "
            "moves each test clip shorter than 4 s to a random place in the window (seeded; "
            "`train.data.place_randomly`)." + unplaced_note() + " " + pool_note()
            + ("" if all_recipes else " The ablation's other cells are in docs/results.md.")
            + "\n\n" + "\n".join(rows))


def unplaced_note() -> str:
    gpu_unplaced = [s for s in foldwise_summaries().values()
                    if s.get("acc_random_placement_mean") is None and trained_on(s) == "GPU"]
    return (" The GPU runs' fold checkpoints did not come back from the lent machine, so they lack it."
            if gpu_unplaced else "")


def threads_of(command: str) -> int | None:
    words = command.split()
    return int(words[words.index("--threads") + 1]) if "--threads" in words else None


def pool_note() -> str:
    """How the fold-wise runs shared their machines: threads from each fold's command, and the
    GPU pool from the ablation's record of it."""
    threads = {threads_of(v["command"]) for s in foldwise_summaries().values() for v in s["folds"].values()
               if v.get("device") == "cpu"} - {None}
    parts = []
    if len(threads) == 1:
        n = threads.pop()
        parts.append(f"CPU runs took {n} thread{'s' if n > 1 else ''} each")
    pool = (load(DOCS / "ablation.json") or {}).get("pool")
    if pool and pool.get("device_name"):
        parts.append(f"GPU runs shared one {pool['device_name']}, {pool['workers']} at a time")
    return ("; ".join(parts) + ".") if parts else ""


def training_time(s: dict) -> str:
    hours = s["training_seconds"] / 3600
    return f"{hours:.1f} h, {trained_on(s)}" if hours >= 0.5 else f"{s['training_seconds'] / 60:.0f} min, {trained_on(s)}"


def ablation_table() -> str:
    """Each change alone on top of the base recipe, fold-wise, and whether the rule kept it."""
    decision = load(DOCS / "ablation.json")
    if not decision:
        return "Not run yet: `realtime-sed experiments ablation`."
    found = {recipe: s for (key, recipe), s in foldwise_summaries().items() if key == "convdb"}
    base = found["abl-base"]
    rows = ["| cell | recipe | ACC mean ± std | fold 1 | fold 2 | fold 3 | fold 10 | gain over base | "
            "folds better | kept |", "|---|---|---|---|---|---|---|---|---|---|"]
    cells = sorted((r for r in found if r.startswith("abl-")),
                   key=lambda r: (r != "abl-base", r != "abl-base-seed1", r.count("-"), r))
    folds = list(base["folds"])
    rows[0] = ("| cell | recipe | ACC mean ± std | " + " | ".join(f"fold {f}" for f in folds)
               + " | gain over base | folds better | kept |")
    rows[1] = "|" + "---|" * (len(folds) + 6)
    for cell in cells:
        s = found[cell]
        per_fold = " | ".join(f"{s['folds'][f]['acc']:.3f}" for f in folds)
        change = cell.removeprefix("abl-")
        verdict = decision["changes"].get(change, {})
        better = sum(s["folds"][f]["acc"] > base["folds"][f]["acc"] for f in base["folds"])
        kept = ("yes" if verdict.get("kept") else "no") if verdict else ""
        recipe = s["recipe"] + (f", seed {s['config']['seed']}" if s["config"]["seed"] else "")
        rows.append(f"| {cell} | {recipe} | {mean_std(s)} | {per_fold} | "
                    f"{s['acc_mean'] - base['acc_mean']:+.3f} | {better} of {len(folds)} | {kept} |")
    return (f"**Measuring each change** (ConvDB, fold-wise, one run per fold, all on the {trained_on(base)}): each change "
            f"alone on top of the base recipe ({recipe_in_words(base['config'])}). "
            f"Rule, fixed before the runs: {decision['rule']}. The seed difference was "
            f"{decision['seed_difference']:.3f}; kept: **{', '.join(decision['kept']) or 'nothing'}**, "
            f"so the ablation's recipe is `{decision['chosen_cell']}`. The kept changes' fold-wise scores were "
            f"measured on the same test folds that chose them, so they are slightly optimistic.\n\n"
            + "\n".join(rows))


def recipe_in_words(config: dict) -> str:
    """'constant LR, no augmentation, 40 epochs, last epoch kept', from a summary's config."""
    augmented = (config["time_shift"] or config["gain_db"] or config["mix_prob"] or config["spec_masks"]
                 or config["label_smoothing"])
    return (f"{config['schedule']} LR, {'augmented' if augmented else 'no augmentation'}, {config['epochs']} "
            f"epochs, {'last epoch' if config['keep'] == 'last' else 'lowest validation loss'} kept")


def screening_table() -> str:
    rows = ["| model | recipe | test fold | ACC | F1 macro | best epoch / run |", "|---|---|---|---|---|---|"]
    screening = foldwise_summaries("screening")
    for (key, recipe), s in sorted(screening.items(),
                                   key=lambda kv: kv[1]["recipe"].count(",")):  # fewest changes first
        for fold, v in s["folds"].items():
            rows.append(f"| {NAMES[key]} | {recipe}: {s['recipe']} | {fold} | {v['acc']:.3f} | "
                        f"{v['f1_macro']:.3f} | {v['best_epoch']} / {v['epochs_run']} |")
    clips = sorted({v["test_clips"] for s in screening.values() for v in s["folds"].values()})
    folds = sorted({f for s in screening.values() for f in s["folds"]})
    # one standard error of an accuracy near 0.5 (its largest) on that many clips
    size = (f"{'one test fold' if len(folds) == 1 else f'{len(folds)} test folds'}, "
            f"{' / '.join(map(str, clips))} clips, so ± {math.sqrt(0.25 / clips[0]):.3f} is one standard error"
            if clips else "no runs yet")
    return (f"**Recipe screening** ({size}; validation "
            "was then 10% of the training recordings drawn over all classes, the rule that failed on "
            "fold 1, see below). Each row adds to the one above it except the last, which adds label "
            "smoothing to the best.\n\n" + "\n".join(rows))


def placement_table(shipped: dict) -> str:
    """The check that added a change after the ablation (experiments ship --added), from the card."""
    parts = []
    for key, card in shipped.items():
        added = card.get("recipe_choice", {}).get("added_after_ablation")
        if not added:
            continue
        rows = ["| recipe | | fold 1 | fold 2 | fold 3 | fold 10 | mean |", "|---|---|---|---|---|---|---|"]
        for side in ("without", "with"):
            s = added[side]
            for label, field, mean in (("clips at the start", "acc", "acc_mean"),
                                       ("short clips placed at random", "acc_random_placement",
                                        "acc_random_placement_mean")):
                cells = " | ".join(f"{s['folds'][f][field]:.3f}" for f in ("1", "2", "3", "10"))
                rows.append(f"| {s['recipe']} | {label} | {cells} | {s[mean]:.3f} |")
        parts.append(f"**{NAMES[key]}: {', '.join(added['changes'])} added after the ablation.** Rule: "
                     f"{added['rule']}. Gain with short clips placed at random "
                     f"{added['gain_random_placement']:+.3f}, with clips at the start {added['gain_plain']:+.3f} "
                     f"(both recipes trained on the {trained_on(added['with'])}).\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def demo_table(shipped: dict) -> str:
    """Behaviour on the bundled demo through the streaming path (train/democheck.py)."""
    from train.democheck import HOP, check

    rows = ["| model | windows with the right top class | events | of them on a segment of their class | "
            "segments with an event of their class | weakest segments |", "|---|---|---|---|---|---|"]
    segments = set()
    for key in shipped:
        r = check(key)
        segments.add(r["segments"])
        weakest = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["per_segment"].items(), key=lambda kv: kv[1])[:3])
        rows.append(f"| {NAMES[key]} | {r['window_top1']:.3f} | {r['events']} | {r['events_matching']} | "
                    f"{r['segments_found']} / {r['segments']} | {weakest} |")
    return (f"`realtime-sed experiments demo MODEL`: the demo's {' / '.join(map(str, sorted(segments)))} "
            f"reference segments through the same streaming path as `listen` ({HOP:g} s hop, the card's "
            "thresholds). The demo is cut from clips the "
            "models trained on, so this shows behaviour, not accuracy on unseen audio.\n\n" + "\n".join(rows))


CURRENT_OF = {"convdb": "shift-mix-smooth", "conv2d": "abl-mix-smooth", "convdf": "abl-mix-smooth",
              "convdt": "abl-mix-smooth"}
DISTILLED = "kd"


def calibrations(recipe: str = DISTILLED) -> dict:
    """{model: calibration} of one recipe (docs/calibration/MODEL-RECIPE.json)."""
    folder = DOCS / "calibration"
    return {k: c for k in NAMES if (c := load(folder / f"{k}-{recipe}.json"))}


def distillation_table() -> str:
    """Teacher, current recipe and each distilled recipe, fold-wise, per model (where it was run
    and calibrated: the calibration holds the teacher's figures per fold)."""
    from train.recipes import DISTILLATION_ABLATION

    summaries = foldwise_summaries()
    calibrated = {r: calibrations(r) for r in DISTILLATION_ABLATION}  # each file read once
    rows = ["| model | teacher: YAMNet + head (fold-wise) | current recipe | distilled recipe | ACC | gain | "
            "folds better | student agrees with teacher |", "|---|---|---|---|---|---|---|---|"]
    for key, name in NAMES.items():
        current = summaries.get((key, CURRENT_OF[key]))
        runs = [(r, summaries[(key, r)], cal) for r in DISTILLATION_ABLATION
                if (key, r) in summaries and (cal := calibrated[r].get(key))]
        if not runs or not current:
            rows.append(f"| {name} | | {mean_std(current) if current else ''} | not run yet | | | | |")
            continue
        for recipe, new, cal in runs:
            teacher = np.array([f["teacher_test_acc"] for f in cal["folds"].values()])
            agree = np.mean([f["student_teacher_agreement"] for f in cal["folds"].values()])
            better = sum(new["folds"][k]["acc"] > current["folds"][k]["acc"] for k in new["folds"])
            rows.append(f"| {name} | {teacher.mean():.3f} ± {teacher.std():.3f} | {mean_std(current)} | {recipe} | "
                        f"{mean_std(new)} | {new['acc_mean'] - current['acc_mean']:+.3f} | {better} of "
                        f"{len(new['folds'])} | {agree:.3f} |")
    folds = sorted({f for s in summaries.values() for f in s["folds"]}, key=int)
    return (f"Fold-wise ACC (mean ± std over test folds {', '.join(map(str, folds))}). The teacher's head is fitted per fold "
            "on that run's training clips only.\n\n" + "\n".join(rows))


def teacher_heads_table() -> str:
    """docs/teacher-heads.json (`realtime-sed experiments teacher-heads`): each candidate head on the
    teacher's embedding, fitted per fold on that run's training clips."""
    from train.teacher import HEAD_C

    heads = load(DOCS / "teacher-heads.json")
    if not heads:
        return ""
    folds = list(heads["folds"])
    rows = [f"| head | validation ACC (mean) | test ACC (mean) | {' | '.join(f'test fold {f}' for f in folds)} |",
            "|---|---|---|" + "---|" * len(folds)]
    for name, m in heads["mean"].items():
        used = " (used)" if name == f"linear C={HEAD_C:g}" else ""
        rows.append(f"| {name}{used} | {m['val']:.3f} | {m['test']:.3f} | "
                    + " | ".join(f"{heads['folds'][f][name]['test']:.3f}" for f in folds) + " |")
    spread = max(m["val"] for m in heads["mean"].values()) - min(m["val"] for m in heads["mean"].values())
    return (f"Each head fitted on a fold run's training clips, scored on its validation clips (where a "
            f"choice may be made) and its test clips. Best on validation: {heads['best_on_val']}; the "
            f"validation means span {spread:.3f}. Command: `{heads['command']}`.\n\n" + "\n".join(rows))


def and_list(words: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def distillation_ablation_table() -> str:
    """Each step of the distilled recipe fold-wise, each adding to the row above (train.recipes), or
    to the step it branches from (`BRANCHES_FROM`: changes measured side by side):
    what the views, the teacher's probabilities, the embedding head with outlier exposure, and fresh
    mixtures of views each bring. "What it adds" lists the TrainConfig fields that differ from the
    row above (the first from the paper's recipe)."""
    from train.recipes import BRANCHES_FROM, DISTILLATION_ABLATION, RECIPES

    summaries, calibrated = foldwise_summaries(), calibrations()
    blocks = []
    for key, name in NAMES.items():
        cal_folds = calibrated.get(key, {}).get("folds", {})  # the distilled recipe's, if calibrated
        steps = [r for r in DISTILLATION_ABLATION if (key, r) in summaries]
        current = summaries.get((key, CURRENT_OF[key]))
        if len(steps) < 2 or not current:
            continue
        folds = sorted(summaries[(key, steps[0])]["folds"], key=int)
        rows = [f"| {name} recipe | what it adds | {' | '.join(f'fold {f}' for f in folds)} | mean ± std | "
                "vs current | folds better | student agrees with teacher |",
                "|---|---|" + "---|" * len(folds) + "---|---|---|---|"]
        teacher = [next((summaries[(key, r)]["folds"][f]["teacher_test_acc"] for r in steps
                         if "teacher_test_acc" in summaries[(key, r)]["folds"][f]),
                        cal_folds.get(f, {}).get("teacher_test_acc"))
                   for f in folds]
        if None not in teacher:
            rows.append(f"| teacher: YAMNet + head | | {' | '.join(f'{t:.3f}' for t in teacher)} | "
                        f"{np.mean(teacher):.3f} ± {np.std(teacher):.3f} | | | |")
        accs = " | ".join(f"{current['folds'][f]['acc']:.3f}" for f in folds)
        rows.append(f"| current ({CURRENT_OF[key]}) | {current['recipe']} | {accs} | {mean_std(current)} | | | |")
        before = RECIPES[PAPER_RECIPE]
        for step in steps:
            sm, cfg = summaries[(key, step)], RECIPES[step]
            before = RECIPES[BRANCHES_FROM[step]] if step in BRANCHES_FROM else before
            added = ", ".join(f"{f.name} {getattr(cfg, f.name):g}" if isinstance(getattr(cfg, f.name), float)
                              else f"{f.name} {getattr(cfg, f.name)}"
                              for f in fields(cfg) if getattr(cfg, f.name) != getattr(before, f.name))
            before = cfg
            cal = cal_folds if step == DISTILLED else {}
            agree = [sm["folds"][f].get("student_teacher_agreement",
                                        cal.get(f, {}).get("student_teacher_agreement")) for f in folds]
            better = sum(sm["folds"][f]["acc"] > current["folds"][f]["acc"] for f in folds)
            accs = " | ".join(f"{sm['folds'][f]['acc']:.3f}" for f in folds)
            rows.append(f"| {step} | {added} | {accs} | {mean_std(sm)} | {sm['acc_mean'] - current['acc_mean']:+.3f} | {better} of {len(folds)} | "
                        + (f"{np.mean(agree):.3f} |" if None not in agree else " |"))
        blocks.append("\n".join(rows))
    if not blocks:
        return ""
    measured = {r for _, r in summaries}  # a branch not yet measured has no row, so no mention
    children = {parent: [k for k in BRANCHES_FROM if BRANCHES_FROM[k] == parent and k in measured]
                for parent in dict.fromkeys(BRANCHES_FROM.values())}
    branches = "; ".join(f"{and_list(kids)} each add theirs to {parent}" for parent, kids in children.items() if kids)
    return (f"Each row adds one change to the row above it ({branches}), fold-wise ACC on the same test folds "
            "(cosine LR, the last epoch kept, 30 epochs unless a row sets them). Agreement: the share of test clips where "
            "the student's top class is the teacher head's.\n\n" + "\n\n".join(blocks))


def false_alarm_table() -> str:
    """False events per hour on the held-out stream, per model and distilled recipe step (each
    with a calibration file), beside the shipped model's on the same stream."""
    from train.recipes import DISTILLATION_ABLATION

    from train.calibrate import calibration_rules

    budget, views_rule = calibration_rules()  # older calibration files have only the second
    rows = [f"| model | recipe | before: shipped model | threshold 0.5 | {budget} | {views_rule} | "
            f"target recall at 0.5 | target recall, {budget} | target recall, {views_rule} |",
            "|---|---|---|---|---|---|---|---|---|"]
    stream = command = None
    finals = 0
    calibrated = {r: calibrations(r) for r in DISTILLATION_ABLATION}  # each file read once
    for key, name in NAMES.items():
        for recipe in DISTILLATION_ABLATION:
            cal = calibrated[recipe].get(key)
            if not cal:
                continue
            stream = stream or cal["stream"]
            command = command or (cal.get("command", "realtime-sed calibrate") if recipe == DISTILLED else None)
            pooled = cal["pooled"]
            before = next((f"{v:.0f}" for m, v in cal["compare_false_events_per_hour"].items()
                           if Path(m).stem == key), "")
            rules = cal.get("rules") or {views_rule: {"false_events_per_hour_mean": pooled["false_events_per_hour_calibrated_mean"],
                                                      "recall": pooled["recall_calibrated"]}}
            fa = [f"{rules[r]['false_events_per_hour_mean']:.0f}" if r in rules else "" for r in (budget, views_rule)]
            recall = [f"{rules[r]['recall']:.3f}" if r in rules else "" for r in (budget, views_rule)]
            rows.append(f"| {name} | {recipe} | {before} | {pooled['false_events_per_hour_0.5_mean']:.0f} | "
                        f"{' | '.join(fa)} | {pooled['recall_at_0.5']:.3f} | {' | '.join(recall)} |")
        for recipe in DISTILLATION_ABLATION:  # a final model on its own held-out negatives
            own = load(DOCS / "calibration" / f"{key}-all-{recipe}.json")
            if own:
                finals += 1
                fa = [f"{own['rules'][r]['false_events_per_hour']:.1f}" if r in own["rules"] else ""
                      for r in (budget, views_rule)]
                before = next((f"{v:.1f}" for m, v in own["compare_false_events_per_hour"].items()
                               if Path(m).stem == key), "")
                rows.append(f"| {name} | {recipe}, final model (all clips), own thresholds | {before} | "
                            f"{own['false_events_per_hour_0.5']:.1f} | {' | '.join(fa)} | | | |")
    if stream is None:
        return ""
    return (f"False events per hour on a {stream['hours'] * 60:.1f}-minute stream of {stream['clips']} held-out "
            f"clips of kinds no training saw ({', '.join(stream['kinds'])}), counted by `realtime-sed classify` "
            "with default settings; the recipe columns are the mean of the four fold models (`realtime-sed "
            "calibrate FOLDS_DIR`), at 0.5 and at the thresholds each calibration rule chose from out-of-fold "
            f"negative views of the training kinds. {budget}: each class may pass its threshold on "
            f"{calibration_rules()[budget]:.2%} of them (the target's 10 false events an hour, split over the "
            "classes, a sound seen by 8 windows at hop 0.5 s); the card carries this rule's thresholds. "
            f"{views_rule}: the earlier rule (calibrations made before the budget rule have only it). Target "
            f"recall: share of out-of-fold test clips whose own class reaches its on-threshold. Command: `{command}`."
            + (" A final model's row is that one model, its thresholds chosen by the same rules on the views of "
               "the negatives it was trained without (`train --hold-out-negatives 0`, `realtime-sed calibrate "
               "RUN`); it has no out-of-fold clips, so no recall." if finals else "") + "\n\n"
            + "\n".join(rows))


def collect() -> None:
    """Copies finished runs' cards, summaries and figures from runs/ into docs/."""
    figures = DOCS / "figures"
    for sub in ("faithful", "foldwise", "screening", "figures"):
        (DOCS / sub).mkdir(parents=True, exist_ok=True)
    for key in NAMES:
        run = ROOT / "runs" / f"{key}-random"
        if (run / f"{key}.json").exists():
            shutil.copy(run / f"{key}.json", DOCS / "faithful" / f"{key}.json")
            for fig in ("confusion", "curves"):
                shutil.copy(run / f"{fig}.png", figures / f"{key}-random-{fig}.png")
    for cv in [*(ROOT / "runs").glob("*-folds-*/cv.json"), *(ROOT / "runs").glob("placement/*-folds-*/cv.json")]:
        name = cv.parent.name.replace("-folds-", "-")
        shutil.copy(cv, DOCS / "foldwise" / f"{name}.json")
        shutil.copy(cv.parent / "confusion.png", figures / f"{name}-folds-confusion.png")
    for cal in (ROOT / "runs").glob("*-folds-*/calibration.json"):
        (DOCS / "calibration").mkdir(exist_ok=True)
        shutil.copy(cal, DOCS / "calibration" / f"{cal.parent.name.replace('-folds-', '-')}.json")
    for cal in (ROOT / "runs").glob("*-all-*/calibration.json"):  # final models' own thresholds
        (DOCS / "calibration").mkdir(exist_ok=True)
        shutil.copy(cal, DOCS / "calibration" / f"{cal.parent.name}.json")
    if (ROOT / "runs" / "ablation.json").exists():
        shutil.copy(ROOT / "runs" / "ablation.json", DOCS / "ablation.json")
    for cv in (ROOT / "runs" / "screening").glob("*-folds-*/cv.json"):
        shutil.copy(cv, DOCS / "screening" / f"{cv.parent.name.replace('-folds-', '-')}.json")


def write() -> None:
    """Collects the finished runs into docs/, then rewrites docs/results.md and README.md's tables."""
    collect()
    results_md, readme = pages()
    (DOCS / "results.md").write_text(results_md)
    (ROOT / "README.md").write_text(readme)


def pages() -> tuple[str, str]:
    """docs/results.md and README.md as the files under docs/ and models/ make them."""
    body = ["# Results", "", side_by_side_table(), "", faithful_table(), ""]
    for key, card in faithful_cards().items():
        m, t = card["metrics"]["test"], card["training"]
        body += [f"## {NAMES[key]}, faithful", "",
                 f"Command: `{card['command']}`", "",
                 f"Test ACC {m['acc']:.3f}, macro P/R/F1 {m['precision_macro']:.3f} / {m['recall_macro']:.3f} / "
                 f"{m['f1_macro']:.3f}, micro F1 {m['f1_micro']:.3f} on {m['n']} clips. Training: "
                 f"{t['epochs_run']} epochs (best {t['best_epoch']}), "
                 f"{t['total_training_seconds'] / 60:.0f} min on {t['device']}.", "",
                 f"![{NAMES[key]} confusion matrix](figures/{key}-random-confusion.png)",
                 f"![{NAMES[key]} training curves](figures/{key}-random-curves.png)", ""]
    placement = placement_table(shipped_cards())
    body += ["## Fold-wise", "", foldwise_table(), "", "## Measuring each change", "", ablation_table(), "",
             *([placement, ""] if placement else []),
             "## Distillation from a pretrained teacher", "", distillation_table(), "",
             *(["### Which head on the teacher's embedding", "", heads, ""] if (heads := teacher_heads_table()) else []),
             *(["### Each step of the distilled recipe", "", ablation, ""]
               if (ablation := distillation_ablation_table()) else []),
             "## False alarms on sounds that are none of the ten", "", false_alarm_table(), "",
             "## Choosing the recipe, first screening", "", screening_table(), ""]
    for (key, recipe), s in foldwise_summaries().items():
        body += [f"### {NAMES[key]}, {recipe} recipe", "",
                 f"Recipe: {s['recipe']}. Commands:", "",
                 *[f"- `{line.split(': ', 1)[-1]}`" if line.startswith("then") else f"- `{line}`"
                   for c in sorted({v['command'] for v in s['folds'].values()}) for line in c.splitlines()],
                 "",
                 f"![{NAMES[key]} {recipe} pooled confusion](figures/{key}-{recipe}-folds-confusion.png)", ""]
    shipped = shipped_cards()
    if shipped:
        body += ["## Shipped models", "", "| file | recipe | training data | epochs | s per epoch | total |",
                 "|---|---|---|---|---|---|"]
        for key, card in shipped.items():
            t = card["training"]
            body.append(f"| models/{key}.onnx | {t['recipe']} | {t['split']}, {t['train_clips']} clips | "
                        f"{t['epochs_run']} | {t['seconds_per_epoch_median']:.0f} | "
                        f"{t['total_training_seconds'] / 60:.0f} min |")
        body.append("")
        body += ["## The shipped models on the demo", "", demo_table(shipped), ""]
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    images = " ".join(f'<img src="docs/figures/{key}-random-confusion.png" width="24%" alt="{NAMES[key]}">'
                      for key in faithful_cards())
    # README: the pooled matrices of the shipped recipes only; results.md has all
    pooled = " ".join(f'<img src="docs/figures/{key}-{recipe}-folds-confusion.png" width="24%" '
                      f'alt="{NAMES[key]} {recipe}">' for (key, recipe), s in foldwise_summaries().items()
                      if len(s["folds"]) == 4 and key in shipped
                      and trained_alike(s, shipped[key]))
    block = "\n\n".join([side_by_side_table(), faithful_table(),
                          "Normalised confusion matrices of the faithful runs (random-split test part):",
                          images, foldwise_table(all_recipes=False), ablation_table()]
                         + ([placement] if placement else [])
                         + [distillation_table(),
                            *([steps] if (steps := distillation_ablation_table()) else []),
                            false_alarm_table()]
                         + (["Fold-wise confusion of the shipped models' recipe, the four test folds pooled "
                             "(all recipes: docs/results.md):", pooled] if pooled else []))
    return "\n".join(body), readme[:start] + "\n" + block + "\n" + readme[end:]


def run_results(write_pages: bool = False) -> int:
    if write_pages:
        write()
        print(f"wrote {DOCS / 'results.md'} and the tables in {ROOT / 'README.md'}")
    else:
        print("\n\n".join([side_by_side_table(), faithful_table(), foldwise_table()]))
    return 0
