"""strace's --inject/--fault grammar, when= sequences and per-tracee counters."""
from __future__ import annotations

import pytest

from sysemu.trace.inject import (Injection, Injector, parse_delay, parse_inject, parse_when)

EADDRINUSE, ENOSYS, ENOENT, ECONNREFUSED = 98, 38, 2, 111


def hits(injector: Injector, pid: int, name: str, n: int) -> list[int]:
    """The invocation numbers (1-based) among the first n that get an injection."""
    return [i for i in range(1, n + 1) if injector.decide(pid, name) is not None]


def test_error_by_name_and_number():
    spec = parse_inject("bind:error=EADDRINUSE")
    assert spec.names == {"bind"}
    assert spec.action == Injection(errno=EADDRINUSE)
    assert spec.action.result == -EADDRINUSE and spec.action.replaces_result
    assert parse_inject("bind:error=98").action.errno == EADDRINUSE
    assert parse_inject("%net:error=ECONNREFUSED").names >= {"connect", "accept4"}


def test_retval_signal_delays_and_syscall():
    a = parse_inject("close:retval=42:signal=SIGUSR1:delay_enter=10:delay_exit=2ms").action
    assert (a.retval, a.errno, a.signal) == (42, None, 10)
    assert (a.delay_enter_ns, a.delay_exit_ns) == (10_000, 2_000_000)
    assert a.result == 42
    assert parse_inject("close:retval=0x10").action.retval == 16
    assert parse_inject("read:signal=9").action.signal == 9
    assert parse_inject("read:signal=usr2").action.signal == 12
    only_delay = parse_inject("accept4:delay_exit=1.5s").action
    assert not only_delay.replaces_result and only_delay.delay_exit_ns == 1_500_000_000
    assert parse_inject("socket:error=ENOSYS:syscall=getpid").action.syscall == "getpid"


@pytest.mark.parametrize("text, ns", [("0", 0), ("7", 7000), ("7us", 7000), ("3ns", 3),
                                      ("2ms", 2_000_000), ("1s", 10**9), ("0.5", 500),
                                      ("2.5ms", 2_500_000), ("1e3", 1_000_000)])
def test_delay_units(text, ns):
    assert parse_delay(text) == ns


@pytest.mark.parametrize("spec, words", [
    ("bind", "need at least one of"),
    ("bind:error=EADDRINUSE:retval=0", "only one error= or retval="),
    ("bind:retval=1:error=EINVAL", "only one error= or retval="),
    ("bind:error=ENOTANERRNO", "invalid error"),
    ("bind:error=0", "invalid error number"),
    ("bind:error=4096", "invalid error number"),
    ("bind:retval=-1", "invalid retval"),
    ("bind:retval=x", "invalid retval"),
    ("bind:signal=SIGNOPE", "invalid signal"),
    ("bind:signal=65", "invalid signal number"),
    ("bind:signal=1:signal=2", "only one signal="),
    ("bind:delay_enter=soon", "invalid delay"),
    ("bind:delay_enter=5h", "invalid delay"),
    ("bind:error=EIO:when=0", "first must be"),
    ("bind:error=EIO:when=3..2", "last must be"),
    ("bind:error=EIO:when=1..65535", "last must be"),
    ("bind:error=EIO:when=2+0", "step must be"),
    ("bind:error=EIO:when=x", "invalid when"),
    ("bind:error=EIO:bogus=1", "invalid injection token"),
    ("bind:error", "invalid injection token"),
    ("bnd:error=EIO", "invalid system call 'bnd'"),
    ("bind:error=EIO:syscall=socket", "only %pure"),
    ("bind:poke_enter=@arg1=00", "not supported"),
])
def test_bad_specs_raise_valueerror(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_inject(spec)


def test_fault_defaults_to_enosys_and_takes_only_error_and_when():
    assert Injector(faults=["bind"]).decide(1, "bind") == Injection(errno=ENOSYS)
    assert Injector(faults=["bind:error=EIO:when=2"]).by_name["bind"].first == 2
    with pytest.raises(ValueError, match="only error= and when="):
        parse_inject("bind:retval=0", fault=True)


@pytest.mark.parametrize("when, expected", [
    (None, list(range(1, 11))),          # every invocation
    ("3", [3]),
    ("2+", list(range(2, 11))),
    ("2+3", [2, 5, 8]),
    ("2..4", [2, 3, 4]),
    ("2..4+", [2, 3, 4]),
    ("2..8+3", [2, 5, 8]),
    ("1..9+4", [1, 5, 9]),
])
def test_when_sequences(when, expected):
    spec = "connect:error=ECONNREFUSED" + (f":when={when}" if when else "")
    assert hits(Injector([spec]), 1, "connect", 10) == expected


def test_last_when_wins_and_parse_when():
    assert hits(Injector(["bind:error=EIO:when=1:when=3"]), 1, "bind", 5) == [3]
    assert parse_when("5") == (5, None, 0)
    assert parse_when("5+") == (5, None, 1)
    assert parse_when("5..7") == (5, 7, 1)


def test_counters_are_per_syscall_and_per_tracee():
    inj = Injector(["bind,listen:error=EADDRINUSE:when=2"])
    assert inj.decide(10, "bind") is None
    assert inj.decide(10, "listen") is None          # listen has its own count
    assert inj.decide(20, "bind") is None            # and so has another tracee
    assert inj.decide(10, "bind") == Injection(errno=EADDRINUSE)
    assert inj.decide(20, "bind") == Injection(errno=EADDRINUSE)
    assert inj.decide(10, "bind") is None
    assert inj.decide(10, "connect") is None         # not in any set
    inj.forget(10)
    assert inj.decide(10, "bind") is None            # counts again from 1
    assert inj.decide(10, "bind") is not None


def test_later_spec_wins_for_the_syscalls_it_names():
    inj = Injector(["%net:error=ECONNREFUSED", "bind:error=EADDRINUSE"])
    assert inj.decide(1, "bind").errno == EADDRINUSE
    assert inj.decide(1, "connect").errno == ECONNREFUSED
    assert not Injector([]) and Injector(["bind:error=EIO"])


def test_injected_result_prints_as_strace():
    import io

    from sysemu.kernel.usermem import BufferMemory
    from sysemu.trace.strace import Tracer
    inj = Injector(["listen:error=EADDRINUSE"])
    out = io.StringIO()
    t = Tracer(out, show_pid=False)
    action = inj.decide(1, "listen")
    t.record(1, "listen", (3, 5), BufferMemory(), action.result, injected=True)
    assert out.getvalue() == ("listen(3, 5)                            "
                              "= -1 EADDRINUSE (Address already in use) (INJECTED)\n")
