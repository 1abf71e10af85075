"""UDP over IPv4 and IPv6 on the loopback: ports, connect, the receive queue, ICMP errors.

Linux: net/ipv4/udp.c (udp_lib_get_port, udp_lib_lport_inuse, udp_lib_unhash,
__udp4_lib_lookup, udp_sendmsg, __udp4_lib_rcv, __udp_enqueue_schedule_skb,
udp_recvmsg, __udp4_lib_err, __udp_disconnect, udp_ioctl, udp_destroy_sock),
net/ipv6/udp.c (the IPv6 halves), net/ipv4/datagram.c and net/ipv6/datagram.c
(ip4_datagram_connect, ip6_datagram_connect), net/ipv4/icmp.c (icmp_send of port
unreachable), net/ipv4/ip_sockglue.c (ip_recv_error, ip_icmp_error).

A datagram on the virtual wire is an `SkBuff` with 16-byte addresses (IPv4 v4-mapped,
as TCP's segments). Delivery is immediate (loopback). The receive queue of a sock is
`sk.receive_queue` (SkBuffs), charged to `sk.rmem_alloc` by their truesize; the host
mirrors each queued datagram into the program's placeholder (kernel.host.datagram_queued)
and is told when sysemu's own recvmsg takes one (datagram_dequeued). A program may also
read the placeholder natively: `datagram_sync` asks the host how many datagrams at the
head it took that way, and they leave the queue as if recvmsg had taken them.
"""
from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import (IN6ADDR_ANY, INADDR_ANY, IPPROTO_UDP, V4MAPPED_PREFIX, TcpStates)
from sysemu.abi.poll import (POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM,
                             POLLWRBAND, POLLWRNORM)
from sysemu.abi.socket import (AF_INET, AF_INET6, AF_UNSPEC, RCV_SHUTDOWN, SHUTDOWN_MASK,
                               SOCK_DGRAM)
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from sysemu.net.core import SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, Proto, mapped, sock_intr_errno
from sysemu.net.ipv4.inet_connection_sock import inet_rcv_saddr_equal
from sysemu.net.ipv4.inet_hashtables import inet_get_local_port_range
from sysemu.net.ipv4.route import (INADDR_LOOPBACK, LOOPBACK_IFINDEX, RTN_BROADCAST,
                                   RTN_LOCAL, RTN_MULTICAST, inet_addr_type)
from sysemu.net.ipv6.addrconf_core import (IPV6_ADDR_ANY, IPV6_ADDR_LOOPBACK,
                                           IPV6_ADDR_MAPPED, ipv6_addr_type)
from sysemu.net.sockaddr import decode_sockaddr_in, decode_sockaddr_in6, sa_family

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

S = TcpStates

# Linux: net.core.rmem_default / wmem_default (a UDP socket's SO_RCVBUF / SO_SNDBUF)
UDP_RMEM_DEFAULT = 212992
UDP_WMEM_DEFAULT = 212992
# Linux: the largest payloads ip_append_data() / ip6_append_data() accept
UDP_MAX_PAYLOAD4 = 0xFFFF - 20 - 8       # 65507
UDP_MAX_PAYLOAD6 = 0xFFFF - 8            # 65527
UDP_MAX_LEN = 0xFFFF
# A loopback datagram's skb (what it charges to sk_rmem_alloc): headroom and headers,
# then the data and skb_shared_info in one kmalloc'd head (a power of two, or the small-head
# cache's 576 bytes), plus the sk_buff itself; past SKB_MAX_ALLOC the data go to page frags.
# Fits every size measured on 6.18 (rx_queue of /proc/net/udp for 0..65507 bytes).
SKB_HEADROOM = 64                   # LL_RESERVED_SPACE(lo) + IP + UDP headers, aligned
SKB_SHINFO = 320                    # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
SKB_STRUCT = 256                    # SKB_DATA_ALIGN(sizeof(struct sk_buff))
SKB_SMALL_HEAD = 576                # SKB_SMALL_HEAD_CACHE_SIZE
SKB_MAX_ALLOC = 16384 - SKB_SHINFO  # SKB_WITH_OVERHEAD(PAGE_SIZE << 2)
# Linux: icmp_send() quotes at most 576 bytes of IP (RFC 1812 4.3.2.3): headers of the
# ICMP packet, then the offending IP + UDP headers and what fits of the payload
ICMP_QUOTE4 = 576 - 20 - 8 - 20 - 8
ICMP_QUOTE6 = 1280 - 40 - 8 - 40 - 8     # IPV6_MIN_MTU
ICMP_DEST_UNREACH, ICMP_PORT_UNREACH = 3, 3
ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH = 1, 4
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
DEFAULT_TTL = 64
UDP_HTABLE_SLOTS = 128       # /proc/net/udp's "sl" column: the port's hash slot

MSG_OOB = 0x1
MSG_PEEK = 0x2
MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40
MSG_ERRQUEUE = 0x2000


def skb_truesize(length: int, v4: bool = True) -> int:
    """What a datagram of `length` bytes charges to sk_rmem_alloc (see above). Linux:
    ip_append_data()'s sock_alloc_send_skb() with kmalloc_size_roundup()."""
    head = length + SKB_HEADROOM + (0 if v4 else 20)
    if head > SKB_MAX_ALLOC:
        return length + SKB_SMALL_HEAD + SKB_STRUCT
    need = head + SKB_SHINFO
    if need <= SKB_SMALL_HEAD:
        return SKB_SMALL_HEAD + SKB_STRUCT
    return (1 << (need - 1).bit_length()) + SKB_STRUCT


