"""TCP's timers: retransmission (SYN and data) and its give-up rules, the zero-window
probe, keepalive, TCP_USER_TIMEOUT, the orphan's end.

Linux: net/ipv4/tcp_timer.c (tcp_retransmit_timer, tcp_write_timeout, tcp_write_err,
retransmits_timed_out, tcp_model_timeout, tcp_probe_timer, tcp_keepalive_timer),
net/ipv4/tcp_input.c tcp_enter_loss, net/ipv4/tcp.c tcp_set_keepalive. tcp_prot hands
the handlers to the socks (Proto.write_timer, Proto.keepalive_timer).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TcpStates
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import SEND_SHUTDOWN
from sysemu.net.core import (TCP_CA_Disorder, TCP_CA_Loss, TCP_CA_Recovery, TCP_RTO_MAX,
                             TCP_RTO_MIN, TCP_TIMEOUT_INIT, after)
from sysemu.net.ipv4.inet_connection_sock import inet_csk_reset_xmit_timer
from sysemu.net.ipv4.tcp import tcp_connect_failed, tcp_done
from sysemu.net.ipv4.tcp_cong import tcp_reno_ssthresh
from sysemu.net.ipv4.tcp_output import (TCP_NAGLE_PUSH, F, tcp_arm_rtx, tcp_send,
                                        tcp_send_active_reset, tcp_user_timeout,
                                        tcp_write_xmit)

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

S = TcpStates


def tcp_model_timeout(boundary: int, rto_base: float) -> float:
    """Linux: tcp_model_timeout()."""
    thresh = int(TCP_RTO_MAX / rto_base).bit_length() - 1   # ilog2(TCP_RTO_MAX / rto_base)
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * TCP_RTO_MAX


def retransmits_timed_out(net: "Net", sk: "Sock", boundary: int, timeout: float = 0.0) -> bool:
    """Linux: retransmits_timed_out(): the time since the first retransmission
    (retrans_stamp) has reached `timeout` (TCP_USER_TIMEOUT), or when that is 0 the time
    `boundary` backed-off RTOs take (from TCP_TIMEOUT_INIT in the handshake, TCP_RTO_MIN
    after)."""
    if not sk.retransmits:
        return False
    if not timeout:
        rto_base = TCP_TIMEOUT_INIT if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV) \
            else TCP_RTO_MIN
        timeout = tcp_model_timeout(boundary, rto_base)
    return net.now() - sk.retrans_stamp - timeout >= -1e-9


def tcp_write_timeout(net: "Net", sk: "Sock") -> bool:
    """Linux: tcp_write_timeout(): give up (tcp_write_err()) after syn_retries (+ the
    linear ones) SYN retransmits, or once the modelled time of tcp_retries2 data
    retransmits (tcp_orphan_retries for an orphan: 8 while its RTO is under
    TCP_RTO_MAX) has passed, or TCP_USER_TIMEOUT when set."""
    expired = False
    if sk.state == S.TCP_SYN_SENT:
        retry_until = sk.syn_retries or int(net.sysctl("net.ipv4.tcp_syn_retries"))
        max_retransmits = retry_until + int(net.sysctl("net.ipv4.tcp_syn_linear_timeouts"))
        expired = sk.retransmits >= max_retransmits
    else:
        retry_until = int(net.sysctl("net.ipv4.tcp_retries2"))
        if sk.dead:
            retry_until = int(net.sysctl("net.ipv4.tcp_orphan_retries")) \
                or (8 if sk.rto < TCP_RTO_MAX else 0)
    if not expired:
        expired = retransmits_timed_out(net, sk, retry_until, tcp_user_timeout(sk))
    if expired:
        tcp_write_err(net, sk)
    return expired


def tcp_write_err(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_write_err(): the connection timed out: the soft error or ETIMEDOUT,
    the queues purged, CLOSE (TCPAbortOnTimeout)."""
    sk.sk_err = sk.sk_err_soft or Errno.ETIMEDOUT
    if sk.state == S.TCP_SYN_SENT:
        tcp_connect_failed(net, sk)
        return
    net.count("TCPAbortOnTimeout")
    del sk.sndq[:]
    sk.snd_sent = 0
    sk.fin_pending = False
    sk.rtx_q = ()
    if not sk.dead:
        net.kernel.host.reset(sk)
    tcp_done(net, sk)
    if not sk.dead:
        net.kernel.host.readiness(sk)


