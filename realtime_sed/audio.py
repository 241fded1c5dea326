"""Decoding, downmixing and resampling: every source turns its input into float32 mono at 22050 Hz.

Training reads whole clips with `load_clip`; the runtime streams long files block by block with
`AudioFileReader`, so a 10-hour file never sits in memory.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from realtime_sed.constants import SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.errors import AudioError

RESAMPLE_QUALITY = "HQ"


def to_mono(block: np.ndarray) -> np.ndarray:
    """[frames] or [frames, channels] -> [frames] float32, the mean of the channels."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        block = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    return np.ascontiguousarray(block)


def sanitize(block: np.ndarray) -> int:
    """Replace NaN and +-Inf samples by 0 in place, so one bad sample cannot poison a window.

    Returns how many were replaced, so callers can report it.
    """
    bad = ~np.isfinite(block)
    count = int(bad.sum())
    if count:
        block[bad] = 0.0
    return count


def _check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    return path


_native_stderr_silenced = False


def silence_native_stderr() -> None:
    """libmpg123, libsndfile's MP3 decoder, prints its own warnings ("part2_3_length too large")
    straight onto file descriptor 2. Once an MP3 is opened, fd 2 goes to /dev/null and Python's
    sys.stderr (realtime-sed's own messages, tracebacks) keeps the real standard error via a dup."""
    global _native_stderr_silenced
    if _native_stderr_silenced:
        return
    _native_stderr_silenced = True
    try:
        sys.stderr.flush()
        kept = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except (OSError, ValueError):  # no fd 2 (embedded, pytest capture): nothing to protect
        return
    sys.stderr = io.TextIOWrapper(io.FileIO(kept, "w"), encoding=sys.stderr.encoding or "utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)


def open_audio(path: str | os.PathLike) -> sf.SoundFile:
    """Open any format libsndfile decodes (WAV, FLAC, OGG, MP3...), with a one-line error otherwise."""
    path = _check_path(path)
    if path.suffix.lower() == ".mp3":
        silence_native_stderr()
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    if f.format == "MPEG":  # an MP3 by another name
        silence_native_stderr()
    if f.frames == 0:
        f.close()
        raise AudioError(f"{path}: contains no audio")
    return f


class AudioFileReader:
    """Streams a file as float32 mono blocks at SAMPLE_RATE, resampling with a streaming soxr.

    Memory stays bounded by the block size, whatever the file's length. A file that ends early
    (a truncated WAV whose header promises more) yields what it has and stops.
    """

    def __init__(self, path: str | os.PathLike, block_size: int = 4096):
        self.path = Path(path)
        self.block_size = max(1, int(block_size))
        self._file = open_audio(path)
        self.native_rate = self._file.samplerate
        self.channels = self._file.channels
        self.duration_s = self._file.frames / self._file.samplerate
        self.nonfinite_samples = 0
        self._resampler = (
            None
            if self.native_rate == SAMPLE_RATE
            else soxr.ResampleStream(self.native_rate, SAMPLE_RATE, 1, "float32", RESAMPLE_QUALITY)
        )

    def blocks(self) -> Iterator[np.ndarray]:
        # Read in native frames that give about block_size output samples.
        native_block = max(1, round(self.block_size * self.native_rate / SAMPLE_RATE))
        try:
            while True:
                try:
                    data = self._file.read(native_block, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise AudioError(f"{self.path}: decoding failed mid-file ({exc})") from None
                last = len(data) < native_block
                mono = to_mono(data)
                self.nonfinite_samples += sanitize(mono)
                if self._resampler is not None:
                    mono = self._resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
                if last:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """A whole file as float32 mono at SAMPLE_RATE (for clips, not for long recordings)."""
    with open_audio(path) as f:
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{path}: decoding failed ({exc})") from None
        rate = f.samplerate
    if len(data) == 0:
        raise AudioError(f"{path}: contains no audio")
    mono = to_mono(data)
    sanitize(mono)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY).astype(np.float32)
    return mono


def fit_to_window(audio: np.ndarray, length: int = WINDOW_SAMPLES) -> np.ndarray:
    """Zero-pad at the end or crop to `length`, as the paper does with clips that are not 4 s."""
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(audio))
    out[:n] = audio[:n]
    return out


def load_clip(path: str | os.PathLike) -> np.ndarray:
    """One UrbanSound8K clip as the network sees it: 4 s, mono, 22050 Hz."""
    return fit_to_window(load_audio(path))
