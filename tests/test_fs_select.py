"""select/poll in process (no host): fs/select.py's core on the model's sockets, a fake
clock and in-memory user memory; and the filter's plan for the four calls."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import sysemu.fs.select  # noqa: F401  (registers poll, ppoll, select, pselect6)
from sysemu.abi.errno import Errno
from sysemu.abi.poll import POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLRDNORM, POLLWRNORM
from sysemu.arch.x86.entry import AUDIT_ARCH_X86_64, Syscalls
from sysemu.fs.select import PollWqueues
from sysemu.host.seccomp import plan
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from test_net_datapath import DataEnv
from test_net_helpers import BLOCK

NR = {"poll": 7, "select": 23, "pselect6": 270, "ppoll": 271}


@pytest.fixture
def env():
    return DataEnv()


def pollfds(env, *entries):
    return env.mem.alloc(b"".join(struct.pack("=iHh", fd, ev, 0) for fd, ev in entries))


def revents(env, addr, n):
    return [struct.unpack("=ihh", env.mem.read(addr + 8 * i, 8))[2] for i in range(n)]


def test_masks_of_a_fresh_a_connected_and_a_listening_socket(env):
    lfd, c, s = env.pair()
    fresh = env.socket()
    ufds = pollfds(env, (fresh, POLLIN | POLLOUT), (c, POLLIN | POLLOUT), (lfd, POLLIN),
                   (99, POLLIN), (-1, POLLIN))
    assert env.dcall("poll", ufds, 5, 0) == 3
    assert revents(env, ufds, 5) == [POLLOUT | POLLHUP, POLLOUT, 0, POLLNVAL, 0]
    assert env.send(c, b"hi") == 2
    assert env.dcall("poll", ufds, 5, 0) == 3
    ufds = pollfds(env, (s, 0xFFFF))
    assert env.dcall("poll", ufds, 1, 0) == 1
    assert revents(env, ufds, 1) == [POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM]


def test_a_wait_leaves_nothing_on_the_sockets_queues(env):
    """poll_wait() on each socket, poll_freewait() when the wait ends: a call that waits
    and times out again and again adds nothing to a socket's wait queue."""
    _, c, s = env.pair()
    ufds = pollfds(env, (s, POLLIN), (c, POLLIN))
    for _ in range(3):
        assert env.dcall("poll", ufds, 2, 1000) is BLOCK
        wb = env.last_block
        assert wb.on_timeout is None and wb.intr_errno == Errno.EINTR
        assert wb.deadline == pytest.approx(env.clock.now() + 1.0)
        sk = env.task.files.lookup(s).private_data.sk
        assert len(sk.wait) == 1
        wb.cleanup()
        assert len(sk.wait) == 0 and len(wb.waitqueue) == 0


def test_data_wakes_the_wait_and_the_attempt_answers(env):
    _, c, s = env.pair()
    ufds = pollfds(env, (s, POLLIN))
    assert env.dcall("poll", ufds, 1, -1) is BLOCK
    wb = env.last_block
    assert wb.deadline is None
    woken = []
    wb.waitqueue.add(lambda: woken.append(1))
    env.send(c, b"x")
    assert woken
    wb.cleanup()
    assert env.dcall("poll", ufds, 1, -1) == 1 and revents(env, ufds, 1) == [POLLIN]


def test_the_attempt_at_the_deadline_answers_0_and_writes_the_time_left(env):
    """do_poll()'s last pass: run again with the first attempt's deadline (Task.deadline,
    as the supervisor sets it), it finds nothing and returns 0; ppoll writes back 0."""
    _, c, s = env.pair()
    ufds = pollfds(env, (s, POLLIN))
    ts = env.mem.alloc(struct.pack("=qq", 0, 250_000_000))
    assert env.dcall("ppoll", ufds, 1, ts, 0, 8) is BLOCK
    deadline = env.last_block.deadline
    env.last_block.cleanup()
    env.clock.advance(0.25)
    env.task.deadline = deadline
    try:
        assert env.dcall("ppoll", ufds, 1, ts, 0, 8) == 0
    finally:
        env.task.deadline = None
    assert struct.unpack("=qq", env.mem.read(ts, 16)) == (0, 0)


