"""The microphone path for real: PortAudio, ALSA, a capture stream, the CLI in a subprocess.

No sound card is needed: `alsa_virtual_mic.VirtualMic` defines an ALSA capture device (the `file`
plugin over `null`) in the test's own ALSA config, fed with real audio (a piece of the demo,
48000 Hz stereo, so the application resamples and downmixes), either paced in real time by a writer
thread or unpaced (far faster than real time). These tests are skipped only where the ALSA or
PortAudio library is missing; the missing-PortAudio message itself is tested everywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from tests.alsa_virtual_mic import DEVICE_NAME, VirtualMic, portaudio_unavailable
from tests.conftest import REPO, run_cli
from tests.shipped import STEADY_LABEL

UNAVAILABLE = portaudio_unavailable()
needs_alsa = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))

RATE = 48000  # the virtual microphone's native rate, like most USB microphones
LABEL = STEADY_LABEL  # a demo class the shipped model recognises from a real clip
SUMMARY = re.compile(r"(\d+) windows, (\d+) events, ([\d.]+) s of audio in ([\d.]+) s, .*"
                     r"dropped (\d+) samples, (\d+) overflows")


@pytest.fixture
def stereo_clip(clip_file) -> np.ndarray:
    """12 s of a real demo clip (looped), 48000 Hz, stereo: [frames, 2] float32."""
    audio, rate = sf.read(clip_file(LABEL, rate=RATE, channels=2, seconds=12), dtype="float32")
    assert rate == RATE and audio.shape[1] == 2
    return audio


def own_lines(stderr: str) -> list[str]:
    """stderr without alsa-lib's own diagnostics (printed by the C library, not by us)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("ALSA lib ")]


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode not in (0, None), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = own_lines(proc.stderr)
    errors = [line for line in lines if line.startswith("realtime-sed: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def summary(stderr: str) -> dict:
    m = SUMMARY.search(stderr)
    assert m, stderr
    keys = ("windows", "events", "audio_s", "elapsed_s", "dropped", "overflows")
    return {k: float(v) for k, v in zip(keys, m.groups())}


@needs_alsa
def test_listen_detects_a_real_clip_from_a_paced_microphone(tmp_path, stereo_clip):
    events = tmp_path / "events.jsonl"
    duration = 10.0
    with VirtualMic(tmp_path, stereo_clip, RATE) as mic:
        started = time.time()
        proc = run_cli("listen", "--no-tui", "--device", DEVICE_NAME, "--duration", duration,
                       "--events", events, timeout=60, **mic.subprocess_kw())
        ended = time.time()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"listening to {DEVICE_NAME} ({RATE} Hz -> 22050 Hz)" in proc.stderr
    stats = summary(proc.stderr)
    assert stats["audio_s"] >= duration
    # Real-time pace: the audio took about as long to arrive as it lasts (the first fraction of a
    # second comes at once from the socket's buffer) and the consumer kept up.
    assert stats["elapsed_s"] >= duration - 1.5, stats
    assert stats["dropped"] == 0 and stats["overflows"] == 0, stats

    found = [json.loads(line) for line in events.read_text().splitlines()]
    found = [e for e in found if e["type"] == "event"]
    hits = [e for e in found if e["label"] == LABEL]
    assert hits, f"no {LABEL} event from the microphone: {found}"
    assert sum(e["duration"] for e in hits) >= duration / 2, hits
    for e in found:  # microphone events carry wall-clock time, and it is now
        assert e["file"] == DEVICE_NAME
        assert e["wall_onset"] is not None, e
        assert started <= e["wall_onset"] <= ended, (started, e, ended)
        # the stream's first sample was heard after the command started and early enough for
        # `duration` seconds of real-time audio to follow before it ended
        stream_start = e["wall_onset"] - e["onset"]
        assert started <= stream_start <= ended - duration + 1.5, (started, e, ended)


@needs_alsa
def test_unpaced_microphone_drops_are_counted(tmp_path, stereo_clip):
    """The `null` slave delivers audio far faster than real time: the ring buffer (10 s) fills
    and the drops are counted, reported and survived."""
    with VirtualMic(tmp_path, stereo_clip, RATE, paced=False) as mic:
        proc = run_cli("listen", "--no-tui", "--device", DEVICE_NAME, "--duration", 30,
                       timeout=60, **mic.subprocess_kw())
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stats = summary(proc.stderr)
    assert stats["audio_s"] >= 30 and stats["elapsed_s"] < stats["audio_s"], stats
    assert stats["dropped"] > 0, stats  # the ring overflowed: the newest samples were dropped
    # PortAudio's own overrun flag stays down: the callback only copies, so even at this rate it
    # keeps up, and every lost sample is one the ring dropped and counted above.
    assert stats["overflows"] == 0, stats


@needs_alsa
def test_devices_lists_the_virtual_microphone(tmp_path, stereo_clip):
    with VirtualMic(tmp_path, stereo_clip, RATE, paced=False) as mic:
        proc = run_cli("devices", timeout=60, **mic.subprocess_kw())
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^\s*\d+\s+{DEVICE_NAME}\s+\(\d+ ch, {RATE} Hz, ALSA\)$", proc.stdout, re.M), \
        proc.stdout


@needs_alsa
@pytest.mark.parametrize("device, message", [
    ("no-such-microphone", "no input device matches 'no-such-microphone'"),
    ("99", "no input device with index 99"),
])
def test_unknown_device_is_a_one_line_error(tmp_path, stereo_clip, device, message):
    with VirtualMic(tmp_path, stereo_clip, RATE, paced=False) as mic:
        proc = run_cli("listen", "--no-tui", "--device", device, "--duration", 1,
                       timeout=60, **mic.subprocess_kw())
    line = assert_one_line_error(proc, message, "input devices:", DEVICE_NAME)
    assert proc.returncode == 2, line


HIDE_PORTAUDIO = """
import ctypes.util, importlib.abc, runpy, sys
real = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if "portaudio" in name else real(name)

class NoBundledPortAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "_sounddevice_data":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoBundledPortAudio())
sys.argv = ["realtime-sed", *sys.argv[1:]]
runpy.run_module("realtime_sed", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("args", [["devices"], ["listen", "--no-tui", "--duration", "1"]],
                         ids=["devices", "listen"])
def test_missing_portaudio_names_the_package(args):
    """Simulated: the real library is hidden from sounddevice's lookup (the real path is tested
    above, this is only about the message)."""
    proc = subprocess.run([sys.executable, "-c", HIDE_PORTAUDIO, *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    line = assert_one_line_error(proc, "PortAudio", "apt-get install libportaudio2")
    assert proc.returncode == 2, line


@needs_alsa
def test_microphone_that_stops_is_a_one_line_error(tmp_path, stereo_clip):
    """The device stays open but stops delivering (a hung driver): after 5 s without audio the
    command ends with one line, instead of waiting or hanging in PortAudio's stop."""
    events = tmp_path / "events.jsonl"
    with VirtualMic(tmp_path, stereo_clip, RATE, hang_after_s=3.0) as mic:
        started = time.monotonic()
        proc = run_cli("listen", "--no-tui", "--device", DEVICE_NAME, "--duration", 30,
                       "--events", events, timeout=60, **mic.subprocess_kw())
        took = time.monotonic() - started
    assert_one_line_error(proc, f"no audio from {DEVICE_NAME!r} for 5 s")
    assert proc.returncode == 2
    assert took < 30, took  # it gave up on the device rather than waiting for 30 s of audio
    # what was heard before the device stopped was analysed and its events were written
    assert events.exists()
    for line in events.read_text().splitlines():
        assert json.loads(line)["type"] == "event"
