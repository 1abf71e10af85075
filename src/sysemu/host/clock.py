"""The host's real clock and random source for the sandbox Kernel (kernel.clock.Clock
protocol, kernel.rng)."""
from __future__ import annotations

import os
import random
import time


class MonotonicClock:
    """now() is time.monotonic(): the clock parked-call deadlines and the reactor share."""

    __slots__ = ()

    # The builtin itself: the model asks the time a few dozen times a connection.
    now = staticmethod(time.monotonic)

    def realtime(self) -> float:
        """CLOCK_REALTIME (what SO_TIMESTAMP reports)."""
        return time.time()


def host_random(seed: int | None = None) -> random.Random:
    """The sandbox kernel's random source: seeded from os.urandom (a new secret for
    every run: ports, ISNs), or from `seed` (`sysemu run --seed N`: the run's ports and
    sequence numbers are reproducible)."""
    if seed is None:
        seed = int.from_bytes(os.urandom(32), "little")
    return random.Random(seed)
