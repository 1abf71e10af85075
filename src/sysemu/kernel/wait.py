"""Wait queues. Linux: include/linux/wait.h. A parked syscall is a waiter; wake_up() tells
the owner (dispatch) to run its attempt again."""
from __future__ import annotations

from typing import Callable


class WaitQueue:
    """Linux: struct wait_queue_head. Waiters are callables run on wake_up()."""

    __slots__ = ("_waiters", "name")

    def __init__(self, name: str = ""):
        self._waiters: list[Callable[[], None]] = []
        self.name = name

    def add(self, waiter: Callable[[], None]) -> None:
        self._waiters.append(waiter)

    def remove(self, waiter: Callable[[], None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def wake_up(self) -> None:
        """Wake every waiter; each re-runs its attempt (and re-adds itself if it must wait)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()

    def __len__(self) -> int:
        return len(self._waiters)

    def __bool__(self) -> bool:  # a queue object is always "there", even when empty
        return True
