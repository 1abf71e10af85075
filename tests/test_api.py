"""sysemu.api: a Sandbox driven from a test (each test starts its own, with a unique id).

Ports inside a sandbox live on its virtual network, so fixed ports cannot collide with
other tests; where the host is asked (is the server reachable from outside?) the port is
one the host has free."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from sysemu.api import Sandbox, SandboxError, sandbox_fixture
from sysemu.api import pytest_sandbox as sandbox  # noqa: F401  (the ready fixture)

pytestmark = pytest.mark.timeout(60)
PY = sys.executable

LISTENER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(int(sys.argv[2]))
    time.sleep(60)          # never accepts
""")

ECHO_SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(8)
    while True:
        c, _ = s.accept()
        while data := c.recv(4096):
            c.sendall(data)
        c.close()
""")

PING = textwrap.dedent("""
    import socket, sys, time
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    t0 = time.monotonic()
    c.sendall(b"ping")
    got = c.recv(16)
    print(got.decode(), time.monotonic() - t0)
""")

CONNECT = textwrap.dedent("""
    import errno, socket, sys
    s = socket.socket()
    s.settimeout(10)
    print(errno.errorcode.get(s.connect_ex(("127.0.0.1", int(sys.argv[1]))), "OK"))
""")


def host_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_run_returns_the_command_result():
    with Sandbox() as sb:
        done = sb.run("echo out; echo err >&2; exit 3")
        assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
        assert sb.run(["cat"], input=b"fed in").stdout == "fed in"
        assert sb.run([PY, "-c", "import os; print(os.environ['X'], os.getcwd())"],
                      env={"X": "42"}, cwd="/tmp").stdout == "42 /tmp\n"
        with pytest.raises(subprocess.TimeoutExpired):
            sb.run(["sleep", "30"], timeout=0.3)
        with pytest.raises(SandboxError, match="FileNotFoundError"):
            sb.run(["/nonexistent/program"])
        assert sb.run("echo still alive").stdout == "still alive\n"


def test_http_server_spawned_and_fetched_with_curl(tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the sandbox\n")
    with Sandbox() as sb:
        server = sb.spawn([PY, "-m", "http.server", "8000", "--bind", "127.0.0.1"],
                          cwd=tmp_path)
        row = sb.wait_listening(8000)
        assert row["local"] == "127.0.0.1:8000"
        done = sb.run("curl -s http://127.0.0.1:8000/hello.txt", timeout=10)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hello from the sandbox\n"
        [listener] = [r for r in sb.ss(listening=True) if r["local_port"] == 8000]
        assert listener["state"] == "LISTEN"
        assert listener["send_q"] == 5          # socketserver's request_queue_size
        assert server.pid in [p["pid"] for p in listener["process"]]
        assert server.poll() is None
        assert server.kill() == -9
        assert "GET /hello.txt" in server.stderr


def test_ss_shows_listener_backlog_and_owner():
    with Sandbox() as sb:
        proc = sb.spawn([PY, "-c", LISTENER, "7001", "7"])
        sb.wait_listening(7001)
        [row] = [r for r in sb.ss(listening=True) if r["local_port"] == 7001]
        assert (row["state"], row["recv_q"], row["send_q"]) == ("LISTEN", 0, 7)
        assert row["peer"] == "0.0.0.0:*" and row["peer_port"] is None
        assert [p["pid"] for p in row["process"]] == [proc.pid]
        assert all(r["state"] == "LISTEN" for r in sb.ss(listening=True))


def test_listen_overflow_counted_in_nstat():
    with Sandbox() as sb:
        sb.spawn([PY, "-c", LISTENER, "7002", "1"])
        sb.wait_listening(7002)
        before = sb.nstat()
        assert "TcpExtListenOverflows" in before and "TcpActiveOpens" in before
        clients = textwrap.dedent("""
            import socket, time
            socks = []
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", 7002))
                socks.append(s)
            time.sleep(0.5)
        """)
        assert sb.run([PY, "-c", clients], timeout=10).returncode == 0
        after = sb.nstat()
        assert after["TcpExtListenOverflows"] > before["TcpExtListenOverflows"]
        assert after["TcpActiveOpens"] >= before["TcpActiveOpens"] + 4
        [row] = [r for r in sb.ss(listening=True) if r["local_port"] == 7002]
        assert row["recv_q"] == 2               # the accept queue holds backlog + 1


def test_sysctl_is_visible_inside():
    with Sandbox(sysctls={"net.core.somaxconn": "16"}) as sb:
        assert sb.sysctl("net.core.somaxconn") == "16"
        assert sb.run("cat /proc/sys/net/core/somaxconn").stdout == "16\n"
        sb.spawn([PY, "-c", LISTENER, "7003", "1000"])
        assert sb.wait_listening(7003)["send_q"] == 16      # backlog capped at somaxconn
    with Sandbox() as sb:
        assert sb.sysctl("net.core.somaxconn") == "4096"


def test_refuse_fault_makes_connect_fail():
    with Sandbox(faults=["refuse:port=7004"]) as sb:
        sb.spawn([PY, "-c", LISTENER, "7004", "8"])
        sb.spawn([PY, "-c", LISTENER, "7005", "8"])
        sb.wait_listening(7004)
        sb.wait_listening(7005)
        assert sb.run([PY, "-c", CONNECT, "7004"], timeout=10).stdout == "ECONNREFUSED\n"
        assert sb.run([PY, "-c", CONNECT, "7005"], timeout=10).stdout == "OK\n"


def test_latency_fault_slows_a_round_trip():
    with Sandbox(faults=["latency:port=7006:ms=100"]) as sb:
        sb.spawn([PY, "-c", ECHO_SERVER, "7006"])
        sb.wait_listening(7006)
        done = sb.run([PY, "-c", PING, "7006"], timeout=10)
        assert done.returncode == 0, done.stderr
        word, seconds = done.stdout.split()
        assert word == "ping" and float(seconds) >= 0.2


def test_rst_after_fault_resets_curl(tmp_path):
    (tmp_path / "f.txt").write_text("x" * 100)
    with Sandbox(faults=["rst-after:port=8001:bytes=10"]) as sb:
        sb.spawn([PY, "-m", "http.server", "8001", "--bind", "127.0.0.1"], cwd=tmp_path)
        sb.wait_listening(8001)
        done = sb.run("curl -sS http://127.0.0.1:8001/f.txt", timeout=10)
        assert done.returncode == 56, (done.stdout, done.stderr)
        assert "Connection reset by peer" in done.stderr


def test_sandbox_server_not_reachable_from_outside():
    port = host_free_port()
    with Sandbox() as sb:
        sb.spawn([PY, "-c", LISTENER, str(port), "8"])
        sb.wait_listening(port)
        assert sb.run([PY, "-c", CONNECT, str(port)], timeout=10).stdout == "OK\n"
        with socket.socket() as s:
            s.settimeout(5)
            assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


def test_everything_is_gone_after_the_with_block():
    with Sandbox() as sb:
        proc = sb.spawn(["sleep", "60"])
        orphan = sb.host_pid(int(sb.run("sleep 60 >/dev/null 2>&1 & echo $!").stdout))
        pids = [sb.pid, sb.supervisor_pid, sb.agent_pid, proc.pid, orphan]
        assert all(isinstance(p, int) and not gone(p) for p in pids)
        path = sb.control_path
        assert path.exists()
    assert all(gone(p) for p in pids)
    assert not path.exists()
    with pytest.raises(SandboxError, match="not running"):
        sb.run("true")


def test_sandbox_killed_even_when_the_body_raises():
    with pytest.raises(RuntimeError):
        with Sandbox() as sb:
            proc = sb.spawn(["sleep", "60"])
            raise RuntimeError("test failed")
    assert gone(sb.pid) and gone(proc.pid)


def test_bad_options_raise_with_sysemu_stderr():
    with pytest.raises(SandboxError) as info:
        Sandbox(sysctls={"net.core.no_such_knob": "1"}).start()
    assert "no_such_knob" in str(info.value)


def test_agent_death_is_a_clear_error():
    with Sandbox() as sb:
        with pytest.raises(SandboxError, match=r"the sandbox ended \(sysemu exited with 137\)"):
            sb.run("kill -9 $PPID")         # the agent (pids inside are the sandbox's)
        with pytest.raises(SandboxError, match="sandbox (ended|is gone)"):
            sb.run("true")
    assert gone(sb.pid)


custom = sandbox_fixture("custom", sysctls={"net.core.somaxconn": "32"})


def test_fixture_factory(custom, sandbox):
    assert custom.sysctl("net.core.somaxconn") == "32"
    assert sandbox.sysctl("net.core.somaxconn") == "4096"
    assert custom.id != sandbox.id



def test_a_late_reply_is_not_taken_for_the_next_one():
    with Sandbox() as sb:
        with pytest.raises(SandboxError, match="no reply from the agent"):
            sb._request({"op": "run", "argv": ["sh", "-c", "sleep 1; echo late"],
                         "timeout": 10}, timeout=0.2)
        assert sb.run("echo next").stdout == "next\n"
