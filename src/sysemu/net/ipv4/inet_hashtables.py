"""The TCP tables: bind buckets (port -> owners), the established hash and listeners,
and the port a connect() takes.

Linux: net/ipv4/inet_hashtables.c, include/net/inet_hashtables.h.

Every lookup a connection makes is a dict access keyed as Linux hashes (bhash by port,
ehash by 4-tuple, listeners by port), and a bucket forgets an owner in O(1): the cost of
a connect, an accept or the end of a TIME_WAIT does not grow with the sandbox's history.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sysemu.abi.errno import Errno
from sysemu.abi.inet import IN6ADDR_ANY, INADDR_ANY, V4MAPPED_PREFIX, TcpState
from sysemu.abi.limits import U32_MAX
from sysemu.abi.socket import AF_INET6
from sysemu.kernel.errors import SyscallError
from sysemu.net.ipv4.inet_timewait_sock import inet_twsk_deschedule_put
from sysemu.net.secure_seq import secure_port_ephemeral

if TYPE_CHECKING:
    from sysemu.net.core import Net, Sock


class InetBindBucket:
    """Linux: struct inet_bind_bucket: one local port and the socks that own it
    (bound, listening, connected and TIME_WAIT), in the order they came (a dict used as
    an ordered set: leaving is O(1)). fastreuse is -1 for buckets connect() made
    (inet_bind_bucket_create from __inet_hash_connect), else 0/1."""

    __slots__ = ("port", "owners", "fastreuse", "fastreuseport")

    def __init__(self, port: int):
        self.port = port
        self.owners: dict[Sock, None] = {}
        self.fastreuse = 0
        self.fastreuseport = 0


class InetHashInfo:
    """Linux: struct inet_hashinfo (tcp_hashinfo) of one net namespace, and the
    table_perturb array of __inet_hash_connect() (sparse: index -> value)."""

    def __init__(self):
        self.bhash: dict[int, InetBindBucket] = {}
        self.ehash: dict[tuple[bytes, int, bytes, int], Sock] = {}
        self.listening: dict[int, list[Sock]] = {}
        self.table_perturb: dict[int, int] = {}

    # Linux: inet_bind_hash()
    def bind_hash(self, sk: "Sock", tb: InetBindBucket, port: int) -> None:
        sk.num = port
        tb.owners[sk] = None
        sk.bind_bucket = tb

    def bucket(self, port: int, create: bool = False) -> InetBindBucket | None:
        tb = self.bhash.get(port)
        if tb is None and create:
            tb = self.bhash[port] = InetBindBucket(port)
        return tb

    def put_port(self, sk: "Sock") -> None:
        """Linux: inet_put_port(): leave the bind bucket; free it when empty."""
        tb = sk.bind_bucket
        if tb is None:
            return
        sk.bind_bucket = None
        sk.num = 0
        tb.owners.pop(sk, None)
        if not tb.owners and self.bhash.get(tb.port) is tb:
            del self.bhash[tb.port]

    def ehash_key(self, sk: "Sock") -> tuple[bytes, int, bytes, int]:
        return (sk.wire_local(), sk.num, sk.wire_remote(), sk.dport)

    def ehash_insert(self, sk: "Sock") -> bool:
        """Linux: inet_ehash_insert() with found_dup_sk: False if the 4-tuple is taken."""
        key = self.ehash_key(sk)
        if key in self.ehash:
            return False
        self.ehash[key] = sk
        sk.hashed = True
        return True

    def unhash(self, sk: "Sock") -> None:
        """Linux: inet_unhash(): leave ehash or the listening hash."""
        if sk.hashed:
            key = self.ehash_key(sk)
            if self.ehash.get(key) is sk:
                del self.ehash[key]
            sk.hashed = False
        listeners = self.listening.get(sk.num)
        if listeners and sk in listeners:
            listeners.remove(sk)
            if not listeners:
                del self.listening[sk.num]

    def hash_listener(self, sk: "Sock") -> None:
        """Linux: __inet_hash() for TCP_LISTEN (v6 reuseport socks go to the tail)."""
        self.listening.setdefault(sk.num, []).append(sk)

    def lookup_established(self, daddr: bytes, dport: int, saddr: bytes, sport: int):
        return self.ehash.get((daddr, dport, saddr, sport))

    def lookup_listener(self, daddr: bytes, dport: int, sport: int):
        """Linux: __inet_lookup_listener() / inet6_lookup_listener(): the best-scoring
        listener for a SYN to daddr:dport (exact address beats wildcard; an IPv4 packet
        reaches IPv6 wildcard listeners that are not v6only). Among a reuseport group the
        4-tuple picks one (sysemu: a deterministic hash of the source port)."""
        best, best_score, group = None, -1, []
        is_v4 = daddr[:12] == V4MAPPED_PREFIX
        for sk in self.listening.get(dport, ()):
            score = _listener_score(sk, daddr, is_v4)
            if score < 0:
                continue
            if score > best_score:
                best, best_score, group = sk, score, [sk]
            elif score == best_score and sk.reuseport and best.reuseport:
                group.append(sk)
        if len(group) > 1:
            best = group[(sport ^ (sport >> 3)) % len(group)]
        return best


def _listener_score(sk: "Sock", daddr: bytes, is_v4: bool) -> int:
    """Linux: compute_score() (inet_hashtables.c / inet6_hashtables.c), reduced."""
    if sk.family == AF_INET6:
        if is_v4:
            if sk.ipv6only:
                return -1
            if sk.v6_rcv_saddr == IN6ADDR_ANY:
                return 1
            return 3 if sk.v6_rcv_saddr == daddr else -1
        if sk.v6_rcv_saddr == IN6ADDR_ANY:
            return 2
        return 3 if sk.v6_rcv_saddr == daddr else -1
    if not is_v4:
        return -1
    if sk.rcv_saddr == INADDR_ANY:
        return 2
    return 3 if V4MAPPED_PREFIX + sk.rcv_saddr == daddr else -1


def inet_get_local_port_range(net: "Net") -> tuple[int, int]:
    """Linux: inet_connection_sock.c inet_sk_get_local_port_range() (no per-socket
    IP_LOCAL_PORT_RANGE); here, below both of its callers (bind(0) and connect())."""
    lo, hi = net.sysctl("net.ipv4.ip_local_port_range")
    return int(lo), int(hi)


# Linux: CONFIG_INET_TABLE_PERTURB_ORDER's default, 16.
INET_TABLE_PERTURB_SIZE = 1 << 16


def inet_sk_port_offset(net: "Net", sk: "Sock") -> int:
    """Linux: inet_sk_port_offset() (inet6_sk_port_offset() for IPv6): the keyed hash
    of source, destination and destination port."""
    return secure_port_ephemeral(net, sk.wire_local(), sk.wire_remote(), sk.dport)


def __inet_check_established(net: "Net", sk: "Sock", lport: int,
                             twp: bool) -> tuple[bool, "Sock | None"]:
    """Linux: __inet_check_established(): is the 4-tuple with local port `lport` free?
    A TIME_WAIT sock holding it may be taken over when the protocol says so
    (sk_prot->twsk_unique(): tcp_twsk_unique()); it is returned for the caller to end.
    `twp` is false for a sock that bound its port itself (Linux passes twp NULL)."""
    sk2 = net.hashinfo.ehash.get((sk.wire_local(), lport, sk.wire_remote(), sk.dport))
    if sk2 is None:
        return True, None
    if sk2.state == TcpState.TCP_TIME_WAIT and sk.sk_prot.twsk_unique(net, sk, sk2, twp):
        net.count("TWRecycled")
        return True, sk2
    return False, None


def inet_hash_connect(net: "Net", sk: "Sock") -> None:
    """Linux: inet_hash_connect() -> __inet_hash_connect(): give a connecting sock a local
    port whose 4-tuple is unique, and enter it in ehash. A bound sock keeps its port
    (EADDRNOTAVAIL if the 4-tuple is taken, unless a TIME_WAIT may be reused).

    RFC 6056 algorithm 4 (double-hash): the walk over the range starts at a keyed hash
    of the destination (inet_sk_port_offset()) plus a perturbation kept per hash bucket
    (table_perturb[]), which moves past each port taken: connects to one destination walk
    the range, and a port comes back only after the rest were used. The first pass tries
    ports of the range start's parity (bind(0) prefers the other one)."""
    hinfo = net.hashinfo
    if sk.num:
        unique, tw = __inet_check_established(net, sk, sk.num, False)
        if not unique:
            raise SyscallError(Errno.EADDRNOTAVAIL)
        if tw is not None:
            inet_twsk_deschedule_put(net, tw)
        hinfo.ehash_insert(sk)
        return
    port_offset = inet_sk_port_offset(net, sk)
    low, high = inet_get_local_port_range(net)
    step = 2
    high += 1
    remaining = high - low
    if remaining > 1:
        remaining &= ~1
    index = port_offset & (INET_TABLE_PERTURB_SIZE - 1)
    perturb = hinfo.table_perturb.get(index)
    if perturb is None:
        # sysemu: Linux fills the whole table with random bytes once
        # (get_random_sleepable_once()); sysemu draws an entry when first used.
        perturb = net.kernel.rng.getrandbits(32)
    offset = ((perturb + (port_offset >> 32)) & U32_MAX) % remaining
    offset &= ~1
    while True:
        port = low + offset
        for i in range(0, remaining, step):
            if port >= high:
                port -= remaining
            tb = hinfo.bhash.get(port)
            tw = None
            if tb is not None:
                if tb.fastreuse >= 0 or tb.fastreuseport >= 0:
                    port += step
                    continue
                unique, tw = __inet_check_established(net, sk, port, True)
                if not unique:
                    port += step
                    continue
            else:
                tb = hinfo.bucket(port, create=True)
                tb.fastreuse = -1
                tb.fastreuseport = -1
            # A little randomness in the next port: on low contention the next connect
            # to this destination may skip up to 7 ports.
            i = max(i, net.kernel.rng.randrange(8) * step)
            hinfo.table_perturb[index] = (perturb + i + step) & U32_MAX
            hinfo.bind_hash(sk, tb, port)
            if tw is not None:
                inet_twsk_deschedule_put(net, tw)
            hinfo.ehash_insert(sk)
            return
        offset += 1
        if not (offset & 1) or remaining <= 1:
            break
    raise SyscallError(Errno.EADDRNOTAVAIL)
