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

from realtime_sed.constants import (CARD_METADATA_KEY, CLASSES, FRONT_END, HOP_LENGTH, LOGMEL_TENSOR, MODEL_NAMES,
                                     N_FRAMES, N_MELS, SAMPLE_RATE, WINDOW_SAMPLES, FrontEnd, installed_data)
from realtime_sed.errors import FrontEndError, ModelError
from realtime_sed.features import FIRST_INTERIOR, LAST_INTERIOR, hann_window, mel_filterbank

FILTERBANK_TOL = 1e-4  # the graph's float32 mel triangles vs ours (measured 1.2e-5 on the shipped ones)
WINDOW_TOL = 1e-5  # its Hann window vs ours (measured 2.1e-7)
# First-conv maps (648 kB each) per call of the rest of the CNN: in a stream of 8-window blocks,
# 1 or 2 per call were 12% faster per window than all 8 at once (measured in one run; cache).
MAPS_PER_CALL = 2
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
        self._first = self._rest = None  # the CNN split after its first conv (see `conv_reach`)
        self.conv_reach: int | None = None
        if LOGMEL_TENSOR in {o for n in proto.graph.node for o in n.output}:
            extractor = onnx.utils.Extractor(proto)
            cnn = extractor.extract_model([LOGMEL_TENSOR], [self._output])
            self._cnn = self._session(cnn.SerializeToString())
            self._cnn_input = self._cnn.get_inputs()[0].name
            self._split_first_conv(cnn, extractor)
        else:  # a graph without the cut point still works, through the slower full graph
            self._full = self._session(self._proto_bytes)

    def _split_first_conv(self, cnn, extractor) -> None:
        """If the CNN starts with [BatchNormalization] Conv Relu, the conv with stride 1 and no
        padding along time, the part up to that ReLU (on any number of frames) and the rest become
        two more sessions: a stream can then reuse the conv's rows that see only frames an earlier
        window shared (`StreamingCNN`). Any other graph (an int8 one) runs whole."""
        consumers: dict[str, list] = {}
        for node in cnn.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        chain, tensor = [], LOGMEL_TENSOR
        for op in ("BatchNormalization", "Conv", "Relu"):
            nodes = consumers.get(tensor, [])
            if len(nodes) == 1 and nodes[0].op_type == op:
                chain.append(nodes[0])
                tensor = nodes[0].output[0]
            elif op != "BatchNormalization":  # (the only optional one)
                return
        conv = next(n for n in chain if n.op_type == "Conv")
        attrs = {a.name: a for a in conv.attribute}
        ints = lambda name, default: list(attrs[name].ints) if name in attrs else default  # noqa: E731
        if (ints("strides", [1, 1])[0] != 1 or any(ints("pads", [0, 0, 0, 0])[i] for i in (0, 2))
                or ("auto_pad" in attrs and attrs["auto_pad"].s not in (b"", b"NOTSET", b"VALID"))
                or ("group" in attrs and attrs["group"].i != 1) or "kernel_shape" not in attrs):
            return
        first = extractor.extract_model([LOGMEL_TENSOR], [tensor])
        for value in (first.graph.input[0], first.graph.output[0]):  # any number of frames
            value.type.tensor_type.shape.dim[2].dim_param = "frames"
        del first.graph.value_info[:]
        rest = extractor.extract_model([tensor], [self._output])
        self._first = self._session(first.SerializeToString())
        self._rest = self._session(rest.SerializeToString())
        self._first_input, self._rest_input = LOGMEL_TENSOR, tensor
        self.conv_reach = (ints("kernel_shape", [1])[0] - 1) * ints("dilations", [1, 1])[0]
        probe = self.first_conv(np.zeros((N_FRAMES, N_MELS), np.float32))
        self.first_conv_shape = probe.shape  # (channels, N_FRAMES - conv_reach, width)

    def first_conv(self, logmel: np.ndarray) -> np.ndarray:
        """[frames, mels] -> [channels, frames - conv_reach, width]: the CNN up to its first ReLU."""
        x = np.ascontiguousarray(logmel, np.float32)[None, None]
        return self._first.run(None, {self._first_input: x})[0][0]

    def after_first_conv(self, maps: np.ndarray) -> np.ndarray:
        """[batch, channels, rows, width] first-conv outputs -> [batch, classes]."""
        return self._rest.run(None, {self._rest_input: maps})[0]

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


class StreamingCNN:
    """One stream's CNN over overlapping windows, numbers unchanged. A window one hop after the
    previous one shares its interior log-mel frames (shifted by the hop, see `LogMelFrames`), so
    the first conv's rows that see only those frames are the previous window's, shifted: only the
    rows that see a new frame or an edge frame (51 of 343 at hop 0.5 s) are computed, and the rest
    of the CNN runs on the whole map. Without the split (`conv_reach` None), the whole CNN runs.
    Calls must come in stream order (the pipelined `classify` runs them in one worker thread)."""

    def __init__(self, classifier: OnnxClassifier):
        self.clf = classifier
        self.reach = classifier.conv_reach
        self._start: int | None = None  # the previous window's start sample
        self._map: np.ndarray | None = None  # its first-conv map
        self.rows_computed = 0  # for tests and the benchmark: how much reuse happened

    def __call__(self, logmels: np.ndarray, starts: list[int]) -> np.ndarray:
        """[batch, frames, mels] log-mels of successive windows starting at `starts` -> [batch, classes]."""
        if self.reach is None:
            return self.clf.predict_logmel(logmels)
        probs = []
        for i in range(0, len(logmels), MAPS_PER_CALL):
            chunk = logmels[i : i + MAPS_PER_CALL]
            maps = np.empty((len(chunk), *self.clf.first_conv_shape), np.float32)
            for m, x, start in zip(maps, chunk, starts[i : i + MAPS_PER_CALL]):
                self._first_conv(x, int(start), m)
                self._start, self._map = int(start), m
            probs.append(self.clf.after_first_conv(maps))
        return np.concatenate(probs)

    def _first_conv(self, x: np.ndarray, start: int, out: np.ndarray) -> None:
        reach, keep = self.reach, 0
        if self._start is not None and start > self._start:
            shift, rem = divmod(start - self._start, HOP_LENGTH)
            # Rows FIRST_INTERIOR.. see frames up to row + reach, which must be interior in both windows.
            keep = LAST_INTERIOR - reach - shift + 1 - FIRST_INTERIOR if rem == 0 else 0
        if keep <= 0:
            out[...] = self.clf.first_conv(x)
            self.rows_computed += out.shape[1]
            return
        tail = FIRST_INTERIOR + keep  # the first row computed again at the end
        head_frames = FIRST_INTERIOR + reach
        slab = self.clf.first_conv(np.concatenate([x[:head_frames], x[tail:]]))
        out[:, :FIRST_INTERIOR] = slab[:, :FIRST_INTERIOR]
        out[:, FIRST_INTERIOR:tail] = self._map[:, FIRST_INTERIOR + shift : tail + shift]
        out[:, tail:] = slab[:, head_frames:]
        self.rows_computed += FIRST_INTERIOR + out.shape[1] - tail

    def reset(self) -> None:
        self._start = self._map = None
