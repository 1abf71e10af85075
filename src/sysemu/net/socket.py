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
from sysemu.abi.socket import (AF_INET, AF_INET6, AF_UNIX, AF_VSOCK, LAYOUTS,
                               NPROTO, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_MAX, SOCK_NONBLOCK, SOCK_RAW,
                               SOCK_TYPE_MASK, SOCKADDR_STORAGE_SIZE, SOCKETCALL_NARGS,
                               SYS_ACCEPT, SYS_ACCEPT4, SYS_BIND, SYS_CONNECT,
                               SYS_GETPEERNAME, SYS_GETSOCKNAME, SYS_GETSOCKOPT, SYS_LISTEN,
                               SYS_RECV, SYS_RECVFROM, SYS_RECVMMSG, SYS_RECVMSG,
                               SYS_SEND, SYS_SENDMMSG, SYS_SENDMSG, SYS_SENDTO, SYS_SETSOCKOPT,
                               SYS_SHUTDOWN, SYS_SOCKET, SYS_SOCKETPAIR, SO_PASSRIGHTS,
                               SOL_SOCKET, TIMEVAL64, MSG_DONTWAIT, MSG_OOB, MSG_PEEK,
                               MSG_TRUNC,
                               SocketState)
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from sysemu.kernel.file import O_NONBLOCK, O_RDWR, File
from sysemu.kernel.syscalls import CInt, CUInt, CULong, InstallFd, UserPtr, syscall
from sysemu.kernel.task import DATAPATH_MODEL, in_compat_syscall
from sysemu.kernel.usermem import S32, get_user_int, put_user_int
from sysemu.net.core import Net, Sock
from sysemu.net.scm import (UIO_MAXIOV, IovIter, UserMsghdr, copy_msghdr_from_user,
                            import_ubuf, msghdr_size, put_cmsgs)
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
    accept_drop: Callable[[Net, Sock, Sock], None]
    getname: Callable[[Sock, bool], tuple[int, bytes, int, int]]
    shutdown: Callable[[Net, "Socket", int], None]
    # The data calls (sock_sendmsg() / sock_recvmsg()); None: the family has none here.
    # sendmsg(task, sock, iter, flags, nonblock, copied, address) -> (bytes, wait): UDP
    # sends one datagram (to `address` or the peer) and never waits; TCP (the model data
    # path only) ignores the address and queues what fits (`copied`: what earlier
    # attempts of the call queued; `wait`: the WouldBlock for the rest).
    # recvmsg differs by kind: a datagram family's (UDP, both data paths) is
    # recvmsg(net, sock, flags, nonblock, index) -> the datagram to copy out (None: shut
    # down, nothing queued), which _recv_one() copies with its address; a stream's (TCP,
    # the model data path) recvmsg(task, sock, iter, flags, nonblock, copied) -> (bytes,
    # msg_flags, wait).
    # ioctl(sock, what) -> int, what "inq", "outq", "outqnsd" or "atmark".
    sendmsg: Callable | None = None
    recvmsg: Callable | None = None
    ioctl: Callable | None = None
    # poll(sk) -> the POLL* mask (tcp_poll, datagram_poll); None: the family has
    # none here (sock_poll() answers 0, as Linux's sock_poll() without ops->poll).
    poll: Callable | None = None


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


