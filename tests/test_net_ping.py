"""Ping sockets, raw ICMP sockets and ICMP echo in the model (net/ipv4/ping.py, raw.py,
icmp.py), driven through the syscall table: net.ipv4.ping_group_range (EACCES),
CAP_NET_RAW (EPERM), the echo answered by sysemu's stack with the identifier rewritten,
bad types (EINVAL), the ICMP filter, the IP header a raw socket reads, the counters of
/proc/net/snmp and /proc/net/snmp6."""
from __future__ import annotations

import struct

from sysemu.abi.socket import AF_INET, AF_INET6, SOCK_DGRAM, SOCK_RAW
from sysemu.kernel.task import CAP_NET_RAW
from sysemu.net.ipv4.icmp import csum
from sysemu.net.proc import render_snmp, render_snmp6
from test_net_helpers import E
from test_net_udp import MSG_DONTWAIT, MSG_TRUNC, U

IPPROTO_ICMP, IPPROTO_ICMPV6 = 1, 58
OPEN = {"net.ipv4.ping_group_range": (0, 2147483647)}


def echo(ident=0x1234, seq=1, payload=b"abcdefgh", type_=8):
    body = struct.pack("!BBHHH", type_, 0, 0, ident, seq) + payload
    return body[:2] + csum(body).to_bytes(2, "big") + body[4:]


def test_ping_socket_refused_outside_group_range():
    env = U()                                   # Linux's default "1 0": nobody
    assert env.socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) == -E.EACCES
    assert env.socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6) == -E.EACCES
    assert env.socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMP) == -E.EPROTONOSUPPORT
    env = U(sysctl={"net.ipv4.ping_group_range": (1, 10)})      # gid 0 outside
    assert env.socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) == -E.EACCES
    env = U(sysctl=OPEN)
    assert env.socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) >= 0


def test_ping_echo_answered_with_the_socket_identifier():
    env = U(sysctl=OPEN)
    fd = env.socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
    assert env.sendto(fd, echo(ident=0x1234, seq=7), "127.0.0.1", 0) == 16
    ident = env.port(fd)
    assert ident
    n, data, src = env.recvfrom(fd)
    assert n == 16 and src == ("127.0.0.1", 0)
    type_, code, _, rid, seq = struct.unpack("!BBHHH", data[:8])
    assert (type_, code, rid, seq, data[8:]) == (0, 0, ident, 7, b"abcdefgh")
    assert csum(data) == 0
    snmp = render_snmp(env.net.mib)
    names, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Icmp:")]
    icmp = dict(zip(names, map(int, values)))
    assert icmp["OutEchos"] == icmp["InEchos"] == icmp["OutEchoReps"] == icmp["InEchoReps"] == 1
    assert icmp["OutMsgs"] == icmp["InMsgs"] == 2
    assert "IcmpMsg: InType0 InType8 OutType0 OutType8" in snmp


def test_ping_bad_input():
    env = U(sysctl=OPEN)
    fd = env.socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
    assert env.sendto(fd, echo(type_=13), "127.0.0.1", 0) == -E.EINVAL      # timestamp
    assert env.sendto(fd, echo()[:7], "127.0.0.1", 0) == -E.EINVAL          # short header
    assert env.sendto(fd, echo(), "127.0.0.1", 0, addrlen=8) == -E.EINVAL
    assert env.sendto(fd, echo(), "::1", 0) == -E.EAFNOSUPPORT
    assert env.sendto(fd, echo(), "10.0.0.1", 0) == -E.ENETUNREACH
    assert env.call("sendto", fd, env.mem.alloc(echo()), 16, 0, 0, 0) == -E.EDESTADDRREQ
    assert env.sendto(fd, echo(payload=bytes(65600)), "127.0.0.1", 0) == -E.EMSGSIZE
    # MSG_TRUNC: ping_recvmsg() returns what it copied (UDP and raw: the real length)
    assert env.sendto(fd, echo(payload=bytes(100)), "127.0.0.1", 0) == 108
    n, data, _ = env.recvfrom(fd, size=10, flags=MSG_DONTWAIT | MSG_TRUNC)
    assert n == 10 and len(data) == 10
    assert env.recvfrom(fd)[0] == -E.EAGAIN


