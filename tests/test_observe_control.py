"""The control channel: observe.cli.setup() on a fake supervisor (a real Reactor, a model
kernel), asked from a client thread as `sysemu ss/nstat/ps` would."""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import stat
import time
from types import SimpleNamespace

import pytest

from sysemu.abi.socket import AF_INET, SOCK_NONBLOCK
from sysemu.host import control
from sysemu.host.reactor import Reactor
from sysemu.observe import cli as observe_cli
from test_net_helpers import E, Env

DEADLINE = 10.0


@pytest.fixture
def ctl_dir(tmp_path, monkeypatch):
    path = tmp_path / "ctl"
    monkeypatch.setenv("SYSEMU_CONTROL_DIR", str(path))
    return path


class FakeSupervisor:
    def __init__(self, env: Env):
        self.kernel = env.kernel
        self.reactor = Reactor()
        self.logged: list[str] = []

    def log(self, text):
        self.logged.append(text)


def run_args(**kw):
    parser = argparse.ArgumentParser()
    observe_cli.add_run_options(parser)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    extra = []
    for f in kw.get("faults", []):
        extra += ["--fault", f]
    if kw.get("pcap"):
        extra += ["--pcap", kw["pcap"]]
    if kw.get("id"):
        extra += ["--id", kw["id"]]
    return parser.parse_args(extra + ["--", "server", "--port", "8080"])


