"""One front-end spec (constants.FrontEnd), and the runtime's refusal of models made for another.

The runtime computes log-mels itself (realtime_sed.features) and feeds only the model's CNN, so a
model whose card or graph describes another front end would get the wrong input without a word.
These tests take a copy of a shipped model and change one thing in it with the onnx package."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from realtime_sed.classifier import OnnxClassifier
from realtime_sed.constants import CARD_METADATA_KEY, FRONT_END, MODEL_NAMES, FrontEnd
from realtime_sed.errors import FrontEndError, ModelError
from tests.conftest import REPO, run_cli
from tests.shipped import MODEL


def card_of(proto) -> dict:
    return json.loads({p.key: p.value for p in proto.metadata_props}[CARD_METADATA_KEY])


def with_card(proto, card: dict):
    for prop in proto.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            prop.value = json.dumps(card)
    return proto


def save(proto, path) -> str:
    onnx.save(proto, str(path))
    return str(path)


def card_front_end_changed(tmp_path, **change) -> str:
    proto = onnx.load(str(MODEL))
    card = card_of(proto)
    card["frontend"] = {**card["frontend"], **change}
    return save(with_card(proto, card), tmp_path / "changed.onnx")


def replace_constant(proto, name: str, value: np.ndarray):
    for i, t in enumerate(proto.graph.initializer):
        if t.name == name:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(value.astype(numpy_helper.to_array(t).dtype), name))
            return proto
    raise KeyError(name)


def htk_filterbank(f_max: float, n_fft: int = 2048, n_mels: int = 120, sample_rate: int = 22050) -> np.ndarray:
    """HTK triangles without normalisation (torchaudio's formula) for another f_max."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    f_pts = 700.0 * (10.0 ** (np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), n_mels + 2) / 2595.0) - 1.0)
    slopes = f_pts[None, :] - freqs[:, None]
    f_diff = np.diff(f_pts)
    return np.maximum(0.0, np.minimum(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]))


def graph_constant(proto, op_type: str, index: int) -> str:
    """The name of the initializer that is input `index` of the front end's `op_type` node."""
    inits = {t.name for t in proto.graph.initializer}
    node = next(n for n in proto.graph.node if n.op_type == op_type and n.input[index] in inits)
    return node.input[index]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_shipped_card_has_this_front_end(name):
    """Both the card beside the model and the one inside it; and today's card keys are FrontEnd's."""
    sidecar = json.loads((REPO / "models" / f"{name}.json").read_text())["frontend"]
    inside = card_of(onnx.load(str(REPO / "models" / f"{name}.onnx")))["frontend"]
    assert FrontEnd.from_dict(sidecar) == FrontEnd.from_dict(inside) == FRONT_END
    assert FRONT_END.to_dict() == sidecar


def test_to_dict_and_from_dict_round_trip():
    other = FrontEnd(f_max=8000.0, n_fft=1024, mel_scale="slaney", log_amin=1e-8)
    assert FrontEnd.from_dict(other.to_dict()) == other
    assert FrontEnd.from_dict(json.loads(json.dumps(other.to_dict()))) == other
    assert other.floor_db == pytest.approx(-80.0) and FRONT_END.floor_db == -100.0
    assert FRONT_END.differences(other) == ["n_fft 1024 (expected 2048)", "f_max 8000.0 (expected 11025.0)",
                                            "mel_scale 'slaney' (expected 'htk')", "log_amin 1e-08 (expected 1e-10)"]
    with pytest.raises(ValueError, match="unknown key preemphasis"):
        FrontEnd.from_dict({**FRONT_END.to_dict(), "preemphasis": 0.97})


@pytest.mark.parametrize("change, expected", [
    ({"f_max": 8000.0}, "f_max 8000.0 (expected 11025.0)"),
    ({"n_fft": 1024}, "n_fft 1024 (expected 2048)"),
    ({"mel_scale": "slaney"}, "mel_scale 'slaney' (expected 'htk')"),
    ({"hop_length": 512}, "hop_length 512 (expected 256)"),
    ({"log": "10*log10(max(mel, 1e-08))"}, "log_amin 1e-08 (expected 1e-10)"),
    ({"preemphasis": 0.97}, "does not know (unknown key preemphasis)"),
], ids=["f_max", "n_fft", "mel_scale", "hop", "floor", "unknown-key"])
def test_a_card_with_another_front_end_is_refused(tmp_path, change, expected):
    path = card_front_end_changed(tmp_path, **change)
    with pytest.raises(FrontEndError) as info:
        OnnxClassifier(path)
    assert expected in str(info.value) and "graph" not in str(info.value)  # the graph is the shipped one
    assert isinstance(info.value, ModelError)


def test_the_cli_refuses_it_in_one_line(tmp_path, clip_file):
    path = card_front_end_changed(tmp_path, f_max=8000.0)
    r = run_cli("classify", clip_file("dog_bark"), "--model", path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [f"realtime-sed: error: {path}: its front end differs from this runtime's: "
                                     "f_max 8000.0 (expected 11025.0)"]


def test_a_graph_with_another_filterbank_is_refused_whatever_its_card_says(tmp_path):
    proto = onnx.load(str(MODEL))
    fb = graph_constant(proto, "MatMul", 1)
    assert np.abs(htk_filterbank(11025.0) - numpy_helper.to_array(
        next(t for t in proto.graph.initializer if t.name == fb))).max() < 1e-4  # the formula is right
    path = save(replace_constant(proto, fb, htk_filterbank(8000.0)), tmp_path / "fmax8k.onnx")
    with pytest.raises(FrontEndError, match=r"graph: mel filterbank differs by up to .* f_max"):
        OnnxClassifier(path)


def test_a_graph_with_another_fft_size_is_refused(tmp_path):
    proto = onnx.load(str(MODEL))
    fb = graph_constant(proto, "MatMul", 1)
    path = save(replace_constant(proto, fb, htk_filterbank(11025.0, n_fft=1024)), tmp_path / "nfft.onnx")
    with pytest.raises(FrontEndError, match=r"graph: mel filterbank \[513, 120\] \(expected \[1025, 120\]"):
        OnnxClassifier(path)


def test_a_graph_with_another_hop_is_refused(tmp_path):
    proto = onnx.load(str(MODEL))
    step = graph_constant(proto, "STFT", 1)
    path = save(replace_constant(proto, step, np.array(512)), tmp_path / "hop.onnx")
    with pytest.raises(FrontEndError, match=r"graph: STFT hop 512 \(expected 256\)"):
        OnnxClassifier(path)


def test_a_card_from_before_the_frontend_entry_is_judged_by_its_graph(tmp_path):
    proto = onnx.load(str(MODEL))
    card = card_of(proto)
    del card["frontend"]
    clf = OnnxClassifier(save(with_card(proto, card), tmp_path / "old-card.onnx"))
    assert clf.has_logmel_input
