"""`sysemu ss`: the sandbox's TCP sockets in the layout of iproute2's `ss -tan`.

Linux: the rows are what inet_diag reports (net/ipv4/inet_diag.c inet_sk_diag_fill()):
listeners from the listening hash, connections, TIME_WAIT and SYN_RECV requests from the
established hash; a socket that is only bound or not bound at all is in neither and does
not show. Recv-Q/Send-Q as tcp_diag_get_info() fills them: for a listener the current
accept queue and its limit (sk_ack_backlog, sk_max_ack_backlog); for a connection the
bytes queued.

Raw sockets (raw_diag, `-w`) show their protocol as the port, like ss. Ping sockets are
not shown, as ss does not show them (no sock_diag handler; /proc/net/icmp lists them).
UDP sockets (udp_diag: every sock that owns a port) show UNCONN, or ESTAB when
connected; Recv-Q is sk_rmem_alloc (the queued datagrams' truesize), Send-Q 0. Each row
has its "netid" (tcp, udp); `-t`/`-u` pick, and a Netid column appears when both show.

sysemu: a connection's queues show 0: its bytes flow natively between the programs'
placeholders (or through the Pump), never inside the TCP model.
"""
from __future__ import annotations

import ipaddress

from sysemu.abi.inet import IN6ADDR_LOOPBACK, TcpState
from sysemu.net.core import mapped

# Linux: iproute2 misc/ss.c sstate_name[]
STATE_NAMES = {
    TcpState.TCP_ESTABLISHED: "ESTAB", TcpState.TCP_SYN_SENT: "SYN-SENT",
    TcpState.TCP_SYN_RECV: "SYN-RECV", TcpState.TCP_FIN_WAIT1: "FIN-WAIT-1",
    TcpState.TCP_FIN_WAIT2: "FIN-WAIT-2", TcpState.TCP_TIME_WAIT: "TIME-WAIT",
    TcpState.TCP_CLOSE: "UNCONN", TcpState.TCP_CLOSE_WAIT: "CLOSE-WAIT",
    TcpState.TCP_LAST_ACK: "LAST-ACK", TcpState.TCP_LISTEN: "LISTEN",
    TcpState.TCP_CLOSING: "CLOSING",
}
# Linux: ss's default filter (SS_CONN): every state but LISTEN, CLOSE, TIME_WAIT, SYN_RECV
HIDDEN_BY_DEFAULT = {"LISTEN", "UNCONN", "TIME-WAIT", "SYN-RECV"}


def format_addr(raw: bytes, v6: bool) -> str:
    """An address as ss prints it: 127.0.0.1, [::1], [::ffff:127.0.0.1], 0.0.0.0, [::]."""
    if not v6:
        return str(ipaddress.IPv4Address(bytes(raw or bytes(4))))
    ip = ipaddress.IPv6Address(bytes(raw or bytes(16)))
    if ip.ipv4_mapped is not None:
        return f"[::ffff:{ip.ipv4_mapped}]"
    return f"[{ip.compressed}]"


def _wire_addr(raw: bytes, v6: bool) -> str:
    """A 16-byte wire address (v4-mapped for IPv4) for a socket of family v6 or not."""
    return format_addr(raw if v6 else raw[12:], v6)


def timer_of(sk, now: float) -> list | None:
    """ss -o's timer:(name,expires,retrans) of a sock or request: the armed retransmit
    ("on"), TIME_WAIT ("timewait") or FIN_WAIT2 ("timewait", tcp_time_wait() with the
    FIN_WAIT2 substate) timer, None when none is armed.
    Linux: net/ipv4/inet_diag.c inet_sk_diag_fill() (r->idiag_timer, idiag_expires,
    idiag_retrans), iproute2 misc/ss.c print_timer()."""
    timer = sk.timer
    if timer is None or timer.cancelled:
        return None
    state = getattr(sk, "state", None)
    name = "timewait" if state in (TcpState.TCP_TIME_WAIT, TcpState.TCP_FIN_WAIT2) else "on"
    retrans = sk.num_timeout if hasattr(sk, "num_timeout") else sk.retransmits
    return [name, round(max(0.0, timer.deadline - now), 3), retrans]


