"""The socket-call layer. Linux: net/socket.c.

sys_* take raw arguments and user pointers; the kernel-value halves (bind_socket,
do_accept ...) take decoded values and are what in-process tests call directly. The
families below (af_inet) register themselves (sock_register()) and give each Socket the
operations socket.c calls (sock->ops)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState
from sysemu.abi.socket import (AF_INET, AF_INET6, NPROTO, SOCK_CLOEXEC, SOCK_MAX,
                               SOCK_NONBLOCK, SOCK_TYPE_MASK, SOCKADDR_STORAGE_SIZE,
                               SOCKETCALL_NARGS,
                               SYS_ACCEPT, SYS_ACCEPT4, SYS_BIND, SYS_CONNECT,
                               SYS_GETPEERNAME, SYS_GETSOCKNAME, SYS_GETSOCKOPT, SYS_LISTEN,
                               SYS_SENDMMSG, SYS_SETSOCKOPT, SYS_SHUTDOWN, SYS_SOCKET,
                               SocketState)
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.file import O_NONBLOCK, O_RDWR, File
from sysemu.abi.socket import MSG_DONTWAIT
from sysemu.kernel.syscalls import NEVER, CInt, CUInt, CULong, InstallFd, UserPtr, syscall
from sysemu.kernel.task import DATAPATH_MODEL
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
    # the model data path: sendmsg(task, sock, iter, flags, nonblock, copied) ->
    # (bytes, wait); recvmsg(task, sock, iter, flags, nonblock, copied) -> (bytes,
    # msg_flags, wait); ioctl(sock, what) -> int ("inq", "outq", "outqnsd", "atmark")
    sendmsg: Callable | None = None
    recvmsg: Callable | None = None
    ioctl: Callable | None = None


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


@syscall("socket", trap_when=INET_FAMILIES)
def sys_socket(task, family: CInt, type: CInt, protocol: CInt):
    """socket(2). Linux: net/socket.c __sys_socket(): EINVAL for unknown type flags
    before anything else."""
    if family not in (AF_INET, AF_INET6):
        raise HostPassthrough()
    flags = type & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(Errno.EINVAL)
    sock = create_socket(task, family, type & SOCK_TYPE_MASK, protocol)
    file = _new_file(task, sock, flags)
    return InstallFd(file, bool(flags & SOCK_CLOEXEC))


@syscall("bind")
def sys_bind(task, fd: CInt, umyaddr: UserPtr, addrlen: CInt) -> int:
    """bind(2). Linux: net/socket.c __sys_bind()."""
    sock = sockfd_lookup(task, fd)
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
    sock = sockfd_lookup(task, fd)
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
    progress; otherwise the bytes queued. In the native data path the placeholder holds
    them (the host answers)."""
    if _model_datapath(task) and sock.ops.ioctl is not None:
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
UIO_MAXIOV = 1024
TASK_SIZE_MAX = (1 << 47) - 4096        # x86-64, 4-level paging
MAX_RW_COUNT = 0x7FFFF000               # INT_MAX & PAGE_MASK
USER_MSGHDR = struct.Struct("<QiiQQQQI4x")   # name, namelen, pad, iov, iovlen, control ...
MSGHDR_NAMELEN_OFFSET = 8
MSGHDR_CONTROLLEN_OFFSET = 40
MSGHDR_FLAGS_OFFSET = 48
IOVEC = struct.Struct("<Qq")


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


# -- the data calls (the model data path) ----------------------------------------------
#
# Under `--datapath model` the filter traps read/write/readv/writev/recv*/send* on every
# descriptor (Handler.datapath); those of host descriptors go back to the host
# (HostPassthrough from the lookup, before any pointer is read). In the native data path
# only recvfrom/recvmsg with MSG_ERRQUEUE are trapped (the rest is the placeholder's), and
# the others only when tracing traps them: they run on the host.

