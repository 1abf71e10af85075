"""TCP over IPv4 (and IPv6, which sysemu carries on the same tables): the receive entry,
resets, the child of a handshake, connect, and the tables of function pointers the
layers below call TCP through.

Linux: net/ipv4/tcp_ipv4.c (tcp_v4_rcv, tcp_v4_do_rcv, tcp_v4_send_reset,
tcp_v4_conn_request, tcp_v4_syn_recv_sock, tcp_v4_connect, tcp_v4_init_sock,
ipv4_specific, tcp_request_sock_ops, tcp_prot, tcp_hashinfo), net/ipv6/tcp_ipv6.c
(tcp_v6_connect).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import (IN6ADDR_ANY, IN6ADDR_LOOPBACK, INADDR_ANY, TCP_KEEPCNT,
                             TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_LINGER2, TCP_USER_TIMEOUT,
                             V4MAPPED_PREFIX, TcpState, TcpStates)
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import AF_INET, AF_INET6
from sysemu.kernel.errors import SyscallError
from sysemu.net.core import (Proto, Sock, ktime_get_seconds, mapped, sk_acceptq_is_full,
                             tcp_clock_ms)
from sysemu.net.ipv4.inet_connection_sock import (InetConnectionSockAfOps,
                                                  inet_csk_reqsk_queue_add,
                                                  inet_csk_reqsk_queue_drop)
from sysemu.net.ipv4.inet_hashtables import inet_hash_connect
from sysemu.net.ipv4.inet_timewait_sock import inet_twsk_deschedule_put
from sysemu.net.ipv4.request_sock import RequestSock, RequestSockOps
from sysemu.net.ipv4.route import INADDR_LOOPBACK, LOOPBACK_IFINDEX, ip_route_connect
from sysemu.net.ipv4.tcp import tcp_close, tcp_connect_failed, tcp_disconnect
from sysemu.net.ipv4.tcp_input import tcp_conn_request, tcp_rcv_state_process, tcp_synack_rtt
from sysemu.net.ipv4.tcp_minisocks import (TcpTwStatus, tcp_check_req,
                                           tcp_timewait_state_process)
from sysemu.net.ipv4.tcp_output import (F, tcp_connect, tcp_init_transfer, tcp_rtx_synack,
                                        tcp_transmit, tcp_tsval)
from sysemu.net.ipv4.tcp_timer import (keepalive_time_when, tcp_orphan_expire,
                                       tcp_reset_keepalive_timer, tcp_retransmit_timer)
from sysemu.net.ipv6.addrconf_core import (IPV6_ADDR_LOOPBACK, IPV6_ADDR_MAPPED,
                                           LOOPBACK4_IPV6, ipv6_addr_type)
from sysemu.net.secure_seq import secure_tcp_seq, secure_tcp_ts_off
from sysemu.net.sockaddr import decode_sockaddr_in, decode_sockaddr_in6

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment

S = TcpStates


# -- receive -------------------------------------------------------------------------

def tcp_v4_rcv(net: "Net", seg: "Segment") -> None:
    """Linux: tcp_v4_rcv() / tcp_v6_rcv(): find the owner (established, then request,
    then listener) of a segment; no owner answers RST (tcp_v4_send_reset). A segment
    whose checksum fails (the corrupt fault) is dropped first (csum_error)."""
    net.count("InSegs")
    if seg.csum_bad:
        net.count("InCsumErrors")
        net.count("InErrs")
        return
    hinfo = net.hashinfo
    owner = hinfo.lookup_established(seg.daddr, seg.dport, seg.saddr, seg.sport)
    if isinstance(owner, RequestSock):
        tcp_check_req(net, owner, seg)
        if seg.length:      # Linux: tcp_child_process(): the ACK's data goes to the child
            child = hinfo.lookup_established(seg.daddr, seg.dport, seg.saddr, seg.sport)
            if isinstance(child, Sock) and child.state == S.TCP_ESTABLISHED:
                tcp_rcv_state_process(net, child, seg)
        return
    if owner is not None:
        if owner.state == S.TCP_TIME_WAIT:
            return tcp_v4_do_time_wait(net, owner, seg)
        if tcp_rcv_state_process(net, owner, seg):
            tcp_v4_send_reset(net, seg)
        return
    listener = hinfo.lookup_listener(seg.daddr, seg.dport, seg.sport)
    if listener is not None:
        return tcp_v4_do_rcv(net, listener, seg)
    if net.nf_queue is not None and seg.flags & F.SYN and not seg.flags & F.ACK \
            and net.nf_queue(seg):
        return          # queued to the host (an allowed host service: ipv4/portfwd.py)
    tcp_v4_send_reset(net, seg)


def tcp_v4_do_time_wait(net: "Net", tw: Sock, seg: "Segment") -> None:
    """Linux: tcp_v4_rcv()'s do_time_wait: a SYN that opens a new connection goes to the
    listener (the TIME_WAIT sock ends) with the ISN TIME_WAIT chose; with no listener,
    and for what TIME_WAIT answers, an ACK of the old connection."""
    status, isn = tcp_timewait_state_process(net, tw, seg)
    if status == TcpTwStatus.TCP_TW_SYN:
        listener = net.hashinfo.lookup_listener(seg.daddr, seg.dport, seg.sport)
        if listener is not None:
            inet_twsk_deschedule_put(net, tw)
            return tcp_conn_request(net, tcp_request_sock_ops, listener, seg, isn)
        status = TcpTwStatus.TCP_TW_ACK
    if status in (TcpTwStatus.TCP_TW_ACK, TcpTwStatus.TCP_TW_ACK_OOW):
        tcp_v4_timewait_ack(net, tw)
    elif status == TcpTwStatus.TCP_TW_RST:
        tcp_v4_send_reset(net, seg)
        inet_twsk_deschedule_put(net, tw)


def tcp_v4_timewait_ack(net: "Net", tw: Sock) -> None:
    """Linux: tcp_v4_timewait_ack() -> tcp_v4_send_ack(): ACK with the old connection's
    numbers (tw_snd_nxt, tw_rcv_nxt), echoing tw_ts_recent when timestamps were on."""
    tsval = tcp_tsval(net, tw.tsoffset) if tw.ts_recent_stamp else None
    tcp_transmit(net, tw.wire_local(), tw.num, tw.wire_remote(), tw.dport, tw.snd_nxt,
                 tw.rcv_nxt, F.ACK, tsval, tw.ts_recent)


def tcp_v4_send_reset(net: "Net", seg: "Segment") -> None:
    """Linux: tcp_v4_send_reset(): never answer a RST; ACK the segment's sequence space."""
    if seg.flags & F.RST:
        return
    net.count("OutRsts")
    if seg.flags & F.ACK:
        tcp_transmit(net, seg.daddr, seg.dport, seg.saddr, seg.sport, seg.ack, 0, F.RST)
    else:
        span = seg.length + (1 if seg.flags & F.SYN else 0) + (1 if seg.flags & F.FIN else 0)
        tcp_transmit(net, seg.daddr, seg.dport, seg.saddr, seg.sport, 0, seg.seq + span,
                     F.RST | F.ACK)


