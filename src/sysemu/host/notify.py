"""The seccomp user-notification listener: receive a trapped call, answer it.

Linux: kernel/seccomp.c seccomp_notify_recv(), seccomp_notify_send(),
seccomp_notify_id_valid(), seccomp_notify_addfd(); include/uapi/linux/seccomp.h.
Buffers are preallocated and reused; every ioctl goes through fcntl.ioctl on a mutable
bytearray. A response the kernel refuses because the call is gone (a signal interrupted
it, the thread died) is reported as False, never raised: the caller then commits nothing.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import struct

from sysemu.abi.fcntl import O_CLOEXEC
from sysemu.host.libc import SignalsHeld, seccomp

SECCOMP_GET_NOTIF_SIZES = 3
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_ADDFD_FLAG_SETFD = 1
SECCOMP_ADDFD_FLAG_SEND = 2
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("!") << 8) | nr


_IOC_WRITE, _IOC_READ = 1, 2

# struct seccomp_notif { u64 id; u32 pid; u32 flags; struct seccomp_data data; }
# struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
NOTIF = struct.Struct("<QIIiIQ6Q")
# struct seccomp_notif_resp { u64 id; s64 val; s32 error; u32 flags; }
RESP = struct.Struct("<QqiI")
# struct seccomp_notif_addfd { u64 id; u32 flags; u32 srcfd; u32 newfd; u32 newfd_flags; }
ADDFD = struct.Struct("<QIIII")
U64 = struct.Struct("<Q")

SECCOMP_IOCTL_NOTIF_RECV = _ioc(_IOC_READ | _IOC_WRITE, 0, NOTIF.size)
SECCOMP_IOCTL_NOTIF_SEND = _ioc(_IOC_READ | _IOC_WRITE, 1, RESP.size)
SECCOMP_IOCTL_NOTIF_ID_VALID = _ioc(_IOC_WRITE, 2, U64.size)
SECCOMP_IOCTL_NOTIF_ADDFD = _ioc(_IOC_WRITE, 3, ADDFD.size)
# Linux 6.6+; absent from Debian 12's headers. Its argument is the flags themselves.
SECCOMP_IOCTL_NOTIF_SET_FLAGS = _ioc(_IOC_WRITE, 4, U64.size)


def notif_sizes() -> tuple[int, int, int]:
    """seccomp(SECCOMP_GET_NOTIF_SIZES): (seccomp_notif, seccomp_notif_resp, seccomp_data)."""
    buf = ctypes.create_string_buffer(6)
    seccomp(SECCOMP_GET_NOTIF_SIZES, 0, buf)
    return struct.unpack("<HHH", buf.raw)


class Notification:
    """One trapped call: struct seccomp_notif, decoded."""

    __slots__ = ("id", "pid", "nr", "arch", "ip", "args")

    def __init__(self, id: int, pid: int, nr: int, arch: int, ip: int, args: tuple[int, ...]):
        self.id, self.pid, self.nr, self.arch, self.ip, self.args = id, pid, nr, arch, ip, args

    def __repr__(self) -> str:
        return f"Notification(id={self.id:#x}, pid={self.pid}, nr={self.nr}, arch={self.arch:#x})"


class ReplaceFd:
    """A request for the call being answered: install a copy of our `srcfd` at the
    caller's `newfd` (replace_fd), then done(ok)."""

    __slots__ = ("srcfd", "newfd", "cloexec", "done")

    def __init__(self, srcfd: int, newfd: int, cloexec: bool, done):
        self.srcfd, self.newfd, self.cloexec, self.done = srcfd, newfd, cloexec, done

    def __repr__(self) -> str:
        return f"ReplaceFd({self.srcfd} -> {self.newfd})"


