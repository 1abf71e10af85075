"""An event-driven server under connection churn, natively and under `sysemu run`.

    python bench/event_server_churn.py [--connections N]

nginx (one worker, epoll, `keepalive_timeout 0`: a new connection per request) answers
N sequential HTTP requests from a Node.js client (or a Python one without node). Each
side's accept4 calls are counted from a trace (strace -f natively, `sysemu run
--strace=accept4` under sysemu): an accept4 that fails with EAGAIN right after epoll said
the listener was readable is a false readiness (Linux: none with one acceptor). Prints
requests ok/failed, connections per second and accept4 calls/EAGAINs for each side; exits
1 if sysemu shows a false EAGAIN, a failed request, or a hang (a run over its timeout).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SYSEMU = Path(sys.executable).with_name("sysemu")

NGINX_CONF = """worker_processes 1;
daemon off;
master_process off;
error_log {work}/error.log info;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_timeout 0;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""

NODE_CLIENT = """
const http = require('http'), net = require('net');
const port = +process.argv[2], n = +process.argv[3];
const agent = new http.Agent({ keepAlive: false, maxSockets: 1 });
let ok = 0, errors = 0, t0;
function one(i) {
  if (i === n) {
    console.log(`requests ok ${ok} failed ${errors} ${(n / ((Date.now() - t0) / 1000)).toFixed(0)} conn/s`);
    return;
  }
  http.get({ host: '127.0.0.1', port, path: '/', agent }, res => {
    let body = ''; res.on('data', d => body += d);
    res.on('end', () => { body === 'ok' ? ok++ : errors++; one(i + 1); });
  }).on('error', () => { errors++; one(i + 1); });
}
(function wait() {                  // until nginx listens (not counted)
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); t0 = Date.now(); one(0); });
  s.on('error', () => setTimeout(wait, 50));
})();
"""

PY_CLIENT = """
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
while True:
    try:
        socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError:
        time.sleep(0.05)
ok = failed = 0
t0 = time.monotonic()
for _ in range(n):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
        ok += data.endswith(b"ok"); failed += not data.endswith(b"ok")
    except OSError:
        failed += 1
print(f"requests ok {ok} failed {failed} {n / (time.monotonic() - t0):.0f} conn/s")
"""

BOTH = """#!/bin/sh
nginx -p {work} -c {work}/nginx.conf &
NGINX=$!
{client} {port} {n}
kill $NGINX
wait
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_side(work: Path, n: int, sandboxed: bool, timeout: float) -> dict:
    port = free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, port=port))
    if shutil.which("node"):
        (work / "client.js").write_text(NODE_CLIENT)
        client = f"node {work}/client.js"
    else:
        (work / "client.py").write_text(PY_CLIENT)
        client = f"{sys.executable} {work}/client.py"
    script = work / "both.sh"
    script.write_text(BOTH.format(work=work, client=client, port=port, n=n))
    script.chmod(0o755)
    trace = work / ("trace-sysemu" if sandboxed else "trace-native")
    if sandboxed:
        argv = [str(SYSEMU), "run", "--strace=accept4", "-o", str(trace), "--", str(script)]
    else:
        argv = ["strace", "-f", "-e", "trace=accept4", "-o", str(trace), str(script)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
        out, hung = done.stdout, False
    except subprocess.TimeoutExpired as exc:
        out, hung = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) \
            else (exc.stdout or ""), True
    lines = trace.read_text().splitlines() if trace.exists() else []
    accepts = [line for line in lines if "accept4(" in line and "resumed" not in line]
    m = re.search(r"requests ok (\d+) failed (\d+) (\d+) conn/s", out)
    return {"ok": int(m.group(1)) if m else 0, "failed": int(m.group(2)) if m else n,
            "conn/s": int(m.group(3)) if m else 0, "hung": hung,
            "accept4": len(accepts), "EAGAIN": sum("EAGAIN" in line for line in accepts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    missing = [tool for tool in ("nginx", "strace") if not shutil.which(tool)]
    if missing or not SYSEMU.exists():
        print(f"needs nginx, strace and sysemu ({', '.join(missing) or SYSEMU})",
              file=sys.stderr)
        return 2
    results = {}
    for name, sandboxed in (("native", False), ("sysemu", True)):
        with tempfile.TemporaryDirectory(prefix="sysemu-churn-") as tmp:
            work = Path(tmp)
            os.chmod(work, 0o755)
            results[name] = run_side(work, args.connections, sandboxed, args.timeout)
    print(f"{'':8} {'ok':>6} {'failed':>6} {'conn/s':>7} {'accept4':>8} {'EAGAIN':>7} hung")
    for name, r in results.items():
        print(f"{name:8} {r['ok']:>6} {r['failed']:>6} {r['conn/s']:>7} {r['accept4']:>8} "
              f"{r['EAGAIN']:>7} {r['hung']}")
    s = results["sysemu"]
    return 1 if s["EAGAIN"] or s["failed"] or s["hung"] else 0


if __name__ == "__main__":
    sys.exit(main())
