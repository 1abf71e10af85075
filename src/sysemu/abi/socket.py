"""Socket-layer constants and struct layouts. Linux: include/linux/socket.h,
include/linux/net.h, include/uapi/linux/net.h, include/uapi/asm-generic/socket.h."""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass


class AddressFamily(enum.IntEnum):
    AF_UNSPEC = 0
    AF_UNIX = 1
    AF_INET = 2
    AF_INET6 = 10
    AF_NETLINK = 16
    AF_PACKET = 17
    AF_VSOCK = 40


AF_UNSPEC = AddressFamily.AF_UNSPEC
AF_UNIX = AddressFamily.AF_UNIX
AF_INET = AddressFamily.AF_INET
AF_INET6 = AddressFamily.AF_INET6
AF_VSOCK = AddressFamily.AF_VSOCK
NPROTO = 46                     # Linux: AF_MAX


class SockType(enum.IntEnum):
    SOCK_STREAM = 1
    SOCK_DGRAM = 2
    SOCK_RAW = 3
    SOCK_RDM = 4
    SOCK_SEQPACKET = 5
    SOCK_DCCP = 6
    SOCK_PACKET = 10


SOCK_STREAM = SockType.SOCK_STREAM
SOCK_DGRAM = SockType.SOCK_DGRAM
SOCK_RAW = SockType.SOCK_RAW
SOCK_MAX = 11
SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK = 0o4000          # == O_NONBLOCK on x86
SOCK_CLOEXEC = 0o2000000        # == O_CLOEXEC


class SocketState(enum.IntEnum):
    """Linux: include/uapi/linux/net.h socket_state (struct socket's state)."""
    SS_FREE = 0
    SS_UNCONNECTED = 1
    SS_CONNECTING = 2
    SS_CONNECTED = 3
    SS_DISCONNECTING = 4


# shutdown(2) how
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3

# socketcall(2) call numbers. Linux: include/uapi/linux/net.h
SYS_SOCKET, SYS_BIND, SYS_CONNECT, SYS_LISTEN, SYS_ACCEPT = 1, 2, 3, 4, 5
SYS_GETSOCKNAME, SYS_GETPEERNAME, SYS_SOCKETPAIR, SYS_SEND, SYS_RECV = 6, 7, 8, 9, 10
SYS_SENDTO, SYS_RECVFROM, SYS_SHUTDOWN, SYS_SETSOCKOPT, SYS_GETSOCKOPT = 11, 12, 13, 14, 15
SYS_SENDMSG, SYS_RECVMSG, SYS_ACCEPT4, SYS_RECVMMSG, SYS_SENDMMSG = 16, 17, 18, 19, 20
# Linux: net/socket.c nargs[] (in unsigned longs, i.e. 32-bit words for the compat call)
SOCKETCALL_NARGS = (0, 3, 3, 3, 2, 3, 3, 3, 4, 4, 4, 6, 6, 2, 5, 5, 3, 3, 4, 5, 4)
# The calls by number, as strace names them (SYS_SEND is `send`: no other table has it)
SOCKETCALL_NAMES = ("", "socket", "bind", "connect", "listen", "accept", "getsockname",
                    "getpeername", "socketpair", "send", "recv", "sendto", "recvfrom",
                    "shutdown", "setsockopt", "getsockopt", "sendmsg", "recvmsg", "accept4",
                    "recvmmsg", "sendmmsg")

# Levels and SOL_SOCKET options (asm-generic/socket.h; x86 uses these)
SOL_SOCKET = 1
SO_DEBUG = 1
SO_REUSEADDR = 2
SO_TYPE = 3
SO_ERROR = 4
SO_DONTROUTE = 5
SO_BROADCAST = 6
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SO_KEEPALIVE = 9
SO_OOBINLINE = 10
SO_LINGER = 13
SO_REUSEPORT = 15
SO_PRIORITY = 12
SO_RCVLOWAT = 18
SO_SNDLOWAT = 19
SO_RCVTIMEO_OLD = 20
SO_SNDTIMEO_OLD = 21
SO_BINDTODEVICE = 25
IFNAMSIZ = 16
SO_ACCEPTCONN = 30
SO_PROTOCOL = 38
SO_DOMAIN = 39
SO_MAX_PACING_RATE = 47
SO_RCVTIMEO_NEW = 66
SO_SNDTIMEO_NEW = 67
SO_PASSRIGHTS = 83     # Linux 6.16+

