"""Per-class on-thresholds from out-of-fold predictions, and false events per hour on held-out sounds.

How the thresholds are chosen: for each class, the lowest on-threshold on a grid from 0.10 to 0.95
that at most a given share of the out-of-fold negative views (sounds that are none of the ten, from
the negatives of each run's own test fold, which that run never trained on) reach. The share comes
from the false-alarm budget, `FALSE_EVENTS_PER_HOUR` for the whole detector: split evenly over the
classes, and with a sound that fires seen by about `WINDOWS_PER_SOUND` overlapping windows, a class
may pass its threshold on `view_rate_for_budget()` of the windows an hour of other sounds gives
(about 0.1%). The earlier rule, a fixed 1% of the views, is still reported beside it, so the two
can be compared; the card carries the budget's thresholds.
The off-threshold is the on-threshold less 0.15, or half of it where that is higher.
A distilled student's probabilities are soft (its teacher's head is a strongly regularised
logistic regression, and outlier exposure flattens it further), so 0.5 is no natural threshold. Out-of-fold target
clips give each class's recall at its threshold, so the price of quiet is visible.

False events per hour are counted by the runtime itself (`realtime-sed classify`, default settings,
the card's thresholds) on a stream of held-out negatives: ESC-50-other classes and synthetic kinds
that no training run here has seen.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from realtime_sed.constants import CLASSES, SAMPLE_RATE, WINDOW_SECONDS
from realtime_sed.windows import DEFAULT_HOP_SECONDS

FALSE_EVENTS_PER_HOUR = 10.0  # the whole detector's budget on sounds that are none of the ten
WINDOWS_PER_SOUND = WINDOW_SECONDS / DEFAULT_HOP_SECONDS  # windows that see one short sound: 8
MAX_FALSE_RATE = 0.01  # the earlier rule: 1% of the negative views, whatever the budget
GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(18))  # 0.10 .. 0.95
OFF_GAP = 0.15


def view_rate_for_budget(events_per_hour: float = FALSE_EVENTS_PER_HOUR) -> float:
    """The share of negative windows a class may fire on: its even part of the budget, in windows
    (each false event a sound that about WINDOWS_PER_SOUND windows see), over an hour's windows."""
    windows_per_hour = 3600 / DEFAULT_HOP_SECONDS
    return events_per_hour / len(CLASSES) * WINDOWS_PER_SOUND / windows_per_hour


def calibration_rules() -> dict[str, float]:
    """Rule name -> the share of negative views a class's threshold may let through; the first
    is the one the card carries."""
    return {f"budget {FALSE_EVENTS_PER_HOUR:g}/h": view_rate_for_budget(), "1% of views": MAX_FALSE_RATE}


def choose_thresholds(neg_probs: np.ndarray, clip_probs: np.ndarray, clip_labels: np.ndarray,
                      max_false_rate: float = MAX_FALSE_RATE) -> dict:
    """{"on": {class: t}, "off": {...}, "rule": text, "per_class": {class: {false_rate, recall}}}."""
    on, per_class = {}, {}
    for c, name in enumerate(CLASSES):
        chosen = GRID[-1]
        for t in GRID:
            if np.mean(neg_probs[:, c] >= t) <= max_false_rate:
                chosen = t
                break
        mine = clip_labels == c
        on[name] = float(chosen)
        per_class[name] = {"false_rate": float(np.mean(neg_probs[:, c] >= chosen)),
                           "recall": float(np.mean(clip_probs[mine, c] >= chosen)) if mine.any() else None}
    return {"on": on, "off": {k: off_threshold(v) for k, v in on.items()},
            "rule": (f"per class, the lowest on-threshold in {GRID[0]:.2f}..{GRID[-1]:.2f} (step 0.05) that at "
                     f"most {max_false_rate:.2%} of out-of-fold negative views reach; off = max(on - {OFF_GAP}, on / 2)"),
            "per_class": per_class}


def off_threshold(on: float) -> float:
    """The detector's default gap below the on-threshold, but never below half of it."""
    return round(max(on - OFF_GAP, on / 2), 2)


