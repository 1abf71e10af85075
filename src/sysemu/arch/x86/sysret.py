"""SYSRET or IRET: how a 64-bit system call goes back to user mode.

Linux: arch/x86/entry/syscall_64.c do_syscall_64() (6.18). After the call and
syscall_exit_to_user_mode() (which is where ptrace's syscall-exit stop, signal delivery
and a tracer's register writes happen), do_syscall_64() returns true when the register
state allows SYSRET, and entry_SYSCALL_64 then leaves through SYSRETQ; otherwise it leaves
through the slower but fully capable IRET (swapgs_restore_regs_and_return_to_usermode).
The checks, in Linux's order:

1. a Xen PV guest always uses IRET (X86_FEATURE_XENPV);
2. SYSRET reloads RIP from RCX and RFLAGS from R11: RCX == RIP and R11 == EFLAGS;
3. SYSRET loads CS and SS from MSR_STAR: CS == __USER_CS and SS == __USER_DS;
4. RIP < TASK_SIZE_MAX (a non-canonical RIP would #GP in kernel mode on Intel);
5. neither RF (SYSRET cannot restore it) nor TF (it would trap right after SYSRET).

Two other exits never ask do_syscall_64():
- a new task's first return (the child of fork/vfork/clone/clone3) goes
  ret_from_fork_asm -> swapgs_restore_regs_and_return_to_usermode: always IRET
  (arch/x86/entry/entry_64.S);
- with FRED (X86_FEATURE_FRED enabled), fred_other() calls do_syscall_64() and ignores
  its answer: every event returns through ERETU (arch/x86/entry/entry_fred.c).
i386 calls (int $0x80, and the compat entries of 32-bit programs) go through
do_int80_syscall_32()/do_fast_syscall_32(), which are not modelled here.
"""
from __future__ import annotations

import dataclasses
import enum
import struct

# arch/x86/include/asm/segment.h: GDT_ENTRY_DEFAULT_USER_CS = 6, _DS = 5, RPL 3.
# sysemu: spelled without the leading underscores (a class body would mangle them).
USER_CS = 6 * 8 + 3              # __USER_CS, 0x33
USER_DS = 5 * 8 + 3              # __USER_DS, 0x2b

# arch/x86/include/uapi/asm/processor-flags.h
X86_EFLAGS_TF = 1 << 8
X86_EFLAGS_RF = 1 << 16

PAGE_SIZE = 4096


def task_size_max(la57: bool) -> int:
    """Linux: arch/x86/include/asm/page_64.h task_size_max(): the first address outside the
    user range, one page below the end of the canonical lower half (47 or 56 bits with
    5-level paging, X86_FEATURE_LA57)."""
    return (1 << (56 if la57 else 47)) - PAGE_SIZE


@dataclasses.dataclass(frozen=True)
class Cpu:
    """The CPU features do_syscall_64()'s exit depends on, as the running kernel enabled
    them (the kernel clears a feature it does not use, so /proc/cpuinfo's flags say)."""
    la57: bool = False          # 5-level paging: TASK_SIZE_MAX is 2**56 - PAGE_SIZE
    xenpv: bool = False         # a Xen PV guest: IRET always
    fred: bool = False          # FRED: ERETU always, do_syscall_64()'s answer unused

    @property
    def task_size_max(self) -> int:
        return task_size_max(self.la57)

    @classmethod
    def from_flags(cls, flags: set[str] | frozenset[str]) -> "Cpu":
        """From /proc/cpuinfo's `flags` words (la57, xenpv, fred)."""
        return cls(la57="la57" in flags, xenpv="xenpv" in flags, fred="fred" in flags)


# struct user_regs_struct (arch/x86/include/asm/user_64.h), what PTRACE_GETREGS copies:
# pt_regs' 21 words in pt_regs order, then fs_base, gs_base, ds, es, fs, gs.
USER_REGS_FIELDS = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8",
                    "ax", "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp",
                    "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")
USER_REGS = struct.Struct(f"<{len(USER_REGS_FIELDS)}Q")

# The names a debugger uses (gdb's $rcx, $eflags) for the pt_regs fields.
REG_ALIASES = {"rax": "ax", "rbx": "bx", "rcx": "cx", "rdx": "dx", "rsi": "si",
               "rdi": "di", "rbp": "bp", "rsp": "sp", "rip": "ip", "eflags": "flags",
               "rflags": "flags", "orig_rax": "orig_ax"}


@dataclasses.dataclass(frozen=True)
class PtRegs:
    """struct pt_regs as ptrace shows it (struct user_regs_struct), field names as in
    arch/x86/include/asm/ptrace.h."""
    r15: int = 0
    r14: int = 0
    r13: int = 0
    r12: int = 0
    bp: int = 0
    bx: int = 0
    r11: int = 0
    r10: int = 0
    r9: int = 0
    r8: int = 0
    ax: int = 0
    cx: int = 0
    dx: int = 0
    si: int = 0
    di: int = 0
    orig_ax: int = 0
    ip: int = 0
    cs: int = USER_CS
    flags: int = 0
    sp: int = 0
    ss: int = USER_DS
    fs_base: int = 0
    gs_base: int = 0
    ds: int = 0
    es: int = 0
    fs: int = 0
    gs: int = 0

    @classmethod
    def unpack(cls, data: bytes) -> "PtRegs":
        return cls(*USER_REGS.unpack(data))

    def pack(self) -> bytes:
        return USER_REGS.pack(*(getattr(self, f) for f in USER_REGS_FIELDS))

    def replace(self, **changes: int) -> "PtRegs":
        """A copy with some registers changed; names may be gdb's (rcx, rip, eflags)."""
        fields = {REG_ALIASES.get(k, k): v & (2**64 - 1) for k, v in changes.items()}
        return dataclasses.replace(self, **fields)


