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

import os

from sysemu.kernel.errors import HostPassthrough
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
        if target.startswith(SOCKET_PREFIX):
            ph = self.registry.get(int(target[8:-1]))
            if ph is not None:
                holder = ph.holder
                if holder is None or holder[1] != fd or holder[0] != self.pid:
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
