"""`realtime-sed train | evaluate | export`: the training side of the CLI (needs the `train` extra)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from realtime_sed.constants import CLASSES, N_FRAMES
from realtime_sed.errors import SedError
from train.architectures import ARCHITECTURES, build_cnn, count_trainable
from train.data import build_cache, content_frames, cv_folds, place_randomly, read_metadata
from train.evaluate import compute_metrics, format_report, plot_confusion, write_outputs
from train.export import export_onnx
from train.loop import TrainConfig, pick_device, train
from train.negatives import FOLD_GROUPS
from train.settings import CalibrateSettings, EvaluateSettings, ExportSettings, TrainRun


def command_line() -> str:
    return "realtime-sed " + " ".join(shlex.quote(a) for a in sys.argv[1:])


RESUMABLE = ("epochs", "patience", "device", "threads", "keep")


def train_command(cfg: TrainConfig, run: TrainRun) -> str:
    """The `realtime-sed train` command line that runs `cfg` as `run` does: what a card records
    for a run started without the command line (the experiments)."""
    argv = cfg.to_argv(always=("model", "data", "seed", "epochs", "out"))
    flags = [("--cv", run.cv), ("--resume", run.resume), ("--force", run.force), ("--quiet", run.quiet),
             ("--no-onnx", run.no_onnx)]
    argv += (["--folds", run.folds] if run.folds else []) + [flag for flag, on in flags if on]
    return "realtime-sed train " + " ".join(shlex.quote(a) for a in argv)


def resolve_config(cfg: TrainConfig, run: TrainRun) -> TrainConfig:
    """The settings to train: `cfg`; with --resume, the run's saved settings, of which only
    RESUMABLE ones may be changed (those the command line gave)."""
    saved_path = Path(cfg.out) / "config.json"
    if run.resume and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        return TrainConfig(**{**saved, **{k: getattr(cfg, k) for k in RESUMABLE if k in run.given}})
    if run.resume and not run.cv:
        raise SedError(f"{saved_path}: not found, nothing to resume")
    return cfg


def check_train(cfg: TrainConfig, run: TrainRun) -> TrainConfig:
    """Refuses, before any cache is built, what would fail later or lose an earlier run. Returns
    `cfg` with the split a test fold implies."""
    for flag, value, low in (("--epochs", cfg.epochs, 1), ("--patience", cfg.patience, 0),
                             ("--batch-size", cfg.batch_size, 1), ("--threads", cfg.threads, 1)):
        if value is not None and value < low:
            raise SedError(f"{flag} {value}: give {low} or more")
    if not cfg.lr > 0:  # NaN too
        raise SedError(f"--lr {cfg.lr:g}: give a positive learning rate")
    if cfg.test_fold is not None and not run.cv:
        if cfg.split == "random" and "split" in run.given:
            raise SedError("--test-fold goes with --split fold, not --split random")
        cfg = replace(cfg, split="fold")  # a test fold names the fold-wise protocol
    if cfg.mixup_teacher and not cfg.view_mixup:
        raise SedError("--mixup-teacher needs --view-mixup: it is the teacher that hears the mixtures")
    if cfg.freq_mixstyle and not cfg.views:
        raise SedError("--freq-mixstyle needs --views: it re-colours the cached views each batch")
    if not 0 <= cfg.freq_mixstyle <= 1:
        raise SedError(f"--freq-mixstyle {cfg.freq_mixstyle:g}: give a share from 0 to 1")
    if cfg.hold_out_negatives is not None:
        if not (cfg.train_on_all and cfg.negatives):
            raise SedError("--hold-out-negatives goes with --train-on-all and --negatives: a fold-wise "
                           "run already keeps its test fold's negatives out")
        if cfg.hold_out_negatives not in FOLD_GROUPS:
            raise SedError(f"--hold-out-negatives {cfg.hold_out_negatives}: give a fold group "
                           f"({', '.join(map(str, FOLD_GROUPS))})")
    if cfg.split == "fold" and cfg.test_fold is None and not run.cv and not run.resume:
        raise SedError("--split fold needs --test-fold N (the fold to test on), or --cv for every fold")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise SedError(f"--out {out}: is a file, not a run folder")
    if not run.resume and not run.force and out.is_dir() and any(out.iterdir()):
        raise SedError(f"--out {out}: already holds a run; --resume continues it, --force starts "
                       "over in it, or give another --out")
    return cfg


def predict_logmels(model, logmels: np.ndarray, device: torch.device, batch: int = 128) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(logmels), batch):
            x = torch.from_numpy(np.asarray(logmels[i : i + batch])).unsqueeze(1).to(device)
            out.append(torch.softmax(model(x), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def _load_checkpoint(cfg: TrainConfig, path: Path, device: torch.device):
    model = build_cnn(cfg.model, cfg.conv_dropout, cfg.dense_dropout).to(device)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
    return model


def agreement(clip_ids: list[int], teacher_says: list[int], idx: np.ndarray, predicted: np.ndarray) -> float:
    """Share of the clips `idx` (sorted) where the student's top class `predicted` is the teacher's;
    run.json lists the teacher's predictions in the order of `clip_ids`."""
    said = dict(zip(clip_ids, teacher_says))
    return float(np.mean(predicted == np.array([said[i] for i in idx])))


