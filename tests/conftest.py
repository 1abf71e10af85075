"""Shared fixtures only: the sysemu script of this venv, and a C compiler."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sysemu_bin() -> Path:
    """The `sysemu` console script installed beside this interpreter (the venv's)."""
    path = Path(sys.executable).parent / "sysemu"
    if not path.exists():
        pytest.skip(f"no sysemu script at {path}: run `make venv`")
    return path


@pytest.fixture(scope="session")
def cc(tmp_path_factory):
    """cc(source, *flags) -> path of the executable built from C `source` (text or a Path).

    Builds once per distinct source and flags in this session (and xdist worker), with
    gcc -O2 into a private tmp dir."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed: run `make deps`")
    outdir = tmp_path_factory.mktemp("cc")
    built: dict[str, Path] = {}

    def compile_c(source: str | Path, *flags: str) -> Path:
        text = Path(source).read_text() if isinstance(source, Path) else source
        key = hashlib.sha256("\0".join((text,) + flags).encode()).hexdigest()[:16]
        if key not in built:
            src = outdir / f"{key}.c"
            exe = outdir / key
            src.write_text(text)
            proc = subprocess.run([gcc, "-O2", "-Wall", "-o", str(exe), str(src), *flags],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise AssertionError(f"gcc failed:\n{proc.stderr}")
            built[key] = exe
        return built[key]

    return compile_c


@pytest.fixture(scope="session")
def cc32(cc):
    """cc32(source, *flags): cc() with `-m32 -static`, the i386 build (gcc-multilib, in
    the Makefile's APT_PACKAGES); skips where it cannot link."""
    check = subprocess.run(["gcc", "-m32", "-static", "-x", "c", "-o", "/dev/null", "-"],
                           input="int main(void){return 0;}", capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("gcc -m32 -static cannot link: run `make deps` (gcc-multilib)")
    return lambda source, *flags: cc(source, "-m32", "-static", *flags)
