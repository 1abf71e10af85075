"""TIME_WAIT sockets: their timer and their end.

Linux: net/ipv4/inet_timewait_sock.c (inet_twsk_schedule, inet_twsk_reschedule,
tw_timer_handler, inet_twsk_kill, inet_twsk_bind_unhash, inet_twsk_deschedule_put).

sysemu: Linux replaces a closing sock by a small inet_timewait_sock (tcp_time_wait());
sysemu keeps an orphan Sock itself in TCP_TIME_WAIT, with the tcp_timewait_sock fields
it needs (rcv_nxt, snd_nxt, ts_recent, ts_recent_stamp, tw_entry_stamp), and gives a
sock the program still holds a copy for it (inet_twsk_hashdance()). It holds its
4-tuple in ehash and its port in the bind bucket until it is killed here.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from sysemu.abi.inet import TcpState
from sysemu.kernel.wait import WaitQueue
from sysemu.net.core import SOCK_BINDPORT_LOCK

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock


def inet_twsk_hashdance(net: "Net", sk: "Sock") -> "Sock":
    """Linux: inet_twsk_alloc() + inet_twsk_hashdance_schedule() for a sock the program
    still holds (it shut down both ways, then both FINs were acknowledged): a timewait
    sock takes over its 4-tuple in ehash and joins its bind bucket, and tcp_time_wait()
    then tcp_done()s the sock itself, which the program sees as CLOSE.
    sysemu: the timewait sock is a copy of the Sock (the tcp_timewait_sock fields are
    among its own), an orphan from the start."""
    tw = copy.copy(sk)
    tw.id = next(type(sk)._ids)
    tw.wait = WaitQueue(f"sock{tw.id}")
    tw.socket = tw.peer = tw.parent = tw.timer = tw.delack = None
    tw.dead = True
    hinfo = net.hashinfo
    key = hinfo.ehash_key(sk)
    tw.hashed = hinfo.ehash.get(key) is sk
    if tw.hashed:
        hinfo.ehash[key] = tw
        sk.hashed = False
    if sk.bind_bucket is not None:
        sk.bind_bucket.owners[tw] = None
    net.socks.add(tw)
    return tw


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
    (inet_twsk_bind_unhash(); the bucket is freed when empty), and freed. (A timewait
    sock is always an orphan: a sock the program holds hands TIME_WAIT to a copy,
    inet_twsk_hashdance().)"""
    if tw.state != TcpState.TCP_TIME_WAIT:
        return
    hinfo = net.hashinfo
    hinfo.unhash(tw)
    tw.state = TcpState.TCP_CLOSE
    if tw.bind_bucket is not None and (tw.dead or not tw.userlocks & SOCK_BINDPORT_LOCK):
        hinfo.put_port(tw)
    if tw.dead:
        net.sk_free(tw)
