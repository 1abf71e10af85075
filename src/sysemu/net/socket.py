"""The socket-call layer. Linux: net/socket.c.

sys_* take raw arguments and user pointers; the kernel-value halves (bind_socket,
do_accept ...) take decoded values and are what in-process tests call directly. The
families below (af_inet) register themselves (sock_register()) and give each Socket the
operations socket.c calls (sock->ops)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState
from sysemu.abi.socket import (AF_INET, AF_INET6, AF_UNIX, AF_VSOCK, LAYOUTS, NATIVE_LAYOUTS,
                               NPROTO, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_MAX, SOCK_NONBLOCK,
                               SOCK_TYPE_MASK, SOCKADDR_STORAGE_SIZE, SOCKETCALL_NARGS,
                               SYS_ACCEPT, SYS_ACCEPT4, SYS_BIND, SYS_CONNECT,
                               SYS_GETPEERNAME, SYS_GETSOCKNAME, SYS_GETSOCKOPT, SYS_LISTEN,
                               SYS_RECV, SYS_RECVFROM, SYS_RECVMMSG, SYS_RECVMSG,
                               SYS_SENDMMSG, SYS_SETSOCKOPT, SYS_SHUTDOWN, SYS_SOCKET,
                               SYS_SOCKETPAIR, SO_PASSRIGHTS, SOL_SOCKET, TIMEVAL64,
                               SocketState)
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.file import O_NONBLOCK, O_RDWR, File
from sysemu.kernel.syscalls import CInt, CUInt, CULong, InstallFd, UserPtr, syscall
from sysemu.kernel.usermem import S32, get_user_int, put_user_int
from sysemu.net.core import Net, Sock
from sysemu.net.sockaddr import encode_sockaddr
from sysemu.net import sockopt


@dataclass(frozen=True)
class ProtoOps:
    """Linux: struct proto_ops (inet_stream_ops): a family's socket calls, reached
    through sock->ops. accept returns the child without dequeuing it; accept_commit
    dequeues and grafts it once the program has its descriptor (sysemu: see _accept4)."""
    family: int
    bind: Callable[[Net, "Socket", bytes, object], None]
    connect: Callable[[Net, "Socket", bytes, bool], int]
    listen: Callable[[Net, "Socket", int], None]
    accept: Callable[[Net, "Socket", bool], Sock]
    accept_commit: Callable[[Net, Sock, Sock, "Socket"], None]
    getname: Callable[[Sock, bool], tuple[int, bytes, int, int]]
    shutdown: Callable[[Net, "Socket", int], None]


@dataclass(frozen=True)
class NetProtoFamily:
    """Linux: struct net_proto_family: create(task, net, family, type, protocol) makes
    the family's Socket (checks, Sock, ops)."""
    family: int
    create: Callable[[object, Net, int, int, int], "Socket"]


net_families: dict[int, NetProtoFamily] = {}


def sock_register(ops: NetProtoFamily) -> None:
    """Linux: sock_register(): socket(2) of `ops.family` goes to ops.create."""
    net_families[ops.family] = ops


class Socket:
    """Linux: struct socket: the file-side half of a socket. `state` is the SS_* state
    (connect's bookkeeping); `sk` the Sock (protocol state, see Sock's docstring); `ops`
    the family's ProtoOps; `file` the File whose private_data this is. The host reads:
    sk (state, addresses, peer, queues, sk_err, rcvbuf/sndbuf), file.f_flags
    (O_NONBLOCK), family, type."""

    __slots__ = ("net", "state", "type", "sk", "ops", "file", "__weakref__")

    def __init__(self, net: Net, sk: Sock, ops: ProtoOps, type_: int = 1,
                 graft: bool = True):
        self.net = net
        self.state = SocketState.SS_UNCONNECTED
        self.type = type_
        self.sk = sk
        self.ops = ops
        self.file: File | None = None
        if graft:
            sk.socket = self   # Linux: sock_graft()

    @property
    def family(self) -> int:
        return self.sk.family

    @property
    def wait(self):
        return self.sk.wait

    @property
    def peer(self) -> "Socket | None":
        """The Socket at the other end of an established pair (None if it has none)."""
        peer = self.sk.peer
        return peer.socket if peer is not None else None

    def __repr__(self) -> str:
        return f"<Socket {self.state.name} {self.sk!r}>"


