"""`--config FILE.toml`: a file that fills the same settings dataclasses as the command line.

A key is a settings field's name (`hop`, `gate_db`, `mqtt`, ...), written either at the top of the
file or in its section (`[stream]`, `[detector]`, `[source]`, `[output]`, `[classify]`); the
names are unique across sections, so both mean the same field. `[classes.NAME]` sections hold one
class's own `threshold`, `off_threshold`, `min_duration` and `enabled`. `cli.py` makes what the
file gives the parser's defaults, so a flag on the command line still wins over the file.
Anything the file gets wrong (a key no setting has, a value of the wrong type, a class that does
not exist) is one line naming the file and the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path

from realtime_sed.constants import CLASSES
from realtime_sed.errors import SedError
from realtime_sed.settings import ClassSettings, Settings

SECTIONS = ("stream", "detector", "source", "output", "classify")  # what listen and classify read
NOT_IN_FILES = {"per_class"}  # set by [classes.NAME], not by a key of its name
# Keys whose options take one of a few words (argparse's choices in cli.py) or class names.
CHOICES = {"format": ("tsv", "jsonl", "csv"), "engine": ("local", "ray"), "clip_format": ("flac", "wav", "ogg"),
           "smooth_method": ("median", "mean"), "classes": CLASSES}
TYPE_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a string",
              "tuple[str, ...]": "a list of strings", "dict": "a table"}


def _keys() -> dict[str, tuple[str, str]]:
    """Key -> (section, the field's type without None)."""
    keys = {}
    for section in fields(Settings):
        if section.name not in SECTIONS:
            continue
        for f in fields(section.default_factory):
            if f.name not in NOT_IN_FILES:
                keys[f.name] = (section.name, _base_type(f.type))
    return keys


def _base_type(annotation: str) -> str:
    return next(t.strip() for t in str(annotation).split("|") if t.strip() != "None")


def _value(path: Path, key: str, value, kind: str):
    """The TOML value as the field's type, or a one-line error naming the key."""
    ok = {"float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str),
          "tuple[str, ...]": isinstance(value, list) and all(isinstance(v, str) for v in value)}.get(kind)
    if ok is None:
        raise AssertionError(f"settings field {key} has a type the config file cannot give: {kind}")
    if not ok:
        raise SedError(f"{path}: key {key!r} must be {TYPE_WORDS[kind]}, not {_shown(value)}")
    allowed = CHOICES.get(key)
    for word in (value if isinstance(value, list) else [value]) if allowed else ():
        if word not in allowed:
            raise SedError(f"{path}: key {key!r}: {word!r} is not one of {', '.join(allowed)}")
    if kind == "float":
        return float(value)
    if kind == "tuple[str, ...]":
        return tuple(value)
    return value


def _shown(value) -> str:
    kind = {bool: "a boolean", int: "a whole number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str)
    return f"{kind} ({text if len(text) < 40 else text[:37] + '...'})"


def _classes(path: Path, table) -> dict[str, ClassSettings]:
    if not isinstance(table, dict):
        raise SedError(f"{path}: key 'classes' must be a list of class names or [classes.NAME] tables, "
                       f"not {_shown(table)}")
    own_keys = {f.name: _base_type(f.type) for f in fields(ClassSettings)}
    out = {}
    for name, section in table.items():
        if name not in CLASSES:
            raise SedError(f"{path}: unknown class {name!r} in [classes.{name}]; known: {', '.join(CLASSES)}")
        if not isinstance(section, dict):
            raise SedError(f"{path}: key 'classes.{name}' must be a table, not {_shown(section)}")
        values = {}
        for key, value in section.items():
            if key not in own_keys:
                raise SedError(f"{path}: unknown key {key!r} in [classes.{name}] "
                               f"(known: {', '.join(own_keys)})")
            values[key] = _value(path, f"classes.{name}.{key}", value, own_keys[key])
        out[name] = ClassSettings(**values)
    return out


def load_config(path: str | Path, base: Settings | None = None) -> Settings:
    """The settings a config file gives, on top of `base` (default: the dataclasses' defaults)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SedError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SedError(f"--config {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SedError(f"{path}: not valid TOML: {exc}") from None
    keys = _keys()
    given: dict[str, dict] = {}
    per_class = None

    def put(key: str, value, where: str) -> None:
        if key not in keys:
            raise SedError(f"{path}: unknown key {key!r}{where}")
        section, kind = keys[key]
        if where and where != f" in [{section}]":
            raise SedError(f"{path}: key {key!r} belongs in [{section}], not{where[3:]}")
        given.setdefault(section, {})[key] = _value(path, key, value, kind)

    for key, value in data.items():
        if key == "classes" and isinstance(value, dict):
            per_class = _classes(path, value)
        elif key in SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                if sub == "classes" and isinstance(v, dict):
                    raise SedError(f"{path}: [{key}.classes.NAME] goes at the top: [classes.NAME]")
                put(sub, v, f" in [{key}]")
        else:
            put(key, value, "")
    settings = base or Settings()
    changes = {section: replace(getattr(settings, section), **values) for section, values in given.items()}
    settings = replace(settings, **changes)
    if per_class is not None:
        settings = replace(settings, detector=replace(settings.detector, per_class=per_class))
    return settings


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(type(value))


def settings_toml(settings: Settings) -> str:
    """The settings listen and classify read, as a config file that loads back to them; a value
    left unset (None) is a commented line."""
    lines = ["# realtime-sed settings (realtime-sed config --print); flags on the command line win over these"]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        values = getattr(settings, section)
        for f in fields(values):
            if f.name in NOT_IN_FILES:
                continue
            value = getattr(values, f.name)
            lines.append(f"# {f.name} =" if value is None else f"{f.name} = {_toml(value)}")
    for name, own in settings.detector.per_class.items():
        lines += ["", f"[classes.{name}]"]
        for f in fields(own):
            value = getattr(own, f.name)
            lines.append(f"# {f.name} =" if value is None else f"{f.name} = {_toml(value)}")
    return "\n".join(lines) + "\n"
