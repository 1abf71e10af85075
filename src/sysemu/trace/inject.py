"""strace's tampering grammar: `--inject=SET:error=E|retval=N[:signal=S][:syscall=S]
[:delay_enter=D][:delay_exit=D][:when=FIRST[..LAST][+[STEP]]]` and `--fault=` (whose
error defaults to ENOSYS).

How the host applies an Injection (the supervisor's side, not this module's):
- error/retval: the notification is answered with -errno or the value at once; the real
  call is not run (neither sysemu's handler nor the host kernel), as strace replaces the
  syscall number with -1. The trace line then ends in `(INJECTED)`.
- delay_enter: wait that long before dispatch; delay_exit: before sending the response.
- signal: deliver it to the calling thread on entering the call (tgkill), with or
  without a fault.
- syscall=NAME: run that (pure) call's semantics instead of -1; sysemu keeps the name.

Accounting is per syscall and per tracee, as strace's: `pid` is the thread that calls
(each tracee has its own counters, a new one starts at zero). When several specs name
the same syscall, the last one given wins for it (strace overwrites the syscall's
inject slot); when= ranges: FIRST and STEP in 1..65535, LAST in 1..65534.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from sysemu.abi.errno import Errno
from sysemu.trace import syntax
from sysemu.trace.decode import KERNEL_ERRNOS

SIGNALS = {"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
           "SIGIOT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11,
           "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16,
           "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21,
           "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26,
           "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPOLL": 29, "SIGPWR": 30,
           "SIGSYS": 31, "SIGRTMIN": 32}
SIGRTMAX = 64
MAX_ERRNO = 4095
WHEN_MAX = 65535
_WHEN = re.compile(r"^(\d+)(?:\.\.(\d+))?(?:(\+)(\d*))?$")
_DELAY = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(s|ms|us|ns)?$")
_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1, None: 1_000}


@dataclass(frozen=True)
class Injection:
    """What to do to one call. errno and retval are exclusive; delays in nanoseconds."""
    errno: int | None = None
    retval: int | None = None
    signal: int | None = None
    delay_enter_ns: int = 0
    delay_exit_ns: int = 0
    syscall: str | None = None

    @property
    def replaces_result(self) -> bool:
        return self.errno is not None or self.retval is not None

    @property
    def result(self) -> int | None:
        """rax as the notification answer gives it: -errno or the value."""
        if self.errno is not None:
            return -self.errno
        return self.retval


@dataclass(frozen=True)
class InjectSpec:
    names: frozenset[str]
    action: Injection
    first: int = 1
    last: int | None = None
    step: int = 1            # 0: only the FIRST invocation

    def matches(self, n: int) -> bool:
        """Is the n-th invocation (1-based) one to tamper with?"""
        if n < self.first or (self.last is not None and n > self.last):
            return False
        if self.step == 0:
            return n == self.first
        return (n - self.first) % self.step == 0


def parse_errno(text: str) -> int:
    if text.isdigit():
        value = int(text)
        if not 1 <= value <= MAX_ERRNO:
            raise ValueError(f"invalid error number {text!r}: expected 1..{MAX_ERRNO}")
        return value
    if text in Errno.__members__:
        return int(Errno[text])
    for code, name in KERNEL_ERRNOS.items():
        if name == text:
            return code
    raise ValueError(f"invalid error {text!r}: expected an errno name or 1..{MAX_ERRNO}")


def parse_signal(text: str) -> int:
    if text.isdigit():
        value = int(text)
        if not 1 <= value <= SIGRTMAX:
            raise ValueError(f"invalid signal number {text!r}: expected 1..{SIGRTMAX}")
        return value
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name in SIGNALS:
        return SIGNALS[name]
    m = re.fullmatch(r"SIGRTMIN\+(\d+)|SIGRT_(\d+)", name)
    if m:
        value = 32 + int(m.group(1) or m.group(2))
        if value <= SIGRTMAX:
            return value
    if name == "SIGRTMAX":
        return SIGRTMAX
    raise ValueError(f"invalid signal {text!r}")


def parse_delay(text: str) -> int:
    """strace's time specification: a decimal (strtod) with an optional s/ms/us/ns suffix,
    microseconds by default. Returns nanoseconds."""
    m = _DELAY.match(text.strip())
    if not m:
        raise ValueError(f"invalid delay {text!r}: expected NUMBER[s|ms|us|ns]")
    ns = round(float(m.group(1)) * _NS[m.group(2)])
    if ns < 0:
        raise ValueError(f"invalid delay {text!r}")
    return ns


def parse_when(text: str) -> tuple[int, int | None, int]:
    """first[..last][+[step]] -> (first, last, step); step 0 means FIRST alone."""
    m = _WHEN.match(text)
    if not m:
        raise ValueError(f"invalid when={text!r}: expected first[..last][+[step]]")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else None
    if m.group(3):
        step = int(m.group(4)) if m.group(4) else 1
        if not 1 <= step <= WHEN_MAX:
            raise ValueError(f"invalid when={text!r}: step must be 1..{WHEN_MAX}")
    else:
        step = 1 if last is not None else 0
    if not 1 <= first <= WHEN_MAX:
        raise ValueError(f"invalid when={text!r}: first must be 1..{WHEN_MAX}")
    if last is not None and not (1 <= last <= WHEN_MAX - 1 and last >= first):
        raise ValueError(f"invalid when={text!r}: last must be first..{WHEN_MAX - 1}")
    return first, last, step


def parse_inject(spec: str, *, fault: bool = False) -> InjectSpec:
    """One --inject= (or --fault= with fault=True) argument.

    Mirrors strace: src/filter_qualify.c parse_inject_expression()."""
    set_text, _, rest = spec.partition(":")
    names = syntax.parse_set(set_text)
    errno = retval = signal = None
    delay_enter = delay_exit = 0
    have_delay_enter = have_delay_exit = False
    syscall = None
    first, last, step = 1, None, 1
    for token in rest.split(":") if rest else []:
        key, eq, value = token.partition("=")
        if not eq or not value:
            raise ValueError(f"invalid injection token {token!r} in {spec!r}")
        if key == "when":
            first, last, step = parse_when(value)          # the last one wins
        elif fault and key != "error":
            raise ValueError(f"invalid fault token {token!r}: only error= and when=")
        elif key == "error":
            if errno is not None or retval is not None:
                raise ValueError(f"only one error= or retval= in {spec!r}")
            errno = parse_errno(value)
        elif key == "retval":
            if errno is not None or retval is not None:
                raise ValueError(f"only one error= or retval= in {spec!r}")
            try:
                retval = int(value, 0)
            except ValueError:
                raise ValueError(f"invalid retval {value!r}") from None
            if not 0 <= retval < (1 << 63):
                raise ValueError(f"invalid retval {value!r}: expected 0..2**63-1")
        elif key == "signal":
            if signal is not None:
                raise ValueError(f"only one signal= in {spec!r}")
            signal = parse_signal(value)
        elif key == "delay_enter":
            if have_delay_enter:
                raise ValueError(f"only one delay_enter= in {spec!r}")
            delay_enter, have_delay_enter = parse_delay(value), True
        elif key == "delay_exit":
            if have_delay_exit:
                raise ValueError(f"only one delay_exit= in {spec!r}")
            delay_exit, have_delay_exit = parse_delay(value), True
        elif key == "syscall":
            if value not in syntax.CLASSES["pure"]:
                raise ValueError(f"invalid syscall={value!r}: only %pure calls can be injected")
            syscall = value
        elif key in ("poke_enter", "poke_exit"):
            # sysemu: poking tracee memory is not offered.
            raise ValueError(f"{key}= is not supported by sysemu")
        else:
            raise ValueError(f"invalid injection token {token!r} in {spec!r}")
    if fault and errno is None:
        errno = int(Errno.ENOSYS)
    if (errno is None and retval is None and signal is None and not have_delay_enter
            and not have_delay_exit):
        raise ValueError(f"invalid inject expression {spec!r}: need at least one of error=, "
                         "retval=, signal=, delay_enter=, delay_exit=")
    if syscall is not None and errno is None and retval is None:
        raise ValueError(f"syscall= needs error= or retval= in {spec!r}")
    action = Injection(errno, retval, signal, delay_enter, delay_exit, syscall)
    return InjectSpec(names, action, first, last, step)


class Injector:
    """The --inject/--fault options of one sandbox and their per-tracee counters."""

    def __init__(self, specs: Iterable[str | InjectSpec] = (), *, faults: Iterable[str] = ()):
        """`specs` are --inject= arguments (or parsed InjectSpec), `faults` --fault= ones;
        among them, later ones win for the syscalls they name."""
        parsed = [s if isinstance(s, InjectSpec) else parse_inject(s) for s in specs]
        parsed += [parse_inject(s, fault=True) for s in faults]
        self.by_name: dict[str, InjectSpec] = {}
        for spec in parsed:
            for name in spec.names:
                self.by_name[name] = spec
        self._counts: dict[tuple[int, str], int] = {}

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def decide(self, pid: int, name: str) -> Injection | None:
        """Count this invocation of `name` by `pid` and say what to inject into it."""
        spec = self.by_name.get(name)
        if spec is None:
            return None
        key = (pid, name)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        return spec.action if spec.matches(n) else None

    def forget(self, pid: int) -> None:
        """The tracee is gone: drop its counters."""
        for key in [k for k in self._counts if k[0] == pid]:
            del self._counts[key]
