"""`make bench`: one table, native and sysemu in the same run, ratios included (issue 10).

    python bench/table.py [--rounds N] [--quick] [--only REGEX]

Every figure runs natively and under `sysemu run` in turn (interleaved rounds, medians),
so load from elsewhere on the machine falls on both alike. "speed" is sysemu's speed as
a fraction of native (> 1: faster than native), whatever the unit. Rows:

  the floor          bench/notify_floor.c, a minimal C responder, without and with
                     SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (no sysemu: what a trap costs)
  answered call      getsockname on sysemu's AF_INET socket; also as a multiple of the
                     floor with the synchronous wake-up
  untrapped call     getppid, which the filter allows: against no filter and against a
                     one-instruction allow-all filter (bench/allow_all.c)
  open+close         openat of a host file: trapped, then the host's (CONTINUE)
  CPU per operation  the three above as CPU time (program + supervisor + kernel), which
                     a shared machine disturbs far less than wall time
  connections        connect + 1-byte echo + close, sequential and 32 clients at once
  HTTP               nginx keep-alive (16 connections), default config and with
                     open_file_cache; Python http.server (HTTP/1.0: a connection a request)
  redis              redis-benchmark SET and GET
  bulk, ping-pong    one connection: MB/s, and 1-byte round trips (also with
                     sendmsg/recvmsg, which sysemu traps: what UDP costs TCP programs)
  UDP                request/response (a server's recvfrom/sendto, a connected client's
                     send/recv) in us/rtt; bulk 1400-byte datagrams in MB/s received
  --datapath model   http.server, bulk and ping-pong again with every byte through
                     sysemu's TCP (the "sysemu" column runs `sysemu run --datapath model`)
  idle connections   the supervisor's memory per connection, 10,000 held open

Not a test: nothing here passes or fails; the targets are printed beside the figures.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from net_bench import (bench_nginx, bench_redis, free_port, number, wait_then,  # noqa: E402
                       wrk_rate)

SYSEMU = Path(sys.executable).with_name("sysemu")


def build(work: Path) -> dict[str, Path]:
    exes = {}
    for name, extra in (("notify_floor", []), ("syscall_probe", []), ("net_bench", []),
                        ("allow_all", [])):
        exe = work / name
        subprocess.run(["gcc", "-O2", "-Wall", *extra, "-o", str(exe), str(HERE / f"{name}.c")],
                       check=True)
        exes[name] = exe
    return exes


def output(cmd: list[str], timeout: float = 180) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} exited {done.returncode}: "
                           f"{(done.stdout + done.stderr)[-400:]}")
    return done.stdout


def cpu_seconds(cmd: list[str]) -> float:
    """User + system CPU of `cmd` and every process it waited for (the supervisor and
    the program under `sysemu run`): RUSAGE_CHILDREN before and after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_per_op(prefix: list[str], make_args, n: int, ops_per_n: float) -> float:
    """Microseconds of CPU per operation, whoever spends it (program, supervisor,
    kernel on their behalf): the CPU of a run of 2n operations less that of a run of n,
    which cancels start-up and exit. The machine being shared moves wall times far more
    than CPU times."""
    small = cpu_seconds([*prefix, *make_args(n)])
    large = cpu_seconds([*prefix, *make_args(2 * n)])
    return max(0.0, large - small) / (n * ops_per_n) * 1e6


def probe_ns(prefix: list[str], exe: Path, *args) -> float:
    """Median ns/call of one probe process's repeats."""
    out = output([*prefix, str(exe), *map(str, args)])
    values = [float(line.split()[1]) for line in out.splitlines() if line.startswith("ns ")]
    if not values:
        raise RuntimeError(f"{exe.name}: {out.strip()[-200:]}")
    return statistics.median(values)