def training_clip_agreement(cfg: TrainConfig, meta: dict, model, cache, device) -> dict:
    """The student against its teacher's head on the clean training clips, beside the test clips'
    figure: how well it learnt the teacher's function where it was taught, so that a low agreement
    on the test clips reads as a failure to generalise it rather than to fit it. Runs from before
    run.json kept the head's training predictions fit the head again (it is deterministic)."""
    teacher = meta["teacher"]
    if "train_predictions" not in teacher:
        from train.loop import make_split, prepare_distillation

        teacher = prepare_distillation(cfg, cache, make_split(cfg, cache)).teacher_report
    idx = np.sort(meta["train"])
    y = np.array([cache.clips[i].label for i in idx])
    predicted = predict_logmels(model, cache.logmels[idx], device).argmax(1)
    out = {"acc": float(np.mean(predicted == y)), "teacher_acc": teacher["train_acc"],
           "agreement": agreement(meta["train"], teacher["train_predictions"], idx, predicted)}
    print(f"on its training clips: ACC {out['acc']:.3f}, teacher's head {out['teacher_acc']:.3f}; "
          f"student agrees with it on {out['agreement']:.3f}")
    return out


def finish_run(cfg: TrainConfig, run: Path, command: str, export: bool = True) -> dict:
    """Evaluates best.pt on the test part, writes figures, exports ONNX with its card. Without
    `export` it writes only the card (MODEL.json); `realtime-sed export RUN/best.pt` makes the ONNX
    from it later, e.g. on another machine than the one that trained."""
    device = pick_device(cfg.device)
    meta = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    model = _load_checkpoint(cfg, run / "best.pt", device)
    clips, _ = read_metadata(cfg.data)
    cache = build_cache(clips, cfg.cache_dir, progress=False)
    arch = ARCHITECTURES[cfg.model]
    title = f"{arch.name}, {meta['split']}"
    metrics = None
    if meta["test"]:
        idx = np.sort(meta["test"])
        logmels = cache.logmels[idx]
        y = np.array([cache.clips[i].label for i in idx])
        probs = predict_logmels(model, logmels, device)
        metrics = compute_metrics(y, probs)
        print(format_report(metrics))
        if "teacher" in meta:  # how often the student says what its teacher's head says, on the test clips
            metrics["teacher"] = {"test_acc": meta["teacher"]["test_acc"],
                                  "agreement": agreement(meta["test"], meta["teacher"]["test_predictions"], idx,
                                                         probs.argmax(1))}
            print(f"teacher's head ACC {metrics['teacher']['test_acc']:.3f}; "
                  f"student agrees with it on {metrics['teacher']['agreement']:.3f}")
            metrics["teacher"]["training_clips"] = training_clip_agreement(cfg, meta, model, cache, device)
        # The last epoch too, to show how much the checkpoint rule matters.
        last_metrics = metrics
        if meta["best_epoch"] != meta["epochs_run"] and (run / "last.pt").exists():
            last_metrics = compute_metrics(y, predict_logmels(_load_checkpoint(cfg, run / "last.pt", device),
                                                              logmels, device))
        metrics["last_epoch"] = {"epoch": meta["epochs_run"], "acc": last_metrics["acc"],
                                 "f1_macro": last_metrics["f1_macro"]}
        print(f"last epoch ({meta['epochs_run']}): ACC {last_metrics['acc']:.3f}")
        # As in a live stream: short clips anywhere in the window, not only at its start.
        lengths = cache.lengths[idx]
        placed = compute_metrics(y, predict_logmels(model, place_randomly(logmels, lengths, cfg.seed), device))
        metrics["random_placement"] = {"acc": placed["acc"], "f1_macro": placed["f1_macro"],
                                       "clips_shorter_than_window": int((content_frames(lengths) < N_FRAMES).sum())}
        print(f"short clips placed at random in the window: ACC {placed['acc']:.3f}")
    else:
        metrics = {"note": "trained on all clips: no test part"}
    if metrics.get("n"):
        write_outputs(metrics, run, title, history, meta["best_epoch"])
    else:
        from train.evaluate import plot_curves

        plot_curves(history, run / "curves.png", title, meta["best_epoch"])
        (run / "metrics.json").write_text(json.dumps(metrics, indent=1))
    seconds = [h["seconds"] for h in history]
    card = {
        "name": cfg.model,
        "architecture": {"name": arch.name, "dilations_time_freq": arch.dilations,
                         "pools_time_freq": arch.pools, "trainable_parameters": count_trainable(model),
                         "table1_parameters": 87_258 if cfg.model == "convdt" else arch.trainable_params},
        "training": {"data": str(Path(cfg.data)), "clips": len(cache.clips),
                     "skipped_unreadable": len(cache.failed), "split": meta["split"],
                     "train_clips": len(meta["train"]), "val_clips": len(meta["val"]),
                     "test_clips": len(meta["test"]), "seed": cfg.seed, "epochs_run": meta["epochs_run"],
                     "best_epoch": meta["best_epoch"], "recipe": cfg.recipe,
                     "config": {k: v for k, v in asdict(cfg).items() if k not in ("cache_dir", "out")},
                     "seconds_per_epoch_median": float(np.median(seconds)) if seconds else None,
                     "total_training_seconds": float(np.sum(seconds)),
                     "device": str(device), "torch": torch.__version__},
        "metrics": {"test": {k: v for k, v in metrics.items() if k != "per_class"}},
        "command": command,
    }
    if cfg.model == "convdt":
        card["architecture"]["note"] = ("Table 1 prints 87,258 trainable parameters for ConvDT, but its "
                                        "own flatten size of 800 gives 87,256, which is what this has.")
    if not export:
        (run / f"{cfg.model}.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {run / f'{cfg.model}.json'} (no ONNX export asked for)")
        return metrics
    path = export_onnx(model, run / f"{cfg.model}.onnx", card)
    print(f"exported {path} and {path.with_suffix('.json')}")
    return metrics


