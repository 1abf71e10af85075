"""UDP in the model (net/ipv4/udp.py), driven through the syscall table on a fake clock:
bind rules, connect/disconnect, datagrams with their sources, MSG_PEEK/MSG_TRUNC,
EMSGSIZE, the receive buffer and its drops, ICMP port unreachable (ECONNREFUSED, the
error queue with IP_RECVERR), control messages, counters and /proc/net/udp."""
from __future__ import annotations

import struct

import pytest

from sysemu.abi.socket import AF_INET, AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF, \
    SO_REUSEADDR, SO_REUSEPORT
from sysemu.net.proc import render_snmp
from test_net_helpers import BLOCK, E, NR, Env, parse_sockaddr, sockaddr

NR.update({"sendto": 44, "sendmsg": 46, "recvmmsg": 299, "sendmmsg": 307, "ioctl": 16})
MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, MSG_ERRQUEUE = 0x2, 0x20, 0x40, 0x2000


class U(Env):
    def udp(self, family=AF_INET):
        return self.socket(family, SOCK_DGRAM, 0)

    def sendto(self, fd, data, host=None, port=0, flags=0, addrlen=None):
        buf = self.mem.alloc(data)
        if host is None:
            return self.call("sendto", fd, buf, len(data), flags, 0, 0)
        a = sockaddr(host, port)
        return self.call("sendto", fd, buf, len(data), flags, self.mem.alloc(a),
                         len(a) if addrlen is None else addrlen)

    def recvfrom(self, fd, size=2048, flags=MSG_DONTWAIT):
        buf = self.mem.alloc(bytes(max(size, 1)))
        name = self.mem.alloc(bytes(128))
        ln = self.mem.alloc(struct.pack("<i", 128))
        r = self.call("recvfrom", fd, buf, size, flags, name, ln)
        for action in self.task.commits:
            action()
        self.task.commits = []
        if not isinstance(r, int) or r < 0:
            return r, None, None
        n = struct.unpack("<i", self.mem.read(ln, 4))[0]
        return r, self.mem.read(buf, min(r, size)), parse_sockaddr(self.mem.read(name, n))

    def port(self, fd):
        return self.getname(fd)[1]


def test_socket_bind_sendto_recvfrom_v4():
    env = U()
    a, b = env.udp(), env.udp()
    assert env.bind(a, "127.0.0.1", 0) == 0
    pa = env.port(a)
    assert env.sendto(b, b"hello", "127.0.0.1", pa) == 5
    assert env.sendto(b, b"", "127.0.0.1", pa) == 0                 # zero-length
    pb = env.port(b)                                               # autobound
    assert pb > 0
    assert env.recvfrom(a) == (5, b"hello", ("127.0.0.1", pb))
    assert env.recvfrom(a) == (0, b"", ("127.0.0.1", pb))
    assert env.recvfrom(a)[0] == -E.EAGAIN
    mib = env.net.mib
    assert mib["Udp.InDatagrams"] == 2 and mib["Udp.OutDatagrams"] == 2


def test_peek_trunc_boundaries():
    env = U()
    a, b = env.udp(), env.udp()
    env.bind(a, "127.0.0.1", 0)
    pa = env.port(a)
    env.sendto(b, b"abcdef", "127.0.0.1", pa)
    env.sendto(b, b"xyz", "127.0.0.1", pa)
    assert env.recvfrom(a, 2, MSG_PEEK | MSG_DONTWAIT)[:2] == (2, b"ab")
    assert env.recvfrom(a, 2, MSG_TRUNC | MSG_DONTWAIT)[:2] == (6, b"ab")   # real length
    assert env.recvfrom(a, 100)[:2] == (3, b"xyz")                          # next datagram


