"""No action may stall audio: a paced (`--realtime`) replay is a live input (a clock thread fills a
bounded buffer whatever the detector does, and what overflows is dropped and counted), so while a
webhook hangs, a command sleeps or the broker is down, `listen --realtime` must drop no sample.
The first test shows the measure can fail: a sink that does block the stream makes the same paced
source drop samples."""

from __future__ import annotations

import http.server
import re
import threading
import time

import pytest
import soundfile as sf

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import CLASSES
from realtime_sed.events import DetectorConfig
from realtime_sed.sinks import Sink
from realtime_sed.sources import FileSource
from realtime_sed.stream import DetectionStream
from tests.conftest import run_cli
from tests.shipped import MODEL, TWO_EVENT_STRETCH_S
from tests.test_actions import Broker, Subscriber, free_port, needs_mosquitto

SECONDS = TWO_EVENT_STRETCH_S[1] - TWO_EVENT_STRETCH_S[0]
SUMMARY = re.compile(r"(\d+) windows, (\d+) events, ([\d.]+) s of audio .* dropped (\d+) samples, (\d+) overflows")


@pytest.fixture
def stretch(tmp_path, demo_audio):
    """The demo's two-event stretch (7 s), as a file to replay in real time."""
    start, end = TWO_EVENT_STRETCH_S
    path = tmp_path / "stretch.wav"
    sf.write(path, demo_audio[int(start * 22050): int(end * 22050)], 22050)
    return path


class Stalling(Sink):
    """What an action must never be: it holds the stream for `stall_s` at its first window."""

    def __init__(self, stall_s: float):
        self.stall_s = stall_s

    def window(self, filename, start_s, probs, wall):
        time.sleep(self.stall_s)
        self.stall_s = 0.0

    def event(self, filename, event):
        pass


def test_a_paced_file_drops_samples_when_the_stream_stalls(stretch):
    clf = OnnxClassifier(MODEL)
    for stall, buffer_s in ((0.0, 1.0), (3.0, 1.0)):
        source = FileSource(stretch, realtime=True, buffer_seconds=buffer_s)
        stream = DetectionStream(clf, 0.5, DetectorConfig.from_card(clf.thresholds), [Stalling(stall)])
        t0 = time.monotonic()
        stream.run(source.blocks())
        source.close()
        assert time.monotonic() - t0 >= SECONDS - 0.3  # paced
        if stall == 0:
            assert source.dropped_samples == 0 and stream.stats.audio_s == pytest.approx(SECONDS, abs=0.01)
        else:  # 4 s in, 3 s of stall with a 1 s buffer: about 2 s of the last 3 s are lost
            assert source.dropped_samples > 0.5 * 22050


def listen_paced(stretch, *action_args, timeout=90):
    r = run_cli("listen", "--no-tui", "--file", stretch, "--realtime", *action_args, timeout=timeout)
    assert r.returncode == 0, r.stderr
    m = SUMMARY.search(r.stderr)
    assert m, r.stderr
    windows, events, audio_s, dropped, overflows = m.groups()
    assert int(events) >= 2 and float(audio_s) == pytest.approx(SECONDS, abs=0.05)
    assert (int(dropped), int(overflows)) == (0, 0), r.stderr
    return r


class Hanging(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(30)  # far past the webhook's timeout and the buffer

    def log_message(self, *args):
        pass


def test_a_hanging_webhook_drops_no_audio(stretch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = listen_paced(stretch, "--webhook", f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
    m = re.search(r"webhook: sent (\d+), failed (\d+), dropped (\d+)", r.stderr)
    assert m and int(m.group(1)) == 0 and int(m.group(2)) + int(m.group(3)) >= 2, r.stderr


def test_a_sleeping_command_drops_no_audio(stretch):
    r = listen_paced(stretch, "--exec", "sleep 30", "--exec-timeout", "20")
    m = re.search(r"exec: sent (\d+), failed (\d+), dropped (\d+)", r.stderr)
    assert m and int(m.group(1)) == 0 and int(m.group(2)) + int(m.group(3)) >= 2, r.stderr


@needs_mosquitto
def test_a_broker_that_is_down_drops_no_audio(stretch, tmp_path):
    down = free_port()  # nothing listens there
    r = listen_paced(stretch, "--mqtt", f"mqtt://127.0.0.1:{down}")
    m = re.search(r"mqtt: sent (\d+), failed (\d+), dropped (\d+)", r.stderr)
    assert m and int(m.group(1)) == 0, r.stderr
    # and one that goes away mid-run: stopped once the broker has every class's first OFF state
    # from listen (so it was up at the start), seen by a subscriber of its own. listen's own "sent"
    # count cannot show that: an acknowledgement may be lost with the broker that sent it.
    broker = Broker(tmp_path)
    broker.start()
    seen = Subscriber(broker.port, "realtime-sed/#")

    def states() -> set[str]:
        return {t for t, p, _ in list(seen.messages) if p == "OFF"}

    def stop_when_online():
        deadline = time.time() + 60
        while len(states()) < len(CLASSES) and time.time() < deadline:
            time.sleep(0.05)
        seen.close()
        broker.stop()

    stopper = threading.Thread(target=stop_when_online)
    stopper.start()
    try:
        r = listen_paced(stretch, "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
    finally:
        stopper.join()
    assert states() == {f"realtime-sed/{c}" for c in CLASSES}, r.stderr  # it was up at the start
    assert re.search(r"mqtt: sent (\d+), failed (\d+), dropped (\d+)", r.stderr), r.stderr
