"""The `realtime-sed` command: one place that turns user errors into a one-line message.

Subcommands import what they need lazily, so `realtime-sed --help` and the runtime commands never
load torch, and sounddevice is loaded only for the microphone.
"""

from __future__ import annotations

import argparse
import os
import sys

from realtime_sed.constants import MODEL_NAMES
from realtime_sed.errors import SedError

DEFAULT_MODEL = "convdb"
TRAIN_HINT = "the training commands need the train extra: pip install -e '.[train]'"


def _add_stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name in models/ ({', '.join(MODEL_NAMES)}) or a path to an .onnx file "
                        f"(default: {DEFAULT_MODEL})")
    p.add_argument("--hop", type=float, default=0.5,
                   help="seconds between successive 4 s windows, at least 0.1 (default 0.5); rounded "
                        "to a whole number of 256-sample frames")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    p.add_argument("--smooth", type=int, default=3,
                   help="smooth probabilities over the last K windows (default 3; 1 = off)")
    p.add_argument("--smooth-method", choices=("median", "mean"), default="median")
    p.add_argument("--threshold", type=float, default=None,
                   help="on-threshold for every class (default: the model card's, else 0.5)")
    p.add_argument("--off-threshold", type=float, default=None,
                   help="off-threshold (hysteresis; default: the model card's, else on - 0.15)")
    p.add_argument("--min-duration", type=float, default=0.0,
                   help="drop events shorter than this many seconds (default 0)")
    p.add_argument("--classes", default=None,
                   help="comma-separated allow-list of class names that may raise events")
    p.add_argument("--gate-db", type=float, default=-60.0,
                   help="loudness gate in dBFS: no event starts in a quieter window (default -60)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-sed",
        description="Real-time sound event detection with lightweight dilated CNNs (UrbanSound8K classes).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("listen", help="detect events live from the microphone or a replayed file",
                       description="Detect sound events live. Opens the dashboard in a terminal; "
                                   "--no-tui prints events instead.")
    _add_stream_args(p)
    p.add_argument("--device", default=None,
                   help="input device: index or part of its name (see `realtime-sed devices`)")
    p.add_argument("--file", default=None, help="replay this audio file instead of the microphone")
    p.add_argument("--realtime", action="store_true",
                   help="with --file: pace the replay in real time (default: as fast as possible)")
    p.add_argument("--events", default=None, help="append detected events to this JSONL file")
    p.add_argument("--windows", action="store_true",
                   help="with --events: also log every window's class probabilities")
    p.add_argument("--no-tui", action="store_true", help="print events instead of the dashboard")
    p.add_argument("-v", "--verbose", action="store_true", help="headless: also print each window's top classes")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of audio")

    p = sub.add_parser("classify", help="classify audio files (fast, through the streaming path)",
                       description="Run each file through the same streaming path as `listen`, as fast "
                                   "as possible, and write its events. A bad file is reported and "
                                   "skipped; the exit code is 1 if any file failed.")
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_stream_args(p)
    p.add_argument("--format", choices=("tsv", "jsonl", "csv"), default="tsv",
                   help="tsv: DCASE (filename, onset, offset, event_label) with a header (default)")
    p.add_argument("-o", "--output", default=None, help="write here instead of standard output")
    p.add_argument("--windows", action="store_true", help="jsonl: also write every window's probabilities")
    p.add_argument("--block-size", type=int, default=88200,
                   help="samples per block read (default 88200: several windows per batched CNN call)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("devices", help="list audio input devices",
                       description="List the audio input devices PortAudio sees.")

    p = sub.add_parser("bench", help="measure latency, throughput and memory",
                       description="Median and p95 latency per 4 s window (1 thread), classify "
                                   "throughput in x real time (2 threads), peak RSS of a headless listen.")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--file", default=None, help="audio to stream (default: the bundled demo)")
    p.add_argument("--hours", type=float, default=0.0,
                   help="also replay this many hours of audio (looped) and report RSS growth")
    p.add_argument("--json", default=None, help="also write the figures here")

    p = sub.add_parser("train", help="train one of the four models (needs the train extra)",
                       description="Train a Table 1 model on UrbanSound8K, evaluate it on the test part "
                                   "and export it to ONNX with its model card. " + TRAIN_HINT + ".")
    p.add_argument("--model", choices=MODEL_NAMES, default="convdb")
    p.add_argument("--data", default="../shared/data/UrbanSound8K",
                   help="UrbanSound8K folder (metadata/UrbanSound8K.csv + audio/foldN/)")
    p.add_argument("--split", choices=("random", "fold"), default="random",
                   help="random: the paper's 80/10/10; fold: official fold-wise (needs --test-fold)")
    p.add_argument("--test-fold", type=int, default=None)
    p.add_argument("--val-fold", type=int, default=None,
                   help="validate on this whole fold (default: 10%% of each class's training clips, whole recordings)")
    p.add_argument("--cv", action="store_true",
                   help="cross-validate: each fold with at least 100 clips is the test fold in turn")
    p.add_argument("--folds", default=None,
                   help="with --cv: only these test folds, e.g. 1,3 (run the rest in another process "
                        "with the same --out; the summary covers every finished fold)")
    p.add_argument("--epochs", type=int, default=None, help="most epochs to train (default 200)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a lower validation loss (default 25; 0 = never)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/convdb", help="run folder: checkpoints, logs, figures, ONNX")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt with OUT/config.json; only --epochs, --patience, "
                        "--device, --threads and --keep may change")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--cache-dir", default=None, help="where log-mels are cached (default .cache/realtime-sed)")
    p.add_argument("--time-shift", action="store_true", help="recipe: random placement of short clips")
    p.add_argument("--gain-db", type=float, default=None, help="recipe: random gain of up to ±DB")
    p.add_argument("--mix-prob", type=float, default=None, help="recipe: chance to mix in another clip as noise")
    p.add_argument("--spec-masks", type=int, default=None, help="recipe: SpecAugment time and frequency masks")
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None)
    p.add_argument("--keep", choices=("best", "last"), default=None,
                   help="the run's checkpoint: lowest validation loss (default, the paper's) or the last "
                        "epoch; may change on --resume")
    p.add_argument("--train-on-all", action="store_true",
                   help="final model: train on every clip for exactly --epochs epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-onnx", action="store_true",
                   help="write the model card but skip the ONNX export (make it later with `export`)")

    p = sub.add_parser("evaluate", help="evaluate an ONNX model on a dataset split (needs the train extra)",
                       description="Run an exported model with ONNX Runtime on raw audio of a split and "
                                   "report ACC, macro/micro P/R/F1, per-class figures and the confusion matrix.")
    p.add_argument("--model", required=True, help="an .onnx file or a model name")
    p.add_argument("--data", default="../shared/data/UrbanSound8K")
    p.add_argument("--split", choices=("random", "fold", "all"), default="random")
    p.add_argument("--test-fold", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write metrics.json and confusion.png here")

    p = sub.add_parser("export", help="export a training checkpoint to ONNX (needs the train extra)",
                       description="Export best.pt or last.pt of a run folder to ONNX with its model card.")
    p.add_argument("checkpoint", help="a .pt file inside a run folder made by `train`")
    p.add_argument("--out", default=None, help="the .onnx path (default: beside the checkpoint)")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("train", "evaluate", "export"):
        try:
            from train import commands
        except ImportError as exc:
            raise SedError(f"{TRAIN_HINT} ({exc})") from None
        return {"train": commands.run_train, "evaluate": commands.run_evaluate,
                "export": commands.run_export}[args.command](args)
    from realtime_sed import app

    return {"listen": app.run_listen, "classify": app.run_classify, "devices": app.run_devices,
            "bench": app.run_bench}[args.command](args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The runtime's numpy work (a 51x1025 by 1025x120 product per window) is far too small for BLAS
    # threads to help, and their spinning competes with ONNX Runtime and the audio thread.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        return _dispatch(args)
    except SedError as exc:
        print(f"realtime-sed: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("realtime-sed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `realtime-sed classify ... | head`: the reader has gone, quietly stop
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
