"""PF_INET / PF_INET6 stream sockets: the proto_ops layer, registered with socket.c.

Linux: net/ipv4/af_inet.c (inet_create, inet_bind, __inet_bind, inet_listen,
__inet_stream_connect, inet_accept, inet_getname, inet_shutdown, inet_stream_ops,
inet_init), net/ipv6/af_inet6.c (inet6_create, __inet6_bind, inet6_getname,
inet6_stream_ops). inet_release() is Net.release(), which the host calls.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import (IN6ADDR_ANY, INADDR_ANY, IPPROTO_IP, IPPROTO_MAX, IPPROTO_TCP,
                             IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP, TcpState,
                             TcpStates)
from sysemu.abi.socket import (AF_INET, AF_INET6, AF_UNSPEC, SHUTDOWN_MASK, SOCK_DGRAM,
                               SOCK_RAW, SOCK_STREAM, RCV_SHUTDOWN, SocketState)
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.kernel.task import CAP_NET_BIND_SERVICE, CAP_NET_RAW
from sysemu.net.core import SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, Sock, sock_intr_errno
from sysemu.net.ipv4.inet_connection_sock import (inet_csk_accept, inet_csk_get_port,
                                                  inet_csk_listen_start)
from sysemu.net.ipv4.request_sock import reqsk_queue_remove
from sysemu.net.ipv4.route import (LOOPBACK_IFINDEX, RTN_BROADCAST, RTN_LOCAL,
                                   RTN_MULTICAST, inet_addr_type)
from sysemu.net.ipv4.tcp import (tcp_disconnect, tcp_ioctl, tcp_poll, tcp_recvmsg,
                                 tcp_sendmsg, tcp_shutdown)
from sysemu.net.ipv4.tcp_ipv4 import tcp_v4_connect, tcp_v4_init_sock, tcp_v6_connect
from sysemu.net.ipv4.ping import (ping_bind, ping_init_sock, ping_recvmsg,
                                  ping_sendmsg_ops)
from sysemu.net.ipv4.raw import (RAW_SERVED, raw_bind, raw_init, raw_recvmsg,
                                 raw_sendmsg_ops)
from sysemu.net.ipv4.udp import (datagram_poll, inet_dgram_connect, udp_init_sock, udp_ioctl_ops,
                                 udp_recvmsg_ops, udp_sendmsg_ops, udp_shutdown)
from sysemu.net.ipv6.addrconf_core import (IPV6_ADDR_ANY, IPV6_ADDR_LINKLOCAL,
                                           IPV6_ADDR_LOOPBACK, IPV6_ADDR_MAPPED,
                                           IPV6_ADDR_MULTICAST, LOOPBACK4_IPV6,
                                           ipv6_addr_type)
from sysemu.net.sockaddr import decode_sockaddr_in, decode_sockaddr_in6, sa_family
from sysemu.net.socket import NetProtoFamily, ProtoOps, Socket, sock_register

if TYPE_CHECKING:
    from sysemu.net.core import Net

S = TcpStates


def inet_create(task, net: "Net", family: int, type_: int, protocol: int) -> Socket:
    """Linux: inet_create() / inet6_create() (after __sock_create()'s checks), with
    their check order: EINVAL (protocol range), ESOCKTNOSUPPORT (no such type in
    inetsw), EPROTONOSUPPORT (protocol), EPERM (raw without CAP_NET_RAW); then the Sock
    with TCP's functions (sk_prot->init) and the Socket with the family's ops."""
    if protocol < 0 or protocol >= IPPROTO_MAX:
        raise SyscallError(Errno.EINVAL)
    if type_ == SOCK_STREAM:
        if protocol not in (IPPROTO_IP, IPPROTO_TCP):
            raise SyscallError(Errno.EPROTONOSUPPORT)
    elif type_ == SOCK_DGRAM:
        if protocol == (IPPROTO_ICMP if family == AF_INET else IPPROTO_ICMPV6):
            sk = Sock(net, family, protocol, uid=getattr(task, "uid", 0))
            ping_init_sock(task, net, sk)       # EACCES outside ping_group_range
            return Socket(net, sk, inet_ping_ops if family == AF_INET else inet6_ping_ops,
                          type_)
        if protocol not in (IPPROTO_IP, IPPROTO_UDP):
            # sysemu: UDP-Lite (136) is not served (nothing may reach a host AF_INET
            # socket): EPROTONOSUPPORT, as a kernel without it answers.
            raise SyscallError(Errno.EPROTONOSUPPORT)
        sk = Sock(net, family, IPPROTO_UDP, uid=getattr(task, "uid", 0))
        udp_init_sock(sk)
        net.udp_socks.add(sk)
        return Socket(net, sk, inet_dgram_ops if family == AF_INET else inet6_dgram_ops,
                      type_)
    elif type_ == SOCK_RAW:
        if protocol == IPPROTO_IP:
            raise SyscallError(Errno.EPROTONOSUPPORT)   # no inetsw entry matches
        if not task.capable(CAP_NET_RAW):
            raise SyscallError(Errno.EPERM)
        if protocol != RAW_SERVED[family]:
            # sysemu: raw sockets of other protocols (TCP, UDP, IPPROTO_RAW) are not
            # served: EPROTONOSUPPORT.
            raise SyscallError(Errno.EPROTONOSUPPORT)
        sk = Sock(net, family, protocol, uid=getattr(task, "uid", 0))
        raw_init(net, sk, protocol)
        return Socket(net, sk, inet_raw_ops if family == AF_INET else inet6_raw_ops, type_)
    else:
        raise SyscallError(Errno.ESOCKTNOSUPPORT)
    sk = Sock(net, family, IPPROTO_TCP, uid=getattr(task, "uid", 0))
    tcp_v4_init_sock(sk)
    net.socks.add(sk)
    return Socket(net, sk, inet_stream_ops if family == AF_INET else inet6_stream_ops,
                  type_)


def inet_bind(net: "Net", sock: Socket, data: bytes, task) -> None:
    """Linux: inet_bind() -> __inet_bind() (AF_INET) or inet6_bind() -> __inet6_bind()."""
    sk = sock.sk
    if sk.family == AF_INET6:
        return inet6_bind(net, sk, data, task)
    addr = decode_sockaddr_in(data)                   # EINVAL: addr_len < sizeof
    if addr.family != AF_INET:
        # Compatibility: AF_UNSPEC is taken as AF_INET for INADDR_ANY only.
        if addr.family != AF_UNSPEC or addr.addr != INADDR_ANY:
            raise SyscallError(Errno.EAFNOSUPPORT)
    chk = inet_addr_type(addr.addr)
    # Linux: inet_can_nonlocal_bind(): ip_nonlocal_bind, IP_FREEBIND or IP_TRANSPARENT
    if (not inet_can_nonlocal_bind(net, sk) and addr.addr != INADDR_ANY
            and chk not in (RTN_LOCAL, RTN_MULTICAST, RTN_BROADCAST)):
        raise SyscallError(Errno.EADDRNOTAVAIL)
    _check_bind_service(net, addr.port, task)
    if sk.state != S.TCP_CLOSE or sk.num:
        raise SyscallError(Errno.EINVAL)
    sk.rcv_saddr = addr.addr
    _bind_port(net, sk, addr.port, lambda: setattr(sk, "rcv_saddr", INADDR_ANY))


def inet_can_nonlocal_bind(net: "Net", sk: Sock) -> bool:
    """Linux: include/net/inet_sock.h inet_can_nonlocal_bind()."""
    return bool(int(net.sysctl("net.ipv4.ip_nonlocal_bind")) or sk.freebind
                or sk.transparent)


def _check_bind_service(net: "Net", snum: int, task) -> None:
    """Linux: inet_port_requires_bind_service() + ns_capable(CAP_NET_BIND_SERVICE)."""
    if snum and snum < int(net.sysctl("net.ipv4.ip_unprivileged_port_start")) \
            and not task.capable(CAP_NET_BIND_SERVICE):
        raise SyscallError(Errno.EACCES)


def _bind_port(net: "Net", sk: Sock, snum: int, undo) -> None:
    if snum or not sk.bind_address_no_port:
        try:
            (sk.sk_prot.get_port or inet_csk_get_port)(net, sk, snum)
        except SyscallError:
            undo()
            raise SyscallError(Errno.EADDRINUSE) from None
    if (sk.rcv_saddr != INADDR_ANY if sk.family == AF_INET
            else sk.v6_rcv_saddr != IN6ADDR_ANY):
        sk.userlocks |= SOCK_BINDADDR_LOCK
    if snum:
        sk.userlocks |= SOCK_BINDPORT_LOCK
    sk.dport = 0
    sk.daddr = INADDR_ANY
    sk.v6_daddr = IN6ADDR_ANY


def inet6_bind(net: "Net", sk: Sock, data: bytes, task) -> None:
    """Linux: inet6_bind() -> __inet6_bind(): v4-mapped addresses bind the IPv4 side
    (EINVAL on a v6only socket); a specific IPv6 address makes the socket v6only;
    link-local needs a scope id (EINVAL without, ENODEV for no such interface)."""
    addr = decode_sockaddr_in6(data)                  # EINVAL: < SIN6_LEN_RFC2133
    if addr.family != AF_INET6:
        raise SyscallError(Errno.EAFNOSUPPORT)
    addr_type = ipv6_addr_type(addr.addr)
    if addr_type == IPV6_ADDR_MULTICAST and sk.type == SOCK_STREAM:
        raise SyscallError(Errno.EINVAL)              # multicast on SOCK_STREAM
    _check_bind_service(net, addr.port, task)
    if sk.state != S.TCP_CLOSE or sk.num:
        raise SyscallError(Errno.EINVAL)
    v4addr = INADDR_ANY
    if addr_type == IPV6_ADDR_MAPPED:
        if sk.ipv6only:
            raise SyscallError(Errno.EINVAL)
        v4addr = addr.addr[12:]
        # Linux: inet_addr_valid_or_nonlocal(), as AF_INET's bind
        if (not inet_can_nonlocal_bind(net, sk) and v4addr != INADDR_ANY
                and inet_addr_type(v4addr) not in (RTN_LOCAL, RTN_MULTICAST, RTN_BROADCAST)):
            raise SyscallError(Errno.EADDRNOTAVAIL)
    elif addr_type != IPV6_ADDR_ANY:
        bound_dev_if = sk.bound_dev_if
        if addr_type == IPV6_ADDR_LINKLOCAL:
            if addr.scope_id:
                bound_dev_if = addr.scope_id
            if not bound_dev_if:
                raise SyscallError(Errno.EINVAL)
        if bound_dev_if and bound_dev_if != LOOPBACK_IFINDEX:
            raise SyscallError(Errno.ENODEV)
        sk.bound_dev_if = bound_dev_if
        v4addr = LOOPBACK4_IPV6
        if addr_type != IPV6_ADDR_LOOPBACK:          # ipv6_chk_addr(): only ::1 is ours
            raise SyscallError(Errno.EADDRNOTAVAIL)
    sk.rcv_saddr = v4addr
    sk.v6_rcv_saddr = addr.addr
    saved_ipv6only = sk.ipv6only
    if addr_type not in (IPV6_ADDR_ANY, IPV6_ADDR_MAPPED):
        sk.ipv6only = True

    def undo():
        sk.ipv6only = saved_ipv6only
        sk.rcv_saddr, sk.v6_rcv_saddr = INADDR_ANY, IN6ADDR_ANY
    _bind_port(net, sk, addr.port, undo)


def inet_listen(net: "Net", sock: Socket, backlog: int) -> None:
    """Linux: inet_listen() / __inet_listen_sk(): EINVAL unless unconnected and in CLOSE
    or LISTEN; a second listen only updates the backlog."""
    sk = sock.sk
    if sock.state != SocketState.SS_UNCONNECTED or sock.type != SOCK_STREAM:
        raise SyscallError(Errno.EINVAL)
    if sk.state not in (S.TCP_CLOSE, S.TCP_LISTEN):
        raise SyscallError(Errno.EINVAL)
    sk.max_ack_backlog = backlog
    if sk.state != S.TCP_LISTEN:
        inet_csk_listen_start(net, sk)     # autobinds (get_port(0)) when unbound
    net.kernel.host.listen_queue_changed(sk)


def _route_v4(daddr: bytes) -> bytes:
    """ip_route_connect() in the loopback namespace: the source address, or
    ENETUNREACH (no route; multicast and broadcast refused for TCP)."""
    kind = inet_addr_type(daddr)
    if kind != RTN_LOCAL:
        raise SyscallError(Errno.ENETUNREACH)
    return b"\x7f\0\0\x01"


def inet_stream_connect(net: "Net", sock: Socket, data: bytes, nonblocking: bool) -> int:
    """Linux: __inet_stream_connect(). A blocking attempt that must wait raises
    WouldBlock; run again, it finds SS_CONNECTING and waits or finishes (as Linux's own
    sleep in inet_wait_for_connect does)."""
    sk = sock.sk
    family = sa_family(data)                          # EINVAL: < sizeof(sa_family)
    if family == AF_UNSPEC:
        tcp_disconnect(net, sk)
        sock.state = SocketState.SS_UNCONNECTED
        return 0
    if sock.state == SocketState.SS_CONNECTED:
        raise SyscallError(Errno.EISCONN)
    if sock.state == SocketState.SS_CONNECTING:
        err = Errno.EALREADY
    elif sock.state == SocketState.SS_UNCONNECTED:
        if sk.state != S.TCP_CLOSE:
            raise SyscallError(Errno.EISCONN)
        if sk.family == AF_INET:
            tcp_v4_connect(net, sk, data)
        else:
            tcp_v6_connect(net, sk, data)
        sock.state = SocketState.SS_CONNECTING
        err = Errno.EINPROGRESS
    else:
        raise SyscallError(Errno.EINVAL)
    # Linux holds the socket lock from here to the state test, so even on loopback the
    # answer to a SYN just sent is processed after it (from the backlog): a fresh
    # non-blocking connect always reports EINPROGRESS (probed on 6.18).
    just_sent = err == Errno.EINPROGRESS
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV) or just_sent:
        timeo = None if nonblocking else sk.sndtimeo
        if nonblocking or timeo == 0:
            if err == Errno.EINPROGRESS and sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
                net.kernel.host.connecting(sk)
            raise SyscallError(err)
    if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV):
        deadline = None if timeo is None else net.now() + timeo
        raise WouldBlock(sk.wait, deadline, Errno.EINPROGRESS, sock_intr_errno(timeo))
    if sk.state == S.TCP_CLOSE:
        # Linux: sock_error: the pending error once (then ECONNABORTED), and disconnect.
        errno = sk.sk_err or Errno.ECONNABORTED
        sk.sk_err = 0
        sock.state = SocketState.SS_UNCONNECTED
        tcp_disconnect(net, sk)
        raise SyscallError(errno)
    sock.state = SocketState.SS_CONNECTED
    return 0


def inet_accept(net: "Net", sock: Socket, nonblocking: bool) -> Sock:
    """Linux: inet_accept() -> inet_csk_accept(): the child to hand out (not yet
    dequeued; see inet_accept_commit)."""
    return inet_csk_accept(net, sock.sk, nonblocking)


def inet_accept_commit(net: "Net", listener: Sock, child: Sock, newsock: Socket) -> None:
    """The rest of inet_accept(), once the program has the child's fd (the attempt may
    have been cancelled until then): reqsk_queue_remove() and sock_graft()."""
    queue = listener.accept_queue
    if queue is None or not queue.accept or queue.accept[0].sk is not child:
        return
    reqsk_queue_remove(listener)
    newsock.sk = child
    child.socket = newsock
    net.kernel.host.listen_queue_changed(listener)


def inet_accept_drop(net: "Net", listener: Sock, child: Sock) -> None:
    """Linux: do_accept() failing after inet_accept() dequeued the child (the peer's
    address could not be copied out): fput() of the new file closes it, sock_close() ->
    tcp_close(), so the connection is lost: its client reads EOF, or ECONNRESET when
    bytes it sent were unread (HostHooks.accept_dropped says, for bytes outside the
    model)."""
    queue = listener.accept_queue
    if queue is None or not queue.accept or queue.accept[0].sk is not child:
        return
    reqsk_queue_remove(listener)
    net.kernel.host.listen_queue_changed(listener)
    net.release(child, net.kernel.host.accept_dropped(child))


def inet_getname(sk: Sock, peer: bool) -> tuple[int, bytes, int, int]:
    """Linux: inet_getname() / inet6_getname(): (family, addr, port, scope_id). ENOTCONN
    for the peer of an unconnected (or still connecting) socket."""
    if peer:
        if not sk.dport or (sk.state in (S.TCP_CLOSE, S.TCP_SYN_SENT)):
            raise SyscallError(Errno.ENOTCONN)
        if sk.family == AF_INET:
            return AF_INET, sk.daddr, sk.dport, 0
        return AF_INET6, sk.v6_daddr, sk.dport, 0
    if sk.family == AF_INET:
        return AF_INET, sk.rcv_saddr, sk.num, 0
    scope = sk.bound_dev_if if ipv6_addr_type(sk.v6_rcv_saddr) == IPV6_ADDR_LINKLOCAL else 0
    return AF_INET6, sk.v6_rcv_saddr, sk.num, scope


def inet_shutdown(net: "Net", sock: Socket, how: int) -> None:
    """Linux: inet_shutdown(): EINVAL for a bad `how`; ENOTCONN when closed (the bits
    are still set); a listener stops listening on SHUT_RD/SHUT_RDWR."""
    sk = sock.sk
    how += 1
    if how & ~SHUTDOWN_MASK or not how:
        raise SyscallError(Errno.EINVAL)
    if sock.state == SocketState.SS_CONNECTING:
        if sk.state in (S.TCP_SYN_SENT, S.TCP_SYN_RECV, S.TCP_CLOSE):
            sock.state = SocketState.SS_DISCONNECTING
        else:
            sock.state = SocketState.SS_CONNECTED
    err = 0
    if sk.state == S.TCP_LISTEN:
        if how & RCV_SHUTDOWN:
            tcp_disconnect(net, sk)
            sock.state = SocketState.SS_UNCONNECTED
    elif sk.state == S.TCP_SYN_SENT:
        tcp_disconnect(net, sk)
        sock.state = SocketState.SS_UNCONNECTED
    else:
        if sk.state == S.TCP_CLOSE:
            err = Errno.ENOTCONN
        sk.shutdown |= how
        tcp_shutdown(net, sk, how)
    sk.wait.wake_up()
    if err:
        raise SyscallError(err)


def inet_sendmsg(task, sock: Socket, it, flags: int, nonblock: bool, copied: int,
                 address: bytes | None = None):
    """Linux: inet_sendmsg() -> sk->sk_prot->sendmsg (tcp_sendmsg, which ignores the
    address)."""
    sk = sock.sk
    return tcp_sendmsg(task, sk.net, sk, it, flags, nonblock, copied)


def inet_recvmsg(task, sock: Socket, it, flags: int, nonblock: bool, copied: int):
    """Linux: inet_recvmsg() -> sk->sk_prot->recvmsg (tcp_recvmsg)."""
    sk = sock.sk
    return tcp_recvmsg(sk.net, sk, it, flags, nonblock, copied)


def inet_ioctl(sock: Socket, what: str) -> int:
    """Linux: inet_ioctl() -> sk->sk_prot->ioctl (tcp_ioctl)."""
    return tcp_ioctl(sock.sk, what)


# -- registration (Linux: inet_init(), inet6_init()) ----------------------------------

def _stream_ops(family: int) -> ProtoOps:
    """Linux: inet_stream_ops / inet6_stream_ops."""
    return ProtoOps(
        family=family, bind=inet_bind, connect=inet_stream_connect, listen=inet_listen,
        accept=inet_accept, accept_commit=inet_accept_commit, accept_drop=inet_accept_drop,
        getname=inet_getname, shutdown=inet_shutdown, sendmsg=inet_sendmsg,
        recvmsg=inet_recvmsg, ioctl=inet_ioctl, poll=tcp_poll)


def _not_supported(*args):
    """Linux: sock_no_listen() / sock_no_accept(): EOPNOTSUPP for datagram sockets."""
    raise SyscallError(Errno.ENOTSUP)


def _dgram_ops(family: int, bind, sendmsg, recvmsg) -> ProtoOps:
    """Linux: inet_dgram_ops / inet6_dgram_ops (and, for ping and raw sockets, the same
    table with the protocol's bind, send and receive, over UDP's queue)."""
    return ProtoOps(
        family=family, bind=bind, connect=inet_dgram_connect, listen=_not_supported,
        accept=_not_supported, accept_commit=_not_supported, accept_drop=_not_supported,
        getname=inet_getname, shutdown=udp_shutdown, sendmsg=sendmsg, recvmsg=recvmsg,
        ioctl=udp_ioctl_ops, poll=datagram_poll)


inet_stream_ops = _stream_ops(AF_INET)
inet6_stream_ops = _stream_ops(AF_INET6)
inet_dgram_ops = _dgram_ops(AF_INET, inet_bind, udp_sendmsg_ops, udp_recvmsg_ops)
inet6_dgram_ops = _dgram_ops(AF_INET6, inet_bind, udp_sendmsg_ops, udp_recvmsg_ops)
# Linux: inet_sockraw_ops / inet6_sockraw_ops and the ping entries of inetsw_array
# (inet_dgram_ops with ping_prot): send and receive are the protocol's, over UDP's queue
inet_ping_ops = _dgram_ops(AF_INET, ping_bind, ping_sendmsg_ops, ping_recvmsg)
inet6_ping_ops = _dgram_ops(AF_INET6, ping_bind, ping_sendmsg_ops, ping_recvmsg)
inet_raw_ops = _dgram_ops(AF_INET, raw_bind, raw_sendmsg_ops, raw_recvmsg)
inet6_raw_ops = _dgram_ops(AF_INET6, raw_bind, raw_sendmsg_ops, raw_recvmsg)

sock_register(NetProtoFamily(AF_INET, inet_create))
sock_register(NetProtoFamily(AF_INET6, inet_create))