class Listener:
    """The notify fd. recv() returns a Notification or None (nothing to read, or the call
    vanished before it was read); every answer returns True if the kernel accepted it and
    False if the call was already gone (ENOENT)."""

    def __init__(self, fd: int):
        self.fd = fd
        notif, resp, data = notif_sizes()
        # sysemu: the kernel may grow these structs; we read the prefix we know and give
        # the kernel buffers of the size it reports.
        if notif < NOTIF.size or resp < RESP.size:
            raise OSError(errno.EINVAL, f"seccomp notif sizes {notif}/{resp} too small")
        self._notif = bytearray(notif)
        self._zero = bytes(notif)
        self._resp = bytearray(resp)
        self._addfd = bytearray(ADDFD.size)
        self._signals_held = SignalsHeld()
        self._id = bytearray(U64.size)
        self.sync_wakeup = False

    def set_sync_wakeup(self) -> str | None:
        """Ask for SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: the kernel wakes the supervisor and,
        on the answer, the caller on the current CPU, so the pair ping-pongs on one CPU
        instead of paying an inter-processor wake-up each way. None when set, else why
        not (an older kernel answers EINVAL or ENOTTY); the listener works either way.
        Linux: kernel/seccomp.c seccomp_notify_set_flags()."""
        try:
            fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                        SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
        except OSError as exc:
            return exc.strerror or f"errno {exc.errno}"
        self.sync_wakeup = True
        return None

    def recv(self) -> Notification | None:
        buf = self._notif
        buf[:] = self._zero
        try:
            fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        except OSError as exc:
            # ENOENT: the caller died or was interrupted between poll and recv; EAGAIN/EINTR.
            if exc.errno in (errno.ENOENT, errno.EAGAIN, errno.EINTR):
                return None
            raise
        n = NOTIF.unpack_from(buf)
        return Notification(n[0], n[1], n[3], n[4], n[5], n[6:])

    def _ioctl(self, request: int, buf: bytearray) -> int | None:
        """One notification ioctl; None when the call is gone (ENOENT: a signal cancelled
        it, or its task died), which callers report instead of raising. EINTR (a signal
        to the supervisor: SEND and ID_VALID take the notify lock interruptibly, a plain
        ADDFD waits interruptibly and is withdrawn unless it was already installed, in
        which case its result is returned instead) means nothing was done: made again."""
        while True:
            try:
                return fcntl.ioctl(self.fd, request, buf, True)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return None
                raise

    def send(self, id: int, val: int, error: int, flags: int) -> bool:
        """SECCOMP_IOCTL_NOTIF_SEND of one response: True if the kernel took it, False if
        the call was gone (ENOENT). Every answer of a trapped call ends here, so it is
        one frame: no helper between it and the ioctl."""
        resp = self._resp
        RESP.pack_into(resp, 0, id, val, error, flags)
        while True:
            try:
                fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SEND, resp, True)
                return True
            except InterruptedError:    # the notify lock, taken interruptibly: nothing done
                continue
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return False
                raise

    def send_value(self, id: int, val: int) -> bool:
        """The call returns val (rax)."""
        return self.send(id, val, 0, 0)

    def send_error(self, id: int, err: int) -> bool:
        """The call fails with -err."""
        return self.send(id, 0, -abs(err), 0)

    def send_continue(self, id: int) -> bool:
        """The host kernel runs the call itself (SECCOMP_USER_NOTIF_FLAG_CONTINUE)."""
        return self.send(id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def send_fd(self, id: int, srcfd: int, cloexec: bool = False) -> int | None:
        """Install a copy of our srcfd in the caller and answer its number in one step
        (SECCOMP_ADDFD_FLAG_SEND). Returns the new fd, or None if the call was gone.
        Linux: seccomp_notify_addfd(); the fd lands at the lowest free number."""
        ADDFD.pack_into(self._addfd, 0, id, SECCOMP_ADDFD_FLAG_SEND, srcfd, 0,
                        O_CLOEXEC if cloexec else 0)
        # With FLAG_SEND the kernel marks the call answered before it waits for the
        # caller to take the descriptor: a signal ending that wait withdraws the
        # descriptor and the call returns 0 with nothing installed (and EINTR here). So
        # the supervisor's signals wait until the install is done.
        with self._signals_held:
            return self._ioctl(SECCOMP_IOCTL_NOTIF_ADDFD, self._addfd)

    def add_fd(self, id: int, srcfd: int, cloexec: bool = False) -> int | None:
        """Install a copy of our srcfd in the caller at its lowest free number, the call
        itself answered separately: the new fd, or None if the call was gone."""
        ADDFD.pack_into(self._addfd, 0, id, 0, srcfd, 0, O_CLOEXEC if cloexec else 0)
        return self._ioctl(SECCOMP_IOCTL_NOTIF_ADDFD, self._addfd)

    def replace_fd(self, id: int, srcfd: int, newfd: int, cloexec: bool = False) -> bool:
        """Install a copy of our srcfd in the caller AT newfd, replacing what is there, as
        dup2 does (SECCOMP_ADDFD_FLAG_SETFD); the call itself is answered separately.
        False if the call was gone."""
        ADDFD.pack_into(self._addfd, 0, id, SECCOMP_ADDFD_FLAG_SETFD, srcfd, newfd,
                        O_CLOEXEC if cloexec else 0)
        return self._ioctl(SECCOMP_IOCTL_NOTIF_ADDFD, self._addfd) is not None

    def id_valid(self, id: int) -> bool:
        """Is the call still waiting for its answer (SECCOMP_IOCTL_NOTIF_ID_VALID)?"""
        U64.pack_into(self._id, 0, id)
        return self._ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID, self._id) is not None
