"""The host path end to end with test-only handlers: a real program, a real seccomp filter,
the Supervisor in this process (no global registration), handlers reading and writing
the program's memory, waiting, being woken, timing out and being interrupted."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sysemu.abi.errno import Errno
from sysemu.arch.x86.entry import Syscalls
from sysemu.host.memory import ProcessMemory
from sysemu.host.placeholder import Placeholder
from sysemu.host.reactor import Reactor
from sysemu.host.seccomp import build_filter
from sysemu.host.supervisor import Supervisor
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.kernel.file import File
from sysemu.kernel.syscalls import DECODERS, CLong, CULong, Handler, InstallFd, UserPtr
from sysemu.kernel.wait import WaitQueue

C_DIR = Path(__file__).parent / "c"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="session")
def probe(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("host_c") / "host_probe"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(out), str(C_DIR / "host_probe.c")],
                   check=True)
    return str(out)


def handler(name, func):
    """A Handler built locally, like @syscall would, without registering it."""
    import inspect
    params = list(inspect.signature(func).parameters.values())[1:]
    return Handler(name, func, tuple(DECODERS[p.annotation] for p in params))


class World:
    """The test handlers and what they saw."""

    def __init__(self):
        self.log: list[str] = []
        self.ready = False
        self.q_forever = WaitQueue("forever")
        self.q_ready = WaitQueue("ready")
        self.q_never = WaitQueue("never")
        self.kept: list[socket.socket] = []
        self.placeholders = None        # the supervisor's, once it exists

    def handlers(self):
        def sys_uname(task, name: UserPtr) -> int:
            task.mem.write(name, b"sysemu\0")
            return 0

        def sys_mq_unlink(task, ptr: UserPtr, size: CULong) -> int:
            return sum(task.mem.read(ptr, size))

        def sys_acct(task, arg: CLong) -> int:
            if arg == 0:                      # blocks until interrupted
                task.on_commit(lambda: self.log.append("committed-0"))
                raise WouldBlock(self.q_forever)
            if arg == 1:                      # blocks until acct(2)
                if not self.ready:
                    raise WouldBlock(self.q_ready)
                task.on_commit(lambda: self.log.append("committed-1"))
                return 7
            if arg == 2:
                self.ready = True
                self.q_ready.wake_up()
                return 2
            if arg == 3:                      # times out
                now = task.kernel.clock.now()
                raise WouldBlock(self.q_never, now + 0.05, Errno.ETIMEDOUT)
            if arg == 4:                      # answered after the call was cancelled
                task.on_commit(lambda: self.log.append("committed-4"))
                return 4
            if arg == 5:                      # a new descriptor: fd_install
                ours, theirs = socket.socketpair()
                self.kept.append(ours)
                file = File(object())
                self.placeholders.track(Placeholder(file, theirs.fileno(), None, "socket"))
                self.kept.append(theirs)
                return InstallFd(file, cloexec=True,
                                 commit=lambda fd: self.log.append(f"installed {fd}"))
            if arg == 9:                      # wakes the interrupted call's queue
                self.q_forever.wake_up()
                return 9
            if arg == 13:
                raise RuntimeError("a bug in a handler")
            raise SyscallError(Errno.EINVAL)

        def sys_getppid(task) -> int:   # answers the caller's thread group id
            self.log.append(("getppid", task.pid, task.tid))
            return task.pid

        return {"uname": handler("uname", sys_uname),
                "getppid": handler("getppid", sys_getppid),
                "mq_unlink": handler("mq_unlink", sys_mq_unlink),
                "acct": handler("acct", sys_acct)}


class RecordingSupervisor(Supervisor):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.seen = []

    def handle(self, notif):
        self.seen.append(notif)
        if notif.args[0] == 4:   # hold the answer until a signal has cancelled the call
            for _ in range(500 if not self.filter.wait_killable else 35):
                if not self.listener.id_valid(notif.id):
                    break
                time.sleep(0.01)
        super().handle(notif)


class InterruptibleSupervisor(RecordingSupervisor):
    """The filter loaded without WAIT_KILLABLE_RECV (as on Linux before 5.19): any signal
    ends the wait of a received call."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.filter.wait_killable = False


