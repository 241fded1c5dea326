"""Modal screens over the dashboard: the key help, and the message shown when the input fails.

Both leave the stream as it is: help is only a view, and after a failure the stream has already
stopped and its events are in the log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP_TEXT = """\
[b]Keys[/b]
  [b]q[/b]  quit: stop the stream, close the input, flush the event log
  [b]p[/b]  pause/resume the display (audio and the log keep going)
  [b]c[/b]  clear the events table (live events stay, the log keeps all)
  [b]?[/b]  this help ([b]Esc[/b] closes it)

[b]Reading it[/b]
  Bars     smoothed probability per class, the top one highlighted;
           [b]│[/b] marks the class's on-threshold: events start above it
  History  the last 60 s per class, newest on the right; green
           where the class was above its on-threshold
  Input    RMS level in dBFS, [b]▌[/b] peak hold (2 s), [b]┊[/b] loudness
           gate (no event starts below it); CLIP lights for 2 s
  Events   newest first, [b]● live[/b] while in progress; times are
           stream time for a file, wall clock for a microphone"""


class HelpScreen(ModalScreen[None]):
    """Key and legend help. Any of Esc, ? or h closes it; q still quits from here."""

    BINDINGS = [Binding("escape,question_mark,h", "dismiss", "Close help")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(HELP_TEXT, id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "realtime-sed help"


class StreamErrorScreen(ModalScreen[None]):
    """Shown instead of a traceback when the input fails mid-stream (a microphone unplugged, a
    file that stops decoding). The dashboard stays behind it with the last figures."""

    BINDINGS = [Binding("escape", "dismiss", "Show dashboard")]

    def __init__(self, message: str, source: str, log_note: str) -> None:
        super().__init__()
        self.error_text = message
        self.source_name = source
        self.log_note = log_note

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Static(f"[b]The input stopped:[/b] {self.source_name}", id="error-title")
            yield Static(self.error_text, id="error-message", markup=False)
            yield Static(f"{self.log_note}\n\nPress [b]q[/b] to quit, [b]Esc[/b] to look at the "
                         "dashboard.", id="error-hint")

    def on_mount(self) -> None:
        self.query_one("#error-box").border_title = "Input lost"
