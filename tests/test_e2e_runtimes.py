"""Programs of another runtime end to end: Node.js (libuv's epoll loop, its own HTTP
stack and dgram sockets, dns.lookup through getaddrinfo on its thread pool), natively and
under `sysemu run` (both data paths), each run compared with the native one.

- HTTP with a new connection per request (`Connection: close`, no keep-alive agent):
  every request answered, none failed, as natively;
- UDP echo with 32 datagrams outstanding: every datagram back, in order (on loopback
  Linux loses none while the receive queue has room);
- SIGTERM to the server while it waits in epoll: its handler runs, it closes and exits 0;
- dns.lookup('localhost') answers what it answers natively.

The bench behind these (longer runs, Go, Java and Rust programs, rates) is in README
"Other runtimes". Skipped, saying so, without node (Debian package nodejs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_e2e_programs import free_port, need, run_sh

NODE_PROGRAMS = Path(__file__).parent / "probes" / "node_programs.js"
MODES = {"native": None, "sysemu": (), "model": ("--datapath", "model")}

SCRIPT = """
N="node {programs}"
$N http-server $PORT > "$D/http-server.out" 2>&1 &
srv=$!
until_ok 100 grep -q listening "$D/http-server.out" || echo "http server never listened"
echo "http $($N http-client $PORT {requests})"
kill -TERM $srv
wait $srv
echo "http-server exit=$? $(grep -c 'server closed' "$D/http-server.out")"
$N udp-server $UPORT > "$D/udp-server.out" 2>&1 &
usrv=$!
until_ok 100 grep -q listening "$D/udp-server.out" || echo "udp server never listened"
echo "udp $($N udp-client $UPORT {datagrams})"
wait $usrv
echo "udp-server exit=$?"
echo "lookup $($N lookup)"
"""


def run_node(mode: str, sysemu_bin: Path, tmp_path: Path, requests: int = 300,
             datagrams: int = 2000) -> dict:
    script = SCRIPT.format(programs=NODE_PROGRAMS, requests=requests, datagrams=datagrams)
    workdir = tmp_path / mode
    workdir.mkdir()
    options = MODES[mode]
    done = run_sh(script, None if options is None else sysemu_bin, timeout=90,
                  env={"PORT": str(free_port()), "UPORT": str(free_port()),
                       "D": str(workdir)}, options=options or ())
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    result = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        result[key] = json.loads(value) if value.startswith("{") else value
    return result


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    need("node", package="nodejs")
    return run_node("native", None, tmp_path_factory.mktemp("node-native"))


@pytest.mark.parametrize("mode", ["sysemu", "model"])
def test_node_programs(mode, native, sysemu_bin, tmp_path):
    got = run_node(mode, sysemu_bin, tmp_path)
    want = {"http": {"ok": 300, "failed": 0, "errors": {}},
            "http-server": "exit=0 1",
            "udp": {"sent": 2000, "received": 2000, "reordered": 0, "missing": 0},
            "udp-server": "exit=0"}
    for key, value in want.items():
        assert native[key] == value, ("native", key, native)
        assert got[key] == value, (mode, key, got)
    assert got["lookup"] == native["lookup"]
    assert native["lookup"]["addresses"]
