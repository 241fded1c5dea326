"""OnnxClassifier: load an exported model, check it is what the runtime expects, and run it.

One .onnx file holds the whole network (raw audio in). For streaming, the graph is cut at the
`logmel` tensor in memory so the CNN can run on log-mels computed incrementally by
`realtime_sed.features`; `predict_audio` runs the whole graph and is the reference the fast path
is tested against.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from realtime_sed.constants import (CARD_METADATA_KEY, CLASSES, FRONT_END, LOGMEL_TENSOR, MODEL_NAMES, N_FRAMES,
                                     N_MELS, SAMPLE_RATE, WINDOW_SAMPLES, FrontEnd, installed_data)
from realtime_sed.errors import FrontEndError, ModelError
from realtime_sed.features import hann_window, mel_filterbank

FILTERBANK_TOL = 1e-4  # the graph's float32 mel triangles vs ours (measured 1.2e-5 on the shipped ones)
WINDOW_TOL = 1e-5  # its Hann window vs ours (measured 2.1e-7)
MODELS_DIR = Path(os.environ.get("REALTIME_SED_MODELS", installed_data("models")))


def resolve_model(model: str | os.PathLike) -> Path:
    """A short name (`convdb`) means models/convdb.onnx; anything else is a path."""
    if str(model) in MODEL_NAMES:
        path = MODELS_DIR / f"{model}.onnx"
        if not path.exists():
            raise ModelError(f"model {model!r} is not in {MODELS_DIR} (no {path.name}); "
                             "train it or pass a path to an .onnx file")
        return path
    path = Path(model)
    if not path.exists():
        raise ModelError(f"{path}: model file not found (short names: {', '.join(MODEL_NAMES)})")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not an .onnx model")
    return path


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _constants(proto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def graph_front_end_problems(proto, front: FrontEnd = FRONT_END) -> list[str]:
    """What the graph's own front end (the nodes before its `logmel` tensor) does differently from
    `front`, read from the constants it computes with: the STFT's hop, length and window, the mel
    filterbank (whose shape is n_fft and n_mels, and whose triangles are f_min, f_max, the mel
    scale and the sample rate) and the log's floor. A graph built some other way (no STFT or no
    constant filterbank) is left to its card."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    if LOGMEL_TENSOR not in producer:
        return []
    consts = _constants(proto)
    front_nodes, todo, seen = [], [LOGMEL_TENSOR], set()
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        front_nodes.append(node)
        todo.extend(node.input)
    problems = []
    for node in front_nodes:
        inputs = [consts.get(i) for i in node.input]
        if node.op_type == "STFT" and len(inputs) >= 3:
            step, window = inputs[1], inputs[2]
            if step is not None and int(step) != front.hop_length:
                problems.append(f"STFT hop {int(step)} (expected {front.hop_length})")
            if window is not None:
                if window.shape != (front.n_fft,):
                    problems.append(f"STFT window of {window.size} samples (n_fft {front.n_fft} expected)")
                elif np.abs(window - hann_window()).max() > WINDOW_TOL:
                    problems.append("STFT window is not the periodic Hann window")
        elif node.op_type == "MatMul":
            for fb in (x for x in inputs if x is not None and x.ndim == 2):
                expected = (front.n_fft // 2 + 1, front.n_mels)
                if fb.shape != expected:
                    problems.append(f"mel filterbank {list(fb.shape)} (expected {list(expected)}: n_fft "
                                    f"{front.n_fft}, n_mels {front.n_mels})")
                elif (gap := float(np.abs(fb - mel_filterbank()).max())) > FILTERBANK_TOL:
                    problems.append(f"mel filterbank differs by up to {gap:.3g} (f_min, f_max, mel scale "
                                    "or sample rate)")
        elif node.op_type == "Clip" and len(inputs) >= 2 and inputs[1] is not None:
            if not np.isclose(float(inputs[1]), front.log_amin, rtol=1e-6):
                problems.append(f"log floor {float(inputs[1]):g} (expected {front.log_amin:g})")
    return problems


class OnnxClassifier:
    """A realtime-sed model: validated on load, then `predict_logmel` (fast) or `predict_audio`."""

    def __init__(self, model: str | os.PathLike, threads: int = 1):
        import onnx
        import onnxruntime as ort

        self.path = resolve_model(model)
        try:
            proto = onnx.load(str(self.path))
        except Exception as exc:  # protobuf raises several types for garbage input
            raise ModelError(f"{self.path}: not an ONNX model ({type(exc).__name__})") from None
        if not proto.graph.node:
            raise ModelError(f"{self.path}: not an ONNX model (empty graph)")
        self.card = self._validate(proto)
        self.name = self.card.get("architecture", {}).get("name") or self.path.stem
        self.threads = threads
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = threads
        self._options.inter_op_num_threads = 1
        self._options.log_severity_level = 3
        self._full = None
        self._proto_bytes = proto.SerializeToString()
        self._cnn = None
        self._cnn_input = None
        if LOGMEL_TENSOR in {o for n in proto.graph.node for o in n.output}:
            cnn = onnx.utils.Extractor(proto).extract_model([LOGMEL_TENSOR], [self._output])
            self._cnn = self._session(cnn.SerializeToString())
            self._cnn_input = self._cnn.get_inputs()[0].name
        else:  # a graph without the cut point still works, through the slower full graph
            self._full = self._session(self._proto_bytes)

    def _session(self, model_bytes: bytes):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(model_bytes, self._options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{self.path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None

    def _validate(self, proto) -> dict:
        inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
        if len(inputs) != 1 or len(proto.graph.output) != 1:
            raise ModelError(f"{self.path}: expected one input and one output, found "
                             f"{len(inputs)} and {len(proto.graph.output)}")
        in_dims, out_dims = _dims(inputs[0]), _dims(proto.graph.output[0])
        if len(in_dims) != 2 or in_dims[1] != WINDOW_SAMPLES:
            raise ModelError(f"{self.path}: input shape {in_dims}, expected [batch, {WINDOW_SAMPLES}] "
                             f"(4 s of {SAMPLE_RATE} Hz audio)")
        if len(out_dims) != 2 or out_dims[1] != len(CLASSES):
            raise ModelError(f"{self.path}: output shape {out_dims}, expected [batch, {len(CLASSES)}]")
        self._input, self._output = inputs[0].name, proto.graph.output[0].name
        meta = {p.key: p.value for p in proto.metadata_props}
        try:
            card = json.loads(meta.get(CARD_METADATA_KEY, "{}"))
        except json.JSONDecodeError:
            raise ModelError(f"{self.path}: its model card metadata is not valid JSON") from None
        classes = card.get("classes") or (meta["classes"].split(",") if "classes" in meta else None)
        if classes is None:
            raise ModelError(f"{self.path}: no class names in its metadata; not a realtime-sed model")
        if list(classes) != list(CLASSES):
            raise ModelError(f"{self.path}: its classes {classes} differ from UrbanSound8K's")
        for key, expected in (("sample_rate", SAMPLE_RATE), ("window_samples", WINDOW_SAMPLES)):
            value = card.get(key, meta.get(key))
            if value is None or int(value) != expected:
                raise ModelError(f"{self.path}: metadata {key}={value}, expected {expected}")
        self._check_front_end(proto, card)
        return card

    def _check_front_end(self, proto, card: dict) -> None:
        """The runtime feeds the CNN log-mels it computes itself, so a model trained on any other
        front end is refused, whether its card says so or its graph does. (Cards from before the
        "frontend" entry are judged by their graph alone.)"""
        problems = []
        if "frontend" in card:
            try:
                problems += FRONT_END.differences(FrontEnd.from_dict(card["frontend"]))
            except (TypeError, ValueError) as exc:
                problems.append(f"a front end this runtime does not know ({exc})")
        problems += [f"graph: {p}" for p in graph_front_end_problems(proto)]
        if problems:
            raise FrontEndError(f"{self.path}: its front end differs from this runtime's: {'; '.join(problems)}")

    @property
    def thresholds(self) -> dict:
        """Per-class on/off thresholds from the card, if it has any."""
        return self.card.get("thresholds", {})

    def predict_logmel(self, logmel: np.ndarray) -> np.ndarray:
        """[frames, mels] or [batch, frames, mels] -> [batch, classes]. Falls back to nothing:
        without the cut point use `predict_audio`."""
        if self._cnn is None:
            raise ModelError(f"{self.path}: has no '{LOGMEL_TENSOR}' tensor to feed log-mels to")
        x = np.asarray(logmel, np.float32).reshape(-1, 1, N_FRAMES, N_MELS)
        return self._cnn.run(None, {self._cnn_input: x})[0]

    @property
    def has_logmel_input(self) -> bool:
        return self._cnn is not None

    def predict_audio(self, audio: np.ndarray) -> np.ndarray:
        """[samples] or [batch, samples] raw 22050 Hz audio -> [batch, classes]: the whole graph."""
        if self._full is None:
            self._full = self._session(self._proto_bytes)
        x = np.asarray(audio, np.float32).reshape(-1, WINDOW_SAMPLES)
        return self._full.run(None, {self._input: x})[0]