# -- lookup and addresses ------------------------------------------------------------

def sockfd_lookup(task, fd: int) -> Socket:
    """Linux: sockfd_lookup_light(): EBADF (or HostPassthrough for a host fd), then
    ENOTSOCK when the file is not one of ours."""
    file = task.files.lookup(fd)
    sock = file.private_data
    if not isinstance(sock, Socket):
        raise SyscallError(Errno.ENOTSOCK)
    return sock


def move_addr_to_kernel(mem, uaddr: int, ulen: int) -> bytes:
    """Linux: move_addr_to_kernel(): EINVAL for ulen < 0 or > sizeof(sockaddr_storage),
    EFAULT if unreadable; ulen == 0 copies nothing."""
    if ulen < 0 or ulen > SOCKADDR_STORAGE_SIZE:
        raise SyscallError(Errno.EINVAL)
    if ulen == 0:
        return b""
    return mem.read(uaddr, ulen)


def move_addr_to_user(mem, kaddr: bytes, uaddr: int, ulen: int) -> None:
    """Linux: move_addr_to_user(): read *ulen (EFAULT), copy min(len, klen) (EINVAL for
    a negative len), write back the full klen."""
    klen = len(kaddr)
    length = get_user_int(mem, ulen)
    if length > klen:
        length = klen
    if length < 0:
        raise SyscallError(Errno.EINVAL)
    if length:      # the address, then the length: one batched copy
        mem.writev(((uaddr, kaddr[:length]), (ulen, S32.pack(klen))))
        return
    put_user_int(mem, ulen, klen)


def _new_file(task, sock: Socket, flags: int) -> File:
    file = File(sock, O_RDWR | (O_NONBLOCK if flags & SOCK_NONBLOCK else 0))
    sock.file = file
    task.kernel.host.new_file(file)
    return file


# -- kernel-value halves -----------------------------------------------------------------

def create_socket(task, family: int, type_: int, protocol: int) -> Socket:
    """Linux: __sys_socket_create() + __sock_create(): type flags already stripped;
    EAFNOSUPPORT (family), EINVAL (type range), EAFNOSUPPORT for a family nobody
    registered, then the family's create()."""
    if family < 0 or family >= NPROTO:
        raise SyscallError(Errno.EAFNOSUPPORT)
    if type_ < 0 or type_ >= SOCK_MAX:
        raise SyscallError(Errno.EINVAL)
    pf = net_families.get(family)
    if pf is None:
        raise SyscallError(Errno.EAFNOSUPPORT)
    return pf.create(task, task.kernel.net, family, type_, protocol)


def bind_socket(task, sock: Socket, address: bytes) -> int:
    sock.ops.bind(sock.net, sock, address, task)
    return 0


def listen_socket(sock: Socket, backlog: int) -> int:
    """Linux: __sys_listen(): backlog capped at somaxconn, compared unsigned (so a
    negative backlog becomes somaxconn)."""
    somaxconn = int(sock.net.sysctl("net.core.somaxconn"))
    if (backlog & 0xFFFFFFFF) > somaxconn:
        backlog = somaxconn
    sock.ops.listen(sock.net, sock, backlog)
    return 0


def connect_socket(sock: Socket, address: bytes) -> int:
    return sock.ops.connect(sock.net, sock, address, sock.file is not None
                            and sock.file.nonblocking)


