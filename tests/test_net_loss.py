"""Loss and recovery in the model's TCP, in process on a fake clock (no host): fast
retransmit on duplicate ACKs, the RTO and its backoff, the congestion window, the RTT
estimator, keepalive, TCP_USER_TIMEOUT, delayed ACKs, and the data faults acting on the
model's segments. Segments are read off the wire (Env(log_wire=True))."""
from __future__ import annotations

import hashlib
import struct

import pytest

from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.socket import MSG_DONTWAIT
from sysemu.net.core import TCP_CA_Loss, TCP_CA_Open, TCP_CA_Recovery, TCP_INIT_CWND
from sysemu.net.faults import FaultSet
from sysemu.net.ipv4.tcp_input import tcp_rtt_estimator, tcp_set_rto
from test_net_datapath import DataEnv
from test_net_helpers import BLOCK, E, assert_wheel_intervals, wheel_slack

F = TcpFlags
SOL_SOCKET, SO_KEEPALIVE, SO_RCVBUF = 1, 9, 8
IPPROTO_TCP, TCP_NODELAY, TCP_INFO = 6, 1, 11
TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_QUICKACK, TCP_USER_TIMEOUT = 4, 5, 6, 12, 18
NOSIGNAL = 0x4000


@pytest.fixture
def env():
    return DataEnv()


def _drop_once(env, pick):
    """Drop the first segment `pick` accepts (once); returns the list it lands in."""
    lost = []
    previous = env.net.drop

    def drop(seg):
        if not lost and pick(seg):
            lost.append(seg)
            return True
        return previous(seg) if previous is not None else False
    env.net.drop = drop
    return lost


def _data_from(env, fd_or_port):
    port = env.sk(fd_or_port).num if fd_or_port < 1024 else fd_or_port
    return [s for s in env.seen if s.sport == port and s.length]


def _acks_to(env, fd):
    port = env.sk(fd).num
    return [s for s in env.seen if s.dport == port and s.flags & F.ACK and not s.length]


def _drain(env, fd, want):
    got = b""
    for _ in range(200):
        r = env.recv(fd, 1 << 20, MSG_DONTWAIT)
        if isinstance(r, bytes) and r:
            got += r
            if len(got) >= want:
                break
        else:
            env.run_until(env.clock.now() + 0.25)
    return got


def test_fast_retransmit_on_the_third_duplicate_ack(env):
    """One segment lost among six: each later one arrives out of order and is answered
    by a duplicate ACK at once; the third duplicate ACK sends the hole again with no
    timer (the clock does not move), recovery halves the window (NewReno), and when
    the hole is filled every byte is acknowledged."""
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    lost = _drop_once(env, lambda seg: seg.length and seg.sport == env.sk(c).num)
    start = env.clock.now()
    chunks = [bytes([65 + i]) * 1000 for i in range(6)]
    for chunk in chunks:
        assert env.send(c, chunk) == 1000
    assert len(lost) == 1
    hole = lost[0].seq
    sent = _data_from(env, c)
    again = [i for i, seg in enumerate(sent) if seg.seq == hole]
    assert len(again) == 2, "the hole went out again once (fast retransmit)"
    # the duplicate ACKs that came before the retransmission: exactly three
    t_again = env.seen.index(sent[again[1]])
    dups = [a for a in env.seen[:t_again] if a.dport == env.sk(c).num and a.ack == hole
            and not a.length and a.flags == F.ACK]
    assert len(dups) - 1 == 3           # the first is the ACK of the previous segment
    assert env.clock.now() == start     # no RTO involved
    assert env.recv(s, 10000) == b"".join(chunks)
    sk = env.sk(c)
    mib = env.net.mib
    assert (mib["TCPRenoRecovery"], mib["TCPFastRetrans"], mib["RetransSegs"]) == (1, 1, 1)
    assert mib.get("TCPTimeouts", 0) == 0 and mib["TCPOFOQueue"] >= 3
    assert sk.ca_state == TCP_CA_Open and sk.snd_ssthresh == TCP_INIT_CWND // 2
    assert sk.snd_cwnd == sk.snd_ssthresh and sk.total_retrans == 1
    assert env.ioctl(c, 0x5411) == 0    # SIOCOUTQ: everything acknowledged


