"""Differential ping/raw ICMP probe: one body, run natively and under `sysemu run`.

    python3 ping_probe.py SCENARIO [SCENARIO ...]    prints {scenario: {check: result}} as JSON
    python3 ping_probe.py --list                      prints the scenario names

Natively it runs as root in a fresh network namespace (`unshare -n`, lo up): root has
CAP_NET_RAW there and may write net.ipv4.ping_group_range, as root in sysemu's sandbox
may. Every scenario sets the range it needs itself. A result is
a return value, an errno NAME, or a boolean comparing with what is expected (echo
identifiers and IP ids differ from run to run).

The checks follow Linux: net/ipv4/ping.c (ping_init_sock, ping_bind, ping_common_sendmsg,
ping_v4_sendmsg, ping_recvmsg, ping_rcv), net/ipv6/ping.c, net/ipv4/icmp.c (icmp_echo,
icmp_rcv), net/ipv4/raw.c (raw_sendmsg, raw_v4_input, ICMP_FILTER), net/ipv6/raw.c.
"""
from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct
import sys
import time

from probekit import Probe, outcome      # (tests/probes/, this script's directory)

PROBE = Probe()
scenario = PROBE.scenario
SCENARIOS = PROBE.scenarios

LOOP = "127.0.0.1"
RANGE = "/proc/sys/net/ipv4/ping_group_range"
ICMP, ICMPV6 = socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6
SOL_RAW, ICMP_FILTER = 255, 1
IP_RECVERR, IP_RECVTTL, IP_RECVTOS, IP_TTL, IP_TOS = 11, 12, 13, 2, 1
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT = 51, 52
MSG_ERRQUEUE = 0x2000
UNMAPPED = 0x10000          # below mmap_min_addr: never mapped
libc = ctypes.CDLL(None, use_errno=True)
libc.sendto.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                        ctypes.c_void_p, ctypes.c_uint32]




def c_sendto(fd, buf, length, flags, addr, addrlen):
    """sendto(2) with raw pointers: the value or the errno name."""
    r = libc.sendto(fd, buf, length, flags, addr, addrlen)
    return r if r >= 0 else errno.errorcode[ctypes.get_errno()]


def read_range():
    with open(RANGE) as f:
        return f.read()


