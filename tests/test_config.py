"""--config FILE.toml: it fills the same settings as the flags, the command line wins, per-class
sections reach the detector, mistakes are one line naming the key and the file (exit 2), and
`config --print` writes a file that loads back to the same settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from realtime_sed.cli import settings_for
from realtime_sed.config import load_config, settings_toml
from realtime_sed.settings import ClassSettings, Settings
from tests.conftest import DEMO, REPO, run_cli

EXAMPLE = REPO / "examples" / "realtime-sed.toml"


def write(tmp_path, text: str, name: str = "c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(tsv: str) -> list[tuple[str, float, float]]:
    return [(label, float(on), float(off)) for _, on, off, label in
            (line.split("\t") for line in tsv.splitlines()[1:])]


def test_the_file_fills_the_settings_and_the_command_line_wins(tmp_path):
    path = write(tmp_path, 'hop = 1.0\nmodel = "convdt"\nno_tui = true\n'
                           '[detector]\ngate_db = -50\nclasses = ["siren", "dog_bark"]\n'
                           '[output]\nwebhook = "http://127.0.0.1:9/x"\npre_roll = 3\n'
                           '[classes.siren]\nthreshold = 0.8\nenabled = false\n')
    s = settings_for(["listen", "--config", str(path)])
    assert (s.stream.hop, s.stream.model, s.output.no_tui, s.detector.gate_db) == (1.0, "convdt", True, -50.0)
    assert s.detector.classes == ("siren", "dog_bark") and s.output.pre_roll == 3.0
    assert s.output.webhook == "http://127.0.0.1:9/x" and s.config.config == str(path)
    assert s.detector.per_class == {"siren": ClassSettings(threshold=0.8, enabled=False)}
    s = settings_for(["listen", "--config", str(path), "--hop", "0.25", "--gate-db", "-40",
                      "--classes", "car_horn", "--webhook", "http://other/"])
    assert (s.stream.hop, s.detector.gate_db, s.detector.classes) == (0.25, -40.0, ("car_horn",))
    assert s.output.webhook == "http://other/" and s.stream.model == "convdt"  # the rest from the file
    c = settings_for(["classify", "a.wav", "--config", str(path), "--block-size", "4096"])
    assert (c.stream.hop, c.classify.block_size, c.classify.files) == (1.0, 4096, ("a.wav",))


def test_class_sections_reach_the_detector_on_the_demo(tmp_path):
    plain = run_cli("classify", DEMO, timeout=120)
    assert plain.returncode == 0, plain.stderr
    before = rows(plain.stdout)
    labels = sorted({r[0] for r in before})
    assert len(labels) >= 4  # three classes to silence, each in its own way, and one left alone
    off, unreachable, short = labels[:3]  # whichever the shipped model names on the demo
    path = write(tmp_path, f"[classes.{off}]\nenabled = false\n"  # no event at all
                           f"[classes.{unreachable}]\nthreshold = 1.0\n"  # never reached
                           f"[classes.{short}]\nmin_duration = 30\n")  # too short to be kept
    r = run_cli("classify", DEMO, "--config", path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert rows(r.stdout) == [e for e in before if e[0] not in (off, unreachable, short)]
    # the same file, with a command-line option changing another setting
    r = run_cli("classify", DEMO, "--config", path, "--min-duration", "6", timeout=120)
    assert rows(r.stdout) == [e for e in before if e[0] not in (off, unreachable, short)
                              and e[2] - e[1] >= 6]


@pytest.mark.parametrize("text, words", [
    ("hopp = 1\n", "unknown key 'hopp'"),
    ("[stream]\nthreshhold = 0.5\n", "unknown key 'threshhold' in [stream]"),
    ("[stream]\ngate_db = -40\n", "key 'gate_db' belongs in [detector], not [stream]"),
    ('hop = "fast"\n', "key 'hop' must be a number, not a string"),
    ("threads = 1.5\n", "key 'threads' must be a whole number"),
    ('realtime = "yes"\n', "key 'realtime' must be true or false"),
    ("classes = [1, 2]\n", "key 'classes' must be a list of strings"),
    ("[classes.dogbark]\nthreshold = 0.2\n", "unknown class 'dogbark' in [classes.dogbark]"),
    ("[classes.siren]\nthreshold = \"high\"\n", "key 'classes.siren.threshold' must be a number"),
    ("[classes.siren]\nthreshold_on = 0.9\n", "unknown key 'threshold_on' in [classes.siren]"),
    ("hop = \n", "not valid TOML"),
    ('[classify]\nformat = "xlsx"\n', "key 'format': 'xlsx' is not one of tsv, jsonl, csv"),
    ('classes = ["siren", "dogbark"]\n', "key 'classes': 'dogbark' is not one of air_conditioner"),
])
@pytest.mark.parametrize("command", ["listen", "classify"])
def test_a_mistake_is_one_line_naming_the_key_and_the_file(tmp_path, text, words, command):
    path = write(tmp_path, text)
    r = run_cli(command, *(["--no-tui"] if command == "listen" else [str(DEMO)]), "--config", path, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and words in r.stderr and str(path) in r.stderr, r.stderr
    assert r.stdout == ""


def test_a_missing_file_and_a_value_out_of_range_are_refused(tmp_path):
    r = run_cli("listen", "--config", tmp_path / "nope.toml", timeout=60)
    assert r.returncode == 2 and "no such file" in r.stderr and r.stderr.count("\n") == 1
    path = write(tmp_path, "[classes.siren]\nthreshold = 1.5\n")
    r = run_cli("classify", DEMO, "--config", path, timeout=60)
    assert r.returncode == 2 and "[classes.siren] threshold 1.5" in r.stderr and r.stderr.count("\n") == 1


def test_config_print_writes_a_file_that_loads_back_to_the_same_settings(tmp_path):
    r = run_cli("config", "--print", timeout=60)
    assert r.returncode == 0, r.stderr
    assert load_config(write(tmp_path, r.stdout, "defaults.toml")) == Settings()
    r = run_cli("config", "--print", "--config", EXAMPLE, timeout=60)
    assert r.returncode == 0, r.stderr
    again = load_config(write(tmp_path, r.stdout, "again.toml"))
    assert again == load_config(EXAMPLE) and again.detector.per_class  # the class sections too
    # every kind of value a setting can hold survives the round trip
    full = load_config(write(tmp_path, 'device = "USB \\"mic\\" 2"\nduration = 12.5\nclasses = ["siren"]\n'
                                       'files = ["a.wav", "b c.flac"]\nworkers = 3\nwindows = true\n'))
    assert load_config(write(tmp_path, settings_toml(full), "full.toml")) == full
    assert full.source.device == 'USB "mic" 2' and full.classify.workers == 3


def test_the_example_config_is_valid_and_runs(tmp_path):
    example = load_config(EXAMPLE)
    assert example.output.clips == "clips" and example.detector.per_class["air_conditioner"].enabled is False
    r = subprocess.run([sys.executable, "-m", "realtime_sed", "classify", str(DEMO), "--config", str(EXAMPLE),
                        "--clips", str(tmp_path / "clips"), "--quiet"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    labels = [r[0] for r in rows(r.stdout)]
    assert labels and "air_conditioner" not in labels
    assert len(list((tmp_path / "clips").iterdir())) == len(labels)  # the command line's folder won
    assert not (tmp_path / "clips").with_name("events.jsonl").exists()  # classify writes no event log
