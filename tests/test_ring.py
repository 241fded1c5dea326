"""RingBuffer: checked against a plain reference model, and under a real producer thread."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_sed.ring import RingBuffer


class ReferenceRing:
    """What RingBuffer promises, written the obvious way: a list of frames with a capacity, where
    a write keeps what fits and drops the rest of the block (the newest frames)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.frames: list[tuple] = []
        self.dropped = 0

    def write(self, frames: list[tuple]) -> int:
        fit = min(len(frames), self.capacity - len(self.frames))
        self.frames.extend(frames[:fit])
        self.dropped += len(frames) - fit
        return fit

    def read(self, max_frames: int | None) -> list[tuple]:
        n = len(self.frames) if max_frames is None else min(max_frames, len(self.frames))
        out, self.frames = self.frames[:n], self.frames[n:]
        return out


def _frames(first: int, count: int, channels: int) -> np.ndarray:
    """`count` frames that are all different: frame k, channel c holds 8 * k + c."""
    k = np.arange(first, first + count, dtype=np.float32)[:, None]
    return k * 8 + np.arange(channels, dtype=np.float32)[None, :]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 80)),
        st.tuples(st.just("read"), st.none() | st.integers(0, 80)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 50), channels=st.integers(1, 4), ops=operations)
def test_matches_reference_model(capacity, channels, ops):
    ring = RingBuffer(capacity, channels)
    ref = ReferenceRing(capacity)
    written = 0
    for op, size in ops:
        if op == "write":
            block = _frames(written, size, channels)
            written += size
            if channels == 1 and size % 2:
                block = block[:, 0]  # a mono producer may hand over a 1-D block
            assert ring.write(block) == ref.write([tuple(f) for f in np.atleast_2d(block.T).T])
        else:
            got = ring.read(size)
            want = ref.read(size)
            assert got.shape == (len(want), channels)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, np.array(want, np.float32).reshape(-1, channels))
        assert ring.available == len(ref.frames)
        assert ring.dropped == ref.dropped
        assert ring.wait(0) == (len(ref.frames) > 0)


def test_read_returns_a_copy():
    ring = RingBuffer(4)
    ring.write(np.array([1, 2, 3], np.float32))
    got = ring.read()
    ring.write(np.array([7, 8, 9, 10], np.float32))  # overwrites the slots `got` came from
    np.testing.assert_array_equal(got[:, 0], [1, 2, 3])


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        RingBuffer(0)


@pytest.mark.parametrize("capacity", [64, 4096])
def test_threaded_producer_consumer_keeps_order(capacity):
    """A producer thread writes numbered frames in blocks of random size, never waiting; the
    consumer reads with random limits. Whatever the interleaving, the consumer gets exactly the
    frames the producer's writes accepted, in order, each once, channels kept together."""
    channels = 2
    total = 120_000
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 400, size=total)  # more than enough blocks
    limits = rng.integers(1, 700, size=total)
    ring = RingBuffer(capacity, channels)
    accepted: list[np.ndarray] = []
    received: list[np.ndarray] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def producer():
        try:
            pos = 0
            for size in sizes:
                if pos >= total:
                    break
                block = _frames(pos, min(int(size), total - pos), channels)
                n = ring.write(block)
                accepted.append(block[:n])
                pos += len(block)
                if len(accepted) % 16 == 0:
                    threading.Event().wait(0.0001)  # let the consumer catch up now and then
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, to interleave writes and reads
    try:
        thread = threading.Thread(target=producer)
        thread.start()
        i = 0
        while not (done.is_set() and ring.available == 0):
            if ring.wait(0.01):
                received.append(ring.read(int(limits[i % len(limits)])))
                i += 1
        thread.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors
    got = np.concatenate(received)
    want = np.concatenate(accepted)
    assert len(got) + ring.dropped == total
    np.testing.assert_array_equal(got, want)
    assert np.all(np.diff(got[:, 0]) > 0)  # strictly increasing: nothing reordered or repeated
    np.testing.assert_array_equal(got[:, 1], got[:, 0] + 1)
    if capacity == 64:
        assert ring.dropped > 0  # the small buffer did overflow, so the drop path was exercised