@dataclass
class SkBuff:
    """One UDP datagram (Linux: struct sk_buff with its IP and UDP headers). Addresses
    are 16-byte (IPv4 v4-mapped); `v4` tells which wire carried it. For an error-queue
    entry, `ee` is (errno, origin, type, code) and the addresses are the offending
    datagram's (its destination is msg_name)."""
    data: bytes
    saddr: bytes
    sport: int
    daddr: bytes
    dport: int
    v4: bool
    tstamp: float = 0.0
    ttl: int = DEFAULT_TTL
    tos: int = 0
    truesize: int = 0
    ee: tuple[int, int, int, int] | None = None
    offender: bytes = b""
    taken: bool = False          # its record left the placeholder (sysemu's recvmsg)


@dataclass
class UdpTable:
    """Linux: struct udp_table (udp_table / udptable->hash): port -> socks bound to it,
    in bind order."""
    ports: dict[int, list] = field(default_factory=dict)


# -- the sock ------------------------------------------------------------------------

def udp_init_sock(sk: "Sock") -> None:
    """Linux: udp_init_sock() / udpv6_init_sock() with sock_init_data()'s buffers."""
    sk.type = SOCK_DGRAM
    sk.protocol = IPPROTO_UDP
    sk.sk_prot = udp_prot
    sk.rcvbuf = UDP_RMEM_DEFAULT
    sk.sndbuf = UDP_WMEM_DEFAULT
    sk.receive_queue = deque()
    sk.error_queue = deque()
    sk.rmem_alloc = 0
    sk.drops = 0
    sk.recverr = False                  # IP_RECVERR / IPV6_RECVERR
    sk.cmsg_flags = set()               # IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, ...
    sk.tstamp_kind = 0                  # SO_TIMESTAMP(NS)_OLD/_NEW: the cmsg type, or 0
    sk.mc_loop = True                   # IP_MULTICAST_LOOP
    sk.mc_ttl = 1
    sk.mc_addr = INADDR_ANY             # IP_MULTICAST_IF
    sk.mc_index = 0
    sk.mc_all = True                    # IP_MULTICAST_ALL


def udp_lib_lport_inuse(net: "Net", num: int, sk: "Sock") -> bool:
    """Linux: udp_lib_lport_inuse(): another sock on `num` that `sk` conflicts with:
    not both SO_REUSEADDR, devices overlapping, not both SO_REUSEPORT of one uid, and
    receive addresses that overlap (wildcards included)."""
    for sk2 in net.udp_table.ports.get(num, ()):
        if sk2 is sk:
            continue
        if ((not sk2.reuse or not sk.reuse)
                and (not sk2.bound_dev_if or not sk.bound_dev_if
                     or sk2.bound_dev_if == sk.bound_dev_if)
                and (not sk2.reuseport or not sk.reuseport or sk2.uid != sk.uid)
                and inet_rcv_saddr_equal(sk, sk2, True)):
            return True
    return False


def udp_lib_get_port(net: "Net", sk: "Sock", snum: int) -> None:
    """Linux: udp_lib_get_port(): own `snum`, or (0) a port drawn at random from
    ip_local_port_range that nothing conflicting holds; EADDRINUSE otherwise.
    sysemu: the draw walks the range from a random start (Linux strides through its
    hash slots); the random source is the sandbox's (--seed)."""
    if not snum:
        low, high = inet_get_local_port_range(net)
        remaining = high - low + 1
        first = net.kernel.rng.randrange(remaining)
        for i in range(remaining):
            port = low + (first + i) % remaining
            if not udp_lib_lport_inuse(net, port, sk):
                snum = port
                break
        else:
            raise SyscallError(Errno.EADDRINUSE)
    elif udp_lib_lport_inuse(net, snum, sk):
        raise SyscallError(Errno.EADDRINUSE)
    sk.num = snum
    net.udp_table.ports.setdefault(snum, []).append(sk)


def udp_lib_unhash(net: "Net", sk: "Sock") -> None:
    """Linux: udp_lib_unhash(): the port is free again."""
    owners = net.udp_table.ports.get(sk.num)
    if owners is not None and sk in owners:
        owners.remove(sk)
        if not owners:
            del net.udp_table.ports[sk.num]
    sk.num = 0


def inet_autobind(net: "Net", sk: "Sock") -> None:
    """Linux: af_inet.c inet_autobind(): an unbound socket gets an ephemeral port
    (sk_prot->get_port(sk, 0); EAGAIN when none is free)."""
    if not sk.num:
        try:
            sk.sk_prot.get_port(net, sk, 0)
        except SyscallError:
            raise SyscallError(Errno.EAGAIN) from None


# -- connect / disconnect -----------------------------------------------------------------

