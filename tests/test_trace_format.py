"""strace line formats, written by hand from strace's output.

The expected strings were checked against the strace 6.1 on the build machine, running
a small Python probe under `strace -f -T -yy -e trace=%net,openat`; quoted from it:

    bind(4, {sa_family=AF_INET, sin_port=htons(43683), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EADDRINUSE (Address already in use)
    socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 5
    connect(5, {sa_family=AF_INET6, sin6_port=htons(1), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ECONNREFUSED (Connection refused)
    [pid  8089] accept4(3<TCP:[127.0.0.1:39015]>,  <unfinished ...>
    [pid  8130] connect(6<TCP:[15745]>, {sa_family=AF_INET, sin_port=htons(39015), sin_addr=inet_addr("127.0.0.1")}, 16 <unfinished ...>
    [pid  8089] <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(58542), sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 5<TCP:[127.0.0.1:39015->127.0.0.1:58542]> <0.203320>
    [pid  8130] <... connect resumed>)      = 0 <0.000542>
    getsockname(5, {sa_family=AF_INET, sin_port=htons(43683), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0
    getsockopt(5, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
    setsockopt(5, SOL_TCP, TCP_NODELAY, [1], 4) = 0
    <... recvmsg resumed>{msg_name=0x7fff05300ff0, msg_namelen=16 => 0, msg_iov=[{iov_base="hello\n\0\1\"\\AAAAAAAAAAAAAAAAAAAAAA"..., iov_len=100}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 50
    sendto(6, "hello\n\0\1\"\\AAAAAAAAAAAAAAAAAAAAAA"..., 50, 0, NULL, 0 <unfinished ...>
    shutdown(6, SHUT_WR)              = 0
    bind(6, {sa_family=AF_UNIX, sun_path=@"abstract"}, 11) = 0
    sendmsg(7, {msg_name={sa_family=AF_UNIX, sun_path=@"abstract"}, msg_namelen=11, msg_iov=[{iov_base="hi", iov_len=2}, {iov_base="there", iov_len=5}], msg_iovlen=2, msg_controllen=0, msg_flags=0}, 0) = 7
    openat(AT_FDCWD</tmp/h5>, "/proc/sys/net/core/somaxconn", O_RDONLY|O_CLOEXEC) = 8</proc/sys/net/core/somaxconn> <0.000018>
    getpeername(3, 0x7fff05300d00, [16]) = -1 ENOTCONN (Transport endpoint is not connected)
    getsockname(7, {sa_family=AF_UNIX}, [110 => 2]) = 0
    connect(3, {sa_family=0x2f /* AF_??? */, sa_data="abc\0\377\0\0\0"}, 10) = -1 EINVAL (Invalid argument)
    connect(3, {sa_family=AF_INET, sa_data="\0P\1\2\3\4"}, 8) = -1 EINVAL (Invalid argument)
    socket(AF_INET, SOCK_CLOEXEC|0xf, IPPROTO_IP) = -1 EINVAL (Invalid argument)
    getsockopt(3, 0x4d /* SOL_?? */, 1, 0x7ffe867e2ae0, [4]) = -1 EOPNOTSUPP (Operation not supported)
    accept4(3, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK|0x4) = -1 EINVAL (Invalid argument)
    write(3, "\0001\10\177\200\377\t\v\f\r\33", 11) = 11

Note strace pads the pid to five columns (`[pid %5u]`), puts the result at column 40,
and leaves two spaces before `<unfinished ...>` when the entry part ends in ", ".
"""
from __future__ import annotations

import io
import struct

import pytest

from sysemu.kernel.usermem import BufferMemory
from sysemu.trace.strace import Tracer

AF_INET, AF_INET6, AF_UNIX = 2, 10, 1
SOCK_STREAM, SOCK_DGRAM, SOCK_CLOEXEC, SOCK_NONBLOCK = 1, 2, 0o2000000, 0o4000
EADDRINUSE, ECONNREFUSED, ENOTCONN, EAGAIN, EINVAL, ENOENT = 98, 111, 107, 11, 22, 2


def sin(ip: str, port: int) -> bytes:
    return struct.pack("<H", AF_INET) + struct.pack(">H", port) + bytes(
        int(x) for x in ip.split(".")) + bytes(8)


