"""The sandbox's view of the network's /proc files, and the open calls that reach them.

Linux: fs/proc/proc_sysctl.c (the /proc/sys files), fs/proc/proc_net.c (/proc/net and
/proc/<pid>/net), fs/open.c (do_sys_openat2, build_open_flags), fs/namei.c (getname,
the last-component checks of do_open / open_last_lookups).

What sysemu serves: every sysctl of sysemu.kernel.sysctl under /proc/sys, and
/proc/net/{tcp,tcp6,netstat,snmp}, the latter also as /proc/self/net/...,
/proc/thread-self/net/..., /proc/<pid>/net/... and /proc/<pid>/task/<tid>/net/...
(sysemu has one network namespace, so every process's view is the sandbox's). Paths are
taken lexically: "//" and "/./" collapse, the /proc aliases above are the only symlinks
understood, and a path with ".." is not ours (the host opens it). Everything else, and
every relative path, is the host's: HostPassthrough.
"""
from __future__ import annotations

import re
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.abi.fcntl import (FASYNC, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECT,
                              O_DIRECTORY, O_DSYNC, O_EXCL, O_LARGEFILE, O_NOATIME, O_NOCTTY,
                              O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_TMPFILE,
                              O_TMPFILE_MASK, O_TRUNC, O_WRONLY, __O_SYNC, __O_TMPFILE)
from sysemu.kernel import sysctl as sysctls
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.file import File
from sysemu.kernel.syscalls import CInt, CUInt, CULong, InstallFd, UserPtr, syscall
from sysemu.kernel.task import CAP_NET_ADMIN, Task
from sysemu.kernel.usermem import U64
from sysemu.net.ipv4.udp import udp_sync_all
from sysemu.net.proc import (ICMP4_HEADER, PING_HTABLE_SLOTS, ping_proc_rows,
                             render_netstat, render_snmp, render_snmp6, render_tcp, render_udp,
                             tcp_proc_rows, udp_proc_rows)

CAP_DAC_OVERRIDE = 1

PATH_MAX = 4096
PAGE_SIZE = 4096
GETNAME_FIRST = 256
AT_FDCWD = -100


# Linux: include/linux/fcntl.h
VALID_OPEN_FLAGS = (O_RDONLY | O_WRONLY | O_RDWR | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC
                    | O_APPEND | O_NONBLOCK | __O_SYNC | O_DSYNC | FASYNC | O_DIRECT
                    | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC
                    | O_PATH | __O_TMPFILE)
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC
S_IALLUGO = 0o7777
# Linux: include/uapi/linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20
VALID_RESOLVE_FLAGS = 0x3F
OPEN_HOW_SIZE_VER0 = 24


# ---- the entries ----

class ProcEntry:
    """One /proc file sysemu serves. `mode` is its permission bits."""

    path: str = ""
    mode: int = 0o444

    def render(self, kernel) -> bytes:
        raise NotImplementedError

    def may_open_write(self, task: Task) -> bool:
        """Linux: the inode's permission() for MAY_WRITE."""
        return False

    def open(self, fmode_write: bool) -> None:
        """The file's own open (proc_ops->proc_open): may refuse."""

    def write(self, kernel, data: bytes) -> int:
        """Apply a write at offset 0; returns the byte count Linux reports."""
        raise SyscallError(Errno.EACCES)


class SysctlEntry(ProcEntry):
    """/proc/sys/<name>. Linux: fs/proc/proc_sysctl.c proc_sys_call_handler()."""

    def __init__(self, d: sysctls.SysctlDef):
        self.sysctl = d
        self.path = d.path
        self.mode = d.mode

    def render(self, kernel) -> bytes:
        return sysctls.sysctl_format(kernel, self.sysctl.name).encode()

    def may_open_write(self, task: Task) -> bool:
        """Linux: net/sysctl_net.c net_ctl_permissions(): CAP_NET_ADMIN (or uid 0) gets the
        owner bits, others the other bits (0644: read only)."""
        # sysemu: Task carries capabilities but no euid, so root is recognised by its
        # CAP_NET_ADMIN, which every root process has unless it dropped it.
        bits = (self.mode >> 6) & 7 if task.capable(CAP_NET_ADMIN) else self.mode & 7
        return bool(bits & 2)

    def write(self, kernel, data: bytes) -> int:
        return sysctls.sysctl_set(kernel, self.sysctl.name, data)


