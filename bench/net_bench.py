"""Network benchmarks: sysemu against native, in one run, as ratios (not a test).

    python bench/net_bench.py [--rounds N] [--quick]

Each figure runs natively and under `sysemu run` alternately, N rounds, and the medians
are compared: bulk TCP throughput between two programs, connect+accept+echo+close rate,
HTTP keep-alive requests/s (nginx + wrk, Debian's default-style config and with
open_file_cache), redis-benchmark SET/GET. Servers bind 127.0.0.1 on free ports and are
stopped by the script that started them.
"""
from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSEMU = Path(sys.executable).with_name("sysemu")

NGINX_CONF = """worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off; {extra}
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen 127.0.0.1:{port}; root {d}/www; }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], sandboxed: bool, timeout: float = 120) -> str:
    if sandboxed:
        cmd = [str(SYSEMU), "run", "--"] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-500:]}")
    return done.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"no {pattern!r} in output:\n{text[-800:]}")
    return float(m.group(1))


def bench_c(probe: Path, mode: str, arg: str):
    unit = "MB/s" if mode == "bulk" else "conn/s"
    return lambda sandboxed: number(r"([\d.]+) " + re.escape(unit),
                                    run([str(probe), mode, arg], sandboxed))


def wait_then(port: int) -> str:
    """Shell: wait (up to 10 s) until something answers HTTP on `port`."""
    return (f"i=0; until curl -s -o /dev/null http://127.0.0.1:{port}/; do i=$((i+1)); "
            f"[ $i -gt 100 ] && break; sleep 0.1; done; ")


def wrk_rate(out: str) -> float:
    """wrk's Requests/sec, refusing a run with errors (they would count as requests)."""
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"the server answered errors:\n{out}")
    return number(r"Requests/sec:\s+([\d.]+)", out)


def bench_nginx(workdir: Path, extra: str, seconds: int, connections: int = 4):
    def one(sandboxed: bool) -> float:
        port = free_port()
        d = workdir / f"nginx{port}"
        (d / "www").mkdir(parents=True)
        (d / "www" / "index.html").write_text("<html>hello from sysemu</html>\n")
        for path in (d, d / "www", d / "www" / "index.html"):
            path.chmod(0o755)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=d, port=port, extra=extra))
        script = (f"nginx -c {conf} -p {d} && {wait_then(port)}"
                  f"wrk -t1 -c{connections} -d{seconds}s http://127.0.0.1:{port}/index.html; "
                  f"rc=$?; nginx -c {conf} -p {d} -s quit; exit $rc")
        return wrk_rate(run(["sh", "-c", script], sandboxed))
    return one


def bench_redis(requests: int, test: str):
    def one(sandboxed: bool) -> float:
        port = free_port()
        script = (f"redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no "
                  f"--daemonize yes --logfile /dev/null && sleep 0.5 && "
                  f"redis-benchmark -p {port} -n {requests} -q -t {test.lower()}; rc=$?; "
                  f"redis-cli -p {port} shutdown nosave >/dev/null 2>&1; exit $rc")
        out = run(["sh", "-c", script], sandboxed)
        return number(test.upper() + r": ([\d.]+) requests per second", out.replace("\r", "\n"))
    return one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    args = parser.parse_args()
    if not SYSEMU.exists():
        print(f"no sysemu at {SYSEMU}: run from the project's venv", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sysemu-bench-"))
    work.chmod(0o755)       # nginx's workers (user nobody) serve files from here
    try:
        probe = work / "net_bench"
        subprocess.run(["gcc", "-O2", "-o", str(probe), str(HERE / "net_bench.c")], check=True)
        quick = args.quick
        plan = [("bulk TCP throughput (MB/s)", bench_c(probe, "bulk", "500" if quick else "2000"),
                 0.85),
                ("connect+accept+echo+close (conn/s)",
                 bench_c(probe, "connrate", "300" if quick else "1500"), 0.50)]
        secs = 1 if quick else 3
        if shutil.which("nginx") and shutil.which("wrk"):
            plan.append(("nginx keep-alive, default config (req/s)",
                         bench_nginx(work, "", secs), 0.90))
            plan.append(("nginx keep-alive, open_file_cache (req/s)",
                         bench_nginx(work, "open_file_cache max=100;", secs), 0.90))
        else:
            print("nginx/wrk not installed: HTTP keep-alive skipped")
        if shutil.which("redis-server") and shutil.which("redis-benchmark"):
            n = "5000" if quick else "20000"
            plan.append(("redis-benchmark SET (req/s)", bench_redis(int(n), "SET"), 0.90))
            plan.append(("redis-benchmark GET (req/s)", bench_redis(int(n), "GET"), 0.90))
        else:
            print("redis-server not installed: redis skipped")
        print(f"sysemu network benchmarks: median of {args.rounds} rounds, native and "
              f"sysemu alternating")
        print(f"  {'figure':<44} {'native':>11} {'sysemu':>11} {'ratio':>7}  target")
        for name, fn, target in plan:
            native, emulated = [], []
            for _ in range(args.rounds):
                native.append(fn(False))
                emulated.append(fn(True))
            n, e = statistics.median(native), statistics.median(emulated)
            ratio = e / n
            verdict = "met" if ratio >= target else "MISSED"
            print(f"  {name:<44} {n:>11.1f} {e:>11.1f} {ratio:>7.2f}  >= {target:.2f} {verdict}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