def sin6(addr16: bytes, port: int, flow: int = 0, scope: int = 0) -> bytes:
    return struct.pack("<H", AF_INET6) + struct.pack(">HI", port, flow) + addr16 + struct.pack(
        "<I", scope)


def sun(path: bytes) -> bytes:
    return struct.pack("<H", AF_UNIX) + path


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def env():
    out = io.StringIO()
    mem = BufferMemory()
    clock = Clock()
    tracer = Tracer(out, show_pid=False)
    return out, mem, tracer, clock


def pad(head: str) -> str:
    """strace's result column: `=` at column 40, at least one space before it."""
    return head + " " * max(1, 40 - len(head))


def one(name, args, mem, result, *, exit_mem=None, injected=False, **kw) -> str:
    out = io.StringIO()
    Tracer(out, show_pid=kw.pop("show_pid", False), **kw).record(
        1234, name, args, mem, result, injected=injected, exit_mem=exit_mem)
    return out.getvalue()


def test_bind_inet_success_and_eaddrinuse():
    mem = BufferMemory()
    a = mem.alloc(sin("0.0.0.0", 8000))
    assert one("bind", (3, a, 16), mem, 0) == (
        'bind(3, {sa_family=AF_INET, sin_port=htons(8000), sin_addr=inet_addr("0.0.0.0")}, 16)'
        ' = 0\n')
    b = mem.alloc(sin("127.0.0.1", 43683))
    assert one("bind", (4, b, 16), mem, -EADDRINUSE) == (
        'bind(4, {sa_family=AF_INET, sin_port=htons(43683), sin_addr=inet_addr("127.0.0.1")}, 16)'
        ' = -1 EADDRINUSE (Address already in use)\n')


def test_pid_prefix_and_time():
    mem = BufferMemory()
    a = mem.alloc(sin("0.0.0.0", 8000))
    clock = Clock()
    out = io.StringIO()
    t = Tracer(out, with_time=True, show_pid=True, clock=clock)
    t.enter(1234, "bind", (3, a, 16, 0, 0, 0), mem)
    clock.t += 0.000021
    t.exit(1234, 0, mem)
    assert out.getvalue() == (
        '[pid  1234] bind(3, {sa_family=AF_INET, sin_port=htons(8000), '
        'sin_addr=inet_addr("0.0.0.0")}, 16) = 0 <0.000021>\n')


def test_with_time_needs_a_clock():
    with pytest.raises(ValueError):
        Tracer(io.StringIO(), with_time=True)


def test_connect_inet6_refused():
    mem = BufferMemory()
    a = mem.alloc(sin6(bytes(15) + b"\1", 80))
    assert one("connect", (4, a, 28), mem, -ECONNREFUSED) == (
        'connect(4, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) '
        '= -1 ECONNREFUSED (Connection refused)\n')


def test_inet6_short_forms_and_mapped():
    mem = BufferMemory()
    # real strace: sin6 of 24 bytes has no sin6_scope_id; v4-mapped in dotted quad
    a = mem.alloc(sin6(bytes.fromhex("fe800000000000000000000000000001"), 80, 1))
    assert one("connect", (3, a, 24), mem, -97) == (
        'connect(3, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(1), '
        'inet_pton(AF_INET6, "fe80::1", &sin6_addr)}, 24) '
        '= -1 EAFNOSUPPORT (Address family not supported by protocol)\n')
    b = mem.alloc(sin6(bytes.fromhex("00000000000000000000ffff7f000001"), 80))
    assert 'inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr)' in one(
        "connect", (3, b, 28), mem, 0)
    c = mem.alloc(sin6(bytes.fromhex("20010db8000000000001000000000001"), 80))
    assert '"2001:db8::1:0:0:1"' in one("connect", (3, c, 28), mem, 0)


