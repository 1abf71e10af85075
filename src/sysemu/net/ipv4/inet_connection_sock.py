"""Port ownership, listen and accept, the listener's request queues, the sock's timers.

Linux: net/ipv4/inet_connection_sock.c, include/net/inet_connection_sock.h.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sysemu.abi.errno import Errno
from sysemu.abi.inet import INADDR_ANY, TcpState
from sysemu.abi.socket import AF_INET6
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.net.core import TCP_RTO_MAX, TCP_TIMEOUT_INIT, sock_intr_errno
from sysemu.net.ipv4.inet_hashtables import InetBindBucket, inet_get_local_port_range
from sysemu.net.ipv4.request_sock import RequestSock, RequestSockQueue, reqsk_queue_remove
from sysemu.net.ipv6.addrconf_core import IPV6_ADDR_ANY, IPV6_ADDR_MAPPED, ipv6_addr_type

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock


@dataclass(frozen=True)
class InetConnectionSockAfOps:
    """Linux: struct inet_connection_sock_af_ops (ipv4_specific): the address family's
    half of the protocol; syn_recv_sock makes the child of an acknowledged request."""
    syn_recv_sock: Callable[["Net", "Sock", RequestSock], "Sock | None"]


def ipv6_rcv_saddr_equal(a6: bytes, b6: bytes | None, a4: bytes, b4: bytes,
                          a_only: bool, b_only: bool, wild: bool) -> bool:
    """Linux: net/ipv4/inet_connection_sock.c ipv6_rcv_saddr_equal()."""
    t1 = ipv6_addr_type(a6)
    t2 = ipv6_addr_type(b6) if b6 is not None else IPV6_ADDR_MAPPED
    if t1 == IPV6_ADDR_MAPPED and t2 == IPV6_ADDR_MAPPED:
        if not b_only:
            if a4 == b4:
                return True
            return wild and (a4 == INADDR_ANY or b4 == INADDR_ANY)
        return False
    if t1 == IPV6_ADDR_ANY and t2 == IPV6_ADDR_ANY:
        return True
    if t2 == IPV6_ADDR_ANY and wild and not (b_only and t1 == IPV6_ADDR_MAPPED):
        return True
    if t1 == IPV6_ADDR_ANY and wild and not (a_only and t2 == IPV6_ADDR_MAPPED):
        return True
    return b6 is not None and a6 == b6


def inet_rcv_saddr_equal(sk: "Sock", sk2: "Sock", match_wildcard: bool) -> bool:
    """Linux: net/ipv4/inet_connection_sock.c inet_rcv_saddr_equal()."""
    if sk.family == AF_INET6:
        return ipv6_rcv_saddr_equal(
            sk.v6_rcv_saddr, sk2.v6_rcv_saddr if sk2.family == AF_INET6 else None,
            sk.rcv_saddr, sk2.rcv_saddr, sk.ipv6only, sk2.ipv6only, match_wildcard)
    # Linux: ipv4_rcv_saddr_equal()
    if sk2.ipv6only:
        return False
    if sk.rcv_saddr == sk2.rcv_saddr:
        return True
    return match_wildcard and (sk.rcv_saddr == INADDR_ANY or sk2.rcv_saddr == INADDR_ANY)


def inet_bind_conflict(sk: "Sock", sk2: "Sock", relax: bool, reuseport_ok: bool) -> bool:
    """Linux: inet_bind_conflict(): may sk share a port with sk2 (before addresses)?"""
    if sk is sk2:
        return False
    if sk.bound_dev_if and sk2.bound_dev_if and sk.bound_dev_if != sk2.bound_dev_if:
        return False
    reuseport_pair = (sk.reuseport and sk2.reuseport and
                      (sk2.state == TcpState.TCP_TIME_WAIT or sk.uid == sk2.uid))
    if sk.reuse and sk2.reuse and sk2.state != TcpState.TCP_LISTEN:
        return not relax or (not reuseport_ok and reuseport_pair)
    return not reuseport_ok or not reuseport_pair


def inet_csk_bind_conflict(sk: "Sock", tb: InetBindBucket, relax: bool,
                           reuseport_ok: bool) -> bool:
    """Linux: inet_csk_bind_conflict(): some owner of tb conflicts with sk on an address
    both can receive on (wildcards overlap everything of their family; IPv6 wildcards
    without IPV6_V6ONLY overlap IPv4 too)."""
    return any(inet_bind_conflict(sk, sk2, relax, reuseport_ok)
               and inet_rcv_saddr_equal(sk, sk2, True) for sk2 in tb.owners)


def inet_csk_find_open_port(net: "Net", sk: "Sock") -> int:
    """Linux: inet_csk_find_open_port(): bind(0). Ports of the parity opposite to the
    range start first (connect() takes the other parity); with SO_REUSEADDR the lower
    half of the range is searched first. A port is taken only if no owner conflicts even
    without relaxing reuse (relax=false): bind(0) never shares a port on an overlapping
    address, unless net.ipv4.ip_autobind_reuse is set and every port is taken: then
    the search runs again relaxed (SO_REUSEADDR owners may share). Returns 0 when none
    is free (EADDRINUSE)."""
    hinfo = net.hashinfo
    relax = False
    attempt_half = 1 if sk.reuse else 0
    while True:
        low, high = inet_get_local_port_range(net)
        high += 1
        if high - low < 4:
            attempt_half = 0
        if attempt_half:
            half = low + (((high - low) >> 2) << 1)
            if attempt_half == 1:
                high = half
            else:
                low = half
        remaining = high - low
        if remaining > 1:
            remaining &= ~1
        offset = net.kernel.rng.randrange(max(remaining, 1)) | 1
        while True:
            port = low + offset
            for _ in range(0, remaining, 2):
                if port >= high:
                    port -= remaining
                tb = hinfo.bhash.get(port)
                if tb is None or not inet_csk_bind_conflict(sk, tb, relax, False):
                    return port
                port += 2
            offset -= 1
            if offset & 1:
                break
        if attempt_half == 1:
            attempt_half = 2
            continue
        if int(net.sysctl("net.ipv4.ip_autobind_reuse")) and not relax:
            relax = True            # Linux: "a chance to connect to different destinations"
            attempt_half = 1 if sk.reuse else 0
            continue
        return 0


def inet_csk_get_port(net: "Net", sk: "Sock", snum: int) -> None:
    """Linux: inet_csk_get_port(): own `snum` (0: pick one) or raise EADDRINUSE.
    Called by bind() and again by listen() (the listener's own state is then LISTEN, so a
    SO_REUSEADDR pair can no longer both listen)."""
    hinfo = net.hashinfo
    if not snum:
        port = inet_csk_find_open_port(net, sk)
        if not port:
            raise SyscallError(Errno.EADDRINUSE)
        tb = hinfo.bucket(port, create=True)
    else:
        port = snum
        tb = hinfo.bucket(port)
        if tb is not None and tb.owners and inet_csk_bind_conflict(sk, tb, True, True):
            raise SyscallError(Errno.EADDRINUSE)
        if tb is None:
            tb = hinfo.bucket(port, create=True)
    # Linux: inet_csk_update_fastreuse()
    reuse = sk.reuse and sk.state != TcpState.TCP_LISTEN
    if not tb.owners:
        tb.fastreuse = int(reuse)
    elif not reuse and tb.fastreuse > 0:
        tb.fastreuse = 0
    if sk.bind_bucket is None:
        hinfo.bind_hash(sk, tb, port)


# -- the sock's timers ---------------------------------------------------------------

def inet_csk_clear_xmit_timers(sk: "Sock") -> None:
    """Linux: inet_csk_clear_xmit_timers(): stop the retransmit (or TIME_WAIT, FIN_WAIT2)
    timer, the data retransmit timer, the delayed ACK and the keepalive timer."""
    for name in ("timer", "delack", "rtx_timer", "ka_timer"):
        timer = getattr(sk, name)
        if timer is not None:
            timer.cancel()
            setattr(sk, name, None)
    sk.ack_pending = 0


def inet_csk_reset_xmit_timer(net: "Net", sk: "Sock", when: float) -> None:
    """Linux: inet_csk_reset_xmit_timer(ICSK_TIME_RETRANS): the protocol's write timer
    fires in `when` seconds (the timers of the sock are stopped first)."""
    inet_csk_clear_xmit_timers(sk)
    write_timer = sk.sk_prot.write_timer
    sk.timer = net.add_timer(when, lambda now, sk=sk: write_timer(net, sk))


def inet_csk_reset_keepalive_timer(net: "Net", sk: "Sock", when: float) -> None:
    """Linux: inet_csk_reset_keepalive_timer(): the protocol's keepalive timer (which ends
    a FIN_WAIT2 orphan) fires in `when` seconds (the timers of the sock are stopped
    first)."""
    inet_csk_clear_xmit_timers(sk)
    keepalive_timer = sk.sk_prot.keepalive_timer
    sk.timer = net.add_timer(when, lambda now, sk=sk: keepalive_timer(net, sk))


def inet_csk_destroy_sock(net: "Net", sk: "Sock") -> None:
    """Linux: inet_csk_destroy_sock(): the last of an orphan; ports are already free."""
    inet_csk_clear_xmit_timers(sk)
    if sk.bind_bucket is not None:
        net.hashinfo.put_port(sk)
    net.hashinfo.unhash(sk)
    net.sk_free(sk)


def inet_child_forget(net: "Net", child: "Sock") -> None:
    """Linux: inet_child_forget(): a child never accepted is disconnected (sk_prot's
    disconnect sends RST) and freed."""
    child.dead = True
    child.socket = None
    child.sk_prot.disconnect(net, child)
    inet_csk_destroy_sock(net, child)


# -- the request queues of a listener ------------------------------------------------

def inet_csk_reqsk_queue_is_full(sk: "Sock") -> bool:
    """Linux: inet_csk_reqsk_queue_is_full(): qlen > sk_max_ack_backlog (`>` since the
    2024 fix that made backlog 0 usable without SYN cookies; 6.18 has it)."""
    return sk.accept_queue.qlen > sk.max_ack_backlog


def inet_csk_reqsk_queue_hash_add(net: "Net", sk: "Sock", req: RequestSock) -> None:
    """Linux: inet_csk_reqsk_queue_hash_add(): the request joins the SYN queue and ehash
    (as TCP_NEW_SYN_RECV) with its SYN-ACK timer on."""
    sk.accept_queue.syn[req.key] = req
    net.hashinfo.ehash[req.key] = req
    req.timer = net.add_timer(TCP_TIMEOUT_INIT, lambda now, r=req: reqsk_timer_handler(net, r))


def inet_csk_reqsk_queue_drop(net: "Net", req: RequestSock) -> None:
    """Linux: inet_csk_reqsk_queue_drop(): out of the SYN queue and ehash."""
    if req.timer is not None:
        req.timer.cancel()
        req.timer = None
    queue = req.listener.accept_queue
    if queue is not None and queue.syn.get(req.key) is req:
        del queue.syn[req.key]
    if net.hashinfo.ehash.get(req.key) is req:
        del net.hashinfo.ehash[req.key]


def inet_csk_reqsk_queue_add(sk: "Sock", req: RequestSock, child: "Sock") -> None:
    """Linux: inet_csk_reqsk_queue_add() + sk_acceptq_added()."""
    req.sk = child
    sk.accept_queue.accept.append(req)
    sk.ack_backlog += 1


def reqsk_timer_handler(net: "Net", req: RequestSock) -> None:
    """Linux: reqsk_timer_handler(): resend the SYN-ACK (rsk_ops->rtx_syn_ack) with
    backoff (1, 3, 7, 15, 31 s) up to tcp_synack_retries (or TCP_SYNCNT), then drop."""
    req.timer = None
    listener = req.listener
    if listener.state != TcpState.TCP_LISTEN or req.key not in listener.accept_queue.syn:
        return inet_csk_reqsk_queue_drop(net, req)
    max_retries = listener.syn_retries or int(net.sysctl("net.ipv4.tcp_synack_retries"))
    if req.num_timeout >= max_retries:
        return inet_csk_reqsk_queue_drop(net, req)
    req.rsk_ops.rtx_syn_ack(net, req)
    req.num_timeout += 1
    timeo = min(TCP_TIMEOUT_INIT * (1 << req.num_timeout), TCP_RTO_MAX)
    req.timer = net.add_timer(timeo, lambda now, r=req: reqsk_timer_handler(net, r))


# -- listen and accept ---------------------------------------------------------------

def inet_csk_listen_start(net: "Net", sk: "Sock") -> None:
    """Linux: inet_csk_listen_start(): accept queue, LISTEN, re-check the port, hash."""
    sk.accept_queue = RequestSockQueue()
    sk.ack_backlog = 0
    old = sk.state
    sk.state = TcpState.TCP_LISTEN
    try:
        inet_csk_get_port(net, sk, sk.num)
    except SyscallError:
        sk.state = old
        sk.accept_queue = None
        raise
    net.hashinfo.hash_listener(sk)


def inet_csk_listen_stop(net: "Net", sk: "Sock") -> None:
    """Linux: inet_csk_listen_stop(): children waiting in the accept queue are reset
    (inet_child_forget -> tcp_disconnect sends RST); SYN_RECV requests are dropped."""
    queue = sk.accept_queue
    if queue is None:
        return
    for req in list(queue.syn.values()):
        inet_csk_reqsk_queue_drop(net, req)
    while True:
        req = reqsk_queue_remove(sk)
        if req is None:
            break
        inet_child_forget(net, req.sk)
    net.kernel.host.listen_queue_changed(sk)


def inet_csk_accept(net: "Net", sk: "Sock", nonblocking: bool) -> "Sock":
    """Linux: inet_csk_accept(): the head child of the accept queue, without dequeuing it
    (sysemu: inet_accept_commit() dequeues it once the program has the fd).
    EINVAL if not listening; EAGAIN when empty and non-blocking (or SO_RCVTIMEO passed);
    else wait on the listener."""
    if sk.state != TcpState.TCP_LISTEN:
        raise SyscallError(Errno.EINVAL)
    if sk.accept_queue.empty():
        if nonblocking or sk.rcvtimeo == 0:
            raise SyscallError(Errno.EAGAIN)
        deadline = None if sk.rcvtimeo is None else net.now() + sk.rcvtimeo
        raise WouldBlock(sk.wait, deadline, Errno.EAGAIN, sock_intr_errno(sk.rcvtimeo))
    return sk.accept_queue.accept[0].sk
