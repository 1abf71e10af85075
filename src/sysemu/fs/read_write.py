"""read(2), write(2), readv(2), writev(2) on sysemu sockets (the model data path).

Linux: fs/read_write.c (ksys_read, ksys_write, do_readv, do_writev, vfs_read,
vfs_write, vfs_readv, vfs_writev), reaching net/socket.c's sock_read_iter() /
sock_write_iter() through the socket file's f_op.

Under `sysemu run --datapath model` the filter traps these four on every descriptor: a
host descriptor (or a /proc file, whose placeholder holds its bytes) goes back to the
host from the lookup, before any pointer is read (HostPassthrough). In the native data
path they are not trapped (the placeholder is read and written natively), or only
traced, and then run on the host too. pread64/pwrite64/preadv/pwritev stay the host's:
on a socket they fail with ESPIPE there as in sock_read_iter().
"""
from __future__ import annotations

from sysemu.kernel.errors import HostPassthrough
from sysemu.kernel.syscalls import NEVER, CULong, CUInt, UserPtr, syscall
from sysemu.kernel.task import DATAPATH_MODEL
from sysemu.net.socket import (Socket, import_iovec, import_ubuf, sock_read_iter,
                               sock_write_iter)


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


@syscall("readv", abis=("64",), trap_when=NEVER, datapath=True)
def sys_readv(task, fd: CULong, vec: UserPtr, vlen: CULong) -> int:
    """readv(2). Linux: fs/read_write.c do_readv() -> vfs_readv(): import_iovec()
    (EINVAL, EFAULT), nothing to read returns 0, then sock_read_iter()."""
    sock = sock_file(task, fd & 0xFFFFFFFF)
    it = import_iovec(task.mem, vec, vlen)
    return sock_read_iter(task, sock, it) if it.count else 0


@syscall("writev", abis=("64",), trap_when=NEVER, datapath=True)
def sys_writev(task, fd: CULong, vec: UserPtr, vlen: CULong) -> int:
    """writev(2). Linux: fs/read_write.c do_writev() -> vfs_writev(): import_iovec(),
    nothing to write returns 0 (do_iter_write()), then sock_write_iter()."""
    sock = sock_file(task, fd & 0xFFFFFFFF)
    it = import_iovec(task.mem, vec, vlen)
    return sock_write_iter(task, sock, it) if it.count else 0
