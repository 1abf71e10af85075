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

What a stalled connection was doing: a watchdog thread in the workload looks at the
connections in flight every 50 ms; one older than --stall is reported at once (a
`STALL {...}` line): the client's step (connect, send, response, wait-fin: the server's
FIN in the server-first order, barrier, linger, close), its local port, and the server's
view of that port (not accepted yet, queued for a worker, reading the request, draining
to EOF ...), with the acceptor's state and the workers' queue. The driver, on each such
line, looks at the network at that moment: under sysemu it asks the supervisor through
the control socket (`sysemu ss` rows of the two ports, with their timers, and the TCP
counters; how long the supervisor took to answer is itself a measure), natively it runs
`ss -tanoi` on the two ports and reads the host's counters. When the connection ends,
each step's duration is added. The details of the first --details stalls of a phase are
in the JSON (`stall_details`) and printed under the table, with the load average at the
stall. Under sysemu the driver also samples the supervisor's /proc/PID/schedstat, so a
stall says how long the supervisor ran and waited for a CPU meanwhile; `--debug-slow S`
has the supervisor name the callbacks that held its loop over S s (SYSEMU_DEBUG_SLOW).
`--hog N` runs N busy loops (`sh -c 'while :; do :; done'`) through every phase,
natively and under sysemu, to reproduce an overloaded machine; `--supervisor-nice N`
runs `sysemu run --supervisor-nice N`.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import select
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


