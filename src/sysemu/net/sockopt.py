"""setsockopt/getsockopt for TCP sockets.

Linux: net/core/sock.c sk_setsockopt() / sk_getsockopt() / sock_set_timeout(),
net/ipv4/tcp.c do_tcp_setsockopt() / do_tcp_getsockopt(), net/ipv4/ip_sockglue.c,
net/ipv6/ipv6_sockglue.c. Options sysemu does not know answer ENOPROTOOPT (an unknown
level on an IPv4 socket: getsockopt EOPNOTSUPP, setsockopt ENOPROTOOPT, as Linux)."""
from __future__ import annotations

import struct

from sysemu.abi.errno import Errno
from sysemu.abi.inet import (GROUP_REQ_SIZE, IPPROTO_UDP, IP_ADD_MEMBERSHIP, IP_BIND_ADDRESS_NO_PORT,
                             IP_DROP_MEMBERSHIP, IP_FREEBIND, IP_TOS, IP_TRANSPARENT, IP_TTL,
                             IPV6_ADDRFORM, IPV6_V6ONLY, MCAST_JOIN_GROUP, MCAST_LEAVE_GROUP,
                             TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, V4MAPPED_PREFIX,
                             MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
                             MAX_TCP_SYNCNT, SOL_IP, SOL_IPV6, SOL_TCP, TCP_CORK,
                             TCP_DEFER_ACCEPT, TCP_INFO, TCP_INFO_HEAD, TCP_INFO_SIZE,
                             TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_LINGER2,
                             TCP_MAXSEG, TCP_NODELAY, TCP_QUICKACK, TCP_SYNCNT,
                             TCP_USER_TIMEOUT, TcpState)
from sysemu.abi.socket import (AF_INET, AF_INET6, IFNAMSIZ, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM,
                               LINGER, SO_BINDTODEVICE, SO_BROADCAST, SO_DEBUG, SO_DONTROUTE,
                               SO_PASSRIGHTS,
                               SO_OOBINLINE, SO_PRIORITY, SO_RCVLOWAT, SO_SNDLOWAT, SO_ACCEPTCONN, SO_DOMAIN, SO_ERROR,
                               SO_KEEPALIVE, SO_LINGER, SO_MAX_PACING_RATE, SO_PROTOCOL,
                               SO_RCVBUF,
                               SO_RCVTIMEO_NEW, SO_RCVTIMEO_OLD, SO_REUSEADDR, SO_REUSEPORT,
                               SO_SNDBUF, SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_SNDTIMEO_NEW, SO_SNDTIMEO_OLD, SO_TYPE,
                               SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF, SOL_SOCKET, TIMEVAL32,
                               TIMEVAL64)
from sysemu.abi.limits import HZ, INT_MAX, ULONG_MAX, USEC_PER_SEC
from sysemu.kernel.errors import SyscallError
from sysemu.kernel.task import CAP_NET_ADMIN, CAP_NET_RAW
from sysemu.kernel.usermem import get_user_int, put_user_int
from sysemu.net.core import (RMEM_MAX, SOCK_RCVBUF_LOCK, SOCK_SNDBUF_LOCK, TCP_RTO_MAX,
                             TCP_TIMEOUT_INIT, WMEM_MAX)
from sysemu.net.ipv4.tcp import tcp_sock_set_quickack
from sysemu.net.ipv4.tcp_timer import tcp_keepidle_changed, tcp_set_keepalive
from sysemu.net.ipv4.tcp_output import (TCP_NAGLE_CORK, TCP_NAGLE_OFF, inet_csk_in_pingpong_mode,
                                        tcp_push_pending_frames, tcp_write_xmit)
from sysemu.net.ipv4.route import LOOPBACK_IFINDEX

# The sandbox's network namespace has one device (Linux: dev_get_by_name()).
NETDEVS = {"lo": LOOPBACK_IFINDEX}
TFO_CLIENT_ENABLE = 1               # Linux: include/net/tcp.h
IGMP_MAX_MEMBERSHIPS = 20           # Linux: net.ipv4.igmp_max_memberships default


def _einval() -> SyscallError:
    return SyscallError(Errno.EINVAL)


def _get_int(task, optval: int, optlen: int) -> int:
    if optlen < 4:
        raise _einval()
    return int.from_bytes(task.mem.read(optval, 4), "little", signed=True)


def secs_to_retrans(seconds: int, timeout: int, rto_max: int) -> int:
    """Linux: tcp.c secs_to_retrans()."""
    res = 0
    if seconds > 0:
        period = timeout
        res = 1
        while seconds > period and res < 255:
            res += 1
            timeout = min(timeout << 1, rto_max)
            period += timeout
    return res


def retrans_to_secs(retrans: int, timeout: int, rto_max: int) -> int:
    """Linux: tcp.c retrans_to_secs()."""
    period = 0
    if retrans > 0:
        period = timeout
        while retrans > 1:
            retrans -= 1
            timeout = min(timeout << 1, rto_max)
            period += timeout
    return period


def _timeval_layout(task, optname: int):
    old = optname in (SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD)
    return TIMEVAL32 if (old and task.abi == "i386") else TIMEVAL64