def _requests(sk, now: float, ports=None) -> list[dict]:
    """The SYN_RECV rows of listener `sk` (of peer ports in `ports`, when given)."""
    from sysemu.abi.socket import AF_INET6
    v6 = sk.family == AF_INET6
    queue = sk.accept_queue
    return [{
        "state": "SYN-RECV", "recv_q": 0, "send_q": 0,
        "local": [_wire_addr(req.loc_addr, v6), req.loc_port],
        "peer": [_wire_addr(req.rmt_addr, v6), req.rmt_port],
        "inode": 0, "uid": sk.uid, "netid": "tcp", "timer": timer_of(req, now),
    } for req in (queue.syn.values() if queue is not None else ())
        if ports is None or req.rmt_port in ports]


LOOPBACKS = (mapped(bytes([127, 0, 0, 1])), IN6ADDR_LOOPBACK)


def of_ports(net, ports) -> list:
    """The socks of `ports`, found as the kernel finds them (no walk of every socket):
    the listeners on each port (listening hash), and on a port no listener has, its
    bind bucket's owners (connecting, connected, TIME_WAIT) with the other end of each
    of their connections (established hash). The server's end of a connection whose
    client end is gone (its TIME_WAIT after closing first) is looked up by 4-tuple
    between a listener's port and a client port of `ports`, on loopback addresses (or
    the listener's own). Every listener comes too, for the SYN_RECV requests of those
    ports (snapshot() shows only theirs)."""
    hinfo = net.hashinfo
    listeners = {sk for group in hinfo.listening.values() for sk in group}
    found = set(listeners)
    for port in ports:
        tb = hinfo.bhash.get(port)
        if tb is None or port in hinfo.listening:
            continue        # (a listener's bucket holds its children: their ends come
        for sk in tb.owners:                # from the client side's port)
            found.add(sk)
            if sk.dport:
                found.add(hinfo.lookup_established(sk.wire_remote(), sk.dport,
                                                   sk.wire_local(), sk.num))
    for lsk in listeners:
        if lsk.num not in ports:
            continue
        addrs = set(LOOPBACKS) | {lsk.wire_local()}
        for port in ports:
            for laddr in addrs:
                for raddr in addrs:
                    found.add(hinfo.lookup_established(laddr, lsk.num, raddr, port))
    found.discard(None)
    return [sk for sk in found if sk in net.socks]


def snapshot(net, ports=None) -> list[dict]:
    """The rows (JSON-ready dicts) of every socket inet_diag would report, in ss's order
    (listeners first, then the established hash), with SYN_RECV requests of listeners,
    each with its timer (ss -o; None when none is armed). `ports`: only the listeners
    on those ports and the connections whose client end is on one of them, both ends
    (of_ports(); a bench's look at one stalled connection must not walk the tens of
    thousands of TIME_WAIT socks a churn holds)."""
    from sysemu.abi.socket import AF_INET6
    rows = []
    now = net.now()
    socks = net.socks if ports is None else of_ports(net, ports)
    socks = sorted(socks, key=lambda s: (s.state != TcpState.TCP_LISTEN, s.id))
    for sk in socks:
        if sk.state == TcpState.TCP_CLOSE or (sk.num == 0 and sk.state != TcpState.TCP_LISTEN):
            continue
        listening = sk.state == TcpState.TCP_LISTEN
        if listening and ports is not None and sk.num not in ports:
            rows.extend(_requests(sk, now, ports))
            continue
        v6 = sk.family == AF_INET6
        laddr, lport = sk.local()
        remote = sk.remote()
        rows.append({
            "state": STATE_NAMES.get(sk.state, sk.state.name),
            "recv_q": sk.ack_backlog if listening else len(sk.rcvq),
            "send_q": sk.max_ack_backlog if listening else len(sk.sndq),
            "local": [format_addr(laddr, v6), lport],
            "peer": [format_addr(remote[0], v6), remote[1]] if remote
            else [format_addr(b"", v6), "*"],
            "inode": 0 if sk.state == TcpState.TCP_TIME_WAIT else net.kernel.host.sock_inode(sk),
            "uid": sk.uid, "netid": "tcp", "timer": timer_of(sk, now),
        })
        if listening:
            rows.extend(_requests(sk, now, ports))
    if ports is not None:
        return rows
    for port in sorted(net.udp_table.ports if net.udp_table is not None else ()):
        for sk in net.udp_table.ports[port]:
            v6 = sk.family == AF_INET6
            laddr, lport = sk.local()
            remote = sk.remote()
            rows.append({
                "state": STATE_NAMES[sk.state], "recv_q": sk.rmem_alloc, "send_q": 0,
                "local": [format_addr(laddr, v6), lport],
                "peer": [format_addr(remote[0], v6), remote[1]] if remote
                else [format_addr(b"", v6), "*"],
                "inode": net.kernel.host.sock_inode(sk), "uid": sk.uid, "netid": "udp",
            })
    for sk in getattr(net, "raw_socks", ()):
        v6 = sk.family == AF_INET6
        laddr, _ = sk.local()
        rows.append({
            "state": STATE_NAMES[sk.state], "recv_q": sk.rmem_alloc, "send_q": 0,
            "local": [format_addr(laddr, v6), sk.num],
            "peer": [format_addr(b"", v6), "*"],
            "inode": net.kernel.host.sock_inode(sk), "uid": sk.uid, "netid": "raw",
        })
    return rows


