"""Dispatch through Syscalls(handlers=...): argument decoding, policy, commits, fd_install,
EFAULT. Linux: arch/x86/entry/syscall_64.c do_syscall_64(), include/linux/syscalls.h
(__SC_CAST of SYSCALL_DEFINEn arguments), fs/file.c fd_install()."""
from __future__ import annotations

import inspect

import pytest

from sysemu.abi.errno import Errno
from sysemu.arch.x86.entry import (AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT,
                                   Action, Policy, Syscalls, run_model_call)
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from sysemu.kernel.file import File
from sysemu.kernel.syscalls import (DECODERS, HANDLERS, CInt, CLong, CUInt, CULong, Handler,
                                    InstallFd, UserPtr)
from sysemu.kernel.task import Kernel, Task
from sysemu.kernel.usermem import U64, read_struct, write_struct
from sysemu.kernel.wait import WaitQueue

NR = {"socket": 41, "connect": 42, "bind": 49, "listen": 50, "getsockname": 51,
      "read": 0, "getppid": 110, "accept4": 288}
I386_SOCKETCALL = 102


def registry():
    """A private handler set built like sysemu.kernel.syscalls.syscall() builds HANDLERS."""
    handlers: dict[str, Handler] = {}

    def syscall(name, abis=("64", "x32", "i386")):
        def register(func):
            params = list(inspect.signature(func).parameters.values())[1:]
            decoders = tuple(DECODERS[p.annotation] for p in params)
            handlers[name] = Handler(name, func, decoders, frozenset(abis))
            return func
        return register

    return handlers, syscall


@pytest.fixture
def task():
    return Task(Kernel())


# -- argument decoding -----------------------------------------------------------------------

def recording_table():
    handlers, syscall = registry()
    seen = []

    @syscall("getsockname")
    def sys_getsockname(task, fd: CInt, uaddr: UserPtr, ulen: CUInt, a: CLong, b: CULong):
        seen.append((fd, uaddr, ulen, a, b))
        return 0

    return Syscalls(handlers=handlers), seen


@pytest.mark.parametrize("raw, decoded", [
    ((0xFFFFFFFF, 0, 0, 0, 0), (-1, 0, 0, 0, 0)),
    ((0xFFFFFFFF_FFFFFFFF,) * 5, (-1, 0xFFFFFFFF_FFFFFFFF, 0xFFFFFFFF, -1, 0xFFFFFFFF_FFFFFFFF)),
    ((0x1_00000005, 0x7FFF_12345678, 0x1_80000000, 1 << 63, 1 << 63),
     (5, 0x7FFF_12345678, 0x80000000, -(1 << 63), 1 << 63)),
    ((0x80000000, 1, 0xFFFFFFFF, 0x7FFFFFFF_FFFFFFFF, 0),
     (-(1 << 31), 1, 0xFFFFFFFF, (1 << 63) - 1, 0)),
])
def test_arguments_are_narrowed_by_their_declared_types(task, raw, decoded):
    tables, seen = recording_table()
    assert run_model_call(tables, task, NR["getsockname"], *raw) == 0
    assert seen == [decoded]


def test_decoders_are_built_once_not_per_call():
    tables, _ = recording_table()
    handler = tables.x64.lookup(NR["getsockname"]).handler
    assert len(handler.decoders) == 5
    assert tables.x64.lookup(NR["getsockname"]).call is handler.call


def test_private_handlers_do_not_touch_the_global_registry():
    before = dict(HANDLERS)
    recording_table()
    assert HANDLERS == before


def test_handler_result_and_errors_reach_rax(task):
    handlers, syscall = registry()

    @syscall("bind")
    def sys_bind(task, fd: CInt, umyaddr: UserPtr, addrlen: CInt):
        if fd < 0:
            raise SyscallError(Errno.EBADF)
        return 7

    tables = Syscalls(handlers=handlers)
    assert run_model_call(tables, task, NR["bind"], 3) == 7
    assert run_model_call(tables, task, NR["bind"], 0xFFFFFFFF) == -Errno.EBADF
    assert tables.x64.lookup(NR["bind"]).action is Action.SERVED


