"""TCP's control plane, sans-io: segments in (tcp_v4_rcv), segments and timers out.

Linux: net/ipv4/tcp_ipv4.c (tcp_v4_connect, tcp_v4_rcv, tcp_v4_syn_recv_sock),
tcp_input.c (tcp_conn_request, tcp_rcv_synsent_state_process, tcp_rcv_state_process,
tcp_reset, tcp_fin), tcp_minisocks.c (tcp_check_req, tcp_time_wait), tcp_timer.c
(tcp_retransmit_timer, tcp_write_timeout, retransmits_timed_out, reqsk_timer_handler),
tcp.c (tcp_set_state, tcp_close, tcp_disconnect, tcp_shutdown, tcp_done).

Only control segments travel here (SYN, SYN-ACK, ACK, FIN, RST): the bytes of an
established connection move natively between placeholders (DESIGN.md), so sequence
numbers advance by SYN and FIN only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.socket import AF_INET, AF_INET6, RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK
from sysemu.net.core import (TCP_DELACK_MIN, TCP_RTO_MAX, TCP_TIMEOUT_INIT,
                             TCP_TIMEWAIT_LEN, Segment, Sock)
from sysemu.net.ipv4.inet_hashtables import SOCK_BINDPORT_LOCK
from sysemu.net.ipv4.request_sock import (RequestSock, inet_csk_reqsk_queue_add,
                                          inet_csk_reqsk_queue_is_full, sk_acceptq_is_full)

if TYPE_CHECKING:
    from sysemu.net.core import Net

S = TcpState
class F:
    """TcpFlags as plain ints: the hot path tests and combines flags on every segment, and
    IntFlag arithmetic costs microseconds in CPython. TcpFlags(x) names them for display."""
    FIN = int(TcpFlags.FIN)
    SYN = int(TcpFlags.SYN)
    RST = int(TcpFlags.RST)
    PSH = int(TcpFlags.PSH)
    ACK = int(TcpFlags.ACK)
U32 = 0xFFFFFFFF


def _send(net: "Net", saddr: bytes, sport: int, daddr: bytes, dport: int, seq: int,
          ack: int, flags: TcpFlags) -> None:
    net.transmit(Segment(saddr, sport, daddr, dport, seq & U32, ack & U32, flags))


def tcp_send(net: "Net", sk: Sock, flags: TcpFlags, seq: int | None = None) -> None:
    if flags & F.ACK and sk.delack is not None:   # this segment carries the ACK
        sk.delack.cancel()
        sk.delack = None
    _send(net, sk.wire_local(), sk.num, sk.wire_remote(), sk.dport,
          sk.snd_nxt if seq is None else seq, sk.rcv_nxt, flags)


def tcp_set_state(net: "Net", sk: Sock, state: TcpState) -> None:
    """Linux: tcp_set_state(): EstabResets, and on CLOSE leave the tables (the port too,
    unless bind() fixed it: SOCK_BINDPORT_LOCK)."""
    old = sk.state
    if state == S.TCP_CLOSE:
        if old in (S.TCP_CLOSE_WAIT, S.TCP_ESTABLISHED):
            net.count("EstabResets")
        net.hashinfo.unhash(sk)
        if sk.bind_bucket is not None and not (sk.userlocks & SOCK_BINDPORT_LOCK):
            net.hashinfo.put_port(sk)
    sk.state = state


def _stop_timer(sk: Sock) -> None:
    if sk.timer is not None:
        sk.timer.cancel()
        sk.timer = None
    if sk.delack is not None:
        sk.delack.cancel()
        sk.delack = None


def tcp_done(net: "Net", sk: Sock) -> None:
    """Linux: tcp_done(): AttemptFails for a failed open, CLOSE, wake the owner, and free
    an orphan."""
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        net.count("AttemptFails")
    _stop_timer(sk)
    tcp_set_state(net, sk, S.TCP_CLOSE)
    sk.shutdown = SHUTDOWN_MASK
    if sk.peer is not None and sk.peer.peer is sk:
        sk.peer.peer = None
    sk.peer = None
    if not sk.dead:
        sk.wait.wake_up()
    else:
        inet_csk_destroy_sock(net, sk)


def inet_csk_destroy_sock(net: "Net", sk: Sock) -> None:
    """Linux: inet_csk_destroy_sock(): the last of an orphan; ports are already free."""
    _stop_timer(sk)
    if sk.bind_bucket is not None:
        net.hashinfo.put_port(sk)
    net.hashinfo.unhash(sk)
    if sk in net.socks:
        net.socks.discard(sk)
        net.kernel.host.released(sk)


# -- active open ---------------------------------------------------------------------

def tcp_connect(net: "Net", sk: Sock) -> None:
    """Linux: tcp_connect(): ISN, SYN_SENT, the SYN, the retransmit timer."""
    sk.isn = net.kernel.rng.getrandbits(32)
    sk.snd_nxt = sk.isn
    sk.rcv_nxt = 0
    sk.retransmits = 0
    sk.backoff = 0
    sk.rto = TCP_TIMEOUT_INIT
    sk.total_rto = 0
    sk.retrans_stamp = net.now()
    sk.state = S.TCP_SYN_SENT
    net.count("ActiveOpens")
    _arm_retransmit(net, sk)
    sk.snd_nxt = (sk.isn + 1) & U32
    tcp_send(net, sk, F.SYN, seq=sk.isn)


def _arm_retransmit(net: "Net", sk: Sock) -> None:
    _stop_timer(sk)
    sk.timer = net.add_timer(sk.rto, lambda now, sk=sk: tcp_retransmit_timer(net, sk))


def tcp_model_timeout(boundary: int, rto_base: float) -> float:
    """Linux: tcp_timer.c tcp_model_timeout()."""
    thresh = int(TCP_RTO_MAX / rto_base).bit_length() - 1   # ilog2(TCP_RTO_MAX / rto_base)
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * TCP_RTO_MAX


def retransmits_timed_out(net: "Net", sk: Sock, boundary: int) -> bool:
    """Linux: retransmits_timed_out() (no TCP_USER_TIMEOUT)."""
    if not sk.retransmits:
        return False
    timeout = tcp_model_timeout(boundary, TCP_TIMEOUT_INIT)
    return net.now() - sk.retrans_stamp - timeout >= -1e-9


def tcp_write_timeout(net: "Net", sk: Sock) -> bool:
    """Linux: tcp_write_timeout() for SYN_SENT: give up after syn_retries (+ the linear
    ones) retransmits, or when the modelled total time has passed."""
    retry_until = sk.syn_retries or int(net.sysctl("net.ipv4.tcp_syn_retries"))
    max_retransmits = retry_until + int(net.sysctl("net.ipv4.tcp_syn_linear_timeouts"))
    expired = sk.retransmits >= max_retransmits
    if not expired:
        expired = retransmits_timed_out(net, sk, retry_until)
    if expired:
        # Linux: tcp_write_err()
        sk.sk_err = sk.sk_err_soft or Errno.ETIMEDOUT
        _connect_failed(net, sk)
    return expired


def tcp_retransmit_timer(net: "Net", sk: Sock) -> None:
    """Linux: tcp_retransmit_timer() for a SYN: time out, or resend and back off. The
    first tcp_syn_linear_timeouts retransmits keep the 1 s RTO (Linux 6.5+), then it
    doubles up to TCP_RTO_MAX: with the defaults a SYN goes out at 0, 1, 2, 3, 4, 5, 7,
    11, 19, 35, 67 s and connect() fails with ETIMEDOUT at 131 s (measured on 6.18)."""
    sk.timer = None
    if sk.state != S.TCP_SYN_SENT:
        return
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
        _arm_retransmit(net, sk)


def _connect_failed(net: "Net", sk: Sock) -> None:
    errno = sk.sk_err
    tcp_done(net, sk)
    if not sk.dead:
        net.kernel.host.connect_done(sk, errno)


# -- receive -------------------------------------------------------------------------

def tcp_v4_rcv(net: "Net", seg: Segment) -> None:
    """Linux: tcp_v4_rcv() / tcp_v6_rcv(): find the owner (established, then request,
    then listener) of a segment; no owner answers RST (tcp_v4_send_reset)."""
    net.count("InSegs")
    hinfo = net.hashinfo
    owner = hinfo.lookup_established(seg.daddr, seg.dport, seg.saddr, seg.sport)
    if isinstance(owner, RequestSock):
        return tcp_check_req(net, owner, seg)
    if owner is not None:
        return tcp_rcv_state_process(net, owner, seg)
    listener = hinfo.lookup_listener(seg.daddr, seg.dport, seg.saddr, seg.sport)
    if listener is not None:
        return tcp_v4_do_rcv_listen(net, listener, seg)
    tcp_v4_send_reset(net, seg)


def tcp_v4_send_reset(net: "Net", seg: Segment) -> None:
    """Linux: tcp_v4_send_reset(): never answer a RST; ACK the segment's sequence space."""
    if seg.flags & F.RST:
        return
    net.count("OutRsts")
    if seg.flags & F.ACK:
        _send(net, seg.daddr, seg.dport, seg.saddr, seg.sport, seg.ack, 0, F.RST)
    else:
        span = seg.length + (1 if seg.flags & F.SYN else 0) + (1 if seg.flags & F.FIN else 0)
        _send(net, seg.daddr, seg.dport, seg.saddr, seg.sport, 0, seg.seq + span,
              F.RST | F.ACK)