def test_select_checks_in_linux_order(env):
    _, c, s = env.pair()
    fdset = env.mem.alloc((1 << c).to_bytes(8, "little"))
    tv = env.mem.alloc(struct.pack("=qq", 0, -1))
    assert env.dcall("select", c + 1, fdset, 0, 0, tv) == -Errno.EINVAL
    assert env.dcall("select", -1, fdset, 0, 0, 0) == -Errno.EINVAL
    tv = env.mem.alloc(struct.pack("=qq", 2, 0))
    assert env.dcall("select", c + 1, 8, 0, 0, tv) == -Errno.EFAULT
    bad = env.mem.alloc((1 << 60).to_bytes(8, "little"))
    assert env.dcall("select", 61, bad, 0, 0, tv) == -Errno.EBADF
    out = env.mem.alloc((1 << c | 1 << s).to_bytes(8, "little"))
    assert env.dcall("select", 64, 0, out, 0, tv) == 2
    assert int.from_bytes(env.mem.read(out, 8), "little") == 1 << c | 1 << s
    assert struct.unpack("=qq", env.mem.read(tv, 16)) == (2, 0)    # the fake clock stood


def test_poll_past_rlimit_nofile_and_bad_pointers(env):
    assert env.dcall("poll", 8, 1025, 0) == -Errno.EINVAL       # FdTable's 1024
    assert env.dcall("poll", 8, 1, 0) == -Errno.EFAULT
    assert env.dcall("poll", 8, 0, 0) == 0


def test_pollwqueues_freewait_runs_the_hosts_cancel_once():
    pt, cancelled = PollWqueues(), []
    pt.unwatch = lambda: cancelled.append(1)
    pt.freewait()
    pt.freewait()
    assert cancelled == [1]


def test_filter_traps_them_only_in_the_model_data_path():
    """The default data path's filter is unchanged (none of the four trapped); the model
    one traps poll and select always, ppoll without a mask, pselect6 without its block."""
    native = {nr for nr, _ in plan(Syscalls(datapath="native"))["64"]}
    assert not native & set(NR.values())
    model = dict(plan(Syscalls(datapath="model"))["64"])
    assert model[NR["poll"]] is None and model[NR["select"]] is None
    assert model[NR["ppoll"]] == (((3, "eq", 0),),)
    assert model[NR["pselect6"]] == (((5, "eq", 0),),)
    assert not {7, 23, 270, 271} & {nr for nr, _ in plan(Syscalls(datapath="model"))["i386"]}


def test_outside_the_model_data_path_the_host_answers(env):
    env.kernel.datapath = "native"
    _, c, _ = env.pair()
    ufds = pollfds(env, (c, POLLOUT))
    with pytest.raises(HostPassthrough):
        env.sc.dispatch(env.task, AUDIT_ARCH_X86_64, NR["poll"], [ufds, 1, 0, 0, 0, 0])


# -- the decoders fuzzed: a value or SyscallError, nothing else; never a wait for ever ----

WORDS = st.one_of(st.integers(-2**63, 2**64 - 1), st.sampled_from([0, 1, 64, 1024, -1]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=96), nfds=WORDS, timeout=WORDS, nr=st.sampled_from(list(NR)),
       extra=st.lists(WORDS, min_size=3, max_size=3))
def test_fuzzed_arguments_give_a_value_an_error_or_a_wait(data, nfds, timeout, nr, extra):
    env = DataEnv()
    _, c, s = env.pair()
    buf = env.mem.alloc(data or b"\0")
    tbuf = env.mem.alloc((data[:16] or b"\0").ljust(16, b"\0"))
    args = {"poll": (buf, nfds, timeout),
            "ppoll": (buf, nfds, tbuf if extra[0] & 1 else 0, 0, extra[1]),
            "select": (nfds, buf, buf if extra[0] & 2 else 0, 0, tbuf if extra[0] & 1 else 0),
            "pselect6": (nfds, buf, 0, buf if extra[0] & 2 else 0, tbuf, 0)}[nr]
    try:
        result = env.sc.dispatch(env.task, AUDIT_ARCH_X86_64, NR[nr],
                                 [a & (2**64 - 1) for a in args] + [0] * (6 - len(args)))
    except SyscallError:
        return
    except WouldBlock as wb:
        wb.cleanup()
        sk = env.task.files.lookup(s).private_data.sk
        assert len(sk.wait) == 0
        return
    assert isinstance(result, int) and result >= 0
