"""IPv4/IPv6/TCP constants and struct layouts. Linux: include/uapi/linux/in.h, in6.h,
tcp.h, include/net/tcp_states.h."""
from __future__ import annotations

import enum
import struct

IPPROTO_IP = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ICMPV6 = 58
IPPROTO_RAW = 255
IPPROTO_MAX = 263
SOL_IP = 0
SOL_TCP = 6
SOL_IPV6 = 41

INADDR_ANY = b"\0\0\0\0"
IN6ADDR_ANY = bytes(16)
IN6ADDR_LOOPBACK = bytes(15) + b"\1"
V4MAPPED_PREFIX = bytes(10) + b"\xff\xff"

# struct sockaddr_in: family, port (network order), addr, zero[8]
SOCKADDR_IN = struct.Struct("<H2s4s8x")            # 16 bytes
# struct sockaddr_in6: family, port, flowinfo, addr, scope_id
SOCKADDR_IN6 = struct.Struct("<H2s4s16sI")          # 28 bytes
SIN6_LEN_RFC2133 = 24

# IP level options
IP_TOS = 1
IP_TTL = 2
IP_FREEBIND = 15
IP_TRANSPARENT = 19
IP_ADD_MEMBERSHIP = 35
IP_DROP_MEMBERSHIP = 36
MCAST_JOIN_GROUP = 42
MCAST_LEAVE_GROUP = 45
# struct group_req: gr_interface (u32), pad, struct sockaddr_storage gr_group
GROUP_REQ_SIZE = 136
IP_BIND_ADDRESS_NO_PORT = 24
# IPV6 level
IPV6_ADDRFORM = 1
IPV6_V6ONLY = 26

# TCP level
TCP_NODELAY = 1
TCP_MAXSEG = 2
TCP_CORK = 3
TCP_KEEPIDLE = 4
TCP_KEEPINTVL = 5
TCP_KEEPCNT = 6
TCP_SYNCNT = 7
TCP_LINGER2 = 8
TCP_DEFER_ACCEPT = 9
TCP_WINDOW_CLAMP = 10
TCP_INFO = 11
TCP_QUICKACK = 12
TCP_USER_TIMEOUT = 18
TCP_FASTOPEN = 23
TCP_FASTOPEN_CONNECT = 30
MAX_TCP_SYNCNT = 127
MAX_TCP_KEEPIDLE = 32767
MAX_TCP_KEEPINTVL = 32767
MAX_TCP_KEEPCNT = 127


class TcpState(enum.IntEnum):
    """Linux: include/net/tcp_states.h."""
    TCP_ESTABLISHED = 1
    TCP_SYN_SENT = 2
    TCP_SYN_RECV = 3
    TCP_FIN_WAIT1 = 4
    TCP_FIN_WAIT2 = 5
    TCP_TIME_WAIT = 6
    TCP_CLOSE = 7
    TCP_CLOSE_WAIT = 8
    TCP_LAST_ACK = 9
    TCP_LISTEN = 10
    TCP_CLOSING = 11
    TCP_NEW_SYN_RECV = 12


class TcpStates:
    """TcpState's members (the same objects) as plain class attributes, for the TCP
    code, which reads states on every segment: in CPython 3.11 an Enum's class attribute
    goes through EnumType.__getattr__'s hook (~90 against ~25 ns a read, timeit; a
    connection reads ~80: bench/model_connrate.py counts the difference)."""


for _name, _state in TcpState.__members__.items():
    setattr(TcpStates, _name, _state)
del _name, _state


# struct tcp_info (uapi/linux/tcp.h): 8 u8 fields, then u32s; the 6.18 struct is 280
# bytes (probed: getsockopt(TCP_INFO) on a 6.18 host returns 280). sysemu fills the
# head and zeroes the rest.
TCP_INFO_SIZE = 280
TCP_INFO_HEAD = struct.Struct("<8B24I")   # tcpi_state .. tcpi_total_retrans (104 bytes)


class TcpFlags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