def tcp_v4_do_rcv_listen(net: "Net", sk: Sock, seg: Segment) -> None:
    """Linux: tcp_rcv_state_process() for TCP_LISTEN."""
    if seg.flags & F.RST:
        return
    if seg.flags & F.ACK:
        key = (seg.daddr, seg.dport, seg.saddr, seg.sport)
        req = sk.accept_queue.cookies.get(key)
        if req is not None and not seg.flags & F.SYN and seg.ack == (req.snt_isn + 1) & U32:
            # Linux: cookie_v4_check() rebuilds the request, then tcp_check_req()
            net.count("SyncookiesRecv")
            if tcp_v4_syn_recv_sock(net, sk, req) is not None:
                sk.accept_queue.cookies.pop(key, None)
            return
        return tcp_v4_send_reset(net, seg)
    if seg.flags & F.SYN:
        tcp_conn_request(net, sk, seg)


def tcp_conn_request(net: "Net", sk: Sock, seg: Segment) -> None:
    """Linux: tcp_input.c tcp_conn_request(): a full SYN queue drops the SYN unless SYN
    cookies take over; a full accept queue drops it (ListenOverflows + ListenDrops) and the
    client retransmits."""
    syncookies = int(net.sysctl("net.ipv4.tcp_syncookies"))
    want_cookie = False
    if syncookies == 2 or inet_csk_reqsk_queue_is_full(sk):
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
    if not want_cookie and not syncookies:
        max_syn_backlog = int(net.sysctl("net.ipv4.tcp_max_syn_backlog"))
        if max_syn_backlog - sk.accept_queue.qlen < (max_syn_backlog >> 2):
            net.count("ListenDrops")       # "drop open request from ..." (unproven peer)
            return
    req = RequestSock(sk, seg.daddr, seg.dport, seg.saddr, seg.sport, seg.seq,
                      net.kernel.rng.getrandbits(32))
    req.cookie = want_cookie
    if want_cookie:
        net.count("SyncookiesSent")
        sk.accept_queue.cookies[req.key] = req
    else:
        # Linux: inet_csk_reqsk_queue_hash_add(): in ehash as TCP_NEW_SYN_RECV, timer on
        sk.accept_queue.syn[req.key] = req
        net.hashinfo.ehash[req.key] = req
        req.timer = net.add_timer(TCP_TIMEOUT_INIT, lambda now, r=req: reqsk_timer_handler(net, r))
    _send_synack(net, req)


