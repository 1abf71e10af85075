"""TCP's segments out: the control segments of sysemu's model and the delayed ACK.

Linux: net/ipv4/tcp_output.c (tcp_transmit_skb, tcp_connect, tcp_send_fin,
tcp_send_active_reset, tcp_make_synack / tcp_rtx_synack, tcp_send_delayed_ack).

Only control segments travel here (SYN, SYN-ACK, ACK, FIN, RST): the bytes of an
established connection move natively between placeholders (DESIGN.md), so sequence
numbers advance by SYN and FIN only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import SEND_SHUTDOWN
from sysemu.net.core import TCP_DELACK_MIN, TCP_TIMEOUT_INIT, Segment, tcp_clock_ms
from sysemu.net.ipv4.inet_connection_sock import inet_csk_reset_xmit_timer

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock
    from sysemu.net.ipv4.request_sock import RequestSock

S = TcpState


class F:
    """TcpFlags as plain ints: the hot path tests and combines flags on every segment, and
    IntFlag arithmetic costs microseconds in CPython. TcpFlags(x) names them for display."""
    FIN = int(TcpFlags.FIN)
    SYN = int(TcpFlags.SYN)
    RST = int(TcpFlags.RST)
    PSH = int(TcpFlags.PSH)
    ACK = int(TcpFlags.ACK)


def tcp_transmit(net: "Net", saddr: bytes, sport: int, daddr: bytes, dport: int, seq: int,
                 ack: int, flags: int, tsval: int | None = None, tsecr: int = 0) -> None:
    """One segment onto the wire (Linux: tcp_transmit_skb() -> ip_queue_xmit()); tsval
    (None: no timestamp option) and tsecr are the timestamp option's."""
    net.transmit(Segment(saddr, sport, daddr, dport, seq & U32_MAX, ack & U32_MAX, flags,
                         tsval=tsval, tsecr=tsecr))


def tcp_tsval(net: "Net", offset: int) -> int:
    """Linux: tcp_skb_timestamp_ts() + tsoffset: the timestamp a segment carries, the
    TCP clock in milliseconds plus the connection's offset (secure_tcp_ts_off())."""
    return (tcp_clock_ms(net.now()) + offset) & U32_MAX


def tcp_send(net: "Net", sk: "Sock", flags: int, seq: int | None = None) -> None:
    """A control segment of `sk` (seq: snd_nxt unless given; ack: rcv_nxt), with the
    timestamp option when the connection has it (Linux: tcp_established_options() /
    tcp_syn_options()). One that carries the ACK cancels a pending delayed ACK (Linux:
    tcp_event_ack_sent())."""
    if flags & F.ACK and sk.delack is not None:
        sk.delack.cancel()
        sk.delack = None
    tsval = tcp_tsval(net, sk.tsoffset) if sk.tstamp_ok else None
    tcp_transmit(net, sk.wire_local(), sk.num, sk.wire_remote(), sk.dport,
                 sk.snd_nxt if seq is None else seq, sk.rcv_nxt, flags, tsval, sk.ts_recent)


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
    tcp_transmit(net, req.loc_addr, req.loc_port, req.rmt_addr, req.rmt_port, req.snt_isn,
                 req.rcv_isn + 1, F.SYN | F.ACK, tsval, req.ts_recent)


def tcp_rtx_synack(net: "Net", req: "RequestSock") -> None:
    """Linux: tcp_rtx_synack(): the SYN-ACK again, counted in RetransSegs."""
    net.count("RetransSegs")
    tcp_send_synack(net, req)


def tcp_send_fin(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_fin(): the FIN takes one sequence number."""
    sk.shutdown |= SEND_SHUTDOWN
    seq = sk.snd_nxt
    sk.snd_nxt = (seq + 1) & U32_MAX
    tcp_send(net, sk, F.FIN | F.ACK, seq=seq)


def tcp_send_active_reset(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_active_reset()."""
    net.count("OutRsts")
    tcp_send(net, sk, F.RST | F.ACK)


def tcp_send_delayed_ack(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_send_delayed_ack(), and tcp_delack_timer() when it fires."""
    if sk.delack is not None:
        return

    def tcp_delack_timer(now, sk=sk):
        sk.delack = None
        if sk.state not in (S.TCP_CLOSE, S.TCP_LISTEN, S.TCP_SYN_SENT):
            tcp_send(net, sk, F.ACK)
    sk.delack = net.add_timer(TCP_DELACK_MIN, tcp_delack_timer)
