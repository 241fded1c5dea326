"""Audio sources: a microphone or a file, each yielding float32 mono blocks at 22050 Hz.

Resampling and downmixing happen here, once; everything downstream is the same for both.
sounddevice (and so PortAudio) is imported only when a microphone is opened or listed.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Full, Queue

import numpy as np
import soxr

from realtime_sed.audio import RESAMPLE_QUALITY, AudioFileReader, sanitize, to_mono
from realtime_sed.constants import SAMPLE_RATE
from realtime_sed.errors import DeviceError
from realtime_sed.ring import RingBuffer

MAX_CHANNELS = 2  # channels opened on a microphone (downmixed to mono afterwards)
FALLBACK_CHANNELS = 8  # for a device that refuses MAX_CHANNELS
CLOSE_TIMEOUT_S = 2.0  # how long closing waits for PortAudio to stop the stream
LIVE_BUFFER_S = 10.0  # audio a live input holds for a consumer that falls behind (then drops)
PORTAUDIO_HINT = "install PortAudio with `sudo apt-get install libportaudio2` (Debian/Ubuntu)"


class FileSource:
    """Replays a file block by block, as fast as possible or paced like a live input.

    Paced (`realtime`), it behaves like a microphone: a clock thread delivers each block once all
    of it has been "heard" into a bounded RingBuffer, whatever the consumer is doing, and a
    consumer that falls more than `buffer_seconds` behind loses samples, counted in
    `dropped_samples`. So a paced replay shows what a stall in the detection thread would cost live.
    """

    is_live = False

    def __init__(self, path: str | os.PathLike, realtime: bool = False, block_size: int = 4096,
                 stop: threading.Event | None = None, buffer_seconds: float = LIVE_BUFFER_S):
        self.reader = AudioFileReader(path, block_size)
        self.realtime = realtime
        self.stop = stop or threading.Event()
        self.description = Path(path).name
        self.native_rate = self.reader.native_rate
        self.channels = self.reader.channels
        self.duration_s = self.reader.duration_s
        self.buffer_seconds = buffer_seconds
        self.ring: RingBuffer | None = None  # paced replays only
        self.overflows = 0

    @property
    def dropped_samples(self) -> int:
        """Paced: samples the clock delivered while the consumer's buffer was full."""
        return self.ring.dropped if self.ring is not None else 0

    @property
    def nonfinite_samples(self) -> int:
        return self.reader.nonfinite_samples

    def wall_time_at(self, sample_index: int) -> float | None:
        return None  # a file has no wall clock: stream time is the only time

    def blocks(self) -> Iterator[np.ndarray]:
        if self.realtime:
            yield from self._live_blocks()
            return
        for block in self.reader.blocks():
            if self.stop.is_set():
                return
            yield block

    def _live_blocks(self) -> Iterator[np.ndarray]:
        ring = self.ring = RingBuffer(max(1, round(self.buffer_seconds * SAMPLE_RATE)))
        done, quit_clock = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def clock() -> None:
            """A live input delivers a block once all of it has been heard, never waiting."""
            t0 = time.monotonic()
            produced = 0
            blocks = self.reader.blocks()
            try:
                for block in blocks:
                    produced += len(block)
                    while (delay := t0 + produced / SAMPLE_RATE - time.monotonic()) > 0:
                        if quit_clock.wait(min(delay, 0.1)) or self.stop.is_set():
                            return
                    if quit_clock.is_set() or self.stop.is_set():
                        return
                    ring.write(block)
            except BaseException as exc:  # raised in the consumer, after what was heard
                errors.append(exc)
            finally:
                blocks.close()  # the file is closed in the thread that read it
                done.set()

        thread = threading.Thread(target=clock, name="file-clock", daemon=True)
        thread.start()
        try:
            while not self.stop.is_set():
                finished = done.is_set()
                if ring.available:
                    yield ring.read()[:, 0]
                elif finished:
                    break
                else:
                    ring.wait(0.05)
            if errors:
                raise errors[0]
        finally:
            quit_clock.set()
            thread.join()

    def close(self) -> None:
        self.reader.close()


