"""TCP's timers: the SYN retransmit timer and its give-up rule, the orphan's end.

Linux: net/ipv4/tcp_timer.c (tcp_retransmit_timer, tcp_write_timeout,
retransmits_timed_out, tcp_model_timeout, tcp_keepalive_timer). tcp_prot hands the
handlers to the socks (Proto.write_timer, Proto.keepalive_timer).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState
from sysemu.net.core import TCP_RTO_MAX, TCP_TIMEOUT_INIT
from sysemu.net.ipv4.inet_connection_sock import inet_csk_reset_xmit_timer
from sysemu.net.ipv4.tcp import tcp_connect_failed, tcp_done
from sysemu.net.ipv4.tcp_output import F, tcp_send

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock

S = TcpState


def tcp_model_timeout(boundary: int, rto_base: float) -> float:
    """Linux: tcp_model_timeout()."""
    thresh = int(TCP_RTO_MAX / rto_base).bit_length() - 1   # ilog2(TCP_RTO_MAX / rto_base)
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * TCP_RTO_MAX


def retransmits_timed_out(net: "Net", sk: "Sock", boundary: int) -> bool:
    """Linux: retransmits_timed_out() (no TCP_USER_TIMEOUT)."""
    if not sk.retransmits:
        return False
    timeout = tcp_model_timeout(boundary, TCP_TIMEOUT_INIT)
    return net.now() - sk.retrans_stamp - timeout >= -1e-9


def tcp_write_timeout(net: "Net", sk: "Sock") -> bool:
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
        tcp_connect_failed(net, sk)
    return expired


def tcp_retransmit_timer(net: "Net", sk: "Sock") -> None:
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
        inet_csk_reset_xmit_timer(net, sk, sk.rto)


def tcp_orphan_expire(net: "Net", sk: "Sock") -> None:
    """Linux: tcp_keepalive_timer() for an orphan in FIN_WAIT2: after tcp_fin_timeout it
    is reset and dies."""
    sk.timer = None
    if sk.state == S.TCP_FIN_WAIT2:
        tcp_send(net, sk, F.RST | F.ACK)
        net.count("OutRsts")
        tcp_done(net, sk)
