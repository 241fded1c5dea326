"""The `realtime-sed` command: the only module that knows argparse, and the one place that turns
user errors into a one-line message.

The runtime commands get `Settings` (realtime_sed/settings.py) built here from the command line;
option dests are the settings' field names. Subcommands import what they need lazily, so
`realtime-sed --help` and the runtime commands never load torch, the headless ones never load
Textual, and sounddevice is loaded only for the microphone.
"""

from __future__ import annotations

import os

# Before numpy loads (the imports below load it): the runtime's numpy work (a 51x1025 by 1025x120
# product per hop) is far too small for BLAS threads to help, and their spinning competes with ONNX
# Runtime and the audio thread. Set later, it did nothing: on the loaded 2-core machine bench's
# per-window latency went from ~1.4 ms to 18-51 ms.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import errno  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402

from realtime_sed import __version__  # noqa: E402
from realtime_sed.constants import CLASSES, DATA_DIR, HOP_LENGTH, MODEL_NAMES  # noqa: E402
from realtime_sed.errors import OutputError, SedError  # noqa: E402
from realtime_sed.settings import DEFAULT_MODEL, Settings  # noqa: E402
from realtime_sed.windows import MIN_HOP_SECONDS  # noqa: E402

TRAIN_HINT = "the training commands need the train extra: pip install -e '.[train]'"
EXIT_CODES = ("exit codes: 0 done; 1 some input files could not be read (the others were classified); "
              "2 a one-line error: a bad value, model or output, refused before any work, or an output "
              "that failed while writing (a full disk; what was written before is kept); 128+N stopped "
              "by signal N (130 Ctrl-C, 143 SIGTERM) after writing every event found so far, the open "
              "ones marked cut short, and the summary.")


