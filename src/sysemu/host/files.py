"""Descriptor lookup in a live process: the host keeps the table (DESIGN.md).

A sysemu file is a placeholder socket in the program; its inode names the Placeholder in
host/placeholder.py's table (inode -> Placeholder). Everything else is the host's own
descriptor, and the host answers for it (HostPassthrough), EBADF included.
"""
from __future__ import annotations

import os

from sysemu.kernel.errors import HostPassthrough
from sysemu.kernel.file import File


class HostFileTable:
    """kernel.file.FileTable for thread `tid`: one readlink of /proc/TID/fd/FD per lookup."""

    __slots__ = ("tid", "pid", "registry", "_prefix")

    def __init__(self, tid: int, registry: dict, pid: int | None = None):
        self.tid = tid
        self.pid = pid if pid is not None else tid
        self.registry = registry
        self._prefix = f"/proc/{tid}/fd/"

    def lookup(self, fd: int) -> File:
        """Linux fdget() as the host sees it."""
        if fd < 0:
            raise HostPassthrough()     # the host answers EBADF
        try:
            target = os.readlink(self._prefix + str(fd))
        except OSError:
            raise HostPassthrough() from None   # no such fd: the host's EBADF
        if target.startswith("socket:["):
            ph = self.registry.get(int(target[8:-1]))
            if ph is not None:
                ph.holder = (self.pid, fd)     # who to reach the placeholder through
                return ph.file
        raise HostPassthrough()