class IovIter:
    """Linux: struct iov_iter over user memory (ITER_UBUF or ITER_IOVEC): `segs` are
    (address, length) pairs, `count` their total. read() and write() move bytes at an
    offset into the whole; a bad address raises EFAULT."""

    __slots__ = ("mem", "segs", "count")

    def __init__(self, mem, segs: tuple[tuple[int, int], ...]):
        self.mem = mem
        self.segs = segs
        self.count = sum(length for _, length in segs)

    def _spans(self, offset: int, n: int):
        for addr, length in self.segs:
            if offset >= length:
                offset -= length
                continue
            take = min(length - offset, n)
            if take > 0:
                yield addr + offset, take
            n -= take
            offset = 0
            if n <= 0:
                return

    def read(self, offset: int, n: int) -> bytes:
        if len(self.segs) == 1:
            return self.mem.read(self.segs[0][0] + offset, n)
        return b"".join(self.mem.read(addr, take) for addr, take in self._spans(offset, n))

    def write(self, offset: int, data: bytes) -> None:
        if len(self.segs) == 1:
            self.mem.write(self.segs[0][0] + offset, data)
            return
        pos = 0
        pieces = []
        for addr, take in self._spans(offset, len(data)):
            pieces.append((addr, data[pos:pos + take]))
            pos += take
        if pieces:
            self.mem.writev(tuple(pieces))


def import_ubuf(mem, buf: int, length: int) -> IovIter:
    """Linux: import_ubuf(): the length clamped to MAX_RW_COUNT, the range checked
    (access_ok: EFAULT)."""
    length = min(length, MAX_RW_COUNT)
    _access_ok(buf, length)
    return IovIter(mem, ((buf, length),))


def import_iovec(mem, uvec: int, nr_segs: int) -> IovIter:
    """Linux: import_iovec() / __import_iovec(): EINVAL above UIO_MAXIOV segments; the
    copy of the vector (EFAULT), EINVAL for a negative length (copy_iovec_from_user());
    then each range (access_ok: EFAULT), the total clamped to MAX_RW_COUNT."""
    if nr_segs > UIO_MAXIOV:
        raise SyscallError(Errno.EINVAL)
    if not nr_segs:
        return IovIter(mem, ())
    vec = list(IOVEC.iter_unpack(mem.read(uvec, nr_segs * IOVEC.size)))
    if any(length < 0 for _, length in vec):
        raise SyscallError(Errno.EINVAL)
    segs = []
    total = 0
    for base, length in vec:
        _access_ok(base, length)
        length = min(length, MAX_RW_COUNT - total)
        total += length
        segs.append((base, length))
    return IovIter(mem, tuple(segs))


def copy_msghdr_from_user(task, umsg: int) -> tuple[int, int, IovIter, int]:
    """Linux: copy_msghdr_from_user() / __copy_msghdr(): EFAULT reading it; a NULL name
    has no length; EINVAL for a negative msg_namelen, which is capped at
    sizeof(sockaddr_storage); EMSGSIZE above UIO_MAXIOV segments; then import_iovec().
    Returns (name, namelen, iov_iter, msg_flags)."""
    name, namelen, _, iov, iovlen, _control, _controllen, msg_flags = \
        USER_MSGHDR.unpack(task.mem.read(umsg, USER_MSGHDR.size))
    if not name:
        namelen = 0
    if namelen < 0:
        raise SyscallError(Errno.EINVAL)
    namelen = min(namelen, SOCKADDR_STORAGE_SIZE)
    if iovlen > UIO_MAXIOV:
        raise SyscallError(Errno.EMSGSIZE)
    return name, namelen, import_iovec(task.mem, iov, iovlen), msg_flags


def _resume(task, key: tuple) -> int:
    """Bytes an earlier attempt of this same call moved (Task.partial), 0 for a new call."""
    partial, task.partial = task.partial, None
    return partial[1] if partial is not None and partial[0] == key else 0


def sock_sendmsg(task, sock: Socket, it: IovIter, flags: int) -> int:
    """Linux: __sock_sendmsg() -> sock->ops->sendmsg (inet_sendmsg -> tcp_sendmsg): the
    bytes queued; a blocking send waits for send space until all are (an attempt run
    again continues after what the earlier ones queued)."""
    if sock.ops.sendmsg is None:
        raise SyscallError(Errno.EOPNOTSUPP)
    key = ("send", id(sock), it.segs, flags)
    copied = _resume(task, key)
    if not copied:
        task.kernel.host.pull_sent(sock.sk)     # bytes the program wrote untrapped first
    n, wait = sock.ops.sendmsg(task, sock, it, flags, bool(flags & MSG_DONTWAIT), copied)
    if wait is not None:
        task.partial = (key, copied + n)
        raise wait
    return copied + n


