"""`sysemu nstat`: the sandbox's ICMP, TCP and UDP counters as iproute2's `nstat -az` prints the host's.

Linux: the names are /proc/net/snmp's Tcp group and /proc/net/netstat's TcpExt group
(net/ipv4/proc.c snmp4_tcp_list, snmp4_net_list), prefixed by their group, in that order.
nstat leaves out the Tcp fields that are not counters (RtoAlgorithm, RtoMin, RtoMax,
MaxConn, CurrEstab: iproute2 misc/nstat.c useless_number()).

sysemu: every count is absolute (like -a) and rates are 0.0 (nstat's history file is not
kept).
"""
from __future__ import annotations

from sysemu.net import proc

# Linux: snmp4_net_list order for the names sysemu's model counts
TCPEXT_ORDER = tuple(sorted((
    "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "EmbryonicRsts", "TW",
    "ListenOverflows", "ListenDrops", "TCPTimeouts", "TCPAbortOnData", "TCPAbortOnClose",
    "TCPAbortOnMemory", "TCPAbortOnTimeout", "TCPAbortOnLinger", "TCPSynRetrans",
    "TCPReqQFullDoCookies", "TCPReqQFullDrop",
    # loss recovery, delayed ACKs, keepalive (the model data path)
    "DelayedACKs", "DelayedACKLost", "TCPRenoRecovery", "TCPRenoFailures",
    "TCPLossFailures", "TCPFastRetrans", "TCPSlowStartRetrans", "TCPRenoRecoveryFail",
    "TCPOFOQueue", "TCPOFODrop", "TCPACKSkippedSeq", "TCPWinProbe", "TCPKeepAlive"),
    key=proc.TCPEXT_FIELDS.index))
SKIPPED = {"CurrEstab", "RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn"}
# Linux: snmp4_tcp_list, without the gauges nstat skips
TCP_FIELDS = tuple(name for name in proc.TCP_FIELDS if name not in SKIPPED)


def nstat_rows(mib: dict[str, int]) -> list[tuple[str, int]]:
    """(name, value) in nstat's order: Icmp*, IcmpMsg*, Tcp*, Udp*
    (snmp_seq_show_tcp_udp()), then TcpExt* (Linux order, then the rest), then Icmp6*
    and Udp6* (/proc/net/snmp6). Counters of other groups
    are keyed "Group.Name" in the MIB."""
    rows = [(f"Icmp{name}", proc.mib_value(mib, "Icmp", name)) for name in proc.ICMP_FIELDS]
    rows += _msg_rows(mib, "IcmpMsg", "IcmpMsg")
    rows += [(f"Tcp{name}", int(mib.get(name, 0))) for name in TCP_FIELDS]
    rows += [(f"Udp{name}", int(mib.get(f"Udp.{name}", 0))) for name in proc.UDP_FIELDS]
    known = set(TCP_FIELDS) | SKIPPED
    ext = [n for n in TCPEXT_ORDER] + sorted(n for n in mib if n not in known
                                             and n not in TCPEXT_ORDER and "." not in n)
    rows += [(f"TcpExt{name}", int(mib.get(name, 0))) for name in ext]
    rows += [(f"Icmp6{name}", proc.mib_value(mib, "Icmp6", name))
             for name in proc.ICMP6_FIELDS]
    rows += [(f"Icmp6{d}{name}", proc.mib_value(mib, "Icmp6", f"{d}{name}"))
             for d in ("In", "Out") for name in proc.ICMP6_TYPE_NAMES]
    rows += _msg_rows(mib, "Icmp6Msg", "Icmp6")
    rows += [(f"Udp6{name}", int(mib.get(f"Udp6.{name}", 0))) for name in proc.UDP_FIELDS
             if name != "IgnoredMulti"]
    return rows


def _msg_rows(mib, group: str, prefix: str) -> list[tuple[str, int]]:
    """The per-type lines /proc/net/snmp (IcmpMsg) and /proc/net/snmp6 (Icmp6InType<n>)
    show only for the types seen: In before Out, by type."""
    return [(f"{prefix}{d}Type{t}", v) for d in ("In", "Out") for t in range(256)
            if (v := proc.mib_value(mib, group, f"{d}Type{t}"))]


def format_nstat(mib: dict[str, int], zeros: bool = True) -> str:
    """`nstat -az` text: "#kernel", then one "%-32s%-19s0.0" line per counter."""
    lines = ["#kernel"]
    for name, value in nstat_rows(mib):
        if value or zeros:
            lines.append(f"{name:<32}{value:<19}0.0")
    return "\n".join(lines) + "\n"
