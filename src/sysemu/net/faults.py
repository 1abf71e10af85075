"""Network faults for `sysemu run --fault SPEC` (pure: parsing and decisions).

Grammar: KIND:key=value[:key=value...]

    syn-drop:port=P:count=N     drop the first N SYNs sent to port P (the client retransmits)
    refuse:port=P               answer every SYN to port P with RST: connect() fails with
                                ECONNREFUSED even though a listener exists
    rst-after:port=P:bytes=N    once N bytes have gone from client to server on a connection
                                to port P, reset it: both programs see ECONNRESET (the Pump
                                does it: host/pump.py)
    latency:port=P:ms=N         delay each segment of port P by N ms each way (the handshake
                                here; the data chunks in the Pump)

The data faults act on every TCP segment the model sends (with :port=P, only those of
connections on port P), as netem on a link would; under `--datapath model` those carry
the bytes, in the native data path only the handshake and the close:

    loss:pct=X[:port=P]         drop X percent of the segments (X may have decimals)
    duplicate:pct=X[:port=P]    deliver X percent of them twice
    reorder:pct=X[:port=P][:ms=N]   hold X percent back by N ms (default 10), so the
                                segments sent after them overtake them
    corrupt:pct=X[:port=P]      flip one bit of X percent of them: the receiver's checksum
                                check drops them (InCsumErrors, InErrs)
    bandwidth:kbit=N[:port=P]   a link of N kbit/s: each segment takes its size (with
                                40 bytes of headers) at that rate, one after another in
                                each direction

The random draws come from the sandbox's random source (`--seed N` repeats them).

A FaultSet decides; the network applies the decision: `install(net)` makes it the net's
`drop` predicate (chaining one already there). Segments keep their place on net.wire (a
capture shows them, as tcpdump on lo shows what was sent).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sysemu.abi.inet import TcpFlags
from sysemu.abi.limits import U32_MAX
from sysemu.net.core import Segment
from sysemu.net.ipv4.tcp_ipv4 import tcp_v4_send_reset

KINDS = {
    "syn-drop": ("port", "count"),
    "refuse": ("port",),
    "rst-after": ("port", "bytes"),
    "latency": ("port", "ms"),
    "loss": ("pct", "port"),
    "duplicate": ("pct", "port"),
    "reorder": ("pct", "port", "ms"),
    "corrupt": ("pct", "port"),
    "bandwidth": ("kbit", "port"),
}
# keys a spec may leave out, with their value (port 0: every port)
OPTIONAL = {"syn-drop": {"count": 1}, "loss": {"port": 0}, "duplicate": {"port": 0},
            "reorder": {"port": 0, "ms": 10}, "corrupt": {"port": 0},
            "bandwidth": {"port": 0}}
DATA_KINDS = ("loss", "duplicate", "reorder", "corrupt", "bandwidth")
# header bytes a segment takes on the link besides its payload (IPv4 + TCP, no options)
LINK_HEADER = 40


class FaultSpecError(ValueError):
    """A --fault SPEC that does not parse (the message says why)."""


@dataclass
class Fault:
    kind: str
    port: int
    count: int = 0      # syn-drop: how many SYNs to drop
    bytes: int = 0      # rst-after: client->server bytes before the reset
    ms: int = 0         # latency: one-way delay; reorder: how long a segment is held
    used: int = 0       # syn-drop: SYNs dropped so far
    pct: float = 0.0    # loss, duplicate, reorder, corrupt: percent of the segments
    kbit: int = 0       # bandwidth: the link's rate

    def spec(self) -> str:
        keys = KINDS[self.kind]
        return ":".join([self.kind] + [f"{k}={getattr(self, k):g}" for k in keys])

    def matches(self, seg: Segment) -> bool:
        """A data fault's segments: every one, or those of connections on its port."""
        return not self.port or self.port in (seg.sport, seg.dport)


def parse_fault(text: str) -> Fault:
    """One --fault SPEC -> Fault, or FaultSpecError."""
    kind, *parts = text.strip().split(":")
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault {kind!r} (one of {', '.join(KINDS)})")
    values: dict[str, int] = dict(OPTIONAL.get(kind, {}))
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise FaultSpecError(f"{text!r}: expected key=value, got {part!r}")
        if key not in KINDS[kind]:
            raise FaultSpecError(f"{text!r}: {kind} takes {', '.join(KINDS[kind])}, not {key!r}")
        try:
            number = float(value) if key == "pct" else int(value, 10)
        except ValueError:
            kind_of = "a number" if key == "pct" else "an integer"
            raise FaultSpecError(f"{text!r}: {key} must be {kind_of}, got {value!r}") from None
        if number < 0 or (key == "port" and not 0 < number < 65536) \
                or (key == "pct" and not number <= 100) or (key == "kbit" and not number):
            raise FaultSpecError(f"{text!r}: {key}={value} is out of range")
        values[key] = number
    missing = [k for k in KINDS[kind] if k not in values]
    if missing:
        raise FaultSpecError(f"{text!r}: missing {', '.join(missing)}")
    return Fault(kind, **values)


