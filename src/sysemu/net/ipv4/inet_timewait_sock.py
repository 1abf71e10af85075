"""TIME_WAIT sockets: their timer and their end.

Linux: net/ipv4/inet_timewait_sock.c (inet_twsk_schedule, inet_twsk_reschedule,
tw_timer_handler, inet_twsk_kill, inet_twsk_bind_unhash, inet_twsk_deschedule_put).

sysemu: Linux replaces a closing sock by a small inet_timewait_sock (tcp_time_wait());
sysemu keeps the Sock itself in TCP_TIME_WAIT, with the tcp_timewait_sock fields it
needs (rcv_nxt, snd_nxt, ts_recent, ts_recent_stamp, tw_entry_stamp). It holds its
4-tuple in ehash and its port in the bind bucket until it is killed here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.inet import TcpState
from sysemu.net.core import SOCK_BINDPORT_LOCK

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock


def inet_twsk_schedule(net: "Net", tw: "Sock", timeo: float) -> None:
    """Linux: inet_twsk_schedule() (rearm false): the timer that ends TIME_WAIT; TW
    counts it (TWKilled for a short one, at most 4 s)."""
    net.count("TWKilled" if timeo <= 4.0 else "TW")
    inet_twsk_reschedule(net, tw, timeo)


def inet_twsk_reschedule(net: "Net", tw: "Sock", timeo: float) -> None:
    """Linux: inet_twsk_reschedule(): TIME_WAIT ends `timeo` seconds from now."""
    if tw.timer is not None:
        tw.timer.cancel()
    tw.timer = net.add_timer(timeo, lambda now, tw=tw: tw_timer_handler(net, tw))


def tw_timer_handler(net: "Net", tw: "Sock") -> None:
    """Linux: tw_timer_handler(): TIME_WAIT is over."""
    tw.timer = None
    inet_twsk_kill(net, tw)


def inet_twsk_deschedule_put(net: "Net", tw: "Sock") -> None:
    """Linux: inet_twsk_deschedule_put(): end TIME_WAIT now (a RST, a new SYN taken by
    the listener, or a connect() that reuses the 4-tuple)."""
    if tw.timer is not None:
        tw.timer.cancel()
        tw.timer = None
    inet_twsk_kill(net, tw)


def inet_twsk_kill(net: "Net", tw: "Sock") -> None:
    """Linux: inet_twsk_kill(): out of ehash, out of the bind bucket
    (inet_twsk_bind_unhash(); the bucket is freed when empty), and freed.
    sysemu: a TIME_WAIT Sock the program still holds (it shut down both ways before
    close) becomes CLOSE and keeps a port bind() fixed, as Linux's sock does once
    tcp_time_wait() handed the 4-tuple to the timewait sock."""
    if tw.state != TcpState.TCP_TIME_WAIT:
        return
    hinfo = net.hashinfo
    hinfo.unhash(tw)
    tw.state = TcpState.TCP_CLOSE
    if tw.bind_bucket is not None and (tw.dead or not tw.userlocks & SOCK_BINDPORT_LOCK):
        hinfo.put_port(tw)
    if tw.dead:
        net.sk_free(tw)
