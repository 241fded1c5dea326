"""Settings -> running parts: the classifier, the source, the detector, the stream and its sinks.

The commands (`app.py`, `tui/app.py`, `bench.py`) build what they run through these functions, so
headless `listen`, the dashboard, `classify` and the benchmark wire a stream the same way. Imports
run one way: cli -> commands -> wiring -> stream -> parts; nothing here knows about argparse,
Textual or the terminal.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.clips import ClipRecorder
from realtime_sed.constants import CLASSES, SAMPLE_RATE
from realtime_sed.errors import OutputError, SedError
from realtime_sed.events import DetectorConfig, Event
from realtime_sed.settings import DetectorSettings, OutputSettings, Settings, SourceSettings, StreamSettings
from realtime_sed.sinks import JsonlSink, Sink, check_output
from realtime_sed.sources import FileSource, MicSource, prefetched
from realtime_sed.stream import DetectionStream, WindowResult

BATCH_FILE_SECONDS = 30.0  # classify: files up to this long share ONNX Runtime calls with other files
BATCH_WINDOWS = 8  # windows per shared call: per window, 1 to 8 cost the same and 32 cost 2x (cache)


def load_classifier(stream: StreamSettings) -> OnnxClassifier:
    return OnnxClassifier(stream.model, threads=stream.threads)


def detector_config(detector: DetectorSettings, clf: OnnxClassifier) -> DetectorConfig:
    """The model card's thresholds, overridden by whatever the settings give, and then, class by
    class, by a config file's [classes.NAME] sections (the more specific value wins)."""
    allow = list(detector.classes) if detector.classes else None
    for name in [*(allow or ()), *detector.per_class]:
        if name not in CLASSES:
            raise SedError(f"unknown class {name!r} in --classes; known: {', '.join(CLASSES)}")
    cfg = DetectorConfig.from_card(
        clf.thresholds, on=detector.threshold, off=detector.off_threshold, smooth=detector.smooth,
        smooth_method=detector.smooth_method, min_duration=detector.min_duration, allow=allow,
        gate_db=detector.gate_db)
    if not detector.per_class:
        return cfg
    own = detector.per_class
    on = _class_values(cfg.on)
    # An off-threshold left out follows the class's own on-threshold (on - 0.15), as for --threshold.
    given_off = {} if cfg.off is None else cfg.off if isinstance(cfg.off, dict) else dict.fromkeys(CLASSES, cfg.off)
    off = {c: float(v) for c, v in given_off.items() if own.get(c) is None or own[c].threshold is None}
    for c, s in own.items():
        if s.threshold is not None:
            on[c] = s.threshold
        if s.off_threshold is not None:
            off[c] = s.off_threshold
    cfg.on = on
    cfg.off = {c: off.get(c, max(on[c] - 0.15, 0.0)) for c in CLASSES}
    cfg.min_durations = {c: s.min_duration for c, s in own.items() if s.min_duration is not None}
    cfg.allow = [c for c in (allow or CLASSES) if own.get(c) is None or own[c].enabled]
    if not cfg.allow:
        raise SedError("every class is disabled ([classes.NAME] enabled = false): no event could be raised")
    return cfg


def _class_values(value: float | dict[str, float]) -> dict[str, float]:
    """A threshold (one for all, or a card's per-class dict) as a value for every class."""
    if isinstance(value, dict):
        return {c: float(value.get(c, 0.5)) for c in CLASSES}  # as the detector fills gaps
    return {c: float(value) for c in CLASSES}


def make_stream(clf: OnnxClassifier, settings: Settings, sinks: list[Sink] | tuple = (), filename: str = "",
                wall_clock: Callable[[int], float | None] | None = None,
                pipeline: bool = False, clips: ClipRecorder | None = None) -> DetectionStream:
    """The one DetectionStream of a run; bad detector settings become a SedError."""
    try:
        return DetectionStream(clf, settings.stream.hop, detector_config(settings.detector, clf), sinks,
                               filename, wall_clock, pipeline, clips)
    except ValueError as exc:
        raise SedError(str(exc)) from None


def open_source(source: SourceSettings, stop: threading.Event) -> FileSource | MicSource:
    if source.file:
        return FileSource(source.file, realtime=source.realtime, stop=stop)
    if source.realtime:
        raise SedError("--realtime only applies to --file")
    return MicSource(source.device, stop=stop)


def open_event_log(output: OutputSettings) -> JsonlSink | None:
    """`listen`'s JSONL event log, appended to, if one was asked for."""
    return JsonlSink(output.events, windows=output.windows) if output.events else None


def open_actions(output: OutputSettings, wait: bool = False):
    """The actions asked for (--exec, --webhook, --mqtt) behind one sink, or None; `wait`: a full
    action queue holds the stream back instead of dropping (classify)."""
    if not (output.exec or output.webhook or output.mqtt):
        return None
    from realtime_sed.actions import ActionSink

    actions = []
    if output.exec:
        from realtime_sed.actions.command import ExecAction

        actions.append(ExecAction(output.exec, output.exec_timeout))
    if output.webhook:
        from realtime_sed.actions.webhook import WebhookAction

        actions.append(WebhookAction(output.webhook))
    if output.mqtt:
        from realtime_sed.actions.mqtt import MqttAction

        actions.append(MqttAction(output.mqtt, output.mqtt_discovery))
    return ActionSink(actions, wait)


