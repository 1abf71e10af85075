"""The sandbox's processes as /proc shows them: finding and killing what is left.

Both W and S are child subreapers, so every process the program starts stays below one
of them: the sandbox is exactly their descendants (walk of the ppid chains).
"""
from __future__ import annotations

import os
import signal
import time


def parent_map() -> dict[int, int]:
    """pid -> ppid for every process (from /proc/PID/stat; comm may hold spaces)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        parents[int(name)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append(child)
            stack.append(child)
    return found


def kill_descendants(root: int, rounds: int = 400) -> int:
    """SIGKILL every descendant of root until none is left alive; the number killed."""
    killed: set[int] = set()
    for _ in range(rounds):
        alive = [pid for pid in descendants(root) if not _zombie(pid)]
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        reap_all(block=False)
        time.sleep(0.005)   # the killed take a moment to become zombies
    return len(killed)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] in (b"Z", b"X")


def reap_all(block: bool = True) -> dict[int, int]:
    """waitpid every child of ours (blocking until none is left, unless block=False)."""
    statuses: dict[int, int] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        statuses[pid] = status
    return statuses
