"""The thread a process-wide signal is for (host/signals.py): Linux's complete_signal()
from what /proc shows, which decides which parked call sysemu may end with ERESTARTSYS."""
from __future__ import annotations

import signal
import subprocess
import sys

from sysemu.host.signals import (complete_signal_target, read_signals, read_threads,
                                 signals_in, wants_signal)

ALRM = signal.SIGALRM
ALRM_BIT = 1 << (ALRM - 1)


def test_the_leader_takes_it_when_it_wants_it():
    threads = [(10, "S", 0), (11, "D", 0), (12, "R", 0)]
    assert complete_signal_target(ALRM, threads) == 10
    assert complete_signal_target(ALRM, threads, curr_target=12) == 10


def test_round_robin_from_curr_target_when_the_leader_does_not_want_it():
    threads = [(10, "S", ALRM_BIT), (11, "D", 0), (12, "D", 0), (13, "S", ALRM_BIT)]
    assert complete_signal_target(ALRM, threads) == 11          # Linux starts at the leader
    assert complete_signal_target(ALRM, threads, curr_target=12) == 12
    assert complete_signal_target(ALRM, threads, curr_target=13) == 11    # wraps around
    assert complete_signal_target(ALRM, threads, curr_target=99) == 11    # gone: the leader


def test_stopped_exiting_and_blocking_threads_want_nothing():
    for state in "TtZX":
        assert not wants_signal(ALRM, state, 0)
    assert not wants_signal(ALRM, "S", ALRM_BIT)
    assert wants_signal(ALRM, "D", 1 << (signal.SIGINT - 1))   # a killable wait wants it
    threads = [(10, "Z", 0), (11, "t", 0), (12, "S", ALRM_BIT)]
    assert complete_signal_target(ALRM, threads) is None
    assert complete_signal_target(ALRM, []) is None


def test_signals_in_a_mask():
    assert list(signals_in(0)) == []
    assert list(signals_in(ALRM_BIT | 1 << (signal.SIGINT - 1) | 1 << 63)) == [
        signal.SIGINT, ALRM, 64]


CHILD = """
import os, signal, sys, threading
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])    # every thread inherits it
started, leave = threading.Event(), threading.Event()
def worker():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    started.set()
    leave.wait(10)
t = threading.Thread(target=worker)
t.start()
started.wait(10)
os.kill(os.getpid(), signal.SIGUSR1)
print(t.native_id, flush=True)
sys.stdin.read()
leave.set()
"""


def test_read_threads_and_signals_of_a_process():
    """The leader first, then the threads by creation, with their masks; a signal sent
    to the process that every thread blocks stays pending for the process (ShdPnd),
    which read_signals() leaves out for a thread that blocks it."""
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        worker = int(child.stdout.readline())
        threads = read_threads(child.pid)
        assert [tid for tid, _, _ in threads] == [child.pid, worker]
        blocked = {tid: mask for tid, _, mask in threads}
        assert blocked[child.pid] & 1 << (signal.SIGUSR1 - 1)
        assert not blocked[child.pid] & 1 << (signal.SIGUSR2 - 1)
        assert blocked[worker] & 1 << (signal.SIGUSR2 - 1)
        assert read_signals(worker) == (0, 0)       # pending, but blocked
        with open(f"/proc/{child.pid}/status") as f:
            shdpnd = next(int(line.split()[1], 16) for line in f if line.startswith("ShdPnd"))
        assert shdpnd == 1 << (signal.SIGUSR1 - 1)
        assert read_signals(2 ** 22 + 12345) == (0, 0)          # no such thread
        assert read_threads(2 ** 22 + 12345) == []
    finally:
        child.communicate("", timeout=10)
