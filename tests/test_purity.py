"""The model is pure: only sysemu/host/ and sysemu/sandbox/ may import the OS-facing
modules (DESIGN.md), and the model's objects hold no host facts.

Where OS access is allowed: host/ (everything a live sandbox does on the host) and
sandbox/ (the Python API and the agent inside a sandbox: subprocess, signals, temporary
files). Everything else (abi, arch, kernel, fs, net, trace, observe, cli.py, api.py's
re-export) reaches the OS only through host/ or sandbox/.

Imports are checked statically with ast over every module of src/sysemu: `import x`,
`import x.y`, `from x import y`, `from x.y import z`, at any depth (inside functions,
try blocks, TYPE_CHECKING). Dynamic imports (importlib, __import__) are out of scope.

Host facts: the model's File, Socket, Sock and Task declare no attribute (in __slots__ or
assigned in a method) named host_*, notif_* or holder, and no module outside host/
reads or writes such an attribute (`x.host_inode`, getattr(x, "host_inode")): host/ keeps
its own maps keyed by the model's objects."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sysemu

FORBIDDEN = frozenset({"os", "ctypes", "socket", "select", "fcntl", "subprocess", "signal",
                       "tempfile"})
PACKAGE = Path(sysemu.__file__).resolve().parent
OS_ALLOWED = (PACKAGE / "host", PACKAGE / "sandbox")
MODEL_CLASSES = frozenset({"File", "Socket", "Sock", "Task"})


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
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if not any(d in p.parents for d in OS_ALLOWED))


def is_host_fact(name: str) -> bool:
    return name.startswith(("host_", "notif_")) or name == "holder"


def host_fact_declarations(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, Class.attr) of every host-fact attribute a model class declares: a
    __slots__ entry, or `self.attr = ...` in one of its methods."""
    found = []
    for cls in ast.walk(ast.parse(source, filename)):
        if not isinstance(cls, ast.ClassDef) or cls.name not in MODEL_CLASSES:
            continue
        for node in ast.walk(cls):
            names: list[str] = []
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
                names = [e.value for e in ast.walk(node.value)
                         if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.attr for t in targets if isinstance(t, ast.Attribute)
                         and isinstance(t.value, ast.Name) and t.value.id == "self"]
            found += [(node.lineno, f"{cls.name}.{n}") for n in names if is_host_fact(n)]
    return found


def host_fact_uses(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, attr) of every `x.attr` or getattr/setattr/hasattr(x, "attr") naming a
    host fact."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and is_host_fact(node.attr):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and is_host_fact(node.args[1].value):
            found.append((node.lineno, node.args[1].value))
    return found


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
    ("import subprocess, signal, tempfile", ["subprocess", "signal", "tempfile"]),
])
def test_checker_finds_exactly_the_forbidden_imports(source, expected):
    assert [name for _, name in forbidden_imports(source)] == expected


def test_checker_reports_the_line():
    assert forbidden_imports("import json\n\nfrom socket import AF_INET\n") == [(3, "socket")]


def test_scan_covers_the_package():
    modules = model_modules()
    names = {p.relative_to(PACKAGE).as_posix() for p in modules}
    assert "kernel/syscalls.py" in names and "arch/x86/entry.py" in names
    assert not any(name.startswith(("host/", "sandbox/")) for name in names)
    assert "cli.py" in names and "api.py" in names and "observe/cli.py" in names


def test_no_module_outside_host_imports_os_facing_modules():
    offenders = []
    for path in model_modules():
        rel = path.relative_to(PACKAGE.parent)
        offenders += [f"{rel}:{line}: import {name}"
                      for line, name in forbidden_imports(path.read_text(), str(path))]
    assert not offenders, ("only sysemu/host/ and sysemu/sandbox/ may import "
                           + ", ".join(sorted(FORBIDDEN)) + ":\n" + "\n".join(offenders))


@pytest.mark.parametrize("source, expected", [
    ("class File:\n    __slots__ = ('f_flags', 'host_fd')\n", ["File.host_fd"]),
    ("class Task:\n    def __init__(self):\n        self.notif_id = None\n",
     ["Task.notif_id"]),
    ("class Sock:\n    def f(self):\n        self.holder: tuple = (1, 2)\n", ["Sock.holder"]),
    ("class Other:\n    __slots__ = ('host_fd',)\n", []),
    ("class File:\n    __slots__ = ('private_data', 'refs')\n"
     "    def f(self):\n        self.hosted = 1\n", []),
])
def test_declaration_checker(source, expected):
    assert [name for _, name in host_fact_declarations(source)] == expected


@pytest.mark.parametrize("source, expected", [
    ("x = sk.host_inode", ["host_inode"]),
    ("file.holder = (1, 2)", ["holder"]),
    ("getattr(sk, 'host_inode', 0)", ["host_inode"]),
    ("task.kernel.host.sock_inode(sk)", []),
    ("getattr(kernel, 'pump', None)", []),
])
def test_use_checker(source, expected):
    assert [name for _, name in host_fact_uses(source)] == expected


def test_model_objects_hold_no_host_facts():
    offenders, seen = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        text = path.read_text()
        seen |= {n.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ClassDef)}
        offenders += [f"{rel}:{line}: declares {name}"
                      for line, name in host_fact_declarations(text, str(path))]
        if not any(d in path.parents for d in OS_ALLOWED):
            offenders += [f"{rel}:{line}: uses .{name}"
                          for line, name in host_fact_uses(text, str(path))]
    assert MODEL_CLASSES <= seen
    assert not offenders, ("the model holds no host fact (host/ keeps maps keyed by the "
                           "model's objects):\n" + "\n".join(offenders))


def test_model_classes_at_run_time():
    """The same for the classes as imported (slots from every base)."""
    from sysemu.kernel.file import File
    from sysemu.kernel.task import Task
    from sysemu.net.core import Sock
    from sysemu.net.socket import Socket
    for cls in (File, Task, Sock, Socket):
        slots = [n for c in cls.__mro__ for n in getattr(c, "__slots__", ())]
        assert not [n for n in slots if is_host_fact(n)], cls