def test_accept4_unfinished_and_resumed_with_other_line_between():
    mem = BufferMemory()
    addr = mem.map(128)
    alen = mem.alloc(struct.pack("<i", 16))
    dst = mem.alloc(sin("127.0.0.1", 39015))
    out = io.StringIO()
    t = Tracer(out)
    t.enter(8089, "accept4", (3, addr, alen, SOCK_CLOEXEC), mem)
    t.enter(8130, "connect", (6, dst, 16), mem)
    # the kernel fills accept's address before the result arrives
    mem.write(addr, sin("127.0.0.1", 58542))
    t.exit(8089, 5, mem)
    t.exit(8130, 0, mem)
    assert out.getvalue().splitlines() == [
        "[pid  8089] accept4(3,  <unfinished ...>",
        '[pid  8130] connect(6, {sa_family=AF_INET, sin_port=htons(39015), '
        'sin_addr=inet_addr("127.0.0.1")}, 16 <unfinished ...>',
        '[pid  8089] <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(58542), '
        'sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 5',
        "[pid  8130] <... connect resumed>)      = 0",
    ]


def test_accept4_flags_and_null_address_printed_on_entry():
    mem = BufferMemory()
    assert one("accept4", (3, 0, 0, SOCK_CLOEXEC | SOCK_NONBLOCK | 4), mem, -EINVAL) == (
        "accept4(3, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK|0x4) = -1 EINVAL (Invalid argument)\n")
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    t.enter(1, "accept4", (3, 0, 0, SOCK_CLOEXEC), mem)
    t.message(2, "+++ exited with 0 +++")
    t.exit(1, 5, mem)
    assert out.getvalue().splitlines() == [
        "accept4(3, NULL, NULL, SOCK_CLOEXEC <unfinished ...>",
        "+++ exited with 0 +++",
        "<... accept4 resumed>)                  = 5",
    ]


def test_accept4_format_of_the_brief():
    mem = BufferMemory()
    addr = mem.map(128)
    alen = mem.alloc(struct.pack("<i", 16))
    out = io.StringIO()
    t = Tracer(out)
    t.enter(1234, "accept4", (3, addr, alen, SOCK_CLOEXEC | SOCK_NONBLOCK), mem)
    mem.write(addr, sin("127.0.0.1", 40000))
    t.exit(1234, 5, mem)
    assert out.getvalue() == (
        '[pid  1234] accept4(3, {sa_family=AF_INET, sin_port=htons(40000), '
        'sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 5\n')


def test_socket_listen_setsockopt_getsockopt_shutdown_openat():
    mem = BufferMemory()
    assert one("socket", (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), mem, 3) == (
        "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3\n")
    assert one("socket", (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), mem, 6) == (
        "socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0) = 6\n")
    assert one("socket", (AF_INET, 15 | SOCK_CLOEXEC, 0), mem, -EINVAL) == (
        "socket(AF_INET, SOCK_CLOEXEC|0xf, IPPROTO_IP) = -1 EINVAL (Invalid argument)\n")
    assert one("socket", (47, 1 | SOCK_CLOEXEC, 0), mem, -97).startswith(
        "socket(0x2f /* AF_??? */, SOCK_STREAM|SOCK_CLOEXEC, 0) = -1 EAFNOSUPPORT")
    assert one("socket", (AF_INET, 1, 200), mem, -93).startswith(
        "socket(AF_INET, SOCK_STREAM, 0xc8 /* IPPROTO_??? */) = -1 EPROTONOSUPPORT "
        "(Protocol not supported)")
    assert one("listen", (3, 511), mem, 0) == pad("listen(3, 511)") + "= 0\n"
    one_ = mem.alloc(struct.pack("<i", 1))
    assert one("setsockopt", (3, 1, 2, one_, 4), mem, 0) == (
        "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n")
    val, vlen = mem.alloc(struct.pack("<i", 7)), mem.alloc(struct.pack("<i", 4))
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    t.enter(1, "getsockopt", (3, 1, 4, val, vlen), mem)
    mem.write(val, struct.pack("<i", 0))
    t.exit(1, 0, mem)
    assert out.getvalue() == "getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0\n"
    assert one("getsockopt", (3, 77, 1, val, vlen), mem, -95) == (
        f"getsockopt(3, 0x4d /* SOL_?? */, 1, {val:#x}, [4]) "
        "= -1 EOPNOTSUPP (Operation not supported)\n")
    assert one("setsockopt", (3, 1, 99, one_, 4), mem, -92) == (
        "setsockopt(3, SOL_SOCKET, 0x63 /* SO_??? */, [1], 4) "
        "= -1 ENOPROTOOPT (Protocol not available)\n")
    linger = mem.alloc(struct.pack("<ii", 1, 5))
    assert one("setsockopt", (3, 1, 13, linger, 8), mem, 0) == (
        "setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=5}, 8) = 0\n")
    assert one("setsockopt", (5, 6, 1, one_, 4), mem, 0) == (
        "setsockopt(5, SOL_TCP, TCP_NODELAY, [1], 4) = 0\n")
    assert one("setsockopt", (5, 41, 26, one_, 4), mem, 0) == (
        "setsockopt(5, SOL_IPV6, IPV6_V6ONLY, [1], 4) = 0\n")
    assert one("shutdown", (3, 1), mem, 0) == pad("shutdown(3, SHUT_WR)") + "= 0\n"
    assert one("shutdown", (3, 7), mem, -EINVAL) == (
        "shutdown(3, 0x7 /* SHUT_??? */)         = -1 EINVAL (Invalid argument)\n")
    path = mem.alloc(b"/proc/sys/net/core/somaxconn\0")
    assert one("openat", (-100 & 0xFFFFFFFFFFFFFFFF, path, 0o2000000), mem, 3) == (
        'openat(AT_FDCWD, "/proc/sys/net/core/somaxconn", O_RDONLY|O_CLOEXEC) = 3\n')