def do_accept(sock: Socket) -> Sock:
    """Linux: do_accept(): the child to return, not yet dequeued."""
    nonblocking = sock.file is not None and sock.file.nonblocking
    return sock.ops.accept(sock.net, sock, nonblocking)


# -- handlers ----------------------------------------------------------------------------

INET_FAMILIES = (((0, "eq", AF_INET),), ((0, "eq", AF_INET6),))
# sysemu: families whose sockets no network namespace confines are refused as on a kernel
# without them (EAFNOSUPPORT): AF_VSOCK reaches the hypervisor (CID 2) from any namespace.
UNCONFINED_FAMILIES = (AF_VSOCK,)
# sysemu: AF_UNIX sockets are the host's, but made by sysemu (HostHooks.unix_socket): so
# that a process outside cannot hand descriptors in through them (host/rights.py)
TRAPPED_FAMILIES = INET_FAMILIES + (((0, "eq", AF_UNIX),),) + tuple(
    ((0, "eq", family),) for family in UNCONFINED_FAMILIES)


@syscall("socket", trap_when=TRAPPED_FAMILIES)
def sys_socket(task, family: CInt, type: CInt, protocol: CInt):
    """socket(2). Linux: net/socket.c __sys_socket(): EINVAL for unknown type flags
    before anything else."""
    if family == AF_UNIX:
        return task.kernel.host.unix_socket(type, protocol)
    if family not in (AF_INET, AF_INET6) and family not in UNCONFINED_FAMILIES:
        raise HostPassthrough()
    flags = type & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(Errno.EINVAL)
    sock = create_socket(task, family, type & SOCK_TYPE_MASK, protocol)
    file = _new_file(task, sock, flags)
    return InstallFd(file, bool(flags & SOCK_CLOEXEC))


# sysemu: an AF_UNIX datagram pair is made by the host side with SO_PASSRIGHTS off
# (HostHooks.socketpair, host/rights.py); other pairs are the host's
UNIX_DGRAM_PAIRS = (((0, "eq", AF_UNIX), (1, "masked_eq", SOCK_DGRAM, SOCK_TYPE_MASK)),)


@syscall("socketpair", trap_when=UNIX_DGRAM_PAIRS)
def sys_socketpair(task, family: CInt, type: CInt, protocol: CInt, usockvec: UserPtr):
    """socketpair(2) of AF_UNIX SOCK_DGRAM. Linux: net/socket.c __sys_socketpair()."""
    if family != AF_UNIX or type & SOCK_TYPE_MASK != SOCK_DGRAM:
        raise HostPassthrough()
    return task.kernel.host.socketpair(task, family, type, protocol, usockvec)


@syscall("bind")
def sys_bind(task, fd: CInt, umyaddr: UserPtr, addrlen: CInt) -> int:
    """bind(2). Linux: net/socket.c __sys_bind()."""
    try:
        sock = sockfd_lookup(task, fd)
    except HostPassthrough:     # an AF_UNIX socket may be bound by sysemu (host/rights.py)
        return task.kernel.host.unix_bind(
            task, fd, lambda: move_addr_to_kernel(task.mem, umyaddr, addrlen))
    address = move_addr_to_kernel(task.mem, umyaddr, addrlen)
    return bind_socket(task, sock, address)


@syscall("listen")
def sys_listen(task, fd: CInt, backlog: CInt) -> int:
    """listen(2). Linux: net/socket.c __sys_listen()."""
    sock = sockfd_lookup(task, fd)
    listen_socket(sock, backlog)
    task.kernel.host.listening(task, fd, sock.sk)
    return 0


@syscall("connect")
def sys_connect(task, fd: CInt, uservaddr: UserPtr, addrlen: CInt) -> int:
    """connect(2). Linux: net/socket.c __sys_connect()."""
    sock = sockfd_lookup(task, fd)
    address = move_addr_to_kernel(task.mem, uservaddr, addrlen)
    if sock.state == SocketState.SS_UNCONNECTED and sock.sk.state == TcpState.TCP_CLOSE \
            and len(address) >= 2 and address[:2] != b"\0\0":
        task.kernel.host.reconnecting(task, fd, sock.sk)   # a new attempt (not AF_UNSPEC)
    return connect_socket(sock, address)