def test_abi_is_set_per_entry(task):
    handlers, syscall = registry()
    abis = []

    @syscall("socket")
    def sys_socket(task, family: CInt, type: CInt, protocol: CInt):
        abis.append(task.abi)
        return 0

    @syscall("socketcall", abis=("i386",))
    def sys_socketcall(task, call: CInt, args: UserPtr):
        abis.append(task.abi)
        return call

    tables = Syscalls(handlers=handlers)
    run_model_call(tables, task, NR["socket"])
    run_model_call(tables, task, X32_SYSCALL_BIT | NR["socket"])
    assert run_model_call(tables, task, I386_SOCKETCALL, 1, arch=AUDIT_ARCH_I386) == 1
    assert abis == ["64", "x32", "i386"]


def test_handler_abis_select_tbl_rows(task):
    """A handler's abis name tbl ABI columns: a "64" handler serves the 64 row and the
    common rows (shared by x86-64 and x32, as Linux's tables share the sys_ entry), not the
    x32 row of a call that has a compat entry (setsockopt: 54 "64", 541 "x32")."""
    handlers, syscall = registry()

    @syscall("setsockopt", abis=("64",))
    def sys_setsockopt(task, fd: CInt, level: CInt, optname: CInt, optval: UserPtr,
                       optlen: CInt):
        return 0

    @syscall("listen", abis=("64",))
    def sys_listen(task, fd: CInt, backlog: CInt):
        return 0

    tables = Syscalls(policy=Policy.STRICT, handlers=handlers)
    assert tables.slot_64(54).action is Action.SERVED
    x32 = tables.slot_64(X32_SYSCALL_BIT | 541)
    assert (x32.name, x32.action) == ("setsockopt", Action.ENOSYS)
    assert run_model_call(tables, task, X32_SYSCALL_BIT | 541) == -Errno.ENOSYS
    assert run_model_call(tables, task, 54) == 0
    assert tables.slot_64(X32_SYSCALL_BIT | NR["listen"]).action is Action.SERVED


# -- policy ----------------------------------------------------------------------------------

def test_passthrough_policy_hands_unserved_calls_to_the_host(task):
    tables = Syscalls(policy=Policy.PASSTHROUGH, handlers={})
    assert tables.slot_64(NR["bind"]).action is Action.PASSTHROUGH
    with pytest.raises(HostPassthrough):
        run_model_call(tables, task, NR["bind"], 3, 0x1000, 16)
    with pytest.raises(HostPassthrough):
        tables.dispatch(task, AUDIT_ARCH_X86_64, NR["read"], [0] * 6)


def test_strict_policy_refuses_unserved_calls_and_reports_each_name_once(task):
    reported = []
    tables = Syscalls(policy=Policy.STRICT, handlers={}, on_unserved=reported.append)
    for _ in range(3):
        assert run_model_call(tables, task, NR["bind"]) == -Errno.ENOSYS
    assert [s.name for s in reported] == ["bind"]
    assert run_model_call(tables, task, NR["listen"]) == -Errno.ENOSYS
    assert run_model_call(tables, task, NR["bind"]) == -Errno.ENOSYS
    assert [s.name for s in reported] == ["bind", "listen"]
    assert reported[0].action is Action.ENOSYS and reported[0].nr == NR["bind"]


def test_strict_policy_lets_delegated_calls_pass(task):
    reported = []
    tables = Syscalls(policy=Policy.STRICT, handlers={}, on_unserved=reported.append)
    for name in ("read", "getppid"):
        assert tables.slot_64(NR[name]).action is Action.PASSTHROUGH
        with pytest.raises(HostPassthrough):
            run_model_call(tables, task, NR[name])
    assert reported == []


