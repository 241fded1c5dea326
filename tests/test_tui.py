"""The Textual dashboard, headless, on real parts: the bundled demo audio, the shipped model, the
real DetectionStream and JSONL sink. Only the pacing of the file is in the test's hands, so a
test can act while the stream is mid-way, as it would be with a microphone."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_sed.app import run_listen
from realtime_sed.classifier import OnnxClassifier
from realtime_sed.cli import build_parser, settings_from_args
from realtime_sed.constants import DEMO_FILE as DEMO
from realtime_sed.errors import DeviceError, SedError
from realtime_sed.events import DetectorConfig
from realtime_sed.settings import OutputSettings, Settings, SourceSettings
from realtime_sed.sinks import JsonlSink
from realtime_sed.sources import FileSource
from realtime_sed.stream import DetectionStream
from realtime_sed.tui.app import REFRESH_S, SedDashboard, build_dashboard
from realtime_sed.tui.screens import HelpScreen, StreamErrorScreen
from realtime_sed.tui.screenshot import held_dashboard, settle
from realtime_sed.tui.widgets import EventsTable, LevelMeter, Notice, ProbabilityBars, StatusBar
from tests.shipped import EVENTFUL_LABELS, IMPULSIVE_LABEL, MODEL, STEADY_LABEL



@pytest.fixture(scope="module")
def clf() -> OnnxClassifier:
    return OnnxClassifier(MODEL)


class PacedFileSource(FileSource):
    """The real file source, but each block waits for the test's go-ahead. `idle` is set while
    it waits with nothing let through, that is once the stream has processed every block
    released so far (or the file has ended)."""

    def __init__(self, path, stop: threading.Event):
        super().__init__(path, stop=stop)
        self._allowance = 0
        self._cond = threading.Condition()
        self.idle = threading.Event()
        self.closed = False

    def release(self, blocks: int) -> None:
        with self._cond:
            self._allowance += blocks
            self.idle.clear()
            self._cond.notify_all()

    def blocks(self):
        for block in super().blocks():
            with self._cond:
                while self._allowance == 0 and not self.stop.is_set():
                    self.idle.set()
                    self._cond.wait(0.05)
                if self.stop.is_set():
                    return
                self._allowance -= 1
            yield block
        self.idle.set()

    def close(self) -> None:
        super().close()
        self.closed = True


class UnpluggedSource(FileSource):
    """A real file whose input dies after `after` blocks, raising what MicSource raises when a
    microphone is unplugged."""

    def __init__(self, path, after: int, stop: threading.Event):
        super().__init__(path, stop=stop)
        self.after = after

    def blocks(self):
        for i, block in enumerate(super().blocks()):
            if i == self.after:
                raise DeviceError("input device 'USB Microphone' stopped delivering audio (disconnected?)")
            yield block


def dashboard(clf, source, events: Path | None = None, windows: bool = False, **kw) -> SedDashboard:
    sink = JsonlSink(events, windows=windows) if events else None
    stream = DetectionStream(clf, 0.5, DetectorConfig.from_card(clf.thresholds), [sink] if sink else [],
                             source.description, source.wall_time_at)
    return SedDashboard(source, stream, stop=source.stop, events_path=str(events) if events else None,
                        show_timing=False, **kw)


async def until(pilot, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the dashboard"
        await pilot.pause(0.02)


async def settled(pilot, source: PacedFileSource) -> None:
    """Every released block has gone through the stream, and every window is on screen."""
    app = pilot.app
    await until(pilot, lambda: source.idle.is_set() and app.state.windows == app.stream.stats.windows)
    await pilot.pause(2 * REFRESH_S)


def logged(path: Path, kind: str = "event") -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == kind]


def bar_values(app) -> list[float]:
    return list(app.query_one(ProbabilityBars).values)


# ----------------------------------------------------------------------------- streaming


# A steady sound and an impulsive one, both of which the shipped model names on the demo (this test
# is about the dashboard, not the model's accuracy: docs/results.md has that).
@pytest.mark.parametrize("label", [STEADY_LABEL, IMPULSIVE_LABEL])
async def test_clip_updates_bars_and_events(clf, clip_file, tmp_path, label):
    events = tmp_path / "events.jsonl"
    source = FileSource(clip_file(label), stop=threading.Event())
    app = dashboard(clf, source, events)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.end_reason is not None)
        await pilot.pause(2 * REFRESH_S)
        stream = app.stream
        assert stream.stats.windows == app.state.windows > 0
        # the bars are the stream's own smoothed probabilities, not numbers of the dashboard's
        assert bar_values(app) == [float(p) for p in app.state.latest.smoothed]
        assert max(bar_values(app)) > 0.5
        assert app.query_one(ProbabilityBars).top_class == label
        rows = app.query_one(EventsTable).shown
        assert [r[2] for r in rows] == [ev.label for ev in reversed(stream.events)]
        assert label in [r[2] for r in rows]
        # a file ended: the dashboard says so and waits for q
        assert app.end_reason == "end"
        assert "end of file" in str(app.query_one(Notice).message)
        assert app.query_one(StatusBar).state == "ended"
        await pilot.pause(0.3)
        assert app.is_running
        await pilot.press("q")
    assert app.return_code == 0
    assert app.stream_thread is not None and app.stream_thread != threading.current_thread().name
    assert source.reader._file.closed
    assert [e["label"] for e in logged(events)] == [ev.label for ev in stream.events]


async def test_same_events_as_headless_listen(clf, clip_file, tmp_path, capsys):
    """The CLI entry's dashboard and `listen --no-tui` log the same events for the same file."""
    clip = clip_file(EVENTFUL_LABELS[0])
    headless, tui = tmp_path / "headless.jsonl", tmp_path / "tui.jsonl"
    def settings(*argv) -> Settings:
        return settings_from_args(build_parser().parse_args(["listen", "--file", str(clip), *argv]))

    assert run_listen(settings("--events", str(headless), "--model", str(MODEL), "--no-tui")) == 0
    app = build_dashboard(settings("--events", str(tui), "--model", str(MODEL)), clf)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.end_reason is not None)
        await pilot.pause(2 * REFRESH_S)
        rows = app.query_one(EventsTable).shown
        await pilot.press("q")
    assert logged(headless) and logged(tui) == logged(headless)
    assert [r[2] for r in reversed(rows)] == [e["label"] for e in logged(headless)]