def move_addr_to_user(mem, kaddr: bytes, uaddr: int, ulen: int,
                      before: tuple[tuple[int, bytes], ...] = ()) -> None:
    """Linux: move_addr_to_user(): read *ulen (EFAULT), copy min(len, klen) (EINVAL for
    a negative len), write back the full klen. `before`: the copies the call makes
    before it (a receive's data, IovIter.pieces), made first whatever happens to the
    address, in the same batch as the address and its length.
    sysemu: *ulen is read before the data is copied (Linux reads it after); the data's
    fault, if any, still comes first, and nothing else is written after a fault."""
    klen = len(kaddr)
    try:
        length = get_user_int(mem, ulen)
    except SyscallError:
        if before:
            mem.writev(before)
        raise
    if length > klen:
        length = klen
    if length < 0:
        if before:
            mem.writev(before)
        raise SyscallError(Errno.EINVAL)
    if length:      # the data, the address, then the length: one batched copy
        mem.writev(before + ((uaddr, kaddr[:length]), (ulen, S32.pack(klen))))
        return
    mem.writev(before + ((ulen, S32.pack(klen)),))


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
    peer address (EFAULT/EINVAL). sysemu: the child is dequeued once the program has
    its descriptor (accept_commit); a failed copy of the address dequeues and closes it
    (accept_drop), as Linux's do_accept() loses the connection it had dequeued."""
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
        try:
            move_addr_to_user(task.mem, encode_sockaddr(family, addr, port, scope),
                              upeer_sockaddr, upeer_addrlen)
        except SyscallError:
            ops.accept_drop(net, sock.sk, child)
            raise
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
SIOCATMARK = 0x8905
SIOCOUTQNSD = 0x894B
_SIOC_WHAT = {SIOCINQ: "inq", SIOCOUTQ: "outq", SIOCATMARK: "atmark", SIOCOUTQNSD: "outqnsd"}


def sock_ioctl_queue(task, sock: Socket, cmd: int, arg: int) -> int:
    """ioctl(SIOCINQ/SIOCOUTQ/SIOCATMARK/SIOCOUTQNSD). Linux: net/socket.c sock_ioctl() ->
    inet_ioctl() -> tcp_ioctl(): EINVAL on a listener, 0 while the handshake is in
    progress; otherwise the bytes queued. In the native data path a stream's placeholder
    holds them (the host answers). A datagram socket: udp_ioctl() (the next datagram's
    length; SIOCOUTQ 0; the others the placeholder's)."""
    if sock.ops.ioctl is not None and (_datagram(sock) or _model_datapath(task)):
        put_user_int(task.mem, arg, sock.ops.ioctl(sock, _SIOC_WHAT[cmd]))
        return 0
    if cmd in (SIOCATMARK, SIOCOUTQNSD):
        raise HostPassthrough()
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


# -- the data calls ----------------------------------------------------------------
#
# One path per call, by socket. A datagram socket's data calls are sysemu's in both data
# paths (its addresses are sysemu's): sock->ops->recvmsg gives the datagram, copied out
# here (_recv_one). A stream (TCP) socket's: under `--datapath model`, sock->ops->sendmsg
# / recvmsg (tcp_sendmsg / tcp_recvmsg) move the bytes; in the native data path they are
# the placeholder's, answered by the host (HostPassthrough), but MSG_ERRQUEUE
# (inet_recv_error()) and the trapped sends: a send whose address the placeholder would
# refuse (an AF_UNIX stream answers EISCONN) is tcp_sendmsg()'s, which checks the state
# as Linux (EPIPE unconnected ...) and puts the bytes into the placeholder
# (tcp.py _native_sendmsg); so is every sendmsg and sendmmsg (their address is in user
# memory, which never decides a CONTINUE).
#
# What the filter traps (Handler.trap_when, for the native data path): sendto only with a
# destination, recvfrom only with an address buffer, MSG_ERRQUEUE or MSG_OOB (send() and
# recv() on a TCP socket stay untrapped); sendmsg unless MSG_PROBE; recvmsg, sendmmsg and
# recvmmsg always. Under `--datapath model` (Handler.datapath) every invocation, and
# read/write/readv/writev too (fs/read_write.py); a host descriptor goes back to the host
# from the lookup, before any pointer is read.

_NONNULL = lambda index: ((index, "ne", 0),)                           # noqa: E731
_FLAG = lambda index, flag: ((index, "masked_eq", flag, flag),)       # noqa: E731
_ERRQUEUE = lambda index: _FLAG(index, MSG_ERRQUEUE)                  # noqa: E731
MSG_WAITFORONE = 0x10000
SOCKADDR_FOR = {AF_INET: 16, AF_INET6: 28}


def _model_datapath(task) -> bool:
    return task.kernel.datapath == DATAPATH_MODEL


