"""The dashboard's widgets. Each draws one kind of figure from values the app assigns to its
reactives; none of them reads the stream or computes a probability. Colours live in
dashboard.tcss, reached through component classes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from realtime_sed.constants import CLASSES
from realtime_sed.events import SILENCE_DBFS, Event
from realtime_sed.tui.state import format_start

EIGHTHS = " ▏▎▍▌▋▊▉█"  # horizontal partial blocks, 0/8 to 8/8 of a cell
LEVELS = " ▁▂▃▄▅▆▇█"  # vertical partial blocks, 0/8 to 8/8 of a cell
LABEL_WIDTH = max(len(c) for c in CLASSES) + 1
METER_FLOOR_DB = -60.0  # the level meter spans METER_FLOOR_DB .. 0 dBFS


class Runs:
    """Builds a Text from cells, one span per run of equal style rather than one per cell:
    Textual's cost of drawing a line grows with its number of spans."""

    def __init__(self) -> None:
        self.text = Text()
        self._chars: list[str] = []
        self._style: Style | None = None

    def add(self, char: str, style: Style) -> None:
        if style != self._style:
            self._flush()
            self._style = style
        self._chars.append(char)

    def _flush(self) -> None:
        if self._chars:
            self.text.append("".join(self._chars), self._style)
            self._chars = []

    def done(self) -> Text:
        self._flush()
        return self.text


class CachedStyles:
    """Keeps a widget's styles between frames.

    Textual drops its own style cache on every refresh, and looking styles up again costs more
    than drawing these widgets; they only change when CSS classes or the theme do, which is
    when `notify_style_update` is called."""

    def notify_style_update(self) -> None:
        self.__dict__.pop("_style_cache", None)
        super().notify_style_update()

    def style_of(self, component: str | None = None, partial: bool = True) -> Style:
        """A component's style, `partial` meaning not blended with the background; with no
        component, the widget's own full style."""
        cache = self.__dict__.setdefault("_style_cache", {})
        key = (component, partial)
        style = cache.get(key)
        if style is None:
            style = cache[key] = (self.rich_style if component is None
                                  else self.get_component_rich_style(component, partial=partial))
        return style


class StyledWidget(CachedStyles, Widget):
    """A widget that renders with cached component styles."""


def _cells(value: float, width: int) -> tuple[int, int]:
    """How many whole cells and eighths a fraction of `width` fills."""
    eighths = int(round(min(max(value, 0.0), 1.0) * width * 8))
    return divmod(eighths, 8)


