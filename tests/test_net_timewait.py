"""TIME_WAIT, timestamps, ISNs and ephemeral ports in the model, with a fake clock: each
rule of Linux's tcp_timewait_state_process(), tcp_twsk_unique(), secure_tcp_seq() and
__inet_hash_connect(), and a seeded churn of 10,000 connections that never stalls."""
from __future__ import annotations

import random

import pytest

from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import SOCK_NONBLOCK
from sysemu.net.core import Segment, after
from sysemu.net.secure_seq import secure_tcp_seq
from test_net_helpers import BLOCK, E, Env, wheel_slack

SYN, ACK, RST, FIN = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.RST, TcpFlags.FIN


def from_port(env, port, flags=None):
    return [s for s in env.seen if s.sport == port and (flags is None or s.flags == flags)]


def server_closes_first(env, lfd, port, bind_port=0, ack_delay=0.05):
    """One connection, the server closing first, the client `ack_delay` s later: returns
    (client port, the server-side TIME_WAIT Sock)."""
    c = env.socket()
    if bind_port:
        assert env.bind(c, "127.0.0.1", bind_port) == 0
    assert env.connect(c, "127.0.0.1", port) == 0
    a, _ = env.accept(lfd)
    child = env.sk(a)
    cport = env.getname(c)[1]
    env.close(a)
    env.advance(ack_delay)      # 0.04: the client's delayed ACK of the FIN
    env.close(c)
    assert child.state == TcpState.TCP_TIME_WAIT
    return cport, child


@pytest.fixture
def env():
    return Env(log_wire=True)


# -- tcp_timewait_state_process() -------------------------------------------------------

def test_newer_syn_reaching_time_wait_opens_a_new_connection(env):
    lfd, port = env.server()
    cport, tw = server_closes_first(env, lfd, port)
    env.advance(0.5)
    c = env.socket()
    assert env.bind(c, "127.0.0.1", cport) == 0
    assert env.connect(c, "127.0.0.1", port) == 0        # no retransmission needed
    synack = from_port(env, port, SYN | ACK)[-1]
    assert synack.seq == (tw.snd_nxt + 65535 + 2) & U32_MAX     # TCP_TW_SYN's ISN
    assert ("released", tw) in env.hooks.events                 # TIME_WAIT ended
    a, peer = env.accept(lfd)
    assert a >= 0 and peer == ("127.0.0.1", cport)
    assert env.sk(a).state == TcpState.TCP_ESTABLISHED


def test_older_syn_gets_an_ack_the_client_resets_and_the_retransmission_connects():
    env = Env(log_wire=True, sysctl={"net.ipv4.tcp_timestamps": 0})
    lfd, port = env.server()
    cport, tw = server_closes_first(env, lfd, port)
    c = env.socket(type_=1 | SOCK_NONBLOCK)
    assert env.bind(c, "127.0.0.1", cport) == 0
    env.sk(c).write_seq = (tw.rcv_nxt - 1000) & U32_MAX       # an ISN below tw_rcv_nxt
    assert env.connect(c, "127.0.0.1", port) == -E.EINPROGRESS
    ack = from_port(env, port)[-1]
    assert ack.flags == ACK and (ack.seq, ack.ack) == (tw.snd_nxt, tw.rcv_nxt)
    rst = from_port(env, cport)[-1]
    assert rst.flags == RST and rst.seq == tw.rcv_nxt           # tcp_v4_send_reset
    assert tw.state == TcpState.TCP_CLOSE                       # RST in window: killed
    assert env.sk(c).state == TcpState.TCP_SYN_SENT
    env.advance(1 + wheel_slack(1))                             # the SYN again
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED
    assert env.accept(lfd)[0] >= 0


def test_syn_with_older_timestamp_is_rejected_by_paws(env):
    lfd, port = env.server()
    cport, tw = server_closes_first(env, lfd, port)
    assert tw.ts_recent_stamp
    syn = Segment(tw.wire_remote(), cport, tw.wire_local(), port, (tw.rcv_nxt + 10**6) & U32_MAX,
                  0, SYN, tsval=(tw.ts_recent - 5) & U32_MAX)
    mark = len(env.seen)
    env.net.transmit(syn)
    # PAWS: an ACK of the old connection, not a SYN-ACK (the ACK then meets no client
    # socket, whose RST ends TIME_WAIT, as on Linux)
    assert [s.flags for s in env.seen[mark + 1:mark + 3]] == [ACK, RST]
    assert env.net.mib["PAWSTimewait"] == 1
    assert not env.sk(lfd).accept_queue.syn
    cport, tw = server_closes_first(env, lfd, port)
    newer = Segment(tw.wire_remote(), cport, tw.wire_local(), port, (tw.rcv_nxt - 10) & U32_MAX,
                    0, SYN, tsval=(tw.ts_recent + 5) & U32_MAX)
    env.net.transmit(newer)             # sequence older, timestamp newer: accepted
    assert ("released", tw) in env.hooks.events
    assert from_port(env, port)[-1].flags == SYN | ACK
    assert env.net.mib["PAWSTimewait"] == 1