def test_newreno_partial_ack_sends_the_next_hole(env):
    """Two segments lost: the ACK the first retransmission brings is partial (it stops
    at the second hole), which is sent again at once (RFC 6582), still one recovery."""
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    port = env.sk(c).num
    data_segs = []

    def drop(seg):
        if seg.sport == port and seg.length:
            data_segs.append(seg)
            return len(data_segs) in (2, 4)
        return False
    env.net.drop = drop
    payload = bytes(range(256)) * 40
    for i in range(0, len(payload), 1024):
        env.send(c, payload[i:i + 1024])
    assert env.recv(s, 1 << 20) == payload
    assert env.net.mib["TCPRenoRecovery"] == 1 and env.net.mib["RetransSegs"] == 2
    assert env.net.mib.get("TCPTimeouts", 0) == 0


def test_rto_backs_off_and_doubles(env):
    """A black hole after the handshake: the segment goes again at the RTO (the
    estimator's 200 ms floor, in jiffies of HZ 250: 0.2 s on a fake clock whose RTT is
    0), then each time after twice the wait; the first ACK after the hole clears
    resets the backoff. TCPTimeouts counts each expiry, TCPLossFailures the end of the
    first RTO's recovery by another."""
    _, c, s = env.pair()
    sk = env.sk(c)
    assert sk.rto == pytest.approx(0.2)
    port = sk.num
    hole = {"on": True}
    env.net.drop = lambda seg: hole["on"] and seg.sport == port and bool(seg.length)
    start = env.clock.now()
    env.send(c, b"x" * 100)
    env.run_until(start + 6.6)       # 6.2 s, each wait late by its wheel granule at most
    times = [seg.time - start for seg in _data_from(env, c)]
    assert times[0] == 0
    assert_wheel_intervals(times, [0.2, 0.4, 0.8, 1.6, 3.2])
    assert sk.backoff == 5 and sk.rto == pytest.approx(6.4) and sk.ca_state == TCP_CA_Loss
    assert sk.snd_cwnd == 1 and sk.snd_ssthresh == 5
    info = env.getsockopt(c, IPPROTO_TCP, TCP_INFO, 104)
    state, ca_state, retransmits, _probes, backoff = struct.unpack_from("<5B", info)
    assert (ca_state, retransmits, backoff) == (TCP_CA_Loss, 5, 5)
    assert struct.unpack_from("<I", info, 8)[0] == 6_400_000          # tcpi_rto (us)
    mib = env.net.mib
    # TCPLossFailures counts an RTO that ends another RTO's recovery after progress
    # (icsk_retransmits back at 0); here none made progress
    assert (mib["TCPTimeouts"], mib.get("TCPLossFailures", 0), mib["RetransSegs"]) == (5, 0, 5)
    hole["on"] = False
    env.run_until(times[-1] + start + 6.4 + wheel_slack(6.4))
    assert env.recv(s, 1000) == b"x" * 100
    assert sk.backoff == 0 and sk.rto == pytest.approx(0.2) and sk.retransmits == 0
    assert sk.ca_state == TCP_CA_Open