def test_emsgsize_and_bad_inputs():
    env = U()
    a = env.udp()
    env.bind(a, "127.0.0.1", 0)
    pa = env.port(a)
    assert env.sendto(a, b"x" * 65508, "127.0.0.1", pa) == -E.EMSGSIZE
    assert env.sendto(a, b"x" * 65507, "127.0.0.1", pa) == 65507
    assert env.sendto(a, b"x", "127.0.0.1", pa, addrlen=8) == -E.EINVAL
    assert env.sendto(a, b"x", "127.0.0.1", pa, addrlen=200) == -E.EINVAL
    assert env.sendto(a, b"x", "127.0.0.1", 0) == -E.EINVAL
    assert env.sendto(a, b"x") == -E.EDESTADDRREQ
    assert env.sendto(a, b"x", "127.0.0.1", pa, flags=1) == -E.ENOTSUP
    assert env.sendto(a, b"x", "10.1.2.3", 53) == -E.ENETUNREACH
    assert env.call("sendto", a, 0, 10, 0, env.mem.alloc(sockaddr("127.0.0.1", pa)), 16) \
        == -E.EFAULT
    v6 = env.udp(AF_INET6)
    assert env.sendto(v6, b"x" * 65528, "::1", pa) == -E.EMSGSIZE


def test_bind_rules():
    env = U()
    a, b = env.udp(), env.udp()
    assert env.bind(a, "127.0.0.1", 0) == 0
    pa = env.port(a)
    assert env.bind(b, "127.0.0.1", pa) == -E.EADDRINUSE
    assert env.bind(b, "0.0.0.0", pa) == -E.EADDRINUSE
    c, d = env.udp(), env.udp()
    for fd in (c, d):
        env.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)
    assert env.bind(c, "127.0.0.1", 40000) == 0
    assert env.bind(d, "127.0.0.1", 40000) == 0         # both SO_REUSEADDR: shared
    e, f = env.udp(), env.udp()
    for fd in (e, f):
        env.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)
    assert env.bind(e, "127.0.0.1", 40001) == 0
    assert env.bind(f, "127.0.0.1", 40001) == 0
    assert env.bind(e, "127.0.0.1", 40002) == -E.EINVAL  # bound already
    g = env.udp(AF_INET6)
    assert env.bind(g, "::", pa) == -E.EADDRINUSE        # dual-stack wildcard overlaps
    h = env.udp(AF_INET6)
    env.setsockopt(h, 41, 26, 1)                         # IPV6_V6ONLY
    assert env.bind(h, "::", pa) == 0


def test_connect_filters_and_disconnect():
    env = U()
    a, b, c = env.udp(), env.udp(), env.udp()
    env.bind(a, "127.0.0.1", 0)
    env.bind(b, "127.0.0.1", 0)
    env.bind(c, "127.0.0.1", 0)
    pa, pb = env.port(a), env.port(b)
    assert env.connect(a, "127.0.0.1", pb) == 0
    assert env.getname(a, peer=True) == ("127.0.0.1", pb)
    env.sendto(c, b"from c", "127.0.0.1", pa)             # filtered: not the peer
    env.sendto(b, b"from b", "127.0.0.1", pa)
    assert env.recvfrom(a)[:2] == (6, b"from b")
    assert env.recvfrom(a)[0] == -E.EAGAIN
    assert env.sendto(a, b"hi") == 2                       # connected: no address needed
    assert env.recvfrom(b)[:2] == (2, b"hi")
    unspec = struct.pack("<H14x", 0)
    assert env.call("connect", a, env.mem.alloc(unspec), 16) == 0
    assert env.getname(a, peer=True) == -E.ENOTCONN
    # bind() chose the address (kept) but not the port (bind(0)): released, as Linux
    assert env.getname(a) == ("127.0.0.1", 0)


