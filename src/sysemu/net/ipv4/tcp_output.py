"""TCP's segments out: control segments, data segments, the delayed ACK.

Linux: net/ipv4/tcp_output.c (tcp_transmit_skb, tcp_connect, tcp_send_fin,
tcp_send_active_reset, tcp_make_synack / tcp_rtx_synack, tcp_send_delayed_ack,
tcp_write_xmit, tcp_nagle_test, __tcp_push_pending_frames, tcp_select_window).

In the native data path (the default) only control segments travel here (SYN, SYN-ACK,
ACK, FIN, RST): the bytes of an established connection move natively between
placeholders (DESIGN.md), so sequence numbers advance by SYN and FIN only. In the model
data path tcp_sendmsg() queues the program's bytes on sk.sndq and tcp_write_xmit() cuts
them into segments of at most the MSS, within the peer's window, with Nagle, TCP_CORK
and MSG_MORE holding back a partial segment as Linux's tcp_nagle_test() does.
Segments in flight are also limited by the congestion window (tcp_cwnd_test(), Reno:
net/ipv4/tcp_cong.py); a segment below snd_max is a retransmission (RetransSegs). Loss
recovery (fast retransmit, the RTO) is in tcp_input.py and tcp_timer.py.
sysemu: no SACK (Linux with net.ipv4.tcp_sack=0), no TSO/GSO, no pacing.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from sysemu.abi.inet import TCP_USER_TIMEOUT, TcpFlags, TcpStates
from sysemu.abi.limits import HZ, U32_MAX
from sysemu.abi.socket import SEND_SHUTDOWN
from sysemu.net.core import (SOCK_SNDBUF_LOCK, TCP_ATO_MIN, TCP_CA_Disorder, TCP_CA_Loss,
                             TCP_DELACK_MAX, TCP_DELACK_MIN, TCP_INIT_CWND, TCP_MAX_QUICKACKS, TCP_RTO_MAX,
                             TCP_RTO_MIN, TCP_TIMEOUT_INIT, WMEM_MAX, Segment, after, before,
                             s32, tcp_clock_ms)
from sysemu.net.ipv4.inet_connection_sock import inet_csk_reset_xmit_timer

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock
    from sysemu.net.ipv4.request_sock import RequestSock

S = TcpStates


class F:
    """TcpFlags as plain ints: the hot path tests and combines flags on every segment, and
    IntFlag arithmetic costs microseconds in CPython. TcpFlags(x) names them for display."""
    FIN = int(TcpFlags.FIN)
    SYN = int(TcpFlags.SYN)
    RST = int(TcpFlags.RST)
    PSH = int(TcpFlags.PSH)
    ACK = int(TcpFlags.ACK)
    URG = int(TcpFlags.URG)


# Linux: include/net/tcp.h tp->nonagle bits
TCP_NAGLE_OFF = 1       # TCP_NODELAY
TCP_NAGLE_CORK = 2      # TCP_CORK (or MSG_MORE for one push)
TCP_NAGLE_PUSH = 4      # push what is queued now, whatever Nagle says

# Linux: the loopback device's MTU (65536) less the IPv4 and TCP headers; 12 bytes less
# with the timestamp option (tcpi_snd_mss 65483 on lo, probed on 6.18).
LOOPBACK_MSS = 65495
TCPOLEN_TSTAMP_ALIGNED = 12


def tcp_transmit(net: "Net", saddr: bytes, sport: int, daddr: bytes, dport: int, seq: int,
                 ack: int, flags: int, tsval: int | None = None, tsecr: int = 0,
                 payload: bytes = b"", window: int = 65535, urg_ptr: int = 0) -> None:
    """One segment onto the wire (Linux: tcp_transmit_skb() -> ip_queue_xmit()); tsval
    (None: no timestamp option) and tsecr are the timestamp option's."""
    net.transmit(Segment(saddr, sport, daddr, dport, seq & U32_MAX, ack & U32_MAX, flags,
                         len(payload), tsval=tsval, tsecr=tsecr, payload=payload,
                         window=window, urg_ptr=urg_ptr))