def _send_synack(net: "Net", req: RequestSock) -> None:
    _send(net, req.loc_addr, req.loc_port, req.rmt_addr, req.rmt_port, req.snt_isn,
          req.rcv_isn + 1, F.SYN | F.ACK)


def reqsk_timer_handler(net: "Net", req: RequestSock) -> None:
    """Linux: inet_connection_sock.c reqsk_timer_handler(): resend the SYN-ACK with
    backoff (1, 3, 7, 15, 31 s) up to tcp_synack_retries (or TCP_SYNCNT), then drop."""
    req.timer = None
    listener = req.listener
    if listener.state != S.TCP_LISTEN or req.key not in listener.accept_queue.syn:
        return reqsk_drop(net, req)
    max_retries = listener.syn_retries or int(net.sysctl("net.ipv4.tcp_synack_retries"))
    if req.num_timeout >= max_retries:
        return reqsk_drop(net, req)
    req.num_retrans += 1
    net.count("RetransSegs")
    _send_synack(net, req)
    req.num_timeout += 1
    timeo = min(TCP_TIMEOUT_INIT * (1 << req.num_timeout), TCP_RTO_MAX)
    req.timer = net.add_timer(timeo, lambda now, r=req: reqsk_timer_handler(net, r))


def reqsk_drop(net: "Net", req: RequestSock) -> None:
    """Linux: inet_csk_reqsk_queue_drop(): out of the SYN queue and ehash."""
    if req.timer is not None:
        req.timer.cancel()
        req.timer = None
    queue = req.listener.accept_queue
    if queue is not None and queue.syn.get(req.key) is req:
        del queue.syn[req.key]
    if net.hashinfo.ehash.get(req.key) is req:
        del net.hashinfo.ehash[req.key]


