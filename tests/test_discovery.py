"""Issue 15, discovery: --version, `models`, `devices --json`, examples and help for every option,
and a clear refusal of `-` (standard input) as an audio file."""

from __future__ import annotations

import argparse
import json

import pytest

from realtime_sed import __version__
from realtime_sed.cli import build_parser
from realtime_sed.constants import CLASSES, MODEL_NAMES
from tests.conftest import DEMO, REPO, run_cli
from tests.test_bad_input import assert_one_line_error


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"realtime-sed {__version__}"


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_command_has_examples_and_every_option_a_help_text(command):
    parser = _subparsers()[command]
    assert parser.epilog and parser.epilog.startswith("examples:\n  realtime-sed ")
    assert all(line.startswith(f"  realtime-sed {command}") for line in parser.epilog.splitlines()[1:])
    for action in parser._actions:
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
    r = run_cli(command, "--help")
    assert r.returncode == 0 and "examples:" in r.stdout


def test_classes_help_names_every_class():
    text = " ".join(run_cli("classify", "--help").stdout.split())
    assert all(c in text for c in CLASSES)


def test_models_lists_each_shipped_model_with_its_card():
    r = run_cli("models")
    assert r.returncode == 0, r.stderr
    blocks: dict[str, str] = {}
    for line in r.stdout.splitlines():
        if not line.startswith(" "):
            name = line.split()[0]
        blocks[name] = blocks.get(name, "") + line + "\n"
    for name in MODEL_NAMES:
        card = json.loads((REPO / "models" / f"{name}.json").read_text())
        block = blocks[name]
        assert card["architecture"]["name"] in block
        assert f"{card['architecture']['trainable_parameters']:,} trainable parameters" in block
        assert f"fold-wise ACC {card['foldwise']['acc_mean']:.3f}" in block


def test_devices_json_is_a_list_or_a_one_line_error():
    r = run_cli("devices", "--json")
    if r.returncode == 2:  # no PortAudio on this machine: said in one line
        assert_one_line_error(r, "PortAudio")
        return
    devices = json.loads(r.stdout)
    assert isinstance(devices, list)
    assert all({"index", "name", "channels", "rate", "hostapi"} <= set(d) for d in devices)
    assert r.returncode == (0 if devices else 1)


@pytest.mark.parametrize("args", [["classify", "-"], ["listen", "--no-tui", "--file", "-"]])
def test_standard_input_is_refused_in_one_line(args):
    r = run_cli(*args, input=DEMO.read_bytes().decode("latin-1"))
    assert_one_line_error(r, "standard input is not supported", code=2)