def check_clips_folder(output: OutputSettings) -> None:
    """--clips: the folder is made if missing, and must be writable, before any work."""
    if not output.clips:
        return
    folder = Path(output.clips)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--clips {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"--clips {folder}: not writable")


def open_clips(output: OutputSettings, source: str, lag_s: float = 0.0) -> ClipRecorder | None:
    """The clip recorder of one stream (one per file in classify), if --clips was given; `lag_s`:
    how far the audio read runs ahead of the detector beyond one window."""
    if not output.clips:
        return None
    check_clips_folder(output)
    return ClipRecorder(output.clips, output.pre_roll, output.post_roll, output.clip_format,
                        output.clips_max_mb, source, lag_s)


def check_listen_outputs(settings: Settings) -> None:
    """Before the model loads: an event log that cannot be written (or is the replayed file)."""
    check_output(settings.output.events, [settings.source.file] if settings.source.file else [], "--events")
    check_clips_folder(settings.output)


def open_file(path: str | Path, settings: Settings) -> FileSource:
    """A file for `classify`: read in big blocks, as fast as possible."""
    return FileSource(path, realtime=False, block_size=settings.classify.block_size)


def row_names(paths: list[str] | tuple[str, ...]) -> list[str]:
    """What each file is called in classify's output: its name, as DCASE references name files,
    unless two files share a name (a/clip.ogg, b/clip.ogg); then every path as given."""
    names = [Path(p).name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def classify_file(source: FileSource, clf: OnnxClassifier, sink: Sink, settings: Settings,
                  on_window: Callable[[WindowResult], None] | None = None,
                  name: str | None = None, also: list[Sink] | tuple = ()) -> list[Event]:
    """One file through the streaming path, decoding ahead in a thread and the CNN pipelined
    against the log-mels; returns its events (which `sink` has received too), each row named
    `name` (default: the file's name); `also`: more sinks (the actions), which outlive the file."""
    name = name or source.description
    # Pipelined, results come one block after the block that completes their window.
    clips = open_clips(settings.output, name, lag_s=2 * settings.classify.block_size / SAMPLE_RATE)
    stream = make_stream(clf, settings, [sink, *also], name, pipeline=True, clips=clips)
    blocks = prefetched(source.blocks())
    try:
        stream.run(blocks, on_window)
    finally:
        blocks.close()  # the reader thread has stopped before its file closes
        source.close()
    return stream.events


class FileBatch:
    """`classify`'s short files (an UrbanSound8K clip is one window) through shared ONNX Runtime
    calls. Each file is decoded and its log-mels computed as it is added; once BATCH_WINDOWS
    windows wait (or on `flush`), they go through the CNN together, BATCH_WINDOWS per call, and
    each file's rows follow, file by file in the order they were added. ONNX Runtime gives each
    window the same numbers in any batch, so the rows are those of `classify_file`, file by file."""

    def __init__(self, clf: OnnxClassifier, sink: Sink, settings: Settings, also: list[Sink] | tuple = ()):
        self.clf, self.sink, self.settings, self.also = clf, sink, settings, list(also)  # also: the actions
        self._streams: list[tuple[DetectionStream, bool]] = []  # (stream, cut short)
        self._waiting = 0  # prepared windows not yet through the CNN

    def add(self, source: FileSource, name: str | None = None, sink: Sink | None = None) -> None:
        """Reads the whole file now. A file that fails or is stopped (Ctrl-C, SIGTERM) part-way
        gets the windows read until then and its open events, cut short, as `classify_file` gives
        them; everything added before it is written first. `sink`: this file's rows go there
        instead of the batch's sink (a Ray worker keeps each file's rows apart)."""
        stream = make_stream(self.clf, self.settings, [sink or self.sink, *self.also], name or source.description)
        try:
            stream.prepare(source.blocks())
        except BaseException:
            self._streams.append((stream, True))
            self.flush()
            raise
        finally:
            source.close()
        self._streams.append((stream, False))
        self._waiting += stream.prepared_windows
        if self._waiting >= BATCH_WINDOWS:
            self.flush()

    def flush(self) -> None:
        """Every waiting window through the CNN, then each file's rows, in order."""
        streams, self._streams, self._waiting = self._streams, [], 0
        inputs = [x for stream, _ in streams for x in stream.prepared_inputs]
        probs, cnn_ms = np.zeros((0, len(CLASSES)), np.float32), 0.0
        if inputs:
            x = np.concatenate(inputs)
            t0 = time.perf_counter()
            model = streams[0][0].model
            probs = np.concatenate([model(x[i : i + BATCH_WINDOWS]) for i in range(0, len(x), BATCH_WINDOWS)])
            cnn_ms = (time.perf_counter() - t0) * 1e3 / len(x)
        start = 0
        for stream, cut_short in streams:
            n = stream.prepared_windows
            stream.complete(probs[start : start + n], cnn_ms, cut_short)
            start += n
