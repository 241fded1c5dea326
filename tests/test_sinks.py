"""Sinks: JSONL survives a SIGKILL line for line; TSV and CSV have the DCASE header and rows."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from realtime_sed.constants import CLASSES
from realtime_sed.events import Event
from realtime_sed.sinks import JsonlSink, TableSink, make_sink
from tests.conftest import DEMO, REPO, run_cli
from tests.shipped import EVENTFUL_LABELS

EVENT_LINE = re.compile(r"^\s*(\d+\.\d\d) -\s+(\d+\.\d\d) s\s+(\w+)\s+peak")
WINDOW_LINE = re.compile(r"^\s*window\s+(\d+\.\d\d) s")


def test_jsonl_lines_survive_kill_9(tmp_path):
    """A live replay of the demo, killed with SIGKILL right after it printed an event: every line
    in the events file is complete JSON, and every event and window it had printed is there."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime_sed", "listen", "--no-tui", "--file", str(DEMO), "--realtime",
         "--events", str(out), "--windows", "--verbose"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    printed_events, printed_windows = [], []
    deadline = time.monotonic() + 60  # the first event of the demo ends ~9 s into the replay
    try:
        while not printed_events and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "listen exited early"
                continue
            if m := EVENT_LINE.match(line):
                printed_events.append((float(m[1]), float(m[2]), m[3]))
            elif m := WINDOW_LINE.match(line):
                printed_windows.append(float(m[1]))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL  # it was still running: killed, not finished
    assert printed_events, "no event within 60 s of replay"

    text = out.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # each line whole, none cut off
    events = [r for r in records if r["type"] == "event"]
    windows = [r for r in records if r["type"] == "window"]
    for onset, offset, label in printed_events:
        assert any(e["label"] == label and round(e["onset"], 2) == onset and round(e["offset"], 2) == offset
                   for e in events), (onset, offset, label)
    assert len(windows) >= len(printed_windows) >= 1
    assert [round(w["start"], 2) for w in windows[: len(printed_windows)]] == printed_windows
    for w in windows:
        assert set(w["probs"]) == set(CLASSES) and w["file"] == DEMO.name
        assert sum(w["probs"].values()) == pytest.approx(1.0, abs=1e-4)


def test_tsv_csv_and_jsonl_agree(clip_file, tmp_path):
    """The same file classified three ways: the DCASE header, then one row per event, the same
    events in each format, times with 3 decimals."""
    clip = clip_file(EVENTFUL_LABELS[1], seconds=7.0)
    outputs = {}
    for fmt in ("tsv", "csv", "jsonl"):
        path = tmp_path / f"out.{fmt}"
        r = run_cli("classify", clip, "--format", fmt, "-o", path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == ""  # everything went to the file
        outputs[fmt] = path.read_text()

    events = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert events and all(e["type"] == "event" and e["file"] == clip.name for e in events)
    expected = [[clip.name, f"{e['onset']:.3f}", f"{e['offset']:.3f}", e["label"]] for e in events]
    for fmt, delimiter in (("tsv", "\t"), ("csv", ",")):
        text = outputs[fmt]
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        assert text.splitlines()[0] == delimiter.join(["filename", "onset", "offset", "event_label"])
        assert rows[1:] == expected
        for row in rows[1:]:
            assert re.fullmatch(r"\d+\.\d{3}", row[1]) and re.fullmatch(r"\d+\.\d{3}", row[2])


def test_tsv_to_stdout_by_default(clip_file):
    clip = clip_file(EVENTFUL_LABELS[0], seconds=5.0)
    r = run_cli("classify", clip)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_label"
    assert len(lines) >= 2 and all(line.split("\t")[0] == clip.name for line in lines[1:])


def test_table_sink_quotes_awkward_filenames(tmp_path):
    ev = Event("car_horn", 1.0, 2.5, 0.9)
    for delimiter in ("\t", ","):
        path = tmp_path / "t.txt"
        sink = TableSink(path, delimiter)
        sink.event("a, b\tc.wav", ev)
        # written and flushed before close
        rows = list(csv.reader(io.StringIO(path.read_text()), delimiter=delimiter))
        assert rows == [["filename", "onset", "offset", "event_label"], ["a, b\tc.wav", "1.000", "2.500", "car_horn"]]
        sink.close()


def test_jsonl_sink_lines(tmp_path):
    path = tmp_path / "e.jsonl"
    sink = JsonlSink(path, windows=True, append=True)
    p = np.linspace(0, 1, len(CLASSES)).astype(np.float32)
    sink.window("f.wav", 1.23456, p, wall=1700000000.12345)
    sink.window("f.wav", 1.7, p, wall=None)
    sink.event("f.wav", Event("siren", 0.5, 2.0, 0.75, wall_onset=None, active=False))
    first = path.read_text()  # flushed as written, before close
    sink.close()
    records = [json.loads(x) for x in first.splitlines()]
    assert records[0] == {"type": "window", "file": "f.wav", "start": 1.2346,
                          "probs": {c: round(float(v), 6) for c, v in zip(CLASSES, p)}, "wall": 1700000000.123}
    assert "wall" not in records[1]
    assert records[2] == {"type": "event", "file": "f.wav", "label": "siren", "onset": 0.5, "offset": 2.0,
                          "peak": 0.75, "wall_onset": None, "active": False, "cut_short": False, "duration": 1.5}

    # listen appends to an existing events file; without windows=True window lines are skipped
    sink = JsonlSink(path, windows=False, append=True)
    sink.window("f.wav", 2.0, p, None)
    sink.event("f.wav", Event("dog_bark", 3.0, 4.0, 0.6))
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[3])["label"] == "dog_bark"

    # classify's jsonl starts the file afresh
    sink = make_sink("jsonl", path)
    sink.close()
    assert path.read_text() == ""
    with pytest.raises(ValueError):
        make_sink("xml", path)
