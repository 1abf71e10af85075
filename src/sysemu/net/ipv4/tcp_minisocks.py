"""TIME_WAIT and the requests' side of the handshake.

Linux: net/ipv4/tcp_minisocks.c (tcp_time_wait, tcp_timewait_state_process,
tcp_timewait_check_oow_rate_limit, tcp_check_req); the timewait sock's timer and end
are inet_timewait_sock's.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sysemu.abi.inet import TcpStates
from sysemu.abi.limits import U32_MAX
from sysemu.net.core import (TCP_INVALID_RATELIMIT, TCP_TIMEWAIT_LEN, after, ktime_get_seconds,
                             s32, tcp_clock_ms, tcp_paws_reject)
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_clear_xmit_timers,
                                                  inet_csk_reqsk_queue_drop)
from sysemu.net.ipv4.inet_timewait_sock import (inet_twsk_deschedule_put, inet_twsk_hashdance,
                                                inet_twsk_reschedule, inet_twsk_schedule)
from sysemu.net.ipv4.tcp import tcp_done
from sysemu.net.ipv4.tcp_output import F, tcp_send_synack

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment, Sock
    from sysemu.net.ipv4.request_sock import RequestSock

S = TcpStates


class TcpTwStatus(enum.IntEnum):
    """Linux: include/net/tcp.h enum tcp_tw_status: what tcp_v4_rcv() does with a
    segment a TIME_WAIT sock looked at."""
    TCP_TW_SUCCESS = 0      # consumed (or dropped)
    TCP_TW_RST = 1          # answer with RST, end TIME_WAIT
    TCP_TW_ACK = 2          # answer with an ACK of the old connection
    TCP_TW_SYN = 3          # a new connection: the listener takes the SYN
    TCP_TW_ACK_OOW = 4      # an ACK to an out-of-window segment


def tcp_time_wait(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_time_wait(sk, TCP_TIME_WAIT, 0): TIME_WAIT for TCP_TIMEWAIT_LEN (60 s),
    entered at tw_entry_stamp (ms); the 4-tuple stays in ehash and the port in its bind
    bucket until then (inet_twsk_schedule()). rcv_nxt, snd_nxt, ts_recent and
    ts_recent_stamp stay what they were (tcptw->tw_*). A sock the program still holds
    hands TIME_WAIT to a timewait sock and is done (CLOSE) itself."""
    if not sk.dead:
        tw = inet_twsk_hashdance(net, sk)
        tcp_done(net, sk)
        sk = tw
    sk.state = S.TCP_TIME_WAIT
    inet_csk_clear_xmit_timers(sk)
    sk.tw_entry_stamp = tcp_clock_ms(net.now())
    sk.tw_last_oow_ack_time = None
    inet_twsk_schedule(net, sk, TCP_TIMEWAIT_LEN)
    if not sk.dead:
        sk.wait.wake_up()


def tcp_timewait_check_oow_rate_limit(net: "Net", tw: "Sock", seg: "Segment",
                                      mib: str) -> TcpTwStatus:
    """Linux: tcp_timewait_check_oow_rate_limit() -> tcp_oow_rate_limited(): ACK an
    out-of-window segment, at most once per tcp_invalid_ratelimit (0.5 s) unless it is
    data without SYN (not part of an ACK loop)."""
    if seg.seq != seg.end_seq and not seg.flags & F.SYN:
        return TcpTwStatus.TCP_TW_ACK_OOW
    now = net.now()
    last = tw.tw_last_oow_ack_time
    if last is not None and 0 <= now - last < TCP_INVALID_RATELIMIT:
        net.count(mib)
        return TcpTwStatus.TCP_TW_SUCCESS
    tw.tw_last_oow_ack_time = now
    return TcpTwStatus.TCP_TW_ACK_OOW


def tcp_timewait_state_process(net: "Net", tw: "Sock",
                               seg: "Segment") -> tuple[TcpTwStatus, int]:
    """Linux: tcp_timewait_state_process() (the TIME_WAIT substate: an orphan in
    FIN_WAIT2 stays a full sock in sysemu). Returns the status and, for TCP_TW_SYN, the
    ISN of the new connection (tw_snd_nxt + 65535 + 2).

    PAWS first (when both ends use timestamps). An in-window bare ACK or RST: a RST ends
    TIME_WAIT (tcp_rfc1337 = 0, the default; else it is ignored), anything else re-arms
    the 60 s. A SYN after rcv_nxt, or with a newer timestamp, opens a new connection
    (RFC 1122 4.2.2.13). The rest (a retransmitted FIN, an old SYN, stray ACKs) is
    answered with an ACK of the old connection, rate-limited."""
    flags = seg.flags
    rcv_nxt = tw.rcv_nxt
    saw_tstamp = seg.tsval is not None and tw.ts_recent_stamp != 0
    now = net.now()
    paws_reject = saw_tstamp and tcp_paws_reject(tw.ts_recent, tw.ts_recent_stamp,
                                                  seg.tsval, bool(flags & F.RST), now)
    if not paws_reject and seg.seq == rcv_nxt and (seg.seq == seg.end_seq or flags & F.RST):
        if flags & F.RST:
            if not int(net.sysctl("net.ipv4.tcp_rfc1337")):
                inet_twsk_deschedule_put(net, tw)
                return TcpTwStatus.TCP_TW_SUCCESS, 0
        else:
            inet_twsk_reschedule(net, tw, TCP_TIMEWAIT_LEN)
        if saw_tstamp:
            tw.ts_recent = seg.tsval
            tw.ts_recent_stamp = ktime_get_seconds(now)
        return TcpTwStatus.TCP_TW_SUCCESS, 0
    if (flags & F.SYN and not flags & (F.RST | F.ACK) and not paws_reject
            and (after(seg.seq, rcv_nxt)
                 or (saw_tstamp and s32(tw.ts_recent - seg.tsval) < 0))):
        isn = (tw.snd_nxt + 65535 + 2) & U32_MAX
        return TcpTwStatus.TCP_TW_SYN, isn or 1
    if paws_reject:
        net.count("PAWSTimewait")
    if not flags & F.RST:
        # An ACK-less SYN may be an old duplicate or a new SYN below rcv_nxt: the timer is
        # not re-armed for it.
        if paws_reject or flags & F.ACK:
            inet_twsk_reschedule(net, tw, TCP_TIMEWAIT_LEN)
        return tcp_timewait_check_oow_rate_limit(net, tw, seg, "TCPACKSkippedTimeWait"), 0
    return TcpTwStatus.TCP_TW_SUCCESS, 0


def tcp_check_req(net: "Net", req: "RequestSock", seg: "Segment") -> None:
    """Linux: tcp_check_req(): a retransmitted SYN gets the SYN-ACK again; RST kills the
    request; the ACK of our SYN-ACK creates the child (icsk_af_ops->syn_recv_sock). A
    child that finds no room leaves the request for the SYN-ACK timer to retry."""
    if seg.flags & F.RST:
        net.count("EmbryonicRsts")
        return inet_csk_reqsk_queue_drop(net, req)
    if seg.flags & F.SYN and not seg.flags & F.ACK:
        return tcp_send_synack(net, req)
    if not seg.flags & F.ACK or seg.ack != (req.snt_isn + 1) & U32_MAX:
        return req.rsk_ops.send_reset(net, seg)
    if req.tstamp_ok and seg.tsval is not None and not after(seg.seq, req.rcv_isn + 1):
        req.ts_recent = seg.tsval
    listener = req.listener
    listener.icsk_af_ops.syn_recv_sock(net, listener, req)