def serve_while(sup, fn):
    """Run fn() in a thread while the supervisor's reactor serves; its result."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(fn)
        end = time.monotonic() + DEADLINE
        while not fut.done():
            assert time.monotonic() < end, "no answer from the control channel"
            sup.reactor.run_once(0.02)
        return fut.result()


@pytest.fixture
def sandbox(ctl_dir):
    made = []

    def make(sandbox_id="web"):
        env = Env()
        sup = FakeSupervisor(env)
        observe_cli.setup(sup, run_args(id=sandbox_id))
        made.append(sup)
        return env, sup
    yield make
    for sup in made:
        if sup.control is not None:
            sup.control.close()
        sup.reactor.close()


def test_socket_dir_is_private_and_socket_named_by_id(sandbox, ctl_dir):
    env, sup = sandbox("web")
    assert sup.control is not None, sup.logged
    assert stat.S_IMODE(ctl_dir.stat().st_mode) == 0o700
    path = ctl_dir / "web.sock"
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_info_ss_nstat(sandbox, ctl_dir, capsys):
    env, sup = sandbox("web")
    lfd = env.socket()
    assert env.bind(lfd, "127.0.0.1", 8080) == 0 and env.listen(lfd, 1) == 0
    for _ in range(3):
        env.connect(env.socket(AF_INET, 1 | SOCK_NONBLOCK), "127.0.0.1", 8080)
    info = serve_while(sup, lambda: control.request(ctl_dir / "web.sock", {"op": "info"}))
    assert info["id"] == "web" and info["command"] == "server --port 8080"
    assert info["supervisor"] == os.getpid()
    assert info["sockets"] == len(env.net.socks)     # 1 listener, 3 clients, 2 children
    code = serve_while(sup, lambda: observe_cli.cmd_ss(argparse.Namespace(
        command="ss", sandbox_id=None, listening=True, all=False, numeric=True,
        processes=False)))
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1].split() == ["LISTEN", "2", "1", "127.0.0.1:8080", "0.0.0.0:*"]
    code = serve_while(sup, lambda: observe_cli.cmd_nstat(argparse.Namespace(
        command="nstat", sandbox_id="web")))
    out = capsys.readouterr().out
    assert code == 0
    assert "TcpExtListenOverflows           1                  0.0" in out.splitlines()


def test_bad_requests_get_errors_and_the_server_lives_on(sandbox, ctl_dir):
    env, sup = sandbox("web")
    path = ctl_dir / "web.sock"

    def raw(data: bytes) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(path))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            return json.loads(s.makefile().readline())
    assert "error" in serve_while(sup, lambda: raw(b"not json\n"))
    assert "error" in serve_while(sup, lambda: raw(b'{"op": "rm -rf"}\n'))
    assert "error" in serve_while(sup, lambda: raw(b"[1, 2]\n"))
    assert serve_while(sup, lambda: raw(b'{"op": "nstat"}'))["mib"]["ListenOverflows"] == 0


def test_ps_lists_running_and_removes_stale(sandbox, ctl_dir, capsys):
    env, sup = sandbox("alpha")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(ctl_dir / "gone.sock"))          # bound, never listening: refused
    stale.close()
    code = serve_while(sup, lambda: observe_cli.cmd_ps(argparse.Namespace(command="ps")))
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["ID", "PID", "SOCKETS", "COMMAND"]
    assert out[1].split()[0] == "alpha" and out[1].endswith("server --port 8080")
    assert len(out) == 2
    assert not (ctl_dir / "gone.sock").exists()


def test_two_sandboxes_need_an_id(sandbox, ctl_dir, capsys):
    env1, sup1 = sandbox("one")
    env2, sup2 = sandbox("two")

    def both_serving(fn):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(fn)
            end = time.monotonic() + DEADLINE
            while not fut.done():
                assert time.monotonic() < end
                sup1.reactor.run_once(0.01)
                sup2.reactor.run_once(0.01)
            return fut.result()
    args = argparse.Namespace(command="nstat", sandbox_id=None)
    assert both_serving(lambda: observe_cli.cmd_nstat(args)) == 1
    assert "choose one with --id" in capsys.readouterr().err
    args.sandbox_id = "two"
    assert both_serving(lambda: observe_cli.cmd_nstat(args)) == 0


def test_same_id_twice_is_refused(sandbox):
    env, sup = sandbox("dup")
    env2, sup2 = serve_while(sup, lambda: sandbox("dup"))
    assert sup2.control is None
    assert any("is running" in line for line in sup2.logged)


def test_other_uid_is_turned_away(sandbox, ctl_dir, monkeypatch):
    env, sup = sandbox("web")
    sup.control.uid = os.getuid() + 1               # as if we were someone else
    def ask():
        try:
            return control.request(ctl_dir / "web.sock", {"op": "info"}, timeout=5)
        except OSError as exc:
            return exc
    result = serve_while(sup, ask)
    assert isinstance(result, OSError)


def test_setup_installs_faults_pcap_and_pump(ctl_dir, tmp_path):
    env = Env()
    sup = FakeSupervisor(env)
    pcap = tmp_path / "x.pcap"
    observe_cli.setup(sup, run_args(faults=["refuse:port=8080"], pcap=str(pcap), id="p"))
    try:
        assert sup.pump is not None and sup.pump.on_data is not None
        assert env.net.drop is not None and len(env.net.wire) == 1
        lfd, port = env.server(port=8080)
        c = env.socket()
        assert env.connect(c, "127.0.0.1", 8080) == -E.ECONNREFUSED   # despite the listener
        assert sup.pcap.packets == 2                                   # SYN, RST
    finally:
        sup.control.close()
        sup.reactor.close()


def test_run_options_share_fault_with_the_tracer():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", action="append", default=[])     # the tracer's option
    observe_cli.add_run_options(parser)
    args = parser.parse_args(["--fault", "refuse:port=1", "--fault", "openat:error=ENOENT",
                              "--net-fault", "latency:port=2:ms=3", "--id", "x"])
    assert observe_cli.net_fault_specs(args) == ["latency:port=2:ms=3", "refuse:port=1"]
    assert args.sandbox_id == "x"
    with pytest.raises(SystemExit):
        parser.parse_args(["--net-fault", "latency:port=2"])           # ms missing


def test_run_options_alone_take_fault():
    parser = argparse.ArgumentParser()
    observe_cli.add_run_options(parser)
    args = parser.parse_args(["--fault", "syn-drop:port=80:count=2", "--pcap", "f.pcap"])
    assert observe_cli.net_fault_specs(args) == ["syn-drop:port=80:count=2"]
    assert args.pcap == "f.pcap"
