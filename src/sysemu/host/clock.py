"""The host's real clock for the sandbox Kernel (kernel.clock.Clock protocol)."""
from __future__ import annotations

import time


class MonotonicClock:
    """now() is time.monotonic(): the clock parked-call deadlines and the reactor share."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()