def set_range(text, valid=True):
    """Write the range; then the value read back once it shows (valid) or after a
    moment (sysemu applies a /proc/sys write after write() returns and cannot fail it:
    README: Limitations, so an invalid write is judged by the value that stays)."""
    try:
        fd = os.open(RANGE, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError:
        pass
    want = "\t".join(text.split()) + "\n"
    for _ in range(100):
        if valid and read_range() == want:
            break
        time.sleep(0.01)
    return read_range()


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo(ident=0x1234, seq=1, payload=b"0123456789abcdef", type_=8, code=0, v6=False):
    body = struct.pack("!BBHHH", type_, code, 0, ident, seq) + payload
    if v6:
        return body                         # the kernel fills ICMPv6 checksums
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def ping(family=socket.AF_INET):
    return socket.socket(family, socket.SOCK_DGRAM, ICMP if family == socket.AF_INET else ICMPV6)


def can_open(family=socket.AF_INET, type_=socket.SOCK_DGRAM, proto=None):
    """socket() then close: 0 or the errno name."""
    if proto is None:
        proto = ICMP if family == socket.AF_INET else ICMPV6
    return outcome(lambda: socket.socket(family, type_, proto).close())


def wait(s, timeout=2.0):
    p = select.poll()
    p.register(s, select.POLLIN)
    return bool(p.poll(int(timeout * 1000)))


def counters(path, prefix):
    """The counters of /proc/net/snmp lines starting with `prefix` (pairs of lines) or of
    /proc/net/snmp6 (name value lines)."""
    with open(path) as f:
        lines = f.read().splitlines()
    if path.endswith("snmp6"):
        return {k: int(v) for k, v in (line.split() for line in lines) if k.startswith(prefix)}
    out = {}
    rows = [line.split() for line in lines if line.startswith(prefix + ":")]
    for names, values in zip(rows[::2], rows[1::2]):
        out.update(zip(names[1:], map(int, values[1:])))
    return out


def delta(before, after):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# -- scenarios ---------------------------------------------------------------------------

@scenario
def group_range():
    r = {"default": can_open()}
    r["open_all"] = set_range("0 2147483647")
    r["v4"] = can_open()
    r["v6"] = can_open(socket.AF_INET6)
    r["v6_with_icmp"] = can_open(socket.AF_INET6, proto=ICMP)
    r["v4_with_icmpv6"] = can_open(socket.AF_INET, proto=ICMPV6)
    r["zero_only"] = set_range("0 0")
    r["v4_zero_only"] = can_open()
    r["others_only"] = set_range("1 10")
    r["v4_others"] = can_open()
    r["v6_others"] = can_open(socket.AF_INET6)
    r["inverted"] = set_range("10 1", valid=False)
    r["v4_inverted"] = can_open()
    r["negative"] = set_range("-1 0", valid=False)
    r["above_int"] = set_range("0 2147483648")
    r["one_value"] = set_range("0", valid=False)
    r["v4_one_value"] = can_open()
    r["above_gid_t"] = set_range("0 4294967295", valid=False)
    return r


@scenario
def echo_v4():
    set_range("0 2147483647")
    before = counters("/proc/net/snmp", "Icmp")
    s = ping()
    payload = bytes(range(56))
    r = {"send": s.sendto(echo(ident=0x1234, seq=7, payload=payload), (LOOP, 0))}
    ident = s.getsockname()[1]
    r["ident_set"] = ident != 0
    r["readable"] = wait(s)
    data, src = s.recvfrom(4096)
    r["len"] = len(data)
    r["source"] = list(src)
    type_, code, _, rid, seq = struct.unpack("!BBHHH", data[:8])
    r.update(type=type_, code=code, seq=seq, id_is_socket_ident=rid == ident,
             payload_same=data[8:] == payload, checksum_ok=csum(data) == 0)
    # a second socket: its own identifier, its own reply
    t = ping()
    t.sendto(echo(ident=0x1234, seq=8), (LOOP, 0))
    r["other_ident"] = t.getsockname()[1] != ident
    r["other_gets_own"] = wait(t) and struct.unpack("!H", t.recv(100)[6:8])[0] == 8
    r["first_gets_nothing_more"] = outcome(s.recv, 100, socket.MSG_DONTWAIT)
    r["counters"] = delta(before, counters("/proc/net/snmp", "Icmp"))
    return r


@scenario
def bad_input_v4():
    set_range("0 2147483647")
    s = ping()
    addr = (LOOP, 0)
    r = {"type_timestamp": outcome(s.sendto, echo(type_=13), addr),
         "type_reply": outcome(s.sendto, echo(type_=0), addr),
         "code_1": outcome(s.sendto, echo(code=1), addr),
         "short_header": outcome(s.sendto, echo()[:7], addr),
         "empty": outcome(s.sendto, b"", addr),
         "unreachable": outcome(s.sendto, echo(), ("10.0.0.1", 0)),
         "broadcast": outcome(s.sendto, echo(), ("127.255.255.255", 0)),
         "oob": outcome(s.sendto, echo(), socket.MSG_OOB, addr),
         "too_big": outcome(s.sendto, echo(payload=bytes(65536)), addr),
         "above_ip": outcome(s.sendto, echo(payload=bytes(65516 - 8)), addr),
         "largest": outcome(s.sendto, echo(payload=bytes(65515 - 8)), addr)}
    if r["largest"] == 65515 and wait(s):
        r["largest_back"] = len(s.recv(70000))
    buf = ctypes.create_string_buffer(echo())
    sin = struct.pack("<H", socket.AF_INET) + bytes(2) + socket.inet_aton(LOOP) + bytes(8)
    r["short_address"] = c_sendto(s.fileno(), buf, 24, 0, sin, 8)
    r["unmapped_buffer"] = c_sendto(s.fileno(), UNMAPPED, 24, 0, sin, 16)
    r["unmapped_address"] = c_sendto(s.fileno(), buf, 24, 0, UNMAPPED, 16)
    r["af_unspec"] = c_sendto(s.fileno(), buf, 24, 0, bytes(16), 16)
    sin6 = struct.pack("<H", socket.AF_INET6) + bytes(6) + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4)
    r["v6_address"] = c_sendto(s.fileno(), buf, 24, 0, sin6, 28)
    r["nothing_queued"] = outcome(s.recv, 100, socket.MSG_DONTWAIT)
    return r