def test_port_unreachable_connected_and_recverr():
    env = U()
    a = env.udp()
    assert env.connect(a, "127.0.0.1", 9) == 0
    assert env.sendto(a, b"ping") == 4
    assert env.recvfrom(a)[0] == -E.ECONNREFUSED
    assert env.sendto(a, b"ping") == 4                     # the error was reported once
    assert env.sendto(a, b"ping") == -E.ECONNREFUSED
    b = env.udp()
    assert env.sendto(b, b"x", "127.0.0.1", 9) == 1        # unconnected: hears nothing
    assert env.recvfrom(b)[0] == -E.EAGAIN
    env.setsockopt(b, 0, 11, 1)                            # IP_RECVERR
    assert env.sendto(b, b"quoted", "127.0.0.1", 9) == 6
    r, data, name = env.recvfrom(b, 100, MSG_ERRQUEUE)
    assert (r, data, name) == (6, b"quoted", ("127.0.0.1", 9))
    assert env.net.mib["Udp.NoPorts"] == 4
    assert "Udp: 0 4 0 4" in render_snmp(env.net.mib)


def test_rcvbuf_drops():
    env = U()
    a, b = env.udp(), env.udp()
    env.bind(a, "127.0.0.1", 0)
    env.setsockopt(a, SOL_SOCKET, SO_RCVBUF, 1)            # the minimum, 2304
    pa = env.port(a)
    for _ in range(10):
        env.sendto(b, b"x" * 100, "127.0.0.1", pa)
    got = 0
    while env.recvfrom(a)[0] >= 0:
        got += 1
    assert 1 <= got < 10
    assert env.net.mib["Udp.RcvbufErrors"] == 10 - got
    assert env.sk(a).drops == 10 - got


def test_blocking_recv_waits():
    env = U()
    a = env.udp()
    env.bind(a, "127.0.0.1", 0)
    assert env.recvfrom(a, flags=0)[0] is BLOCK


def test_v6_and_mapped():
    env = U()
    s6 = env.udp(AF_INET6)
    assert env.bind(s6, "::", 0) == 0
    p = env.port(s6)
    c4, c6 = env.udp(), env.udp(AF_INET6)
    env.sendto(c4, b"four", "127.0.0.1", p)
    env.sendto(c6, b"six", "::1", p)
    r, data, (host, _) = env.recvfrom(s6)
    assert (data, host) == (b"four", "::ffff:127.0.0.1")
    r, data, (host, _) = env.recvfrom(s6)
    assert (data, host) == (b"six", "::1")


def test_reuseport_spreads_by_flow():
    env = U()
    socks = [env.udp() for _ in range(2)]
    for fd in socks:
        env.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)
        env.bind(fd, "127.0.0.1", 40500)
    clients = [env.udp() for _ in range(16)]
    for c in clients:
        env.sendto(c, b"x", "127.0.0.1", 40500)
    counts = [len(env.sk(fd).receive_queue) for fd in socks]
    assert sum(counts) == 16 and all(counts)


# -- decoders: any bytes give a value or SyscallError ---------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from sysemu.kernel.errors import SyscallError  # noqa: E402
from sysemu.kernel.usermem import BufferMemory  # noqa: E402
from sysemu.net.scm import UserMsghdr, copy_msghdr_from_user, put_cmsgs  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=56, max_size=56), compat=st.booleans(),
       iov=st.binary(max_size=64))
def test_msghdr_decoder_value_or_error(raw, compat, iov):
    mem = BufferMemory()
    vec = mem.alloc(iov or b"\0")
    # point msg_iov at the mapped iovec bytes half of the time
    if raw[0] & 1:
        raw = raw[:16] + vec.to_bytes(8, "little") + raw[24:] if not compat \
            else raw[:8] + (vec & 0xFFFFFFFF).to_bytes(4, "little") + raw[12:]
    addr = mem.alloc(raw)
    try:
        msg = copy_msghdr_from_user(mem, addr, compat)
    except SyscallError:
        return
    assert all(length >= 0 for _, length in msg.iov)
    assert msg.namelen >= 0


@settings(max_examples=200, deadline=None)
@given(controllen=st.integers(0, 80), sizes=st.lists(st.integers(0, 40), max_size=4),
       compat=st.booleans())