def tcp_v4_do_rcv(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_v4_do_rcv() for a listener: tcp_v4_cookie_check(), then
    tcp_rcv_state_process()'s TCP_LISTEN case (an ACK with no request is reset, a SYN
    is a connection request)."""
    if seg.flags & F.RST:
        return
    if seg.flags & F.ACK:
        key = (seg.daddr, seg.dport, seg.saddr, seg.sport)
        req = sk.accept_queue.cookies.get(key)
        if req is not None and not seg.flags & F.SYN \
                and seg.ack == (req.snt_isn + 1) & U32_MAX:
            # Linux: cookie_v4_check() rebuilds the request, then tcp_check_req()
            net.count("SyncookiesRecv")
            if tcp_v4_syn_recv_sock(net, sk, req) is not None:
                sk.accept_queue.cookies.pop(key, None)
            return
        return tcp_v4_send_reset(net, seg)
    if seg.flags & F.SYN:
        tcp_v4_conn_request(net, sk, seg)


def tcp_v4_conn_request(net: "Net", sk: "Sock", seg: "Segment") -> None:
    """Linux: tcp_v4_conn_request(): tcp_conn_request() with TCP's request ops."""
    tcp_conn_request(net, tcp_request_sock_ops, sk, seg)


# What a child copies from its listener (Linux: sk_clone_lock() copies the whole sock).
_INHERITED = ("sk_prot", "icsk_af_ops", "reuse", "reuseport", "keepalive", "linger",
              "rcvbuf", "sndbuf", "nodelay", "ipv6only", "bound_dev_if", "rcvtimeo",
              "sndtimeo", "max_pacing_rate")