def run_probe(probe, tmp_path, mode, world=None, supervisor_cls=Supervisor, keep=False):
    world = world or World()
    sup = supervisor_cls(Syscalls(handlers=world.handlers()))
    world.placeholders = sup.placeholders
    out = tmp_path / f"{mode}.out"
    with open(out, "w") as f:
        pid = sup.spawn([probe, mode], stdio=(None, f.fileno(), None))
        status = sup.wait_child(pid)
    if not keep:
        sup.detach()
    return status, out.read_text(), world, sup


def lines(text):
    return dict(line.split(" ", 1) for line in text.splitlines())


def test_user_memory_round_trip_and_efault(probe, tmp_path):
    status, out, _, _ = run_probe(probe, tmp_path, "memory")
    got = lines(out)
    assert status == 0, out
    assert got["uname-good"] == "0"
    assert got["uname-text"] == "sysemu"          # our handler wrote the program's buffer
    assert got["uname-bad"] == f"-1 errno={Errno.EFAULT}"
    assert got["cross-page"] == str(sum(range(1, 65)))   # a read that crosses pages
    assert got["cross-unmapped"] == f"-1 errno={Errno.EFAULT}"
    assert got["bad-len-zero"] == "0"             # zero bytes: no access, no fault


def test_interrupted_call_commits_nothing(probe, tmp_path):
    status, out, world, sup = run_probe(probe, tmp_path, "interrupt",
                                        supervisor_cls=RecordingSupervisor, keep=True)
    try:
        got = lines(out)
        assert status == 0, out
        assert got["blocked"] == f"-1 errno={Errno.EINTR}"   # SIGALRM without SA_RESTART
        assert got["after"] == "9"
        assert "committed-0" not in world.log
        assert not sup.parked                    # the cancelled call was dropped
        stale = [n for n in sup.seen if n.args[0] == 0]
        assert stale
        # An answer to a call a signal cancelled is refused, and reported, not raised.
        assert sup.listener.send_value(stale[0].id, 0) is False
        assert sup.listener.id_valid(stale[0].id) is False
    finally:
        sup.detach()


def test_a_signal_does_not_interrupt_a_received_call(probe, tmp_path):
    """SIGALRM every 100 ms while sysemu holds the answer for 0.35 s: the wait is killable
    only (WAIT_KILLABLE_RECV), so the call returns the handler's value and its commit runs,
    as a Linux call that does not wait is not interrupted (the handler runs after it)."""
    release = tuple(int(part) for part in os.uname().release.split(".")[:2])
    if release < (5, 19):
        pytest.skip(f"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs Linux 5.19 (this: {release})")
    status, out, world, sup = run_probe(probe, tmp_path, "slow",
                                        supervisor_cls=RecordingSupervisor)
    assert status == 0, out
    assert lines(out)["slow"] == "4"
    assert [n.args[0] for n in sup.seen].count(4) == 1        # no restart
    assert "committed-4" in world.log


def test_answer_to_a_cancelled_call_runs_no_commit(probe, tmp_path):
    status, out, world, sup = run_probe(probe, tmp_path, "slow",
                                        supervisor_cls=InterruptibleSupervisor)
    assert status == 0, out
    # The handler did run and returned 4 with a commit; the kernel refused the answer
    # (ENOENT: interrupted), so the program saw EINTR and the commit never ran.
    assert lines(out)["slow"] == f"-1 errno={Errno.EINTR}"
    assert any(n.args[0] == 4 for n in sup.seen)
    assert "committed-4" not in world.log


