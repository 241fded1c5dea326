"""Shared fixtures: real audio (the bundled demo, UrbanSound8K clips from ../shared), the shipped
model, and a helper to run the real CLI in a subprocess."""

from __future__ import annotations

import os

# As the CLI does: BLAS threads only slow the runtime's tiny matrix products (set before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import subprocess  # noqa: E402
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime_sed.constants import DATA_DIR, DEMO_FILE  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEMO = DEMO_FILE
DEMO_REFERENCE = DEMO_FILE.with_suffix(".tsv")
SHARED_DATA = Path(os.environ.get("SED_DATA", REPO / DATA_DIR)).resolve()

needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="UrbanSound8K not found beside the repo")


METADATA_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


def write_metadata(root: Path, rows: list[list]) -> Path:
    """A generated dataset's metadata/UrbanSound8K.csv (UrbanSound8K's own columns); returns root."""
    import csv

    (root / "metadata").mkdir(parents=True, exist_ok=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(METADATA_COLUMNS)
        w.writerows(rows)
    return root


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Runs `python -m realtime_sed ARGS` for real and captures its output."""
    return subprocess.run([sys.executable, "-m", "realtime_sed", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})}, **kw)


@pytest.fixture(scope="session")
def demo_audio() -> np.ndarray:
    audio, rate = sf.read(DEMO, dtype="float32")
    assert rate == 22050 and audio.ndim == 1
    return audio


def demo_segment(label: str) -> tuple[float, float]:
    """(onset, offset) of a class in the demo's reference annotation."""
    for line in DEMO_REFERENCE.read_text().splitlines()[1:]:
        _, on, off, name = line.split("\t")
        if name == label:
            return float(on), float(off)
    raise KeyError(label)


@pytest.fixture
def clip_file(tmp_path, demo_audio) -> callable:
    """Writes a piece of the demo (real UrbanSound8K audio) of one class to a WAV file."""

    def make(label: str, rate: int = 22050, channels: int = 1, seconds: float | None = None) -> Path:
        on, off = demo_segment(label)
        x = demo_audio[int(on * 22050) : int(off * 22050)]
        if seconds:
            x = np.resize(x, int(seconds * 22050))  # loop the clip to the requested length
        if rate != 22050:
            import soxr

            x = soxr.resample(x, 22050, rate)
        data = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
        path = tmp_path / f"{label}-{rate}-{channels}ch.wav"
        sf.write(path, data, rate, subtype="FLOAT")
        return path

    return make
