"""IPv6 address classes. Linux: net/ipv6/addrconf_core.c, include/net/ipv6.h."""
from __future__ import annotations

from sysemu.abi.inet import IN6ADDR_ANY, IN6ADDR_LOOPBACK, V4MAPPED_PREFIX

# Linux: include/net/ipv6.h LOOPBACK4_IPV6, the IPv4 side of a socket bound to an IPv6
# address (127.0.0.6)
LOOPBACK4_IPV6 = bytes([127, 0, 0, 6])

# ipv6_addr_type() classes sysemu distinguishes
IPV6_ADDR_ANY = "any"
IPV6_ADDR_MAPPED = "mapped"
IPV6_ADDR_LOOPBACK = "loopback"
IPV6_ADDR_MULTICAST = "multicast"
IPV6_ADDR_LINKLOCAL = "linklocal"
IPV6_ADDR_UNICAST = "unicast"


def ipv6_addr_type(addr: bytes) -> str:
    """Linux: net/ipv6/addrconf_core.c __ipv6_addr_type(), reduced to the classes used."""
    if addr == IN6ADDR_ANY:
        return IPV6_ADDR_ANY
    if addr[:12] == V4MAPPED_PREFIX:
        return IPV6_ADDR_MAPPED
    if addr == IN6ADDR_LOOPBACK:
        return IPV6_ADDR_LOOPBACK
    if addr[0] == 0xFF:
        return IPV6_ADDR_MULTICAST
    if addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80:
        return IPV6_ADDR_LINKLOCAL
    return IPV6_ADDR_UNICAST
