"""setsockopt/getsockopt: values, stored forms, length rules and errnos (probed on a
Linux 6.18 host where noted)."""
from __future__ import annotations

import struct

import pytest

from sysemu.abi.inet import (IP_TTL, IPV6_V6ONLY, SOL_IP, SOL_IPV6, SOL_TCP, TCP_DEFER_ACCEPT,
                             TCP_INFO, TCP_INFO_SIZE, TCP_KEEPCNT, TCP_KEEPIDLE,
                             TCP_KEEPINTVL, TCP_NODELAY, TCP_SYNCNT, TcpState)
from sysemu.abi.socket import (AF_INET, AF_INET6, SO_ACCEPTCONN, SO_DOMAIN, SO_ERROR,
                               SO_KEEPALIVE, SO_LINGER, SO_PROTOCOL, SO_RCVBUF,
                               SO_RCVTIMEO_OLD, SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF,
                               SO_SNDTIMEO_OLD, SO_TYPE, SOCK_NONBLOCK, SOL_SOCKET)
from test_net_helpers import BLOCK, E, Env


@pytest.fixture
def env():
    return Env()


def test_flags_roundtrip(env):
    s = env.socket()
    for opt in (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE):
        assert env.getint(s, SOL_SOCKET, opt) == 0
        assert env.setsockopt(s, SOL_SOCKET, opt, 5) == 0
        assert env.getint(s, SOL_SOCKET, opt) == 1
    assert env.setsockopt(s, SOL_TCP, TCP_NODELAY, 1) == 0
    assert env.getint(s, SOL_TCP, TCP_NODELAY) == 1


def test_identity_options(env):
    s = env.socket(AF_INET6)
    assert env.getint(s, SOL_SOCKET, SO_TYPE) == 1
    assert env.getint(s, SOL_SOCKET, SO_DOMAIN) == AF_INET6
    assert env.getint(s, SOL_SOCKET, SO_PROTOCOL) == 6
    assert env.getint(s, SOL_SOCKET, SO_ACCEPTCONN) == 0
    env.listen(s)
    assert env.getint(s, SOL_SOCKET, SO_ACCEPTCONN) == 1
    assert env.setsockopt(s, SOL_SOCKET, SO_TYPE, 1) == -E.ENOPROTOOPT
    assert env.getint(s, SOL_IPV6, IPV6_V6ONLY) == 0


def test_buffer_sizes_doubled_with_minimum(env):
    """Probed on 6.18: set 1 -> 2304/4608; default 131072/16384; capped at 2*4194304."""
    s = env.socket()
    assert env.getint(s, SOL_SOCKET, SO_RCVBUF) == 131072
    assert env.getint(s, SOL_SOCKET, SO_SNDBUF) == 16384
    for value, rcv, snd in [(1, 2304, 4608), (1000, 2304, 4608), (100000, 200000, 200000),
                            (2**31 - 1, 8388608, 8388608), (-1, 8388608, 8388608)]:
        env.setsockopt(s, SOL_SOCKET, SO_RCVBUF, value)
        env.setsockopt(s, SOL_SOCKET, SO_SNDBUF, value)
        assert (env.getint(s, SOL_SOCKET, SO_RCVBUF), env.getint(s, SOL_SOCKET, SO_SNDBUF)) \
            == (rcv, snd)
    lfd, port = env.server()
    env.setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, 100000)
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    assert env.getint(a, SOL_SOCKET, SO_RCVBUF) == 200000      # inherited from listener


def test_length_rules(env):
    s = env.socket()
    assert env.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, b"\1\0") == -E.EINVAL
    assert env.setsockopt(s, SOL_TCP, TCP_NODELAY, b"\1") == -E.EINVAL
    assert env.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, 1, optlen=-1) == -E.EINVAL
    assert env.getsockopt(s, SOL_SOCKET, SO_REUSEADDR, optlen=2) == b"\0\0"   # truncated
    assert env.getsockopt(s, SOL_SOCKET, SO_LINGER, optlen=4) == b"\0" * 4
    assert env.getsockopt(s, SOL_SOCKET, SO_REUSEADDR, optlen=-1) == -E.EINVAL
    assert env.getsockopt(s, SOL_TCP, TCP_NODELAY, optlen=2) == b"\0\0"
    assert env.getsockopt(s, SOL_TCP, TCP_NODELAY, optlen=-1) == -E.EINVAL
    assert env.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, 1) == 0
    assert env.call("getsockopt", s, SOL_SOCKET, SO_REUSEADDR, 0x10, 0x10) == -E.EFAULT
    assert env.call("setsockopt", s, SOL_SOCKET, SO_REUSEADDR, 0x10, 4) == -E.EFAULT


def test_unknown_options(env):
    s, s6 = env.socket(), env.socket(AF_INET6)
    assert env.getsockopt(s, SOL_SOCKET, 9999) == -E.ENOPROTOOPT
    assert env.getsockopt(s, SOL_TCP, 9999) == -E.ENOPROTOOPT
    assert env.getsockopt(s, 77, 1) == -95          # probed: ip_getsockopt
    assert env.setsockopt(s, 77, 1, 1) == -E.ENOPROTOOPT
    assert env.getsockopt(s6, 77, 1) == -E.ENOPROTOOPT
    assert env.setsockopt(s, SOL_IPV6, IPV6_V6ONLY, 1) == -E.ENOPROTOOPT