class Interrupted(KeyboardInterrupt):
    """SIGTERM (how systemd and Docker stop a service), handled exactly like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, frame):
    raise Interrupted(signum)


def _class_list(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _add_stream_args(p: argparse.ArgumentParser, d: Settings) -> None:
    p.add_argument("--config", default=d.config.config, metavar="FILE.toml",
                   help="read settings from this TOML file (keys named as the options, [classes.NAME] "
                        "sections for one class); options given here win over the file; "
                        "`realtime-sed config --print` writes one to start from")
    p.add_argument("--model", default=d.stream.model,
                   help=f"model name in models/ ({', '.join(MODEL_NAMES)}) or a path to an .onnx file "
                        f"(default: {d.stream.model})")
    p.add_argument("--hop", type=float, default=d.stream.hop,
                   help=f"seconds between successive 4 s windows, at least {MIN_HOP_SECONDS:g} (default "
                        f"{d.stream.hop:g}); rounded to a whole number of {HOP_LENGTH}-sample frames")
    p.add_argument("--threads", type=int, default=d.stream.threads,
                   help=f"ONNX Runtime threads (default {d.stream.threads})")
    p.add_argument("--smooth", type=int, default=d.detector.smooth,
                   help=f"smooth probabilities over the last K windows (default {d.detector.smooth}; 1 = off)")
    p.add_argument("--smooth-method", choices=("median", "mean"), default=d.detector.smooth_method,
                   help=f"how the last K windows are combined (default {d.detector.smooth_method})")
    p.add_argument("--threshold", type=float, default=d.detector.threshold,
                   help="on-threshold for every class (default: the model card's, else 0.5)")
    p.add_argument("--off-threshold", type=float, default=d.detector.off_threshold,
                   help="off-threshold (hysteresis; default: the model card's, else on - 0.15)")
    p.add_argument("--min-duration", type=float, default=d.detector.min_duration,
                   help=f"drop events shorter than this many seconds (default {d.detector.min_duration:g})")
    p.add_argument("--classes", type=_class_list, default=d.detector.classes,
                   help="comma-separated allow-list of the classes that may raise events, out of: "
                        + ", ".join(CLASSES))
    p.add_argument("--gate-db", type=float, default=d.detector.gate_db,
                   help=f"loudness gate in dBFS: no event starts in a quieter window "
                        f"(default {d.detector.gate_db:g})")


def _add_action_args(p: argparse.ArgumentParser, d: Settings) -> None:
    p.add_argument("--exec", default=d.output.exec, metavar="CMD",
                   help="run CMD for every finished event (split like a shell would, never run by one); "
                        "the event's JSON on its stdin, RSED_LABEL/ONSET/OFFSET/PEAK/SOURCE/CLIP in its environment")
    p.add_argument("--exec-timeout", type=float, default=d.output.exec_timeout,
                   help=f"seconds a command may run (default {d.output.exec_timeout:g})")
    p.add_argument("--webhook", default=d.output.webhook, metavar="URL",
                   help="POST every finished event's JSON to URL (retries with backoff)")
    p.add_argument("--mqtt", default=d.output.mqtt, metavar="URL",
                   help="mqtt[s]://[user@]host[:port][/prefix]: PREFIX/event, PREFIX/<class> ON/OFF, "
                        "PREFIX/status; the password comes from RSED_MQTT_PASSWORD")
    p.add_argument("--mqtt-discovery", action="store_true", default=d.output.mqtt_discovery,
                   help="with --mqtt: publish Home Assistant discovery configs (a binary sensor per class)")


def _add_clip_args(p: argparse.ArgumentParser, d: Settings) -> None:
    p.add_argument("--clips", default=d.output.clips, metavar="DIR",
                   help="save every finished event's audio here (made if missing); the event's JSON "
                        "gets \"clip\": PATH")
    p.add_argument("--pre-roll", type=float, default=d.output.pre_roll, metavar="S",
                   help=f"seconds of clip before the onset, from audio already heard (default {d.output.pre_roll:g})")
    p.add_argument("--post-roll", type=float, default=d.output.post_roll, metavar="S",
                   help=f"seconds of clip after the offset (default {d.output.post_roll:g}); the event is "
                        "reported once they have been heard")
    p.add_argument("--clip-format", choices=("flac", "wav", "ogg"), default=d.output.clip_format,
                   help=f"clip files, 22050 Hz mono as the detector heard it (default {d.output.clip_format})")
    p.add_argument("--clips-max-mb", type=float, default=d.output.clips_max_mb, metavar="MB",
                   help="keep the clips folder under MB, deleting the oldest clips first")


def build_parser(defaults: Settings | None = None) -> argparse.ArgumentParser:
    """The whole command line. The runtime options' defaults come from `defaults` (the settings
    dataclasses' own defaults unless given), and each option's dest is its settings field."""
    d = defaults or Settings()
    parser = argparse.ArgumentParser(
        prog="realtime-sed",
        description="Real-time sound event detection with lightweight dilated CNNs (UrbanSound8K classes).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"realtime-sed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("listen", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed listen\n  realtime-sed listen --device USB --events events.jsonl\n  realtime-sed listen --no-tui --file demo/urban-demo.ogg --realtime", help="detect events live from the microphone or a replayed file",
                       description="Detect sound events live. Opens the dashboard in a terminal; "
                                   "--no-tui prints events instead.")
    _add_stream_args(p, d)
    p.add_argument("--device", default=d.source.device,
                   help="input device: index or part of its name (see `realtime-sed devices`)")
    p.add_argument("--file", default=d.source.file, help="replay this audio file instead of the microphone")
    p.add_argument("--realtime", action="store_true", default=d.source.realtime,
                   help="with --file: pace the replay in real time (default: as fast as possible)")
    p.add_argument("--events", default=d.output.events, help="append detected events to this JSONL file")
    p.add_argument("--windows", action="store_true", default=d.output.windows,
                   help="with --events: also log every window's class probabilities")
    p.add_argument("--no-tui", action="store_true", default=d.output.no_tui, help="print events instead of the dashboard")
    _add_action_args(p, d)
    _add_clip_args(p, d)
    p.add_argument("-v", "--verbose", action="store_true", default=d.output.verbose, help="headless: also print each window's top classes")
    p.add_argument("--duration", type=float, default=d.source.duration,
                   help="stop after this many seconds of audio")

    p = sub.add_parser("classify", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed classify demo/urban-demo.ogg\n  realtime-sed classify *.wav -o events.tsv\n  realtime-sed classify a.flac --format jsonl --windows --classes siren,car_horn", help="classify audio files (fast, through the streaming path)",
                       description="Run each file through the same streaming path as `listen`, as fast "
                                   "as possible, and write its events. A bad file is reported and "
                                   "skipped; the exit code is 1 if any file failed.")
    p.add_argument("files", nargs="*", metavar="FILE_OR_DIR", default=d.classify.files,
                   help="audio files (WAV, FLAC, OGG, MP3, anything libsndfile reads), or directories with "
                        "--recursive/--glob/--engine ray; rows are named by file name, or by the paths as "
                        "given when two files share a name")
    _add_stream_args(p, d)
    p.add_argument("--format", choices=("tsv", "jsonl", "csv"), default=d.classify.format,
                   help="tsv: DCASE (filename, onset, offset, event_label) with a header (default)")
    p.add_argument("-o", "--output", default=d.classify.output, help="write here instead of standard output")
    p.add_argument("--windows", action="store_true", default=d.output.windows, help="jsonl: also write every window's probabilities")
    p.add_argument("--block-size", type=int, default=d.classify.block_size,
                   help=f"samples per block read (default {d.classify.block_size}: several windows per "
                        "batched CNN call)")
    _add_action_args(p, d)
    _add_clip_args(p, d)
    p.add_argument("--quiet", action="store_true", default=d.classify.quiet, help="no progress bar")
    p.add_argument("--manifest", default=d.classify.manifest, help="also classify the paths in this file, one a line")
    p.add_argument("--recursive", action="store_true", default=d.classify.recursive, help="walk directories into their subdirectories")
    p.add_argument("--glob", default=d.classify.glob,
                   help="in walked directories, only files matching this pattern (default: audio files)")
    p.add_argument("--engine", choices=("local", "ray"), default=d.classify.engine,
                   help="ray: one classifier per Ray worker, files streamed to them (pip install "
                        "'realtime-sed[cluster]'); directories are always walked")
    p.add_argument("--ray-address", default=d.classify.ray_address,
                   help="an existing Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--workers", type=int, default=d.classify.workers,
                   help="--engine ray: worker processes (default: the cluster's CPUs)")
    p.add_argument("--output-dir", default=d.classify.output_dir,
                   help="--engine ray: one output file per input here (NAME.FORMAT) instead of one output")
    p.add_argument("--skip-done", action="store_true", default=d.classify.skip_done,
                   help="--engine ray: resume, skipping inputs already in --output FILE (its FILE.done ledger) "
                        "or --output-dir; refused onto standard output, which keeps no record")

    p = sub.add_parser("config", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  realtime-sed config --print > realtime-sed.toml\n"
                              "  realtime-sed config --print --config examples/realtime-sed.toml",
                       help="write the effective settings of listen and classify as TOML",
                       description="The settings listen and classify would run with (the defaults, or "
                                   "--config FILE's), as a TOML file to start a config from.")
    p.add_argument("--print", dest="print_config", action="store_true", default=d.config.print_config,
                   help="write the settings as TOML on standard output")
    p.add_argument("--config", default=d.config.config, metavar="FILE.toml",
                   help="start from this config file instead of the defaults")

    p = sub.add_parser("devices", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed devices\n  realtime-sed devices --json", help="list audio input devices",
                       description="List the audio input devices PortAudio sees.")
    p.add_argument("--json", dest="as_json", action="store_true", help="print one JSON list instead of a table")

    p = sub.add_parser("models", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed models",
                       help="list the shipped models and their cards' key facts",
                       description="Each shipped model: its architecture, size, how it was trained and "
                                   "its fold-wise accuracy, from its model card.")

    p = sub.add_parser("bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed bench\n  realtime-sed bench --model conv2d --hours 1 --json bench.json\n  realtime-sed bench --compare ../shared/teacher/yamnet.tflite --dashboard 40", help="measure latency, throughput and memory",
                       description="Median and p95 latency per 4 s window (1 thread), classify "
                                   "throughput in x real time (2 threads), peak RSS of a headless listen.")
    p.add_argument("--model", default=d.stream.model, help=f"the model to measure (default {d.stream.model})")
    p.add_argument("--file", default=d.source.file, help="audio to stream (default: the bundled demo)")
    p.add_argument("--hours", type=float, default=d.bench.hours,
                   help="also replay this many hours of audio (looped) and report RSS growth")
    p.add_argument("--json", default=d.bench.json, help="also write the figures here")
    p.add_argument("--compare", default=d.bench.compare, metavar="PEER.tflite",
                   help="also run this TFLite model (16 kHz, 0.975 s every 0.48 s, 1 thread) on the same "
                        "audio and print both real-time factors (pip install ai-edge-litert)")
    p.add_argument("--rounds", type=int, default=d.bench.rounds,
                   help=f"with --compare: alternate rounds of ours and the peer (default {d.bench.rounds})")
    p.add_argument("--dashboard", type=float, default=d.bench.dashboard, metavar="SECONDS",
                   help="also run the dashboard on the audio in real time (a 100x30 pseudo-terminal) and "
                        "measure its CPU over this many seconds after start-up, and its peak RSS (Linux)")

    p = sub.add_parser("screenshot", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed screenshot\n  realtime-sed screenshot small.svg --size 60x20 --at 20", help="draw the dashboard mid-demo into an SVG (for the docs)",
                       description="Replay the bundled demo as fast as possible up to --at seconds, hold "
                                   "there, and save the dashboard as an SVG.")
    p.add_argument("out", nargs="?", default=d.screenshot.out,
                   help=f"the SVG to write (default {d.screenshot.out})")
    p.add_argument("--model", default=d.stream.model, help=f"the model to run (default {d.stream.model})")
    p.add_argument("--size", default=d.screenshot.size,
                   help=f"terminal size, COLSxROWS (default {d.screenshot.size})")
    p.add_argument("--at", type=float, default=d.screenshot.at,
                   help=f"seconds of the demo to replay (default {d.screenshot.at:g})")

    p = sub.add_parser("train", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed train --model convdb --out runs/convdb\n  realtime-sed train --test-fold 1 --out runs/fold1\n  realtime-sed train --cv --folds 1,3 --out runs/cv", help="train one of the four models (needs the train extra)",
                       description="Train a Table 1 model on UrbanSound8K, evaluate it on the test part "
                                   "and export it to ONNX with its model card. " + TRAIN_HINT + ".")
    p.add_argument("--model", choices=MODEL_NAMES, default=DEFAULT_MODEL,
                   help=f"the Table 1 architecture to train (default {DEFAULT_MODEL})")
    p.add_argument("--data", default=DATA_DIR,
                   help="UrbanSound8K folder (metadata/UrbanSound8K.csv + audio/foldN/)")
    p.add_argument("--split", choices=("random", "fold"), default=None,
                   help="random: the paper's 80/10/10 (default); fold: official fold-wise (needs "
                        "--test-fold, which implies it)")
    p.add_argument("--test-fold", type=int, default=None, help="the fold to test on; implies --split fold")
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
    p.add_argument("--batch-size", type=int, default=None, help="clips per training step (default 32)")
    p.add_argument("--conv-dropout", type=float, default=None, help="dropout after each conv layer (default 0.1)")
    p.add_argument("--dense-dropout", type=float, default=None, help="dropout before the dense layer (default 0.5)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the recipe (default 0)")
    p.add_argument("--out", default="runs/convdb", help="run folder: checkpoints, logs, figures, ONNX")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt with OUT/config.json; only --epochs, --patience, "
                        "--device, --threads and --keep may change")
    p.add_argument("--force", action="store_true",
                   help="start a new run in an --out folder that already holds one (its files are replaced)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--cache-dir", default=None, help="where log-mels are cached (default .cache/realtime-sed)")
    p.add_argument("--time-shift", action="store_true", help="recipe: random placement of short clips")
    p.add_argument("--gain-db", type=float, default=None, help="recipe: random gain of up to ±DB")
    p.add_argument("--mix-prob", type=float, default=None, help="recipe: chance to mix in another clip as noise")
    p.add_argument("--spec-masks", type=int, default=None, help="recipe: SpecAugment time and frequency masks")
    p.add_argument("--label-smoothing", type=float, default=None, help="recipe: label smoothing, e.g. 0.1")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="recipe: learning-rate schedule (default constant)")
    p.add_argument("--keep", choices=("best", "last"), default=None,
                   help="the run's checkpoint: lowest validation loss (default, the paper's) or the last "
                        "epoch; may change on --resume")
    p.add_argument("--train-on-all", action="store_true",
                   help="final model: train on every clip for exactly --epochs epochs")
    g = p.add_argument_group("distillation and negatives (a bank of cached augmented views; see README)")
    g.add_argument("--views", type=int, default=None,
                   help="augmented waveform views per clip, labelled by the teacher (0 = off; e.g. 8)")
    g.add_argument("--teacher", default=None, help="YAMNet TFLite file (default ../shared/teacher/yamnet.tflite)")
    g.add_argument("--head-views", choices=("clean", "all"), default=None,
                   help="views of the training clips that fit the teacher's head (default clean)")
    g.add_argument("--distill", type=float, default=None,
                   help="weight of the teacher's probabilities against the hard label, 0..1")
    g.add_argument("--temperature", type=float, default=None, help="distillation temperature (default 1)")
    g.add_argument("--embed-weight", type=float, default=None,
                   help="weight of a training-only head regressing the teacher's 1024-d embedding")
    g.add_argument("--negatives", type=float, default=None,
                   help="outlier-exposure weight on sounds that are none of the ten (ESC-50-other, synthetic)")
    g.add_argument("--negative-share", type=float, default=None,
                   help="negative views per epoch as a share of the training clips (default 0.25)")
    g.add_argument("--view-mixup", type=float, default=None,
                   help="share of clip views mixed with another clip view each batch, labels and teacher "
                        "targets mixed by energy share (default 0)")
    g.add_argument("--mixup-teacher", action="store_true",
                   help="with --view-mixup: the teacher hears each mixture (its waveform, cached once "
                        "beside the bank) instead of its targets being mixed")
    g.add_argument("--freq-mixstyle", type=float, default=None, metavar="SHARE",
                   help="share of views each batch whose mel bands take a mix of their own and another "
                        "view's mean and spread (Freq-MixStyle: another recording's colour; default 0)")
    g.add_argument("--hold-out-negatives", type=int, default=None, metavar="GROUP",
                   help="with --train-on-all: the negatives of this fold group (0, 1, 2, 3 or 10) stay out "
                        "of training, for `realtime-sed calibrate RUN` to choose the model's own thresholds on")
    g.add_argument("--esc-data", default=None, help="ESC-50-other folder (default ../shared/data/ESC-50-other)")
    g.add_argument("--synthetic-per-kind", type=int, default=None,
                   help="synthetic negatives of each kind (default 40)")
    g.add_argument("--view-workers", type=int, default=None, help="processes that build the view bank once")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-onnx", action="store_true",
                   help="write the model card but skip the ONNX export (make it later with `export`)")

    p = sub.add_parser("evaluate", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed evaluate --model runs/convdb/convdb.onnx\n  realtime-sed evaluate --model convdb --split fold --test-fold 1", help="evaluate an ONNX model on a dataset split (needs the train extra)",
                       description="Run an exported model with ONNX Runtime on raw audio of a split and "
                                   "report ACC, macro/micro P/R/F1, per-class figures and the confusion matrix.")
    p.add_argument("--model", required=True, help="an .onnx file or a model name")
    p.add_argument("--data", default=DATA_DIR, help=f"UrbanSound8K folder (default {DATA_DIR})")
    p.add_argument("--split", choices=("random", "fold", "all"), default="random",
                   help="which clips: the random split's test part (default), one test fold, or all")
    p.add_argument("--test-fold", type=int, default=None, help="with --split fold: the fold to evaluate")
    p.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    p.add_argument("--out", default=None, help="write metrics.json and confusion.png here")

    p = sub.add_parser("quantize", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  realtime-sed quantize convdb\n"
                              "  realtime-sed quantize models/convdb.onnx --calibration 100 --json int8.json",
                       help="an int8 copy of a model, judged against it (needs the train extra)",
                       description="ONNX Runtime static quantisation of the CNN (Conv, Gemm; per channel), "
                                   "calibrated on UrbanSound8K clips outside the evaluation folds; the int8 "
                                   "model is written only if it costs <= 0.01 ACC on those folds and is faster.")
    p.add_argument("model", help="an .onnx file or a model name")
    p.add_argument("--out", default=None, help="where to write it (default: MODEL-int8.onnx beside the model)")
    p.add_argument("--data", default=DATA_DIR, help=f"UrbanSound8K folder (default {DATA_DIR})")
    p.add_argument("--folds", default="10,1,2,3", help="evaluation folds (calibration uses the others)")
    p.add_argument("--calibration", type=int, default=200, help="most calibration clips (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration sample (default 0)")
    p.add_argument("--json", default=None, help="also write the figures here")

    p = sub.add_parser("calibrate", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  realtime-sed calibrate runs/convdb-cv\n"
                              "  realtime-sed calibrate runs/convdb-cv --compare models/convdb.onnx\n"
                              "  realtime-sed calibrate runs/convdb-all-kd-mixup-long",
                       help="per-class thresholds and false alarms of a fold-wise run or a final model (train extra)",
                       description="From a `train --cv --views ... --negatives ...` folder: choose each class's "
                                   "on-threshold from the out-of-fold negatives, and count false events per "
                                   "hour with `classify` on a stream of held-out negatives. From a final run "
                                   "(`train --train-on-all --hold-out-negatives G`): the same, on its own "
                                   "predictions for the negatives of group G. Writes FOLDS_DIR/calibration.json.")
    p.add_argument("folds_dir", help="the --out folder of a fold-wise run (foldK/ inside), or of a final run")
    p.add_argument("--compare", action="append", default=[],
                   help="also count this model's false events on the same stream (repeatable)")

    p = sub.add_parser("export", formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n  realtime-sed export runs/convdb/best.pt\n  realtime-sed export runs/convdb/last.pt --out convdb-last.onnx", help="export a training checkpoint to ONNX (needs the train extra)",
                       description="Export best.pt or last.pt of a run folder to ONNX with its model card.")
    p.add_argument("checkpoint", help="a .pt file inside a run folder made by `train`")
    p.add_argument("--out", default=None, help="the .onnx path (default: beside the checkpoint)")
    _add_experiments(sub)
    return parser


ALL_MODELS = ",".join(("convdb", "conv2d", "convdf", "convdt"))


def _add_experiments(sub) -> None:
    """`realtime-sed experiments ...`: the runs behind docs/results.md (train/experiments.py); the
    options' dests and defaults are the fields of train/settings.py's experiment settings."""
    p = sub.add_parser("experiments", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="the trainings, rules and pages behind docs/results.md (needs the train extra)",
                       description="The experiments behind docs/results.md, resumable; run from the project's "
                                   "folder (run folders go under --runs). Recipes: train/recipes.py; decision "
                                   "rules: train/rules.py.",
                       epilog="examples:\n  realtime-sed experiments faithful\n"
                              "  realtime-sed experiments foldwise convdb shift-mix-smooth --folds 1,3\n"
                              "  realtime-sed experiments ablation --workers 14 --deadline-minutes 8\n"
                              "  realtime-sed experiments results --write")
    ex = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT",
                          help="what to run (each has its own --help)")
    examples = {
        "faithful": ["", " --models convdb,convdt --workers 2"],
        "foldwise": [" convdb", " convdb shift-mix-smooth --folds 1,3 --threads 1"],
        "ablation": [" --workers 14 --threads 1 --deadline-minutes 8.2", " --folds 10 --epochs 1 --only base,cosine"],
        "placement": ["", " --model convdt"],
        "final": [" runs/placement/convdb-folds-shift-mix-smooth --threads 1", " runs/convdb-folds-kd --dry-run"],
        "ship": [" convdt --run runs/convdt-all-abl-mix-smooth --foldwise docs/foldwise/convdt-abl-mix-smooth.json "
                 "--ablation docs/ablation.json"],
        "reevaluate": [" runs/convdb-folds-paper runs/convdb-random"],
        "results": ["", " --write"],
        "demo": [" convdb", " convdb runs/convdb-all-abl-mix-smooth/convdb.onnx"],
        "table2": ["", " --workers 2 --threads 1"],
        "teacher-heads": ["", " --folds 1,10 --out /tmp/heads.json"],
    }

    def add(name: str, help: str):
        lines = "\n".join(f"  realtime-sed experiments {name}{e}" for e in examples[name])
        return ex.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                             formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n" + lines)

    def pool(q, workers: int, threads: int | None) -> None:
        q.add_argument("--data", default=DATA_DIR, help=f"UrbanSound8K folder (default {DATA_DIR})")
        q.add_argument("--runs", default="runs", help="folder of the run folders (default runs)")
        q.add_argument("--workers", type=int, default=workers, help=f"trainings at a time (default {workers})")
        q.add_argument("--threads", type=int, default=threads,
                       help="torch CPU threads per training (default " + (f"{threads})" if threads else "torch's own)"))

    def smoke(q) -> None:
        q.add_argument("--epochs", type=int, default=None, help="replace the recipes' epoch count (smoke runs)")

    q = add("faithful", "the paper's recipe and random split for each model: runs/MODEL-random")
    q.add_argument("--models", default=ALL_MODELS, help=f"comma-separated models (default {ALL_MODELS})")
    pool(q, 1, None)
    smoke(q)
    q = add("foldwise", "one model and recipe, each test fold in turn: runs/MODEL-folds-RECIPE")
    q.add_argument("model", choices=MODEL_NAMES, help="the architecture")
    q.add_argument("recipe", nargs="?", default="paper", help="a recipe of train/recipes.py (default paper)")
    q.add_argument("--folds", default=None, help="only these test folds, e.g. 1,3 (default: every fold "
                                                 "with at least 100 clips)")
    pool(q, 1, None)
    smoke(q)
    q = add("ablation", "each change fold-wise on ConvDB; the kept ones for every model")
    pool(q, 1, 1)
    q.add_argument("--deadline-minutes", type=float, default=None,
                   help="start no training after this, and stop the running ones (the next call resumes them)")
    q.add_argument("--folds", default="1,2,3,10", help="test folds (default 1,2,3,10)")
    q.add_argument("--only", default=None, help="grid cells to run, e.g. base,seed1,all,mix")
    q.add_argument("--grid-only", action="store_true", help="stop after the decision")
    q.add_argument("--models", default=ALL_MODELS, help="the models of the second step (the chosen recipe)")
    smoke(q)
    q = add("placement", "a recipe with and without time shift, fold-wise: runs/placement/")
    q.add_argument("--model", choices=MODEL_NAMES, default="convdb", help="the architecture (default convdb)")
    q.add_argument("--folds", default="1,2,3,10", help="test folds (default 1,2,3,10)")
    pool(q, 2, 1)
    smoke(q)
    q = add("final", "a fold-wise recipe on every clip: runs/MODEL-all-RECIPE")
    q.add_argument("cv_dir", help="a fold-wise run folder with cv.json")
    q.add_argument("--runs", default="runs", help="folder of the run folders (default runs)")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    q.add_argument("--dry-run", action="store_true", help="print the equivalent train command, run nothing")
    q.add_argument("--ship", action="store_true", help="then put it into models/ (as `experiments ship`)")
    q = add("ship", "a trained model into models/ with its card")
    q.add_argument("model", choices=MODEL_NAMES, help="the architecture")
    q.add_argument("--run", required=True, help="run folder with MODEL.onnx")
    q.add_argument("--foldwise", default=None, help="cv.json summary of the same recipe")
    q.add_argument("--ablation", default=None, help="the decision that chose the recipe (docs/ablation.json)")
    q.add_argument("--added", default=None, help="changes added after the ablation by the placement rule, e.g. shift")
    q.add_argument("--without", default=None,
                   help="with --added: the fold-wise summary of the recipe without them (same folds and hardware)")
    q.add_argument("--distilled", default=None,
                   help="the fold-wise folder of a distilled recipe, with calibration.json, or its "
                        "calibration record (docs/calibration/MODEL-RECIPE.json)")
    q.add_argument("--current", default=None, help="with --distilled: the fold-wise summary of the recipe it replaces")
    q.add_argument("--out", default="models", help="where the model and its card go (default models)")
    q = add("reevaluate", "newer metrics for finished runs, without training")
    q.add_argument("folders", nargs="+", help="run folders, or fold-wise ones (foldK/ inside)")
    q = add("results", "the tables of README.md and docs/results.md")
    q.add_argument("--write", action="store_true", help="collect from runs/ and rewrite the pages (default: print)")
    q = add("demo", "models on the bundled demo, through the streaming path")
    q.add_argument("models", nargs="*", default=["convdb"], help="model names or .onnx files (default convdb)")
    q = add("table2", "every run behind the tables, in order, then ship and the pages")
    pool(q, 2, 1)
    q = add("teacher-heads", "which head on the teacher's embedding: each candidate fold-wise")
    q.add_argument("--data", default=DATA_DIR, help=f"UrbanSound8K folder (default {DATA_DIR})")
    q.add_argument("--folds", default="1,2,3,10", help="test folds (default 1,2,3,10)")
    q.add_argument("--out", default="docs/teacher-heads.json", help="where the figures go (default docs/teacher-heads.json)")


def settings_from_args(args: argparse.Namespace, defaults: Settings | None = None) -> Settings:
    """The parsed command line as Settings: each option fills the field of its name, in the
    section that owns it; fields without an option keep `defaults`."""
    base = defaults or Settings()
    owner = Settings.section_of()
    given: dict[str, dict] = {}
    for name, value in vars(args).items():
        if name in owner:
            given.setdefault(owner[name], {})[name] = tuple(value) if isinstance(value, list) else value
    return replace(base, **{section: replace(getattr(base, section), **values)
                            for section, values in given.items()})


def _run_listen(settings: Settings) -> int:
    """The dashboard when both standard output and error are a terminal, else headless."""
    from realtime_sed.wiring import check_listen_outputs

    check_listen_outputs(settings)
    if not settings.output.no_tui and sys.stdout.isatty() and sys.stderr.isatty():
        from realtime_sed.tui.app import run_dashboard

        return run_dashboard(settings)
    from realtime_sed.app import run_listen

    return run_listen(settings)


def _run_runtime(command: str, settings: Settings) -> int:
    if command == "listen":
        return _run_listen(settings)
    if command == "bench":
        from realtime_sed.bench import run_bench

        return run_bench(settings)
    if command == "models":
        from realtime_sed.app import run_models

        return run_models(settings)
    if command == "screenshot":
        from realtime_sed.tui.screenshot import run_screenshot

        return run_screenshot(settings)
    if command == "classify" and settings.classify.engine == "ray":
        from realtime_sed.cluster import run_classify_ray

        return run_classify_ray(settings)
    from realtime_sed import app

    return {"classify": app.run_classify, "devices": app.run_devices}[command](settings)


def settings_of(cls, args: argparse.Namespace, **values):
    """A training-side settings dataclass from the parsed options of its fields' names."""
    from dataclasses import fields

    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in {**given, **values}.items()})


