"""Connections that cross the sandbox's edge on purpose: published ports and allowed
host services (`sysemu run --publish`, `--allow-egress`), the model's half.

Linux has no one file for this; the two halves behave as a host's netfilter would:

- **Published port** (in): a host client's connection to HOST_PORT arrives at the
  sandbox as a connection to 127.0.0.1:SANDBOX_PORT from the host client's own address
  and port, as a DNAT rule shows it to the server (net/netfilter/nf_nat_core.c: the
  source is kept). `forward_connect()` makes that client: an active open (tcp_connect()),
  so it meets the SYN queue, the accept queue, backlog drops and SYN retries like any
  client; no listener answers it with a RST (ECONNREFUSED in sk_err).
- **Allowed host service** (out): a SYN to an allowed address that no socket inside
  owns is queued to user space, as an NFQUEUE rule does (net/netfilter/
  nfnetlink_queue.c), instead of being answered with a RST. The host then connects to
  the real service and gives its verdict: `EgressGate.accept()` re-injects the SYN to a
  listener that stands for the service (the handshake completes, the child is the
  service's end of the connection), `refuse()` answers it with the RST the host got
  (ECONNREFUSED), `fail(errno)` ends the connect with the error the host saw, as an
  ICMP error does in SYN_SENT (tcp_ipv4.py tcp_v4_err()).

sysemu: neither end made here is a program's: they hold no port in the bind table (a
DNAT'd or proxied connection owns no port of the namespace it reaches), only their
4-tuple in the established hash, so a program inside can still bind and listen on
those ports (and a listener inside wins over an allowed host service).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sysemu.abi.errno import Errno
from sysemu.abi.inet import INADDR_ANY, IPPROTO_TCP, TcpStates
from sysemu.abi.socket import AF_INET
from sysemu.kernel.errors import SyscallError
from sysemu.net.core import Sock, mapped
from sysemu.net.ipv4.inet_hashtables import InetBindBucket, inet_get_local_port_range
from sysemu.net.ipv4.request_sock import RequestSockQueue, reqsk_queue_remove
from sysemu.net.ipv4.tcp_ipv4 import (tcp_v4_do_rcv, tcp_v4_err, tcp_v4_init_sock,
                                      tcp_v4_send_reset)
from sysemu.net.ipv4.tcp_output import tcp_connect

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment

S = TcpStates
Key = tuple[bytes, int, bytes, int]         # (saddr, sport, daddr, dport), wire form


def forward_connect(net: "Net", saddr: bytes, sport: int, daddr: bytes, dport: int) -> Sock:
    """A connection from outside arriving at daddr:dport (4-byte IPv4 addresses) from
    saddr:sport: the client's Sock, its SYN sent (with no link delay the answer is in
    already: look at its state first). Its wait queue wakes when it is established
    (ESTABLISHED, `peer` the server's child once linked) or failed (CLOSE, sk_err).
    The caller holds it as a program holds a file: net.release(sk) when done."""
    sk = Sock(net, AF_INET, IPPROTO_TCP)
    tcp_v4_init_sock(sk)
    sk.rcv_saddr, sk.daddr, sk.dport = saddr, daddr, dport
    sk.num = sport if sport and _tuple_free(net, sk, sport) else _nat_port(net, sk)
    net.hashinfo.ehash_insert(sk)
    net.socks.add(sk)
    tcp_connect(net, sk)
    return sk


def _tuple_free(net: "Net", sk: Sock, port: int) -> bool:
    """Neither end of sk's 4-tuple with local port `port` is in use inside: not the
    client's (a socket inside connected from that port), nor the server's (its end of an
    earlier connection, in TIME_WAIT: the host lets a client reuse its port at once, its
    own TIME_WAIT being on sysemu's side of the host connection)."""
    local, remote = sk.wire_local(), sk.wire_remote()
    ehash = net.hashinfo.ehash
    return (local, port, remote, sk.dport) not in ehash and \
        (remote, sk.dport, local, port) not in ehash


def _nat_port(net: "Net", sk: Sock) -> int:
    """Another source port when the host client's clashes, as NAT picks one (Linux:
    nf_nat_used_tuple() then a search of the range): from ip_local_port_range, without
    a bind bucket (a NAT'd connection owns no port of the namespace). EADDRNOTAVAIL if
    none is free."""
    low, high = inet_get_local_port_range(net)
    size = high - low + 1
    offset = net.kernel.rng.randrange(size)
    for i in range(size):
        port = low + (offset + i) % size
        if _tuple_free(net, sk, port):
            return port
    raise SyscallError(Errno.EADDRNOTAVAIL)


class EgressGate:
    """The allowed host services of one Net, and the SYNs queued to the host for them.

    `allowed` holds (addr, port) pairs, addr 4 bytes (IPv4). `on_syn(key, addr, port)` is
    told of each new connection attempt (key: the SYN's 4-tuple); the host answers with
    accept(key), refuse(key) or fail(key, errno). A repeated SYN of a queued attempt
    (the client's retransmission) is swallowed. `on_child(key, child)` gets the
    service's end of the connection once the handshake is done (out of its listener's
    accept queue at once: nobody else accepts it)."""

    def __init__(self, net: "Net", allowed, on_syn: Callable[[Key, bytes, int], None],
                 on_child: Callable[[Key, Sock], None]):
        self.net = net
        self.on_syn = on_syn
        self.on_child = on_child
        self.pending: dict[Key, "Segment"] = {}
        self.listeners: dict[tuple[bytes, int], Sock] = {}
        for addr, port in allowed:
            self.listeners[(mapped(addr), port)] = self._listener(addr, port)
        net.nf_queue = self.queue

    def _listener(self, addr: bytes, port: int) -> Sock:
        """The listener standing for a host service: never hashed (no SYN finds it but
        those the host accepted), owning a bind bucket of its own (no port inside)."""
        sk = Sock(self.net, AF_INET, IPPROTO_TCP)
        tcp_v4_init_sock(sk)
        sk.rcv_saddr = addr if addr != INADDR_ANY else sk.rcv_saddr
        sk.accept_queue = RequestSockQueue()
        sk.max_ack_backlog = int(self.net.sysctl("net.core.somaxconn"))
        sk.state = S.TCP_LISTEN
        tb = InetBindBucket(port)
        tb.owners[sk] = None
        sk.bind_bucket, sk.num = tb, port
        sk.wait.add(lambda sk=sk: self._queued(sk))
        return sk

    def queue(self, seg: "Segment") -> bool:
        """Net.nf_queue: True if `seg` (a SYN no socket inside owns) is the gate's."""
        if (seg.daddr, seg.dport) not in self.listeners:
            return False
        key = (seg.saddr, seg.sport, seg.daddr, seg.dport)
        if key not in self.pending:
            self.pending[key] = seg
            self.on_syn(key, seg.daddr[12:], seg.dport)
        return True

    def accept(self, key: Key) -> bool:
        """The host reached the service: the SYN goes on to the service's listener.
        False if the client is no longer waiting for it (closed, or gave up)."""
        seg = self.pending.pop(key, None)
        if seg is None:
            return False
        sk = self.net.hashinfo.lookup_established(seg.saddr, seg.sport, seg.daddr, seg.dport)
        if not isinstance(sk, Sock) or sk.state != S.TCP_SYN_SENT:
            return False
        tcp_v4_do_rcv(self.net, self.listeners[(seg.daddr, seg.dport)], seg)
        return True

    def refuse(self, key: Key) -> None:
        """The service refused (the host got a RST): so does the gate."""
        seg = self.pending.pop(key, None)
        if seg is not None:
            tcp_v4_send_reset(self.net, seg)

    def fail(self, key: Key, err: int) -> None:
        """The host's connect failed otherwise (ETIMEDOUT, EHOSTUNREACH ...)."""
        seg = self.pending.pop(key, None)
        if seg is None:
            return
        sk = self.net.hashinfo.lookup_established(seg.saddr, seg.sport, seg.daddr, seg.dport)
        if isinstance(sk, Sock):
            tcp_v4_err(self.net, sk, err or Errno.ETIMEDOUT)

    def _queued(self, listener: Sock) -> None:
        listener.wait.add(lambda sk=listener: self._queued(sk))
        while True:
            req = reqsk_queue_remove(listener)
            if req is None:
                return
            child = req.sk
            key = (req.rmt_addr, req.rmt_port, req.loc_addr, req.loc_port)
            self.on_child(key, child)

    def forget(self, key: Key) -> None:
        """The client gave up (or the sandbox ends): drop its queued SYN, if any."""
        self.pending.pop(key, None)

