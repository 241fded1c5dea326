"""Issue 15: no lost events, no overwritten files, one clear line for every mistake. Everything runs
the real CLI in a subprocess, against real files, real full or unwritable targets (/dev/full, a
read-only mount, a file-size limit standing in for a disk that fills up) and real signals."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

from tests.conftest import DEMO, REPO, run_cli
from tests.shipped import CUT_IN_AN_EVENT_S
from tests.test_bad_input import assert_one_line_error

SUMMARY_START = "windows, "  # StreamStats.summary(): "N windows, M events, ..."


def _summary_events(stderr: str) -> int:
    line = next(x for x in stderr.splitlines() if SUMMARY_START in x)
    return int(line.split(" windows, ")[1].split(" events")[0])


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody may write into, root included: a read-only tmpfs mount (as root), or a
    folder without write permission (as anyone else)."""
    path = tmp_path / "readonly"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


# --- outputs checked before any work ------------------------------------------------------------


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, clip_file):
    clip = clip_file("siren")
    before = clip.read_bytes()
    r = run_cli("classify", clip, "-o", clip)
    assert_one_line_error(r, str(clip), "is also an input", code=2)
    assert clip.read_bytes() == before
    assert sf.info(str(clip)).frames > 0  # still audio


def test_an_output_that_would_clobber_another_audio_file_is_refused(tmp_path, clip_file):
    clip, other = clip_file("siren"), clip_file("dog_bark")
    before = other.read_bytes()
    r = run_cli("classify", clip, "-o", other)
    assert_one_line_error(r, "is an audio file", code=2)
    assert other.read_bytes() == before


@pytest.mark.parametrize("target, fragment", [
    ("nofolder/x.tsv", "does not exist"),
    ("{tmp}", "is a directory"),
    ("{file}/x.tsv", "is not a folder"),
    ("/dev/full", "No space left on device"),
])
def test_unwritable_outputs_are_one_line_errors(tmp_path, clip_file, target, fragment):
    clip = clip_file("siren")
    (tmp_path / "afile").write_text("x")
    target = target.format(tmp=tmp_path, file=tmp_path / "afile")
    r = run_cli("classify", clip, "-o", target)
    assert_one_line_error(r, fragment, code=2)
    assert r.stdout == ""


def test_an_output_in_a_read_only_folder_is_refused(readonly_dir, clip_file):
    r = run_cli("classify", clip_file("siren"), "-o", readonly_dir / "x.tsv")
    assert_one_line_error(r, "not writable", code=2)


def test_stdout_on_dev_full_is_a_one_line_error(clip_file):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "realtime_sed", "classify", str(clip_file("siren"))],
                           stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    r.stdout = ""  # it went to /dev/full
    assert_one_line_error(r, "cannot write standard output", "No space left", code=2)


def test_listen_events_in_a_missing_folder_is_refused_before_listening(tmp_path):
    r = run_cli("listen", "--no-tui", "--file", DEMO, "--events", tmp_path / "nofolder" / "x.jsonl")
    assert_one_line_error(r, "--events", "does not exist", code=2)
    assert r.stdout == ""


def test_listen_events_onto_the_replayed_file_is_refused(tmp_path, clip_file):
    clip = clip_file("siren")
    before = clip.read_bytes()
    r = run_cli("listen", "--no-tui", "--file", clip, "--events", clip)
    assert_one_line_error(r, "is also an input", code=2)
    assert clip.read_bytes() == before


def test_bench_json_in_a_missing_folder_is_refused_before_the_benchmark(tmp_path):
    r = run_cli("bench", "--json", tmp_path / "nofolder" / "x.json")
    assert_one_line_error(r, "--json", "does not exist", code=2)
    assert "benchmark" not in r.stdout  # nothing was measured


# --- a disk that fills up while writing ---------------------------------------------------------


def _limit_file_size(limit: int):
    def apply() -> None:  # Python ignores SIGXFSZ, so writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("command", ["classify", "listen"])
