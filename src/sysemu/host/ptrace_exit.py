"""`sysemu exitpath -- CMD`: run CMD under ptrace and say, for every system call, whether
the kernel returns to user mode through SYSRET or IRET, and why.

The program runs on the host kernel (not in sysemu's sandbox), traced like strace -f:
PTRACE_TRACEME in the child, PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACE{FORK,VFORK,CLONE,EXEC}
and PTRACE_SYSCALL; PTRACE_GET_SYSCALL_INFO tells a syscall-entry stop from an exit stop.
At each syscall-exit stop PTRACE_GETREGS reads the thread's registers and
sysemu.arch.x86.sysret decides on them, with the CPU's paging mode from /proc/cpuinfo.

What the stop shows and what do_syscall_64() sees: the syscall-exit stop is
ptrace_report_syscall_exit() inside syscall_exit_to_user_mode(); do_syscall_64() checks
the registers after it returns. Between the two, two things change them:
- the tracer (a debugger's PTRACE_SETREGS; here --set-reg), which this mode applies
  before deciding;
- a signal handled on the way out (arch_do_signal_or_restart(): a handler frame moves
  RIP to the handler; a restarted call moves RIP back over the syscall instruction).
  When the thread's next stop is a signal-delivery-stop for a caught signal, the mode
  resumes it with PTRACE_SINGLESTEP: handle_signal() then reports a SIGTRAP once the
  frame is set up (signal_setup_done()), the registers are read there, and the exit is
  decided again on them. A call left to restart (ERESTART*, no handler) is decided on
  the registers the restart leaves (sysret.restart_regs()).
ptrace itself does not force IRET in 6.18 (the old entry code's force_iret() is gone;
the checks are the same for traced and untraced threads), but a traced thread receives
even the signals it ignores (sig_ignored()), so more of its blocking calls restart.
"""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import shutil
import signal
import struct
import sys
from collections import Counter

from sysemu.arch.x86 import sysret
from sysemu.arch.x86._syscalls import SYSCALL_64
from sysemu.arch.x86.entry import AUDIT_ARCH_X86_64, X32_SYSCALL_BIT
from sysemu.arch.x86.sysret import Cpu, ExitPath, PtRegs
from sysemu.host.libc import ptrace
from sysemu.host.memory import ProcessMemory
from sysemu.trace.decode import s64
from sysemu.trace.strace import Tracer

# include/uapi/linux/ptrace.h
PTRACE_TRACEME = 0
PTRACE_SINGLESTEP = 9
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_GET_SYSCALL_INFO = 0x420E

PTRACE_O_TRACESYSGOOD = 0x01
PTRACE_O_TRACEFORK = 0x02
PTRACE_O_TRACEVFORK = 0x04
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC = 1, 2, 3, 4

PTRACE_SYSCALL_INFO_ENTRY = 1
PTRACE_SYSCALL_INFO_EXIT = 2

WALL = 0x40000000                      # __WALL
SIGINFO_HEAD = struct.Struct("<iii")          # si_signo, si_errno, si_code

OPTIONS = (PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK
           | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL)


class SyscallInfo(ctypes.Structure):
    """struct ptrace_syscall_info; the union read as entry (nr, args) or exit (rval)."""
    _fields_ = [("op", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3),
                ("arch", ctypes.c_uint32), ("instruction_pointer", ctypes.c_uint64),
                ("stack_pointer", ctypes.c_uint64), ("data", ctypes.c_uint64 * 8)]


def get_regs(tid: int) -> PtRegs:
    buf = ctypes.create_string_buffer(sysret.USER_REGS.size)
    ptrace(PTRACE_GETREGS, tid, 0, buf)
    return PtRegs.unpack(buf.raw)


def set_regs(tid: int, regs: PtRegs) -> None:
    buf = ctypes.create_string_buffer(regs.pack(), sysret.USER_REGS.size)
    ptrace(PTRACE_SETREGS, tid, 0, buf)


def get_syscall_info(tid: int) -> SyscallInfo:
    info = SyscallInfo()
    ptrace(PTRACE_GET_SYSCALL_INFO, tid, ctypes.sizeof(info), ctypes.byref(info))
    return info


