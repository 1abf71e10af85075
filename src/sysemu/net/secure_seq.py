"""Keyed hashes of a connection's addresses: initial sequence numbers, timestamp offsets
and the ephemeral port offset.

Linux: net/core/secure_seq.c (secure_tcp_seq, secure_tcpv6_seq, secure_tcp_ts_off,
secure_tcpv6_ts_off, secure_ipv4_port_ephemeral, secure_ipv6_port_ephemeral, seq_scale).

Linux keys siphash with two boot-time random secrets (net_secret, ts_secret). sysemu keeps
them per sandbox in `NetSecret`, drawn once from the kernel's injected random source: a
run is random by default and reproducible with `sysemu run --seed N`.
"""
from __future__ import annotations

# sysemu: the keyed hash is BLAKE2b (hashlib's keyed mode, truncated to 32 or 64 bits)
# where Linux uses siphash (not in the stdlib); what matters is that it is keyed and
# per sandbox: ports and sequence numbers are unpredictable from outside and equal for
# equal seeds. IPv4 (and v4-mapped, which tcp_v6_connect() hands to tcp_v4_connect())
# hashes 4-byte addresses, IPv6 16-byte ones, as Linux's two variants do.

from hashlib import blake2b
from typing import Protocol

from sysemu.abi.inet import V4MAPPED_PREFIX
from sysemu.abi.limits import HZ, U32_MAX

# Linux: secure_seq.c EPHEMERAL_PORT_SHUFFLE_PERIOD (10 * HZ): the port offset of a
# destination changes every 10 s.
EPHEMERAL_PORT_SHUFFLE_PERIOD = 10 * HZ


class NetSecret:
    """Linux: net_secret and ts_secret (siphash keys filled by net_get_random_once()):
    16 random bytes each, from `rng` (the kernel's random source)."""

    __slots__ = ("net_secret", "ts_secret")

    def __init__(self, rng):
        self.net_secret = rng.getrandbits(128).to_bytes(16, "little")
        self.ts_secret = rng.getrandbits(128).to_bytes(16, "little")


class Net(Protocol):
    """What the hashes need of sysemu.net.core.Net (which holds a NetSecret)."""
    secret: NetSecret

    def uptime(self) -> float: ...


def _keyed(key: bytes, data: bytes, size: int) -> int:
    return int.from_bytes(blake2b(data, key=key, digest_size=size).digest(), "little")


def _addr(wire: bytes) -> bytes:
    """The address as the hash of its family sees it (4 bytes for IPv4 and v4-mapped)."""
    return wire[12:] if wire[:12] == V4MAPPED_PREFIX else wire


def seq_scale(seq: int, uptime: float) -> int:
    """Linux: seq_scale(): the hash plus the clock in 64 ns units (a u32 period of 274 s),
    so a later connection of the same 4-tuple starts above an earlier one.
    sysemu: the clock is the sandbox's time since it started (Net.uptime()) where Linux
    reads the real-time clock, so that a seeded run starts from the same point."""
    return (seq + (int(uptime * 1e9) >> 6)) & U32_MAX


def secure_tcp_seq(net: "Net", saddr: bytes, daddr: bytes, sport: int, dport: int) -> int:
    """Linux: secure_tcp_seq() / secure_tcpv6_seq(): the ISN of the connection
    saddr:sport -> daddr:dport (wire addresses), now."""
    data = _addr(saddr) + _addr(daddr) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return seq_scale(_keyed(net.secret.net_secret, data, 4), net.uptime())


def secure_tcp_ts_off(net: "Net", saddr: bytes, daddr: bytes) -> int:
    """Linux: secure_tcp_ts_off() / secure_tcpv6_ts_off(): the offset added to a
    connection's TCP timestamps (tsval = clock in ms + offset). The caller checks
    net.ipv4.tcp_timestamps == 1 (else 0)."""
    return _keyed(net.secret.ts_secret, _addr(saddr) + _addr(daddr), 4)


def secure_port_ephemeral(net: "Net", saddr: bytes, daddr: bytes, dport: int) -> int:
    """Linux: secure_ipv4_port_ephemeral() / secure_ipv6_port_ephemeral(): a 64-bit hash
    of the source, the destination and the time in 10 s periods (jiffies since the
    sandbox started). __inet_hash_connect() takes the perturbation table index from the
    low bits and the offset from the high."""
    timeseed = int(net.uptime() * HZ) // EPHEMERAL_PORT_SHUFFLE_PERIOD
    data = (_addr(saddr) + _addr(daddr) + (timeseed & U32_MAX).to_bytes(4, "little")
            + dport.to_bytes(2, "big"))
    return _keyed(net.secret.net_secret, data, 8)