def test_a_filling_disk_ends_with_one_line_and_keeps_what_was_written(tmp_path, command):
    out = tmp_path / "out.jsonl"
    limit = 20_000  # a few dozen window lines; the demo's 150 windows need far more
    args = (["classify", DEMO, "--format", "jsonl", "--windows", "-o", out] if command == "classify" else
            ["listen", "--no-tui", "--file", DEMO, "--events", out, "--windows"])
    r = subprocess.run([sys.executable, "-m", "realtime_sed", *map(str, args)], capture_output=True, text=True,
                       cwd=REPO, timeout=120, preexec_fn=_limit_file_size(limit))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("realtime-sed: error:")]
    assert len(errors) == 1 and "cannot write" in errors[0] and str(out) in errors[0], r.stderr
    text = out.read_text()
    assert 0 < len(text) <= limit
    complete = text[: text.rfind("\n") + 1]
    records = [json.loads(line) for line in complete.splitlines()]  # every whole line is intact
    assert len(records) > 10 and all(x["type"] in ("window", "event") for x in records)


# --- SIGTERM like Ctrl-C ------------------------------------------------------------------------


def _long_sound(clip_file, seconds: float):
    return clip_file("jackhammer", seconds=seconds)  # one sound throughout: an event is always open


def test_sigterm_during_listen_writes_the_open_event_cut_short_and_the_summary(tmp_path, clip_file):
    clip = _long_sound(clip_file, 60.0)
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "realtime_sed", "listen", "--no-tui", "-v", "--realtime",
                             "--file", str(clip), "--events", str(events)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    windows = 0
    while windows < 10:  # 10 windows: 8.5 s of a sound that has been going on since 0 s
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        windows += line.startswith("  window")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "realtime-sed: interrupted (SIGTERM)"
    logged = [json.loads(x) for x in events.read_text().splitlines()]
    assert logged and all(e["cut_short"] for e in logged), logged  # open when stopped
    assert _summary_events(err) == len(logged)
    printed = [x for x in out.splitlines() if not x.startswith("  window")]
    assert len(printed) == len(logged) and all(x.endswith("cut short") for x in printed), printed
    assert all(e["offset"] >= 8.5 for e in logged), logged


def test_sigterm_during_classify_keeps_the_rows_written_and_the_open_event(tmp_path, clip_file):
    clip = _long_sound(clip_file, 60.0)
    out = tmp_path / "out.jsonl"
    files = [str(clip)] * 60  # an hour of audio: far longer than the wait below
    proc = subprocess.Popen([sys.executable, "-m", "realtime_sed", "classify", *files, "--format", "jsonl",
                             "-o", str(out)], stderr=subprocess.PIPE, text=True, cwd=REPO)
    done_at = []  # when the first and the second file's one event (60 s long) were written
    deadline = time.monotonic() + 120
    while len(done_at) < 2 and time.monotonic() < deadline:
        rows = len(out.read_text().splitlines()) if out.exists() else 0
        if rows > len(done_at):
            done_at.append(time.monotonic())
        time.sleep(0.01)
    time.sleep((done_at[1] - done_at[0]) / 2)  # halfway through the third file: its event is open
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    stopped, interrupted = err.splitlines()[-2:]
    assert stopped.startswith(f"realtime-sed: stopped in {clip}: ") and " of 60 files classified" in stopped
    assert interrupted == "realtime-sed: interrupted (SIGTERM)"
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(records) >= 2
    assert records[-1]["cut_short"] and not any(r["cut_short"] for r in records[:-1])
    assert 0 < records[-1]["offset"] <= 60.0  # where the stream was stopped, at most the file's end


# --- headless listen and classify: what is printed and how rows are named -----------------------


def test_headless_listen_prints_every_event_the_summary_counts(tmp_path):
    events = tmp_path / "events.jsonl"
    stop_at = CUT_IN_AN_EVENT_S  # inside an event the shipped model logs, so it is still open
    r = run_cli("listen", "--no-tui", "--file", DEMO, "--events", events, "--duration", stop_at)
    assert r.returncode == 0, r.stderr
    logged = [json.loads(x) for x in events.read_text().splitlines()]
    printed = r.stdout.splitlines()
    assert len(printed) == len(logged) == _summary_events(r.stderr) > 0
    assert [e["label"] for e in logged] == [x.split()[4] for x in printed]
    cut = [e for e in logged if e["cut_short"]]
    assert cut and printed[-1].endswith("cut short")