def tcp_tsval(net: "Net", offset: int) -> int:
    """Linux: tcp_skb_timestamp_ts() + tsoffset: the timestamp a segment carries, the
    TCP clock in milliseconds plus the connection's offset (secure_tcp_ts_off())."""
    return (tcp_clock_ms(net.now()) + offset) & U32_MAX


def tcp_send(net: "Net", sk: "Sock", flags: int, seq: int | None = None,
             payload: bytes = b"", urg_ptr: int = 0) -> None:
    """A segment of `sk` (seq: snd_nxt unless given; ack: rcv_nxt), with the timestamp
    option when the connection has it (Linux: tcp_established_options() /
    tcp_syn_options()) and the receive window (tcp_select_window()). One that carries the
    ACK cancels a pending delayed ACK (Linux: tcp_event_ack_sent())."""
    if flags & F.ACK:
        tcp_event_ack_sent(sk)
    if seq is None:
        seq = sk.snd_nxt
        if not payload and after(sk.snd_max, seq) \
                and sk.state not in (S.TCP_SYN_SENT, S.TCP_SYN_RECV, S.TCP_CLOSE):
            seq = sk.snd_max        # Linux: tcp_acceptable_seq(), its snd_nxt never goes back
    tsval = tcp_tsval(net, sk.tsoffset) if sk.tstamp_ok else None
    if flags & F.SYN:
        # Linux: tcp_transmit_skb(): a SYN's window is rcv_wnd, not tcp_select_window()'s
        # (a SYN_SENT sock's rcv_nxt is 0: no right edge can be counted from it yet)
        window = sk.rcv_wnd = tcp_syn_window(sk)
    else:
        window = tcp_select_window(sk)
    sk.segs_out += 1
    tcp_transmit(net, sk.wire_local(), sk.num, sk.wire_remote(), sk.dport,
                 seq, sk.rcv_nxt, flags, tsval, sk.ts_recent,
                 payload, window, urg_ptr)


def tcp_full_space(sk: "Sock") -> int:
    """Linux: tcp_full_space(): the receive buffer's room for data.
    sysemu: the whole SO_RCVBUF value (Linux gives the data about half of it, by its
    measured skb overhead), and no receive-buffer autotuning."""
    return sk.rcvbuf


def tcp_syn_window(sk: "Sock") -> int:
    """Linux: tcp_select_initial_window(): the window a SYN or SYN-ACK offers, the free
    receive space, never scaled (at most 65535); once the peer's ISN is known the right
    edge starts from it (tcp_init_transfer())."""
    return min(max(0, tcp_full_space(sk) - len(sk.rcvq)), 65535)


def tcp_rcv_room(sk: "Sock") -> int:
    """The bytes from rcv_nxt the receiver takes, and offers: the free space of the
    receive queue, or up to the right edge it offered before if that is further (Linux:
    tcp_select_window() never shrinks the offered window).
    sysemu: what was offered is taken even when SO_RCVBUF shrank since, or the reader has
    not made room (Linux's rmem accounting has the slack for it, and tcp_data_queue()
    forces a segment in when the receive queue is empty); the space is counted in bytes."""
    free = max(0, tcp_full_space(sk) - len(sk.rcvq))
    if sk.rcv_wnd_end and after(sk.rcv_wnd_end, (sk.rcv_nxt + free) & U32_MAX):
        return (sk.rcv_wnd_end - sk.rcv_nxt) & U32_MAX
    return free


def tcp_select_window(sk: "Sock") -> int:
    """Linux: tcp_select_window(): the free space of the receive queue; the right edge
    it offers never moves back (the space only grows as the program reads)."""
    room = tcp_rcv_room(sk)
    sk.rcv_wnd_end = (sk.rcv_nxt + room) & U32_MAX
    sk.rcv_wnd = min(room, 0x7FFFFFFF)
    return sk.rcv_wnd