def target_recall(clip_probs: np.ndarray, clip_labels: np.ndarray, on: dict | float) -> float:
    """Share of target clips whose own class reaches its on-threshold (the detector would fire)."""
    t = np.array([on[c] for c in CLASSES]) if isinstance(on, dict) else np.full(len(CLASSES), on)
    return float(np.mean(clip_probs[np.arange(len(clip_labels)), clip_labels] >= t[clip_labels]))


def write_heldout_stream(negatives, path: str | Path) -> float:
    """The held-out negatives end to end in one WAV file; returns its length in seconds."""
    import soundfile as sf

    audio = np.concatenate([n.audio for n in negatives if n.held_out]).astype(np.float32)
    sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    return len(audio) / SAMPLE_RATE


def false_events(model: str | Path, stream: str | Path, out: str | Path) -> list[dict]:
    """Events the runtime reports on `stream` with default settings (its card's thresholds)."""
    result = subprocess.run([sys.executable, "-m", "realtime_sed", "classify", str(stream), "--model",
                             str(model), "--format", "jsonl", "--quiet", "-o", str(out)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"classify failed: {result.stderr.strip()}")
    return [json.loads(line) for line in Path(out).read_text().splitlines() if line.strip()]


def with_thresholds(model: str | Path, thresholds: dict, out: str | Path) -> Path:
    """A copy of an exported model whose card (in the graph's metadata and beside it) carries
    `thresholds`, the way the runtime reads them."""
    import onnx

    from realtime_sed.constants import CARD_METADATA_KEY

    proto = onnx.load(str(model))
    for prop in proto.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            card = json.loads(prop.value)
            card["thresholds"] = thresholds
            prop.value = json.dumps(card)
    out = Path(out)
    onnx.save(proto, str(out))
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return out


def events_per_hour(model: str | Path, stream: str | Path, out: str | Path, hours: float) -> float:
    return len(false_events(model, stream, out)) / hours


def events_per_rule(onnx_path: Path, rules: dict, stream: Path, hours: float) -> dict[str, float]:
    """{rule: false events per hour} of one exported model with each rule's thresholds in its card
    (copies beside it: MODEL-calibrated.onnx for the first rule, the card's, MODEL-ruleI.onnx after)."""
    rates = {}
    for i, (name, th) in enumerate(rules.items()):
        tag = "calibrated" if i == 0 else f"rule{i}"
        calibrated = with_thresholds(onnx_path, {"on": th["on"], "off": th["off"]},
                                     onnx_path.parent / f"{onnx_path.stem}-{tag}.onnx")
        rates[name] = events_per_hour(calibrated, stream, onnx_path.parent / f"fa-{tag}.jsonl", hours)
    return rates


def _run_config(run: Path):
    from train.loop import TrainConfig

    return TrainConfig(**json.loads((run / "config.json").read_text()))


def _run_inputs(run: Path, cfg, progress: bool):
    """A run's kept model (CPU), the log-mel cache, every negative and the view bank."""
    import torch

    from train.commands import _load_checkpoint

    model = _load_checkpoint(cfg, run / "best.pt", torch.device("cpu"))
    return (model, *_data_inputs(cfg.data, cfg.cache_dir, cfg.esc_data, cfg.synthetic_per_kind, cfg.seed,
                                 cfg.views, cfg.teacher, progress))


@functools.lru_cache(maxsize=1)
def _data_inputs(data: str, cache_dir: str, esc_data: str, synthetic_per_kind: int, seed: int, views: int,
                 teacher: str, progress: bool):
    """The log-mel cache, every negative and the view bank: the same for each fold of a
    cross-validation, so read (and the negatives synthesised) once, not once per fold."""
    from train.data import build_cache, read_metadata
    from train.views import ViewSettings, all_negatives, bank_for

    cache = build_cache(read_metadata(data)[0], cache_dir, progress=False)
    negatives = all_negatives(esc_data, synthetic_per_kind, seed)
    bank = bank_for(cache.clips, ViewSettings(n_views=views, seed=seed), negatives, cache_dir, teacher,
                    progress=progress)
    return cache, negatives, bank


def _negative_rows(bank, group: int) -> np.ndarray:
    """The bank rows of the negatives of one fold group."""
    return np.flatnonzero((np.asarray(bank.label) < 0) & (np.asarray(bank.group) == group))


def _stream_record(stream: Path, hours: float, negatives) -> dict:
    return {"file": stream.name, "hours": hours, "kinds": sorted({n.kind for n in negatives if n.held_out}),
            "clips": sum(n.held_out for n in negatives)}


def _compared(compare, stream: Path, hours: float, out_dir: Path) -> dict[str, float]:
    return {m: events_per_hour(m, stream, out_dir / f"fa-{Path(m).stem}.jsonl", hours) for m in compare}


def _command(target: Path, compare) -> str:
    return "realtime-sed calibrate " + " ".join([str(target), *(f"--compare {m}" for m in compare)])


def calibrate_final(run: str | Path, compare: list[str] = (), progress: bool = False) -> dict:
    """A final model's own thresholds (`train --train-on-all --hold-out-negatives G`): each rule
    applied to its predictions on the views of fold group G's negatives, which it never trained on,
    and its false events per hour on the held-out stream at 0.5 and at each rule's thresholds.
    Thresholds that fold models chose need not suit the model trained on every clip: the shipped
    ConvDB made 22.5 false events an hour with its folds' thresholds, against their 4.2.
    G's negatives were still heard as backgrounds under the views of clips of fold group G (for
    G = 0 the 40 clips of folds 4 to 9), never alone. Writes RUN/calibration.json.
    Measured on ConvDB and ConvDF, such thresholds made more false events than the folds' (README,
    "False alarms"), so no shipped model uses them; this is how the next rule gets tested."""
    import torch

    from realtime_sed.errors import SedError
    from train.commands import predict_logmels

    run = Path(run)
    cfg = _run_config(run)
    if not (cfg.train_on_all and cfg.hold_out_negatives is not None):
        raise SedError(f"{run}: not a final run with held-out negatives (train --train-on-all "
                       "--hold-out-negatives G); give it, or a fold-wise folder")
    onnx_path = run / f"{cfg.model}.onnx"
    if not onnx_path.exists():
        raise SedError(f"{onnx_path}: not found; export the run first (realtime-sed export {run}/best.pt)")
    model, _, negatives, bank = _run_inputs(run, cfg, progress)
    rows = _negative_rows(bank, cfg.hold_out_negatives)
    neg_p = predict_logmels(model, np.asarray(bank.logmels[rows], np.float32), torch.device("cpu"))
    no_clips = np.zeros((0, len(CLASSES)), np.float32), np.zeros(0, np.int64)  # every clip was trained on
    rates = calibration_rules()
    rules = {name: choose_thresholds(neg_p, *no_clips, rate) for name, rate in rates.items()}
    card_rule = next(iter(rules))
    stream = run / "heldout-negatives.wav"
    hours = write_heldout_stream(negatives, stream) / 3600
    events = events_per_rule(onnx_path, rules, stream, hours)
    result = {
        "thresholds": rules[card_rule], "rule": card_rule,
        "rules": {name: {"max_false_rate": rates[name], "on": th["on"], "false_events_per_hour": events[name]}
                  for name, th in rules.items()},
        "negatives": {"fold_group": cfg.hold_out_negatives, "views": int(len(rows)),
                      "kinds": sorted({n.kind for n in negatives if n.fold == cfg.hold_out_negatives
                                       and not n.held_out})},
        "false_events_per_hour_0.5": events_per_hour(onnx_path, stream, run / "fa-default.jsonl", hours),
        "false_events_per_hour_calibrated": events[card_rule],
        "stream": _stream_record(stream, hours, negatives),
        "compare_false_events_per_hour": _compared(compare, stream, hours, run),
        "command": _command(run, compare),
    }
    (run / "calibration.json").write_text(json.dumps(result, indent=1))
    return result


def calibrate_cv(folds_dir: str | Path, compare: list[str] = (), progress: bool = False) -> dict:
    """Thresholds from a fold-wise folder's out-of-fold predictions, and false events per hour of
    each fold's model (default 0.5 and calibrated) and of `compare` models on the held-out stream.
    Writes FOLDS_DIR/calibration.json."""
    import torch

    from train.commands import predict_logmels

    folds_dir = Path(folds_dir)
    runs = sorted((int(p.name[4:]), p) for p in folds_dir.glob("fold*") if (p / "run.json").exists())
    if not runs:
        from realtime_sed.errors import SedError

        raise SedError(f"{folds_dir}: no finished fold runs (foldK/best.pt)")
    device = torch.device("cpu")
    neg, clip_p, clip_y, per_fold = [], [], [], {}
    for fold, run in runs:
        cfg = _run_config(run)
        model, cache, negatives, bank = _run_inputs(run, cfg, progress)
        meta = json.loads((run / "run.json").read_text())
        rows = _negative_rows(bank, fold)
        test = np.sort(meta["test"])
        p_clip = predict_logmels(model, cache.logmels[test], device)
        p_neg = predict_logmels(model, np.asarray(bank.logmels[rows], np.float32), device)
        y = np.array([cache.clips[i].label for i in test])
        neg.append(p_neg), clip_p.append(p_clip), clip_y.append(y)
        per_fold[fold] = {"run": str(run), "negative_views": len(rows), "test_clips": len(test),
                          "acc": float(np.mean(p_clip.argmax(1) == y)),
                          "recall_at_0.5": target_recall(p_clip, y, 0.5)}
        if "teacher" in meta:  # how often the student says what its teacher says, on the test fold
            per_fold[fold]["teacher_test_acc"] = meta["teacher"]["test_acc"]
            per_fold[fold]["student_teacher_agreement"] = float(
                np.mean(p_clip.argmax(1) == np.array(meta["teacher"]["test_predictions"])))
    neg_p, all_p, all_y = np.concatenate(neg), np.concatenate(clip_p), np.concatenate(clip_y)
    rates = calibration_rules()
    rules = {name: choose_thresholds(neg_p, all_p, all_y, rate) for name, rate in rates.items()}
    card_rule = next(iter(rules))
    thresholds = rules[card_rule]
    stream = folds_dir / "heldout-negatives.wav"
    hours = write_heldout_stream(negatives, stream) / 3600
    by_rule = {name: {"max_false_rate": rate, "on": rules[name]["on"], "per_fold": {}}
               for name, rate in rates.items()}
    for (fold, run), p, y in zip(runs, clip_p, clip_y):
        pf = per_fold[fold]
        pf["recall_calibrated"] = target_recall(p, y, thresholds["on"])
        onnx_path = run / f"{cfg.model}.onnx"
        if onnx_path.exists():
            pf["false_events_per_hour_0.5"] = events_per_hour(onnx_path, stream, run / "fa-default.jsonl", hours)
            for name, rate in events_per_rule(onnx_path, rules, stream, hours).items():
                by_rule[name]["per_fold"][fold] = {"false_events_per_hour": rate,
                                                   "recall": target_recall(p, y, rules[name]["on"])}
            pf["false_events_per_hour_calibrated"] = by_rule[card_rule]["per_fold"][fold]["false_events_per_hour"]
    for name, r in by_rule.items():
        r["recall"] = target_recall(all_p, all_y, r["on"])
        if r["per_fold"]:
            r["false_events_per_hour_mean"] = float(np.mean([f["false_events_per_hour"] for f in r["per_fold"].values()]))
    result = {
        "thresholds": thresholds, "folds": per_fold, "rule": card_rule, "rules": by_rule,
        "pooled": {"recall_at_0.5": target_recall(all_p, all_y, 0.5),
                   "recall_calibrated": target_recall(all_p, all_y, thresholds["on"]),
                   "negative_views": int(len(neg_p))},
        "stream": _stream_record(stream, hours, negatives),
        "compare_false_events_per_hour": _compared(compare, stream, hours, folds_dir),
        "command": _command(folds_dir, compare),
    }
    fa = [v["false_events_per_hour_calibrated"] for v in per_fold.values() if "false_events_per_hour_calibrated" in v]
    if fa:
        result["pooled"]["false_events_per_hour_calibrated_mean"] = float(np.mean(fa))
        result["pooled"]["false_events_per_hour_0.5_mean"] = float(np.mean(
            [v["false_events_per_hour_0.5"] for v in per_fold.values()]))
    (folds_dir / "calibration.json").write_text(json.dumps(result, indent=1))
    return result
