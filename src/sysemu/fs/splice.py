"""splice(2) between a sysemu socket and a program's pipe (the model data path).

Linux: fs/splice.c SYSCALL_DEFINE6(splice) -> __do_splice() -> do_splice(): one side must
be a pipe; pipe -> socket is do_splice_from() -> splice_to_socket() -> sock_sendmsg(),
socket -> pipe is splice_file_to_pipe() -> do_splice_read() -> sock_splice_read() ->
tcp_splice_read() (net/socket.c, net/ipv4/tcp.c).

Under `sysemu run --datapath model` the filter traps splice on every descriptor; a call
with no sysemu stream socket at either end is the host's from the lookup, before any
pointer is read (HostPassthrough), and so is one on a datagram socket (its placeholder
holds its datagrams). The pipe is the program's own, read and written through a copy of
its descriptor (HostHooks.pipe_file) without waiting; a wait for it is a wait queue the
host wakes when the pipe is ready.

tee(2) and vmsplice(2) are not trapped: tee wants a pipe at both ends (do_tee(): EINVAL
otherwise) and vmsplice one pipe (EBADF for anything else), and the placeholder, an
AF_UNIX socket, is no pipe either: the host gives Linux's answers.
"""
from __future__ import annotations

from sysemu.abi.errno import Errno
from sysemu.abi.fcntl import O_APPEND
from sysemu.abi.socket import MSG_DONTWAIT, MSG_MORE, MSG_PEEK, MSG_TRUNC, SOCK_STREAM
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from sysemu.kernel.syscalls import NEVER, CInt, CUInt, CULong, UserPtr, syscall
from sysemu.kernel.task import DATAPATH_MODEL
from sysemu.net.ipv4.tcp import SIGPIPE
from sysemu.net.scm import MAX_RW_COUNT
from sysemu.net.socket import Socket, sock_recvmsg, sock_sendmsg

SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT = 1, 2, 4, 8
SPLICE_F_ALL = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT
POLLIN, POLLOUT, POLLERR, POLLHUP = 0x1, 0x4, 0x8, 0x10
LLONG_MAX = (1 << 63) - 1


def _stream_socket(task, fd: int) -> Socket | None:
    """fdget() for splice: the sysemu stream socket at `fd`, or None (a host descriptor,
    one that is nobody's, a datagram socket or another sysemu file); EBADF from the
    model's own table."""
    try:
        sock = task.files.lookup(fd).private_data
    except HostPassthrough:
        return None
    if isinstance(sock, Socket) and sock.type == SOCK_STREAM:
        return sock
    return None


class PipeIter:
    """The pipe as splice_to_socket()'s source: `count` bytes at most, read in order
    (read(offset, n): `offset` is what the call has already sent). Read at the call's
    start from an empty pipe: no writer left is the end (0 bytes); else EAGAIN when
    the pipe is non-blocking (SPLICE_F_NONBLOCK or O_NONBLOCK), or a wait until it is
    readable. Once bytes went, an empty pipe ends the call."""

    __slots__ = ("pipe", "count", "segs", "nonblock")

    def __init__(self, pipe, fd: int, count: int, nonblock: bool):
        self.pipe, self.count, self.nonblock = pipe, count, nonblock
        self.segs = ("splice", fd, count)     # the call's identity for Task.partial

    def read(self, offset: int, n: int) -> bytes:
        data = self.pipe.read(n)
        if data or offset:
            return data
        if self.pipe.poll() & POLLHUP:
            return b""                          # Linux: !pipe->writers
        if self.nonblock:
            raise SyscallError(Errno.EAGAIN)
        raise WouldBlock(self.pipe.wait(POLLIN))


class KernelBuffer:
    """An ITER_KVEC destination of `count` bytes (what tcp_splice_read() takes off the
    receive queue before the pipe gets it)."""

    __slots__ = ("data", "count", "segs")

    def __init__(self, count: int):
        self.data = bytearray(count)
        self.count = count
        self.segs = ("kvec", count)

    def write(self, offset: int, data: bytes) -> None:
        self.data[offset:offset + len(data)] = data


def splice_to_socket(task, pipe, fd_in: int, sock: Socket, length: int, flags: int) -> int:
    """Linux: splice_to_socket(): the pipe's bytes to sock_sendmsg(), MSG_MORE with
    SPLICE_F_MORE, MSG_DONTWAIT for an O_NONBLOCK socket (its errors: EPIPE and SIGPIPE
    on a socket that cannot send); the pipe empty at the start: 0 with no writer,
    EAGAIN without waiting, else wait (PipeIter). Only what the send queue takes is read
    from the pipe."""
    nonblock = bool(flags & SPLICE_F_NONBLOCK) or pipe.nonblocking
    msg_flags = MSG_MORE if flags & SPLICE_F_MORE else 0
    return sock_sendmsg(task, sock, PipeIter(pipe, fd_in, length, nonblock), msg_flags)