class Row:
    """One figure: fn(mode) for each mode; `lower` when smaller is better (time per op)."""

    def __init__(self, name: str, unit: str, fns: dict, lower: bool, target: str = ""):
        self.name, self.unit, self.fns, self.lower, self.target = name, unit, fns, lower, target
        self.samples: dict[str, list[float]] = {mode: [] for mode in fns}
        self.failed: str | None = None

    def run_round(self) -> None:
        if self.failed:
            return
        for mode, fn in self.fns.items():
            try:
                self.samples[mode].append(fn())
            except Exception as exc:  # noqa: BLE001 - a figure that cannot run says why
                self.failed = f"{mode}: {exc}"
                return

    def median(self, mode: str) -> float | None:
        values = self.samples.get(mode)
        return statistics.median(values) if values else None

    def speed(self, mode: str, base: str = "native") -> float | None:
        a, b = self.median(mode), self.median(base)
        if a is None or b is None or a == 0 or b == 0:
            return None
        return b / a if self.lower else a / b


def idle_memory(exes: dict[str, Path], held: int) -> float:
    """KiB of supervisor memory per idle connection: its RSS with `held` connections open,
    less its RSS with 10, divided by the difference."""
    rss = {}
    for n in (10, held):
        proc = subprocess.Popen([str(SYSEMU), "run", "--", str(exes["net_bench"]), "idle",
                                 str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("held"):
                raise RuntimeError(f"idle {n}: {line!r} {proc.stderr.read()[-300:]}")
            time.sleep(0.5)             # let the close-detection sweep see them all
            rss[n] = sum(_rss_kib(pid) for pid in _children(proc.pid))
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return (rss[held] - rss[10]) / (held - 10)


def _children(pid: int) -> list[int]:
    """The supervisor: the `sysemu run` process's children (the program is below it)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def http_server(seconds: int, options: tuple[str, ...] = ()):
    """Python's http.server (HTTP/1.0: one connection per request) under wrk; `options`
    of `sysemu run` for the sandboxed run."""
    def one(sandboxed: bool) -> float:
        port = free_port()
        d = Path(tempfile.mkdtemp(prefix="sysemu-http-"))
        (d / "index.html").write_text("<html>hello from sysemu</html>\n")
        script = (f"cd {d} && {sys.executable} -m http.server --bind 127.0.0.1 {port} "
                  f">/dev/null 2>&1 & srv=$!; {wait_then(port)}"
                  f"wrk -t1 -c4 -d{seconds}s http://127.0.0.1:{port}/index.html; rc=$?; "
                  f"kill $srv; wait $srv 2>/dev/null; exit $rc")
        cmd = ["sh", "-c", script]
        if sandboxed:
            cmd = [str(SYSEMU), "run", *options, "--"] + cmd
        try:
            out = output(cmd)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return wrk_rate(out)
    return one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections held")
    parser.add_argument("--only", metavar="REGEX",
                        help="only the rows whose name matches (the floor rows are kept)")
    args = parser.parse_args()
    if not SYSEMU.exists():
        print(f"no sysemu next to {sys.executable}: run from the project's venv",
              file=sys.stderr)
        return 2
    q = args.quick
    work = Path(tempfile.mkdtemp(prefix="sysemu-bench-"))
    work.chmod(0o755)       # nginx's workers (user nobody) serve files from here
    try:
        exes = build(work)
        sysemu = [str(SYSEMU), "run", "--"]
        allow = [str(exes["allow_all"])]
        floor, probe, nb = exes["notify_floor"], exes["syscall_probe"], exes["net_bench"]
        trapped, cheap = (2000, 100_000) if q else (10_000, 1_000_000)
        secs = 1 if q else 3

        def c_rate(mode: str, n: int, prefix: list[str], pattern: str):
            return lambda: number(pattern, output([*prefix, str(nb), mode, str(n)]))

        rows = [
            Row("floor: C responder, async wake-up", "us/call",
                {"floor": lambda: probe_ns([], floor, trapped, 3) / 1e3}, True),
            Row("floor: C responder, SYNC_WAKE_UP", "us/call",
                {"floor": lambda: probe_ns([], floor, trapped, 3, "sync") / 1e3}, True),
            Row("answered getsockname (AF_INET)", "us/call",
                {"native": lambda: probe_ns([], probe, "getsockname_inet", cheap, 3) / 1e3,
                 "sysemu": lambda: probe_ns(sysemu, probe, "getsockname_inet", trapped, 3)
                 / 1e3}, True, "<= 3x floor(sync)"),
            Row("untrapped getppid", "ns/call",
                {"native": lambda: probe_ns([], probe, "getppid", cheap, 3),
                 "allow-all": lambda: probe_ns(allow, probe, "getppid", cheap, 3),
                 "sysemu": lambda: probe_ns(sysemu, probe, "getppid", cheap, 3)}, True,
                "~1.0"),
            Row("open+close of a host file", "us/call",
                {"native": lambda: probe_ns([], probe, "open", cheap // 10, 3) / 1e3,
                 "sysemu": lambda: probe_ns(sysemu, probe, "open", trapped, 3) / 1e3}, True),
        ]
        # CPU per operation (one repeat after one warm-up: 2 x n calls a probe run).
        for name, make, n, per in (
                ("CPU: answered getsockname", lambda k: [str(probe), "getsockname_inet",
                                                         str(k), "1"], trapped, 2),
                ("CPU: open+close of a host file", lambda k: [str(probe), "open", str(k),
                                                              "1"], trapped, 2),
                ("CPU: connect+accept+close, sequential",
                 lambda k: [str(nb), "connrate", str(k)], 300 if q else 1500, 1)):
            rows.append(Row(name, "us CPU",
                            {"native": lambda a=make, n=n, p=per: cpu_per_op([], a, n, p),
                             "sysemu": lambda a=make, n=n, p=per: cpu_per_op(sysemu, a, n, p)},
                            True))
        for name, mode, n, target in (
                ("connect+accept+close, sequential", "connrate", 300 if q else 1500, ">= 0.5"),
                ("connect+accept+close, 32 clients", "connpar", 320 if q else 1600, ">= 0.3")):
            rows.append(Row(name, "conn/s",
                            {"native": c_rate(mode, n, [], r"([\d.]+) conn/s"),
                             "sysemu": c_rate(mode, n, sysemu, r"([\d.]+) conn/s")},
                            False, target))
        if shutil.which("nginx") and shutil.which("wrk"):
            for name, extra, target in (("nginx keep-alive, default config", "", ">= 0.8"),
                                        ("nginx keep-alive, open_file_cache",
                                         "open_file_cache max=100;", ">= 1.0")):
                fn = bench_nginx(work, extra, secs, connections=16)
                rows.append(Row(name, "req/s", {"native": lambda fn=fn: fn(False),
                                                "sysemu": lambda fn=fn: fn(True)},
                                False, target))
        if shutil.which("wrk"):
            fn = http_server(secs)
            rows.append(Row("Python http.server, conn per request", "req/s",
                            {"native": lambda fn=fn: fn(False),
                             "sysemu": lambda fn=fn: fn(True)},
                            False, ">= 0.5"))
        if shutil.which("redis-server") and shutil.which("redis-benchmark"):
            for test in ("SET", "GET"):
                fn = bench_redis(5000 if q else 20000, test)
                rows.append(Row(f"redis-benchmark {test}", "req/s",
                                {"native": lambda fn=fn: fn(False),
                                 "sysemu": lambda fn=fn: fn(True)}, False, ">= 1.0"))
        mb = "300" if q else "2000"
        rows.append(Row("bulk, one connection", "MB/s",
                        {"native": c_rate("bulk", int(mb), [], r"([\d.]+) MB/s"),
                         "sysemu": c_rate("bulk", int(mb), sysemu, r"([\d.]+) MB/s")},
                        False, ">= 1.0"))
        rtts = 2000 if q else 20000
        rows.append(Row("ping-pong, 1-byte round trip", "us/rtt",
                        {"native": c_rate("pingpong", rtts, [], r"([\d.]+) us/rtt"),
                         "sysemu": c_rate("pingpong", rtts, sysemu, r"([\d.]+) us/rtt")},
                        True))
        rows.append(Row("ping-pong with sendmsg/recvmsg (trapped)", "us/rtt",
                        {"native": c_rate("pingpong_msg", rtts, [], r"([\d.]+) us/rtt"),
                         "sysemu": c_rate("pingpong_msg", rtts, sysemu, r"([\d.]+) us/rtt")},
                        True))
        rr = 2000 if q else 10000
        rows.append(Row("UDP request/response (recvfrom/sendto)", "us/rtt",
                        {"native": c_rate("udp_rr", rr, [], r"([\d.]+) us/rtt"),
                         "sysemu": c_rate("udp_rr", rr, sysemu, r"([\d.]+) us/rtt")},
                        True))
        udp_mb = 50 if q else 200
        rows.append(Row("UDP bulk, 1400-byte datagrams", "MB/s",
                        {"native": c_rate("udp_bulk", udp_mb, [], r"([\d.]+) MB/s"),
                         "sysemu": c_rate("udp_bulk", udp_mb, sysemu, r"([\d.]+) MB/s")},
                        False))
        # The model data path: a trap per data call, every byte through sysemu's TCP.
        model = [str(SYSEMU), "run", "--datapath", "model", "--"]
        if shutil.which("wrk"):
            fn = http_server(secs, ("--datapath", "model"))
            rows.append(Row("http.server, --datapath model", "req/s",
                            {"native": lambda fn=fn: fn(False),
                             "sysemu": lambda fn=fn: fn(True)}, False))
        mb_model = "100" if q else "500"
        rows.append(Row("bulk, --datapath model", "MB/s",
                        {"native": c_rate("bulk", int(mb_model), [], r"([\d.]+) MB/s"),
                         "sysemu": c_rate("bulk", int(mb_model), model, r"([\d.]+) MB/s")},
                        False))
        rtts_model = 1000 if q else 5000
        rows.append(Row("ping-pong, --datapath model", "us/rtt",
                        {"native": c_rate("pingpong", rtts_model, [], r"([\d.]+) us/rtt"),
                         "sysemu": c_rate("pingpong", rtts_model, model,
                                          r"([\d.]+) us/rtt")}, True))
        if args.only:
            rows = [row for row in rows
                    if "floor" in row.fns or re.search(args.only, row.name)]
        for r in range(args.rounds):
            for row in rows:
                row.run_round()
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        try:
            per_conn = (f"{idle_memory(exes, args.idle):.2f}"
                        if not args.only or re.search(args.only, "memory") else "not run")
        except Exception as exc:  # noqa: BLE001
            per_conn = f"failed: {exc}"
        floor_sync = rows[1].median("floor")
        print_table(rows, args, floor_sync, per_conn)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_table(rows: list[Row], args, floor_sync: float | None, per_conn: str) -> None:
    print(f"sysemu benchmark: medians of {args.rounds} interleaved rounds; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
          f"kernel {os.uname().release}")
    print(f"| {'figure':<40} | {'unit':<7} | {'native':>9} | {'sysemu':>9} | "
          f"{'speed':>6} | target")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 11}|{'-' * 11}|{'-' * 8}|-------")
    for row in rows:
        if row.failed:
            print(f"| {row.name:<40} | {row.unit:<7} | failed: {row.failed[:80]}")
            continue
        if "floor" in row.fns:
            print(f"| {row.name:<40} | {row.unit:<7} | {'':>9} | {row.median('floor'):>9.2f} "
                  f"| {'':>6} |")
            continue
        native, emulated = row.median("native"), row.median("sysemu")
        speed = row.speed("sysemu")
        target = row.target
        if "allow-all" in row.fns:
            allow = row.speed("sysemu", "allow-all")
            target = (f"vs allow-all filter {allow:.3f} "
                      f"(allow-all {row.median('allow-all'):.1f} ns)")
        if row.name.startswith("answered") and floor_sync:
            target += f"; {emulated / floor_sync:.1f}x floor(sync)"
        print(f"| {row.name:<40} | {row.unit:<7} | {native:>9.2f} | {emulated:>9.2f} | "
              f"{speed:>6.3f} | {target}")
    print(f"| {'supervisor memory per idle connection':<40} | {'KiB':<7} | {'':>9} | "
          f"{per_conn:>9} | {'':>6} | <= 8 ({args.idle} held)")


if __name__ == "__main__":
    sys.exit(main())
