"""What the dashboard remembers between redraws, kept apart from the widgets that draw it.

The worker thread hands over one `WindowUpdate` per window; the UI thread folds them into a
`DashboardState` every refresh tick. Nothing here computes a probability or an event: it only keeps
the stream's own numbers (a 60 s history, the events table, peak hold), so the dashboard shows what
headless `listen` prints.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from realtime_sed.constants import CLASSES
from realtime_sed.events import SILENCE_DBFS, Event
from realtime_sed.stream import StreamStats, WindowResult

HISTORY_SECONDS = 60.0
PEAK_HOLD_SECONDS = 2.0  # of stream time, so a replayed file holds peaks like a live input
CLIP_HOLD_SECONDS = 2.0
MAX_TABLE_EVENTS = 500  # finished events kept for the table; the JSONL log keeps all of them


@dataclass(frozen=True)
class WindowUpdate:
    """One window as the worker thread saw it.

    The stream's level figures describe its latest block and change with every block, so they are
    copied when the window is produced rather than read later from the UI thread.
    """

    result: WindowResult
    level_db: float
    peak_db: float
    clipped_blocks: int
    audio_s: float

    @classmethod
    def capture(cls, result: WindowResult, stats: StreamStats) -> WindowUpdate:
        return cls(result, stats.level_db, stats.peak_db, stats.clipped_blocks, stats.audio_s)


class DashboardState:
    """Everything on screen that depends on more than the latest window. UI thread only."""

    def __init__(self, hop_s: float):
        self.history: deque[np.ndarray] = deque(maxlen=max(1, round(HISTORY_SECONDS / hop_s)))
        self.latest: WindowResult | None = None
        self.windows = 0
        self.audio_s = 0.0
        self.finished: deque[Event] = deque(maxlen=MAX_TABLE_EVENTS)
        self.active: list[Event] = []
        self.level_db = SILENCE_DBFS
        self.peak_db = SILENCE_DBFS
        self.clipped_blocks = 0
        self._peaks: deque[tuple[float, float]] = deque()
        self._last_clip_s: float | None = None
        self._seen: set[int] = set()  # ids of finished events already taken in (or cleared)

    def ingest(self, updates: Iterable[WindowUpdate]) -> None:
        """Takes in windows in the order the stream produced them."""
        for u in updates:
            r = u.result
            self.latest = r
            self.windows += 1
            self.audio_s = u.audio_s
            self.history.append(r.smoothed)
            self._take_finished(r.finished)
            self.active = list(r.active)
            self.level_db, self.peak_db = u.level_db, u.peak_db
            self._peaks.append((u.audio_s, u.peak_db))
            while self._peaks and u.audio_s - self._peaks[0][0] > PEAK_HOLD_SECONDS:
                self._peaks.popleft()
            if u.clipped_blocks > self.clipped_blocks:
                self._last_clip_s = u.audio_s
            self.clipped_blocks = u.clipped_blocks

    def _take_finished(self, events: Iterable[Event]) -> None:
        for ev in events:
            if id(ev) not in self._seen:
                self._seen.add(id(ev))
                self.finished.append(ev)

    def end(self, all_events: Iterable[Event]) -> None:
        """The stream has stopped: events it closed on stop (which reach the sinks but no window)
        join the table, and nothing is in progress any more."""
        self._take_finished(all_events)
        self.active = []

    def clear_events(self) -> None:
        """Empties the table (not the log). Events still in progress come back with the next
        window, since they are still happening."""
        self.finished.clear()
        self.active = []

    @property
    def hold_db(self) -> float:
        """The highest block peak over the last PEAK_HOLD_SECONDS of audio."""
        return max((p for _, p in self._peaks), default=SILENCE_DBFS)

    @property
    def clipping(self) -> bool:
        return self._last_clip_s is not None and self.audio_s - self._last_clip_s <= CLIP_HOLD_SECONDS

    def history_matrix(self) -> np.ndarray:
        """(capacity, classes) smoothed probabilities, oldest first; NaN where no window exists yet,
        so the time axis always spans HISTORY_SECONDS and the newest window sits at the right."""
        capacity = self.history.maxlen or 1
        out = np.full((capacity, len(CLASSES)), np.nan)
        if self.history:
            out[capacity - len(self.history):] = np.stack(self.history)
        return out

    def table_events(self) -> list[Event]:
        """Events for the table, newest first; those in progress first among equals."""
        rows = [*self.finished, *self.active]
        return sorted(rows, key=lambda ev: (ev.onset, ev.active), reverse=True)[:MAX_TABLE_EVENTS]


def format_start(ev: Event) -> str:
    """Wall-clock time for a microphone, stream time (m:ss.s) for a file."""
    if ev.wall_onset is not None:
        return datetime.fromtimestamp(ev.wall_onset).strftime("%H:%M:%S")
    return format_clock(ev.onset, decimals=1)


def format_clock(seconds: float, decimals: int = 0) -> str:
    """`m:ss` (or `h:mm:ss` past an hour), with optional decimals on the seconds."""
    seconds = max(0.0, seconds)
    if decimals:
        scale = 10 ** decimals
        seconds = math.floor(seconds * scale) / scale
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    width = 3 + decimals if decimals else 2
    secs_text = f"{secs:0{width}.{decimals}f}"
    return f"{hours}:{minutes:02d}:{secs_text}" if hours else f"{minutes}:{secs_text}"
