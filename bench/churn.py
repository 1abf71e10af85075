"""Connection churn soak: new connections in every close order, native against sysemu.

    python bench/churn.py [--count N] [--concurrency C] [--seconds S]
                          [--orders client,server,simultaneous,rst] [--modes seq,conc]
                          [--timeout S] [--stall S] [--max-stalls N] [--json FILE]

Each connection is connect / accept / a small request and response / close, in one of
four close orders:

  client        the client closes first (the server closes when it reads EOF): the
                client's side ends in TIME_WAIT
  server        the server closes first (the client closes when it reads EOF): the
                server's side ends in TIME_WAIT
  simultaneous  both sides close together (a barrier between the two threads)
  rst           the client closes with SO_LINGER {1, 0} (an RST); the server closes
                when it reads EOF or ECONNRESET

and one of two modes: `seq` (one client, one connection after another) and `conc`
(C client threads, 32 by default, each churning). Every (order, mode) pair runs natively
and then under `sysemu run`, the same script as the workload (`--inner`), and one table
compares them: connections/s native and sysemu, the ratio, and stalls, a stall being a
connection that took longer than --stall seconds (1 s) from socket() to the last close or
that failed (a timeout, a refused or reset connect, a short response).

It never hangs: every socket has a timeout (--timeout), every phase a deadline (--seconds,
or --deadline when running a count), and each inner run a wall bound, after which its
process group is killed; a stall is counted and reported, not waited out. After
--max-stalls stalls a phase stops early (a phase that stalls keeps stalling).

The inner run prints one JSON object: connections started and completed, stalls,
failures by kind, the first stalled connection (its number in start order: how many
connections were started before it), how the server saw the client's close (eof or
reset), the elapsed time and the rate.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ORDERS = ("client", "server", "simultaneous", "rst")
MODES = {"seq": 1, "conc": None}      # None: --concurrency
REQUEST = 32                           # bytes: b"REQ <id>" padded
RESPONSE = 64                          # bytes: b"RSP <id>" padded
SYSEMU = Path(sys.executable).with_name("sysemu")


# ---------------------------------------------------------------------------------------
# The workload (--inner): a server and C client threads in one process.

def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly n bytes, or fewer if the peer closed first."""
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def drain_to_eof(sock: socket.socket) -> str:
    """Read until the peer's FIN ('eof') or RST ('reset')."""
    try:
        while sock.recv(4096):
            pass
        return "eof"
    except ConnectionResetError:
        return "reset"


