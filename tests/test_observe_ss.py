"""`sysemu ss` and `sysemu nstat` text from a model network (no processes)."""
from __future__ import annotations

from sysemu.abi.socket import AF_INET, SOCK_NONBLOCK
from sysemu.observe.nstat import format_nstat, nstat_rows
from sysemu.observe.service import ObserveService
from sysemu.observe.ss import format_addr, format_ss, select_rows, snapshot
from test_net_helpers import Env


def test_format_addr():
    assert format_addr(bytes([127, 0, 0, 1]), False) == "127.0.0.1"
    assert format_addr(b"", False) == "0.0.0.0"
    assert format_addr(b"", True) == "[::]"
    assert format_addr(bytes(15) + b"\1", True) == "[::1]"
    assert format_addr(bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]), True) \
        == "[::ffff:127.0.0.1]"


def queue_env():
    """A listener (backlog 1: 2 fit) met by 4 clients: 2 got in, one of them accepted,
    2 retry their SYNs; and a v6 listener."""
    env = Env()
    lfd = env.socket()
    assert env.bind(lfd, "127.0.0.1", 8080) == 0 and env.listen(lfd, 1) == 0
    clients = [env.socket(AF_INET, 1 | SOCK_NONBLOCK) for _ in range(4)]
    for c in clients:
        env.connect(c, "127.0.0.1", 8080)
    a, _ = env.accept(lfd)
    v6 = env.socket(10)
    assert env.bind(v6, "::", 9090) == 0 and env.listen(v6, 511) == 0
    for fd, inode in ((lfd, 111), (a, 222), (clients[0], 333)):
        env.hooks.inodes[env.sk(fd)] = inode
    return env, lfd, clients, a


def test_snapshot_listener_queues():
    env, lfd, clients, a = queue_env()
    rows = snapshot(env.net)
    listen = [r for r in rows if r["state"] == "LISTEN"]
    assert [(r["local"], r["recv_q"], r["send_q"]) for r in listen] == [
        (["127.0.0.1", 8080], 1, 1), (["[::]", 9090], 0, 511)]
    assert listen[0]["peer"] == ["0.0.0.0", "*"] and listen[1]["peer"] == ["[::]", "*"]
    states = sorted(r["state"] for r in rows)
    # two clients and their two children are established; two clients still send SYNs
    assert states.count("ESTAB") == 4 and states.count("SYN-SENT") == 2


def test_ss_layout_listening():
    env, *_ = queue_env()
    text = format_ss(select_rows(snapshot(env.net), listening=True))
    assert text == (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
        "LISTEN 1      1          127.0.0.1:8080      0.0.0.0:*\n"
        "LISTEN 0      511             [::]:9090         [::]:*\n")


def test_ss_default_hides_listeners_and_all_shows_them():
    env, lfd, clients, a = queue_env()
    rows = snapshot(env.net)
    default = select_rows(rows)
    assert {r["state"] for r in default} == {"ESTAB", "SYN-SENT"}
    assert len(select_rows(rows, all_states=True)) == len(rows)
    text = format_ss(default)
    lines = text.splitlines()
    assert lines[0].split() == ["State", "Recv-Q", "Send-Q", "Local", "Address:Port",
                                "Peer", "Address:Port"]
    assert any(line.startswith("SYN-SENT 0      0") for line in lines)
    # every address column ends at the same place (right-aligned up to the ':')
    ends = {line.index(":", 20) for line in lines}
    assert len(ends) == 1


def test_ss_processes_and_services():
    env, lfd, clients, a = queue_env()
    rows = select_rows(snapshot(env.net), listening=True)
    users = {111: [("server", 42, 3), ("server", 43, 3)]}
    text = format_ss(rows, users, services={8080: "http-alt"})
    first = text.splitlines()[1]
    assert first.endswith('127.0.0.1:http-alt      0.0.0.0:*    '
                          'users:(("server",pid=42,fd=3),("server",pid=43,fd=3))')
    assert text.splitlines()[0].endswith("Peer Address:Port Process")


def test_syn_recv_rows_show_with_all():
    env = Env()
    env.net.drop = lambda seg: seg.flags == 0x10    # the client's ACK never arrives
    lfd, port = env.server()
    env.connect(env.socket(AF_INET, 1 | SOCK_NONBLOCK), "127.0.0.1", port)
    rows = snapshot(env.net)
    assert [r["state"] for r in rows if r["local"][1] == port] == ["LISTEN", "SYN-RECV"]
    assert "SYN-RECV" not in {r["state"] for r in select_rows(rows)}


