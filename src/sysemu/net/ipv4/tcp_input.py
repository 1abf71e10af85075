"""TCP's segments in, for a sock that has them: the handshake, ACKs, data, FIN, RST,
new requests.

Linux: net/ipv4/tcp_input.c (tcp_rcv_synsent_state_process, tcp_rcv_state_process,
tcp_finish_connect, tcp_ack, tcp_data_queue, tcp_urg, tcp_reset, tcp_fin,
tcp_conn_request).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpStates
from sysemu.abi.limits import HZ, U32_MAX
from sysemu.abi.socket import RCV_SHUTDOWN, SEND_SHUTDOWN, SO_OOBINLINE
from sysemu.net.core import (TCP_ATO_MIN, TCP_CA_Loss, TCP_CA_Open, TCP_CA_Recovery,
                             TCP_CA_Disorder, TCP_INVALID_RATELIMIT, TCP_RTO_MAX, TCP_RTO_MIN, after, before,
                             ktime_get_seconds, s32, sk_acceptq_is_full, tcp_paws_check)
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_clear_xmit_timers,
                                                  inet_csk_reqsk_queue_hash_add,
                                                  inet_csk_reqsk_queue_is_full,
                                                  inet_csk_reset_keepalive_timer)
from sysemu.net.ipv4.request_sock import RequestSock
from sysemu.net.ipv4.tcp import tcp_connect_failed, tcp_done, tcp_shutdown
from sysemu.net.ipv4.tcp_minisocks import tcp_time_wait
from sysemu.net.ipv4.tcp_timer import keepalive_time_when, tcp_reset_keepalive_timer
from sysemu.net.ipv4.tcp_cong import tcp_reno_cong_avoid, tcp_reno_ssthresh
from sysemu.net.ipv4.tcp_output import (ICSK_ACK_NOW, ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2,
                                        ICSK_ACK_SCHED, F, sk_stream_is_writeable,
                                        tcp_arm_rtx, tcp_enter_quickack_mode,
                                        tcp_full_space, tcp_in_quickack_mode,
                                        tcp_incr_quickack, tcp_init_transfer, tcp_rcv_room,
                                        tcp_retransmit_head, tcp_send, tcp_send_ack,
                                        tcp_send_delayed_ack, tcp_send_synack,
                                        tcp_stop_rtx, tcp_tsval, tcp_write_xmit,
                                        usecs_to_jiffies)
from sysemu.net.secure_seq import secure_tcp_seq, secure_tcp_ts_off

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment, Sock
    from sysemu.net.ipv4.request_sock import RequestSockOps

S = TcpStates


def tcp_rcv_state_process(net: "Net", sk: "Sock", seg: "Segment") -> bool:
    """Linux: tcp_rcv_synsent_state_process() and tcp_rcv_state_process() for the control
    segments sysemu carries (TIME_WAIT has tcp_timewait_state_process()). True, as
    Linux's nonzero return: the caller answers the segment with a RST."""
    flags = seg.flags
    state = sk.state
    if state == S.TCP_SYN_SENT:
        if flags & F.ACK and seg.ack != sk.snd_nxt:
            return not flags & F.RST
        if flags & F.RST:
            if flags & F.ACK:
                tcp_reset(net, sk)
            return False
        if flags & F.SYN and flags & F.ACK:
            tcp_finish_connect(net, sk, seg)
        elif flags & F.SYN:
            tcp_synsent_crossed_syn(net, sk, seg)
        return False
    if flags & F.RST:
        tcp_reset(net, sk)
        return False
    if state == S.TCP_SYN_RECV:
        # A full sock in SYN_RECV came from crossed SYNs: the other side's SYN-ACK (Linux
        # lets it pass tcp_validate_incoming()'s SYN check in this one case) or ACK
        # acknowledging our SYN ends the handshake.
        if flags & F.ACK and seg.ack == sk.snd_nxt:
            tcp_synrecv_established(net, sk, seg)
        return False
    tcp_replace_ts_recent(net, sk, seg)
    sk.segs_in += 1
    if flags & F.SYN:
        # A retransmitted SYN-ACK (our ACK was dropped): ACK it again.
        if state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT) and flags & F.ACK:
            tcp_send(net, sk, F.ACK)
        return False
    if not seg.length and not flags & F.FIN and before(seg.seq, sk.rcv_wup) \
            and (sk.snd_wnd_end or sk.snd_una):
        tcp_send_dupack_oow(net, sk)
        return False
    if flags & F.ACK:
        tcp_ack(net, sk, seg)
        state = sk.state
    fin_acked = bool(flags & F.ACK) and seg.ack == sk.snd_nxt \
        and sk.shutdown & SEND_SHUTDOWN and not sk.fin_pending
    if state == S.TCP_FIN_WAIT1 and fin_acked:
        sk.state = S.TCP_FIN_WAIT2
        if sk.dead:
            inet_csk_reset_keepalive_timer(net, sk,
                                           float(net.sysctl("net.ipv4.tcp_fin_timeout")))
    elif state == S.TCP_CLOSING and fin_acked:
        tcp_time_wait(net, sk)
        return False
    elif state == S.TCP_LAST_ACK and fin_acked:
        tcp_done(net, sk)
        return False
    queued = True
    fin = 1 if flags & F.FIN else 0
    if (seg.length or fin) and not after((seg.seq + seg.length + fin) & U32_MAX, sk.rcv_nxt):
        # Linux: tcp_data_queue(), "a retransmit, 2nd most common case": all of it came
        # before (our ACK was lost, or the peer's RTO went back): ACK again at once
        net.count("DelayedACKLost")
        tcp_enter_quickack_mode(sk)
        tcp_send_ack(net, sk)
        return False
    if seg.length:
        state = sk.state
        if state in (S.TCP_FIN_WAIT1, S.TCP_FIN_WAIT2) and sk.shutdown & RCV_SHUTDOWN:
            # Linux: RFC 1122 says we MUST send a reset: data for a closed reader
            net.count("TCPAbortOnData")
            tcp_reset(net, sk)
            return True
        if state not in (S.TCP_ESTABLISHED, S.TCP_FIN_WAIT1, S.TCP_FIN_WAIT2):
            return False        # after the peer's FIN: nothing more to queue
        queued = tcp_data_queue(net, sk, seg)
    if fin:
        if queued and sk.rcv_nxt == (seg.seq + seg.length) & U32_MAX:
            tcp_fin(net, sk, seg)
            if sk.ack_pending & ICSK_ACK_NOW:
                tcp_send_ack(net, sk)
        elif not seg.length and after(seg.seq, sk.rcv_nxt):
            tcp_data_queue_ofo(net, sk, seg.seq, b"", True)     # a FIN beyond a hole
    elif queued and seg.length:
        tcp_ack_snd_check(net, sk)
    return False


