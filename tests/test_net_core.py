"""The core path through the model: socket, bind, listen, connect, accept,
getsockname/getpeername and close, with Linux's errnos."""
from __future__ import annotations

import pytest

from sysemu.abi.inet import TcpState
from sysemu.abi.socket import AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_NONBLOCK
from sysemu.kernel.file import O_NONBLOCK
from test_net_helpers import BLOCK, E, Env, wheel_slack


@pytest.fixture
def env():
    return Env()


def test_end_to_end_connect_accept(env):
    lfd, port = env.server()
    assert 32768 <= port <= 60999
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == 0
    cname = env.getname(c)
    assert cname[0] == "127.0.0.1" and cname[1] != port
    assert env.getname(c, peer=True) == ("127.0.0.1", port)
    a, peer = env.accept(lfd)
    assert a > c and peer == cname
    assert env.getname(a) == ("127.0.0.1", port)
    assert env.getname(a, peer=True) == cname
    ca, cc = env.sk(a), env.sk(c)
    assert ca.state == cc.state == TcpState.TCP_ESTABLISHED
    assert ca.peer is cc and cc.peer is ca
    assert env.sock(a).peer is env.sock(c)
    assert env.net.mib["ActiveOpens"] == 1 and env.net.mib["PassiveOpens"] == 1
    assert env.net.mib["CurrEstab"] == 2
    kinds = env.hooks.kinds()
    assert kinds.count("established") == 2 and ("connect_done", cc, 0) in env.hooks.events


def test_wire_log_handshake(env):
    seen = []
    env.net.wire.append(seen.append)
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    flags = [int(s.flags) for s in seen]
    assert flags == [0x02, 0x12, 0x10]          # SYN, SYN-ACK, ACK
    syn, synack, ack = seen
    assert synack.ack == (syn.seq + 1) & 0xFFFFFFFF
    assert ack.ack == (synack.seq + 1) & 0xFFFFFFFF and ack.seq == synack.ack


def test_accept_dequeues_only_in_commit(env):
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    listener = env.sk(lfd)
    r = env.call("accept4", lfd, 0, 0, 0, accepted=False)
    assert r == -E.EINTR and listener.ack_backlog == 1
    a, _ = env.accept(lfd)
    assert a >= 0 and listener.ack_backlog == 0
    assert env.accept(lfd, flags=SOCK_NONBLOCK)[0] == BLOCK   # blocking listener file


def test_accept_blocks_then_wakes(env):
    lfd, port = env.server()
    assert env.accept(lfd)[0] == BLOCK
    wb = env.last_block
    woken = []
    wb.waitqueue.add(lambda: woken.append(1))
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    assert woken == [1]
    assert env.accept(lfd)[0] >= 0


def test_accept_nonblocking_and_flags(env):
    lfd = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.task.files.lookup(lfd).f_flags & O_NONBLOCK
    env.bind(lfd, "127.0.0.1", 0)
    env.listen(lfd)
    assert env.accept(lfd)[0] == -E.EAGAIN
    assert env.call("accept4", lfd, 0, 0, 0x1) == -E.EINVAL
    assert env.call("accept4", 99, 0, 0, 0x1) == -E.EBADF      # EBADF before EINVAL
    port = env.getname(lfd)[1]
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd, flags=SOCK_NONBLOCK | SOCK_CLOEXEC)
    assert env.task.files.lookup(a).f_flags & O_NONBLOCK and a in env.task.files.cloexec


def test_accept_not_listening(env):
    s = env.socket()
    assert env.accept(s)[0] == -E.EINVAL
    env.bind(s, "127.0.0.1", 0)
    assert env.accept(s)[0] == -E.EINVAL


def test_accept_addrlen_rules(env):
    lfd, port = env.server()
    for _ in range(3):
        env.connect(env.socket(), "127.0.0.1", port)
    import struct
    buf = env.mem.alloc(bytes(16))
    ln = env.mem.alloc(struct.pack("<i", 4))           # short: truncated, true length back
    assert env.call("accept4", lfd, buf, ln, 0) >= 0
    assert struct.unpack("<i", env.mem.read(ln, 4))[0] == 16
    assert env.mem.read(buf, 4)[:2] == b"\x02\x00"
    ln = env.mem.alloc(struct.pack("<i", -1))
    assert env.call("accept4", lfd, buf, ln, 0) == -E.EINVAL
    assert env.call("accept4", lfd, buf, 0x10, 0) == -E.EFAULT
    assert env.sk(lfd).ack_backlog == 0        # Linux: each failed copy loses its connection