def test_events_to_stdout_is_refused(clf, clip_file):
    settings = Settings(source=SourceSettings(file=str(clip_file("dog_bark"))), output=OutputSettings(events="-"))
    with pytest.raises(SedError, match="--no-tui"):
        build_dashboard(settings, clf)


async def test_refresh_is_throttled_off_the_ui_thread(clf, clip_file):
    """A fast replay produces windows far quicker than the display's 10 Hz: redraws are bounded by
    the timer, not by the number of windows."""
    source = FileSource(clip_file(STEADY_LABEL, seconds=20), stop=threading.Event())
    app = dashboard(clf, source)
    async with app.run_test(size=(80, 24)) as pilot:
        t0 = time.monotonic()
        await until(pilot, lambda: app.end_reason is not None)
        elapsed = time.monotonic() - t0
        await pilot.press("q")
    assert app.state.windows == app.stream.stats.windows > 30
    assert app.redraws <= elapsed / REFRESH_S + 3
    assert app.stream_thread != threading.current_thread().name


# ----------------------------------------------------------------------------- keys


async def test_quit_mid_stream_closes_everything_and_logs_active_events(clf, clip_file, tmp_path):
    events = tmp_path / "events.jsonl"
    source = PacedFileSource(clip_file(STEADY_LABEL, seconds=30), threading.Event())
    app = dashboard(clf, source, events)
    async with app.run_test(size=(80, 24)) as pilot:
        source.release(45)  # about 8 s of audio
        await settled(pilot, source)
        live = [r for r in app.query_one(EventsTable).shown if r[-1]]
        assert [r[2] for r in live] == [STEADY_LABEL]
        assert logged(events) == []  # still in progress: not in the log yet
        await pilot.press("q")
    assert app.return_code == 0
    assert source.stop.is_set() and source.closed
    on_disk = logged(events)
    assert [e["label"] for e in on_disk] == [ev.label for ev in app.stream.events]
    assert STEADY_LABEL in [e["label"] for e in on_disk]
    steady = next(e for e in on_disk if e["label"] == STEADY_LABEL)
    assert steady["offset"] >= 7.0  # closed where the stream stopped, not where it was last drawn


