"""Injected time and randomness: the model never reads the real clock itself."""
from __future__ import annotations

import random
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1000.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def seeded_random(seed: int = 0) -> random.Random:
    return random.Random(seed)
