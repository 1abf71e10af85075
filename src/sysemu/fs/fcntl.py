"""fcntl(F_SETFL) and ioctl(FIONBIO) on sysemu files: keep f_flags in step; and
ioctl(SIOCINQ/SIOCOUTQ) on sysemu sockets, where the placeholder's answer is not Linux's.

Linux: fs/fcntl.c setfl(), fs/ioctl.c ioctl_fionbio(). The host owns the open file
description of a placeholder, so O_NONBLOCK set by the program lands there natively; sysemu
also needs it (accept and connect wait or fail with EAGAIN/EINPROGRESS by it). The filter
traps only these two commands; sysemu records the new flags and lets the host run the call
(HostPassthrough), so the placeholder's own flags change too.

SIOCINQ (FIONREAD) and SIOCOUTQ are trapped too: a listener's placeholder holds a
readiness token and filler bytes, where Linux's tcp_ioctl() answers EINVAL (net/socket.py
sock_ioctl_queue); every other socket's placeholder answers as TCP would.
"""
from __future__ import annotations

from sysemu.abi.fcntl import O_NONBLOCK
from sysemu.kernel.errors import HostPassthrough
from sysemu.kernel.syscalls import CUInt, CULong, UserPtr, syscall
from sysemu.kernel.task import Task
from sysemu.kernel.usermem import get_user_int
from sysemu.net.socket import (SIOCATMARK, SIOCINQ, SIOCOUTQ, SIOCOUTQNSD, Socket,
                               sock_ioctl_queue)

F_SETFL = 4
FIONBIO = 0x5421
O_APPEND = 0o2000
FASYNC = 0o20000
O_DIRECT = 0o40000
O_NOATIME = 0o1000000
SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | FASYNC   # Linux: SETFL_MASK


@syscall("fcntl", trap_when=(((1, "eq", F_SETFL),),))
def sys_fcntl(task: Task, fd: CUInt, cmd: CUInt, arg: CULong) -> int:
    """fcntl(2), F_SETFL only. Linux: fs/fcntl.c do_fcntl() -> setfl()."""
    if cmd == F_SETFL:
        file = task.files.lookup(fd)        # a host fd: HostPassthrough
        file.f_flags = (file.f_flags & ~SETFL_MASK) | (arg & SETFL_MASK)
    raise HostPassthrough()


syscall("fcntl64", abis=("i386",), trap_when=(((1, "eq", F_SETFL),),))(sys_fcntl)


@syscall("ioctl", trap_when=(((1, "eq", FIONBIO),), ((1, "eq", SIOCINQ),),
                             ((1, "eq", SIOCOUTQ),), ((1, "eq", SIOCATMARK),),
                             ((1, "eq", SIOCOUTQNSD),)))
def sys_ioctl(task: Task, fd: CUInt, cmd: CUInt, arg: UserPtr) -> int:
    """ioctl(2): FIONBIO, SIOCINQ, SIOCOUTQ, SIOCATMARK, SIOCOUTQNSD. Linux: fs/ioctl.c
    do_vfs_ioctl() (ioctl_fionbio()), else the file's own: net/socket.c sock_ioctl()."""
    if cmd in (SIOCINQ, SIOCOUTQ, SIOCATMARK, SIOCOUTQNSD):
        sock = task.files.lookup(fd).private_data
        if isinstance(sock, Socket):
            return sock_ioctl_queue(task, sock, cmd, arg)
        raise HostPassthrough()
    if cmd == FIONBIO:
        file = task.files.lookup(fd)
        # sysemu: the host re-reads *arg when it runs the call; a program that changes it
        # in between only makes sysemu's copy of the flag stale (its own fd is right).
        on = get_user_int(task.mem, arg)    # EFAULT as Linux's get_user
        file.f_flags = file.f_flags | O_NONBLOCK if on else file.f_flags & ~O_NONBLOCK
    raise HostPassthrough()