def tcp_check_req(net: "Net", req: RequestSock, seg: Segment) -> None:
    """Linux: tcp_minisocks.c tcp_check_req(): a retransmitted SYN gets the SYN-ACK
    again; RST kills the request; the ACK of our SYN-ACK creates the child."""
    if seg.flags & F.RST:
        net.count("EmbryonicRsts")
        return reqsk_drop(net, req)
    if seg.flags & F.SYN and not seg.flags & F.ACK:
        return _send_synack(net, req)
    if not seg.flags & F.ACK or seg.ack != (req.snt_isn + 1) & U32:
        return tcp_v4_send_reset(net, seg)
    child = tcp_v4_syn_recv_sock(net, req.listener, req)
    if child is None:
        req.acked = True   # Linux: the ACK is dropped; the SYN-ACK timer retries
        return


def tcp_v4_syn_recv_sock(net: "Net", sk: Sock, req: RequestSock) -> Sock | None:
    """Linux: tcp_v4_syn_recv_sock() + tcp_create_openreq_child() + __inet_inherit_port()
    + inet_ehash_nolisten() + inet_csk_complete_hashdance(): the established child joins
    the accept queue and the listener's port; the two ends are linked."""
    if sk.state != S.TCP_LISTEN:
        return None
    if sk_acceptq_is_full(sk):
        net.count("ListenOverflows")
        net.count("ListenDrops")
        return None
    child = Sock(net, sk.family, sk.protocol, sk.uid)
    net.socks.add(child)
    for attr in ("reuse", "reuseport", "keepalive", "linger", "rcvbuf", "sndbuf", "nodelay",
                 "ipv6only", "bound_dev_if", "rcvtimeo", "sndtimeo"):
        setattr(child, attr, getattr(sk, attr))
    if sk.family == AF_INET:
        child.rcv_saddr = req.loc_addr[12:]
        child.daddr = req.rmt_addr[12:]
    else:
        child.v6_rcv_saddr = req.loc_addr
        child.v6_daddr = req.rmt_addr
        child.rcv_saddr = req.loc_addr[12:] if req.loc_addr[:12] == bytes(10) + b"\xff\xff" \
            else child.rcv_saddr
        child.daddr = req.rmt_addr[12:] if req.rmt_addr[:12] == bytes(10) + b"\xff\xff" \
            else child.daddr
    child.dport = req.rmt_port
    child.parent = sk
    child.isn = req.snt_isn
    child.snd_nxt = (req.snt_isn + 1) & U32
    child.rcv_nxt = (req.rcv_isn + 1) & U32
    child.state = S.TCP_ESTABLISHED
    net.count("PassiveOpens")
    net.hashinfo.bind_hash(child, sk.bind_bucket, sk.num)     # __inet_inherit_port()
    reqsk_drop(net, req)
    net.hashinfo.ehash_insert(child)
    inet_csk_reqsk_queue_add(sk, req, child)
    client = net.hashinfo.lookup_established(req.rmt_addr, req.rmt_port, req.loc_addr,
                                             req.loc_port)
    if isinstance(client, Sock) and client.state in (S.TCP_ESTABLISHED, S.TCP_FIN_WAIT1,
                                                      S.TCP_FIN_WAIT2, S.TCP_CLOSE_WAIT):
        child.peer, client.peer = client, child
    host = net.kernel.host
    host.established(child)
    if child.peer is not None:
        host.established(child.peer)
    host.listen_queue_changed(sk)
    sk.wait.wake_up()
    return child