def test_ping6_echo():
    env = U(sysctl=OPEN)
    fd = env.socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)
    req = struct.pack("!BBHHH", 128, 0, 0, 99, 3) + b"xyz"
    assert env.sendto(fd, req, "::1", 0) == 11
    n, data, src = env.recvfrom(fd)
    assert n == 11 and src[0] == "::1"
    assert data[0] == 129 and struct.unpack("!HH", data[4:8]) == (env.port(fd), 3)
    assert env.sendto(fd, echo(), "::1", 0) == -E.EINVAL                    # type 8 on v6
    snmp6 = dict(line.split() for line in render_snmp6(env.net.mib).splitlines())
    assert snmp6["Icmp6OutEchos"] == snmp6["Icmp6InEchoReplies"] == "1"
    assert snmp6["Icmp6InType128"] == snmp6["Icmp6OutType129"] == "1"


def test_raw_needs_cap_net_raw_and_reads_ip_header():
    env = U()
    assert env.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) == -E.EPERM
    env = U(caps={CAP_NET_RAW})
    assert env.socket(AF_INET, SOCK_RAW, 0) == -E.EPROTONOSUPPORT
    fd = env.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)
    assert fd >= 0
    assert env.sendto(fd, echo(ident=0x4242, seq=5), "127.0.0.1", 0) == 16
    # without a filter it sees its own request, then the reply
    n, data, src = env.recvfrom(fd)
    assert n == 36 and src == ("127.0.0.1", 0)
    assert data[0] == 0x45 and data[9] == IPPROTO_ICMP and csum(data[:20]) == 0
    assert data[20] == 8
    n, data, _ = env.recvfrom(fd)
    assert data[20] == 0 and struct.unpack("!HH", data[24:28]) == (0x4242, 5)
    # ICMP_FILTER: block everything but echo replies
    blocked = env.mem.alloc(struct.pack("<I", 0xFFFFFFFE))
    assert env.call("setsockopt", fd, 255, 1, blocked, 4) == 0
    assert env.sendto(fd, echo(), "127.0.0.1", 0) == 16
    assert env.recvfrom(fd)[1][20] == 0
    assert env.recvfrom(fd)[0] == -E.EAGAIN


def test_proc_net_icmp_and_ss_raw():
    """/proc/net/icmp lists ping sockets as udp4_format_sock() lists UDP ones (the
    identifier as the port, slot ident % 64); `sysemu ss -w` shows raw sockets with
    their protocol as the port (ss -w); ping sockets are in neither ss view."""
    from sysemu.net.proc import ICMP4_HEADER, PING_HTABLE_SLOTS, ping_proc_rows, render_udp
    from sysemu.observe.ss import select_rows, snapshot
    env = U(caps={CAP_NET_RAW}, sysctl=OPEN)
    fd = env.socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
    assert env.bind(fd, "127.0.0.1", 300) == 0
    env.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)
    text = render_udp(ping_proc_rows(env.net, False), header=ICMP4_HEADER,
                      slots=PING_HTABLE_SLOTS)
    header, row = text.splitlines()
    assert header.startswith("  sl  local_address") and len(header) == 127
    assert row.split()[:4] == ["44:", "0100007F:012C", "00000000:0000", "07"]
    rows = select_rows(snapshot(env.net), all_states=True, netids=("raw",))
    assert [(r["state"], r["local"], r["peer"]) for r in rows] == \
        [("UNCONN", ["0.0.0.0", 1], ["0.0.0.0", "*"])]
    assert not select_rows(snapshot(env.net), all_states=True, netids=("udp",))