def _datagram(sock: Socket) -> bool:
    """UDP, ping and raw sockets: their data calls are sysemu's in both data paths."""
    return sock.type in (SOCK_DGRAM, SOCK_RAW)


def _data_socket(task, fd: int, flags: int = 0) -> Socket:
    """The Socket whose data call sysemu answers; HostPassthrough for anything else (a
    host descriptor; in the native data path a stream socket, whose bytes are the
    placeholder's, unless `flags` has MSG_ERRQUEUE)."""
    sock = sockfd_lookup(task, fd)
    if not _datagram(sock) and not _model_datapath(task) and not flags & MSG_ERRQUEUE:
        raise HostPassthrough()
    return sock


def _nonblocking(sock: Socket, flags: int) -> bool:
    return bool(flags & MSG_DONTWAIT) or (sock.file is not None and sock.file.nonblocking)


def _nonblock(sock: Socket) -> int:
    return MSG_DONTWAIT if sock.file is not None and sock.file.nonblocking else 0


def _source_name(sock: Socket, skb) -> bytes:
    """The source of a datagram as the receiving socket's family writes it
    (udp_recvmsg(): sockaddr_in; udpv6_recvmsg(): sockaddr_in6, v4-mapped for IPv4)."""
    if sock.family == AF_INET:
        return encode_sockaddr(AF_INET, skb.saddr[12:], skb.sport)
    return encode_sockaddr(AF_INET6, skb.saddr, skb.sport)


def _errqueue_name(sock: Socket, skb) -> bytes:
    """ip_recv_error(): msg_name is the offending datagram's destination."""
    if sock.family == AF_INET:
        return encode_sockaddr(AF_INET, skb.daddr[12:], skb.dport)
    return encode_sockaddr(AF_INET6, skb.daddr, skb.dport)


def _consume(task, sock: Socket, skb, flags: int, failed: bool = False) -> None:
    """The datagram leaves the placeholder now (before the answer: a program that polls
    right after its recvfrom returns must not find it readable) and the model's queue once
    the answer is in (not for MSG_PEEK). A failed copy drops it at once, as udp_recvmsg()
    does (InErrors). sysemu: a call interrupted between the two loses the datagram (the
    model drops a head datagram whose record is gone: SkBuff.taken)."""
    if flags & MSG_PEEK or skb is None:
        return
    net = sock.net
    consume = sock.sk.sk_prot.consume
    if not skb.taken:
        skb.taken = True
        net.kernel.host.datagram_dequeued(sock.sk, skb)
    if failed:
        consume(net, sock.sk, skb, True)
    else:
        task.on_commit(lambda: consume(net, sock.sk, skb))


def _recv_one(task, sock: Socket, it: IovIter, flags: int, uaddr: int, uaddr_len: int,
              index: int = 0):
    """One datagram into `it` (udp_recvmsg()): (skb, the call's result, msg_flags).
    The address goes to (uaddr, uaddr_len) when uaddr is set (move_addr_to_user()); a
    failed copy of data or address is EFAULT and the datagram is lost, as on Linux."""
    skb = sock.ops.recvmsg(sock.net, sock, flags, _nonblocking(sock, flags), index)
    if skb is None:                         # shut down for reading, nothing queued
        return None, 0, 0
    data = skb.data
    copied = min(len(data), it.count)
    msg_flags = MSG_TRUNC if copied < len(data) else 0
    if skb.ee is not None:
        msg_flags |= MSG_ERRQUEUE
    try:
        if uaddr:       # the data and the address in one batch (move_addr_to_user)
            name = _errqueue_name(sock, skb) if skb.ee is not None else _source_name(sock, skb)
            move_addr_to_user(task.mem, name, uaddr, uaddr_len, it.pieces(0, data[:copied]))
        else:
            it.write(0, data[:copied])
    except SyscallError:
        _consume(task, sock, skb, flags, failed=True)
        raise
    _consume(task, sock, skb, flags)
    if skb.ee is None and flags & MSG_TRUNC and sock.sk.sk_prot.trunc_real_len:
        return skb, len(data), msg_flags
    return skb, copied, msg_flags


