"""Property tests: the bind table never holds two conflicting owners, the accept queue
never exceeds backlog+1, and the sockaddr decoder answers any bytes with a value or
SyscallError."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sysemu.abi.inet import IPV6_V6ONLY, SOL_IPV6, TcpState
from sysemu.abi.socket import (AF_INET, AF_INET6, SO_REUSEADDR, SO_REUSEPORT, SOCK_NONBLOCK,
                               SOL_SOCKET)
from sysemu.kernel.errors import SyscallError
from sysemu.net.ipv4.inet_connection_sock import inet_rcv_saddr_equal
from sysemu.net.sockaddr import InetAddr, decode_sockaddr
from test_net_helpers import E, Env

ADDRS4 = ["127.0.0.1", "127.0.0.2", "0.0.0.0"]
ADDRS6 = ["::", "::1", "::ffff:127.0.0.1", "::ffff:0.0.0.0"]
SETTINGS = settings(max_examples=60, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class BindTable(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.env = Env(sysctl={"net.ipv4.ip_local_port_range": (40000, 40007)})
        self.fds: list[int] = []

    @rule(v6=st.booleans(), v6only=st.booleans(), reuse=st.booleans(),
          reuseport=st.booleans())
    def create(self, v6, v6only, reuse, reuseport):
        env = self.env
        fd = env.socket(AF_INET6 if v6 else AF_INET, 1 | SOCK_NONBLOCK)
        if v6 and v6only:
            assert env.setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, 1) == 0
        env.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, int(reuse))
        env.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, int(reuseport))
        self.fds.append(fd)

    @precondition(lambda self: self.fds)
    @rule(data=st.data(), port=st.sampled_from([0, 5000, 5001, 40001]))
    def bind(self, data, port):
        fd = data.draw(st.sampled_from(self.fds))
        sk = self.env.sk(fd)
        addr = data.draw(st.sampled_from(ADDRS6 if sk.family == AF_INET6 else ADDRS4))
        r = self.env.bind(fd, addr, port)
        assert r in (0, -E.EADDRINUSE, -E.EINVAL), r
        if r == -E.EINVAL:
            assert sk.num or (sk.ipv6only and addr.startswith("::ffff"))

    @precondition(lambda self: self.fds)
    @rule(data=st.data())
    def listen(self, data):
        fd = data.draw(st.sampled_from(self.fds))
        assert self.env.listen(fd, 4) in (0, -E.EADDRINUSE, -E.EINVAL)

    @precondition(lambda self: self.fds)
    @rule(data=st.data())
    def connect(self, data):
        fd = data.draw(st.sampled_from(self.fds))
        listeners = [f for f in self.fds if self.env.sk(f).state == TcpState.TCP_LISTEN]
        if not listeners:
            return
        target = self.env.sk(data.draw(st.sampled_from(listeners)))
        host = "::1" if target.family == AF_INET6 and target.ipv6only else "127.0.0.1"
        if self.env.sk(fd).family == AF_INET and ":" in host:
            return
        self.env.connect(fd, host, target.num)

    @precondition(lambda self: self.fds)
    @rule(data=st.data())
    def close(self, data):
        fd = data.draw(st.sampled_from(self.fds))
        self.fds.remove(fd)
        self.env.close(fd)

    @rule(seconds=st.sampled_from([1, 30, 61]))
    def time_passes(self, seconds):
        self.env.advance(seconds)

    @invariant()
    def no_conflicting_owners(self):
        hinfo = self.env.net.hashinfo
        for port, tb in hinfo.bhash.items():
            assert tb.owners, "empty bucket kept"
            for sk in tb.owners:
                assert sk.num == port and sk.bind_bucket is tb
            binders = [s for s in tb.owners
                       if s.parent is None and s.state in (TcpState.TCP_CLOSE, TcpState.TCP_LISTEN)]
            for i, a in enumerate(binders):
                for b in binders[i + 1:]:
                    if not (inet_rcv_saddr_equal(a, b, True) or inet_rcv_saddr_equal(b, a, True)):
                        continue
                    share = (a.reuseport and b.reuseport and a.uid == b.uid)
                    if a.state == TcpState.TCP_LISTEN and b.state == TcpState.TCP_LISTEN:
                        assert share, (a, b)
                    else:
                        assert share or (a.reuse and b.reuse), (a, b)

    @invariant()
    def ephemeral_in_range(self):
        for fd in self.fds:
            sk = self.env.sk(fd)
            if sk.num and sk.num not in (5000, 5001):
                assert 40000 <= sk.num <= 40007


TestBindTable = BindTable.TestCase
TestBindTable.settings = SETTINGS


class AcceptQueue(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.env = Env()
        self.env.net.link_delay = 0.05
        self.backlog = 1
        self.lfd, self.port = self.env.server(backlog=self.backlog)
        self.clients: list[int] = []

    @rule()
    def connect(self):
        c = self.env.socket(AF_INET, 1 | SOCK_NONBLOCK)
        assert self.env.connect(c, "127.0.0.1", self.port) == -E.EINPROGRESS
        self.clients.append(c)

    @rule()
    def accept(self):
        fd = self.env.call("accept4", self.lfd, 0, 0, 0)
        assert fd == "WouldBlock" or fd >= 0

    @rule(seconds=st.sampled_from([0.05, 0.1, 1.0, 3.0]))
    def time_passes(self, seconds):
        self.env.run_until(self.env.clock.now() + seconds)

    @rule(backlog=st.integers(0, 4))
    def relisten(self, backlog):
        if backlog >= self.backlog:
            self.backlog = backlog
            assert self.env.listen(self.lfd, backlog) == 0

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def close_client(self, data):
        c = data.draw(st.sampled_from(self.clients))
        self.clients.remove(c)
        self.env.close(c)

    @invariant()
    def queue_bounded(self):
        sk = self.env.sk(self.lfd)
        assert sk.ack_backlog == len(sk.accept_queue.accept)
        assert sk.ack_backlog <= sk.max_ack_backlog + 1
        assert sk.accept_queue.qlen <= sk.max_ack_backlog + 1


TestAcceptQueue = AcceptQueue.TestCase
TestAcceptQueue.settings = SETTINGS


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40), family=st.sampled_from([AF_INET, AF_INET6]))
def test_sockaddr_decoder_fuzz(data, family):
    try:
        value = decode_sockaddr(data, family)
    except SyscallError as err:
        assert err.errno == E.EINVAL
        return
    assert isinstance(value, InetAddr) and 0 <= value.port <= 65535
    assert len(value.addr) == (4 if family == AF_INET else 16)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=130), family=st.sampled_from([AF_INET, AF_INET6]),
       addrlen=st.integers(-5, 140), call=st.sampled_from(["bind", "connect"]))
def test_bind_connect_any_bytes(data, family, addrlen, call):
    env = Env()
    fd = env.socket(family, 1 | SOCK_NONBLOCK)
    ptr = env.mem.alloc(data)
    r = env.call(call, fd, ptr, addrlen)
    assert isinstance(r, int) and r <= 0 or r == "WouldBlock"
