"""The text of the network's /proc files, byte for byte as Linux 6.x prints them.

Linux: net/ipv4/proc.c (snmp_seq_show, netstat_seq_show), net/mptcp/mib.c
(mptcp_seq_show), net/ipv4/tcp_ipv4.c (tcp4_seq_show, get_tcp4_sock, get_openreq4,
get_timewait4_sock), net/ipv6/tcp_ipv6.c (tcp6_seq_show and friends).

Counters come from a MIB, read through `mib_value(mib, group, name)`. A MIB may be None
(all zero), a mapping keyed "Group.Name" ("TcpExt.ListenOverflows", "Tcp.CurrEstab"), a
mapping of group -> mapping of name -> count, or an object whose attribute `Group` is such a
mapping. Unqualified names ("ListenOverflows", "CurrEstab") are read for the TcpExt and
Tcp groups, whose names do not overlap (sysemu.net's Net.mib is such a flat mapping).
The rows of /proc/net/tcp{,6} come from a Net by `tcp_proc_rows(net, v6)`.
Field names and their order are Linux 6.18's (taken from a 6.18 host's own files).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from sysemu.abi.inet import TcpState
from sysemu.abi.limits import USER_HZ
from sysemu.abi.socket import AF_INET, AF_INET6

# The TCP state numbers /proc prints (Linux: include/net/tcp_states.h).
TCP_ESTABLISHED = int(TcpState.TCP_ESTABLISHED)
TCP_SYN_SENT = int(TcpState.TCP_SYN_SENT)
TCP_SYN_RECV = int(TcpState.TCP_SYN_RECV)
TCP_TIME_WAIT = int(TcpState.TCP_TIME_WAIT)
TCP_LISTEN = int(TcpState.TCP_LISTEN)

def clock_t(seconds: float) -> int:
    """Seconds as /proc prints a time: Linux jiffies_delta_to_clock_t() (never negative)."""
    return max(0, int(seconds * USER_HZ))


# ---- /proc/net/netstat and /proc/net/snmp field lists (Linux 6.18 order) ----

TCPEXT_FIELDS = """
SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned
OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled
PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs
DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks
TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder
TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo
TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans
TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery
TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce
TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData
TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed
TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld
TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure
TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop
TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow
TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue
TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive
TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail
TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole
TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv
TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent
TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd
TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2
TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail
TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop
TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash
TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess
TCPMigrateReqFailure TCPPLBRehash TCPAORequired TCPAOBad TCPAOKeyNotFound TCPAOGood
TCPAODroppedIcmps
""".split()

IPEXT_FIELDS = """
InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts
InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets
InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps
""".split()

MPTCPEXT_FIELDS = """
MPCapableSYNRX MPCapableSYNTX MPCapableSYNACKRX MPCapableACKRX MPCapableFallbackACK
MPCapableFallbackSYNACK MPCapableSYNTXDrop MPCapableSYNTXDisabled
MPCapableEndpAttempt MPFallbackTokenInit MPTCPRetrans MPJoinNoTokenFound MPJoinSynRx
MPJoinSynBackupRx MPJoinSynAckRx MPJoinSynAckBackupRx MPJoinSynAckHMacFailure
MPJoinAckRx MPJoinAckHMacFailure MPJoinRejected MPJoinSynTx MPJoinSynTxCreatSkErr
MPJoinSynTxBindErr MPJoinSynTxConnectErr DSSNotMatching DSSCorruptionFallback
DSSCorruptionReset InfiniteMapTx InfiniteMapRx DSSNoMatchTCP DataCsumErr
OFOQueueTail OFOQueue OFOMerge NoDSSInWindow DuplicateData AddAddr AddAddrTx
AddAddrTxDrop EchoAdd EchoAddTx EchoAddTxDrop PortAdd AddAddrDrop MPJoinPortSynRx
MPJoinPortSynAckRx MPJoinPortAckRx MismatchPortSynRx MismatchPortAckRx RmAddr
RmAddrDrop RmAddrTx RmAddrTxDrop RmSubflow MPPrioTx MPPrioRx MPFailTx MPFailRx
MPFastcloseTx MPFastcloseRx MPRstTx MPRstRx SubflowStale SubflowRecover SndWndShared
RcvWndShared RcvWndConflictUpdate RcvWndConflict MPCurrEstab Blackhole
MPCapableDataFallback MD5SigFallback DssFallback SimultConnectFallback
FallbackFailed WinProbe
""".split()

# Ip: Forwarding and DefaultTTL come first and are not counters (snmp_seq_show_ipstats).
IP_FIELDS = """
InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers
OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs
FragFails FragCreates OutTransmits
""".split()

ICMP_FIELDS = """
InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs
InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps
OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds
OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps
OutTimestampReps OutAddrMasks OutAddrMaskReps
""".split()

TCP_FIELDS = """
RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets
CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
""".split()

UDP_FIELDS = """
InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
IgnoredMulti MemErrors
""".split()

# Linux: tcp_mib_init(): constants every Tcp: line starts with.
TCP_CONSTANTS = {"RtoAlgorithm": 1, "RtoMin": 200, "RtoMax": 120000, "MaxConn": -1}
IP_FORWARDING = 2      # Linux prints 1 when forwarding, 2 when not: sysemu is no router
IP_DEFAULT_TTL = 64    # net.ipv4.ip_default_ttl's default


def mib_value(mib, group: str, name: str) -> int:
    """One counter of `mib` (see the module docstring for the accepted shapes); 0 when
    the MIB does not have it."""
    if mib is None:
        return 0
    if isinstance(mib, Mapping):
        value = mib.get(f"{group}.{name}")
        if value is None:
            sub = mib.get(group)
            if isinstance(sub, Mapping):
                value = sub.get(name)
        if value is None and group in ("TcpExt", "Tcp"):
            value = mib.get(name)
        return int(value or 0)
    sub = getattr(mib, group, None)
    if sub is None and hasattr(mib, "get"):
        try:
            return int(mib.get(group, name) or 0)
        except TypeError:
            return 0
    if isinstance(sub, Mapping):
        return int(sub.get(name) or 0)
    if sub is not None:
        return int(getattr(sub, name, 0) or 0)
    return 0


def _pair(group: str, names: list[str], values: list[int]) -> str:
    return (f"{group}:" + "".join(f" {n}" for n in names) + "\n"
            + f"{group}:" + "".join(f" {v}" for v in values) + "\n")


def render_netstat(mib) -> str:
    """/proc/net/netstat. Linux: net/ipv4/proc.c netstat_seq_show(), then
    net/mptcp/mib.c mptcp_seq_show() (zeros: sysemu has no MPTCP)."""
    return (_pair("TcpExt", TCPEXT_FIELDS, [mib_value(mib, "TcpExt", n) for n in TCPEXT_FIELDS])
            + _pair("IpExt", IPEXT_FIELDS, [mib_value(mib, "IpExt", n) for n in IPEXT_FIELDS])
            + _pair("MPTcpExt", MPTCPEXT_FIELDS,
                    [mib_value(mib, "MPTcpExt", n) for n in MPTCPEXT_FIELDS]))


def _icmpmsg_lines(mib) -> str:
    """Linux: net/ipv4/proc.c icmpmsg_put(): only the message types seen, In before Out,
    at most 16 per line pair."""
    seen = [(f"{d}Type{t}", v) for d in ("In", "Out") for t in range(256)
            if (v := mib_value(mib, "IcmpMsg", f"{d}Type{t}"))]
    text = ""
    for i in range(0, len(seen), 16):
        chunk = seen[i: i + 16]
        text += _pair("IcmpMsg", [n for n, _ in chunk], [v for _, v in chunk])
    return text


def render_snmp(mib) -> str:
    """/proc/net/snmp. Linux: net/ipv4/proc.c snmp_seq_show() (ipstats, icmp_put,
    icmpmsg_put, snmp_seq_show_tcp_udp)."""
    ip_values = [mib_value(mib, "Ip", "Forwarding") or IP_FORWARDING,
                 mib_value(mib, "Ip", "DefaultTTL") or IP_DEFAULT_TTL]
    ip_values += [mib_value(mib, "Ip", n) for n in IP_FIELDS]
    tcp_values = [mib_value(mib, "Tcp", n) or TCP_CONSTANTS.get(n, 0) for n in TCP_FIELDS]
    return (_pair("Ip", ["Forwarding", "DefaultTTL"] + IP_FIELDS, ip_values)
            + _pair("Icmp", ICMP_FIELDS, [mib_value(mib, "Icmp", n) for n in ICMP_FIELDS])
            + _icmpmsg_lines(mib)
            + _pair("Tcp", TCP_FIELDS, tcp_values)
            + _pair("Udp", UDP_FIELDS, [mib_value(mib, "Udp", n) for n in UDP_FIELDS])
            + _pair("UdpLite", UDP_FIELDS, [mib_value(mib, "UdpLite", n) for n in UDP_FIELDS]))


# ---- /proc/net/snmp6 ----

# Linux: net/ipv6/proc.c snmp6_ipstats_list[] (with the octet and ECN counters)
IP6_FIELDS = """
InReceives InHdrErrors InTooBigErrors InNoRoutes InAddrErrors InUnknownProtos
InTruncatedPkts InDiscards InDelivers OutForwDatagrams OutRequests OutDiscards OutNoRoutes
ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates InMcastPkts
OutMcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets
InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts OutTransmits
""".split()
# Linux: snmp6_icmp6_list[], then icmp6_list[]'s names In then Out (snmp6_seq_show_icmpv6())
ICMP6_FIELDS = "InMsgs InErrors OutMsgs OutErrors InCsumErrors OutRateLimitHost".split()
ICMP6_TYPE_NAMES = """
DestUnreachs PktTooBigs TimeExcds ParmProblems Echos EchoReplies GroupMembQueries
GroupMembResponses GroupMembReductions RouterSolicits RouterAdvertisements NeighborSolicits
NeighborAdvertisements Redirects MLDv2Reports
""".split()


def render_snmp6(mib) -> str:
    """/proc/net/snmp6. Linux: net/ipv6/proc.c snmp6_seq_show(): "%-32s\t%lu" lines: Ip6,
    Icmp6 (the named counters, then Icmp6InType<n>/Icmp6OutType<n> for the types seen),
    Udp6, UdpLite6."""
    rows = [(f"Ip6{n}", mib_value(mib, "Ip6", n)) for n in IP6_FIELDS]
    rows += [(f"Icmp6{n}", mib_value(mib, "Icmp6", n)) for n in ICMP6_FIELDS]
    rows += [(f"Icmp6{d}{n}", mib_value(mib, "Icmp6", f"{d}{n}"))
             for d in ("In", "Out") for n in ICMP6_TYPE_NAMES]
    rows += [(f"Icmp6{d}Type{t}", v) for d in ("In", "Out") for t in range(256)
             if (v := mib_value(mib, "Icmp6Msg", f"{d}Type{t}"))]
    rows += [(f"Udp6{n}", mib_value(mib, "Udp6", n)) for n in UDP_FIELDS]
    rows += [(f"UdpLite6{n}", mib_value(mib, "UdpLite6", n)) for n in UDP_FIELDS
             if n != "IgnoredMulti"]
    return "".join(f"{name:<32}\t{value}\n" for name, value in rows)


# ---- /proc/net/tcp and /proc/net/tcp6 ----

@dataclass
class TcpRow:
    """One socket as /proc/net/tcp{,6} shows it; the fields are get_tcp4_sock()'s.

    local, remote   (ip string, port); remote ("0.0.0.0", 0) / ("::", 0) when none
    state           TCP_* number (TIME_WAIT rows use get_timewait4_sock()'s layout,
                    SYN_RECV rows get_openreq4()'s: a request sock, no inode)
    tx_queue        write_seq - snd_una (bytes sent, not yet acknowledged)
    rx_queue        rcv_nxt - copied_seq; for LISTEN the accept queue length
    timer           (tr, tm->when): tr 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT,
                    4 zero-window probe; when in clock ticks (USER_HZ), see clock_t()
    retransmits     icsk_retransmits (openreq: num_timeout)
    uid             the owner's uid
    timeout         icsk_probes_out (Linux's header calls the column "timeout")
    inode           the socket's inode (0 for request and TIME_WAIT socks)
    refcnt          sk_refcnt
    sk_addr         the %pK pointer: sysemu prints it as a kernel with kptr_restrict
                    would (0) unless given one
    rto, ato        clock ticks; 100 = TCP_TIMEOUT_INIT (1 s)
    quick_pingpong  (icsk_ack.quick << 1) | pingpong
    snd_cwnd        congestion window (TCP_INIT_CWND = 10)
    ssthresh        None for Linux's default: fastopen max_qlen (0) for LISTEN, -1 (still in
                    initial slow start) for the rest
    """
    local: tuple[str, int]
    remote: tuple[str, int] = ("0.0.0.0", 0)
    state: int = TCP_ESTABLISHED
    tx_queue: int = 0
    rx_queue: int = 0
    timer: tuple[int, int] = (0, 0)
    retransmits: int = 0
    uid: int = 0
    timeout: int = 0
    inode: int = 0
    refcnt: int = 1
    sk_addr: int = 0
    rto: int = 100
    ato: int = 0
    quick_pingpong: int = 0
    snd_cwnd: int = 10
    ssthresh: int | None = None


def _format_ip(family: int, raw: bytes) -> str:
    if not raw:
        return "::" if family == AF_INET6 else "0.0.0.0"
    return str(ipaddress.ip_address(bytes(raw)))


def tcp_proc_rows(net, v6: bool) -> list[TcpRow]:
    """The rows of /proc/net/tcp (AF_INET socks of `net`) or /proc/net/tcp6 (AF_INET6),
    in Linux's order: listeners first, then the rest (tcp_seq_next() walks the listening
    hash, then ehash). The inode is the host's (kernel.host.sock_inode()); a TIME_WAIT
    sock has none."""
    family = AF_INET6 if v6 else AF_INET
    host = net.kernel.host
    now = net.now()
    rows = []
    socks = sorted((s for s in net.socks if s.family == family),
                   key=lambda s: (s.state != TcpState.TCP_LISTEN, s.id))
    for sk in socks:
        laddr, lport = sk.local()
        remote = sk.remote()
        raddr, rport = remote if remote is not None else (laddr[:0] or b"", 0)
        listening = sk.state == TcpState.TCP_LISTEN
        time_wait = sk.state == TcpState.TCP_TIME_WAIT
        timer = sk.timer
        tr = 0
        when = 0
        if timer is not None and not timer.cancelled:
            tr = 3 if time_wait else 1
            when = clock_t(timer.deadline - now)
        rows.append(TcpRow(
            local=(_format_ip(family, laddr), lport),
            remote=(_format_ip(family, raddr if rport else b""), rport),
            state=int(sk.state),
            rx_queue=sk.ack_backlog if listening else len(sk.rcvq),
            tx_queue=0 if listening else len(sk.sndq),
            timer=(tr, when),
            retransmits=sk.retransmits,
            uid=sk.uid,
            inode=0 if time_wait else host.sock_inode(sk),
            ssthresh=0 if listening else None))
    return rows


TCP4_HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
               "retrnsmt   uid  timeout inode")
TCP6_HEADER = ("  sl  local_address                         remote_address                "
               "        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
TMPSZ = 150     # Linux: tcp4_seq_show() pads every line to TMPSZ - 1 with seq_setwidth


def _hex4(ip: str) -> str:
    """The __be32 address as Linux's %08X prints it on a little-endian machine."""
    return f"{int.from_bytes(ipaddress.IPv4Address(ip).packed, 'little'):08X}"