def _accept4(task, fd: int, upeer_sockaddr: int, upeer_addrlen: int, flags: int):
    """Linux: __sys_accept4() -> __sys_accept4_file() -> do_accept(): EBADF, EINVAL
    (flags), ENOTSOCK, then the protocol (EINVAL not listening, EAGAIN, wait), then the
    peer address (EFAULT/EINVAL). sysemu: the child is dequeued only once the program
    has its descriptor, so a failed copy of the address leaves it queued (Linux drops
    the connection)."""
    file = task.files.lookup(fd)
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(Errno.EINVAL)
    sock = file.private_data
    if not isinstance(sock, Socket):
        raise SyscallError(Errno.ENOTSOCK)
    net = sock.net
    ops = sock.ops
    child = do_accept(sock)
    if upeer_sockaddr:
        family, addr, port, scope = ops.getname(child, True)
        move_addr_to_user(task.mem, encode_sockaddr(family, addr, port, scope),
                          upeer_sockaddr, upeer_addrlen)
    newsock = Socket(net, child, ops, sock.type, graft=False)   # grafted in the commit
    newsock.state = SocketState.SS_CONNECTED
    newfile = _new_file(task, newsock, flags)
    listener = sock.sk
    return InstallFd(newfile, bool(flags & SOCK_CLOEXEC),
                     lambda fd: ops.accept_commit(net, listener, child, newsock))


@syscall("accept4")
def sys_accept4(task, fd: CInt, upeer_sockaddr: UserPtr, upeer_addrlen: UserPtr,
                flags: CInt):
    """accept4(2). Linux: net/socket.c __sys_accept4()."""
    return _accept4(task, fd, upeer_sockaddr, upeer_addrlen, flags)


@syscall("accept")
def sys_accept(task, fd: CInt, upeer_sockaddr: UserPtr, upeer_addrlen: UserPtr):
    """accept(2). Linux: net/socket.c SYSCALL_DEFINE3(accept): accept4 with flags 0."""
    return _accept4(task, fd, upeer_sockaddr, upeer_addrlen, 0)


def _getname(task, fd: int, usockaddr: int, usockaddr_len: int, peer: bool) -> int:
    sock = sockfd_lookup(task, fd)
    family, addr, port, scope = sock.ops.getname(sock.sk, peer)
    move_addr_to_user(task.mem, encode_sockaddr(family, addr, port, scope), usockaddr,
                      usockaddr_len)
    return 0


@syscall("getsockname")
def sys_getsockname(task, fd: CInt, usockaddr: UserPtr, usockaddr_len: UserPtr) -> int:
    """getsockname(2). Linux: net/socket.c __sys_getsockname()."""
    return _getname(task, fd, usockaddr, usockaddr_len, False)


@syscall("getpeername")
def sys_getpeername(task, fd: CInt, usockaddr: UserPtr, usockaddr_len: UserPtr) -> int:
    """getpeername(2). Linux: net/socket.c __sys_getpeername()."""
    return _getname(task, fd, usockaddr, usockaddr_len, True)


@syscall("shutdown")
def sys_shutdown(task, fd: CInt, how: CInt) -> int:
    """shutdown(2). Linux: net/socket.c __sys_shutdown_sock() -> inet_shutdown()."""
    sock = sockfd_lookup(task, fd)
    connected = sock.sk.state not in _NOT_CONNECTED
    sock.ops.shutdown(sock.net, sock, how)
    if connected:
        task.kernel.host.shutdown(sock.sk, how)  # the placeholder's bytes flow natively
    return 0


