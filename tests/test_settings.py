"""Settings dataclasses and the command line: every runtime option fills the field of its name, its
default is the field's default, and `build_parser(defaults)` takes other defaults (what a config
file will give)."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from realtime_sed.cli import build_parser, settings_from_args
from realtime_sed.errors import SedError
from realtime_sed.settings import DetectorSettings, ScreenshotSettings, Settings, StreamSettings

RUNTIME = ("listen", "classify", "devices", "bench", "screenshot")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", RUNTIME)
def test_every_option_is_a_settings_field_with_its_default(command):
    owner = Settings.section_of()
    defaults = Settings()
    options = [a for a in subparsers()[command]._actions if not isinstance(a, argparse._HelpAction)]
    for action in options:
        assert action.dest in owner, f"{command} {action.option_strings or action.dest}: no settings field"
        section = getattr(defaults, owner[action.dest])
        if action.nargs != "+":
            assert action.default == getattr(section, action.dest), action.dest


def test_field_names_are_unique_across_sections():
    names = [f.name for s in fields(Settings) for f in fields(s.default_factory)]
    assert len(names) == len(set(names)) == len(Settings.section_of())


def test_a_command_line_becomes_settings():
    args = build_parser().parse_args(["listen", "--file", "a.wav", "--hop", "0.25", "--classes", "siren, dog_bark",
                                      "--gate-db", "-50", "--events", "e.jsonl", "--windows", "--no-tui"])
    s = settings_from_args(args)
    assert s.stream == StreamSettings(hop=0.25)
    assert s.detector == DetectorSettings(classes=("siren", "dog_bark"), gate_db=-50.0)
    assert (s.source.file, s.output.events, s.output.windows, s.output.no_tui) == ("a.wav", "e.jsonl", True, True)
    c = settings_from_args(build_parser().parse_args(["classify", "a.wav", "b.wav", "--block-size", "512"]))
    assert c.classify.files == ("a.wav", "b.wav") and c.classify.block_size == 512


def test_other_defaults_come_through_and_the_command_line_still_wins():
    """The hook for a config file: its settings become the parser's defaults."""
    from_file = Settings(stream=StreamSettings(model="convdt", hop=1.0), detector=DetectorSettings(smooth=5))
    parser = build_parser(from_file)
    s = settings_from_args(parser.parse_args(["listen", "--hop", "0.25"]), from_file)
    assert (s.stream.model, s.stream.hop, s.detector.smooth) == ("convdt", 0.25, 5)


def test_a_bad_screenshot_size_is_a_user_error():
    assert ScreenshotSettings(size="80x24").terminal_size == (80, 24)
    with pytest.raises(SedError, match="COLSxROWS"):
        ScreenshotSettings(size="wide").terminal_size
