"""Files and descriptor tables. Linux: include/linux/fs.h struct file, fs/file.c.

In production the host keeps every descriptor table (DESIGN.md): a sysemu file is a
placeholder socket in the program, and host/ maps (pid, fd) to the File here. In the
model, FdTable is the table.
"""
from __future__ import annotations

from typing import Protocol

from sysemu.abi.errno import Errno
from sysemu.abi.fcntl import O_NONBLOCK, O_RDWR
from sysemu.kernel.errors import SyscallError


class File:
    """Linux: struct file. `private_data` is the object behind it (a Socket ...).
    f_flags holds O_NONBLOCK etc.; it belongs to the open file description, so dup()s and
    forked copies share it, as in Linux."""

    __slots__ = ("private_data", "f_flags", "refs", "__weakref__")

    def __init__(self, private_data: object, f_flags: int = O_RDWR):
        self.private_data = private_data
        self.f_flags = f_flags
        self.refs = 0

    @property
    def nonblocking(self) -> bool:
        return bool(self.f_flags & O_NONBLOCK)


class FileTable(Protocol):
    def lookup(self, fd: int) -> File:
        """Linux fdget(): the file at fd; SyscallError(EBADF) if none, HostPassthrough if
        the descriptor is the host's own (not a sysemu file)."""
        ...


class FdTable:
    """The model's descriptor table. Linux: struct fdtable; lowest free fd first."""

    def __init__(self, max_fds: int = 1024):
        self.fds: dict[int, File] = {}
        self.cloexec: set[int] = set()
        self.max_fds = max_fds

    def lookup(self, fd: int) -> File:
        try:
            return self.fds[fd]
        except KeyError:
            raise SyscallError(Errno.EBADF) from None

    def install(self, file: File, cloexec: bool = False) -> int:
        """Linux get_unused_fd_flags() + fd_install(): the lowest free number."""
        for fd in range(self.max_fds):
            if fd not in self.fds:
                break
        else:
            raise SyscallError(Errno.EMFILE)
        self.fds[fd] = file
        file.refs += 1
        if cloexec:
            self.cloexec.add(fd)
        return fd

    def close(self, fd: int) -> File:
        file = self.fds.pop(fd, None)
        if file is None:
            raise SyscallError(Errno.EBADF)
        self.cloexec.discard(fd)
        file.refs -= 1
        return file

    def dup(self, fd: int) -> int:
        return self.install(self.lookup(fd))
