"""--clips on the real demo through the real CLI: each clip holds exactly the samples the detector
heard from onset - pre-roll to offset + post-roll, clamped to the file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from realtime_sed.clips import ClipRecorder
from realtime_sed.constants import SAMPLE_RATE
from realtime_sed.events import Event
from tests.conftest import DEMO, run_cli
from tests.shipped import CUT_IN_AN_EVENT_S

LSB_24 = 2.0 ** -23  # FLAC clips are 24-bit; WAV clips float, the samples themselves


def logged_events(path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == "event"]


def expected(audio: np.ndarray, ev: dict, pre: float, post: float) -> np.ndarray:
    start = max(0, round((ev["onset"] - pre) * SAMPLE_RATE))
    end = min(len(audio), round((ev["offset"] + post) * SAMPLE_RATE))
    return audio[start:end]


def check_clips(events: list[dict], audio: np.ndarray, pre: float, post: float, suffix: str) -> None:
    assert len(events) >= 5
    for ev in events:
        clip, rate = sf.read(ev["clip"], dtype="float32")
        assert rate == SAMPLE_RATE and clip.ndim == 1 and ev["clip"].endswith(suffix)
        want = expected(audio, ev, pre, post)
        assert len(clip) == len(want), ev
        if suffix == ".wav":
            np.testing.assert_array_equal(clip, want)
        else:  # the demo's Ogg decodes beyond full scale in places: FLAC holds those at full scale
            np.testing.assert_allclose(clip, np.clip(want, -1.0, 1.0 - LSB_24), atol=LSB_24, rtol=0)


@pytest.mark.parametrize("pre, post, fmt", [(2.0, 1.0, "flac"), (3.5, 0.0, "wav")])
def test_listen_clips_hold_the_heard_samples_with_pre_and_post_roll(tmp_path, demo_audio, pre, post, fmt):
    log, folder = tmp_path / "events.jsonl", tmp_path / "clips"
    audio = demo_audio[: int(CUT_IN_AN_EVENT_S * SAMPLE_RATE)]  # so the last event runs to the end
    cut = tmp_path / "demo-cut.wav"
    sf.write(cut, audio, SAMPLE_RATE, subtype="FLOAT")
    args = ["listen", "--no-tui", "--file", cut, "--events", log, "--clips", folder]
    if (pre, post, fmt) != (2.0, 1.0, "flac"):  # otherwise: the defaults
        args += ["--pre-roll", pre, "--post-roll", post, "--clip-format", fmt]
    r = run_cli(*args, timeout=120)
    assert r.returncode == 0, r.stderr
    events = logged_events(log)
    check_clips(events, audio, pre, post, "." + fmt)
    # the clamping is exercised: the first event starts within the pre-roll of the file's start,
    # and the last one runs to the file's end
    assert min(e["onset"] for e in events) < pre
    assert max(e["offset"] for e in events) >= len(audio) / SAMPLE_RATE - 1e-4
    assert sorted(p.name for p in folder.iterdir()) == sorted(os.path.basename(e["clip"]) for e in events)
    assert f"clips: written {len(events)}, failed 0" in r.stderr


def test_classify_clips_match_too_and_jsonl_names_them(tmp_path, demo_audio):
    out, folder = tmp_path / "events.jsonl", tmp_path / "c"
    r = run_cli("classify", DEMO, "--format", "jsonl", "-o", out, "--clips", folder, "--pre-roll", "1.5",
                "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    check_clips(logged_events(out), demo_audio, 1.5, 1.0, ".flac")


def test_ogg_clips_are_written_and_the_right_length(tmp_path, demo_audio):
    log, folder = tmp_path / "events.jsonl", tmp_path / "clips"
    r = run_cli("listen", "--no-tui", "--file", DEMO, "--events", log, "--clips", folder,
                "--clip-format", "ogg", timeout=120)
    assert r.returncode == 0, r.stderr
    for ev in logged_events(log):
        info = sf.info(ev["clip"])
        assert (info.format, info.samplerate, info.channels) == ("OGG", SAMPLE_RATE, 1)
        assert info.frames == len(expected(demo_audio, ev, 2.0, 1.0))


def test_clips_max_mb_deletes_the_oldest_clips_and_nothing_else(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "mine.flac").write_bytes(b"x" * 200_000)  # not a clip's name: never deleted
    rec = ClipRecorder(folder, pre_roll=0.0, post_roll=0.0, fmt="wav", max_mb=0.8, source="a.wav")
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 60 * SAMPLE_RATE).astype(np.float32)
    rec.append(noise)
    written = []
    for i in range(6):  # 4 s of float WAV each: 353 kB; 0.8 MB holds two of them
        ev = Event("siren", 8.0 * i, 8.0 * i + 4.0, 0.9)
        rec.hold([ev])
        assert rec.ready() == [ev]
        written.append(ev.clip)
        os.utime(ev.clip, (i, 1000 + i))  # mtimes in order, whatever the file system's resolution
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(["mine.flac"] + [os.path.basename(p) for p in written[-2:]])
    assert rec.written == 6 and rec.failed == 0


def test_a_clip_is_renamed_into_place_and_a_failed_write_leaves_no_partial_file(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    rec = ClipRecorder(folder, 1.0, 1.0, "flac", source="x.ogg")
    rec.append(np.zeros(10 * SAMPLE_RATE, np.float32))
    ev = Event("dog_bark", 3.0, 4.0, 0.8)
    rec.hold([ev])
    assert rec.ready() == [ev] and ev.clip == str(folder / "x_3.000s_dog_bark.flac")
    os.chmod(folder, 0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode: use a folder that has gone away
            os.chmod(folder, 0o700)
            rec.folder = tmp_path / "gone"
        ev2 = Event("siren", 5.0, 6.0, 0.8)
        rec.hold([ev2])
        assert rec.ready() == [ev2]  # the event still goes on, without a clip
    finally:
        os.chmod(folder, 0o700)
    assert ev2.clip is None and rec.failed == 1 and "cannot write" in rec.last_error
    assert [p.name for p in folder.iterdir()] == ["x_3.000s_dog_bark.flac"]


def test_listen_refuses_a_clips_folder_it_cannot_make(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = run_cli("listen", "--no-tui", "--file", DEMO, "--clips", blocker / "sub", timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--clips" in r.stderr, r.stderr
    r = run_cli("listen", "--no-tui", "--file", DEMO, "--clips", tmp_path, "--pre-roll", "-1", timeout=60)
    assert r.returncode == 2 and "--pre-roll" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_big_block_after_a_stall_keeps_the_pre_roll_of_an_event_inside_it(tmp_path):
    """A live source that fell behind hands over seconds at once; an event found in that block
    still gets its whole pre-roll."""
    rec = ClipRecorder(tmp_path, pre_roll=2.0, post_roll=0.0, fmt="wav", source="mic")
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, 40 * SAMPLE_RATE).astype(np.float32)
    rec.append(audio[: 20 * SAMPLE_RATE])
    rec.append(audio[20 * SAMPLE_RATE:])  # 20 s in one block: an event at 21 s is found in it
    ev = Event("siren", 21.0, 22.0, 0.9)
    rec.hold([ev])
    assert rec.ready() == [ev]
    clip, _ = sf.read(ev.clip, dtype="float32")
    np.testing.assert_array_equal(clip, audio[19 * SAMPLE_RATE: 22 * SAMPLE_RATE])
