"""The fast paths of the host side (issue 10): the listener's wake-up mode, user-memory
copies, descriptor identity. Behaviour only: no timing decides pass or fail here."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from sysemu.host.memory import ProcessMemory
from sysemu.kernel.errors import SyscallError

SYSEMU = [sys.executable, "-m", "sysemu.cli"]


def kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


def test_run_verbose_says_the_wake_up_mode():
    done = subprocess.run([*SYSEMU, "run", "-v", "--", "true"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "listener:" in line]
    assert len(lines) == 1, done.stderr
    if kernel_at_least(6, 6):
        assert "synchronous wake-up" in lines[0] and "asynchronous" not in lines[0]
    else:
        assert "asynchronous wake-up" in lines[0]


def test_run_without_the_flag_falls_back_and_still_serves():
    """SYSEMU_SYNC_WAKEUP=0 takes the path an older kernel takes: the program still runs
    and its trapped calls are still answered."""
    env = dict(os.environ, SYSEMU_SYNC_WAKEUP="0")
    script = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
              "print(s.getsockname()[0])")
    done = subprocess.run([*SYSEMU, "run", "-v", "--", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60, env=env)
    assert (done.returncode, done.stdout) == (0, "127.0.0.1\n"), done.stderr
    assert "asynchronous wake-up (SYSEMU_SYNC_WAKEUP=0)" in done.stderr


def test_process_memory_round_trip_and_faults():
    mem = ProcessMemory(os.getpid())
    buf = ctypes.create_string_buffer(64)
    addr = ctypes.addressof(buf)
    mem.write(addr, b"abcdef")
    mem.write(addr + 1, bytearray(b"XY"))
    assert mem.read(addr, 6) == b"aXYdef"
    assert buf.raw[:6] == b"aXYdef"
    big = os.urandom(10000)
    bigbuf = ctypes.create_string_buffer(len(big))
    mem.write(ctypes.addressof(bigbuf), big)
    assert mem.read(ctypes.addressof(bigbuf), len(big)) == big
    for bad in (lambda: mem.read(8, 4), lambda: mem.write(8, b"x"),
                lambda: mem.read(-1, 4), lambda: mem.read(addr, -1)):
        with pytest.raises(SyscallError):
            bad()
