"""Ping sockets: socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and its IPv6 twin
(IPPROTO_ICMPV6), for the groups net.ipv4.ping_group_range allows.

Linux: net/ipv4/ping.c (ping_init_sock, ping_get_port, ping_unhash, ping_bind,
ping_common_sendmsg, ping_v4_sendmsg, ping_recvmsg, ping_rcv, ping_lookup,
ping_close), net/ipv6/ping.c (ping_v6_sendmsg).

A ping socket's "port" is the echo identifier: bind() or the first send picks it
(ping_get_port(): a free one after a rover), every echo request it sends carries it in
place of the program's, and the replies that carry it are queued for it (ping_rcv()).
The receive side is UDP's datagram machinery (udp.py: the queue, the placeholder
records, recvmsg, control messages); only the counting differs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import IN6ADDR_ANY, INADDR_ANY, IPPROTO_ICMP, IPPROTO_ICMPV6
from sysemu.abi.socket import AF_INET, AF_INET6, AF_UNSPEC
from sysemu.kernel.errors import SyscallError
from sysemu.net.core import SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, Proto
from sysemu.net.ipv4.icmp import (ICMP_ECHO, ICMP_ECHOREPLY, ICMP_EXT_ECHO, ICMP_HDR_LEN,
                                  ICMP_POINTERS, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST,
                                  ICMPV6_EXT_ECHO_REQUEST, IcmpSkb, icmp_checksummed, icmp_dest,
                                  icmp_send_skb, realtime)
from sysemu.net.ipv4.route import (LOOPBACK_IFINDEX, RTN_BROADCAST,
                                   RTN_LOCAL, RTN_MULTICAST, inet_addr_type)
from sysemu.net.ipv4.udp import (DEFAULT_TTL, MSG_OOB, inet_autobind, sock_queue_rcv_skb,
                                 udp_close, udp_cmsgs, udp_consume, udp_disconnect,
                                 udp_init_sock, udp_recvmsg)
from sysemu.net.ipv6.addrconf_core import (IPV6_ADDR_ANY, IPV6_ADDR_LINKLOCAL,
                                           IPV6_ADDR_LOOPBACK, IPV6_ADDR_MAPPED,
                                           IPV6_ADDR_MULTICAST, ipv6_addr_type)
from sysemu.net.sockaddr import decode_sockaddr_in, decode_sockaddr_in6

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

GID_T_MAX = 0xFFFFFFFE


class PingTable:
    """Linux: struct ping_table (shared by IPv4 and IPv6 ping sockets) and
    ping_port_rover. sysemu: per sandbox, the rover starting at a random point (Linux's
    is one counter for the whole machine, so a program cannot predict it either)."""

    def __init__(self, rng) -> None:
        self.socks: list = []
        self.rover = rng.randrange(0x10000)


def ping_table(net: "Net") -> PingTable:
    table = getattr(net, "ping_table", None)
    if table is None:
        table = net.ping_table = PingTable(net.kernel.rng)
    return table


def ping_init_sock(task, net: "Net", sk: "Sock") -> None:
    """Linux: ping_init_sock(): an IPv6 ping socket is v6only; the caller's effective
    group, or one of its supplementary groups, must be within
    net.ipv4.ping_group_range (EACCES). Then the datagram sock (udp_init_sock()'s
    buffers and queues) with ping's functions."""
    low, high = net.sysctl("net.ipv4.ping_group_range")
    egid, groups = task.groups()
    if not any(low <= gid <= high for gid in (egid, *groups)):
        raise SyscallError(Errno.EACCES)
    udp_init_sock(sk)
    sk.protocol = IPPROTO_ICMP if sk.family == AF_INET else IPPROTO_ICMPV6
    sk.sk_prot = ping_prot
    if sk.family == AF_INET6:
        sk.ipv6only = True
    sk.reuse = True                     # inet_create(): INET_PROTOSW_REUSE (inetsw_array)


def ping_get_port(net: "Net", sk: "Sock", ident: int) -> None:
    """Linux: ping_get_port(): 0 takes the first identifier after the rover that no ping
    socket holds (EADDRINUSE when all 65535 are); a given one conflicts with any other
    holder unless both have SO_REUSEADDR (whatever their families: one table), which
    ping sockets have from the start (INET_PROTOSW_REUSE)."""
    table = ping_table(net)
    if not ident:
        result = table.rover
        for _ in range(0x10000):
            result = (result + 1) & 0xFFFF or 1
            if not any(other.num == result for other in table.socks):
                table.rover = ident = result
                break
        else:
            raise SyscallError(Errno.EADDRINUSE)
    else:
        for other in table.socks:
            if other.num == ident and other is not sk and (not other.reuse or not sk.reuse):
                raise SyscallError(Errno.EADDRINUSE)
    sk.num = ident
    if sk not in table.socks:
        table.socks.insert(0, sk)       # sk_add_node_rcu(): the newest is found first


