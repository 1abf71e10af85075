"""Descriptor lookup in a live process: the host keeps the table (DESIGN.md).

A sysemu file is a placeholder socket in the program; its inode names the Placeholder in
host/placeholder.py's table (inode -> Placeholder). Everything else is the host's own
descriptor, and the host answers for it (HostPassthrough), EBADF included.

sysemu: nothing about a descriptor is cached between calls. The program closes, dup2s
and execs without a trap, so a cached (fd -> file) answer could be stale the moment it is
given; each lookup reads the thread's table as it is now (one readlinkat). What is kept
is the directory /proc/TID/fd, opened once per thread, so a lookup walks one name
instead of four (measured: README, Performance).
"""
from __future__ import annotations

import fcntl
import os
import select
import stat
import termios

from sysemu.abi.errno import Errno
from sysemu.host.libc import getfd_of
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.file import File

SOCKET_PREFIX = "socket:["


class HostFileTable:
    """kernel.file.FileTable for thread `tid`: one readlinkat of /proc/TID/fd/FD per
    lookup, relative to the thread's fd directory."""

    __slots__ = ("tid", "pid", "registry", "_prefix", "_dirfd")

    def __init__(self, tid: int, registry: dict, pid: int | None = None):
        self.tid = tid
        self.pid = pid if pid is not None else tid
        self.registry = registry
        self._prefix = f"/proc/{tid}/fd/"
        self._dirfd = -1

    def _open_dir(self) -> int:
        """/proc/TID/fd as a directory fd (-1 when it cannot be opened: EMFILE ...; the
        lookup then uses the whole path)."""
        try:
            self._dirfd = os.open(self._prefix, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self._dirfd = -1
        return self._dirfd

    def _readlink(self, fd: int) -> str:
        dirfd = self._dirfd
        if dirfd < 0:
            dirfd = self._open_dir()
            if dirfd < 0:
                return os.readlink(self._prefix + str(fd))
        try:
            return os.readlink(str(fd), dir_fd=dirfd)
        except FileNotFoundError:
            # No such fd, or the directory is of a thread that is gone and whose tid a new
            # thread now has (a proc directory stays bound to its task): look once more
            # through the path, which names the thread of this tid now.
            self.close()
            return os.readlink(self._prefix + str(fd))

    def lookup(self, fd: int) -> File:
        """Linux fdget() as the host sees it."""
        if fd < 0:
            raise HostPassthrough()     # the host answers EBADF
        try:
            if self._dirfd >= 0:
                try:
                    target = os.readlink(str(fd), dir_fd=self._dirfd)
                except FileNotFoundError:
                    target = self._readlink(fd)
            else:
                target = self._readlink(fd)
        except OSError:
            raise HostPassthrough() from None   # no such fd: the host's EBADF
        if target[:8] == SOCKET_PREFIX:
            ph = self.registry.get(int(target[8:-1]))
            if ph is not None:
                if ph.holder != (self.pid, fd):
                    ph.holder = (self.pid, fd)     # who to reach the placeholder through
                return ph.file
        raise HostPassthrough()

    def close(self) -> None:
        """Let go of the thread's fd directory (the supervisor forgets the thread)."""
        if self._dirfd >= 0:
            try:
                os.close(self._dirfd)
            except OSError:
                pass
            self._dirfd = -1

    def __del__(self) -> None:
        self.close()


class HostFileReader:
    """A program's host descriptor, read on its behalf (sendfile into a sysemu socket in
    the model data path): a copy of it (pidfd_getfd), so reads share the program's open
    file description and a read without an offset moves its position, as Linux's
    do_sendfile() does. readable: opened for reading (FMODE_READ); seekable: pread works
    (FMODE_PREAD: not a pipe or a socket); regular: a regular file or a block device
    (what splice_direct_to_actor() reads)."""

    def __init__(self, pid: int, fd: int):
        try:
            self.fd = getfd_of(pid, fd)
        except OSError:
            raise SyscallError(Errno.EBADF) from None
        try:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            self.readable = (flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR) \
                and not flags & O_PATH
            mode = os.fstat(self.fd).st_mode
            self.regular = stat.S_ISREG(mode) or stat.S_ISBLK(mode)
            try:
                os.lseek(self.fd, 0, os.SEEK_CUR)
                self.seekable = True
            except OSError:
                self.seekable = False
        except OSError:
            self.close()
            raise SyscallError(Errno.EBADF) from None

    def read(self, n: int, pos: int | None) -> bytes:
        try:
            return os.pread(self.fd, n, pos) if pos is not None else os.read(self.fd, n)
        except BlockingIOError:
            raise SyscallError(Errno.EAGAIN) from None
        except OSError as exc:
            raise SyscallError(exc.errno or Errno.EIO) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


O_PATH = 0o10000000


F_GETPIPE_SZ = 1032


class HostPipe:
    """A program's descriptor that splice() finds opposite a sysemu socket (the model
    data path), reached through a copy of it (pidfd_getfd): reads and writes are on the
    program's own pipe and open file description. pipe: a pipe or FIFO (Linux:
    get_pipe_info()); readable, writable: FMODE_READ, FMODE_WRITE; nonblocking: its
    O_NONBLOCK. read() and write() never wait (RWF_NOWAIT, which pipes honour);
    wait(events) is a wait queue woken once the pipe shows `events` (or an error or
    hang-up), through `watch` (NetGlue: the supervisor's reactor)."""

    def __init__(self, pid: int, fd: int, watch):
        try:
            self.fd = getfd_of(pid, fd)
        except OSError:
            raise SyscallError(Errno.EBADF) from None
        self._watch = watch
        try:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            mode = os.fstat(self.fd).st_mode
        except OSError:
            self.close()
            raise SyscallError(Errno.EBADF) from None
        access = flags & os.O_ACCMODE
        self.pipe = stat.S_ISFIFO(mode)
        self.readable = access in (os.O_RDONLY, os.O_RDWR) and not flags & O_PATH
        self.writable = access in (os.O_WRONLY, os.O_RDWR) and not flags & O_PATH
        self.nonblocking = bool(flags & os.O_NONBLOCK)

    def queued(self) -> int:
        """Bytes in the pipe (FIONREAD)."""
        buf = bytearray(4)
        fcntl.ioctl(self.fd, termios.FIONREAD, buf)
        return int.from_bytes(buf, "little", signed=True)

    def space(self) -> int:
        """Bytes the pipe has room for: its size (F_GETPIPE_SZ) less what it holds.
        sysemu: Linux counts free slots (pages); a pipe holding partly filled buffers
        takes fewer bytes than this says, and a write then stops short."""
        return max(fcntl.fcntl(self.fd, F_GETPIPE_SZ) - self.queued(), 0)

    def poll(self) -> int:
        """The pipe's poll mask now (pipe_poll(): POLLIN, POLLOUT, POLLHUP with no
        writers, POLLERR with no readers)."""
        p = select.poll()
        p.register(self.fd, select.POLLIN | select.POLLOUT)
        for _, events in p.poll(0):
            return events
        return 0

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        try:
            got = os.preadv(self.fd, [buf], -1, os.RWF_NOWAIT)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise SyscallError(exc.errno or Errno.EIO) from None
        return bytes(buf[:got])

    def write(self, data: bytes) -> int:
        """Bytes written (0 when the pipe is full); EPIPE with no reader (the caller sends
        SIGPIPE, as pipe_write() does)."""
        try:
            return os.pwritev(self.fd, [data], -1, os.RWF_NOWAIT)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise SyscallError(exc.errno or Errno.EIO) from None

    def wait(self, events: int):
        return self._watch(self.fd, events)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