def thread_state(tid: int | None) -> dict | None:
    """A thread as /proc shows it: its state (R runnable, S sleeping ...), the system
    call it is in (its number, or "running"), and its time on a CPU and waiting for
    one (schedstat, s)."""
    if tid is None:
        return None
    try:
        base = f"/proc/self/task/{tid}"
        with open(f"{base}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"{base}/syscall") as f:
            call = f.read().split()[0]
        with open(f"{base}/schedstat") as f:
            run, wait = (int(v) / 1e9 for v in f.read().split()[:2])
    except (OSError, IndexError, ValueError):
        return None
    return {"state": state, "syscall": call, "ran": round(run, 3), "waited": round(wait, 3)}


def drain_to_eof(sock: socket.socket) -> str:
    """Read until the peer's FIN ('eof') or RST ('reset')."""
    try:
        while sock.recv(4096):
            pass
        return "eof"
    except ConnectionResetError:
        return "reset"


class Conn:
    """A client connection in flight: which step it is in since when, and how long each
    step before it took (the stall report's material)."""

    __slots__ = ("cid", "sock", "t0", "at", "steps", "reported")

    def __init__(self, cid: int) -> None:
        self.cid = cid
        self.sock: socket.socket | None = None
        self.t0 = time.monotonic()
        self.at = ("socket", self.t0)       # (step, since): one attribute, read at once
        self.steps: dict[str, float] = {}
        self.reported: dict | None = None   # the watchdog's report, once stalled

    @property
    def step(self) -> str:
        return self.at[0]

    def enter(self, step: str) -> None:
        now = time.monotonic()
        was, since = self.at
        self.steps[was] = round(now - since, 3)
        self.at = (step, now)


class Churn:
    """One phase: `concurrency` clients churn until `count` connections or `deadline`."""

    def __init__(self, order: str, count: int, concurrency: int, seconds: float,
                 timeout: float, stall: float, max_stalls: int, details: int = 50) -> None:
        self.order = order
        self.count = count
        self.concurrency = concurrency
        self.timeout = timeout
        self.stall = stall
        self.max_stalls = max_stalls
        self.max_details = details
        self.lock = threading.Lock()
        self.next_id = 0
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.stop = threading.Event()
        self.finished = threading.Event()      # the clients are done: the watchdog too
        self.barriers: dict[int, threading.Barrier] = {}
        self.completed = 0
        self.last_done = self.start
        self.stall_ids: list[int] = []       # connection ids (start order) that stalled
        self.stall_details: list[dict] = []
        self.stall_steps: dict[str, int] = {}   # the step each stall was slow in
        self.failures: dict[str, int] = {}
        self.server_saw: dict[str, int] = {}
        self.server_failures: dict[str, int] = {}
        self.handoff: queue.Queue = queue.Queue()
        # What the watchdog reads: the clients' connections in flight, the server's view
        # of each client port ([step, since, cid]), the acceptor's [step, since, accepts].
        self.inflight: dict[int, Conn] = {}
        self.served: dict[int, list] = {}
        self.acceptor_state = ["start", self.start, 0]
        # the acceptor's poll()s that timed out, and accept()s that found nothing
        self.acceptor_misses = {"poll-timeout": 0, "eagain": 0}
        self.acceptor_tid: int | None = None
        self.print_lock = threading.Lock()

    # -- bookkeeping ----------------------------------------------------------------
    def take_id(self) -> int | None:
        with self.lock:
            if (self.stop.is_set() or self.next_id >= self.count
                    or time.monotonic() >= self.deadline):
                return None
            self.next_id += 1
            return self.next_id - 1

    def record(self, conn: Conn, failure: str | None) -> None:
        took = time.monotonic() - conn.t0
        with self.lock:
            self.inflight.pop(conn.cid, None)
            if failure is None:
                self.completed += 1
                self.last_done = time.monotonic()
            else:
                self.failures[failure] = self.failures.get(failure, 0) + 1
            if failure is not None or took > self.stall:
                self.stall_ids.append(conn.cid)
                slow = max(conn.steps, key=conn.steps.get) if conn.steps else conn.step
                self.stall_steps[slow] = self.stall_steps.get(slow, 0) + 1
                if len(self.stall_details) < self.max_details:
                    self.stall_details.append(dict(
                        conn.reported or {"cid": conn.cid}, took=round(took, 3),
                        failure=failure, steps=conn.steps))
                if len(self.stall_ids) >= self.max_stalls:
                    self.stop.set()

    def count_in(self, table: dict[str, int], key: str) -> None:
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def serving(self, port: int, step: str, cid: int | None = None) -> None:
        entry = self.served.get(port)
        if entry is None:
            self.served[port] = [step, time.monotonic(), cid]
        else:
            entry[0], entry[1] = step, time.monotonic()
            if cid is not None:
                entry[2] = cid

    # -- the watchdog -----------------------------------------------------------------
    def watchdog(self) -> None:
        """Report each connection in flight for longer than `stall`, while it stalls."""
        period = min(0.05, self.stall / 4)
        while not self.finished.wait(period):
            now = time.monotonic()
            with self.lock:
                late = [c for c in self.inflight.values()
                        if c.reported is None and now - c.t0 > self.stall]
            for conn in late:
                report = self.describe(conn)
                conn.reported = report
                with self.print_lock:
                    print("STALL " + json.dumps(report), flush=True)

    def describe(self, conn: Conn) -> dict:
        try:
            lport = conn.sock.getsockname()[1] if conn.sock is not None else None
        except OSError:
            lport = None
        server = self.served.get(lport) if lport else None
        step, since, accepts = self.acceptor_state
        client_step, client_since = conn.at
        now = time.monotonic()
        return {
            "cid": conn.cid, "at": round(now - self.start, 3), "step": client_step,
            "in_step": round(now - client_since, 3), "age": round(now - conn.t0, 3),
            "steps": dict(conn.steps), "lport": lport, "sport": self.address[1],
            "server": ({"step": server[0], "for": round(now - server[1], 3),
                        "cid": server[2]} if server else "not accepted"),
            "acceptor": {"step": step, "for": round(now - since, 3), "accepts": accepts,
                         **self.acceptor_misses},
            "listener_readable": bool(self.listener_poll.poll(0)),
            "acceptor_thread": thread_state(self.acceptor_tid),
            "handoff_queue": self.handoff.qsize(), "inflight": len(self.inflight),
            "load": os.getloadavg()[0],
        }

    # -- server ---------------------------------------------------------------------
    def acceptor(self, listener: socket.socket) -> None:
        """poll() the listener (at most 0.2 s), then accept(): what socket.accept() with
        a timeout does, written out to count the polls that time out and the accepts
        that find nothing."""
        listener.setblocking(False)
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        state, misses = self.acceptor_state, self.acceptor_misses
        self.acceptor_tid = threading.get_native_id()
        # (until the clients are done: a phase stopped early at --max-stalls still serves
        # the connections in flight, or they would all time out waiting for a response)
        while not self.finished.is_set():
            state[0], state[1] = "poll", time.monotonic()
            if not poller.poll(200):
                misses["poll-timeout"] += 1
                continue
            state[0], state[1] = "accept", time.monotonic()
            try:
                conn, peer = listener.accept()
            except BlockingIOError:
                misses["eagain"] += 1
                continue
            except OSError as e:
                self.count_in(self.server_failures, f"accept:{type(e).__name__}")
                continue
            state[0], state[1], state[2] = "handoff", time.monotonic(), state[2] + 1
            self.serving(peer[1], "queued")
            self.handoff.put((conn, peer[1]))

    def worker(self) -> None:
        while True:
            item = self.handoff.get()
            if item is None:
                return
            conn, port = item
            try:
                self.serve(conn, port)
            except (OSError, threading.BrokenBarrierError) as e:
                self.count_in(self.server_failures, type(e).__name__)
            finally:
                conn.close()
                self.served.pop(port, None)

    def serve(self, conn: socket.socket, port: int) -> None:
        conn.settimeout(self.timeout)
        self.serving(port, "request")
        request = recv_exact(conn, REQUEST)
        if len(request) != REQUEST:
            self.count_in(self.server_failures, "short-request")
            return
        cid = int(request.split()[1])
        self.serving(port, "respond", cid)
        conn.sendall(b"RSP %d" % cid + b" " * (RESPONSE - len(b"RSP %d" % cid)))
        if self.order == "server":
            self.serving(port, "close")
            return                                   # close first
        if self.order == "simultaneous":
            with self.lock:
                barrier = self.barriers.get(cid)
            if barrier is None:
                self.count_in(self.server_failures, "no-barrier")
                return
            self.serving(port, "barrier")
            barrier.wait(self.timeout)
            self.serving(port, "close")
            return                                   # close together with the client
        self.serving(port, "drain")
        self.count_in(self.server_saw, drain_to_eof(conn))   # client, rst
        self.serving(port, "close")

    # -- clients --------------------------------------------------------------------
    def client(self) -> None:
        while True:
            cid = self.take_id()
            if cid is None:
                return
            conn = Conn(cid)
            with self.lock:
                self.inflight[cid] = conn
            try:
                conn.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                failure = f"socket:{type(e).__name__}"
            else:
                conn.enter("connect")
                failure = self.one(conn)
            conn.enter("done")
            self.record(conn, failure)

    def one(self, conn: Conn) -> str | None:
        cid, sock = conn.cid, conn.sock
        barrier = None
        if self.order == "simultaneous":
            barrier = threading.Barrier(2)
            with self.lock:
                self.barriers[cid] = barrier
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.address)
            conn.enter("send")
            req = b"REQ %d" % cid
            sock.sendall(req + b" " * (REQUEST - len(req)))
            conn.enter("response")
            response = recv_exact(sock, RESPONSE)
            if not response.startswith(b"RSP %d " % cid) or len(response) != RESPONSE:
                return "short-response"
            if self.order == "server":
                conn.enter("wait-fin")
                if sock.recv(1) != b"":              # wait for the server's FIN
                    return "data-after-response"
            elif self.order == "simultaneous":
                conn.enter("barrier")
                barrier.wait(self.timeout)
            elif self.order == "rst":
                conn.enter("linger")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            return None
        except socket.timeout:
            return f"{conn.step}:timeout"
        except threading.BrokenBarrierError:
            return f"{conn.step}:barrier"
        except OSError as e:
            return f"{conn.step}:{type(e).__name__}"
        finally:
            conn.enter("close")
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
        self.listener_poll = select.poll()          # the watchdog's look at the listener
        self.listener_poll.register(listener, select.POLLIN)
        load = os.getloadavg()[0]
        server = [threading.Thread(target=self.acceptor, args=(listener,), daemon=True)]
        server += [threading.Thread(target=self.worker, daemon=True)
                   for _ in range(self.concurrency + 1)]
        clients = [threading.Thread(target=self.client, daemon=True)
                   for _ in range(self.concurrency)]
        watchdog = threading.Thread(target=self.watchdog, daemon=True)
        for t in server + clients + [watchdog]:
            t.start()
        # A client thread ends after its last connection, which ends within a few socket
        # timeouts of the phase deadline (connect, exchange, close each bounded).
        end_by = self.deadline + 4 * self.timeout + 1
        for t in clients:
            t.join(max(0.0, end_by - time.monotonic()))
        hung_clients = sum(t.is_alive() for t in clients)
        self.stop.set()
        self.finished.set()
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
            "stall_steps": self.stall_steps, "stall_details": self.stall_details,
            "failures": self.failures, "server_failures": self.server_failures,
            "server_saw": self.server_saw, "hung_clients": hung_clients,
            "stopped_early": len(self.stall_ids) >= self.max_stalls,
            "elapsed": round(elapsed, 3),
            "rate": round(self.completed / elapsed, 1) if elapsed > 0 else 0.0,
            "load": [round(load, 2), round(os.getloadavg()[0], 2)],
        }


