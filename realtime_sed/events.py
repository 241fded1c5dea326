"""EventDetector: window probabilities -> sound events with onsets and offsets.

Each window speaks for the hop-long stretch at its centre, so consecutive active windows merge into
one event from the first one's stretch to the last one's. The first window of a stream also speaks
for the audio before its centre, and the last for the audio after it, so a 4 s clip that is one
sound gives one event from 0 to 4 s. Probabilities are smoothed over the last k windows, then each
class goes on above its on-threshold (if the window is loud enough and the class is allowed) and off
below its lower off-threshold.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from realtime_sed.constants import CLASSES, SAMPLE_RATE, WINDOW_SAMPLES

SILENCE_DBFS = -120.0


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale; digital silence gives SILENCE_DBFS."""
    x = np.asarray(samples, np.float32)
    rms = float(np.sqrt(np.dot(x, x) / len(x))) if len(x) else 0.0
    return max(SILENCE_DBFS, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_DBFS


@dataclass
class Event:
    label: str
    onset: float  # stream seconds
    offset: float
    peak: float  # highest smoothed probability while it lasted
    wall_onset: float | None = None  # Unix time, for microphone streams
    active: bool = False  # still going on
    cut_short: bool = False  # still going on when the stream was stopped (Ctrl-C, SIGTERM, --duration)
    clip: str | None = None  # the saved audio file, with --clips

    @property
    def duration(self) -> float:
        return self.offset - self.onset

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration"] = round(self.duration, 4)
        if d["clip"] is None:
            del d["clip"]
        return d


@dataclass
class DetectorConfig:
    on: float | dict[str, float] = 0.5
    off: float | dict[str, float] | None = None  # default: on - 0.15
    smooth: int = 3
    smooth_method: str = "median"
    min_duration: float = 0.0
    allow: list[str] | None = None
    gate_db: float = -60.0
    min_durations: dict[str, float] | None = None  # per class, beside `min_duration` for the rest

    @classmethod
    def from_card(cls, thresholds: dict, **overrides) -> "DetectorConfig":
        """Thresholds from a model card ({"on": {...}, "off": {...}}), then explicit overrides."""
        cfg = cls(on=thresholds.get("on", 0.5), off=thresholds.get("off"))
        if overrides.get("on") is not None and overrides.get("off") is None:
            cfg.off = None  # a new on-threshold brings its own default off-threshold
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg


def _per_class(value: float | dict[str, float], default: float | np.ndarray = 0.5) -> np.ndarray:
    """One threshold per class; a dict may leave classes out, which then get `default` (a number
    or a per-class array)."""
    if isinstance(value, dict):
        unknown = set(value) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown classes in thresholds: {', '.join(sorted(unknown))}")
        default = np.broadcast_to(np.asarray(default, np.float64), (len(CLASSES),))
        return np.array([float(value[c]) if c in value else default[i] for i, c in enumerate(CLASSES)],
                        np.float64)
    return np.full(len(CLASSES), float(value))


@dataclass
class _Active:
    onset: float
    last_end: float
    peak: float
    wall_onset: float | None


class EventDetector:
    def __init__(self, config: DetectorConfig, hop_s: float, window_s: float = WINDOW_SAMPLES / SAMPLE_RATE):
        self.config = config
        self.on = _per_class(config.on)
        default_off = np.clip(self.on - 0.15, 0.0, None)  # also for classes an off dict leaves out
        self.off = default_off if config.off is None else _per_class(config.off, default_off)
        if np.any(self.off > self.on):
            raise ValueError("off-thresholds must not be above on-thresholds")
        if config.smooth < 1:
            raise ValueError("smoothing needs at least 1 window")
        if config.smooth_method not in ("median", "mean"):
            raise ValueError("smoothing is 'median' or 'mean'")
        allow = set(config.allow) if config.allow else set(CLASSES)
        unknown = allow - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown classes: {', '.join(sorted(unknown))} (known: {', '.join(CLASSES)})")
        self.allowed = np.array([c in allow for c in CLASSES])
        self.min_duration = _per_class(config.min_durations or {}, config.min_duration)
        self.hop_s, self.window_s = hop_s, window_s
        self._history: deque[np.ndarray] = deque(maxlen=config.smooth)
        self._active: dict[int, _Active] = {}
        self._first = True
        self.short_events_dropped = 0

    def _smooth(self, probs: np.ndarray) -> np.ndarray:
        self._history.append(np.asarray(probs, np.float64))
        stack = np.stack(self._history)
        return np.median(stack, axis=0) if self.config.smooth_method == "median" else stack.mean(axis=0)

    def update(self, probs: np.ndarray, start_s: float, level_db: float,
               wall_start: float | None = None) -> tuple[np.ndarray, list[Event]]:
        """Feeds one window. Returns the smoothed probabilities and the events that just ended."""
        smoothed = self._smooth(probs)
        centre = start_s + self.window_s / 2
        seg_start = 0.0 if self._first else centre - self.hop_s / 2
        seg_end = centre + self.hop_s / 2
        self._first = False
        finished = []
        for c in range(len(CLASSES)):
            p = smoothed[c]
            act = self._active.get(c)
            if act is not None:
                if p >= self.off[c]:
                    act.last_end, act.peak = seg_end, max(act.peak, p)
                else:
                    finished += self._close(c)
            elif p >= self.on[c] and self.allowed[c] and level_db >= self.config.gate_db:
                wall = None if wall_start is None else wall_start + (seg_start - start_s)
                self._active[c] = _Active(seg_start, seg_end, p, wall)
        return smoothed, finished

    def _close(self, c: int, end: float | None = None, cut_short: bool = False) -> list[Event]:
        act = self._active.pop(c)
        ev = Event(CLASSES[c], round(act.onset, 4), round(act.last_end if end is None else end, 4), float(act.peak),
                   act.wall_onset, cut_short=cut_short)
        if ev.duration < self.min_duration[c]:
            self.short_events_dropped += 1
            return []
        return [ev]

    @property
    def active_events(self) -> list[Event]:
        return [Event(CLASSES[c], round(a.onset, 4), round(a.last_end, 4), float(a.peak), a.wall_onset, True)
                for c, a in sorted(self._active.items())]

    def finish(self, stream_end_s: float, cut_short: bool = False) -> list[Event]:
        """Ends every event still active at the end of the stream: it was active in the last window,
        which speaks for the stream's tail. `cut_short`: the stream was stopped, not at its end."""
        finished = []
        for c in sorted(self._active):
            finished += self._close(c, max(self._active[c].onset, stream_end_s), cut_short)
        return finished