def wait_for_space(task, pipe, flags: int) -> None:
    """Linux: wait_for_space(): EPIPE and SIGPIPE with no reader; a full pipe is EAGAIN
    with SPLICE_F_NONBLOCK, else a wait until it has room."""
    mask = pipe.poll()
    if mask & POLLERR:
        task.kernel.host.send_sig(task, SIGPIPE)
        raise SyscallError(Errno.EPIPE)
    if not mask & POLLOUT:
        if flags & SPLICE_F_NONBLOCK:
            raise SyscallError(Errno.EAGAIN)
        raise WouldBlock(pipe.wait(POLLOUT))


def tcp_splice_read(task, sock: Socket, pipe, length: int) -> int:
    """Linux: sock_splice_read() -> tcp_splice_read(): what the receive queue holds, up
    to `length`, into the pipe; with nothing there it waits as a read does (the socket's
    O_NONBLOCK and SO_RCVTIMEO; SPLICE_F_NONBLOCK is the pipe's only), and answers 0 at
    EOF, the pending error, ENOTCONN on a socket never connected or a listener. The
    bytes are peeked, written to the pipe, and only those it took leave the queue."""
    buf = KernelBuffer(length)
    got = sock_recvmsg(task, sock, buf, MSG_PEEK)[1]
    if not got:
        return 0
    try:
        written = pipe.write(bytes(buf.data[:got]))
    except SyscallError as err:
        if err.errno == Errno.EPIPE:
            task.kernel.host.send_sig(task, SIGPIPE)
        raise
    if not written:
        raise SyscallError(Errno.EAGAIN)    # sysemu: the pipe's slots were full
    sock_recvmsg(task, sock, KernelBuffer(written), MSG_TRUNC | MSG_DONTWAIT)
    return written


def splice_file_to_pipe(task, sock: Socket, pipe, length: int, flags: int) -> int:
    """Linux: splice_file_to_pipe(): wait_for_space(), then do_splice_read(): no more
    than the pipe has room for, nor MAX_RW_COUNT, from sock_splice_read()."""
    wait_for_space(task, pipe, flags)
    length = min(length, pipe.space(), MAX_RW_COUNT)
    return tcp_splice_read(task, sock, pipe, length)


@syscall("splice", trap_when=NEVER, datapath=True)
def sys_splice(task, fd_in: CInt, off_in: UserPtr, fd_out: CInt, off_out: UserPtr,
               len: CULong, flags: CUInt) -> int:
    """splice(2) with a sysemu stream socket at one end. Linux: fs/splice.c
    SYSCALL_DEFINE6(splice): 0 for len 0; EINVAL for unknown flags; EBADF (fd_in, then
    fd_out); __do_splice(): ESPIPE for an offset on a pipe, the offsets read (EFAULT),
    then do_splice()."""
    if not len:
        return 0
    if flags & ~SPLICE_F_ALL:
        raise SyscallError(Errno.EINVAL)
    if task.kernel.datapath != DATAPATH_MODEL:
        raise HostPassthrough()
    sock_in = _stream_socket(task, fd_in)
    sock_out = _stream_socket(task, fd_out)
    if sock_in is None and sock_out is None:
        raise HostPassthrough()
    host_fd = fd_in if sock_in is None else fd_out if sock_out is None else None
    other = task.kernel.host.pipe_file(task, host_fd) if host_fd is not None else None
    try:
        return _do_splice(task, sock_in, fd_in, off_in, sock_out, off_out, other, len,
                          flags)
    finally:
        if other is not None:
            other.close()


def _do_splice(task, sock_in, fd_in, off_in, sock_out, off_out, other, length, flags):
    """Linux: __do_splice() and do_splice() with one sysemu socket (or two); `other` is
    the host end, if any."""
    ipipe = other if sock_in is None and other.pipe else None
    opipe = other if sock_out is None and other.pipe else None
    if ipipe is not None and off_in or opipe is not None and off_out:
        raise SyscallError(Errno.ESPIPE)
    for offset in (off_out, off_in):
        if offset:
            task.mem.read(offset, 8)            # EFAULT
    if sock_in is None and not other.readable or sock_out is None and not other.writable:
        raise SyscallError(Errno.EBADF)
    if ipipe is not None:
        if off_out:
            raise SyscallError(Errno.EINVAL)    # a socket has no FMODE_PWRITE
        if sock_out.file is not None and sock_out.file.f_flags & O_APPEND:
            raise SyscallError(Errno.EINVAL)
        if length > LLONG_MAX:
            raise SyscallError(Errno.EINVAL)    # rw_verify_area()
        return splice_to_socket(task, ipipe, fd_in, sock_out, length, flags)
    if opipe is not None:
        if off_in:
            raise SyscallError(Errno.EINVAL)    # a socket has no FMODE_PREAD
        if length > LLONG_MAX:
            raise SyscallError(Errno.EINVAL)
        if opipe.nonblocking:
            flags |= SPLICE_F_NONBLOCK
        return splice_file_to_pipe(task, sock_in, opipe, length, flags)
    raise SyscallError(Errno.EINVAL)            # no pipe at either end
