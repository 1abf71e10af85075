"""ICMP and ICMPv6 on the loopback: echo answered by sysemu's stack, the counters Linux
keeps, checksums.

Linux: net/ipv4/icmp.c (icmp_rcv, icmp_echo, icmp_reply, icmp_out_count, icmp_pointers),
net/ipv6/icmp.c (icmpv6_rcv, icmpv6_echo_reply), net/ipv4/ip_output.c __ip_make_skb()
(every ICMP packet sent is counted there: icmp_out_count()), lib/checksum.c,
net/ipv6/ip6_checksum.c (csum_ipv6_magic).

An ICMP packet is an `IcmpSkb`: `data` is the ICMP message (header and payload, no IP
header), the addresses are 16-byte (IPv4 v4-mapped), `v4` tells ICMP from ICMPv6. It
goes out through icmp_send_skb() (the counters, the pcap hook, then local delivery:
ip_input.ip_local_deliver(), raw sockets first, then icmp_rcv()/icmpv6_rcv()).

Counters: /proc/net/snmp's Icmp group is kept under "Icmp.<Name>" and its IcmpMsg
lines under "IcmpMsg.InType<n>"/"IcmpMsg.OutType<n>"; /proc/net/snmp6's Icmp6 group
under "Icmp6.<Name>" and "Icmp6Msg.InType<n>"/"Icmp6Msg.OutType<n>".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sysemu.abi.errno import Errno
from sysemu.abi.inet import IN6ADDR_ANY, IPPROTO_ICMP, IPPROTO_ICMPV6, TcpState
from sysemu.abi.socket import AF_INET, AF_INET6, AF_UNSPEC
from sysemu.kernel.errors import SyscallError
from sysemu.net.core import mapped
from sysemu.net.ipv4.ip_input import INET_PROTOS, ip_local_deliver
from sysemu.net.ipv4.udp import DEFAULT_TTL, SkBuff, _route4
from sysemu.net.ipv6.addrconf_core import (IPV6_ADDR_ANY, IPV6_ADDR_LOOPBACK,
                                           IPV6_ADDR_MAPPED, ipv6_addr_type)
from sysemu.net.sockaddr import decode_sockaddr_in, decode_sockaddr_in6, sa_family

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

ICMP_ECHOREPLY, ICMP_DEST_UNREACH, ICMP_ECHO = 0, 3, 8
ICMP_EXT_ECHO = 42
NR_ICMP_TYPES = 18
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ICMPV6_EXT_ECHO_REQUEST = 160
ICMP_HDR_LEN = 8                # struct icmphdr / struct icmp6hdr

# Linux: icmpmibmap[] (net/ipv4/proc.c): the named Icmp counters, by message type
ICMP_MIB_NAMES = {0: "EchoReps", 3: "DestUnreachs", 4: "SrcQuenchs", 5: "Redirects",
                  8: "Echos", 11: "TimeExcds", 12: "ParmProbs", 13: "Timestamps",
                  14: "TimestampReps", 17: "AddrMasks", 18: "AddrMaskReps"}
# Linux: icmp6_list[] (net/ipv6/proc.c): the named Icmp6 counters, by message type
ICMP6_MIB_NAMES = {1: "DestUnreachs", 2: "PktTooBigs", 3: "TimeExcds", 4: "ParmProblems",
                   128: "Echos", 129: "EchoReplies", 130: "GroupMembQueries",
                   131: "GroupMembResponses", 132: "GroupMembReductions",
                   133: "RouterSolicits", 134: "RouterAdvertisements",
                   135: "NeighborSolicits", 136: "NeighborAdvertisements",
                   137: "Redirects", 143: "MLDv2Reports"}

# Linux: icmp_pointers[] / icmpv6_rcv()'s switch: (v4, type) -> handler(net, skb) for
# the messages another module answers (ping.py registers the echo replies)
ICMP_POINTERS: dict[tuple[bool, int], Callable] = {}


@dataclass
class IcmpSkb(SkBuff):
    """An ICMP or ICMPv6 packet (see the module docstring); ip_id and df are the IPv4
    header's identification and don't-fragment bit (a raw socket sees them)."""
    ip_id: int = 0
    df: bool = False


def csum(data: bytes, initial: int = 0) -> int:
    """Linux: ip_compute_csum() / csum_fold(): the 16-bit one's complement of the one's
    complement sum of `data` (padded to an even length), plus `initial`."""
    if len(data) % 2:
        data += b"\0"
    total = initial + sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def csum_ipv6_magic(saddr: bytes, daddr: bytes, data: bytes, proto: int) -> int:
    """Linux: csum_ipv6_magic(): the checksum of `data` under the IPv6 pseudo-header."""
    pseudo = saddr + daddr + len(data).to_bytes(4, "big") + bytes(3) + bytes([proto])
    return csum(pseudo + data)


def icmp_checksummed(skb: SkBuff) -> bytes:
    """The message of `skb` with its checksum field filled in (ICMPv6: with the
    pseudo-header, as icmpv6_push_pending_frames() does)."""
    body = skb.data[:2] + b"\0\0" + skb.data[4:]
    if skb.v4:
        value = csum(body)
    else:
        value = csum_ipv6_magic(skb.saddr, skb.daddr, body, IPPROTO_ICMPV6)
    return body[:2] + value.to_bytes(2, "big") + body[4:]


def icmp_checksum_ok(skb: SkBuff) -> bool:
    """Linux: skb_checksum_simple_validate() / skb_checksum_validate(..., ip6_compute_pseudo)."""
    if skb.v4:
        return csum(skb.data) == 0
    return csum_ipv6_magic(skb.saddr, skb.daddr, skb.data, IPPROTO_ICMPV6) == 0


def icmp_count(net: "Net", v4: bool, direction: str, type_: int) -> None:
    """One message in ("In") or out ("Out"): Icmp InMsgs/OutMsgs, the type's named
    counter and its IcmpMsg line (Linux: ICMP_MIB_INMSGS + ICMPMSGIN_INC_STATS(),
    icmp_out_count(); ICMP6_MIB_* + ICMP6MSGIN/OUT_INC_STATS())."""
    group, names = ("Icmp", ICMP_MIB_NAMES) if v4 else ("Icmp6", ICMP6_MIB_NAMES)
    net.count(f"{group}.{direction}Msgs")
    name = names.get(type_)
    if name is not None:
        net.count(f"{group}.{direction}{name}")
    net.count(f"{group}Msg.{direction}Type{type_}")


IP_MAX_ICMP4 = 0xFFFF - 20          # the largest message one IPv4 packet holds


def icmp_dest(sk: "Sock", addr: bytes | None, length: int, *, name_len6: int,
              unspec_ok: bool, mapped_errno: int) -> tuple[bytes, bytes]:
    """The (source, destination) of a ping or raw send, 16-byte addresses. Linux:
    ping_v4_sendmsg()/ping_v6_sendmsg() and raw_sendmsg()/rawv6_sendmsg() share these
    checks but for what each passes: EINVAL below sockaddr_in or `name_len6`,
    EAFNOSUPPORT for another family (AF_UNSPEC too unless `unspec_ok`), EDESTADDRREQ
    unconnected, the route (ENETUNREACH off the loopback, EACCES for broadcast without
    SO_BROADCAST; a v4-mapped IPv6 destination: `mapped_errno`), then EMSGSIZE for an
    IPv4 message that no packet holds. :: reaches ::1."""
    if sk.family == AF_INET:
        if addr:
            if len(addr) < 16:
                raise SyscallError(Errno.EINVAL)
            if sa_family(addr) != AF_INET and not (unspec_ok and sa_family(addr) == AF_UNSPEC):
                raise SyscallError(Errno.EAFNOSUPPORT)
            daddr = decode_sockaddr_in(addr).addr
        elif sk.state != TcpState.TCP_ESTABLISHED:
            raise SyscallError(Errno.EDESTADDRREQ)
        else:
            daddr = sk.daddr
        saddr = _route4(sk, daddr)
        if length > IP_MAX_ICMP4:
            raise SyscallError(Errno.EMSGSIZE)
        return mapped(saddr), mapped(daddr)
    if addr:
        if len(addr) < name_len6:
            raise SyscallError(Errno.EINVAL)
        if sa_family(addr) != AF_INET6 and not (unspec_ok and sa_family(addr) == AF_UNSPEC):
            raise SyscallError(Errno.EAFNOSUPPORT)
        daddr = decode_sockaddr_in6(addr + bytes(max(0, 28 - len(addr)))).addr
    elif sk.state != TcpState.TCP_ESTABLISHED:
        raise SyscallError(Errno.EDESTADDRREQ)
    else:
        daddr = sk.v6_daddr
    kind = ipv6_addr_type(daddr)
    if kind == IPV6_ADDR_MAPPED:
        raise SyscallError(mapped_errno)
    if kind == IPV6_ADDR_ANY:
        daddr = bytes(15) + b"\1"
    elif kind != IPV6_ADDR_LOOPBACK:
        raise SyscallError(Errno.ENETUNREACH)
    return (daddr if sk.v6_rcv_saddr == IN6ADDR_ANY else sk.v6_rcv_saddr), daddr


def realtime(net: "Net") -> float:
    """The wall clock a received packet's timestamp (SO_TIMESTAMP) reads."""
    clock = net.kernel.clock
    return clock.realtime() if hasattr(clock, "realtime") else clock.now()


