"""A program's host descriptors polled on its behalf (select/poll in the model data path).

fs/select.py asks the model's sockets themselves and the host for the rest
(HostHooks.poll_host): each descriptor is copied out of the program (pidfd_getfd: the
same open file description, so the same readiness) and the copies are polled once with
poll(2). When the call is about to wait (fs/select.py's second pass, `wake` given), the
copies go into an epoll of their own, which the reactor watches: the first readiness
wakes the call, which then polls everything again. The copies are closed when the call stops waiting (cancel).

sysemu: a signalfd reports the signals pending for the thread that polls it, here the
supervisor's, not the program's (README: Limitations). While the copies are held, the
file stays open even if the program closes its descriptor (a pipe's writer does not see
its last reader go until the wait ends).
"""
from __future__ import annotations

import os
import resource
import select
from typing import Callable

from sysemu.host.libc import pidfd_getfd

POLLNVAL = select.POLLNVAL


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def poll_host(reactor, pid: int, fds: list[tuple[int, int]],
              wake: Callable[[], None] | None):
    """(revents for each (fd, events) of process `pid`, cancel or None); with `wake`, the
    watch that calls it (see the module docstring) and its cancel. A descriptor that
    cannot be copied (not open) is POLLNVAL."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return [POLLNVAL] * len(fds), None
    copies: list[int] = []
    try:
        poller = select.poll()
        for fd, events in fds:
            try:
                copy = pidfd_getfd(pidfd, fd)
            except OSError:
                copy = -1
            copies.append(copy)
            if copy >= 0:
                poller.register(copy, events)
    finally:
        os.close(pidfd)
    try:
        ready = dict(poller.poll(0))
    except OSError:
        ready = {}
    revents = [POLLNVAL if copy < 0 else ready.get(copy, 0) for copy in copies]
    if wake is None:
        _close_all(copies)
        return revents, None
    ep = select.epoll()
    for copy, (_, events), shown in zip(copies, fds, revents):
        if shown:
            # sysemu: already showing what the call does not count (select's write set
            # on a hung-up pipe): watched, it would wake the call at once, again and
            # again; Linux would wake on its next change
            continue
        try:
            ep.register(copy, events)       # POLL* and EPOLL* bits are the same numbers
        except OSError:
            pass                            # a regular file: never waits anyway
    epfd = ep.fileno()

    def ready_now() -> None:
        reactor.remove_reader(epfd)
        wake()

    def cancel() -> None:
        reactor.remove_reader(epfd)
        ep.close()
        _close_all(copies)

    reactor.add_reader(epfd, ready_now)
    return revents, cancel


def rlimit_nofile(pid: int) -> int:
    """The soft RLIMIT_NOFILE of process `pid` (prlimit(2)); unlimited if unreadable."""
    try:
        return resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]
    except OSError:
        return 1 << 62


def max_fds(pid: int) -> int:
    """The size of process `pid`'s descriptor table (Linux: fdt->max_fds, /proc's FDSize)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"FDSize:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62
