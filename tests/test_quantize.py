"""The int8 path of `realtime-sed quantize`: a model quantised (calibrated on a few real clips) loads
as a realtime-sed model with its float front end and `logmel` cut point, and names the same classes
as the float model. It is not shipped: besides being slower here, streaming through it differs from
its own whole graph by up to ~6e-4 (the 1e-6 differences of the numpy log-mel cross int8 rounding
steps), against the 1e-5 a shipped model must meet; the test records that bound as a fact, so a
quantisation that met it would show. The full command (all fold-wise clips) is too slow for CI; its
figures are in the README."""

import numpy as np
import pytest

from realtime_sed.classifier import OnnxClassifier, resolve_model
from realtime_sed.features import LogMelFrames
from tests.conftest import needs_data, SHARED_DATA

pytest.importorskip("onnxruntime.quantization")
OFFLINE_TOL = 1e-5


@needs_data
def test_int8_model_streams_like_its_own_whole_graph(tmp_path, demo_audio):
    from train.data import read_metadata
    from train.quantize import quantize

    clips, _ = read_metadata(SHARED_DATA)
    out = tmp_path / "convdb-int8.onnx"
    quantize(resolve_model("convdb"), out, [c.path for c in clips[:4]])
    q8 = OnnxClassifier(out)
    assert q8.has_logmel_input
    hop = 43 * 256
    frames = LogMelFrames()
    starts = range(0, len(demo_audio) - 88200 + 1, hop)[:40]
    windows = np.stack([demo_audio[s : s + 88200] for s in starts])
    streamed = np.concatenate([q8.predict_logmel(frames(w, s)) for w, s in zip(windows, starts)])
    whole = q8.predict_audio(windows)
    assert np.abs(streamed - whole).max() > OFFLINE_TOL, "int8 now streams like its graph: reconsider shipping it"
    float_probs = OnnxClassifier("convdb").predict_audio(windows)
    assert np.mean(whole.argmax(1) == float_probs.argmax(1)) >= 0.9  # int8, not noise
