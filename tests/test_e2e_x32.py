"""x32 calls (rax with __X32_SYSCALL_BIT), natively and under `sysemu run`.

Linux: arch/x86/entry/syscall_64.c do_syscall_x32() serves them only with
CONFIG_X86_X32_ABI (Debian also needs syscall.x32=y); otherwise do_syscall_64 answers
sys_ni_syscall, -ENOSYS. `sysemu run` follows the host: it asks once whether an x32
getpid answers (host.libc.host_has_x32_abi) and builds Syscalls(x32_abi=...) from that,
so a call sysemu serves (socket) is ENOSYS too where the host has no x32."""
from __future__ import annotations

import ctypes
import json
import subprocess
import sys


SYSEMU = [sys.executable, "-m", "sysemu.cli"]
X32_SYSCALL_BIT = 0x40000000

PROBE = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, nr, args in (("getpid", 39, ()), ("socket", 41, (2, 1, 0)),
                       ("recvmsg_x32", 519, (-1, 0, 0))):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(0x40000000 | nr), *[ctypes.c_long(a) for a in args])
    out[name] = "ok" if r >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""


def _host_has_x32() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(ctypes.c_long(X32_SYSCALL_BIT | 39)) >= 0    # getpid


def _run(argv):
    got = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout.splitlines()[-1])


def test_x32_calls_native_equals_sysemu():
    native = _run([sys.executable, "-c", PROBE])
    under = _run([*SYSEMU, "run", "--", sys.executable, "-c", PROBE])
    assert under == native
    assert (native["socket"] == "ok") == _host_has_x32(), native


def test_x32_calls_traced_native_equals_sysemu(tmp_path):
    """Tracing widens the x86-64 filter; x32 calls still follow the host."""
    native = _run([sys.executable, "-c", PROBE])
    under = _run([*SYSEMU, "run", "--strace=all", "-o", str(tmp_path / "t"), "--",
                  sys.executable, "-c", PROBE])
    assert under == native
