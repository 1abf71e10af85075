"""`sysemu run --pcap FILE`: the virtual wire as a capture file (libpcap format).

Every Segment the network transmits (net.wire) becomes an IPv4 or IPv6 packet with a TCP
header, link type LINKTYPE_RAW (101: the packet starts at the IP header, its version
nibble says 4 or 6), built with dpkt so lengths and checksums are the real ones.

Sequence numbers: the TCP model only moves control segments (SYN, FIN, RST, ACK), so its
sequence space advances by SYN and FIN alone. In pcap mode the Pump moves the data and
reports each chunk here (`data()`); the writer keeps, per direction of each 4-tuple, how
many data bytes went, and shifts the model's seq/ack by them, so the capture reads as one
consistent TCP conversation (handshake, data with PSH|ACK and the peer's ACK, FIN).
A chunk the Pump moved (up to its read size) is cut at the MSS of the loopback link, as
TCP would send it: no packet exceeds the IP length field, and a reader (tshark) reassembles
the stream with no gap.

sysemu: a FIN the model sends while the Pump still holds unsent bytes of that direction
(a shutdown() racing the data) appears before those bytes in the capture.
"""
from __future__ import annotations

import weakref
from typing import BinaryIO, Callable

import dpkt

from sysemu.abi.inet import V4MAPPED_PREFIX, TcpFlags
from sysemu.abi.limits import U32_MAX
from sysemu.net.core import Segment

LINKTYPE_RAW = 101
WINDOW = 65535
# Linux: the MSS of a loopback connection, from lo's MTU (65536) capped by the IPv4
# total-length field: 65535 - 20 (IPv4) - 20 (TCP); IPv6: 65536 - 40 - 20. The capture's
# segments carry no TCP options (no timestamps), so the MSS is all payload.
MSS_V4 = 65495
MSS_V6 = 65476
SNAPLEN = 262144

Flow = tuple[bytes, int, bytes, int]


def _flow(sk) -> Flow:
    return (sk.wire_local(), sk.num, sk.wire_remote(), sk.dport)


def _reverse(flow: Flow) -> Flow:
    return (flow[2], flow[3], flow[0], flow[1])


def build_packet(saddr: bytes, sport: int, daddr: bytes, dport: int, seq: int, ack: int,
                 flags: int, payload: bytes = b"") -> bytes:
    """One IPv4 (both addresses v4-mapped) or IPv6 packet carrying a TCP segment, with
    correct lengths and checksums."""
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & U32_MAX, ack=ack & U32_MAX,
                       flags=int(flags), win=WINDOW, data=payload)
    tcp.off = 5
    if saddr[:12] == V4MAPPED_PREFIX and daddr[:12] == V4MAPPED_PREFIX:
        ip = dpkt.ip.IP(src=saddr[12:], dst=daddr[12:], p=dpkt.ip.IP_PROTO_TCP, ttl=64,
                        data=tcp)
        ip.df = 1
        ip.len = 20 + len(tcp)
        return bytes(ip)
    ip6 = dpkt.ip6.IP6(src=saddr, dst=daddr, nxt=dpkt.ip.IP_PROTO_TCP, hlim=64, data=tcp)
    ip6.plen = len(bytes(tcp))
    ip6.v = 6
    return bytes(ip6)


def build_udp_packet(saddr: bytes, sport: int, daddr: bytes, dport: int, payload: bytes,
                     ttl: int = 64, tos: int = 0) -> bytes:
    """One IPv4 (v4-mapped addresses) or IPv6 packet carrying a UDP datagram, with
    correct lengths and checksums."""
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    if saddr[:12] == V4MAPPED_PREFIX and daddr[:12] == V4MAPPED_PREFIX:
        ip = dpkt.ip.IP(src=saddr[12:], dst=daddr[12:], p=dpkt.ip.IP_PROTO_UDP, ttl=ttl,
                        tos=tos, data=udp)
        ip.df = 1
        ip.len = 20 + udp.ulen
        return bytes(ip)
    ip6 = dpkt.ip6.IP6(src=saddr, dst=daddr, nxt=dpkt.ip.IP_PROTO_UDP, hlim=ttl, data=udp)
    ip6.plen = udp.ulen
    ip6.v = 6
    return bytes(ip6)