def sock_recvmsg(task, sock: Socket, it: IovIter, flags: int) -> tuple[int, int]:
    """Linux: sock_recvmsg() -> sock->ops->recvmsg (inet_recvmsg -> tcp_recvmsg):
    (bytes read, msg_flags). MSG_ERRQUEUE first (inet_recv_error())."""
    if flags & MSG_ERRQUEUE:
        return inet_recv_error(sock), 0
    if sock.ops.recvmsg is None:
        raise SyscallError(Errno.EOPNOTSUPP)
    key = ("recv", id(sock), it.segs, flags)
    copied = _resume(task, key)
    n, msg_flags, wait = sock.ops.recvmsg(task, sock, it, flags, bool(flags & MSG_DONTWAIT),
                                          copied)
    if wait is not None:
        task.partial = (key, copied + n)
        raise wait
    return copied + n, msg_flags


def _nonblock(sock: Socket) -> int:
    return MSG_DONTWAIT if sock.file is not None and sock.file.nonblocking else 0


def sock_read_iter(task, sock: Socket, it: IovIter) -> int:
    """Linux: sock_read_iter(): MSG_DONTWAIT for an O_NONBLOCK file; nothing to read
    returns 0 at once."""
    if not it.count:
        return 0
    return sock_recvmsg(task, sock, it, _nonblock(sock))[0]


def sock_write_iter(task, sock: Socket, it: IovIter) -> int:
    """Linux: sock_write_iter(): MSG_DONTWAIT for an O_NONBLOCK file."""
    return sock_sendmsg(task, sock, it, _nonblock(sock))


def _model_datapath(task) -> bool:
    return task.kernel.datapath == DATAPATH_MODEL


# The native data path traps recvfrom/recvmsg only with MSG_ERRQUEUE in flags; the rest is
# the placeholder's. i386's socketcall(SYS_RECV*) is not narrowed.
_ERRQUEUE = lambda index: (((index, "masked_eq", MSG_ERRQUEUE, MSG_ERRQUEUE),),)  # noqa: E731


@syscall("recvfrom", abis=("64", "x32"), trap_when=_ERRQUEUE(3), datapath=True)
def sys_recvfrom(task, fd: CInt, ubuf: UserPtr, size: CULong, flags: CUInt,
                 addr: UserPtr, addr_len: UserPtr) -> int:
    """recvfrom(2). Linux: net/socket.c __sys_recvfrom(): the buffer range first
    (import_ubuf: EFAULT), the socket, MSG_DONTWAIT for an O_NONBLOCK file, then
    sock_recvmsg(); the address (none for TCP: its length written back as 0)."""
    if not flags & MSG_ERRQUEUE and not _model_datapath(task):
        raise HostPassthrough()
    it = import_ubuf(task.mem, ubuf, size)
    sock = sockfd_lookup(task, fd)
    if flags & MSG_ERRQUEUE:
        return inet_recv_error(sock)
    n, _ = sock_recvmsg(task, sock, it, flags | _nonblock(sock))
    if addr:
        move_addr_to_user(task.mem, b"", addr, addr_len)
    return n


@syscall("recvmsg", abis=("64",), trap_when=_ERRQUEUE(2), datapath=True)
def sys_recvmsg(task, fd: CInt, msg: UserPtr, flags: CUInt) -> int:
    """recvmsg(2). Linux: net/socket.c __sys_recvmsg(): EINVAL for MSG_CMSG_COMPAT, the
    socket, then ___sys_recvmsg() -> copy_msghdr_from_user(), sock_recvmsg(); written
    back: msg_namelen (0 for TCP), msg_flags, msg_controllen (0: TCP gives no control
    messages here)."""
    if not flags & MSG_ERRQUEUE and not _model_datapath(task):
        raise HostPassthrough()
    if flags & MSG_CMSG_COMPAT:
        raise SyscallError(Errno.EINVAL)
    sock = sockfd_lookup(task, fd)
    name, _namelen, it, _ = copy_msghdr_from_user(task, msg)
    if flags & MSG_ERRQUEUE:
        return inet_recv_error(sock)
    n, msg_flags = sock_recvmsg(task, sock, it, flags | _nonblock(sock))
    pieces = [(msg + MSGHDR_FLAGS_OFFSET, S32.pack(msg_flags)),
              (msg + MSGHDR_CONTROLLEN_OFFSET, bytes(8))]
    if name:
        pieces.insert(0, (msg + MSGHDR_NAMELEN_OFFSET, S32.pack(0)))
    task.mem.writev(tuple(pieces))
    return n