def test_ebadf_enotsock_passthrough(env):
    from sysemu.kernel.file import File
    fd = env.task.files.install(File(object()))
    for name, args in [("bind", (0, 0)), ("listen", (1,)), ("connect", (0, 0)),
                       ("getsockname", (0, 0)), ("shutdown", (0,)),
                       ("getsockopt", (1, 2, 0, 0)), ("setsockopt", (1, 2, 0, 4))]:
        assert env.call(name, 77, *args) == -E.EBADF, name
        assert env.call(name, fd, *args) == -E.ENOTSOCK, name
    assert env.call("accept4", fd, 0, 0, 0) == -E.ENOTSOCK


def test_socket_errnos(env):
    assert env.socket(AF_INET, 5) == -E.ESOCKTNOSUPPORT
    assert env.socket(AF_INET, 0) == -E.ESOCKTNOSUPPORT
    assert env.socket(AF_INET, 11) == -E.EINVAL
    assert env.socket(AF_INET, 1 | 0x10) == -E.EINVAL
    assert env.socket(AF_INET, 1, 17) == -E.EPROTONOSUPPORT
    assert env.socket(AF_INET, 1, 256) == -E.EPROTONOSUPPORT
    assert env.socket(AF_INET, 1, 263) == -E.EINVAL
    assert env.socket(AF_INET, 2) >= 0                       # UDP
    assert env.socket(AF_INET6, 2, 17) >= 0
    assert env.socket(AF_INET, 2, 136) == -E.EPROTONOSUPPORT # UDP-Lite: not served
    assert env.socket(AF_INET, 2, 1) == -E.EACCES            # ping: ping_group_range "1 0"
    assert env.socket(AF_INET, 3, 255) == -E.EPERM          # raw without CAP_NET_RAW
    assert env.socket(AF_INET, 1, 6) >= 0
    assert env.socket(AF_INET6, 1 | SOCK_CLOEXEC) in env.task.files.cloexec


def test_socket_trap_rule_and_passthrough(env):
    from sysemu.kernel.errors import HostPassthrough, SyscallError
    from sysemu.kernel.syscalls import HANDLERS
    # AF_INET, AF_INET6; AF_UNIX (made by the host side: host/rights.py); AF_VSOCK
    assert HANDLERS["socket"].trap_when == (((0, "eq", 2),), ((0, "eq", 10),),
                                            ((0, "eq", 1),), ((0, "eq", 40),))
    with pytest.raises(HostPassthrough):
        HANDLERS["socket"](env.task, [1, 1, 0])     # no host side here: the host's
    with pytest.raises(HostPassthrough):
        HANDLERS["socket"](env.task, [16, 2, 0])
    with pytest.raises(SyscallError) as refused:
        HANDLERS["socket"](env.task, [40, 1, 0])
    assert refused.value.errno == E.EAFNOSUPPORT


def test_new_file_hook_before_install(env):
    fd = env.socket()
    (kind, file), = [e for e in env.hooks.events if e[0] == "new_file"]
    assert env.task.files.lookup(fd) is file


def test_connect_refused(env):
    c = env.socket()
    assert env.connect(c, "127.0.0.1", 5555) == -E.ECONNREFUSED
    assert env.net.mib["OutRsts"] == 1 and env.net.mib["AttemptFails"] == 1
    assert env.sk(c).num == 0            # the ephemeral port went back
    assert env.connect(c, "127.0.0.1", 5555) == -E.ECONNREFUSED   # reconnect allowed
    lfd, port = env.server()
    assert env.connect(c, "127.0.0.1", port) == 0


