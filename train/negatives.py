"""Sounds that are none of the ten: real ESC-50 clips and synthesised ones, split into training and held-out.

Why: a live microphone hears mostly other sounds, and a softmax over ten classes has no way to say
"none of these". Training pushes the student's softmax towards uniform on these (outlier exposure,
Hendrycks et al. 2019), so the event threshold rejects them. Some ESC-50 classes and some synthetic
kinds are kept out of training entirely, so the false-alarm figure is measured on sounds of kinds
the student never met.

Every negative has a `fold`: one of the fold-wise test folds, or 0 (always training), so a fold-wise run trains on the
negatives of the other folds and can predict its own out of fold (for calibrating thresholds).
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime_sed.constants import SAMPLE_RATE, WINDOW_SAMPLES

ESC_DATA = Path("../shared/data/ESC-50-other")
CV_FOLDS = (1, 2, 3, 10)  # the folds of our partial UrbanSound8K with enough clips to test on
HELD_OUT_EVERY = 4  # every 4th ESC-50-other class (alphabetical) is held out: 6 of 23
TRAIN_KINDS = ("speech", "tones", "noise", "silence")
HELD_OUT_KINDS = ("music", "clicks")


@dataclass(frozen=True)
class Negative:
    name: str
    kind: str  # "esc:<category>" or a synthetic kind
    audio: np.ndarray  # float32 mono at SAMPLE_RATE, about 5 s
    fold: int
    held_out: bool


FOLD_GROUPS = (0,) + CV_FOLDS


def _fold_of(name: str) -> int:
    """A test fold, or 0: always training (the group of UrbanSound8K's folds 4 to 9, which no
    fold-wise run tests on, so their views may take backgrounds only from these)."""
    return FOLD_GROUPS[zlib.crc32(name.encode()) % len(FOLD_GROUPS)]


def esc_negatives(root: str | Path = ESC_DATA) -> list[Negative]:
    from realtime_sed.audio import load_audio

    root = Path(root)
    with open(root / "meta.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    categories = sorted({r["category"] for r in rows})
    held = set(categories[::HELD_OUT_EVERY])
    out = []
    for r in rows:
        path = root / "audio" / r["filename"]
        if not path.exists():
            continue
        out.append(Negative(path.stem, f"esc:{r['category']}", load_audio(path),
                            _fold_of(path.stem), r["category"] in held))
    return out


# ---------------------------------------------------------------- synthetic kinds

SENTENCES = (
    "the meeting starts at nine tomorrow morning", "could you pass me the salt please",
    "I think it is going to rain this afternoon", "turn left at the next traffic light",
    "we need to buy milk bread and some apples", "the quick brown fox jumps over the lazy dog",
    "have you seen my keys anywhere", "this is a recording of ordinary speech",
    "one two three four five six seven eight", "good evening and welcome to the news",
)
VOICES = ("en", "en-us", "en-gb-x-rp", "de", "fr", "es", "it", "nl", "pl", "pt")
DURATION = 5 * SAMPLE_RATE


def _speech(rng: np.random.Generator) -> np.ndarray:
    import soundfile as sf

    voice = VOICES[rng.integers(len(VOICES))] + ("+f%d" % rng.integers(1, 5) if rng.random() < 0.5 else "")
    text = " ".join(rng.choice(SENTENCES, 2, replace=False))
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rng.integers(110, 220)),
                        "-p", str(rng.integers(20, 80)), "-w", tmp.name, text],
                       check=True, capture_output=True)
        audio, rate = sf.read(tmp.name, dtype="float32")
    if rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    return _fit(audio, rng)


def _tones(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(DURATION) / SAMPLE_RATE
    kind = rng.integers(3)
    if kind == 0:  # a steady tone
        x = np.sin(2 * np.pi * rng.uniform(200, 4000) * t)
    elif kind == 1:  # a sweep
        f0, f1 = rng.uniform(100, 6000, 2)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
    else:  # beeps, like a phone or an appliance
        f = rng.uniform(500, 3000)
        period, on = rng.uniform(0.2, 1.0), rng.uniform(0.05, 0.3)
        x = np.sin(2 * np.pi * f * t) * ((t % period) < on)
    return x.astype(np.float32)


def _noise(rng: np.random.Generator) -> np.ndarray:
    exponent = rng.choice([0.0, 1.0, 2.0])  # white, pink, brown
    spec = np.fft.rfft(rng.standard_normal(DURATION))
    freqs = np.maximum(np.fft.rfftfreq(DURATION), 1.0 / DURATION)
    x = np.fft.irfft(spec / freqs ** (exponent / 2), DURATION)
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def _silence(rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(DURATION) * 10 ** (rng.uniform(-90, -60) / 20)).astype(np.float32)


def _music(rng: np.random.Generator) -> np.ndarray:
    """Notes of a random scale with a few harmonics and an envelope: a plain synthesiser melody."""
    out = np.zeros(DURATION, np.float32)
    root = rng.uniform(110, 440)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    pos = 0
    while pos < DURATION:
        n = int(rng.uniform(0.15, 0.6) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        chord = rng.choice(scale, rng.integers(1, 4), replace=False)
        note = np.zeros(n)
        for step in chord:
            f = root * 2 ** (step / 12)
            for h in range(1, 5):
                note += np.sin(2 * np.pi * f * h * t) / h**1.5
        note *= np.exp(-t * rng.uniform(1, 6))
        end = min(pos + n, DURATION)
        out[pos:end] += note[: end - pos]
        pos = end
    return out


def _clicks(rng: np.random.Generator) -> np.ndarray:
    """A clock, a keyboard, a dripping tap: short clicks at a regular or random rate."""
    out = np.zeros(DURATION, np.float32)
    click = np.exp(-np.arange(200) / rng.uniform(10, 60)) * rng.standard_normal(200)
    rate = rng.uniform(1, 12)
    times = (np.arange(0, 5, 1 / rate) if rng.random() < 0.5
             else np.sort(rng.uniform(0, 5, int(rate * 5))))
    for s in (times * SAMPLE_RATE).astype(int):
        end = min(s + len(click), DURATION)
        out[s:end] += click[: end - s] * rng.uniform(0.3, 1)
    return out


KINDS = {"speech": _speech, "tones": _tones, "noise": _noise, "silence": _silence,
         "music": _music, "clicks": _clicks}


def _fit(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(audio) >= DURATION:
        start = rng.integers(len(audio) - DURATION + 1)
        return audio[start : start + DURATION].astype(np.float32)
    return np.pad(audio, (0, DURATION - len(audio))).astype(np.float32)


def synthetic_negatives(per_kind: int, seed: int = 0, kinds=tuple(KINDS)) -> list[Negative]:
    """`per_kind` clips of each kind, at random levels from -40 to -3 dBFS peak (silence keeps its own)."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in kinds:
        for i in range(per_kind):
            audio = KINDS[kind](rng)
            if kind != "silence":
                audio = audio / (np.abs(audio).max() + 1e-9) * 10 ** (rng.uniform(-40, -3) / 20)
            name = f"synth-{kind}-{seed}-{i}"
            out.append(Negative(name, kind, audio.astype(np.float32), _fold_of(name),
                                kind in HELD_OUT_KINDS))
    return out


def window_of(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 4 s stretch of a negative (they are about 5 s long)."""
    if len(audio) <= WINDOW_SAMPLES:
        return np.pad(audio, (0, WINDOW_SAMPLES - len(audio)))
    start = rng.integers(len(audio) - WINDOW_SAMPLES + 1)
    return audio[start : start + WINDOW_SAMPLES]
