"""Raw ICMP sockets: socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) and
socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6), for programs with CAP_NET_RAW.

Linux: net/ipv4/raw.c (raw_sendmsg, raw_local_deliver / raw_v4_input, icmp_filter,
raw_rcv, raw_seticmpfilter, raw_close), net/ipv6/raw.c (rawv6_sendmsg,
raw6_local_deliver, icmpv6_filter, rawv6_seticmpfilter, IPV6_CHECKSUM).

A raw socket's inet_num is its protocol. What it sends is the ICMP message as the
program built it (IPv4: its checksum too; ICMPv6: the kernel fills the checksum, offset
2, as for every ICMPv6 raw socket); every ICMP packet the loopback delivers reaches each
raw socket of its protocol whose addresses match and whose ICMP filter lets its type
through: IPv4 with its IP header, IPv6 without. The receive side is UDP's datagram
machinery (udp.py), as for ping sockets.

sysemu: only ICMP and ICMPv6 raw sockets are served (other protocols: EPROTONOSUPPORT),
and IP_HDRINCL is not (ENOPROTOOPT).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import IN6ADDR_ANY, INADDR_ANY, IPPROTO_ICMP, IPPROTO_ICMPV6
from sysemu.abi.socket import AF_INET, AF_INET6, SOCK_RAW
from sysemu.kernel.errors import SyscallError
from sysemu.net.core import Proto, mapped
from sysemu.net.ipv4.icmp import (IcmpSkb, csum, icmp_checksummed, icmp_dest, icmp_send_skb,
                                  realtime)
from sysemu.net.ipv4.ip_input import RAW_DELIVER
from sysemu.net.ipv4.route import LOOPBACK_IFINDEX
from sysemu.net.ipv4.udp import (DEFAULT_TTL, MSG_OOB, sock_queue_rcv_skb,
                                 udp_close, udp_cmsgs, udp_consume, udp_disconnect,
                                 udp_init_sock, udp_recvmsg)
from sysemu.net.ipv6.addrconf_core import IPV6_ADDR_ANY, IPV6_ADDR_LOOPBACK, ipv6_addr_type
from sysemu.net.sockaddr import decode_sockaddr_in, decode_sockaddr_in6

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

RAW_SERVED = {AF_INET: IPPROTO_ICMP, AF_INET6: IPPROTO_ICMPV6}


def raw_socks(net: "Net") -> list:
    """Linux: raw_v4_hashinfo / raw_v6_hashinfo: the live raw socks, in creation order."""
    socks = getattr(net, "raw_socks", None)
    if socks is None:
        socks = net.raw_socks = []
    return socks


def raw_init(net: "Net", sk: "Sock", protocol: int) -> None:
    """Linux: inet_create() for SOCK_RAW (inet_num = protocol, hashed at once) and
    raw_sk_init() / rawv6_init_sk() (an ICMPv6 socket's checksum at offset 2); the
    datagram queues are udp_init_sock()'s."""
    udp_init_sock(sk)
    sk.type = SOCK_RAW
    sk.protocol = protocol
    sk.sk_prot = raw_prot
    sk.num = protocol
    sk.reuse = True                     # inet_create(): INET_PROTOSW_REUSE (inetsw_array)
    sk.icmp_filter = 0                  # ICMP_FILTER: a bit per type blocked
    sk.icmp6_filter = bytes(32)         # ICMP6_FILTER: struct icmp6_filter
    sk.raw_checksum = 2 if sk.family == AF_INET6 else -1     # IPV6_CHECKSUM offset
    raw_socks(net).append(sk)


def raw_unhash(net: "Net", sk: "Sock") -> None:
    """Linux: raw_unhash_sk()."""
    socks = raw_socks(net)
    if sk in socks:
        socks.remove(sk)


def raw_sendmsg(net: "Net", sock, read, length: int, addr: bytes | None, flags: int) -> int:
    """Linux: raw_sendmsg() / rawv6_sendmsg(): EMSGSIZE above 64 KiB, EOPNOTSUPP for
    MSG_OOB, the destination (EINVAL short; EAFNOSUPPORT for another family, AF_UNSPEC
    let through on IPv4 as Linux does; EDESTADDRREQ unconnected), the route
    (ENETUNREACH; EACCES for broadcast without SO_BROADCAST), EMSGSIZE above one IP
    packet; then the message goes out as given (ICMPv6: with the checksum filled in,
    EINVAL when too short to hold it)."""
    sk = sock.sk
    v4 = sk.family == AF_INET
    if length > 0xFFFF:
        raise SyscallError(Errno.EMSGSIZE)
    if flags & MSG_OOB:
        raise SyscallError(Errno.ENOTSUP)
    saddr, daddr = icmp_dest(sk, addr, length, name_len6=24, unspec_ok=True,
                             mapped_errno=Errno.ENETUNREACH)
    data = read()
    ttl = sk.tcp_opts.get(("ip", 2), -1)
    skb = IcmpSkb(data, saddr, 0, daddr, 0, v4, realtime(net),
                  DEFAULT_TTL if ttl == -1 else ttl, sk.tcp_opts.get(("ip", 1), 0) if v4 else 0,
                  df=True)
    if not v4 and sk.raw_checksum >= 0:
        if len(data) < sk.raw_checksum + 2:
            raise SyscallError(Errno.EINVAL)
        skb.data = icmp_checksummed(skb)
    icmp_send_skb(net, skb)
    return length

def raw_sendmsg_ops(task, sock, it, flags: int, nonblock: bool, copied: int,
                    addr: bytes | None = None):
    """sock->ops->sendmsg of a raw socket (inet_sendmsg): one message of `it`'s bytes,
    never a wait: (bytes sent, None)."""
    return raw_sendmsg(sock.net, sock, lambda: it.read(0, it.count), it.count, addr, flags), None



def ip_header(skb: IcmpSkb) -> bytes:
    """The IPv4 header a raw socket reads in front of the message (no options)."""
    header = bytearray(b"\x45" + bytes([skb.tos]) + (20 + len(skb.data)).to_bytes(2, "big")
                       + skb.ip_id.to_bytes(2, "big") + (b"\x40\0" if skb.df else b"\0\0")
                       + bytes([skb.ttl, IPPROTO_ICMP]) + b"\0\0"
                       + skb.saddr[12:] + skb.daddr[12:])
    header[10:12] = csum(bytes(header)).to_bytes(2, "big")
    return bytes(header)


def _filtered(sk: "Sock", skb: IcmpSkb) -> bool:
    """Linux: icmp_filter() / icmpv6_filter(): the message's type is blocked."""
    type_ = skb.data[0] if skb.data else 0
    if skb.v4:
        return type_ < 32 and bool(sk.icmp_filter >> type_ & 1)
    word = int.from_bytes(sk.icmp6_filter[(type_ >> 5) * 4:(type_ >> 5) * 4 + 4], "little")
    return bool(word >> (type_ & 31) & 1)


def raw_local_deliver(net: "Net", skb: IcmpSkb, protocol: int) -> None:
    """Linux: raw_local_deliver() -> raw_v4_input() / raw6_local_deliver(): a copy for
    every raw socket of the protocol and family whose bound address (the packet's
    destination) and connected peer (its source) match, unless filtered out
    (raw_rcv() -> sock_queue_rcv_skb())."""
    for sk in list(raw_socks(net)):
        if sk.num != protocol or (sk.family == AF_INET) != skb.v4:
            continue
        if skb.v4:
            if sk.rcv_saddr not in (INADDR_ANY, skb.daddr[12:]):
                continue
            if sk.daddr != INADDR_ANY and mapped(sk.daddr) != skb.saddr:
                continue
        else:
            if sk.v6_rcv_saddr not in (IN6ADDR_ANY, skb.daddr):
                continue
            if sk.v6_daddr != IN6ADDR_ANY and sk.v6_daddr != skb.saddr:
                continue
        if sk.bound_dev_if and sk.bound_dev_if != LOOPBACK_IFINDEX:
            continue
        if _filtered(sk, skb):
            continue
        copy = IcmpSkb(**{**skb.__dict__})
        if skb.v4:
            copy.data = ip_header(skb) + skb.data
        sock_queue_rcv_skb(net, sk, copy)


def raw_recvmsg(net: "Net", sock, flags: int, nonblocking: bool,
                index: int = 0) -> "IcmpSkb | None":
    """Linux: raw_recvmsg() / rawv6_recvmsg(): EOPNOTSUPP for MSG_OOB, then the
    datagram as UDP's."""
    if flags & MSG_OOB:
        raise SyscallError(Errno.ENOTSUP)
    return udp_recvmsg(net, sock.sk, flags, nonblocking, index)


def raw_close(net: "Net", sk: "Sock", unread: bool = False) -> None:
    """Linux: raw_close() -> sk_common_release() (raw_unhash_sk())."""
    udp_close(net, sk, unread, unhash=raw_unhash)
    sk.num = 0


def raw_disconnect(net: "Net", sk: "Sock") -> None:
    """Linux: raw_prot.disconnect = __udp_disconnect(); the protocol stays (its
    inet_num is never unhashed by it: SOCK_BINDPORT_LOCK-like)."""
    num = sk.num
    udp_disconnect(net, sk, unhash=lambda net, sk: None)
    sk.num = num


def raw_get_port(net: "Net", sk: "Sock", snum: int) -> None:
    """A raw socket is never autobound: its inet_num is the protocol."""


def _nothing(*args) -> None:
    return None


raw_prot = Proto(name="RAW", close=raw_close, disconnect=raw_disconnect,
                 write_timer=_nothing, keepalive_timer=_nothing,
                 twsk_unique=lambda *args: False, get_port=raw_get_port,
                 consume=udp_consume, cmsgs=udp_cmsgs)

RAW_DELIVER.append(raw_local_deliver)


def raw_bind(net: "Net", sock, data: bytes, task) -> None:
    """Linux: raw_bind() / rawv6_bind(): only an address (EINVAL short or not closed;
    EADDRNOTAVAIL when not local)."""
    sk = sock.sk
    if sk.family == AF_INET:
        if len(data) < 16 or sk.state != 7:     # TCP_CLOSE
            raise SyscallError(Errno.EINVAL)
        addr = decode_sockaddr_in(data).addr
        if addr != INADDR_ANY and addr[0] != 127 and addr[0] >> 4 != 14 \
                and addr != b"\xff\xff\xff\xff":
            raise SyscallError(Errno.EADDRNOTAVAIL)
        sk.rcv_saddr = addr
        return
    if len(data) < 24:
        raise SyscallError(Errno.EINVAL)
    a = decode_sockaddr_in6(data + bytes(28 - len(data)))
    if a.family != AF_INET6:
        raise SyscallError(Errno.EINVAL)
    if ipv6_addr_type(a.addr) not in (IPV6_ADDR_ANY, IPV6_ADDR_LOOPBACK):
        raise SyscallError(Errno.EADDRNOTAVAIL)
    sk.v6_rcv_saddr = a.addr