def test_install_fd_lands_in_the_program(probe, tmp_path):
    status, out, world, _ = run_probe(probe, tmp_path, "install")
    got = lines(out)
    assert status == 0, out
    fd = int(got["install"])
    assert fd >= 3
    assert got["cloexec"] == "1"                  # newfd_flags O_CLOEXEC
    assert got["write"] == "4"
    assert world.log == [f"installed {fd}"]       # commit(newfd) after the answer
    assert world.kept[0].recv(16) == b"ping"      # the program wrote into our placeholder


def test_host_file_table_lookup():
    from sysemu.host.files import HostFileTable
    from sysemu.kernel.errors import HostPassthrough
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        file = File(object())
        ph = Placeholder(file, a.fileno(), None, "socket")
        table = HostFileTable(os.getpid(), {ph.inode: ph})
        assert table.lookup(a.fileno()) is file
        assert ph.holder == (os.getpid(), a.fileno())
        for fd in (b.fileno(), r, 100000, -1):    # host socket, pipe, missing, negative
            with pytest.raises(HostPassthrough):
                table.lookup(fd)
    finally:
        for s in (a, b):
            s.close()
        os.close(r)
        os.close(w)


def test_task_of_a_thread_has_the_process_tgid(probe, tmp_path):
    world = World()
    sup = Supervisor(Syscalls(handlers=world.handlers()))
    world.placeholders = sup.placeholders
    out = tmp_path / "tgid.out"
    with open(out, "w") as f:
        pid = sup.spawn([probe, "tgid"], stdio=(None, f.fileno(), None))
        status = sup.wait_child(pid)
    sup.detach()
    got = lines(out.read_text())
    assert status == 0
    assert got == {"main-tgid": str(pid), "thread-tgid": str(pid), "thread-tid-differs": "1"}
    (_, pid1, tid1), (_, pid2, tid2) = world.log
    assert pid1 == pid2 == tid1 == pid and tid2 != pid


def test_woken_call_completes_and_commits(probe, tmp_path):
    status, out, world, sup = run_probe(probe, tmp_path, "wake")
    got = lines(out)
    assert status == 0, out
    assert got["woken"] == "7"
    assert got["wake"] == "2"
    assert world.log == ["committed-1"]
    assert not sup.parked


def test_parked_call_times_out(probe, tmp_path):
    status, out, _, sup = run_probe(probe, tmp_path, "timeout")
    assert status == 0, out
    assert lines(out)["timeout"] == f"-1 errno={Errno.ETIMEDOUT}"


def test_handler_bug_answers_enosys_and_supervisor_survives(probe, tmp_path, capfd):
    src = tmp_path / "bug.c"
    src.write_text('#include <stdio.h>\n#include <errno.h>\n#include <unistd.h>\n'
                   '#include <sys/syscall.h>\nint main(void){for(int i=0;i<2;i++){'
                   'long r=syscall(SYS_acct,13L);printf("%ld %d\\n",r,errno);}return 0;}\n')
    exe = tmp_path / "bug"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    status, out, _, _ = run_probe(str(exe), tmp_path, "x")
    assert status == 0
    assert out.splitlines() == [f"-1 {Errno.ENOSYS}"] * 2
    err = capfd.readouterr().err
    assert err.count("internal error in acct") == 1      # logged once per kind
    assert "RuntimeError: a bug in a handler" in err


def test_no_served_syscalls_loads_no_filter(tmp_path):
    sup = Supervisor(Syscalls(handlers={}))
    assert sup.filter.empty
    out = tmp_path / "status"
    with open(out, "w") as f:
        status = sup.serve_child(["grep", "^Seccomp:", "/proc/self/status"],
                                 stdio=(None, f.fileno(), None))
    assert status == 0
    assert out.read_text().split() == ["Seccomp:", "0"]


def test_filter_is_installed_when_serving(probe, tmp_path):
    world = World()
    sup = Supervisor(Syscalls(handlers=world.handlers()))
    world.placeholders = sup.placeholders
    out = tmp_path / "status"
    with open(out, "w") as f:
        status = sup.serve_child(["grep", "^Seccomp:", "/proc/self/status"],
                                 stdio=(None, f.fileno(), None))
    assert status == 0
    assert out.read_text().split() == ["Seccomp:", "2"]