def test_nonblocking_connect_sequence_matches_linux(env):
    """Probed on Linux 6.18: refused -> EINPROGRESS, ECONNREFUSED, then (after
    SO_ERROR) ECONNABORTED, then a new attempt (EINPROGRESS)."""
    from sysemu.abi.socket import SO_ERROR, SOL_SOCKET
    c = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.connect(c, "127.0.0.1", 5555) == -E.EINPROGRESS
    assert env.connect(c, "127.0.0.1", 5555) == -E.ECONNREFUSED
    assert env.connect(c, "127.0.0.1", 5555) == -E.EINPROGRESS
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == E.ECONNREFUSED
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == 0
    assert env.connect(c, "127.0.0.1", 5555) == -E.ECONNABORTED
    assert env.connect(c, "127.0.0.1", 5555) == -E.EINPROGRESS
    lfd, port = env.server()
    d = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.connect(d, "127.0.0.1", port) == -E.EINPROGRESS
    assert env.connect(d, "127.0.0.1", port) == 0
    assert env.connect(d, "127.0.0.1", port) == -E.EISCONN


def test_connect_errors(env):
    c = env.socket()
    assert env.connect(c, "10.1.2.3", 80) == -E.ENETUNREACH
    assert env.connect(c, "127.0.0.1", 80, addrlen=15) == -E.EINVAL
    assert env.connect(c, "127.0.0.1", 80, addrlen=1) == -E.EINVAL
    assert env.connect(c, "127.0.0.1", 80, addrlen=129) == -E.EINVAL
    assert env.call("connect", c, 0x10, 16) == -E.EFAULT
    assert env.connect(c, "::1", 80) == -E.EAFNOSUPPORT
    lfd, port = env.server()
    assert env.connect(lfd, "127.0.0.1", port) == -E.EISCONN     # listener


def test_connect_blocking_waits_in_syn_sent(env):
    env.net.link_delay = 0.5
    lfd, port = env.server()
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == BLOCK
    assert env.sk(c).state == TcpState.TCP_SYN_SENT
    assert env.connect(c, "127.0.0.1", port) == BLOCK   # the re-run attempt waits again
    env.run_until(env.clock.now() + 1.0)
    assert env.sk(c).state == TcpState.TCP_ESTABLISHED
    assert env.connect(c, "127.0.0.1", port) == 0
    assert env.connect(c, "127.0.0.1", port) == -E.EISCONN
    nb = env.socket(AF_INET, 1 | SOCK_NONBLOCK)
    assert env.connect(nb, "127.0.0.1", port) == -E.EINPROGRESS
    assert env.connect(nb, "127.0.0.1", port) == -E.EALREADY


def test_connect_af_unspec_disconnects(env):
    import struct
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    unspec = env.mem.alloc(struct.pack("<H", 0) + bytes(14))
    assert env.call("connect", c, unspec, 16) == 0
    assert env.sk(c).state == TcpState.TCP_CLOSE
    assert env.getname(c, peer=True) == -E.ENOTCONN
    assert env.connect(c, "127.0.0.1", port) == 0


def test_getsockname_unbound_and_getpeername(env):
    assert env.getname(env.socket()) == ("0.0.0.0", 0)
    assert env.getname(env.socket(AF_INET6)) == ("::", 0)
    assert env.getname(env.socket(), peer=True) == -E.ENOTCONN


def test_close_listener_resets_queued_children(env):
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    env.close(lfd)
    assert env.sk(c).state == TcpState.TCP_CLOSE
    from sysemu.abi.socket import SO_ERROR, SOL_SOCKET
    assert env.getint(c, SOL_SOCKET, SO_ERROR) == E.ECONNRESET
    assert env.net.mib["EstabResets"] >= 1
    assert port not in env.net.hashinfo.bhash or not any(
        s.state == TcpState.TCP_LISTEN for s in env.net.hashinfo.bhash[port].owners)
    s = env.socket()
    assert env.bind(s, "127.0.0.1", port) == 0          # the port is free again


def test_close_time_wait_holds_port(env):
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    cport = env.getname(c)[1]
    csk = env.sk(c)
    env.close(c)                    # active close: FIN_WAIT1 until the (delayed) ACK
    assert csk.state == TcpState.TCP_FIN_WAIT1
    assert env.sk(a).state == TcpState.TCP_CLOSE_WAIT
    env.advance(0.05)
    assert csk.state == TcpState.TCP_FIN_WAIT2
    env.close(a)                    # passive side: LAST_ACK -> CLOSE
    assert csk.state == TcpState.TCP_TIME_WAIT
    s = env.socket()
    assert env.bind(s, "127.0.0.1", cport) == -E.EADDRINUSE
    env.advance(59)
    assert env.bind(s, "127.0.0.1", cport) == -E.EADDRINUSE
    env.advance(1 + wheel_slack(60))       # TIME_WAIT's 60 s on the wheel: up to 62 s
    assert csk.state == TcpState.TCP_CLOSE
    assert env.bind(s, "127.0.0.1", cport) == 0
    assert ("released", csk) in env.hooks.events


