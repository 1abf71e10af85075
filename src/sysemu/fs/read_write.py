"""read(2), write(2), readv(2), writev(2) and sendfile(2) on sysemu sockets (the model
data path).

Linux: fs/read_write.c (ksys_read, ksys_write, do_readv, do_writev, vfs_read,
vfs_write, vfs_readv, vfs_writev, do_sendfile), reaching net/socket.c's sock_read_iter()
/ sock_write_iter() through the socket file's f_op, and sock_sendmsg() for sendfile's
bytes (splice_to_socket()).

Under `sysemu run --datapath model` the filter traps these four on every descriptor: a
host descriptor (or a /proc file, whose placeholder holds its bytes) goes back to the
host from the lookup, before any pointer is read (HostPassthrough). In the native data
path they are not trapped (the placeholder is read and written natively), or only
traced, and then run on the host too. pread64/pwrite64/preadv/pwritev stay the host's:
on a socket they fail with ESPIPE there as in sock_read_iter().
"""
from __future__ import annotations

from sysemu.abi.errno import Errno
from sysemu.abi.fcntl import O_APPEND
from sysemu.abi.socket import MSG_DONTWAIT
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.usermem import S32, S64
from sysemu.kernel.syscalls import NEVER, CInt, CULong, CUInt, UserPtr, syscall
from sysemu.kernel.task import DATAPATH_MODEL, in_compat_syscall
from sysemu.net.scm import MAX_RW_COUNT, import_iovec, import_ubuf
from sysemu.net.socket import Socket, sock_read_iter, sock_sendmsg, sock_write_iter


def sock_file(task, fd: int) -> Socket:
    """fdget() for a data call of the model data path: the Socket behind `fd`; anything
    else (a host descriptor, EBADF included, or another sysemu file) is the host's."""
    if task.kernel.datapath != DATAPATH_MODEL:
        raise HostPassthrough()
    sock = task.files.lookup(fd).private_data
    if not isinstance(sock, Socket):
        raise HostPassthrough()
    return sock


@syscall("read", trap_when=NEVER, datapath=True)
def sys_read(task, fd: CUInt, buf: UserPtr, count: CULong) -> int:
    """read(2). Linux: fs/read_write.c ksys_read() -> vfs_read(): the range (access_ok:
    EFAULT), count clamped to MAX_RW_COUNT, then sock_read_iter()."""
    sock = sock_file(task, fd)
    return sock_read_iter(task, sock, import_ubuf(task.mem, buf, count))


@syscall("write", trap_when=NEVER, datapath=True)
def sys_write(task, fd: CUInt, buf: UserPtr, count: CULong) -> int:
    """write(2). Linux: fs/read_write.c ksys_write() -> vfs_write() -> sock_write_iter()."""
    sock = sock_file(task, fd)
    return sock_write_iter(task, sock, import_ubuf(task.mem, buf, count))


@syscall("readv", trap_when=NEVER, datapath=True)
def sys_readv(task, fd: CULong, vec: UserPtr, vlen: CULong) -> int:
    """readv(2). Linux: fs/read_write.c do_readv() -> vfs_readv(): import_iovec()
    (EINVAL, EFAULT; compat_iovec for an i386 or x32 program, whose readv is this same
    sys_readv: in_compat_syscall()), nothing to read returns 0, then sock_read_iter()."""
    sock = sock_file(task, fd & 0xFFFFFFFF)
    it = import_iovec(task.mem, vec, vlen, in_compat_syscall(task))
    return sock_read_iter(task, sock, it) if it.count else 0


@syscall("writev", trap_when=NEVER, datapath=True)
def sys_writev(task, fd: CULong, vec: UserPtr, vlen: CULong) -> int:
    """writev(2). Linux: fs/read_write.c do_writev() -> vfs_writev(): import_iovec()
    (compat_iovec for i386 and x32), nothing to write returns 0 (do_iter_write()), then
    sock_write_iter()."""
    sock = sock_file(task, fd & 0xFFFFFFFF)
    it = import_iovec(task.mem, vec, vlen, in_compat_syscall(task))
    return sock_write_iter(task, sock, it) if it.count else 0


class FileIter:
    """sendfile's source as an iov_iter: `count` bytes of a host file (HostHooks.
    file_reader) from `pos`, or from its own position when pos is None (each read then
    moves it). A read past the file's end comes back short."""

    __slots__ = ("src", "pos", "count", "segs")

    def __init__(self, src, pos: int | None, count: int):
        self.src, self.pos, self.count = src, pos, count
        self.segs = (pos, count)        # the call's identity for Task.partial

    def read(self, offset: int, n: int) -> bytes:
        return self.src.read(n, None if self.pos is None else self.pos + offset)