def test_open_flags_as_strace_6_1_prints_them():
    mem = BufferMemory()
    path = mem.alloc(b"/nonexistent/x\0")

    def flags(f):
        text = one("openat", (-100, path, f, 0o644), mem, -ENOENT)
        return text.split('"/nonexistent/x", ')[1].split(") ")[0]
    assert flags(0o100 | 0o200 | 0o400 | 0o1000 | 0o2000 | 0o4000) == (
        "O_RDONLY|O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK, 0644")
    assert flags(0o4010000 | 0o20000 | 0o40000 | 0o200000 | 0o400000 | 0o1000000 | 0o2000000) \
        == "O_RDONLY|O_SYNC|O_DIRECT|O_NOFOLLOW|O_NOATIME|O_CLOEXEC|O_DIRECTORY|FASYNC"
    assert flags(0o10000 | 0o10000000) == "O_RDONLY|O_DSYNC|O_PATH"
    assert flags(2 | 0o20200000) == "O_RDWR|O_TMPFILE, 0644"
    assert flags(3) == "O_ACCMODE"
    assert flags(1 | 0o40000000) == "O_WRONLY|0x800000"
    assert flags(0o100000) == "O_RDONLY|O_LARGEFILE"


def test_getsockname_length_change_and_getpeername_error():
    mem = BufferMemory()
    addr = mem.map(128)
    alen = mem.alloc(struct.pack("<i", 128))
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    t.enter(1, "getsockname", (5, addr, alen), mem)
    mem.write(addr, sin("127.0.0.1", 43683))
    mem.write(alen, struct.pack("<i", 16))
    t.exit(1, 0, mem)
    t.record(1, "getpeername", (3, addr, alen), mem, -ENOTCONN)
    mem.write(alen, struct.pack("<i", 110))
    t.enter(1, "getsockname", (7, addr, alen), mem)
    mem.write(addr, sun(b""))
    mem.write(alen, struct.pack("<i", 2))
    t.exit(1, 0, mem)
    assert out.getvalue().splitlines() == [
        'getsockname(5, {sa_family=AF_INET, sin_port=htons(43683), '
        'sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0',
        pad(f"getpeername(3, {addr:#x}, [16])") + "= -1 ENOTCONN (Transport endpoint is not connected)",
        "getsockname(7, {sa_family=AF_UNIX}, [110 => 2]) = 0",
    ]


