"""Log-mel frames in numpy, identical to the front end inside the exported ONNX graph.

A 4 s window has 345 centred frames. The 337 interior frames (4..340) only see samples inside the
window, so they are the same numbers in every window that contains them: `LogMelFrames` keeps them
and computes only the frames a new window adds (43 for a 0.5 s hop) plus the 8 edge frames whose
span reaches into the window's zero padding. That takes the front end from ~16 ms (ONNX STFT) to
well under 1 ms per window.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from realtime_sed.constants import (
    F_MAX,
    F_MIN,
    HOP_LENGTH,
    LOG_AMIN,
    LOG_FLOOR_DB,
    N_FFT,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
)

FLOOR_DB = np.float32(LOG_FLOOR_DB)  # what silence and padding give, exactly
PAD = N_FFT // 2
EDGE = -(-PAD // HOP_LENGTH)  # frames at each end whose span leaves the window: 4
FIRST_INTERIOR = EDGE
LAST_INTERIOR = (WINDOW_SAMPLES - PAD) // HOP_LENGTH  # 340
TAIL_START = (LAST_INTERIOR + 1) * HOP_LENGTH - PAD  # first sample of the last edge frames


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """[N_FFT // 2 + 1, N_MELS] triangular HTK filters without area normalisation
    (torchaudio.functional.melscale_fbanks with norm=None, mel_scale='htk')."""
    freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    m_pts = np.linspace(_hz_to_mel(np.float64(F_MIN)), _hz_to_mel(np.float64(F_MAX)), N_MELS + 2)
    f_pts = _mel_to_hz(m_pts)
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


MEL_BLOCKS = 8  # bin ranges of the mel product (measured in one run: 121 -> 46 us per 51 frames)


@lru_cache(maxsize=1)
def _mel_blocks() -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The filterbank's non-zero part as MEL_BLOCKS dense blocks: each range of bins (holding an
    equal share of the 2,020 non-zero weights) with the mel bands it touches. The triangles are
    98% zeros, so the product costs a seventh of the dense one; adding no zeros changes only the
    order in which the non-zero terms are summed (1 ulp)."""
    fb = mel_filterbank()
    cum = np.cumsum((fb > 0).sum(axis=1))
    edges = [0] + [int(np.searchsorted(cum, cum[-1] * k / MEL_BLOCKS)) for k in range(1, MEL_BLOCKS)] + [len(fb)]
    blocks = []
    for b0, b1 in zip(edges[:-1], edges[1:]):
        bands = np.nonzero((fb[b0:b1] > 0).any(axis=0))[0]
        if b1 > b0 and len(bands):
            m0, m1 = int(bands.min()), int(bands.max()) + 1
            blocks.append((b0, b1, m0, m1, np.ascontiguousarray(fb[b0:b1, m0:m1])))
    return tuple(blocks)


def mel_product(power: np.ndarray) -> np.ndarray:
    """[n, N_FFT // 2 + 1] power -> [n, N_MELS]: `power @ mel_filterbank()`, block by block."""
    mel = np.zeros((len(power), N_MELS), np.float32)
    for b0, b1, m0, m1, block in _mel_blocks():
        mel[:, m0:m1] += power[:, b0:b1] @ block
    return mel


@lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    """Periodic Hann window, as torch.hann_window(N_FFT)."""
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def _frames(x: np.ndarray, n: int) -> np.ndarray:
    """n frames of N_FFT samples, HOP_LENGTH apart, as a strided view of contiguous float32 x."""
    if n > 0 and len(x) < (n - 1) * HOP_LENGTH + N_FFT:  # a view past its end would read foreign memory
        raise ValueError(f"{len(x)} samples hold fewer than {n} frames")
    return as_strided(x, shape=(n, N_FFT), strides=(HOP_LENGTH * x.itemsize, x.itemsize), writeable=False)


def frames_to_logmel(segments: np.ndarray) -> np.ndarray:
    """[n, N_FFT] raw sample segments -> [n, N_MELS] log-mel in dB."""
    return windowed_to_logmel(segments * hann_window())


def windowed_to_logmel(windowed: np.ndarray) -> np.ndarray:
    """[n, N_FFT] Hann-windowed float32 segments -> [n, N_MELS] log-mel in dB, all in float32
    (rfft of float32 is complex64 in numpy 2) with the precomputed filterbank."""
    spectrum = np.fft.rfft(windowed, axis=-1)
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    mel = mel_product(power)
    # Clamped in dB as well as in power: float32 log10 has several code paths (SIMD or not), and
    # one of them gives -100.00001 for 1e-10. Padding frames feed the CNN, so the floor is exact.
    np.maximum(mel, np.float32(LOG_AMIN), out=mel)
    np.log10(mel, out=mel)
    mel *= np.float32(10.0)
    return np.maximum(mel, FLOOR_DB, out=mel)


def _check_window(window: np.ndarray) -> None:
    if np.shape(window) != (WINDOW_SAMPLES,):
        raise ValueError(f"a window is {WINDOW_SAMPLES} samples, got shape {np.shape(window)}")


def logmel(window: np.ndarray) -> np.ndarray:
    """[WINDOW_SAMPLES] -> [N_FRAMES, N_MELS]: the whole window at once, no reuse."""
    _check_window(window)
    padded = np.pad(np.asarray(window, np.float32), PAD)
    return frames_to_logmel(_frames(padded, N_FRAMES))


class LogMelFrames:
    """Log-mel of successive windows, reusing interior frames that overlapping windows share.

    Reuse needs the distance between two window starts to be a multiple of HOP_LENGTH, which the
    stream guarantees by rounding its hop to whole frames; anything else is computed afresh.
    """

    def __init__(self) -> None:
        self._start: int | None = None  # start sample of the previous window
        self._last: np.ndarray | None = None  # its log-mel, whose interior frames are reused
        self.frames_computed = 0  # for the benchmark and tests: how much reuse happened
        # The window's first and last samples with its zero padding, for the edge frames.
        self._head = np.zeros(PAD + (EDGE - 1) * HOP_LENGTH + PAD, np.float32)
        self._tail = np.zeros((N_FRAMES - LAST_INTERIOR - 2) * HOP_LENGTH + N_FFT, np.float32)
        self._windowed = np.empty((N_FRAMES, N_FFT), np.float32)  # room for a whole window's frames

    def __call__(self, window: np.ndarray, start_sample: int, valid: int = WINDOW_SAMPLES) -> np.ndarray:
        """The window's log-mel. `valid`: how many of its samples are audio; the rest must be the
        zeros of end-of-stream padding, and frames that see only those are the floor, uncomputed."""
        _check_window(window)
        window = np.ascontiguousarray(window, np.float32)
        n_interior = LAST_INTERIOR - FIRST_INTERIOR + 1
        reused = 0
        if self._start is not None and start_sample >= self._start:
            shift, rem = divmod(start_sample - self._start, HOP_LENGTH)
            if rem == 0 and shift < n_interior:
                reused = n_interior - shift
        # Frame j spans window samples j*HOP-PAD .. j*HOP+PAD: the first `audible` frames see audio.
        audible = min(N_FRAMES, -(-(max(int(valid), 0) + PAD) // HOP_LENGTH))
        # New interior frames (all inside the window) and the edge frames, which see the window's
        # zero padding and so are per-window, go through one FFT call.
        first = FIRST_INTERIOR + reused
        n_new = max(0, min(LAST_INTERIOR + 1, audible) - first)
        n_tail = max(0, audible - LAST_INTERIOR - 1)
        # Windowed straight into one reused buffer: no per-window concatenation or temporaries.
        segments, hann = self._windowed[: n_new + EDGE + n_tail], hann_window()
        np.multiply(_frames(window[first * HOP_LENGTH - PAD :], n_new), hann, out=segments[:n_new])
        self._head[PAD:] = window[: len(self._head) - PAD]
        np.multiply(_frames(self._head, EDGE), hann, out=segments[n_new : n_new + EDGE])
        if n_tail:
            self._tail[: WINDOW_SAMPLES - TAIL_START] = window[TAIL_START:]
            np.multiply(_frames(self._tail, n_tail), hann, out=segments[n_new + EDGE :])
        mels = windowed_to_logmel(segments)
        self.frames_computed += len(segments)
        out = np.empty((N_FRAMES, N_MELS), np.float32)
        out[:EDGE] = mels[n_new : n_new + EDGE]
        if reused:
            out[FIRST_INTERIOR : FIRST_INTERIOR + reused] = self._last[FIRST_INTERIOR + n_interior - reused :
                                                                      LAST_INTERIOR + 1]
        out[first : first + n_new] = mels[:n_new]
        out[LAST_INTERIOR + 1 : LAST_INTERIOR + 1 + n_tail] = mels[n_new + EDGE :]
        out[audible:] = FLOOR_DB
        self._start, self._last = start_sample, out
        return out

    def reset(self) -> None:
        self._start = self._last = None