def _route4(sk: "Sock", daddr: bytes) -> bytes:
    """ip_route_connect()/ip_route_output_flow() for a datagram socket on a loopback-only
    namespace: the source address; ENETUNREACH where nothing routes; EACCES for a
    broadcast without SO_BROADCAST. sysemu: multicast goes out lo only with
    IP_MULTICAST_IF (the namespace has no multicast route)."""
    kind = inet_addr_type(daddr)
    if kind == RTN_LOCAL:
        return INADDR_LOOPBACK if sk.rcv_saddr == INADDR_ANY else sk.rcv_saddr
    if kind == RTN_BROADCAST and daddr[0] == 127:
        if not sk.sockflags.get(6):                     # SO_BROADCAST
            raise SyscallError(Errno.EACCES)
        return INADDR_LOOPBACK if sk.rcv_saddr == INADDR_ANY else sk.rcv_saddr
    if kind == RTN_MULTICAST and (sk.mc_index == LOOPBACK_IFINDEX
                                  or sk.mc_addr[:1] == b"\x7f"):
        return sk.mc_addr if sk.mc_addr != INADDR_ANY else INADDR_LOOPBACK
    raise SyscallError(Errno.ENETUNREACH)


def _local_if_any(sk: "Sock", daddr: bytes) -> bytes:
    """Linux: ip_route_output_key_hash_rcu(): no destination means this host: the source
    address if there is one, else 127.0.0.1 (so connect/sendto 0.0.0.0 reach it)."""
    if daddr != INADDR_ANY:
        return daddr
    return sk.rcv_saddr if sk.rcv_saddr != INADDR_ANY else INADDR_LOOPBACK


def ip4_datagram_connect(net: "Net", sk: "Sock", data: bytes) -> None:
    """Linux: net/ipv4/datagram.c __ip4_datagram_connect(): EINVAL (short), EAFNOSUPPORT,
    the route (source address if unbound), then the peer; the sock is ESTABLISHED."""
    addr = decode_sockaddr_in(data)
    if addr.family != AF_INET:
        raise SyscallError(Errno.EAFNOSUPPORT)
    daddr = _local_if_any(sk, addr.addr)
    saddr = _route4(sk, daddr)
    if sk.rcv_saddr == INADDR_ANY:
        sk.rcv_saddr = saddr
    sk.daddr = daddr
    sk.dport = addr.port
    sk.state = S.TCP_ESTABLISHED


def ip6_datagram_connect(net: "Net", sk: "Sock", data: bytes) -> None:
    """Linux: net/ipv6/datagram.c __ip6_datagram_connect(): AF_INET addresses and
    v4-mapped ones connect the IPv4 side (not on a v6only socket: ENETUNREACH);
    EINVAL below SIN6_LEN_RFC2133; ::1 is the only IPv6 destination with a route."""
    if sa_family(data) == AF_INET:
        if sk.ipv6only:
            raise SyscallError(Errno.EAFNOSUPPORT)
        ip4_datagram_connect(net, sk, data)
        sk.v6_daddr = mapped(sk.daddr)
        if sk.v6_rcv_saddr == IN6ADDR_ANY:
            sk.v6_rcv_saddr = mapped(sk.rcv_saddr)
        return
    addr = decode_sockaddr_in6(data)
    if addr.family != AF_INET6:
        raise SyscallError(Errno.EAFNOSUPPORT)
    daddr = addr.addr
    kind = ipv6_addr_type(daddr)
    if kind == IPV6_ADDR_ANY:
        daddr = bytes(15) + b"\1"                       # connect to :: means ::1
        kind = IPV6_ADDR_LOOPBACK
    if kind == IPV6_ADDR_MAPPED:
        if sk.ipv6only:
            raise SyscallError(Errno.ENETUNREACH)
        v4 = _local_if_any(sk, daddr[12:])
        daddr = mapped(v4)
        saddr = _route4(sk, v4)
        if sk.rcv_saddr == INADDR_ANY:
            sk.rcv_saddr = saddr
        if sk.v6_rcv_saddr == IN6ADDR_ANY:
            sk.v6_rcv_saddr = mapped(sk.rcv_saddr)
        sk.daddr = v4
        sk.v6_daddr = daddr
        sk.dport = addr.port
        sk.state = S.TCP_ESTABLISHED
        return
    if kind != IPV6_ADDR_LOOPBACK:
        raise SyscallError(Errno.ENETUNREACH)
    if sk.v6_rcv_saddr[:12] == V4MAPPED_PREFIX and sk.v6_rcv_saddr != mapped(INADDR_ANY):
        raise SyscallError(Errno.ENETUNREACH)       # bound to an IPv4 address
    if sk.v6_rcv_saddr == IN6ADDR_ANY:
        sk.v6_rcv_saddr = daddr
    sk.v6_daddr = daddr
    sk.daddr = b"\0\0\0\0"
    sk.dport = addr.port
    sk.state = S.TCP_ESTABLISHED


def udp_disconnect(net: "Net", sk: "Sock", unhash=None) -> None:
    """Linux: __udp_disconnect(): connect(AF_UNSPEC): no peer; the source address goes
    unless bind() set it, the port unless bind() chose it (sk_prot->unhash: `unhash`,
    udp_lib_unhash() by default)."""
    sk.state = S.TCP_CLOSE
    sk.daddr = INADDR_ANY
    sk.v6_daddr = IN6ADDR_ANY
    sk.dport = 0
    sk.bound_dev_if = 0
    if not sk.userlocks & SOCK_BINDADDR_LOCK:
        sk.rcv_saddr = INADDR_ANY
        sk.v6_rcv_saddr = IN6ADDR_ANY
    if not sk.userlocks & SOCK_BINDPORT_LOCK:
        (unhash or udp_lib_unhash)(net, sk)