def sock_set_timeout(task, optval: int, optlen: int, layout) -> int | None:
    """Linux: sock.c sock_set_timeout(): jiffies, None for "forever" (0, 0)."""
    if optlen < layout.size:
        raise _einval()
    sec, usec = layout.unpack(task.mem.read(optval, layout.size))
    if usec < 0 or usec >= USEC_PER_SEC:
        raise SyscallError(Errno.EDOM)
    if sec < 0:
        return 0
    if sec == 0 and usec == 0:
        return None
    return sec * HZ + -(-usec // (USEC_PER_SEC // HZ))


def _jiffies_to_seconds(j: int | None) -> float | None:
    return None if j is None else j / HZ


def _seconds_to_jiffies(s: float | None) -> int | None:
    return None if s is None else round(s * HZ)


# -- set -----------------------------------------------------------------------------

# Boolean sock flags (Linux: sock_valbool_flag()).
SOCK_FLAGS = frozenset((SO_DEBUG, SO_DONTROUTE, SO_BROADCAST, SO_OOBINLINE))


def setsockopt(task, sock, level: int, optname: int, optval: int, optlen: int) -> int:
    sk = sock.sk
    if level == SOL_SOCKET:
        return sk_setsockopt(task, sk, optname, optval, optlen)
    if level == SOL_TCP and sk.type == SOCK_STREAM:
        return do_tcp_setsockopt(task, sk, optname, optval, optlen)
    if level == SOL_UDP and sk.type == SOCK_DGRAM and sk.protocol == IPPROTO_UDP:
        return udp_lib_setsockopt(task, sk, optname, optval, optlen)
    if sk.type == SOCK_RAW and (level == SOL_RAW or level == SOL_ICMPV6
                                and sk.family == AF_INET6):
        return raw_setsockopt(task, sk, level, optname, optval, optlen)
    if level == SOL_IP:
        if sk.type in DGRAM_TYPES and optname in IP_DGRAM_OPTS:
            return ip_dgram_setsockopt(task, sk, optname, optval, optlen)
        return do_ip_setsockopt(task, sk, optname, optval, optlen)
    if level == SOL_IPV6 and sk.family == AF_INET6:
        if sk.type == SOCK_RAW and optname == IPV6_CHECKSUM:
            raise _einval()         # Linux: not at this level on an ICMPv6 socket (RFC 3542)
        if sk.type in DGRAM_TYPES and optname in IPV6_DGRAM_OPTS:
            return ip_dgram_setsockopt(task, sk, -optname, optval, optlen)
        return do_ipv6_setsockopt(task, sk, optname, optval, optlen)
    raise SyscallError(Errno.ENOPROTOOPT)


# -- datagram sockets (net/ipv4/udp.py) ----------------------------------------------
SOL_UDP = 17
UDP_OPTS = (1, 100, 101, 102, 103, 104)   # UDP_CORK, UDP_ENCAP, UDP_NO_CHECK6_TX/RX,
                                          # UDP_SEGMENT, UDP_GRO: kept, not acted on
IP_PKTINFO, IP_RECVERR, IP_RECVTTL, IP_RECVTOS = 8, 11, 12, 13
IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_MULTICAST_ALL = 32, 33, 34, 49
IP_RETOPTS = 7          # a cmsg switch (IP options echoed back: sysemu's packets carry none)
IP_DGRAM_OPTS = frozenset((IP_PKTINFO, IP_RECVERR, IP_RECVTTL, IP_RECVTOS, IP_MULTICAST_IF,
                           IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_ADD_MEMBERSHIP,
                           IP_DROP_MEMBERSHIP, IP_MULTICAST_ALL, IP_RETOPTS))
IPV6_RECVERR, IPV6_RECVPKTINFO = 25, 49
IPV6_RECVHOPLIMIT = 51
IPV6_DGRAM_OPTS = frozenset((IPV6_RECVERR, IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT))
DGRAM_TYPES = (SOCK_DGRAM, SOCK_RAW)      # UDP, ping (SOCK_DGRAM) and raw sockets
SOL_RAW, SOL_ICMPV6 = 255, 58
ICMP_FILTER = 1                           # SOL_RAW, IPv4; ICMPV6_FILTER is 1 at SOL_ICMPV6
IPV6_CHECKSUM = 7


def raw_setsockopt(task, sk, level: int, optname: int, optval: int, optlen: int) -> int:
    """Linux: raw_setsockopt() -> raw_seticmpfilter() (IPv4: SOL_RAW ICMP_FILTER, at most
    4 bytes read; EOPNOTSUPP on a raw socket of another protocol), rawv6_setsockopt()
    (SOL_ICMPV6 ICMPV6_FILTER, at most 32 bytes; SOL_RAW IPV6_CHECKSUM: an even offset,
    or -1 for none); other options ENOPROTOOPT."""
    if sk.family == AF_INET:
        if optname != ICMP_FILTER:
            raise SyscallError(Errno.ENOPROTOOPT)
        raw = task.mem.read(optval, max(0, min(optlen, 4)))
        sk.icmp_filter = int.from_bytes(raw + (sk.icmp_filter.to_bytes(4, "little")[len(raw):]),
                                        "little")
        return 0
    if level == SOL_ICMPV6:
        if optname != ICMP_FILTER:
            raise SyscallError(Errno.ENOPROTOOPT)
        raw = task.mem.read(optval, max(0, min(optlen, 32)))
        sk.icmp6_filter = raw + sk.icmp6_filter[len(raw):]
        return 0
    if optname != IPV6_CHECKSUM:
        raise SyscallError(Errno.ENOPROTOOPT)
    val = _get_int(task, optval, optlen)
    if val > 0 and val & 1:
        raise _einval()
    sk.raw_checksum = val if val >= 0 else -1
    return 0


def raw_getsockopt(task, sk, level: int, optname: int, optval: int, optlen: int) -> int:
    """Linux: raw_geticmpfilter() / rawv6_geticmpfilter() / IPV6_CHECKSUM's value."""
    length = get_user_int(task.mem, optlen)
    if length < 0:
        raise _einval()
    if sk.family == AF_INET or level == SOL_ICMPV6:
        if optname != ICMP_FILTER:
            raise SyscallError(Errno.ENOPROTOOPT)
        value = sk.icmp_filter.to_bytes(4, "little") if sk.family == AF_INET \
            else sk.icmp6_filter
        return _put(task, optval, optlen, value, min(length, len(value)))
    if optname != IPV6_CHECKSUM:
        raise SyscallError(Errno.ENOPROTOOPT)
    return _put(task, optval, optlen, _int(sk.raw_checksum), min(length, 4))
SO_TIMESTAMPS = (29, 35, 63, 64)          # SO_TIMESTAMP(NS)_OLD, SO_TIMESTAMP(NS)_NEW


def udp_lib_setsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: udp_lib_setsockopt(): an int (EINVAL when shorter)."""
    if optname not in UDP_OPTS:
        raise SyscallError(Errno.ENOPROTOOPT)
    sk.tcp_opts[("udp", optname)] = _get_int(task, optval, optlen)
    return 0


def ip_dgram_setsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: do_ip_setsockopt() / do_ipv6_setsockopt() for the options of datagram
    sockets (an IPv6 option comes as -optname): the cmsg switches, IP_RECVERR (turning
    it off purges the error queue), multicast interface/TTL/loop, IP_ADD_MEMBERSHIP and
    IP_DROP_MEMBERSHIP (struct ip_mreq or ip_mreqn)."""
    if optname in (IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP):
        if optlen < 8:
            raise _einval()
        raw = task.mem.read(optval, min(optlen, 12))
        group, local = raw[0:4], raw[4:8]
        ifindex = int.from_bytes(raw[8:12], "little") if len(raw) >= 12 else 0
        # Linux: ip_mc_find_dev(): by index, by the local address (127.x is lo's), or
        # by a route to the group (none in the sandbox's namespace)
        in_dev = ifindex == LOOPBACK_IFINDEX or (not ifindex and local[0] == 127)
        if optname == IP_ADD_MEMBERSHIP:
            return ip_mc_join_group(sk, group, in_dev)
        return ip_mc_leave_group(sk, group, ifindex, in_dev)
    if optname == IP_MULTICAST_IF:
        if optlen < 4:
            raise _einval()
        raw = task.mem.read(optval, min(optlen, 12))
        addr = raw[4:8] if len(raw) >= 12 else raw[0:4]
        ifindex = int.from_bytes(raw[8:12], "little") if len(raw) >= 12 else 0
        if addr != b"\0\0\0\0" and addr[0] != 127:
            raise SyscallError(Errno.EADDRNOTAVAIL)
        if ifindex and ifindex != LOOPBACK_IFINDEX:
            raise SyscallError(Errno.ENODEV)
        sk.mc_addr = addr
        sk.mc_index = ifindex or (LOOPBACK_IFINDEX if addr[0] == 127 else 0)
        return 0
    if optlen >= 4:
        val = int.from_bytes(task.mem.read(optval, 4), "little", signed=True)
    elif optlen >= 1:
        val = task.mem.read(optval, 1)[0]
    else:
        raise _einval()
    if optname == IP_MULTICAST_TTL:
        if val == -1:
            val = 1
        if not 0 <= val <= 255:
            raise _einval()
        sk.mc_ttl = val
    elif optname == IP_MULTICAST_LOOP:
        sk.mc_loop = bool(val)
    elif optname == IP_MULTICAST_ALL:
        sk.mc_all = bool(val)
    elif optname in (IP_RECVERR, -IPV6_RECVERR):
        sk.recverr = bool(val)
        if not val:
            sk.error_queue.clear()
    else:
        (sk.cmsg_flags.add if val else sk.cmsg_flags.discard)(abs(optname))
    return 0


def ip_dgram_getsockopt(sk, optname: int) -> int:
    if optname == IP_MULTICAST_TTL:
        return sk.mc_ttl
    if optname == IP_MULTICAST_LOOP:
        return int(sk.mc_loop)
    if optname == IP_MULTICAST_ALL:
        return int(sk.mc_all)
    if optname in (IP_RECVERR, -IPV6_RECVERR):
        return int(sk.recverr)
    return int(abs(optname) in sk.cmsg_flags)


def sk_setsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: sock.c sk_setsockopt(): every option needs an int's worth (EINVAL), but
    SO_BINDTODEVICE, which takes a name."""
    if optname == SO_BINDTODEVICE:
        return sock_setbindtodevice(task, sk, optval, optlen)
    val = _get_int(task, optval, optlen)
    valbool = bool(val)
    if optname in SO_TIMESTAMPS:
        # Linux: sock_set_timestamp(): one receive timestamp, the kind last asked for
        # (turning any of them off turns both kinds off)
        sk.tstamp_kind = optname if valbool else 0
    elif optname in SOCK_FLAGS:
        if optname == SO_DEBUG and valbool and not task.capable(CAP_NET_ADMIN):
            raise SyscallError(Errno.EACCES)
        sk.sockflags[optname] = valbool
    elif optname == SO_PRIORITY:
        if (val < 0 or val > 6) and not task.capable(CAP_NET_ADMIN):
            raise SyscallError(Errno.EPERM)
        sk.priority = val
    elif optname == SO_RCVLOWAT:
        sk.rcvlowat = INT_MAX if val < 0 else max(val, 1)
    elif optname == SO_SNDLOWAT:
        raise SyscallError(Errno.ENOPROTOOPT)   # Linux: not changeable
    elif optname == SO_REUSEADDR:
        sk.reuse = valbool
    elif optname == SO_REUSEPORT:
        sk.reuseport = valbool
    elif optname == SO_KEEPALIVE:
        if sk.type == SOCK_STREAM and sk.sk_prot is not None and sk.sk_prot.name == "TCP":
            tcp_set_keepalive(sk.net, sk, valbool)      # Linux: sk->sk_prot->keepalive()
        sk.keepalive = valbool
    elif optname in (SO_SNDBUF, SO_SNDBUFFORCE):
        sk.userlocks |= SOCK_SNDBUF_LOCK
        sk.sndbuf = max(_buf_size(task, val, optname == SO_SNDBUFFORCE, WMEM_MAX),
                        SOCK_MIN_SNDBUF)
    elif optname in (SO_RCVBUF, SO_RCVBUFFORCE):
        sk.userlocks |= SOCK_RCVBUF_LOCK
        sk.rcvbuf = max(_buf_size(task, val, optname == SO_RCVBUFFORCE, RMEM_MAX),
                        SOCK_MIN_RCVBUF)
    elif optname == SO_LINGER:
        if optlen < LINGER.size:
            raise _einval()
        onoff, linger = LINGER.unpack(task.mem.read(optval, LINGER.size))
        sk.linger = (1, linger) if onoff else (0, sk.linger[1])
        task.kernel.host.linger_changed(sk)
    elif optname == SO_MAX_PACING_RATE:
        # an unsigned long, 8 bytes for every ABI of a 64-bit kernel (i386's too): read
        # whole when optlen allows, else the int, with ~0U meaning ~0UL
        rate = ULONG_MAX if val == -1 else val & 0xFFFFFFFF
        if optlen >= 8:
            rate = int.from_bytes(task.mem.read(optval, 8), "little")
        sk.max_pacing_rate = rate
    elif optname in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW):
        sk.rcvtimeo = _jiffies_to_seconds(
            sock_set_timeout(task, optval, optlen, _timeval_layout(task, optname)))
        task.kernel.host.timeout_changed(sk)
    elif optname in (SO_SNDTIMEO_OLD, SO_SNDTIMEO_NEW):
        sk.sndtimeo = _jiffies_to_seconds(
            sock_set_timeout(task, optval, optlen, _timeval_layout(task, optname)))
        task.kernel.host.timeout_changed(sk)
    elif optname == SO_PASSRIGHTS:
        raise SyscallError(Errno(95))           # EOPNOTSUPP: AF_UNIX only
    else:
        raise SyscallError(Errno.ENOPROTOOPT)
    return 0


def _buf_size(task, val: int, force: bool, limit: int) -> int:
    """Linux: sk_setsockopt() SO_SNDBUF/SO_RCVBUF (the value capped at the sysctl's
    maximum, `limit`) and SO_SNDBUFFORCE/SO_RCVBUFFORCE (CAP_NET_ADMIN, else EPERM; no
    cap, a negative value as 0), then doubled after capping at INT_MAX / 2."""
    if not force:
        val = min(val & 0xFFFFFFFF, limit)
    elif not task.capable(CAP_NET_ADMIN):
        raise SyscallError(Errno.EPERM)
    else:
        val = max(val, 0)
    return min(val, INT_MAX // 2) * 2


def sock_setbindtodevice(task, sk, optval: int, optlen: int) -> int:
    """Linux: sock.c sock_setbindtodevice() + sock_bindtoindex_locked(): the name is cut
    at IFNAMSIZ - 1; "" (or length 0) unbinds; an unknown name is ENODEV; changing an
    existing binding needs CAP_NET_RAW (EPERM)."""
    if optlen < 0:
        raise _einval()
    raw = task.mem.read(optval, min(optlen, IFNAMSIZ - 1)) if optlen else b""
    devname = raw.split(b"\0", 1)[0]
    index = 0
    if devname:
        index = NETDEVS.get(devname.decode("latin-1"), 0)
        if not index:
            raise SyscallError(Errno.ENODEV)
    if sk.bound_dev_if and not task.capable(CAP_NET_RAW):
        raise SyscallError(Errno.EPERM)
    # sysemu: the only device is lo, which every loopback route uses already, so the
    # binding changes no route; it does take part in bind conflicts (sk_bound_dev_if).
    sk.bound_dev_if = index
    return 0


def do_tcp_setsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: tcp.c do_tcp_setsockopt()."""
    val = _get_int(task, optval, optlen)
    if optname == TCP_NODELAY:
        # Linux: __tcp_sock_set_nodelay(): on, what Nagle held goes now
        sk.nodelay = bool(val)
        if val:
            sk.nonagle |= TCP_NAGLE_OFF
            tcp_push_pending_frames(sk.net, sk)
        else:
            sk.nonagle &= ~TCP_NAGLE_OFF
    elif optname == TCP_CORK:
        # Linux: __tcp_sock_set_cork(): off, what the cork held goes now
        sk.tcp_opts[optname] = val
        if val:
            sk.nonagle |= TCP_NAGLE_CORK
        else:
            sk.nonagle &= ~TCP_NAGLE_CORK
            tcp_write_xmit(sk.net, sk, sk.nonagle)
    elif optname == TCP_SYNCNT:
        if val < 1 or val > MAX_TCP_SYNCNT:
            raise _einval()
        sk.syn_retries = val
    elif optname == TCP_DEFER_ACCEPT:
        sk.defer_accept = secs_to_retrans(val, int(TCP_TIMEOUT_INIT), int(TCP_RTO_MAX))
    elif optname == TCP_KEEPIDLE:
        if val < 1 or val > MAX_TCP_KEEPIDLE:
            raise _einval()
        sk.tcp_opts[optname] = val
        tcp_keepidle_changed(sk.net, sk)
    elif optname == TCP_KEEPINTVL:
        if val < 1 or val > MAX_TCP_KEEPINTVL:
            raise _einval()
        sk.tcp_opts[optname] = val
    elif optname == TCP_KEEPCNT:
        if val < 1 or val > MAX_TCP_KEEPCNT:
            raise _einval()
        sk.tcp_opts[optname] = val
    elif optname == TCP_USER_TIMEOUT:
        if val < 0:
            raise _einval()
        sk.tcp_opts[optname] = val
    elif optname == TCP_QUICKACK:
        tcp_sock_set_quickack(sk.net, sk, val)
    elif optname == TCP_LINGER2:
        sk.tcp_opts[optname] = val
    elif optname == TCP_FASTOPEN:
        # Linux: fastopen_queue_tune(): max_qlen = min(val, somaxconn)
        if val < 0 or sk.state not in (TcpState.TCP_CLOSE, TcpState.TCP_LISTEN):
            raise _einval()
        sk.tcp_opts[optname] = min(val, int(sk.net.sysctl("net.core.somaxconn")))
    elif optname == TCP_FASTOPEN_CONNECT:
        if val > 1 or val < 0:
            raise _einval()
        if not int(sk.net.sysctl("net.ipv4.tcp_fastopen")) & TFO_CLIENT_ENABLE:
            raise SyscallError(Errno(95))   # EOPNOTSUPP
        if sk.state != TcpState.TCP_CLOSE:
            raise _einval()
        # sysemu: stored and reported; sysemu's TCP sends no SYN data, so connect() is the
        # ordinary one, as Linux's is while it holds no Fast Open cookie for the peer.
        sk.tcp_opts[optname] = val
    else:
        raise SyscallError(Errno.ENOPROTOOPT)
    return 0


def do_ip_setsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: ip_sockglue.c do_ip_setsockopt(): an int, or one byte when shorter; an
    option it does not know is ENOPROTOOPT before optval is read."""
    if optname in (IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP):
        raise SyscallError(Errno.EPROTO)    # Linux: inet_test_bit(IS_ICSK, sk)
    if optname in (MCAST_JOIN_GROUP, MCAST_LEAVE_GROUP):
        return ip_mcast_join_leave(task, sk, optname, optval, optlen)
    if optname not in (IP_BIND_ADDRESS_NO_PORT, IP_TOS, IP_TTL, IP_FREEBIND, IP_TRANSPARENT):
        raise SyscallError(Errno.ENOPROTOOPT)
    if optlen >= 4:
        val = int.from_bytes(task.mem.read(optval, 4), "little", signed=True)
    elif optlen >= 1:
        val = task.mem.read(optval, 1)[0]
    else:
        val = 0
    if optname == IP_BIND_ADDRESS_NO_PORT:
        sk.bind_address_no_port = bool(val)
    elif optname == IP_FREEBIND:
        if optlen < 1:
            raise _einval()
        sk.freebind = bool(val)
    elif optname == IP_TRANSPARENT:
        if val and not task.capable(CAP_NET_RAW) and not task.capable(CAP_NET_ADMIN):
            raise SyscallError(Errno.EPERM)
        if optlen < 1:
            raise _einval()
        sk.transparent = bool(val)
    elif optname == IP_TOS:
        sk.tcp_opts[("ip", IP_TOS)] = val & 0xFF
    elif optname == IP_TTL:
        if optlen < 1:
            raise _einval()
        if val != -1 and (val < 1 or val > 255):
            raise _einval()
        sk.tcp_opts[("ip", IP_TTL)] = val
    else:
        raise SyscallError(Errno.ENOPROTOOPT)
    return 0


def ip_mcast_join_leave(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: ip_sockglue.c ip_mcast_join_leave(): a struct group_req holding an AF_INET
    group, then ip_mc_join_group() / ip_mc_leave_group() on the socket's mc_list (which
    an accepted child does not inherit: inet_csk_clone_lock() clears it)."""
    if optlen < GROUP_REQ_SIZE:
        raise _einval()
    req = task.mem.read(optval, GROUP_REQ_SIZE)
    ifindex = int.from_bytes(req[0:4], "little")
    if int.from_bytes(req[8:10], "little") != AF_INET:
        raise _einval()
    # Linux: ip_mc_find_dev(): by index, or by a route to the group when 0. sysemu: the
    # sandbox's namespace routes no multicast, so only lo given by index is found.
    in_dev = ifindex == LOOPBACK_IFINDEX
    if optname == MCAST_JOIN_GROUP:
        return ip_mc_join_group(sk, req[12:16], in_dev)
    return ip_mc_leave_group(sk, req[12:16], ifindex, in_dev)


def ip_mc_join_group(sk, group: bytes, in_dev: bool) -> int:
    """Linux: net/ipv4/igmp.c ip_mc_join_group(): EINVAL for a group that is not
    multicast, ENODEV without a device, EADDRINUSE when joined, ENOBUFS past
    igmp_max_memberships; the socket's mc_list keeps (group, lo's index)."""
    if group[0] & 0xF0 != 0xE0:                     # ipv4_is_multicast()
        raise _einval()
    if not in_dev:
        raise SyscallError(Errno.ENODEV)
    entry = (group, LOOPBACK_IFINDEX)
    if entry in sk.mc_list:
        raise SyscallError(Errno.EADDRINUSE)
    if len(sk.mc_list) >= IGMP_MAX_MEMBERSHIPS:
        raise SyscallError(Errno.ENOBUFS)
    sk.mc_list.append(entry)
    return 0


def ip_mc_leave_group(sk, group: bytes, ifindex: int, in_dev: bool) -> int:
    """Linux: igmp.c ip_mc_leave_group(): ENODEV when neither an index nor a device
    names one, EADDRNOTAVAIL when not joined."""
    if not ifindex and not in_dev:
        raise SyscallError(Errno.ENODEV)
    for joined in sk.mc_list:
        if joined[0] == group and (not ifindex or joined[1] == ifindex):
            sk.mc_list.remove(joined)
            return 0
    raise SyscallError(Errno.EADDRNOTAVAIL)


def do_ipv6_setsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: ipv6_sockglue.c do_ipv6_setsockopt()."""
    val = 0
    if optlen >= 4:
        val = int.from_bytes(task.mem.read(optval, 4), "little", signed=True)
    if optname == IPV6_V6ONLY:
        if optlen < 4 or sk.num:
            raise _einval()
        sk.ipv6only = bool(val)
        return 0
    if optname == IPV6_ADDRFORM:
        return ipv6_addrform(sk, val, optlen)
    raise SyscallError(Errno.ENOPROTOOPT)


def ipv6_addrform(sk, val: int, optlen: int) -> int:
    """Linux: ipv6_sockglue.c do_ipv6_setsockopt() IPV6_ADDRFORM for TCP: only
    to AF_INET (EINVAL), only established (ENOTCONN), only with a v4-mapped peer on a
    socket that is not v6only (EADDRNOTAVAIL); then the socket is an AF_INET one."""
    if optlen < 4 or val != AF_INET:
        raise _einval()
    if sk.state != TcpState.TCP_ESTABLISHED:
        raise SyscallError(Errno.ENOTCONN)
    if sk.ipv6only or sk.v6_daddr[:12] != V4MAPPED_PREFIX:
        raise SyscallError(Errno.EADDRNOTAVAIL)
    sk.family = AF_INET
    return 0


# -- get -----------------------------------------------------------------------------

def getsockopt(task, sock, level: int, optname: int, optval: int, optlen: int) -> int:
    sk = sock.sk
    if level == SOL_SOCKET:
        return sk_getsockopt(task, sock, optname, optval, optlen)
    if level == SOL_TCP and sk.type == SOCK_STREAM:
        return do_tcp_getsockopt(task, sk, optname, optval, optlen)
    if sk.type == SOCK_RAW and (level == SOL_RAW or level == SOL_ICMPV6
                                and sk.family == AF_INET6):
        return raw_getsockopt(task, sk, level, optname, optval, optlen)
    if level == SOL_UDP and sk.type == SOCK_DGRAM and sk.protocol == IPPROTO_UDP:
        if optname not in UDP_OPTS:
            raise SyscallError(Errno.ENOPROTOOPT)
        length = get_user_int(task.mem, optlen)
        if length < 0:
            raise _einval()
        return _put(task, optval, optlen, _int(sk.tcp_opts.get(("udp", optname), 0)),
                    min(length, 4))
    if level == SOL_IP:
        if sk.type in DGRAM_TYPES and optname in IP_DGRAM_OPTS \
                and optname not in (IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP, IP_MULTICAST_IF):
            length = get_user_int(task.mem, optlen)
            if length < 0:
                raise _einval()
            val = ip_dgram_getsockopt(sk, optname)
            if 0 < length < 4:
                return _put(task, optval, optlen, bytes([val]), 1)
            return _put(task, optval, optlen, _int(val), min(length, 4))
        return do_ip_getsockopt(task, sk, optname, optval, optlen)
    if sk.family == AF_INET6:
        if level == SOL_IPV6:
            if sk.type in DGRAM_TYPES and optname in IPV6_DGRAM_OPTS:
                length = get_user_int(task.mem, optlen)
                return _put(task, optval, optlen, _int(ip_dgram_getsockopt(sk, -optname)),
                            min(length & 0xFFFFFFFF, 4))
            return do_ipv6_getsockopt(task, sk, optname, optval, optlen)
        raise SyscallError(Errno.ENOPROTOOPT)
    raise SyscallError(Errno(95))   # EOPNOTSUPP (== ENOTSUP): ip_getsockopt(), level != SOL_IP


def _put(task, optval: int, optlen: int, data: bytes, length: int) -> int:
    """Copy the first `length` bytes of the value, then write the length back."""
    task.mem.write(optval, data[:length])
    put_user_int(task.mem, optlen, length)
    return 0


def _int(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def sk_getsockopt(task, sock, optname: int, optval: int, optlen: int) -> int:
    """Linux: sock.c sk_getsockopt(): EINVAL for a negative length, then copy
    min(len, size of the value) and write that length back."""
    sk = sock.sk
    length = get_user_int(task.mem, optlen)
    if length < 0:
        raise _einval()
    if optname in SOCK_FLAGS:
        data = _int(int(sk.sockflags.get(optname, False)))
    elif optname in SO_TIMESTAMPS:
        data = _int(int(getattr(sk, "tstamp_kind", 0) == optname))
    elif optname == SO_PRIORITY:
        data = _int(sk.priority)
    elif optname == SO_RCVLOWAT:
        data = _int(sk.rcvlowat)
    elif optname == SO_SNDLOWAT:
        data = _int(1)
    elif optname == SO_REUSEADDR:
        data = _int(int(sk.reuse))
    elif optname == SO_REUSEPORT:
        data = _int(int(sk.reuseport))
    elif optname == SO_KEEPALIVE:
        data = _int(int(sk.keepalive))
    elif optname == SO_TYPE:
        data = _int(sock.type)
    elif optname == SO_PROTOCOL:
        data = _int(sk.protocol)
    elif optname == SO_DOMAIN:
        data = _int(sk.family)
    elif optname == SO_ACCEPTCONN:
        data = _int(int(sk.state == TcpState.TCP_LISTEN))
    elif optname == SO_ERROR:
        err = sk.sk_err or sk.sk_err_soft
        if sk.sk_err:
            sk.sk_err = 0
            if sk.type in DGRAM_TYPES:
                task.kernel.host.datagram_error(sk)
        else:
            sk.sk_err_soft = 0
        data = _int(int(err))
    elif optname == SO_SNDBUF:
        data = _int(sk.sndbuf)
    elif optname == SO_RCVBUF:
        data = _int(sk.rcvbuf)
    elif optname == SO_LINGER:
        data = LINGER.pack(*sk.linger)
    elif optname == SO_BINDTODEVICE:
        return sock_getbindtodevice(task, sk, optval, optlen, length)
    elif optname == SO_MAX_PACING_RATE:
        # the unsigned long when the buffer holds one, else the "32bit version", capped
        if length >= 8:
            data = sk.max_pacing_rate.to_bytes(8, "little")
        else:
            data = _int(min(sk.max_pacing_rate, 0xFFFFFFFF))
    elif optname in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW, SO_SNDTIMEO_OLD, SO_SNDTIMEO_NEW):
        seconds = sk.rcvtimeo if optname in (SO_RCVTIMEO_OLD, SO_RCVTIMEO_NEW) else sk.sndtimeo
        jiffies = _seconds_to_jiffies(seconds)
        if jiffies is None:
            sec, usec = 0, 0
        else:
            sec, usec = jiffies // HZ, (jiffies % HZ) * USEC_PER_SEC // HZ
        data = _timeval_layout(task, optname).pack(sec, usec)
    else:
        raise SyscallError(Errno.ENOPROTOOPT)
    return _put(task, optval, optlen, data, min(length, len(data)))


def sock_getbindtodevice(task, sk, optval: int, optlen: int, length: int) -> int:
    """Linux: sock.c sock_getbindtodevice(): length 0 when unbound, else the name with
    its NUL, EINVAL when the buffer is shorter."""
    if not sk.bound_dev_if:
        return _put(task, optval, optlen, b"", 0)
    name = next(n for n, i in NETDEVS.items() if i == sk.bound_dev_if).encode() + b"\0"
    if len(name) > length:
        raise _einval()
    return _put(task, optval, optlen, name, len(name))


def tcp_info(sk) -> bytes:
    """Linux: tcp.c tcp_get_info(), the fields sysemu knows (the rest zero)."""
    listen = sk.state == TcpState.TCP_LISTEN
    head = TCP_INFO_HEAD.pack(
        int(sk.state), sk.ca_state, sk.retransmits, sk.probes_out, sk.backoff, 0, 0, 0,
        int((sk.rto if not listen else TCP_TIMEOUT_INIT) * USEC_PER_SEC),
        int((sk.ack_ato or 0.04) * USEC_PER_SEC),
        65483 if sk.state == TcpState.TCP_ESTABLISHED else 536, sk.rcv_mss,
        sk.ack_backlog if listen else len(sk.rtx_q),            # unacked
        sk.max_ack_backlog if listen else 0,                    # sacked
        0, sk.retrans_out, 0, 0, 0, 0, 0, 0, 0,                 # lost, retrans, ...
        sk.srtt_us >> 3, sk.mdev_us >> 2, sk.snd_ssthresh, sk.snd_cwnd, 0,
        int(sk.net.sysctl("net.ipv4.tcp_reordering")), 0, 0, sk.total_retrans)
    # Linux: the byte and segment counts after the head (RFC 4898 names): pacing rates,
    # bytes_acked, bytes_received, segs_out, segs_in, notsent_bytes, min_rtt,
    # data_segs_in, data_segs_out, ... bytes_sent (offset 200), snd_wnd, rcv_wnd (228)
    counts = bytearray(TCP_INFO_SIZE - len(head))
    base = len(head)
    struct.pack_into("<QQIIIIII", counts, 120 - base, sk.bytes_acked, sk.bytes_received,
                     sk.segs_out, sk.segs_in, len(sk.sndq) - sk.snd_sent, 0,
                     sk.data_segs_in, sk.data_segs_out)
    if TCP_INFO_SIZE >= 208:
        struct.pack_into("<Q", counts, 200 - base, sk.bytes_sent)
    return (head + bytes(counts))[:TCP_INFO_SIZE]


def do_tcp_getsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: tcp.c do_tcp_getsockopt(): EINVAL for a negative length (probed on
    6.18), then min(len, size of the value)."""
    length = get_user_int(task.mem, optlen)
    if length < 0:
        raise _einval()
    if optname == TCP_INFO:
        data = tcp_info(sk)
        return _put(task, optval, optlen, data, min(length, len(data)))
    length = min(length, 4)
    opts = sk.tcp_opts
    if optname == TCP_NODELAY:
        val = int(sk.nodelay)
    elif optname == TCP_SYNCNT:
        val = sk.syn_retries or int(sk.net.sysctl("net.ipv4.tcp_syn_retries"))
    elif optname == TCP_DEFER_ACCEPT:
        val = retrans_to_secs(sk.defer_accept, int(TCP_TIMEOUT_INIT), int(TCP_RTO_MAX))
    elif optname == TCP_KEEPIDLE:
        val = opts.get(TCP_KEEPIDLE, 7200)
    elif optname == TCP_KEEPINTVL:
        val = opts.get(TCP_KEEPINTVL, 75)
    elif optname == TCP_KEEPCNT:
        val = opts.get(TCP_KEEPCNT, 9)
    elif optname == TCP_MAXSEG:
        val = 65483 if sk.state == TcpState.TCP_ESTABLISHED else 536
    elif optname in (TCP_USER_TIMEOUT, TCP_CORK):
        val = opts.get(optname, 0)
    elif optname == TCP_QUICKACK:
        val = int(not inet_csk_in_pingpong_mode(sk))
    elif optname == TCP_LINGER2:
        val = opts.get(optname, 0) or int(sk.net.sysctl("net.ipv4.tcp_fin_timeout"))
    elif optname in (TCP_FASTOPEN, TCP_FASTOPEN_CONNECT):
        val = opts.get(optname, 0)
    else:
        raise SyscallError(Errno.ENOPROTOOPT)
    return _put(task, optval, optlen, _int(val), length)


def do_ip_getsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: ip_sockglue.c do_ip_getsockopt(): a short buffer gets one byte when the
    value fits."""
    length = get_user_int(task.mem, optlen)
    if length < 0:
        raise _einval()
    if optname == IP_BIND_ADDRESS_NO_PORT:
        val = int(sk.bind_address_no_port)
    elif optname == IP_FREEBIND:
        val = int(sk.freebind)
    elif optname == IP_TRANSPARENT:
        val = int(sk.transparent)
    elif optname == IP_TOS:
        val = sk.tcp_opts.get(("ip", IP_TOS), 0)
    elif optname == IP_TTL:
        val = sk.tcp_opts.get(("ip", IP_TTL), -1)
        if val == -1:
            val = 64
    else:
        raise SyscallError(Errno.ENOPROTOOPT)
    if 0 < length < 4 and 0 <= val <= 255:
        return _put(task, optval, optlen, bytes([val]), 1)
    return _put(task, optval, optlen, _int(val), min(length, 4))


def do_ipv6_getsockopt(task, sk, optname: int, optval: int, optlen: int) -> int:
    """Linux: ipv6_sockglue.c do_ipv6_getsockopt()."""
    length = get_user_int(task.mem, optlen)
    if optname != IPV6_V6ONLY:
        raise SyscallError(Errno.ENOPROTOOPT)
    # Linux: len = min_t(unsigned int, sizeof(int), len): a negative length copies 4
    return _put(task, optval, optlen, _int(int(sk.ipv6only)), min(length & 0xFFFFFFFF, 4))
