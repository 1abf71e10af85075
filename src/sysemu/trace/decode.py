"""strace's argument decoders: bytes and integers in, strace's text out.

Every decoder takes whatever the tracee handed the kernel (any integers, any bytes, a
memory that may fault) and returns a string; none raises. The formats follow strace 6.x
(src/sockaddr.c, src/net.c, src/util.c string_quote(), src/open.c), checked against the
strace 6.1 installed on the build machine (see tests/test_trace_format.py).
"""
from __future__ import annotations

import struct
from typing import Callable, Iterable, Protocol

from sysemu.abi.errno import Errno
from sysemu.abi.limits import PATH_MAX
from sysemu.abi.socket import NATIVE_LAYOUTS, SOCKADDR_STORAGE_SIZE, UserLayouts
from sysemu.kernel.errors import SyscallError
from sysemu.kernel.syscalls import _cint, _clong, _cuint, _culong

MAX_STRLEN = 32          # strace -s default
AT_FDCWD = -100


class Memory(Protocol):
    def read(self, addr: int, size: int) -> bytes: ...


# The register narrowings are the handler table's (SYSCALL_DEFINE's casts).
s32, u32, s64, u64 = _cint, _cuint, _clong, _culong


def umove(mem: Memory | None, addr: int, size: int) -> bytes | None:
    """Read tracee memory; None when it faults (or there is no memory to read)."""
    if mem is None or addr == 0 or size < 0:
        return None
    try:
        data = mem.read(u64(addr), size)
    except (SyscallError, ValueError, OverflowError, IndexError):
        return None
    return bytes(data) if len(data) == size else None


def printaddr(addr: int) -> str:
    """Linux strace: printaddr(): NULL or the hex address."""
    addr = u64(addr)
    return "NULL" if addr == 0 else f"{addr:#x}"


# --- strings (strace src/util.c string_quote) -------------------------------------------

_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r",
            0x22: '\\"', 0x5C: "\\\\"}


def quote(data: bytes, zero_terminated: bool = False) -> tuple[str, bool]:
    """strace string_quote(): the quoted text and whether a NUL ended it (only with
    zero_terminated). Octal escapes are as short as possible unless a digit follows."""
    out = ['"']
    ended = False
    n = len(data)
    for i, c in enumerate(data):
        if zero_terminated and c == 0:
            ended = True
            break
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            nxt = data[i + 1] if i + 1 < n else None
            if zero_terminated and nxt == 0:
                nxt = None
            if nxt is not None and 0x30 <= nxt <= 0x37:
                out.append(f"\\{c:03o}")
            else:
                out.append(f"\\{c:o}")
    out.append('"')
    return "".join(out), ended


def quote_hex(data: bytes) -> str:
    return '"' + "".join(f"\\x{c:02x}" for c in data) + '"'


def printstr(mem: Memory | None, addr: int, length: int, max_strlen: int = MAX_STRLEN) -> str:
    """strace printstrn(): a buffer of `length` bytes, truncated to max_strlen with "..."."""
    if addr == 0:
        return "NULL"
    length = max(0, min(u64(length), 1 << 31))
    size = min(length, max_strlen)
    data = umove(mem, addr, size)
    if data is None:
        return printaddr(addr)
    text, _ = quote(data)
    return text + ("..." if length > max_strlen else "")


def printpath(mem: Memory | None, addr: int) -> str:
    """strace printpath(): a NUL-terminated path, not truncated by -s."""
    if addr == 0:
        return "NULL"
    data = _read_cstring(mem, addr, PATH_MAX)
    if data is None:
        return printaddr(addr)
    text, ended = quote(data, zero_terminated=True)
    return text if ended or len(data) < PATH_MAX else text + "..."


def _read_cstring(mem: Memory | None, addr: int, limit: int) -> bytes | None:
    """umovestr(): bytes up to and including the first NUL, or `limit` bytes; None when
    the first byte faults. Reads page-bounded chunks, halving a chunk that faults (the
    mapping may end before the page does)."""
    got = b""
    pos = u64(addr)
    chunk = 4096 - (pos & 0xFFF)
    while len(got) < limit:
        chunk = max(1, min(chunk, 4096 - (pos & 0xFFF), limit - len(got)))
        data = umove(mem, pos, chunk)
        if data is None:
            if chunk > 1:
                chunk //= 2
                continue
            if not got:
                return None
            break
        nul = data.find(b"\0")
        if nul >= 0:
            return got + data[: nul + 1]
        got += data
        pos += chunk
    return got


# --- xlat -------------------------------------------------------------------------------

def xlat(table: dict[int, str], value: int, unknown: str, *, signed: bool = False) -> str:
    """strace printxval(): the name, or `0x.. /* X_??? */`."""
    name = table.get(value)
    if name is not None:
        return name
    if signed and value < 0:
        return f"{value} /* {unknown} */"
    return f"{value:#x} /* {unknown} */"


def flags(table: Iterable[tuple[int, str]], value: int, unknown: str, *,
          zero: str = "0") -> str:
    """strace printflags(): known bits in table order, then the rest in hex."""
    parts = []
    rest = value
    for bit, name in table:
        if bit and rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(f"{rest:#x}")
    if not parts:
        return zero
    if len(parts) == 1 and rest:
        return f"{rest:#x} /* {unknown} */"
    return "|".join(parts)


ADDRESS_FAMILIES = dict(enumerate("""AF_UNSPEC AF_UNIX AF_INET AF_AX25 AF_IPX AF_APPLETALK
AF_NETROM AF_BRIDGE AF_ATMPVC AF_X25 AF_INET6 AF_ROSE AF_DECnet AF_NETBEUI AF_SECURITY AF_KEY
AF_NETLINK AF_PACKET AF_ASH AF_ECONET AF_ATMSVC AF_RDS AF_SNA AF_IRDA AF_PPPOX AF_WANPIPE
AF_LLC AF_IB AF_MPLS AF_CAN AF_TIPC AF_BLUETOOTH AF_IUCV AF_RXRPC AF_ISDN AF_PHONET
AF_IEEE802154 AF_CAIF AF_ALG AF_NFC AF_VSOCK AF_KCM AF_QIPCRTR AF_SMC AF_XDP AF_MCTP""".split()))

SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
              5: "SOCK_SEQPACKET", 6: "SOCK_DCCP", 10: "SOCK_PACKET"}
SOCK_TYPE_FLAGS = ((0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK"))

INET_PROTOCOLS = {0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 2: "IPPROTO_IGMP", 4: "IPPROTO_IPIP",
                  6: "IPPROTO_TCP", 8: "IPPROTO_EGP", 12: "IPPROTO_PUP", 17: "IPPROTO_UDP",
                  22: "IPPROTO_IDP", 29: "IPPROTO_TP", 33: "IPPROTO_DCCP",
                  41: "IPPROTO_IPV6", 46: "IPPROTO_RSVP", 47: "IPPROTO_GRE",
                  50: "IPPROTO_ESP", 51: "IPPROTO_AH", 58: "IPPROTO_ICMPV6",
                  92: "IPPROTO_MTP", 94: "IPPROTO_BEETPH", 98: "IPPROTO_ENCAP",
                  103: "IPPROTO_PIM", 108: "IPPROTO_COMP", 115: "IPPROTO_L2TP",
                  132: "IPPROTO_SCTP", 136: "IPPROTO_UDPLITE", 137: "IPPROTO_MPLS",
                  143: "IPPROTO_ETHERNET", 255: "IPPROTO_RAW", 262: "IPPROTO_MPTCP"}
NETLINK_PROTOCOLS = {0: "NETLINK_ROUTE", 1: "NETLINK_UNUSED", 2: "NETLINK_USERSOCK",
                     3: "NETLINK_FIREWALL", 4: "NETLINK_SOCK_DIAG", 5: "NETLINK_NFLOG",
                     6: "NETLINK_XFRM", 7: "NETLINK_SELINUX", 8: "NETLINK_ISCSI",
                     9: "NETLINK_AUDIT", 10: "NETLINK_FIB_LOOKUP", 11: "NETLINK_CONNECTOR",
                     12: "NETLINK_NETFILTER", 13: "NETLINK_IP6_FW", 14: "NETLINK_DNRTMSG",
                     15: "NETLINK_KOBJECT_UEVENT", 16: "NETLINK_GENERIC",
                     18: "NETLINK_SCSITRANSPORT", 19: "NETLINK_ECRYPTFS",
                     20: "NETLINK_RDMA", 21: "NETLINK_CRYPTO", 22: "NETLINK_SMC"}
ETH_PROTOCOLS = {0x0003: "ETH_P_ALL", 0x0800: "ETH_P_IP", 0x0806: "ETH_P_ARP",
                 0x86DD: "ETH_P_IPV6", 0x8100: "ETH_P_8021Q"}


def socket_family(family: int) -> str:
    return xlat(ADDRESS_FAMILIES, u32(family), "AF_???")


def socket_type(value: int) -> str:
    """strace tprint_sock_type(): the type, then printflags() of the rest:
    `SOCK_STREAM|SOCK_CLOEXEC`, `SOCK_STREAM|0x40000000 /* SOCK_??? */` (unknown bits
    alone get the comment), `0x4d /* SOCK_??? */` for an unknown type."""
    value = u32(value)
    kind = SOCK_TYPES.get(value & 0xF)
    if kind is None:
        return flags(SOCK_TYPE_FLAGS, value, "SOCK_???")
    rest = value & ~0xF
    return kind if not rest else f"{kind}|{flags(SOCK_TYPE_FLAGS, rest, 'SOCK_???')}"


def socket_protocol(family: int, protocol: int) -> str:
    family, protocol = u32(family), u32(protocol)
    if family in (2, 10):
        return xlat(INET_PROTOCOLS, protocol, "IPPROTO_???")
    if family == 16:
        return xlat(NETLINK_PROTOCOLS, protocol, "NETLINK_???")
    if family == 17:
        proto = ((protocol & 0xFF) << 8) | ((protocol >> 8) & 0xFF)   # ntohs
        if protocol > 0xFFFF:
            return str(protocol)
        return f"htons({xlat(ETH_PROTOCOLS, proto, 'ETH_P_???')})"
    return str(protocol)


def accept4_flags(value: int) -> str:
    return flags(SOCK_TYPE_FLAGS, u32(value), "SOCK_???")


SHUTDOWN_HOW = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}


def shutdown_how(value: int) -> str:
    return xlat(SHUTDOWN_HOW, u32(value), "SHUT_???")


MSG_FLAGS = ((0x1, "MSG_OOB"), (0x2, "MSG_PEEK"), (0x4, "MSG_DONTROUTE"),
             (0x8, "MSG_CTRUNC"), (0x10, "MSG_PROBE"), (0x20, "MSG_TRUNC"),
             (0x40, "MSG_DONTWAIT"), (0x80, "MSG_EOR"), (0x100, "MSG_WAITALL"),
             (0x200, "MSG_FIN"), (0x400, "MSG_SYN"), (0x800, "MSG_CONFIRM"),
             (0x1000, "MSG_RST"), (0x2000, "MSG_ERRQUEUE"), (0x4000, "MSG_NOSIGNAL"),
             (0x8000, "MSG_MORE"), (0x10000, "MSG_WAITFORONE"), (0x40000, "MSG_BATCH"),
             (0x2000000, "MSG_SOCK_DEVMEM"), (0x4000000, "MSG_ZEROCOPY"),
             (0x8000000, "MSG_SPLICE_PAGES"), (0x20000000, "MSG_FASTOPEN"),
             (0x40000000, "MSG_CMSG_CLOEXEC"))


def msg_flags(value: int) -> str:
    return flags(MSG_FLAGS, u32(value), "MSG_???")


SOCKET_LEVELS = {0: "SOL_IP", 1: "SOL_SOCKET", 6: "SOL_TCP", 17: "SOL_UDP", 41: "SOL_IPV6",
                 58: "SOL_ICMPV6", 132: "SOL_SCTP", 136: "SOL_UDPLITE", 255: "SOL_RAW",
                 263: "SOL_NETLINK", 264: "SOL_TIPC", 265: "SOL_RXRPC", 266: "SOL_PPPOL2TP",
                 267: "SOL_BLUETOOTH", 268: "SOL_PNPIPE", 269: "SOL_RDS", 270: "SOL_IUCV",
                 271: "SOL_CAIF", 272: "SOL_ALG", 273: "SOL_NFC", 274: "SOL_KCM",
                 275: "SOL_TLS", 276: "SOL_XDP", 277: "SOL_MPTCP", 278: "SOL_MCTP",
                 279: "SOL_SMC", 280: "SOL_VSOCK", 281: "SOL_PACKET"}

SO_OPTIONS = {1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR",
              5: "SO_DONTROUTE", 6: "SO_BROADCAST", 7: "SO_SNDBUF", 8: "SO_RCVBUF",
              9: "SO_KEEPALIVE", 10: "SO_OOBINLINE", 11: "SO_NO_CHECK", 12: "SO_PRIORITY",
              13: "SO_LINGER", 14: "SO_BSDCOMPAT", 15: "SO_REUSEPORT", 16: "SO_PASSCRED",
              17: "SO_PEERCRED", 18: "SO_RCVLOWAT", 19: "SO_SNDLOWAT",
              20: "SO_RCVTIMEO_OLD", 21: "SO_SNDTIMEO_OLD", 22: "SO_SECURITY_AUTHENTICATION",
              23: "SO_SECURITY_ENCRYPTION_TRANSPORT", 24: "SO_SECURITY_ENCRYPTION_NETWORK",
              25: "SO_BINDTODEVICE", 26: "SO_ATTACH_FILTER", 27: "SO_DETACH_FILTER",
              28: "SO_PEERNAME", 29: "SO_TIMESTAMP_OLD", 30: "SO_ACCEPTCONN",
              31: "SO_PEERSEC", 32: "SO_SNDBUFFORCE", 33: "SO_RCVBUFFORCE",
              34: "SO_PASSSEC", 35: "SO_TIMESTAMPNS_OLD", 36: "SO_MARK",
              37: "SO_TIMESTAMPING_OLD", 38: "SO_PROTOCOL", 39: "SO_DOMAIN",
              40: "SO_RXQ_OVFL", 41: "SO_WIFI_STATUS", 42: "SO_PEEK_OFF", 43: "SO_NOFCS",
              44: "SO_LOCK_FILTER", 45: "SO_SELECT_ERR_QUEUE", 46: "SO_BUSY_POLL",
              47: "SO_MAX_PACING_RATE", 48: "SO_BPF_EXTENSIONS", 49: "SO_INCOMING_CPU",
              50: "SO_ATTACH_BPF", 51: "SO_ATTACH_REUSEPORT_CBPF",
              52: "SO_ATTACH_REUSEPORT_EBPF", 53: "SO_CNX_ADVICE", 55: "SO_MEMINFO",
              56: "SO_INCOMING_NAPI_ID", 57: "SO_COOKIE", 59: "SO_PEERGROUPS",
              60: "SO_ZEROCOPY", 61: "SO_TXTIME", 62: "SO_BINDTOIFINDEX",
              63: "SO_TIMESTAMP_NEW", 64: "SO_TIMESTAMPNS_NEW", 65: "SO_TIMESTAMPING_NEW",
              66: "SO_RCVTIMEO_NEW", 67: "SO_SNDTIMEO_NEW", 68: "SO_DETACH_REUSEPORT_BPF",
              69: "SO_PREFER_BUSY_POLL", 70: "SO_BUSY_POLL_BUDGET", 71: "SO_NETNS_COOKIE",
              72: "SO_BUF_LOCK", 73: "SO_RESERVE_MEM", 74: "SO_TXREHASH", 75: "SO_RCVMARK",
              76: "SO_PASSPIDFD", 77: "SO_PEERPIDFD"}

TCP_OPTIONS = {1: "TCP_NODELAY", 2: "TCP_MAXSEG", 3: "TCP_CORK", 4: "TCP_KEEPIDLE",
               5: "TCP_KEEPINTVL", 6: "TCP_KEEPCNT", 7: "TCP_SYNCNT", 8: "TCP_LINGER2",
               9: "TCP_DEFER_ACCEPT", 10: "TCP_WINDOW_CLAMP", 11: "TCP_INFO",
               12: "TCP_QUICKACK", 13: "TCP_CONGESTION", 14: "TCP_MD5SIG",
               15: "TCP_COOKIE_TRANSACTIONS", 16: "TCP_THIN_LINEAR_TIMEOUTS",
               17: "TCP_THIN_DUPACK", 18: "TCP_USER_TIMEOUT", 19: "TCP_REPAIR",
               20: "TCP_REPAIR_QUEUE", 21: "TCP_QUEUE_SEQ", 22: "TCP_REPAIR_OPTIONS",
               23: "TCP_FASTOPEN", 24: "TCP_TIMESTAMP", 25: "TCP_NOTSENT_LOWAT",
               26: "TCP_CC_INFO", 27: "TCP_SAVE_SYN", 28: "TCP_SAVED_SYN",
               29: "TCP_REPAIR_WINDOW", 30: "TCP_FASTOPEN_CONNECT", 31: "TCP_ULP",
               32: "TCP_MD5SIG_EXT", 33: "TCP_FASTOPEN_KEY", 34: "TCP_FASTOPEN_NO_COOKIE",
               35: "TCP_ZEROCOPY_RECEIVE", 36: "TCP_INQ", 37: "TCP_TX_DELAY"}
IP_OPTIONS = {1: "IP_TOS", 2: "IP_TTL", 3: "IP_HDRINCL", 4: "IP_OPTIONS", 5: "IP_ROUTER_ALERT",
              6: "IP_RECVOPTS", 7: "IP_RETOPTS", 8: "IP_PKTINFO", 9: "IP_PKTOPTIONS",
              10: "IP_MTU_DISCOVER", 11: "IP_RECVERR", 12: "IP_RECVTTL", 13: "IP_RECVTOS",
              14: "IP_MTU", 15: "IP_FREEBIND", 16: "IP_IPSEC_POLICY",
              17: "IP_XFRM_POLICY", 18: "IP_PASSSEC", 19: "IP_TRANSPARENT",
              20: "IP_ORIGDSTADDR", 21: "IP_MINTTL", 22: "IP_NODEFRAG", 23: "IP_CHECKSUM",
              24: "IP_BIND_ADDRESS_NO_PORT", 25: "IP_RECVFRAGSIZE", 26: "IP_RECVERR_RFC4884",
              32: "IP_MULTICAST_IF", 33: "IP_MULTICAST_TTL", 34: "IP_MULTICAST_LOOP",
              35: "IP_ADD_MEMBERSHIP", 36: "IP_DROP_MEMBERSHIP",
              37: "IP_UNBLOCK_SOURCE", 38: "IP_BLOCK_SOURCE",
              39: "IP_ADD_SOURCE_MEMBERSHIP", 40: "IP_DROP_SOURCE_MEMBERSHIP",
              41: "IP_MSFILTER", 49: "IP_MULTICAST_ALL", 50: "IP_UNICAST_IF"}
IPV6_OPTIONS = {1: "IPV6_ADDRFORM", 2: "IPV6_2292PKTINFO", 3: "IPV6_2292HOPOPTS",
                4: "IPV6_2292DSTOPTS", 5: "IPV6_2292RTHDR", 6: "IPV6_2292PKTOPTIONS",
                7: "IPV6_CHECKSUM", 8: "IPV6_2292HOPLIMIT", 9: "IPV6_NEXTHOP",
                10: "IPV6_AUTHHDR", 11: "IPV6_FLOWINFO", 16: "IPV6_UNICAST_HOPS",
                17: "IPV6_MULTICAST_IF", 18: "IPV6_MULTICAST_HOPS",
                19: "IPV6_MULTICAST_LOOP", 20: "IPV6_ADD_MEMBERSHIP",
                21: "IPV6_DROP_MEMBERSHIP", 22: "IPV6_ROUTER_ALERT",
                23: "IPV6_MTU_DISCOVER", 24: "IPV6_MTU", 25: "IPV6_RECVERR",
                26: "IPV6_V6ONLY", 27: "IPV6_JOIN_ANYCAST", 28: "IPV6_LEAVE_ANYCAST",
                29: "IPV6_MULTICAST_ALL", 30: "IPV6_ROUTER_ALERT_ISOLATE",
                31: "IPV6_RECVERR_RFC4884", 34: "IPV6_IPSEC_POLICY",
                35: "IPV6_XFRM_POLICY", 36: "IPV6_HDRINCL", 49: "IPV6_RECVPKTINFO",
                50: "IPV6_PKTINFO", 51: "IPV6_RECVHOPLIMIT", 52: "IPV6_HOPLIMIT",
                53: "IPV6_RECVHOPOPTS", 54: "IPV6_HOPOPTS", 55: "IPV6_RTHDRDSTOPTS",
                56: "IPV6_RECVRTHDR", 57: "IPV6_RTHDR", 58: "IPV6_RECVDSTOPTS",
                59: "IPV6_DSTOPTS", 60: "IPV6_RECVPATHMTU", 61: "IPV6_PATHMTU",
                62: "IPV6_DONTFRAG", 66: "IPV6_RECVTCLASS", 67: "IPV6_TCLASS",
                70: "IPV6_AUTOFLOWLABEL", 72: "IPV6_ADDR_PREFERENCES",
                73: "IPV6_MINHOPCOUNT", 74: "IPV6_ORIGDSTADDR", 75: "IPV6_TRANSPARENT",
                76: "IPV6_UNICAST_IF", 77: "IPV6_RECVFRAGSIZE", 78: "IPV6_FREEBIND"}
UDP_OPTIONS = {1: "UDP_CORK", 100: "UDP_ENCAP", 101: "UDP_NO_CHECK6_TX",
               102: "UDP_NO_CHECK6_RX", 103: "UDP_SEGMENT", 104: "UDP_GRO"}
LEVEL_OPTIONS = {1: (SO_OPTIONS, "SO_???"), 6: (TCP_OPTIONS, "TCP_???"),
                 0: (IP_OPTIONS, "IP_???"), 41: (IPV6_OPTIONS, "IPV6_???"),
                 17: (UDP_OPTIONS, "UDP_???")}


def sockopt_level(level: int) -> str:
    return xlat(SOCKET_LEVELS, u32(level), "SOL_??")


def sockopt_name(level: int, optname: int) -> str:
    level, optname = u32(level), u32(optname)
    if level in LEVEL_OPTIONS:
        table, unknown = LEVEL_OPTIONS[level]
        return xlat(table, optname, unknown)
    return str(optname)


def sockopt_value(mem: Memory | None, level: int, optname: int, addr: int, length: int,
                  max_strlen: int = MAX_STRLEN) -> str:
    """The option value as strace prints it for setsockopt and (with the returned
    length) getsockopt: `[1]` for an int, `{l_onoff=.., l_linger=..}`, else a string."""
    level, optname, length = u32(level), u32(optname), s32(length)
    if addr == 0:
        return "NULL"
    if length < 0:
        return printaddr(addr)
    if level == 1 and optname == 13 and length >= 8:        # SO_LINGER
        data = umove(mem, addr, 8)
        if data is None:
            return printaddr(addr)
        onoff, linger = struct.unpack("<ii", data)
        return f"{{l_onoff={onoff}, l_linger={linger}}}"
    if length == 4:
        data = umove(mem, addr, 4)
        if data is None:
            return printaddr(addr)
        return f"[{struct.unpack('<i', data)[0]}]"
    return printstr(mem, addr, length, max_strlen)


# open(2) flags, in strace's order (O_SYNC before O_DSYNC, O_TMPFILE before O_DIRECTORY,
# FASYNC last), as strace 6.1 prints them.
OPEN_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
OPEN_FLAGS = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
              (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"),
              (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
              (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"),
              (0o10000000, "O_PATH"), (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"),
              (0o20000, "FASYNC"))
O_CREAT, O_TMPFILE = 0o100, 0o20200000


def open_flags(value: int) -> str:
    value = u32(value)
    parts = [OPEN_ACCESS[value & 3]]
    rest = value & ~3
    for bit, name in OPEN_FLAGS:
        if rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts)


def open_mode(value: int) -> str:
    """C's "%#03o": 0644, 000."""
    value = u32(value)
    return ("0" + f"{value:o}").rjust(3, "0") if value else "000"


def dirfd(fd: int) -> str:
    fd = s32(fd)
    return "AT_FDCWD" if fd == AT_FDCWD else str(fd)


# --- addresses --------------------------------------------------------------------------

def inet_ntop4(b: bytes) -> str:
    return ".".join(str(x) for x in b[:4])


def inet_ntop6(b: bytes) -> str:
    """glibc inet_ntop(AF_INET6): longest run (>= 2) of zero words as "::", first on a tie;
    IPv4-mapped and IPv4-compatible addresses end in dotted quad."""
    words = struct.unpack(">8H", b[:16])
    best_base, best_len, base, run = -1, 0, -1, 0
    for i, w in enumerate(words + (1,)):
        if i < 8 and w == 0:
            if base < 0:
                base, run = i, 0
            run += 1
        elif base >= 0:
            if run > best_len:
                best_base, best_len = base, run
            base = -1
    if best_len < 2:
        best_base = -1
    out = []
    i = 0
    while i < 8:
        if i == best_base:
            out.append(":" if i == 0 else "")
            out.append("")
            i += best_len
            if i == 8:
                out[-1] = ":"
            continue
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out.append(inet_ntop4(b[12:16]))
            break
        out.append(f"{words[i]:x}")
        i += 1
    text = ":".join(out)
    return text.replace(":::", "::")


def _sockaddr_raw(buf: bytes, addrlen: int) -> str:
    text, _ = quote(buf[2:addrlen])
    return f"sa_data={text}"


def _sockaddr_un(buf: bytes, addrlen: int) -> str:
    un_len = min(addrlen, 110)
    path = buf[2:un_len] + b"\0"
    if path[0]:
        text, _ = quote(path, zero_terminated=True)
        return f"sun_path={text}"
    text, _ = quote(path[1: un_len - 2])
    return f"sun_path=@{text}"


def _port(b: bytes) -> int:
    return (b[0] << 8) | b[1]


def _sockaddr_in(buf: bytes, addrlen: int) -> str:
    return f'sin_port=htons({_port(buf[2:4])}), sin_addr=inet_addr("{inet_ntop4(buf[4:8])}")'


def _sockaddr_in6(buf: bytes, addrlen: int) -> str:
    flowinfo = struct.unpack(">I", buf[4:8])[0]
    text = (f"sin6_port=htons({_port(buf[2:4])}), sin6_flowinfo=htonl({flowinfo}), "
            f'inet_pton(AF_INET6, "{inet_ntop6(buf[8:24])}", &sin6_addr)')
    if addrlen > 24:
        # sysemu: strace names a link-local scope with if_nametoindex("ethN") from the
        # host's interfaces; sysemu's virtual network prints the index.
        text += f", sin6_scope_id={struct.unpack('<I', buf[24:28])[0]}"
    return text


def _sockaddr_nl(buf: bytes, addrlen: int) -> str:
    pad, pid, groups = struct.unpack("<HIi", buf[2:12])
    head = f"nl_pad={pad:#x}, " if pad else ""
    return f"{head}nl_pid={pid}, nl_groups={groups & 0xFFFFFFFF:#08x}"


_SA_PRINTERS: dict[int, tuple[Callable[[bytes, int], str], int]] = {
    1: (_sockaddr_un, 3), 2: (_sockaddr_in, 16), 10: (_sockaddr_in6, 24),
    16: (_sockaddr_nl, 12)}


def print_sockaddr(buf: bytes, addrlen: int | None = None) -> str:
    """strace print_sockaddr() of `addrlen` bytes already read (addrlen >= 2)."""
    if addrlen is None:
        addrlen = len(buf)
    pad = SOCKADDR_STORAGE_SIZE + 1 - min(addrlen, SOCKADDR_STORAGE_SIZE)
    buf = bytes(buf[:addrlen]) + bytes(pad)
    family = buf[0] | (buf[1] << 8)
    text = "{sa_family=" + xlat(ADDRESS_FAMILIES, family, "AF_???")
    if addrlen > 2:
        printer = _SA_PRINTERS.get(family)
        if printer is not None and addrlen >= printer[1]:
            text += ", " + printer[0](buf, addrlen)
        else:
            text += ", " + _sockaddr_raw(buf, addrlen)
    return text + "}"


def decode_sockaddr(mem: Memory | None, addr: int, addrlen: int) -> str:
    """strace decode_sockaddr(): NULL/hex when short or unreadable, else the struct."""
    addrlen = s32(addrlen)
    if addrlen < 2:
        return printaddr(addr)
    addrlen = min(addrlen, SOCKADDR_STORAGE_SIZE)
    data = umove(mem, addr, addrlen)
    if data is None:
        return printaddr(addr)
    return print_sockaddr(data, addrlen)


def socklen(before: int, after: int) -> str:
    """`[16]` when unchanged, `[128 => 16]` when the kernel wrote another length."""
    return f"[{before}]" if before == after else f"[{before} => {after}]"


# --- iovec / msghdr ---------------------------------------------------------------------

# The layouts of each ABI are the socket layer's (sysemu.abi.socket.LAYOUTS): 64-bit
# by default, compat (i386, x32) when the call's ABI says so.
NATIVE = NATIVE_LAYOUTS
MSGHDR = NATIVE.msghdr          # name, namelen, iov, iovlen, control, controllen, flags
IOV_MAX = 1024


def print_iovec(mem: Memory | None, addr: int, count: int, data_size: int | None,
                max_strlen: int = MAX_STRLEN, layouts: UserLayouts = NATIVE) -> str:
    """strace tprint_iov_upto(): `[{iov_base="..", iov_len=N}, ...]`; data_size limits the
    bytes shown in total (the return value of a read), None shows iov_len of each."""
    count = u64(count)
    if addr == 0:
        return "NULL"
    if count == 0:
        return "[]"
    iovec = layouts.iovec
    shown = min(count, IOV_MAX, max_strlen)
    raw = umove(mem, addr, iovec.size * shown)
    if raw is None:
        return printaddr(addr)
    items = []
    left = data_size
    for i in range(shown):
        base, length = iovec.unpack_from(raw, i * iovec.size)
        size = length if left is None else min(length, max(left, 0))
        items.append(f"{{iov_base={printstr(mem, base, size, max_strlen)}, iov_len={length}}}")
        if left is not None:
            left -= size
    tail = ", ..." if count > shown else ""
    return "[" + ", ".join(items) + tail + "]"


def print_msghdr(mem: Memory | None, addr: int, data_size: int | None,
                 namelen_before: int | None = None, max_strlen: int = MAX_STRLEN,
                 fd_text: Callable[[int], str] = str, layouts: UserLayouts = NATIVE) -> str:
    """strace print_struct_msghdr(): sendmsg prints it on entry, recvmsg on exit with the
    received size (data_size) and the msg_namelen it passed in (namelen_before)."""
    raw = umove(mem, addr, layouts.msghdr.size)
    if raw is None:
        return printaddr(addr)
    return _msghdr_text(mem, raw, data_size, namelen_before, max_strlen, fd_text, layouts)


def _msghdr_text(mem: Memory | None, raw: bytes, data_size: int | None,
                 namelen_before: int | None, max_strlen: int,
                 fd_text: Callable[[int], str], layouts: UserLayouts) -> str:
    name, namelen, iov, iovlen, control, controllen, mflags = layouts.msghdr.unpack_from(raw)
    namelen = s32(namelen)
    if namelen_before is not None and namelen_before != namelen:
        # recvmsg: the name is shown with the length the kernel wrote back
        name_text = (decode_sockaddr(mem, name, min(namelen, namelen_before))
                     if namelen > 0 else printaddr(name))
        len_text = f"{namelen_before} => {namelen}"
    else:
        name_text = decode_sockaddr(mem, name, namelen) if name else "NULL"
        len_text = str(namelen)
    parts = [f"msg_name={name_text}", f"msg_namelen={len_text}",
             f"msg_iov={print_iovec(mem, iov, iovlen, data_size, max_strlen, layouts)}",
             f"msg_iovlen={iovlen}"]
    if controllen:
        parts.append(f"msg_control={print_cmsgs(mem, control, controllen, fd_text, layouts)}")
    parts.append(f"msg_controllen={controllen}")
    parts.append(f"msg_flags={msg_flags(mflags)}")
    return "{" + ", ".join(parts) + "}"


def mmsg_namelens(mem: Memory | None, addr: int, vlen: int,
                  layouts: UserLayouts = NATIVE) -> list[int]:
    """strace save_mmsgvec_namelen(): each entry's msg_namelen before recvmmsg, up to the
    first that cannot be read."""
    out = []
    for i in range(min(u32(vlen), IOV_MAX)):
        raw = umove(mem, addr + i * layouts.mmsghdr, layouts.msghdr.size)
        if raw is None:
            break
        out.append(s32(layouts.msghdr.unpack(raw)[1]))
    return out


def print_mmsgvec(mem: Memory | None, addr: int, vlen: int, msg_len_count: int,
                  namelens: list[int] | None, max_strlen: int = MAX_STRLEN,
                  fd_text: Callable[[int], str] = str, layouts: UserLayouts = NATIVE) -> str:
    """strace decode_mmsgvec(): `[{msg_hdr={...}, msg_len=N}, ...]`: `vlen` entries, the
    first `msg_len_count` with their msg_len; recvmmsg (namelens given) shows each
    entry's data up to its msg_len and its name with the length passed in."""
    vlen = u32(vlen)
    if addr == 0:
        return "NULL"
    limit = IOV_MAX if namelens is None else min(len(namelens), IOV_MAX)
    items: list[str] = []
    for i in range(vlen):
        if i >= max_strlen or i >= limit:
            items.append("...")
            break
        entry = addr + i * layouts.mmsghdr
        raw = umove(mem, entry, layouts.mmsghdr)
        if raw is None:
            if not items:
                return printaddr(addr)
            items.append(f"... /* {printaddr(entry)} */")
            break
        msg_len = int.from_bytes(raw[layouts.msghdr.size:layouts.msghdr.size + 4], "little")
        data_size = msg_len if namelens is not None else None
        before = namelens[i] if namelens is not None else None
        text = "{msg_hdr=" + _msghdr_text(mem, raw, data_size, before, max_strlen, fd_text,
                                           layouts)
        if i < msg_len_count:
            text += f", msg_len={msg_len}"
        items.append(text + "}")
    return "[" + ", ".join(items) + "]"


SCM_TYPES = {1: "SCM_RIGHTS", 2: "SCM_CREDENTIALS", 3: "SCM_SECURITY", 4: "SCM_PIDFD"}
CMSG_MAX = 64 * 1024


def print_cmsgs(mem: Memory | None, addr: int, controllen: int,
                fd_text: Callable[[int], str] = str, layouts: UserLayouts = NATIVE) -> str:
    """strace decode_msg_control(): `[{cmsg_len=24, cmsg_level=SOL_SOCKET,
    cmsg_type=SCM_RIGHTS, cmsg_data=[5, 6]}]`. sysemu decodes SOL_SOCKET's SCM_RIGHTS
    and SCM_CREDENTIALS data; other messages show their header only."""
    size = min(u64(controllen), CMSG_MAX)
    data = umove(mem, addr, size)
    if data is None:
        return printaddr(addr)
    cmsghdr = layouts.cmsghdr
    items = []
    off = 0
    while off + cmsghdr.size <= size:
        clen, level, ctype = cmsghdr.unpack_from(data, off)
        level_text = sockopt_level(level)
        type_text = (xlat(SCM_TYPES, u32(ctype), "SCM_???") if level == 1
                     else f"{u32(ctype):#x}")
        item = f"{{cmsg_len={clen}, cmsg_level={level_text}, cmsg_type={type_text}"
        if clen < cmsghdr.size or off + clen > size:
            items.append(item + "}")
            break
        payload = data[off + cmsghdr.size: off + clen]
        if level == 1 and ctype == 1:
            fds = [int.from_bytes(payload[i: i + 4], "little", signed=True)
                   for i in range(0, len(payload) - 3, 4)]
            item += ", cmsg_data=[" + ", ".join(fd_text(fd) for fd in fds) + "]"
        elif level == 1 and ctype == 2 and len(payload) >= 12:
            pid, uid, gid = struct.unpack_from("<iII", payload)
            item += f", cmsg_data={{pid={pid}, uid={uid}, gid={gid}}}"
        items.append(item + "}")
        off += layouts.cmsg_align(clen)
    if off < size and not items:
        return printaddr(addr)
    return "[" + ", ".join(items) + "]"


# --- errno --------------------------------------------------------------------------------

# glibc's strerror() text, which strace prints after the errno name.
STRERROR = {
    1: "Operation not permitted", 2: "No such file or directory", 3: "No such process",
    4: "Interrupted system call", 5: "Input/output error", 6: "No such device or address",
    7: "Argument list too long", 8: "Exec format error", 9: "Bad file descriptor",
    10: "No child processes", 11: "Resource temporarily unavailable",
    12: "Cannot allocate memory", 13: "Permission denied", 14: "Bad address",
    15: "Block device required", 16: "Device or resource busy", 17: "File exists",
    18: "Invalid cross-device link", 19: "No such device", 20: "Not a directory",
    21: "Is a directory", 22: "Invalid argument", 23: "Too many open files in system",
    24: "Too many open files", 25: "Inappropriate ioctl for device", 26: "Text file busy",
    27: "File too large", 28: "No space left on device", 29: "Illegal seek",
    30: "Read-only file system", 31: "Too many links", 32: "Broken pipe",
    33: "Numerical argument out of domain", 34: "Numerical result out of range",
    35: "Resource deadlock avoided", 36: "File name too long", 37: "No locks available",
    38: "Function not implemented", 39: "Directory not empty",
    40: "Too many levels of symbolic links", 42: "No message of desired type",
    43: "Identifier removed", 61: "No data available", 62: "Timer expired",
    71: "Protocol error", 74: "Bad message", 75: "Value too large for defined data type",
    84: "Invalid or incomplete multibyte or wide character",
    88: "Socket operation on non-socket", 89: "Destination address required",
    90: "Message too long", 91: "Protocol wrong type for socket",
    92: "Protocol not available", 93: "Protocol not supported",
    94: "Socket type not supported", 95: "Operation not supported",
    96: "Protocol family not supported", 97: "Address family not supported by protocol",
    98: "Address already in use", 99: "Cannot assign requested address",
    100: "Network is down", 101: "Network is unreachable",
    102: "Network dropped connection on reset", 103: "Software caused connection abort",
    104: "Connection reset by peer", 105: "No buffer space available",
    106: "Transport endpoint is already connected", 107: "Transport endpoint is not connected",
    108: "Cannot send after transport endpoint shutdown",
    109: "Too many references: cannot splice", 110: "Connection timed out",
    111: "Connection refused", 112: "Host is down", 113: "No route to host",
    114: "Operation already in progress", 115: "Operation now in progress",
    116: "Stale file handle", 122: "Disk quota exceeded", 125: "Operation canceled",
    # kernel-internal restart codes, as strace names them
    512: "To be restarted if SA_RESTART is set", 513: "To be restarted",
    514: "To be restarted if no handler", 515: "Interrupted by signal",
    516: "To be restarted", 517: "Operation not supported",
}
KERNEL_ERRNOS = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                 515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER",
                 518: "EOPENSTALE", 519: "ENOPARAM", 521: "EBADHANDLE", 524: "ENOTSUPP"}


def errno_name(err: int) -> str:
    if err in KERNEL_ERRNOS:
        return KERNEL_ERRNOS[err]
    try:
        name = Errno(err).name
    except ValueError:
        return f"errno {err}"
    return {"EDEADLOCK": "EDEADLK", "EWOULDBLOCK": "EAGAIN",
            "ENOTSUP": "EOPNOTSUPP"}.get(name, name)


def errno_text(err: int) -> str:
    """`ECONNREFUSED (Connection refused)`, or the name alone when the text is unknown."""
    name = errno_name(err)
    text = STRERROR.get(err)
    return f"{name} ({text})" if text else name


# --- poll / select / epoll / fcntl / signal sets ---------------------------------------

POLL_EVENTS = ((0x1, "POLLIN"), (0x2, "POLLPRI"), (0x4, "POLLOUT"), (0x8, "POLLERR"),
               (0x10, "POLLHUP"), (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"),
               (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"), (0x200, "POLLWRBAND"),
               (0x400, "POLLMSG"), (0x1000, "POLLREMOVE"), (0x2000, "POLLRDHUP"))
EPOLL_EVENTS = ((0x1, "EPOLLIN"), (0x2, "EPOLLPRI"), (0x4, "EPOLLOUT"), (0x8, "EPOLLERR"),
                (0x10, "EPOLLHUP"), (0x20, "EPOLLNVAL"), (0x40, "EPOLLRDNORM"),
                (0x80, "EPOLLRDBAND"), (0x100, "EPOLLWRNORM"), (0x200, "EPOLLWRBAND"),
                (0x400, "EPOLLMSG"), (0x2000, "EPOLLRDHUP"), (1 << 28, "EPOLLEXCLUSIVE"),
                (1 << 29, "EPOLLWAKEUP"), (1 << 30, "EPOLLONESHOT"), (1 << 31, "EPOLLET"))
EPOLL_CTL_OPS = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
EPOLL_EVENT = struct.Struct("<IQ")           # packed on x86-64: 12 bytes
POLLFD = struct.Struct("<ihh")
TIMESPEC = NATIVE.old_timespec
TIMEVAL = NATIVE.old_timeval
FCNTL_CMDS = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL",
              5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN",
              10: "F_SETSIG", 11: "F_GETSIG", 15: "F_SETOWN_EX", 16: "F_GETOWN_EX",
              17: "F_GETOWNER_UIDS", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK",
              38: "F_OFD_SETLKW", 1024: "F_SETLEASE", 1025: "F_GETLEASE",
              1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ",
              1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"}
FD_FLAGS = ((1, "FD_CLOEXEC"),)
EFD_FLAGS = ((1, "EFD_SEMAPHORE"), (0o2000000, "EFD_CLOEXEC"), (0o4000, "EFD_NONBLOCK"))
CLOSE_RANGE_FLAGS = ((2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC"))
SIGNAL_NAMES = {1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS",
                8: "FPE", 9: "KILL", 10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE",
                14: "ALRM", 15: "TERM", 16: "STKFLT", 17: "CHLD", 18: "CONT", 19: "STOP",
                20: "TSTP", 21: "TTIN", 22: "TTOU", 23: "URG", 24: "XCPU", 25: "XFSZ",
                26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO", 30: "PWR", 31: "SYS",
                32: "RTMIN"}
NSIG = 64


def open_flags_no_access(value: int) -> str:
    """pipe2/accept-style O_ flags without the access mode: `O_NONBLOCK|O_CLOEXEC`."""
    text = open_flags(u32(value) & ~3)
    return "0" if text == "O_RDONLY" else text.removeprefix("O_RDONLY|")


def signame(sig: int) -> str:
    if sig in SIGNAL_NAMES:
        return SIGNAL_NAMES[sig]
    return f"RT_{sig - 32}" if 32 < sig <= NSIG else str(sig)


def print_sigset(mem: Memory | None, addr: int, size: int) -> str:
    """strace print_sigset_addr_len(): `[INT TERM]`, `~[KILL STOP]` when more than half
    of the signals are in it."""
    if addr == 0:
        return "NULL"
    size = u64(size)
    if size == 0 or size > 128:
        return printaddr(addr)
    data = umove(mem, addr, min(size, NSIG // 8))
    if data is None:
        return printaddr(addr)
    bits = int.from_bytes(data, "little")
    members = [s for s in range(1, len(data) * 8 + 1) if bits >> (s - 1) & 1]
    nsig = len(data) * 8
    if len(members) > nsig // 2:
        absent = [s for s in range(1, nsig + 1) if not bits >> (s - 1) & 1]
        return "~[" + " ".join(signame(s) for s in absent) + "]"
    return "[" + " ".join(signame(s) for s in members) + "]"


def print_timespec(mem: Memory | None, addr: int, layout: struct.Struct = TIMESPEC) -> str:
    """`{tv_sec=1, tv_nsec=0}`; `layout` is the ABI's (old_timespec32 for i386's time32
    calls)."""
    data = umove(mem, addr, layout.size)
    if data is None:
        return printaddr(addr)
    sec, nsec = layout.unpack(data)
    if layout.size == 8:
        nsec = u32(nsec)        # strace's timespec32_t has an unsigned tv_nsec
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def print_timeval(mem: Memory | None, addr: int, layout: struct.Struct = TIMEVAL) -> str:
    data = umove(mem, addr, layout.size)
    if data is None:
        return printaddr(addr)
    sec, usec = layout.unpack(data)
    return f"{{tv_sec={sec}, tv_usec={usec}}}"


def print_pollfds(mem: Memory | None, addr: int, nfds: int, *, revents: bool,
                  fd_text: Callable[[int], str] = str, max_strlen: int = MAX_STRLEN) -> str:
    """strace decode_poll_entering()/exiting(): `[{fd=3, events=POLLIN}]`, or on exit the
    entries whose revents are set: `[{fd=3, revents=POLLIN}]`."""
    nfds = u64(nfds)
    if nfds == 0:
        return "[]"
    shown = min(nfds, max_strlen if not revents else nfds, 1 << 16)
    data = umove(mem, addr, POLLFD.size * shown)
    if data is None:
        return printaddr(addr)
    items = []
    for i in range(shown):
        fd, events, rev = POLLFD.unpack_from(data, i * POLLFD.size)
        if revents:
            if rev:
                items.append(f"{{fd={fd_text(fd)}, revents="
                             f"{flags(POLL_EVENTS, rev & 0xFFFF, 'POLL???')}}}")
            if len(items) >= max_strlen:
                items.append("...")
                break
        elif fd < 0:
            items.append(f"{{fd={fd}}}")
        else:
            events_text = flags(POLL_EVENTS, events & 0xFFFF, "POLL???")
            items.append(f"{{fd={fd_text(fd)}, events={events_text}}}")
    if not revents and nfds > shown:
        items.append("...")
    return "[" + ", ".join(items) + "]"


def print_fdset(mem: Memory | None, addr: int, nfds: int,
                fd_text: Callable[[int], str] = str) -> str:
    """strace decode_select(): `[3 7]`."""
    if addr == 0:
        return "NULL"
    nfds = max(0, min(s32(nfds), 1024 * 1024))
    size = ((nfds + 63) // 64) * 8
    data = umove(mem, addr, size) if size else b""
    if data is None:
        return printaddr(addr)
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(fd_text(fd) for fd in range(nfds) if bits >> fd & 1) + "]"


def fdset_members(mem: Memory | None, addr: int, nfds: int) -> list[int] | None:
    if addr == 0:
        return None
    nfds = max(0, min(s32(nfds), 1024 * 1024))
    size = ((nfds + 63) // 64) * 8
    data = umove(mem, addr, size) if size else b""
    if data is None:
        return None
    bits = int.from_bytes(data, "little")
    return [fd for fd in range(nfds) if bits >> fd & 1]


def print_epoll_event(data: bytes, fd_text: Callable[[int], str] = str) -> str:
    events, value = EPOLL_EVENT.unpack(data)
    return (f"{{events={flags(EPOLL_EVENTS, events, 'EPOLL???')}, "
            f"data={{u32={value & 0xFFFFFFFF}, u64={value}}}}}")


def print_epoll_events(mem: Memory | None, addr: int, count: int,
                       max_strlen: int = MAX_STRLEN) -> str:
    count = max(0, count)
    if count == 0:
        return "[]"
    shown = min(count, max_strlen)
    data = umove(mem, addr, EPOLL_EVENT.size * shown)
    if data is None:
        return printaddr(addr)
    items = [print_epoll_event(data[i * 12: i * 12 + 12]) for i in range(shown)]
    if count > shown:
        items.append("...")
    return "[" + ", ".join(items) + "]"