def test_strict_policy_never_reports_holes(task):
    reported = []
    tables = Syscalls(policy=Policy.STRICT, handlers={}, on_unserved=reported.append)
    assert run_model_call(tables, task, 134) == -Errno.ENOSYS      # uselib
    assert run_model_call(tables, task, 400) == -Errno.ENOSYS
    assert reported == []


def test_served_calls_win_over_both_policies(task):
    handlers, syscall = registry()

    @syscall("read")
    def sys_read(task, fd: CInt, buf: UserPtr, count: CULong):
        return count

    for policy in Policy:
        tables = Syscalls(policy=policy, handlers=handlers)
        assert run_model_call(tables, task, NR["read"], 0, 0, 5) == 5


def test_trapped_lists_what_the_filter_must_send(task):
    handlers, syscall = registry()

    @syscall("getsockname")
    def sys_getsockname(task, fd: CInt, uaddr: UserPtr, ulen: UserPtr):
        return 0

    loose = Syscalls(policy=Policy.PASSTHROUGH, handlers=handlers).trapped()
    assert [s.name for s in loose["64"]] == ["getsockname"]
    assert [s.name for s in loose["x32"]] == ["getsockname"]
    strict = Syscalls(policy=Policy.STRICT, handlers=handlers).trapped()
    names = {s.name for s in strict["64"]}
    assert {"getsockname", "bind", "listen"} <= names
    assert not names & {"read", "getppid", "uselib"}


# -- commits and fd_install ------------------------------------------------------------------

def accept_table(log):
    handlers, syscall = registry()

    @syscall("accept4")
    def sys_accept4(task, fd: CInt, upeer: UserPtr, ulen: UserPtr, flags: CInt):
        task.on_commit(lambda: log.append("dequeued"))
        return InstallFd(File(object()), cloexec=bool(flags & 0o2000000),
                         commit=lambda newfd: log.append(("installed", newfd)))

    return Syscalls(handlers=handlers)


def test_cancelled_response_commits_nothing(task):
    log = []
    tables = accept_table(log)
    assert run_model_call(tables, task, NR["accept4"], 3, accepted=False) == -Errno.EINTR
    assert log == []
    assert task.files.fds == {}


def test_install_fd_takes_the_lowest_free_fd(task):
    log = []
    tables = accept_table(log)
    for _ in range(3):
        task.files.install(File(object()))
    task.files.close(1)
    fd = run_model_call(tables, task, NR["accept4"], 0, 0, 0, 0o2000000)
    assert fd == 1
    assert log == [("installed", 1), "dequeued"]
    assert task.files.fds[1].refs == 1 and 1 in task.files.cloexec
    assert run_model_call(tables, task, NR["accept4"]) == 3
    assert 3 not in task.files.cloexec


def test_commits_of_an_earlier_call_do_not_leak_into_the_next(task):
    log = []
    handlers, syscall = registry()

    @syscall("listen")
    def sys_listen(task, fd: CInt, backlog: CInt):
        task.on_commit(lambda: log.append(backlog))
        if backlog < 0:
            raise SyscallError(Errno.EINVAL)
        return 0

    tables = Syscalls(handlers=handlers)
    assert run_model_call(tables, task, NR["listen"], 3, 0xFFFFFFFF) == -Errno.EINVAL
    assert run_model_call(tables, task, NR["listen"], 3, 5) == 0
    assert log == [5]


def test_would_block_propagates_without_commits(task):
    log = []
    queue = WaitQueue()
    handlers, syscall = registry()

    @syscall("accept4")
    def sys_accept4(task, fd: CInt, upeer: UserPtr, ulen: UserPtr, flags: CInt):
        task.on_commit(lambda: log.append("dequeued"))
        raise WouldBlock(queue, deadline=5.0)

    tables = Syscalls(handlers=handlers)
    with pytest.raises(WouldBlock) as exc:
        run_model_call(tables, task, NR["accept4"], 3)
    assert exc.value.waitqueue is queue and exc.value.deadline == 5.0
    assert log == [] and task.files.fds == {}