def test_rtt_estimator_follows_linux():
    """tcp_rtt_estimator() on known samples: the first sets srtt and mdev = 2 * rtt
    (rttvar at least TCP_RTO_MIN), the RTO is srtt/8 + rttvar rounded up to a jiffy."""
    class S:
        srtt_us = mdev_us = mdev_max_us = rttvar_us = rtt_seq = 0
        snd_una = snd_nxt = 0
        rto = 1.0
    sk = S()
    tcp_rtt_estimator(sk, 100_000)          # 100 ms
    tcp_set_rto(sk)
    assert (sk.srtt_us, sk.mdev_us, sk.rttvar_us) == (800_000, 200_000, 200_000)
    assert sk.rto == pytest.approx(0.3)
    tcp_rtt_estimator(sk, 50_000)
    assert sk.srtt_us == 800_000 - 100_000 + 50_000         # 7/8 old + 1/8 new
    tcp_rtt_estimator(sk, 2_000_000)        # a spike: mdev and rttvar grow at once
    tcp_set_rto(sk)
    assert sk.rttvar_us == sk.mdev_us > 200_000
    assert sk.rto == pytest.approx(-(-((sk.srtt_us >> 3) + sk.rttvar_us) * 250 // 10**6) / 250)


def test_rtt_from_the_link_sets_the_rto(env):
    """With 150 ms each way, the handshake measures 300 ms: the RTO is 300 + 600 ms
    (srtt + 4 * rtt/2 for the first sample), and so is the first retransmission."""
    env.net.link_delay = 0.15
    lfd, port = env.server()
    c = env.socket(2, 1 | 0o4000)
    assert env.connect(c, "127.0.0.1", port) == -E.EINPROGRESS
    env.run_until(env.clock.now() + 0.31)
    sk = env.sk(c)
    assert sk.state == TcpState.TCP_ESTABLISHED
    assert sk.srtt_us >> 3 == 300_000 and sk.rto == pytest.approx(0.9)


def test_cwnd_slow_start_then_congestion_avoidance(env):
    """A window-limited sender: slow start adds a segment per segment ACKed (10, 20,
    40 ... up to ssthresh), then congestion avoidance adds one per window."""
    env.net.link_delay = 0.01           # round trips of 20 ms: the window fills
    lfd, port = env.server()
    env.setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, 4 << 20)
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == BLOCK or True
    env.run_until(env.clock.now() + 0.05)
    s, _ = env.accept(lfd)
    assert s >= 0
    sk = env.sk(c)
    sk.mss_cache = 1000                 # small segments: many per window
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    sk.snd_ssthresh = 30
    cwnds = [sk.snd_cwnd]
    for _ in range(8):
        env.send(c, b"z" * 60_000, MSG_DONTWAIT)
        env.run_until(env.clock.now() + 0.021)
        env.recv(s, 1 << 22, MSG_DONTWAIT)
        cwnds.append(sk.snd_cwnd)
    assert cwnds[:3] == [10, 20, 30]            # doubling, stopped at ssthresh
    ca = cwnds[3:]
    assert all(b - a in (0, 1) for a, b in zip(ca, ca[1:])) and ca[-1] > 30


def test_delayed_ack_timing_quickack_and_pingpong(env):
    """The first segments are ACKed at once (quick-ack mode); once the quick ACKs are
    used up, a lone small segment's ACK waits the ATO (40 ms, TCP_ATO_MIN) unless data
    going back carries it; TCP_QUICKACK reads 1 unless pingpong mode is on, and setting
    it sends an owed ACK at once."""
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    ssk = env.sk(s)
    assert env.getint(s, IPPROTO_TCP, TCP_QUICKACK) == 1
    env.send(c, b"a")
    acks = _acks_to(env, c)
    assert acks and acks[-1].ack == env.sk(c).snd_nxt      # at once
    ssk.ack_quick = 0                                      # quick ACKs used up
    t0 = env.clock.now()
    env.clock.t += 0.1              # a gap longer than the ATO, shorter than the RTO
    env.send(c, b"b")
    before = len(_acks_to(env, c))
    env.run_until(env.clock.now() + 0.039)
    assert len(_acks_to(env, c)) == before                  # still delayed
    env.run_until(env.clock.now() + 0.001 + wheel_slack(0.04))
    after = _acks_to(env, c)
    assert len(after) == before + 1
    assert 0.14 < after[-1].time - t0 <= 0.14 + wheel_slack(0.04)
    assert env.net.mib["DelayedACKs"] == 1
    # an answer within the ATO carries the ACK: no bare ACK
    env.send(c, b"c")
    n = len(_acks_to(env, c))
    env.send(s, b"reply")
    env.run_until(env.clock.now() + 0.3)
    assert len(_acks_to(env, c)) == n
    assert env.getint(s, IPPROTO_TCP, TCP_QUICKACK) == 0   # pingpong now
    # TCP_QUICKACK 1: the owed ACK goes now (once the receive queue is empty, as
    # tcp_cleanup_rbuf() wants it)
    env.send(c, b"d")
    n = len(_acks_to(env, c))
    assert env.recv(s, 100) == b"abcd"
    assert len(_acks_to(env, c)) == n           # pingpong: the read sends nothing
    assert env.setsockopt(s, IPPROTO_TCP, TCP_QUICKACK, 1) == 0
    assert len(_acks_to(env, c)) == n + 1
    assert env.getint(s, IPPROTO_TCP, TCP_QUICKACK) == 1


def test_two_full_segments_are_acked_at_once(env):
    """More than one full segment unacknowledged (rcv_mss) is ACKed without waiting."""
    _, c, s = env.pair()
    ssk = env.sk(s)
    ssk.ack_quick = 0
    ssk.ack_ato = 0.04
    env.sk(c).mss_cache = ssk.rcv_mss = 1000
    env.send(c, b"q" * 1000)
    n = len(_acks_to(env, c))
    env.send(c, b"q" * 1000)
    assert len(_acks_to(env, c)) == n + 1 and _acks_to(env, c)[-1].ack == env.sk(c).snd_nxt


@pytest.mark.parametrize("server_isn", [0x10000000, 0x90000000])
def test_bulk_to_a_slow_reader_needs_no_retransmission(monkeypatch, server_isn):
    """Issue 12: a bulk sender, a reader slower than it, no loss: the sender stays
    within the window the reader offers (never more than its receive space), so no
    segment is dropped, none is sent again and no RTO fires. The windows the client
    offers start from the server's ISN; both halves of the sequence space (a SYN_SENT
    sock's rcv_nxt is 0: the window of its SYN must not fix the right edge)."""
    import sysemu.net.ipv4.tcp_input as tcp_input
    monkeypatch.setattr(tcp_input, "secure_tcp_seq", lambda *a: server_isn)
    env = DataEnv()
    _, c, s = env.pair()
    assert env.sk(s).isn == server_isn
    data = bytes(range(256)) * 4096                         # 1 MiB, 8 receive buffers
    sent = got = 0
    received = bytearray()
    for _ in range(10_000):
        if sent < len(data):
            n = env.send(s, data[sent:sent + 65536], MSG_DONTWAIT)
            sent += n if isinstance(n, int) and n > 0 else 0
        r = env.recv(c, 16384, MSG_DONTWAIT)                # a slow reader: 16 KiB a ms
        if isinstance(r, bytes) and r:
            received += r
        env.run_until(env.clock.now() + 0.001)
        if len(received) == len(data):
            break
    assert bytes(received) == data
    csk = env.sk(c)
    offered = [seg.window for seg in env.seen if seg.sport == csk.num]
    assert max(offered) <= csk.rcvbuf
    mib = env.net.mib
    assert mib.get("TCPTimeouts", 0) == 0 and mib.get("RetransSegs", 0) == 0
    assert mib.get("TCPOFODrop", 0) == 0 and mib.get("TCPRenoRecovery", 0) == 0
    assert env.sk(s).total_retrans == 0


def test_window_offered_is_taken_after_so_rcvbuf_shrinks(env):
    """The receiver offered 128 KiB, then the program shrinks SO_RCVBUF: what the peer
    sends within the offered window is taken (Linux never shrinks the window it offered,
    and its memory accounting takes such a segment), not cut to the new space and
    left to the RTO; later windows follow the new space."""
    _, c, s = env.pair()
    assert env.setsockopt(s, SOL_SOCKET, SO_RCVBUF, 4096) == 0      # 8192 of room
    data = bytes(range(256)) * 1200                                 # 307200 bytes
    start = env.clock.now()
    sent = 0
    received = bytearray()
    for _ in range(1000):
        if sent < len(data):
            n = env.send(c, data[sent:], MSG_DONTWAIT)
            sent += n if isinstance(n, int) and n > 0 else 0
        r = env.recv(s, 1 << 20, MSG_DONTWAIT)
        if isinstance(r, bytes) and r:
            received += r
        elif len(received) == len(data):
            break
    assert bytes(received) == data
    assert env.clock.now() == start     # no timer needed: nothing was dropped
    assert env.net.mib.get("TCPTimeouts", 0) == 0 and env.net.mib.get("TCPOFODrop", 0) == 0
    assert env.net.mib.get("RetransSegs", 0) == 0 and env.sk(c).total_retrans == 0
    offered = [seg.window for seg in env.seen if seg.sport == env.sk(s).num]
    assert offered[-1] <= 8192


def _keepalive(env, fd, idle, intvl, cnt):
    assert env.setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle) == 0
    assert env.setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl) == 0
    assert env.setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt) == 0
    assert env.setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1) == 0