def test_duplicate_fin_is_acked_again_and_rearms_the_timer(env):
    lfd, port = env.server()
    cport, tw = server_closes_first(env, lfd, port)
    env.advance(30)
    # The client is gone here, and would answer the ACK with a RST: lose the RST (as
    # when the client is still in LAST_ACK, retransmitting its FIN).
    env.net.drop = lambda seg: bool(seg.flags & RST)
    fin = Segment(tw.wire_remote(), cport, tw.wire_local(), port, (tw.rcv_nxt - 1) & U32_MAX,
                  tw.snd_nxt, FIN | ACK, tsval=tw.ts_recent)
    env.net.transmit(fin)
    ack = from_port(env, port)[-1]
    assert ack.flags == ACK and (ack.seq, ack.ack) == (tw.snd_nxt, tw.rcv_nxt)
    env.advance(59)                     # 60 s from the FIN, not from TIME_WAIT's start
    assert tw.state == TcpState.TCP_TIME_WAIT
    env.advance(1.5)
    assert tw.state == TcpState.TCP_CLOSE
    assert port in env.net.hashinfo.bhash and tw not in env.net.hashinfo.bhash[port].owners


@pytest.mark.parametrize("rfc1337, survives", [(0, False), (1, True)])
def test_rst_in_window_kills_time_wait_unless_rfc1337(rfc1337, survives):
    env = Env(log_wire=True, sysctl={"net.ipv4.tcp_rfc1337": rfc1337})
    lfd, port = env.server()
    cport, tw = server_closes_first(env, lfd, port)
    env.net.transmit(Segment(tw.wire_remote(), cport, tw.wire_local(), port, tw.rcv_nxt, 0,
                             RST))
    assert (tw.state == TcpState.TCP_TIME_WAIT) == survives


def test_time_wait_leaves_ehash_and_the_bind_bucket_when_it_dies(env):
    lfd, port = env.server()
    tws = [server_closes_first(env, lfd, port)[1] for _ in range(20)]
    hinfo = env.net.hashinfo
    assert all(tw in hinfo.bhash[port].owners for tw in tws)
    env.advance(61)
    assert list(hinfo.bhash[port].owners) == [env.sk(lfd)]
    assert not hinfo.ehash and env.net.socks == {env.sk(lfd)}
    assert env.net.mib["TW"] == 20


def test_a_held_socket_hands_time_wait_to_a_timewait_sock(env):
    """Both ends shut down their sending side and keep their sockets: the first closer's
    TIME_WAIT goes to a timewait sock (tcp_time_wait()), which holds the 4-tuple and a
    place in the bind bucket for 60 s; the socket the program holds is done (CLOSE)."""
    lfd, port = env.server()
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == 0
    a, _ = env.accept(lfd)
    held = env.sk(a)
    key = env.net.hashinfo.ehash_key(held)
    assert env.call("shutdown", a, 1) == 0
    env.advance(0.05)
    assert env.call("shutdown", c, 1) == 0
    env.advance(0.05)
    hinfo = env.net.hashinfo
    tw = hinfo.ehash[key]
    assert held.state == TcpState.TCP_CLOSE and tw is not held
    assert tw.state == TcpState.TCP_TIME_WAIT and tw in hinfo.bhash[port].owners
    assert env.getname(a, peer=True) == -E.ENOTCONN
    env.close(a)
    env.close(c)
    env.advance(60 + wheel_slack(60))
    assert not hinfo.ehash and list(hinfo.bhash[port].owners) == [env.sk(lfd)]
    assert env.net.socks == {env.sk(lfd)}


# -- tcp_twsk_unique(): connect() reusing a TIME_WAIT 4-tuple ---------------------------

def client_closes_first(env, lfd, port):
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == 0
    a, _ = env.accept(lfd)
    tw = env.sk(c)
    env.close(c)
    env.advance(0.05)
    env.close(a)
    assert tw.state == TcpState.TCP_TIME_WAIT
    return tw


def one_port_time_wait(**sysctl):
    """A sandbox whose ephemeral range is one port (40000), left in TIME_WAIT by a
    client that closed first: (env, listener port, the TIME_WAIT Sock)."""
    env = Env(log_wire=True, sysctl={"net.ipv4.ip_local_port_range": (40000, 40000),
                                     **{f"net.ipv4.{k}": v for k, v in sysctl.items()}})
    lfd, port = env.server(port=5000)
    tw = client_closes_first(env, lfd, port)
    assert tw.num == 40000
    return env, port, tw


