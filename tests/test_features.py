"""The numpy log-mel front end against the one inside the exported ONNX graph, against torchaudio's
filterbank, and against itself with and without frame reuse."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from realtime_sed.constants import (
    F_MAX,
    F_MIN,
    LOG_AMIN,
    LOGMEL_TENSOR,
    N_FFT,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
)
from realtime_sed.features import LogMelFrames, hann_window, logmel, mel_filterbank
from realtime_sed.windows import SlidingWindower, hop_to_samples
from tests.shipped import MODEL

FLOOR_DB = 10 * np.log10(LOG_AMIN)  # -100 dB


@pytest.fixture(scope="module")
def onnx_frontend():
    """The shipped model's own front end: the graph from raw audio to the `logmel` tensor."""
    proto = onnx.load(str(MODEL))
    front = onnx.utils.Extractor(proto).extract_model([proto.graph.input[0].name], [LOGMEL_TENSOR])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(front.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(window: np.ndarray) -> np.ndarray:
        out = session.run(None, {name: window[None].astype(np.float32)})[0]
        assert out.shape == (1, 1, N_FRAMES, N_MELS)
        return out[0, 0]

    return run


@pytest.fixture(scope="module")
def real_windows(demo_audio) -> dict[str, np.ndarray]:
    """4 s windows of the demo (real UrbanSound8K audio): inside one sound, across the digital
    silence between two clips, and a last window zero-padded as the stream pads it."""
    def at(seconds: float) -> np.ndarray:
        start = int(seconds * SAMPLE_RATE)
        return demo_audio[start : start + WINDOW_SAMPLES]

    tail = np.zeros(WINDOW_SAMPLES, np.float32)
    rest = demo_audio[len(demo_audio) - WINDOW_SAMPLES // 3 :]
    tail[: len(rest)] = rest
    return {"dog_bark": at(2.0), "siren_gap_jackhammer": at(10.5), "children_playing": at(24.0),
            "gun_shot": at(53.0), "engine_idling": at(60.0), "padded_tail": tail}


def exact_logmel(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The front end's definition in float64 (centred frames, periodic Hann, |STFT|^2, HTK mel):
    (log-mel in dB, mel power)."""
    padded = np.pad(window.astype(np.float64), N_FFT // 2)
    segments = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::256][:N_FRAMES]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(segments * hann, axis=-1)) ** 2
    mel = power @ mel_filterbank().astype(np.float64)
    return 10 * np.log10(np.maximum(mel, LOG_AMIN)), mel


def below_frame_peak_db(mel: np.ndarray) -> np.ndarray:
    """How far each band is below the loudest band of its frame, in dB (<= 0)."""
    peak = mel.max(axis=1, keepdims=True)
    return 10 * np.log10(np.maximum(mel, 1e-300) / np.maximum(peak, 1e-300))


@pytest.mark.parametrize("name", ["dog_bark", "siren_gap_jackhammer", "children_playing", "gun_shot",
                                  "engine_idling", "padded_tail"])
def test_numpy_logmel_matches_the_onnx_front_end(name, real_windows, onnx_frontend):
    """The ONNX graph computes its STFT in float32; its round-off is about 1e-5 of the frame's
    loudest mel band (measured up to 8e-6), so a band far below its frame's peak can differ by
    more than 1e-3 dB (up to 0.2 dB measured, 80+ dB down) while every band within 40 dB of its
    frame's peak agrees to 1e-3 dB (measured <= 6e-4 dB). Both views are checked, plus the fact
    that it is the numpy side that is accurate: it matches a float64 computation far closer."""
    window = real_windows[name]
    ours = logmel(window)
    graph = onnx_frontend(window)
    exact, mel = exact_logmel(window)
    assert ours.shape == graph.shape == (N_FRAMES, N_MELS) and ours.dtype == np.float32

    above_floor = mel > 10 * LOG_AMIN  # clear of the -100 dB floor
    near_peak = above_floor & (below_frame_peak_db(mel) > -40)
    assert near_peak.mean() > (0.05 if name == "padded_tail" else 0.3)  # a real check, not an empty mask
    diff = np.abs(ours.astype(np.float64) - graph)
    assert diff[near_peak].max() <= 1e-3
    assert diff[above_floor].mean() <= 1e-3

    # In power, every band, however quiet, agrees to 2e-5 of its frame's loudest band.
    p_ours, p_graph = 10 ** (ours.astype(np.float64) / 10), 10 ** (graph.astype(np.float64) / 10)
    frame_peak = np.maximum(p_graph.max(axis=1, keepdims=True), LOG_AMIN)
    assert (np.abs(p_ours - p_graph) / frame_peak).max() <= 2e-5

    # The floor: digital silence and padding are exactly -100 dB on both sides.
    silent = mel == 0
    assert np.all(ours[silent] == FLOOR_DB) and np.all(graph[silent] == FLOOR_DB)
    if name in ("siren_gap_jackhammer", "padded_tail"):
        assert silent.any()

    # numpy against the float64 definition: within 80 dB of the frame peak, <= 1e-3 dB (measured 2.4e-4).
    wide = above_floor & (below_frame_peak_db(mel) > -80)
    assert np.abs(ours - exact)[wide].max() <= 1e-3


def _exact_filterbank() -> np.ndarray:
    """HTK mel triangles without normalisation, in float64 (torchaudio's formula)."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    f_pts = 700.0 * (10.0 ** (np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2) / 2595.0) - 1.0)
    slopes = f_pts[None, :] - freqs[:, None]
    f_diff = np.diff(f_pts)
    return np.maximum(0.0, np.minimum(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]))


def test_mel_filterbank_equals_torchaudio():
    """Same triangles as torchaudio's melscale_fbanks(norm=None, mel_scale='htk'), which is what the
    exported graph holds. torchaudio computes them in float32 and is off the float64 values by up
    to 1.2e-5 (measured); ours is the float64 result rounded to float32 (off by < 1e-7)."""
    torchaudio_functional = pytest.importorskip("torchaudio.functional")
    fb = torchaudio_functional.melscale_fbanks(
        n_freqs=N_FFT // 2 + 1, f_min=F_MIN, f_max=F_MAX, n_mels=N_MELS, sample_rate=SAMPLE_RATE,
        norm=None, mel_scale="htk").numpy()
    ours = mel_filterbank()
    assert ours.shape == fb.shape == (N_FFT // 2 + 1, N_MELS) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours > 0, fb > 0)  # the same bins in every band
    np.testing.assert_allclose(ours, fb, rtol=0, atol=2e-5)
    np.testing.assert_allclose(ours, _exact_filterbank(), rtol=0, atol=1e-7)
    assert (ours > 0).sum(axis=0).min() >= 1  # every band has at least one FFT bin


def test_mel_filterbank_equals_the_one_in_the_graph():
    from onnx import numpy_helper

    proto = onnx.load(str(MODEL))
    shapes = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    (graph_fb,) = [shapes[i] for n in proto.graph.node if n.op_type == "MatMul" for i in n.input
                   if i in shapes and shapes[i].shape == (N_FFT // 2 + 1, N_MELS)]
    np.testing.assert_array_equal(mel_filterbank() > 0, graph_fb > 0)
    np.testing.assert_allclose(mel_filterbank(), graph_fb, rtol=0, atol=2e-5)


def test_hann_window_equals_torch():
    """Periodic Hann as torch.hann_window: equal to float32 round-off (measured 2.1e-7 at values
    near 0.77, ~3 ulp, from torch's float32 cosine)."""
    torch = pytest.importorskip("torch")
    exact = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    np.testing.assert_allclose(hann_window(), exact, rtol=0, atol=6e-8)
    np.testing.assert_allclose(hann_window(), torch.hann_window(N_FFT, periodic=True).numpy(), rtol=0, atol=3e-7)


def _stream_windows(audio: np.ndarray, hop: int):
    w = SlidingWindower(hop)
    return w.push(audio) + w.flush()


def test_logmel_frames_reuse_equals_from_scratch(demo_audio):
    """A stream of windows every 0.5 s (including its zero-padded last window): the incremental
    front end gives what computing each window afresh gives, and computes 43 new frames plus the
    8 edge frames per window instead of 345."""
    hop = hop_to_samples(0.5)
    audio = demo_audio[int(20 * SAMPLE_RATE) : int(29.3 * SAMPLE_RATE)]
    windows = _stream_windows(audio, hop)
    assert len(windows) == 12 and windows[-1].valid < WINDOW_SAMPLES
    frames = LogMelFrames()
    counts = []
    for w in windows:
        before = frames.frames_computed
        got = frames(w.samples, w.start_sample)
        counts.append(frames.frames_computed - before)
        np.testing.assert_allclose(got, logmel(w.samples), rtol=0, atol=1e-4)
    assert counts[0] == N_FRAMES
    assert counts[1:] == [hop // 256 + 8] * (len(windows) - 1) == [51] * 11


def test_logmel_frames_recompute_when_reuse_is_impossible(demo_audio):
    audio = demo_audio[int(30 * SAMPLE_RATE) :]
    frames = LogMelFrames()

    def window(start: int) -> np.ndarray:
        return audio[start : start + WINDOW_SAMPLES]

    cases = [0, 11008, 11008 + 100,  # not a whole number of frames after the last start
             5000, 5000 + 90000,  # backwards, then further than a window ahead
             5000 + 90000 + 256]
    expected_counts = [N_FRAMES, 51, N_FRAMES, N_FRAMES, N_FRAMES, 1 + 8]
    for start, expected in zip(cases, expected_counts):
        before = frames.frames_computed
        np.testing.assert_allclose(frames(window(start), start), logmel(window(start)), rtol=0, atol=1e-4)
        assert frames.frames_computed - before == expected, start
    frames.reset()
    before = frames.frames_computed
    frames(window(5000 + 90000 + 512), 5000 + 90000 + 512)
    assert frames.frames_computed - before == N_FRAMES  # nothing is reused after a reset


def test_frames_that_see_only_end_of_stream_padding_are_the_floor_and_not_computed(demo_audio):
    """A short clip's one window (or a stream's zero-padded last one): frames whose span lies wholly
    in the padding are exactly the floor, as the whole computation gives them, and are skipped."""
    from realtime_sed.features import FLOOR_DB

    for valid in (1, 1000, 36000, WINDOW_SAMPLES - 300):
        window = np.zeros(WINDOW_SAMPLES, np.float32)
        window[:valid] = demo_audio[int(14 * SAMPLE_RATE) : int(14 * SAMPLE_RATE) + valid]
        frames = LogMelFrames()
        got = frames(window, 0, valid)
        audible = min(N_FRAMES, -(-(valid + 1024) // 256))  # frame j spans samples j*256-1024 .. +1024
        assert frames.frames_computed == audible
        assert audible < N_FRAMES or valid > WINDOW_SAMPLES - 1024
        expected = logmel(window)
        assert (got[audible:] == FLOOR_DB).all() and (expected[audible:] == FLOOR_DB).all()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        if valid >= 1000:  # not only silence (one sample falls on the Hann window's zero)
            assert (got[:audible] > FLOOR_DB + 20).mean() > 0.5


def test_the_blocked_mel_product_is_the_dense_one(demo_audio):
    """The mel product runs on the filterbank's non-zero blocks only: every non-zero weight is in
    exactly one block, and the result is the dense product's up to summation order."""
    from realtime_sed.features import _frames, _mel_blocks, mel_product

    fb = mel_filterbank()
    covered = np.zeros(fb.shape, int)
    for b0, b1, m0, m1, block in _mel_blocks():
        covered[b0:b1, m0:m1] += 1
        assert (block == fb[b0:b1, m0:m1]).all()
    assert (covered[fb > 0] == 1).all() and (covered <= 1).all()
    assert sum(b.size for *_, b in _mel_blocks()) < fb.size / 5  # the point: far fewer multiplies
    segments = _frames(np.pad(demo_audio[: 4 * SAMPLE_RATE], 1024), N_FRAMES) * hann_window()
    power = (np.abs(np.fft.rfft(segments, axis=-1)) ** 2).astype(np.float32)
    dense = power @ fb
    np.testing.assert_allclose(mel_product(power), dense, rtol=1e-5, atol=1e-6 * dense.max())


def test_a_window_of_the_wrong_length_is_refused_not_read_past_its_end(demo_audio):
    """The frames are strided views: on a short window they would read memory after its end (a
    crash, or garbage), so both front ends check the length first."""
    frames = LogMelFrames()
    frames(demo_audio[:WINDOW_SAMPLES], 0)
    for bad in (demo_audio[11008 : 11008 + WINDOW_SAMPLES - 5000], demo_audio[: 2 * WINDOW_SAMPLES].reshape(2, -1)):
        with pytest.raises(ValueError, match="a window is 88200 samples"):
            frames(bad, 11008)
        with pytest.raises(ValueError, match="a window is 88200 samples"):
            logmel(bad)