def inner(args: argparse.Namespace) -> int:
    churn = Churn(args.order, args.count, args.concurrency, args.seconds or args.deadline,
                  args.timeout, args.stall, args.max_stalls, args.details)
    result = churn.run()
    with churn.print_lock:
        print(json.dumps(result), flush=True)
    # Daemon threads stuck in a call (under a broken sandbox) must not keep us alive.
    os._exit(0)


# ---------------------------------------------------------------------------------------
# The driver: each phase natively and under sysemu, one table.

def inner_command(order: str, concurrency: int, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--inner", "--order", order,
           "--concurrency", str(concurrency), "--count", str(args.count),
           "--timeout", str(args.timeout), "--stall", str(args.stall),
           "--max-stalls", str(args.max_stalls), "--deadline", str(args.deadline),
           "--details", str(args.details)]
    if args.seconds:
        cmd += ["--seconds", str(args.seconds)]
    return cmd


# The TCP counters a stall report carries (Linux's names: /proc/net/netstat TcpExt and
# /proc/net/snmp Tcp; sysemu's Net.mib has the same names).
COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPTimeouts",
            "RetransSegs", "TW", "TWRecycled", "TWKilled", "PAWSTimewait",
            "TCPACKSkippedTimeWait", "OutRsts", "EstabResets", "AttemptFails")