@pytest.mark.parametrize("reuse", [2, 1, 0])
def test_connect_reuses_a_time_wait_after_the_reuse_delay(reuse):
    env, port, tw = one_port_time_wait(tcp_tw_reuse=reuse)
    assert env.connect(env.socket(), "127.0.0.1", port) == -E.EADDRNOTAVAIL   # < 1 s
    env.advance(1.01)                    # tcp_tw_reuse_delay (1000 ms) has passed
    c = env.socket()
    if not reuse:
        assert env.connect(c, "127.0.0.1", port) == -E.EADDRNOTAVAIL
        return
    assert env.connect(c, "127.0.0.1", port) == 0
    assert env.getname(c)[1] == 40000
    assert from_port(env, 40000, SYN)[-1].seq == (tw.snd_nxt + 65535 + 2) & U32_MAX
    assert env.net.mib["TWRecycled"] == 1 and ("released", tw) in env.hooks.events


def test_reuse_needs_timestamps():
    env, port, _ = one_port_time_wait(tcp_timestamps=0)
    env.advance(5)
    assert env.connect(env.socket(), "127.0.0.1", port) == -E.EADDRNOTAVAIL


def test_reuse_delay_sysctl():
    env, port, _ = one_port_time_wait(tcp_tw_reuse_delay=3000)
    env.advance(2.0)
    assert env.connect(env.socket(), "127.0.0.1", port) == -E.EADDRNOTAVAIL
    env.advance(1.1)
    assert env.connect(env.socket(), "127.0.0.1", port) == 0


# -- secure_tcp_seq() and __inet_hash_connect() -----------------------------------------

def test_isn_grows_with_the_clock(env):
    a, b = b"\0" * 10 + b"\xff\xff\x7f\0\0\1", b"\0" * 10 + b"\xff\xff\x7f\0\0\1"
    first = secure_tcp_seq(env.net, a, b, 40000, 80)
    env.clock.advance(1.0)
    second = secure_tcp_seq(env.net, a, b, 40000, 80)
    assert after(second, first)
    assert (second - first) & U32_MAX == pytest.approx(1e9 / 64, abs=1)   # 64 ns units
    assert secure_tcp_seq(env.net, a, b, 40001, 80) != second             # keyed by tuple


def test_ports_walk_the_range_from_a_hashed_offset():
    """__inet_hash_connect(): each connect to one destination starts past the port the
    last one took (by 2..16: the step plus up to 7 random skips), so a port comes back
    only after the walk went round the range."""
    env = Env(sysctl={"net.ipv4.ip_local_port_range": (40000, 40199)})
    lfd, port = env.server(port=5000)
    ports = [server_closes_first(env, lfd, port)[0] for _ in range(40)]
    steps = [(b - a) % 200 for a, b in zip(ports, ports[1:])]
    assert all(s in range(2, 17, 2) for s in steps), steps
    assert len(set(ports[:200 // 16])) == 200 // 16


def test_no_port_repeats_before_the_range_is_used():
    env = Env()
    lfd, port = env.server()
    ports = [server_closes_first(env, lfd, port, ack_delay=0.001)[0] for _ in range(1500)]
    assert len(set(ports)) == len(ports)


def run_and_record(seed):
    env = Env(seed=seed, log_wire=True)
    lfd, port = env.server(port=5000)
    for _ in range(5):
        server_closes_first(env, lfd, port)
    return [(s.sport, s.seq) for s in env.seen if s.flags == SYN]


def test_same_seed_same_ports_and_isns_other_seed_others():
    assert run_and_record(1) == run_and_record(1)
    one, two = run_and_record(1), run_and_record(2)
    assert {p for p, _ in one}.isdisjoint({p for p, _ in two})
    assert {s for _, s in one}.isdisjoint({s for _, s in two})


# -- churn -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_churn_never_leaves_a_connect_in_syn_sent(seed):
    """10,000 sequential connect/accept/close cycles in every close order (server first,
    client first, both at once, RST), a few ms apart: every connect is established at
    once or, at worst, by its first SYN retransmission; nothing is left afterwards."""
    rng = random.Random(seed)
    env = Env(seed=seed)
    lfd, port = env.server(backlog=128)
    for i in range(10_000 if seed == 1 else 2_000):
        c = env.socket(type_=1 | SOCK_NONBLOCK)
        r = env.connect(c, "127.0.0.1", port)
        if env.sk(c).state == TcpState.TCP_SYN_SENT:
            env.advance(1.0)
        assert env.sk(c).state == TcpState.TCP_ESTABLISHED, (i, r)
        a, _ = env.accept(lfd)
        env.close_in_order(a, c, rng.choice(("server", "client", "both", "rst")))
        env.advance(rng.random() * 0.01)
    env.advance(121)
    hinfo = env.net.hashinfo
    assert not hinfo.ehash and set(hinfo.bhash) == {port}
    assert env.net.socks == {env.sk(lfd)}