def summarize_cv(out: Path) -> dict:
    """Mean ± std over the finished folds of a cross-validation folder (OUT/foldK/metrics.json),
    written to OUT/cv.json. Parallel processes that each ran some folds share one summary."""
    folds = {}
    pooled = np.zeros((len(CLASSES), len(CLASSES)))  # confusion counts summed over the test folds
    runs = {int(p.name[4:]): p for p in out.glob("fold*") if p.name[4:].isdigit()}
    for fold, run in sorted(runs.items()):
        if not (run / "metrics.json").exists() or not (run / "run.json").exists():
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        meta = json.loads((run / "run.json").read_text())
        seconds = [h["seconds"] for h in json.loads((run / "history.json").read_text())]
        support = np.array([metrics["per_class"][c]["support"] for c in CLASSES])
        pooled += np.round(np.array(metrics["confusion_normalized"]) * support[:, None])
        folds[fold] = {
            "acc": metrics["acc"], "f1_macro": metrics["f1_macro"], "test_clips": metrics["n"],
            "acc_last_epoch": metrics.get("last_epoch", {}).get("acc"),
            "acc_random_placement": metrics.get("random_placement", {}).get("acc"),
            "best_epoch": meta["best_epoch"], "epochs_run": meta["epochs_run"],
            "seconds_per_epoch_median": float(np.median(seconds)), "training_seconds": float(np.sum(seconds)),
            "device": _trained_on(run),
            "command": first_command(run, ""),
        }
        if "teacher" in metrics:
            folds[fold]["teacher_test_acc"] = metrics["teacher"]["test_acc"]
            folds[fold]["student_teacher_agreement"] = metrics["teacher"]["agreement"]
            if "training_clips" in metrics["teacher"]:
                folds[fold]["student_teacher_agreement_training_clips"] = metrics["teacher"]["training_clips"]["agreement"]
    if not folds:
        raise SedError(f"{out}: no finished folds to summarize")
    cfg = TrainConfig(**json.loads((out / f"fold{next(iter(folds))}" / "config.json").read_text()))
    acc = np.array([f["acc"] for f in folds.values()])
    f1 = np.array([f["f1_macro"] for f in folds.values()])
    summary = {
        "model": cfg.model, "recipe": cfg.recipe, "recipe_name": out.name.split("-folds-")[-1],
        "folds": folds, "acc_mean": float(acc.mean()), "acc_std": float(acc.std(ddof=0)),
        "f1_macro_mean": float(f1.mean()), "f1_macro_std": float(f1.std(ddof=0)),
        "acc_last_epoch_mean": (float(np.mean([f["acc_last_epoch"] for f in folds.values()]))
                                if all(f["acc_last_epoch"] is not None for f in folds.values()) else None),
        "acc_random_placement_mean": (float(np.mean([f["acc_random_placement"] for f in folds.values()]))
                                      if all(f["acc_random_placement"] is not None for f in folds.values())
                                      else None),
        "best_epoch_median": float(np.median([f["best_epoch"] for f in folds.values()])),
        "training_seconds": float(sum(f["training_seconds"] for f in folds.values())),
        "config": {k: v for k, v in asdict(cfg).items()
                   if k not in ("cache_dir", "out", "test_fold", "device", "threads", "view_workers")},
    }
    summary["confusion_pooled"] = pooled.astype(int).tolist()
    (out / "cv.json").write_text(json.dumps(summary, indent=1))
    normalized = pooled / np.maximum(pooled.sum(axis=1, keepdims=True), 1)
    plot_confusion({"confusion_normalized": normalized.tolist()}, out / "confusion.png",
                   f"{ARCHITECTURES[cfg.model].name}, test folds {', '.join(map(str, folds))} pooled, "
                   f"{summary['recipe_name']} recipe")
    return summary