def icmp_send_skb(net: "Net", skb: IcmpSkb) -> None:
    """Linux: __ip_make_skb() (icmp_out_count()) / icmpv6_push_pending_frames(), then
    ip_local_out() onto the loopback: counted, seen by the pcap hook, delivered."""
    icmp_count(net, skb.v4, "Out", skb.data[0])
    if skb.v4 and not skb.ip_id:
        skb.ip_id = net.kernel.rng.randrange(1, 0x10000)     # ip_select_ident()
    for hook in net.dgram_wire:
        hook("icmpmsg", skb)
    ip_local_deliver(net, skb, IPPROTO_ICMP if skb.v4 else IPPROTO_ICMPV6)


def _rcv(net: "Net", skb: IcmpSkb) -> None:
    """Linux: icmp_rcv() / icmpv6_rcv(): InMsgs; a bad checksum is InCsumErrors and
    InErrors, a short message InErrors; then the type is counted and its handler runs:
    echo requests are answered (icmp_echo()), echo replies go to ping sockets
    (ping_rcv()), the rest is discarded."""
    group = "Icmp" if skb.v4 else "Icmp6"
    net.count(f"{group}.InMsgs")
    if not icmp_checksum_ok(skb):
        net.count(f"{group}.InCsumErrors")
        net.count(f"{group}.InErrors")
        return
    if len(skb.data) < ICMP_HDR_LEN:
        net.count(f"{group}.InErrors")
        return
    type_ = skb.data[0]
    net.count(f"{group}Msg.InType{type_}")
    name = (ICMP_MIB_NAMES if skb.v4 else ICMP6_MIB_NAMES).get(type_)
    if name is not None:
        net.count(f"{group}.In{name}")
    if skb.v4 and type_ > NR_ICMP_TYPES:
        net.count("Icmp.InErrors")
        return
    if type_ == (ICMP_ECHO if skb.v4 else ICMPV6_ECHO_REQUEST):
        icmp_echo(net, skb)
        return
    handler = ICMP_POINTERS.get((skb.v4, type_))
    if handler is not None:
        handler(net, skb)