def inet_dgram_connect(net: "Net", sock, data: bytes, nonblocking: bool) -> int:
    """Linux: af_inet.c inet_dgram_connect(): EINVAL below sa_family; AF_UNSPEC
    disconnects; autobind, then the family's datagram connect."""
    sk = sock.sk
    if sa_family(data) == AF_UNSPEC:
        sk.sk_prot.disconnect(net, sk)
        return 0
    inet_autobind(net, sk)
    if sk.family == AF_INET:
        ip4_datagram_connect(net, sk, data)
    else:
        ip6_datagram_connect(net, sk, data)
    return 0


# -- sending -----------------------------------------------------------------------------

def _wire_dest(sk: "Sock", addr: bytes | None) -> tuple[bytes, int, bool]:
    """The destination of a send: (16-byte address, port, over IPv4?). Linux:
    udp_sendmsg() / udpv6_sendmsg()'s address checks: EINVAL (short), EAFNOSUPPORT,
    EINVAL for port 0 (IPv6 too), EDESTADDRREQ when unconnected without an address."""
    if not addr:
        if sk.state != S.TCP_ESTABLISHED:
            raise SyscallError(Errno.EDESTADDRREQ)
        if sk.family == AF_INET or sk.v6_daddr[:12] == V4MAPPED_PREFIX:
            return mapped(sk.daddr), sk.dport, True
        return sk.v6_daddr, sk.dport, False
    if sk.family == AF_INET:
        a = decode_sockaddr_in(addr)
        if a.family != AF_INET and a.family != AF_UNSPEC:
            raise SyscallError(Errno.EAFNOSUPPORT)
        if not a.port:
            raise SyscallError(Errno.EINVAL)
        return mapped(a.addr), a.port, True
    if sa_family(addr) == AF_INET and not sk.ipv6only:
        a = decode_sockaddr_in(addr)
        if not a.port:
            raise SyscallError(Errno.EINVAL)
        return mapped(a.addr), a.port, True
    if len(addr) < 24:
        raise SyscallError(Errno.EINVAL)
    a = decode_sockaddr_in6(addr)
    if a.family != AF_INET6:
        raise SyscallError(Errno.EAFNOSUPPORT)
    if not a.port:
        raise SyscallError(Errno.EINVAL)
    if a.addr[:12] == V4MAPPED_PREFIX:
        if sk.ipv6only:
            raise SyscallError(Errno.ENETUNREACH)
        return a.addr, a.port, True
    daddr = a.addr if a.addr != IN6ADDR_ANY else bytes(15) + b"\1"
    return daddr, a.port, False


def udp_sendmsg(net: "Net", sk: "Sock", read, length: int, addr: bytes | None,
                flags: int) -> int:
    """Linux: inet_sendmsg() (autobind) -> udp_sendmsg() / udpv6_sendmsg(): EMSGSIZE
    above 64 KiB, EOPNOTSUPP for MSG_OOB, the destination's checks, EMSGSIZE above what
    one IP packet holds, a pending error (sock_alloc_send_skb()), then the payload is
    copied (`read()`: EFAULT) and the datagram goes out on the loopback."""
    if length > UDP_MAX_LEN:
        raise SyscallError(Errno.EMSGSIZE)
    if flags & MSG_OOB:
        raise SyscallError(Errno.ENOTSUP)
    net.kernel.host.take_closes()       # a socket the program closed is gone by now
    inet_autobind(net, sk)
    daddr, dport, v4 = _wire_dest(sk, addr)
    if v4:
        daddr = mapped(_local_if_any(sk, daddr[12:]))
        saddr = mapped(_route4(sk, daddr[12:]))
    else:
        if ipv6_addr_type(daddr) != IPV6_ADDR_LOOPBACK:
            raise SyscallError(Errno.ENETUNREACH)
        if sk.v6_rcv_saddr[:12] == V4MAPPED_PREFIX and sk.v6_rcv_saddr != mapped(INADDR_ANY):
            raise SyscallError(Errno.ENETUNREACH)
        saddr = daddr
    if length > (UDP_MAX_PAYLOAD4 if v4 else UDP_MAX_PAYLOAD6):
        raise SyscallError(Errno.EMSGSIZE)
    if sk.sk_err:
        err, sk.sk_err = sk.sk_err, 0
        net.kernel.host.datagram_error(sk)
        raise SyscallError(err)
    data = read()
    return udp_send_skb(net, sk, data, saddr, daddr, dport, v4)


def udp_sendmsg_ops(task, sock, it, flags: int, nonblock: bool, copied: int,
                    addr: bytes | None = None):
    """sock->ops->sendmsg of a UDP socket (inet_sendmsg): one datagram of `it`'s bytes,
    never a wait: (bytes sent, None)."""
    return udp_sendmsg(sock.net, sock.sk, lambda: it.read(0, it.count), it.count, addr,
                       flags), None


def udp_recvmsg_ops(net: "Net", sock, flags: int, nonblocking: bool,
                    index: int = 0) -> "SkBuff | None":
    """sock->ops->recvmsg of a UDP socket (inet_recvmsg): the datagram to copy out."""
    return udp_recvmsg(net, sock.sk, flags, nonblocking, index)


