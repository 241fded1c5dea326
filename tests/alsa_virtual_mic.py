"""An ALSA virtual microphone for tests: no sound card, no kernel module, no sound server.

ALSA's `file` PCM plugin over the `null` PCM is a capture device whose samples come from `infile`.
A test writes an asoundrc defining one such device and runs the real CLI in a subprocess whose
XDG_CONFIG_HOME points at it (alsa.conf loads `$XDG_CONFIG_HOME/alsa/asoundrc`), so PortAudio
lists and opens it like any microphone and nothing outside the test's tmp folder is touched.

What makes it behave (found with alsa-lib 1.2.8 and PortAudio 19.6):

* The `null` slave never waits, so reads go as fast as the reader can go: with a regular file as
  `infile` the device is far faster than real time, and after the file's end it returns stale
  buffer contents at the same speed. `VirtualMic(..., paced=False)` is that.
* For real-time pace the reads must block on the input. A FIFO does block, but `read()` on a FIFO
  returns whatever is there, and the file plugin then leaves the rest of the period stale: a glitch
  at every starvation, i.e. at every write. A Unix stream socket with SO_RCVLOWAT set very high
  makes every `read()` wait until all the bytes it asked for have arrived, so a writer thread that
  sends audio at real-time pace gives a clean, real-time stream. The socket's read end is inherited
  by the subprocess (`pass_fds`) and named by number: `infile <fd>`. As the plugin never closes an
  inherited fd, PortAudio may open and close the device as often as it likes while listing devices.
* The file plugin reads `infile` for every frame the slave offers when the stream maps its buffer,
  whatever the caller then commits; a converting plugin between PortAudio and the file PCM
  (`plug` converting the format, rate or channel count, `route`, `multi`) commits less and loses
  most of the audio. So the device is a `plug` whose slave fixes FLOAT_LE, the rate and the
  channel count: opened as float32 at its default rate with its channels, nothing is converted and
  the raw float32 data reach the callback bit for bit. (Raw S16_LE through `plug` loses about two
  thirds of the frames.) Resampling and downmixing are then the application's: 48000 Hz stereo in.
* PortAudio reports such a plugin device with 128 input channels, as it does ALSA's `default`,
  `pulse` or `pipewire` devices on a desktop.
"""

from __future__ import annotations

import ctypes.util
import select
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

DEVICE_NAME = "sed_virtual_mic"

ASOUNDRC = """\
# realtime-sed test: a virtual microphone ({mode}), {rate} Hz, {channels} channels, float32
pcm.{name} {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile {infile}
            format "raw"
        }}
        format FLOAT_LE
        rate {rate}
        channels {channels}
    }}
}}
"""


def portaudio_unavailable() -> str | None:
    """Why the virtual microphone cannot work here, or None. Only a missing ALSA or PortAudio
    library counts: anything else that goes wrong is a failure, not a reason to skip."""
    if not sys.platform.startswith("linux"):
        return "the ALSA virtual microphone needs Linux"
    if ctypes.util.find_library("asound") is None:
        return "ALSA (libasound2) is not installed"
    if ctypes.util.find_library("portaudio") is None:
        return "PortAudio is not installed: apt-get install libportaudio2"
    return None


class VirtualMic:
    """One virtual capture device, `DEVICE_NAME`, playing `audio` ([frames, channels] float32 at
    `rate`) in a loop. Paced: a thread sends it in real time through a socket; after
    `hang_after_s` seconds of audio (or on `hang()`) the flow stops with the device still open,
    like a microphone that stops answering. Unpaced: the device reads a file as fast as it is
    asked, and stale data after the file's end. Use it as a context manager: leaving it stops the
    thread and closes the socket."""

    def __init__(self, folder: Path, audio: np.ndarray, rate: int = 48000, paced: bool = True,
                 hang_after_s: float | None = None, chunk_s: float = 0.01):
        audio = np.ascontiguousarray(audio, dtype="<f4")
        if audio.ndim == 1:
            audio = audio[:, None]
        self.audio, self.rate, self.channels = audio, int(rate), audio.shape[1]
        self.paced = paced
        self.hang_after = None if hang_after_s is None else int(hang_after_s * rate)
        self.chunk = max(1, int(chunk_s * rate))
        self.frames_sent = 0
        self.config_home = Path(folder) / "xdg-config"
        (self.config_home / "alsa").mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._hang = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        if paced:
            self._reader, self._writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            # read() returns only once every byte asked for is there: no partial, glitching reads
            self._reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1 << 30)
            self._writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)  # little lag
            self._writer.setblocking(False)
            infile = str(self._reader.fileno())
        else:
            raw = Path(folder) / "virtual-mic.f32"
            audio.tofile(raw)
            infile = f'"{raw}"'
        mode = "paced by a socket" if paced else "unpaced file"
        (self.config_home / "alsa" / "asoundrc").write_text(ASOUNDRC.format(
            mode=mode, name=DEVICE_NAME, infile=infile, rate=self.rate, channels=self.channels))

    @property
    def asoundrc(self) -> str:
        return (self.config_home / "alsa" / "asoundrc").read_text()

    def env(self) -> dict:
        """Environment for a subprocess that should see (only) this device's ALSA config."""
        return {"XDG_CONFIG_HOME": str(self.config_home)}

    def subprocess_kw(self) -> dict:
        """Keyword arguments for subprocess.run / run_cli: the env, and the socket to inherit."""
        kw: dict = {"env": self.env()}
        if self._reader is not None:
            kw["pass_fds"] = (self._reader.fileno(),)
        return kw

    def __enter__(self) -> "VirtualMic":
        if self.paced:
            self._thread = threading.Thread(target=self._write_loop, name="virtual-mic", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def hang(self) -> None:
        """From now on nothing more arrives, but the device stays open: reads block for ever."""
        self._hang.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            assert not self._thread.is_alive(), "the virtual microphone's writer did not stop"
            self._thread = None
        for s in (self._writer, self._reader):
            if s is not None:
                s.close()
        self._writer = self._reader = None

    def _send(self, data: bytes) -> bool:
        """Sends all of `data` unless stopped; False if the reader is gone."""
        view, off = memoryview(data), 0
        while off < len(view):
            if self._stop.is_set():
                return False
            _, writable, _ = select.select([], [self._writer], [], 0.05)
            if writable:
                try:
                    off += self._writer.send(view[off:])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # BrokenPipe / ConnectionReset: nobody reads any more
                    return False
        return True

    def _write_loop(self) -> None:
        t0, pos, n = time.monotonic(), 0, len(self.audio)
        while not self._stop.is_set():
            if self.hang_after is not None and self.frames_sent >= self.hang_after:
                self._hang.set()
            if self._hang.is_set():
                self._stop.wait(0.05)
                continue
            idx = np.arange(pos, pos + self.chunk) % n
            if not self._send(self.audio[idx].tobytes()):
                return
            pos = (pos + self.chunk) % n
            self.frames_sent += self.chunk
            ahead = t0 + self.frames_sent / self.rate - time.monotonic()
            if ahead > 0:
                self._stop.wait(ahead)
            elif ahead < -0.2:  # nobody read for a while (start-up): go on from now, no burst
                t0 = time.monotonic() - self.frames_sent / self.rate