def test_linger(env):
    s = env.socket()
    assert env.setsockopt(s, SOL_SOCKET, SO_LINGER, struct.pack("<i", 1)) == -E.EINVAL
    assert env.setsockopt(s, SOL_SOCKET, SO_LINGER, struct.pack("<ii", 1, 7)) == 0
    assert struct.unpack("<ii", env.getsockopt(s, SOL_SOCKET, SO_LINGER, 8)) == (1, 7)
    assert env.setsockopt(s, SOL_SOCKET, SO_LINGER, struct.pack("<ii", 0, 3)) == 0
    assert struct.unpack("<ii", env.getsockopt(s, SOL_SOCKET, SO_LINGER, 8)) == (0, 7)


def test_timeouts(env):
    """Probed on 6.18: usec 2000000 -> EDOM; 500 us reads back as 4000 us (HZ=250)."""
    s = env.socket()
    assert env.getsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, 16) == bytes(16)
    assert env.setsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, struct.pack("<qq", 1, 2000000)) \
        == -E.EDOM
    assert env.setsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, struct.pack("<q", 1)) == -E.EINVAL
    assert env.setsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, struct.pack("<qq", 1, 500)) == 0
    assert struct.unpack("<qq", env.getsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, 16)) == (1, 4000)
    assert env.getsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, 8) == struct.pack("<q", 1)
    env.bind(s, "127.0.0.1", 0)
    env.listen(s)
    assert env.accept(s)[0] == BLOCK
    assert env.last_block.deadline == pytest.approx(env.clock.now() + 1.004)
    assert env.last_block.on_timeout == E.EAGAIN
    assert env.setsockopt(s, SOL_SOCKET, SO_RCVTIMEO_OLD, struct.pack("<qq", -1, 0)) == 0
    assert env.accept(s)[0] == -E.EAGAIN                      # negative: no wait at all
    c = env.socket()
    env.setsockopt(c, SOL_SOCKET, SO_SNDTIMEO_OLD, struct.pack("<qq", 2, 0))
    env.net.link_delay = 1
    assert env.connect(c, "127.0.0.1", 4444) == BLOCK
    assert env.last_block.deadline == env.clock.now() + 2
    assert env.last_block.on_timeout == E.EINPROGRESS


def test_tcp_syncnt_and_defer_accept(env):
    """Probed on 6.18: TCP_SYNCNT 0 and 128 -> EINVAL, default reads 6;
    TCP_DEFER_ACCEPT 5 reads back as 7 (whole retransmission periods)."""
    s = env.socket()
    assert env.getint(s, SOL_TCP, TCP_SYNCNT) == 6
    assert env.setsockopt(s, SOL_TCP, TCP_SYNCNT, 0) == -E.EINVAL
    assert env.setsockopt(s, SOL_TCP, TCP_SYNCNT, 128) == -E.EINVAL
    assert env.setsockopt(s, SOL_TCP, TCP_SYNCNT, 3) == 0
    assert env.getint(s, SOL_TCP, TCP_SYNCNT) == 3
    assert env.setsockopt(s, SOL_TCP, TCP_DEFER_ACCEPT, 5) == 0
    assert env.getint(s, SOL_TCP, TCP_DEFER_ACCEPT) == 7
    assert env.setsockopt(s, SOL_TCP, TCP_DEFER_ACCEPT, -3) == 0
    assert env.getint(s, SOL_TCP, TCP_DEFER_ACCEPT) == 0


def test_keepalive_knobs(env):
    s = env.socket()
    assert [env.getint(s, SOL_TCP, o) for o in (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT)] \
        == [7200, 75, 9]
    assert env.setsockopt(s, SOL_TCP, TCP_KEEPIDLE, 0) == -E.EINVAL
    assert env.setsockopt(s, SOL_TCP, TCP_KEEPIDLE, 30) == 0
    assert env.setsockopt(s, SOL_TCP, TCP_KEEPCNT, 128) == -E.EINVAL
    assert env.getint(s, SOL_TCP, TCP_KEEPIDLE) == 30
    assert env.getsockopt(s, SOL_IP, IP_TTL, 1) == bytes([64])


def test_tcp_info(env):
    lfd, port = env.server(backlog=9)
    info = env.getsockopt(lfd, SOL_TCP, TCP_INFO, 1000)
    assert len(info) == TCP_INFO_SIZE and info[0] == TcpState.TCP_LISTEN
    assert struct.unpack_from("<II", info, 8 + 4 * 4) == (0, 9)   # unacked/sacked: queue
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    assert env.getsockopt(c, SOL_TCP, TCP_INFO, 1) == bytes([TcpState.TCP_ESTABLISHED])
    assert env.getsockopt(lfd, SOL_TCP, TCP_INFO, 1000)[8 + 16] == 1


def test_so_error_once(env):
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    env.connect(c, "127.0.0.1", 9)
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == E.ECONNREFUSED
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == 0
