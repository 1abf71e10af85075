"""Connection churn: a new connection per request, natively and under `sysemu run`.

    python bench/churn.py [--n N] [--orders server,client,both,rst] [--clients C]
                          [--seconds S] [--only native|sysemu] [--seed N]
    python bench/churn.py --inner ...        (the workload itself, one JSON line out)

Each connection: connect, "ping" -> "pong", close, in one of four close orders:
  server  the server closes first (its side goes to TIME_WAIT; the client sees EOF, then
          closes): an HTTP/1.0 server, a client without keep-alive
  client  the client closes first, the server closes when it reads EOF
  both    both close right after the exchange, without waiting for each other
  rst     the client aborts with SO_LINGER {1, 0} (RST); the server reads the reset
Sequentially (--clients 1: N connections per order) or with C concurrent clients for
S seconds (orders taken in turn). Server and clients are threads of one process, so
under sysemu they share one sandbox. A stall is a connection that takes more than 1 s;
each socket has 10 s timeouts (SO_RCVTIMEO/SO_SNDTIMEO), so a connection stuck in
SYN-SENT shows up as an error instead of a hang. Prints connections per second, stalls,
errors and the slowest connection for each run, native and sysemu from the same run.
Servers bind 127.0.0.1 on a free port and stop with the workload.
"""
from __future__ import annotations

import argparse
import json
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

SYSEMU = Path(sys.executable).with_name("sysemu")
ORDERS = ("server", "client", "both", "rst")
STALL = 1.0
TIMEOUT = struct.pack("ll", 10, 0)