def test_close_unread_sends_rst(env):
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    csk = env.sk(c)
    env.close(a, unread=True)
    assert csk.state == TcpState.TCP_CLOSE and csk.sk_err == E.ECONNRESET
    assert env.net.mib["TCPAbortOnClose"] == 1


def test_linger_zero_rst_no_time_wait(env):
    import struct
    from sysemu.abi.socket import SO_LINGER, SOL_SOCKET
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    assert env.setsockopt(c, SOL_SOCKET, SO_LINGER, struct.pack("<ii", 1, 0)) == 0
    cport = env.getname(c)[1]
    csk, ask = env.sk(c), env.sk(a)
    env.close(c)
    assert csk.state == TcpState.TCP_CLOSE and ask.state == TcpState.TCP_CLOSE
    s = env.socket()
    assert env.bind(s, "127.0.0.1", cport) == 0


def test_shutdown(env):
    s = env.socket()
    assert env.call("shutdown", s, 0) == -E.ENOTCONN
    assert env.call("shutdown", s, 3) == -E.EINVAL
    assert env.call("shutdown", s, -1) == -E.EINVAL
    lfd, port = env.server()
    assert env.call("shutdown", lfd, 1) == 0             # SHUT_WR: listener untouched
    assert env.sk(lfd).state == TcpState.TCP_LISTEN
    assert env.call("shutdown", lfd, 2) == 0             # stops listening
    assert env.sk(lfd).state == TcpState.TCP_CLOSE
    assert env.accept(lfd)[0] == -E.EINVAL
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    assert env.call("shutdown", c, 1) == 0
    assert env.sk(c).state == TcpState.TCP_FIN_WAIT1
    assert env.sk(a).state == TcpState.TCP_CLOSE_WAIT
    env.advance(0.05)                                    # the delayed ACK of the FIN
    assert env.sk(c).state == TcpState.TCP_FIN_WAIT2


def test_close_both_quickly_fin_carries_ack(env):
    seen = []
    env.net.wire.append(seen.append)
    lfd, port = env.server()
    c = env.socket()
    env.connect(c, "127.0.0.1", port)
    a, _ = env.accept(lfd)
    csk, ask = env.sk(c), env.sk(a)
    del seen[:]
    env.close(c)
    env.close(a)                    # within the ATO: its FIN carries the ACK
    assert [int(s.flags) for s in seen] == [0x11, 0x11, 0x10]
    assert csk.state == TcpState.TCP_TIME_WAIT
    assert ask.state == TcpState.TCP_CLOSE and ("released", ask) in env.hooks.events


def test_io_uring_setup_enosys(env):
    assert env.call("io_uring_setup", 8, 0) == -E.ENOSYS


def test_tcp_states_are_tcp_states_own_members():
    """TcpStates (what the TCP modules read states from) holds TcpState's members
    themselves: same objects, names and values; nothing more."""
    from sysemu.abi.inet import TcpStates
    plain = {name: value for name, value in vars(TcpStates).items() if name.startswith("TCP_")}
    assert plain == dict(TcpState.__members__)
    assert all(plain[m.name] is m for m in TcpState)


@pytest.mark.parametrize("order", ["server", "client"])
def test_model_connrate_bench_runs_its_connections(order):
    """bench/model_connrate.py (the in-process benchmark of a connection's model work)
    makes its n connections, each opened both ways and closed without a reset."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "bench" / "model_connrate.py"
    spec = importlib.util.spec_from_file_location("model_connrate", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    box = bench.run(30, server_first=order == "server")
    bench.check(box, 30)
    # the side that closed first holds TIME_WAIT; the other side is gone
    states = sorted(TcpState(sk.state).name for sk in box.net.socks)
    assert states == ["TCP_LISTEN"] + ["TCP_TIME_WAIT"] * 30, states[:4]