def test_sockaddr_unix_abstract_raw_and_unknown_family():
    mem = BufferMemory()
    a = mem.alloc(sun(b"\0abstract"))
    assert one("bind", (6, a, 11), mem, 0) == (
        'bind(6, {sa_family=AF_UNIX, sun_path=@"abstract"}, 11) = 0\n')
    p = mem.alloc(sun(b"/tmp/x\0yz"))
    assert one("connect", (3, p, 11), mem, -EINVAL).startswith(
        'connect(3, {sa_family=AF_UNIX, sun_path="/tmp/x"}, 11) = -1 EINVAL')
    assert one("connect", (3, p, 3), mem, -EINVAL).startswith(
        'connect(3, {sa_family=AF_UNIX, sun_path="/"}, 3) = -1')
    u = mem.alloc(bytes([47, 0]) + b"abc\0\xff" + bytes(10))
    assert one("connect", (3, u, 10), mem, -EINVAL) == (
        'connect(3, {sa_family=0x2f /* AF_??? */, sa_data="abc\\0\\377\\0\\0\\0"}, 10) '
        '= -1 EINVAL (Invalid argument)\n')
    s = mem.alloc(bytes([2, 0, 0, 80, 1, 2, 3, 4]) + bytes(120))
    assert one("connect", (3, s, 8), mem, -EINVAL).startswith(
        'connect(3, {sa_family=AF_INET, sa_data="\\0P\\1\\2\\3\\4"}, 8) = -1')
    assert 'sin_addr=inet_addr("1.2.3.4")}, 200)' in one("connect", (3, s, 200), mem, -EINVAL)
    z = mem.alloc(bytes([0, 0]) + b"\x01\x02\x03" + bytes(11))
    assert one("connect", (3, z, 16), mem, 0).startswith(
        'connect(3, {sa_family=AF_UNSPEC, sa_data="\\1\\2\\3\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0"}, 16)')
    nl = mem.alloc(bytes([16, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]))
    assert one("bind", (3, nl, 12), mem, 0).startswith(
        "bind(3, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=0x000001}, 12) = 0")
    # short, NULL and faulting addresses print as pointers
    assert one("connect", (3, s, 1), mem, -EINVAL).startswith(f"connect(3, {s:#x}, 1)")
    assert one("connect", (3, 0, 0), mem, -EINVAL).startswith("connect(3, NULL, 0)")
    assert one("connect", (3, 8, 16), mem, -14).startswith(
        "connect(3, 0x8, 16)                     = -1 EFAULT (Bad address)")


def test_strings_escaping_and_truncation():
    mem = BufferMemory()
    b = mem.alloc(b"\x00\x31\x08\x7f\x80\xff\t\v\f\r\x1b")
    assert one("write", (3, b, 11), mem, 11) == (
        'write(3, "\\0001\\10\\177\\200\\377\\t\\v\\f\\r\\33", 11) = 11\n')
    data = b"hello\n\x00\x01\"\\" + b"A" * 40
    s = mem.alloc(data)
    assert one("sendto", (6, s, 50, 0, 0, 0), mem, 50) == (
        'sendto(6, "hello\\n\\0\\1\\"\\\\AAAAAAAAAAAAAAAAAAAAAA"..., 50, 0, NULL, 0) = 50\n')
    d = mem.alloc(sin("127.0.0.1", 9))
    assert one("sendto", (3, s, 0, 0x40 | 0x4000 | 0x8000 | 0x40000000, d, 16), mem, 0) == (
        'sendto(3, "", 0, MSG_DONTWAIT|MSG_NOSIGNAL|MSG_MORE|MSG_CMSG_CLOEXEC, '
        '{sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n')


def test_read_buffer_shown_at_exit_and_address_on_error():
    mem = BufferMemory()
    buf = mem.map(64)
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    t.enter(1, "read", (8, buf, 8192), mem)
    mem.write(buf, b"4096\n")
    t.exit(1, 5, mem)
    t.record(1, "read", (8, buf, 8187), mem, -EAGAIN)
    assert out.getvalue().splitlines() == [
        pad('read(8, "4096\\n", 8192)') + "= 5",
        pad(f"read(8, {buf:#x}, 8187)") + "= -1 EAGAIN (Resource temporarily unavailable)",
    ]


def test_recvfrom_error_shows_addresses():
    mem = BufferMemory()
    buf, frm, flen = mem.map(16), mem.map(128), mem.alloc(struct.pack("<i", 16))
    assert one("recvfrom", (3, buf, 10, 0x2 | 0x20, frm, flen), mem, -EAGAIN) == (
        f"recvfrom(3, {buf:#x}, 10, MSG_PEEK|MSG_TRUNC, {frm:#x}, [16]) "
        "= -1 EAGAIN (Resource temporarily unavailable)\n")


