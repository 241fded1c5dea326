"""Issue 15: a built wheel, installed into a clean venv, holds the four models and the demo and
classifies the demo as the checkout does. The venv borrows this venv's dependencies through a .pth
file (their directory is added to sys.path, its .pth files, this checkout's editable install
among them, are not run), so installing takes seconds and needs no network."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from realtime_sed.constants import MODEL_NAMES
from tests.conftest import DEMO, REPO, run_cli

SOURCES = ("pyproject.toml", "README.md", "realtime_sed", "train", "models", "demo")


def _run(*cmd, cwd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=300, **kw)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_a_wheel_installed_in_a_clean_venv_classifies_the_demo(tmp_path):
    src = tmp_path / "src"  # a copy, so building leaves nothing in the checkout
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src,
         cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("realtime_sed-*.whl"))

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=tmp_path).stdout.strip())
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)

    where = _run(python, "-c", "import realtime_sed.constants as c, realtime_sed.classifier as k; "
                 "print(c.__file__); print(c.DEMO_FILE); print(k.MODELS_DIR)", cwd=tmp_path).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the wheel's copy, not the checkout
    demo, models = Path(where[1]), Path(where[2])
    assert demo.read_bytes() == DEMO.read_bytes()
    for name in MODEL_NAMES:
        assert (models / f"{name}.onnx").read_bytes() == (REPO / "models" / f"{name}.onnx").read_bytes()
        assert (models / f"{name}.json").exists()

    installed = _run(venv / "bin" / "realtime-sed", "classify", demo, cwd=tmp_path)
    assert installed.stdout == run_cli("classify", DEMO).stdout
    listed = _run(venv / "bin" / "realtime-sed", "models", cwd=tmp_path).stdout
    assert "not installed" not in listed and all(f"\n{n} " in "\n" + listed for n in MODEL_NAMES)
