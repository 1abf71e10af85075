"""Differential select/poll probe: each scenario of tests/probes/poll_probe.py runs natively
and under `sysemu run --datapath model` (plain and traced), where sysemu serves select,
pselect6, poll and ppoll itself (fs/select.py); the JSON results (values, revents, errno
names, the time left) must be equal. The default data path runs them too: there the calls
are the host's, on the placeholders."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from test_e2e_differential import compare_probe, run
from test_e2e_programs import free_port

PROBE = Path(__file__).parent / "probes" / "poll_probe.py"

# The native data path's placeholder readiness (README: Limitations), pinned.
XFAIL = {
    "tcp_poll_masks": "the native data path's placeholder is an AF_UNIX pair end: a fresh "
                      "or bound socket shows POLLOUT without POLLHUP, and urgent data is "
                      "AF_UNIX's (POLLIN with POLLPRI, and after its byte is read)",
    "udp_poll_masks": "shutdown() of a UDP socket is not applied to its placeholder: poll "
                      "shows neither POLLRDHUP nor POLLHUP after it",
    "select_sets_and_errors": "urgent data on the native data path is AF_UNIX's: the "
                              "urgent byte makes the socket readable too",
}


def scenarios() -> list[str]:
    return run([sys.executable, str(PROBE), "--list"], timeout=30).stdout.split()


def scenario_params(xfail):
    return [pytest.param(n, marks=pytest.mark.xfail(reason=xfail[n], strict=True))
            if n in xfail else n for n in scenarios()]


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
@pytest.mark.parametrize("name", scenario_params({}))
def test_poll_native_equals_sysemu_model_datapath(name, traced, sysemu_bin, tmp_path):
    compare_probe(PROBE, name, traced, sysemu_bin, tmp_path, mode=("--datapath", "model"))


@pytest.mark.parametrize("name", scenario_params(XFAIL))
def test_poll_native_equals_sysemu(name, sysemu_bin, tmp_path):
    compare_probe(PROBE, name, False, sysemu_bin, tmp_path)


# --- real programs whose waits are poll/select, under --datapath model -----------------

SELECTORS_PY = r"""
import selectors, socket, socketserver, threading, select

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())

srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)    # serve_forever: poll
t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
t.start()
sel = selectors.PollSelector()
socks = []
for i in range(5):
    c = socket.create_connection(srv.server_address)
    c.setblocking(False)
    sel.register(c, selectors.EVENT_READ, i)
    c.sendall(f"hello {i}\n".encode())
    socks.append(c)
got = {}
while len(got) < 5:
    for key, ev in sel.select(timeout=5):
        got[key.data] = key.fileobj.recv(100).decode().strip()
print(sorted(got.items()))
r, w, x = select.select(socks, socks, [], 0)                       # pselect6
print(len(r), len(w), len(x))
for c in socks:
    c.close()
srv.shutdown()
srv.server_close()
t.join()
print("done")
"""

SELECTORS_WANT = ("[(0, 'HELLO 0'), (1, 'HELLO 1'), (2, 'HELLO 2'), (3, 'HELLO 3'), "
                  "(4, 'HELLO 4')]\n0 5 0\ndone\n")


@pytest.mark.parametrize("mode", [(), ("--datapath", "model")], ids=["native", "model"])
def test_python_socketserver_and_selectors(mode, sysemu_bin, tmp_path):
    script = tmp_path / "sel.py"
    script.write_text(SELECTORS_PY)
    trace = tmp_path / "trace.txt"
    native = run([sys.executable, str(script)])
    assert (native.returncode, native.stdout) == (0, SELECTORS_WANT), native.stderr
    done = run([str(sysemu_bin), "run", *mode, "--strace=poll,pselect6", "-o", str(trace),
                "--", sys.executable, str(script)])
    assert (done.returncode, done.stdout) == (0, SELECTORS_WANT), done.stderr[-3000:]
    calls = [line for line in trace.read_text().splitlines()
             if " poll(" in line or " pselect6(" in line]
    served = [line for line in calls if not line.endswith("= ?")]
    # the model serves them (their results traced); natively the host does (CONTINUE: `= ?`)
    assert calls and bool(served) == bool(mode), calls[:3]


SOCAT_SH = """
socat TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr SYSTEM:'tr a-z A-Z' &
srv=$!
for i in $(seq 50); do printf 'ping\\n' | socat -t 2 - TCP:127.0.0.1:$PORT 2>/dev/null \\
    && break; sleep 0.1; done
wait $srv
echo "socat exit=$?"
"""


def test_socat_model_datapath(sysemu_bin, tmp_path):
    """socat waits in pselect6 on a sysemu socket and pipes together (nc is not installed
    here; socat is the same job)."""
    if shutil.which("socat") is None:
        pytest.skip("needs socat (Debian package socat)")
    want = "PING\nsocat exit=0\n"
    port = str(free_port())
    native = run(["sh", "-c", SOCAT_SH], env={**os.environ, "PORT": port})
    assert native.stdout == want, native.stderr
    port = str(free_port())
    trace = tmp_path / "trace.txt"
    done = run([str(sysemu_bin), "run", "--datapath", "model", "--strace=pselect6", "-o",
                str(trace), "--", "sh", "-c", SOCAT_SH], env={**os.environ, "PORT": port})
    assert (done.returncode, done.stdout) == (0, want), done.stderr[-3000:]
    assert " pselect6(" in trace.read_text()
