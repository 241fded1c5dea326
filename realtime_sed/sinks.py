"""Where events go: JSONL (events, optionally every window), DCASE TSV, CSV.

Every line is flushed as it is written, so a crash or a SIGKILL loses nothing already written.
A target is checked before any work starts (`check_output`); a write that fails later (a disk
filling up) raises OutputError, one line for the user, and everything written before it stays.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import numpy as np

from realtime_sed.constants import CLASSES
from realtime_sed.errors import OutputError
from realtime_sed.events import Event

STDOUT_NAME = "standard output"
# Outputs never written over: a results file with one of these suffixes is almost surely a mistake.
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf",
                  ".w64", ".rf64", ".m4a", ".aac", ".wma", ".snd", ".voc"}


def check_output(path: str | os.PathLike | None, inputs: Iterable[str | os.PathLike] = (),
                 what: str = "output", clobber_audio: bool = True) -> None:
    """Refuses, before anything is opened, an output that cannot be written or would destroy an
    input: a missing folder, a directory, a path under a file, one of the inputs, an audio file."""
    if path is None or str(path) == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{what} {target}: is a directory")
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"{what} {target}: folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{what} {target}: {folder} is not a folder")
    for given in inputs:
        if str(given) != "-" and _same_file(target, Path(given)):
            raise OutputError(f"{what} {target}: is also an input; refusing to write over it")
    if clobber_audio and target.exists() and target.suffix.lower() in AUDIO_SUFFIXES:
        raise OutputError(f"{what} {target}: is an audio file; refusing to write over it")
    if target.exists() and not target.is_char_device() and not os.access(target, os.W_OK):
        raise OutputError(f"{what} {target}: not writable")
    if not target.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {target}: folder {folder} is not writable")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _write_error(name: str, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += "; what was written before is kept"
    return OutputError(f"cannot write {name}: {reason}")


def close_quietly(f: TextIO) -> None:
    """Closes a file whose last write may have failed (its buffer would fail again on close)."""
    try:
        f.close()
    except OSError:
        pass


def event_record(filename: str, event: Event) -> dict:
    """An event as JSON: the JSONL log's line and what every action is sent are this same dict."""
    return {"type": "event", "file": filename, **event.to_dict()}


class Sink:
    name = STDOUT_NAME

    def window(self, filename: str, start_s: float, probs: np.ndarray, wall: float | None) -> None:
        pass

    def active(self, filename: str, events: list[Event]) -> None:
        """After every window: the events going on now."""

    def event(self, filename: str, event: Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _open(path: str | os.PathLike | TextIO | None, mode: str) -> tuple[TextIO, bool, str]:
    if path is None or str(path) == "-":
        return sys.stdout, False, STDOUT_NAME
    if hasattr(path, "write"):  # an open text stream (a Ray worker renders a file's rows into one)
        return path, False, "<stream>"
    try:
        return open(path, mode, buffering=1, encoding="utf-8", newline=""), True, str(path)
    except OSError as exc:
        raise _write_error(str(path), exc) from None


class _LineFile:
    """A sink's file: each write is flushed at once and an OSError becomes an OutputError."""

    def __init__(self, path: str | os.PathLike | None, mode: str):
        self.f, self.owned, self.name = _open(path, mode)

    def write(self, text: str) -> None:
        try:
            self.f.write(text)
            self.f.flush()
        except OSError as exc:
            raise _write_error(self.name, exc) from None

    def close(self) -> None:
        if self.owned:
            close_quietly(self.f)


class JsonlSink(Sink):
    """One JSON object per line: {"type": "event", ...} and, with windows=True, {"type": "window", ...}."""

    def __init__(self, path: str | os.PathLike | None, windows: bool = False, append: bool = True):
        self._f = _LineFile(path, "a" if append else "w")
        self.name = self._f.name
        self.windows = windows

    def _write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj) + "\n")

    def window(self, filename, start_s, probs, wall):
        if self.windows:
            line = {"type": "window", "file": filename, "start": round(start_s, 4),
                    "probs": {c: round(float(p), 6) for c, p in zip(CLASSES, probs)}}
            if wall is not None:
                line["wall"] = round(wall, 3)
            self._write(line)

    def event(self, filename, event):
        self._write(event_record(filename, event))

    def close(self):
        self._f.close()


class TableSink(Sink):
    """DCASE-style `filename onset offset event_label` with a header, tab- or comma-separated,
    as sed_eval and sed_scores_eval read it."""

    def __init__(self, path: str | os.PathLike | None, delimiter: str = "\t"):
        self._f = _LineFile(path, "w")
        self.name = self._f.name
        self._writer = csv.writer(self._f, delimiter=delimiter, lineterminator="\n")
        self._writer.writerow(["filename", "onset", "offset", "event_label"])

    def event(self, filename, event):
        self._writer.writerow([filename, f"{event.onset:.3f}", f"{event.offset:.3f}", event.label])

    def close(self):
        self._f.close()


class EventPrinter(Sink):
    """Headless `listen`: every event as a line on standard output, the ones closed when the
    stream stops included."""

    def __init__(self, format_event: Callable[[Event], str]):
        self._f = _LineFile(None, "w")
        self.format_event = format_event

    def event(self, filename, event):
        self._f.write(self.format_event(event) + "\n")


def make_sink(fmt: str, path: str | os.PathLike | None, windows: bool = False) -> Sink:
    if fmt == "jsonl":
        return JsonlSink(path, windows=windows, append=False)
    if fmt == "tsv":
        return TableSink(path, "\t")
    if fmt == "csv":
        return TableSink(path, ",")
    raise ValueError(f"unknown format {fmt!r}")
