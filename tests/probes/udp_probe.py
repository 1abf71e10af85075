"""Differential UDP probe: one body, run natively and under `sysemu run`.

    python3 udp_probe.py SCENARIO [SCENARIO ...]    prints {scenario: {check: result}} as JSON
    python3 udp_probe.py --list                      prints the scenario names

A result is a return value, an errno NAME, or a boolean comparing an address with the
one expected (ports differ from run to run). Every wait is bounded.

The checks follow Linux: net/ipv4/udp.c (udp_lib_get_port, udp_sendmsg, udp_recvmsg,
__udp4_lib_err), net/ipv4/datagram.c, net/ipv6/udp.c, net/socket.c, net/core/scm.c.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import sys
import termios
import time

from net_probe import c_outcome     # (tests/probes/, this script's directory)

from probekit import Probe, outcome      # (tests/probes/, this script's directory)

PROBE = Probe()
scenario = PROBE.scenario
SCENARIOS = PROBE.scenarios

LOOP = "127.0.0.1"
libc = ctypes.CDLL(None, use_errno=True)
libc.sendto.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                        ctypes.c_void_p, ctypes.c_uint32]
libc.recvfrom.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_void_p]
libc.bind.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32]
libc.connect.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32]
libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                          ctypes.c_void_p]
UNMAPPED = 0x10000          # below mmap_min_addr: never mapped
MSG_ERRQUEUE = 0x2000
MSG_WAITFORONE = 0x10000
IP_PKTINFO, IP_RECVERR, IP_RECVTTL, IP_RECVTOS = 8, 11, 12, 13
IPV6_RECVPKTINFO = 49
SO_TIMESTAMP, SO_TIMESTAMPNS = 29, 35




def udp(family=socket.AF_INET, *opts):
    s = socket.socket(family, socket.SOCK_DGRAM)
    for level, name, value in opts:
        s.setsockopt(level, name, value)
    return s


def bound(family=socket.AF_INET, host=None, *opts):
    s = udp(family, *opts)
    s.bind((host or (LOOP if family == socket.AF_INET else "::1"), 0))
    return s


def readable(s, timeout=0.0):
    p = select.poll()
    p.register(s, select.POLLIN)
    got = p.poll(int(timeout * 1000))
    return got[0][1] if got else 0


def inq(s, cmd=termios.FIONREAD):
    return struct.unpack("i", fcntl.ioctl(s, cmd, b"\0" * 4))[0]


def recv_all(s):
    out = []
    while True:
        try:
            out.append(s.recv(70000, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return out


def snmp_udp() -> dict:
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def sockaddr_in(host, port, family=socket.AF_INET):
    return struct.pack("<H", family) + struct.pack(">H", port) + socket.inet_aton(host) + bytes(8)


# -- scenarios ---------------------------------------------------------------------------

@scenario
def datagrams_v4():
    a, b = bound(), udp()
    addr = a.getsockname()
    r = {"send": b.sendto(b"hello", addr), "autobound": b.getsockname()[1] != 0,
         "readable": bool(readable(a, 2)), "inq": inq(a)}
    data, src = a.recvfrom(100)
    r["data"] = data.decode()
    r["source_is_sender"] = src == (LOOP, b.getsockname()[1])
    r["empty"] = b.sendto(b"", addr)
    r["readable_empty"] = bool(readable(a, 2))
    r["inq_empty"] = inq(a)
    r["recv_empty"] = a.recvfrom(100)[0].decode()
    r["not_readable"] = readable(a)
    for payload in (b"first-datagram", b"second"):
        b.sendto(payload, addr)
    readable(a, 2)
    r["peek"] = a.recv(5, socket.MSG_PEEK).decode()
    r["trunc_len"] = len(a.recv(5, socket.MSG_TRUNC))
    r["trunc_flagged"] = a.recv_into(bytearray(2), 0, socket.MSG_TRUNC)
    r["after"] = outcome(a.recv, 100, socket.MSG_DONTWAIT)
    r["siocoutq"] = inq(a, termios.TIOCOUTQ)
    r["oob_recv"] = outcome(a.recv, 10, socket.MSG_OOB | socket.MSG_DONTWAIT)
    a.close()
    b.close()
    return r


@scenario
def datagrams_v6_and_mapped():
    s6 = udp(socket.AF_INET6, (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0))
    s6.bind(("::", 0))
    port = s6.getsockname()[1]
    c4, c6 = udp(), udp(socket.AF_INET6)
    c4.sendto(b"four", (LOOP, port))
    c6.sendto(b"six", ("::1", port))
    readable(s6, 2)
    r = {}
    data, src = s6.recvfrom(100)
    r["v4_data"], r["v4_src"] = data.decode(), src[0]
    r["v4_src_port"] = src[1] == c4.getsockname()[1]
    data, src = s6.recvfrom(100)
    r["v6_data"], r["v6_src"] = data.decode(), src[0]
    r["mapped_dest"] = c6.sendto(b"m", ("::ffff:127.0.0.1", port))
    r["mapped_recv"] = s6.recv(10).decode()
    only = udp(socket.AF_INET6, (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1))
    r["v6only_mapped_send"] = outcome(only.sendto, b"x", ("::ffff:127.0.0.1", port))
    r["v6only_bind_mapped"] = outcome(only.bind, ("::ffff:127.0.0.1", 0))
    r["big6"] = outcome(c6.sendto, b"x" * 65528, ("::1", port))
    r["max6"] = outcome(c6.sendto, b"x" * 65527, ("::1", port))
    r["max6_len"] = len(s6.recv(70000)) if readable(s6, 2) else None
    r["v6_port_zero"] = outcome(c6.sendto, b"x", ("::1", 0))
    for s in (s6, c4, c6, only):
        s.close()
    return r


@scenario
def bind_rules():
    r = {}
    a = bound()
    port = a.getsockname()[1]
    b = udp()
    r["same"] = outcome(b.bind, (LOOP, port))
    r["wildcard_over_specific"] = outcome(b.bind, ("0.0.0.0", port))
    c = udp(socket.AF_INET6, (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0))
    r["dual_wildcard"] = outcome(c.bind, ("::", port))
    d = udp(socket.AF_INET6, (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1))
    r["v6only_wildcard"] = outcome(d.bind, ("::", port))
    r["rebind"] = outcome(a.bind, (LOOP, 0))
    ra = [udp(socket.AF_INET, (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)) for _ in range(2)]
    ra[0].bind((LOOP, 0))
    rport = ra[0].getsockname()[1]
    r["reuseaddr_both"] = outcome(ra[1].bind, (LOOP, rport))
    one = udp()
    r["reuseaddr_one_side"] = outcome(one.bind, (LOOP, rport))
    rp = [udp(socket.AF_INET, (socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)) for _ in range(2)]
    rp[0].bind((LOOP, 0))
    pport = rp[0].getsockname()[1]
    r["reuseport_both"] = outcome(rp[1].bind, (LOOP, pport))
    r["other_address"] = outcome(udp().bind, ("127.0.0.2", port))
    r["nonlocal"] = outcome(udp().bind, ("10.255.255.1", 0))
    e = udp()
    r["short_addr"] = c_outcome(libc.bind, e.fileno(), sockaddr_in(LOOP, 0), 8)
    r["wrong_family"] = c_outcome(libc.bind, e.fileno(), struct.pack("<H", 10) + bytes(26), 28)
    r["any_port_zero"] = c_outcome(libc.bind, e.fileno(), struct.pack("<H", 0) + bytes(14), 16)
    return r


@scenario
def connect_and_disconnect():
    r = {}
    a, b, c = bound(), bound(), bound()
    r["connect"] = outcome(a.connect, b.getsockname())
    r["peer"] = a.getpeername() == b.getsockname()
    c.sendto(b"not the peer", a.getsockname())
    b.sendto(b"peer", a.getsockname())
    readable(a, 2)
    time.sleep(0.05)
    r["first"] = a.recv(100).decode()
    r["then"] = outcome(a.recv, 100, socket.MSG_DONTWAIT)
    r["send_no_addr"] = a.send(b"hi")
    readable(b, 2)
    data, src = b.recvfrom(100)
    r["peer_got"], r["peer_src"] = data.decode(), src == a.getsockname()
    r["sendto_other"] = a.sendto(b"other", c.getsockname())
    readable(c, 2)
    r["other_got"] = c.recv(100).decode()
    r["connect_again"] = outcome(a.connect, c.getsockname())
    r["peer_now"] = a.getpeername() == c.getsockname()
    unspec = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unspec.connect(b.getsockname())
    r["unspec_port_before"] = unspec.getsockname()[1] != 0
    r["disconnect"] = c_outcome(libc.connect, unspec.fileno(), struct.pack("<H14x", 0), 16)
    r["peer_after"] = outcome(unspec.getpeername)
    r["name_after"] = unspec.getsockname()
    r["disconnect_bound"] = c_outcome(libc.connect, a.fileno(), struct.pack("<H14x", 0), 16)
    # bind() chose the address, not the port (bind(0)): the port goes, the address stays
    r["bound_name_after"] = a.getsockname()
    r["short_connect"] = c_outcome(libc.connect, a.fileno(), sockaddr_in(LOOP, 9), 8)
    r["wrong_family"] = c_outcome(libc.connect, a.fileno(),
                                  struct.pack("<H", 10) + bytes(26), 28)
    r["listen"] = outcome(a.listen, 1)
    r["accept"] = outcome(a.accept)
    r["shutdown_unconnected"] = outcome(udp().shutdown, socket.SHUT_RDWR)
    for s in (a, b, c, unspec):
        s.close()
    return r


@scenario
def bad_inputs():
    r = {}
    a, b = bound(), udp()
    dest = sockaddr_in(LOOP, a.getsockname()[1])
    buf = ctypes.create_string_buffer(b"payload")
    fd = b.fileno()
    r["ok"] = c_outcome(libc.sendto, fd, buf, 7, 0, dest, 16)
    r["short_addrlen"] = c_outcome(libc.sendto, fd, buf, 7, 0, dest, 8)
    r["long_addrlen"] = c_outcome(libc.sendto, fd, buf, 7, 0, dest + bytes(200), 200)
    r["addrlen_negative"] = c_outcome(libc.sendto, fd, buf, 7, 0, dest, 0xFFFFFFFF)
    r["wrong_family"] = c_outcome(libc.sendto, fd, buf, 7, 0,
                                  struct.pack("<H", 10) + bytes(26), 28)
    r["unspec_family"] = c_outcome(libc.sendto, fd, buf, 7, 0,
                                   struct.pack("<H", 0) + dest[2:], 16)
    r["port_zero"] = c_outcome(libc.sendto, fd, buf, 7, 0, sockaddr_in(LOOP, 0), 16)
    r["null_buffer"] = c_outcome(libc.sendto, fd, None, 7, 0, dest, 16)
    r["unmapped_buffer"] = c_outcome(libc.sendto, fd, UNMAPPED, 7, 0, dest, 16)
    r["unmapped_addr"] = c_outcome(libc.sendto, fd, buf, 7, 0, UNMAPPED, 16)
    r["null_zero_len"] = c_outcome(libc.sendto, fd, None, 0, 0, dest, 16)
    big = ctypes.create_string_buffer(70000)
    r["max"] = c_outcome(libc.sendto, fd, big, 65507, 0, dest, 16)
    r["oversized"] = c_outcome(libc.sendto, fd, big, 65508, 0, dest, 16)
    r["over_64k"] = c_outcome(libc.sendto, fd, big, 65536, 0, dest, 16)
    r["oob"] = c_outcome(libc.sendto, fd, buf, 7, socket.MSG_OOB, dest, 16)
    r["unknown_flags"] = c_outcome(libc.sendto, fd, buf, 7, 0x10000000, dest, 16)
    r["ebadf"] = c_outcome(libc.sendto, 999, buf, 7, 0, dest, 16)
    readable(a, 2)
    time.sleep(0.05)
    got = recv_all(a)
    r["received"] = [len(x) for x in got]
    # receiving: bad buffers lose the datagram (udp_recvmsg() drops it on a failed copy)
    a_fd = a.fileno()
    name = ctypes.create_string_buffer(128)
    nlen = ctypes.c_int(128)
    for check, args in (("recv_null_buffer", (None, 10)),
                        ("recv_unmapped_buffer", (UNMAPPED, 10))):
        b.sendto(b"lost", a.getsockname())
        readable(a, 2)
        r[check] = c_outcome(libc.recvfrom, a_fd, args[0], args[1], 0, name,
                             ctypes.byref(nlen))
        r[check + "_then"] = c_outcome(libc.recvfrom, a_fd, buf, 7, socket.MSG_DONTWAIT,
                                       name, ctypes.byref(nlen))
    b.sendto(b"addr", a.getsockname())
    readable(a, 2)
    nlen.value = -1
    r["recv_negative_addrlen"] = c_outcome(libc.recvfrom, a_fd, buf, 7, 0, name,
                                           ctypes.byref(nlen))
    b.sendto(b"addr", a.getsockname())
    readable(a, 2)
    r["recv_unmapped_addrlen"] = c_outcome(libc.recvfrom, a_fd, buf, 7, 0, name, UNMAPPED)
    b.sendto(b"short", a.getsockname())
    readable(a, 2)
    nlen.value = 4
    r["recv_short_addrlen"] = c_outcome(libc.recvfrom, a_fd, buf, 7, 0, name,
                                        ctypes.byref(nlen))
    r["short_addrlen_written"] = nlen.value
    r["short_addr_family"] = struct.unpack_from("<H", name.raw)[0]
    r["left"] = len(recv_all(a))
    a.close()
    b.close()
    return r


@scenario
def unconnected_send():
    u = udp()
    return {"send": outcome(u.send, b"x"), "write": outcome(os.write, u.fileno(), b"x")}


@scenario
def port_unreachable():
    r = {}
    closed = bound()
    port = closed.getsockname()[1]
    closed.close()
    before = snmp_udp()
    c = udp()
    c.connect((LOOP, port))
    r["send"] = c.sendto(b"ping", (LOOP, port))
    time.sleep(0.05)
    r["recv"] = outcome(c.recvfrom, 10, socket.MSG_DONTWAIT)
    r["send_after_report"] = outcome(c.sendto, b"ping", (LOOP, port))
    time.sleep(0.05)
    r["send_again"] = outcome(c.sendto, b"ping", (LOOP, port))
    r["so_error_clear"] = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    c.sendto(b"ping", (LOOP, port))
    time.sleep(0.05)
    r["so_error_pending"] = errno.errorcode[c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)]
    r["so_error_read_clears"] = outcome(c.recvfrom, 10, socket.MSG_DONTWAIT)
    u = udp()
    r["unconnected_send"] = u.sendto(b"ping", (LOOP, port))
    time.sleep(0.05)
    r["unconnected_recv"] = outcome(u.recv, 10, socket.MSG_DONTWAIT)
    r["unconnected_so_error"] = u.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    e = udp()
    e.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    r["recverr_send"] = e.sendto(b"quoted payload", (LOOP, port))
    time.sleep(0.05)
    r["recverr_so_error"] = e.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    data, anc, flags, addr = e.recvmsg(100, 256, MSG_ERRQUEUE)
    r["errqueue_data"] = data.decode()
    r["errqueue_flags"] = flags
    r["errqueue_name"] = addr == (LOOP, port)
    level, type_, blob = anc[0]
    ee_errno, origin, ee_type, code = struct.unpack_from("<IBBB", blob)
    r["errqueue_cmsg"] = [level, type_, errno.errorcode[ee_errno], origin, ee_type, code,
                          socket.inet_ntoa(blob[20:24])]
    r["errqueue_empty"] = outcome(e.recvmsg, 100, 256, MSG_ERRQUEUE)
    after = snmp_udp()
    r["noports_counted"] = after["NoPorts"] - before["NoPorts"] >= 4
    for s in (c, u, e):
        s.close()
    return r


@scenario
def refused_native_calls():
    """send()/recv() without an address on a connected socket after an ICMP error."""
    closed = bound()
    port = closed.getsockname()[1]
    closed.close()
    c = udp()
    c.connect((LOOP, port))
    r = {"send": c.send(b"ping")}
    time.sleep(0.05)
    r["recv"] = outcome(c.recv, 10, socket.MSG_DONTWAIT)
    r["send_after_report"] = outcome(c.send, b"ping")
    time.sleep(0.05)
    r["send_again"] = outcome(c.send, b"ping")
    return r


@scenario
def refused_wakes_poll():
    """A connected socket waiting in poll() for an answer from a closed port."""
    closed = bound()
    port = closed.getsockname()[1]
    closed.close()
    c = udp()
    c.connect((LOOP, port))
    c.send(b"query")
    ev = readable(c, 2)
    return {"poll": ev, "recv": outcome(c.recv, 10, socket.MSG_DONTWAIT)}


@scenario
def receive_buffer():
    a, b = bound(), udp()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    r = {"rcvbuf": a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
         "sndbuf": b.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)}
    before = snmp_udp()
    for _ in range(50):
        b.sendto(b"x" * 1000, a.getsockname())
    readable(a, 2)
    time.sleep(0.05)
    got = len(recv_all(a))
    after = snmp_udp()
    r["some_received"] = 0 < got < 50
    r["drops_counted"] = after["RcvbufErrors"] - before["RcvbufErrors"] >= 50 - got
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    r["sndbuf_min"] = b.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    r["send_with_min_sndbuf"] = b.sendto(b"y" * 10000, a.getsockname())
    a.close()
    b.close()
    return r


@scenario
def control_messages():
    r = {}
    a, b = bound(), udp()
    for opt in (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS):
        a.setsockopt(socket.IPPROTO_IP, opt, 1)
    a.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    b.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)
    b.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 33)
    b.sendto(b"cmsg", a.getsockname())
    readable(a, 2)
    data, anc, flags, src = a.recvmsg(100, 512)
    out = []
    for level, type_, blob in anc:
        if (level, type_) == (socket.SOL_SOCKET, SO_TIMESTAMP):
            sec, usec = struct.unpack("qq", blob)
            out.append([level, type_, abs(sec + usec / 1e6 - time.time()) < 10])
        elif type_ == IP_PKTINFO:
            ifindex = struct.unpack_from("i", blob)[0]
            out.append([level, type_, ifindex, socket.inet_ntoa(blob[4:8]),
                        socket.inet_ntoa(blob[8:12])])
        else:
            out.append([level, type_, blob.hex()])
    r["cmsgs"], r["flags"] = out, flags
    b.sendto(b"cmsg", a.getsockname())
    readable(a, 2)
    data, anc, flags, src = a.recvmsg(100, 20)
    r["ctrunc_flags"], r["ctrunc_count"] = flags, len(anc)
    a.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    r["opt_timestampns"] = a.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS)
    r["opt_pktinfo"] = a.getsockopt(socket.IPPROTO_IP, IP_PKTINFO)
    r["opt_ttl"] = b.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
    r["opt_tcp_level"] = outcome(a.setsockopt, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r["opt_udp_cork"] = outcome(a.setsockopt, socket.IPPROTO_UDP, 1, 0)
    s6, c6 = bound(socket.AF_INET6), udp(socket.AF_INET6)
    s6.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    c6.sendto(b"six", s6.getsockname()[:2])
    readable(s6, 2)
    data, anc, flags, src = s6.recvmsg(100, 256)
    r["v6_cmsgs"] = [[lvl, t, socket.inet_ntop(socket.AF_INET6, blob[:16]),
                      struct.unpack_from("i", blob, 16)[0]] for lvl, t, blob in anc]
    for s in (a, b, s6, c6):
        s.close()
    return r


def _mmsg_vec(n, bufs, names):
    """struct mmsghdr[n] over iovecs of `bufs` and names of `names`."""
    iovs = [struct.pack("<Qq", ctypes.addressof(b), len(b)) for b in bufs]
    iov_bufs = [ctypes.create_string_buffer(i) for i in iovs]
    vec = b""
    for i in range(n):
        name = names[i]
        vec += struct.pack("<QiiQQQQI4xI4x", ctypes.addressof(name) if name else 0,
                           len(name) if name else 0, 0, ctypes.addressof(iov_bufs[i]), 1,
                           0, 0, 0, 0)
    return ctypes.create_string_buffer(vec), iov_bufs


@scenario
def mmsg():
    a, b = bound(), udp()
    dest = ctypes.create_string_buffer(sockaddr_in(LOOP, a.getsockname()[1]), 16)
    bufs = [ctypes.create_string_buffer(f"m{i}".encode(), 2) for i in range(3)]
    vec, keep = _mmsg_vec(3, bufs, [dest] * 3)
    r = {"sendmmsg": c_outcome(libc.sendmmsg, b.fileno(), vec, 3, 0),
         "msg_len": [struct.unpack_from("<I", vec.raw, 56 + 64 * i)[0] for i in range(3)]}
    readable(a, 2)
    time.sleep(0.05)
    rbufs = [ctypes.create_string_buffer(8) for _ in range(4)]
    names = [ctypes.create_string_buffer(16) for _ in range(4)]
    rvec, keep2 = _mmsg_vec(4, rbufs, names)
    r["recvmmsg"] = c_outcome(libc.recvmmsg, a.fileno(), rvec, 4, MSG_WAITFORONE, None)
    r["got"] = [rbufs[i].raw[:2].decode() for i in range(3)]
    r["names"] = [names[i].raw[4:8] == socket.inet_aton(LOOP) for i in range(3)]
    r["empty"] = c_outcome(libc.recvmmsg, a.fileno(), rvec, 4, socket.MSG_DONTWAIT, None)
    b.connect(a.getsockname())
    vec2, keep3 = _mmsg_vec(2, bufs[:2], [None, None])
    r["connected_sendmmsg"] = c_outcome(libc.sendmmsg, b.fileno(), vec2, 2, 0)
    readable(a, 2)
    time.sleep(0.05)
    r["connected_got"] = [x.decode() for x in recv_all(a)]
    a.close()
    b.close()
    return r


@scenario
def native_and_trapped_reads():
    """recv()/read() (no address) and recvfrom() (with one) mixed on one socket: each
    datagram comes once, in order, with its own source."""
    a = bound()
    senders = [udp() for _ in range(4)]
    for i, s in enumerate(senders):
        s.sendto(f"d{i}".encode(), a.getsockname())
    readable(a, 2)
    time.sleep(0.05)
    r = {"read": os.read(a.fileno(), 100).decode()}
    data, src = a.recvfrom(100)
    r["recvfrom"], r["recvfrom_src"] = data.decode(), src == (LOOP, senders[1].getsockname()[1])
    r["recv"] = a.recv(100).decode()
    data, src = a.recvfrom(100)
    r["last"], r["last_src"] = data.decode(), src == (LOOP, senders[3].getsockname()[1])
    r["empty"] = outcome(a.recv, 10, socket.MSG_DONTWAIT)
    b = bound()
    b.connect(a.getsockname())
    a.connect(b.getsockname())
    r["write"] = os.write(b.fileno(), b"via write")
    readable(a, 2)
    r["read2"] = os.read(a.fileno(), 100).decode()
    r["send"] = b.send(b"via send")
    readable(a, 2)
    data, src = a.recvfrom(100)
    r["recvfrom2"], r["src2"] = data.decode(), src == b.getsockname()
    for s in [a, b] + senders:
        s.close()
    return r


@scenario
def any_destination():
    """connect()/sendto() 0.0.0.0 (and ::ffff:0.0.0.0) mean this host: the source
    address, else 127.0.0.1 (LTP send01, sendto01)."""
    r = {}
    a = bound(socket.AF_INET, "0.0.0.0")
    port = a.getsockname()[1]
    b = udp()
    b.connect(("0.0.0.0", port))
    r["peer"], r["name"] = b.getpeername()[0], b.getsockname()[0]
    b.send(b"x")
    c = udp()
    c.sendto(b"y", ("0.0.0.0", port))
    e = udp(socket.AF_INET6)
    e.sendto(b"z", ("::ffff:0.0.0.0", port))
    f = bound(socket.AF_INET, "127.0.0.5")
    f.connect(("0.0.0.0", port))
    r["peer_of_bound"] = f.getpeername()[0]
    got = []
    for _ in range(3):
        if readable(a, 2):
            data, src = a.recvfrom(10)
            got.append([data.decode(), src[0]])
    r["got"] = got
    for s in (a, b, c, e, f):
        s.close()
    return r


@scenario
def send_then_close():
    """A connected socket's native write()/send() right before its close (LTP bind05's
    peer): each datagram was sent at the call, the close loses none."""
    a = bound()
    r = {}
    for i, how in enumerate(("write", "send", "sendto")):
        b = udp()
        b.connect(a.getsockname())
        msg = f"{how}-{i}".encode()
        if how == "write":
            os.write(b.fileno(), msg)
        elif how == "send":
            b.send(msg)
        else:
            b.sendto(msg, a.getsockname())
        b.close()
        r[how] = a.recv(100).decode() if readable(a, 2) else None
    a.close()
    return r


@scenario
def readiness():
    a, b = bound(), udp()
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN)
    r = {"empty": ep.poll(0), "writable": bool(select.select([], [a], [], 0)[1])}
    b.sendto(b"x", a.getsockname())
    r["after_send"] = [ev for _, ev in ep.poll(2)]
    b.sendto(b"y", a.getsockname())
    time.sleep(0.05)
    a.recvfrom(10)
    r["one_left"] = [ev for _, ev in ep.poll(0)]
    a.recvfrom(10)
    r["none_left"] = ep.poll(0)
    a.settimeout(0.2)
    t = time.monotonic()
    try:
        a.recvfrom(10)
        r["timed_out"] = False
    except socket.timeout:
        r["timed_out"] = True
    r["waited"] = time.monotonic() - t >= 0.15
    a.setblocking(False)
    r["nonblocking"] = outcome(a.recvfrom, 10)
    a.close()
    b.close()
    ep.close()
    return r


@scenario
def proc_net_udp():
    a, b = bound(), bound()
    b.connect(a.getsockname())
    b.send(b"abc")
    readable(a, 2)
    port_a, port_b = a.getsockname()[1], b.getsockname()[1]
    r = {}
    with open("/proc/net/udp") as f:
        lines = f.read().splitlines()
    r["header"] = lines[0].split()
    rows = {int(line.split()[1].split(":")[1], 16): line.split() for line in lines[1:]}
    ra, rb = rows.get(port_a), rows.get(port_b)
    r["a"] = [ra[1].split(":")[0], ra[2], ra[3], ra[4].split(":")[0],
              int(ra[4].split(":")[1], 16) > 0] if ra else None
    r["b"] = [rb[1].split(":")[0], rb[2] == f"0100007F:{port_a:04X}", rb[3]] if rb else None
    r["a_inode"] = bool(ra) and int(ra[9]) == os.fstat(a.fileno()).st_ino
    a.close()
    b.close()
    return r


@scenario
def broadcast_on_loopback():
    a = udp(socket.AF_INET, (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
    a.bind(("0.0.0.0", 0))
    port = a.getsockname()[1]
    b = udp()
    r = {"no_so_broadcast": outcome(b.sendto, b"x", ("127.255.255.255", port))}
    b.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    r["so_broadcast"] = outcome(b.sendto, b"all", ("127.255.255.255", port))
    r["received"] = a.recv(10).decode() if readable(a, 1) else None
    a.close()
    b.close()
    return r


def _timer_signals(restart: bool, body):
    """body() under a SIGALRM every 200 us, its handler installed with SA_RESTART or
    without (Python's default; siginterrupt)."""
    import signal
    hits = [0]

    def tick(signum, frame):
        hits[0] += 1
    old = signal.signal(signal.SIGALRM, tick)
    signal.siginterrupt(signal.SIGALRM, not restart)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        result = body()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    result["signals"] = hits[0] > 10
    return result


@scenario
def signals_during_calls():
    """Datagrams go back and forth under a timer signal (SA_RESTART, as Go's SIGURG,
    Java's and libuv's handlers): sendto and recvfrom (sysemu's calls) interrupted at any
    point lose or repeat nothing, and bind, setsockopt and getsockname act once (Linux: a
    call a signal interrupts has done nothing; these never wait)."""
    a, b = bound(), bound()
    a.settimeout(2)
    count = 1500

    def body():
        got, errors = [], {}
        for start in range(0, count, 50):
            for seq in range(start, start + 50):
                b.sendto(str(seq).encode(), a.getsockname())
            for _ in range(50):
                try:
                    data, _ = a.recvfrom(64)
                except socket.timeout:
                    break
                got.append(int(data))
        for _ in range(300):
            s = udp()
            for name, call in (("bind", lambda: s.bind((LOOP, 0))),
                               ("setsockopt", lambda: s.setsockopt(
                                   socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)),
                               ("getsockname", s.getsockname)):
                err = outcome(call)
                if isinstance(err, str):
                    errors[f"{name} {err}"] = errors.get(f"{name} {err}", 0) + 1
            s.close()
        return {"received": len(got), "in_order": got == sorted(got),
                "missing": count - len(set(got)), "repeated": len(got) - len(set(got)),
                "errors": errors}
    try:
        return _timer_signals(True, body)
    finally:
        a.close()
        b.close()


@scenario
def signals_without_restart():
    """The same calls under a timer signal whose handler lacks SA_RESTART (Python's
    default): Linux never fails them with EINTR (they do not wait)."""
    def body():
        errors = {}
        for _ in range(1000):
            for name, call in (("socket", udp), ("bind", None)):
                try:
                    s = udp() if call is None else call()
                    if call is None:
                        s.bind((LOOP, 0))
                    s.close()
                except OSError as exc:
                    key = f"{name} {errno.errorcode.get(exc.errno, exc.errno)}"
                    errors[key] = errors.get(key, 0) + 1
        return {"errors": errors}
    return _timer_signals(False, body)

main = PROBE.main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
