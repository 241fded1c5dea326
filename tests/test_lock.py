"""requirements.lock against pyproject.toml and against this environment.

The lock (made by `bash scripts/lock.sh`) pins every package the runtime and every extra need, and
`scripts/setup.sh` installs through it. These tests fail when someone adds or tightens a dependency
in pyproject.toml without regenerating the lock, or when the environment drifted from it.
"""

from __future__ import annotations

import tomllib
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

LOCK = REPO / "requirements.lock"
REGENERATE = "regenerate it with `bash scripts/lock.sh` and commit it with pyproject.toml"
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython"}
"""The platform the lock is made for (scripts/lock.sh: --python-version 3.11, Linux x86_64)."""


def locked() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{line!r} in the lock is not an exact pin"
        pins[canonicalize_name(req.name)] = Version(spec[0].version)
    return pins


def project_requirements() -> dict[str, list[Requirement]]:
    """The runtime's and each extra's requirements, by set name ("" for the runtime)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    sets = {"": project["dependencies"], **project.get("optional-dependencies", {})}
    return {name: [Requirement(r) for r in reqs] for name, reqs in sets.items()}


def applies(req: Requirement, extra: str = "") -> bool:
    env = {**default_environment(), **TARGET, "extra": extra}
    return req.marker is None or req.marker.evaluate(env)


def test_every_requirement_of_pyproject_is_pinned_in_the_lock_within_its_specifier():
    pins = locked()
    sets = project_requirements()
    assert {"", "train", "dev"} <= set(sets)
    problems = []
    for extra, reqs in sets.items():
        for req in reqs:
            if not applies(req, extra):
                continue
            name = canonicalize_name(req.name)
            if name not in pins:
                problems.append(f"{req} ({extra or 'runtime'}) is not in the lock")
            elif not req.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{req} ({extra or 'runtime'}) but the lock pins {name}=={pins[name]}")
    assert not problems, "; ".join(problems) + "; " + REGENERATE


def test_the_lock_pins_the_dependencies_of_what_it_pins():
    """Closed under dependencies: each locked package that is installed here names, in its own
    metadata, only packages the lock pins at versions it accepts."""
    pins = locked()
    problems = []
    checked = 0
    for name in pins:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        checked += 1
        for req in map(Requirement, requires):
            if not applies(req):
                continue
            dep = canonicalize_name(req.name)
            if dep not in pins:
                problems.append(f"{name} needs {req}, which the lock lacks")
            elif not req.specifier.contains(pins[dep], prereleases=True):
                problems.append(f"{name} needs {req}, the lock pins {dep}=={pins[dep]}")
    assert checked > len(pins) // 2, "run the tests in the venv that scripts/setup.sh train,dev made"
    assert not problems, "; ".join(problems) + "; " + REGENERATE


@pytest.mark.parametrize("name", ["numpy", "textual", "onnxruntime", "torch", "torchaudio"])
def test_the_key_packages_are_pinned(name):
    assert canonicalize_name(name) in locked()


def test_this_environment_has_the_locked_versions():
    """scripts/setup.sh installed through the lock: every locked package that is installed has
    the locked version (tools installed beside them, such as uv, are not in the lock)."""
    pins = locked()
    drift = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and Version(dist.version) != pins[name]:
            drift.append(f"{name} {dist.version} (locked {pins[name]})")
    assert not drift, ", ".join(drift) + ": run `bash scripts/setup.sh train,dev`"