def prefetched(blocks: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """Runs a block iterator in a thread, `depth` blocks ahead, so decoding a file (libsndfile and
    soxr release the GIL) overlaps the log-mel and CNN work of `classify`. Errors come through in
    order; stopping early lets the reader thread finish."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    quit_reading = threading.Event()

    def offer(item) -> bool:
        """Puts `item` unless the consumer stops first: every put, the last one too, gives way to
        `quit_reading`, so a consumer that stops (Ctrl-C, SIGTERM) never waits on a full queue."""
        while not quit_reading.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                pass
        return False

    def read() -> None:
        try:
            for block in blocks:
                if not offer(block):
                    return
            offer(done)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

    thread = threading.Thread(target=read, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        quit_reading.set()
        thread.join()


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the module is there but libportaudio is not
        raise DeviceError(f"PortAudio is not available ({exc}); {PORTAUDIO_HINT}") from None
    except ImportError as exc:
        if exc.name == "_sounddevice_data":  # where sounddevice looks for a bundled PortAudio
            raise DeviceError(f"PortAudio is not available ({exc}); {PORTAUDIO_HINT}") from None
        raise DeviceError("the sounddevice package is missing: pip install sounddevice") from None
    return sounddevice


def input_devices() -> list[dict]:
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as exc:  # PortAudio errors have no common base we can rely on
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    return [
        {"index": i, "name": d["name"], "channels": d["max_input_channels"],
         "rate": int(d["default_samplerate"]), "hostapi": apis[d["hostapi"]]["name"]}
        for i, d in enumerate(devices) if d["max_input_channels"] > 0
    ]


def find_device(spec: str | int | None) -> dict:
    """An input device by index or by a case-insensitive part of its name (None: the default)."""
    sd = _sounddevice()
    devices = input_devices()
    if spec is None:
        try:
            default = sd.default.device[0]
        except Exception:
            default = -1
        if default is not None and default >= 0:
            for d in devices:
                if d["index"] == default:
                    return d
        if devices:
            return devices[0]
        raise DeviceError("no audio input device found; is a microphone connected?")
    listing = "; ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"
    text = str(spec).strip()
    if text.isdigit():
        for d in devices:
            if d["index"] == int(text):
                return d
        raise DeviceError(f"no input device with index {text}; input devices: {listing}")
    matches = [d for d in devices if text.lower() in d["name"].lower()]
    exact = [d for d in matches if d["name"].lower() == text.lower()]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(f"no input device matches {text!r}; input devices: {listing}")
    raise DeviceError(f"{text!r} matches several input devices: "
                      + "; ".join(f"{d['index']}: {d['name']}" for d in matches))


class MicSource:
    """A PortAudio input stream. Its callback only copies into a RingBuffer; downmixing and
    resampling happen on the consumer side, in `blocks()`."""

    is_live = True

    def __init__(self, device: str | int | None = None, buffer_seconds: float = 10.0,
                 stop: threading.Event | None = None, blocksize: int = 0):
        self.sd = _sounddevice()
        self.device = find_device(device)
        self.description = self.device["name"]
        self.native_rate = self.device["rate"]
        # Virtual ALSA devices (default, pulse, pipewire, plug...) report 32 to 128 channels; opening
        # more channels than the microphone has makes the plugin pad with silent ones (diluting the
        # mono mix by up to 12 dB at 8) and convert on every read. A microphone is mono or stereo:
        # open at most 2 channels, and all of them (up to 8) only for a device that refuses 2.
        self._channel_choices = sorted({min(self.device["channels"], MAX_CHANNELS),
                                        min(self.device["channels"], FALLBACK_CHANNELS)})
        self.channels = self._channel_choices[0]
        self.stop = stop or threading.Event()
        self._buffer_frames = max(1, int(buffer_seconds * self.native_rate))
        self.ring = RingBuffer(self._buffer_frames, self.channels)
        self.overflows = 0
        self.nonfinite_samples = 0
        self._blocksize = blocksize
        self._stream = None
        self._t0: float | None = None  # wall time of the first captured frame
        self._resampler = (None if self.native_rate == SAMPLE_RATE else
                           soxr.ResampleStream(self.native_rate, SAMPLE_RATE, 1, "float32", RESAMPLE_QUALITY))

    @property
    def dropped_samples(self) -> int:
        """Samples lost because the consumer fell behind, at the device's rate."""
        return self.ring.dropped

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        if self._t0 is None:
            self._t0 = time.time() - frames / self.native_rate
        self.ring.write(indata)

    def wall_time_at(self, sample_index: int) -> float | None:
        if self._t0 is None:
            return None
        return self._t0 + sample_index / SAMPLE_RATE + self.ring.dropped / self.native_rate

    def open(self) -> None:
        error = None
        for channels in self._channel_choices:
            if channels != self.ring.channels:  # nothing has been written yet: start afresh
                self.ring = RingBuffer(self._buffer_frames, channels)
            self.channels = channels
            try:
                self._stream = self.sd.InputStream(
                    device=self.device["index"], channels=channels, samplerate=self.native_rate,
                    dtype="float32", blocksize=self._blocksize, callback=self._callback)
                self._stream.start()
                return
            except Exception as exc:
                error = exc
                self.close()
        raise DeviceError(f"cannot open input device {self.device['index']} "
                          f"({self.description}): {error}")

    def blocks(self) -> Iterator[np.ndarray]:
        if self._stream is None:
            self.open()
        stream, resampler = self._stream, self._resampler  # close() may drop them meanwhile
        silent_since = time.monotonic()
        try:
            while not self.stop.is_set():
                if not self.ring.wait(0.1):
                    if not stream.active:
                        raise DeviceError(f"input device {self.description!r} stopped delivering "
                                          "audio (disconnected?)")
                    if time.monotonic() - silent_since > 5.0:
                        raise DeviceError(f"no audio from {self.description!r} for 5 s (disconnected?)")
                    continue
                silent_since = time.monotonic()
                mono = to_mono(self.ring.read())
                self.nonfinite_samples += sanitize(mono)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono)
                if len(mono):
                    yield mono
        finally:
            self.close()

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        done = threading.Event()

        def shut() -> None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass  # the device may already be gone; closing must not raise
            finally:
                done.set()

        # A hung device (a driver or plugin read that never returns, the very case that makes
        # blocks() give up) blocks PortAudio's stop for ever, with Ctrl-C ignored: stop it aside.
        threading.Thread(target=shut, name="mic-close", daemon=True).start()
        if not done.wait(CLOSE_TIMEOUT_S):
            # Leave the stream to the OS at exit; sounddevice's exit handler would hang on it too.
            # The stuck stream keeps this object alive: let go of the resampler (a native object
            # whose binding complains at exit about instances still alive).
            self._resampler = None
            handler = getattr(self.sd, "_exit_handler", None)
            if handler is not None:
                atexit.unregister(handler)