def wanted_folds(cfg: TrainConfig, folds: str | None) -> list[int]:
    """The test folds of a cross-validation: `folds` (e.g. "1,3"), else every fold with at least
    100 clips."""
    clips, _ = read_metadata(cfg.data)
    found = cv_folds(clips)
    if not folds:
        return found
    wanted = [int(f) for f in folds.split(",") if f.strip().isdigit()]
    if not wanted or set(wanted) - set(found):
        raise SedError(f"--folds {folds}: give test folds with at least 100 clips "
                       f"(folds here: {', '.join(map(str, found))})")
    return wanted


def fold_config(cfg: TrainConfig, fold: int) -> TrainConfig:
    """One fold of a cross-validation: its run folder is OUT/foldK."""
    return replace(cfg, split="fold", test_fold=fold, out=str(Path(cfg.out) / f"fold{fold}"))


def train_fold(cfg: TrainConfig, fold: int, command: str, resume: bool = False, quiet: bool = False,
               export: bool = True) -> Path:
    """Trains and evaluates one test fold of `cfg` (resuming it where it has a last.pt)."""
    fcfg = fold_config(cfg, fold)
    resume = resume and (Path(fcfg.out) / "last.pt").exists()
    _record_command(Path(fcfg.out), command, resume)
    run = train(fcfg, resume=resume, progress=not quiet)
    finish_run(fcfg, run, first_command(run, command), export=export)
    return run


def train_single(cfg: TrainConfig, command: str, resume: bool = False, quiet: bool = False,
                 export: bool = True) -> Path:
    """Trains `cfg` in its run folder, then evaluates and exports it with its card."""
    _record_command(Path(cfg.out), command, resume)
    run = train(cfg, resume=resume, progress=not quiet)
    saved = TrainConfig(**json.loads((run / "config.json").read_text()))
    finish_run(saved, run, first_command(run, command), export=export)
    return run