def udp_send_skb(net: "Net", sk: "Sock", data: bytes, saddr: bytes, daddr: bytes,
                 dport: int, v4: bool) -> int:
    """Linux: udp_send_skb() -> ip_send_skb(): counted, then onto the loopback."""
    ttl = sk.tcp_opts.get(("ip", 2), -1)
    clock = net.kernel.clock
    skb = SkBuff(data, saddr, sk.num, daddr, dport, v4,
                 clock.realtime() if hasattr(clock, "realtime") else clock.now(),
                 DEFAULT_TTL if ttl == -1 else ttl, sk.tcp_opts.get(("ip", 1), 0),
                 skb_truesize(len(data), v4))
    net.count("Udp.OutDatagrams" if v4 else "Udp6.OutDatagrams")
    udp_rcv(net, skb)
    return len(data)


# -- receiving (the loopback side) --------------------------------------------------------

def _compute_score(sk: "Sock", skb: SkBuff, bound: bytes) -> int:
    """Linux: udp.c compute_score() / udp6 compute_score(): -1 when `sk` cannot take
    the datagram, else higher for a more specific match. `bound` is the receive address
    this pass looks for (the destination, then the wildcard)."""
    if sk.num != skb.dport:
        return -1
    if skb.v4:
        if sk.family == AF_INET6 and sk.ipv6only:
            return -1
        if sk.rcv_saddr != bound:
            return -1
        score = 2 if sk.family == AF_INET else 1
        if sk.daddr != INADDR_ANY:
            if mapped(sk.daddr) != skb.saddr:
                return -1
            score += 4
        if sk.dport:
            if sk.dport != skb.sport:
                return -1
            score += 4
    else:
        if sk.family != AF_INET6 or sk.v6_rcv_saddr != bound:
            return -1
        score = 0
        if sk.v6_daddr != IN6ADDR_ANY:
            if sk.v6_daddr != skb.saddr:
                return -1
            score += 1
        if sk.dport:
            if sk.dport != skb.sport:
                return -1
            score += 1
    if sk.bound_dev_if:
        if sk.bound_dev_if != LOOPBACK_IFINDEX:
            return -1
        score += 4 if skb.v4 else 1
    return score


def udp_lib_lookup(net: "Net", skb: SkBuff) -> "Sock | None":
    """Linux: __udp4_lib_lookup() / __udp6_lib_lookup(): the best-scoring sock bound to
    the destination address, else to the wildcard; among an SO_REUSEPORT group of equal
    score one is chosen by a hash of the 4-tuple (reuseport_select_sock())."""
    owners = net.udp_table.ports.get(skb.dport)
    if not owners:
        return None
    dest = skb.daddr[12:] if skb.v4 else skb.daddr
    for bound in (dest, INADDR_ANY if skb.v4 else IN6ADDR_ANY):
        best, best_score, group = None, -1, []
        for sk in owners:
            score = _compute_score(sk, skb, bound)
            if score > best_score:
                best, best_score = sk, score
                group = [sk] if sk.reuseport else []
            elif score == best_score and score >= 0 and sk.reuseport and group \
                    and sk.uid == group[0].uid:
                group.append(sk)
        if best is not None:
            if len(group) > 1:
                key = skb.saddr + skb.sport.to_bytes(2, "big") + skb.daddr \
                    + skb.dport.to_bytes(2, "big")
                return group[zlib.crc32(key) % len(group)]
            return best
        if bound == (INADDR_ANY if skb.v4 else IN6ADDR_ANY):
            break
    return None


def _mcast_socks(net: "Net", skb: SkBuff) -> list:
    """Linux: __udp4_lib_mcast_deliver() with __udp_is_mcast_sock(): every sock on the
    port that could take it (bound to the group, the broadcast or the wildcard). For
    multicast, lo must be a member (some sock joined the group: ip_check_mc_rcu()) and
    ip_mc_sf_allow() lets in a sock that joined, or any with IP_MULTICAST_ALL (the
    default)."""
    group = skb.daddr[12:]
    multicast = inet_addr_type(group) == RTN_MULTICAST
    if multicast and not any(g == group for sk in net.udp_socks for g, _ in sk.mc_list):
        return []
    out = []
    for sk in net.udp_table.ports.get(skb.dport, ()):
        if sk.family == AF_INET6 and sk.ipv6only:
            continue
        if sk.rcv_saddr not in (INADDR_ANY, group):
            continue
        if sk.daddr != INADDR_ANY and mapped(sk.daddr) != skb.saddr:
            continue
        if sk.dport and sk.dport != skb.sport:
            continue
        if multicast and not sk.mc_all and not any(g == group for g, _ in sk.mc_list):
            continue
        out.append(sk)
    return out


def udp_rcv(net: "Net", skb: SkBuff) -> None:
    """Linux: __udp4_lib_rcv() / __udp6_lib_rcv(): hand the datagram to its sock, or to
    every sock of a broadcast/multicast group; with no sock, NoPorts and an ICMP port
    unreachable back to the sender (not for broadcast or multicast)."""
    for hook in net.dgram_wire:
        hook("udp", skb)
    mib = "Udp." if skb.v4 else "Udp6."
    if skb.v4 and inet_addr_type(skb.daddr[12:]) in (RTN_BROADCAST, RTN_MULTICAST):
        socks = _mcast_socks(net, skb)
        if not socks:
            net.count(mib + "NoPorts")
        for sk in socks:
            udp_queue_rcv_skb(net, sk, SkBuff(**{**skb.__dict__}))
        return
    sk = udp_lib_lookup(net, skb)
    if sk is None:
        net.count(mib + "NoPorts")
        icmp_send_port_unreach(net, skb)
        return
    udp_queue_rcv_skb(net, sk, skb)


