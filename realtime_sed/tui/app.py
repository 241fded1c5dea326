"""SedDashboard: the Textual app of `realtime-sed listen`.

The app never touches audio or the model on its event loop. A thread worker runs the same
`DetectionStream.run` that headless `listen` runs, and its per-window callback only appends the
stream's `WindowResult` to a queue. A 0.1 s timer on the UI side drains that queue, so the screen
is redrawn at most ten times a second however short the hop, and a fast file replay cannot flood
the message queue. The worker's end (the file ran out, the input failed, `q`) arrives as a
Message. Once started, the app owns the source and the stream's sinks: the worker closes them when
the stream stops, so after `q` the event log on disk is complete.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import SAMPLE_RATE
from realtime_sed.errors import SedError
from realtime_sed.events import Event
from realtime_sed.settings import Settings
from realtime_sed.stream import DetectionStream, WindowResult
from realtime_sed.tui.screens import HelpScreen, StreamErrorScreen
from realtime_sed.tui.state import DashboardState, WindowUpdate, format_clock
from realtime_sed.tui.widgets import (ActionsBar, EventsTable, LevelMeter, Notice, ProbabilityBars,
                                      ProbabilityHistory, StatusBar, StatusField, action_fields)
from realtime_sed.wiring import load_classifier, make_stream, open_actions, open_clips, open_event_log, open_source

REFRESH_S = 0.1  # the display's refresh period: at most 10 redraws a second
QUIT_TIMEOUT_S = 10.0  # how long `q` waits for the stream to close before leaving anyway


class StreamEnded(Message):
    """The stream stopped without an error: the source ran out, `--duration` was reached, or the
    stop event was set. `events` is every event the stream emitted, including those it closed on
    stop, which reach the sinks but no window."""

    def __init__(self, reason: str, events: list[Event]) -> None:
        super().__init__()
        self.reason = reason
        self.events = events


class StreamFailed(Message):
    """The source or the stream raised: a microphone unplugged, a file that stopped decoding."""

    def __init__(self, error: str, events: list[Event]) -> None:
        super().__init__()
        self.error = error
        self.events = events


class SedDashboard(App[int]):
    """Live class probabilities, their last minute, the input level, the events and the pipeline's
    health, for one source and one stream.

    Built from explicit parts so tests (and other front ends) need no settings: `source` is a
    FileSource or MicSource (or anything with `blocks()`, `close()`, `description`,
    `native_rate`, `dropped_samples`, `overflows`), `stream` a DetectionStream whose sinks the app
    closes when the stream ends, `stop` the event the source watches. With `show_timing=False`
    the wall-clock figures (inference time, real-time factor, elapsed time) read "--", which
    makes screenshots repeatable.
    """

    CSS_PATH = "dashboard.tcss"
    TITLE = "realtime-sed"
    ENABLE_COMMAND_PALETTE = False
    # Below 16 rows or 60 columns the dashboard drops widgets on purpose (dashboard.tcss): the
    # events, the level and the status bar stay; the probabilities go first, then their history.
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (16, "-short"), (40, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-slim"), (60, "-narrow"), (140, "-wide")]
    BINDINGS = [
        Binding("q", "quit_dashboard", "Quit", priority=True),
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("c", "clear_events", "Clear events"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    paused: reactive[bool] = reactive(False, init=False)
    phase: reactive[str] = reactive("starting", init=False)  # starting, live, ended, stopping, failed

    def __init__(self, source, stream: DetectionStream, *, stop: threading.Event | None = None,
                 max_seconds: float | None = None, events_path: str | None = None,
                 show_timing: bool = True) -> None:
        super().__init__()
        self.source = source
        self.stream = stream
        self.stop_event = stop if stop is not None else getattr(source, "stop", threading.Event())
        self.max_seconds = max_seconds
        self.events_path = events_path
        self.show_timing = show_timing
        self.state = DashboardState(stream.hop_s)
        self.error: str | None = None
        self.end_reason: str | None = None
        self.redraws = 0  # display refreshes that drew new windows
        self._queue: deque[WindowUpdate] = deque()  # worker appends, UI thread pops
        self._worker: Worker | None = None
        self._stream_thread: str | None = None
        # The actions' sink, if the stream has one (listen --exec/--webhook/--mqtt): its health
        # is drawn with the status.
        self._actions = next((s for s in stream.sinks if hasattr(s, "health")), None)

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        detector = self.stream.detector
        with Horizontal(id="top"):
            yield ProbabilityBars(detector.on, detector.allowed, id="bars")
            yield ProbabilityHistory(detector.on, id="history")
        yield LevelMeter(detector.config.gate_db, id="level")
        yield EventsTable(id="events")
        yield Notice(id="notice")
        if self._actions is not None or self.stream.clips is not None:
            yield ActionsBar(id="actions")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#bars").border_title = "Probabilities"
        self.query_one("#history").border_title = "Last 60 s"
        self.query_one("#events").border_title = "Events"
        self._update_status()
        self.set_interval(REFRESH_S, self._refresh_display)
        self._worker = self._run_stream()
        self.phase = "live"

    def on_unmount(self) -> None:
        # However the app ends (q, an exit from a test, ctrl+q), the worker thread must not outlive
        # it: asyncio waits for executor threads on shutdown.
        self.stop_event.set()

    # ----------------------------------------------------------------- the stream (worker thread)

    @work(thread=True, exclusive=True, exit_on_error=False, name="detection-stream")
    def _run_stream(self) -> None:
        """Runs the stream to its end on a worker thread, then closes the source and the sinks
        and tells the app why it ended."""
        self._stream_thread = threading.current_thread().name
        error = None
        try:
            self.stream.run(self.source.blocks(), self._on_window, self.stop_event, self.max_seconds)
        except SedError as exc:
            error = str(exc)
        except Exception as exc:  # a bug must still end on a readable screen, not a dead UI
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.source.close()
            for sink in self.stream.sinks:
                sink.close()
        events = list(self.stream.events)
        if error is not None:
            self.post_message(StreamFailed(error, events))
        elif self.stop_event.is_set():
            self.post_message(StreamEnded("stopped", events))
        elif self.max_seconds is not None and self.stream.stats.audio_s >= self.max_seconds:
            self.post_message(StreamEnded("duration", events))
        else:
            self.post_message(StreamEnded("end", events))

    def _on_window(self, result: WindowResult) -> None:
        """Called by the stream on the worker thread: hand the window over, nothing more."""
        self._queue.append(WindowUpdate.capture(result, self.stream.stats))

    # ----------------------------------------------------------------- the display (UI thread)

    def _drain(self) -> bool:
        """Moves every queued window into the state; True if there were any."""
        updates = []
        while self._queue:
            updates.append(self._queue.popleft())
        self.state.ingest(updates)
        return bool(updates)

    def _refresh_display(self) -> None:
        if self._drain() and not self.paused:
            self._show_state()
        self._update_status()

    def _show_state(self) -> None:
        self.redraws += 1
        if self.state.latest is not None:
            self.query_one(ProbabilityBars).show(self.state.latest.smoothed)
        self.query_one(ProbabilityHistory).show(self.state.history_matrix())
        level = self.query_one(LevelMeter)
        level.level_db = self.state.level_db
        level.hold_db = self.state.hold_db
        level.clipping = self.state.clipping
        level.clipped_blocks = self.state.clipped_blocks
        self.query_one(EventsTable).show(self.state.table_events())

    def _update_status(self) -> None:
        stats, source = self.stream.stats, self.source
        timing = self.show_timing
        kind = "mic" if getattr(source, "is_live", False) else "file"
        fields = (
            StatusField(kind, source.description),
            StatusField("", f"{source.native_rate} → {SAMPLE_RATE} Hz"),
            StatusField("hop", f"{self.stream.hop_s:.2f} s"),
            StatusField("model", self.stream.classifier.name),
            StatusField("infer", f"{stats.median_infer_ms:.1f} ms" if timing else "--"),
            StatusField("RTF", f"{stats.realtime_factor:.1f}×" if timing else "--"),
            StatusField("dropped", f"{source.dropped_samples} ({source.overflows} overflows)"),
            StatusField("audio", format_clock(self.state.audio_s)),
            StatusField("elapsed", format_clock(stats.elapsed_s) if timing else "--"),
        )
        status = self.query_one(StatusBar)
        status.fields = fields
        if self._actions is not None or self.stream.clips is not None:
            self.query_one(ActionsBar).fields = action_fields(
                self._actions.health() if self._actions is not None else (), self.stream.clips)
        status.state = "paused" if self.paused and self.phase == "live" else self.phase

    def on_stream_ended(self, message: StreamEnded) -> None:
        self._drain()
        self.state.end(message.events)
        self.end_reason = message.reason
        if not self.paused:
            self._show_state()
        if message.reason != "stopped":
            self.phase = "ended"
            what = {"end": "end of file" if not getattr(self.source, "is_live", False) else "input ended",
                    "duration": "--duration reached"}[message.reason]
            self.query_one(Notice).message = (
                f"■ {what}: {format_clock(self.state.audio_s, 1)} of audio, {len(message.events)} "
                f"events{self._log_note(' in ')} — press q to quit")
        self._update_status()

    def on_stream_failed(self, message: StreamFailed) -> None:
        self._drain()
        self.state.end(message.events)
        self.error = message.error
        self.phase = "failed"
        if not self.paused:
            self._show_state()
        self._update_status()
        self.query_one(Notice).message = f"✖ {message.error} — press q to quit"
        note = (f"{len(message.events)} events were detected before it stopped"
                + self._log_note("; they are saved in ") + ".")
        self.push_screen(StreamErrorScreen(message.error, self.source.description, note))

    def _log_note(self, prefix: str) -> str:
        return f"{prefix}{self.events_path}" if self.events_path else ""

    # ----------------------------------------------------------------- keys

    async def action_quit_dashboard(self) -> None:
        """Stops the stream, waits until the worker has closed the source and the event log, then
        leaves. Events still in progress are closed by the stream on stop and reach the log."""
        if self.phase == "live":
            self.phase = "stopping"
            self._update_status()
        self.stop_event.set()
        if self._worker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._worker.wait()), QUIT_TIMEOUT_S)
            except (WorkerCancelled, WorkerFailed, asyncio.TimeoutError):
                pass
        code = 2 if self.error else 0
        self.exit(code, return_code=code)

    async def action_quit(self) -> None:
        """ctrl+q (Textual's own quit key) leaves as cleanly as q."""
        await self.action_quit_dashboard()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            self._show_state()  # catch up with everything that arrived while paused
        if self.is_mounted:
            self._update_status()

    def action_clear_events(self) -> None:
        self.state.clear_events()
        self.query_one(EventsTable).show(self.state.table_events())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_lines(self) -> list[str]:
        """What headless listen prints at the end about the actions and the clips."""
        lines = [f"{h.name}: sent {h.sent}, failed {h.failed}, dropped {h.dropped}"
                 + (f" ({h.last_error})" if h.last_error else "")
                 for h in (self._actions.health() if self._actions is not None else ())]
        clips = self.stream.clips
        if clips is not None:
            lines.append(f"clips: written {clips.written}, failed {clips.failed} in {clips.folder}"
                         + (f" ({clips.last_error})" if clips.last_error else ""))
        return lines

    @property
    def stream_thread(self) -> str | None:
        """The name of the thread the stream ran on (for checking it is not the UI's)."""
        return self._stream_thread


def build_dashboard(settings: Settings, clf: OnnxClassifier) -> SedDashboard:
    """The dashboard of `listen`: the same source, stream and JSONL event log that headless
    `listen` builds."""
    if settings.output.events == "-":
        raise SedError("--events - writes to standard output, which the dashboard draws on; "
                       "give a file or add --no-tui")
    stop = threading.Event()
    source = open_source(settings.source, stop)
    sinks = []
    try:
        log = open_event_log(settings.output)
        sinks += [log] if log else []
        actions = open_actions(settings.output)
        sinks += [actions] if actions else []
        stream = make_stream(clf, settings, sinks, source.description, source.wall_time_at,
                             clips=open_clips(settings.output, source.description))
    except BaseException:
        source.close()
        for sink in sinks:
            sink.close()
        raise
    return SedDashboard(source, stream, stop=stop, max_seconds=settings.source.duration,
                        events_path=settings.output.events)


def run_dashboard(settings: Settings) -> int:
    """Runs the dashboard until `q`, then prints the same summary as headless `listen`."""
    app = build_dashboard(settings, load_classifier(settings.stream))
    code = app.run()
    print(app.stream.stats.summary(app.source.dropped_samples, app.source.overflows), file=sys.stderr)
    for line in app.action_lines():
        print(line, file=sys.stderr)
    if app.error:
        print(f"realtime-sed: error: {app.error}", file=sys.stderr)
        return 2
    return code or 0
