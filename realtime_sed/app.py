"""What each runtime subcommand does: wiring sources, the classifier, the stream and the sinks."""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import datetime
from pathlib import Path

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import CLASSES
from realtime_sed.errors import AudioError, SedError
from realtime_sed.events import DetectorConfig, Event
from realtime_sed.sinks import JsonlSink, make_sink
from realtime_sed.sources import FileSource, MicSource, input_devices, prefetched
from realtime_sed.stream import DetectionStream, WindowResult

DEMO_FILE = Path(__file__).resolve().parent.parent / "demo" / "urban-demo.ogg"
PROGRESS_MIN_SECONDS = 60.0  # files at least this long get a progress bar


def detector_config(args: argparse.Namespace, clf: OnnxClassifier) -> DetectorConfig:
    allow = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if allow:
        unknown = [c for c in allow if c not in CLASSES]
        if unknown:
            raise SedError(f"unknown class {unknown[0]!r} in --classes; known: {', '.join(CLASSES)}")
    return DetectorConfig.from_card(
        clf.thresholds, on=args.threshold, off=args.off_threshold, smooth=args.smooth,
        smooth_method=args.smooth_method, min_duration=args.min_duration, allow=allow,
        gate_db=args.gate_db)


def make_stream(args: argparse.Namespace, clf: OnnxClassifier, sinks=(), filename: str = "",
                wall_clock=None, pipeline: bool = False) -> DetectionStream:
    try:
        return DetectionStream(clf, args.hop, detector_config(args, clf), sinks, filename, wall_clock,
                               pipeline)
    except ValueError as exc:
        raise SedError(str(exc)) from None


def format_event(ev: Event) -> str:
    when = (datetime.fromtimestamp(ev.wall_onset).strftime("%H:%M:%S ") if ev.wall_onset else "")
    return (f"{when}{ev.onset:8.2f} - {ev.offset:8.2f} s  {ev.label:<17} peak {ev.peak:.2f}  "
            f"({ev.duration:.2f} s)")


def format_window(r: WindowResult) -> str:
    top = sorted(range(len(CLASSES)), key=lambda c: -r.smoothed[c])[:3]
    return (f"  window {r.start_s:8.2f} s  {r.level_db:6.1f} dBFS  "
            + "  ".join(f"{CLASSES[c]} {r.smoothed[c]:.2f}" for c in top))


def open_source(args: argparse.Namespace, stop: threading.Event):
    if args.file:
        return FileSource(args.file, realtime=args.realtime, stop=stop)
    return MicSource(args.device, stop=stop)


def run_listen(args: argparse.Namespace) -> int:
    clf = OnnxClassifier(args.model, threads=args.threads)
    if args.file is None and args.realtime:
        raise SedError("--realtime only applies to --file")
    if not args.no_tui and sys.stdout.isatty() and sys.stderr.isatty():
        from realtime_sed.tui.app import run_dashboard

        return run_dashboard(args, clf)
    stop = threading.Event()
    source = open_source(args, stop)
    sink = JsonlSink(args.events, windows=args.windows) if args.events else None
    stream = make_stream(args, clf, [sink] if sink else [], source.description, source.wall_time_at)
    print(f"listening to {source.description} ({source.native_rate} Hz -> 22050 Hz), model {clf.name}, "
          f"hop {stream.hop_s:.4f} s", file=sys.stderr, flush=True)

    def on_window(r: WindowResult) -> None:
        if args.verbose:
            print(format_window(r), flush=True)
        for ev in r.finished:
            print(format_event(ev), flush=True)

    try:
        stats = stream.run(source.blocks(), on_window, stop, args.duration)
    except KeyboardInterrupt:
        stats = stream.stats
    finally:
        source.close()
        if sink:
            sink.close()
    print(f"{stats.windows} windows, {stats.events} events, {stats.audio_s:.1f} s of audio in "
          f"{stats.elapsed_s:.1f} s, inference {stats.median_infer_ms:.2f} ms (median), "
          f"dropped {source.dropped_samples} samples, {source.overflows} overflows",
          file=sys.stderr)
    return 0


def run_classify(args: argparse.Namespace) -> int:
    clf = OnnxClassifier(args.model, threads=args.threads)
    make_stream(args, clf)  # check the detector settings before touching any file
    sink = make_sink(args.format, args.output, windows=args.windows)
    failed = 0
    try:
        for path in args.files:
            try:
                classify_file(path, args, clf, sink)
            except AudioError as exc:
                failed += 1
                print(f"realtime-sed: error: {exc}", file=sys.stderr)
    finally:
        sink.close()
    if failed and len(args.files) > 1:  # one file: its error line says it all
        print(f"realtime-sed: {failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def classify_file(path: str, args: argparse.Namespace, clf: OnnxClassifier, sink) -> list[Event]:
    source = FileSource(path, realtime=False, block_size=args.block_size)
    stream = make_stream(args, clf, [sink], Path(path).name, pipeline=True)
    show = not args.quiet and source.duration_s >= PROGRESS_MIN_SECONDS and sys.stderr.isatty()
    blocks = prefetched(source.blocks())
    if not show:
        stream.run(blocks)
        return stream.events
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(Path(path).name, total=source.duration_s)
        stream.run(blocks, lambda r: progress.update(task, completed=r.end_s))
    return stream.events


def run_devices(args: argparse.Namespace) -> int:
    devices = input_devices()
    if not devices:
        print("no audio input devices found")
        return 1
    for d in devices:
        print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']} Hz, {d['hostapi']})")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from realtime_sed.bench import run

    return run(args)