def _hex6(ip: str) -> str:
    """s6_addr32[0..3], each printed %08X as a little-endian u32."""
    packed = ipaddress.IPv6Address(ip).packed
    return "".join(f"{int.from_bytes(packed[i: i + 4], 'little'):08X}" for i in range(0, 16, 4))


def _row_text(i: int, row: TcpRow, v6: bool) -> str:
    hexaddr = _hex6 if v6 else _hex4
    remote = row.remote
    if v6 and remote == ("0.0.0.0", 0):
        remote = ("::", 0)
    addrs = (f"{i:4d}: {hexaddr(row.local[0])}:{row.local[1] & 0xFFFF:04X} "
             f"{hexaddr(remote[0])}:{remote[1] & 0xFFFF:04X}")
    tr, when = row.timer
    if row.state == TCP_TIME_WAIT:
        # Linux: get_timewait4_sock() / get_timewait6_sock()
        return (f"{addrs} {row.state:02X} {0:08X}:{0:08X} {3:02X}:{when:08X} {0:08X} "
                f"{0:5d} {0:8d} {0:d} {row.refcnt:d} {row.sk_addr:016x}")
    if row.state == TCP_SYN_RECV:
        # Linux: get_openreq4() / get_openreq6(): a request sock
        return (f"{addrs} {TCP_SYN_RECV:02X} {0:08X}:{0:08X} {1:02X}:{when:08X} "
                f"{row.retransmits:08X} {row.uid:5d} {0:8d} {0:d} {0:d} {row.sk_addr:016x}")
    ssthresh = row.ssthresh
    if ssthresh is None:
        ssthresh = 0 if row.state == TCP_LISTEN else -1
    # Linux: get_tcp4_sock() / get_tcp6_sock()
    return (f"{addrs} {row.state:02X} {row.tx_queue & 0xFFFFFFFF:08X}:"
            f"{row.rx_queue & 0xFFFFFFFF:08X} {tr:02X}:{when:08X} {row.retransmits:08X} "
            f"{row.uid:5d} {row.timeout:8d} {row.inode:d} {row.refcnt:d} {row.sk_addr:016x} "
            f"{row.rto:d} {row.ato:d} {row.quick_pingpong:d} {row.snd_cwnd:d} {ssthresh:d}")