def test_keepalive_probes_answered_keep_it_alive(env):
    """Idle for TCP_KEEPIDLE: a probe (one sequence number back) that the peer answers
    with an ACK; the next probe comes one idle time later."""
    _, c, s = env.pair()
    start = env.clock.now()
    _keepalive(env, c, 10, 3, 2)
    env.run_until(start + 25)
    port = env.sk(c).num
    probes = [seg for seg in env.seen if seg.sport == port and seg.time > start]
    assert_wheel_intervals([0.0] + [p.time - start for p in probes], [10, 10])
    assert all(p.seq == (env.sk(c).snd_una - 1) & 0xFFFFFFFF and not p.length for p in probes)
    answers = [seg for seg in env.seen if seg.dport == port and seg.time > start]
    assert len(answers) == 2 and env.sk(c).state == TcpState.TCP_ESTABLISHED
    assert env.net.mib["TCPKeepAlive"] == 2


def test_keepalive_times_out_when_the_peer_vanished(env):
    """The peer is gone silently (everything it would say is lost): TCP_KEEPCNT probes
    TCP_KEEPINTVL apart, then a RST and ETIMEDOUT for the program (TCPAbortOnTimeout)."""
    _, c, s = env.pair()
    start = env.clock.now()
    _keepalive(env, c, 10, 3, 4)
    sport = env.sk(s).num
    env.net.drop = lambda seg: seg.sport == sport
    env.run_until(start + 21.9)
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED
    port = env.sk(c).num
    env.run_until(start + 22 + 5 * wheel_slack(10))
    mine = [seg for seg in env.seen if seg.sport == port and seg.time > start]
    assert_wheel_intervals([0.0] + [p.time - start for p in mine], [10, 3, 3, 3, 3])
    assert [p.flags for p in mine] == [F.ACK] * 4 + [F.RST | F.ACK]
    assert env.sk(c).state == TcpState.TCP_CLOSE
    assert env.recv(c, 10) == -E.ETIMEDOUT
    assert env.recv(c, 10) == b""
    assert env.net.mib["TCPAbortOnTimeout"] == 1 and env.net.mib["TCPKeepAlive"] == 4