_NOT_CONNECTED = frozenset((TcpState.TCP_LISTEN, TcpState.TCP_CLOSE, TcpState.TCP_SYN_SENT,
                            TcpState.TCP_SYN_RECV))


@syscall("setsockopt")
def sys_setsockopt(task, fd: CInt, level: CInt, optname: CInt, optval: UserPtr,
                   optlen: CInt) -> int:
    """setsockopt(2). Linux: net/socket.c __sys_setsockopt(): EINVAL for optlen < 0."""
    try:
        sock = sockfd_lookup(task, fd)
    except HostPassthrough:
        if level == SOL_SOCKET and optname == SO_PASSRIGHTS:
            # sysemu: the value is in user memory: never CONTINUEd (host/rights.py)
            return task.kernel.host.set_passrights(task, fd, optval, optlen)
        raise
    if optlen < 0:
        raise SyscallError(Errno.EINVAL)
    return sockopt.setsockopt(task, sock, level, optname, optval, optlen)


@syscall("getsockopt")
def sys_getsockopt(task, fd: CInt, level: CInt, optname: CInt, optval: UserPtr,
                   optlen: UserPtr) -> int:
    """getsockopt(2). Linux: net/socket.c __sys_getsockopt()."""
    sock = sockfd_lookup(task, fd)
    return sockopt.getsockopt(task, sock, level, optname, optval, optlen)


SIOCINQ = 0x541B        # FIONREAD
SIOCOUTQ = 0x5411       # TIOCOUTQ


def sock_ioctl_queue(task, sock: Socket, cmd: int, arg: int) -> int:
    """ioctl(SIOCINQ/SIOCOUTQ). Linux: net/socket.c sock_ioctl() -> inet_ioctl() ->
    tcp_ioctl(): EINVAL on a listener, 0 while the handshake is in progress; otherwise
    the bytes queued, which the placeholder holds (the host answers)."""
    state = sock.sk.state
    if state == TcpState.TCP_LISTEN:
        raise SyscallError(Errno.EINVAL)
    if state in (TcpState.TCP_SYN_SENT, TcpState.TCP_SYN_RECV):
        put_user_int(task.mem, arg, 0)
        return 0
    raise HostPassthrough()


# -- the error queue -----------------------------------------------------------------

MSG_ERRQUEUE = 0x2000
MSG_CMSG_COMPAT = 0x80000000
UIO_MAXIOV = 1024
TASK_SIZE_MAX = (1 << 47) - 4096        # x86-64, 4-level paging
MAX_RW_COUNT = 0x7FFFF000               # INT_MAX & PAGE_MASK


def _access_ok(addr: int, size: int) -> None:
    """Linux: access_ok(): the range lies below TASK_SIZE_MAX, else EFAULT."""
    if addr + size > TASK_SIZE_MAX:
        raise SyscallError(Errno.EFAULT)


def inet_recv_error(sock: Socket) -> int:
    """Linux: tcp_recvmsg() -> inet_recv_error() -> ip_recv_error() / ipv6_recv_error():
    MSG_ERRQUEUE is answered from the error queue before anything else. sysemu's sockets
    queue no errors there (no SO_TIMESTAMPING, no MSG_ZEROCOPY, no ICMP errors for TCP
    over loopback), so it is EAGAIN in every state."""
    raise SyscallError(Errno.EAGAIN)


# The filter traps recvfrom/recvmsg only with MSG_ERRQUEUE in flags; the rest is the
# host's (the bytes are the placeholder's). i386's socketcall(SYS_RECV*) cannot be
# narrowed by the filter (its flags are in memory): the _SOCKETCALL entries decide from
# the copy sys_socketcall read.
_ERRQUEUE = lambda index: (((index, "masked_eq", MSG_ERRQUEUE, MSG_ERRQUEUE),),)  # noqa: E731


