"""The TCP model's work per connection, in-process: no host, no trap, a fake clock.

    python bench/model_connrate.py [N] [--repeat R] [--profile] [--order server|client]

What `net_bench connrate` makes the supervisor's model do, N times: a client socket(),
connect() to a listener on 127.0.0.1 (the handshake's three segments on the virtual
wire), accept4(), then both ends close (the server first by default, as net_bench's
server closes after its echo; the FIN, ACK, FIN, ACK) with the clock moved 50 us and the
due timers run between the steps. The syscalls go through the 64-bit table
(`run_model_call`), the user memory is the in-memory one. Each round starts a new
sandbox (fresh tables and TIME_WAIT list); the clock is fake, so the model's path is the
same in every run: the counts below do not depend on the machine.

Prints the CPU time (process time) per connection of each round and their median, and,
with --profile, the Python function calls per connection (cProfile: a run of N less a
run of N/2) with the functions that make them. Under valgrind the instruction count is
deterministic too:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/model_connrate.py 2000 --repeat 1
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import struct
import sys
import time

import sysemu.net  # noqa: F401  (registers the handlers)
from sysemu.abi.socket import AF_INET, SOCK_STREAM
from sysemu.arch.x86.entry import Syscalls, run_model_call
from sysemu.kernel.clock import FakeClock
from sysemu.kernel.task import HostHooks, Kernel, Task
from sysemu.net import attach

NR_SOCKET, NR_CONNECT, NR_BIND, NR_LISTEN, NR_GETSOCKNAME, NR_ACCEPT4 = 41, 42, 49, 50, 51, 288
STEP = 50e-6        # fake seconds between the steps of a connection


class Sandbox:
    """One kernel, its Net, a task and the table; the listener on 127.0.0.1:ephemeral."""

    def __init__(self, seed: int = 0):
        self.clock = FakeClock()
        self.kernel = Kernel(self.clock, random.Random(seed))
        self.kernel.host = HostHooks()
        self.net = attach(self.kernel)
        self.sc = Syscalls()
        self.task = Task(self.kernel)
        mem = self.task.mem
        self.lfd = self.call(NR_SOCKET, AF_INET, SOCK_STREAM, 0)
        self.addr = mem.alloc(struct.pack("<HH4s8x", AF_INET, 0, bytes([127, 0, 0, 1])))
        assert self.call(NR_BIND, self.lfd, self.addr, 16) == 0
        assert self.call(NR_LISTEN, self.lfd, 128) == 0
        alen = mem.alloc(struct.pack("<i", 16))
        assert self.call(NR_GETSOCKNAME, self.lfd, self.addr, alen) == 0

    def call(self, nr: int, *args: int) -> int:
        return run_model_call(self.sc, self.task, nr, *args)

    def step(self) -> None:
        self.clock.advance(STEP)
        self.net.run_timers(self.clock.now())

    def close(self, fd: int) -> None:
        file = self.task.files.close(fd)
        if file.refs == 0:
            self.net.release(file.private_data)

    def connection(self, server_first: bool) -> None:
        cfd = self.call(NR_SOCKET, AF_INET, SOCK_STREAM, 0)
        assert self.call(NR_CONNECT, cfd, self.addr, 16) == 0
        self.step()
        afd = self.call(NR_ACCEPT4, self.lfd, 0, 0, 0)
        assert afd >= 0, afd
        self.step()
        first, second = (afd, cfd) if server_first else (cfd, afd)
        self.close(first)
        self.step()
        self.close(second)
        self.step()


def run(n: int, server_first: bool) -> Sandbox:
    box = Sandbox()
    for _ in range(n):
        box.connection(server_first)
    return box


def check(box: Sandbox, n: int) -> None:
    """The connections really happened: n opened each way, nothing reset or dropped."""
    mib = box.net.mib
    assert mib["ActiveOpens"] == n and mib["PassiveOpens"] == n, mib
    assert mib["EstabResets"] == 0 and mib["ListenDrops"] == 0, mib


def profile_counts(n: int, server_first: bool, top: int) -> None:
    """cProfile a run of n and one of n/2: calls per connection, by function."""
    stats = []
    for count in (n // 2, n):
        prof = cProfile.Profile()
        prof.enable()
        run(count, server_first)
        prof.disable()
        stats.append(pstats.Stats(prof).stats)
    half, full = stats
    rows, total = [], 0.0
    for key, value in full.items():
        calls = (value[1] - half.get(key, (0, 0))[1]) / (n - n // 2)
        total += calls
        if calls:
            rows.append((calls, f"{key[0].rsplit('sysemu/', 1)[-1]}:{key[1]} {key[2]}"))
    print(f"python calls per connection: {total:.1f}")
    for calls, name in sorted(rows, reverse=True)[:top]:
        print(f"{calls:8.2f}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--order", choices=("server", "client"), default="server")
    ap.add_argument("--profile", action="store_true", help="cProfile call counts")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    server_first = args.order == "server"
    if args.profile:
        profile_counts(args.n, server_first, args.top)
        return
    per_conn = []
    for _ in range(args.repeat):
        start = time.process_time()
        box = run(args.n, server_first)
        per_conn.append((time.process_time() - start) / args.n * 1e6)
        check(box, args.n)
    print(" ".join(f"{us:.1f}" for us in per_conn), file=sys.stderr)
    print(f"model: {statistics.median(per_conn):.1f} us CPU per connection "
          f"(median of {args.repeat} x {args.n})")


if __name__ == "__main__":
    main()
