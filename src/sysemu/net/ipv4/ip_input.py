"""Local delivery of an IP packet on the loopback: raw sockets first, then the protocol.

Linux: net/ipv4/ip_input.c ip_local_deliver_finish() -> ip_protocol_deliver_rcu():
raw_local_deliver() gives every matching raw socket a copy, then the protocol's handler
(inet_protos[], filled by inet_add_protocol()) takes the packet; net/ipv6/ip6_input.c
ip6_protocol_deliver_rcu() the same for IPv6 (raw6_local_deliver(), inet6_protos[]).

sysemu: only ICMP and ICMPv6 packets travel this way (UDP and TCP have their own
loopback paths); the protocols register themselves here (icmp.py, raw.py) so the
senders (ping.py, raw.py, icmp.py) need not import the receivers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sysemu.net.core import Net

# Linux: inet_protos[] / inet6_protos[]: (v4, protocol) -> handler(net, skb)
INET_PROTOS: dict[tuple[bool, int], Callable] = {}
# Linux: raw_local_deliver() / raw6_local_deliver(): handler(net, skb, protocol) -> None
RAW_DELIVER: list[Callable] = []


def ip_local_deliver(net: "Net", skb, protocol: int) -> None:
    """Linux: ip_local_deliver_finish() / ip6_input_finish(): raw sockets see the packet,
    then its protocol handles it."""
    for deliver in RAW_DELIVER:
        deliver(net, skb, protocol)
    handler = INET_PROTOS.get((skb.v4, protocol))
    if handler is not None:
        handler(net, skb)
