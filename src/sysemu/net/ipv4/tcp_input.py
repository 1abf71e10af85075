"""TCP's segments in, for a sock that has them: the handshake, ACKs, data, FIN, RST,
new requests.

Linux: net/ipv4/tcp_input.c (tcp_rcv_synsent_state_process, tcp_rcv_state_process,
tcp_finish_connect, tcp_ack, tcp_data_queue, tcp_urg, tcp_reset, tcp_fin,
tcp_conn_request).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import RCV_SHUTDOWN, SEND_SHUTDOWN, SO_OOBINLINE
from sysemu.net.core import (after, before, ktime_get_seconds, sk_acceptq_is_full,
                             tcp_paws_check)
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_clear_xmit_timers,
                                                  inet_csk_reqsk_queue_hash_add,
                                                  inet_csk_reqsk_queue_is_full,
                                                  inet_csk_reset_keepalive_timer)
from sysemu.net.ipv4.request_sock import RequestSock
from sysemu.net.ipv4.tcp import tcp_connect_failed, tcp_done, tcp_shutdown
from sysemu.net.ipv4.tcp_minisocks import tcp_time_wait
from sysemu.net.ipv4.tcp_output import (F, sk_stream_is_writeable, tcp_arm_rtx, tcp_full_space, tcp_init_transfer,
                                        tcp_send, tcp_send_delayed_ack, tcp_send_synack,
                                        tcp_write_xmit)
from sysemu.net.secure_seq import secure_tcp_seq, secure_tcp_ts_off

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment, Sock
    from sysemu.net.ipv4.request_sock import RequestSockOps

S = TcpState


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
    if flags & F.FIN:
        if queued and sk.rcv_nxt == (seg.seq + seg.length) & U32_MAX:
            tcp_fin(net, sk, seg)
    elif seg.length:
        tcp_send(net, sk, F.ACK)    # sysemu: every data segment is ACKed at once (quickack)
    return False


def tcp_ack(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_ack(): an ACK of bytes in flight frees them from the send queue (and
    restarts or stops the retransmission timer), its window moves the send window's
    right edge (tcp_ack_update_window()); then the unsent bytes may go, and writers
    waiting for send space wake (sk_stream_write_space())."""
    if sk.snd_wnd_end == 0 and sk.snd_una == 0:
        return                  # the data path never started (no tcp_init_transfer)
    ack = seg.ack
    if after(ack, sk.snd_nxt) or before(ack, sk.snd_una):
        return                  # sysemu: Linux ACKs an ACK of unsent data; old ACKs go
    acked = min((ack - sk.snd_una) & U32_MAX, sk.snd_sent)
    if acked:
        del sk.sndq[:acked]
        sk.snd_sent -= acked
        sk.snd_una = (sk.snd_una + acked) & U32_MAX
        sk.bytes_acked += acked
        sk.backoff = 0
        if sk.rtx_timer is not None:
            sk.rtx_timer.cancel()
            sk.rtx_timer = None
        if sk.snd_sent:
            tcp_arm_rtx(net, sk)
    end = (ack + seg.window) & U32_MAX
    grew = after(end, sk.snd_wnd_end)
    if grew or acked:
        sk.snd_wnd_end = end if grew else sk.snd_wnd_end
    if len(sk.sndq) > sk.snd_sent and (grew or acked):
        tcp_write_xmit(net, sk, sk.nonagle)
    if (acked or grew) and not sk.dead and sk_stream_is_writeable(sk):
        sk.wait.wake_up()               # Linux: tcp_check_space() -> sk_stream_write_space()
        net.kernel.host.readiness(sk)


def tcp_data_queue(net: "Net", sk: "Sock", seg: "Segment") -> bool:
    """Linux: tcp_data_queue(): the next bytes in order join the receive queue (what
    fits the receive space; sysemu: the wire keeps order, so anything else is a
    duplicate or beyond the window, dropped and answered with an ACK), the reader wakes.
    An urgent pointer (tcp_urg()) marks its byte: out of band unless SO_OOBINLINE.
    True if the whole segment was taken."""
    payload = seg.payload
    if seg.seq != sk.rcv_nxt:
        tcp_send(net, sk, F.ACK)
        return False
    free = tcp_full_space(sk) - len(sk.rcvq)
    n = min(len(payload), max(free, 0))
    if not n:
        tcp_send(net, sk, F.ACK)
        return False
    urg = -1
    if seg.flags & F.URG and seg.urg_ptr:
        # Linux: tcp_check_urg(): the urgent byte is the one before the pointer (BSD)
        urg = seg.urg_ptr - 1
        if urg >= n or (sk.urg_data is not None and sk.urg_seq == (seg.seq + urg) & U32_MAX):
            urg = -1
    if urg >= 0:
        sk.urg_seq = (seg.seq + urg) & U32_MAX
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
    if not sk.dead:
        sk.wait.wake_up()
        net.kernel.host.readiness(sk)
    return n == len(payload)


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
    tcp_init_transfer(net, sk, seg.window)
    sk.bytes_acked = 1          # Linux: tcp_snd_una_update() for the SYN
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
    sk.rcv_nxt = (seg.seq + seg.length + 1) & U32_MAX
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