def select_rows(rows: list[dict], listening: bool = False, all_states: bool = False,
                netids: tuple[str, ...] | None = None) -> list[dict]:
    """ss's state filter: -l listeners only, -a everything, default connections only;
    `netids` ("tcp", "udp") keeps those kinds (None: all)."""
    if netids is not None:
        rows = [r for r in rows if r.get("netid", "tcp") in netids]
    if all_states:
        return list(rows)
    if listening:
        return [r for r in rows if r["state"] == "LISTEN"]
    return [r for r in rows if r["state"] not in HIDDEN_BY_DEFAULT]


def format_users(users: list) -> str:
    """users:(("prog",pid=N,fd=M),...) as ss -p prints it."""
    return "users:(" + ",".join(f'("{comm}",pid={pid},fd={fd})' for comm, pid, fd in users) + ")"


def format_ss(rows: list[dict], users: dict[int, list] | None = None,
              services: dict[int, str] | None = None) -> str:
    """The table. `users` (inode -> [(comm, pid, fd)]) adds the Process column (-p);
    `services` (port -> name) names ports as ss does without -n.

    Columns are as wide as their widest cell, each after one space (ss's layout: the
    address right-aligned up to its ':', the port left-aligned); ss also spreads spare
    terminal width over the columns, which this does not."""
    def port(p):
        return services.get(p, str(p)) if services and isinstance(p, int) else str(p)

    netid = len({r.get("netid", "tcp") for r in rows}) > 1
    header = ["State", "Recv-Q", "Send-Q", "Local Address:", "Port", "Peer Address:", "Port"]
    body = []
    for r in rows:
        line = [r["state"], str(r["recv_q"]), str(r["send_q"]), f"{r['local'][0]}:",
                port(r["local"][1]), f"{r['peer'][0]}:", port(r["peer"][1])]
        if netid:
            line.insert(0, r.get("netid", "tcp"))
        if users is not None:
            found = users.get(r["inode"]) if r["inode"] else None
            line.append(format_users(found) if found else "")
        body.append(line)
    if users is not None:
        header.append("Process")
    if netid:
        header.insert(0, "Netid")
        right = {4, 6}
        glue_left = {5, 7}
    else:
        right = {3, 5}
        glue_left = {4, 6}        # a port column follows its address with no space
    widths = [max([len(h)] + [len(line[i]) for line in body]) for i, h in enumerate(header)]

    def render(cells):
        out = ""
        for i, cell in enumerate(cells):
            if i:
                out += "" if i in glue_left else " "
            out += cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
        return out.rstrip()
    return "\n".join(render(c) for c in [header] + body) + "\n"