# ... and of the stored TCP options (tp->keepalive_time/intvl/probes, icsk_user_timeout,
# linger2): not the listener's own (TCP_FASTOPEN's queue, TCP_DEFER_ACCEPT)
_INHERITED_TCP_OPTS = (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT, TCP_LINGER2)


def tcp_v4_syn_recv_sock(net: "Net", sk: "Sock", req: RequestSock) -> "Sock | None":
    """Linux: tcp_v4_syn_recv_sock() + tcp_create_openreq_child() + __inet_inherit_port()
    + inet_ehash_nolisten() + inet_csk_complete_hashdance(): the established child joins
    the accept queue and the listener's port; the two ends are linked. None when the
    listener is gone or its accept queue is full."""
    if sk.state != S.TCP_LISTEN:
        return None
    if sk_acceptq_is_full(sk):
        net.count("ListenOverflows")
        net.count("ListenDrops")
        return None
    child = Sock(net, sk.family, sk.protocol, sk.uid)
    net.socks.add(child)
    for attr in _INHERITED:
        setattr(child, attr, getattr(sk, attr))
    child.tcp_opts.update((k, v) for k, v in sk.tcp_opts.items() if k in _INHERITED_TCP_OPTS)
    if sk.family == AF_INET:
        child.rcv_saddr = req.loc_addr[12:]
        child.daddr = req.rmt_addr[12:]
    else:
        child.v6_rcv_saddr = req.loc_addr
        child.v6_daddr = req.rmt_addr
        if req.loc_addr[:12] == V4MAPPED_PREFIX:
            child.rcv_saddr = req.loc_addr[12:]
        if req.rmt_addr[:12] == V4MAPPED_PREFIX:
            child.daddr = req.rmt_addr[12:]
    child.dport = req.rmt_port
    child.parent = sk
    child.isn = req.snt_isn
    child.snd_nxt = (req.snt_isn + 1) & U32_MAX
    child.rcv_nxt = (req.rcv_isn + 1) & U32_MAX
    # Linux: tcp_create_openreq_child(): the request's timestamps
    child.tstamp_ok = req.tstamp_ok
    if req.tstamp_ok:
        child.ts_recent = req.ts_recent
        child.ts_recent_stamp = ktime_get_seconds(net.now())
        child.tsoffset = req.ts_off
    child.state = S.TCP_ESTABLISHED
    tcp_synack_rtt(net, child, req.snt_synack if not req.num_timeout else None, 0)
    child.rcv_wnd = req.rcv_wnd              # Linux: tcp_create_openreq_child()
    tcp_init_transfer(net, child, 65535)     # sysemu: the peer's window is the SYN's
    if child.keepalive:
        tcp_reset_keepalive_timer(net, child, keepalive_time_when(net, child))
    net.count("PassiveOpens")
    net.hashinfo.bind_hash(child, sk.bind_bucket, sk.num)     # __inet_inherit_port()
    inet_csk_reqsk_queue_drop(net, req)
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


