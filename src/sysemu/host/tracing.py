"""The live side of `sysemu run --strace / --inject / --trace-all`: what the filter traps,
where the lines go, how descriptors are described. The supervisor does the per-call work
(Supervisor.handle: enter, inject, dispatch, exit); trace/ holds the pure parts (Tracer,
Injector, parse_set).

What the filter traps when tracing:
- always what sysemu serves (seccomp.plan);
- every call named in an explicit --strace=SET, and every call an --inject SET names,
  without argument narrowing (an injection must see each invocation to count it);
- with --trace-all, every x86-64 and i386 call but NEVER_TRAP;
- i386 socketcall(2) on every call number when a socketcall call (`send`, `socket` ...)
  is traced or injected (the filter otherwise traps only the calls sysemu serves);
- execve, whenever tracing or injecting (see configure()).
Calls sysemu does not serve are answered CONTINUE and trace as `= ?`.

sysemu: the x32 table is not widened; x32 calls trace only when served.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Iterable

from sysemu.abi.inet import TcpState
from sysemu.arch.x86.entry import Syscalls
from sysemu.host.files import HostFileTable
from sysemu.host.seccomp import Filter, plan
from sysemu.kernel.errors import HostPassthrough
from sysemu.trace.inject import Injector
from sysemu.trace.strace import Tracer
from sysemu.trace.syntax import SOCKET_SUBCALLS

# Calls --trace-all leaves untrapped. Trapping works for every x86-64 call (CONTINUE runs
# it as if never trapped, rt_sigreturn, execve, exit_group and vfork included); these are
# left out only because a notification cannot describe them usefully and they are hot:
# none so far. Kept as the one place to add a call that misbehaves when trapped.
NEVER_TRAP: frozenset[str] = frozenset()


def trace_plan(syscalls: Syscalls, names: Iterable[str] = (), trap_all: bool = False
               ) -> dict[str, list[tuple[int, tuple | None]]]:
    """seccomp.plan() widened: the x86-64 and i386 calls in `names` (or all, with
    trap_all) are trapped on every invocation; a socketcall(2) call in `names` widens
    i386's socketcall."""
    rules = plan(syscalls)
    wanted = frozenset(names)
    if wanted & SOCKET_SUBCALLS:
        wanted |= {"socketcall"}
    for table in (syscalls.x64, syscalls.ia32):
        extra = {slot.nr for slot in table.slots
                 if slot.nr >= 0 and slot.name and slot.name not in NEVER_TRAP
                 and (trap_all or slot.name in wanted)}
        if not extra:
            continue
        kept = [(nr, when) for nr, when in rules.get(table.abi, []) if nr not in extra]
        rules[table.abi] = sorted(kept + [(nr, None) for nr in extra], key=lambda r: r[0])
    return rules


def build_trace_filter(syscalls: Syscalls, names: Iterable[str] = (),
                       trap_all: bool = False) -> Filter:
    return Filter(trace_plan(syscalls, names, trap_all))


class FdOutput:
    """Tracer output straight to a descriptor: every write reaches it at once, so a call
    that waits shows its open line (`accept4(3, `) as strace's does. A write error (the
    reader went away) silences the trace, never the program."""

    def __init__(self, fd: int, close: bool = False):
        self.fd = fd
        self._close = close

    @classmethod
    def open(cls, path: str) -> "FdOutput":
        return cls(open_output(path), close=True)

    def write(self, text: str) -> int:
        if self.fd < 0:
            return 0
        data = text.encode("utf-8", "backslashreplace")
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except BlockingIOError:
            pass                      # a non-blocking stderr that is full: drop the rest
        except OSError:
            self.fd = -1
        return len(data)

    def close(self) -> None:
        if self._close and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