class NetEntry(ProcEntry):
    """/proc/net/<name>: read-only files (0444), so only CAP_DAC_OVERRIDE passes the
    permission check for writing. Then Linux differs by kind (fs/proc/proc_net.c):
    seq files (tcp, tcp6: seq_open_net()) refuse an open with FMODE_WRITE with EACCES;
    single files (snmp, netstat: single_open_net()) open, and the write fails with EACCES
    (proc_simple_write() without a write handler)."""

    def __init__(self, name: str, renderer: Callable[[object], str], seq: bool):
        self.path = "/proc/net/" + name
        self.mode = 0o444
        self._renderer = renderer
        self.seq = seq

    def render(self, kernel) -> bytes:
        return self._renderer(kernel).encode()

    def may_open_write(self, task: Task) -> bool:
        return task.capable(CAP_DAC_OVERRIDE)       # Linux: generic_permission()

    def open(self, fmode_write: bool) -> None:
        if self.seq and fmode_write:
            raise SyscallError(Errno.EACCES)        # Linux: seq_open_net()


def _net(kernel):
    return getattr(kernel, "net", None)


def _rows(kernel, v6: bool) -> list:
    net = _net(kernel)
    return tcp_proc_rows(net, v6) if net is not None else []


def _udp_rows(kernel, v6: bool) -> list:
    net = _net(kernel)
    if net is None:
        return []
    udp_sync_all(net)
    return udp_proc_rows(net, v6)


def _ping_rows(kernel, v6: bool) -> list:
    net = _net(kernel)
    return ping_proc_rows(net, v6) if net is not None else []


def _mib(kernel):
    net = _net(kernel)
    if net is not None and net.udp_table is not None:
        udp_sync_all(net)
    return getattr(_net(kernel), "mib", None)


_PID = re.compile(r"[1-9][0-9]*\Z")


class ProcNet:
    """The registry of the /proc files sysemu serves. Pure: path in, entry out."""

    def __init__(self):
        self.entries: dict[str, ProcEntry] = {}
        for d in sysctls.SYSCTLS.values():
            self.entries[d.path] = SysctlEntry(d)
        for entry in (
            NetEntry("tcp", lambda k: render_tcp(_rows(k, False), v6=False), seq=True),
            NetEntry("tcp6", lambda k: render_tcp(_rows(k, True), v6=True), seq=True),
            NetEntry("udp", lambda k: render_udp(_udp_rows(k, False), v6=False), seq=True),
            NetEntry("udp6", lambda k: render_udp(_udp_rows(k, True), v6=True), seq=True),
            NetEntry("icmp", lambda k: render_udp(_ping_rows(k, False), header=ICMP4_HEADER,
                                                  slots=PING_HTABLE_SLOTS), seq=True),
            NetEntry("icmp6", lambda k: render_udp(_ping_rows(k, True), v6=True,
                                                   slots=PING_HTABLE_SLOTS), seq=True),
            NetEntry("netstat", lambda k: render_netstat(_mib(k)), seq=False),
            NetEntry("snmp", lambda k: render_snmp(_mib(k)), seq=False),
            NetEntry("snmp6", lambda k: render_snmp6(_mib(k)), seq=False),
        ):
            self.entries[entry.path] = entry

    @staticmethod
    def canonical(path: str) -> str | None:
        """The path with "//" and "/./" collapsed and the /proc/.../net aliases mapped to
        /proc/net; None for a relative path or one with "..". A trailing "/" is kept."""
        if not path.startswith("/"):
            return None
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            return None
        if len(parts) >= 3 and parts[0] == "proc":
            who = parts[1]
            if who == "thread-self" and parts[2] == "net":
                parts = ["proc"] + parts[2:]
            elif who == "self" or _PID.match(who):
                if parts[2] == "net":
                    parts = ["proc"] + parts[2:]
                elif (len(parts) >= 5 and parts[2] == "task" and _PID.match(parts[3])
                      and parts[4] == "net"):
                    parts = ["proc"] + parts[4:]
        text = "/" + "/".join(parts)
        if parts and (path.endswith("/") or path.endswith("/.")):
            text += "/"
        return text

    def lookup(self, path: str) -> ProcEntry | None:
        """The entry `path` names (a trailing slash is ignored here; the open checks it),
        or None when the file is not sysemu's."""
        canon = self.canonical(path)
        if canon is None:
            return None
        return self.entries.get(canon.rstrip("/") or "/")


