"""TCP's socket-level operations: state changes, close, disconnect, shutdown.

Linux: net/ipv4/tcp.c (tcp_set_state, tcp_done, tcp_close_state, tcp_close,
tcp_disconnect, tcp_shutdown, and tcp_sendmsg's part here: tcp_data_pending).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.inet import TcpState
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import AF_INET6, SEND_SHUTDOWN, SHUTDOWN_MASK
from sysemu.net.core import (SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, TCP_RTO_MAX,
                             TCP_RTO_MIN, TCP_TIMEOUT_INIT)
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_clear_xmit_timers,
                                                  inet_csk_destroy_sock,
                                                  inet_csk_listen_stop,
                                                  inet_csk_reset_keepalive_timer)
from sysemu.net.ipv4.tcp_output import (F, tcp_send, tcp_send_active_reset,
                                        tcp_send_fin)

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

S = TcpState


def tcp_set_state(net: "Net", sk: "Sock", state: TcpState) -> None:
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


def tcp_done(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_done(): AttemptFails for a failed open, CLOSE, wake the owner, and free
    an orphan."""
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        net.count("AttemptFails")
    inet_csk_clear_xmit_timers(sk)
    tcp_set_state(net, sk, S.TCP_CLOSE)
    sk.shutdown = SHUTDOWN_MASK
    _unlink_peer(sk)
    if not sk.dead:
        sk.wait.wake_up()
    else:
        inet_csk_destroy_sock(net, sk)


def tcp_connect_failed(net: "Net", sk: "Sock") -> None:
    """tcp_done() for a connect that failed (RST or timeout); the host hears the error
    (sk_err) for a socket the program still holds."""
    errno = sk.sk_err
    tcp_done(net, sk)
    if not sk.dead:
        net.kernel.host.connect_done(sk, errno)


def _unlink_peer(sk: "Sock") -> None:
    if sk.peer is not None and sk.peer.peer is sk:
        sk.peer.peer = None
    sk.peer = None


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


def tcp_close_state(net: "Net", sk: "Sock") -> bool:
    """Linux: tcp_close_state(): move on; True if a FIN must go out."""
    nxt, fin = _CLOSE_STATE[sk.state]
    if nxt == S.TCP_CLOSE:
        tcp_set_state(net, sk, S.TCP_CLOSE)
    else:
        sk.state = nxt
    return fin


def tcp_need_reset(state: TcpState) -> bool:
    """Linux: tcp_need_reset(): the peer knows of the connection."""
    return state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT, S.TCP_FIN_WAIT1, S.TCP_FIN_WAIT2,
                     S.TCP_SYN_RECV)


def tcp_disconnect(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_disconnect(): abort whatever the sock was doing (RST if the peer knows
    of us), back to CLOSE with no address; a bind()-fixed port stays."""
    old = sk.state
    inet_csk_clear_xmit_timers(sk)
    if old == S.TCP_LISTEN:
        inet_csk_listen_stop(net, sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
        sk.accept_queue = None
    else:
        if tcp_need_reset(old):
            tcp_send_active_reset(net, sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    _unlink_peer(sk)
    sk.dport = 0
    sk.daddr = bytes(4)
    sk.v6_daddr = bytes(16)
    sk.shutdown = 0
    sk.sk_err = 0
    sk.retransmits = 0
    sk.backoff = 0
    sk.rto = TCP_TIMEOUT_INIT
    # Linux: the next connect starts above this one (write_seq + max_window + 2).
    # sysemu: max_window (the largest window the peer offered) is not modelled: 0.
    sk.write_seq = ((sk.snd_nxt + 2) & U32_MAX) or 1
    if not (sk.userlocks & SOCK_BINDADDR_LOCK):
        sk.rcv_saddr = bytes(4)
        if sk.family == AF_INET6:
            sk.v6_rcv_saddr = bytes(16)
    sk.wait.wake_up()


def tcp_shutdown(net: "Net", sk: "Sock", how: int) -> None:
    """Linux: tcp_shutdown(): SEND_SHUTDOWN of an open connection sends FIN."""
    if not how & SEND_SHUTDOWN:
        return
    if sk.state in (S.TCP_ESTABLISHED, S.TCP_SYN_SENT, S.TCP_SYN_RECV, S.TCP_CLOSE_WAIT):
        if tcp_close_state(net, sk):
            tcp_send_fin(net, sk)


def tcp_close(net: "Net", sk: "Sock", unread: bool) -> None:
    """Linux: __tcp_close(): the last reference is gone. A listener stops; unread data or
    SO_LINGER 0 abort with RST; else FIN, and the orphan lives on through
    FIN_WAIT/TIME_WAIT holding its port."""
    sk.shutdown = SHUTDOWN_MASK
    # sysemu: Linux's sock_orphan() also clears sk_socket; the link is kept so the host
    # can still find the File of a Sock it is told about (released()); `dead` marks it.
    sk.dead = True
    if sk.state == S.TCP_LISTEN:
        inet_csk_clear_xmit_timers(sk)
        inet_csk_listen_stop(net, sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    elif unread and sk.state not in (S.TCP_CLOSE, S.TCP_SYN_SENT):
        net.count("TCPAbortOnClose")
        if tcp_need_reset(sk.state):
            tcp_send_active_reset(net, sk)
        inet_csk_clear_xmit_timers(sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    elif sk.linger[0] and not sk.linger[1]:
        if tcp_need_reset(sk.state):
            net.count("TCPAbortOnData")
        tcp_disconnect(net, sk)
    elif sk.state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT, S.TCP_SYN_RECV):
        if tcp_close_state(net, sk):
            tcp_send_fin(net, sk)
    elif sk.state == S.TCP_FIN_WAIT2:
        inet_csk_reset_keepalive_timer(net, sk, float(net.sysctl("net.ipv4.tcp_fin_timeout")))
    elif sk.state not in (S.TCP_FIN_WAIT1, S.TCP_CLOSING, S.TCP_LAST_ACK, S.TCP_TIME_WAIT):
        inet_csk_clear_xmit_timers(sk)
        tcp_set_state(net, sk, S.TCP_CLOSE)
    if sk.state == S.TCP_CLOSE:
        _unlink_peer(sk)
        inet_csk_destroy_sock(net, sk)


# -- the program wrote data ------------------------------------------------------------

def tcp_data_pending(net: "Net", sk: "Sock") -> None:
    """The client program wrote bytes while its connection is not yet in the server's
    accept queue: its final ACK met a full queue, and Linux's listener keeps an "acked"
    request. On Linux the data segment carries that ACK again (tcp_check_req() then makes
    the child if there is room) and is retransmitted at the RTO until it is; sysemu sends
    the ACK the same way (the bytes themselves flow natively once accepted)."""
    if sk.state != S.TCP_ESTABLISHED or sk.peer is not None or sk.parent is not None \
            or sk.data_retries >= 0:
        return
    sk.data_retries = 0
    tcp_data_retransmit(net, sk)


def tcp_data_retransmit(net: "Net", sk: "Sock") -> None:
    """The ACK of tcp_data_pending(), and its retransmissions from TCP_RTO_MIN doubling
    (sysemu: Linux's retransmit timer resends the data segment; here the segment is the
    ACK it carries, so the timer stays next to its one caller)."""
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
    net.add_timer(delay, lambda now, sk=sk: tcp_data_retransmit(net, sk))
