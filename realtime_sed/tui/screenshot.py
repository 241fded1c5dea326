"""A repeatable picture of the dashboard mid-stream: `python -m realtime_sed.tui.screenshot OUT.svg`.

The bundled demo is replayed as fast as possible up to a fixed point, then the source holds, so the
dashboard sits mid-stream (events in progress, nothing ended) for as long as a screenshot takes.
The snapshot tests use the same pieces with the wall-clock figures hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import SAMPLE_RATE
from realtime_sed.events import DetectorConfig
from realtime_sed.sources import FileSource
from realtime_sed.stream import DetectionStream
from realtime_sed.tui.app import SedDashboard

DEMO = Path(__file__).resolve().parents[2] / "demo" / "urban-demo.ogg"
HOLD_AT_S = 32.0  # the demo's dog bark at 31 s is in progress here, six events are done


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


def held_dashboard(clf: OnnxClassifier, path: str | Path = DEMO, hold_at_s: float = HOLD_AT_S,
                   hop_s: float = 0.5, show_timing: bool = True) -> SedDashboard:
    """A dashboard over a HeldFileSource with the default detector settings of `listen`."""
    stop = threading.Event()
    source = HeldFileSource(path, hold_at_s, stop)
    stream = DetectionStream(clf, hop_s, DetectorConfig.from_card(clf.thresholds), (),
                             source.description, source.wall_time_at)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the SVG to write, e.g. docs/dashboard.svg")
    parser.add_argument("--model", default="convdb")
    parser.add_argument("--size", default="100x30", help="terminal size, COLSxROWS (default 100x30)")
    parser.add_argument("--at", type=float, default=HOLD_AT_S, help="seconds of the demo to replay")
    args = parser.parse_args(argv)
    cols, rows = (int(n) for n in args.size.lower().split("x"))

    async def shoot() -> None:
        app = held_dashboard(OnnxClassifier(args.model), hold_at_s=args.at)
        async with app.run_test(size=(cols, rows)) as pilot:
            await settle(pilot)
            out = Path(args.out)
            app.save_screenshot(out.name, path=str(out.parent or "."))
            await pilot.press("q")

    asyncio.run(shoot())


if __name__ == "__main__":
    main()