def _resume(task, key: tuple) -> int:
    """Bytes an earlier attempt of this same call moved (Task.partial), 0 for a new call."""
    partial, task.partial = task.partial, None
    return partial[1] if partial is not None and partial[0] == key else 0


def sock_poll(sock: Socket) -> int:
    """Linux: net/socket.c sock_poll() -> sock->ops->poll: the socket's POLL* mask now
    (select, poll and ppoll read it; the caller waits on sock.wait)."""
    poll = sock.ops.poll
    return poll(sock.sk) if poll is not None else 0


def sock_sendmsg(task, sock: Socket, it: IovIter, flags: int,
                 address: bytes | None = None) -> int:
    """Linux: __sock_sendmsg() -> sock->ops->sendmsg. A datagram socket's (inet_sendmsg
    -> udp_sendmsg): the datagram, to `address` or the connected peer. A stream's
    (tcp_sendmsg; TCP ignores the address): the bytes queued; a blocking send waits for
    send space until all are (an attempt run again continues after what the earlier ones
    queued). MSG_DONTWAIT for an O_NONBLOCK file."""
    flags |= _nonblock(sock)
    key = ("send", id(sock), it.segs, flags)
    copied = _resume(task, key)
    if not copied:
        task.kernel.host.pull_sent(sock.sk)     # bytes the program wrote untrapped first
    n, wait = sock.ops.sendmsg(task, sock, it, flags, bool(flags & MSG_DONTWAIT), copied,
                               address)
    if wait is not None:
        task.partial = (key, copied + n)
        wait.moved = copied + n
        raise wait
    return copied + n


def sock_recvmsg(task, sock: Socket, it: IovIter, flags: int, uaddr: int = 0,
                 uaddr_len: int = 0, index: int = 0):
    """Linux: sock_recvmsg() -> sock->ops->recvmsg: (skb or None, the call's result,
    msg_flags). A datagram socket's: _recv_one() (the address to (uaddr, uaddr_len);
    `index`: recvmmsg's datagrams already taken). A stream's: MSG_ERRQUEUE first
    (inet_recv_error()), then tcp_recvmsg() (no address: its length written back as 0).
    MSG_DONTWAIT for an O_NONBLOCK file."""
    if _datagram(sock):
        return _recv_one(task, sock, it, flags, uaddr, uaddr_len, index)
    if flags & MSG_ERRQUEUE:
        return None, inet_recv_error(sock), 0
    flags |= _nonblock(sock)
    key = ("recv", id(sock), it.segs, flags)
    copied = _resume(task, key)
    n, msg_flags, wait = sock.ops.recvmsg(task, sock, it, flags, bool(flags & MSG_DONTWAIT),
                                          copied)
    if wait is not None:
        task.partial = (key, copied + n)
        wait.moved = copied + n
        raise wait
    if uaddr:
        move_addr_to_user(task.mem, b"", uaddr, uaddr_len)
    return None, copied + n, msg_flags


def sock_read_iter(task, sock: Socket, it: IovIter) -> int:
    """Linux: sock_read_iter(): nothing to read returns 0 at once; sock_recvmsg()."""
    if not it.count:
        return 0
    return sock_recvmsg(task, sock, it, 0)[1]


def sock_write_iter(task, sock: Socket, it: IovIter) -> int:
    """Linux: sock_write_iter() -> sock_sendmsg()."""
    return sock_sendmsg(task, sock, it, 0)


@syscall("sendto", abis=("64", "x32", "i386"), trap_when=(_NONNULL(4),), datapath=True)
def sys_sendto(task, fd: CInt, buff: UserPtr, len: CULong, flags: CUInt, addr: UserPtr,
               addr_len: CInt) -> int:
    """sendto(2). Linux: net/socket.c __sys_sendto(): the buffer range (import_ubuf:
    EFAULT), the socket, the address (move_addr_to_kernel: EINVAL, EFAULT), then
    sock_sendmsg()."""
    sock = sockfd_lookup(task, fd)
    it = import_ubuf(task.mem, buff, len)
    address = move_addr_to_kernel(task.mem, addr, addr_len) if addr else None
    return sock_sendmsg(task, sock, it, flags, address)