def test_keepalive_with_user_timeout(env):
    """TCP_USER_TIMEOUT replaces TCP_KEEPCNT once a probe went: the connection ends
    when the peer was silent that long."""
    _, c, s = env.pair()
    start = env.clock.now()
    _keepalive(env, c, 10, 3, 100)
    assert env.setsockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 15000) == 0
    sport = env.sk(s).num
    env.net.drop = lambda seg: seg.sport == sport
    env.run_until(start + 15.9)
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED
    env.run_until(start + 16 + 3 * wheel_slack(10))
    assert env.sk(c).state == TcpState.TCP_CLOSE
    assert env.recv(c, 10) == -E.ETIMEDOUT


def test_user_timeout_ends_retransmission(env):
    """Data unacknowledged: TCP_USER_TIMEOUT (2 s) ends the retransmissions with
    ETIMEDOUT, the last wait clamped to what was left of it."""
    _, c, s = env.pair()
    assert env.setsockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 2000) == 0
    assert env.getint(c, IPPROTO_TCP, TCP_USER_TIMEOUT) == 2000
    port = env.sk(c).num
    env.net.drop = lambda seg: seg.sport == port and bool(seg.length)
    start = env.clock.now()
    env.send(c, b"lost")
    env.run_until(start + 1.99)
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED
    env.run_until(start + 2.2)
    assert env.sk(c).state == TcpState.TCP_CLOSE
    times = [seg.time - start for seg in _data_from(env, port)]
    assert times[0] == 0
    assert_wheel_intervals(times, [0.2, 0.4, 0.8])
    assert env.send(c, b"x", NOSIGNAL) == -E.ETIMEDOUT
    assert env.net.mib["TCPAbortOnTimeout"] == 1