PROC = ProcNet()


class ProcFile:
    """The object behind an open /proc file (File.private_data).

    The host gives the program a placeholder it can read `content` from and write to:
    `content` is the text rendered at open, as seq_file's first read renders it (a second
    open sees new values). When the program writes, the host calls
    file.private_data.write(bytes) with what it wrote and reports the result: the byte
    count, or the SyscallError (EINVAL for a value the sysctl refuses, EACCES for a
    read-only file, EBADF if the file was not opened for writing).
    """

    def __init__(self, entry: ProcEntry, kernel, flags: int):
        self.entry = entry
        self.kernel = kernel
        self.flags = flags
        self.content = entry.render(kernel)
        self.pos = 0

    def write(self, data: bytes) -> int:
        """Linux: proc_sys_call_handler() (write). With sysctl_writes_strict (the default)
        a write that does not start at offset 0 is accepted and ignored."""
        if not _fmode_write(self.flags):
            raise SyscallError(Errno.EBADF)
        if not data:
            return 0
        if self.pos != 0:
            self.pos += len(data)
            return len(data)
        count = self.entry.write(self.kernel, bytes(data))
        self.pos += count
        return count


# ---- the open calls ----

def getname(mem, addr: int) -> str:
    """Linux: fs/namei.c getname() -> strncpy_from_user(kname, filename, PATH_MAX):
    EFAULT at an unmapped byte before the NUL, ENAMETOOLONG with no NUL in PATH_MAX
    bytes, ENOENT for "". Reads page by page, as the real copy does."""
    out = bytearray()
    pos = addr
    end = addr + PATH_MAX
    # sysemu: the first copy stops at GETNAME_FIRST bytes (within the page, so its fault
    # is the page's): most paths are short, and the open of a host file pays one small
    # copy before CONTINUE instead of the rest of a page.
    stop = min((pos | (PAGE_SIZE - 1)) + 1, end, pos + GETNAME_FIRST)
    while pos < end:
        try:
            chunk = mem.read(pos, stop - pos)
        except SyscallError:
            chunk = b""
            for a in range(pos, stop):      # find the exact faulting byte
                byte = mem.read(a, 1)       # EFAULT here
                chunk += byte
                if byte == b"\0":
                    break
        nul = chunk.find(b"\0")
        if nul >= 0:
            out += chunk[:nul]
            if not out:
                raise SyscallError(Errno.ENOENT)
            return out.decode("utf-8", "surrogateescape")
        out += chunk
        pos = stop
        stop = min((pos | (PAGE_SIZE - 1)) + 1, end)
    raise SyscallError(Errno.ENAMETOOLONG)


def _fmode_write(flags: int) -> bool:
    """Linux: OPEN_FMODE(): FMODE_WRITE for O_WRONLY and O_RDWR (not for O_ACCMODE 3)."""
    return (flags & O_ACCMODE) in (O_WRONLY, O_RDWR)


def _acc_write(flags: int) -> bool:
    """Linux: build_open_flags() acc_mode: ACC_MODE(flags) plus MAY_WRITE for O_TRUNC."""
    return (flags & O_ACCMODE) != O_RDONLY or bool(flags & O_TRUNC)


def _check_flags(flags: int) -> None:
    """The checks build_open_flags() makes of every open; O_PATH and O_TMPFILE opens are
    never of a file sysemu serves, so they go to the host before the path is read."""
    if (flags & (O_DIRECTORY | O_CREAT)) == (O_DIRECTORY | O_CREAT):
        raise SyscallError(Errno.EINVAL)
    if flags & __O_TMPFILE:
        if (flags & O_TMPFILE_MASK) != O_TMPFILE:
            raise SyscallError(Errno.EINVAL)
        if (flags & O_ACCMODE) == O_RDONLY:
            raise SyscallError(Errno.EINVAL)
        raise HostPassthrough()
    if flags & O_PATH:
        raise HostPassthrough()