def run_train(cfg: TrainConfig, run: TrainRun) -> int:
    cfg = check_train(cfg, run)
    if run.force and not run.resume:  # a new run: its log must not continue the old one's
        for log in [Path(cfg.out) / "log.txt", *Path(cfg.out).glob("fold*/log.txt")]:
            log.unlink(missing_ok=True)
    cfg = resolve_config(cfg, run)
    command = command_line()
    if run.cv:
        folds = wanted_folds(cfg, run.folds)
        print(f"cross-validation over folds {folds} (folds with at least 100 clips)")
        for fold in folds:
            train_fold(cfg, fold, command, run.resume, run.quiet, export=not run.no_onnx)
        summary = summarize_cv(Path(cfg.out))
        print(f"fold-wise ACC {summary['acc_mean']:.3f} ± {summary['acc_std']:.3f}  "
              + "  ".join(f"fold {k}: {v['acc']:.3f}" for k, v in summary["folds"].items()))
        return 0
    train_single(cfg, command, run.resume, run.quiet, export=not run.no_onnx)
    return 0


def _trained_on(run: Path) -> str | None:
    """The device a run trained on, from the card its evaluation wrote (cpu, cuda)."""
    cards = [p for p in run.glob("*.json") if p.stem in ARCHITECTURES]
    return json.loads(cards[0].read_text())["training"].get("device") if cards else None


def _record_command(run: Path, command: str, resume: bool) -> None:
    """A fresh run records the command that starts it; a resume keeps that record."""
    if not resume:
        run.mkdir(parents=True, exist_ok=True)
        (run / "command.txt").write_text(command + "\n")


def first_command(run: Path, command: str) -> str:
    """The command that started the run (a resume continues it; the card records the start)."""
    path = run / "command.txt"
    return path.read_text().strip() if path.exists() else command


