"""The model's half of --publish and --allow-egress (net/ipv4/portfwd.py), with a fake
clock: a forwarded client meets the SYN and accept queues like any client; SYNs to an
allowed host service wait for the host's verdict; nothing else changes."""
from __future__ import annotations

import socket

import pytest

from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.socket import AF_INET, SO_ERROR, SOCK_NONBLOCK, SOL_SOCKET
from sysemu.net.core import mapped
from sysemu.net.ipv4.portfwd import EgressGate, forward_connect
from sysemu.observe.ss import snapshot
from test_net_helpers import BLOCK, E, Env, wheel_slack

LO = socket.inet_aton("127.0.0.1")
HOST_CLIENT = socket.inet_aton("127.0.0.1"), 51234


def ss_rows(net):
    return {(r["state"], "%s:%s" % tuple(r["local"]), "%s:%s" % tuple(r["peer"]))
            for r in snapshot(net)}


@pytest.fixture
def env():
    return Env(log_wire=True)


# -- published ports -------------------------------------------------------------------

def test_forwarded_client_is_accepted_from_the_host_clients_address(env):
    lfd, port = env.server()
    sk = forward_connect(env.net, *HOST_CLIENT, LO, port)
    assert sk.state == TcpState.TCP_ESTABLISHED
    fd, peer = env.accept(lfd)
    assert fd >= 0 and peer == ("127.0.0.1", 51234)
    child = env.sk(fd)
    assert child.peer is sk and sk.peer is child
    rows = ss_rows(env.net)
    assert ("ESTAB", "127.0.0.1:51234", f"127.0.0.1:{port}") in rows
    # no port of the sandbox is taken: a program binds the host client's port
    other = env.socket()
    assert env.bind(other, "127.0.0.1", 51234) == 0


def test_forwarded_client_without_listener_is_refused(env):
    sk = forward_connect(env.net, *HOST_CLIENT, LO, 9)
    assert sk.state == TcpState.TCP_CLOSE and sk.sk_err == E.ECONNREFUSED
    env.net.release(sk)
    assert sk not in env.net.socks


def test_forwarded_client_meets_a_full_accept_queue_and_retries(env):
    lfd, port = env.server(backlog=0)
    first = forward_connect(env.net, socket.inet_aton("127.0.0.1"), 40000, LO, port)
    second = forward_connect(env.net, socket.inet_aton("127.0.0.1"), 40001, LO, port)
    assert first.state == TcpState.TCP_ESTABLISHED
    assert second.state == TcpState.TCP_SYN_SENT          # dropped: backlog 0 holds one
    assert env.net.mib["ListenOverflows"] == 1
    assert env.accept(lfd)[0] >= 0
    env.advance(1 + wheel_slack(1))                        # the SYN is retransmitted
    assert second.state == TcpState.TCP_ESTABLISHED
    assert env.accept(lfd)[1] == ("127.0.0.1", 40001)


def test_forwarded_client_takes_another_port_when_the_4_tuple_is_used(env):
    lfd, port = env.server()
    c = env.socket()
    assert env.bind(c, "127.0.0.1", 51234) == 0
    assert env.connect(c, "127.0.0.1", port) == 0
    sk = forward_connect(env.net, *HOST_CLIENT, LO, port)
    assert sk.state == TcpState.TCP_ESTABLISHED and sk.num not in (0, 51234)


# -- allowed host services -------------------------------------------------------------------

class Host:
    """The host's side of an EgressGate: records attempts and children."""

    def __init__(self, env, allowed):
        self.syns, self.children = [], []
        self.gate = EgressGate(env.net, allowed, lambda key, addr, port:
                               self.syns.append((key, addr, port)),
                               lambda key, child: self.children.append((key, child)))