def render_tcp(rows: list[TcpRow], v6: bool = False) -> str:
    """/proc/net/tcp (v6=False) or /proc/net/tcp6. Linux: tcp4_seq_show() pads each line
    to 149 columns; tcp6_seq_show() does not pad."""
    if v6:
        return "".join(line + "\n" for line in
                       [TCP6_HEADER] + [_row_text(i, r, True) for i, r in enumerate(rows)])
    width = TMPSZ - 1
    return "".join(line.ljust(width) + "\n" for line in
                   [TCP4_HEADER] + [_row_text(i, r, False) for i, r in enumerate(rows)])


# ---- /proc/net/udp and /proc/net/udp6 ----

UDP4_HEADER = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
               "   uid  timeout inode ref pointer drops")
UDP6_HEADER = ("  sl  local_address                         remote_address                "
               "        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
               "pointer drops")
UDP_LINE_WIDTH = 127    # Linux: udp4_seq_show()'s seq_setwidth()
UDP_HTABLE_SLOTS = 128  # the "sl" column: the port's slot in a table of this size


@dataclass
class UdpRow:
    """One socket as /proc/net/udp{,6} shows it (udp4_format_sock(),
    __ip6_dgram_sock_seq_show()): state 07 (CLOSE) or 01 (ESTABLISHED: connected);
    rx_queue is sk_rmem_alloc (truesize of the queued datagrams), drops sk_drops."""
    local: tuple[str, int]
    remote: tuple[str, int]
    state: int
    rx_queue: int = 0
    tx_queue: int = 0
    uid: int = 0
    inode: int = 0
    refcnt: int = 2
    drops: int = 0


