"""The C library, loaded once: the system calls Python's os module does not offer.

Every wrapper raises OSError(errno) on failure, as os does.
"""
from __future__ import annotations

import ctypes
import os

from sysemu.abi.socket import MSG_DONTWAIT, MSG_TRUNC

LIBC = ctypes.CDLL(None, use_errno=True)

# arch/x86/entry/syscalls/syscall_64.tbl
NR_TGKILL = 234
NR_SECCOMP = 317
NR_PIDFD_GETFD = 438
NR_MOUNT_SETATTR = 442

# include/uapi/linux/prctl.h
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
LIBC.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
LIBC.ptrace.restype = ctypes.c_long


class SignalsHeld:
    """`with held:` blocks every blockable signal of the calling thread for the block's
    time and restores the mask after; a signal that came meanwhile is delivered then.
    For a kernel wait that must not end early (Python installs its handlers without
    SA_RESTART, so a signal would end it with EINTR). Preallocated: two
    pthread_sigmask calls and no objects, ~1 us a pair (Python's signal.pthread_sigmask
    builds sets: ~6 us). glibc's sigset_t is 1024 bits; the kernel reads the first 64."""

    __slots__ = ("_all", "_old", "_enter", "_restore")

    def __init__(self) -> None:
        self._all = (ctypes.c_uint64 * 16)(*([(1 << 64) - 1] * 16))
        self._old = (ctypes.c_uint64 * 16)()
        self._enter = (0, self._all, self._old)         # SIG_BLOCK
        self._restore = (2, self._old, None)            # SIG_SETMASK

    def __enter__(self) -> None:
        err = LIBC.pthread_sigmask(*self._enter)
        if err:
            raise OSError(err, f"pthread_sigmask: {os.strerror(err)}")

    def __exit__(self, *exc) -> None:
        LIBC.pthread_sigmask(*self._restore)


def _check(ret: int, what: str = "") -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}" if what else os.strerror(err))
    return ret


def prctl(option: int, arg: int) -> None:
    _check(LIBC.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(LIBC.unshare(flags), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(LIBC.mount(enc(source), enc(target), enc(fstype), flags, None), f"mount {target}")


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int) -> None:
    """mount_setattr(2) with a struct mount_attr setting `attr_set` (Linux 5.12+)."""
    attr = (ctypes.c_uint64 * 4)(attr_set, 0, 0, 0)
    _check(LIBC.syscall(NR_MOUNT_SETATTR, dirfd, path.encode(), flags, attr,
                        ctypes.sizeof(attr)), f"mount_setattr {path}")


def tgkill(tgid: int, tid: int, sig: int) -> None:
    _check(LIBC.syscall(NR_TGKILL, tgid, tid, sig))


def drop_record(fd: int) -> None:
    """Take the next record (datagram) off socket `fd` without copying it, not waiting:
    recv(fd, NULL, 0, MSG_DONTWAIT | MSG_TRUNC) (CPython's recv() of 0 bytes returns at
    once without asking the kernel). Nothing queued is not an error here."""
    LIBC.recv(fd, None, 0, MSG_DONTWAIT | MSG_TRUNC)


def seccomp(operation: int, flags: int, args) -> int:
    return _check(LIBC.syscall(NR_SECCOMP, operation, flags, args))


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """pidfd_getfd(2): a copy of descriptor `fd` of the process behind `pidfd` (same open
    file description; the new fd is close-on-exec)."""
    return _check(LIBC.syscall(NR_PIDFD_GETFD, pidfd, fd, 0))


def getfd_of(pid: int, fd: int) -> int:
    """pidfd_getfd() of process `pid`'s descriptor `fd`."""
    pidfd = os.pidfd_open(pid)
    try:
        return pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)


class Pidfds:
    """getfd_of() with the pidfds kept (at most `limit`, the oldest closed first): a
    borrow of a program's descriptor is then one system call instead of three
    (pidfd_open, pidfd_getfd, close), on the paths that borrow per call (a datagram
    socket's recvfrom, an accept's listen token). A pidfd names its process, not its
    number: once that process is gone pidfd_getfd fails (ESRCH, or EBADF while it is a
    zombie), and the call is made again with a pidfd opened now, which names whatever
    process has the number then, as getfd_of() would."""

    def __init__(self, limit: int = 64):
        self.limit = limit
        self._fds: dict[int, int] = {}

    def getfd(self, pid: int, fd: int) -> int:
        pidfd = self._fds.get(pid)
        if pidfd is not None:
            try:
                return pidfd_getfd(pidfd, fd)
            except OSError:
                self.forget(pid)
        pidfd = os.pidfd_open(pid)
        try:
            got = pidfd_getfd(pidfd, fd)
        except BaseException:
            os.close(pidfd)
            raise
        if len(self._fds) >= self.limit:
            self.forget(next(iter(self._fds)))
        self._fds[pid] = pidfd
        return got

    def forget(self, pid: int) -> None:
        pidfd = self._fds.pop(pid, None)
        if pidfd is not None:
            os.close(pidfd)

    def close(self) -> None:
        for pid in list(self._fds):
            self.forget(pid)


NR_GETPID = 39
X32_SYSCALL_BIT = 0x40000000
_x32_abi: bool | None = None


def host_has_x32_abi() -> bool:
    """Whether the host kernel serves x32 calls (CONFIG_X86_X32_ABI, and on Debian
    syscall.x32=y): an x32 getpid() answers; without x32, do_syscall_64() gives it
    sys_ni_syscall's -ENOSYS. Asked once per process."""
    global _x32_abi
    if _x32_abi is None:
        _x32_abi = LIBC.syscall(ctypes.c_long(X32_SYSCALL_BIT | NR_GETPID)) >= 0
    return _x32_abi


def ptrace(request: int, pid: int, addr: int | None = 0, data=None) -> int:
    """ptrace(2); a PEEK's -1 is a value unless errno is set, as glibc documents."""
    ctypes.set_errno(0)
    rc = LIBC.ptrace(request, pid, addr, data)
    if rc == -1 and ctypes.get_errno():
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request:#x}, {pid}): {os.strerror(err)}")
    return rc