def _msghdr(mem, name, namelen, iovs):
    iov = mem.alloc(b"".join(struct.pack("<QQ", a, n) for a, n in iovs))
    return mem.alloc(struct.pack("<QI4xQQQQi4x", name, namelen, iov, len(iovs), 0, 0, 0))


def test_sendmsg_and_recvmsg():
    mem = BufferMemory()
    name = mem.alloc(sun(b"\0abstract"))
    hi, there = mem.alloc(b"hi"), mem.alloc(b"there")
    msg = _msghdr(mem, name, 11, [(hi, 2), (there, 5)])
    assert one("sendmsg", (7, msg, 0), mem, 7) == (
        'sendmsg(7, {msg_name={sa_family=AF_UNIX, sun_path=@"abstract"}, msg_namelen=11, '
        'msg_iov=[{iov_base="hi", iov_len=2}, {iov_base="there", iov_len=5}], msg_iovlen=2, '
        'msg_controllen=0, msg_flags=0}, 0) = 7\n')
    rname, rbuf = mem.map(16), mem.map(100)
    rmsg = _msghdr(mem, rname, 16, [(rbuf, 100)])
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    t.enter(8008, "recvmsg", (5, rmsg, 0), mem)
    data = b"hello\n\x00\x01\"\\" + b"A" * 40
    mem.write(rbuf, data)
    mem.write(rmsg + 8, struct.pack("<I", 0))          # stream socket: msg_namelen = 0
    t.exit(8008, 50, mem)
    assert out.getvalue() == (
        f'recvmsg(5, {{msg_name={rname:#x}, msg_namelen=16 => 0, msg_iov=[{{iov_base='
        '"hello\\n\\0\\1\\"\\\\AAAAAAAAAAAAAAAAAAAAAA"..., iov_len=100}], msg_iovlen=1, '
        'msg_controllen=0, msg_flags=0}, 0) = 50\n')


def test_socketpair_output_fds():
    mem = BufferMemory()
    sv = mem.map(8)
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    t.enter(1, "socketpair", (AF_UNIX, SOCK_STREAM, 0, sv), mem)
    mem.write(sv, struct.pack("<ii", 3, 4))
    t.exit(1, 0, mem)
    assert out.getvalue() == "socketpair(AF_UNIX, SOCK_STREAM, 0, [3, 4]) = 0\n"
    assert one("socketpair", (AF_UNIX, SOCK_STREAM, 0, 0), mem, -14) == (
        "socketpair(AF_UNIX, SOCK_STREAM, 0, NULL) = -1 EFAULT (Bad address)\n")


def test_injected_unknown_and_restart_results():
    mem = BufferMemory()
    assert one("listen", (3, 5), mem, -EADDRINUSE, injected=True) == (
        "listen(3, 5)                            = -1 EADDRINUSE (Address already in use) "
        "(INJECTED)\n")
    assert one("close", (3,), mem, 42, injected=True) == (
        "close(3)                                = 42 (INJECTED)\n")
    assert one("close", (3,), mem, None) == "close(3)                                = ?\n"
    assert one("close", (3,), mem, -512) == (
        "close(3)                                = ? ERESTARTSYS "
        "(To be restarted if SA_RESTART is set)\n")


def test_fd_decoration_yy():
    mem = BufferMemory()
    names = {3: "TCP:[127.0.0.1:39015]", 5: "TCP:[127.0.0.1:39015->127.0.0.1:58542]",
             -100: "/tmp/h5", 8: "/proc/sys/net/core/somaxconn"}
    addr, alen = mem.map(128), mem.alloc(struct.pack("<i", 16))
    out = io.StringIO()
    t = Tracer(out, decorate_fd=lambda pid, fd: names.get(fd))
    t.enter(8089, "accept4", (3, addr, alen, SOCK_CLOEXEC), mem)
    mem.write(addr, sin("127.0.0.1", 58542))
    t.exit(8089, 5, mem)
    path = mem.alloc(b"/proc/sys/net/core/somaxconn\0")
    t.record(8089, "openat", (-100, path, 0o2000000), mem, 8)
    t.record(8089, "close", (9,), mem, 0)
    assert out.getvalue().splitlines() == [
        '[pid  8089] accept4(3<TCP:[127.0.0.1:39015]>, {sa_family=AF_INET, '
        'sin_port=htons(58542), sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) '
        '= 5<TCP:[127.0.0.1:39015->127.0.0.1:58542]>',
        '[pid  8089] openat(AT_FDCWD</tmp/h5>, "/proc/sys/net/core/somaxconn", '
        'O_RDONLY|O_CLOEXEC) = 8</proc/sys/net/core/somaxconn>',
        "[pid  8089] close(9)                    = 0",
    ]