def test_retries2_gives_up_without_user_timeout(env):
    """Without TCP_USER_TIMEOUT, the modelled time of tcp_retries2 backed-off RTOs
    (924.6 s for 15 from 200 ms) ends the connection."""
    env.kernel.sysctl["net.ipv4.tcp_retries2"] = 3
    _, c, s = env.pair()
    port = env.sk(c).num
    env.net.drop = lambda seg: seg.sport == port and bool(seg.length)
    start = env.clock.now()
    env.send(c, b"lost")
    env.run_until(start + 10)
    # tcp_model_timeout(3, 0.2) = 3 s: the RTO at 3.0 finds the time spent
    assert env.sk(c).state == TcpState.TCP_CLOSE
    times = [seg.time - start for seg in _data_from(env, port)]
    assert times[0] == 0
    assert_wheel_intervals(times, [0.2, 0.4, 0.8])
    assert env.recv(c, 1) == -E.ETIMEDOUT


def test_lost_fin_is_sent_again(env):
    """The FIN is retransmitted like data: the reader sees EOF after the RTO."""
    _, c, s = env.pair()
    _drop_once(env, lambda seg: bool(seg.flags & F.FIN))
    env.send(c, b"bye")
    env.close(c)
    assert env.recv(s, 10) == b"bye"
    assert env.recv(s, 10, MSG_DONTWAIT) == -E.EAGAIN
    env.run_until(env.clock.now() + 0.25)
    assert env.recv(s, 10) == b""


def test_a_lost_ack_of_the_fin_is_answered_again(env):
    """The ACK of a FIN lost: the FIN comes again and is ACKed again (an old segment)."""
    _, c, s = env.pair()
    sport = env.sk(s).num
    _drop_once(env, lambda seg: seg.sport == sport and seg.flags == F.ACK)
    assert env.call("shutdown", c, 1) == 0      # SHUT_WR: the FIN
    env.run_until(env.clock.now() + 0.1)        # the delayed ACK of the FIN: lost
    assert env.sk(c).state == TcpState.TCP_FIN_WAIT1
    env.run_until(env.clock.now() + 1)
    assert env.sk(c).state == TcpState.TCP_FIN_WAIT2
    assert env.net.mib["DelayedACKLost"] == 1


@pytest.mark.parametrize("spec", ["loss:pct=10", "duplicate:pct=20", "reorder:pct=20:ms=3",
                                  "corrupt:pct=10", "bandwidth:kbit=100000",
                                  "loss:pct=5,duplicate:pct=5,reorder:pct=5"])
def test_data_faults_on_the_model_segments(spec):
    """Each data fault acts on the data segments, and the stream still arrives whole
    and in order (slow, never wrong bytes)."""
    env = DataEnv(seed=7)
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    faults = FaultSet.parse(spec.split(","))
    faults.install(env.net)
    delivered = []
    rcv = env.net.rcv
    env.net.rcv = lambda net, seg: (delivered.append(seg), rcv(net, seg))
    data = hashlib.shake_256(spec.encode()).digest(300_000)
    sent = 0
    got = b""
    for _ in range(2000):
        if sent < len(data):
            r = env.send(c, data[sent:sent + 3000], MSG_DONTWAIT)
            if isinstance(r, int) and r > 0:
                sent += r
        r = env.recv(s, 1 << 20, MSG_DONTWAIT)
        if isinstance(r, bytes):
            got += r
        else:
            env.run_until(env.clock.now() + 0.05)
        if len(got) == len(data):
            break
    assert got == data
    on_wire = [seg for seg in env.seen if seg.length]
    arrived = [seg for seg in delivered if seg.length]
    mib = env.net.mib
    if "loss" in spec:
        assert mib["RetransSegs"] > 0
    if "duplicate" in spec:
        assert len(arrived) > len(on_wire)
        assert mib["DelayedACKLost"] > 0                  # the copies are ACKed again
    if "reorder" in spec:
        seqs = [seg.seq for seg in arrived if seg.sport == env.sk(c).num]
        assert any((b - a) & 0xFFFFFFFF > 0x80000000 for a, b in zip(seqs, seqs[1:]))   # went back
        assert mib["TCPOFOQueue"] > 0
    if "corrupt" in spec:
        assert mib["InCsumErrors"] > 0 and mib["RetransSegs"] > 0
        assert any(seg.csum_bad and bytes(seg.payload) not in data for seg in arrived)
    if "bandwidth" in spec:
        # 100 Mbit/s: 300 kB take at least 24 ms of link time
        first = min(seg.time for seg in on_wire)
        assert env.clock.now() - first >= 0.024