def ping_unhash(net: "Net", sk: "Sock") -> None:
    """Linux: ping_unhash(): the identifier is free again."""
    table = ping_table(net)
    if sk in table.socks:
        table.socks.remove(sk)
    sk.num = 0


def _check_bind_addr(net: "Net", sk: "Sock", data: bytes) -> tuple[bytes, int]:
    """Linux: ping_check_bind_addr(): (the address as the socket keeps it, the
    identifier). EINVAL (short), EAFNOSUPPORT (AF_UNSPEC only with INADDR_ANY),
    EADDRNOTAVAIL for multicast, broadcast and addresses that are not local; IPv6:
    only ::, ::1 (EINVAL for a v4-mapped or multicast address, or link-local without a
    scope)."""
    if sk.family == AF_INET:
        addr = decode_sockaddr_in(data)
        if addr.family != AF_INET and not (addr.family == AF_UNSPEC
                                           and addr.addr == INADDR_ANY):
            raise SyscallError(Errno.EAFNOSUPPORT)
        if addr.addr != INADDR_ANY and (inet_addr_type(addr.addr) != RTN_LOCAL
                                        and not (sk.freebind or sk.transparent
                                                 or net.sysctl("net.ipv4.ip_nonlocal_bind"))
                                        or inet_addr_type(addr.addr) in (RTN_MULTICAST,
                                                                         RTN_BROADCAST)):
            raise SyscallError(Errno.EADDRNOTAVAIL)
        return addr.addr, addr.port
    if len(data) < 28:
        raise SyscallError(Errno.EINVAL)
    addr = decode_sockaddr_in6(data)
    if addr.family != AF_INET6:
        raise SyscallError(Errno.EAFNOSUPPORT)
    kind = ipv6_addr_type(addr.addr)
    if kind in (IPV6_ADDR_MAPPED, IPV6_ADDR_MULTICAST) or (
            kind == IPV6_ADDR_LINKLOCAL and not addr.scope_id):
        raise SyscallError(Errno.EINVAL)
    if addr.scope_id and addr.scope_id != LOOPBACK_IFINDEX:
        raise SyscallError(Errno.ENODEV)
    if kind not in (IPV6_ADDR_ANY, IPV6_ADDR_LOOPBACK) and not sk.freebind:
        raise SyscallError(Errno.EADDRNOTAVAIL)
    return addr.addr, addr.port


def ping_bind(net: "Net", sock, data: bytes, task) -> None:
    """Linux: ping_bind(): the address checks, EINVAL when already bound, the
    identifier (EADDRINUSE), then the address; no privileged identifiers."""
    sk = sock.sk
    addr, ident = _check_bind_addr(net, sk, data)
    if sk.num:
        raise SyscallError(Errno.EINVAL)
    try:
        ping_get_port(net, sk, ident)
    except SyscallError:
        raise SyscallError(Errno.EADDRINUSE) from None
    if sk.family == AF_INET:
        sk.rcv_saddr = addr
        if addr != INADDR_ANY:
            sk.userlocks |= SOCK_BINDADDR_LOCK
    else:
        sk.v6_rcv_saddr = addr
        if addr != IN6ADDR_ANY:
            sk.userlocks |= SOCK_BINDADDR_LOCK
    if ident:
        sk.userlocks |= SOCK_BINDPORT_LOCK
    sk.daddr, sk.v6_daddr, sk.dport = INADDR_ANY, IN6ADDR_ANY, 0


def ping_supported(v4: bool, type_: int, code: int) -> bool:
    """Linux: ping_supported(): echo requests (and RFC 8335 extended echo), code 0."""
    if code:
        return False
    return type_ in ((ICMP_ECHO, ICMP_EXT_ECHO) if v4
                     else (ICMPV6_ECHO_REQUEST, ICMPV6_EXT_ECHO_REQUEST))


