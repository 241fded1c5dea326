"""The single source of truth for numbers that training and runtime must agree on.

`train` imports these, the runtime uses them, and every exported ONNX model records its front end
(`FrontEnd.to_dict()`) in its card, so a mismatched model is refused when it is loaded (by
`OnnxClassifier`, which also reads the front end's constants out of the graph), not when its
outputs look odd.
"""

import math
import re
from dataclasses import asdict, dataclass, fields
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
MEL_SCALE = "htk"  # mel = 2595 log10(1 + f / 700); triangles without area normalisation


@dataclass(frozen=True)
class FrontEnd:
    """Everything that decides the log-mel a model was trained on, in one value.

    Training builds its front end (and the log-mel cache key) from it and writes `to_dict()` into
    every model card as "frontend"; the runtime computes log-mels itself, so `OnnxClassifier`
    refuses a model whose card or graph describes another front end (`FRONT_END.differences`).
    The dict keys are the ones model cards have always used.
    """

    sample_rate: int = SAMPLE_RATE
    window_samples: int = WINDOW_SAMPLES
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mels: int = N_MELS
    f_min: float = F_MIN
    f_max: float = F_MAX
    mel_scale: str = MEL_SCALE
    mel_norm: str | None = None
    window: str = "hann (periodic)"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 2.0
    log_amin: float = LOG_AMIN
    frames: int = N_FRAMES

    @property
    def floor_db(self) -> float:
        return 10 * math.log10(self.log_amin)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["log"] = f"10*log10(max(mel, {d.pop('log_amin'):g}))"  # the cards' spelling
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FrontEnd":
        """A card's "frontend"; keys it lacks keep this runtime's values, keys this runtime does
        not know raise ValueError (a front end it cannot reproduce)."""
        d = dict(d)
        log = d.pop("log", None)
        if log is not None and "log_amin" not in d:
            match = re.fullmatch(r"10\*log10\(max\(mel,([0-9.eE+-]+)\)\)", str(log).replace(" ", ""))
            if match is None:
                raise ValueError(f"log {log!r}")
            d["log_amin"] = float(match.group(1))
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
        return cls(**d)

    def differences(self, other: "FrontEnd") -> list[str]:
        """'key VALUE (expected OURS)' for every field where `other` differs from this one."""
        out = []
        for f in fields(self):
            ours, theirs = getattr(self, f.name), getattr(other, f.name)
            same = (math.isclose(float(ours), float(theirs), rel_tol=1e-9)
                    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float))
                    and not isinstance(ours, bool) else ours == theirs)
            if not same:
                out.append(f"{f.name} {theirs!r} (expected {ours!r})")
        return out


FRONT_END = FrontEnd()
"""The front end of this runtime (realtime_sed.features) and of every model it accepts."""

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

def installed_data(folder: str) -> Path:
    """models/ or demo/: the checkout's own folder when running from the repository, else the copy
    a wheel installs inside the package (pyproject.toml maps them there)."""
    checkout = Path(__file__).resolve().parent.parent / folder
    if checkout.is_dir():
        return checkout
    from importlib.resources import files

    return Path(str(files("realtime_sed") / folder))


DEMO_FILE = installed_data("demo") / "urban-demo.ogg"
"""The bundled 77 s demo recording (in a source checkout): `bench` and the screenshots replay it."""

assert N_FRAMES == 345
assert LOG_FLOOR_DB == 10 * math.log10(LOG_AMIN) == FRONT_END.floor_db
assert WINDOW_SAMPLES == int(WINDOW_SECONDS * SAMPLE_RATE)
