"""--fault: the grammar, and the faults acting on a real Net (FakeClock)."""
from __future__ import annotations

import pytest

from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.socket import AF_INET, SOCK_NONBLOCK
from sysemu.net.faults import Fault, FaultSet, FaultSpecError, parse_fault, reset_connection
from test_net_helpers import BLOCK, E, Env, assert_wheel_intervals

F = TcpFlags


@pytest.mark.parametrize("text, fault", [
    ("syn-drop:port=80:count=3", Fault("syn-drop", 80, count=3)),
    ("syn-drop:port=80", Fault("syn-drop", 80, count=1)),
    ("refuse:port=8080", Fault("refuse", 8080)),
    ("rst-after:port=6379:bytes=100", Fault("rst-after", 6379, bytes=100)),
    ("latency:ms=25:port=443", Fault("latency", 443, ms=25)),
])
def test_parse(text, fault):
    assert parse_fault(text) == fault


@pytest.mark.parametrize("text, why", [
    ("drop:port=80", "unknown fault"),
    ("refuse", "missing port"),
    ("refuse:port=0", "out of range"),
    ("refuse:port=65536", "out of range"),
    ("latency:port=80", "missing ms"),
    ("latency:port=80:ms=x", "must be an integer"),
    ("latency:port=80:ms=-1", "out of range"),
    ("rst-after:port=80:count=3", "takes port, bytes"),
    ("syn-drop:port=80:3", "expected key=value"),
])
def test_parse_errors(text, why):
    with pytest.raises(FaultSpecError, match=why):
        parse_fault(text)


def test_spec_round_trips():
    for text in ("syn-drop:port=80:count=2", "latency:port=1:ms=5"):
        assert parse_fault(text).spec() == text


@pytest.fixture
def env():
    return Env(log_wire=True)


def test_syn_drop_first_n_then_retransmission_connects(env):
    lfd, port = env.server()
    FaultSet.parse([f"syn-drop:port={port}:count=2"]).install(env.net)
    start = env.clock.now()
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.connect(c, "127.0.0.1", port) == -E.EINPROGRESS
    assert env.sk(c).state == TcpState.TCP_SYN_SENT
    env.run_until(start + 1.5)
    assert env.sk(c).state == TcpState.TCP_SYN_SENT       # the retransmission too
    env.run_until(start + 2.5)
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED    # the third SYN got in
    syns = [s.time - start for s in env.seen if s.flags == F.SYN]
    assert syns[0] == 0
    assert_wheel_intervals(syns, [1, 1])
    assert env.net.mib["TCPSynRetrans"] == 2
    # other ports are untouched
    lfd2, port2 = env.server()
    c2 = env.socket()
    assert env.connect(c2, "127.0.0.1", port2) == 0


def test_refuse_answers_rst_despite_listener(env):
    lfd, port = env.server()
    FaultSet.parse([f"refuse:port={port}"]).install(env.net)
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == -E.ECONNREFUSED
    assert [s.flags for s in env.seen] == [F.SYN, F.RST | F.ACK]
    assert env.sk(lfd).accept_queue.qlen == 0 and env.sk(lfd).ack_backlog == 0


def test_latency_delays_the_handshake_per_port(env):
    lfd, port = env.server()
    FaultSet.parse([f"latency:port={port}:ms=50"]).install(env.net)
    start = env.clock.now()
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.connect(c, "127.0.0.1", port) == -E.EINPROGRESS
    env.run_until(start + 0.049)
    assert env.sk(c).state == TcpState.TCP_SYN_SENT
    env.run_until(start + 0.1)
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED    # SYN 50 ms + SYN-ACK 50 ms
    assert env.sk(lfd).ack_backlog == 0                    # the ACK is still on its way
    env.run_until(start + 0.15)
    assert env.sk(lfd).ack_backlog == 1


def test_reset_connection_resets_both_ends(env):
    lfd, port = env.server()
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == 0
    a, _ = env.accept(lfd)
    client, child = env.sk(c), env.sk(a)
    reset_connection(env.net, client, child)
    assert client.state == child.state == TcpState.TCP_CLOSE
    assert client.sk_err == child.sk_err == E.ECONNRESET
    assert [s.flags for s in env.seen[-2:]] == [F.RST, F.RST]
    assert env.net.mib["EstabResets"] == 2
