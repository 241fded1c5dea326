"""Streaming equals offline: `classify` (FileSource -> DetectionStream, incremental log-mel, the
CNN half of the graph) gives the same windows, probabilities and events whatever the block size,
and the same probabilities as the whole ONNX graph run on windows cut from the decoded file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import CLASSES, MODEL_NAMES, SAMPLE_RATE, WINDOW_SAMPLES
from realtime_sed.events import DetectorConfig, EventDetector, level_dbfs
from realtime_sed.settings import ClassifySettings, Settings
from realtime_sed.sinks import Sink
from realtime_sed.wiring import classify_file, open_file
from tests.conftest import DEMO_REFERENCE, run_cli
from tests.shipped import MODEL, TWO_EVENT_STRETCH_S

HOP = 43 * 256  # 0.5 s rounded to whole 256-sample frames
SECONDS = 7.0  # 8 windows (the last zero-padded); block size 1 takes 14-20 s on the busy 2-core box
STREAM_TOL = 1e-5  # block size must not matter (measured: bit-identical)
OFFLINE_TOL = 1e-4  # incremental numpy log-mel + CNN vs the whole graph (measured 1.2e-6 here)


class RecordingSink(Sink):
    """Keeps what the stream hands its sinks: every window's probabilities and every event."""

    def __init__(self):
        self.starts: list[float] = []
        self.probs: list[np.ndarray] = []
        self.events = []

    def window(self, filename, start_s, probs, wall):
        self.starts.append(start_s)
        self.probs.append(np.array(probs))

    def event(self, filename, event):
        self.events.append(event)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """What the CLI does with OPENBLAS_NUM_THREADS=1, for this in-process use: on a busy 2-core
    machine, BLAS threads spinning over the small per-window mel product slow a stream ~10x."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def clf() -> OnnxClassifier:
    return OnnxClassifier(MODEL)


@pytest.fixture(scope="module")
def files(tmp_path_factory, demo_audio) -> dict:
    """A stretch of the demo in which the shipped model finds two events, as 22.05 kHz mono and
    as 44.1 kHz stereo."""
    folder = tmp_path_factory.mktemp("stream")
    start, end = TWO_EVENT_STRETCH_S
    assert end - start == SECONDS
    x = demo_audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    mono = folder / "mono22.wav"
    sf.write(mono, x, SAMPLE_RATE, subtype="FLOAT")
    y = soxr.resample(x, SAMPLE_RATE, 44100)
    stereo = folder / "stereo44.wav"
    sf.write(stereo, np.stack([y, y], axis=1), 44100, subtype="FLOAT")
    return {"mono": mono, "stereo": stereo, "samples": len(x)}


def classify(path, clf, block_size: int) -> RecordingSink:
    settings = Settings(classify=ClassifySettings(files=(str(path),), block_size=block_size, quiet=True))
    sink = RecordingSink()
    events = classify_file(open_file(path, settings), clf, sink, settings)
    assert events == sink.events
    return sink


def event_tuples(events):
    return [(e.label, e.onset, e.offset) for e in events]


@pytest.fixture(scope="module")
def reference(files, clf) -> RecordingSink:
    return classify(files["mono"], clf, 4096)


def test_reference_run_is_not_trivial(reference, files):
    assert len(reference.probs) == 8
    assert len(reference.events) >= 2  # several events, so comparing them means something
    assert reference.events[-1].offset == pytest.approx(files["samples"] / SAMPLE_RATE, abs=1e-4)


@pytest.mark.parametrize("block_size", [1, 512, 22050, "file"])
def test_block_size_does_not_matter(block_size, files, clf, reference):
    size = files["samples"] if block_size == "file" else block_size
    got = classify(files["mono"], clf, size)
    assert got.starts == reference.starts
    np.testing.assert_allclose(np.array(got.probs), np.array(reference.probs), rtol=0, atol=STREAM_TOL)
    assert event_tuples(got.events) == event_tuples(reference.events)
    for a, b in zip(got.events, reference.events):
        assert a.peak == pytest.approx(b.peak, abs=STREAM_TOL)


def offline_windows(audio: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Windows cut from the whole decoded file: every HOP while a full window fits, then one
    zero-padded window over the rest."""
    starts = list(range(0, len(audio) - WINDOW_SAMPLES + 1, HOP))
    if not starts or starts[-1] + WINDOW_SAMPLES < len(audio):
        starts.append(starts[-1] + HOP if starts else 0)
    batch = np.zeros((len(starts), WINDOW_SAMPLES), np.float32)
    for i, s in enumerate(starts):
        piece = audio[s : s + WINDOW_SAMPLES]
        batch[i, : len(piece)] = piece
    return starts, batch


