"""ONNX export: raw audio [batch, 88200] in, probabilities [batch, 10] out, front end inside.

The front end and the CNN are exported separately and joined with `onnx.compose`, so the tensor
between them is reliably named `logmel`: the runtime cuts the graph there to feed it log-mels it
computed incrementally (see realtime_sed.features). The model card sits in the ONNX metadata and
in a JSON file beside it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from realtime_sed.constants import (
    CARD_METADATA_KEY,
    CLASSES,
    FRONT_END,
    LOGMEL_TENSOR,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
)
from train.architectures import CNN, LogMel

OPSET = 18


class _Probabilities(nn.Module):
    def __init__(self, cnn: CNN):
        super().__init__()
        self.cnn = cnn

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.cnn(logmel), dim=-1)


def _export(module: nn.Module, example: torch.Tensor, name_in: str, name_out: str) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1, max=1024)
    # The exporter's chatter (torchvision ops it skips, deprecations) is not about our graph.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(tmp) / "part.onnx"
        torch.onnx.export(
            module.eval(), (example,), str(path), dynamo=True, opset_version=OPSET,
            input_names=[name_in], output_names=[name_out],
            dynamic_shapes=({0: batch},),
            external_data=False, verbose=False,
        )
        return onnx.load(str(path))


def frontend_card() -> dict:
    return FRONT_END.to_dict()


def export_onnx(cnn: CNN, path: Path, card: dict) -> Path:
    """Writes `path` (.onnx) and `path.with_suffix('.json')` (the card)."""
    cnn = cnn.cpu().eval().to(memory_format=torch.contiguous_format)
    front = _export(LogMel(), torch.zeros(2, WINDOW_SAMPLES), "audio", LOGMEL_TENSOR)
    back = _export(_Probabilities(cnn), torch.zeros(2, 1, N_FRAMES, N_MELS), LOGMEL_TENSOR, "probs")
    back = onnx.compose.add_prefix(back, "cnn/", rename_inputs=False, rename_outputs=False)
    model = onnx.compose.merge_models(front, back, io_map=[(LOGMEL_TENSOR, LOGMEL_TENSOR)])
    card = {**card, "classes": list(CLASSES), "sample_rate": SAMPLE_RATE,
            "window_samples": WINDOW_SAMPLES, "frontend": frontend_card(),
            "inputs": {"audio": ["batch", WINDOW_SAMPLES]}, "outputs": {"probs": ["batch", len(CLASSES)]},
            "logmel_tensor": LOGMEL_TENSOR}
    meta = {CARD_METADATA_KEY: json.dumps(card), "classes": ",".join(CLASSES),
            "sample_rate": str(SAMPLE_RATE), "window_samples": str(WINDOW_SAMPLES),
            "architecture": card.get("architecture", {}).get("name", "")}
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "realtime-sed"
    model.doc_string = f"{meta['architecture']}: raw 22050 Hz mono audio [batch, 88200] -> class probabilities"
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path