def load_checkpoint_file(ckpt: Path) -> dict:
    """A checkpoint `train` wrote, or a one-line ModelError naming what it is instead."""
    from realtime_sed.errors import ModelError

    if not ckpt.is_file():
        raise ModelError(f"{ckpt}: no such checkpoint")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a foreign file
        raise ModelError(f"{ckpt}: not a checkpoint made by `train` ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ModelError(f"{ckpt}: not a checkpoint made by `train` (no model weights in it)")
    return state


def run_export(settings: ExportSettings) -> int:
    ckpt = Path(settings.checkpoint)
    run = ckpt.parent
    state = load_checkpoint_file(ckpt)
    if not (run / "config.json").exists():
        from realtime_sed.errors import ModelError

        raise ModelError(f"{run / 'config.json'}: not found; export needs a run folder made by `train`")
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    model = build_cnn(cfg.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        from realtime_sed.errors import ModelError

        raise ModelError(f"{ckpt}: its weights do not fit {cfg.model} of {run / 'config.json'}") from None
    old = run / f"{cfg.model}.json"
    card = json.loads(old.read_text()) if old.exists() else {"name": cfg.model}
    out = Path(settings.out) if settings.out else run / f"{cfg.model}.onnx"
    export_onnx(model, out, card)
    print(f"exported {out}")
    return 0


def run_evaluate(settings: EvaluateSettings) -> int:
    """Evaluates an exported ONNX model (raw audio in) with ONNX Runtime on a dataset split."""
    from realtime_sed.audio import load_clip
    from realtime_sed.classifier import OnnxClassifier
    from realtime_sed.errors import AudioError
    from train.data import fold_split, random_split

    clf = OnnxClassifier(settings.model)
    clips, _ = read_metadata(settings.data)
    audio, kept, failed = [], [], []
    for clip in clips:
        try:
            audio.append(load_clip(clip.path))
            kept.append(clip)
        except AudioError as exc:
            failed.append(str(exc))
    if failed:
        print(f"skipped {len(failed)} unreadable clips")
    if settings.split == "random":
        idx = random_split(len(kept), settings.seed).test
    elif settings.split == "fold":
        idx = fold_split(kept, settings.test_fold, settings.seed).test
    else:
        idx = list(range(len(kept)))
    idx = sorted(idx)
    probs = np.concatenate([clf.predict_audio(np.stack([audio[i] for i in idx[s : s + 64]]))
                            for s in range(0, len(idx), 64)])
    y = np.array([kept[i].label for i in idx])
    metrics = compute_metrics(y, probs)
    print(format_report(metrics))
    warning = training_overlap(clf.card, kept, idx, settings.data)
    if warning:
        print(f"realtime-sed: warning: {warning}", file=sys.stderr)
    if settings.out:
        write_outputs(metrics, Path(settings.out), f"{clf.name}, {settings.split}")
        print(f"wrote {settings.out}/metrics.json and confusion.png")
    return 0


def training_overlap(card: dict, clips: list, idx: list[int], data: str | Path) -> str | None:
    """Which evaluated clips the model's card says it trained on (all clips, or its split's train
    and validation parts rebuilt from the card's seed and test fold), when `data` is the dataset
    the card names: the same folder, or a copy with as many readable clips."""
    from train.data import fold_split, random_split

    training = card.get("training", {})
    config = training.get("config")
    if not config or not training.get("data"):
        return None
    same_folder = Path(training["data"]).resolve() == Path(data).resolve()
    if not same_folder and training.get("clips") != len(clips):
        return None
    if config.get("train_on_all"):
        seen, how = set(range(len(clips))), "trained on every clip"
    elif config.get("split") == "fold" and config.get("test_fold") is not None:
        part = fold_split(clips, config["test_fold"], config.get("seed", 0), config.get("val_fold"))
        seen, how = set(part.train) | set(part.val), f"trained on every fold but {config['test_fold']}"
    else:
        part = random_split(len(clips), config.get("seed", 0))
        seen, how = set(part.train) | set(part.val), f"random split, seed {config.get('seed', 0)}"
    both = [i for i in idx if i in seen]
    if not both:
        return None
    names = ", ".join(Path(clips[i].path).name for i in both[:3]) + (", ..." if len(both) > 3 else "")
    return (f"{len(both)} of {len(idx)} evaluated clips are among those {card.get('name', 'the model')}'s "
            f"card says it was trained on ({how}; e.g. {names}): these figures are not a test score")


def run_calibrate(settings: CalibrateSettings) -> int:
    from train.calibrate import calibrate_cv, calibrate_final

    folder = Path(settings.folds_dir)
    if not folder.is_dir():
        raise SedError(f"{folder}: not a folder; give a fold-wise run folder or a final run")
    final = (folder / "config.json").exists()  # one run, not folds: a final model's own thresholds
    result = (calibrate_final if final else calibrate_cv)(folder, list(settings.compare))
    print("thresholds (on): " + ", ".join(f"{k} {v:.2f}" for k, v in result["thresholds"]["on"].items()))
    if final:
        neg = result["negatives"]
        print(f"chosen on {neg['views']} views of fold group {neg['fold_group']}'s negatives, held out of training")
        print(f"false events per hour at 0.5: {result['false_events_per_hour_0.5']:.1f}")
    else:
        pooled = result["pooled"]
        print(f"target recall, out of fold: {pooled['recall_at_0.5']:.3f} at 0.5, "
              f"{pooled['recall_calibrated']:.3f} calibrated")
        for fold, f in result["folds"].items():
            if "false_events_per_hour_calibrated" in f:
                print(f"fold {fold}: false events per hour {f['false_events_per_hour_0.5']:.1f} at 0.5, "
                      f"{f['false_events_per_hour_calibrated']:.1f} calibrated")
    for name, rule in result["rules"].items():
        parts = [f"target recall {rule['recall']:.3f}"] if "recall" in rule else []  # a final run has no test clips
        if final:
            parts.append(f"false events per hour {rule['false_events_per_hour']:.1f}")
        elif "false_events_per_hour_mean" in rule:
            parts.append(f"false events per hour {rule['false_events_per_hour_mean']:.1f} (mean of the folds)")
        print(f"rule {name} ({rule['max_false_rate']:.2%} of negative views): " + ", ".join(parts)
              + ("  <- in the card" if name == result["rule"] else ""))
    for model, rate in result["compare_false_events_per_hour"].items():
        print(f"{model}: {rate:.1f} false events per hour")
    print(f"wrote {folder / 'calibration.json'}")
    return 0
