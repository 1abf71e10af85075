"""The fast paths of the host side (issue 10): the listener's wake-up mode, user-memory
copies, descriptor identity. Behaviour only: no timing decides pass or fail here."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from sysemu.host.memory import ProcessMemory
from sysemu.kernel.errors import SyscallError

SYSEMU = [sys.executable, "-m", "sysemu.cli"]


def kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


def test_run_verbose_says_the_wake_up_mode():
    done = subprocess.run([*SYSEMU, "run", "-v", "--", "true"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "listener:" in line]
    assert len(lines) == 1, done.stderr
    if kernel_at_least(6, 6):
        assert "synchronous wake-up" in lines[0] and "asynchronous" not in lines[0]
    else:
        assert "asynchronous wake-up" in lines[0]


def test_run_without_the_flag_falls_back_and_still_serves():
    """SYSEMU_SYNC_WAKEUP=0 takes the path an older kernel takes: the program still runs
    and its trapped calls are still answered."""
    env = dict(os.environ, SYSEMU_SYNC_WAKEUP="0")
    script = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
              "print(s.getsockname()[0])")
    done = subprocess.run([*SYSEMU, "run", "-v", "--", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60, env=env)
    assert (done.returncode, done.stdout) == (0, "127.0.0.1\n"), done.stderr
    assert "asynchronous wake-up (SYSEMU_SYNC_WAKEUP=0)" in done.stderr


def test_process_memory_round_trip_and_faults():
    mem = ProcessMemory(os.getpid())
    buf = ctypes.create_string_buffer(64)
    addr = ctypes.addressof(buf)
    mem.write(addr, b"abcdef")
    mem.write(addr + 1, bytearray(b"XY"))
    assert mem.read(addr, 6) == b"aXYdef"
    assert buf.raw[:6] == b"aXYdef"
    big = os.urandom(10000)
    bigbuf = ctypes.create_string_buffer(len(big))
    mem.write(ctypes.addressof(bigbuf), big)
    assert mem.read(ctypes.addressof(bigbuf), len(big)) == big
    for bad in (lambda: mem.read(8, 4), lambda: mem.write(8, b"x"),
                lambda: mem.read(-1, 4), lambda: mem.read(addr, -1)):
        with pytest.raises(SyscallError):
            bad()


def test_process_memory_writev_in_order_and_faults():
    mem = ProcessMemory(os.getpid())
    buf = ctypes.create_string_buffer(32)
    addr = ctypes.addressof(buf)
    mem.writev(((addr, b"abcd"), (addr + 8, b"\x10\x00\x00\x00"), (addr + 2, b"Z")))
    assert buf.raw[:12] == b"abZd\0\0\0\0\x10\0\0\0"
    # A faulting second piece: the first is written, as two separate copies leave it.
    with pytest.raises(SyscallError):
        mem.writev(((addr, b"XY"), (8, b"\0\0\0\0")))
    assert buf.raw[:2] == b"XY"
    with pytest.raises(SyscallError):
        mem.writev(((8, b"\0"), (addr, b"Q")))
    assert buf.raw[:1] == b"X"
    many = tuple((addr + i, bytes([65 + i])) for i in range(6))   # beyond one batch
    mem.writev(many)
    assert buf.raw[:6] == b"ABCDEF"


FD_IDENTITY_PROBE = r'''
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)

def name(fd):
    buf, size = ctypes.create_string_buffer(128), ctypes.c_uint32(128)
    ret = libc.getsockname(fd, buf, ctypes.byref(size))
    if ret < 0:
        return "errno %d" % ctypes.get_errno()
    return "family %d" % int.from_bytes(buf.raw[:2], "little")

def inet(flags=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | flags)
    s.bind(("127.0.0.1", 0))
    return s

if len(sys.argv) > 1:                       # after exec: the CLOEXEC socket is gone
    print("after exec", name(int(sys.argv[1])))
    sys.exit(0)
s = inet(); n = s.fileno()
print("socket", name(n), name(n))
s.close()
f = os.open("/dev/null", os.O_RDONLY)       # close, then the number reused
print("reused", f == n, name(n))
os.close(f)
s = inet(); print("socket again", s.fileno() == n, name(n))
u = socket.socket(socket.AF_UNIX); u.bind("\0sysemu-fd-identity-%d" % os.getpid())
os.dup2(u.fileno(), n)                      # dup2 over it
print("dup2", name(n))
t = inet(); m = t.fileno(); os.dup2(m, n)   # and a socket of ours back over it
print("dup2 back", name(n), name(m))
t.close(); print("close one copy", name(n), name(m))
os.close(n)
c = inet(socket.SOCK_CLOEXEC); k = c.fileno(); print("cloexec", name(k))
sys.stdout.flush()
os.execv(sys.executable, [sys.executable, sys.argv[0], str(k)])
'''


def test_fd_identity_never_stale(tmp_path):
    """A descriptor is looked up as it is now: after close and reuse of its number, dup2
    over it, and exec with close-on-exec, sysemu answers as the host does."""
    script = tmp_path / "fd_identity.py"
    script.write_text(FD_IDENTITY_PROBE)
    argv = [sys.executable, str(script)]
    want = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    got = subprocess.run([*SYSEMU, "run", "--", *argv], capture_output=True, text=True,
                         timeout=60)
    assert want.returncode == 0, want.stderr
    assert "after exec errno 9" in want.stdout and "reused True errno 88" in want.stdout
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_unix_diag_inodes_sees_open_and_closed_ends():
    """The sweep's fast dump: every end open is listed, a closed one is not, and it lists
    what the decoded dump lists (for our sockets: other processes come and go)."""
    import socket

    from sysemu.host.sockdiag import UnixDiag
    diag = UnixDiag()
    try:
        pairs = [socket.socketpair() for _ in range(1500)]    # replies span many chunks
        ours = {os.fstat(s.fileno()).st_ino for pair in pairs for s in pair}
        fast, full = diag.inodes(), diag.dump()
        assert ours <= fast and ours <= set(full)
        gone = os.fstat(pairs[0][0].fileno()).st_ino
        pairs[0][0].close()
        assert gone not in diag.inodes()
        assert (ours - {gone}) <= diag.inodes()
    finally:
        diag.close()
        for pair in pairs:
            for s in pair:
                s.close()


def test_sweep_period_follows_the_dump_cost(monkeypatch):
    """The sweep's period is SWEEP_COST_FACTOR times the last dump's duration, kept within
    [SWEEP_MIN, SWEEP_INTERVAL] (the clock is faked: no timing in the assertion)."""
    from sysemu.host import placeholder
    from sysemu.host.reactor import Reactor

    class Diag:
        inodes = staticmethod(lambda: set())

    reactor = Reactor()
    phs = placeholder.Placeholders(reactor, lambda text: None)
    try:
        phs._diag = Diag()
        for cost, period in ((0.0001, placeholder.SWEEP_MIN), (0.002, 0.002 * placeholder.SWEEP_COST_FACTOR),
                             (0.5, placeholder.SWEEP_INTERVAL)):
            ticks = iter((10.0, 10.0 + cost))
            monkeypatch.setattr(placeholder, "perf_counter", lambda: next(ticks))
            phs.handed[1] = object()
            phs.sweep()
            assert phs._sweep_period == pytest.approx(period)
            assert not phs.handed          # inode 1 is not in the dump: released
    finally:
        reactor.close()



def test_pidfds_borrow_from_the_process_that_has_the_number_now():
    """Pidfds keeps a pidfd per pid: a borrow is one pidfd_getfd. A kept pidfd whose
    process is gone is not trusted: the borrow comes from the process that has the
    number now, or fails as getfd_of() does; at most `limit` pidfds are kept."""
    from sysemu.host.libc import Pidfds

    me = os.getpid()
    pidfds = Pidfds(limit=1)
    r, w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             stdin=subprocess.DEVNULL)
    try:
        dup = pidfds.getfd(me, w)
        assert os.fstat(dup).st_ino == os.fstat(w).st_ino
        os.close(dup)
        gone = subprocess.Popen(["true"])
        gone_fd = os.pidfd_open(gone.pid)
        gone.wait()                             # reaped: its pidfd names no process
        pidfds.forget(me)
        pidfds._fds[me] = gone_fd               # as if our number had been its
        dup = pidfds.getfd(me, w)
        assert os.fstat(dup).st_ino == os.fstat(w).st_ino
        os.close(dup)
        with pytest.raises(OSError):
            pidfds.getfd(me, 1 << 20)           # no such descriptor: EBADF
        with pytest.raises(ProcessLookupError):
            pidfds.getfd(gone.pid, 0)           # no such process
        os.close(pidfds.getfd(child.pid, 0))
        assert list(pidfds._fds) == [child.pid]  # bounded: the oldest went first
    finally:
        child.kill()
        child.wait()
        pidfds.close()
        os.close(r)
        os.close(w)


def test_sock_fields_are_slots_with_their_defaults_and_containers_are_not_shared():
    """Sock's fields are slots (struct_fields()), each Sock starting at the class body's
    defaults; what a Sock mutates in place is its own; a new Sock has an empty __dict__
    (every field a slot: memory per connection)."""
    from sysemu.net.core import Sock

    a, b = Sock(None, 2, 6), Sock(None, 2, 6)
    for name in ("mc_list", "sockflags", "tcp_opts", "sndq", "rcvq", "wait"):
        assert getattr(a, name) is not getattr(b, name), name
    assert "num" in Sock.__slots__ and "state" in Sock.__slots__
    assert vars(a) == {} and (a.num, a.rcvbuf, a.peer) == (0, 131072, None)
    a.num, a.sndq[:] = 5, b"x"
    assert (b.num, bytes(b.sndq)) == (0, b"")
    a.not_a_field = 1           # a name the body does not declare still works
    assert vars(a) == {"not_a_field": 1}