def test_same_named_files_in_different_folders_get_distinct_rows(tmp_path, clip_file):
    clip = clip_file("children_playing", seconds=7.0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "clip.wav", tmp_path / "b" / "clip.wav"
    a.write_bytes(clip.read_bytes())
    b.write_bytes(clip.read_bytes())
    r = run_cli("classify", a, b)
    assert r.returncode == 0, r.stderr
    names = [x.split("\t")[0] for x in r.stdout.splitlines()[1:]]
    assert set(names) == {str(a), str(b)} and names.count(str(a)) == names.count(str(b))
    r = run_cli("classify", a, clip)  # names that differ stay plain names, as DCASE references have them
    assert {x.split("\t")[0] for x in r.stdout.splitlines()[1:]} == {"clip.wav", clip.name}


# --- values that are refused --------------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    (["--threshold", "2"], "--threshold 2: a probability between 0 and 1"),
    (["--threshold", "nan"], "--threshold nan: a probability"),
    (["--threshold", "-1"], "--threshold -1: a probability"),  # not about off-thresholds never given
    (["--off-threshold", "1.5"], "--off-threshold 1.5"),
    (["--min-duration", "-1"], "--min-duration -1"),
    (["--gate-db", "10"], "--gate-db 10"),
    (["--threads", "-2"], "--threads -2"),
    (["--block-size", "0"], "--block-size 0"),
])
def test_classify_values_are_refused(clip_file, args, fragment):
    r = run_cli("classify", clip_file("siren"), *args)
    assert_one_line_error(r, fragment, code=2)
    assert r.stdout == ""


def test_listen_duration_must_be_positive():
    assert_one_line_error(run_cli("listen", "--no-tui", "--file", DEMO, "--duration", "-5"), "--duration -5", code=2)


def test_bench_hours_must_not_be_negative():
    assert_one_line_error(run_cli("bench", "--hours", "-1"), "--hours -1", code=2)


def test_a_short_soak_reports_no_growth(tmp_path):
    """`bench --hours 0.001` runs for seconds, mostly start-up: it gives no growth figure."""
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--hours", "0.001", "--json", out)
    assert r.returncode == 0, r.stderr
    soak_line = r.stdout.splitlines()[-1]
    assert soak_line.startswith("0.001 h stream") and "too short to measure growth" in soak_line
    assert "growth +" not in soak_line and "growth -" not in soak_line
    soak = json.loads(out.read_text())["soak"]
    assert soak["rss_growth_mb"] is None and soak["samples"] >= 1


def test_the_exit_codes_are_documented():
    r = run_cli("--help")
    assert "130 Ctrl-C, 143 SIGTERM" in " ".join(r.stdout.split())


def test_the_mp3_decoders_own_warnings_stay_off_stderr(tmp_path):
    """libmpg123 prints warnings onto fd 2 for this real MP3 (checked first, through soundfile
    alone); realtime-sed keeps its standard error for its own lines."""
    mp3 = tmp_path / "demo.mp3"
    sf.write(mp3, sf.read(DEMO, frames=10 * 22050)[0], 22050, format="MP3")
    probe = (f"import soundfile\nf = soundfile.SoundFile({str(mp3)!r})\n"  # read as classify reads it
             "while len(f.read(88200, dtype='float32')):\n    pass\n")
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "libmpg123" in plain.stderr  # the decoder is noisy on it
    r = run_cli("classify", mp3, tmp_path / "missing.mp3")
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == "filename\tonset\toffset\tevent_label"
    assert r.stderr.splitlines() == [f"realtime-sed: error: {tmp_path / 'missing.mp3'}: no such file",
                                     "realtime-sed: 1 of 2 files failed"]  # ours, and only ours