@syscall("recvfrom", abis=("64", "x32", "i386"),
         trap_when=(_NONNULL(4), _ERRQUEUE(3), _FLAG(3, MSG_OOB), _FLAG(3, MSG_TRUNC)),
         datapath=True)
def sys_recvfrom(task, fd: CInt, ubuf: UserPtr, size: CULong, flags: CUInt,
                 addr: UserPtr, addr_len: UserPtr) -> int:
    """recvfrom(2). Linux: net/socket.c __sys_recvfrom(): the buffer range first
    (import_ubuf: EFAULT), the socket, then sock_recvmsg() and the address. Trapped in
    the native data path with an address buffer, MSG_ERRQUEUE, MSG_OOB (a UDP socket
    ignores it, ping and raw ones refuse it; the placeholder would refuse it) or
    MSG_TRUNC (its result is the protocol's: a ping socket's is what it copied)."""
    it = import_ubuf(task.mem, ubuf, size)
    sock = _data_socket(task, fd, flags)
    return sock_recvmsg(task, sock, it, flags, addr, addr_len)[1]


def _recvmsg(task, sock: Socket, msg: UserMsghdr, flags: int,
             index: int = 0) -> tuple[int, int]:
    """Linux: ____sys_recvmsg(): sock_recvmsg() (data, address, control messages), then
    msg_namelen, msg_controllen and msg_flags written back: (the result, msg_flags)."""
    skb, result, msg_flags = sock_recvmsg(task, sock, msg.iov, flags, msg.name,
                                          msg.namelen_addr, index)
    cmsgs = sock.sk.sk_prot.cmsgs(sock.net, sock.sk, skb, in_compat_syscall(task)) \
        if skb is not None else []
    used, ctrunc = put_cmsgs(task.mem, msg, cmsgs)
    put_user_int(task.mem, msg.flags_addr, msg_flags | ctrunc)
    if msg.compat:
        put_user_int(task.mem, msg.controllen_addr, used)
    else:
        task.mem.write(msg.controllen_addr, used.to_bytes(8, "little"))
    return result, msg_flags | ctrunc


@syscall("recvmsg", abis=("64", "x32", "i386"), datapath=True)
def sys_recvmsg(task, fd: CInt, msg: UserPtr, flags: CUInt) -> int:
    """recvmsg(2). Linux: net/socket.c __sys_recvmsg(): EINVAL for MSG_CMSG_COMPAT
    from a 64-bit program, the socket, then ___sys_recvmsg() -> copy_msghdr_from_user():
    EFAULT, EINVAL for a negative msg_namelen with a name, EMSGSIZE above UIO_MAXIOV
    segments, import_iovec(): EFAULT, EINVAL for a negative segment length."""
    if flags & MSG_CMSG_COMPAT and not in_compat_syscall(task):
        raise SyscallError(Errno.EINVAL)
    sock = _data_socket(task, fd, flags)
    umsg = copy_msghdr_from_user(task.mem, msg, in_compat_syscall(task))
    return _recvmsg(task, sock, umsg, flags & ~MSG_CMSG_COMPAT)[0]


MSG_PROBE = 0x10
# sendmsg is trapped unless MSG_PROBE is set, in both data paths: the program's first
# sendmsg under the filter is sysemu's own child passing the listener
# (host/supervisor.py), before sysemu can answer anything. A sendmsg with MSG_PROBE
# (Linux: nothing is sent) then goes to the placeholder.
_NO_PROBE = (((2, "masked_eq", 0, MSG_PROBE),),)     # (arg, op, value, mask)


def _msg_address(task, umsg: UserMsghdr) -> bytes | None:
    """__copy_msghdr(): the destination (move_addr_to_kernel), none for a NULL name or
    a zero length."""
    if umsg.name and umsg.namelen:
        return move_addr_to_kernel(task.mem, umsg.name, umsg.namelen)
    return None


