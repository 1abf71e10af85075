"""The C library, loaded once: the system calls Python's os module does not offer.

Every wrapper raises OSError(errno) on failure, as os does.
"""
from __future__ import annotations

import ctypes
import os

LIBC = ctypes.CDLL(None, use_errno=True)

# arch/x86/entry/syscalls/syscall_64.tbl
NR_TGKILL = 234
NR_SECCOMP = 317
NR_PIDFD_GETFD = 438

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def prctl(option: int, arg: int) -> None:
    _check(LIBC.prctl(option, arg, 0, 0, 0))


def tgkill(tgid: int, tid: int, sig: int) -> None:
    _check(LIBC.syscall(NR_TGKILL, tgid, tid, sig))


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