ICMP_QUOTE_V4 = 576 - 20 - 8        # Linux: icmp_send(): the reply fits in 576 bytes
ICMP_QUOTE_V6 = 1280 - 40 - 8       # IPV6_MIN_MTU


def build_port_unreachable(saddr: bytes, daddr: bytes, offending: bytes) -> bytes:
    """ICMP destination unreachable / port unreachable (IPv4: type 3 code 3; IPv6: type 1
    code 4) from saddr to daddr, quoting the offending packet."""
    if saddr[:12] == V4MAPPED_PREFIX:
        icmp = dpkt.icmp.ICMP(type=3, code=3,
                              data=dpkt.icmp.ICMP.Unreach(data=offending[:ICMP_QUOTE_V4]))
        ip = dpkt.ip.IP(src=saddr[12:], dst=daddr[12:], p=dpkt.ip.IP_PROTO_ICMP, ttl=64,
                        tos=0xC0, data=icmp)
        ip.len = 20 + len(bytes(icmp))
        return bytes(ip)
    icmp6 = dpkt.icmp6.ICMP6(type=1, code=4, data=dpkt.icmp6.ICMP6.Unreach(
        data=offending[:ICMP_QUOTE_V6]))
    ip6 = dpkt.ip6.IP6(src=saddr, dst=daddr, nxt=dpkt.ip.IP_PROTO_ICMP6, hlim=64, data=icmp6)
    ip6.plen = len(bytes(icmp6))
    ip6.v = 6
    # the ICMPv6 checksum covers a pseudo-header dpkt computes when packing IP6
    return bytes(ip6)


def build_icmp_packet(skb) -> bytes:
    """The IPv4 or IPv6 packet of an ICMP message as it went out (net/ipv4/icmp.py's
    IcmpSkb: the message carries its own checksum; the IPv4 id and DF bit are its)."""
    if skb.v4:
        ip = dpkt.ip.IP(src=skb.saddr[12:], dst=skb.daddr[12:], p=dpkt.ip.IP_PROTO_ICMP,
                        ttl=skb.ttl, tos=skb.tos, id=skb.ip_id, data=skb.data)
        ip.df = int(skb.df)
        ip.len = 20 + len(skb.data)
        return bytes(ip)
    ip6 = dpkt.ip6.IP6(src=skb.saddr, dst=skb.daddr, nxt=dpkt.ip.IP_PROTO_ICMP6,
                       hlim=skb.ttl, data=skb.data)
    ip6.plen = len(skb.data)
    ip6.v = 6
    return bytes(ip6)


