"""Which parked thread a pending signal is for: what sysemu reads of a sandbox thread's
signals, and the thread Linux wakes for a process-wide one.

The seccomp filter is loaded with WAIT_KILLABLE_RECV, so the kernel no longer ends a
call sysemu has received when a signal comes: sysemu ends a parked call itself, with
-ERESTARTSYS (README: How a system call travels, Signals). That answer is only right for
a thread the kernel has marked TIF_SIGPENDING: on the way back to user mode the kernel
then runs the handler and restarts the call (or fails it with EINTR). A thread without
the mark goes straight back to user mode, and the program sees -512, an errno no program
knows (kernel/entry/common.c exit_to_user_mode_loop() calls arch_do_signal_or_restart(),
which restarts a call, only for a thread with the mark). /proc shows no TIF_SIGPENDING; it shows each thread's pending signals.

- A signal sent to the thread (tgkill, pthread_kill; SigPnd): complete_signal() marks
  that thread, and only the thread itself clears the mark: always its own.
- A signal sent to the process (kill, an interval timer; ShdPnd): complete_signal()
  marks one thread, the leader if it wants the signal, else the next one that does,
  round-robin from signal->curr_target; that thread takes it, or any thread that runs
  get_signal() first (dequeue_signal() takes the process's signals too). A parked thread
  may be interrupted only if it is the one marked: `complete_signal_target()` names it
  from what /proc shows (README: Limitations).
"""
from __future__ import annotations

import os

# States in /proc/TID/status of a thread that wants no signal (wants_signal(): stopped
# or traced; PF_EXITING: a zombie or dead thread).
_UNWANTING_STATES = frozenset("TtZX")


def read_signals(tid: int) -> tuple[int, int]:
    """(signals pending for the thread, for its process), each without those the thread
    blocks, from /proc/TID/status (SigPnd, ShdPnd, SigBlk); (0, 0) if it is gone."""
    pending = shared = blocked = 0
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigPnd:"):
                    pending = int(line[7:], 16)
                elif line.startswith(b"ShdPnd:"):
                    shared = int(line[7:], 16)
                elif line.startswith(b"SigBlk:"):
                    blocked = int(line[7:], 16)
                    break
    except (OSError, ValueError):
        return 0, 0
    return pending & ~blocked, shared & ~blocked


def read_threads(pid: int) -> list[tuple[int, str, int]]:
    """(tid, state letter, blocked signals) of each thread of process `pid`, in the
    kernel's thread-list order: the leader first, then by creation (proc_task_readdir()
    walks next_thread()). A thread that ends meanwhile is left out."""
    try:
        names = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    threads = []
    for name in names:
        state, blocked = "X", 0
        try:
            with open(f"/proc/{pid}/task/{name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"State:"):
                        state = line[6:].strip()[:1].decode()
                    elif line.startswith(b"SigBlk:"):
                        blocked = int(line[7:], 16)
                        break
        except (OSError, ValueError):
            continue
        threads.append((int(name), state, blocked))
    return threads


def wants_signal(sig: int, state: str, blocked: int) -> bool:
    """Linux: kernel/signal.c wants_signal(), from what /proc shows: not blocked, not
    stopped, traced or exiting. sysemu: task_sigpending() (a thread already marked
    wants no more) is not shown; a thread is taken to want it."""
    return not blocked >> (sig - 1) & 1 and state not in _UNWANTING_STATES


def complete_signal_target(sig: int, threads: list[tuple[int, str, int]],
                           curr_target: int | None = None) -> int | None:
    """The thread a process-wide signal `sig` marks: the leader (threads[0]) if it wants
    it, else the first that does from `curr_target` on, round-robin; None if none does.
    Linux: kernel/signal.c complete_signal(). sysemu: Linux's signal->curr_target is the
    last thread its round-robin chose, which sysemu does not see; the caller passes the
    last one it chose itself (None: the leader, where Linux starts)."""
    if not threads:
        return None
    leader_tid, state, blocked = threads[0]
    if wants_signal(sig, state, blocked):
        return leader_tid
    start = next((i for i, (tid, _, _) in enumerate(threads) if tid == curr_target), 0)
    for i in range(len(threads)):
        tid, state, blocked = threads[(start + i) % len(threads)]
        if wants_signal(sig, state, blocked):
            return tid
    return None


def signals_in(mask: int):
    """The signal numbers in a pending mask (bit n-1 is signal n), lowest first."""
    sig = 1
    while mask:
        if mask & 1:
            yield sig
        mask >>= 1
        sig += 1
