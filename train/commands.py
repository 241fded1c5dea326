"""`realtime-sed train | evaluate | export`: the training side of the CLI (needs the `train` extra)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from realtime_sed.constants import CLASSES
from train.architectures import ARCHITECTURES, build_cnn, count_trainable
from train.data import build_cache, cv_folds, read_metadata
from train.evaluate import compute_metrics, format_report, write_outputs
from train.export import export_onnx
from train.loop import TrainConfig, pick_device, train


def command_line() -> str:
    return "realtime-sed " + " ".join(shlex.quote(a) for a in sys.argv[1:])


RESUMABLE = ("epochs", "patience", "device", "threads")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The settings given on the command line; with --resume, the run's saved settings, of which
    only RESUMABLE ones may be changed."""
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    saved_path = Path(args.out) / "config.json"
    if args.resume and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        return TrainConfig(**{**saved, **{k: v for k, v in given.items() if k in RESUMABLE}})
    if args.resume and not args.cv:
        from realtime_sed.errors import SedError

        raise SedError(f"{saved_path}: not found, nothing to resume")
    return TrainConfig(**given)


def predict_logmels(model, logmels: np.ndarray, device: torch.device, batch: int = 128) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(logmels), batch):
            x = torch.from_numpy(np.asarray(logmels[i : i + batch])).unsqueeze(1).to(device)
            out.append(torch.softmax(model(x), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def finish_run(cfg: TrainConfig, run: Path, command: str) -> dict:
    """Evaluates best.pt on the test part, writes figures, exports ONNX with its card."""
    device = pick_device(cfg.device)
    meta = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    model = build_cnn(cfg.model, cfg.conv_dropout, cfg.dense_dropout).to(device)
    model.load_state_dict(torch.load(run / "best.pt", map_location=device, weights_only=True)["model"])
    clips, _ = read_metadata(cfg.data)
    cache = build_cache(clips, cfg.cache_dir, progress=False)
    arch = ARCHITECTURES[cfg.model]
    title = f"{arch.name}, {meta['split']}"
    metrics = None
    if meta["test"]:
        idx = np.array(meta["test"])
        probs = predict_logmels(model, cache.logmels[np.sort(idx)], device)
        y = np.array([cache.clips[i].label for i in np.sort(idx)])
        metrics = compute_metrics(y, probs)
        print(format_report(metrics))
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
    path = export_onnx(model, run / f"{cfg.model}.onnx", card)
    print(f"exported {path} and {path.with_suffix('.json')}")
    return metrics


def run_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    command = command_line()
    if args.cv:
        clips, _ = read_metadata(cfg.data)
        folds = cv_folds(clips)
        print(f"cross-validation over folds {folds} (folds with at least 100 clips)")
        accs = {}
        for fold in folds:
            fcfg = TrainConfig(**{**asdict(cfg), "split": "fold", "test_fold": fold,
                                  "out": str(Path(cfg.out) / f"fold{fold}")})
            run = train(fcfg, resume=args.resume and (Path(fcfg.out) / "last.pt").exists(),
                        progress=not args.quiet)
            accs[fold] = finish_run(fcfg, run, command)["acc"]
        values = np.array(list(accs.values()))
        summary = {"folds": accs, "mean": float(values.mean()), "std": float(values.std(ddof=0))}
        (Path(cfg.out) / "cv.json").write_text(json.dumps(summary, indent=1))
        print(f"fold-wise ACC {summary['mean']:.3f} ± {summary['std']:.3f}  "
              + "  ".join(f"fold {k}: {v:.3f}" for k, v in accs.items()))
        return 0
    if not args.resume:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "command.txt").write_text(command + "\n")
    run = train(cfg, resume=args.resume, progress=not args.quiet)
    saved = TrainConfig(**json.loads((run / "config.json").read_text()))
    finish_run(saved, run, _first_command(run, command))
    return 0


def _first_command(run: Path, command: str) -> str:
    """The command that started the run (a resume continues it; the card records the start)."""
    path = run / "command.txt"
    return path.read_text().strip() if path.exists() else command


def run_export(args: argparse.Namespace) -> int:
    ckpt = Path(args.checkpoint)
    run = ckpt.parent
    if not (run / "config.json").exists():
        from realtime_sed.errors import ModelError

        raise ModelError(f"{run / 'config.json'}: not found; export needs a run folder made by `train`")
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    model = build_cnn(cfg.model)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["model"])
    old = run / f"{cfg.model}.json"
    card = json.loads(old.read_text()) if old.exists() else {"name": cfg.model}
    out = Path(args.out) if args.out else run / f"{cfg.model}.onnx"
    export_onnx(model, out, card)
    print(f"exported {out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluates an exported ONNX model (raw audio in) with ONNX Runtime on a dataset split."""
    from realtime_sed.audio import load_clip
    from realtime_sed.classifier import OnnxClassifier
    from realtime_sed.errors import AudioError
    from train.data import fold_split, random_split

    clf = OnnxClassifier(args.model)
    clips, _ = read_metadata(args.data)
    audio, kept, failed = [], [], []
    for clip in clips:
        try:
            audio.append(load_clip(clip.path))
            kept.append(clip)
        except AudioError as exc:
            failed.append(str(exc))
    if failed:
        print(f"skipped {len(failed)} unreadable clips")
    if args.split == "random":
        idx = random_split(len(kept), args.seed).test
    elif args.split == "fold":
        idx = fold_split(kept, args.test_fold, args.seed).test
    else:
        idx = list(range(len(kept)))
    idx = sorted(idx)
    probs = np.concatenate([clf.predict_audio(np.stack([audio[i] for i in idx[s : s + 64]]))
                            for s in range(0, len(idx), 64)])
    y = np.array([kept[i].label for i in idx])
    metrics = compute_metrics(y, probs)
    print(format_report(metrics))
    if args.out:
        write_outputs(metrics, Path(args.out), f"{clf.name}, {args.split}")
        print(f"wrote {args.out}/metrics.json and confusion.png")
    return 0