@scenario
def short_buffers():
    set_range("0 2147483647")
    s = ping()
    payload = b"x" * 100
    for seq in (1, 2, 3):
        s.sendto(echo(seq=seq, payload=payload), (LOOP, 0))
    wait(s)
    r = {"peek": outcome(s.recv, 4, socket.MSG_PEEK)}
    data, _, flags, _ = s.recvmsg(10)
    r.update(short=len(data), short_flags=flags, short_type=data[0])
    r["trunc_len"] = outcome(lambda: len(s.recv(10, socket.MSG_TRUNC)))
    s.sendto(echo(seq=4, payload=payload), (LOOP, 0))
    wait(s)
    r["trunc_recv_into"] = s.recv_into(bytearray(10), 10, socket.MSG_TRUNC)
    r["oob"] = outcome(s.recv, 10, socket.MSG_OOB)
    n = s.recv_into(bytearray(200), 0, socket.MSG_TRUNC)
    r["trunc_big_buffer"] = n
    r["empty_after"] = outcome(s.recv, 10, socket.MSG_DONTWAIT)
    return r


@scenario
def cmsgs_v4():
    set_range("0 2147483647")
    s = ping()
    s.setsockopt(socket.SOL_IP, IP_RECVTTL, 1)
    s.setsockopt(socket.SOL_IP, IP_RECVTOS, 1)
    r = {"recverr": s.setsockopt(socket.SOL_IP, IP_RECVERR, 1),
         "set_tos": s.setsockopt(socket.SOL_IP, IP_TOS, 0x10),
         "set_ttl": s.setsockopt(socket.SOL_IP, IP_TTL, 33)}
    s.sendto(echo(), (LOOP, 0))
    wait(s)
    data, anc, flags, src = s.recvmsg(200, 256)
    r["ancillary"] = [[level, type_, list(value)] for level, type_, value in anc]
    r["errqueue"] = outcome(s.recvmsg, 100, 100, MSG_ERRQUEUE)
    r["udp_level"] = outcome(s.setsockopt, socket.IPPROTO_UDP, 1, 1)
    return r


