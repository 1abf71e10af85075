"""Connection churn end to end: a new connection per request, thousands in a row inside
one sandbox, natively and under `sysemu run` (bench/churn.py's workload, bounded).

Every connection must complete, none in more than 1 s (a stall: before Linux's
TIME_WAIT handling, a client reusing a port sat in SYN-SENT next to the server's
TIME_WAIT of the same 4-tuple until it expired)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHURN = Path(__file__).resolve().parent.parent / "bench" / "churn.py"


def churn(cmd_prefix: list[str], n: int, orders: str) -> dict:
    cmd = cmd_prefix + ["python3", str(CHURN), "--inner", "--n", str(n), "--orders", orders]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("orders, n", [("server", 3000), ("client,both,rst", 500)])
def test_sequential_churn_has_no_stalls(sysemu_bin, orders, n):
    native = churn([], n, orders)
    sandboxed = churn([str(sysemu_bin), "run", "--"], n, orders)
    for where, results in (("native", native), ("sysemu", sandboxed)):
        for order, r in results.items():
            assert (r["connections"], r["errors"], r["stalls"]) == (n, 0, 0), (where, order, r)


def test_same_seed_same_ports(sysemu_bin, tmp_path):
    """`sysemu run --seed N` picks the same ephemeral ports in every run; another seed
    (or none: a random secret per run) picks others."""
    probe = tmp_path / "ports.py"
    probe.write_text(
        "import socket\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
        "ports = [s.getsockname()[1]]\n"
        "for _ in range(4):\n"
        "    c = socket.socket(); c.connect(s.getsockname()); a, _ = s.accept()\n"
        "    ports.append(c.getsockname()[1]); c.close(); a.close()\n"
        "print(ports)\n")

    def ports(*opts: str) -> str:
        done = subprocess.run([str(sysemu_bin), "run", *opts, "--", sys.executable,
                               str(probe)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    first = ports("--seed", "7")
    assert ports("--seed", "7") == first
    assert ports("--seed", "8") != first
    assert ports() != ports()
