"""TCP's socket-level operations: state changes, close, disconnect, shutdown, and the
data calls of the model data path (send, receive, the queue ioctls).

Linux: net/ipv4/tcp.c (tcp_set_state, tcp_done, tcp_close_state, tcp_close,
tcp_disconnect, tcp_shutdown, tcp_sendmsg_locked, tcp_recvmsg_locked, tcp_recv_urg,
tcp_cleanup_rbuf, tcp_ioctl, and tcp_sendmsg's part for the native data path:
tcp_data_pending), net/core/stream.c (sk_stream_wait_connect, sk_stream_wait_memory,
sk_stream_error).

The data calls return what they did and, when the call must go on waiting, the
WouldBlock to raise once the caller has kept its progress (Task.partial): bytes moved
before a wait are committed (sent, or taken from the receive queue), and the attempt
that runs again when woken continues after them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState, TcpStates
from sysemu.abi.limits import U32_MAX
from sysemu.abi.poll import (POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDHUP,
                             POLLRDNORM, POLLWRNORM)
from sysemu.abi.socket import (AF_INET6, MSG_MORE, MSG_NOSIGNAL, MSG_OOB, MSG_PEEK,
                               MSG_TRUNC, MSG_WAITALL, RCV_SHUTDOWN, SEND_SHUTDOWN,
                               SHUTDOWN_MASK, SO_OOBINLINE)
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.kernel.task import DATAPATH_MODEL
from sysemu.net.core import (SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, TCP_CA_Open,
                             TCP_INFINITE_SSTHRESH, TCP_INIT_CWND, TCP_RTO_MAX, TCP_RTO_MIN,
                             TCP_TIMEOUT_INIT, sock_intr_errno)
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_clear_xmit_timers,
                                                  inet_csk_destroy_sock,
                                                  inet_csk_listen_stop,
                                                  inet_csk_reset_keepalive_timer)
from sysemu.net.ipv4.tcp_output import (ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_SCHED,
                                        TCP_PINGPONG_THRESH, F, inet_csk_in_pingpong_mode,
                                        sk_stream_is_writeable, tcp_full_space,
                                        tcp_push, tcp_send, tcp_send_active_reset,
                                        tcp_send_fin, tcp_sndbuf)

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

S = TcpStates


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
    tcp_purge_queues(sk)
    sk.dport = 0
    sk.daddr = bytes(4)
    sk.v6_daddr = bytes(16)
    sk.shutdown = 0
    sk.sk_err = 0
    sk.retransmits = 0
    sk.backoff = 0
    sk.rto = TCP_TIMEOUT_INIT
    tcp_reset_recovery(sk)
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
    # Linux: data_was_unread: bytes the program never read make the close a reset
    unread = unread or bool(sk.rcvq) or sk.urg_data is not None
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


# -- the model data path ---------------------------------------------------------------

def tcp_purge_queues(sk: "Sock") -> None:
    """Linux: tcp_write_queue_purge() + __skb_queue_purge(&sk->sk_receive_queue)."""
    del sk.sndq[:]
    del sk.rcvq[:]
    sk.snd_sent = 0
    sk.fin_pending = False
    sk.done = False
    sk.urg_data = None
    sk.urg_off = -1
    sk.snd_up = 0
    if sk.rtx_timer is not None:
        sk.rtx_timer.cancel()
        sk.rtx_timer = None


def tcp_reset_recovery(sk: "Sock") -> None:
    """Linux: tcp_disconnect()'s reset of the RTT estimator, the congestion state, the
    delayed-ACK state and the probes: a new connection starts afresh."""
    sk.rtx_q = ()
    sk.retrans_out = sk.dupacks = sk.probes_out = sk.snd_cwnd_cnt = 0
    sk.ofo.clear()
    sk.snd_cwnd = TCP_INIT_CWND
    sk.snd_ssthresh = TCP_INFINITE_SSTHRESH
    sk.ca_state = TCP_CA_Open
    sk.is_cwnd_limited = False
    sk.srtt_us = sk.mdev_us = sk.mdev_max_us = sk.rttvar_us = 0
    sk.ack_quick = sk.ack_pingpong = sk.ack_pending = 0
    sk.ack_ato = 0.0
    sk.retrans_stamp = 0.0


def sock_error(sk: "Sock") -> int:
    """Linux: sock_error(): the pending error, taken (0 if none)."""
    err, sk.sk_err = sk.sk_err, 0
    return err


def _wait(net: "Net", sk: "Sock", timeo: float | None) -> WouldBlock:
    deadline = None if timeo is None else net.now() + timeo
    return WouldBlock(sk.wait, deadline, Errno.EAGAIN, sock_intr_errno(timeo))


def sk_stream_error(task, sk: "Sock", flags: int, err: int) -> SyscallError:
    """Linux: sk_stream_error(): EPIPE becomes the pending error if there is one, and
    raises SIGPIPE unless MSG_NOSIGNAL."""
    if err == Errno.EPIPE:
        err = sock_error(sk) or Errno.EPIPE
    if err == Errno.EPIPE and not flags & MSG_NOSIGNAL:
        task.kernel.host.send_sig(task, SIGPIPE)
    return SyscallError(err)


SIGPIPE = 13


def tcp_sendmsg(task, net: "Net", sk: "Sock", it, flags: int, nonblock: bool,
                copied: int = 0) -> tuple[int, WouldBlock | None]:
    """Linux: tcp_sendmsg_locked(): queue as much of the caller's bytes (`it`, an
    iov_iter: count, read(offset, n)) as the send space takes and push them (MSG_MORE
    corks this push, MSG_OOB marks the urgent byte after them). `copied` bytes of this
    call were queued by earlier attempts. Returns (bytes queued now, the wait for the
    rest or None). Errors, only while nothing of the call is queued:
    sk_stream_wait_connect()'s (the pending error; EPIPE unless connecting; EAGAIN),
    EPIPE after shutdown or an error (sk_stream_error(): SIGPIPE unless MSG_NOSIGNAL),
    EAGAIN without send space."""
    timeo = 0.0 if nonblock else sk.sndtimeo
    if sk.state not in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT):
        # Linux: sk_stream_wait_connect()
        if copied:
            return 0, None
        if sk.sk_err:
            raise SyscallError(sock_error(sk))
        if sk.state not in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
            raise sk_stream_error(task, sk, flags, Errno.EPIPE)
        if timeo == 0:
            raise SyscallError(Errno.EAGAIN)
        return 0, _wait(net, sk, timeo)
    if sk.sk_err or sk.shutdown & SEND_SHUTDOWN:
        if copied:
            return 0, None
        raise sk_stream_error(task, sk, flags, Errno.EPIPE)
    left = it.count - copied
    if left <= 0:
        return 0, None
    if net.kernel.datapath != DATAPATH_MODEL:
        return _native_sendmsg(task, net, sk, it, flags, timeo, copied)
    room = tcp_sndbuf(sk) - len(sk.sndq)
    n = min(left, max(room, 0))
    if n:
        chunk = it.read(copied, n)
        short = len(chunk) < n          # a file's end (do_sendfile's source)
        n = len(chunk)
        sk.sndq += chunk
        if flags & MSG_OOB and n == left:
            sk.snd_up = (sk.snd_una + len(sk.sndq)) & U32_MAX   # Linux: tcp_mark_urg()
        tcp_push(net, sk, more=bool(flags & MSG_MORE) and n == left)
        if not sk_stream_is_writeable(sk):
            net.kernel.host.readiness(sk)       # POLLOUT goes (Linux: SOCK_NOSPACE)
        if n == left or short:
            return n, None
    if timeo == 0:
        if n or copied:
            return n, None
        raise SyscallError(Errno.EAGAIN)
    return n, _wait(net, sk, timeo)          # Linux: sk_stream_wait_memory()


NATIVE_SEND_CHUNK = 1 << 18     # bytes read from the program's memory per host send


def _native_sendmsg(task, net: "Net", sk: "Sock", it, flags: int, timeo: float | None,
                    copied: int) -> tuple[int, WouldBlock | None]:
    """tcp_sendmsg_locked()'s copy loop in the native data path: the connection's bytes
    are the placeholder's (DESIGN.md), so the caller's go into its placeholder as its own
    send() would put them (HostHooks.stream_send), after the checks above. A trapped send
    with an address reaches here (sendto, sendmsg): TCP ignores the address. As Linux:
    what does not fit waits for send space (sk_stream_wait_memory(): SO_SNDTIMEO, EAGAIN
    when non-blocking); an error or a fault ends the call with the bytes sent so far, or
    fails it when there are none (sk_stream_error(): EPIPE raises SIGPIPE unless
    MSG_NOSIGNAL); MSG_OOB marks the last byte only."""
    host = net.kernel.host
    left = it.count - copied
    sent = 0
    while sent < left:
        n = min(left - sent, NATIVE_SEND_CHUNK)
        last = sent + n == left
        try:
            chunk = it.read(copied + sent, n)
            took = host.stream_send(task, sk, chunk, flags if last else flags & ~MSG_OOB)
        except SyscallError as err:
            if copied or sent:
                return sent, None
            raise sk_stream_error(task, sk, flags, err.errno) from None
        sent += took
        if took < n:
            break
    if sent == left:
        return sent, None
    if timeo == 0:
        if sent or copied:
            return sent, None
        raise SyscallError(Errno.EAGAIN)
    deadline = None if timeo is None else net.now() + timeo
    return sent, WouldBlock(host.stream_writable(sk), deadline, Errno.EAGAIN,
                            sock_intr_errno(timeo))


def tcp_recvmsg(net: "Net", sk: "Sock", it, flags: int, nonblock: bool,
                copied: int = 0) -> tuple[int, int, WouldBlock | None]:
    """Linux: tcp_recvmsg_locked(): up to it.count bytes from the receive queue, copied
    out with it.write(offset, data) before they leave the queue (a fault leaves them
    there); MSG_PEEK leaves them anyway, MSG_TRUNC drops them uncopied. A read never
    crosses the urgent mark once it has bytes; MSG_WAITALL (or SO_RCVLOWAT) waits for
    that many. `copied` bytes were taken by earlier attempts of this call. Returns
    (bytes taken now, msg_flags, the wait for more or None). With nothing to return:
    0 at EOF (a FIN came, or shutdown(SHUT_RD)), the pending error, ENOTCONN on a
    listener or a socket never connected, EAGAIN, or wait."""
    if sk.state == S.TCP_LISTEN:
        raise SyscallError(Errno.ENOTCONN)
    timeo = 0.0 if nonblock else sk.rcvtimeo
    if flags & MSG_OOB:
        return tcp_recv_urg(sk, it, flags) + (None,)
    size = it.count
    target = max(size if flags & MSG_WAITALL else min(sk.rcvlowat, size), 1)
    avail = len(sk.rcvq)
    if sk.urg_off > 0:
        avail = min(avail, sk.urg_off)      # Linux: stop at the urgent mark
    elif sk.urg_off == 0 and copied:
        avail = 0
    n = min(size - copied, avail)
    if n > 0:
        if not flags & MSG_TRUNC:
            it.write(copied, bytes(sk.rcvq[:n]))
        if not flags & MSG_PEEK:
            del sk.rcvq[:n]
            if sk.urg_off >= 0:        # past the mark, urg_data is over (Linux)
                sk.urg_off = sk.urg_off - n if sk.urg_off >= n else -1
                if sk.urg_off < 0:
                    sk.urg_data = None
            tcp_cleanup_rbuf(net, sk, n)
            net.kernel.host.readiness(sk)
    else:
        n = 0
    total = copied + n
    if total >= target or (size and total == size):
        return n, 0, None
    if total:
        if timeo == 0 or sk.sk_err or sk.state == S.TCP_CLOSE \
                or sk.shutdown & RCV_SHUTDOWN or flags & MSG_PEEK:
            return n, 0, None
        return n, 0, _wait(net, sk, timeo)
    if sk.done:
        return 0, 0, None
    if sk.sk_err:
        raise SyscallError(sock_error(sk))
    if sk.shutdown & RCV_SHUTDOWN:
        return 0, 0, None
    if sk.state == S.TCP_CLOSE:
        raise SyscallError(Errno.ENOTCONN)   # Linux: never connected
    if timeo == 0:
        raise SyscallError(Errno.EAGAIN)
    return 0, 0, _wait(net, sk, timeo)


def tcp_recv_urg(sk: "Sock", it, flags: int) -> tuple[int, int]:
    """Linux: tcp_recv_urg(): the urgent byte (MSG_OOB); EINVAL with SO_OOBINLINE or
    when there is none (or it was read), ENOTCONN on a socket never connected."""
    if sk.sockflags.get(SO_OOBINLINE) or sk.urg_data is None:
        raise SyscallError(Errno.EINVAL)
    if sk.state == S.TCP_CLOSE and not sk.done:
        raise SyscallError(Errno.ENOTCONN)
    if not it.count:
        return 0, MSG_OOB | MSG_TRUNC
    if not flags & MSG_TRUNC:
        it.write(0, bytes([sk.urg_data]))
    if not flags & MSG_PEEK:
        sk.urg_data = None
        sk.net.kernel.host.readiness(sk)
    return 1, MSG_OOB


def tcp_cleanup_rbuf(net: "Net", sk: "Sock", copied: int) -> None:
    """Linux: tcp_cleanup_rbuf(): after a read, send the ACK that is owed when more than
    one full segment is unacknowledged, or when the read emptied the queue of a small
    pushed segment (not in pingpong mode); else ACK anyway if the read at least doubles
    the window the peer knows of (and it was at most half the space): a window update."""
    if sk.state not in (S.TCP_ESTABLISHED, S.TCP_FIN_WAIT1, S.TCP_FIN_WAIT2,
                        S.TCP_CLOSE_WAIT):
        return
    time_to_ack = False
    if sk.ack_pending & ICSK_ACK_SCHED:
        if (sk.rcv_nxt - sk.rcv_wup) & U32_MAX > sk.rcv_mss or (
                copied > 0 and not sk.rcvq
                and (sk.ack_pending & ICSK_ACK_PUSHED2
                     or (sk.ack_pending & ICSK_ACK_PUSHED
                         and not inet_csk_in_pingpong_mode(sk)))):
            time_to_ack = True
    if copied > 0 and not time_to_ack and not sk.shutdown & RCV_SHUTDOWN:
        now = (sk.rcv_wnd_end - sk.rcv_nxt) & U32_MAX if sk.rcv_wnd_end else 0
        if now > 0x7FFFFFFF:
            now = 0
        space = tcp_full_space(sk)
        if 2 * now <= space and space - len(sk.rcvq) >= 2 * now:
            time_to_ack = True
    if time_to_ack:
        tcp_send(net, sk, F.ACK)


def tcp_sock_set_quickack(net: "Net", sk: "Sock", val: int) -> None:
    """Linux: __tcp_sock_set_quickack() (TCP_QUICKACK): 0 enters pingpong mode (ACKs
    wait for data to ride on); nonzero leaves it and sends an owed ACK now (an even
    value then enters it again)."""
    if not val:
        sk.ack_pingpong = TCP_PINGPONG_THRESH
        return
    sk.ack_pingpong = 0
    if sk.state in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT) and sk.ack_pending & ICSK_ACK_SCHED:
        sk.ack_pending |= ICSK_ACK_PUSHED
        tcp_cleanup_rbuf(net, sk, 1)
        if not val & 1:
            sk.ack_pingpong = TCP_PINGPONG_THRESH


def tcp_inq(sk: "Sock") -> int:
    """Linux: tcp_inq(): bytes readable (the out-of-band byte counts until the stream
    passes its mark, as rcv_nxt - copied_seq does)."""
    extra = 1 if sk.urg_off >= 0 and not sk.sockflags.get(SO_OOBINLINE) else 0
    return len(sk.rcvq) + extra


def tcp_ioctl(sk: "Sock", cmd: str) -> int:
    """Linux: tcp_ioctl(): SIOCINQ (bytes to read), SIOCATMARK (at the urgent mark),
    SIOCOUTQ (bytes not yet acknowledged), SIOCOUTQNSD (bytes not yet sent); EINVAL on a
    listener, 0 while the handshake is in progress."""
    if cmd == "atmark":
        return int(sk.urg_off == 0)
    if sk.state == S.TCP_LISTEN:
        raise SyscallError(Errno.EINVAL)
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        return 0
    if cmd == "inq":
        return tcp_inq(sk)
    if cmd == "outq":
        return len(sk.sndq)
    return len(sk.sndq) - sk.snd_sent


def tcp_sendpage(net: "Net", sk: "Sock", data: bytes) -> int:
    """Bytes the program sent with a call the model data path does not trap (sendfile,
    splice, vmsplice, i386 socketcall(SYS_SEND)), which reached the placeholder: queued
    as tcp_sendmsg() would (Linux: tcp_sendmsg_locked() with MSG_SPLICE_PAGES). Returns
    how many were taken: none while connecting or without send space (the host keeps
    the rest and offers it again when the socket becomes writable); all, and dropped,
    once the connection cannot send any more (sysemu: Linux's sendfile would fail with
    EPIPE there, but this one already returned)."""
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        return 0
    if sk.state not in (S.TCP_ESTABLISHED, S.TCP_CLOSE_WAIT) or sk.sk_err \
            or sk.shutdown & SEND_SHUTDOWN:
        return len(data)
    n = min(len(data), max(tcp_sndbuf(sk) - len(sk.sndq), 0))
    if n:
        sk.sndq += data[:n]
        tcp_push(net, sk)
    return n


def tcp_placeholder_poll(sk: "Sock") -> tuple[bool, bool, bool]:
    """What of tcp_poll() a placeholder shows (host/netglue.py): (readable: bytes to read or an
    error, read side shut: EOF/POLLRDHUP, writable: POLLOUT)."""
    readable = bool(sk.rcvq) or bool(sk.sk_err)
    rdhup = bool(sk.shutdown & RCV_SHUTDOWN)
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        writable = False
    elif sk.shutdown & SEND_SHUTDOWN or sk.sk_err or sk.state == S.TCP_CLOSE:
        writable = True
    else:
        writable = sk_stream_is_writeable(sk)
    return readable, rdhup, writable


def tcp_poll(sk: "Sock") -> int:
    """Linux: net/ipv4/tcp.c tcp_poll(): the POLL* mask of a TCP socket. A listener is
    readable while its accept queue holds a child (inet_csk_listen_poll()); POLLHUP once
    both directions are shut or the socket is closed (a fresh socket too); POLLIN with
    SO_RCVLOWAT bytes to read (one more while the urgent byte is next and not inline),
    or once the read side is shut (with POLLRDHUP); POLLOUT with send space outside the
    handshake; POLLPRI while an urgent byte is unread; POLLERR with a pending error."""
    state = sk.state
    if state == S.TCP_LISTEN:
        queue = sk.accept_queue
        return POLLIN | POLLRDNORM if queue is not None and not queue.empty() else 0
    mask = 0
    shutdown = sk.shutdown
    if shutdown == SHUTDOWN_MASK or state == S.TCP_CLOSE:
        mask |= POLLHUP
    if shutdown & RCV_SHUTDOWN:
        mask |= POLLIN | POLLRDNORM | POLLRDHUP
    if state not in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        target = max(sk.rcvlowat, 1)
        inline = sk.sockflags.get(SO_OOBINLINE)
        if sk.urg_off == 0 and not inline:     # the mark next, its byte read or not
            target += 1
        if tcp_inq(sk) >= target:
            mask |= POLLIN | POLLRDNORM
        if shutdown & SEND_SHUTDOWN or sk_stream_is_writeable(sk):
            mask |= POLLOUT | POLLWRNORM
        if sk.urg_data is not None:
            mask |= POLLPRI
    if sk.sk_err:
        mask |= POLLERR
    return mask
