"""Where events go: JSONL (events, optionally every window), DCASE TSV, CSV.

Every line is flushed as it is written, so a crash or a SIGKILL loses nothing already written.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import TextIO

import numpy as np

from realtime_sed.constants import CLASSES
from realtime_sed.events import Event


class Sink:
    def window(self, filename: str, start_s: float, probs: np.ndarray, wall: float | None) -> None:
        pass

    def event(self, filename: str, event: Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _open(path: str | os.PathLike | None, mode: str) -> tuple[TextIO, bool]:
    if path is None or str(path) == "-":
        return sys.stdout, False
    return open(path, mode, buffering=1, encoding="utf-8", newline=""), True


class JsonlSink(Sink):
    """One JSON object per line: {"type": "event", ...} and, with windows=True, {"type": "window", ...}."""

    def __init__(self, path: str | os.PathLike | None, windows: bool = False, append: bool = True):
        self._f, self._owned = _open(path, "a" if append else "w")
        self.windows = windows

    def _write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj) + "\n")
        self._f.flush()

    def window(self, filename, start_s, probs, wall):
        if self.windows:
            line = {"type": "window", "file": filename, "start": round(start_s, 4),
                    "probs": {c: round(float(p), 6) for c, p in zip(CLASSES, probs)}}
            if wall is not None:
                line["wall"] = round(wall, 3)
            self._write(line)

    def event(self, filename, event):
        self._write({"type": "event", "file": filename, **event.to_dict()})

    def close(self):
        if self._owned:
            self._f.close()


class TableSink(Sink):
    """DCASE-style `filename onset offset event_label` with a header, tab- or comma-separated,
    as sed_eval and sed_scores_eval read it."""

    def __init__(self, path: str | os.PathLike | None, delimiter: str = "\t"):
        self._f, self._owned = _open(path, "w")
        self._writer = csv.writer(self._f, delimiter=delimiter, lineterminator="\n")
        self._writer.writerow(["filename", "onset", "offset", "event_label"])
        self._f.flush()

    def event(self, filename, event):
        self._writer.writerow([filename, f"{event.onset:.3f}", f"{event.offset:.3f}", event.label])
        self._f.flush()

    def close(self):
        if self._owned:
            self._f.close()


def make_sink(fmt: str, path: str | os.PathLike | None, windows: bool = False) -> Sink:
    if fmt == "jsonl":
        return JsonlSink(path, windows=windows, append=False)
    if fmt == "tsv":
        return TableSink(path, "\t")
    if fmt == "csv":
        return TableSink(path, ",")
    raise ValueError(f"unknown format {fmt!r}")
