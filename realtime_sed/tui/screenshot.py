"""A repeatable picture of the dashboard mid-stream: `realtime-sed screenshot docs/dashboard.svg`.

The bundled demo is replayed as fast as possible up to a fixed point, then the source holds, so the
dashboard sits mid-stream (events in progress, nothing ended) for as long as a screenshot takes.
The snapshot tests use the same pieces with the wall-clock figures hidden.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import DEMO_FILE, SAMPLE_RATE
from realtime_sed.settings import HOLD_AT_S, Settings
from realtime_sed.sources import FileSource
from realtime_sed.tui.app import SedDashboard
from realtime_sed.wiring import load_classifier, make_stream


class HeldFileSource(FileSource):
    """Replays a file as fast as possible up to `hold_at_s` seconds of audio, then delivers nothing
    more until stopped, like a live input that has gone quiet."""

    def __init__(self, path: str | Path, hold_at_s: float, stop: threading.Event | None = None):
        super().__init__(path, stop=stop)
        self.hold_at_s = hold_at_s
        self.holding = threading.Event()  # set once every block before the hold is processed

    def blocks(self) -> Iterator[np.ndarray]:
        produced = 0
        for block in super().blocks():
            yield block
            produced += len(block)
            if produced >= self.hold_at_s * SAMPLE_RATE:
                break
        self.holding.set()
        self.stop.wait()


def held_dashboard(clf: OnnxClassifier, path: str | Path = DEMO_FILE, hold_at_s: float = HOLD_AT_S,
                   settings: Settings | None = None, show_timing: bool = True) -> SedDashboard:
    """A dashboard over a HeldFileSource, wired as `listen` wires it (default settings unless
    given)."""
    stop = threading.Event()
    source = HeldFileSource(path, hold_at_s, stop)
    stream = make_stream(clf, settings or Settings(), (), source.description, source.wall_time_at)
    return SedDashboard(source, stream, stop=stop, show_timing=show_timing)


async def settle(pilot, timeout: float = 60.0) -> None:
    """Waits until the source holds and every window it produced is on screen."""
    app: SedDashboard = pilot.app
    deadline = time.monotonic() + timeout
    while not (app.source.holding.is_set() and app.state.windows == app.stream.stats.windows
               and app.state.windows > 0):
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not settle")
        await pilot.pause(0.05)
    await pilot.pause(0.2)  # one more refresh tick, then a frame


def run_screenshot(settings: Settings) -> int:
    """`realtime-sed screenshot`: the demo held at `screenshot.at` seconds, drawn into an SVG."""
    shot = settings.screenshot
    cols, rows = shot.terminal_size

    async def shoot() -> None:
        app = held_dashboard(load_classifier(settings.stream), hold_at_s=shot.at, settings=settings)
        async with app.run_test(size=(cols, rows)) as pilot:
            await settle(pilot)
            out = Path(shot.out)
            app.save_screenshot(out.name, path=str(out.parent or "."))
            await pilot.press("q")

    asyncio.run(shoot())
    return 0