def test_matches_the_whole_graph_on_windows_cut_offline(files, clf, reference):
    audio, rate = sf.read(files["mono"], dtype="float32")
    assert rate == SAMPLE_RATE
    starts, batch = offline_windows(audio)
    assert reference.starts == pytest.approx([s / SAMPLE_RATE for s in starts], abs=1e-9)
    probs = clf.predict_audio(batch)  # raw audio in: the graph's own STFT and mel front end
    streamed = np.array(reference.probs)
    assert probs.shape == streamed.shape == (len(starts), len(CLASSES))
    diff = np.abs(probs - streamed).max()
    assert diff <= OFFLINE_TOL, diff
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # The same detector (the card's thresholds, as classify's) fed the offline probabilities finds
    # the same events.
    detector = EventDetector(DetectorConfig.from_card(clf.thresholds), HOP / SAMPLE_RATE)
    events = []
    for s, p, window in zip(starts, probs, batch):
        events += detector.update(p, s / SAMPLE_RATE, level_dbfs(window[: len(audio) - s]))[1]
    events += detector.finish(len(audio) / SAMPLE_RATE)
    assert event_tuples(events) == event_tuples(reference.events)


def test_near_silent_frames_against_the_graph_and_a_float64_front_end(clf, demo_audio, tmp_path):
    """The demo from 31 to 39 s: a car horn, digital silence, street music. Windows holding
    near-silent frames make the CNN sensitive to float32 round-off in the front end, and there the
    graph's own float32 STFT is what strays most: streaming differs from the whole graph by up to
    1.7e-4 (measured; 1.9e-4 over the whole demo), while it stays within 3.3e-5 (measured) of the
    same CNN fed a float64 log-mel, which the graph misses by up to 2.1e-4. So the bounds here:
    streaming vs graph <= 1e-3, streaming vs float64 <= 1e-4 and no worse than the graph."""
    from tests.test_features import exact_logmel

    x = demo_audio[31 * SAMPLE_RATE : 39 * SAMPLE_RATE]
    path = tmp_path / "horn-silence-music.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    assert not x[int(2.9 * SAMPLE_RATE) : int(3.6 * SAMPLE_RATE)].any()  # the digital silence

    stream = np.array(classify(path, clf, 4096).probs)
    starts, batch = offline_windows(x)
    assert len(starts) == len(stream) == 10
    graph = clf.predict_audio(batch)
    exact = np.concatenate([clf.predict_logmel(exact_logmel(w)[0].astype(np.float32)) for w in batch])
    stream_graph = np.abs(stream - graph).max()
    stream_exact, graph_exact = np.abs(stream - exact).max(), np.abs(graph - exact).max()
    assert stream_graph <= 1e-3, stream_graph
    assert stream_exact <= 1e-4, stream_exact
    assert stream_exact <= graph_exact


def test_stereo_44k_gives_nearly_the_same_result(files, clf, reference):
    """The same audio upsampled to 44.1 kHz stereo comes back through the streaming resampler:
    the round trip changes the probabilities by ~2e-5 (measured), the events not at all."""
    got = classify(files["stereo"], clf, 4096)
    assert got.starts == reference.starts
    np.testing.assert_allclose(np.array(got.probs), np.array(reference.probs), rtol=0, atol=1e-3)
    assert event_tuples(got.events) == event_tuples(reference.events)


