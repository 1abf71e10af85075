"""--publish and --allow-egress with real programs: curl on the host through a published
port to `python3 -m http.server` inside; a client inside (Python, redis-cli) to a
redis-server this test starts on the host. Each is compared with the same exchange made
natively; what the options do not allow still fails as without them.

Loopback only, free ports, every server bounded by `timeout` and stopped by the test.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import dpkt
import pytest

from sysemu.api import Sandbox
from sysemu.host import control
from test_e2e_programs import free_port, need

SANDBOX_PORT = 8000        # a port of the sandbox's own network: no clash with the host's
TIMEOUT = 60

CLIENT_PY = r"""
import socket, sys
port = int(sys.argv[1])
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
except OSError as exc:
    print("connect", exc.errno)
    sys.exit(0)
f = s.makefile("rb")
for cmd in (b"PING", b"SET portfwd yes", b"GET portfwd", b"DEL portfwd"):
    s.sendall(cmd + b"\r\n")
    line = f.readline()
    if line.startswith(b"$"):
        line = f.readline()
    print(cmd.decode(), "->", line.decode().strip())
"""


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, SYSEMU_CONTROL_DIR=str(tmp_path / "ctl"))


def ss(sysemu_bin, env, sandbox_id, *flags) -> str:
    return subprocess.run([str(sysemu_bin), "ss", "-tan", *flags, "--id", sandbox_id],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env).stdout


def wait_for(predicate, what: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Started:
    """A process this test started (killed by its pid at the end)."""

    def __init__(self, argv, **kw):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, **kw)

    def stop(self, wait: float = 0) -> tuple[str, str]:
        """Its output, once it has ended (within `wait` seconds, or by SIGTERM)."""
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()


@pytest.fixture
def site(tmp_path):
    d = tmp_path / "site"
    d.mkdir()
    (d / "index.html").write_bytes(os.urandom(3000).hex().encode())
    return d


def http_server(site, port, sysemu_bin=None, env=None, publish=(), sandbox_id="pub"):
    argv = ["timeout", str(TIMEOUT), sys.executable, "-m", "http.server", str(port),
            "--bind", "127.0.0.1", "--directory", str(site)]
    if sysemu_bin is not None:
        opts = [a for p in publish for a in ("--publish", p)]
        argv = [str(sysemu_bin), "run", "--id", sandbox_id, *opts, "--"] + argv
    return Started(argv, env=env)


def curl(port: int, path: str = "/index.html") -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "-m", "20", f"http://127.0.0.1:{port}{path}"],
                          capture_output=True, timeout=TIMEOUT)


def test_curl_from_the_host_reaches_a_server_inside(sysemu_bin, env, site):
    need("curl", package="curl")
    native_port = free_port()
    native = http_server(site, native_port)
    try:
        wait_for(lambda: curl(native_port).returncode == 0, "the native server")
        want = curl(native_port)
    finally:
        native.stop()
    host_port = free_port()
    inside = http_server(site, SANDBOX_PORT, sysemu_bin, env, [f"{host_port}:{SANDBOX_PORT}"])
    try:
        wait_for(lambda: "LISTEN" in ss(sysemu_bin, env, "pub", "-l"), "the server inside")
        got = curl(host_port)
        got_again = curl(host_port)
    finally:
        out, err = inside.stop()
    assert (got.returncode, got.stdout) == (0, want.stdout), (got.stderr, err)
    assert got.stdout == (site / "index.html").read_bytes()
    assert got_again.stdout == got.stdout
    # the server inside saw the host client's own address
    assert err.count('"GET /index.html HTTP/1.1" 200') == 2, err
    assert "127.0.0.1 - -" in err


def test_nothing_listening_inside_resets_the_host_client(sysemu_bin, env, tmp_path):
    host_port = free_port()
    sandbox = Started([str(sysemu_bin), "run", "--id", "idle", "--publish",
                       f"127.0.0.1:{host_port}:{SANDBOX_PORT}", "--", "sleep", "30"], env=env)
    try:
        wait_for(lambda: "idle" in subprocess.run(
            [str(sysemu_bin), "ps"], capture_output=True, text=True, env=env).stdout,
            "the sandbox")
        for _ in range(2):      # and again: the listener stays
            # (the reset may come before connect() returns, as curl's "Couldn't connect")
            with pytest.raises(ConnectionResetError):
                with socket.create_connection(("127.0.0.1", host_port), timeout=20) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    s.recv(100)
    finally:
        sandbox.stop()


def host_socket_holders(port: int) -> set[int]:
    """Pids of the host processes holding a TCP socket whose local port is `port`."""
    out = subprocess.run(["ss", "-Htanp", f"sport = :{port}"], capture_output=True,
                         text=True, timeout=TIMEOUT).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def test_ss_shows_a_forwarded_connection(sysemu_bin, env, site, monkeypatch):
    need("ss", package="iproute2")
    host_port = free_port()
    inside = http_server(site, SANDBOX_PORT, sysemu_bin, env, [f"{host_port}:{SANDBOX_PORT}"],
                         sandbox_id="seen")
    try:
        wait_for(lambda: "LISTEN" in ss(sysemu_bin, env, "seen", "-l"), "the server inside")
        with socket.create_connection(("127.0.0.1", host_port), timeout=20) as s:
            me = s.getsockname()[1]
            s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")   # not finished yet
            rows = wait_for(lambda: [line.split() for line in
                                     ss(sysemu_bin, env, "seen").splitlines()[1:]
                                     if str(me) in line and "ESTAB" in line] or None,
                            "the forwarded connection in ss", 10)
            # on the host, the listener and the connection are the supervisor's alone
            monkeypatch.setenv("SYSEMU_CONTROL_DIR", env["SYSEMU_CONTROL_DIR"])
            info = control.request(control.find_sandbox("seen"), {"op": "info"})
            assert host_socket_holders(host_port) == {info["supervisor"]}
            assert info["pid"] != info["supervisor"]
    finally:
        inside.stop()
    pairs = {(r[3], r[4]) for r in rows}
    assert (f"127.0.0.1:{me}", f"127.0.0.1:{SANDBOX_PORT}") in pairs, rows
    assert (f"127.0.0.1:{SANDBOX_PORT}", f"127.0.0.1:{me}") in pairs, rows


RESET_SERVER_PY = r"""
import socket, struct, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(8)
l.settimeout(40)
c, _ = l.accept()                       # 1: we reset the client
print("got", c.recv(5), flush=True)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
c, _ = l.accept()                       # 2: the client resets us
c.settimeout(20)
try:
    print("got", c.recv(5), flush=True)
    print("then", c.recv(5), flush=True)
