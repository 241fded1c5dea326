"""The peer comparison of `bench --compare` on the real teacher file (when ai-edge-litert and the
file are there), and its one-line hint when the TFLite runtime is missing."""

import subprocess
import sys
from pathlib import Path

import pytest

from realtime_sed.bench import PEER_HINT, peer_throughput
from tests.conftest import REPO

TEACHER = (REPO / ".." / "shared" / "teacher" / "yamnet.tflite").resolve()


@pytest.mark.skipif(not TEACHER.exists(), reason="the teacher file is not beside the repo")
def test_peer_runs_every_patch_of_the_resampled_file(clip_file):
    pytest.importorskip("ai_edge_litert")
    path = clip_file("siren", rate=44100, seconds=3.0)
    peer = peer_throughput(TEACHER, Path(path), repeats=1)
    # 3 s at 16 kHz: patches of 15600 samples every 7680 -> 1 + (48000 - 15600) // 7680 = 5
    assert peer["patches"] == 5
    assert peer["throughput_x"] > 0 and peer["patch_p95_ms"] >= peer["patch_median_ms"] > 0


def test_compare_without_the_tflite_runtime_says_how_to_install_it(clip_file):
    code = ("import sys; sys.modules['ai_edge_litert'] = None; sys.modules['ai_edge_litert.interpreter'] = None\n"
            "from pathlib import Path; from realtime_sed.bench import peer_throughput\n"
            f"print(peer_throughput(Path('peer.tflite'), Path({str(clip_file('siren'))!r}))['error'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == PEER_HINT == "bench --compare needs the TFLite runtime: pip install ai-edge-litert"