async def test_pause_freezes_display_while_audio_and_log_go_on(clf, clip_file, tmp_path):
    events = tmp_path / "events.jsonl"
    source = PacedFileSource(clip_file(STEADY_LABEL, seconds=30), threading.Event())
    app = dashboard(clf, source, events, windows=True)
    async with app.run_test(size=(80, 24)) as pilot:
        source.release(25)
        await settled(pilot, source)
        before_bars, before_rows = bar_values(app), app.query_one(EventsTable).shown
        windows_logged = len(logged(events, "window"))

        await pilot.press("p")
        assert app.paused and app.query_one(StatusBar).state == "paused"
        source.release(40)
        await settled(pilot, source)
        assert app.stream.stats.windows > windows_logged  # audio kept flowing
        assert len(logged(events, "window")) == app.stream.stats.windows > windows_logged
        assert bar_values(app) == before_bars  # but the display stood still
        assert app.query_one(EventsTable).shown == before_rows

        await pilot.press("p")
        await pilot.pause(2 * REFRESH_S)
        assert not app.paused and app.query_one(StatusBar).state == "live"
        assert bar_values(app) == [float(p) for p in app.state.latest.smoothed]
        rows = app.query_one(EventsTable).shown
        assert rows != before_rows and float(rows[0][4].split()[0]) > float(before_rows[0][4].split()[0])
        await pilot.press("q")


async def test_clear_empties_the_table_not_the_log(clf, clip_file, tmp_path):
    events = tmp_path / "events.jsonl"
    source = FileSource(clip_file(STEADY_LABEL), stop=threading.Event())
    app = dashboard(clf, source, events)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.end_reason is not None)
        await pilot.pause(2 * REFRESH_S)
        assert app.query_one(EventsTable).row_count > 0
        await pilot.press("c")
        assert app.query_one(EventsTable).row_count == 0
        await pilot.press("q")
    assert len(logged(events)) == len(app.stream.events) > 0


async def test_help_opens_closes_and_q_still_quits(clf, clip_file):
    source = PacedFileSource(clip_file("dog_bark"), threading.Event())
    app = dashboard(clf, source)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.press("q")
    assert app.return_code == 0 and source.stop.is_set()


async def test_unplugged_input_shows_a_message_not_a_traceback(clf, clip_file, tmp_path):
    events = tmp_path / "events.jsonl"
    source = UnpluggedSource(clip_file(STEADY_LABEL, seconds=20), after=50, stop=threading.Event())
    app = dashboard(clf, source, events)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StreamErrorScreen))
        assert "stopped delivering audio" in app.error
        assert app.query_one(StatusBar).state == "failed"
        assert app.is_running
        await pilot.press("q")
    assert app.return_code == 2
    # the stream closed the event in progress when the input died, and it reached the log
    assert STEADY_LABEL in [e["label"] for e in logged(events)]


# ----------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("size", [(40, 12), (80, 24), (160, 48)], ids=["40x12", "80x24", "160x48"])
def test_snapshot_mid_stream(clf, snap_compare, size):
    assert snap_compare(held_dashboard(clf, show_timing=False), terminal_size=size, run_before=settle)


def test_snapshot_help(clf, snap_compare):
    assert snap_compare(held_dashboard(clf, hold_at_s=10, show_timing=False), press=["question_mark"],
                        run_before=settle)