@scenario
def bind_connect():
    set_range("0 2147483647")
    s = ping()
    r = {"bind": outcome(s.bind, (LOOP, 4321)), "name": list(s.getsockname()),
         "again": outcome(s.bind, (LOOP, 4322))}
    t = ping()
    r["reuseaddr"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    r["same_ident"] = outcome(t.bind, (LOOP, 4321))          # both SO_REUSEADDR
    v = ping()
    v.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    r["same_ident_no_reuse"] = outcome(v.bind, (LOOP, 4321))
    r["nonlocal"] = outcome(t.bind, ("10.0.0.1", 0))
    r["broadcast"] = outcome(t.bind, ("127.255.255.255", 0))
    r["connect"] = outcome(s.connect, (LOOP, 0))
    r["peer"] = outcome(s.getpeername)         # Linux: ENOTCONN, a ping peer has no port
    r["send"] = outcome(s.send, echo(ident=1, seq=9))
    wait(s)
    r["reply_to_first"] = outcome(s.recv, 100, socket.MSG_DONTWAIT)
    wait(t)
    data = t.recv(100, socket.MSG_DONTWAIT) if wait(t) else b""
    r["reply_to_newest"] = struct.unpack("!H", data[4:6])[0] if data else None
    u = ping()
    r["autobind_on_connect"] = [outcome(u.connect, (LOOP, 0)), u.getsockname()[1] != 0]
    return r


@scenario
def echo_v6():
    set_range("0 2147483647")
    before = counters("/proc/net/snmp6", "Icmp6")
    s = ping(socket.AF_INET6)
    r = {"send": s.sendto(echo(ident=5, seq=3, payload=b"hello", type_=128, v6=True),
                          ("::1", 0, 0, 0))}
    r["readable"] = wait(s)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    data, src = s.recvfrom(200)
    ident = s.getsockname()[1]
    r.update(len=len(data), source=src[0], source_port=src[1], type=data[0],
             id_is_socket_ident=struct.unpack("!H", data[4:6])[0] == ident,
             seq=struct.unpack("!H", data[6:8])[0], payload=data[8:].decode())
    s.sendto(echo(type_=128, v6=True), ("::1", 0, 0, 0))
    wait(s)
    _, anc, _, _ = s.recvmsg(200, 256)
    r["ancillary"] = [[level, type_, list(value)] for level, type_, value in anc]
    r["type_8"] = outcome(s.sendto, echo(), ("::1", 0, 0, 0))
    r["mapped"] = outcome(s.sendto, echo(type_=128, v6=True), ("::ffff:127.0.0.1", 0, 0, 0))
    r["v4_address"] = outcome(s.sendto, echo(type_=128, v6=True), (LOOP, 0))
    r["v6only"] = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    r["counters"] = delta(before, counters("/proc/net/snmp6", "Icmp6"))
    return r


@scenario
def raw_v4():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, ICMP)
    before = counters("/proc/net/snmp", "Icmp")
    r = {"send": s.sendto(echo(ident=0x4242, seq=5), (LOOP, 0))}
    packets = []
    while wait(s, 0.5 if packets else 2):
        packets.append(s.recvfrom(4096))
    r["seen"] = []
    for data, src in packets:
        ihl = (data[0] & 15) * 4
        icmp = data[ihl:]
        r["seen"].append({"src": list(src), "ver_ihl": data[0], "tos": data[1],
                          "total_len": struct.unpack("!H", data[2:4])[0],
                          "df": bool(data[6] & 0x40), "ttl": data[8], "proto": data[9],
                          "ip_csum_ok": csum(data[:ihl]) == 0,
                          "addrs": [socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])],
                          "type": icmp[0], "id": struct.unpack("!H", icmp[4:6])[0],
                          "icmp_csum_ok": csum(icmp) == 0})
    r["filter_default"] = s.getsockopt(SOL_RAW, ICMP_FILTER)
    s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("<I", ~1 & 0xFFFFFFFF))
    r["filter_set"] = s.getsockopt(SOL_RAW, ICMP_FILTER)
    s.sendto(echo(seq=6), (LOOP, 0))
    wait(s)
    r["filtered_first"] = s.recv(4096)[20]
    r["filtered_rest"] = outcome(s.recv, 4096, socket.MSG_DONTWAIT)
    r["bad_checksum_sent"] = s.sendto(echo()[:2] + b"\0\1" + echo()[4:], (LOOP, 0))
    r["bad_checksum_answered"] = wait(s, 0.3)
    r["short_sent"] = s.sendto(b"\x08\0", (LOOP, 0))
    r["unreachable"] = outcome(s.sendto, echo(), ("10.0.0.1", 0))
    # a ping socket's traffic reaches the raw socket too (both ways)
    set_range("0 2147483647")
    p = ping()
    s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("<I", 0))
    p.sendto(echo(seq=11), (LOOP, 0))
    wait(p)
    seen = []
    while wait(s, 0.3):
        data = s.recv(4096)
        seen.append([data[20], struct.unpack("!H", data[24:26])[0] == p.getsockname()[1]])
    r["ping_traffic_seen"] = seen
    r["counters"] = delta(before, counters("/proc/net/snmp", "Icmp"))
    r["udp_level"] = outcome(s.setsockopt, socket.IPPROTO_UDP, 1, 1)
    return r


