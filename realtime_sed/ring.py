"""RingBuffer: the only thing the audio callback touches.

One producer (the PortAudio callback) and one consumer (the inference thread). The producer never
blocks and never waits: when the consumer has fallen so far behind that a block does not fit, the
part of the block that does not fit is dropped (the newest samples) and counted in `dropped`. The
audio already buffered stays intact and in order, so what the consumer reads is always a clean
stretch of audio followed, after a drop, by a jump. Each side moves only its own counter, so no lock
is needed for the data; an Event lets the consumer sleep until something arrives.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int, channels: int = 1, dtype=np.float32):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=dtype)
        self._written = 0  # total frames ever written; only the producer changes it
        self._read = 0  # total frames ever read; only the consumer changes it
        self.dropped = 0  # frames the producer could not fit
        self._ready = threading.Event()

    @property
    def available(self) -> int:
        return self._written - self._read

    def write(self, frames: np.ndarray) -> int:
        """Copies as many frames as fit; returns that count. Never blocks."""
        frames = np.asarray(frames).reshape(len(frames), self.channels)
        n = min(len(frames), self.capacity - (self._written - self._read))
        if n < len(frames):
            self.dropped += len(frames) - n
        if n > 0:
            start = self._written % self.capacity
            first = min(n, self.capacity - start)
            self._data[start : start + first] = frames[:first]
            self._data[: n - first] = frames[first:n]
            self._written += n  # publish only after the copy
            self._ready.set()
        return n

    def read(self, max_frames: int | None = None) -> np.ndarray:
        """Returns up to `max_frames` frames (all available by default), oldest first, as a copy."""
        n = self.available if max_frames is None else min(max_frames, self.available)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out = np.concatenate([self._data[start : start + first], self._data[: n - first]])
        self._read += n
        if self.available == 0:
            self._ready.clear()
            if self.available:  # a write raced the clear: keep the flag truthful
                self._ready.set()
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Sleeps until there is something to read (or the timeout passes)."""
        return self.available > 0 or self._ready.wait(timeout)
