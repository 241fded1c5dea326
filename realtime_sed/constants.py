"""The single source of truth for numbers that training and runtime must agree on.

`train` imports these, the runtime uses them, and every exported ONNX model records them in its
metadata so a mismatched model is caught when it is loaded, not when its outputs look odd.
"""

import math
from pathlib import Path

SAMPLE_RATE = 22050
"""Audio is resampled to this rate once, at the source."""

WINDOW_SECONDS = 4.0
WINDOW_SAMPLES = 88200
"""The paper's input: 4 s at 22050 Hz. Shorter clips are zero-padded at the end."""

N_FFT = 2048
HOP_LENGTH = 256
N_MELS = 120
F_MIN = 0.0
F_MAX = SAMPLE_RATE / 2
N_FRAMES = 1 + WINDOW_SAMPLES // HOP_LENGTH
"""345 centred frames (torch.stft with center=True, zero padding) for one window."""

LOG_AMIN = 1e-10
"""Mel power is floored here before 10*log10, so digital silence gives -100 dB, not -inf.
No top_db clipping: that would make each frame depend on the loudest frame of its window,
and break the reuse of frames across overlapping windows."""
LOG_FLOOR_DB = -100.0
"""10 * log10(LOG_AMIN): the front end clamps its output here too, so the floor is exact."""

CLASSES = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)
"""UrbanSound8K class names in classID order."""

MODEL_NAMES = ("conv2d", "convdf", "convdt", "convdb")
"""The paper's four architectures (Table 1)."""

LOGMEL_TENSOR = "logmel"
CARD_METADATA_KEY = "realtime_sed.card"  # the model card (JSON) in the ONNX metadata
"""Name of the [batch, 1, N_FRAMES, N_MELS] tensor between the front end and the CNN in an
exported graph. The runtime cuts the graph here to run the CNN on log-mels it computed itself."""

DATA_DIR = "../shared/data/UrbanSound8K"
"""Where `train` and `evaluate` look for UrbanSound8K by default (relative to the working folder)."""

DEMO_FILE = Path(__file__).resolve().parent.parent / "demo" / "urban-demo.ogg"
"""The bundled 77 s demo recording (in a source checkout): `bench` and the screenshots replay it."""

assert N_FRAMES == 345
assert LOG_FLOOR_DB == 10 * math.log10(LOG_AMIN)
assert WINDOW_SAMPLES == int(WINDOW_SECONDS * SAMPLE_RATE)