def do_sys_openat2(task: Task, dfd: int, filename: int, flags: int) -> InstallFd:
    """Linux: fs/open.c do_sys_openat2() for the files sysemu serves; every other open
    raises HostPassthrough. `flags` has passed build_open_flags()' checks."""
    _check_flags(flags)
    path = getname(task.mem, filename)
    # sysemu: the path is a pointer: after a HostPassthrough the host re-reads it, so the
    # program could race another thread to swap the string and open a different path
    # natively. That only reaches host files the program could open anyway (and no
    # network access: sysemu's sockets are not files the host can open), which is
    # acceptable; the files sysemu serves are only ever served from the copy read here.
    if not path.startswith("/"):
        raise HostPassthrough()        # relative (to cwd or dfd): never ours
    if "proc" not in path:
        raise HostPassthrough()        # the common case, cheaply
    entry = PROC.lookup(path)
    if entry is None:
        raise HostPassthrough()
    must_be_dir = PROC.canonical(path).endswith("/")
    # Linux: open_last_lookups() / do_open(), in that order.
    if must_be_dir and flags & O_CREAT:
        raise SyscallError(Errno.EISDIR)
    if flags & O_CREAT and flags & O_EXCL:
        raise SyscallError(Errno.EEXIST)
    if must_be_dir or flags & O_DIRECTORY:
        raise SyscallError(Errno.ENOTDIR)
    if _acc_write(flags) and not entry.may_open_write(task):
        raise SyscallError(Errno.EACCES)       # Linux: may_open() -> inode_permission()
    entry.open(_fmode_write(flags))
    f_flags = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)
    if task.abi != "i386":
        f_flags |= O_LARGEFILE                 # Linux: force_o_largefile()
    file = File(ProcFile(entry, task.kernel, f_flags), f_flags)
    task.kernel.host.new_file(file)
    return InstallFd(file, cloexec=bool(flags & O_CLOEXEC))


def build_open_how(flags: int) -> int:
    """Linux: fs/open.c build_open_how(): open and openat drop unknown flags silently."""
    flags &= VALID_OPEN_FLAGS
    if flags & O_PATH:
        flags &= O_PATH_FLAGS
    return flags


@syscall("open")
def sys_open(task: Task, filename: UserPtr, flags: CInt, mode: CUInt) -> InstallFd:
    """open(2). Linux: fs/open.c SYSCALL_DEFINE3(open) -> do_sys_open(AT_FDCWD, ...)."""
    return do_sys_openat2(task, AT_FDCWD, filename, build_open_how(flags))


@syscall("openat")
def sys_openat(task: Task, dfd: CInt, filename: UserPtr, flags: CInt,
               mode: CUInt) -> InstallFd:
    """openat(2). Linux: fs/open.c SYSCALL_DEFINE4(openat) -> do_sys_open()."""
    return do_sys_openat2(task, dfd, filename, build_open_how(flags))


@syscall("openat2")
def sys_openat2(task: Task, dfd: CInt, filename: UserPtr, how: UserPtr,
                usize: CULong) -> InstallFd:
    """openat2(2). Linux: fs/open.c SYSCALL_DEFINE4(openat2): copy_struct_from_user() of
    struct open_how, then build_open_flags()' strict checks."""
    if usize < OPEN_HOW_SIZE_VER0:
        raise SyscallError(Errno.EINVAL)
    if usize > PAGE_SIZE:
        raise SyscallError(Errno.E2BIG)
    raw = task.mem.read(how, usize)                          # EFAULT
    if any(raw[OPEN_HOW_SIZE_VER0:]):                        # copy_struct_from_user()
        raise SyscallError(Errno.E2BIG)
    flags = U64.unpack_from(raw, 0)[0]
    mode = U64.unpack_from(raw, 8)[0]
    resolve = U64.unpack_from(raw, 16)[0]
    if (flags & ~O_CLOEXEC) & ~VALID_OPEN_FLAGS:
        raise SyscallError(Errno.EINVAL)
    if resolve & ~VALID_RESOLVE_FLAGS:
        raise SyscallError(Errno.EINVAL)
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise SyscallError(Errno.EINVAL)
    if flags & (O_CREAT | __O_TMPFILE):                      # WILL_CREATE()
        if mode & ~S_IALLUGO:
            raise SyscallError(Errno.EINVAL)
    elif mode != 0:
        raise SyscallError(Errno.EINVAL)
    if flags & O_PATH and flags & ~O_PATH_FLAGS:
        raise SyscallError(Errno.EINVAL)
    _check_flags(flags)
    if resolve:
        # sysemu: RESOLVE_* restrict how the host resolves a path (symlinks, mounts,
        # scoping); the host applies them itself to whatever it opens.
        raise HostPassthrough()
    return do_sys_openat2(task, dfd, filename, flags)