@syscall("recvfrom", abis=("64", "x32", "i386"), trap_when=_ERRQUEUE(3))
def sys_recvfrom(task, fd: CInt, ubuf: UserPtr, size: CULong, flags: CUInt,
                 addr: UserPtr, addr_len: UserPtr) -> int:
    """recvfrom(2) with MSG_ERRQUEUE. Linux: net/socket.c __sys_recvfrom(): the buffer
    range first (import_ubuf: EFAULT), then the socket. i386: compat_sys_recvfrom(), the
    same with MSG_CMSG_COMPAT added."""
    if not flags & MSG_ERRQUEUE:
        raise HostPassthrough()
    _access_ok(ubuf, min(size, MAX_RW_COUNT))
    return inet_recv_error(sockfd_lookup(task, fd))


@syscall("recvmsg", abis=("64", "i386"), trap_when=_ERRQUEUE(2))
def sys_recvmsg(task, fd: CInt, msg: UserPtr, flags: CUInt) -> int:
    """recvmsg(2) with MSG_ERRQUEUE. Linux: net/socket.c __sys_recvmsg(): EINVAL for
    MSG_CMSG_COMPAT, the socket, then ___sys_recvmsg() -> copy_msghdr_from_user(): EFAULT,
    EINVAL for a negative msg_namelen with a name, EMSGSIZE above UIO_MAXIOV segments,
    import_iovec(): EFAULT, EINVAL for a negative segment length. i386:
    compat_sys_recvmsg() sets MSG_CMSG_COMPAT itself (no EINVAL) and reads the
    compat_msghdr and compat_iovec layouts (get_compat_msghdr())."""
    if not flags & MSG_ERRQUEUE:
        raise HostPassthrough()
    layouts = LAYOUTS[task.abi]
    if flags & MSG_CMSG_COMPAT and layouts is NATIVE_LAYOUTS:
        raise SyscallError(Errno.EINVAL)
    return recvmsg_errqueue(task, sockfd_lookup(task, fd), msg, layouts)


def recvmsg_errqueue(task, sock: Socket, msg: int, layouts) -> int:
    """Linux: ___sys_recvmsg() -> copy_msghdr_from_user() / get_compat_msghdr(): EFAULT,
    EINVAL for a negative msg_namelen with a name, EMSGSIZE above UIO_MAXIOV segments,
    import_iovec(): EFAULT, EINVAL for a negative segment length; then the error queue."""
    hdr = layouts.msghdr
    name, namelen, iov, iovlen, *_ = hdr.unpack(task.mem.read(msg, hdr.size))
    if name and namelen < 0:
        raise SyscallError(Errno.EINVAL)
    if iovlen > UIO_MAXIOV:
        raise SyscallError(Errno.EMSGSIZE)
    if iovlen:
        raw = task.mem.read(iov, iovlen * layouts.iovec.size)
        if any(layouts.negative(length) for _, length in layouts.iovec.iter_unpack(raw)):
            raise SyscallError(Errno.EINVAL)
    return inet_recv_error(sock)


NSEC_PER_SEC = 1_000_000_000


def _recvmmsg(task, fd: int, mmsg: int, vlen: int, flags: int, timeout: int,
              timespec) -> int:
    """recvmmsg(2) with MSG_ERRQUEUE. Linux: net/socket.c __sys_recvmmsg(): the timeout
    (EFAULT), then do_recvmmsg(): EINVAL for an invalid one (poll_select_set_timeout),
    the socket, then ___sys_recvmsg() of the first entry, whose error is the call's when
    no datagram came (vlen 0 reads none: 0). `timespec` is the timeout's layout."""
    if not flags & MSG_ERRQUEUE:
        raise HostPassthrough()
    layouts = LAYOUTS[task.abi]
    if flags & MSG_CMSG_COMPAT and layouts is NATIVE_LAYOUTS:
        raise SyscallError(Errno.EINVAL)
    if timeout:
        sec, nsec = timespec.unpack(task.mem.read(timeout, timespec.size))
        if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
            raise SyscallError(Errno.EINVAL)
    sock = sockfd_lookup(task, fd)
    if vlen == 0:
        return 0
    return recvmsg_errqueue(task, sock, mmsg, layouts)