@pytest.mark.parametrize("block_size", [512, "file"])
def test_stereo_44k_block_size_does_not_matter(block_size, files, clf):
    """Block size must not matter when the stream is resampled either (soxr keeps state across
    blocks)."""
    base = classify(files["stereo"], clf, 4096)
    size = 2 * files["samples"] if block_size == "file" else block_size
    got = classify(files["stereo"], clf, size)
    assert got.starts == base.starts
    np.testing.assert_allclose(np.array(got.probs), np.array(base.probs), rtol=0, atol=STREAM_TOL)
    assert event_tuples(got.events) == event_tuples(base.events)


def test_tsv_output_loads_and_scores_in_sed_eval(tmp_path, demo_audio):
    sed_eval = pytest.importorskip("sed_eval")
    wav = tmp_path / "urban-demo.wav"
    sf.write(wav, demo_audio, SAMPLE_RATE, subtype="FLOAT")
    out = tmp_path / "estimated.tsv"
    r = run_cli("classify", wav, "--format", "tsv", "-o", out)
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_label"

    estimated = sed_eval.io.load_event_list(str(out))
    reference = sed_eval.io.load_event_list(str(DEMO_REFERENCE))
    assert len(estimated) == len(lines) - 1 >= 3
    duration = len(demo_audio) / SAMPLE_RATE
    for item in estimated:
        assert item["filename"] == "urban-demo.wav"
        assert item["event_label"] in CLASSES
        assert 0 <= item["onset"] < item["offset"] <= duration + 1e-3

    metrics = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=list(CLASSES), time_resolution=1.0)
    metrics.evaluate(reference_event_list=reference, estimated_event_list=estimated)
    overall = metrics.results_overall_metrics()
    assert 0.0 <= overall["f_measure"]["f_measure"] <= 1.0
    assert np.isfinite(overall["error_rate"]["error_rate"])
    assert metrics.overall["Nref"] > 0 and metrics.overall["Nsys"] > 0


@pytest.mark.parametrize("block_size", [4096, 88200])
def test_the_live_path_equals_the_pipelined_classify_path(block_size, files, clf, reference):
    """`listen` runs windows one block at a time in its own thread; `classify` pipelines the CNN
    in a worker thread one block behind. Same windows, same numbers, same events."""
    from realtime_sed.sources import FileSource
    from realtime_sed.stream import DetectionStream

    sink = RecordingSink()
    stream = DetectionStream(clf, 0.5, DetectorConfig.from_card(clf.thresholds), sinks=[sink], filename="x",
                             pipeline=False)  # the card's thresholds, as both commands use
    stream.run(FileSource(files["mono"], block_size=block_size).blocks())
    assert sink.starts == reference.starts
    np.testing.assert_allclose(np.array(sink.probs), np.array(reference.probs), rtol=0, atol=STREAM_TOL)
    assert event_tuples(sink.events) == event_tuples(reference.events)


def test_classify_leaves_no_worker_threads_behind(files, clf):
    import threading

    for _ in range(3):
        classify(files["mono"], clf, 88200)
    assert not [t for t in threading.enumerate() if t.name.startswith(("cnn", "prefetch"))]