@syscall("sendmsg", abis=("64", "x32", "i386"), trap_when=_NO_PROBE)
def sys_sendmsg(task, fd: CInt, msg: UserPtr, flags: CUInt) -> int:
    """sendmsg(2). Linux: net/socket.c __sys_sendmsg() -> ___sys_sendmsg(): the msghdr
    (EFAULT, EMSGSIZE, EINVAL), the address (move_addr_to_kernel), then sock_sendmsg().
    sysemu: control messages (IP_PKTINFO, IP_TTL ...; TCP's SO_TIMESTAMPING) are not
    read."""
    if flags & MSG_PROBE:
        raise HostPassthrough()
    if flags & MSG_CMSG_COMPAT and not in_compat_syscall(task):
        raise SyscallError(Errno.EINVAL)
    sock = sockfd_lookup(task, fd)
    umsg = copy_msghdr_from_user(task.mem, msg, in_compat_syscall(task))
    return sock_sendmsg(task, sock, umsg.iov, flags & ~MSG_CMSG_COMPAT,
                        _msg_address(task, umsg))


MMSGHDR_SIZE = {False: 64, True: 32}     # struct mmsghdr / compat_mmsghdr


def _each_mmsg(task, sock: Socket, mmsg: int, vlen: int, key: tuple, one,
               after=None) -> int:
    """Linux: __sys_sendmmsg() / do_recvmmsg()'s loop: one(done, taken, msghdr) -> (its
    result, whether the loop ends after it) for each of at most UIO_MAXIOV entries
    (`done`: entries finished, `taken`: those of them this attempt finished), the result
    written to msg_len; an error after the first ends the loop with the count so far
    (after(err) first: do_recvmmsg() keeps it as the socket's error). An entry that must
    wait waits, as Linux's does in it: the entries done (their datagrams leave the
    queue now) and the waiting entry's own progress are kept (Task.partial, under
    `key`), and the attempt run again when woken goes on from there."""
    compat = in_compat_syscall(task)
    step = MMSGHDR_SIZE[compat]
    done = 0
    partial, task.partial = task.partial, None
    if partial is not None and partial[0] == key:
        done, task.partial = partial[1], partial[2]
    start = done
    for i in range(done, min(vlen, UIO_MAXIOV)):
        entry = mmsg + i * step
        try:
            try:
                n, last = one(done, done - start,
                              copy_msghdr_from_user(task.mem, entry, compat))
            except WouldBlock:
                if done > start:        # what the entries took is theirs now
                    commits, task.commits = task.commits, []
                    for action in commits:
                        action()
                task.partial = (key, done, task.partial)
                raise
            put_user_int(task.mem, entry + msghdr_size(compat), n)
        except SyscallError as err:
            if not done:
                raise
            if after is not None:
                after(err)
            return done
        done += 1
        if last:
            break
    return done


@syscall("sendmmsg", abis=("64", "x32", "i386"), datapath=True)
def sys_sendmmsg(task, fd: CInt, mmsg: UserPtr, vlen: CUInt, flags: CUInt) -> int:
    """sendmmsg(2). Linux: net/socket.c __sys_sendmmsg(): each message as sendmsg; one
    sent in part (a non-blocking stream without room for all) is the last."""
    sock = sockfd_lookup(task, fd)

    def one(done: int, taken: int, umsg: UserMsghdr) -> tuple[int, bool]:
        n = sock_sendmsg(task, sock, umsg.iov, flags, _msg_address(task, umsg))
        return n, n < umsg.iov.count
    return _each_mmsg(task, sock, mmsg, vlen, ("sendmmsg", id(sock), mmsg, vlen, flags), one)


def inet_recv_error(sock: Socket) -> int:
    """Linux: tcp_recvmsg() -> inet_recv_error() -> ip_recv_error() / ipv6_recv_error():
    MSG_ERRQUEUE is answered from the error queue before anything else. sysemu's TCP
    sockets queue no errors there (no SO_TIMESTAMPING, no MSG_ZEROCOPY, no ICMP errors
    for TCP over loopback), so it is EAGAIN in every state."""
    raise SyscallError(Errno.EAGAIN)


