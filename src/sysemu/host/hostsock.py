"""Host sockets made by sysemu from values it read: socketcall(SYS_SOCKET) of a family
sysemu leaves to the host.

socketcall's arguments are in user memory: answering CONTINUE after reading AF_UNIX there
would let another thread of the program rewrite the word to AF_INET before the kernel
reads it again. So sysemu creates the socket itself from its copy and installs it with
ADDFD, as the kernel would have (DESIGN.md: CONTINUE is never decided from user memory).

The socket is made by a small child of the supervisor that dropped every capability (and
sits in the supervisor's network namespace, the sandbox's): it gets what an unprivileged
program gets, EPERM for AF_PACKET and the like, never the supervisor's privileges.
SocketHelper is the shape of such a child; host/portfwd.py's egress helper is another
(forked before the supervisor leaves the host's network namespace).
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import struct
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.host.libc import LIBC, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG
from sysemu.kernel.errors import SyscallError

REQUEST = struct.Struct("=iii")       # family, type, protocol
REPLY = struct.Struct("=i")           # 0 or errno
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST_CAP = 63


def drop_capabilities(libc) -> None:
    """Empty bounding, effective, permitted and inheritable sets; no_new_privs."""
    for cap in range(CAP_LAST_CAP + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)      # EINVAL past the last: ignored
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")


class SocketHelper:
    """A child of the supervisor, without capabilities, that makes host sockets on
    request: `answer(*request)` (in the child) returns a descriptor to hand over (then
    closed there) or -errno. `ask(*request)` (in the supervisor) returns the descriptor,
    or raises OSError with the errno. Requests are `request`-packed values."""

    def __init__(self, answer: Callable[..., int], request: struct.Struct):
        self.request = request
        ours, theirs = socket.socketpair(socket.AF_UNIX,
                                         socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                _serve(theirs, answer, request)
            finally:
                os._exit(0)
        theirs.close()
        self.sock, self.pid = ours, pid

    def ask(self, *values) -> int:
        self.sock.send(self.request.pack(*values))
        msg, fds, _flags, _addr = socket.recv_fds(self.sock, REPLY.size, 1)
        if not fds:
            err = REPLY.unpack(msg)[0] if len(msg) == REPLY.size else 0
            raise OSError(err or errno.EIO, os.strerror(err or errno.EIO))
        return fds[0]

    def close(self) -> None:
        self.sock.close()


def _make_socket(family: int, type_: int, protocol: int) -> int:
    fd = LIBC.socket(family, type_, protocol)
    return fd if fd >= 0 else -ctypes.get_errno()


class SocketFactory(SocketHelper):
    """The supervisor's end of the factory child; `make` serves NetGlue.passthrough_socket."""

    def __init__(self):
        super().__init__(_make_socket, REQUEST)

    def make(self, family: int, type_: int, protocol: int) -> int:
        """socket(family, type_, protocol) on the host, unprivileged: its descriptor here
        (the caller installs it with ADDFD); SyscallError with its errno if it fails."""
        try:
            return self.ask(family, type_, protocol)
        except OSError as exc:
            try:
                raise SyscallError(Errno(exc.errno)) from None
            except ValueError:              # not an errno sysemu names (or no answer)
                raise SyscallError(Errno.EIO) from None


def _serve(sock: socket.socket, answer: Callable[..., int], request: struct.Struct) -> None:
    libc = LIBC
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 20)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)     # the supervisor's to end, with the sandbox
    drop_capabilities(libc)
    while True:
        try:
            data = sock.recv(request.size)
        except InterruptedError:
            continue
        if len(data) != request.size:
            return
        fd = answer(*request.unpack(data))
        if fd < 0:
            sock.send(REPLY.pack(-fd))
            continue
        socket.send_fds(sock, [REPLY.pack(0)], [fd])
        os.close(fd)
