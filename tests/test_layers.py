"""The imports of `realtime_sed` run one way: cli -> commands (app, bench, tui) -> wiring -> stream
-> parts. Every import counts, those inside functions too, and none may close a cycle.
`argparse` is imported by cli.py alone: everything below it gets settings dataclasses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "realtime_sed"
LAYERS = {"realtime_sed.__main__": 5, "realtime_sed.cli": 4, "realtime_sed.app": 3, "realtime_sed.bench": 3,
          "realtime_sed.cluster": 3,
          "realtime_sed.tui": 3, "realtime_sed.wiring": 2, "realtime_sed.stream": 1}
"""Rank of each module (a package's rank covers its modules); every other module is a part (0)."""
COMMANDS = ("realtime_sed.app", "realtime_sed.bench", "realtime_sed.cluster", "realtime_sed.tui")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in the module, resolved to
    modules of the package when they are ones (`from realtime_sed import app` is realtime_sed.app)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in MODULES else base, node.lineno))
    return found


def internal_graph() -> dict[str, set[str]]:
    return {name: {target for target, _ in imports_of(name) if target in MODULES and target != name}
            for name in MODULES}


def rank(name: str) -> int:
    for prefix, r in LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return r
    return 0


def command_of(name: str) -> str | None:
    return next((c for c in COMMANDS if name == c or name.startswith(c + ".")), None)


def test_the_scan_sees_imports_inside_functions():
    """cli.py imports the dashboard inside a function; the scan must count it, or it could not see
    the kind of cycle it is here to forbid."""
    assert "realtime_sed.tui.app" in internal_graph()["realtime_sed.cli"]
    assert len(MODULES) > 20 and "realtime_sed.wiring" in MODULES


def test_no_import_cycle():
    graph = internal_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_go_down_the_layers(name):
    bad = []
    for target, line in imports_of(name):
        if target not in MODULES or target == name or target == "realtime_sed":
            continue
        same_command = command_of(name) is not None and command_of(name) == command_of(target)
        if rank(target) < rank(name) or (rank(target) == rank(name) == 0) or same_command:
            continue
        bad.append(f"line {line}: {name} (layer {rank(name)}) imports {target} (layer {rank(target)})")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_argparse_only_in_cli(name):
    uses = [line for target, line in imports_of(name) if target.split(".")[0] == "argparse"]
    assert name == "realtime_sed.cli" or not uses, f"{name} imports argparse (line {uses})"


def test_the_layers_have_their_members():
    """A renamed module must not slip out of its layer into the parts unnoticed."""
    for prefix in LAYERS:
        assert any(m == prefix or m.startswith(prefix + ".") for m in MODULES), prefix