def test_trace_filter_and_generic_calls():
    mem = BufferMemory()
    out = io.StringIO()
    t = Tracer(out, show_pid=False, trace={"bind"})
    assert t.enter(1, "close", (3,), mem) is None
    t.exit(1, 0, mem)                       # not traced: nothing
    assert out.getvalue() == ""
    out2 = io.StringIO()
    Tracer(out2, show_pid=False).record(1, "mmap", (0, 4096, 3, 0x22, -1, 0), mem,
                                        0x7F0000001000)
    assert out2.getvalue() == (
        "mmap(0, 0x1000, 0x3, 0x22, 0xffffffffffffffff, 0) = 0x7f0000001000\n")


def test_exit_of_a_tracee_with_an_unfinished_call_and_same_pid_interleaving():
    mem = BufferMemory()
    addr, alen = mem.map(128), mem.alloc(struct.pack("<i", 16))
    out = io.StringIO()
    t = Tracer(out)
    t.enter(5, "accept4", (3, addr, alen, 0), mem)
    t.enter(6, "close", (4,), mem)
    t.exit(6, 0, mem)
    t.exited(5, 0)
    assert out.getvalue().splitlines() == [
        "[pid     5] accept4(3,  <unfinished ...>",
        "[pid     6] close(4)                    = 0",
        f"[pid     5] <... accept4 resumed>{addr:#x}, [16], 0) = ?",
        "[pid     5] +++ exited with 0 +++",
    ]


def test_a_broken_fd_describer_does_not_break_the_trace():
    def boom(pid, fd):
        raise RuntimeError("gone")
    out = io.StringIO()
    t = Tracer(out, show_pid=False, decorate_fd=boom)
    mem = BufferMemory()
    path = mem.alloc(b"/x\0")
    t.record(1, "openat", (-100, path, 0), mem, 3)
    assert out.getvalue() == pad('openat(AT_FDCWD, "/x", O_RDONLY)') + "= 3\n"


def test_msghdr_with_scm_rights_and_truncated_iov_list():
    # real strace 6.1:
    # sendmsg(5, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="a", iov_len=1}], msg_iovlen=1, msg_control=[{cmsg_len=24, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[0, 1]}], msg_controllen=24, msg_flags=0}, 0) = 1
    mem = BufferMemory()
    a = mem.alloc(b"a")
    iov = mem.alloc(struct.pack("<QQ", a, 1))
    ctl = mem.alloc(struct.pack("<Qii", 24, 1, 1) + struct.pack("<ii", 0, 1))
    msg = mem.alloc(struct.pack("<QI4xQQQQi4x", 0, 0, iov, 1, ctl, 24, 0))
    assert one("sendmsg", (5, msg, 0), mem, 1) == (
        'sendmsg(5, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="a", iov_len=1}], '
        'msg_iovlen=1, msg_control=[{cmsg_len=24, cmsg_level=SOL_SOCKET, '
        'cmsg_type=SCM_RIGHTS, cmsg_data=[0, 1]}], msg_controllen=24, msg_flags=0}, 0) = 1\n')
    # 40 iovecs: strace shows 32 and "..."
    bufs = [mem.alloc(b"%d" % i) for i in range(40)]
    iov40 = mem.alloc(b"".join(struct.pack("<QQ", b, len(b"%d" % i)) for i, b in enumerate(bufs)))
    msg40 = mem.alloc(struct.pack("<QI4xQQQQi4x", 0, 0, iov40, 40, 0, 0, 0))
    text = one("sendmsg", (5, msg40, 0), mem, 70)
    assert '{iov_base="31", iov_len=2}, ...], msg_iovlen=40,' in text
    assert '"32"' not in text
