"""TIME_WAIT and the requests' side of the handshake.

Linux: net/ipv4/tcp_minisocks.c (tcp_time_wait, tcp_timewait_state_process,
tcp_check_req), net/ipv4/inet_timewait_sock.c (inet_twsk_kill).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.inet import TcpState
from sysemu.abi.limits import U32_MAX
from sysemu.net.core import TCP_TIMEWAIT_LEN
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_clear_xmit_timers,
                                                  inet_csk_destroy_sock,
                                                  inet_csk_reqsk_queue_drop)
from sysemu.net.ipv4.tcp_output import F, tcp_send, tcp_send_synack

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment, Sock
    from sysemu.net.ipv4.request_sock import RequestSock

S = TcpState


def tcp_time_wait(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_time_wait(): TIME_WAIT for TCP_TIMEWAIT_LEN (60 s); the 4-tuple stays in
    ehash and the port in its bind bucket until then (inet_twsk_schedule())."""
    sk.state = S.TCP_TIME_WAIT
    inet_csk_clear_xmit_timers(sk)
    sk.timer = net.add_timer(TCP_TIMEWAIT_LEN, lambda now, sk=sk: tcp_tw_kill(net, sk))
    if not sk.dead:
        sk.wait.wake_up()


def tcp_tw_kill(net: "Net", sk: "Sock") -> None:
    """Linux: inet_twsk_kill(): the TIME_WAIT sock leaves ehash and its bind bucket."""
    net.count("TW")
    inet_csk_clear_xmit_timers(sk)
    net.hashinfo.unhash(sk)
    sk.state = S.TCP_CLOSE
    if sk.dead:
        inet_csk_destroy_sock(net, sk)


def tcp_timewait_state_process(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_timewait_state_process(): a RST ends TIME_WAIT, a retransmitted FIN is
    ACKed again, anything else is dropped."""
    if seg.flags & F.RST:
        return tcp_tw_kill(net, sk)
    if seg.flags & F.SYN:
        return
    if seg.flags & F.FIN:
        tcp_send(net, sk, F.ACK)


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
    listener = req.listener
    listener.icsk_af_ops.syn_recv_sock(net, listener, req)
