"""How kernel code fails or waits. Only dispatch turns these into a syscall result."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sysemu.abi.errno import ERESTARTSYS, Errno

if TYPE_CHECKING:
    from sysemu.kernel.wait import WaitQueue


class SyscallError(Exception):
    """A syscall fails with -errno. Linux: the negative return of any sys_*()."""

    def __init__(self, errno: int, detail: str = ""):
        super().__init__(errno, detail)
        self.errno = Errno(errno)
        self.detail = detail

    def __str__(self) -> str:
        text = f"{self.errno.name}"
        return f"{text}: {self.detail}" if self.detail else text


class WouldBlock(Exception):
    """The attempt must wait: dispatch parks the call on `waitqueue` and runs the attempt
    again when the queue is woken or at `deadline` (clock seconds; None waits forever).
    `on_timeout` is the errno returned when the deadline passes (EAGAIN for SO_RCVTIMEO,
    ETIMEDOUT for connect ...). `intr_errno` is what a signal makes of the wait:
    ERESTARTSYS (restarted under SA_RESTART, else EINTR) or EINTR (never restarted: a
    socket wait with a timeout, Linux's sock_intr_errno()). `moved`: the bytes the call
    has moved so far (a stream send or receive, Task.partial): what it returns when the
    deadline passes, if any (Linux: sk_stream_wait_memory() or sk_wait_data() timing out
    after a partial copy). `on_timeout` None: at the deadline the attempt runs once more
    (with Task.deadline set, it knows its time is up: poll's last pass). `cleanup` runs
    when the wait ends, however it ends (poll's poll_freewait())."""

    def __init__(self, waitqueue: "WaitQueue", deadline: float | None = None,
                 on_timeout: int | None = Errno.EAGAIN, intr_errno: int = ERESTARTSYS,
                 cleanup: Callable[[], None] | None = None):
        super().__init__()
        self.waitqueue = waitqueue
        self.deadline = deadline
        self.on_timeout = on_timeout
        self.intr_errno = intr_errno
        self.moved = 0
        self.cleanup = cleanup


class HostPassthrough(Exception):
    """Not sysemu's object (a host fd, a family sysemu does not serve): let the host
    kernel run the call (SECCOMP_USER_NOTIF_FLAG_CONTINUE). Raised only before any pointer
    argument was read, so nothing the program can change decided it."""


def fault(detail: str = "") -> SyscallError:
    return SyscallError(Errno.EFAULT, detail)
