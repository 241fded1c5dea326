"""DetectionStream: blocks -> windows -> log-mel -> CNN -> events -> sinks.

`classify`, headless `listen` and the dashboard all run this one class, so a file and a microphone
go through exactly the same steps after their source. It has no threads of its own: the caller
decides where it runs (the main thread for `classify`, a worker thread for the dashboard).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from realtime_sed.classifier import OnnxClassifier, StreamingCNN
from realtime_sed.clips import ClipRecorder
from realtime_sed.constants import SAMPLE_RATE
from realtime_sed.events import SILENCE_DBFS, DetectorConfig, Event, EventDetector, level_dbfs
from realtime_sed.features import LogMelFrames
from realtime_sed.sinks import Sink
from realtime_sed.windows import DEFAULT_HOP_SECONDS, SlidingWindower, Window, hop_to_samples

CLIP_LEVEL = 0.999  # a sample at or above this magnitude counts as clipping


@dataclass
class WindowResult:
    index: int
    start_s: float
    end_s: float
    wall_start: float | None
    probs: np.ndarray  # straight from the model
    smoothed: np.ndarray  # what the detector thresholds
    level_db: float
    infer_ms: float  # log-mel + CNN
    finished: list[Event]
    active: list[Event]


@dataclass
class StreamStats:
    windows: int = 0
    audio_s: float = 0.0  # seconds of audio consumed
    elapsed_s: float = 0.0  # wall seconds spent
    infer_ms: deque = field(default_factory=lambda: deque(maxlen=200))
    level_db: float = SILENCE_DBFS  # RMS of the latest block
    peak_db: float = SILENCE_DBFS
    clipped_blocks: int = 0
    events: int = 0

    @property
    def median_infer_ms(self) -> float:
        return float(np.median(self.infer_ms)) if self.infer_ms else 0.0

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self, dropped_samples: int = 0, overflows: int = 0) -> str:
        """The line `listen` ends with, headless or after the dashboard; the source's counts of
        dropped samples and input overflows complete it."""
        return (f"{self.windows} windows, {self.events} events, {self.audio_s:.1f} s of audio in "
                f"{self.elapsed_s:.1f} s, inference {self.median_infer_ms:.2f} ms (median), "
                f"dropped {dropped_samples} samples, {overflows} overflows")


class DetectionStream:
    def __init__(self, classifier: OnnxClassifier, hop_s: float = DEFAULT_HOP_SECONDS,
                 detector: DetectorConfig | None = None, sinks: Iterable[Sink] = (), filename: str = "",
                 wall_clock: Callable[[int], float | None] | None = None, pipeline: bool = False,
                 clips: ClipRecorder | None = None):
        self.classifier = classifier
        self.hop_samples = hop_to_samples(hop_s)
        self.hop_s = self.hop_samples / SAMPLE_RATE
        self.windower = SlidingWindower(self.hop_samples)
        self.features = LogMelFrames()
        self.cnn = StreamingCNN(classifier) if classifier.has_logmel_input else None
        self.detector = EventDetector(detector or DetectorConfig(), self.hop_s)
        self.sinks = list(sinks)
        self.filename = filename
        self.wall_clock = wall_clock or (lambda sample: None)
        self.stats = StreamStats()
        self.events: list[Event] = []
        # With --clips, a finished event waits in the recorder until its post-roll has been heard
        # and its clip written; only then does it reach the sinks (with `clip` set).
        self.clips = clips
        # Offline (classify) only: live sources want each window's result as soon as possible.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cnn") if pipeline else None
        self._pending: tuple[list[Window], Future] | None = None
        self._prepared: list[tuple[list[Window], np.ndarray, float]] = []  # see `prepare`

    def _features(self, windows: list[Window]) -> np.ndarray:
        """What the model takes for each window, in order: log-mels (frames reused from the
        previous window, none computed for end-of-stream padding), or raw audio for a graph
        without the cut point."""
        if self.classifier.has_logmel_input:
            return np.stack([self.features(w.samples, w.start_sample, w.valid) for w in windows])
        return np.stack([w.samples for w in windows])

    @property
    def model(self) -> Callable[[np.ndarray], np.ndarray]:
        """The CNN call that takes `_features`' output."""
        clf = self.classifier
        return clf.predict_logmel if clf.has_logmel_input else clf.predict_audio

    def _prepare(self, windows: list[Window]) -> Callable[[], tuple[np.ndarray, float]]:
        """Log-mel per window, now and in order (frames are reused from the previous window), and
        the CNN for all of them as a job: the conv stages' new rows per window (`StreamingCNN`),
        then the rest of the CNN, a few windows per ONNX Runtime call."""
        t0 = time.perf_counter()
        x = self._features(windows)
        starts = [w.start_sample for w in windows]
        feature_s = time.perf_counter() - t0

        def job() -> tuple[np.ndarray, float]:
            # In stream order (pipelined: one worker thread), so the CNN reuses conv rows.
            t1 = time.perf_counter()
            probs = self.cnn(x, starts) if self.cnn is not None else self.model(x)
            return probs, (feature_s + time.perf_counter() - t1) * 1e3 / len(windows)

        return job

    def prepare(self, blocks: Iterable[np.ndarray]) -> None:
        """Deferred, for a short file whose windows share CNN calls with other files (`classify`):
        every window of the source, the padded last one too, with its log-mels, and no CNN yet.
        `prepared_inputs` are what the CNN must take, and `complete` takes its rows. A source that
        fails keeps the windows read before the failure."""
        if self.clips is not None:
            raise ValueError("a stream that saves clips detects as it reads: use run, not prepare")
        t0 = time.perf_counter()
        blocks = iter(blocks)
        try:
            for block in blocks:
                self._account(block)
                self._defer(self.windower.push(block))
            self._defer(self.windower.flush())
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
            self.stats.elapsed_s += time.perf_counter() - t0

    def _defer(self, windows: list[Window]) -> None:
        if windows:
            t0 = time.perf_counter()
            x = self._features(windows)
            self._prepared.append((windows, x, (time.perf_counter() - t0) * 1e3 / len(windows)))

    @property
    def prepared_inputs(self) -> list[np.ndarray]:
        return [x for _, x, _ in self._prepared]

    @property
    def prepared_windows(self) -> int:
        return sum(len(w) for w, _, _ in self._prepared)

    def complete(self, probs: np.ndarray, cnn_ms: float = 0.0, cut_short: bool = False) -> None:
        """The CNN's rows for every prepared window, in order (`cnn_ms`: its time per window): the
        detector and sinks see them as `run` would have shown them, then every open event closes,
        marked cut short if the source failed or was stopped."""
        t0 = time.perf_counter()
        i = 0
        for windows, _, feature_ms in self._prepared:
            self._detect(windows, probs[i : i + len(windows)], feature_ms + cnn_ms)
            i += len(windows)
        self._prepared = []
        self._emit(self.detector.finish(self.windower.samples_seen / SAMPLE_RATE, cut_short=cut_short))
        self.stats.elapsed_s += time.perf_counter() - t0

    def _infer(self, windows: list[Window], drain: bool = False) -> list[WindowResult]:
        """Windows -> results. Pipelined, the CNN of one block runs in a worker thread while the
        log-mels of the next are computed, and results come one block late (`drain` collects
        them at the end); the numbers are the same either way."""
        job = self._prepare(windows) if windows else None
        if self._executor is None:
            return self._detect(windows, *job()) if job else []
        results = []
        if self._pending is not None:
            pending, self._pending = self._pending, None
            results = self._detect(pending[0], *pending[1].result())
        if job is not None:
            self._pending = (windows, self._executor.submit(job))
        if drain and self._pending is not None:
            pending, self._pending = self._pending, None
            results += self._detect(pending[0], *pending[1].result())
        return results

    def _detect(self, windows: list[Window], probs: np.ndarray, infer_ms: float) -> list[WindowResult]:
        results = []
        for w, p in zip(windows, probs):
            level = level_dbfs(w.samples[: w.valid])
            wall = self.wall_clock(w.start_sample)
            smoothed, finished = self.detector.update(p, w.start_s, level, wall)
            self.stats.windows += 1
            self.stats.infer_ms.append(infer_ms)
            for sink in self.sinks:
                sink.window(self.filename, w.start_s, p, wall)
            active = self.detector.active_events
            self._finished(finished, active)
            for sink in self.sinks:
                sink.active(self.filename, active)
            results.append(WindowResult(w.index, w.start_s, w.end_s, wall, p, smoothed, level,
                                        infer_ms, finished, active))
        return results

    def _finished(self, events: list[Event], active: list[Event] | None = None) -> None:
        """Events the detector closed: to the sinks now, or to the clip recorder first."""
        if self.clips is None:
            self._emit(events)
            return
        if active is not None:
            self.clips.track(active)
        self.clips.hold(events)

    def _release(self, final: bool = False) -> None:
        """With --clips: the events whose clips are written (every one held, at the end)."""
        if self.clips is not None:
            self._emit(self.clips.ready(final))

    def _emit(self, events: list[Event]) -> None:
        """Every event reaches every sink; a failing sink (a full disk) does not keep an event
        from the others, and its error is raised once they all had it."""
        error = None
        for ev in events:
            self.events.append(ev)
            self.stats.events += 1
            for sink in self.sinks:
                try:
                    sink.event(self.filename, ev)
                except Exception as exc:
                    error = error or exc
        if error is not None:
            raise error

    def push(self, block: np.ndarray) -> list[WindowResult]:
        """Feeds a block of float32 mono 22050 Hz audio; returns the windows it completed."""
        self._account(block)
        if self.clips is not None:
            self.clips.append(block)
        results = self._infer(self.windower.push(block))
        self._release()
        return results

    def _account(self, block: np.ndarray) -> None:
        self.stats.audio_s += len(block) / SAMPLE_RATE
        if len(block):
            peak = float(np.max(np.abs(block)))
            self.stats.peak_db = 20 * np.log10(peak) if peak > 0 else SILENCE_DBFS
            self.stats.level_db = level_dbfs(block)
            if peak >= CLIP_LEVEL:
                self.stats.clipped_blocks += 1

    def finish(self) -> list[WindowResult]:
        """End of stream: the padded last window, then every open event is closed."""
        results = self._infer(self.windower.flush(), drain=True)
        closing = self.detector.finish(self.windower.samples_seen / SAMPLE_RATE)
        self._finished(closing, [])
        self._release(final=True)
        if results:
            results[-1].finished.extend(closing)
            results[-1].active = []
        return results

    def run(self, blocks: Iterable[np.ndarray], on_window: Callable[[WindowResult], None] | None = None,
            stop: threading.Event | None = None, max_seconds: float | None = None) -> StreamStats:
        """Consumes blocks until they end, `stop` is set or `max_seconds` of audio have passed."""
        t0 = time.perf_counter()
        ended = True
        blocks = iter(blocks)
        try:
            try:
                for block in blocks:
                    for result in self.push(block):
                        if on_window:
                            on_window(result)
                    self.stats.elapsed_s = time.perf_counter() - t0
                    if (stop is not None and stop.is_set()) or (
                            max_seconds is not None and self.stats.audio_s >= max_seconds):
                        ended = False
                        break
            except BaseException:
                # A failing source (a microphone unplugged): close and write the events already
                # detected, without running anything else that might fail too.
                self._finished(self.detector.finish(self.windower.samples_seen / SAMPLE_RATE, cut_short=True), [])
                self._release(final=True)
                raise
            self._close_run(ended, on_window)
        finally:
            # A source stopped early is closed here, in the thread that read it: left to the
            # garbage collector, its generator's cleanup (closing the file) could run in any
            # thread, beside the owner's own close, and two threads closing one libsndfile crash.
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
            if self._executor is not None:  # one stream per file in classify: no idle threads left
                self._executor.shutdown(cancel_futures=True)
            self.stats.elapsed_s = time.perf_counter() - t0
        return self.stats

    def _close_run(self, ended: bool, on_window: Callable[[WindowResult], None] | None) -> None:
        """The end of `run`: every window still in flight reaches `on_window`, every event a sink."""
        if ended:  # the source ran out: the padded last window, then every open event closes
            for result in self.finish():
                if on_window:
                    on_window(result)
        else:  # stopped: no padded window for audio that was cut short, but events are written
            for result in self._infer([], drain=True):
                if on_window:
                    on_window(result)
            self._finished(self.detector.finish(self.windower.samples_seen / SAMPLE_RATE, cut_short=True), [])
            self._release(final=True)