NSEC_PER_SEC = 1_000_000_000


def _recvmmsg(task, fd: int, mmsg: int, vlen: int, flags: int, timeout: int,
              timespec) -> int:
    """recvmmsg(2). Linux: net/socket.c __sys_recvmmsg(): the timeout (EFAULT), then
    do_recvmmsg(): EINVAL for an invalid one (poll_select_set_timeout), the socket, its
    pending error first (but with MSG_ERRQUEUE), then messages into the vector until it
    is full (MSG_WAITFORONE: without waiting after the first), one with urgent data
    (MSG_OOB) ending it, or the timeout: it is looked at after each message (the waits
    are not bounded by it, as on Linux) and the time left written back once a message
    came; the first entry's error is the call's when nothing came (vlen 0 reads none:
    0), a later one's not EAGAIN becomes the socket's error (sk_err). A TCP socket's is
    the host's in the native data path but with MSG_ERRQUEUE. `timespec` is the
    timeout's layout."""
    if flags & MSG_CMSG_COMPAT and not in_compat_syscall(task):
        raise SyscallError(Errno.EINVAL)
    key = ("recvmmsg", fd, mmsg, vlen, flags, timeout)
    partial = task.partial
    resumed = partial is not None and partial[0] == key
    end = None
    if timeout:
        sec, nsec = timespec.unpack(task.mem.read(timeout, timespec.size))
        if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
            raise SyscallError(Errno.EINVAL)
        # Linux: a zero timeout ends at once (end_time 0), else now + timeout; a call
        # that waited and runs again keeps the end of its first attempt
        if resumed:
            end = partial[3]
            task.partial = partial[:3]
        else:
            end = task.kernel.clock.now() + sec + nsec / NSEC_PER_SEC if sec or nsec else 0.0
    sock = _data_socket(task, fd, flags)
    sk = sock.sk
    if not flags & MSG_ERRQUEUE and sk.sk_err and not resumed:
        err, sk.sk_err = sk.sk_err, 0           # Linux: sock_error()
        _error_changed(sock)
        raise SyscallError(err)
    left = [None]

    def one(done: int, taken: int, umsg: UserMsghdr) -> tuple[int, bool]:
        this = flags | (MSG_DONTWAIT if done and flags & MSG_WAITFORONE else 0)
        n, msg_flags = _recvmsg(task, sock, umsg, this & ~(MSG_WAITFORONE | MSG_CMSG_COMPAT),
                                0 if flags & MSG_PEEK else taken)
        last = bool(msg_flags & MSG_OOB)
        if end is not None:
            left[0] = max(end - task.kernel.clock.now(), 0.0)
            last = last or not left[0]
        return n, last

    def after(err: SyscallError) -> None:
        if err.errno != Errno.EAGAIN:
            sk.sk_err = err.errno
            _error_changed(sock)

    try:
        done = _each_mmsg(task, sock, mmsg, vlen, key, one, after)
    except WouldBlock:
        if end is not None and task.partial is not None:
            task.partial = task.partial + (end,)
        raise
    if done and left[0] is not None:
        ns = round(left[0] * NSEC_PER_SEC)
        task.mem.write(timeout, timespec.pack(ns // NSEC_PER_SEC, ns % NSEC_PER_SEC))
    return done


def _error_changed(sock: Socket) -> None:
    """The socket's pending error was set or taken: its placeholder shows it (or not)."""
    if _datagram(sock):
        sock.net.kernel.host.datagram_error(sock.sk)
    else:
        sock.net.kernel.host.readiness(sock.sk)


@syscall("recvmmsg", abis=("64", "x32", "i386"), datapath=True)
def sys_recvmmsg(task, fd: CInt, mmsg: UserPtr, vlen: CUInt, flags: CUInt,
                 timeout: UserPtr) -> int:
    """recvmmsg(2) (see _recvmmsg). i386's is recvmmsg_time32: an old_timespec32
    timeout (compat_sys_recvmmsg_time32, with MSG_CMSG_COMPAT)."""
    return _recvmmsg(task, fd, mmsg, vlen, flags, timeout, LAYOUTS[task.abi].old_timespec)


@syscall("recvmmsg_time64", abis=("i386",), datapath=True)
def sys_recvmmsg_time64(task, fd: CInt, mmsg: UserPtr, vlen: CUInt, flags: CUInt,
                        timeout: UserPtr) -> int:
    """i386 recvmmsg_time64: a 64-bit __kernel_timespec timeout."""
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
    # sysemu: SYS_RECV is served for a TCP socket only with MSG_ERRQUEUE (see
    # sys_recvfrom); the flags word is read from memory, so a thread rewriting it races
    # only with its own error-queue read.
    SYS_SEND: lambda t, a: sys_sendto(t, a[0], a[1], a[2], a[3], 0, 0),
    SYS_RECV: lambda t, a: sys_recvfrom(t, a[0], a[1], a[2], a[3], 0, 0),
    SYS_SENDTO: lambda t, a: sys_sendto(t, *a[:6]),
    SYS_RECVFROM: lambda t, a: sys_recvfrom(t, *a[:6]),
    SYS_SENDMSG: lambda t, a: sys_sendmsg(t, *a[:3]),
    SYS_RECVMSG: lambda t, a: sys_recvmsg(t, *a[:3]),
    SYS_SENDMMSG: lambda t, a: sys_sendmmsg(t, *a[:4]),
    SYS_RECVMMSG: lambda t, a: sys_recvmmsg(t, *a[:5]),
}


# which argument words are ints (sign-extended); the rest are pointers (compat_uptr_t)
_SOCKETCALL_INTS = {
    SYS_SOCKET: (0, 1, 2), SYS_SOCKETPAIR: (0, 1, 2), SYS_BIND: (0, 2), SYS_CONNECT: (0, 2),
    SYS_LISTEN: (0, 1), SYS_ACCEPT: (0,), SYS_GETSOCKNAME: (0,), SYS_GETPEERNAME: (0,),
    SYS_SHUTDOWN: (0, 1), SYS_SETSOCKOPT: (0, 1, 2, 4), SYS_GETSOCKOPT: (0, 1, 2),
    SYS_ACCEPT4: (0, 3), SYS_SEND: (0,), SYS_RECV: (0,), SYS_SENDTO: (0, 5), SYS_RECVFROM: (0,),
    SYS_SENDMSG: (0,), SYS_RECVMSG: (0,), SYS_SENDMMSG: (0,), SYS_RECVMMSG: (0,)}


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


# In the native data path the filter traps every call number sysemu serves but SYS_SEND
# (the data call of a connected socket without an address, the placeholder's there, as
# send() is; a UDP socket's too, which sys_sendto's own trap leaves native); the other
# sends on a sysemu socket are sysemu's in both data paths (sock_sendmsg()). Call numbers
# outside 1..20 run on the host untrapped (the number is a register: no user memory
# decides it). Under `--datapath model` every socketcall is trapped (datapath=True), so
# SYS_SEND reaches tcp_sendmsg as send() does.
_SOCKETCALL_TRAPPED = tuple(((0, "eq", call),) for call in sorted(_SOCKETCALL)
                            if call != SYS_SEND)


@syscall("socketcall", abis=("i386",), trap_when=_SOCKETCALL_TRAPPED, datapath=True)
def sys_socketcall(task, call: CInt, args: UserPtr) -> int:
    """socketcall(2). Linux: net/socket.c SYSCALL_DEFINE2(socketcall) (compat: 32-bit
    words): EINVAL for call outside 1..20, EFAULT copying the arguments. On a sysemu
    socket the sends (sendto, sendmsg, sendmmsg) are sysemu's (sock_sendmsg()) and a
    TCP socket's receives the host's, but MSG_ERRQUEUE, which sysemu answers.
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