except OSError as exc:
    print("error", exc.errno, flush=True)
"""


RESET_CLIENT_PY = r"""
import socket, struct, sys, time
port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", port), timeout=20) as s:   # 1: reset by it
    s.sendall(b"hello")
    try:
        print("read", s.recv(100))
    except OSError as exc:
        print("error", exc.errno)
s = socket.create_connection(("127.0.0.1", port), timeout=20)          # 2: we reset it
s.sendall(b"bye!!")
time.sleep(0.5)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"""
WANT_CLIENT = "error 104\n"
WANT_SERVER = "got b'hello'\ngot b'bye!!'\nerror 104\n"


def reset_exchange(port: int, *sysemu_run) -> str:
    """The client's half (natively, or under `sysemu_run`): what it saw of the server's
    reset; then it resets the server."""
    return subprocess.run([*sysemu_run, sys.executable, "-c", RESET_CLIENT_PY, str(port)],
                          capture_output=True, text=True, timeout=TIMEOUT).stdout


def test_resets_cross_a_published_port_both_ways(sysemu_bin, env):
    argv = ["timeout", str(TIMEOUT), sys.executable, "-c", RESET_SERVER_PY]
    port = free_port()
    native = Started(argv + [str(port)])
    try:
        wait_for(lambda: host_socket_holders(port), "the native server")
        want = reset_exchange(port)
    finally:
        want_out, _ = native.stop(wait=20)          # it ends after the second client
    host_port = free_port()
    inside = Started([str(sysemu_bin), "run", "--id", "rst", "--publish",
                      f"{host_port}:{SANDBOX_PORT}", "--"] + argv + [str(SANDBOX_PORT)],
                     env=env)
    try:
        wait_for(lambda: "LISTEN" in ss(sysemu_bin, env, "rst", "-l"), "the server inside")
        got = reset_exchange(host_port)
    finally:
        got_out, err = inside.stop(wait=20)
    assert (want, want_out) == (WANT_CLIENT, WANT_SERVER)
    assert (got, got_out) == (want, want_out), err


def test_a_data_fault_applies_to_a_published_port(sysemu_bin, env, site):
    """--fault rst-after:port=P:bytes=N on the server's port: the host client's first N
    bytes reach the server, then both ends see a reset."""
    host_port = free_port()
    argv = ["timeout", str(TIMEOUT), sys.executable, "-m", "http.server", str(SANDBOX_PORT),
            "--bind", "127.0.0.1", "--directory", str(site)]
    inside = Started([str(sysemu_bin), "run", "--id", "fault", "--fault",
                      f"rst-after:port={SANDBOX_PORT}:bytes=10", "--publish",
                      f"{host_port}:{SANDBOX_PORT}", "--"] + argv, env=env)
    try:
        wait_for(lambda: "LISTEN" in ss(sysemu_bin, env, "fault", "-l"), "the server inside")
        with pytest.raises(ConnectionResetError):
            with socket.create_connection(("127.0.0.1", host_port), timeout=20) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                s.recv(100)
        # The server has handled its side of the reset once its connection is gone (it
        # logs the exception before it closes the socket): only then stop it.
        wait_for(lambda: "ESTAB" not in ss(sysemu_bin, env, "fault"),
                 "the server to close its reset connection")
    finally:
        _, err = inside.stop()
    # the server's side of the reset (its traceback may be cut short by our SIGTERM)
    assert "Exception occurred during processing of request" in err, err


# -- egress -------------------------------------------------------------------------------

@pytest.fixture
def redis(tmp_path):
    need("redis-server", package="redis-server")
    need("redis-cli", package="redis-tools")
    port = free_port()
    srv = Started(["timeout", str(TIMEOUT * 2), "redis-server", "--port", str(port), "--bind",
                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)])

    def answers():
        ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                              text=True, timeout=TIMEOUT)
        return ping.stdout.strip() == "PONG"
    try:
        wait_for(answers, "redis-server")
        yield port
    finally:
        srv.stop()


def run_inside(sysemu_bin, env, argv, *opts):
    return subprocess.run([str(sysemu_bin), "run", *opts, "--", *argv], capture_output=True,
                          text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)


def test_a_client_inside_reaches_the_allowed_host_redis(sysemu_bin, env, redis, tmp_path):
    argv = [sys.executable, "-c", CLIENT_PY, str(redis)]
    native = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    pcap = tmp_path / "egress.pcap"
    inside = run_inside(sysemu_bin, env, argv, "--pcap", str(pcap),
                        "--allow-egress", f"127.0.0.1:{redis}")
    assert native.stdout.startswith("PING -> +PONG\n"), native
    assert (inside.returncode, inside.stdout) == (0, native.stdout), inside.stderr
    # the bytes crossed through sysemu: they are in the sandbox's capture
    with open(pcap, "rb") as f:
        payloads = [dpkt.ip.IP(raw).data for _, raw in dpkt.pcap.Reader(f)]
    sent = b"".join(seg.data for seg in payloads if seg.dport == redis)
    got = b"".join(seg.data for seg in payloads if seg.sport == redis)
    assert b"SET portfwd yes\r\n" in sent and b"+PONG\r\n" in got


def test_redis_cli_inside_reaches_the_allowed_host_redis(sysemu_bin, env, redis):
    script = (f"redis-cli -p {redis} set portfwd cli && redis-cli -p {redis} get portfwd "
              f"&& redis-cli -p {redis} del portfwd")
    native = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                            timeout=TIMEOUT)
    inside = run_inside(sysemu_bin, env, ["sh", "-c", script],
                        "--allow-egress", f"127.0.0.1:{redis}")
    assert native.stdout == "OK\ncli\n1\n"
    assert (inside.returncode, inside.stdout) == (0, native.stdout), inside.stderr


def test_what_is_not_allowed_fails_as_before(sysemu_bin, env, redis):
    argv = [sys.executable, "-c", CLIENT_PY, str(redis)]
    without = run_inside(sysemu_bin, env, argv)
    other = run_inside(sysemu_bin, env, argv, "--allow-egress", f"127.0.0.1:{free_port()}")
    assert without.stdout == "connect 111\n", without.stderr    # ECONNREFUSED: not reached
    assert other.stdout == without.stdout, other.stderr


def test_an_allowed_service_that_is_down_is_refused(sysemu_bin, env):
    port = free_port()          # nobody listens on it on the host
    argv = [sys.executable, "-c", CLIENT_PY, str(port)]
    native = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    inside = run_inside(sysemu_bin, env, argv, "--allow-egress", f"127.0.0.1:{port}")
    assert native.stdout == "connect 111\n"
    assert inside.stdout == native.stdout, inside.stderr


def test_resets_cross_an_allowed_egress_both_ways(sysemu_bin, env):
    port = free_port()
    server = Started(["timeout", str(TIMEOUT), sys.executable, "-c", RESET_SERVER_PY,
                      str(port)])
    try:
        wait_for(lambda: host_socket_holders(port), "the host server")
        got = reset_exchange(port, str(sysemu_bin), "run", "--allow-egress",
                             f"127.0.0.1:{port}", "--")
    finally:
        got_out, _ = server.stop(wait=20)
    assert (got, got_out) == (WANT_CLIENT, WANT_SERVER)


def test_the_python_api_publishes_and_allows(site, redis, env, monkeypatch):
    need("curl", package="curl")
    monkeypatch.setenv("SYSEMU_CONTROL_DIR", env["SYSEMU_CONTROL_DIR"])
    host_port = free_port()
    with Sandbox(publish=[f"{host_port}:{SANDBOX_PORT}"],
                 allow_egress=[f"127.0.0.1:{redis}"]) as sb:
        sb.spawn([sys.executable, "-m", "http.server", str(SANDBOX_PORT), "--bind",
                  "127.0.0.1", "--directory", str(site)])
        sb.wait_listening(SANDBOX_PORT)
        got = curl(host_port)
        pong = sb.run(["redis-cli", "-p", str(redis), "ping"])
    assert (got.returncode, got.stdout) == (0, (site / "index.html").read_bytes())
    assert pong.stdout == "PONG\n"


# -- the command line --------------------------------------------------------------------------

@pytest.mark.parametrize("opts, says", [
    (["--publish", "8080"], "expected [HOST_IP:]HOST_PORT:SANDBOX_PORT"),
    (["--publish", "8080:0"], "is not a port"),
    (["--publish", "8080:80/udp"], "only TCP"),
    (["--publish", "::1:8080:80"], "expected"),
    (["--allow-egress", "6379"], "expected HOST:PORT"),
    (["--allow-egress", "192.0.2.1:6379"], "127.0.0.0/8"),
])
def test_bad_specs_are_one_line_and_exit_2(sysemu_bin, env, opts, says):
    done = run_inside(sysemu_bin, env, ["true"], *opts)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr


def test_a_host_port_in_use_is_one_line_and_exit_125(sysemu_bin, env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_inside(sysemu_bin, env, ["true"], "--publish", f"{port}:80")
    assert done.returncode == 125
    assert len(done.stderr.splitlines()) == 1 and "Address already in use" in done.stderr
