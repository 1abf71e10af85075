"""The supervisor and Python's cycle collector: what has lived long leaves it.

A full (generation 2) pass of the cycle collector walks every object the process holds,
and no trapped call is answered meanwhile. A sandbox that churns connections holds tens
of thousands of sockets in TIME_WAIT (Linux keeps each 60 s, and sysemu's are Sock,
Socket, File, timer and their dicts): over 100,000 sequential connections the full passes
took 0.3, 0.6, 1.0, 1.2 and 2.0 s as that grew, and each was one of the churn soak's 1-3.5 s
pauses of the accept and hand-off (README: Performance).

So the survivors of every full pass are frozen (gc.freeze(): moved to the permanent
generation, which no later pass walks), and a full pass walks only what was promoted since
the one before. The supervisor makes one every second (`install(reactor)`): Python's own
trigger waits until the objects promoted since the last pass number a quarter of its
survivors, which let one pass walk a hundred thousand objects (1.4 s under load). Frozen
objects are still freed when their last reference goes; what freezing gives up is finding
reference cycles among them. So the long-lived objects are freed without the collector:
the model cuts a Sock's links when it frees it (Net.sk_free()), the supervisor a parked
call's (tests/test_collector.py checks that a churn leaves no cycles, and that a full pass
leaves its survivors frozen; in a 100,000-connection churn the passes found nothing to
collect).
"""
from __future__ import annotations

import gc
import time

from sysemu.host.reactor import SLOW_SECONDS, slow_note

FULL_PASS_INTERVAL = 1.0        # seconds between the supervisor's own full passes

_installed = False


def install(reactor=None) -> None:
    """From now on, freeze what survives each full collection (once per process), and
    with a reactor, make a full pass every FULL_PASS_INTERVAL seconds."""
    global _installed
    if _installed:
        return
    _installed = True
    gc.collect()
    gc.freeze()                 # sysemu's own modules, tables and the kernel's objects
    gc.callbacks.append(_after_collection)
    if reactor is not None:
        def full_pass() -> None:
            gc.collect()
            reactor.call_later(FULL_PASS_INTERVAL, full_pass)
        reactor.call_later(FULL_PASS_INTERVAL, full_pass)


_started = [0.0, 0.0]            # the running pass's start: wall, CPU (SLOW_SECONDS)


def _after_collection(phase: str, info: dict) -> None:
    if SLOW_SECONDS:
        if phase == "start":
            _started[:] = time.perf_counter(), time.thread_time()
        elif time.perf_counter() - _started[0] > SLOW_SECONDS:
            slow_note(f"a generation {info['generation']} collection ({info['collected']} "
                      f"collected, {len(gc.get_objects(info['generation']))} left)",
                      time.perf_counter() - _started[0], time.thread_time() - _started[1])
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()
