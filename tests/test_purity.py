"""The model is pure: only sysemu/host/ may import the OS-facing modules (DESIGN.md).

Checked statically with ast over every module of src/sysemu: `import x`, `import x.y`,
`from x import y`, `from x.y import z`, at any depth (inside functions, try blocks,
TYPE_CHECKING). Dynamic imports (importlib, __import__) are out of scope."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sysemu

FORBIDDEN = frozenset({"os", "ctypes", "socket", "select", "fcntl"})
PACKAGE = Path(sysemu.__file__).resolve().parent
HOST = PACKAGE / "host"


def forbidden_imports(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, module) of every import of a FORBIDDEN module (or a submodule of one)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def model_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if HOST not in p.parents)


@pytest.mark.parametrize("source, expected", [
    ("import os", ["os"]),
    ("import os.path", ["os.path"]),
    ("import json, socket as s", ["socket"]),
    ("from select import poll", ["select"]),
    ("from os.path import join", ["os.path"]),
    ("def f():\n    import ctypes\n", ["ctypes"]),
    ("try:\n    import fcntl\nexcept ImportError:\n    pass\n", ["fcntl"]),
    ("import osmosis, selectors, socketserver_like", []),
    ("from . import os", []),          # a relative import is the package's own module
    ("from .socket import Socket", []),
    ("from sysemu.net.socket import Socket", []),
    ("import errno, struct", []),
])
def test_checker_finds_exactly_the_forbidden_imports(source, expected):
    assert [name for _, name in forbidden_imports(source)] == expected


def test_checker_reports_the_line():
    assert forbidden_imports("import json\n\nfrom socket import AF_INET\n") == [(3, "socket")]


def test_scan_covers_the_package():
    modules = model_modules()
    names = {p.relative_to(PACKAGE).as_posix() for p in modules}
    assert "kernel/syscalls.py" in names and "arch/x86/entry.py" in names
    assert not any(name.startswith("host/") for name in names)


def test_no_module_outside_host_imports_os_facing_modules():
    offenders = []
    for path in model_modules():
        rel = path.relative_to(PACKAGE.parent)
        offenders += [f"{rel}:{line}: import {name}"
                      for line, name in forbidden_imports(path.read_text(), str(path))]
    assert not offenders, ("only sysemu/host/ may import os, ctypes, socket, select, fcntl:\n"
                           + "\n".join(offenders))