def test_filter_plan_narrows_with_argument_rules():
    rules = (((0, "eq", 5),), ((1, "masked_eq", 2, 3),))
    handlers = {"getppid": Handler("getppid", lambda t: 1, ()),
                "uname": Handler("uname", lambda t, a: 0, (int,), trap_when=rules)}
    filt = build_filter(Syscalls(handlers=handlers))
    assert dict(filt.rules["64"]) == {110: None, 63: rules}
    assert dict(filt.rules["i386"]) == {64: None, 122: rules}
    pfc = filt.export_pfc()
    assert "$syscall == 110" in pfc and "$syscall == 1073741934" in pfc  # x64 and x32
    assert "$a1.lo32 & 0x00000003 == 2" in pfc


def test_process_memory_of_a_live_process():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        buf = bytearray(b"hello")
        import ctypes
        cbuf = (ctypes.c_char * 8192).from_buffer(bytearray(8192))
        addr = ctypes.addressof(cbuf)        # same address in the forked child
        mem = ProcessMemory(pid)
        with pytest.raises(SyscallError) as exc:
            mem.read(8, 4)
        assert exc.value.errno == Errno.EFAULT
        mem.write(addr + 4090, bytes(buf))      # crosses a page in the child only
        assert mem.read(addr + 4090, 5) == b"hello"
        assert bytes(cbuf[4090:4095]) == b"\0" * 5   # our copy is untouched
    finally:
        os.write(w, b"x")
        os.close(w)
        os.waitpid(pid, 0)


def test_reactor_timers_and_readers():
    reactor = Reactor()
    fired = []
    h = reactor.call_at(reactor.time() + 0.01, lambda: fired.append("a"))
    h2 = reactor.call_at(reactor.time(), lambda: fired.append("b"))
    h2.cancel()
    reactor.call_soon(lambda: fired.append("soon"))
    r, w = os.pipe()
    reactor.add_reader(r, lambda: (fired.append(os.read(r, 10)), reactor.remove_reader(r)))
    os.write(w, b"x")
    batches = []
    reactor.after_batch.append(lambda: batches.append(1))
    reactor.run_until(lambda: "a" in fired and b"x" in fired, max_wait=1)
    assert "b" not in fired and "soon" in fired and batches
    assert h.cancelled
    os.close(r)
    os.close(w)
    reactor.close()


def test_listener_handoff_when_the_filter_traps_sendmsg(tmp_path):
    # The child hands its listener over with sendmsg; if that is trapped too, the
    # supervisor takes the listener itself and serves the sendmsg (here: CONTINUE).
    from sysemu.kernel.errors import HostPassthrough

    seen = []

    def sys_sendmsg(task, fd: CLong, msg: UserPtr, flags: CLong) -> int:
        seen.append(fd)
        raise HostPassthrough()

    sup = Supervisor(Syscalls(handlers={"sendmsg": handler("sendmsg", sys_sendmsg)}))
    out = tmp_path / "out"
    with open(out, "w") as f:
        status = sup.serve_child(["echo", "handed over"], stdio=(None, f.fileno(), None))
    assert status == 0
    assert out.read_text() == "handed over\n"
    assert seen                                   # the child's own sendmsg was served


def test_after_event_runs_after_notifications(probe, tmp_path):
    world = World()
    sup = Supervisor(Syscalls(handlers=world.handlers()))
    world.placeholders = sup.placeholders
    calls_seen = []
    sup.after_event.append(lambda: calls_seen.append(len(world.log)))
    out = tmp_path / "out"
    with open(out, "w") as f:
        assert sup.serve_child([probe, "getppid"], stdio=(None, f.fileno(), None)) == 0
    assert out.read_text().split() == ["getppid", str(world.log[0][1])]
    assert 1 in calls_seen                        # ran after the getppid notification