@syscall("recvmmsg", abis=("64", "i386"), trap_when=_ERRQUEUE(3))
def sys_recvmmsg(task, fd: CInt, mmsg: UserPtr, vlen: CUInt, flags: CUInt,
                 timeout: UserPtr) -> int:
    """recvmmsg(2) with MSG_ERRQUEUE (see _recvmmsg). i386's is recvmmsg_time32: an
    old_timespec32 timeout (compat_sys_recvmmsg_time32, with MSG_CMSG_COMPAT)."""
    return _recvmmsg(task, fd, mmsg, vlen, flags, timeout, LAYOUTS[task.abi].old_timespec)


@syscall("recvmmsg_time64", abis=("i386",), trap_when=_ERRQUEUE(3))
def sys_recvmmsg_time64(task, fd: CInt, mmsg: UserPtr, vlen: CUInt, flags: CUInt,
                        timeout: UserPtr) -> int:
    """i386 recvmmsg_time64 with MSG_ERRQUEUE: a 64-bit __kernel_timespec timeout."""
    return _recvmmsg(task, fd, mmsg, vlen, flags, timeout, TIMEVAL64)


# -- i386 socketcall -----------------------------------------------------------------

def _socketcall_socket(task, family: int, type_: int, protocol: int):
    """socketcall(SYS_SOCKET). sysemu: the words came from user memory, which another
    thread may rewrite before the host reads them again: a family sysemu does not serve
    is created by the host side from this copy (HostHooks.passthrough_socket), not CONTINUEd."""
    if family in (AF_INET, AF_INET6) or family in UNCONFINED_FAMILIES:
        return sys_socket(task, family, type_, protocol)
    return task.kernel.host.passthrough_socket(family, type_, protocol)


def _socketcall_setsockopt(task, fd: int, level: int, optname: int, optval: int,
                           optlen: int) -> int:
    """socketcall(SYS_SETSOCKOPT). sysemu: on a descriptor that is not sysemu's, a CONTINUE
    would let the kernel read the words again, and another thread could have made them
    setsockopt(SO_PASSRIGHTS, 1) meanwhile: the host side makes the call from this copy
    (HostHooks.socketcall_setsockopt)."""
    try:
        return sys_setsockopt(task, fd, level, optname, optval, optlen)
    except HostPassthrough:
        return task.kernel.host.socketcall_setsockopt(task, fd, level, optname, optval,
                                                      optlen)


def _socketcall_socketpair(task, family: int, type_: int, protocol: int, usockvec: int):
    """socketcall(SYS_SOCKETPAIR). sysemu: a CONTINUE would let the kernel read the words
    again, and another thread could have made a stream pair a datagram one meanwhile: the
    host side makes every pair from this copy (HostHooks.socketpair)."""
    return task.kernel.host.socketpair(task, family, type_, protocol, usockvec)


