"""Guard rails of the package layout: one of each thing, no import circles, loopback-only unit tests."""

from __future__ import annotations

import ast
import re
import socket
from pathlib import Path

import pytest
import pytest_socket

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "extension" / "eolab"
SETTINGS_MODULES = {PACKAGE / "settings.py", PACKAGE / "hub" / "settings.py"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """eolab modules ``path`` imports (top level and inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("eolab"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("eolab"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = {d for d in _imports(path, name) if d in mods and d != name}
        graph[name] = deps
    return graph


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_no_import_circle_between_subpackages():
    graph = _graph()
    edges = {}
    for mod, deps in graph.items():
        for dep in deps:
            a, b = _subpackage(mod), _subpackage(dep)
            if a != b and a != "eolab" and b != "eolab":
                edges.setdefault(a, set()).add(b)
    cycles = [(a, b) for a, bs in edges.items() for b in bs if a in edges.get(b, set())]
    assert not cycles, f"subpackages import each other: {cycles}"


def test_no_import_circle_between_modules():
    graph = _graph()
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # a package imports its own modules to re-export them
            if not dep.startswith(node + "."):
                visit(dep)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, f"import circles: {cycles[:3]}"


@pytest.mark.parametrize("importer, forbidden", [
    ("eolab.demo", "eolab.analysis"), ("eolab.analysis", "eolab.demo"),
    ("eolab.analysis", "eolab.widgets"), ("eolab.catalog", "eolab.widgets"), ("eolab.data", "eolab.widgets"),
    ("eolab.catalog", "eolab.analysis"), ("eolab.data", "eolab.analysis"), ("eolab.search", "eolab.widgets"),
])
def test_layer_rules(importer, forbidden):
    bad = {mod: sorted(d for d in deps if d == forbidden or d.startswith(forbidden + "."))
           for mod, deps in _graph().items() if mod == importer or mod.startswith(importer + ".")}
    assert not {m: d for m, d in bad.items() if d}, f"{importer} must not import {forbidden}"


def _code_files():
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "hub_config").glob("**/*.py")):
        if "node_modules" not in path.parts:
            yield path


def test_no_environment_reads_of_eolab_variables_outside_the_settings_modules():
    pattern = re.compile(r"""environ(\.get)?[\[(]\s*f?["']EOLAB_""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _code_files() if p not in SETTINGS_MODULES
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders


def test_federated_ids_are_split_in_one_module_only():
    pattern = re.compile(r"""(r?partition|split)\(\s*["']\|["']""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _code_files() if p.name != "ids.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line) and "squeue" not in line and "out.stdout" not in line]
    assert not offenders, offenders


def test_one_stac_client_one_loader_one_provenance_builder():
    text = {p: p.read_text() for p in _code_files()}
    clients = [p for p, t in text.items() if "pystac_client.Client.open" in t or "Client.open(" in t]
    assert [p.relative_to(PACKAGE).as_posix() for p in clients] == ["search/_client.py"]
    loaders = [p for p, t in text.items() if "odc.stac.load(" in t]
    assert [p.relative_to(PACKAGE).as_posix() for p in loaders] == ["data/load.py"]
    builders = [p for p, t in text.items() if '"eolab_version": __version__' in t]
    assert [p.relative_to(PACKAGE).as_posix() for p in builders] == ["provenance.py"]


def test_unit_tests_cannot_leave_loopback():
    # a UDP "connect" sends no packet even if the guard were off; the guard refuses it all the same
    with pytest.raises(pytest_socket.SocketConnectBlockedError), pytest.warns(UserWarning), \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("192.0.2.1", 9))
    # and loopback still works
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
