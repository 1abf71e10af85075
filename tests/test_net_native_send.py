"""The native data path's trapped TCP sends in process (no host): sendto with an address,
sendmsg and sendmmsg on a stream socket are tcp_sendmsg()'s (net/ipv4/tcp.py
_native_sendmsg); the bytes go to HostHooks.stream_send, here a fake placeholder with a
given room. The live placeholder is covered by the differential scenarios
tcp_sendto_* (tests/probes/net_probe.py)."""
from __future__ import annotations

import pytest

from sysemu.abi.socket import MSG_DONTWAIT, MSG_NOSIGNAL, MSG_OOB
from sysemu.arch.x86.entry import run_model_call
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.kernel.wait import WaitQueue
from sysemu.net.ipv4 import tcp
from test_net_helpers import BLOCK, E, Env, RecordingHooks, sockaddr

SIGPIPE = 13


class Placeholder(RecordingHooks):
    """stream_send takes up to `room` bytes; `error` fails the send; signals and waits
    are recorded."""

    def __init__(self):
        super().__init__()
        self.room = 1 << 30
        self.error = None
        self.got = bytearray()
        self.sends: list[tuple[int, int]] = []      # (length, flags) of each host send
        self.signals: list[int] = []
        self.writable = WaitQueue("test")

    def stream_send(self, task, sk, data, flags):
        self.sends.append((len(data), flags))
        if self.error is not None:
            raise SyscallError(self.error)
        took = min(len(data), self.room)
        self.room -= took
        self.got += data[:took]
        return took

    def stream_writable(self, sk):
        return self.writable

    def send_sig(self, task, sig):
        self.signals.append(sig)


NR_SENDTO = 44


class NativeEnv(Env):
    def __init__(self):
        super().__init__()
        self.hooks = self.kernel.host = Placeholder()

    def raw_sendto(self, *args):
        try:
            return run_model_call(self.sc, self.task, NR_SENDTO, *args)
        except WouldBlock as wb:
            self.last_block = wb
            return BLOCK

    def sendto(self, fd, data, flags=0, buf=None):
        """sendto(fd, data, flags) with an address nobody listens on; `buf`: data's
        address in the task (a call run again passes the same)."""
        name = sockaddr("10.1.2.3", 9)
        buf = self.mem.alloc(data) if buf is None else buf
        return self.raw_sendto(fd, buf, len(data), flags, self.mem.alloc(name), len(name))

    def pair(self):
        lfd, port = self.server()
        c = self.socket()
        assert self.connect(c, "127.0.0.1", port) == 0
        return lfd, c


@pytest.fixture
def env():
    return NativeEnv()


def test_address_ignored_bytes_to_the_placeholder(env):
    _, c = env.pair()
    assert env.sendto(c, b"hello") == 5
    assert bytes(env.hooks.got) == b"hello"
    assert env.hooks.signals == []


def test_big_send_goes_in_chunks_and_oob_marks_the_last(env):
    _, c = env.pair()
    data = bytes(range(256)) * ((tcp.NATIVE_SEND_CHUNK * 2 + 100) // 256 + 1)
    assert env.sendto(c, data, MSG_OOB) == len(data)
    assert bytes(env.hooks.got) == data
    flags = [f for _, f in env.hooks.sends]
    assert [f & MSG_OOB for f in flags[:-1]] == [0] * (len(flags) - 1) and flags[-1] & MSG_OOB


def test_full_placeholder_blocking_waits_then_goes_on(env):
    _, c = env.pair()
    env.hooks.room = 3
    buf = env.mem.alloc(b"abcdefgh")
    assert env.sendto(c, b"abcdefgh", buf=buf) == BLOCK
    assert env.last_block.waitqueue is env.hooks.writable
    assert env.task.partial[1] == 3
    env.hooks.room = 100            # the attempt run again continues after the 3 bytes
    assert env.sendto(c, b"abcdefgh", buf=buf) == 8
    assert bytes(env.hooks.got) == b"abcdefgh"


def test_full_placeholder_nonblocking(env):
    _, c = env.pair()
    env.hooks.room = 0
    assert env.sendto(c, b"abc", MSG_DONTWAIT) == -E.EAGAIN
    env.hooks.room = 2
    assert env.sendto(c, b"abc", MSG_DONTWAIT) == 2


def test_placeholder_errors_epipe_signals_unless_nosignal(env):
    _, c = env.pair()
    env.hooks.error = E.EPIPE
    assert env.sendto(c, b"x") == -E.EPIPE
    assert env.hooks.signals == [SIGPIPE]
    assert env.sendto(c, b"x", MSG_NOSIGNAL) == -E.EPIPE
    env.hooks.error = E.ECONNRESET
    assert env.sendto(c, b"x") == -E.ECONNRESET
    assert env.hooks.signals == [SIGPIPE]


def test_unconnected_and_listener_epipe_without_sending(env):
    lfd, _ = env.pair()
    fresh = env.socket()
    for fd in (fresh, lfd):
        assert env.sendto(fd, b"x") == -E.EPIPE
    assert env.hooks.signals == [SIGPIPE, SIGPIPE]
    assert env.hooks.sends == []


def test_bad_buffer_efault_bad_address_efault_long_address_einval(env):
    _, c = env.pair()
    name = env.mem.alloc(sockaddr("127.0.0.1", 1))
    assert env.raw_sendto(c, 8, 4, 0, name, 16) == -E.EFAULT
    assert env.raw_sendto(c, env.mem.alloc(b"abcd"), 4, 0, 8, 16) == -E.EFAULT
    assert env.raw_sendto(c, env.mem.alloc(b"abcd"), 4, 0, name, 129) == -E.EINVAL
    assert env.hooks.sends == [] and env.hooks.signals == []
