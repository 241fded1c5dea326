"""The peer comparison of `bench --compare` on the real teacher file (when ai-edge-litert and the
file are there), and its one-line hint when the TFLite runtime is missing; `bench --dashboard`'s
measurement of a real dashboard in a pseudo-terminal, and the stretches it refuses."""

import subprocess
import sys
from pathlib import Path

import pytest

from realtime_sed.bench import PEER_HINT, compare_with_peer, dashboard_cpu
from realtime_sed.constants import DEMO_FILE
from tests.conftest import REPO, run_cli
from tests.test_bad_input import assert_one_line_error

TEACHER = (REPO / ".." / "shared" / "teacher" / "yamnet.tflite").resolve()


@pytest.mark.skipif(not TEACHER.exists(), reason="the teacher file is not beside the repo")
def test_peer_runs_every_patch_of_the_resampled_file(clip_file):
    pytest.importorskip("ai_edge_litert")
    path = clip_file("siren", rate=44100, seconds=3.0)
    peer = compare_with_peer("convdb", TEACHER, Path(path), rounds=1)
    # 3 s at 16 kHz: patches of 15600 samples every 7680 -> 1 + (48000 - 15600) // 7680 = 5
    assert peer["patches"] == 5
    assert peer["peer_x"] > 0 and peer["patch_p95_ms"] >= peer["patch_median_ms"] > 0


def test_compare_without_the_tflite_runtime_says_how_to_install_it(clip_file):
    code = ("import sys; sys.modules['ai_edge_litert'] = None; sys.modules['ai_edge_litert.interpreter'] = None\n"
            "from pathlib import Path; from realtime_sed.bench import compare_with_peer\n"
            f"print(compare_with_peer('convdb', Path('peer.tflite'), Path({str(clip_file('siren'))!r}))['error'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == PEER_HINT == "bench --compare needs the TFLite runtime: pip install ai-edge-litert"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and opens a pty")
def test_dashboard_measurement_gives_a_cpu_share_and_peak_rss():
    """A few seconds of the real dashboard on the demo: the figure is there and sane (no bound on
    its value: speed targets live in `bench`'s output, not in timed tests)."""
    dash = dashboard_cpu("convdb", DEMO_FILE, seconds=3.0, settle_s=5.0)
    assert 0 < dash["cpu_pct_of_one_core"] < 100 * (__import__("os").cpu_count() or 1)
    assert dash["peak_rss_mb"] > 0
    assert dash["measured_s"] >= 3.0 and dash["terminal"] == "100x30"
    assert dash["bytes_drawn"] > 0  # it drew into the terminal


@pytest.mark.parametrize("seconds, fragment", [("-1", "give a positive number of seconds"),
                                               ("nan", "give a positive number of seconds"),
                                               ("100", "the audio is 77")])
def test_bench_dashboard_stretch_is_checked_before_the_benchmark(seconds, fragment):
    """A stretch longer than the audio (after start-up) would measure an idle dashboard past the end
    of the file: refused with one line, before anything is measured."""
    r = run_cli("bench", "--dashboard", seconds)
    assert_one_line_error(r, f"--dashboard {seconds}", fragment, code=2)
    assert "benchmark" not in r.stdout


@pytest.mark.skipif(not TEACHER.exists(), reason="the teacher file is not beside the repo")
def test_compare_alternates_rounds_and_gives_the_median_of_their_ratios(clip_file):
    pytest.importorskip("ai_edge_litert")
    cmp = compare_with_peer("convdb", TEACHER, Path(clip_file("siren", rate=44100, seconds=3.0)), rounds=3)
    assert len(cmp["rounds"]) == 3 and cmp["patches"] == 5
    ratios = sorted(r["ours_x"] / r["peer_x"] for r in cmp["rounds"])
    assert cmp["ratio"] == pytest.approx(ratios[1])  # the median round's ratio, not a ratio of medians
    assert cmp["ours_x"] == pytest.approx(sorted(r["ours_x"] for r in cmp["rounds"])[1])
    assert cmp["peer_x"] > 0 and cmp["cpu_ratio"] > 0 and cmp["patch_p95_ms"] >= cmp["patch_median_ms"] > 0


def test_a_missing_peer_file_is_refused_before_the_benchmark(tmp_path):
    r = run_cli("bench", "--compare", tmp_path / "no.tflite")
    assert_one_line_error(r, "no.tflite", "peer model not found", code=2)
    assert "benchmark" not in r.stdout


def test_bench_rounds_must_be_at_least_one():
    assert_one_line_error(run_cli("bench", "--rounds", "0"), "--rounds 0", code=2)