MAX_NON_LFS = (1 << 31) - 1        # Linux: include/linux/fs.h, the offset limit of
                                   # i386's sendfile (a 32-bit off_t)
LLONG_MAX = (1 << 63) - 1


def do_sendfile(task, sock: Socket, in_fd: int, pos: int | None, count: int,
                max_pos: int = LLONG_MAX) -> tuple[int, int | None]:
    """Linux: fs/read_write.c do_sendfile() into a socket: the source first (EBADF unless
    open for reading; ESPIPE for an offset on an unseekable file; rw_verify_area():
    EINVAL for a negative count or offset, or one the count carries past LLONG_MAX),
    count clamped to MAX_RW_COUNT; EOVERFLOW for an offset at or past `max_pos` (i386's sendfile:
    MAX_NON_LFS), else the count cut to end there; EINVAL for an O_APPEND
    socket (do_splice_direct()), then for a source that is not a regular file
    (splice_direct_to_actor()), then do_splice_direct() -> splice_to_socket() ->
    sock_sendmsg(), MSG_DONTWAIT for an O_NONBLOCK socket (EPIPE and SIGPIPE on a socket
    that cannot send). Bytes a send cannot take are not read. Returns (the bytes sent,
    the offset past them).
    sysemu: the file systems' own limit (s_maxbytes: EOVERFLOW for an offset beyond the
    largest file) is not known here: a read there returns nothing."""
    src = task.kernel.host.file_reader(task, in_fd)
    try:
        if not src.readable:
            raise SyscallError(Errno.EBADF)
        if pos is not None and not src.seekable:
            raise SyscallError(Errno.ESPIPE)
        if count > LLONG_MAX or (pos is not None and (pos < 0 or pos + count > LLONG_MAX)):
            raise SyscallError(Errno.EINVAL)
        count = min(count, MAX_RW_COUNT)
        if pos is not None and pos + count > max_pos:
            if pos >= max_pos:
                raise SyscallError(Errno.EOVERFLOW)
            count = max_pos - pos
        if sock.file is not None and sock.file.f_flags & O_APPEND:
            raise SyscallError(Errno.EINVAL)        # Linux: do_splice_direct_actor()
        if not src.regular:
            raise SyscallError(Errno.EINVAL)        # Linux: splice_direct_to_actor()
        if not count:
            return 0, pos
        flags = MSG_DONTWAIT if sock.file is not None and sock.file.nonblocking else 0
        sent = sock_sendmsg(task, sock, FileIter(src, pos, count), flags)
        return sent, None if pos is None else pos + sent
    finally:
        src.close()


def _sendfile(task, out_fd: int, in_fd: int, offset: int, count: int, layout,
              max_pos: int) -> int:
    """SYSCALL_DEFINE4(sendfile64) and i386's compat_sys_sendfile (a 32-bit offset, cut
    at MAX_NON_LFS): the offset read (EFAULT), do_sendfile(), the offset written back
    past what was sent. Any other destination is the host's (from the lookup, before the
    offset is read)."""
    sock = sock_file(task, out_fd)
    if not offset:
        return do_sendfile(task, sock, in_fd, None, count)[0]
    pos = layout.unpack(task.mem.read(offset, layout.size))[0]
    sent, pos = do_sendfile(task, sock, in_fd, pos, count, max_pos)
    task.mem.write(offset, layout.pack(pos))
    return sent


@syscall("sendfile", trap_when=NEVER, datapath=True)
def sys_sendfile(task, out_fd: CInt, in_fd: CInt, offset: UserPtr, count: CULong) -> int:
    """sendfile(2) into a sysemu socket. The 64-bit and x32 table's sendfile is
    sys_sendfile64 (a 64-bit offset); i386's is compat_sys_sendfile (compat_off_t)."""
    if task.abi == "i386":
        return _sendfile(task, out_fd, in_fd, offset, count, S32, MAX_NON_LFS)
    return _sendfile(task, out_fd, in_fd, offset, count, S64, LLONG_MAX)


@syscall("sendfile64", abis=("i386",), trap_when=NEVER, datapath=True)
def sys_sendfile64(task, out_fd: CInt, in_fd: CInt, offset: UserPtr, count: CULong) -> int:
    """i386's sendfile64(2): compat_sys_sendfile64, a 64-bit offset. Linux:
    fs/read_write.c."""
    return _sendfile(task, out_fd, in_fd, offset, count, S64, LLONG_MAX)