def test_snapshot_input_lost(clf, snap_compare):
    stop = threading.Event()
    source = UnpluggedSource(DEMO, after=80, stop=stop)
    stream = DetectionStream(clf, 0.5, DetectorConfig.from_card(clf.thresholds), (), source.description)
    app = SedDashboard(source, stream, stop=stop, show_timing=False, events_path="events.jsonl")

    async def failed(pilot) -> None:
        await until(pilot, lambda: isinstance(app.screen, StreamErrorScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, run_before=failed)


def test_history_spans_a_minute_whatever_the_hop(clf):
    for hop in (0.1, 0.5, 1.0):
        stream = DetectionStream(clf, hop)
        source = FileSource(DEMO)
        state = SedDashboard(source, stream).state
        source.close()
        assert abs(state.history.maxlen * stream.hop_s - 60.0) <= stream.hop_s
        assert np.isnan(state.history_matrix()).all()  # no window yet: an empty strip, not zeros


async def test_an_event_log_on_a_full_disk_stops_the_stream_on_a_screen(clf, clip_file):
    """Issue 15: `--events /dev/full` froze the dashboard at LIVE and `q` exited 0. Now the first
    failing write stops the stream, the error screen says why, and the exit code is 2."""
    source = PacedFileSource(clip_file(STEADY_LABEL, seconds=20), threading.Event())
    app = dashboard(clf, source, Path("/dev/full"), windows=True)  # every window is a write
    async with app.run_test(size=(80, 24)) as pilot:
        source.release(45)
        await until(pilot, lambda: isinstance(app.screen, StreamErrorScreen))
        assert "cannot write /dev/full" in app.error and "No space left" in app.error
        assert app.query_one(StatusBar).state == "failed"
        assert app.is_running
        await pilot.press("q")
    assert app.return_code == 2
    assert source.closed


async def test_a_40x12_terminal_keeps_the_events_and_the_status_bar(clf, clip_file):
    """Issue 15: at 40x12 the events table and the status bar vanished. Small terminals now drop
    the probabilities on purpose, and what stays is whole and on screen."""
    source = PacedFileSource(clip_file(STEADY_LABEL, seconds=20), threading.Event())
    app = dashboard(clf, source)
    async with app.run_test(size=(40, 12)) as pilot:
        source.release(45)
        await settled(pilot, source)
        screen = app.screen.region
        assert not app.query_one("#top").display
        for widget in (app.query_one(EventsTable), app.query_one(StatusBar), app.query_one(LevelMeter)):
            assert widget.display and widget.region.height >= 1 and screen.contains_region(widget.region), widget
        assert app.query_one(EventsTable).region.height >= 4  # a header and rows, not a sliver
        await pilot.press("question_mark")
        box = app.screen.query_one("#help-box")
        assert app.screen.region.contains_region(box.region)  # the help fits, scrolling what does not
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_code == 0


async def test_dashboard_runs_the_actions_and_clips_and_shows_their_health(clf, tmp_path):
    """listen in the dashboard with --exec and --clips: a real command gets every logged event
    (its clip named and already complete), and the actions bar shows what was sent."""
    import sys

    from realtime_sed.tui.widgets import ActionsBar

    log, ran, folder = tmp_path / "events.jsonl", tmp_path / "ran.jsonl", tmp_path / "clips"
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\nrec = json.loads(sys.stdin.readline())\n"
                      "rec['exists'] = os.path.getsize(os.environ['RSED_CLIP']) > 0\n"
                      f"open({str(ran)!r}, 'a').write(json.dumps(rec) + '\\n')\n")
    settings = settings_from_args(build_parser().parse_args(
        ["listen", "--file", str(DEMO), "--model", str(MODEL), "--events", str(log), "--duration", "24",
         "--exec", f"{sys.executable} {script}", "--clips", str(folder)]))
    app = build_dashboard(settings, clf)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.end_reason is not None)
        await until(pilot, lambda: app._actions.health()[0].sent + app._actions.health()[0].failed
                    >= len(logged(log)))
        await pilot.pause(3 * REFRESH_S)
        bar = str(app.query_one(ActionsBar).render())
        await pilot.press("q")
    events = logged(log)
    assert len(events) >= 2 and all(e["clip"].startswith(str(folder)) for e in events)
    assert f"exec sent {len(events)} failed 0 dropped 0" in bar and f"clips written {len(events)} failed 0" in bar
    runs = sorted(map(json.loads, ran.read_text().splitlines()), key=lambda r: r["onset"])
    assert [(r["label"], r["onset"], r["clip"]) for r in runs] == [(e["label"], e["onset"], e["clip"]) for e in events]
    assert all(r["exists"] for r in runs)
    assert app.action_lines()[0] == f"exec: sent {len(events)}, failed 0, dropped 0"