def train_settings_from_args(args: argparse.Namespace):
    """`train`'s options as (TrainConfig, TrainRun): each option given fills the config field of
    its name (an option left out is None: the field's default); the rest say how to run it."""
    from dataclasses import fields

    from train.loop import TrainConfig
    from train.settings import TrainRun

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    return TrainConfig(**given), settings_of(TrainRun, args, given=frozenset(given))


def _dispatch(args: argparse.Namespace, defaults: Settings | None = None) -> int:
    if args.command == "quantize":
        try:
            from train.quantize import run_quantize
            from train.settings import QuantizeSettings
        except ImportError as exc:
            raise SedError(f"{TRAIN_HINT} ({exc})") from None
        return run_quantize(settings_of(QuantizeSettings, args))
    if args.command in ("train", "evaluate", "export", "calibrate"):
        try:
            from train import commands
            from train.settings import CalibrateSettings, EvaluateSettings, ExportSettings
        except ImportError as exc:
            raise SedError(f"{TRAIN_HINT} ({exc})") from None
        if args.command == "train":
            return commands.run_train(*train_settings_from_args(args))
        if args.command == "calibrate":
            return commands.run_calibrate(settings_of(CalibrateSettings, args))
        if args.command == "export":
            return commands.run_export(settings_of(ExportSettings, args))
        return commands.run_evaluate(settings_of(EvaluateSettings, args))
    if args.command == "experiments":
        try:
            from train import experiments
        except ImportError as exc:
            raise SedError(f"{TRAIN_HINT} ({exc})") from None
        cls = experiments.SETTINGS[args.experiment]
        return experiments.COMMANDS[args.experiment](settings_of(cls, args))
    settings = settings_from_args(args, defaults)
    settings.check()
    if args.command == "config":
        from realtime_sed.config import settings_toml

        if not settings.config.print_config:
            raise SedError("config: nothing to do; give --print")
        sys.stdout.write(settings_toml(settings))
        return 0
    return _run_runtime(args.command, settings)


