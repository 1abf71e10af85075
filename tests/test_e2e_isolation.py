"""End to end: nothing a program under sysemu does reaches a host AF_INET/AF_INET6 socket.
io_uring (whose socket operations would bypass seccomp) is refused, UDP sockets are
sysemu's, UDP-Lite is refused, AF_UNIX passes through to the host, and a server is
unreachable from outside."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import ctypes, errno, json, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 8, params)                  # io_uring_setup(8, &params)
out = {"io_uring_setup": "ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()]}
for name, args in (("udp", (socket.AF_INET, socket.SOCK_DGRAM)),
                   ("udp6", (socket.AF_INET6, socket.SOCK_DGRAM)),
                   ("udplite", (socket.AF_INET, socket.SOCK_DGRAM, 136)),
                   ("tcp", (socket.AF_INET, socket.SOCK_STREAM)),
                   ("unix", (socket.AF_UNIX, socket.SOCK_STREAM))):
    try:
        socket.socket(*args).close()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]
a, b = socket.socketpair()
a.sendall(b"unix bytes pass natively")
out["socketpair"] = b.recv(100).decode()
print(json.dumps(out, sort_keys=True))
"""


def test_isolation(sysemu_bin):
    native = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                                       text=True, timeout=30, check=True).stdout)
    got = json.loads(subprocess.run([str(sysemu_bin), "run", "--", sys.executable, "-c",
                                     PROBE], capture_output=True, text=True, timeout=30,
                                    check=True).stdout)
    # The host gives io_uring and UDP-Lite; sysemu refuses both (README: Isolation).
    assert native["udp"] == "ok" and native["tcp"] == "ok", native
    assert got["io_uring_setup"] == "ENOSYS", got
    assert got["udplite"] == "EPROTONOSUPPORT", got
    # TCP and UDP are sysemu's own; AF_UNIX and its bytes are the host's, as natively.
    assert got["tcp"] == got["udp"] == got["udp6"] == "ok"
    assert (got["unix"], got["socketpair"]) == (native["unix"], native["socketpair"])