def tcp_sndbuf(sk: "Sock") -> int:
    """The send queue's limit (Linux: sk_sndbuf, compared with sk_wmem_queued).
    sysemu: SO_SNDBUF's value when the program set it, else net.core.wmem_max's (Linux
    grows sk_sndbuf with the congestion window up to tcp_wmem[2]); bytes, no skb
    overhead."""
    return sk.sndbuf if sk.userlocks & SOCK_SNDBUF_LOCK else WMEM_MAX


def sk_stream_is_writeable(sk: "Sock") -> bool:
    """Linux: __sk_stream_is_writeable(): free send space at least half of what is queued
    (sk_stream_wspace() >= sk_stream_min_wspace()): POLLOUT, and when writers wake."""
    queued = len(sk.sndq)
    return tcp_sndbuf(sk) - queued >= queued // 2


def tcp_current_mss(sk: "Sock") -> int:
    """Linux: tcp_current_mss(): loopback's MSS, less the timestamp option."""
    return LOOPBACK_MSS - (TCPOLEN_TSTAMP_ALIGNED if sk.tstamp_ok else 0)


def tcp_init_transfer(net: "Net", sk: "Sock", peer_window: int) -> None:
    """Linux: tcp_init_transfer() / tcp_init_wl(): the connection is established, the
    data path starts at snd_nxt and rcv_nxt with the peer's first window; the right edge
    of ours is rcv_nxt (rcv_wup) + the window our SYN (SYN-ACK) offered (rcv_wnd)."""
    sk.snd_una = sk.snd_max = sk.snd_nxt
    sk.snd_wnd_end = (sk.snd_nxt + peer_window) & U32_MAX
    sk.rcv_wup = sk.rcv_nxt
    sk.rcv_wnd_end = (sk.rcv_nxt + sk.rcv_wnd) & U32_MAX    # what the SYN (SYN-ACK) offered
    sk.rcv_tstamp = sk.lrcvtime = net.now()
    sk.snd_sml = sk.snd_nxt
    sk.mss_cache = tcp_current_mss(sk)
    sk.nonagle = (sk.nonagle & ~TCP_NAGLE_OFF) | (TCP_NAGLE_OFF if sk.nodelay else 0)
    # Linux: RFC 5681's window of one segment when the SYN (or SYN-ACK) had to be sent
    # more than once, else TCP_INIT_CWND; the handshake's retransmissions are over
    sk.snd_cwnd = 1 if sk.total_retrans > 1 else TCP_INIT_CWND
    sk.retransmits = 0
    sk.backoff = 0
    sk.retrans_stamp = 0.0


# -- the data path ---------------------------------------------------------------------

def tcp_nagle_test(sk: "Sock", size: int, mss: int, nonagle: int, last: bool) -> bool:
    """Linux: tcp_nagle_test() / tcp_nagle_check() / tcp_minshall_check(): may a segment
    of `size` bytes go now? A full one, a pushed one, or the last one carrying the FIN
    always; a partial one not while corked (TCP_CORK, MSG_MORE), nor, without
    TCP_NODELAY, while a small segment sent earlier is unacknowledged (Minshall)."""
    if nonagle & TCP_NAGLE_PUSH or size >= mss:
        return True
    if last and sk.fin_pending:
        return True
    if nonagle & TCP_NAGLE_CORK:
        return False
    if nonagle & TCP_NAGLE_OFF:
        return True
    return not (sk.snd_sent and after(sk.snd_sml, sk.snd_una))