class PcapWriter:
    """Writes the wire to `fileobj` (opened "wb"). `segment` is the net.wire hook; `data`
    is the Pump's callback. Times are `clock.now()` (the kernel's clock) + `time_offset`
    (the host passes wall time minus monotonic time, so captures show real dates)."""

    def __init__(self, fileobj: BinaryIO, clock=None, time_offset: float = 0.0):
        self._file = fileobj
        self._writer = dpkt.pcap.Writer(fileobj, snaplen=SNAPLEN, linktype=LINKTYPE_RAW)
        self._clock = clock
        self._offset = time_offset
        self._sent: dict[Flow, int] = {}     # data bytes sent per direction of a 4-tuple
        # Each sender's 4-tuple as first seen: the Pump may report its last bytes after
        # the program closed it and the model released it (its port is then 0).
        self._flows: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.packets = 0

    def _write(self, when: float, saddr: bytes, sport: int, daddr: bytes, dport: int,
               seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        pkt = build_packet(saddr, sport, daddr, dport, seq, ack, flags, payload)
        self._writer.writepkt(pkt, ts=when + self._offset)
        self._file.flush()      # the supervisor ends with _exit(): nothing may wait in a buffer
        self.packets += 1

    def segment(self, seg: Segment) -> None:
        """A segment of the TCP model (with its bytes in the model data path), shifted by
        the data bytes the Pump reported for its flow (none in the model data path)."""
        flow = (seg.saddr, seg.sport, seg.daddr, seg.dport)
        rev = _reverse(flow)
        if seg.flags & TcpFlags.SYN and not seg.flags & TcpFlags.ACK:
            self._sent.pop(flow, None)      # a new connection on this 4-tuple
            self._sent.pop(rev, None)
        seq = seg.seq + self._sent.get(flow, 0)
        ack = seg.ack + self._sent.get(rev, 0) if seg.flags & TcpFlags.ACK else seg.ack
        self._write(seg.time, seg.saddr, seg.sport, seg.daddr, seg.dport, seq, ack,
                    seg.flags, bytes(seg.payload))

    __call__ = segment

    def datagram(self, kind: str, skb) -> None:
        """The net.dgram_wire hook: a UDP datagram ("udp"), an ICMP/ICMPv6 message of
        ping, raw sockets or the echo answers ("icmpmsg"), or the ICMP/ICMPv6 port
        unreachable ("icmp") that answers a datagram (from its destination back to its sender,
        quoting what icmp_send() quotes: 576 bytes of IP for IPv4, 1280 for IPv6)."""
        when = self._clock.now() if self._clock is not None else 0.0
        if kind == "icmpmsg":
            packet = build_icmp_packet(skb)
        else:
            packet = build_udp_packet(skb.saddr, skb.sport, skb.daddr, skb.dport, skb.data,
                                      skb.ttl, skb.tos)
        if kind == "icmp":
            packet = build_port_unreachable(skb.daddr, skb.saddr, packet)
        self._writer.writepkt(packet, ts=when + self._offset)
        self._file.flush()
        self.packets += 1

    def data(self, sender, receiver, payload: bytes) -> None:
        """`payload` went from Sock `sender` to its peer (the Pump moved it): a PSH|ACK
        data segment, then the receiver's ACK of it. `receiver` is unused beyond that it
        may already be gone (None): the sender's view has both sequence spaces."""
        if not payload:
            return
        now = self._clock.now() if self._clock is not None else 0.0
        flow = self._flow_of(sender, receiver)
        rev = _reverse(flow)
        sent = self._sent.get(flow, 0)
        peer_next = (sender.rcv_nxt + self._sent.get(rev, 0)) & U32_MAX
        seq = (sender.isn + 1 + sent) & U32_MAX           # data starts after the SYN
        mss = MSS_V4 if flow[0][:12] == V4MAPPED_PREFIX and flow[2][:12] == V4MAPPED_PREFIX \
            else MSS_V6
        view = memoryview(payload)
        for start in range(0, len(payload), mss):
            part = view[start:start + mss]
            last = start + mss >= len(payload)
            self._write(now, *flow, (seq + start) & U32_MAX, peer_next,
                        TcpFlags.PSH | TcpFlags.ACK if last else TcpFlags.ACK, bytes(part))
        self._sent[flow] = sent + len(payload)
        self._write(now, *rev, peer_next, (seq + len(payload)) & U32_MAX, TcpFlags.ACK)

    def _flow_of(self, sender, receiver) -> Flow:
        """The sender's 4-tuple, remembered (for both ends) the first time it is known."""
        flow = self._flows.get(sender)
        if flow is None:
            known = self._flows.get(receiver) if receiver is not None else None
            if sender.num or known is None:
                flow = _flow(sender)
            else:
                flow = _reverse(known)
            self._flows[sender] = flow
            if receiver is not None and known is None:
                self._flows[receiver] = _reverse(flow)
        return flow

    def close(self) -> None:
        self._file.flush()
        self._file.close()


def open_pcap(path: str, clock=None, time_offset: float = 0.0,
              opener: Callable[..., BinaryIO] = open) -> PcapWriter:
    """A PcapWriter on a new file at `path`."""
    return PcapWriter(opener(path, "wb"), clock, time_offset)