@syscall("sendto", abis=("64", "x32"), trap_when=NEVER, datapath=True)
def sys_sendto(task, fd: CInt, buff: UserPtr, length: CULong, flags: CUInt,
               addr: UserPtr, addr_len: CInt) -> int:
    """sendto(2). Linux: net/socket.c __sys_sendto(): the buffer range (EFAULT), the
    socket, the address (move_addr_to_kernel: EINVAL, EFAULT; TCP then ignores it),
    MSG_DONTWAIT for an O_NONBLOCK file, sock_sendmsg()."""
    if not _model_datapath(task):
        raise HostPassthrough()
    it = import_ubuf(task.mem, buff, length)
    sock = sockfd_lookup(task, fd)
    if addr:
        move_addr_to_kernel(task.mem, addr, addr_len)
    return sock_sendmsg(task, sock, it, flags | _nonblock(sock))


@syscall("sendmsg", abis=("64",), trap_when=NEVER, datapath=True)
def sys_sendmsg(task, fd: CInt, msg: UserPtr, flags: CUInt) -> int:
    """sendmsg(2). Linux: net/socket.c __sys_sendmsg(): EINVAL for MSG_CMSG_COMPAT, the
    socket, copy_msghdr_from_user(), the name (move_addr_to_kernel), MSG_DONTWAIT for an
    O_NONBLOCK file, sock_sendmsg().
    sysemu: control messages are not read (TCP acts on none but SO_TIMESTAMPING's)."""
    if not _model_datapath(task):
        raise HostPassthrough()
    if flags & MSG_CMSG_COMPAT:
        raise SyscallError(Errno.EINVAL)
    sock = sockfd_lookup(task, fd)
    name, namelen, it, _ = copy_msghdr_from_user(task, msg)
    if name and namelen:
        move_addr_to_kernel(task.mem, name, namelen)
    return sock_sendmsg(task, sock, it, flags | _nonblock(sock))


# -- i386 socketcall -----------------------------------------------------------------

def _socketcall_socket(task, family: int, type_: int, protocol: int):
    """socketcall(SYS_SOCKET). sysemu: the words came from user memory, which another
    thread may rewrite before the host reads them again: a family sysemu does not serve
    is created by the host side from this copy (HostHooks.passthrough_socket), not CONTINUEd."""
    if family in (AF_INET, AF_INET6):
        return sys_socket(task, family, type_, protocol)
    return task.kernel.host.passthrough_socket(family, type_, protocol)


_SOCKETCALL = {
    SYS_SOCKET: lambda t, a: _socketcall_socket(t, *a[:3]),
    SYS_BIND: lambda t, a: sys_bind(t, *a[:3]),
    SYS_CONNECT: lambda t, a: sys_connect(t, *a[:3]),
    SYS_LISTEN: lambda t, a: sys_listen(t, *a[:2]),
    SYS_ACCEPT: lambda t, a: _accept4(t, a[0], a[1], a[2], 0),
    SYS_GETSOCKNAME: lambda t, a: sys_getsockname(t, *a[:3]),
    SYS_GETPEERNAME: lambda t, a: sys_getpeername(t, *a[:3]),
    SYS_SHUTDOWN: lambda t, a: sys_shutdown(t, *a[:2]),
    SYS_SETSOCKOPT: lambda t, a: sys_setsockopt(t, *a[:5]),
    SYS_GETSOCKOPT: lambda t, a: sys_getsockopt(t, *a[:5]),
    SYS_ACCEPT4: lambda t, a: _accept4(t, a[0], a[1], a[2], a[3]),
}


# which argument words are ints (sign-extended); the rest are pointers (compat_uptr_t)
_SOCKETCALL_INTS = {
    SYS_SOCKET: (0, 1, 2), SYS_BIND: (0, 2), SYS_CONNECT: (0, 2), SYS_LISTEN: (0, 1),
    SYS_ACCEPT: (0,), SYS_GETSOCKNAME: (0,), SYS_GETPEERNAME: (0,), SYS_SHUTDOWN: (0, 1),
    SYS_SETSOCKOPT: (0, 1, 2, 4), SYS_GETSOCKOPT: (0, 1, 2), SYS_ACCEPT4: (0, 3)}


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


@syscall("socketcall", abis=("i386",))
def sys_socketcall(task, call: CInt, args: UserPtr) -> int:
    """socketcall(2). Linux: net/socket.c SYSCALL_DEFINE2(socketcall) (compat: 32-bit
    words): EINVAL for call outside 1..20, EFAULT copying the arguments. The calls that
    are not control-plane (send, recv, socketpair, *msg) go to the host.
    sysemu: deciding "host" after reading args from memory races with the program
    rewriting them; only calls sysemu never serves (and host fds) are passed on, and
    socket() of other families is made from the copy read here (_socketcall_socket)."""
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