def get_eventmsg(tid: int) -> int:
    msg = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.byref(msg))
    return msg.value


def get_siginfo(tid: int) -> tuple[int, int] | None:
    """(si_signo, si_code) of a signal-delivery-stop; None for a group-stop (EINVAL)."""
    buf = ctypes.create_string_buffer(128)
    try:
        ptrace(PTRACE_GETSIGINFO, tid, 0, buf)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise
    signo, _errno, code = SIGINFO_HEAD.unpack_from(buf.raw)
    return signo, code


def signame(sig: int) -> str:
    """SIGSEGV, as strace's `--- SIGSEGV ... ---` and `+++ killed by SIGSEGV +++`."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIGRT_{sig - signal.SIGRTMIN}" if sig >= signal.SIGRTMIN else str(sig)


def host_cpu(path: str = "/proc/cpuinfo") -> Cpu:
    """The features the running kernel enabled, from the first processor's flags."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return Cpu.from_flags(frozenset(line.partition(":")[2].split()))
    except OSError:
        pass
    return Cpu()


def caught_signals(tid: int) -> int:
    """SigCgt of /proc/TID/status: the signals with a handler (bit n-1 for signal n)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


NAMES_64 = {nr: name for nr, abi, name, _ in SYSCALL_64 if abi != "x32"}
NAMES_X32 = {nr: name for nr, abi, name, _ in SYSCALL_64 if abi in ("x32", "common")}


def syscall_name(arch: int, nr: int) -> str:
    if arch != AUDIT_ARCH_X86_64:
        return f"syscall_i386_{nr}"
    if nr & X32_SYSCALL_BIT:
        return NAMES_X32.get(nr & ~X32_SYSCALL_BIT, f"syscall_{nr:#x}")
    return NAMES_64.get(nr, f"syscall_{nr}")


@dataclasses.dataclass(frozen=True)
class SetReg:
    """--set-reg NAME:REG=VALUE: at the exit of each call NAME, the tracer writes REG."""
    name: str
    reg: str                         # the pt_regs field
    value: int
    label: str = ""                  # the register as written (rcx)

    @classmethod
    def parse(cls, text: str) -> "SetReg":
        name, colon, rest = text.partition(":")
        reg, eq, value = rest.partition("=")
        if not (colon and eq and name and reg):
            raise ValueError(f"--set-reg {text!r}: expected SYSCALL:REG=VALUE")
        try:
            number = int(value, 0)
        except ValueError:
            raise ValueError(f"--set-reg {text!r}: VALUE must be an integer") from None
        return cls(name, sysret.reg_name(reg), number, reg)


@dataclasses.dataclass
class Thread:
    tid: int
    name: str = ""                   # the call in flight (or last made)
    args: tuple[int, ...] = ()
    arch: int = AUDIT_ARCH_X86_64
    reenter: bool = False            # its execve was entered under another tid
    # The call whose exit stop was this thread's last syscall stop, as (name, regs at
    # the stop, decision shown): a signal handled on the way out changes the exit.
    leaving: tuple[str, PtRegs, ExitPath] | None = None
    stepping_into: int = 0           # the caught signal it was single-stepped into
    stopped_once: bool = True        # an auto-attached task: its first stop was seen
    forked_by: str | None = None     # an auto-attached task: its parent's call
    returned: bool = True            # an auto-attached task: its ret_from_fork shown


class Summary:
    """Calls per (exit path, reason), with the syscall names seen for each."""

    def __init__(self):
        self.counts: Counter[ExitPath] = Counter()
        self.names: dict[ExitPath, Counter[str]] = {}

    def add(self, name: str, decision: ExitPath, n: int = 1) -> None:
        self.counts[decision] += n
        names = self.names.setdefault(decision, Counter())
        names[name] += n
        if self.counts[decision] <= 0:
            del self.counts[decision], self.names[decision]
        elif names[name] <= 0:
            del names[name]

    def table(self) -> str:
        rows = sorted(self.counts.items(), key=lambda kv: (kv[0].path != sysret.Path.SYSRET,
                                                          -kv[1], str(kv[0])))
        total = sum(self.counts.values()) or 1
        lines = [f"{'exit path':<10} {'reason':<22} {'calls':>8} {'%':>6}  syscalls"]
        for decision, n in rows:
            reason = decision.reason.value if decision.reason else "-"
            names = self.names.get(decision, Counter()).most_common(4)
            text = ", ".join(f"{k} {v}" for k, v in names)
            more = len(self.names.get(decision, ())) - len(names)
            text += f", +{more} more" if more > 0 else ""
            lines.append(f"{decision.path.value:<10} {reason:<22} {n:>8} "
                         f"{100 * n / total:>6.2f}  {text}")
        lines.append(f"{'total':<33} {sum(self.counts.values()):>8}")
        return "\n".join(lines) + "\n"


class _Line:
    """The Tracer's output, with a suffix slipped in before the newline of the line that
    Tracer.exit() writes last (the `= result` line)."""

    def __init__(self, out):
        self.out = out
        self.parts: list[str] | None = None

    def write(self, text: str) -> int:
        if self.parts is not None:
            self.parts.append(text)
        else:
            self.out.write(text)
        return len(text)

    def exit_with(self, tracer: Tracer, tid: int, result: int | None, mem,
                  suffix: str) -> None:
        self.parts = []
        try:
            tracer.exit(tid, result, mem)
        finally:
            text, self.parts = "".join(self.parts), None
        if text.endswith("\n"):
            text = text[:-1] + " " + suffix + "\n"
        self.out.write(text)


class ExitPathTracer:
    """The ptrace loop: one thread's stop at a time; the trace lines and the summary."""

    def __init__(self, out, *, cpu: Cpu | None = None, set_regs: list[SetReg] = (),
                 show_pid: bool = True):
        self.cpu = cpu if cpu is not None else host_cpu()
        self.out = _Line(out)
        self.tracer = Tracer(self.out, show_pid=show_pid)
        self.set_regs = list(set_regs)
        self.summary = Summary()
        self.threads: dict[int, Thread] = {}
        self.shown = False                # nothing is shown before the first execve

    # --- launching
    def spawn(self, argv: list[str]) -> int:
        path = argv[0] if "/" in argv[0] else shutil.which(argv[0])
        if path is None:
            raise FileNotFoundError(errno.ENOENT, f"{argv[0]}: command not found")
        pid = os.fork()
        if pid == 0:                                    # the child: stop, then exec
            try:
                ptrace(PTRACE_TRACEME, 0)
                os.kill(os.getpid(), signal.SIGSTOP)
                os.execv(path, argv)
            except OSError as exc:
                os.write(2, f"sysemu exitpath: {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
        _, status = os.waitpid(pid, WALL)
        if not os.WIFSTOPPED(status):
            return pid
        ptrace(PTRACE_SETOPTIONS, pid, 0, OPTIONS)
        self.threads[pid] = Thread(pid)
        ptrace(PTRACE_SYSCALL, pid, 0, 0)
        return pid

    def run(self, argv: list[str]) -> int:
        """Trace argv to its end; the exit status as a shell gives it (128+N if killed)."""
        root = self.spawn(argv)
        status = 0
        while self.threads:
            try:
                tid, wstatus = os.waitpid(-1, WALL)
            except ChildProcessError:
                break
            result = self.stop(tid, wstatus)
            if tid == root and result is not None:
                status = result
        self.out.write(self.summary.table() if self.shown else "")
        return status

    # --- stops
    def stop(self, tid: int, wstatus: int) -> int | None:
        if os.WIFEXITED(wstatus) or os.WIFSIGNALED(wstatus):
            self.threads.pop(tid, None)
            if os.WIFEXITED(wstatus):
                code = os.WEXITSTATUS(wstatus)
                if self.shown:
                    self.tracer.exited(tid, code)
                return code
            sig = os.WTERMSIG(wstatus)
            if self.shown:
                self.tracer.killed(tid, signame(sig))
            return 128 + sig
        if not os.WIFSTOPPED(wstatus):
            return None
        thread = self.threads.get(tid)
        if thread is None:                # a new task stopped before its parent's event
            thread = self.threads[tid] = Thread(tid, stopped_once=False, returned=False)
        sig, event = os.WSTOPSIG(wstatus), wstatus >> 16
        try:
            resume_sig, request = self.on_stop(thread, sig, event)
            ptrace(request, tid, 0, resume_sig)
        except ProcessLookupError:               # killed while stopped (SIGKILL, exit)
            pass
        return None

    def on_stop(self, thread: Thread, sig: int, event: int) -> tuple[int, int]:
        """What to resume the thread with: (signal, PTRACE_SYSCALL or _SINGLESTEP)."""
        if sig == signal.SIGTRAP | 0x80:
            self.syscall_stop(thread)
            return 0, PTRACE_SYSCALL
        if sig == signal.SIGTRAP and event:
            if event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE):
                child = get_eventmsg(thread.tid)
                new = self.threads.setdefault(
                    child, Thread(child, stopped_once=False, returned=False))
                new.forked_by = thread.name
                self.first_return(new)
            elif event == PTRACE_EVENT_EXEC:
                self.exec_event(thread)
            return 0, PTRACE_SYSCALL
        if not thread.stopped_once:
            # An auto-attached task's first stop (its SIGSTOP): it has not run yet.
            thread.stopped_once = True
            self.first_return(thread)
            return 0, PTRACE_SYSCALL
        if sig == signal.SIGTRAP and thread.stepping_into:
            self.handler_entered(thread)
            return 0, PTRACE_SYSCALL
        info = get_siginfo(thread.tid)
        if info is None:                          # group-stop
            return 0, PTRACE_SYSCALL
        return self.signal_stop(thread, sig, info)

    def exec_event(self, thread: Thread) -> None:
        """A thread other than the leader called execve: the kernel gave it the leader's
        tid (de_thread()); the old leader's death is not reported."""
        former = get_eventmsg(thread.tid)
        if former == thread.tid or former not in self.threads:
            return
        moved = self.threads.pop(former)
        moved.tid, moved.reenter = thread.tid, True
        self.threads[thread.tid] = moved
        if self.shown:
            self.tracer.message(former, f"+++ superseded by execve in pid {thread.tid} +++")

    def first_return(self, thread: Thread) -> None:
        """The child of fork/clone returns from its parent's call through ret_from_fork
        once it runs: after its first stop, once the parent's event named the call."""
        if thread.returned or not thread.stopped_once or thread.forked_by is None:
            return
        thread.returned = True
        thread.name = thread.forked_by
        decision = sysret.RET_FROM_FORK
        self.summary.add(thread.name, decision)
        if self.shown:
            self.tracer.message(thread.tid, f"<... {thread.name} resumed in the child> = 0 "
                                            f"{decision}")

    def syscall_stop(self, thread: Thread) -> None:
        info = get_syscall_info(thread.tid)
        if info.op == PTRACE_SYSCALL_INFO_ENTRY:
            thread.leaving = None
            thread.arch = info.arch
            thread.name = syscall_name(info.arch, info.data[0])
            thread.args = tuple(info.data[1:7])
            if thread.name == "execve" or thread.name == "execveat":
                self.shown = True
            if self.shown:
                self.tracer.enter(thread.tid, thread.name, thread.args,
                                  ProcessMemory(thread.tid))
            return
        if info.op != PTRACE_SYSCALL_INFO_EXIT:
            return
        if thread.reenter and self.shown:        # its call's line began under its old tid
            thread.reenter = False
            self.tracer.enter(thread.tid, thread.name, thread.args, None)
        regs, note = self.apply_set_regs(thread, get_regs(thread.tid))
        # A call to be restarted leaves with RIP moved back (unless a handler runs).
        decision = self.decide(thread, sysret.restart_regs(regs) or regs)
        thread.leaving = (thread.name, regs, decision)
        self.summary.add(thread.name, decision)
        if self.shown:
            self.out.exit_with(self.tracer, thread.tid, s64(regs.ax),
                               ProcessMemory(thread.tid), f"{decision}{note}")

    def decide(self, thread: Thread, regs: PtRegs) -> ExitPath:
        if thread.arch != AUDIT_ARCH_X86_64:
            return sysret.I386_ENTRY
        return sysret.exit_path(regs, self.cpu)

    def apply_set_regs(self, thread: Thread, regs: PtRegs) -> tuple[PtRegs, str]:
        """--set-reg for this call: write the registers as a debugger would, then read
        back what the kernel accepted (putreg()'s checks); and the note for the line."""
        pokes = [s for s in self.set_regs if s.name == thread.name]
        if not pokes:
            return regs, ""
        set_regs(thread.tid, regs.replace(**{s.reg: s.value for s in pokes}))
        note = ", ".join(f"{s.label or s.reg}={s.value:#x}" for s in pokes)
        return get_regs(thread.tid), f" (tracer set {note})"

    # --- signals on the way out of a call
    def signal_stop(self, thread: Thread, sig: int, info: tuple[int, int]) -> tuple[int, int]:
        """A signal-delivery-stop. On the way out of a call (the thread's registers are
        still the exit stop's), a caught signal's frame changes the exit: single-step
        into the handler to read the registers handle_signal() leaves."""
        if self.shown:
            self.tracer.message(thread.tid, f"--- {signame(sig)} {{si_signo={signame(sig)}, "
                                            f"si_code={si_code_text(sig, info[1])}}} ---")
        leaving, thread.leaving = thread.leaving, None
        if leaving is None or not caught_signals(thread.tid) & (1 << (sig - 1)):
            return sig, PTRACE_SYSCALL
        regs = get_regs(thread.tid)
        if regs.orig_ax == sysret.U64 or (regs.ip, regs.sp) != (leaving[1].ip, leaving[1].sp):
            return sig, PTRACE_SYSCALL           # it went back to user mode in between
        thread.leaving = leaving
        thread.stepping_into = sig
        return sig, PTRACE_SINGLESTEP

    def handler_entered(self, thread: Thread) -> None:
        """signal_setup_done()'s SIGTRAP: the handler's frame is set up, RIP is the
        handler's; do_syscall_64() decides on these registers (another signal may
        stack a frame on top: it is handled the same way)."""
        sig, thread.stepping_into = thread.stepping_into, 0
        name, _regs, old = thread.leaving
        regs = get_regs(thread.tid)
        new = self.decide(thread, regs)
        thread.leaving = (name, regs, new)
        self.summary.add(name, old, -1)
        self.summary.add(name, new)
        if self.shown:
            self.tracer.message(thread.tid, f"<... {name} returns into the {signame(sig)} "
                                            f"handler> {new}")