_SOCKETCALL = {
    SYS_SOCKET: lambda t, a: _socketcall_socket(t, *a[:3]),
    SYS_BIND: lambda t, a: sys_bind(t, *a[:3]),
    SYS_CONNECT: lambda t, a: sys_connect(t, *a[:3]),
    SYS_LISTEN: lambda t, a: sys_listen(t, *a[:2]),
    SYS_ACCEPT: lambda t, a: _accept4(t, a[0], a[1], a[2], 0),
    SYS_GETSOCKNAME: lambda t, a: sys_getsockname(t, *a[:3]),
    SYS_GETPEERNAME: lambda t, a: sys_getpeername(t, *a[:3]),
    SYS_SHUTDOWN: lambda t, a: sys_shutdown(t, *a[:2]),
    SYS_SETSOCKOPT: lambda t, a: _socketcall_setsockopt(t, *a[:5]),
    SYS_SOCKETPAIR: lambda t, a: _socketcall_socketpair(t, *a[:4]),
    SYS_GETSOCKOPT: lambda t, a: sys_getsockopt(t, *a[:5]),
    SYS_ACCEPT4: lambda t, a: _accept4(t, a[0], a[1], a[2], a[3]),
    # sysemu: served only with MSG_ERRQUEUE (see sys_recvfrom); the flags word is read
    # from memory, so a thread rewriting it races only with its own error-queue read.
    SYS_RECV: lambda t, a: sys_recvfrom(t, a[0], a[1], a[2], a[3], 0, 0),
    SYS_RECVFROM: lambda t, a: sys_recvfrom(t, *a[:6]),
    SYS_RECVMSG: lambda t, a: sys_recvmsg(t, *a[:3]),
    SYS_RECVMMSG: lambda t, a: sys_recvmmsg(t, *a[:5]),
}


# which argument words are ints (sign-extended); the rest are pointers (compat_uptr_t)
_SOCKETCALL_INTS = {
    SYS_SOCKET: (0, 1, 2), SYS_SOCKETPAIR: (0, 1, 2), SYS_BIND: (0, 2), SYS_CONNECT: (0, 2),
    SYS_LISTEN: (0, 1), SYS_ACCEPT: (0,), SYS_GETSOCKNAME: (0,), SYS_GETPEERNAME: (0,),
    SYS_SHUTDOWN: (0, 1), SYS_SETSOCKOPT: (0, 1, 2, 4), SYS_GETSOCKOPT: (0, 1, 2),
    SYS_ACCEPT4: (0, 3), SYS_RECV: (0,), SYS_RECVFROM: (0,), SYS_RECVMSG: (0,), SYS_RECVMMSG: (0,)}


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


# The filter traps the calls sysemu serves (and the receives, for MSG_ERRQUEUE): send,
# sendto, sendmsg, sendmmsg and socketpair, and call numbers outside 1..20, run on the
# host untrapped (the number is a register: no user memory decides it).
_SOCKETCALL_TRAPPED = tuple(((0, "eq", call),) for call in sorted(_SOCKETCALL))


@syscall("socketcall", abis=("i386",), trap_when=_SOCKETCALL_TRAPPED)
def sys_socketcall(task, call: CInt, args: UserPtr) -> int:
    """socketcall(2). Linux: net/socket.c SYSCALL_DEFINE2(socketcall) (compat: 32-bit
    words): EINVAL for call outside 1..20, EFAULT copying the arguments. The data calls
    (send, recv, socketpair, *msg) go to the host; the receives only without
    MSG_ERRQUEUE, which sysemu answers.
    sysemu: deciding "host" after reading args from memory races with the program
    rewriting them; only calls sysemu never serves (host fds, receives without
    MSG_ERRQUEUE) are passed on, and socket() of other families is made from the copy
    read here (_socketcall_socket)."""
    if call < 1 or call > SYS_SENDMMSG:
        raise SyscallError(Errno.EINVAL)
    nwords = SOCKETCALL_NARGS[call]
    raw = task.mem.read(args & 0xFFFFFFFF, nwords * 4)
    words = [int.from_bytes(raw[i * 4:i * 4 + 4], "little") for i in range(nwords)]
    handler = _SOCKETCALL.get(call)
    if handler is None:
        raise HostPassthrough()
    for i in _SOCKETCALL_INTS[call]:
        words[i] = _s32(words[i])
    return handler(task, words)


@syscall("io_uring_setup")
def sys_io_uring_setup(task, entries: CInt, params: UserPtr) -> int:
    """io_uring_setup(2) answers ENOSYS. sysemu: io_uring's socket operations run in
    the kernel without system calls, so seccomp could not trap them: a program must fall
    back to ordinary syscalls (as it does on kernels without io_uring)."""
    raise SyscallError(Errno.ENOSYS)