def tcp_retransmit_timer(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_retransmit_timer() (and tcp_probe_timer(), the same timer with nothing
    in flight). For a SYN: time out, or resend and back off. The first
    tcp_syn_linear_timeouts retransmits keep the 1 s RTO (Linux 6.5+), then it doubles
    up to TCP_RTO_MAX: with the defaults a SYN goes out at 0, 1, 2, 3, 4, 5, 7, 11, 19,
    35, 67 s and connect() fails with ETIMEDOUT at 131 s (measured on 6.18)."""
    if sk.state != S.TCP_SYN_SENT:
        return tcp_data_retransmit_timer(net, sk)
    sk.timer = None
    if tcp_write_timeout(net, sk):
        return
    net.count("TCPTimeouts")
    sk.retransmits += 1
    sk.total_rto += 1
    sk.total_retrans += 1
    net.count("RetransSegs")
    net.count("TCPSynRetrans")
    tcp_send(net, sk, F.SYN, seq=sk.isn)
    if sk.total_rto > int(net.sysctl("net.ipv4.tcp_syn_linear_timeouts")):
        sk.backoff += 1
        sk.rto = min(sk.rto * 2, TCP_RTO_MAX)
    if sk.state == S.TCP_SYN_SENT:
        inet_csk_reset_xmit_timer(net, sk, sk.rto)


def tcp_data_retransmit_timer(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_retransmit_timer() for a connection: nothing acknowledged for an RTO.
    Count it (TCPTimeouts), give up (tcp_write_timeout()), or, the first time, count
    what it ends (TCPRenoRecoveryFail: a fast recovery; TCPLossFailures: an earlier
    RTO's; TCPRenoFailures: duplicate ACKs short of recovery), enter
    Loss (tcp_enter_loss(): ssthresh halves, the window is one segment, every segment
    in flight counts as lost) and send again from snd_una, backing the RTO off (doubled,
    at most TCP_RTO_MAX). With nothing in flight this is tcp_probe_timer(): what a cork
    or a zero window holds goes now (tcp_write_wakeup())."""
    sk.rtx_timer = None
    if sk.state in (S.TCP_CLOSE, S.TCP_TIME_WAIT, S.TCP_LISTEN, S.TCP_SYN_RECV):
        return
    if not sk.rtx_q:
        if len(sk.sndq) > sk.snd_sent:
            tcp_probe_timer(net, sk)
        return
    net.count("TCPTimeouts")
    if tcp_write_timeout(net, sk):
        return
    if not sk.retransmits:
        if sk.ca_state == TCP_CA_Recovery:
            net.count("TCPRenoRecoveryFail")
        elif sk.ca_state == TCP_CA_Loss:
            net.count("TCPLossFailures")
        elif sk.ca_state == TCP_CA_Disorder or sk.dupacks:
            net.count("TCPRenoFailures")
    if not sk.retrans_stamp:
        sk.retrans_stamp = sk.rtx_q[0][1]
    tcp_enter_loss(net, sk)
    sk.retransmits += 1
    sk.total_rto += 1
    sk.backoff += 1
    sk.rto = min(sk.rto * 2, TCP_RTO_MAX)
    tcp_write_xmit(net, sk, sk.nonagle | TCP_NAGLE_PUSH)
    if sk.rtx_timer is None and sk.rtx_q:
        tcp_arm_rtx(net, sk)


def tcp_enter_loss(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_enter_loss(): ssthresh from the window (unless a recovery already cut
    it), a window of one segment, high_seq = snd_max, and every segment in flight
    marked lost: sysemu goes back to snd_una (snd_nxt, the FIN too) and resends from
    there as the window allows (Linux resends the marked skbs from its rtx queue)."""
    if sk.ca_state <= TCP_CA_Disorder or not after(sk.high_seq, sk.snd_una) \
            or (sk.ca_state == TCP_CA_Loss and not sk.retransmits):
        sk.snd_ssthresh = tcp_reno_ssthresh(sk)
    sk.snd_cwnd = 1
    sk.snd_cwnd_cnt = 0
    sk.ca_state = TCP_CA_Loss
    sk.dupacks = 0
    sk.high_seq = sk.snd_max
    if sk.shutdown & SEND_SHUTDOWN and not sk.fin_pending:
        sk.fin_pending = True           # the FIN is out too: go back before it as well
    sk.snd_nxt = sk.snd_una
    sk.snd_sent = 0
    sk.rtx_q = ()
    sk.retrans_out = 0


def tcp_probe_timer(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_probe_timer() -> tcp_send_probe0() -> tcp_write_wakeup(): bytes held
    with nothing in flight (a zero window, a cork) go as far as the window lets them;
    while the window stays shut the probe backs off (icsk_probes_out), and an orphan or
    TCP_USER_TIMEOUT gives up as tcp_probe_timer() does."""
    user_timeout = tcp_user_timeout(sk)
    if user_timeout and sk.probes_out and net.now() - sk.rcv_tstamp >= user_timeout:
        tcp_write_err(net, sk)
        return
    tcp_write_xmit(net, sk, sk.nonagle | TCP_NAGLE_PUSH)
    if len(sk.sndq) > sk.snd_sent and not sk.rtx_q:
        sk.probes_out += 1
        sk.backoff += 1             # a zero window: probe again, backing off
        net.count("TCPWinProbe")
        tcp_probe_window(net, sk)
        tcp_arm_rtx(net, sk)


def tcp_probe_window(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_xmit_probe_skb(): a bare ACK one sequence number back, which the peer
    answers with its window."""
    tcp_send(net, sk, F.ACK, seq=(sk.snd_una - 1) & U32_MAX)


# -- keepalive --------------------------------------------------------------------------

def keepalive_time_when(net: "Net", sk: "Sock") -> float:
    """Linux: keepalive_time_when(): TCP_KEEPIDLE, else net.ipv4.tcp_keepalive_time."""
    return float(sk.tcp_opts.get(TCP_KEEPIDLE) or net.sysctl("net.ipv4.tcp_keepalive_time"))


def keepalive_intvl_when(net: "Net", sk: "Sock") -> float:
    return float(sk.tcp_opts.get(TCP_KEEPINTVL) or net.sysctl("net.ipv4.tcp_keepalive_intvl"))


def keepalive_probes(net: "Net", sk: "Sock") -> int:
    return int(sk.tcp_opts.get(TCP_KEEPCNT) or net.sysctl("net.ipv4.tcp_keepalive_probes"))


def keepalive_time_elapsed(net: "Net", sk: "Sock") -> float:
    """Linux: keepalive_time_elapsed(): since the last segment or ACK from the peer."""
    return net.now() - max(sk.lrcvtime, sk.rcv_tstamp)


def tcp_reset_keepalive_timer(net: "Net", sk: "Sock", when: float) -> None:
    """Linux: inet_csk_reset_keepalive_timer() for a connection (sk_timer)."""
    tcp_delete_keepalive_timer(sk)
    sk.ka_timer = net.add_timer(when, lambda now, sk=sk: tcp_keepalive_timer(net, sk))


def tcp_delete_keepalive_timer(sk: "Sock") -> None:
    if sk.ka_timer is not None:
        sk.ka_timer.cancel()
        sk.ka_timer = None


def tcp_set_keepalive(net: "Net", sk: "Sock", val: bool) -> None:
    """Linux: tcp_set_keepalive() (SO_KEEPALIVE on a connection): start the timer at
    the idle time, or stop it."""
    if sk.state in (S.TCP_CLOSE, S.TCP_LISTEN):
        return
    if val and not sk.keepalive:
        tcp_reset_keepalive_timer(net, sk, keepalive_time_when(net, sk))
    elif not val:
        tcp_delete_keepalive_timer(sk)


def tcp_keepidle_changed(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_sock_set_keepidle_locked(): a running keepalive timer is moved to the
    new idle time, counted from the last segment received."""
    if not sk.keepalive or sk.state in (S.TCP_CLOSE, S.TCP_LISTEN):
        return
    left = keepalive_time_when(net, sk) - keepalive_time_elapsed(net, sk)
    tcp_reset_keepalive_timer(net, sk, max(left, 0.0))


def tcp_keepalive_timer(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_keepalive_timer() for a connection with SO_KEEPALIVE: alive while
    segments are in flight or queued (the retransmission timer watches those); idle for
    the keepalive time, a probe (TCPKeepAlive: a bare ACK one sequence number back, which
    the peer must answer); after TCP_KEEPCNT unanswered probes, or TCP_USER_TIMEOUT of
    silence once a probe went, a RST and ETIMEDOUT (tcp_write_err())."""
    sk.ka_timer = None
    if not sk.keepalive or sk.state in (S.TCP_CLOSE, S.TCP_SYN_SENT, S.TCP_LISTEN,
                                        S.TCP_TIME_WAIT) or sk.dead:
        return
    elapsed = keepalive_time_when(net, sk)
    if not sk.rtx_q and len(sk.sndq) <= sk.snd_sent:
        elapsed = keepalive_time_elapsed(net, sk)
        if elapsed >= keepalive_time_when(net, sk) - 1e-9:
            user_timeout = tcp_user_timeout(sk)
            if (user_timeout and elapsed >= user_timeout and sk.probes_out > 0) or \
                    (not user_timeout and sk.probes_out >= keepalive_probes(net, sk)):
                tcp_send_active_reset(net, sk)
                tcp_write_err(net, sk)
                return
            net.count("TCPKeepAlive")
            tcp_probe_window(net, sk)
            sk.probes_out += 1
            elapsed = keepalive_intvl_when(net, sk)
        else:
            elapsed = keepalive_time_when(net, sk) - elapsed
    tcp_reset_keepalive_timer(net, sk, elapsed)


def tcp_orphan_expire(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_keepalive_timer() for an orphan in FIN_WAIT2: after tcp_fin_timeout it
    is reset and dies."""
    sk.timer = None
    if sk.state == S.TCP_FIN_WAIT2:
        tcp_send(net, sk, F.RST | F.ACK)
        net.count("OutRsts")
        tcp_done(net, sk)
