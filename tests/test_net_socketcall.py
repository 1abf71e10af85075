"""i386 socketcall(2) demultiplexing (Linux: net/socket.c SYSCALL_DEFINE2(socketcall),
compat 32-bit argument words) and the direct i386 socket calls."""
from __future__ import annotations

import struct

import pytest

from sysemu.arch.x86.entry import AUDIT_ARCH_I386
from sysemu.kernel.file import File
from sysemu.kernel.syscalls import InstallFd
from test_net_helpers import E, Env, sockaddr, parse_sockaddr

SOCKETCALL = 102


def sc(env, call, *words, ptr=None):
    if ptr is None:
        ptr = env.mem.alloc(struct.pack(f"<{len(words)}I", *[w & 0xFFFFFFFF for w in words])
                            if words else b"\0")
    return env.call_i386(SOCKETCALL, call, ptr)


@pytest.fixture
def env():
    e = Env()

    def call_i386(nr, *args):
        from sysemu.arch.x86.entry import run_model_call
        from sysemu.kernel.errors import WouldBlock
        try:
            return run_model_call(e.sc, e.task, nr, *args, arch=AUDIT_ARCH_I386)
        except WouldBlock:
            return "block"
    e.call_i386 = call_i386
    return e


def test_call_range_and_efault(env):
    assert sc(env, 0) == -E.EINVAL
    assert sc(env, 21) == -E.EINVAL
    assert sc(env, -1) == -E.EINVAL
    assert sc(env, 1, ptr=0x10) == -E.EFAULT
    short = env.mem.alloc(struct.pack("<II", 2, 1))        # SYS_SOCKET needs 3 words
    assert sc(env, 1, ptr=short) == -E.EFAULT


def test_socket_bind_listen_connect_accept_via_socketcall(env):
    lfd = sc(env, 1, 2, 1, 0)
    assert lfd >= 0
    addr = env.mem.alloc(sockaddr("127.0.0.1", 0))
    assert sc(env, 2, lfd, addr, 16) == 0
    assert sc(env, 4, lfd, 5) == 0
    buf, ln = env.mem.alloc(bytes(16)), env.mem.alloc(struct.pack("<i", 16))
    assert sc(env, 6, lfd, buf, ln) == 0
    host, port = parse_sockaddr(env.mem.read(buf, 16))
    c = sc(env, 1, 2, 1, 0)
    assert sc(env, 3, c, env.mem.alloc(sockaddr("127.0.0.1", port)), 16) == 0
    a = sc(env, 18, lfd, 0, 0, 0)                          # SYS_ACCEPT4
    assert a >= 0
    assert sc(env, 7, a, buf, ln) == 0
    assert sc(env, 5, lfd, 0, 0) == "block"               # SYS_ACCEPT, empty queue
    assert sc(env, 13, c, 7) == -E.EINVAL                   # SYS_SHUTDOWN bad how
    assert sc(env, 4, lfd, -1) == 0 and env.sk(lfd).max_ack_backlog == 4096   # sign-extended


def test_send_is_sendto_without_address(env):
    """SYS_SEND is sys_sendto() with no address, as Linux's __sys_sendto(fd, buf, len,
    flags, NULL, 0): EBADF for a descriptor that is nobody's (the model's table)."""
    assert sc(env, 9, 3, 0, 0, 0) == -E.EBADF               # SYS_SEND


def test_unserved_calls_go_to_host(env):
    assert sc(env, 1, 1, 1, 0) == -E.EAFNOSUPPORT           # AF_UNIX: no host in the model


class RewrittenMemory:
    """User memory another thread rewrites right after each read: the family word of a
    socketcall argument block flips to AF_INET once sysemu has read AF_UNIX."""

    def __init__(self, mem, addr: int):
        self.mem, self.addr = mem, addr

    def read(self, addr: int, length: int) -> bytes:
        data = self.mem.read(addr, length)
        self.mem.write(self.addr, struct.pack("<I", 2))      # AF_INET, too late
        return data

    def __getattr__(self, name):
        return getattr(self.mem, name)


def test_socketcall_socket_is_made_from_the_copy_read(env):
    """Never CONTINUE after reading the family: the host would read it again (and find
    AF_INET). The host side makes the socket from sysemu's copy instead."""
    asked = []

    def passthrough_socket(family, type_, protocol):
        asked.append((family, type_, protocol))
        return InstallFd(File(None))

    env.task.kernel.host.passthrough_socket = passthrough_socket
    ptr = env.mem.alloc(struct.pack("<3I", 1, 1 | 0o2000000, 0))   # AF_UNIX, SOCK_CLOEXEC
    env.task.mem = RewrittenMemory(env.task.mem, ptr)
    fd = sc(env, 1, ptr=ptr)
    assert fd >= 0
    assert asked == [(1, 1 | 0o2000000, 0)]
    assert struct.unpack("<I", env.mem.read(ptr, 4)) == (2,)    # the rewrite happened


def test_direct_i386_calls(env):
    fd = env.call_i386(359, 2, 1, 0)                        # socket
    assert fd >= 0
    assert env.call_i386(361, fd, env.mem.alloc(sockaddr("127.0.0.1", 0)), 16) == 0  # bind
    assert env.call_i386(363, fd, 1) == 0                   # listen
    assert env.call_i386(364, fd, 0, 0, 0x80000) == "block"  # accept4 SOCK_CLOEXEC (i386)