def test_data_faults_repeat_with_the_seed():
    """The draws come from the sandbox's random source: the same seed, the same
    segments lost."""
    def lost_seqs(seed):
        env = DataEnv(seed=seed)
        _, c, s = env.pair()
        env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
        FaultSet.parse(["loss:pct=20"]).install(env.net)
        for _ in range(30):
            env.send(c, b"k" * 500)
            env.run_until(env.clock.now() + 0.01)
        env.run_until(env.clock.now() + 5)
        assert len(_drain(env, s, 15000)) == 15000
        return [(round(seg.time, 6), seg.seq) for seg in _data_from(env, c)]
    assert lost_seqs(3) == lost_seqs(3)


def test_latency_fault_delays_the_model_segments_and_the_rto_follows():
    """latency:port=P:ms=30 on the model's segments: a request/response takes two
    one-way delays each way, and the RTO follows the measured RTT (srtt + rttvar, the
    latter at least TCP_RTO_MIN)."""
    env = DataEnv()
    lfd, port = env.server()
    FaultSet.parse([f"latency:port={port}:ms=30"]).install(env.net)
    c = env.socket(2, 1 | 0o4000)
    assert env.connect(c, "127.0.0.1", port) == -E.EINPROGRESS
    env.run_until(env.clock.now() + 0.1)      # SYN, SYN-ACK, ACK: 30 ms each
    s, _ = env.accept(lfd)
    assert s >= 0
    start = env.clock.now()
    env.send(c, b"ping")
    assert env.recv(s, 10, MSG_DONTWAIT) == -E.EAGAIN
    env.run_until(start + 0.031)
    assert env.recv(s, 10) == b"ping"
    env.send(s, b"pong")
    env.run_until(start + 0.061)
    assert env.recv(c, 10) == b"pong"
    sk = env.sk(c)
    assert sk.srtt_us >> 3 == pytest.approx(60_000, abs=1000)
    assert sk.rto == pytest.approx(0.26, abs=0.005)


try:
    from hypothesis import given, settings, strategies as st
except ImportError:         # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=25, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1),
           loss=st.sampled_from([0, 2, 10, 25]), dup=st.sampled_from([0, 5, 20]),
           reorder=st.sampled_from([0, 5, 30]), corrupt=st.sampled_from([0, 5]),
           writes=st.lists(st.integers(1, 20000), min_size=1, max_size=25),
           nodelay=st.booleans(), rcvbuf=st.sampled_from([4096, 65536, 1 << 20]))
    def test_any_bad_link_delivers_the_stream_then_eof(seed, loss, dup, reorder, corrupt,
                                                       writes, nodelay, rcvbuf):
        """Whatever a link loses, duplicates, reorders or corrupts (both directions, the
        FIN too), the reader gets every byte once, in order, then EOF; both ends reach
        the end of the close."""
        env = DataEnv(seed=seed)
        lfd, port = env.server()
        env.setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, rcvbuf)
        c = env.socket()
        assert env.connect(c, "127.0.0.1", port) == 0
        s, _ = env.accept(lfd)
        if nodelay:
            env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
        specs = [f"{k}:pct={v}" for k, v in (("loss", loss), ("duplicate", dup),
                                             ("reorder", reorder), ("corrupt", corrupt)) if v]
        if specs:
            FaultSet.parse(specs).install(env.net)
        data = hashlib.shake_256(str(seed).encode()).digest(sum(writes))
        pending = list(writes)
        sent = off = 0
        got = b""
        closed = eof = False
        for _ in range(5000):
            if pending:
                n = pending[0] - off
                r = env.send(c, data[sent:sent + n], MSG_DONTWAIT)
                if isinstance(r, int) and r > 0:
                    sent += r
                    off += r
                    if off == pending[0]:
                        pending.pop(0)
                        off = 0
            elif not closed:
                assert env.call("shutdown", c, 1) == 0
                closed = True
            r = env.recv(s, 1 << 20, MSG_DONTWAIT)
            if isinstance(r, bytes) and r:
                got += r
            elif r == b"":
                eof = True
                break
            else:
                env.run_until(env.clock.now() + 0.3)
        assert eof and got == data
        env.close(s)
        env.run_until(env.clock.now() + 300)
        assert env.sk(c).state in (TcpState.TCP_TIME_WAIT, TcpState.TCP_CLOSE)
