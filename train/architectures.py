"""The paper's four CNNs (Table 1), plus the log-mel front end that sits inside the exported graph.

Tensors are [batch, channel, time, mel], so Table 1's (time, freq, channel) shapes read directly off
`layer_shapes()`. Dilations grow along frequency (ConvDF), time (ConvDT) or both (ConvDB); the pool
sizes are the ones that give Table 1's shapes exactly (the paper does not print them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio
from torch import nn

from realtime_sed.constants import (
    CLASSES,
    F_MAX,
    F_MIN,
    HOP_LENGTH,
    LOG_AMIN,
    N_FFT,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
)

FILTERS = (4, 8, 16, 32)
DENSE_UNITS = 100
DROP_LEVELS = 65536  # CpuDropout's resolution: its rate is a whole number of 1/65536ths (0.1 -> 0.100006)


@dataclass(frozen=True)
class Architecture:
    name: str
    dilations: tuple[tuple[int, int], ...]  # (time, freq) per conv layer
    pools: tuple[tuple[int, int], ...]  # (time, freq) per max-pool layer
    trainable_params: int  # what Table 1's shapes imply (see ConvDT's note)


ARCHITECTURES: dict[str, Architecture] = {
    "conv2d": Architecture(
        "Conv2D", ((1, 1), (1, 1), (1, 1), (1, 1)), ((2, 2), (2, 2), (2, 2), (4, 3)), 93_656
    ),
    "convdf": Architecture(
        "ConvDF", ((1, 1), (1, 2), (1, 4), (1, 8)), ((2, 2), (2, 2), (2, 1), (4, 1)), 93_656
    ),
    # Table 1 prints 87,258 for ConvDT, but its own flatten size of 800 gives 87,256.
    "convdt": Architecture(
        "ConvDT", ((1, 1), (2, 1), (4, 1), (8, 1)), ((2, 2), (2, 2), (2, 2), (4, 2)), 87_256
    ),
    "convdb": Architecture(
        "ConvDB", ((1, 1), (2, 2), (4, 4), (8, 8)), ((2, 1), (2, 2), (2, 2), (3, 2)), 96_856
    ),
}


class LogMel(nn.Module):
    """Raw audio [batch, samples] -> log-mel [batch, 1, frames, mels] in dB.

    Centred frames with zero padding, periodic Hann window, HTK mel scale without area
    normalisation. `realtime_sed.features` computes the same thing in numpy, frame by frame.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=HOP_LENGTH,
            f_min=F_MIN,
            f_max=F_MAX,
            n_mels=N_MELS,
            center=True,
            pad_mode="constant",
            power=2.0,
            norm=None,
            mel_scale="htk",
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        mel = self.mel(audio)  # [batch, mels, frames]
        logmel = 10.0 * torch.log10(torch.clamp(mel, min=LOG_AMIN))
        return logmel.transpose(1, 2).unsqueeze(1)


class CpuDropout(nn.Dropout):
    """nn.Dropout with a faster mask on the CPU. torch's CPU `bernoulli_` took 28% of a ConvDB
    training step (one thread, 32 views: 45 ms for the first conv's 5.2M activations); 16 random bits
    per activation from numpy's PCG64, seeded from torch's generator so `torch.manual_seed` still
    decides the run, take 15 ms. Each activation is kept with probability 1 - p and scaled by
    1 / (1 - p), p rounded to a whole number of 1/DROP_LEVELS. On a GPU, in eval mode and in the
    exported graph it is nn.Dropout itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drop = round(self.p * DROP_LEVELS)
        dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)  # as_strided below
        if not (self.training and x.device.type == "cpu" and dense and 0 < drop < DROP_LEVELS):
            return super().forward(x)
        seed = int(torch.randint(2**62, (1,)))
        bits = np.frombuffer(np.random.default_rng(seed).bytes(2 * x.numel()), np.uint16)
        mask = torch.from_numpy(bits >= drop).to(x.dtype).mul_(DROP_LEVELS / (DROP_LEVELS - drop))
        return x * mask.as_strided(x.shape, x.stride())  # the mask in x's memory order


class CNN(nn.Module):
    """BatchNorm over the single channel, 4 x [conv 3x3, ReLU, dropout, max-pool], dense 100, dense 10.

    Returns logits; softmax is applied by `ExportModel` (training uses cross-entropy on logits).
    """

    def __init__(self, arch: Architecture, conv_dropout: float = 0.1, dense_dropout: float = 0.5):
        super().__init__()
        self.arch = arch
        self.norm = nn.BatchNorm2d(1)
        layers: list[nn.Module] = []
        in_ch = 1
        for out_ch, dilation, pool in zip(FILTERS, arch.dilations, arch.pools):
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, dilation=dilation),
                nn.ReLU(),
                CpuDropout(conv_dropout),
                nn.MaxPool2d(pool),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        flat = self.features(torch.zeros(1, 1, N_FRAMES, N_MELS)).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(),
            CpuDropout(dense_dropout),
            nn.Linear(flat, DENSE_UNITS),
            nn.ReLU(),
            nn.Linear(DENSE_UNITS, len(CLASSES)),
        )

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.norm(logmel)))


class ExportModel(nn.Module):
    """What goes into the ONNX file: raw audio in, class probabilities out."""

    def __init__(self, cnn: CNN):
        super().__init__()
        self.frontend = LogMel()
        self.cnn = cnn

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.cnn(self.frontend(audio)), dim=-1)


def build_cnn(name: str, conv_dropout: float = 0.1, dense_dropout: float = 0.5) -> CNN:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return CNN(ARCHITECTURES[name], conv_dropout, dense_dropout)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_shapes(cnn: CNN) -> list[tuple[str, tuple[int, ...]]]:
    """Each layer's output shape as Table 1 prints it: (time, freq, channels), or (units,)."""
    x = torch.zeros(1, 1, N_FRAMES, N_MELS)
    cnn.eval()
    rows = [("Mel-spectrogram", (N_FRAMES, N_MELS, 1))]
    x = cnn.norm(x)
    rows.append(("Batch Normalization", (N_FRAMES, N_MELS, 1)))
    names = {nn.Conv2d: "Convolution", CpuDropout: "Dropout", nn.MaxPool2d: "Max Pooling"}
    for layer in cnn.features:
        x = layer(x)
        if type(layer) in names:
            rows.append((names[type(layer)], (x.shape[2], x.shape[3], x.shape[1])))
    for layer in cnn.classifier:
        x = layer(x)
        label = {nn.Flatten: "Flatten", CpuDropout: "Dropout", nn.Linear: "Fully Connected"}.get(
            type(layer)
        )
        if label:
            rows.append((label, (x.shape[1],)))
    return rows
