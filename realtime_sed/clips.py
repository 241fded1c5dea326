"""--clips: the audio of every finished event, with pre- and post-roll, as the detector heard it.

The stream hands the recorder every block it reads (22050 Hz mono, after resampling) and tells it
which events are active after each window and which have finished. The recorder keeps the last
few seconds heard in a bounded history, so a clip can start `pre_roll` seconds *before* an
event's onset even though the detector only knows the onset a window later; while an event is
active its audio is kept too (at most MAX_CLIP_S). A finished event waits until `post_roll`
seconds after its offset have been heard (or the stream ends), then its clip is written under a
temporary name, renamed into place, and the event is released with `clip` set, so the JSONL log
and every action name a file that is already complete.
"""

from __future__ import annotations

import os
import re
from collections import deque
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime_sed.constants import CLASSES, SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.errors import OutputError
from realtime_sed.events import Event

# WAV keeps the float samples exactly (a lossy source decodes beyond full scale at times); FLAC is
# lossless to 24 bits within full scale (beyond it, clipped); Ogg Vorbis is lossy.
CLIP_FORMATS = {"flac": ("FLAC", "PCM_24"), "wav": ("WAV", "FLOAT"), "ogg": ("OGG", "VORBIS")}
MAX_CLIP_S = 300.0  # a longer event keeps its last 5 minutes (26 MB of float32 at most)
DETECTION_LAG_S = WINDOW_SAMPLES / SAMPLE_RATE  # an onset is known at most one window after it
TEMP_PREFIX = ".partial-"
# The names this recorder writes (the only files --clips-max-mb ever deletes).
CLIP_NAME = re.compile(r"_(?:\d{8}-\d{6}\.\d{3}|\d+\.\d{3}s)_(?:" + "|".join(CLASSES) + r")(?:-\d+)?\.(?:"
                       + "|".join(CLIP_FORMATS) + r")$")


def clip_span(onset: float, offset: float, pre_roll: float, post_roll: float) -> tuple[int, int]:
    """The samples a clip holds, [start, end), before clamping to what the stream heard."""
    return max(0, round((onset - pre_roll) * SAMPLE_RATE)), max(0, round((offset + post_roll) * SAMPLE_RATE))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.")[:60] or "audio"


class ClipRecorder:
    """Audio history -> one clip file per finished event; see the module's docstring."""

    def __init__(self, folder: str | os.PathLike, pre_roll: float = 2.0, post_roll: float = 1.0,
                 fmt: str = "flac", max_mb: float | None = None, source: str = "", lag_s: float = 0.0):
        if fmt not in CLIP_FORMATS:
            raise OutputError(f"--clip-format {fmt!r}: one of {', '.join(CLIP_FORMATS)}")
        self.folder = Path(folder)
        self.pre_roll, self.post_roll, self.fmt, self.max_mb = pre_roll, post_roll, fmt, max_mb
        self.source = _safe(Path(source).stem) if source else "audio"
        # What is kept beside the active events: the pre-roll, one window of detection lag and
        # whatever the caller adds (classify's pipeline returns results one block late).
        self.history_samples = round((pre_roll + DETECTION_LAG_S + lag_s + 1.0) * SAMPLE_RATE)
        self._blocks: deque[tuple[int, np.ndarray]] = deque()  # (first sample, block), in order
        self.heard = 0  # samples pushed so far
        self._newest = 0  # the first sample of the newest block (a live source after a stall
        # hands over seconds at once, and the windows inside it reach back from its start)
        self._keep: list[int] = []  # first samples the active events' clips will need
        self._held: list[tuple[int, int, Event]] = []  # (start, end, event) waiting for post-roll
        self.written = self.failed = 0
        self.last_error = ""

    # -- fed by the stream -------------------------------------------------------------------
    def append(self, block: np.ndarray) -> None:
        if len(block):
            self._blocks.append((self.heard, np.array(block, np.float32, copy=True)))
            self._newest = self.heard
            self.heard += len(block)
        self._trim()

    def track(self, active: list[Event]) -> None:
        """After each window: the events going on now, whose clips must not lose their start."""
        self._keep = [clip_span(ev.onset, ev.offset, self.pre_roll, 0)[0] for ev in active]

    def hold(self, events: list[Event]) -> None:
        for ev in events:
            start, end = clip_span(ev.onset, ev.offset, self.pre_roll, self.post_roll)
            self._held.append((start, end, ev))
        self._held.sort(key=lambda h: (h[1], h[2].onset))

    def ready(self, final: bool = False) -> list[Event]:
        """Events whose post-roll has been heard (all of them when `final`: the stream ended),
        each with its clip written and `clip` set."""
        out = []
        while self._held and (final or self._held[0][1] <= self.heard):
            start, end, ev = self._held.pop(0)
            self._write(ev, start, min(end, self.heard))
            out.append(ev)
        self._trim()
        return out

    # -- inside ------------------------------------------------------------------------------
    def _trim(self) -> None:
        keep_from = self._newest - self.history_samples
        needed = self._keep + [h[0] for h in self._held]
        if needed:
            keep_from = min(keep_from, *needed)
        keep_from = max(keep_from, self.heard - round((MAX_CLIP_S + self.pre_roll + self.post_roll) * SAMPLE_RATE))
        while self._blocks and self._blocks[0][0] + len(self._blocks[0][1]) <= keep_from:
            self._blocks.popleft()

    def samples(self, start: int, end: int) -> np.ndarray:
        """What was heard in [start, end), as far as the history still holds it."""
        parts = [b[max(0, start - first): max(0, end - first)] for first, b in self._blocks
                 if first < end and first + len(b) > start]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _name(self, ev: Event) -> str:
        if ev.wall_onset is not None:
            t = datetime.fromtimestamp(ev.wall_onset)
            when = t.strftime("%Y%m%d-%H%M%S") + f".{t.microsecond // 1000:03d}"
        else:
            when = f"{ev.onset:.3f}s"
        return f"{self.source}_{when}_{ev.label}"

    def _write(self, ev: Event, start: int, end: int) -> None:
        audio = self.samples(start, end)
        stem, n = self._name(ev), 0
        path = self.folder / f"{stem}.{self.fmt}"
        while path.exists():
            n += 1
            path = self.folder / f"{stem}-{n}.{self.fmt}"
        temp = path.with_name(TEMP_PREFIX + path.name)
        fmt, subtype = CLIP_FORMATS[self.fmt]
        try:
            sf.write(temp, audio, SAMPLE_RATE, format=fmt, subtype=subtype)
            os.replace(temp, path)
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:  # a full disk: the event goes on without
            self.failed += 1
            self.last_error = f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}"
            try:
                temp.unlink()
            except OSError:
                pass
            return
        self.written += 1
        ev.clip = str(path)
        if self.max_mb is not None:
            self.prune(keep=path)

    def prune(self, keep: Path | None = None) -> None:
        """Deletes the oldest clips (only files named as this recorder names them) until the
        folder's clips fit in `max_mb`; the newest clip, `keep`, always stays."""
        clips = []
        for entry in os.scandir(self.folder):
            if entry.is_file() and CLIP_NAME.search(entry.name) and not entry.name.startswith(TEMP_PREFIX):
                st = entry.stat()
                clips.append((st.st_mtime, entry.name, st.st_size))
        total = sum(c[2] for c in clips)
        limit = self.max_mb * 1e6
        for _, name, size in sorted(clips):
            if total <= limit:
                break
            if keep is not None and name == keep.name:
                continue
            try:
                os.unlink(self.folder / name)
                total -= size
            except OSError:
                pass
