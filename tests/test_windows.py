"""SlidingWindower and hop rounding: the windows depend on the audio only, never on how it was cut
into blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_sed.constants import HOP_LENGTH, SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.windows import MIN_HOP_SECONDS, SlidingWindower, hop_to_samples
from tests.conftest import run_cli


def expected_windows(n: int, hop: int, window: int) -> list[tuple[int, int]]:
    """(start, valid) of the windows of an n-sample stream, computed from the whole stream: every
    full window every hop, then one zero-padded window if audio after the last full one would
    otherwise be left out (or if the stream is shorter than one window)."""
    out = [(s, window) for s in range(0, n - window + 1, hop)] if n >= window else []
    covered = out[-1][0] + window if out else 0
    if n > covered:
        start = out[-1][0] + hop if out else 0
        out.append((start, n - start))
    return out


def run_windower(audio: np.ndarray, sizes: list[int], hop: int, window: int):
    w = SlidingWindower(hop, window)
    out, pos, i = [], 0, 0
    while pos < len(audio):
        size = sizes[i % len(sizes)] if sizes else len(audio)
        out += w.push(audio[pos : pos + size])
        pos += size
        i += 1
    flushed = w.flush()
    assert w.flush() == []  # flushing twice adds nothing
    assert w.samples_seen == len(audio)
    return out, flushed


def check(audio: np.ndarray, windows, hop: int, window: int):
    want = expected_windows(len(audio), hop, window)
    assert [(w.start_sample, w.valid) for w in windows] == want
    for i, w in enumerate(windows):
        assert w.index == i
        assert w.samples.dtype == np.float32 and w.samples.shape == (window,)
        np.testing.assert_array_equal(w.samples[: w.valid], audio[w.start_sample : w.start_sample + w.valid])
        assert not w.samples[w.valid :].any()  # the padding is zeros


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    window=st.integers(1, 600),
    n=st.integers(0, 3000),
)
def test_any_block_partition_gives_the_same_windows(data, window, n):
    hop = data.draw(st.integers(1, window), label="hop")
    sizes = data.draw(st.lists(st.integers(1, 2 * window + 50), min_size=1, max_size=40), label="sizes")
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    windows, flushed = run_windower(audio, sizes, hop, window)
    check(audio, windows + flushed, hop, window)
    # Only the flush may emit a padded window, and only as the very last one.
    assert all(w.valid == window for w in windows)
    assert len(flushed) <= 1


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 3 * WINDOW_SAMPLES), min_size=1, max_size=6), extra=st.integers(0, 3 * 11008))
def test_real_window_and_hop(sizes, extra):
    """The runtime's sizes: 4 s windows, 0.5 s hop (11008 samples), blocks up to 12 s."""
    hop = hop_to_samples(0.5)
    audio = np.random.default_rng(extra).standard_normal(WINDOW_SAMPLES + extra).astype(np.float32)
    windows, flushed = run_windower(audio, sizes, hop, WINDOW_SAMPLES)
    check(audio, windows + flushed, hop, WINDOW_SAMPLES)


def test_one_sample_blocks_equal_one_block():
    hop = hop_to_samples(0.5)
    audio = np.random.default_rng(0).standard_normal(WINDOW_SAMPLES + 3 * hop + 100).astype(np.float32)
    one, one_flush = run_windower(audio, [1], hop, WINDOW_SAMPLES)
    whole, whole_flush = run_windower(audio, [], hop, WINDOW_SAMPLES)
    assert len(one) == len(whole) == 4 and len(one_flush) == len(whole_flush) == 1
    for a, b in zip(one + one_flush, whole + whole_flush):
        assert (a.index, a.start_sample, a.valid) == (b.index, b.start_sample, b.valid)
        np.testing.assert_array_equal(a.samples, b.samples)


@pytest.mark.parametrize("seconds", [0.1, 0.25, 0.5, 1.0, 1.2345, 2.0, 3.3, 3.99, 4.0])
def test_hop_is_rounded_to_whole_frames(seconds):
    hop = hop_to_samples(seconds)
    assert hop % HOP_LENGTH == 0
    assert HOP_LENGTH <= hop <= WINDOW_SAMPLES  # never past the window, even after rounding
    # the nearest whole number of frames that is not longer than the window
    allowed = range(HOP_LENGTH, WINDOW_SAMPLES + 1, HOP_LENGTH)
    assert hop == min(allowed, key=lambda h: abs(h - seconds * SAMPLE_RATE))


def test_half_second_hop_is_43_frames():
    assert hop_to_samples(0.5) == 43 * HOP_LENGTH == 11008


@pytest.mark.parametrize("seconds", [0.0, 0.05, MIN_HOP_SECONDS - 1e-9, -1.0, math.nan, 4.01, 10.0])
def test_hop_out_of_range_is_an_error(seconds):
    with pytest.raises(ValueError, match="hop must be at"):
        hop_to_samples(seconds)


def test_too_small_hop_is_a_one_line_cli_error(clip_file):
    r = run_cli("classify", clip_file("dog_bark", seconds=1.0), "--hop", "0.05")
    assert r.returncode != 0
    assert r.stderr.strip() == "realtime-sed: error: hop must be at least 0.1 s (got 0.05)"


def test_short_stream_gives_one_zero_padded_window():
    audio = np.random.default_rng(0).standard_normal(SAMPLE_RATE // 2).astype(np.float32)
    w = SlidingWindower(hop_to_samples(0.5))
    assert w.push(audio) == []
    (win,) = w.flush()
    assert (win.index, win.start_sample, win.valid) == (0, 0, len(audio))
    np.testing.assert_array_equal(win.samples[: len(audio)], audio)
    assert not win.samples[len(audio) :].any()


def test_empty_stream_gives_no_window():
    w = SlidingWindower(hop_to_samples(0.5))
    assert w.push(np.zeros(0, np.float32)) == []
    assert w.flush() == []


def test_tail_is_covered_by_a_padded_window():
    hop = hop_to_samples(0.5)
    n = WINDOW_SAMPLES + 2 * hop + 5000  # 5000 samples after the last full window
    w = SlidingWindower(hop)
    windows = w.push(np.ones(n, np.float32))
    assert [x.start_sample for x in windows] == [0, hop, 2 * hop]
    (last,) = w.flush()
    assert last.start_sample == 3 * hop
    assert last.start_sample + last.valid == n  # reaches the end of the stream
    assert last.valid == n - 3 * hop and last.samples[last.valid - 1] == 1 and last.samples[last.valid] == 0


@pytest.mark.parametrize("k", [0, 1, 5])
def test_no_padded_window_when_the_last_full_window_ends_the_stream(k):
    hop = hop_to_samples(0.5)
    w = SlidingWindower(hop)
    windows = w.push(np.ones(WINDOW_SAMPLES + k * hop, np.float32))
    assert len(windows) == k + 1
    assert w.flush() == []


def test_windows_carry_their_start_and_end_times():
    hop = hop_to_samples(0.5)
    w = SlidingWindower(hop)
    windows = w.push(np.zeros(WINDOW_SAMPLES + 3 * hop, np.float32))
    for i, win in enumerate(windows):
        assert win.start_sample == i * hop
        assert win.start_s == pytest.approx(i * hop / SAMPLE_RATE)
        assert win.end_s == pytest.approx(i * hop / SAMPLE_RATE + 4.0)
    assert windows[1].start_s == pytest.approx(0.49923, abs=1e-5)