def test_egress_syn_waits_for_the_host_then_connects(env):
    host = Host(env, [(LO, 6379)])
    c = env.socket()
    assert env.connect(c, "127.0.0.1", 6379) == BLOCK        # waits, as for a slow peer
    assert [(a, p) for _, a, p in host.syns] == [(LO, 6379)]
    env.advance(1.0)                                          # retransmitted SYN: swallowed
    assert len(host.syns) == 1 and env.sk(c).state == TcpState.TCP_SYN_SENT
    assert host.gate.accept(host.syns[0][0])
    assert env.connect(c, "127.0.0.1", 6379) == 0             # the attempt, run again
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED
    (_, child), = host.children
    assert child.peer is env.sk(c) and child.local() == (LO, 6379)
    rows = ss_rows(env.net)
    cport = env.sk(c).num
    assert ("ESTAB", "127.0.0.1:6379", f"127.0.0.1:{cport}") in rows
    assert not any(r["state"] == "LISTEN" for r in snapshot(env.net))
    # the service's end holds no port inside: a program can still bind 6379
    s = env.socket()
    assert env.bind(s, "127.0.0.1", 6379) == 0


def test_egress_refused_by_the_host_is_econnrefused(env):
    host = Host(env, [(LO, 6379)])
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.connect(c, "127.0.0.1", 6379) == -E.EINPROGRESS
    host.gate.refuse(host.syns[0][0])
    assert env.sk(c).state == TcpState.TCP_CLOSE
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == E.ECONNREFUSED
    assert any(s.flags & TcpFlags.RST for s in env.seen)


def test_egress_other_host_error_ends_the_connect(env):
    host = Host(env, [(LO, 6379)])
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    env.connect(c, "127.0.0.1", 6379)
    host.gate.fail(host.syns[0][0], E.ETIMEDOUT)
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == E.ETIMEDOUT


def test_egress_verdict_after_the_client_gave_up(env):
    host = Host(env, [(LO, 6379)])
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    env.connect(c, "127.0.0.1", 6379)
    key = host.syns[0][0]
    env.close(c)
    assert not host.gate.accept(key) and host.children == []


def test_not_allowed_is_refused_as_before(env):
    host = Host(env, [(LO, 6379)])
    c = env.socket()
    assert env.connect(c, "127.0.0.1", 6380) == -E.ECONNREFUSED
    assert host.syns == []


def test_a_listener_inside_wins_over_the_host_service(env):
    host = Host(env, [(LO, 6379)])
    lfd, _ = env.server(port=6379)
    c = env.socket()
    assert env.connect(c, "127.0.0.1", 6379) == 0
    assert host.syns == [] and env.accept(lfd)[0] >= 0


def test_forwarded_client_from_another_host_address(env):
    """--publish 0.0.0.0:...: a client of another host shows with its own address."""
    lfd, port = env.server(host="0.0.0.0")
    sk = forward_connect(env.net, socket.inet_aton("192.0.2.7"), 40000, LO, port)
    assert sk.state == TcpState.TCP_ESTABLISHED
    fd, peer = env.accept(lfd)
    assert peer == ("192.0.2.7", 40000) and env.getname(fd) == ("127.0.0.1", port)


def test_forwarded_client_avoids_the_servers_time_wait(env):
    """The server closed first: its end sits in TIME_WAIT; the host may reuse the port at
    once (its own TIME_WAIT is on sysemu's socket); the next client takes another port
    instead of meeting that TIME_WAIT."""
    lfd, port = env.server()
    first = forward_connect(env.net, *HOST_CLIENT, LO, port)
    fd, _ = env.accept(lfd)
    env.close(fd)                                   # the server closes first
    env.net.release(first)
    env.advance(1.0)
    assert env.net.hashinfo.lookup_established(mapped(LO), port, mapped(HOST_CLIENT[0]),
                                               HOST_CLIENT[1]).state == TcpState.TCP_TIME_WAIT
    again = forward_connect(env.net, *HOST_CLIENT, LO, port)
    assert again.state == TcpState.TCP_ESTABLISHED and again.num != HOST_CLIENT[1]
