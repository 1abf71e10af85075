"""bind(2) and the port table: inet_bind/inet6_bind checks and order, bind buckets,
SO_REUSEADDR/SO_REUSEPORT, v4/v6 overlap, ephemeral ports, listen()."""
from __future__ import annotations

import struct

import pytest

from sysemu.abi.inet import IP_BIND_ADDRESS_NO_PORT, IPV6_V6ONLY, SOL_IP, SOL_IPV6, TcpState
from sysemu.abi.socket import AF_INET6, SO_REUSEADDR, SO_REUSEPORT, SOL_SOCKET
from sysemu.kernel.task import CAP_NET_BIND_SERVICE
from test_net_helpers import E, Env, sockaddr


@pytest.fixture
def env():
    return Env()


def test_bind_errno_order(env):
    s = env.socket()
    assert env.bind(s, "127.0.0.1", 80, addrlen=15) == -E.EINVAL
    assert env.bind(s, "127.0.0.1", 80, addrlen=129) == -E.EINVAL
    assert env.bind(s, "127.0.0.1", 80, addrlen=-1) == -E.EINVAL
    assert env.call("bind", s, 0x10, 16) == -E.EFAULT
    bad_family = env.mem.alloc(struct.pack("<H", 10) + sockaddr("127.0.0.1", 80)[2:])
    assert env.call("bind", s, bad_family, 16) == -E.EAFNOSUPPORT
    unspec_any = env.mem.alloc(struct.pack("<H", 0) + sockaddr("0.0.0.0", 0)[2:])
    unspec_lo = env.mem.alloc(struct.pack("<H", 0) + sockaddr("127.0.0.1", 0)[2:])
    assert env.call("bind", s, unspec_lo, 16) == -E.EAFNOSUPPORT
    # non-local address checked before the privileged port
    assert env.bind(s, "10.1.2.3", 80) == -E.EADDRNOTAVAIL
    assert env.bind(s, "127.0.0.1", 80) == -E.EACCES
    assert env.bind(s, "127.0.0.1", 1023) == -E.EACCES
    assert env.call("bind", s, unspec_any, 16) == 0       # AF_UNSPEC + INADDR_ANY is allowed
    assert env.bind(s, "127.0.0.1", 0) == -E.EINVAL       # double bind
    assert env.bind(env.socket(), "224.0.0.1", 0) == 0    # multicast/broadcast: allowed
    assert env.bind(env.socket(), "255.255.255.255", 0) == 0


def test_bind_privileged_with_capability():
    env = Env(caps={CAP_NET_BIND_SERVICE})
    s = env.socket()
    assert env.bind(s, "127.0.0.1", 80) == 0
    env2 = Env(sysctl={"net.ipv4.ip_unprivileged_port_start": 80})
    assert env2.bind(env2.socket(), "127.0.0.1", 80) == 0
    assert env2.bind(env2.socket(), "127.0.0.1", 79) == -E.EACCES


def test_capabilities_read_at_each_check():
    """Linux checks the credentials at the time of the call: with read_caps the task's
    capabilities are asked again at each bind (a program may drop them after start)."""
    env = Env()
    current = {CAP_NET_BIND_SERVICE}
    env.task.read_caps = lambda: frozenset(current)
    assert env.bind(env.socket(), "127.0.0.1", 80) == 0
    current.clear()                                   # setresuid(nobody) clears CapEff
    assert env.bind(env.socket(), "127.0.0.1", 81) == -E.EACCES
    assert env.bind(env.socket(), "127.0.0.1", 1024) == 0


def test_bind6_checks(env):
    s = env.socket(AF_INET6)
    assert env.bind(s, "::1", 0, addrlen=23) == -E.EINVAL
    assert env.bind(s, "ff02::1", 0) == -E.EINVAL           # multicast on a stream socket
    assert env.bind(s, "fe80::1", 0) == -E.EINVAL           # link-local without scope
    d = sockaddr("fe80::1", 0, scope_id=1)
    assert env.call("bind", s, env.mem.alloc(d), 28) == -E.EADDRNOTAVAIL
    d = sockaddr("fe80::1", 0, scope_id=99)
    assert env.call("bind", s, env.mem.alloc(d), 28) == -E.ENODEV
    assert env.bind(s, "2001:db8::1", 0) == -E.EADDRNOTAVAIL
    assert env.bind(s, "::ffff:10.0.0.1", 0) == -E.EADDRNOTAVAIL
    v4 = env.mem.alloc(sockaddr("127.0.0.1", 0))
    assert env.call("bind", s, v4, 16) == -E.EINVAL         # short for sockaddr_in6
    assert env.bind(s, "::ffff:127.0.0.1", 0) == 0
    t = env.socket(AF_INET6)
    assert env.setsockopt(t, SOL_IPV6, IPV6_V6ONLY, 1) == 0
    assert env.bind(t, "::ffff:127.0.0.1", 0) == -E.EINVAL  # mapped on a v6only socket
    assert env.bind(t, "::1", 0) == 0
    assert env.setsockopt(t, SOL_IPV6, IPV6_V6ONLY, 0) == -E.EINVAL   # already bound