@scenario
def raw_v6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, ICMPV6)
    flt = bytearray(b"\xff" * 32)
    flt[16] &= ~2                      # let echo replies (129) through
    r = {"filter": s.setsockopt(ICMPV6, 1, bytes(flt)),
         "checksum_raw_level": s.setsockopt(SOL_RAW, 7, 2),
         "checksum_ipv6_level": outcome(s.setsockopt, socket.IPPROTO_IPV6, 7, 2),
         "odd_checksum": outcome(s.setsockopt, SOL_RAW, 7, 3),
         "hoplimit": s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)}
    r["send"] = s.sendto(echo(ident=77, seq=1, type_=128, v6=True), ("::1", 0, 0, 0))
    r["readable"] = wait(s)
    data, anc, flags, src = s.recvmsg(4096, 256)
    r.update(len=len(data), type=data[0], id=struct.unpack("!H", data[4:6])[0],
             source=src[0], ancillary=[[lv, ty, list(v)] for lv, ty, v in anc])
    r["more"] = outcome(s.recv, 4096, socket.MSG_DONTWAIT)
    r["too_short"] = outcome(s.sendto, b"\x80\0\0", ("::1", 0, 0, 0))
    return r


@scenario
def unconnected_send():
    """send() without an address on unconnected ping and raw sockets."""
    set_range("0 2147483647")
    buf = ctypes.create_string_buffer(echo())
    s = ping()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, ICMP)
    return {"ping": c_sendto(s.fileno(), buf, 24, 0, None, 0),
            "raw": c_sendto(raw.fileno(), buf, 24, 0, None, 0)}


@scenario
def udp_unreachable_counters():
    """UDP's port unreachables count in the Icmp and Icmp6 groups, both directions."""
    before = counters("/proc/net/snmp", "Icmp"), counters("/proc/net/snmp6", "Icmp6")
    r = {}
    for family, host in ((socket.AF_INET, LOOP), (socket.AF_INET6, "::1")):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.connect((host, 9))
        s.send(b"x")
        wait(s, 0.5)
        r[f"recvfrom_{family}"] = outcome(s.recvfrom, 10, socket.MSG_DONTWAIT)
    r["icmp"] = delta(before[0], counters("/proc/net/snmp", "Icmp"))
    r["icmp6"] = delta(before[1], counters("/proc/net/snmp6", "Icmp6"))
    return r


CAP_NET_RAW = 13


def drop_net_raw():
    """capset(2): CAP_NET_RAW out of the effective set (it stays permitted)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)       # _LINUX_CAPABILITY_VERSION_3
    data = (ctypes.c_uint32 * 6)()
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    data[0] &= ~(1 << CAP_NET_RAW)                      # effective, low word
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


@scenario
def raw_without_cap():
    drop_net_raw()
    r = {"raw_v4": can_open(socket.AF_INET, socket.SOCK_RAW, ICMP),
         "raw_v6": can_open(socket.AF_INET6, socket.SOCK_RAW, ICMPV6),
         "raw_proto_0": can_open(socket.AF_INET, socket.SOCK_RAW, 0)}
    set_range("0 2147483647")
    s = ping()
    s.sendto(echo(), (LOOP, 0))
    r["ping_still_works"] = wait(s) and s.recv(100)[0] == 0
    return r


main = PROBE.main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