def inet_child_forget(net: "Net", sk: Sock, child: Sock) -> None:
    """Linux: inet_child_forget(): a child never accepted is disconnected (RST) and freed."""
    child.dead = True
    child.socket = None
    tcp_disconnect(net, child)
    inet_csk_destroy_sock(net, child)


def tcp_rcv_state_process(net: "Net", sk: Sock, seg: Segment) -> None:
    """Linux: tcp_rcv_synsent_state_process() and tcp_rcv_state_process() for the control
    segments sysemu carries."""
    flags = seg.flags
    state = sk.state
    if state == S.TCP_SYN_SENT:
        if flags & F.ACK and seg.ack != sk.snd_nxt:
            return tcp_v4_send_reset(net, seg) if not flags & F.RST else None
        if flags & F.RST:
            if flags & F.ACK:
                return tcp_reset(net, sk)
            return
        if flags & F.SYN and flags & F.ACK:
            return tcp_finish_connect(net, sk, seg)
        return   # sysemu: simultaneous open is not modelled
    if flags & F.RST:
        if state == S.TCP_TIME_WAIT:
            return tcp_tw_kill(net, sk)
        return tcp_reset(net, sk)
    if flags & F.SYN:
        # A retransmitted SYN-ACK (our ACK was dropped): ACK it again.
        if state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT) and flags & F.ACK:
            tcp_send(net, sk, F.ACK)
        return
    if state == S.TCP_TIME_WAIT:
        if flags & F.FIN:
            tcp_send(net, sk, F.ACK)
        return
    fin_acked = bool(flags & F.ACK) and seg.ack == sk.snd_nxt and sk.shutdown & SEND_SHUTDOWN
    if state == S.TCP_FIN_WAIT1 and fin_acked:
        sk.state = state = S.TCP_FIN_WAIT2
        if sk.dead:
            _arm(net, sk, float(net.sysctl("net.ipv4.tcp_fin_timeout")), tcp_orphan_expire)
    elif state == S.TCP_CLOSING and fin_acked:
        return tcp_time_wait(net, sk)
    elif state == S.TCP_LAST_ACK and fin_acked:
        return tcp_done(net, sk)
    if flags & F.FIN:
        tcp_fin(net, sk, seg)


def tcp_finish_connect(net: "Net", sk: Sock, seg: Segment) -> None:
    """Linux: tcp_finish_connect(): ESTABLISHED, ACK the SYN-ACK, wake the connector."""
    _stop_timer(sk)
    sk.rcv_nxt = (seg.seq + 1) & U32
    sk.state = S.TCP_ESTABLISHED
    tcp_send(net, sk, F.ACK)
    if not sk.dead:
        sk.wait.wake_up()
        net.kernel.host.connect_done(sk, 0)


TCP_RTO_MIN = 0.2     # include/net/tcp.h: the RTO once a round trip was measured


def tcp_data_pending(net: "Net", sk: Sock) -> None:
    """The client program wrote bytes while its connection is not yet in the server's
    accept queue: its final ACK met a full queue, and Linux's listener keeps an "acked"
    request. On Linux the data segment carries that ACK again (tcp_check_req() then makes
    the child if there is room) and is retransmitted at the RTO until it is; sysemu sends
    the ACK the same way (the bytes themselves flow natively once accepted)."""
    if sk.state != S.TCP_ESTABLISHED or sk.peer is not None or sk.parent is not None \
            or sk.data_retries >= 0:
        return
    sk.data_retries = 0
    _data_retransmit(net, sk)


def _data_retransmit(net: "Net", sk: Sock) -> None:
    if sk.state != S.TCP_ESTABLISHED or sk.peer is not None or sk.dead:
        sk.data_retries = -1
        return
    if sk.data_retries:
        net.count("RetransSegs")
    tcp_send(net, sk, F.ACK | F.PSH)
    if sk.peer is not None:
        sk.data_retries = -1
        return
    delay = min(TCP_RTO_MIN * (1 << sk.data_retries), TCP_RTO_MAX)
    sk.data_retries += 1
    sk.data_timer = net.add_timer(delay, lambda now, sk=sk: _data_retransmit(net, sk))


