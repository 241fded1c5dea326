"""SlidingWindower: turns blocks of any size into 4 s windows every hop.

The hop is rounded to whole 256-sample frames so overlapping windows share log-mel frames
(0.5 s becomes 43 frames = 0.4992 s). Blocks of 1 sample or of a whole file give the same windows.

At the end of a stream, `flush` adds one last window, zero-padded, if audio after the last full
window would otherwise be ignored; a stream shorter than 4 s gets a single zero-padded window, as
the paper pads short clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime_sed.constants import HOP_LENGTH, SAMPLE_RATE, WINDOW_SAMPLES

MIN_HOP_SECONDS = 0.1
DEFAULT_HOP_SECONDS = 0.5  # 43 frames: 0.4992 s


def hop_to_samples(hop_seconds: float) -> int:
    if not hop_seconds >= MIN_HOP_SECONDS:
        raise ValueError(f"hop must be at least {MIN_HOP_SECONDS} s (got {hop_seconds})")
    if hop_seconds > WINDOW_SAMPLES / SAMPLE_RATE:
        raise ValueError(f"hop must be at most the window, {WINDOW_SAMPLES / SAMPLE_RATE:g} s")
    # Whole frames, but never more than fit in the window: 4.0 s would round up past it.
    frames = min(round(hop_seconds * SAMPLE_RATE / HOP_LENGTH), WINDOW_SAMPLES // HOP_LENGTH)
    return max(1, frames) * HOP_LENGTH


@dataclass
class Window:
    index: int
    start_sample: int  # in stream samples at SAMPLE_RATE
    samples: np.ndarray  # [WINDOW_SAMPLES] float32
    valid: int  # samples of real audio (the rest is end-of-stream padding)

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return (self.start_sample + WINDOW_SAMPLES) / SAMPLE_RATE


class SlidingWindower:
    def __init__(self, hop_samples: int, window: int = WINDOW_SAMPLES):
        self.hop = int(hop_samples)
        self.window = int(window)
        self._buf = np.zeros(2 * window + self.hop, np.float32)
        self._base = 0  # stream sample index of _buf[0]
        self._fill = 0  # valid samples in _buf
        self._next_start = 0  # stream start of the next window
        self._count = 0
        self.samples_seen = 0

    def push(self, block: np.ndarray) -> list[Window]:
        out: list[Window] = []
        block = np.asarray(block, np.float32).ravel()
        pos = 0
        while pos < len(block):
            if self._fill == len(self._buf):  # keep only what future windows need
                keep_from = self._next_start - self._base
                self._buf[: self._fill - keep_from] = self._buf[keep_from : self._fill]
                self._fill -= keep_from
                self._base = self._next_start
            n = min(len(block) - pos, len(self._buf) - self._fill)
            self._buf[self._fill : self._fill + n] = block[pos : pos + n]
            self._fill += n
            pos += n
            self.samples_seen += n
            while self._base + self._fill >= self._next_start + self.window:
                out.append(self._emit(self.window))
        return out

    def _emit(self, valid: int) -> Window:
        offset = self._next_start - self._base
        samples = np.zeros(self.window, np.float32)
        samples[:valid] = self._buf[offset : offset + valid]
        w = Window(self._count, self._next_start, samples, valid)
        self._count += 1
        self._next_start += self.hop
        return w

    def flush(self) -> list[Window]:
        """The zero-padded last window, if the tail of the stream is not yet covered by one."""
        end = self._base + self._fill
        covered = self._next_start - self.hop + self.window if self._count else 0
        if end <= covered or end == 0:
            return []
        return [self._emit(end - self._next_start)]