def tcp_send_dupack_oow(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_validate_incoming() for a segment before the window (tcp_sequence()
    fails: a keepalive or zero-window probe, one sequence number back): it is dropped
    and answered with a duplicate ACK, at most one per tcp_invalid_ratelimit
    (tcp_oow_rate_limited(); sysemu keeps tp->last_oow_ack_time in the tw_ field)."""
    now = net.now()
    last = sk.tw_last_oow_ack_time
    if last is not None and 0 <= now - last < TCP_INVALID_RATELIMIT:
        net.count("TCPACKSkippedSeq")
        return
    sk.tw_last_oow_ack_time = now
    tcp_send_ack(net, sk)


def tcp_ack_snd_check(net: "Net", sk: "Sock") -> None:
    """Linux: __tcp_ack_snd_check(): ACK at once when more than one full segment is
    unacknowledged and the window would not shrink, in quick-ack mode, when told to
    (ICSK_ACK_NOW) or while segments wait out of order; else the delayed ACK.
    sysemu: "would not shrink" compares the right edges (Linux compares the window's
    size, which its rcv_ssthresh keeps below the free space; sysemu offers all of it)."""
    unacked = (sk.rcv_nxt - sk.rcv_wup) & U32_MAX
    if (unacked > sk.rcv_mss and tcp_full_space(sk) - len(sk.rcvq) + unacked >= sk.rcv_wnd) \
            or tcp_in_quickack_mode(sk) or sk.ack_pending & ICSK_ACK_NOW or sk.ofo:
        tcp_send_ack(net, sk)
    else:
        tcp_send_delayed_ack(net, sk)


def tcp_event_data_recv(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_event_data_recv() + tcp_measure_rcv_mss(): an ACK is owed; the first
    data starts quick-ack mode, the gap since the last segment tunes the ATO (a gap
    longer than the RTO: quick ACKs again); small pushed segments are noted."""
    sk.ack_pending |= ICSK_ACK_SCHED
    length = seg.length
    if length >= sk.rcv_mss:
        sk.rcv_mss = min(length, sk.mss_cache)
    else:
        if sk.ack_pending & ICSK_ACK_PUSHED:
            sk.ack_pending |= ICSK_ACK_PUSHED2
        sk.ack_pending |= ICSK_ACK_PUSHED
    now = net.now()
    if not sk.ack_ato:
        tcp_incr_quickack(sk)
        sk.ack_ato = TCP_ATO_MIN
    else:
        m = now - sk.lrcvtime
        if m <= TCP_ATO_MIN / 2:
            sk.ack_ato = sk.ack_ato / 2 + TCP_ATO_MIN / 2
        elif m < sk.ack_ato:
            sk.ack_ato = min(sk.ack_ato / 2 + m, sk.rto)
        elif m > sk.rto:
            tcp_incr_quickack(sk)
    sk.lrcvtime = now


def tcp_ack(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_ack(): an ACK of bytes in flight frees them from the send queue
    (tcp_clean_rtx_queue(): an RTT sample, the retransmission timer restarted or
    stopped), its window moves the send window's right edge (tcp_ack_update_window());
    duplicate ACKs and partial ACKs drive loss recovery (tcp_fastretrans_alert()), new
    ACKs grow the congestion window (tcp_cong_avoid()); then the unsent bytes may go, and
    writers waiting for send space wake (sk_stream_write_space())."""
    if sk.snd_wnd_end == 0 and sk.snd_una == 0:
        return                  # the data path never started (no tcp_init_transfer)
    ack = seg.ack
    if before(ack, sk.snd_una):
        return                  # an old ACK
    if after(ack, sk.snd_max):
        return                  # sysemu: Linux ACKs an ACK of unsent data
    now = net.now()
    sk.probes_out = 0           # the peer is alive (keepalive, zero-window probes)
    sk.rcv_tstamp = now
    delta = (ack - sk.snd_una) & U32_MAX
    acked = min(delta, len(sk.sndq))
    if acked:
        del sk.sndq[:acked]
        sk.snd_una = (sk.snd_una + acked) & U32_MAX
        sk.bytes_acked += acked
    if delta:
        sk.retransmits = 0
        if after(ack, sk.snd_nxt):
            # what an RTO sent again had arrived after all (the receiver kept it)
            sk.snd_nxt = ack
            if sk.fin_pending and not before(ack, (sk.snd_una + len(sk.sndq) + 1) & U32_MAX):
                sk.fin_pending = False
        sk.snd_sent = min(len(sk.sndq), (sk.snd_nxt - sk.snd_una) & U32_MAX)
    pkts_acked = tcp_clean_rtx_queue(net, sk, ack, seg) if delta else 0
    end = (ack + seg.window) & U32_MAX
    grew = after(end, sk.snd_wnd_end)
    if grew or delta:
        sk.snd_wnd_end = end if grew else sk.snd_wnd_end
    if grew and not sk.rtx_q:
        sk.backoff = 0          # Linux: tcp_ack_probe(): the window opened
    dupack = not delta and not grew and not seg.length and sk.rtx_q \
        and not seg.flags & (F.SYN | F.FIN)
    tcp_fastretrans_alert(net, sk, pkts_acked, dupack)
    if len(sk.sndq) > sk.snd_sent and (grew or delta or dupack):
        sk.is_cwnd_limited = False
        tcp_write_xmit(net, sk, sk.nonagle)
    if (delta or grew) and not sk.dead and sk_stream_is_writeable(sk):
        sk.wait.wake_up()               # Linux: tcp_check_space() -> sk_stream_write_space()
        net.kernel.host.readiness(sk)


def tcp_clean_rtx_queue(net: "Net", sk: "Sock", ack: int, seg: "Segment") -> int:
    """Linux: tcp_clean_rtx_queue() + tcp_ack_update_rtt(): the segments now wholly
    acknowledged leave the rtx queue; the oldest of them that was sent once gives the
    RTT sample (Karn: none when a retransmitted one is acknowledged, but then the
    timestamp echo does), which sets the RTO and ends the backoff. The timer restarts
    while segments remain in flight. Returns how many segments were acknowledged."""
    now = net.now()
    q = sk.rtx_q
    pkts = 0
    first_sent = None
    retrans_acked = False
    while q and not after(q[0][0], ack):
        end_seq, sent, retrans = q.popleft()
        pkts += 1
        if retrans:
            retrans_acked = True
            sk.retrans_out -= 1
        elif first_sent is None:
            first_sent = sent
    if not q:
        sk.rtx_q = ()
    rtt_us = -1
    if first_sent is not None and not retrans_acked:
        rtt_us = round((now - first_sent) * 1_000_000)
    elif pkts and sk.tstamp_ok and seg.tsecr:
        rtt_us = s32(tcp_tsval(net, sk.tsoffset) - seg.tsecr) * 1000
    if rtt_us >= 0:
        tcp_rtt_estimator(sk, rtt_us)
        tcp_set_rto(sk)
        sk.backoff = 0
    if not sk.retrans_out:
        sk.retrans_stamp = 0.0
    if q:
        tcp_arm_rtx(net, sk)
    elif sk.rtx_timer is not None and len(sk.sndq) <= sk.snd_sent:
        tcp_stop_rtx(sk)
    elif sk.rtx_timer is not None:
        tcp_arm_rtx(net, sk)        # nothing in flight, bytes held: the probe timer
    return pkts


def tcp_synack_rtt(net: "Net", sk: "Sock", sent: float | None, tsecr: int) -> None:
    """Linux: the handshake's RTT sample (tcp_ack_update_rtt() for the SYN-ACK,
    tcp_synack_rtt_meas() for a child): from when the SYN (SYN-ACK) left, if it was sent
    once, else from the timestamp echo; with none the RTO stays TCP_TIMEOUT_INIT."""
    rtt_us = -1
    if sent is not None:
        rtt_us = round((net.now() - sent) * 1_000_000)
    elif sk.tstamp_ok and tsecr:
        rtt_us = s32(tcp_tsval(net, sk.tsoffset) - tsecr) * 1000
    if rtt_us >= 0:
        tcp_rtt_estimator(sk, rtt_us)
        tcp_set_rto(sk)


def tcp_rtt_estimator(sk: "Sock", mrtt_us: int) -> None:
    """Linux: tcp_rtt_estimator(): Jacobson's smoothed RTT (srtt_us is 8 times it) and
    mean deviation (mdev_us, 4 times), rttvar_us the deviation's maximum over the last
    round trip, never under TCP_RTO_MIN."""
    m = max(mrtt_us, 0)
    srtt = sk.srtt_us
    rto_min_us = int(TCP_RTO_MIN * 1_000_000)
    if srtt:
        m -= srtt >> 3
        srtt += m
        if m < 0:
            m = -m
            m -= sk.mdev_us >> 2
            if m > 0:
                m >>= 3
        else:
            m -= sk.mdev_us >> 2
        sk.mdev_us += m
        if sk.mdev_us > sk.mdev_max_us:
            sk.mdev_max_us = sk.mdev_us
            if sk.mdev_max_us > sk.rttvar_us:
                sk.rttvar_us = sk.mdev_max_us
        if after(sk.snd_una, sk.rtt_seq):
            if sk.mdev_max_us < sk.rttvar_us:
                sk.rttvar_us -= (sk.rttvar_us - sk.mdev_max_us) >> 2
            sk.rtt_seq = sk.snd_nxt
            sk.mdev_max_us = rto_min_us
    else:
        srtt = m << 3
        sk.mdev_us = m << 1
        sk.rttvar_us = max(sk.mdev_us, rto_min_us)
        sk.mdev_max_us = sk.rttvar_us
        sk.rtt_seq = sk.snd_nxt
    sk.srtt_us = max(1, srtt)


def tcp_set_rto(sk: "Sock") -> None:
    """Linux: tcp_set_rto() / __tcp_set_rto() / tcp_bound_rto(): srtt + 4 * mdev (as
    rttvar), in whole jiffies, at most TCP_RTO_MAX."""
    us = (sk.srtt_us >> 3) + sk.rttvar_us
    sk.rto = min(usecs_to_jiffies(us) / HZ, TCP_RTO_MAX)


def tcp_fastretrans_alert(net: "Net", sk: "Sock", pkts_acked: int, dupack: bool) -> None:
    """Linux: tcp_fastretrans_alert() for a connection without SACK (NewReno, RFC 6582;
    Reno's sacked_out is the duplicate ACK count): the third duplicate ACK
    (net.ipv4.tcp_reordering) starts recovery: ssthresh halves, the first unacknowledged
    segment is sent again (TCPRenoRecovery, TCPFastRetrans), and the window is inflated
    by the duplicates; a partial ACK sends the next hole again; the ACK of everything
    sent before recovery ends it with the window at ssthresh. In Loss (after an RTO)
    the window grows from one segment until that point is acknowledged. Other ACKs of
    new data grow the window (tcp_cong_avoid())."""
    state = sk.ca_state
    if state == TCP_CA_Recovery:
        if dupack:
            sk.dupacks += 1
            sk.snd_cwnd += 1
            return
        if not pkts_acked:
            return
        if not before(sk.snd_una, sk.high_seq):
            sk.snd_cwnd = min(sk.snd_cwnd, sk.snd_ssthresh)   # Linux: tcp_end_cwnd_reduction()
            sk.ca_state = TCP_CA_Open
            sk.dupacks = 0
            return
        sk.dupacks = max(sk.dupacks - pkts_acked, 0)        # tcp_remove_reno_sacks()
        sk.snd_cwnd = max(sk.snd_cwnd - pkts_acked + 1, 1)
        tcp_retransmit_head(net, sk)
        return
    if state == TCP_CA_Loss:
        if pkts_acked and not before(sk.snd_una, sk.high_seq):
            sk.ca_state = TCP_CA_Open
            sk.dupacks = 0
        if pkts_acked:
            tcp_reno_cong_avoid(sk, pkts_acked)
        return
    if dupack:
        sk.dupacks += 1
        if sk.dupacks >= int(net.sysctl("net.ipv4.tcp_reordering")):
            tcp_enter_recovery(net, sk)
        else:
            sk.ca_state = TCP_CA_Disorder
        return
    if pkts_acked:
        sk.dupacks = 0
        sk.ca_state = TCP_CA_Open
        tcp_reno_cong_avoid(sk, pkts_acked)


def tcp_enter_recovery(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_enter_recovery() + the first tcp_retransmit_skb() of the head."""
    net.count("TCPRenoRecovery")
    sk.snd_ssthresh = tcp_reno_ssthresh(sk)
    sk.snd_cwnd = sk.snd_ssthresh + sk.dupacks
    sk.snd_cwnd_cnt = 0
    sk.high_seq = sk.snd_max
    sk.ca_state = TCP_CA_Recovery
    if not sk.retrans_stamp and sk.rtx_q:
        sk.retrans_stamp = sk.rtx_q[0][1]
    tcp_retransmit_head(net, sk)


def tcp_data_queue(net: "Net", sk: "Sock", seg: "Segment") -> bool:
    """Linux: tcp_data_queue(): the next bytes in order join the receive queue (what fits
    the receive space or the window offered: tcp_rcv_room()), then what waited out of order behind them (tcp_ofo_queue());
    bytes beyond a hole wait out of order (tcp_data_queue_ofo()) and are answered by a
    duplicate ACK at once; a segment that starts before rcv_nxt gives its new part. The
    reader wakes. An urgent pointer (tcp_urg()) marks its byte: out of band unless
    SO_OOBINLINE. True if the whole segment was taken in order."""
    payload = seg.payload
    seq = seg.seq
    if seq != sk.rcv_nxt:
        if after(seq, sk.rcv_nxt):
            tcp_data_queue_ofo(net, sk, seq, payload, bool(seg.flags & F.FIN))
            return False
        cut = (sk.rcv_nxt - seq) & U32_MAX      # the old part was queued before
        payload = payload[cut:]
        seq = sk.rcv_nxt
        tcp_enter_quickack_mode(sk)
    n = min(len(payload), tcp_rcv_room(sk))
    if not n:
        tcp_send_ack(net, sk)
        return False
    urg = -1
    if seg.flags & F.URG and seg.urg_ptr and seq == seg.seq:
        # Linux: tcp_check_urg(): the urgent byte is the one before the pointer (BSD)
        urg = seg.urg_ptr - 1
        if urg >= n or (sk.urg_data is not None and sk.urg_seq == (seq + urg) & U32_MAX):
            urg = -1
    if urg >= 0:
        sk.urg_seq = (seq + urg) & U32_MAX
        sk.urg_data = payload[urg]
        sk.urg_mark = True
        if not sk.sockflags.get(SO_OOBINLINE):
            sk.rcvq += payload[:urg]
            sk.urg_off = len(sk.rcvq)
            sk.rcvq += payload[urg + 1:n]
        else:
            sk.urg_off = len(sk.rcvq) + urg
            sk.rcvq += payload[:n]
    else:
        sk.rcvq += payload[:n]
    sk.rcv_nxt = (sk.rcv_nxt + n) & U32_MAX
    sk.bytes_received += n
    sk.data_segs_in += 1
    tcp_event_data_recv(net, sk, seg)
    whole = n == len(payload)
    if sk.ofo:
        tcp_ofo_queue(net, sk)
        if not sk.ofo:
            sk.ack_pending |= ICSK_ACK_NOW      # Linux: the hole filled: ACK at once
    if not sk.dead:
        sk.wait.wake_up()
        net.kernel.host.readiness(sk)
    return whole


def tcp_data_queue_ofo(net: "Net", sk: "Sock", seq: int, payload: bytes, fin: bool) -> None:
    """Linux: tcp_data_queue_ofo(): a segment beyond a hole waits (TCPOFOQueue) while it
    fits the receive space or the window offered (else TCPOFODrop); a duplicate ACK goes at once, which is what
    tells the sender of the hole."""
    held = sum(len(p) for p, _ in sk.ofo.values())
    end = (seq + len(payload)) & U32_MAX
    room = tcp_rcv_room(sk)
    if held + len(payload) > room or after(end, (sk.rcv_nxt + room) & U32_MAX):
        net.count("TCPOFODrop")
    else:
        net.count("TCPOFOQueue")
        old = sk.ofo.get(seq)
        if old is None or len(old[0]) < len(payload) or fin:
            sk.ofo[seq] = (payload, fin)
    tcp_enter_quickack_mode(sk)
    tcp_send_ack(net, sk)


def tcp_ofo_queue(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_ofo_queue(): what waited out of order and now follows rcv_nxt joins
    the receive queue (the part past rcv_nxt; wholly old ones are dropped); a FIN that
    waited is taken once its bytes are."""
    while sk.ofo:
        ready = [s for s in sk.ofo if not after(s, sk.rcv_nxt)]
        if not ready:
            return
        for start in sorted(ready, key=lambda s: (s - sk.rcv_nxt) & U32_MAX):
            payload, fin = sk.ofo.pop(start)
            cut = (sk.rcv_nxt - start) & U32_MAX
            if cut > len(payload) or (cut == len(payload) and not fin):
                continue
            rest = payload[cut:]
            room = tcp_rcv_room(sk)
            if len(rest) > room:
                rest = rest[:room]
                fin = False
            sk.rcvq += rest
            sk.rcv_nxt = (sk.rcv_nxt + len(rest)) & U32_MAX
            sk.bytes_received += len(rest)
            if fin:
                sk.ofo.clear()
                tcp_fin_after_data(net, sk)
                return


def tcp_finish_connect(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_finish_connect() (and tcp_rcv_synsent_state_process()'s part before
    it): timestamps stay on if the SYN-ACK has them (ts_recent from it), ESTABLISHED,
    ACK the SYN-ACK, wake the connector."""
    inet_csk_clear_xmit_timers(sk)
    if sk.tstamp_ok and seg.tsval is not None:
        tcp_store_ts_recent(net, sk, seg.tsval)
    else:
        sk.tstamp_ok = False
    sk.rcv_nxt = (seg.seq + 1) & U32_MAX
    sk.state = S.TCP_ESTABLISHED
    tcp_synack_rtt(net, sk, sk.retrans_stamp if not sk.retransmits else None, seg.tsecr)
    tcp_init_transfer(net, sk, seg.window)
    sk.bytes_acked = 1          # Linux: tcp_snd_una_update() for the SYN
    if sk.keepalive:
        tcp_reset_keepalive_timer(net, sk, keepalive_time_when(net, sk))
    tcp_send(net, sk, F.ACK)
    if not sk.dead:
        sk.wait.wake_up()
        net.kernel.host.connect_done(sk, 0)


def tcp_synsent_crossed_syn(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_rcv_synsent_state_process(), a SYN without ACK: "simultaneous connect
    with crossed SYNs. Particularly, it can be connect to self." SYN_RECV, the peer's
    sequence number and timestamp taken, and a SYN-ACK of our ISN."""
    if sk.tstamp_ok and seg.tsval is not None:
        tcp_store_ts_recent(net, sk, seg.tsval)
    else:
        sk.tstamp_ok = False
    sk.state = S.TCP_SYN_RECV
    sk.rcv_nxt = (seg.seq + 1) & U32_MAX
    tcp_send(net, sk, F.SYN | F.ACK, seq=sk.isn)


def tcp_synrecv_established(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_rcv_state_process(), TCP_SYN_RECV of a full sock (crossed SYNs): our
    SYN is acknowledged, ESTABLISHED; the connector is woken (sk_state_change()). A
    shutdown(SHUT_WR) made before (even one that failed ENOTCONN: inet_shutdown() sets
    the bits anyway) now sends its FIN."""
    inet_csk_clear_xmit_timers(sk)
    tcp_replace_ts_recent(net, sk, seg)
    sk.state = S.TCP_ESTABLISHED
    if not sk.dead:
        sk.wait.wake_up()
        net.kernel.host.connect_done(sk, 0)
    if sk.shutdown & SEND_SHUTDOWN:
        tcp_shutdown(net, sk, SEND_SHUTDOWN)


def tcp_store_ts_recent(net: "Net", sk: "Sock", tsval: int) -> None:
    """Linux: tcp_store_ts_recent(): the peer's latest timestamp, and when it came."""
    sk.ts_recent = tsval
    sk.ts_recent_stamp = ktime_get_seconds(net.now())


def tcp_replace_ts_recent(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_replace_ts_recent(): a segment at or before rcv_nxt (rcv_wup) that
    passes PAWS updates ts_recent (sysemu: the model's segments are control segments,
    so ts_recent follows them, not the native data)."""
    if not sk.tstamp_ok or seg.tsval is None or after(seg.seq, sk.rcv_nxt):
        return
    if tcp_paws_check(sk.ts_recent, sk.ts_recent_stamp, seg.tsval, 0, net.now()):
        tcp_store_ts_recent(net, sk, seg.tsval)


def tcp_reset(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_reset(): the error for the state, then tcp_done()."""
    if sk.state == S.TCP_SYN_SENT:
        sk.sk_err = Errno.ECONNREFUSED
    elif sk.state == S.TCP_CLOSE_WAIT:
        sk.sk_err = Errno.EPIPE
    elif sk.state == S.TCP_CLOSE:
        return
    else:
        sk.sk_err = Errno.ECONNRESET
    if sk.state == S.TCP_SYN_SENT:
        return tcp_connect_failed(net, sk)
    # Linux: tcp_write_queue_purge(); the receive queue stays readable
    del sk.sndq[:]
    sk.snd_sent = 0
    sk.fin_pending = False
    if sk.rtx_timer is not None:
        sk.rtx_timer.cancel()
        sk.rtx_timer = None
    if not sk.dead:
        net.kernel.host.reset(sk)
    tcp_done(net, sk)
    if not sk.dead:
        net.kernel.host.readiness(sk)


def tcp_fin(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_fin(): after the segment's bytes; SOCK_DONE (reads end with 0)."""
    sk.rcv_nxt = (seg.seq + seg.length) & U32_MAX
    tcp_fin_after_data(net, sk)


def tcp_fin_after_data(net: "Net", sk: "Sock") -> None:
    """tcp_fin() once rcv_nxt is at the FIN: it takes its sequence number."""
    sk.rcv_nxt = (sk.rcv_nxt + 1) & U32_MAX
    sk.shutdown |= RCV_SHUTDOWN
    sk.done = True
    state = sk.state
    if state == S.TCP_ESTABLISHED:
        # Linux enters pingpong mode here: the ACK of the FIN is delayed (ATO, 40 ms) in
        # the hope that our own FIN can carry it (probed on 6.18: the closer shows
        # FIN_WAIT1 right after shutdown(SHUT_WR)).
        sk.state = S.TCP_CLOSE_WAIT
        tcp_send_delayed_ack(net, sk)
    elif state == S.TCP_FIN_WAIT1:
        tcp_send(net, sk, F.ACK)
        sk.state = S.TCP_CLOSING
    elif state == S.TCP_FIN_WAIT2:
        tcp_send(net, sk, F.ACK)
        tcp_time_wait(net, sk)
    if not sk.dead:
        sk.wait.wake_up()
        net.kernel.host.readiness(sk)


def tcp_conn_request(net: "Net", rsk_ops: "RequestSockOps", sk: "Sock", seg: "Segment",
                     isn: int = 0) -> None:
    """Linux: tcp_conn_request(): a full SYN queue drops the SYN unless SYN cookies take
    over; a full accept queue drops it (ListenOverflows + ListenDrops) and the client
    retransmits. `isn` is nonzero for a SYN a TIME_WAIT sock handed over (TCP_TW_SYN:
    no SYN queue limits, and that ISN); else the ISN is secure_tcp_seq() of the 4-tuple
    (tcp_v4_init_seq()). The SYN's timestamp is kept for the SYN-ACK's echo."""
    syncookies = int(net.sysctl("net.ipv4.tcp_syncookies"))
    want_cookie = False
    if not isn and (syncookies == 2 or inet_csk_reqsk_queue_is_full(sk)):
        if syncookies:   # Linux: tcp_syn_flood_action()
            want_cookie = True
            net.count("TCPReqQFullDoCookies")
        else:
            net.count("TCPReqQFullDrop")
            net.count("ListenDrops")
            return
    if sk_acceptq_is_full(sk):
        net.count("ListenOverflows")
        net.count("ListenDrops")
        return
    if not want_cookie and not isn and not syncookies:
        max_syn_backlog = int(net.sysctl("net.ipv4.tcp_max_syn_backlog"))
        if max_syn_backlog - sk.accept_queue.qlen < (max_syn_backlog >> 2):
            net.count("ListenDrops")       # "drop open request from ..." (unproven peer)
            return
    if not isn:
        # sysemu: a SYN cookie's ISN is this hash too (the cookie is kept as its request)
        isn = secure_tcp_seq(net, seg.daddr, seg.saddr, seg.dport, seg.sport)
    req = RequestSock(sk, rsk_ops, seg.daddr, seg.dport, seg.saddr, seg.sport, seg.seq, isn)
    timestamps = int(net.sysctl("net.ipv4.tcp_timestamps"))
    if timestamps and seg.tsval is not None:
        req.tstamp_ok = True
        req.ts_recent = seg.tsval
        if timestamps == 1:            # Linux: tcp_v4_init_ts_off()
            req.ts_off = secure_tcp_ts_off(net, seg.daddr, seg.saddr)
    if want_cookie:
        net.count("SyncookiesSent")
        sk.accept_queue.cookies[req.key] = req
    else:
        inet_csk_reqsk_queue_hash_add(net, sk, req)
    tcp_send_synack(net, req)