class ProbabilityBars(StyledWidget):
    """Each class's smoothed probability as a bar, the top class highlighted, with a tick at the
    class's on-threshold: the tick makes "why is there no event?" answerable at a glance, since
    the bar must cross it. Classes that may not raise events (`--classes`) are dimmed.

    One widget for all classes rather than one per class: a frame then costs one render instead
    of ten, which matters at a few redraws a second."""

    COMPONENT_CLASSES = {
        "bars--label", "bars--label-top", "bars--label-disallowed", "bars--fill", "bars--fill-top",
        "bars--over", "bars--track", "bars--threshold", "bars--value", "bars--value-top",
    }

    values: reactive[tuple[float, ...]] = reactive(lambda: (0.0,) * len(CLASSES))
    top: reactive[int] = reactive(-1)

    def __init__(self, thresholds: Sequence[float], allowed: Sequence[bool] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = [float(t) for t in thresholds]
        self.allowed = [bool(a) for a in allowed] if allowed is not None else [True] * len(CLASSES)

    def show(self, smoothed: Sequence[float]) -> None:
        """Takes one window's smoothed probabilities, as the stream gave them."""
        self.values = tuple(float(p) for p in smoothed)
        self.top = int(np.argmax(smoothed))

    @property
    def top_class(self) -> str | None:
        return CLASSES[self.top] if self.top >= 0 else None

    def _bar(self, c: int, width: int) -> Text:
        style = self.style_of
        value, threshold, top = self.values[c], self.thresholds[c], c == self.top
        fill = style("bars--over" if value >= threshold else "bars--fill-top" if top else "bars--fill")
        track, tick = style("bars--track"), style("bars--threshold")
        filled, on_track, on_fill = fill + track, tick + track, tick + Style(bgcolor=fill.color)
        full, part = _cells(value, width)
        mark = min(width - 1, int(threshold * width))
        runs = Runs()
        for i in range(width):
            if i == mark:
                runs.add("│", on_fill if i < full else on_track)
            elif i < full:
                runs.add("█", filled)
            elif i == full and part:
                runs.add(EIGHTHS[part], filled)
            else:
                runs.add(" ", track)
        return runs.done()

    def render(self) -> Text:
        style = self.style_of
        rows_per_class = max(1, self.size.height // len(CLASSES))
        bar_width = max(4, self.size.width - LABEL_WIDTH - 5)
        lines = []
        for c, name in enumerate(CLASSES):
            top = c == self.top
            label = style("bars--label-top" if top else "bars--label" if self.allowed[c]
                          else "bars--label-disallowed")
            bar = self._bar(c, bar_width)
            lines.append(Text.assemble((name.ljust(LABEL_WIDTH), label), bar,
                                       (f" {self.values[c]:4.2f}",
                                        style("bars--value-top" if top else "bars--value"))))
            lines += [Text(" " * LABEL_WIDTH) + bar] * (rows_per_class - 1)
        return Text("\n").join(lines)


class ProbabilityHistory(StyledWidget):
    """Each class's smoothed probability over the last 60 s of stream, one strip per class,
    aligned row for row with the bars beside it. Columns above a class's on-threshold stand out."""

    COMPONENT_CLASSES = {"history--low", "history--high"}

    revision: reactive[int] = reactive(0)

    def __init__(self, thresholds: Sequence[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = np.asarray(thresholds, np.float64)
        self._matrix = np.full((1, len(CLASSES)), np.nan)

    def show(self, matrix: np.ndarray) -> None:
        """Takes a (time, classes) matrix, oldest first, NaN where there is no window yet."""
        self._matrix = matrix
        self.revision += 1

    def _columns(self, width: int) -> np.ndarray:
        """(width, classes): the highest probability within each column's slice of time,
        -1 for columns with no window."""
        filled = np.where(np.isnan(self._matrix), -1.0, self._matrix)
        starts = np.floor(np.linspace(0, len(filled), width, endpoint=False)).astype(int)
        return np.maximum.reduceat(filled, starts, axis=0)

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if width < 1 or height < 1:
            return Text()
        rows_per_class = max(1, height // len(CLASSES))
        cols = self._columns(width)
        low, high = self.style_of("history--low"), self.style_of("history--high")
        # eighths of a cell for each column, at least one for any window so silence still draws
        # a baseline, -1 where there is no window yet
        eighths = np.where(cols < 0, -1, np.maximum(1, np.rint(cols * 8 * rows_per_class))).astype(int)
        above = cols >= self.thresholds
        lines = []
        for c in range(len(CLASSES)):
            edges = np.flatnonzero(np.diff(above[:, c])) + 1  # where the style changes
            for k in range(rows_per_class):  # k = 0 is the top row of this class's strip
                level = np.clip(eighths[:, c] - 8 * (rows_per_class - 1 - k), 0, 8)
                chars = "".join(LEVELS[n] for n in level)
                line = Text()
                for start, end in zip([0, *edges], [*edges, width]):
                    line.append(chars[start:end], high if above[start, c] else low)
                lines.append(line)
        return Text("\n").join(lines)


class LevelMeter(StyledWidget):
    """Input level in dBFS (RMS of the latest block) with peak hold, the loudness gate below which
    no event starts, and a clipping light that stays on for two seconds after a clipped block."""

    COMPONENT_CLASSES = {
        "level-meter--label", "level-meter--low", "level-meter--mid", "level-meter--high",
        "level-meter--track", "level-meter--hold", "level-meter--gate", "level-meter--clip",
        "level-meter--clip-off", "level-meter--value",
    }
    MID_DB, HIGH_DB = -18.0, -6.0

    level_db: reactive[float] = reactive(SILENCE_DBFS)
    hold_db: reactive[float] = reactive(SILENCE_DBFS)
    clipping: reactive[bool] = reactive(False)
    clipped_blocks: reactive[int] = reactive(0)

    def __init__(self, gate_db: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gate_db = gate_db

    @staticmethod
    def _fraction(db: float) -> float:
        return min(1.0, max(0.0, (db - METER_FLOOR_DB) / -METER_FLOOR_DB))

    def render(self) -> Text:
        style = self.style_of
        clip_text = f" CLIP {self.clipped_blocks} " if self.clipped_blocks else " CLIP "
        # `+ 0.0` turns a rounded -0.0 into 0.0
        readout = f" {round(self.level_db, 1) + 0.0:6.1f} dBFS  peak {round(self.hold_db, 1) + 0.0:6.1f} "
        width = max(8, self.size.width - 6 - len(readout) - len(clip_text))
        track = style("level-meter--track")
        zones = [(self.HIGH_DB, style("level-meter--high") + track),
                 (self.MID_DB, style("level-meter--mid") + track),
                 (-math.inf, style("level-meter--low") + track)]
        full = int(self._fraction(self.level_db) * width)
        hold = min(width - 1, int(self._fraction(self.hold_db) * width))
        gate = min(width - 1, int(self._fraction(self.gate_db) * width))
        hold_style = style("level-meter--hold") + track
        gate_style = style("level-meter--gate") + track
        runs = Runs()
        for i in range(width):
            cell_db = METER_FLOOR_DB * (1 - (i + 0.5) / width)
            zone = next(s for lo, s in zones if cell_db >= lo)
            if i == hold and self.hold_db > METER_FLOOR_DB:
                runs.add("▌", hold_style)
            elif i < full:
                runs.add("█", zone)
            elif i == gate:
                runs.add("┊", gate_style)
            else:
                runs.add(" ", track)
        bar = runs.done()
        return Text.assemble(
            ("Input ", style("level-meter--label")), bar, (readout, style("level-meter--value")),
            (clip_text, style("level-meter--clip" if self.clipping else "level-meter--clip-off")))


class EventsTable(CachedStyles, ScrollView):
    """Detected events, newest first, under a fixed header; rows of events still in progress are
    marked live. Drawn line by line (only the visible rows), and only when a row changes."""

    COMPONENT_CLASSES = {"events-table--header", "events-table--row", "events-table--row-alt",
                         "events-table--live"}
    COLUMNS = (("Start", 8, False), ("End", 8, False), ("Class", LABEL_WIDTH - 1, False),
               ("Peak", 5, True), ("Duration", 8, True), ("", 7, False))

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: list[tuple[str, ...]] = []
        self._live: list[bool] = []
        self._line_width = sum(width + 2 for _, width, _ in self.COLUMNS) - 1

    @staticmethod
    def row(ev: Event) -> tuple[str, ...]:
        end = replace(ev, onset=ev.offset, wall_onset=None if ev.wall_onset is None
                      else ev.wall_onset + ev.duration)
        return (format_start(ev), format_start(end), ev.label, f"{ev.peak:.2f}",
                f"{ev.duration:5.1f} s", "● live" if ev.active else "")

    def show(self, events: Sequence[Event]) -> None:
        rows = [self.row(ev) for ev in events]
        if rows == self._shown:
            return
        self._shown, self._live = rows, [ev.active for ev in events]
        self.virtual_size = Size(self._line_width, len(rows) + 1)
        self.refresh()

    @property
    def shown(self) -> list[tuple[str, ...]]:
        """The rows as text, top to bottom."""
        return list(self._shown)

    @property
    def row_count(self) -> int:
        return len(self._shown)

    def _text(self, cells: Sequence[str]) -> str:
        return " " + "  ".join(cell.rjust(width) if right else cell.ljust(width)
                              for cell, (_, width, right) in zip(cells, self.COLUMNS))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.style_of()
        if y == 0:  # the header stays put while the rows scroll under it
            text = self._text([label for label, _, _ in self.COLUMNS])
            style = self.style_of("events-table--header", partial=False)
        else:
            index = scroll_y + y - 1
            if index >= len(self._shown):
                return Strip.blank(width, base)
            text = self._text(self._shown[index])
            style = self.style_of("events-table--live" if self._live[index] else
                                  "events-table--row-alt" if index % 2 else "events-table--row",
                                  partial=False)
        strip = Strip([Segment(text, base + style)], len(text))
        return strip.crop_extend(scroll_x, scroll_x + width, base + style)


@dataclass(frozen=True)
class StatusField:
    name: str
    value: str


class FieldsBar(StyledWidget):
    """A badge and named fields: one line when the terminal is wide enough, more when not, never
    cutting a field in two."""

    COMPONENT_CLASSES = {"status-bar--name", "status-bar--value", "status-bar--state"}
    SEPARATOR = "  "

    fields: reactive[tuple[StatusField, ...]] = reactive(tuple)

    def watch_fields(self) -> None:
        # A relayout redraws the whole screen, so ask for one only when the bar needs another
        # line, not every time a figure changes.
        if self.size.width and len(self._lines(self.size.width)) != self.size.height:
            self.refresh(layout=True)

    def badge(self) -> str:
        raise NotImplementedError

    def _pieces(self) -> list[Text]:
        name, value = self.style_of("status-bar--name"), self.style_of("status-bar--value")
        state = self.style_of("status-bar--state")
        pieces = [Text(f" {self.badge()} ", state)]
        for f in self.fields:
            pieces.append(Text.assemble((f"{f.name} ", name), (f.value, value)) if f.name
                          else Text(f.value, value))
        return pieces

    def _lines(self, width: int) -> list[Text]:
        lines: list[Text] = []
        line = Text()
        for piece in self._pieces():
            if line.cell_len and line.cell_len + len(self.SEPARATOR) + piece.cell_len > width:
                lines.append(line)
                line = Text()
            if line.cell_len:
                line.append(self.SEPARATOR)
            line.append_text(piece)
        lines.append(line)
        return lines

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines(max(1, width)))

    def render(self) -> Text:
        return Text("\n").join(self._lines(max(1, self.size.width)))


class StatusBar(FieldsBar):
    """Where the audio comes from and how the pipeline keeps up."""

    state: reactive[str] = reactive("starting")

    def watch_state(self, old: str, new: str) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")
        self.watch_fields()

    def badge(self) -> str:
        return self.state.upper()


class ActionsBar(FieldsBar):
    """Each action's health (sent, failed, dropped; the broker's state) and the clips written, in
    the status bar's style; only there when `listen` has actions or --clips."""

    def badge(self) -> str:
        return "ACTIONS"


def action_fields(health, clips=None) -> tuple[StatusField, ...]:
    """ActionHealth rows (and a ClipRecorder) as the actions bar's fields."""
    out = []
    for h in health:
        state = "" if h.state == "ok" else f" ({h.state})"
        out.append(StatusField(h.name, f"sent {h.sent} failed {h.failed} dropped {h.dropped}{state}"))
    if clips is not None:
        out.append(StatusField("clips", f"written {clips.written} failed {clips.failed}"))
    return tuple(out)


class Notice(Static):
    """A one-line message under the events table (end of file, stream stopped); hidden when empty."""

    message: reactive[str] = reactive("")

    def watch_message(self, message: str) -> None:
        self.update(message)
        self.set_class(bool(message), "-visible")
