"""Port ownership, listen and accept. Linux: net/ipv4/inet_connection_sock.c."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.net.ipv4.inet_hashtables import InetBindBucket, inet_rcv_saddr_equal
from sysemu.net.ipv4.request_sock import RequestSockQueue, reqsk_queue_remove

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock


def local_port_range(net: "Net") -> tuple[int, int]:
    """Linux: inet_sk_get_local_port_range() (no per-socket IP_LOCAL_PORT_RANGE)."""
    lo, hi = net.sysctl("net.ipv4.ip_local_port_range")
    return int(lo), int(hi)


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
    address. Returns 0 when none is free (EADDRINUSE)."""
    hinfo = net.hashinfo
    attempt_half = 1 if sk.reuse else 0
    while True:
        low, high = local_port_range(net)
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
                if tb is None or not inet_csk_bind_conflict(sk, tb, False, False):
                    return port
                port += 2
            offset -= 1
            if offset & 1:
                break
        if attempt_half == 1:
            attempt_half = 2
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
    from sysemu.net.ipv4.tcp import inet_child_forget, reqsk_drop
    queue = sk.accept_queue
    if queue is None:
        return
    for req in list(queue.syn.values()):
        reqsk_drop(net, req)
    while True:
        req = reqsk_queue_remove(sk)
        if req is None:
            break
        inet_child_forget(net, sk, req.sk)
    net.kernel.host.listen_queue_changed(sk)


def inet_csk_accept(net: "Net", sk: "Sock", nonblocking: bool) -> "Sock":
    """Linux: inet_csk_accept(): the head child of the accept queue, without dequeuing it
    (sysemu: the caller dequeues with reqsk_queue_remove() once the program has the fd).
    EINVAL if not listening; EAGAIN when empty and non-blocking (or SO_RCVTIMEO passed);
    else wait on the listener."""
    if sk.state != TcpState.TCP_LISTEN:
        raise SyscallError(Errno.EINVAL)
    if sk.accept_queue.empty():
        if nonblocking or sk.rcvtimeo == 0:
            raise SyscallError(Errno.EAGAIN)
        deadline = None if sk.rcvtimeo is None else net.now() + sk.rcvtimeo
        raise WouldBlock(sk.wait, deadline, Errno.EAGAIN)
    return sk.accept_queue.accept[0].sk