def _config_defaults(argv: list[str]) -> Settings | None:
    """--config FILE, read before the command line is parsed: its settings become the parser's
    defaults, so whatever the command line gives still wins."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return None
    from realtime_sed.config import load_config

    settings = load_config(known.config)
    settings.config.config = known.config
    return settings


def settings_for(argv: list[str]) -> Settings:
    """The runtime settings a command line (with its --config file) gives, checked."""
    defaults = _config_defaults(argv)
    settings = settings_from_args(build_parser(defaults).parse_args(argv), defaults)
    settings.check()
    return settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        defaults = _config_defaults(argv)
    except SedError as exc:
        print(f"realtime-sed: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser(defaults).parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _dispatch(args, defaults)
    except OutputError as exc:
        print(f"realtime-sed: error: {exc}", file=sys.stderr)
        _drop_stdout()  # stdout on a full disk: its buffer must not fail again at exit
        return 2
    except SedError as exc:
        print(f"realtime-sed: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"realtime-sed: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `realtime-sed classify ... | head`: the reader has gone, quietly stop
        _drop_stdout()
        return 141
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            raise
        # A plain print to a full standard output (bench's figures, headless listen's summary).
        print(f"realtime-sed: error: cannot write standard output: {exc.strerror}", file=sys.stderr)
        _drop_stdout()
        return 2


def _drop_stdout() -> None:
    """Points stdout at /dev/null, so Python's exit flush of a broken stdout stays silent."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