def _is_syn(seg: Segment) -> bool:
    return bool(seg.flags & TcpFlags.SYN) and not seg.flags & TcpFlags.ACK


@dataclass
class FaultSet:
    """The faults of one sandbox, and the decisions they make."""
    faults: list[Fault] = field(default_factory=list)
    # bandwidth: when each (fault, direction of a connection) link is free again
    link_free: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: list[str]) -> "FaultSet":
        return cls([parse_fault(s) for s in specs])

    def __bool__(self) -> bool:
        return bool(self.faults)

    def _of(self, kind: str, port: int) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.port == port:
                return fault
        return None

    # -- decisions on segments ---------------------------------------------------------
    def verdict(self, seg: Segment) -> str:
        """What happens to a segment: "pass", "drop", "refuse" (drop it and answer RST) or
        "delay" (deliver it after latency_of(...) seconds). Counts the SYNs it drops."""
        if _is_syn(seg):
            if self._of("refuse", seg.dport) is not None:
                return "refuse"
            fault = self._of("syn-drop", seg.dport)
            if fault is not None and fault.used < fault.count:
                fault.used += 1
                return "drop"
        if self.latency(seg.sport) or self.latency(seg.dport):
            return "delay"
        return "pass"

    def latency(self, port: int) -> float:
        """One-way delay in seconds for segments and data of connections on `port`."""
        fault = self._of("latency", port)
        return fault.ms / 1000.0 if fault is not None else 0.0

    def rst_after(self, port: int) -> int | None:
        """Client->server bytes after which a connection to `port` is reset (None: never)."""
        fault = self._of("rst-after", port)
        return fault.bytes if fault is not None else None

    # -- applying them to a Net --------------------------------------------------------
    def install(self, net) -> None:
        """Make these faults the net's drop predicate (after any predicate already set)."""
        previous = net.drop

        def drop(seg: Segment) -> bool:
            if previous is not None and previous(seg):
                return True
            return self.apply(net, seg)

        net.drop = drop

    def data_faults(self, seg: Segment) -> list[Fault]:
        return [f for f in self.faults if f.kind in DATA_KINDS and f.matches(seg)]

    def apply(self, net, seg: Segment) -> bool:
        """Carry out the verdict on `net`; True when the segment must not be delivered now
        (it was dropped, or is delivered later or changed by this function)."""
        verdict = self.verdict(seg)
        if verdict == "drop":
            return True
        if verdict == "refuse":
            # Linux: tcp_v4_send_reset(), as if no listener had the port.
            tcp_v4_send_reset(net, seg)
            return True
        delay = 0.0
        if verdict == "delay":
            # sysemu: Net has one link_delay for all ports; a per-port delay re-delivers
            # the segment from a timer (Net._deliver is the receive half of transmit()).
            delay = max(self.latency(seg.sport), self.latency(seg.dport))
        copies = 1
        changed = False
        rng = net.kernel.rng
        for fault in self.data_faults(seg):
            kind = fault.kind
            if kind == "bandwidth":
                key = (id(fault), seg.sport, seg.dport)
                start = max(net.now(), self.link_free.get(key, 0.0))
                free = start + (seg.length + LINK_HEADER) * 8 / (fault.kbit * 1000.0)
                self.link_free[key] = free
                delay += free - net.now()
            elif rng.random() * 100 >= fault.pct:
                continue
            elif kind == "loss":
                return True
            elif kind == "duplicate":
                copies += 1
            elif kind == "reorder":
                delay += fault.ms / 1000.0
            elif kind == "corrupt":
                seg = corrupt_segment(seg, rng)
                changed = True
        if verdict == "pass" and not delay and copies == 1 and not changed:
            return False
        for _ in range(copies):
            if delay > 0:
                net.add_hrtimer(delay, lambda now, seg=seg: net._deliver(seg))
            else:
                net._deliver(seg)
        return True


def corrupt_segment(seg: Segment, rng) -> Segment:
    """A copy of `seg` with one bit of its payload flipped (a bare segment keeps its
    bytes), marked so the receiver's checksum check fails (sysemu: segments carry no
    checksum field; the capture shows the segment as it was sent)."""
    payload = seg.payload
    if payload:
        i = rng.randrange(len(payload))
        payload = payload[:i] + bytes([payload[i] ^ (1 << rng.randrange(8))]) + payload[i + 1:]
    return dataclasses.replace(seg, payload=payload, csum_bad=True)


def reset_connection(net, a, b) -> None:
    """Abort the connection between Socks `a` and `b` from the middle, as a middlebox would:
    each end receives a RST (shown on net.wire) and its state machine goes to CLOSE with
    ECONNRESET (Linux: tcp_reset())."""
    segments = [Segment(src.wire_local(), src.num, src.wire_remote(), src.dport,
                        dst.rcv_nxt & U32_MAX, 0, TcpFlags.RST)
                for src, dst in ((a, b), (b, a)) if src is not None and dst is not None
                and src.dport]
    for seg in segments:        # built first: the first RST unhashes its receiver
        net.transmit(seg)
