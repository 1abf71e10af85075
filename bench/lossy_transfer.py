"""A bulk transfer through the model's TCP on a lossy link, timed, checksum checked.

    python bench/lossy_transfer.py [--mb N] [--fault SPEC ...] [--seed N] [--rounds R]
                                   [--sysemu PATH] [--json FILE]

Runs one program under `sysemu run --datapath model`: a server thread and a client in one
Python process, the client sending N MB (default 100) of a known stream in writes of
various sizes, the server hashing what it reads and answering the count and the SHA-256.
Each round runs once without faults and once with them (default `--fault loss:pct=1`),
and prints a line per run: time, throughput, whether the checksum matched, and the
sandbox's retransmission counters (/proc/net/snmp RetransSegs, netstat TCPTimeouts,
TCPRenoRecovery, TCPFastRetrans, TCPOFOQueue). A wrong checksum exits 1.

Not a CI test (100 MB takes seconds to minutes on a loaded machine).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

WORKLOAD = r"""
import hashlib, socket, sys, threading
size = int(sys.argv[1])
block = hashlib.shake_256(b"sysemu-lossy").digest(1 << 20)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
result = {}

def server():
    conn, _ = srv.accept()
    digest, total = hashlib.sha256(), 0
    while True:
        chunk = conn.recv(1 << 18)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    conn.sendall(f"{total} {digest.hexdigest()}".encode())
    conn.close()

t = threading.Thread(target=server)
t.start()
c = socket.create_connection(srv.getsockname())
expect = hashlib.sha256()
sent, i = 0, 0
while sent < size:
    n = min(size - sent, (1 << 20) - (i % 13) * 4099)     # not segment-aligned
    piece = block[:n]
    c.sendall(piece)
    expect.update(piece)
    sent += n
    i += 1
c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = c.recv(256)
    if not chunk:
        break
    reply += chunk
t.join()
c.close()
ok = reply.decode() == f"{size} {expect.hexdigest()}"
snmp = [l.split() for l in open("/proc/net/snmp") if l.startswith("Tcp:")]
ext = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
tcp = dict(zip(snmp[0][1:], map(int, snmp[1][1:])))
tcpext = dict(zip(ext[0][1:], map(int, ext[1][1:])))
print(__import__("json").dumps({
    "ok": ok, "bytes": size,
    "counters": {"RetransSegs": tcp["RetransSegs"], "OutSegs": tcp["OutSegs"],
                 "InSegs": tcp["InSegs"], "InCsumErrors": tcp["InCsumErrors"],
                 **{k: tcpext[k] for k in ("TCPTimeouts", "TCPRenoRecovery",
                                           "TCPFastRetrans", "TCPOFOQueue",
                                           "TCPSlowStartRetrans", "DelayedACKs",
                                           "DelayedACKLost")}}}))
"""


def one_run(sysemu: str, size: int, faults: list[str], seed: int | None, script: str) -> dict:
    argv = [sysemu, "run", "--datapath", "model"]
    if seed is not None:
        argv += ["--seed", str(seed)]
    for spec in faults:
        argv += ["--fault", spec]
    argv += ["--", sys.executable, script, str(size)]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        return {"ok": False, "error": done.stderr[-2000:], "seconds": elapsed,
                "faults": faults}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(seconds=elapsed, faults=faults, mb_per_s=size / elapsed / 1e6)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--fault", action="append", default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--sysemu", default=os.path.join(os.path.dirname(sys.executable), "sysemu"))
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    faults = args.fault or ["loss:pct=1"]
    size = int(args.mb * 1_000_000)
    runs = []
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(WORKLOAD)
        script = f.name
    try:
        for _ in range(args.rounds):
            for fs in ([], faults):
                r = one_run(args.sysemu, size, fs, args.seed, script)
                runs.append(r)
                label = " ".join(fs) or "no faults"
                print(f"{label:32} {r['seconds']:8.2f} s  {r.get('mb_per_s', 0):8.1f} MB/s  "
                      f"checksum {'ok' if r['ok'] else 'WRONG'}  {r.get('counters', r.get('error'))}",
                      flush=True)
    finally:
        os.unlink(script)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