# -- active open -----------------------------------------------------------------------

def tcp_v4_connect(net: "Net", sk: "Sock", data: bytes) -> None:
    """Linux: tcp_v4_connect(): EINVAL short, EAFNOSUPPORT, route, source address, port
    (__inet_hash_connect), then tcp_connect()."""
    addr = decode_sockaddr_in(data)
    if addr.family != AF_INET:
        raise SyscallError(Errno.EAFNOSUPPORT)
    daddr = addr.addr if addr.addr != INADDR_ANY else INADDR_LOOPBACK
    src = ip_route_connect(daddr)
    _connect_common(net, sk, daddr, addr.port, src, v6=None)


def tcp_v6_connect(net: "Net", sk: "Sock", data: bytes) -> None:
    """Linux: net/ipv6/tcp_ipv6.c tcp_v6_connect(): :: means loopback; v4-mapped goes
    the IPv4 way (ENETUNREACH on a v6only socket); multicast and other addresses are
    unreachable."""
    addr = decode_sockaddr_in6(data)
    if addr.family != AF_INET6:
        raise SyscallError(Errno.EAFNOSUPPORT)
    daddr = addr.addr
    if daddr == IN6ADDR_ANY:
        daddr = (mapped(INADDR_LOOPBACK) if ipv6_addr_type(sk.v6_rcv_saddr) == IPV6_ADDR_MAPPED
                 else IN6ADDR_LOOPBACK)
    kind = ipv6_addr_type(daddr)
    if kind == IPV6_ADDR_MAPPED:
        if sk.ipv6only:
            raise SyscallError(Errno.ENETUNREACH)
        v4 = daddr[12:] if daddr[12:] != INADDR_ANY else INADDR_LOOPBACK
        src = ip_route_connect(v4)
        return _connect_common(net, sk, v4, addr.port, src, v6=mapped(v4))
    if kind != IPV6_ADDR_LOOPBACK:
        raise SyscallError(Errno.ENETUNREACH)
    if ipv6_addr_type(sk.v6_rcv_saddr) == IPV6_ADDR_MAPPED:
        raise SyscallError(Errno.ENETUNREACH)
    _connect_common(net, sk, LOOPBACK4_IPV6, addr.port, LOOPBACK4_IPV6, v6=daddr)


def _connect_common(net: "Net", sk: "Sock", daddr4: bytes, dport: int, src4: bytes,
                    v6: bytes | None) -> None:
    """The common part of tcp_v4_connect() and tcp_v6_connect(): the source address, the
    destination (port 0 too: its SYN meets no listener and gets RST back, as on Linux),
    a local port by __inet_hash_connect() (which may reuse a TIME_WAIT 4-tuple and
    its write_seq), the ISN (secure_tcp_seq()) and timestamp offset
    (secure_tcp_ts_off()), then tcp_connect(). Addresses are restored if no port is
    free."""
    if sk.ts_recent_stamp and sk.daddr != daddr4:
        # Linux: reset the timestamp state inherited for another destination
        sk.ts_recent = sk.ts_recent_stamp = 0
        sk.write_seq = 0
    saved = (sk.rcv_saddr, sk.v6_rcv_saddr)
    if sk.family == AF_INET:
        if sk.rcv_saddr == INADDR_ANY:
            sk.rcv_saddr = src4
        sk.daddr = daddr4
    else:
        if sk.v6_rcv_saddr == IN6ADDR_ANY:
            sk.v6_rcv_saddr = mapped(src4) if v6[:12] == V4MAPPED_PREFIX else IN6ADDR_LOOPBACK
            sk.rcv_saddr = src4
        sk.v6_daddr = v6
        sk.daddr = daddr4
    sk.dport = dport
    try:
        inet_hash_connect(net, sk)
    except SyscallError:
        sk.rcv_saddr, sk.v6_rcv_saddr = saved
        sk.dport = 0
        sk.daddr, sk.v6_daddr = INADDR_ANY, IN6ADDR_ANY
        raise
    if not sk.write_seq:
        sk.write_seq = secure_tcp_seq(net, sk.wire_local(), sk.wire_remote(), sk.num,
                                      sk.dport)
    sk.tsoffset = (secure_tcp_ts_off(net, sk.wire_local(), sk.wire_remote())
                   if int(net.sysctl("net.ipv4.tcp_timestamps")) == 1 else 0)
    tcp_connect(net, sk)


