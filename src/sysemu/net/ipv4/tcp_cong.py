"""TCP congestion control: Reno, the window in segments.

Linux: net/ipv4/tcp_cong.c (tcp_slow_start, tcp_cong_avoid_ai, tcp_reno_cong_avoid,
tcp_reno_ssthresh, tcp_reno_undo_cwnd), include/net/tcp.h (tcp_in_slow_start,
tcp_is_cwnd_limited).
sysemu: Reno is the one algorithm (Linux's default is CUBIC, net.ipv4.
tcp_congestion_control; TCP_CONGESTION is not served): slow start doubles the window
per round trip up to ssthresh, then congestion avoidance adds one segment per window
acknowledged; a loss halves it (fast retransmit) or drops it to one (RTO).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sysemu.net.core import Sock


def tcp_in_slow_start(sk: "Sock") -> bool:
    """Linux: tcp_in_slow_start()."""
    return sk.snd_cwnd < sk.snd_ssthresh


def tcp_is_cwnd_limited(sk: "Sock") -> bool:
    """Linux: tcp_is_cwnd_limited(): did the window hold the sender back? (In slow start
    a window under twice what was in flight still grows, as Linux's max_packets_out
    test lets it.) A sender held back by the peer's window or the application does not
    grow its window."""
    if tcp_in_slow_start(sk):
        return sk.snd_cwnd < 2 * max(len(sk.rtx_q), 1) or sk.is_cwnd_limited
    return sk.is_cwnd_limited


def tcp_slow_start(sk: "Sock", acked: int) -> int:
    """Linux: tcp_slow_start(): one segment per segment acknowledged, up to ssthresh;
    returns what is left of `acked` for congestion avoidance."""
    cwnd = min(sk.snd_cwnd + acked, sk.snd_ssthresh)
    acked -= cwnd - sk.snd_cwnd
    sk.snd_cwnd = cwnd
    return acked


def tcp_cong_avoid_ai(sk: "Sock", w: int, acked: int) -> None:
    """Linux: tcp_cong_avoid_ai(): one segment more per `w` acknowledged."""
    if sk.snd_cwnd_cnt >= w:
        sk.snd_cwnd_cnt = 0
        sk.snd_cwnd += 1
    sk.snd_cwnd_cnt += acked
    if sk.snd_cwnd_cnt >= w:
        delta = sk.snd_cwnd_cnt // w
        sk.snd_cwnd_cnt -= delta * w
        sk.snd_cwnd += delta


def tcp_reno_cong_avoid(sk: "Sock", acked: int) -> None:
    """Linux: tcp_reno_cong_avoid(): grow only a window that limits the sender."""
    if not tcp_is_cwnd_limited(sk):
        return
    if tcp_in_slow_start(sk):
        acked = tcp_slow_start(sk, acked)
        if not acked:
            return
    tcp_cong_avoid_ai(sk, sk.snd_cwnd, acked)


def tcp_reno_ssthresh(sk: "Sock") -> int:
    """Linux: tcp_reno_ssthresh(): half the window, at least two segments."""
    return max(sk.snd_cwnd >> 1, 2)