def test_put_cmsgs_never_overflows(controllen, sizes, compat):
    mem = BufferMemory()
    guard = 64
    control = mem.alloc(bytes(controllen + guard))
    msg = UserMsghdr(0, compat, 0, 0, [], control, controllen, 0)
    used, flags = put_cmsgs(mem, msg, [(0, 1, bytes([7]) * n) for n in sizes])
    assert 0 <= used <= controllen
    assert mem.read(control + controllen, guard) == bytes(guard)   # nothing past it
    header, align = (12, 4) if compat else (16, 8)
    space = [(header + n + align - 1) // align * align for n in sizes]
    fits = not sizes or sum(space[:-1]) + header + sizes[-1] <= controllen
    assert (flags == 0) == fits


def test_socketcall_reaches_the_udp_handlers():
    """i386 socketcall(SYS_SENDTO / SYS_RECVFROM) with 32-bit argument words."""
    env = U()
    i386 = env.task
    a, b = env.udp(), env.udp()
    env.bind(a, "127.0.0.1", 0)
    pa = env.port(a)
    payload = env.mem.alloc(b"via socketcall")
    dest = env.mem.alloc(sockaddr("127.0.0.1", pa))
    from sysemu.kernel.syscalls import HANDLERS
    words = struct.pack("<6I", b, payload, 14, 0, dest, 16)
    i386.abi = "i386"
    try:
        assert HANDLERS["socketcall"](i386, [11, env.mem.alloc(words)]) == 14   # SYS_SENDTO
        buf, name = env.mem.alloc(bytes(32)), env.mem.alloc(bytes(16))
        ln = env.mem.alloc(struct.pack("<i", 16))
        words = struct.pack("<6I", a, buf, 32, MSG_DONTWAIT, name, ln)
        assert HANDLERS["socketcall"](i386, [12, env.mem.alloc(words)]) == 14   # SYS_RECVFROM
    finally:
        i386.abi = "64"
    assert env.mem.read(buf, 14) == b"via socketcall"
    assert parse_sockaddr(env.mem.read(name, 16)) == ("127.0.0.1", env.port(b))


def test_recvfrom_copies_the_data_before_the_address_faults():
    """__sys_recvfrom(): sock_recvmsg() copies the data and takes the datagram, then
    move_addr_to_user() reads the length: an unreadable or negative length fails the
    call (EFAULT, EINVAL) after the data is in the buffer. sysemu reads the length first
    and copies data, address and length in one batch: the same outcome."""
    env = U()
    a, b = env.udp(), env.udp()
    env.bind(a, "127.0.0.1", 0)
    pa = env.port(a)
    for data, ln, expect in ((b"first", None, -E.EFAULT),
                             (b"second", struct.pack("<i", -1), -E.EINVAL)):
        env.sendto(b, data, "127.0.0.1", pa)
        buf = env.mem.alloc(bytes(16))
        name = env.mem.alloc(bytes(128))
        lnaddr = env.mem.alloc(ln) if ln is not None else 8      # 8: unmapped
        assert env.call("recvfrom", a, buf, 16, MSG_DONTWAIT, name, lnaddr) == expect
        assert env.mem.read(buf, len(data)) == data
        assert env.mem.read(name, 16) == bytes(16)              # no address written
        if ln is not None:
            assert env.mem.read(lnaddr, 4) == ln                # nor its length
        env.task.commits = []
    assert env.recvfrom(a)[0] == -E.EAGAIN                      # both datagrams taken
    env.sendto(b, b"third", "127.0.0.1", pa)
    ln = env.mem.alloc(struct.pack("<i", 128))
    name = env.mem.alloc(bytes(128))
    # the data's fault comes first: neither the address nor its length is written
    assert env.call("recvfrom", a, 8, 16, MSG_DONTWAIT, name, ln) == -E.EFAULT
    assert env.mem.read(ln, 4) == struct.pack("<i", 128)
    assert env.mem.read(name, 16) == bytes(16)