def udp_queue_rcv_skb(net: "Net", sk: "Sock", skb: SkBuff) -> None:
    """Linux: __udp_enqueue_schedule_skb() (6.15+): the datagram is dropped
    (RcvbufErrors and InErrors, sk_drops) when it would take the queue past SO_RCVBUF,
    unless the queue is empty. The host mirrors it into the placeholder."""
    mib = "Udp." if skb.v4 else "Udp6."
    size = skb.truesize
    if sk.rmem_alloc + size > sk.rcvbuf and sk.rmem_alloc:
        datagram_sync(net, sk)                  # the program may have read some natively
    if sk.rmem_alloc + size > sk.rcvbuf and sk.rmem_alloc:
        sk.drops += 1
        net.count(mib + "RcvbufErrors")
        net.count(mib + "InErrors")
        return
    _enqueue(net, sk, skb)


def _enqueue(net: "Net", sk: "Sock", skb: SkBuff) -> None:
    """The datagram joins the receive queue, the placeholder holds it, readers wake."""
    sk.rmem_alloc += skb.truesize
    sk.receive_queue.append(skb)
    net.kernel.host.datagram_queued(sk, skb)
    sk.wait.wake_up()


def sock_queue_rcv_skb(net: "Net", sk: "Sock", skb: SkBuff) -> bool:
    """Linux: net/core/sock.c __sock_queue_rcv_skb() (what ping and raw sockets use):
    dropped (sk_drops) when the queue already holds SO_RCVBUF or more; False then."""
    skb.truesize = skb_truesize(len(skb.data), skb.v4)
    if sk.rmem_alloc >= sk.rcvbuf:
        datagram_sync(net, sk)                  # the program may have read some natively
    if sk.rmem_alloc >= sk.rcvbuf:
        sk.drops += 1
        return False
    _enqueue(net, sk, skb)
    return True


def datagram_sync(net: "Net", sk: "Sock") -> None:
    """Take out of the queue the datagrams the program read natively from its placeholder
    (the host knows how many): they count as received (InDatagrams)."""
    taken = net.kernel.host.datagram_sync(sk)
    for _ in range(min(taken, len(sk.receive_queue))):
        skb = sk.receive_queue.popleft()
        sk.rmem_alloc -= skb.truesize
        if sk.sk_prot is udp_prot:
            net.count("Udp.InDatagrams" if skb.v4 else "Udp6.InDatagrams")


def datagram_poll(sk: "Sock") -> int:
    """Linux: net/core/datagram.c datagram_poll() (with udp_poll()'s reader queue, one
    queue here): POLLERR with a pending error or a queued ICMP error, POLLIN|POLLRDHUP
    once the read side is shut, POLLHUP once both are, POLLIN with a datagram queued
    (after taking out those the program read natively), POLLOUT always (sock_writeable():
    a datagram leaves at once over the loopback, nothing stays charged to SO_SNDBUF)."""
    mask = POLLOUT | POLLWRNORM | POLLWRBAND
    if sk.sk_err or getattr(sk, "error_queue", None):
        mask |= POLLERR
    if sk.shutdown & RCV_SHUTDOWN:
        mask |= POLLRDHUP | POLLIN | POLLRDNORM
    if sk.shutdown == SHUTDOWN_MASK:
        mask |= POLLHUP
    if getattr(sk, "receive_queue", None):
        datagram_sync(sk.net, sk)
        if sk.receive_queue:
            mask |= POLLIN | POLLRDNORM
    return mask


def udp_sync_all(net: "Net") -> None:
    """Take in what programs read natively from every UDP socket with datagrams queued,
    so that counters and queue lengths are current (/proc/net/snmp, /proc/net/udp, nstat,
    ss)."""
    for sk in list(net.udp_socks):
        if sk.receive_queue:
            datagram_sync(net, sk)


# -- ICMP errors ---------------------------------------------------------------------------

def icmp_send_port_unreach(net: "Net", skb: SkBuff) -> None:
    """Linux: icmp_send(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH) / icmpv6_send(): the
    error goes back to the sender over the loopback (no rate limit on lo), where
    __udp4_lib_err() / __udp6_lib_err() find the sending sock."""
    group, type_ = ("Icmp", ICMP_DEST_UNREACH) if skb.v4 else ("Icmp6", ICMPV6_DEST_UNREACH)
    for direction in ("Out", "In"):         # (icmp.py's icmp_count(), which imports udp)
        net.count(f"{group}.{direction}Msgs")
        net.count(f"{group}.{direction}DestUnreachs")
        net.count(f"{group}Msg.{direction}Type{type_}")
    for hook in net.dgram_wire:
        hook("icmp", skb)
    udp_err(net, skb)


