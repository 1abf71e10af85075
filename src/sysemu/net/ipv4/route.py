"""Routing in a namespace whose only interface is lo.

Linux: net/ipv4/fib_frontend.c (inet_addr_type), include/net/route.h
(ip_route_connect).
"""
from __future__ import annotations

from sysemu.abi.errno import Errno
from sysemu.kernel.errors import SyscallError

LOOPBACK_IFINDEX = 1
INADDR_LOOPBACK = b"\x7f\0\0\x01"

# Linux: inet_addr_type() results for the loopback-only namespace
RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST = 1, 2, 3, 5


def inet_addr_type(addr: bytes) -> int:
    """Linux: inet_addr_type_table() over the local table of a namespace with only lo:
    127.0.0.0/8 is local (127.255.255.255 broadcast), 224/4 multicast,
    255.255.255.255 broadcast, anything else has no local route (unicast)."""
    if addr[0] == 127:
        return RTN_BROADCAST if addr == b"\x7f\xff\xff\xff" else RTN_LOCAL
    if addr == b"\xff\xff\xff\xff":
        return RTN_BROADCAST
    if addr[0] >> 4 == 14:
        return RTN_MULTICAST
    return RTN_UNICAST


def ip_route_connect(daddr: bytes) -> bytes:
    """Linux: ip_route_connect() in the loopback namespace: the source address, or
    ENETUNREACH (no route; multicast and broadcast refused for TCP)."""
    if inet_addr_type(daddr) != RTN_LOCAL:
        raise SyscallError(Errno.ENETUNREACH)
    return INADDR_LOOPBACK
