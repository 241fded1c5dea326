"""The headless runtime commands: `listen --no-tui`, `classify` and `devices`.

Each takes the `Settings` that `cli.py` built and wires its parts through `wiring.py`; the
dashboard (`tui/app.py`) and the benchmark (`bench.py`) are the other commands beside this one.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime

from realtime_sed.constants import CLASSES, SAMPLE_RATE
from realtime_sed.errors import AudioError, SedError
from realtime_sed.events import Event
from realtime_sed.settings import Settings
from realtime_sed.inputs import classify_inputs
from realtime_sed.sinks import EventPrinter, check_output, make_sink
from realtime_sed.sources import input_devices
from realtime_sed.stream import WindowResult
from realtime_sed.wiring import (BATCH_FILE_SECONDS, FileBatch, check_clips_folder, classify_file, load_classifier,
                                 make_stream, open_actions, open_clips, open_event_log, open_file, open_source,
                                 row_names)

PROGRESS_MIN_SECONDS = 60.0  # files at least this long get a progress bar
CLASSIFY_ACTIONS_CLOSE_S = 30.0  # classify's end waits this long for the actions to send what they hold


def format_event(ev: Event) -> str:
    when = (datetime.fromtimestamp(ev.wall_onset).strftime("%H:%M:%S ") if ev.wall_onset else "")
    return (f"{when}{ev.onset:8.2f} - {ev.offset:8.2f} s  {ev.label:<17} peak {ev.peak:.2f}  "
            f"({ev.duration:.2f} s)" + ("  cut short" if ev.cut_short else ""))


def format_window(r: WindowResult) -> str:
    top = sorted(range(len(CLASSES)), key=lambda c: -r.smoothed[c])[:3]
    return (f"  window {r.start_s:8.2f} s  {r.level_db:6.1f} dBFS  "
            + "  ".join(f"{CLASSES[c]} {r.smoothed[c]:.2f}" for c in top))


def run_listen(settings: Settings) -> int:
    """Headless `listen`: events (and with `verbose` each window) on standard output, the run's
    summary on standard error. Stopped by Ctrl-C or SIGTERM, it still writes and prints the open
    events (cut short) and the summary, then lets the interrupt through (exit 130 or 143)."""
    clf = load_classifier(settings.stream)
    stop = threading.Event()
    source = open_source(settings.source, stop)
    sinks = []
    try:
        log = open_event_log(settings.output)
        # The log first: an event on the screen is already on disk. The printer shows every event,
        # the ones closed when the stream stops too.
        sinks += [log] if log else []
        sinks.append(EventPrinter(format_event))
        actions = open_actions(settings.output)
        sinks += [actions] if actions else []
        clips = open_clips(settings.output, source.description)
        stream = make_stream(clf, settings, sinks, source.description, source.wall_time_at, clips=clips)
    except BaseException:
        source.close()
        for sink in sinks:
            sink.close()
        raise
    print(f"listening to {source.description} ({source.native_rate} Hz -> {SAMPLE_RATE} Hz), model "
          f"{clf.name}, hop {stream.hop_s:.4f} s", file=sys.stderr, flush=True)

    def on_window(r: WindowResult) -> None:
        if settings.output.verbose:
            print(format_window(r), flush=True)

    interrupted = None
    try:
        stream.run(source.blocks(), on_window, stop, settings.source.duration)
    except KeyboardInterrupt as exc:  # the stream has written its open events, cut short
        interrupted = exc
    finally:
        source.close()
        for sink in sinks:
            sink.close()
    print(stream.stats.summary(source.dropped_samples, source.overflows), file=sys.stderr, flush=True)
    if actions is not None:
        print_action_health(actions)
    if clips is not None:
        print(clips_summary(clips), file=sys.stderr, flush=True)
    if interrupted is not None:
        raise interrupted
    return 0


def print_action_health(actions) -> None:
    for h in actions.health():
        print(f"{h.name}: sent {h.sent}, failed {h.failed}, dropped {h.dropped}"
              + (f" ({h.last_error})" if h.last_error else ""), file=sys.stderr, flush=True)


def clips_summary(clips) -> str:
    return (f"clips: written {clips.written}, failed {clips.failed} in {clips.folder}"
            + (f" ({clips.last_error})" if clips.last_error else ""))


def run_classify(settings: Settings) -> int:
    """Every file in turn; a bad file is reported and skipped, and the exit code says so."""
    opts = settings.classify
    if opts.output_dir or opts.skip_done or opts.workers or opts.ray_address:
        raise SedError("--output-dir, --skip-done, --workers and --ray-address are for --engine ray")
    files = classify_inputs(opts)
    check_output(settings.classify.output, files, "-o")  # before anything is opened for writing
    check_clips_folder(settings.output)
    clf = load_classifier(settings.stream)
    make_stream(clf, settings)  # check the detector settings before touching any file
    sink = make_sink(settings.classify.format, settings.classify.output, windows=settings.output.windows)
    actions = None
    failed = done = 0
    batch = None
    try:
        actions = open_actions(settings.output, wait=True)
        batch = FileBatch(clf, sink, settings, also=[actions] if actions else [])
        for path, name in zip(files, row_names(files)):
            try:
                _classify_one(path, name, clf, sink, settings, batch, [actions] if actions else [])
                done += 1
            except AudioError as exc:
                failed += 1
                print(f"realtime-sed: error: {exc}", file=sys.stderr)
        batch.flush()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what was found so far is written
        if batch is not None:
            batch.flush()
        print(f"realtime-sed: stopped in {files[min(done + failed, len(files) - 1)]}: {done} of {len(files)} "
              "files classified; its open events were written, cut short", file=sys.stderr, flush=True)
        raise
    finally:
        sink.close()
        if actions is not None:
            actions.close(timeout=CLASSIFY_ACTIONS_CLOSE_S)
            print_action_health(actions)
    if failed and len(files) > 1:  # one file: its error line says it all
        print(f"realtime-sed: {failed} of {len(files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _classify_one(path: str, name: str, clf, sink, settings: Settings, batch: FileBatch, also=()) -> None:
    source = open_file(path, settings)
    # A short file's windows share CNN calls with other short files; with --clips a file is
    # detected as it is read, since a clip needs the audio around each event while it is found.
    if source.duration_s <= BATCH_FILE_SECONDS and not settings.output.clips:
        batch.add(source, name)
        return
    batch.flush()  # rows stay in the order of the files
    show = not settings.classify.quiet and source.duration_s >= PROGRESS_MIN_SECONDS and sys.stderr.isatty()
    if not show:
        classify_file(source, clf, sink, settings, name=name, also=also)
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(name, total=source.duration_s)
        classify_file(source, clf, sink, settings, lambda r: progress.update(task, completed=r.end_s), name, also)


def run_devices(settings: Settings) -> int:
    devices = input_devices()
    if settings.devices.as_json:
        print(json.dumps(devices, indent=1))
        return 0 if devices else 1
    if not devices:
        print("no audio input devices found")
        return 1
    for d in devices:
        print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']} Hz, {d['hostapi']})")
    return 0


def model_facts(card: dict) -> str:
    """One model card in a few lines: what it is, how it was trained, how well it does."""
    arch, training = card.get("architecture", {}), card.get("training", {})
    config = training.get("config", {})
    lines = [f"{card.get('name', '?'):<7} {arch.get('name', '?')}, {arch.get('trainable_parameters', 0):,} "
             f"trainable parameters, dilations {arch.get('dilations_time_freq')}"]
    how = "every clip" if config.get("train_on_all") else f"{training.get('train_clips', '?')} clips"
    lines.append(f"        trained on {how} of {training.get('clips', '?')} ({training.get('epochs_run', '?')} "
                 f"epochs, {training.get('device', '?')}), recipe: {training.get('recipe') or 'the paper'}")
    fold = card.get("foldwise")
    if isinstance(fold, dict) and "acc_mean" in fold:
        lines.append(f"        fold-wise ACC {fold['acc_mean']:.3f} ± {fold['acc_std']:.3f}, macro F1 "
                     f"{fold.get('f1_macro_mean', float('nan')):.3f} (test folds {', '.join(map(str, fold.get('folds', {})))})")
    return "\n".join(lines)


def run_models(settings: Settings) -> int:
    """`realtime-sed models`: the shipped models, read from their cards (no ONNX Runtime session)."""
    from realtime_sed.classifier import MODELS_DIR
    from realtime_sed.constants import MODEL_NAMES

    found = 0
    for name in MODEL_NAMES:
        card_path = MODELS_DIR / f"{name}.json"
        if not (MODELS_DIR / f"{name}.onnx").exists() or not card_path.exists():
            print(f"{name:<7} not installed (no {name}.onnx with its card in {MODELS_DIR})")
            continue
        found += 1
        print(model_facts(json.loads(card_path.read_text())))
    print(f"models folder: {MODELS_DIR}; use one with --model NAME, or --model PATH.onnx for your own")
    return 0 if found else 1