def tcp_write_xmit(net: "Net", sk: "Sock", nonagle: int) -> None:
    """Linux: tcp_write_xmit(): send the unsent bytes of sk.sndq as segments of at most
    the MSS, within the peer's window, as Nagle allows; the FIN goes with the last one
    (or alone once everything is out). PSH marks the segment that empties the queue
    (tcp_mark_push of the write's last skb). Re-entered from an ACK that arrives while
    it sends (loopback delivers at once): every pass reads the queue afresh."""
    while True:
        unsent = len(sk.sndq) - sk.snd_sent
        if unsent <= 0:
            break
        if tcp_packets_in_flight(sk) >= sk.snd_cwnd:
            sk.is_cwnd_limited = True       # Linux: tcp_cwnd_test()
            break
        usable = s32(sk.snd_wnd_end - sk.snd_nxt)
        if usable <= 0:
            break           # the probe timer asks again (tcp_check_probe_timer() below)
        mss = sk.mss_cache
        size = min(mss, unsent, usable)
        last = size == unsent
        if size < mss and size == unsent and not tcp_nagle_test(sk, size, mss, nonagle, last):
            break
        start = sk.snd_sent
        payload = bytes(sk.sndq[start:start + size])
        seq = sk.snd_nxt
        flags = F.ACK | (F.PSH if last else 0)
        urg_ptr = 0
        if sk.snd_up and after(sk.snd_up, seq):
            flags |= F.URG              # Linux: tcp_options_write()'s urgent pointer
            urg_ptr = min((sk.snd_up - seq) & U32_MAX, 0xFFFF)
        fin = last and sk.fin_pending
        if fin:
            flags |= F.FIN
            sk.fin_pending = False
        sk.snd_sent = start + size
        sk.snd_nxt = (seq + size + (1 if fin else 0)) & U32_MAX
        if size < mss:
            sk.snd_sml = (seq + size) & U32_MAX
        sk.data_segs_out += 1
        tcp_event_data_sent(net, sk)
        if not tcp_rtx_counted(net, sk, seq):
            sk.bytes_sent += size
        tcp_event_new_data_sent(net, sk, seq, sk.snd_nxt)
        tcp_send(net, sk, flags, seq=seq, payload=payload, urg_ptr=urg_ptr)
        if sk.snd_up and not after(sk.snd_up, sk.snd_nxt):
            sk.snd_up = 0
    if sk.fin_pending and len(sk.sndq) == sk.snd_sent:
        sk.fin_pending = False
        _send_fin_now(net, sk)
    elif len(sk.sndq) > sk.snd_sent and not sk.rtx_q and sk.rtx_timer is None:
        # Linux: tcp_check_probe_timer(): bytes held with nothing in flight (corked, or a
        # zero window) go out at the probe timer (the 200 ms ceiling of tcp(7)'s TCP_CORK)
        tcp_arm_rtx(net, sk)


def tcp_packets_in_flight(sk: "Sock") -> int:
    """Linux: tcp_packets_in_flight(): segments out (packets_out); in Disorder the
    duplicate ACKs (Reno's sacked_out) left the network: limited transmit (RFC 3042)."""
    if sk.ca_state == TCP_CA_Disorder:
        return max(len(sk.rtx_q) - sk.dupacks, 0)
    return len(sk.rtx_q)


def tcp_event_new_data_sent(net: "Net", sk: "Sock", seq: int, end_seq: int) -> None:
    """Linux: tcp_event_new_data_sent() / tcp_rearm_rto(): the segment [seq, end_seq)
    joins the ones in flight; the retransmission timer runs while any is."""
    if not sk.rtx_q:
        sk.rtx_q = deque()              # made when needed: an empty deque is 760 bytes
    sk.rtx_q.append([end_seq, net.now(), before(seq, sk.snd_max)])
    if after(end_seq, sk.snd_max):
        sk.snd_max = end_seq
    if sk.rtx_timer is None:
        tcp_arm_rtx(net, sk)


def tcp_rtx_counted(net: "Net", sk: "Sock", seq: int) -> bool:
    """A segment from below snd_max is a retransmission: RetransSegs, tcpi_total_retrans,
    and in the Loss state, but for the first (the timer's own), TCPSlowStartRetrans
    (Linux: tcp_retransmit_skb() / tcp_xmit_retransmit_queue()). True if it was one."""
    if not before(seq, sk.snd_max):
        return False
    net.count("RetransSegs")
    sk.total_retrans += 1
    sk.retrans_out += 1
    if sk.ca_state == TCP_CA_Loss and sk.rtx_q:
        net.count("TCPSlowStartRetrans")
    return True