def test_conflicts_plain(env):
    a = env.socket()
    assert env.bind(a, "127.0.0.1", 5000) == 0
    assert env.bind(env.socket(), "127.0.0.1", 5000) == -E.EADDRINUSE
    assert env.bind(env.socket(), "0.0.0.0", 5000) == -E.EADDRINUSE
    assert env.bind(env.socket(), "127.0.0.2", 5000) == 0   # different specific address
    w = env.socket()
    assert env.bind(w, "0.0.0.0", 5001) == 0
    assert env.bind(env.socket(), "127.0.0.9", 5001) == -E.EADDRINUSE


def test_failed_bind_leaves_socket_unbound(env):
    a = env.socket()
    env.bind(a, "127.0.0.1", 5000)
    b = env.socket()
    assert env.bind(b, "127.0.0.1", 5000) == -E.EADDRINUSE
    assert env.getname(b) == ("0.0.0.0", 0)
    assert env.bind(b, "127.0.0.1", 5002) == 0


def test_v4_v6_overlap(env):
    v6any = env.socket(AF_INET6)
    assert env.bind(v6any, "::", 6000) == 0
    assert env.bind(env.socket(), "127.0.0.1", 6000) == -E.EADDRINUSE
    only = env.socket(AF_INET6)
    env.setsockopt(only, SOL_IPV6, IPV6_V6ONLY, 1)
    assert env.bind(only, "::", 6001) == 0
    assert env.bind(env.socket(), "127.0.0.1", 6001) == 0      # v6only: no overlap
    assert env.bind(env.socket(AF_INET6), "::1", 6001) == -E.EADDRINUSE
    v4 = env.socket()
    assert env.bind(v4, "127.0.0.1", 6002) == 0
    assert env.bind(env.socket(AF_INET6), "::", 6002) == -E.EADDRINUSE
    assert env.bind(env.socket(AF_INET6), "::1", 6002) == 0    # ::1 is v6only implicitly
    assert env.bind(env.socket(AF_INET6), "::ffff:127.0.0.1", 6002) == -E.EADDRINUSE


def test_reuseaddr(env):
    a, b = env.socket(), env.socket()
    for s in (a, b):
        assert env.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, 1) == 0
    assert env.bind(a, "127.0.0.1", 7000) == 0
    assert env.bind(b, "127.0.0.1", 7000) == 0          # both set, neither listening
    assert env.listen(a) == 0
    assert env.listen(b) == -E.EADDRINUSE               # now one listens
    assert env.sk(b).state == TcpState.TCP_CLOSE
    c = env.socket()
    env.setsockopt(c, SOL_SOCKET, SO_REUSEADDR, 1)
    assert env.bind(c, "127.0.0.1", 7000) == -E.EADDRINUSE   # a listener owns it
    d = env.socket()
    assert env.bind(d, "127.0.0.1", 7001) == 0
    e = env.socket()
    env.setsockopt(e, SOL_SOCKET, SO_REUSEADDR, 1)
    assert env.bind(e, "127.0.0.1", 7001) == -E.EADDRINUSE   # only one side set


def test_reuseport(env):
    socks = [env.socket() for _ in range(3)]
    for s in socks:
        assert env.setsockopt(s, SOL_SOCKET, SO_REUSEPORT, 1) == 0
        assert env.bind(s, "127.0.0.1", 7100) == 0
        assert env.listen(s) == 0                         # listeners may share
    # another user (sk_uid differs): a conflict even with SO_REUSEPORT on both
    s2 = env.socket()
    env.setsockopt(s2, SOL_SOCKET, SO_REUSEPORT, 1)
    env.sk(s2).uid = 1000   # sysemu: Task has no uid yet; Sock.uid is what the check reads
    assert env.bind(s2, "127.0.0.1", 7100) == -E.EADDRINUSE
    env.sk(s2).uid = 0
    assert env.bind(s2, "127.0.0.1", 7100) == 0
    plain = env.socket()
    assert env.bind(plain, "127.0.0.1", 7100) == -E.EADDRINUSE
    # the kernel spreads SYNs over the group
    seen = set()
    for _ in range(12):
        c = env.socket()
        assert env.connect(c, "127.0.0.1", 7100) == 0
        seen.add(env.sk(c).peer.parent.id)
    assert len(seen) > 1