def test_nstat_layout_and_order():
    env, *_ = queue_env()
    mib = env.net.mib
    text = format_nstat(mib)
    lines = text.splitlines()
    assert lines[0] == "#kernel"
    assert lines[1] == "IcmpInMsgs                      0                  0.0"
    assert "TcpActiveOpens                  4                  0.0" in lines
    names = [n for n, _ in nstat_rows(mib)]
    assert names.index("IcmpOutAddrMaskReps") < names.index("TcpActiveOpens") \
        < names.index("UdpInDatagrams") < names.index("TcpExtSyncookiesSent") \
        < names.index("Icmp6InMsgs") < names.index("Udp6InDatagrams")
    assert "TcpCurrEstab" not in names                # nstat skips the gauge
    assert names.index("TcpOutRsts") < names.index("TcpExtSyncookiesSent") \
        < names.index("TcpExtTW") < names.index("TcpExtListenOverflows")
    overflow = [l for l in lines if l.startswith("TcpExtListenOverflows ")]
    assert overflow == [f"{'TcpExtListenOverflows':<32}{mib['ListenOverflows']:<19}0.0"]
    assert mib["ListenOverflows"] >= 1


def test_snapshot_of_ports_with_timers():
    """`{"op": "ss", "ports": [...]}` (bench/churn.py's look at a stalled connection): only
    the rows of those ports, with ss -o's timers: a client retrying its SYN ("on", its
    retransmissions), a TIME_WAIT ("timewait", up to 60 s)."""
    env, lfd, clients, a = queue_env()
    cport = env.getname(clients[2])[1]
    rows = snapshot(env.net, {cport})
    assert [(r["state"], r["local"][1]) for r in rows] == [("SYN-SENT", cport)]
    name, expires, retrans = rows[0]["timer"]
    assert name == "on" and 0 < expires <= 1.0 and retrans == 0
    # The SYNs went again together: both clients are established, one child is queued,
    # the other's final ACK met the full queue: its request retries the SYN-ACK
    env.advance(1.5)
    after = snapshot(env.net, {env.getname(c)[1] for c in clients[2:]})
    assert [r["state"] for r in after] == ["SYN-RECV", "ESTAB", "ESTAB", "ESTAB"]
    assert after[0]["local"] == ["127.0.0.1", 8080] and after[0]["timer"][0] == "on"
    assert [r["timer"] for r in after[1:]] == [None] * 3
    # the accepted connection: the client closes first and keeps TIME_WAIT
    aport = env.getname(clients[0])[1]
    env.close(clients[0])
    env.close(a)
    env.advance(0.5)
    rows = {r["state"]: r for r in snapshot(env.net, {aport})}
    assert set(rows) == {"TIME-WAIT"}, rows
    name, expires, _ = rows["TIME-WAIT"]["timer"]
    assert name == "timewait" and 50 < expires <= 60
    listener = snapshot(env.net, {8080})
    assert listener[0]["state"] == "LISTEN" and listener[0]["timer"] is None
    assert all(r["timer"] is None for r in snapshot(env.net, {9090}))


def test_ss_request_with_ports():
    env, *_ = queue_env()
    service = ObserveService(env.kernel, {"id": "t"})
    assert service.handle({"op": "ss", "ports": "8080"}) == {
        "error": "ports is a list of port numbers"}
    rows = service.handle({"op": "ss", "ports": [9090]})["rows"]
    assert [(r["state"], r["local"][1]) for r in rows] == [("LISTEN", 9090)]


def test_snapshot_of_a_client_port_shows_both_ends():
    """A client port's rows: the client's end and the server's (found in the established
    hash, not by walking every socket), here the server's TIME_WAIT after it closed first;
    other connections of the same listener are not shown."""
    env = Env()
    lfd, port = env.server()
    pairs = []
    for _ in range(3):
        c = env.socket()
        assert env.connect(c, "127.0.0.1", port) == 0
        pairs.append((c, env.accept(lfd)[0]))
    c, a = pairs[1]
    cport = env.getname(c)[1]
    env.close(a)
    env.advance(0.05)
    env.close(c)
    rows = snapshot(env.net, {cport, port})
    assert [(r["state"], r["local"][1], r["peer"][1]) for r in rows] == [
        ("LISTEN", port, "*"), ("TIME-WAIT", port, cport)]
    assert rows[1]["timer"][0] == "timewait"
    c0 = env.getname(pairs[0][0])[1]
    assert sorted((r["state"], r["local"][1]) for r in snapshot(env.net, {c0})) == [
        ("ESTAB", port), ("ESTAB", c0)]


def test_nstat_request_with_names():
    env, *_ = queue_env()
    service = ObserveService(env.kernel, {"id": "t"})
    assert service.handle({"op": "nstat", "names": "TW"}) == {
        "error": "names is a list of counter names"}
    mib = service.handle({"op": "nstat", "names": ["ListenOverflows", "CurrEstab", "TW"]})
    assert mib == {"mib": {"ListenOverflows": env.net.mib["ListenOverflows"],
                           "CurrEstab": env.net.mib["CurrEstab"], "TW": 0}}
    assert mib["mib"]["CurrEstab"] == 4
