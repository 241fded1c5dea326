"""`realtime-sed quantize MODEL`: an int8 copy of a model by ONNX Runtime static quantisation,
calibrated on real UrbanSound8K clips, and the decision whether to ship it.

Only the CNN's Conv and Gemm are quantised (per channel, QDQ); the front end (STFT, mel, log) stays
float, so the `logmel` cut point and the streaming path work as for the float model. The int8
model is judged against the float one on the same clips: ACC of each, how often their top-1 agree,
and the CNN's median time on 1 thread. It is written only if it costs at most MAX_ACC_COST of ACC
and is faster; otherwise the figures are printed and nothing is written. Re-run it whenever the
float model is re-shipped. Needs no torch.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime_sed.audio import load_audio
from realtime_sed.classifier import OnnxClassifier, resolve_model
from realtime_sed.constants import WINDOW_SAMPLES
from realtime_sed.errors import SedError
from realtime_sed.features import logmel
from train.data import read_metadata
from train.settings import QuantizeSettings

MAX_ACC_COST = 0.01
CALIBRATION_CLIPS = 200
EVAL_FOLDS = (10, 1, 2, 3)  # the fold-wise test folds of the project's results


def clip_window(path: Path) -> np.ndarray:
    """A clip as the paper feeds it: its first 4 s, zero-padded at the end."""
    x = load_audio(path)[:WINDOW_SAMPLES]
    return np.pad(x, (0, WINDOW_SAMPLES - len(x)))


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader protocol over real clips (raw audio)."""

    def __init__(self, input_name: str, windows: list[np.ndarray]):
        self._name, self._it = input_name, iter(windows)

    def get_next(self) -> dict | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}


def quantize(model: Path, out: Path, clips: list[Path]) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    proto = onnx.load(str(model))
    opsets = {o.domain: o.version for o in proto.opset_import}  # exports may list a domain twice
    del proto.opset_import[:]
    proto.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(proto, str(src))
        initializers = {t.name for t in proto.graph.initializer}
        input_name = next(i.name for i in proto.graph.input if i.name not in initializers)
        reader = _Calibration(input_name, [clip_window(p)[None] for p in clips])
        quantize_static(str(src), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv", "Gemm"], activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)


def cnn_ms(clf: OnnxClassifier, x: np.ndarray, repeats: int = 200) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf.predict_logmel(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def run_quantize(settings: QuantizeSettings) -> int:
    model = resolve_model(settings.model)
    out = Path(settings.out) if settings.out else model.with_name(f"{model.stem}-int8.onnx")
    clips, _ = read_metadata(settings.data)
    eval_folds = tuple(int(f) for f in settings.folds.split(","))
    test = [c for c in clips if c.fold in eval_folds]
    calib_pool = [c.path for c in clips if c.fold not in eval_folds] or [c.path for c in clips]
    calib = random.Random(settings.seed).sample(calib_pool, min(settings.calibration, len(calib_pool)))
    if not test:
        raise SedError(f"no clips of folds {settings.folds} in {settings.data}")
    print(f"calibrating on {len(calib)} clips outside folds {settings.folds}; evaluating on {len(test)} clips")
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / out.name
        quantize(model, candidate, calib)
        fp, q8 = OnnxClassifier(model, threads=1), OnnxClassifier(candidate, threads=1)
        y, p_fp, p_q8 = [], [], []
        for clip in test:
            x = logmel(clip_window(clip.path))
            y.append(clip.label)
            p_fp.append(int(fp.predict_logmel(x)[0].argmax()))
            p_q8.append(int(q8.predict_logmel(x)[0].argmax()))
        y, p_fp, p_q8 = map(np.array, (y, p_fp, p_q8))
        x = logmel(clip_window(test[0].path))
        figures = {"clips": len(test), "folds": list(eval_folds), "acc_float": float(np.mean(p_fp == y)),
                   "acc_int8": float(np.mean(p_q8 == y)), "top1_agreement": float(np.mean(p_fp == p_q8)),
                   "cnn_ms_float": cnn_ms(fp, x), "cnn_ms_int8": cnn_ms(q8, x)}
        figures["acc_cost"] = figures["acc_float"] - figures["acc_int8"]
        ship = figures["acc_cost"] <= MAX_ACC_COST and figures["cnn_ms_int8"] < figures["cnn_ms_float"]
        print(f"float ACC {figures['acc_float']:.4f}, int8 ACC {figures['acc_int8']:.4f} "
              f"(cost {figures['acc_cost']:+.4f}, limit {MAX_ACC_COST}), top-1 agreement "
              f"{figures['top1_agreement']:.4f}; CNN on 1 thread: float {figures['cnn_ms_float']:.3f} ms, "
              f"int8 {figures['cnn_ms_int8']:.3f} ms")
        if settings.json:
            Path(settings.json).write_text(json.dumps({**figures, "shipped": ship}, indent=1))
        if not ship:
            print(f"not written: the int8 model must cost <= {MAX_ACC_COST} ACC and be faster")
            return 0
        out.write_bytes(candidate.read_bytes())
    print(f"wrote {out}")
    return 0