def test_ephemeral_ports_parity(env):
    """Probed on 6.18 with range 32768-60999: bind(0) gave odd ports, connect() even."""
    lfd, port = env.server()
    for _ in range(8):
        s = env.socket()
        env.bind(s, "127.0.0.1", 0)
        p = env.getname(s)[1]
        assert 32768 <= p <= 60999 and p % 2 == 1
        c = env.socket()
        assert env.connect(c, "127.0.0.1", port) == 0
        p = env.getname(c)[1]
        assert 32768 <= p <= 60999 and p % 2 == 0


def test_ephemeral_exhaustion_and_reuse():
    env = Env(sysctl={"net.ipv4.ip_local_port_range": (40000, 40003)})
    fds = [env.socket() for _ in range(5)]
    got = [env.bind(fd, "127.0.0.1", 0) for fd in fds]
    assert got[:4] == [0] * 4 and got[4] == -E.EADDRINUSE
    assert sorted(env.getname(fd)[1] for fd in fds[:4]) == [40000, 40001, 40002, 40003]
    # bind(0) never takes a port someone holds, even with SO_REUSEADDR on both sides
    env2 = Env(sysctl={"net.ipv4.ip_local_port_range": (40000, 40001)})
    a = env2.socket()
    env2.setsockopt(a, SOL_SOCKET, SO_REUSEADDR, 1)
    assert env2.bind(a, "127.0.0.1", 40000) == 0
    assert env2.bind(env2.socket(), "127.0.0.1", 40001) == 0
    b = env2.socket()
    env2.setsockopt(b, SOL_SOCKET, SO_REUSEADDR, 1)
    assert env2.bind(b, "127.0.0.1", 0) == -E.EADDRINUSE
    assert env2.bind(env2.socket(), "127.0.0.2", 0) == 0     # other address: a port is free


def test_connect_shares_ephemeral_port_across_destinations():
    env = Env(sysctl={"net.ipv4.ip_local_port_range": (40000, 40001)})
    l1, p1 = env.server(port=5001)
    l2, p2 = env.server(port=5002)
    ports = set()
    for dst in (p1, p2, p1, p2):
        c = env.socket()
        assert env.connect(c, "127.0.0.1", dst) == 0
        ports.add(env.getname(c)[1])
    assert ports <= {40000, 40001}
    assert env.connect(env.socket(), "127.0.0.1", p1) == -E.EADDRNOTAVAIL


def test_bind_address_no_port(env):
    s = env.socket()
    assert env.setsockopt(s, SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1) == 0
    assert env.getint(s, SOL_IP, IP_BIND_ADDRESS_NO_PORT) == 1
    assert env.bind(s, "127.0.0.1", 0) == 0
    assert env.getname(s) == ("127.0.0.1", 0)
    lfd, port = env.server()
    assert env.connect(s, "127.0.0.1", port) == 0
    name = env.getname(s)
    assert name[0] == "127.0.0.1" and name[1] % 2 == 0


def test_listen_rules(env):
    s = env.socket()
    assert env.listen(s, 10) == 0                       # autobind
    port = env.getname(s)[1]
    assert 32768 <= port <= 60999 and port % 2 == 1
    sk = env.sk(s)
    assert sk.max_ack_backlog == 10
    assert env.listen(s, 3) == 0 and sk.max_ack_backlog == 3   # second listen: backlog
    assert env.listen(s, -1) == 0 and sk.max_ack_backlog == 4096   # unsigned compare
    assert env.listen(s, 100000) == 0 and sk.max_ack_backlog == 4096
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    assert env.listen(c) == -E.EINVAL                   # connected


def test_somaxconn_sysctl():
    env = Env(sysctl={"net.core.somaxconn": 7})
    s = env.socket()
    assert env.listen(s, 100) == 0 and env.sk(s).max_ack_backlog == 7


def test_bucket_counts_connected_sockets(env):
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    env.close(lfd)
    # the accepted-or-queued child was reset with the listener; an accepted one keeps the port
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    env.close(lfd)
    assert env.sk(a).state == TcpState.TCP_ESTABLISHED
    assert env.bind(env.socket(), "127.0.0.1", port) == -E.EADDRINUSE
    r = env.socket()
    env.setsockopt(r, SOL_SOCKET, SO_REUSEADDR, 1)
    assert env.bind(r, "127.0.0.1", port) == -E.EADDRINUSE   # the child has no SO_REUSEADDR