@pytest.mark.parametrize("stop_after", [1, 2])
def test_a_consumer_that_stops_never_waits_on_the_reader(stop_after):
    """The reader may be blocked handing over its last block or its end mark to a full queue when
    the consumer stops (Ctrl-C, SIGTERM); closing must still return (it once hung on the end mark)."""
    import threading
    import time

    from realtime_sed.sources import prefetched

    blocks = [np.full(4, i, np.float32) for i in range(3)]
    stream = prefetched(iter(blocks), depth=1)
    for _ in range(stop_after):
        next(stream)
    time.sleep(0.3)  # the reader fills the queue and blocks on the next put
    closer = threading.Thread(target=stream.close, daemon=True)
    closer.start()
    closer.join(timeout=5)
    assert not closer.is_alive(), "closing the stream hung on the reader thread"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_shipped_cnn_streams_with_two_reused_stages_and_the_whole_cnns_numbers(model, demo_audio):
    """Each architecture pools differently behind its first conv ((2, 1) or (2, 2)) and dilates
    its second conv along time or not: all four cut into two reusable stages, and twelve windows
    of a stream give the whole CNN's numbers."""
    from realtime_sed.classifier import StreamingCNN
    from realtime_sed.features import LogMelFrames

    clf = OnnxClassifier(model)
    assert [stage.stride for stage in clf.stages] == [1, 2]
    cnn, frames = StreamingCNN(clf), LogMelFrames()
    starts = [20 * SAMPLE_RATE + i * HOP for i in range(12)]
    x = np.stack([frames(demo_audio[s : s + WINDOW_SAMPLES], s) for s in starts])
    got = np.concatenate([cnn(x[i : i + 3], starts[i : i + 3]) for i in range(0, 12, 3)])
    np.testing.assert_allclose(got, clf.predict_logmel(x), rtol=0, atol=1e-6)
    assert cnn.rows_computed[1] < 12 * clf.stages[1].shape[1] / 2  # most second-conv rows were reused


def test_the_streaming_cnn_reuses_conv_rows_and_gives_the_whole_cnns_numbers(clf, demo_audio):
    """Successive windows one hop apart compute only the conv rows that see a new or an edge frame,
    and the numbers are the whole CNN's on the same log-mels. The first conv reuses the window
    before; the second, behind a max-pool of stride 2, the latest window an even number of frames
    back (a hop is 43 frames: two hops back). Starts that break the frame grid, go backwards, or
    jump further than a window recompute everything, and a block's windows may come in one call."""
    from realtime_sed.classifier import StreamingCNN
    from realtime_sed.features import LogMelFrames

    # The shipped ConvDB: BatchNorm, a 3x3 conv, ReLU; then a max-pool of 2 in time, a 3x3 conv
    # dilated by 2, ReLU.
    assert [(stage.stride, stage.reach) for stage in clf.stages] == [(1, 2), (2, 4)]
    first_rows, second_rows = 345 - 2, (345 - 2) // 2 - 4
    # The second conv's row q sees frames 2q .. 2q + 11; two hops back the shift is 86 frames, so
    # rows 2 .. (340 - 11 - 86) // 2 = 121 are interior to both windows, and 2 + 45 are computed.
    second_reused = second_rows - 47
    cnn, frames = StreamingCNN(clf), LogMelFrames()
    starts = [0, HOP, 2 * HOP, 3 * HOP, 4 * HOP + 100, 5 * HOP + 100, 6 * HOP + 100, 2 * HOP,
              3 * HOP, 2 * HOP + 100000, 2 * HOP + 100000 + HOP]
    fresh_first = [True, False, False, False, True, False, False, True, False, True, False]
    fresh_second = [True, True, False, False, True, True, False, True, True, True, True]
    for start, first_fresh, second_fresh in zip(starts, fresh_first, fresh_second):
        window = demo_audio[start : start + WINDOW_SAMPLES]
        x = frames(window, start)
        before = list(cnn.rows_computed)
        got = cnn(x[None], [start])
        np.testing.assert_allclose(got, clf.predict_logmel(x), rtol=0, atol=1e-6)
        computed = [after - b for after, b in zip(cnn.rows_computed, before)]
        assert computed == [first_rows if first_fresh else 4 + 43 + 4,
                            second_rows if second_fresh else second_rows - second_reused], start
    # A block of four windows in one call, after a fresh start.
    cnn, frames = StreamingCNN(clf), LogMelFrames()
    block = [30 * SAMPLE_RATE + i * HOP for i in range(4)]
    x = np.stack([frames(demo_audio[s : s + WINDOW_SAMPLES], s) for s in block])
    np.testing.assert_allclose(cnn(x, block), clf.predict_logmel(x), rtol=0, atol=1e-6)
    assert cnn.rows_computed == [first_rows + 3 * 51, 2 * second_rows + 2 * 47]
