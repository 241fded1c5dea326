"""The runtime never loads torch: `classify` and a headless `listen` run in a fresh interpreter
and leave no torch (or torchaudio) in sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf
import soxr

from tests.conftest import REPO

SCRIPT = r"""
import json, sys
import realtime_sed.cli
assert "torch" not in sys.modules, "importing the CLI loaded torch"
rc = realtime_sed.cli.main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchaudio"))
print(json.dumps({"rc": rc, "heavy": heavy, "onnxruntime": "onnxruntime" in sys.modules}), file=sys.stderr)
"""


def run_in_process(*args) -> tuple[dict, str]:
    r = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stderr.strip().splitlines()[-1]), r.stdout


def test_classify_does_not_import_torch(tmp_path, demo_audio):
    # 44.1 kHz stereo, so the resampling and downmixing paths run too.
    x = soxr.resample(demo_audio[: 6 * 22050], 22050, 44100)
    path = tmp_path / "clip.wav"
    sf.write(path, np.stack([x, x], axis=1), 44100, subtype="FLOAT")
    out = tmp_path / "events.jsonl"
    state, _ = run_in_process("classify", path, "--format", "jsonl", "--windows", "-o", out)
    assert state == {"rc": 0, "heavy": [], "onnxruntime": True}  # it did run the model
    assert sum(1 for line in out.read_text().splitlines() if json.loads(line)["type"] == "window") == 6


def test_headless_listen_does_not_import_torch(clip_file):
    state, stdout = run_in_process("listen", "--no-tui", "--file", clip_file("dog_bark", seconds=5.0), "-v")
    assert state == {"rc": 0, "heavy": [], "onnxruntime": True}
    assert stdout.count("window") == 4