# include/uapi/asm-generic/siginfo.h: the codes any signal may carry, then per signal.
SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER",
            -3: "SI_MESGQ", -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL"}
SIG_CODES = {
    signal.SIGSEGV: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
    signal.SIGILL: {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP",
                    5: "ILL_PRVOPC", 6: "ILL_PRVREG", 7: "ILL_COPROC", 8: "ILL_BADSTK"},
    signal.SIGTRAP: {1: "TRAP_BRKPT", 2: "TRAP_TRACE", 3: "TRAP_BRANCH", 4: "TRAP_HWBKPT"},
    signal.SIGCHLD: {1: "CLD_EXITED", 2: "CLD_KILLED", 3: "CLD_DUMPED", 4: "CLD_TRAPPED",
                     5: "CLD_STOPPED", 6: "CLD_CONTINUED"},
}


def si_code_text(sig: int, code: int) -> str:
    return SIG_CODES.get(sig, {}).get(code) or SI_CODES.get(code, str(code))


def main(argv: list[str], output: str | None = None, set_regs: list[str] = ()) -> int:
    from sysemu.host.tracing import FdOutput, open_output
    try:
        pokes = [SetReg.parse(text) for text in set_regs]
    except ValueError as exc:
        print(f"sysemu exitpath: {exc}", file=sys.stderr)
        return 2
    if output:
        try:
            out = FdOutput(open_output(output), close=True)
        except OSError as exc:
            print(f"sysemu exitpath: -o {output}: {exc.strerror}", file=sys.stderr)
            return 2
    else:
        out = FdOutput(2)
    try:
        return ExitPathTracer(out, set_regs=pokes).run(argv)
    except FileNotFoundError as exc:
        print(f"sysemu exitpath: {exc.strerror}", file=sys.stderr)
        return 127
    finally:
        out.close()