def icmp_rcv(net: "Net", skb: IcmpSkb) -> None:
    """Linux: net/ipv4/icmp.c icmp_rcv() (see _rcv)."""
    _rcv(net, skb)


def icmpv6_rcv(net: "Net", skb: IcmpSkb) -> None:
    """Linux: net/ipv6/icmp.c icmpv6_rcv() (see _rcv)."""
    _rcv(net, skb)


def icmp_echo(net: "Net", skb: IcmpSkb) -> None:
    """Linux: icmp_echo() -> icmp_reply() / icmpv6_echo_reply(): the same message back
    with the type turned into a reply (code, id, sequence and payload kept), from the
    address it was sent to, the request's TOS, the default TTL, not fragmentable-marked
    (the reply socket's IP_PMTUDISC_DONT), checksummed anew. sysemu: no
    icmp_echo_ignore_all / icmp_ratelimit (loopback is not rate-limited by default)."""
    type_ = ICMP_ECHOREPLY if skb.v4 else ICMPV6_ECHO_REPLY
    reply = IcmpSkb(bytes([type_]) + skb.data[1:], skb.daddr, 0, skb.saddr, 0, skb.v4,
                    realtime(net), DEFAULT_TTL, skb.tos if skb.v4 else 0)
    reply.data = icmp_checksummed(reply)
    icmp_send_skb(net, reply)


INET_PROTOS[(True, IPPROTO_ICMP)] = icmp_rcv          # inet_add_protocol(&icmp_protocol)
INET_PROTOS[(False, IPPROTO_ICMPV6)] = icmpv6_rcv     # inet6_add_protocol(&icmpv6_protocol)