def ping_sendmsg(net: "Net", sock, read, length: int, addr: bytes | None, flags: int) -> int:
    """Linux: inet_sendmsg() (autobind: ping_get_port(0)) -> ping_v4_sendmsg() /
    ping_v6_sendmsg() -> ping_common_sendmsg(): EMSGSIZE above 64 KiB, EINVAL below an
    ICMP header, EOPNOTSUPP for MSG_OOB, the header copied (EFAULT), EINVAL for a type
    that is not an echo request; then the destination (EINVAL short, EAFNOSUPPORT,
    EDESTADDRREQ unconnected; IPv6: EINVAL for a v4-mapped one), the route
    (ENETUNREACH, EACCES for broadcast without SO_BROADCAST). The request goes out with
    the socket's identifier in place of the program's, checksummed by the kernel."""
    sk = sock.sk
    v4 = sk.family == AF_INET
    inet_autobind(net, sk)
    if length > 0xFFFF:
        raise SyscallError(Errno.EMSGSIZE)
    if length < ICMP_HDR_LEN:
        raise SyscallError(Errno.EINVAL)
    if flags & MSG_OOB:
        raise SyscallError(Errno.ENOTSUP)
    data = read()
    if not ping_supported(v4, data[0], data[1]):
        raise SyscallError(Errno.EINVAL)
    saddr, daddr = icmp_dest(sk, addr, length, name_len6=28, unspec_ok=False,
                             mapped_errno=Errno.EINVAL)
    ttl = sk.tcp_opts.get(("ip", 2), -1)
    message = data[:4] + sk.num.to_bytes(2, "big") + data[6:]
    skb = IcmpSkb(message, saddr, 0, daddr, 0, v4, realtime(net),
                  DEFAULT_TTL if ttl == -1 else ttl, sk.tcp_opts.get(("ip", 1), 0) if v4 else 0,
                  df=True)
    skb.data = icmp_checksummed(skb)
    icmp_send_skb(net, skb)
    return length

def ping_sendmsg_ops(task, sock, it, flags: int, nonblock: bool, copied: int,
                     addr: bytes | None = None):
    """sock->ops->sendmsg of a ping socket (inet_sendmsg): one message of `it`'s bytes,
    never a wait: (bytes sent, None)."""
    return ping_sendmsg(sock.net, sock, lambda: it.read(0, it.count), it.count, addr, flags), None



def ping_lookup(net: "Net", skb: IcmpSkb, ident: int) -> "Sock | None":
    """Linux: ping_lookup(): the first ping socket (the newest) of the packet's family
    holding the identifier, bound to the packet's destination or to the wildcard."""
    for sk in ping_table(net).socks:
        if sk.num != ident:
            continue
        if skb.v4:
            if sk.family != AF_INET or sk.rcv_saddr not in (INADDR_ANY, skb.daddr[12:]):
                continue
        elif sk.family != AF_INET6 or sk.v6_rcv_saddr not in (IN6ADDR_ANY, skb.daddr):
            continue
        if sk.bound_dev_if and sk.bound_dev_if != LOOPBACK_IFINDEX:
            continue
        return sk
    return None


def ping_rcv(net: "Net", skb: IcmpSkb) -> None:
    """Linux: ping_rcv(): an echo reply goes, whole (ICMP header included), to the ping
    socket its identifier names (ping_queue_rcv_skb()); none: dropped."""
    sk = ping_lookup(net, skb, int.from_bytes(skb.data[4:6], "big"))
    if sk is not None:
        sock_queue_rcv_skb(net, sk, IcmpSkb(**{**skb.__dict__}))


def ping_recvmsg(net: "Net", sock, flags: int, nonblocking: bool,
                 index: int = 0) -> "IcmpSkb | None":
    """Linux: ping_recvmsg(): EOPNOTSUPP for MSG_OOB, then the datagram as UDP's."""
    if flags & MSG_OOB:
        raise SyscallError(Errno.ENOTSUP)
    return udp_recvmsg(net, sock.sk, flags, nonblocking, index)


def ping_close(net: "Net", sk: "Sock", unread: bool = False) -> None:
    """Linux: ping_close() -> sk_common_release() (ping_unhash())."""
    udp_close(net, sk, unread, unhash=ping_unhash)


def ping_disconnect(net: "Net", sk: "Sock") -> None:
    """Linux: ping_prot.disconnect = __udp_disconnect() (its unhash: ping_unhash())."""
    udp_disconnect(net, sk, unhash=ping_unhash)


def _nothing(*args) -> None:
    return None


ping_prot = Proto(name="PING", close=ping_close, disconnect=ping_disconnect,
                  write_timer=_nothing, keepalive_timer=_nothing,
                  twsk_unique=lambda *args: False, get_port=ping_get_port,
                  consume=udp_consume, cmsgs=udp_cmsgs, trunc_real_len=False)

ICMP_POINTERS[(True, ICMP_ECHOREPLY)] = ping_rcv
ICMP_POINTERS[(False, ICMPV6_ECHO_REPLY)] = ping_rcv