def host_counters() -> dict[str, int]:
    """COUNTERS of the host's network namespace (every program's, not only ours)."""
    found: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2]):
            for name, value in zip(names.split()[1:], values.split()[1:]):
                if name in COUNTERS and value.lstrip("-").isdigit():
                    found[name] = int(value)
    return found


class Looker:
    """Looks at the network when the workload reports a stall (a `STALL` line), while it
    stalls: natively `ss -tano` of the stalled client's port and the listener, and the
    host's counters (as deltas from the phase's start); under sysemu the same through
    the sandbox's control socket (rows with their timers, the sandbox's counters, and
    how long the supervisor took to answer). At most `limit` looks a phase; reports
    that arrive together share one look.
    Under sysemu it also samples the supervisor's /proc/PID/schedstat (time on a CPU,
    time runnable but waiting for one) every 50 ms, and gives each stall the
    supervisor's share over the stall: `ran` s on a CPU and `waited` s in the run queue
    out of `over` s. A supervisor that waited most of a stall was starved of CPU."""

    def __init__(self, sandbox_id: str | None, limit: int) -> None:
        self.sandbox_id = sandbox_id
        self.limit = limit
        self.looks = 0
        self.views: dict[int, dict] = {}
        self.pending: queue.Queue = queue.Queue()
        self.base = host_counters() if sandbox_id is None else {}
        self.samples: list[tuple[float, int, int]] = []     # (when, run ns, wait ns)
        self.supervisor_state: str | None = None    # the last sample's state and call
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.sampler = None
        if sandbox_id is not None:
            self.sampler = threading.Thread(target=self.sample, daemon=True)
            self.sampler.start()

    def report(self, report: dict) -> None:
        report["arrived"] = time.monotonic()
        self.pending.put(report)

    def close(self) -> None:
        self.done.set()
        self.pending.put(None)
        self.thread.join(10)
        if self.sampler is not None:
            self.sampler.join(2)

    def sample(self) -> None:
        from sysemu.host.control import find_sandbox, request
        pid = None
        while pid is None and not self.done.wait(0.05):
            try:
                pid = request(find_sandbox(self.sandbox_id), {"op": "info"})["supervisor"]
            except Exception:
                continue
        while not self.done.wait(0.05):
            try:
                run, wait = map(int, Path(f"/proc/{pid}/schedstat").read_text().split()[:2])
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
            except (OSError, ValueError, IndexError):
                return
            self.supervisor_state = f"{state} in {call}"
            self.samples.append((time.monotonic(), run, wait))

    def supervisor_share(self, report: dict) -> dict | None:
        """How the supervisor spent the stall (up to the report): on a CPU or waiting."""
        t1 = report["arrived"]
        t0 = t1 - report.get("age", 0.0)
        samples = self.samples[:]
        before = [s for s in samples if s[0] <= t0] or samples[:1]
        upto = [s for s in samples if s[0] <= t1] or samples[-1:]
        if not before or not upto or upto[-1][0] <= before[-1][0]:
            return None
        (a, run0, wait0), (b, run1, wait1) = before[-1], upto[-1]
        return {"over": round(b - a, 3), "ran": round((run1 - run0) / 1e9, 3),
                "waited": round((wait1 - wait0) / 1e9, 3)}

    def run(self) -> None:
        while True:
            first = self.pending.get()
            if first is None:
                return
            reports = [first]
            while not self.pending.empty():
                more = self.pending.get()
                if more is None:
                    self.look(reports)
                    return
                reports.append(more)
            self.look(reports)

    def look(self, reports: list[dict]) -> None:
        if self.looks >= self.limit:
            return
        self.looks += 1
        t0 = time.monotonic()
        ports = {r["lport"] for r in reports if r.get("lport")}
        sport = reports[0]["sport"]
        try:
            if self.sandbox_id is None:
                rows, counters = self.native(ports, sport)
            else:
                rows, counters = self.sysemu(ports, sport)
        except Exception as e:          # a look must never end the run
            rows, counters = [f"look failed: {e!r}"], {}
        took = round((time.monotonic() - t0) * 1000, 1)
        for r in reports:
            pair = {f":{r.get('lport')}", f":{sport}"}
            mine = [row for row in rows if row.startswith("LISTEN")
                    or {w[w.rfind(":"):] for w in row.split()[3:5]} == pair]
            self.views[r["cid"]] = {"rows": mine, "counters": counters, "look_ms": took,
                                    "load": os.getloadavg()[0]}
            if self.sampler is not None:
                self.views[r["cid"]]["supervisor"] = self.supervisor_share(r)
                self.views[r["cid"]]["supervisor_now"] = self.supervisor_state

    def native(self, ports: set[int], sport: int) -> tuple[list[str], dict]:
        filt = " or ".join(f"( sport = :{p} and dport = :{sport} ) or "
                           f"( sport = :{sport} and dport = :{p} )" for p in sorted(ports))
        filt = f"( {filt} or ( sport = :{sport} and dport = :0 ) )" if filt \
            else f"sport = :{sport}"
        out = subprocess.run(["ss", "-tano", filt], capture_output=True, text=True,
                             timeout=10).stdout
        rows = [" ".join(line.split()) for line in out.splitlines()[1:] if line.strip()]
        now = host_counters()
        return rows, {k: now[k] - self.base.get(k, 0) for k in COUNTERS
                      if now.get(k, 0) - self.base.get(k, 0)}

    def sysemu(self, ports: set[int], sport: int) -> tuple[list[str], dict]:
        from sysemu.host.control import find_sandbox, request
        path = find_sandbox(self.sandbox_id)
        answer = request(path, {"op": "ss", "ports": sorted(ports | {sport})}, timeout=10)
        rows = []
        for r in answer.get("rows", []):
            if r.get("netid", "tcp") != "tcp":
                continue
            timer = f" timer:({r['timer'][0]},{r['timer'][1]}s,{r['timer'][2]})" \
                if r.get("timer") else ""
            rows.append(f"{r['state']} {r['recv_q']} {r['send_q']} "
                        f"{r['local'][0]}:{r['local'][1]} {r['peer'][0]}:{r['peer'][1]}"
                        f"{timer}")
        mib = request(path, {"op": "nstat", "names": list(COUNTERS)}, timeout=10).get("mib", {})
        return rows, {k: mib[k] for k in COUNTERS if mib.get(k)}