def udp_err(net: "Net", orig: SkBuff) -> None:
    """Linux: __udp4_lib_err() / __udp6_lib_err() for port unreachable (a hard error,
    ECONNREFUSED): the sock that sent `orig` gets sk_err when connected, or whatever its
    state with IP_RECVERR, which also queues the error with the quoted payload on the
    error queue (ip_icmp_error()); an unconnected sock without it hears nothing."""
    back = SkBuff(b"", orig.daddr, orig.dport, orig.saddr, orig.sport, orig.v4)
    sk = udp_lib_lookup(net, back)
    if sk is None:
        return
    if not sk.recverr:
        if sk.state != S.TCP_ESTABLISHED:
            return
    else:
        quote = orig.data[:ICMP_QUOTE4 if orig.v4 else ICMP_QUOTE6]
        ee = (Errno.ECONNREFUSED, SO_EE_ORIGIN_ICMP if orig.v4 else SO_EE_ORIGIN_ICMP6,
              ICMP_DEST_UNREACH if orig.v4 else ICMPV6_DEST_UNREACH,
              ICMP_PORT_UNREACH if orig.v4 else ICMPV6_PORT_UNREACH)
        err = SkBuff(quote, orig.saddr, orig.sport, orig.daddr, orig.dport, orig.v4,
                     net.now(), ee=ee, offender=orig.daddr,
                     truesize=skb_truesize(len(quote)))
        if sk.rmem_alloc + err.truesize <= sk.rcvbuf:     # sock_queue_err_skb()
            sk.rmem_alloc += err.truesize
            sk.error_queue.append(err)
    sk.sk_err = Errno.ECONNREFUSED
    net.kernel.host.datagram_error(sk)
    sk.wait.wake_up()


# -- recvmsg ---------------------------------------------------------------------------

def udp_recvmsg(net: "Net", sk: "Sock", flags: int, nonblocking: bool,
                index: int = 0) -> SkBuff | None:
    """Linux: udp_recvmsg() -> __skb_recv_udp(): a pending error first (and cleared),
    then the head datagram, else EAGAIN or a wait (SO_RCVTIMEO). The datagram stays
    queued: udp_consume() takes it once the call's answer is in (MSG_PEEK: never);
    `index` skips those a recvmmsg already took in this call. MSG_ERRQUEUE reads the
    error queue (ip_recv_error()): EAGAIN when empty. None: shut down, nothing queued."""
    if flags & MSG_ERRQUEUE:
        if len(sk.error_queue) <= index:
            raise SyscallError(Errno.EAGAIN)
        return sk.error_queue[index]
    if not index:
        datagram_sync(net, sk)
        while sk.receive_queue and sk.receive_queue[0].taken:
            udp_consume(net, sk, sk.receive_queue[0], True)     # see socket.py _consume
    if sk.sk_err:
        err, sk.sk_err = sk.sk_err, 0
        net.kernel.host.datagram_error(sk)
        raise SyscallError(err)
    if len(sk.receive_queue) > index:
        return sk.receive_queue[index]
    if sk.shutdown & 1:                         # RCV_SHUTDOWN
        return None
    timeo = sk.rcvtimeo
    if nonblocking or flags & MSG_DONTWAIT or timeo == 0:
        raise SyscallError(Errno.EAGAIN)
    deadline = None if timeo is None else net.now() + timeo
    raise WouldBlock(sk.wait, deadline, Errno.EAGAIN, sock_intr_errno(timeo))


def udp_consume(net: "Net", sk: "Sock", skb: SkBuff, dropped: bool = False) -> None:
    """The rest of udp_recvmsg() once the answer is in: the datagram leaves the queue
    (skb_consume_udp()) and counts as received, or (a failed copy) as an error."""
    if skb.ee is not None:
        if sk.error_queue and sk.error_queue[0] is skb:
            sk.error_queue.popleft()
            sk.rmem_alloc -= skb.truesize
            # Linux: sock_dequeue_err_skb(): sk_err becomes the next error's, or 0
            sk.sk_err = sk.error_queue[0].ee[0] if sk.error_queue else 0
        return
    if not sk.receive_queue or sk.receive_queue[0] is not skb:
        return
    sk.receive_queue.popleft()
    sk.rmem_alloc -= skb.truesize
    mib = "Udp." if skb.v4 else "Udp6."
    if dropped:
        sk.drops += 1
    if sk.sk_prot is not udp_prot:              # ping and raw: no receive counters
        return
    net.count(mib + ("InErrors" if dropped else "InDatagrams"))


def udp_ioctl(net: "Net", sk: "Sock", inq: bool) -> int:
    """Linux: udp_ioctl(): SIOCINQ is the next datagram's length (first_packet_length()),
    SIOCOUTQ what is not yet sent (0: loopback sends at once)."""
    if not inq:
        return 0
    datagram_sync(net, sk)
    return len(sk.receive_queue[0].data) if sk.receive_queue else 0


def udp_ioctl_ops(sock, what: str) -> int:
    """sock->ops->ioctl of a UDP socket (inet_ioctl -> udp_ioctl()): SIOCINQ, SIOCOUTQ;
    SIOCATMARK and SIOCOUTQNSD stay the placeholder's (the host answers)."""
    if what not in ("inq", "outq"):
        raise HostPassthrough()
    return udp_ioctl(sock.net, sock.sk, what == "inq")