def tcp_reset(net: "Net", sk: Sock) -> None:
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
        return _connect_failed(net, sk)
    if not sk.dead:
        net.kernel.host.reset(sk)
    tcp_done(net, sk)


def tcp_fin(net: "Net", sk: Sock, seg: Segment) -> None:
    """Linux: tcp_fin()."""
    sk.rcv_nxt = (seg.seq + 1) & U32
    sk.shutdown |= RCV_SHUTDOWN
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


def tcp_send_delayed_ack(net: "Net", sk: Sock) -> None:
    """Linux: tcp_output.c tcp_send_delayed_ack() / tcp_delack_timer()."""
    if sk.delack is not None:
        return

    def fire(now, sk=sk):
        sk.delack = None
        if sk.state not in (S.TCP_CLOSE, S.TCP_LISTEN, S.TCP_SYN_SENT):
            tcp_send(net, sk, F.ACK)
    sk.delack = net.add_timer(TCP_DELACK_MIN, fire)


def _arm(net: "Net", sk: Sock, delay: float, fn) -> None:
    _stop_timer(sk)
    sk.timer = net.add_timer(delay, lambda now, sk=sk: fn(net, sk))


def tcp_time_wait(net: "Net", sk: Sock) -> None:
    """Linux: tcp_time_wait(): TIME_WAIT for TCP_TIMEWAIT_LEN (60 s); the 4-tuple stays in
    ehash and the port in its bind bucket until then."""
    sk.state = S.TCP_TIME_WAIT
    _arm(net, sk, TCP_TIMEWAIT_LEN, tcp_tw_kill)
    if not sk.dead:
        sk.wait.wake_up()


def tcp_tw_kill(net: "Net", sk: Sock) -> None:
    """Linux: inet_twsk_kill(): the TIME_WAIT sock leaves ehash and its bind bucket."""
    net.count("TW")
    _stop_timer(sk)
    net.hashinfo.unhash(sk)
    sk.state = S.TCP_CLOSE
    if sk.dead:
        inet_csk_destroy_sock(net, sk)


def tcp_orphan_expire(net: "Net", sk: Sock) -> None:
    """Linux: an orphan in FIN_WAIT2 dies after tcp_fin_timeout (tcp_keepalive_timer /
    the FIN_WAIT2 timewait substate)."""
    sk.timer = None
    if sk.state == S.TCP_FIN_WAIT2:
        tcp_send(net, sk, F.RST | F.ACK)
        net.count("OutRsts")
        tcp_done(net, sk)


# -- close, disconnect, shutdown -------------------------------------------------------

_CLOSE_STATE = {  # Linux: tcp.c new_state[]: next state, and whether to send FIN
    S.TCP_ESTABLISHED: (S.TCP_FIN_WAIT1, True),
    S.TCP_SYN_SENT: (S.TCP_CLOSE, False),
    S.TCP_SYN_RECV: (S.TCP_FIN_WAIT1, True),
    S.TCP_FIN_WAIT1: (S.TCP_FIN_WAIT1, False),
    S.TCP_FIN_WAIT2: (S.TCP_FIN_WAIT2, False),
    S.TCP_TIME_WAIT: (S.TCP_CLOSE, False),
    S.TCP_CLOSE: (S.TCP_CLOSE, False),
    S.TCP_CLOSE_WAIT: (S.TCP_LAST_ACK, True),
    S.TCP_LAST_ACK: (S.TCP_LAST_ACK, False),
    S.TCP_LISTEN: (S.TCP_CLOSE, False),
    S.TCP_CLOSING: (S.TCP_CLOSING, False),
}


def tcp_close_state(net: "Net", sk: Sock) -> bool:
    """Linux: tcp_close_state(): move on; True if a FIN must go out."""
    nxt, fin = _CLOSE_STATE[sk.state]
    if nxt == S.TCP_CLOSE:
        tcp_set_state(net, sk, S.TCP_CLOSE)
    else:
        sk.state = nxt
    return fin


def tcp_send_fin(net: "Net", sk: Sock) -> None:
    sk.shutdown |= SEND_SHUTDOWN
    seq = sk.snd_nxt
    sk.snd_nxt = (seq + 1) & U32
    tcp_send(net, sk, F.FIN | F.ACK, seq=seq)