class Churn:
    """One phase: `concurrency` clients churn until `count` connections or `deadline`."""

    def __init__(self, order: str, count: int, concurrency: int, seconds: float,
                 timeout: float, stall: float, max_stalls: int) -> None:
        self.order = order
        self.count = count
        self.concurrency = concurrency
        self.timeout = timeout
        self.stall = stall
        self.max_stalls = max_stalls
        self.lock = threading.Lock()
        self.next_id = 0
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.stop = threading.Event()
        self.barriers: dict[int, threading.Barrier] = {}
        self.completed = 0
        self.last_done = self.start
        self.stall_ids: list[int] = []       # connection ids (start order) that stalled
        self.failures: dict[str, int] = {}
        self.server_saw: dict[str, int] = {}
        self.server_failures: dict[str, int] = {}
        self.handoff: queue.Queue = queue.Queue()

    # -- bookkeeping ----------------------------------------------------------------
    def take_id(self) -> int | None:
        with self.lock:
            if (self.stop.is_set() or self.next_id >= self.count
                    or time.monotonic() >= self.deadline):
                return None
            self.next_id += 1
            return self.next_id - 1

    def record(self, cid: int, took: float, failure: str | None) -> None:
        with self.lock:
            if failure is None:
                self.completed += 1
                self.last_done = time.monotonic()
            else:
                self.failures[failure] = self.failures.get(failure, 0) + 1
            if failure is not None or took > self.stall:
                self.stall_ids.append(cid)
                if len(self.stall_ids) >= self.max_stalls:
                    self.stop.set()

    def count_in(self, table: dict[str, int], key: str) -> None:
        with self.lock:
            table[key] = table.get(key, 0) + 1

    # -- server ---------------------------------------------------------------------
    def acceptor(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError as e:
                self.count_in(self.server_failures, f"accept:{type(e).__name__}")
                continue
            self.handoff.put(conn)

    def worker(self) -> None:
        while True:
            conn = self.handoff.get()
            if conn is None:
                return
            try:
                self.serve(conn)
            except (OSError, threading.BrokenBarrierError) as e:
                self.count_in(self.server_failures, type(e).__name__)
            finally:
                conn.close()

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.timeout)
        request = recv_exact(conn, REQUEST)
        if len(request) != REQUEST:
            self.count_in(self.server_failures, "short-request")
            return
        cid = int(request.split()[1])
        conn.sendall(b"RSP %d" % cid + b" " * (RESPONSE - len(b"RSP %d" % cid)))
        if self.order == "server":
            return                                   # close first
        if self.order == "simultaneous":
            with self.lock:
                barrier = self.barriers.get(cid)
            if barrier is None:
                self.count_in(self.server_failures, "no-barrier")
                return
            barrier.wait(self.timeout)
            return                                   # close together with the client
        self.count_in(self.server_saw, drain_to_eof(conn))   # client, rst

    # -- clients --------------------------------------------------------------------
    def client(self) -> None:
        while True:
            cid = self.take_id()
            if cid is None:
                return
            t0 = time.monotonic()
            failure = self.one(cid)
            self.record(cid, time.monotonic() - t0, failure)

    def one(self, cid: int) -> str | None:
        barrier = None
        if self.order == "simultaneous":
            barrier = threading.Barrier(2)
            with self.lock:
                self.barriers[cid] = barrier
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            step = "connect"
            sock.connect(self.address)
            step = "exchange"
            req = b"REQ %d" % cid
            sock.sendall(req + b" " * (REQUEST - len(req)))
            response = recv_exact(sock, RESPONSE)
            if not response.startswith(b"RSP %d " % cid) or len(response) != RESPONSE:
                return "short-response"
            step = "close"
            if self.order == "server":
                if sock.recv(1) != b"":              # wait for the server's FIN
                    return "data-after-response"
            elif self.order == "simultaneous":
                barrier.wait(self.timeout)
            elif self.order == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            return None
        except socket.timeout:
            return f"{step}:timeout"
        except threading.BrokenBarrierError:
            return f"{step}:barrier"
        except OSError as e:
            return f"{step}:{type(e).__name__}"
        finally:
            sock.close()
            if barrier is not None:
                with self.lock:
                    self.barriers.pop(cid, None)

    # -- the phase ------------------------------------------------------------------
    def run(self) -> dict:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        self.address = listener.getsockname()
        server = [threading.Thread(target=self.acceptor, args=(listener,), daemon=True)]
        server += [threading.Thread(target=self.worker, daemon=True)
                   for _ in range(self.concurrency + 1)]
        clients = [threading.Thread(target=self.client, daemon=True)
                   for _ in range(self.concurrency)]
        for t in server + clients:
            t.start()
        # A client thread ends after its last connection, which ends within a few socket
        # timeouts of the phase deadline (connect, exchange, close each bounded).
        end_by = self.deadline + 4 * self.timeout + 1
        for t in clients:
            t.join(max(0.0, end_by - time.monotonic()))
        hung_clients = sum(t.is_alive() for t in clients)
        self.stop.set()
        for _ in server[1:]:
            self.handoff.put(None)
        for t in server:
            t.join(max(0.0, min(self.timeout + 1, end_by + self.timeout - time.monotonic())))
        listener.close()
        elapsed = self.last_done - self.start
        return {
            "order": self.order, "concurrency": self.concurrency,
            "started": self.next_id, "completed": self.completed,
            "stalls": len(self.stall_ids),
            "first_stall": min(self.stall_ids, default=None),   # connections started before
            "failures": self.failures, "server_failures": self.server_failures,
            "server_saw": self.server_saw, "hung_clients": hung_clients,
            "stopped_early": len(self.stall_ids) >= self.max_stalls,
            "elapsed": round(elapsed, 3),
            "rate": round(self.completed / elapsed, 1) if elapsed > 0 else 0.0,
        }


def inner(args: argparse.Namespace) -> int:
    churn = Churn(args.order, args.count, args.concurrency, args.seconds or args.deadline,
                  args.timeout, args.stall, args.max_stalls)
    result = churn.run()
    print(json.dumps(result), flush=True)
    # Daemon threads stuck in a call (under a broken sandbox) must not keep us alive.
    os._exit(0)


# ---------------------------------------------------------------------------------------
# The driver: each phase natively and under sysemu, one table.

def inner_command(order: str, concurrency: int, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--inner", "--order", order,
           "--concurrency", str(concurrency), "--count", str(args.count),
           "--timeout", str(args.timeout), "--stall", str(args.stall),
           "--max-stalls", str(args.max_stalls), "--deadline", str(args.deadline)]
    if args.seconds:
        cmd += ["--seconds", str(args.seconds)]
    return cmd