def udp_shutdown(net: "Net", sock, how: int) -> None:
    """Linux: inet_shutdown() for a datagram socket: EINVAL for a bad `how`; ENOTCONN
    unless connected (the bits are still set); SHUT_RD wakes readers."""
    sk = sock.sk
    how += 1
    if how & ~3 or not how:
        raise SyscallError(Errno.EINVAL)
    sk.shutdown |= how
    sk.wait.wake_up()
    if sk.state != S.TCP_ESTABLISHED:
        raise SyscallError(Errno.ENOTCONN)


def udp_close(net: "Net", sk: "Sock", unread: bool = False, unhash=None) -> None:
    """Linux: udp_lib_close() -> sk_common_release(): unhashed (sk_prot->unhash:
    `unhash`, udp_lib_unhash() by default), queues purged, gone."""
    (unhash or udp_lib_unhash)(net, sk)
    sk.receive_queue.clear()
    sk.error_queue.clear()
    sk.rmem_alloc = 0
    sk.dead = True
    sk.state = S.TCP_CLOSE
    net.udp_socks.discard(sk)
    net.sk_destruct(sk)         # freed by its last reference, never left to the collector


def _nothing(*args) -> None:
    return None


# -- control messages ------------------------------------------------------------------

SOL_IP, SOL_IPV6 = 0, 41
IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVERR = 8, 12, 13, 11
IP_TTL, IP_TOS = 2, 1
IPV6_RECVPKTINFO, IPV6_PKTINFO, IPV6_RECVERR = 49, 50, 25
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT = 51, 52
SO_TIMESTAMP_OLD, SO_TIMESTAMPNS_OLD, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW = 29, 35, 63, 64


def _timestamp(kind: int, when: float, compat: bool) -> bytes:
    """Linux: __sock_recv_timestamp(): SCM_TIMESTAMP (timeval), SCM_TIMESTAMPNS
    (timespec), their _NEW forms (64-bit fields); old forms are 32-bit for compat."""
    sec = int(when)
    if kind in (SO_TIMESTAMP_OLD, SO_TIMESTAMP_NEW):
        frac = int((when - sec) * 1_000_000)
    else:
        frac = int((when - sec) * 1_000_000_000)
    if compat and kind in (SO_TIMESTAMP_OLD, SO_TIMESTAMPNS_OLD):
        return sec.to_bytes(4, "little", signed=True) + frac.to_bytes(4, "little")
    return sec.to_bytes(8, "little", signed=True) + frac.to_bytes(8, "little")


def _sockaddr(addr16: bytes, port: int, v4: bool) -> bytes:
    if v4:
        return (AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big") + addr16[12:]
                + bytes(8))
    return (AF_INET6.to_bytes(2, "little") + port.to_bytes(2, "big") + bytes(4) + addr16
            + bytes(4))


def udp_cmsgs(net: "Net", sk: "Sock", skb: SkBuff, compat: bool) -> list:
    """The control messages of one recvmsg, in Linux's order: the timestamp
    (sock_recv_cmsgs()), then ip_cmsg_recv_offset()'s IP_PKTINFO, IP_TTL, IP_TOS for an
    IPv4 datagram, IPV6_PKTINFO (ip6_datagram_recv_ctl()) on an IPv6 socket. An error
    queue entry carries IP_RECVERR / IPV6_RECVERR: sock_extended_err + the offender."""
    out = []
    if skb.ee is not None:
        errno, origin, type_, code = skb.ee
        ee = (errno.to_bytes(4, "little") + bytes([origin, type_, code, 0]) + bytes(8))
        v4 = sk.family == AF_INET
        level, name = (SOL_IP, IP_RECVERR) if skb.v4 and v4 else (SOL_IPV6, IPV6_RECVERR)
        return [(level, name, ee + _sockaddr(skb.offender, 0, v4))]
    flags = sk.cmsg_flags
    if sk.tstamp_kind:
        out.append((1, sk.tstamp_kind, _timestamp(sk.tstamp_kind, skb.tstamp, compat)))
    if skb.v4:
        dst = skb.daddr[12:]
        if IP_PKTINFO in flags:
            out.append((SOL_IP, IP_PKTINFO, LOOPBACK_IFINDEX.to_bytes(4, "little")
                        + (dst if inet_addr_type(dst) == RTN_LOCAL else INADDR_LOOPBACK)
                        + dst))
        if IP_RECVTTL in flags:
            out.append((SOL_IP, IP_TTL, skb.ttl.to_bytes(4, "little")))
        if IP_RECVTOS in flags:
            out.append((SOL_IP, IP_TOS, bytes([skb.tos])))
    if sk.family == AF_INET6 and IPV6_RECVPKTINFO in flags:
        out.append((SOL_IPV6, IPV6_PKTINFO, skb.daddr + LOOPBACK_IFINDEX.to_bytes(4, "little")))
    if sk.family == AF_INET6 and not skb.v4 and IPV6_RECVHOPLIMIT in flags:
        out.append((SOL_IPV6, IPV6_HOPLIMIT, skb.ttl.to_bytes(4, "little")))
    return out


udp_prot = Proto(name="UDP", close=udp_close, disconnect=udp_disconnect,
                 write_timer=_nothing, keepalive_timer=_nothing,
                 twsk_unique=lambda *args: False, get_port=udp_lib_get_port,
                 consume=udp_consume, cmsgs=udp_cmsgs)