def open_output(path: str) -> int:
    """-o FILE: created or truncated, close-on-exec (the program never inherits it)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)


def _inet(family: int, addr: bytes, port: int) -> str:
    if family == 10:      # AF_INET6: [addr]:port as strace prints it
        return f"[{ipaddress.IPv6Address(bytes(addr))}]:{port}"
    return f"{ipaddress.IPv4Address(bytes(addr))}:{port}"


def describe_sock(sock, inode: int) -> str:
    """strace -yy's text for a TCP socket, as strace finds it through inet_diag:
    `TCP:[127.0.0.1:8000->127.0.0.1:40000]` (connected or connecting),
    `TCP:[0.0.0.0:8000]` (listening, or bound), `TCP:[INODE]` (no port: unbound, or its
    port released after a failed connect). Linux: strace src/socketutils.c."""
    proto = "TCPv6" if sock.family == 10 else "TCP"
    laddr, lport = sock.local()
    remote = sock.remote()
    if remote is not None and sock.state not in (TcpState.TCP_CLOSE, TcpState.TCP_LISTEN):
        return (f"{proto}:[{_inet(sock.family, laddr, lport)}->"
                f"{_inet(sock.family, remote[0], remote[1])}]")
    if lport:
        return f"{proto}:[{_inet(sock.family, laddr, lport)}]"
    return f"{proto}:[{inode}]"


def fd_describer(supervisor):
    """decorate_fd(pid, fd) for the Tracer (strace -yy): sysemu sockets as describe_sock(),
    the host's descriptors as /proc/PID/fd shows them (paths, `pipe:[N]`, `socket:[N]`);
    AT_FDCWD as the cwd."""
    def decorate(pid: int, fd: int) -> str | None:
        if fd == -100:
            try:
                return os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                return None
        task = supervisor.tasks.get(pid)
        files = (task.files if task is not None
                 else HostFileTable(pid, supervisor.placeholders.by_inode))
        try:
            file = files.lookup(fd)
        except HostPassthrough:
            try:
                return os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                return None
        except Exception:
            return None
        return describe_file(file, supervisor.placeholders)

    return decorate


def describe_file(file, placeholders) -> str | None:
    """strace -yy's text for a sysemu File (None: not a socket sysemu describes)."""
    sock = getattr(file.private_data, "sk", None)
    if sock is None or not hasattr(sock, "local"):
        return None
    ph = placeholders.of_file(file)
    return describe_sock(sock, ph.inode if ph is not None else 0)


def configure(supervisor, *, trace: frozenset[str] | None = None, trace_requested: bool = False,
              trap_set: bool = False, output: FdOutput | None = None,
              with_time: bool = False, decode_fds: bool = False,
              injects: Iterable[str] = (), faults: Iterable[str] = (),
              trap_all: bool = False) -> None:
    """Give `supervisor` its Tracer (when trace_requested) and Injector, and the filter
    that traps what they need. `trace` is the SET (None: every call the filter traps);
    with trap_set the SET's calls are trapped too. Call before spawn()."""
    injector = Injector(injects, faults=faults)
    tracer = None
    if trace_requested:
        out = output if output is not None else FdOutput(2)
        tracer = Tracer(out, with_time=with_time, trace=trace,
                        decorate_fd=fd_describer(supervisor) if decode_fds else None,
                        clock=supervisor.reactor.time)
    supervisor.tracer = tracer
    supervisor.injector = injector if injector else None
    if tracer is None and not injector and not trap_all:
        return
    # execve always: the supervisor knows from it where the program's own calls begin
    # (before it, the spawned child runs sysemu's launcher code, which is not traced).
    names = set(injector.by_name) | {"execve"}
    if trap_set and trace is not None:
        names |= trace
    old = supervisor.filter
    supervisor.filter = build_trace_filter(supervisor.syscalls, names, trap_all)
    old.release()



FD_PENDING = 999_999_999     # stands for the fd ADDFD+SEND will give, while rendering


def render_exit(tracer: Tracer, tid: int, result: int | None, mem, injected: bool) -> str:
    """Tracer.exit()'s text, captured instead of written. The supervisor renders a call's
    exit *before* it answers: once answered, the thread runs on and may reuse the memory
    the output arguments are decoded from (strace reads them while the tracee is stopped)."""
    out, buf = tracer.out, _Capture()
    tracer.out = buf
    try:
        tracer.exit(tid, result, mem, injected=injected)
    finally:
        tracer.out = out
    return "".join(buf.parts)


def replace_result(text: str, result_text: str) -> str:
    """`... = OLD <0.000012>` -> `... = NEW <0.000012>`: the result column is the text
    after the line's last `= ` (no decoded argument or result text contains `= `)."""
    head, sep, tail = text.rpartition("= ")
    if not sep:
        return text
    newline = "\n" if tail.endswith("\n") else ""
    tail = tail.rstrip("\n")
    timing = ""
    if tail.endswith(">") and " <" in tail:
        timing = tail[tail.rindex(" <"):]
    return f"{head}{sep}{result_text}{timing}{newline}"


class _Capture:
    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)