def tcp_twsk_unique(net: "Net", sk: Sock, tw: Sock, twp: bool) -> bool:
    """Linux: tcp_ipv4.c tcp_twsk_unique(): may connect() take the 4-tuple of TIME_WAIT
    sock `tw`? Only when tw saw timestamps (PAWS keeps the connections apart), and, for
    a port connect() picks (twp), when net.ipv4.tcp_tw_reuse allows it (2, the default:
    loopback only) and tw entered TIME_WAIT more than tcp_tw_reuse_delay ms ago. A sock
    that bound its port itself takes it with timestamps alone. The new connection starts
    above the old one (write_seq = tw_snd_nxt + 65535 + 2) and inherits ts_recent."""
    reuse = int(net.sysctl("net.ipv4.tcp_tw_reuse"))
    if reuse == 2 and not (tw.bound_dev_if == LOOPBACK_IFINDEX
                           or _is_loopback(tw.wire_remote())
                           or _is_loopback(tw.wire_local())):
        reuse = 0
    reuse_thresh = tw.tw_entry_stamp + int(net.sysctl("net.ipv4.tcp_tw_reuse_delay"))
    now_ms = tcp_clock_ms(net.now())
    if tw.ts_recent_stamp and (not twp or (reuse and now_ms - reuse_thresh > 0)):
        sk.write_seq = ((tw.snd_nxt + 65535 + 2) & U32_MAX) or 1
        sk.ts_recent = tw.ts_recent
        sk.ts_recent_stamp = tw.ts_recent_stamp
        return True
    return False


def _is_loopback(wire: bytes) -> bool:
    """Linux: ipv4_is_loopback() / ipv6_addr_loopback() / ipv6_addr_v4mapped_loopback()
    on a wire address."""
    return wire == IN6ADDR_LOOPBACK or (wire[:12] == V4MAPPED_PREFIX and wire[12] == 127)


def tcp_v4_err(net: "Net", sk: "Sock", err: int) -> None:
    """Linux: net/ipv4/tcp_ipv4.c tcp_v4_err() for a sock in SYN_SENT: a hard ICMP error
    (host or network unreachable ...) ends the connect with `err` (sysemu: the errno is
    given, not an ICMP type; the host's verdict for an allowed service, ipv4/portfwd.py)."""
    if sk.state != S.TCP_SYN_SENT:
        return
    sk.sk_err = err
    tcp_connect_failed(net, sk)


# -- the tables ------------------------------------------------------------------------

tcp_request_sock_ops = RequestSockOps(rtx_syn_ack=tcp_rtx_synack, send_reset=tcp_v4_send_reset)

ipv4_specific = InetConnectionSockAfOps(syn_recv_sock=tcp_v4_syn_recv_sock)

tcp_prot = Proto(name="TCP", close=tcp_close, disconnect=tcp_disconnect,
                 write_timer=tcp_retransmit_timer, keepalive_timer=tcp_orphan_expire,
                 twsk_unique=tcp_twsk_unique)


def tcp_v4_init_sock(sk: "Sock") -> None:
    """Linux: tcp_v4_init_sock() (tcp_prot.init): TCP's functions for a new sock."""
    sk.sk_prot = tcp_prot
    sk.icsk_af_ops = ipv4_specific