def timeouts(sock: socket.socket) -> None:
    """Bounded waits without non-blocking mode (settimeout would make connect poll)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, TIMEOUT)


def serve(conn: socket.socket, order: str) -> None:
    try:
        timeouts(conn)
        conn.recv(16)
        conn.sendall(b"pong")
        if order == "client" or order == "rst":
            try:
                conn.recv(16)               # EOF (client) or ECONNRESET (rst)
            except OSError:
                pass
    except OSError:
        pass
    finally:
        conn.close()


class Server:
    """An accept loop handing each connection to a pool of workers; the close order of a
    connection is the first byte the client sends."""

    def __init__(self, workers: int):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.addr = self.sock.getsockname()
        self.work: queue.Queue = queue.Queue()
        threading.Thread(target=self.accept_loop, daemon=True).start()
        for _ in range(workers):
            threading.Thread(target=self.worker, daemon=True).start()

    def accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.work.put(conn)

    def worker(self) -> None:
        while True:
            conn = self.work.get()
            if conn is None:
                return
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except OSError:
                conn.close()
                continue
            serve(conn, ORDERS[first[0] - ord("0")] if first else "server")


def one_connection(addr, order: str, marks: list) -> None:
    """One connection; `marks` gets the time after each step (socket, connect, pong,
    the server's EOF, close), to tell where a stall was."""
    c = socket.socket()
    marks.append(time.monotonic())
    try:
        timeouts(c)
        c.connect(addr)
        marks.append(time.monotonic())
        c.sendall(str(ORDERS.index(order)).encode() + b"ping")
        if c.recv(16) == b"":
            raise OSError("no pong")
        marks.append(time.monotonic())
        if order == "server":
            c.recv(16)                      # the server's FIN first
        elif order == "rst":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        marks.append(time.monotonic())
    finally:
        c.close()
        marks.append(time.monotonic())


STEPS = ("socket", "connect", "pong", "eof", "close")


CHUNK = 10_000      # connections per rate sample: does a connection cost more with history?


class Tally:
    def __init__(self):
        self.done = self.stalls = self.errors = 0
        self.slowest = 0.0
        self.lock = threading.Lock()
        self.first_error = ""
        self.start = time.monotonic()
        self.chunk_start = self.start
        self.chunk_rates: list[float] = []
        self.stall_log: list[str] = []

    def add(self, start: float, took: float, order: str, error: Exception | None,
            marks: list) -> None:
        with self.lock:
            if error is not None:
                self.errors += 1
                self.first_error = self.first_error or repr(error)
            else:
                self.done += 1
                if self.done % CHUNK == 0:
                    now = time.monotonic()
                    self.chunk_rates.append(round(CHUNK / (now - self.chunk_start)))
                    self.chunk_start = now
            if took > STALL:
                self.stalls += 1
                if len(self.stall_log) < 20:
                    steps = [start] + marks
                    slow = max(range(len(marks)), key=lambda k: steps[k + 1] - steps[k])
                    self.stall_log.append(
                        f"#{self.done + self.errors} {order} at {start - self.start:.1f}s "
                        f"took {took:.2f}s, {steps[slow + 1] - steps[slow]:.2f}s of it "
                        f"in {STEPS[slow]}")
            self.slowest = max(self.slowest, took)


def timed(addr, order: str, tally: Tally) -> None:
    start = time.monotonic()
    error = None
    marks: list[float] = []
    try:
        one_connection(addr, order, marks)
    except OSError as exc:
        error = exc
    tally.add(start, time.monotonic() - start, order, error, marks)


def inner(args: argparse.Namespace) -> dict:
    orders = args.orders.split(",")
    server = Server(workers=max(4, args.clients))
    results = {}
    if args.clients == 1:
        for order in orders:
            tally = Tally()
            start = time.monotonic()
            for _ in range(args.n):
                timed(server.addr, order, tally)
            results[order] = report(tally, time.monotonic() - start)
    else:
        tally = Tally()
        stop = time.monotonic() + args.seconds

        def client(k: int) -> None:
            i = k
            while time.monotonic() < stop:
                timed(server.addr, orders[i % len(orders)], tally)
                i += 1
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results[f"{args.clients} clients ({'+'.join(orders)})"] = report(
            tally, time.monotonic() - start)
    return results


def report(tally: Tally, elapsed: float) -> dict:
    return {"connections": tally.done, "errors": tally.errors, "stalls": tally.stalls,
            "per_s": round(tally.done / elapsed, 1), "slowest_ms": round(tally.slowest * 1e3),
            "seconds": round(elapsed, 2), "first_error": tally.first_error,
            "per_s_by_10k": tally.chunk_rates, "stall_log": tally.stall_log}


def run_inner(argv: list[str], sandboxed: bool, seed: int | None, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--inner", *argv]
    if sandboxed:
        cmd = [str(SYSEMU), "run"] + (["--seed", str(seed)] if seed is not None else []) \
            + ["--", "python3", *cmd[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="connections per close order "
                        "(sequential runs)")
    parser.add_argument("--orders", default="server,client",
                        help=f"comma-separated close orders among {','.join(ORDERS)}")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients (>1: "
                        "run for --seconds)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["native", "sysemu"])
    parser.add_argument("--seed", type=int, help="sysemu run --seed")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    bad = set(args.orders.split(",")) - set(ORDERS)
    if bad:
        parser.error(f"unknown close order {', '.join(sorted(bad))}")
    if args.inner:
        print(json.dumps(inner(args)))
        return 0
    argv = ["--n", str(args.n), "--orders", args.orders, "--clients", str(args.clients),
            "--seconds", str(args.seconds)]
    budget = (args.seconds if args.clients > 1 else args.n * len(args.orders) / 50) + 120
    runs = {}
    for where in ("native", "sysemu"):
        if args.only in (None, where):
            runs[where] = run_inner(argv, where == "sysemu", args.seed, budget)
    worst = 0
    print(f"{'run':<34} {'where':<7} {'conns':>8} {'per s':>9} {'stalls':>7} {'errors':>7} "
          f"{'slowest':>9}")
    for where, results in runs.items():
        for name, r in results.items():
            print(f"{name:<34} {where:<7} {r['connections']:>8} {r['per_s']:>9} "
                  f"{r['stalls']:>7} {r['errors']:>7} {r['slowest_ms']:>7}ms"
                  + (f"  {r['first_error']}" if r["first_error"] else ""))
            if r["per_s_by_10k"]:
                print(f"{'':<34} {where:<7} per s by 10,000: {r['per_s_by_10k']}")
            for line in r["stall_log"]:
                print(f"{'':<34} {where:<7} stall {line}")
            worst = max(worst, r["stalls"] + r["errors"])
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