def tcp_send_active_reset(net: "Net", sk: Sock) -> None:
    net.count("OutRsts")
    tcp_send(net, sk, F.RST | F.ACK)


def tcp_need_reset(state: TcpState) -> bool:
    return state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT, S.TCP_FIN_WAIT1, S.TCP_FIN_WAIT2,
                     S.TCP_SYN_RECV)


def tcp_disconnect(net: "Net", sk: Sock) -> None:
    """Linux: tcp.c tcp_disconnect(): abort whatever the sock was doing (RST if the peer
    knows of us), back to CLOSE with no address; a bind()-fixed port stays."""
    from sysemu.net.ipv4.inet_connection_sock import inet_csk_listen_stop
    old = sk.state
    _stop_timer(sk)
    if old == S.TCP_LISTEN:
        inet_csk_listen_stop(net, sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
        sk.accept_queue = None
    elif tcp_need_reset(old):
        tcp_send_active_reset(net, sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    elif old == S.TCP_SYN_SENT:
        tcp_set_state(net, sk, S.TCP_CLOSE)
    else:
        tcp_set_state(net, sk, S.TCP_CLOSE)
    if sk.peer is not None and sk.peer.peer is sk:
        sk.peer.peer = None
    sk.peer = None
    sk.dport = 0
    sk.daddr = bytes(4)
    sk.v6_daddr = bytes(16)
    sk.shutdown = 0
    sk.sk_err = 0
    sk.retransmits = 0
    sk.backoff = 0
    sk.rto = TCP_TIMEOUT_INIT
    from sysemu.net.ipv4.inet_hashtables import SOCK_BINDADDR_LOCK
    if not (sk.userlocks & SOCK_BINDADDR_LOCK):
        sk.rcv_saddr = bytes(4)
        if sk.family == AF_INET6:
            sk.v6_rcv_saddr = bytes(16)
    sk.wait.wake_up()


def tcp_shutdown(net: "Net", sk: Sock, how: int) -> None:
    """Linux: tcp.c tcp_shutdown(): SEND_SHUTDOWN of an open connection sends FIN."""
    if not how & SEND_SHUTDOWN:
        return
    if sk.state in (S.TCP_ESTABLISHED, S.TCP_SYN_SENT, S.TCP_SYN_RECV, S.TCP_CLOSE_WAIT):
        if tcp_close_state(net, sk):
            tcp_send_fin(net, sk)


def tcp_close(net: "Net", sk: Sock, unread: bool) -> None:
    """Linux: tcp.c __tcp_close(): the last reference is gone. A listener stops; unread
    data or SO_LINGER 0 abort with RST; else FIN, and the orphan lives on through
    FIN_WAIT/TIME_WAIT holding its port."""
    from sysemu.net.ipv4.inet_connection_sock import inet_csk_listen_stop
    sk.shutdown = SHUTDOWN_MASK
    # sysemu: Linux's sock_orphan() also clears sk_socket; the link is kept so the host
    # can still find the File of a Sock it is told about (released()); `dead` marks it.
    sk.dead = True
    if sk.state == S.TCP_LISTEN:
        _stop_timer(sk)
        inet_csk_listen_stop(net, sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    elif unread and sk.state not in (S.TCP_CLOSE, S.TCP_SYN_SENT):
        net.count("TCPAbortOnClose")
        if tcp_need_reset(sk.state):
            tcp_send_active_reset(net, sk)
        _stop_timer(sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    elif sk.linger[0] and not sk.linger[1]:
        if tcp_need_reset(sk.state):
            net.count("TCPAbortOnData")
        tcp_disconnect(net, sk)
    elif sk.state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT, S.TCP_SYN_RECV):
        if tcp_close_state(net, sk):
            tcp_send_fin(net, sk)
    elif sk.state == S.TCP_FIN_WAIT2:
        _arm(net, sk, float(net.sysctl("net.ipv4.tcp_fin_timeout")), tcp_orphan_expire)
    elif sk.state not in (S.TCP_FIN_WAIT1, S.TCP_CLOSING, S.TCP_LAST_ACK, S.TCP_TIME_WAIT):
        _stop_timer(sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    if sk.state == S.TCP_CLOSE:
        if sk.peer is not None and sk.peer.peer is sk:
            sk.peer.peer = None
        sk.peer = None
        inet_csk_destroy_sock(net, sk)