def reg_name(name: str) -> str:
    """The pt_regs field for a register name (`rcx` -> `cx`); ValueError if unknown."""
    field = REG_ALIASES.get(name, name)
    if field not in USER_REGS_FIELDS:
        raise ValueError(f"unknown register {name!r}")
    return field


class Path(str, enum.Enum):
    SYSRET = "sysret"
    IRET = "iret"
    ERETU = "eretu"
    NOT_64 = "i386"            # not do_syscall_64(): not decided here


class Reason(str, enum.Enum):
    """Why do_syscall_64() chose IRET: the first of its checks that failed. Linux tests
    RCX/R11 in one `||` and RF/TF in one mask; the reason names the part that failed."""
    XENPV = "xen pv"
    RCX_NE_RIP = "rcx != rip"
    R11_NE_EFLAGS = "r11 != eflags"
    CS_NE_USER_CS = "cs != __USER_CS"
    SS_NE_USER_DS = "ss != __USER_DS"
    RIP_GE_TASK_SIZE_MAX = "rip >= TASK_SIZE_MAX"
    EFLAGS_RF = "eflags.rf"
    EFLAGS_TF = "eflags.tf"
    EFLAGS_RF_TF = "eflags.rf|tf"
    RET_FROM_FORK = "ret_from_fork"
    FRED = "fred"
    I386 = "i386 entry"


@dataclasses.dataclass(frozen=True)
class ExitPath:
    path: Path
    reason: Reason | None = None

    @property
    def sysret(self) -> bool:
        return self.path is Path.SYSRET

    def __str__(self) -> str:
        """`<sysret>`, `<iret: rcx != rip>`: what the trace line ends with."""
        return f"<{self.path.value}>" if self.reason is None else \
            f"<{self.path.value}: {self.reason.value}>"


SYSRET = ExitPath(Path.SYSRET)
RET_FROM_FORK = ExitPath(Path.IRET, Reason.RET_FROM_FORK)
FRED_ERETU = ExitPath(Path.ERETU, Reason.FRED)
I386_ENTRY = ExitPath(Path.NOT_64, Reason.I386)


def syscall_return_via_sysret(regs: PtRegs, cpu: Cpu = Cpu()) -> ExitPath:
    """Linux: arch/x86/entry/syscall_64.c do_syscall_64(), the checks after
    syscall_exit_to_user_mode(), in its order: its answer on `regs` as that function
    left them."""
    # XEN PV guests always use the IRET path.
    # sysemu: never true on bare metal or KVM; kept so the order stays Linux's.
    if cpu.xenpv:
        return ExitPath(Path.IRET, Reason.XENPV)
    # SYSRET requires RCX == RIP and R11 == EFLAGS
    if regs.cx != regs.ip:
        return ExitPath(Path.IRET, Reason.RCX_NE_RIP)
    if regs.r11 != regs.flags:
        return ExitPath(Path.IRET, Reason.R11_NE_EFLAGS)
    # CS and SS must match the values set in MSR_STAR
    if regs.cs != USER_CS:
        return ExitPath(Path.IRET, Reason.CS_NE_USER_CS)
    if regs.ss != USER_DS:
        return ExitPath(Path.IRET, Reason.SS_NE_USER_DS)
    # A non-canonical RCX/RIP would #GP in kernel mode on Intel; TASK_SIZE_MAX covers
    # every user address but the vsyscall page.
    if regs.ip >= cpu.task_size_max:
        return ExitPath(Path.IRET, Reason.RIP_GE_TASK_SIZE_MAX)
    # SYSRET cannot restore RF; restoring TF would trap right after SYSRET.
    rf_tf = regs.flags & (X86_EFLAGS_RF | X86_EFLAGS_TF)
    if rf_tf:
        return ExitPath(Path.IRET, Reason.EFLAGS_RF_TF if rf_tf == X86_EFLAGS_RF | X86_EFLAGS_TF
                        else Reason.EFLAGS_RF if rf_tf == X86_EFLAGS_RF else Reason.EFLAGS_TF)
    return SYSRET


def exit_path(regs: PtRegs, cpu: Cpu = Cpu()) -> ExitPath:
    """How a 64-bit syscall actually leaves: ERETU under FRED (do_syscall_64()'s answer
    is ignored), else do_syscall_64()'s decision."""
    if cpu.fred:
        return FRED_ERETU
    return syscall_return_via_sysret(regs, cpu)


# include/linux/errno.h: the restart codes a signal turns into a restart or -EINTR.
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
__NR_restart_syscall = 219
X32_SYSCALL_BIT = 0x40000000
U64 = 2**64 - 1


def restart_regs(regs: PtRegs) -> PtRegs | None:
    """Linux: arch/x86/kernel/signal.c arch_do_signal_or_restart() (the `no handlers
    present` branch) and get_nr_restart_syscall(): the registers after the kernel restarts
    a call no handler takes, RIP back over the 2-byte syscall instruction, RAX the call
    again (or restart_syscall); None when the result asks for no restart, or the regs are
    not a call's."""
    if regs.orig_ax == U64:                  # syscall_get_nr() == -1: not from a call
        return None
    error = (2**64 - regs.ax) if regs.ax > U64 - 4095 else 0
    if error in (ERESTARTNOHAND, ERESTARTSYS, ERESTARTNOINTR):
        ax = regs.orig_ax
    elif error == ERESTART_RESTARTBLOCK:
        ax = __NR_restart_syscall | (regs.orig_ax & X32_SYSCALL_BIT)
    else:
        return None
    return regs.replace(ax=ax, ip=regs.ip - 2)
