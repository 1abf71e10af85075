"""A minimal epoll loop for the supervisor: fd readiness callbacks and timers.

One thread, no futures: callbacks run in the loop and must not block. Times are
time.monotonic() seconds (host.clock.MonotonicClock shares the same clock).
"""
from __future__ import annotations

import heapq
import itertools
import select
import sys
import time
import traceback
from typing import Callable

from sysemu.host.clock import MonotonicClock

__all__ = ["Reactor", "TimerHandle", "MonotonicClock"]


_READABLE = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
_WRITABLE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR

SPIN_SECONDS = float(__import__("os").environ.get("SYSEMU_SPIN_US", "50")) / 1e6
# SYSEMU_DEBUG_SLOW=S: say on stderr which callback (fd readiness, timer) held the loop for
# over S seconds, and the CPU time it used meanwhile: wall time far above the CPU time
# means the supervisor was not running (other work had the CPUs, or it waited in a
# system call), wall time near it that it was busy (bench/churn.py --debug-slow).
SLOW_SECONDS = float(__import__("os").environ.get("SYSEMU_DEBUG_SLOW", "0") or 0)


def slow_note(what: str, wall: float, cpu: float) -> None:
    print(f"sysemu: slow: {what} held the loop {wall:.3f} s (CPU {cpu:.3f} s)",
          file=sys.stderr, flush=True)


class TimerHandle:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    def __init__(self):
        self._epoll = select.epoll()
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}
        self._watches: dict[int, Callable[[int], None]] = {}
        self._failed: set[str] = set()
        self.spin = SPIN_SECONDS
        self.slow = SLOW_SECONDS
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._soon: list[Callable[[], None]] = []
        self._seq = itertools.count()
        # The epoll mask of the fd whose callback is running (EPOLLIN, EPOLLHUP ...).
        self.current_events = 0
        # Run after every batch of events/timers (the supervisor's after_event hook).
        self.after_batch: list[Callable[[], None]] = []

    @staticmethod
    def time() -> float:
        return time.monotonic()

    # -- readiness -----------------------------------------------------------------
    def _update(self, fd: int) -> None:
        mask = (select.EPOLLIN if fd in self._readers else 0) | \
               (select.EPOLLOUT if fd in self._writers else 0)
        try:
            if mask:
                try:
                    self._epoll.modify(fd, mask)
                except FileNotFoundError:
                    self._epoll.register(fd, mask)
            else:
                self._epoll.unregister(fd)
        except (FileNotFoundError, OSError):
            if mask:
                raise

    def _timed(self, callback: Callable) -> Callable:
        """`callback`, saying when it holds the loop over `slow` seconds (SLOW_SECONDS)."""
        if not self.slow:
            return callback
        slow, name = self.slow, getattr(callback, "__qualname__", repr(callback))
        perf, thread_time = time.perf_counter, time.thread_time

        def timed(*args):
            t0, c0 = perf(), thread_time()
            try:
                return callback(*args)
            finally:
                if perf() - t0 > slow:
                    slow_note(name, perf() - t0, thread_time() - c0)
        return timed

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self._readers[fd] = self._timed(callback)
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        self._writers[fd] = self._timed(callback)
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def add_watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """Watch `fd` for `events` (0: only EPOLLHUP/EPOLLERR, which epoll always
        reports); callback(mask). For fds with no reader or writer."""
        self._watches[fd] = self._timed(callback)
        try:
            self._epoll.register(fd, events)
        except FileExistsError:
            self._epoll.modify(fd, events)

    def remove_watch(self, fd: int) -> None:
        if self._watches.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (FileNotFoundError, OSError):
                pass

    # -- time ----------------------------------------------------------------------
    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(when, self._timed(callback))
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self.time() + delay, callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        self._soon.append(callback)

    # -- the loop ------------------------------------------------------------------
    def run_once(self, max_wait: float | None = None) -> None:
        """Wait for readiness or the next timer, run what is due, then after_batch."""
        timeout = max_wait
        timers = self._timers
        if self._soon:
            timeout = 0
        elif timers:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if timers:
                due = timers[0][0] - time.monotonic()
                if due < 0.0:
                    due = 0.0
                timeout = due if timeout is None else min(timeout, due)
        events = None
        if self.spin and timeout != 0:
            # Busy-poll a little before sleeping: a program making calls back to back sends
            # the next one within microseconds, and waking a sleeping CPU costs far more
            # than that on virtual machines (measured: README, Performance).
            deadline = time.perf_counter() + self.spin
            while True:
                events = self._epoll.poll(0)
                if events or time.perf_counter() >= deadline:
                    break
        if not events:
            try:
                events = self._epoll.poll(-1 if timeout is None else timeout)
            except InterruptedError:
                events = ()
        call = self._call
        watches, readers, writers = self._watches, self._readers, self._writers
        for fd, mask in events:
            self.current_events = mask
            if watches:
                watch = watches.get(fd)
                if watch is not None:
                    call(watch, mask)
                    continue
            if mask & _READABLE:
                cb = readers.get(fd)
                if cb is not None:
                    try:                # _call() written out: the trapped calls' path
                        cb()
                    except Exception as exc:
                        self._failed_callback(cb, exc)
            if mask & _WRITABLE:
                cb = writers.get(fd)
                if cb is not None:
                    call(cb)
        if timers:
            now = time.monotonic()
            while timers and (timers[0][0] <= now or timers[0][2].cancelled):
                _, _, handle = heapq.heappop(timers)
                if not handle.cancelled:
                    handle.cancelled = True
                    call(handle.callback)
        if self._soon:
            soon, self._soon = self._soon, []
            for cb in soon:
                call(cb)
        for cb in self.after_batch:
            try:
                cb()
            except Exception as exc:
                self._failed_callback(cb, exc)

    def _call(self, cb, *args) -> None:
        """Run one callback. The supervisor never dies of what a program does: a callback
        that fails is reported (once per place) and the loop goes on."""
        try:
            cb(*args)
        except Exception as exc:
            self._failed_callback(cb, exc)

    def _failed_callback(self, cb, exc: Exception) -> None:
        where = getattr(cb, "__qualname__", repr(cb))
        if where not in self._failed:
            self._failed.add(where)
            print(f"sysemu: internal error in {where} (reported once):\n"
                  + "".join(traceback.format_exception(exc)).rstrip(),
                  file=sys.stderr, flush=True)

    def run_until(self, predicate: Callable[[], bool], max_wait: float | None = None) -> None:
        """Run until predicate() is true (checked after every batch)."""
        while not predicate():
            self.run_once(max_wait)

    def close(self) -> None:
        self._epoll.close()