def run_inner(cmd: list[str], wall: float) -> dict:
    """Run one inner phase in its own process group; kill the group at `wall` seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=wall)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"error": f"wall bound {wall:.0f} s reached, killed", "stderr": err[-400:]}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"exit {proc.returncode}, no result", "stderr": err[-400:]}


def phase_wall(args: argparse.Namespace) -> float:
    return (args.seconds or args.deadline) + 6 * args.timeout + 30


def fmt_side(r: dict | None) -> tuple[str, str]:
    if r is None:
        return "-", "-"
    if "error" in r:
        return "-", "ERR"
    stalls = str(r["stalls"])
    if r["stalls"]:
        stalls += f" (from #{r['first_stall']})"
    return f"{r['rate']:.0f}", stalls


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    what = f"{args.seconds:g} s per phase" if args.seconds else f"{args.count} connections"
    print(f"connection churn: {what}, stall = over {args.stall:g} s or failed, "
          f"socket timeout {args.timeout:g} s")
    print(f"  {'order':<13}{'mode':<8}{'completed n/s':>16}{'native c/s':>11}{'sysemu c/s':>11}"
          f"{'ratio':>7}  {'stalls native':<16}stalls sysemu")
    for row in results:
        n_rate, n_stalls = fmt_side(row["native"])
        s_rate, s_stalls = fmt_side(row.get("sysemu"))
        ratio = (f"{float(s_rate) / float(n_rate):.2f}"
                 if s_rate != "-" and n_rate not in ("-", "0") else "-")
        mode = f"{row['mode']}" + (f"x{row['concurrency']}" if row["mode"] == "conc" else "")
        done = "/".join(str(row.get(side, {}).get("completed", "-"))
                        for side in ("native", "sysemu"))
        print(f"  {row['order']:<13}{mode:<8}{done:>16}{n_rate:>11}{s_rate:>11}{ratio:>7}"
              f"  {n_stalls:<16}{s_stalls}")
    for row in results:
        for side in ("native", "sysemu"):
            r = row.get(side)
            if r and ("error" in r or r.get("failures") or r.get("server_failures")
                      or r.get("hung_clients") or row["order"] == "rst"):
                print(f"  {row['order']}/{row['mode']} {side}: " + json.dumps(
                    {k: r[k] for k in ("error", "stderr", "failures", "server_failures",
                                       "server_saw", "hung_clients", "completed", "started")
                     if r.get(k)}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inner", action="store_true", help="run one phase (the workload)")
    p.add_argument("--order", choices=ORDERS, default="client", help="with --inner")
    p.add_argument("--orders", default=",".join(ORDERS))
    p.add_argument("--modes", default="seq,conc", help="seq (1 client), conc (C clients)")
    p.add_argument("--count", type=int, default=5000, help="connections per phase")
    p.add_argument("--concurrency", type=int, default=32, help="clients in conc mode")
    p.add_argument("--seconds", type=float, default=0.0,
                   help="run each phase this long instead of --count connections")
    p.add_argument("--deadline", type=float, default=120.0,
                   help="a --count phase stops starting connections after this many s")
    p.add_argument("--timeout", type=float, default=3.0, help="every socket's timeout, s")
    p.add_argument("--stall", type=float, default=1.0, help="a slower connection stalls")
    p.add_argument("--max-stalls", type=int, default=20, help="stop a phase after this many")
    p.add_argument("--native-only", action="store_true")
    p.add_argument("--sysemu", type=Path, default=SYSEMU, help="the sysemu script")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.seconds:
        args.count = 1 << 62
    if args.inner:
        return inner(args)

    if not args.native_only and not args.sysemu.exists():
        print(f"no sysemu at {args.sysemu}: run from the project's venv or pass --sysemu",
              file=sys.stderr)
        return 2
    results = []
    for order in args.orders.split(","):
        for mode in args.modes.split(","):
            concurrency = MODES[mode] or args.concurrency
            cmd = inner_command(order, concurrency, args)
            row = {"order": order, "mode": mode, "concurrency": concurrency,
                   "native": run_inner(cmd, phase_wall(args))}
            if not args.native_only:
                row["sysemu"] = run_inner([str(args.sysemu), "run", "--"] + cmd,
                                          phase_wall(args))
            results.append(row)
            print(f"  done {order}/{mode}", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