def run_inner(cmd: list[str], wall: float, looker: Looker | None = None,
              env: dict | None = None) -> dict:
    """Run one inner phase in its own process group; kill the group at `wall` seconds.
    Its STALL lines go to `looker` as they come; its views join the stall details, and
    the supervisor's notes of slow callbacks (SYSEMU_DEBUG_SLOW) join the result."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    lines: list[str] = []
    err: list[str] = []

    def read_out() -> None:
        for line in proc.stdout:
            if line.startswith("STALL ") and looker is not None:
                try:
                    looker.report(json.loads(line[6:]))
                except ValueError:
                    pass
            lines.append(line)

    readers = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=wall)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = True
    for t in readers:
        t.join(10)
    if looker is not None:
        looker.close()
    slow = [line[len("sysemu: slow: "):] for line in "".join(err).splitlines()
            if line.startswith("sysemu: slow: ")]
    stderr = "\n".join(line for line in "".join(err).splitlines()
                       if not line.startswith("sysemu: slow: "))[-400:]
    if killed:
        return {"error": f"wall bound {wall:.0f} s reached, killed", "stderr": stderr}
    for line in reversed(lines):
        if line.startswith("{"):
            result = json.loads(line)
            for detail in result.get("stall_details", []):
                if looker is not None and detail["cid"] in looker.views:
                    detail["net"] = looker.views[detail["cid"]]
            if slow:
                result["slow_count"], result["slow_notes"] = len(slow), slow[:40]
            return result
    return {"error": f"exit {proc.returncode}, no result", "stderr": stderr}


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


def fmt_load(r: dict | None) -> str:
    load = (r or {}).get("load")
    return f"{load[0]:.1f}-{load[1]:.1f}" if load else "-"


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    what = f"{args.seconds:g} s per phase" if args.seconds else f"{args.count} connections"
    hog = f", {args.hog} busy loops running" if args.hog else ""
    print(f"connection churn: {what}, stall = over {args.stall:g} s or failed, "
          f"socket timeout {args.timeout:g} s{hog}")
    print(f"  {'order':<13}{'mode':<8}{'completed n/s':>16}{'native c/s':>11}{'sysemu c/s':>11}"
          f"{'ratio':>7}  {'stalls native':<16}{'stalls sysemu':<16}load n / s")
    for row in results:
        n_rate, n_stalls = fmt_side(row["native"])
        s_rate, s_stalls = fmt_side(row.get("sysemu"))
        ratio = (f"{float(s_rate) / float(n_rate):.2f}"
                 if s_rate != "-" and n_rate not in ("-", "0") else "-")
        mode = f"{row['mode']}" + (f"x{row['concurrency']}" if row["mode"] == "conc" else "")
        done = "/".join(str(row.get(side, {}).get("completed", "-"))
                        for side in ("native", "sysemu"))
        print(f"  {row['order']:<13}{mode:<8}{done:>16}{n_rate:>11}{s_rate:>11}{ratio:>7}"
              f"  {n_stalls:<16}{s_stalls:<16}{fmt_load(row['native'])} / "
              f"{fmt_load(row.get('sysemu'))}")
    for row in results:
        for side in ("native", "sysemu"):
            r = row.get(side)
            if r and ("error" in r or r.get("failures") or r.get("server_failures")
                      or r.get("hung_clients") or row["order"] == "rst"):
                print(f"  {row['order']}/{row['mode']} {side}: " + json.dumps(
                    {k: r[k] for k in ("error", "stderr", "failures", "server_failures",
                                       "server_saw", "hung_clients", "completed", "started")
                     if r.get(k)}))
    for row in results:
        for side in ("native", "sysemu"):
            r = row.get(side) or {}
            if r.get("stalls"):
                print_stalls(f"{row['order']}/{row['mode']} {side}", r, args.show)
            if r.get("slow_count"):
                print(f"  {row['order']}/{row['mode']} {side}: {r['slow_count']} slow "
                      f"callbacks (over {args.debug_slow:g} s):")
                for note in r["slow_notes"][:args.show * 2]:
                    print(f"    {note}")


def print_stalls(where: str, r: dict, show: int) -> None:
    """Where the stalls of one run spent their time, and the first `show` in detail."""
    steps = ", ".join(f"{step} {n}" for step, n in
                      sorted(r.get("stall_steps", {}).items(), key=lambda kv: -kv[1]))
    print(f"  {where}: {r['stalls']} stalls, slowest step: {steps}")
    for d in r.get("stall_details", [])[:show]:
        took = " ".join(f"{k}={v}" for k, v in d.get("steps", {}).items() if v >= 0.05)
        line = f"    #{d['cid']} {d.get('failure') or 'slow'} {d.get('took')} s [{took}]"
        if "step" in d:
            server = d["server"] if isinstance(d["server"], str) else \
                f"{d['server']['step']} {d['server']['for']} s"
            line += (f"; at {d['at']} s in {d['step']} {d['in_step']} s, port "
                     f"{d['lport']}, server: {server}, acceptor {d['acceptor']['step']} "
                     f"{d['acceptor']['for']} s (accepts {d['acceptor']['accepts']}, "
                     f"empty polls {d['acceptor'].get('poll-timeout')}, EAGAIN "
                     f"{d['acceptor'].get('eagain')}), listener readable "
                     f"{d.get('listener_readable')}, queued {d['handoff_queue']}, in flight "
                     f"{d['inflight']}, load {d['load']:.1f}")
            if d.get("acceptor_thread"):
                line += f"\n      the acceptor's thread: {json.dumps(d['acceptor_thread'])}"
        print(line)
        net = d.get("net")
        if net:
            share = net.get("supervisor")
            if share:
                print(f"      the supervisor over {share['over']} s of it: on a CPU "
                      f"{share['ran']} s, waiting for one {share['waited']} s; "
                      f"at the look: {net.get('supervisor_now')}")
            print(f"      look {net['look_ms']} ms, counters {json.dumps(net['counters'])}")
            for text in net["rows"][:6]:
                print(f"      {text}")


def start_hogs(n: int) -> list[subprocess.Popen]:
    """n busy loops, each in a process of its own (stopped by stop_hogs, by pid)."""
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        hog.kill()
        hog.wait()


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
    p.add_argument("--details", type=int, default=50,
                   help="stalls of a phase described in the JSON")
    p.add_argument("--looks", type=int, default=30,
                   help="looks at the network (ss, counters) per phase when stalls are seen")
    p.add_argument("--show", type=int, default=5, help="stalls of a phase printed in detail")
    p.add_argument("--hog", type=int, default=0,
                   help="run this many busy loops throughout (an overloaded machine)")
    p.add_argument("--debug-slow", type=float, default=0.0, metavar="S",
                   help="under sysemu, note the supervisor's callbacks and collections "
                        "that held its loop over S s (SYSEMU_DEBUG_SLOW)")
    p.add_argument("--supervisor-nice", type=int, default=None, metavar="N",
                   help="sysemu run --supervisor-nice N (the supervisor's share of a "
                        "loaded machine's CPUs)")
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
    hogs = start_hogs(args.hog)
    try:
        for order in args.orders.split(","):
            for mode in args.modes.split(","):
                concurrency = MODES[mode] or args.concurrency
                cmd = inner_command(order, concurrency, args)
                row = {"order": order, "mode": mode, "concurrency": concurrency,
                       "native": run_inner(cmd, phase_wall(args), Looker(None, args.looks))}
                if not args.native_only:
                    sandbox_id = f"churn-{os.getpid()}-{order}-{mode}"
                    env = dict(os.environ, SYSEMU_DEBUG_SLOW=str(args.debug_slow)) \
                        if args.debug_slow else None
                    nice = [] if args.supervisor_nice is None else \
                        ["--supervisor-nice", str(args.supervisor_nice)]
                    row["sysemu"] = run_inner(
                        [str(args.sysemu), "run", "--id", sandbox_id, *nice, "--"] + cmd,
                        phase_wall(args), Looker(sandbox_id, args.looks), env)
                results.append(row)
                print(f"  done {order}/{mode}: " + ", ".join(
                    f"{side} {fmt_side(row[side])[0]} c/s, stalls {fmt_side(row[side])[1]}, "
                    f"load {fmt_load(row[side])}" for side in ("native", "sysemu")
                    if side in row), file=sys.stderr, flush=True)
    finally:
        stop_hogs(hogs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