SOCK_MIN_SNDBUF = 4608          # 2 * (2048 + ALIGN(sizeof(struct sk_buff))) as on 6.18
SOCK_MIN_RCVBUF = 2304

SOCKADDR_STORAGE_SIZE = 128     # sizeof(struct sockaddr_storage)

LINGER = struct.Struct("<ii")           # struct linger {int l_onoff; int l_linger;}
TIMEVAL64 = struct.Struct("<qq")        # struct timeval / __kernel_sock_timeval (64-bit)
TIMEVAL32 = struct.Struct("<ii")        # struct old_timeval32 (i386 / compat)
SA_FAMILY = struct.Struct("<H")


@dataclass(frozen=True)
class UserLayouts:
    """The socket structs as one ABI lays them out in user memory. Linux: struct
    user_msghdr, iovec, cmsghdr, mmsghdr (include/linux/socket.h, uapi/linux/uio.h) and
    their compat_ forms (include/net/compat.h, compat_iovec), which i386 and x32 use;
    `old_timeval` / `old_timespec` are what SO_RCVTIMEO_OLD, select's timeval and the
    time32 calls' timespec (recvmmsg, ppoll, pselect6 on i386) hold: 32-bit on i386
    only (x32 has a 64-bit time_t)."""
    word: int                    # sizeof(long) == sizeof(void *)
    msghdr: struct.Struct        # name, namelen, iov, iovlen, control, controllen, flags
    iovec: struct.Struct         # base, len (unsigned: a negative len has the top bit set)
    cmsghdr: struct.Struct       # len, level, type
    mmsghdr: int                 # sizeof(struct mmsghdr): the msghdr, msg_len, padding
    old_timeval: struct.Struct   # tv_sec, tv_usec
    old_timespec: struct.Struct  # tv_sec, tv_nsec

    def cmsg_align(self, length: int) -> int:
        """Linux: CMSG_ALIGN() / CMSG_COMPAT_ALIGN()."""
        return (length + self.word - 1) & ~(self.word - 1)

    def negative(self, length: int) -> bool:
        """The unsigned length a (compat_)ssize_t reads as negative."""
        return bool(length >> (8 * self.word - 1))


NATIVE_LAYOUTS = UserLayouts(8, struct.Struct("<Qi4xQQQQI4x"), struct.Struct("<QQ"),
                             struct.Struct("<Qii"), 64, TIMEVAL64, TIMEVAL64)
COMPAT_LAYOUTS = UserLayouts(4, struct.Struct("<IiIIIII"), struct.Struct("<II"),
                             struct.Struct("<Iii"), 32, TIMEVAL32, TIMEVAL32)
X32_LAYOUTS = UserLayouts(4, COMPAT_LAYOUTS.msghdr, COMPAT_LAYOUTS.iovec,
                          COMPAT_LAYOUTS.cmsghdr, 32, TIMEVAL64, TIMEVAL64)
LAYOUTS = {"64": NATIVE_LAYOUTS, "x32": X32_LAYOUTS, "i386": COMPAT_LAYOUTS}
# Linux: include/linux/socket.h msg_flags
MSG_OOB = 0x1
MSG_PEEK = 0x2
MSG_DONTROUTE = 0x4
MSG_CTRUNC = 0x8
MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40
MSG_EOR = 0x80
MSG_WAITALL = 0x100
MSG_NOSIGNAL = 0x4000
MSG_MORE = 0x8000