def udp_proc_rows(net, v6: bool) -> list[UdpRow]:
    """The rows of /proc/net/udp (AF_INET socks of `net` that own a port) or udp6, in
    the order of their hash slots, then of binding."""
    family = AF_INET6 if v6 else AF_INET
    return [_dgram_row(net, sk)
            for port in sorted(net.udp_table.ports, key=lambda p: (p % UDP_HTABLE_SLOTS, p))
            for sk in net.udp_table.ports[port] if sk.family == family]


def _dgram_row(net, sk) -> UdpRow:
    """A datagram sock's row (udp4_format_sock() / ping_v4_format_sock() /
    __ip6_dgram_sock_seq_show() print the same fields)."""
    laddr, lport = sk.local()
    remote = sk.remote()
    raddr, rport = remote if remote is not None else (b"", 0)
    return UdpRow(local=(_format_ip(sk.family, laddr), lport),
                  remote=(_format_ip(sk.family, raddr if rport else b""), rport),
                  state=int(sk.state), rx_queue=sk.rmem_alloc, uid=sk.uid,
                  inode=net.kernel.host.sock_inode(sk), drops=sk.drops)


# ---- /proc/net/icmp and /proc/net/icmp6 (ping sockets) ----

ICMP4_HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
                "   uid  timeout inode ref pointer drops")
