"""EventDetector: window probabilities -> events, rule by rule, then through a real model card."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import CLASSES, SAMPLE_RATE
from realtime_sed.events import SILENCE_DBFS, DetectorConfig, EventDetector, level_dbfs
from tests.conftest import run_cli
from tests.shipped import EVENTFUL_LABELS, MODEL

HOP = 0.5
WIN = 4.0
LOUD = -20.0
DOG = CLASSES.index("dog_bark")
SIREN = CLASSES.index("siren")


def probs(**values: float) -> np.ndarray:
    p = np.zeros(len(CLASSES))
    for name, v in values.items():
        p[CLASSES.index(name)] = v
    return p


def run(detector: EventDetector, sequence, levels=None, stream_end: float | None = None):
    """Feeds windows i = 0, 1, ... starting at i * HOP; returns every event and the smoothed values."""
    events, smoothed = [], []
    for i, p in enumerate(sequence):
        s, done = detector.update(p, i * HOP, LOUD if levels is None else levels[i])
        smoothed.append(s)
        events += done
    end = (len(sequence) - 1) * HOP + WIN if stream_end is None else stream_end
    return events + detector.finish(end), np.array(smoothed)


def spans(events):
    return [(e.label, e.onset, e.offset) for e in events]


def dog(seq):
    return [probs(dog_bark=v) for v in seq]


def centre_start(i):  # where window i's stretch begins: its centre minus half a hop
    return i * HOP + WIN / 2 - HOP / 2


def centre_end(i):
    return i * HOP + WIN / 2 + HOP / 2


def test_hysteresis_on_and_off_thresholds():
    det = EventDetector(DetectorConfig(on=0.5, off=0.3, smooth=1), HOP, WIN)
    seq = [0.2, 0.6, 0.4, 0.35, 0.25, 0.45, 0.55, 0.1, 0.0]
    events, _ = run(det, dog(seq))
    # On at 0.6 (window 1), held through 0.4 and 0.35 (above off), off at 0.25 (window 4);
    # 0.45 is under the on-threshold, so nothing until 0.55 (window 6), off again at 0.1.
    assert spans(events) == [("dog_bark", centre_start(1), centre_end(3)), ("dog_bark", centre_start(6), centre_end(6))]
    assert events[0].peak == 0.6 and events[1].peak == 0.55

    # Without hysteresis the same input splits the first event.
    det = EventDetector(DetectorConfig(on=0.5, off=0.5, smooth=1), HOP, WIN)
    assert [e.offset for e in run(det, dog(seq))[0]] == [centre_end(1), centre_end(6)]


def test_default_off_threshold_is_on_minus_015():
    det = EventDetector(DetectorConfig(on=0.6), HOP, WIN)
    np.testing.assert_allclose(det.off, 0.45)
    det = EventDetector(DetectorConfig(on=0.1), HOP, WIN)
    np.testing.assert_allclose(det.off, 0.0)  # clipped at zero
    with pytest.raises(ValueError, match="off-thresholds"):
        EventDetector(DetectorConfig(on=0.4, off=0.5), HOP, WIN)


def test_median_smoothing_ignores_a_single_window_spike():
    det = EventDetector(DetectorConfig(on=0.5, smooth=3, smooth_method="median"), HOP, WIN)
    events, smoothed = run(det, dog([0, 0, 0.9, 0, 0, 0.9, 0.9, 0, 0]))
    np.testing.assert_allclose(smoothed[:, DOG], [0, 0, 0, 0, 0, 0, 0.9, 0.9, 0])
    assert spans(events) == [("dog_bark", centre_start(6), centre_end(7))]


def test_mean_smoothing_averages_the_last_k_windows():
    det = EventDetector(DetectorConfig(on=0.5, smooth=3, smooth_method="mean"), HOP, WIN)
    events, smoothed = run(det, dog([0.9, 0, 0, 0.9, 0, 0, 0.9, 0.9, 0, 0, 0]))
    np.testing.assert_allclose(smoothed[:, DOG], [0.9, 0.45, 0.3, 0.3, 0.3, 0.3, 0.3, 0.6, 0.6, 0.3, 0])
    # The first window is smoothed over itself only, so it fires; the mean then falls under the
    # off-threshold (0.35) at window 2. Two high windows in three bring it back at window 7.
    assert spans(events) == [("dog_bark", 0.0, centre_end(1)), ("dog_bark", centre_start(7), centre_end(8))]


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError):
        EventDetector(DetectorConfig(smooth=0), HOP, WIN)
    with pytest.raises(ValueError):
        EventDetector(DetectorConfig(smooth_method="max"), HOP, WIN)
    with pytest.raises(ValueError, match="unknown classes"):
        EventDetector(DetectorConfig(allow=["dog"]), HOP, WIN)
    with pytest.raises(ValueError, match="unknown classes"):
        EventDetector(DetectorConfig(on={"doggo": 0.5}), HOP, WIN)


def test_min_duration_drops_short_events():
    seq = dog([0, 0.9, 0, 0, 0.9, 0.9, 0.9, 0.9, 0, 0])
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    assert [e.duration for e in run(det, seq)[0]] == [0.5, 2.0]
    det = EventDetector(DetectorConfig(smooth=1, min_duration=1.0), HOP, WIN)
    events, _ = run(det, seq)
    assert spans(events) == [("dog_bark", centre_start(4), centre_end(7))]
    assert det.short_events_dropped == 1


def test_allow_list():
    seq = [probs(dog_bark=0.9), probs(dog_bark=0.9, siren=0.9), probs(siren=0.9), probs()]
    det = EventDetector(DetectorConfig(smooth=1, allow=["siren"]), HOP, WIN)
    events, _ = run(det, seq)
    assert spans(events) == [("siren", centre_start(1), centre_end(2))]
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    assert sorted(e.label for e in run(det, seq)[0]) == ["dog_bark", "siren"]


def test_loudness_gate_blocks_starts_only():
    seq = dog([0.9, 0.9, 0.9, 0.9, 0.9, 0])
    det = EventDetector(DetectorConfig(smooth=1, gate_db=-60), HOP, WIN)
    events, _ = run(det, seq, levels=[-70, -61, -59, -80, -90, -90])
    # Too quiet to start in windows 0 and 1; starts at -59 dBFS and, once on, carries on in the quiet.
    assert spans(events) == [("dog_bark", centre_start(2), centre_end(4))]
    det = EventDetector(DetectorConfig(smooth=1, gate_db=-60), HOP, WIN)
    assert run(det, seq, levels=[SILENCE_DBFS] * 6)[0] == []


def test_level_dbfs():
    assert level_dbfs(np.zeros(1000, np.float32)) == SILENCE_DBFS
    assert level_dbfs(np.zeros(0, np.float32)) == SILENCE_DBFS
    assert level_dbfs(np.full(1000, 0.1, np.float32)) == pytest.approx(-20.0, abs=1e-5)
    sine = np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    assert level_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert level_dbfs(np.full(10, 1e-9, np.float32)) == SILENCE_DBFS  # floored, never -inf


def test_consecutive_windows_merge_into_one_event():
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    seq = [probs(siren=0.1)] * 3 + [probs(siren=0.8)] * 6 + [probs(siren=0.1)] * 3
    events, _ = run(det, seq)
    assert spans(events) == [("siren", centre_start(3), centre_end(8))]
    assert events[0].duration == pytest.approx(6 * HOP)  # each window speaks for one hop


def test_first_and_last_windows_cover_the_stream_edges():
    # A 4 s clip that is one sound: one window, one event from 0 to 4 s.
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    assert spans(run(det, dog([0.9]), stream_end=4.0)[0]) == [("dog_bark", 0.0, 4.0)]

    # A longer sound: the first window also speaks for the audio before its centre, the last for
    # the audio after it, up to the real end of the stream (here inside a zero-padded last window).
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    events, _ = run(det, dog([0.9] * 5), stream_end=6.1)
    assert spans(events) == [("dog_bark", 0.0, 6.1)]

    # Active events are reported as such while the stream runs.
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    det.update(probs(dog_bark=0.9), 0.0, LOUD)
    (active,) = det.active_events
    assert active.active and active.label == "dog_bark" and active.onset == 0.0 and active.offset == centre_end(0)


def test_wall_clock_onset_follows_the_stream():
    det = EventDetector(DetectorConfig(smooth=1), HOP, WIN)
    det.update(probs(), 0.0, LOUD, wall_start=1000.0)
    det.update(probs(dog_bark=0.9), HOP, LOUD, wall_start=1000.0 + HOP)
    (ev,) = det.finish(10.0)
    assert ev.wall_onset == pytest.approx(1000.0 + ev.onset)


def test_thresholds_from_card_and_overrides():
    card = {"on": {"dog_bark": 0.8, "siren": 0.3}, "off": {"dog_bark": 0.6}}
    det = EventDetector(DetectorConfig.from_card(card), HOP, WIN)
    assert det.on[DOG] == 0.8 and det.off[DOG] == 0.6
    assert det.on[SIREN] == 0.3 and det.off[SIREN] == pytest.approx(0.15)  # a class the off dict leaves out
    other = CLASSES.index("car_horn")
    assert det.on[other] == 0.5 and det.off[other] == pytest.approx(0.35)  # both left out: the defaults

    cfg = DetectorConfig.from_card(card, on=None, smooth=5, min_duration=None)
    assert cfg.on == card["on"] and cfg.smooth == 5 and cfg.min_duration == 0.0  # None keeps the default
    cfg = DetectorConfig.from_card(card, on=0.9)
    det = EventDetector(cfg, HOP, WIN)
    assert np.all(det.on == 0.9)
    assert DetectorConfig.from_card({}).on == 0.5 and DetectorConfig.from_card({}).off is None


@pytest.fixture
def carded_model(tmp_path):
    """The shipped model with per-class thresholds written into its model card."""
    def make(thresholds: dict):
        proto = onnx.load(str(MODEL))
        meta = {p.key: p for p in proto.metadata_props}
        card = json.loads(meta["realtime_sed.card"].value)
        card["thresholds"] = thresholds
        meta["realtime_sed.card"].value = json.dumps(card)
        path = tmp_path / "carded.onnx"
        onnx.save(proto, str(path))
        return path

    return make


def test_classifier_reads_thresholds_from_its_card(carded_model):
    thresholds = {"on": {c: 0.7 for c in CLASSES}, "off": {"dog_bark": 0.2}}
    clf = OnnxClassifier(carded_model(thresholds))
    assert clf.thresholds == thresholds
    det = EventDetector(DetectorConfig.from_card(clf.thresholds), HOP, WIN)
    np.testing.assert_allclose(det.on, 0.7)
    assert det.off[DOG] == 0.2


def test_card_thresholds_drive_the_cli(carded_model, clip_file):
    """Unreachable on-thresholds in the card silence a clip the shipped card finds events in;
    --threshold overrides them."""
    clip = clip_file(EVENTFUL_LABELS[0], seconds=6.0)
    plain = run_cli("classify", clip, "--format", "jsonl")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip()  # the shipped card (no thresholds) finds events
    model = carded_model({"on": {c: 1.5 for c in CLASSES}})
    silenced = run_cli("classify", clip, "--format", "jsonl", "--model", model)
    assert silenced.returncode == 0, silenced.stderr
    assert silenced.stdout == ""
    override = run_cli("classify", clip, "--format", "jsonl", "--model", model, "--threshold", "0.5")
    assert override.returncode == 0, override.stderr
    assert override.stdout == plain.stdout