# -- user memory: EFAULT ---------------------------------------------------------------------

def memory_table():
    handlers, syscall = registry()

    @syscall("getsockname")
    def sys_getsockname(task, fd: CInt, uaddr: UserPtr, ulen: CUInt):
        data = task.mem.read(uaddr, ulen)             # copy_from_user
        task.mem.write(uaddr, data[::-1])            # copy_to_user
        return len(data)

    @syscall("connect")
    def sys_connect(task, fd: CInt, uaddr: UserPtr, addrlen: CInt):
        (value,) = read_struct(task.mem, uaddr, U64)
        write_struct(task.mem, uaddr, U64, value + 1)
        return 0

    return Syscalls(handlers=handlers)


def test_mapped_memory_round_trips(task):
    tables = memory_table()
    addr = task.mem.alloc(b"abcdefgh")
    assert run_model_call(tables, task, NR["getsockname"], 3, addr, 8) == 8
    assert task.mem.read(addr, 8) == b"hgfedcba"
    assert run_model_call(tables, task, NR["getsockname"], 3, addr + 2, 6) == 6
    assert task.mem.read(addr, 8) == b"hgabcdef"
    assert run_model_call(tables, task, NR["connect"], 3, addr, 8) == 0


@pytest.mark.parametrize("where", ["unmapped", "null", "past_end", "straddles_gap",
                                   "before_start", "huge_pointer"])
def test_bad_user_ranges_are_efault(task, where):
    tables = memory_table()
    addr = task.mem.alloc(b"abcdefgh")
    ptr, size = {"unmapped": (addr + 0x100000, 4), "null": (0, 4),
                 "past_end": (addr + 4, 8), "straddles_gap": (addr + 7, 2),
                 "before_start": (addr - 1, 2), "huge_pointer": (0xFFFFFFFF_FFFFFFF0, 8)}[where]
    assert run_model_call(tables, task, NR["getsockname"], 3, ptr, size) == -Errno.EFAULT
    assert task.mem.read(addr, 8) == b"abcdefgh"         # nothing half-written
    assert run_model_call(tables, task, NR["connect"], 3, ptr, 8) == -Errno.EFAULT


def test_zero_length_copy_never_faults(task):
    tables = memory_table()
    assert run_model_call(tables, task, NR["getsockname"], 3, 0, 0) == 0


_REGISTERS = [0, 1, 0x7F, 0x80, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000,
              0x1_7FFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
              0xFFFF_FFFF_FFFF_FFFF, 0xDEAD_BEEF_8000_0001, -1, -(1 << 63)]


@pytest.mark.parametrize("kind", [CInt, CUInt, CLong, CULong, UserPtr])
def test_generated_call_narrows_as_the_decoders_do(kind):
    """compile_call writes each decoder out inline: for every register value (negative
    ones as a model test passes them, too) it must give what the decoder function gives."""
    from sysemu.kernel.syscalls import compile_call
    decoder = DECODERS[kind]
    call = compile_call(lambda task, *args: args, (decoder,) * 6)
    for i in range(0, len(_REGISTERS), 6):
        regs = (_REGISTERS[i:i + 6] + _REGISTERS[:6])[:6]
        assert call(None, regs) == tuple(decoder(r) for r in regs), regs


def test_generated_call_keeps_an_unknown_decoder():
    """A decoder without an inline form is called as it is."""
    from sysemu.kernel.syscalls import compile_call
    call = compile_call(lambda task, a, b: (task, a, b), (lambda v: v * 2, DECODERS[CInt]))
    assert call("t", [21, 0xFFFFFFFF, 9, 9, 9, 9]) == ("t", 42, -1)