PING_HTABLE_SLOTS = 64  # Linux: PING_HTABLE_SIZE (sysemu: the slot is ident % 64, no hash mix)


def ping_proc_rows(net, v6: bool) -> list[UdpRow]:
    """The rows of /proc/net/icmp (AF_INET ping sockets holding an identifier) or icmp6,
    by hash slot, the newest first within one (ping_seq_start())."""
    family = AF_INET6 if v6 else AF_INET
    socks = getattr(getattr(net, "ping_table", None), "socks", [])
    ordered = sorted((sk for sk in socks if sk.family == family),
                     key=lambda sk: sk.num % PING_HTABLE_SLOTS)
    return [_dgram_row(net, sk) for sk in ordered]


def render_udp(rows: list[UdpRow], v6: bool = False, header: str = UDP4_HEADER,
               slots: int = UDP_HTABLE_SLOTS) -> str:
    """/proc/net/udp (padded to 127 columns) or /proc/net/udp6 (not padded); with
    ICMP4_HEADER and PING_HTABLE_SLOTS, /proc/net/icmp and icmp6 (the same layout)."""
    hexaddr = _hex6 if v6 else _hex4
    lines = []
    for row in rows:
        remote = row.remote
        if v6 and remote == ("0.0.0.0", 0):
            remote = ("::", 0)
        lines.append(f"{row.local[1] % slots:5d}: {hexaddr(row.local[0])}:"
                     f"{row.local[1]:04X} {hexaddr(remote[0])}:{remote[1]:04X} "
                     f"{row.state:02X} {row.tx_queue:08X}:{row.rx_queue:08X} 00:00000000 "
                     f"00000000 {row.uid:5d} {0:8d} {row.inode:d} {row.refcnt:d} "
                     f"{0:016x} {row.drops:d}")
    if v6:
        return "".join(line + "\n" for line in [UDP6_HEADER] + lines)
    return "".join(line.ljust(UDP_LINE_WIDTH) + "\n" for line in [header] + lines)