def tcp_retransmit_head(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_retransmit_skb() of the head of the rtx queue (fast retransmit, a
    NewReno partial ACK): the first unacknowledged segment again, snd_nxt unmoved."""
    if not sk.rtx_q:
        return
    head = sk.rtx_q[0]
    size = min(sk.mss_cache, len(sk.sndq), (head[0] - sk.snd_una) & U32_MAX)
    fin = size < (head[0] - sk.snd_una) & U32_MAX and size == len(sk.sndq) \
        and sk.shutdown & SEND_SHUTDOWN and not sk.fin_pending
    if not head[2]:
        sk.retrans_out += 1
    head[1], head[2] = net.now(), True
    net.count("RetransSegs")
    net.count("TCPFastRetrans")
    sk.total_retrans += 1
    flags = F.ACK | (F.PSH if size == len(sk.sndq) else 0) | (F.FIN if fin else 0)
    tcp_send(net, sk, flags, seq=sk.snd_una, payload=bytes(sk.sndq[:size]))


def tcp_push(net: "Net", sk: "Sock", more: bool = False) -> None:
    """Linux: tcp_push(): after a write, send what may go; MSG_MORE corks this push
    (TCP_NAGLE_CORK), TCP_CORK corks every push until it is cleared."""
    nonagle = sk.nonagle | (TCP_NAGLE_CORK if more else 0)
    tcp_write_xmit(net, sk, nonagle)


def tcp_push_pending_frames(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_push_pending_frames(): TCP_NODELAY set, or TCP_CORK cleared."""
    tcp_write_xmit(net, sk, sk.nonagle | TCP_NAGLE_PUSH)


def tcp_arm_rtx(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_rearm_rto() / tcp_reset_xmit_timer(): the retransmission timer at the
    RTO (icsk_rto: the estimator's, doubled per expiry, clamped to what is left of
    TCP_USER_TIMEOUT), or, with nothing in flight, the probe timer (what a cork or a
    zero window holds: tcp_probe0_when()). The protocol's write timer handles both."""
    if sk.rtx_timer is not None:
        sk.rtx_timer.cancel()
    if sk.rtx_q:
        delay = tcp_clamp_rto_to_user_timeout(net, sk)
    else:
        delay = min(max(sk.rto, TCP_RTO_MIN) * (1 << min(sk.backoff, 16)), TCP_RTO_MAX)
    write_timer = sk.sk_prot.write_timer
    sk.rtx_timer = net.add_timer(delay, lambda now, sk=sk: write_timer(net, sk))


def tcp_stop_rtx(sk: "Sock") -> None:
    if sk.rtx_timer is not None:
        sk.rtx_timer.cancel()
        sk.rtx_timer = None


def tcp_user_timeout(sk: "Sock") -> float:
    """TCP_USER_TIMEOUT in seconds (0: not set)."""
    return sk.tcp_opts.get(TCP_USER_TIMEOUT, 0) / 1000.0


def tcp_clamp_rto_to_user_timeout(net: "Net", sk: "Sock") -> float:
    """Linux: tcp_clamp_rto_to_user_timeout(): never wait past the user timeout."""
    user_timeout = tcp_user_timeout(sk)
    if not user_timeout or not sk.retrans_stamp:
        return sk.rto
    remaining = user_timeout - (net.now() - sk.retrans_stamp)
    return min(sk.rto, max(remaining, 1.0 / HZ))


def tcp_connect(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_connect() (tcp_connect_init()): the ISN is write_seq (tcp_v4_connect()
    set it), SYN_SENT, the SYN (with timestamps if net.ipv4.tcp_timestamps), the
    retransmit timer."""
    sk.isn = sk.write_seq
    sk.tstamp_ok = bool(int(net.sysctl("net.ipv4.tcp_timestamps")))
    sk.snd_nxt = sk.isn
    sk.rcv_nxt = 0
    sk.retransmits = 0
    sk.backoff = 0
    sk.rto = TCP_TIMEOUT_INIT
    sk.total_rto = 0
    sk.retrans_stamp = net.now()
    sk.state = S.TCP_SYN_SENT
    net.count("ActiveOpens")
    inet_csk_reset_xmit_timer(net, sk, sk.rto)
    sk.snd_nxt = (sk.isn + 1) & U32_MAX
    tcp_send(net, sk, F.SYN, seq=sk.isn)


def tcp_send_synack(net: "Net", req: "RequestSock") -> None:
    """Linux: tcp_v4_send_synack() of tcp_make_synack(): the SYN-ACK of a request."""
    tsval = tcp_tsval(net, req.ts_off) if req.tstamp_ok else None
    req.snt_synack = net.now()
    window = req.rcv_wnd = tcp_syn_window(req.listener)    # the child's receive space
    tcp_transmit(net, req.loc_addr, req.loc_port, req.rmt_addr, req.rmt_port, req.snt_isn,
                 req.rcv_isn + 1, F.SYN | F.ACK, tsval, req.ts_recent, window=window)


def tcp_rtx_synack(net: "Net", req: "RequestSock") -> None:
    """Linux: tcp_rtx_synack(): the SYN-ACK again, counted in RetransSegs."""
    net.count("RetransSegs")
    tcp_send_synack(net, req)


def tcp_send_fin(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_fin(): the FIN takes one sequence number, after every byte
    queued before it (it rides on the last data segment when that one is still unsent)."""
    sk.shutdown |= SEND_SHUTDOWN
    if len(sk.sndq) > sk.snd_sent:
        sk.fin_pending = True
        tcp_write_xmit(net, sk, sk.nonagle | TCP_NAGLE_PUSH)
        return
    _send_fin_now(net, sk)


def _send_fin_now(net: "Net", sk: "Sock") -> None:
    """The FIN alone, once every byte is out: it takes a sequence number and is
    retransmitted like data (Linux: it is the last skb of the write queue)."""
    seq = sk.snd_nxt
    sk.snd_nxt = (seq + 1) & U32_MAX
    tcp_rtx_counted(net, sk, seq)
    tcp_event_new_data_sent(net, sk, seq, sk.snd_nxt)
    tcp_send(net, sk, F.FIN | F.ACK, seq=seq)


def tcp_send_active_reset(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_active_reset()."""
    net.count("OutRsts")
    tcp_send(net, sk, F.RST | F.ACK)


# Linux: include/net/inet_connection_sock.h icsk_ack.pending bits
ICSK_ACK_SCHED = 1      # an ACK is owed
ICSK_ACK_TIMER = 2      # the delayed-ACK timer runs
ICSK_ACK_PUSHED = 4     # a small (pushed) segment came
ICSK_ACK_PUSHED2 = 8    # and another
ICSK_ACK_NOW = 16       # send the next ACK at once
TCP_PINGPONG_THRESH = 1


def inet_csk_in_pingpong_mode(sk: "Sock") -> bool:
    """Linux: inet_csk_in_pingpong_mode(): an interactive connection (our data answers
    the peer's within the ATO): its ACKs wait to ride on our next data."""
    return sk.ack_pingpong >= TCP_PINGPONG_THRESH


def tcp_in_quickack_mode(sk: "Sock") -> bool:
    """Linux: tcp_in_quickack_mode(): every segment is ACKed at once (the first ones of a
    connection, after a gap, after loss), unless in pingpong mode."""
    return bool(sk.ack_quick) and not inet_csk_in_pingpong_mode(sk)


def tcp_incr_quickack(sk: "Sock", max_quickacks: int = TCP_MAX_QUICKACKS) -> None:
    """Linux: tcp_incr_quickack(): quick ACKs for about half a window of segments."""
    quickacks = min(tcp_full_space(sk) // (2 * max(sk.rcv_mss, 1)) or 2, max_quickacks)
    sk.ack_quick = max(sk.ack_quick, quickacks)


def tcp_enter_quickack_mode(sk: "Sock", max_quickacks: int = TCP_MAX_QUICKACKS) -> None:
    """Linux: tcp_enter_quickack_mode(): out of pingpong, quick ACKs from now."""
    tcp_incr_quickack(sk, max_quickacks)
    sk.ack_pingpong = 0
    sk.ack_ato = TCP_ATO_MIN


def tcp_event_ack_sent(sk: "Sock") -> None:
    """Linux: tcp_event_ack_sent(): an ACK went (alone or on data): one quick ACK fewer,
    the delayed ACK is off, the window the peer knows starts at rcv_nxt (rcv_wup)."""
    if sk.ack_quick:
        if sk.ack_pending & ICSK_ACK_SCHED:
            sk.ack_quick -= 1
        if not sk.ack_quick:
            sk.ack_ato = TCP_ATO_MIN
    sk.ack_pending = 0
    if sk.delack is not None:
        sk.delack.cancel()
        sk.delack = None
    sk.rcv_wup = sk.rcv_nxt


def tcp_event_data_sent(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_event_data_sent(): data that answers the peer's within the ATO makes
    the connection interactive (pingpong)."""
    if net.now() - sk.lrcvtime < sk.ack_ato:
        sk.ack_pingpong += 1


def tcp_send_ack(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_ack(): a bare ACK now."""
    tcp_send(net, sk, F.ACK)


def tcp_send_delayed_ack(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_delayed_ack(): the ACK waits the ATO (bounded by the RTT and
    TCP_DELACK_MAX in pingpong mode or after a small segment, by HZ/2 otherwise) for
    data to ride on; an earlier deadline already set is kept, and one about to pass
    sends the ACK now."""
    ato = sk.ack_ato or TCP_DELACK_MIN
    if ato > TCP_DELACK_MIN:
        max_ato = 0.5
        if inet_csk_in_pingpong_mode(sk) or sk.ack_pending & ICSK_ACK_PUSHED:
            max_ato = TCP_DELACK_MAX
        if sk.srtt_us:
            max_ato = min(max_ato, max(usecs_to_jiffies(sk.srtt_us >> 3) / HZ, TCP_DELACK_MIN))
        ato = min(ato, max_ato)
    ato = min(ato, TCP_DELACK_MAX)
    now = net.now()
    timeout = now + ato
    if sk.delack is not None:
        if sk.delack.deadline <= now + ato / 4:
            tcp_send_ack(net, sk)
            return
        if timeout >= sk.delack.deadline:
            timeout = sk.delack.deadline
        sk.delack.cancel()
    sk.ack_pending |= ICSK_ACK_SCHED | ICSK_ACK_TIMER

    def tcp_delack_timer(now, sk=sk):
        """Linux: tcp_delack_timer_handler(): the ACK was not carried by data in time:
        send it (DelayedACKs); the ATO grows, or pingpong mode ends."""
        sk.delack = None
        if sk.state in (S.TCP_CLOSE, S.TCP_LISTEN, S.TCP_SYN_SENT) \
                or not sk.ack_pending & ICSK_ACK_SCHED:
            return
        if not inet_csk_in_pingpong_mode(sk):
            sk.ack_ato = min(sk.ack_ato * 2, sk.rto)
        else:
            sk.ack_pingpong = 0
            sk.ack_ato = TCP_ATO_MIN
        net.count("DelayedACKs")
        tcp_send_ack(net, sk)
    sk.delack = net.add_timer(timeout - now, tcp_delack_timer)


def usecs_to_jiffies(us: int) -> int:
    """Linux: usecs_to_jiffies(): rounded up."""
    return -(-us * HZ // 1_000_000)
