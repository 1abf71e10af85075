"""Syscall entry: the tables built from the tbl rows, and do_syscall_64.

Linux: arch/x86/entry/syscall_64.c (sys_call_table, do_syscall_64), syscall_x32.c,
syscall_32.c and common.c (do_syscall_x64, do_syscall_x32, do_int80_syscall_32).
Every slot starts as sys_ni_syscall (-ENOSYS); slots with a sysemu handler are served;
the others follow the policy:

- passthrough: the host kernel runs them (the filter does not even trap them);
- strict: ENOSYS, logged once per syscall, except the calls in DELEGATED, which sysemu
  deliberately leaves to the host (memory, processes, files, time, signals).
"""
from __future__ import annotations

import enum
from typing import Callable, Iterable

from sysemu.abi.errno import Errno
from sysemu.arch.x86 import _syscalls
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.syscalls import HANDLERS, Handler, InstallFd

X32_SYSCALL_BIT = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003


class Policy(str, enum.Enum):
    PASSTHROUGH = "passthrough"
    STRICT = "strict"


class Action(str, enum.Enum):
    SERVED = "served"            # sysemu's handler answers
    PASSTHROUGH = "passthrough"  # the host kernel runs it
    ENOSYS = "ENOSYS"            # sys_ni_syscall


# What sysemu leaves to the host kernel even under --policy strict: the calls a program
# needs to run at all that touch nothing sysemu models.
DELEGATED = frozenset("""
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction
rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield
mremap msync mincore madvise dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile
recvfrom recvmsg sendmsg sendto sendmmsg recvmmsg clone fork vfork execve exit wait4 kill uname
fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat link unlink
symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo
times getuid getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid
setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid
getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack
utime mknod personality statfs fstatfs getpriority setpriority sched_setparam sched_getparam
sched_setscheduler sched_getscheduler sched_get_priority_max sched_get_priority_min
sched_rr_get_interval mlock munlock mlockall munlockall prctl arch_prctl setrlimit sync gettid
readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr
flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity
sched_getaffinity getdents64 set_tid_address restart_syscall fadvise64 timer_create
timer_settime timer_gettime timer_getoverrun timer_delete clock_gettime clock_getres
clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes epoll_create openat mkdirat
mknodat fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat
faccessat pselect6 ppoll set_robust_list get_robust_list splice tee sync_file_range vmsplice
utimensat epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime
timerfd_gettime signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init inotify_init1
inotify_add_watch inotify_rm_watch preadv pwritev rt_tgsigqueueinfo prlimit64 syncfs getcpu
sched_setattr sched_getattr renameat2 getrandom memfd_create execveat membarrier mlock2
copy_file_range preadv2 pwritev2 statx rseq pidfd_send_signal pidfd_open clone3 close_range
openat2 faccessat2 epoll_pwait2 futex_waitv fchmodat2 cachestat mseal futex_wake futex_wait
futex_requeue waitid socketpair
""".split()) | frozenset("""
set_thread_area get_thread_area waitpid oldstat oldfstat oldlstat stat64 lstat64 fstat64
fstatat64 statfs64 fstatfs64 nice signal sigaction sigsuspend sigpending sigreturn
sigprocmask sgetmask ssetmask readdir _llseek _newselect ugetrlimit mmap2 truncate64
ftruncate64 olduname oldolduname lchown32 fchown32 chown32 getuid32 getgid32 geteuid32
getegid32 setreuid32 setregid32 getgroups32 setgroups32 setresuid32 getresuid32
setresgid32 getresgid32 setuid32 setgid32 setfsuid32 setfsgid32 fcntl64 sendfile64
fadvise64_64 clock_gettime64 clock_getres_time64 clock_nanosleep_time64 timer_gettime64
timer_settime64 timerfd_gettime64 timerfd_settime64 utimensat_time64 pselect6_time64
ppoll_time64 rt_sigtimedwait_time64 futex_time64 sched_rr_get_interval_time64
""".split())     # i386's own names for the same jobs (the TLS of arch_prctl, 64-bit stat...)


def sys_ni_syscall(task, args) -> int:
    """Linux: kernel/sys_ni.c sys_ni_syscall()."""
    raise SyscallError(Errno.ENOSYS)


def _host(task, args) -> int:
    raise HostPassthrough()


# The prefix of the function each table calls: Linux builds sys_call_table with
# `#define __SYSCALL(nr, sym) __x64_##sym` (syscall_64.c, for the 64-bit and x32 tables)
# and `__ia32_##sym` (syscall_32.c).
SYMBOL_PREFIX = {"64": "__x64_", "x32": "__x64_", "i386": "__ia32_"}


class Slot:
    """One entry of a syscall table: the tbl line's columns and what sysemu does with it."""

    __slots__ = ("nr", "abi", "name", "entry", "compat", "noreturn", "handler", "action",
                 "call", "table")

    def __init__(self, nr: int, abi: str, name: str, entry: str, handler: Handler | None,
                 action: Action, call: Callable, compat: str = "", noreturn: bool = False):
        self.nr, self.abi, self.name, self.entry = nr, abi, name, entry
        self.compat, self.noreturn = compat, noreturn
        self.handler, self.action, self.call = handler, action, call
        self.table = ""             # "64", "x32" or "i386": the table holding this slot

    @property
    def symbol(self) -> str:
        """The kernel function this slot calls on an x86-64 kernel, as syscalltbl.sh and
        syscall_{64,32}.c spell it: `__x64_sys_read`, `__ia32_compat_sys_socketcall`
        (IA32_EMULATION takes the compat column when there is one), `__x64_compat_sys_recvmsg`
        for x32, `__x64_sys_ni_syscall` for a line without an entry point."""
        if not self.table:
            return ""
        sym = (self.compat if self.table == "i386" else "") or self.entry or "sys_ni_syscall"
        return SYMBOL_PREFIX[self.table] + sym


NI_SLOT = Slot(-1, "", "", "", None, Action.ENOSYS, sys_ni_syscall)


class SyscallTable:
    """Linux: sys_call_table / x32_sys_call_table / ia32_sys_call_table."""

    def __init__(self, abi: str, rows: Iterable[tuple[int, str, str, str, str, bool]],
                 accept: set[str],
                 policy: Policy, on_unserved: Callable[[Slot], None] | None = None,
                 handlers: dict[str, Handler] | None = None, datapath: str = "native"):
        """`rows` are the tbl lines (nr, abi, name, entry, compat, noreturn); `accept` the
        abis this table takes, as syscalltbl.sh --abis selects them. A data call served
        only in the model data path (Handler.datapath, trap_when ()) is the host's in the
        native one."""
        self.abi = abi
        rows = [r for r in rows if r[1] in accept]
        self.nr_syscalls = max(r[0] for r in rows) + 1   # Linux: __NR_syscalls (--emit-nr)
        self.slots: list[Slot] = [NI_SLOT] * self.nr_syscalls
        for nr, row_abi, name, entry, compat, noreturn in rows:
            handler = (HANDLERS if handlers is None else handlers).get(name)
            if handler is not None and handler.datapath and handler.trap_when == () \
                    and datapath != "model":
                handler = None
            handler_abi = "64" if row_abi == "common" else row_abi
            # syscalltbl.sh writes __SYSCALL(nr, sys_ni_syscall) for a line without an
            # entry point; a few lines (_sysctl) name sys_ni_syscall themselves.
            ni = entry in ("", "sys_ni_syscall")
            if handler is not None and handler_abi in handler.abis and not ni:
                slot = Slot(nr, row_abi, name, entry, handler, Action.SERVED, handler.call)
            elif ni:
                slot = Slot(nr, row_abi, name, entry, None, Action.ENOSYS, sys_ni_syscall)
            elif policy is Policy.PASSTHROUGH or name in DELEGATED:
                slot = Slot(nr, row_abi, name, entry, None, Action.PASSTHROUGH, _host)
            else:
                slot = Slot(nr, row_abi, name, entry, None, Action.ENOSYS, None)
                slot.call = self._unserved(slot, on_unserved)
            slot.compat, slot.noreturn = compat, noreturn
            slot.table = abi
            self.slots[nr] = slot
        # what each slot calls, by number: the entry's one index (Linux: sys_call_table
        # holds the functions themselves)
        self.calls: list[Callable] = [slot.call for slot in self.slots]

    @staticmethod
    def _unserved(slot: Slot, on_unserved):
        def call(task, args):
            if on_unserved is not None:
                on_unserved(slot)
            raise SyscallError(Errno.ENOSYS)
        return call

    def lookup(self, nr: int) -> Slot:
        return self.slots[nr] if 0 <= nr < self.nr_syscalls else NI_SLOT


class Syscalls:
    """The three tables of one sandbox and the entry points that index them."""

    def __init__(self, policy: Policy = Policy.PASSTHROUGH, x32_abi: bool = True,
                 on_unserved: Callable[[Slot], None] | None = None,
                 handlers: dict[str, Handler] | None = None, datapath: str = "native"):
        """`handlers` defaults to every registered handler (sysemu.kernel.syscalls.HANDLERS);
        tests may pass their own."""
        self.policy = Policy(policy)
        self.x32_abi = x32_abi          # Linux: CONFIG_X86_X32_ABI
        # "native" or "model" (sysemu run --datapath): under "model" the data calls
        # (Handler.datapath) are served and the filter traps them on every invocation
        self.datapath = datapath
        self._logged: set[tuple[str, str]] = set()
        self._on_unserved = on_unserved
        log = self._log_once
        # Linux: arch/x86/entry/syscalls/Makefile, `--abis common,64`, `common,x32`, `i386`
        self.x64 = SyscallTable("64", _syscalls.TBL_64, {"common", "64"}, self.policy, log,
                                handlers, datapath)
        self.x32 = SyscallTable("x32", _syscalls.TBL_64, {"common", "x32"}, self.policy, log,
                                handlers, datapath)
        self.ia32 = SyscallTable("i386", _syscalls.TBL_32, {"i386"}, self.policy, log,
                                 handlers, datapath)

    def _log_once(self, slot: Slot) -> None:
        key = (slot.abi, slot.name)
        if key not in self._logged:
            self._logged.add(key)
            if self._on_unserved is not None:
                self._on_unserved(slot)

    def slot_64(self, nr: int) -> Slot:
        """Linux: do_syscall_64(): do_syscall_x64(), then do_syscall_x32(), else ni."""
        unr = nr & 0xFFFFFFFF            # `unsigned int unr = nr;`
        if unr < self.x64.nr_syscalls:
            return self.x64.slots[unr]
        xnr = (nr - X32_SYSCALL_BIT) & 0xFFFFFFFF
        if self.x32_abi and xnr < self.x32.nr_syscalls:
            return self.x32.slots[xnr]
        return NI_SLOT

    def slot_32(self, nr: int) -> Slot:
        """Linux: do_int80_syscall_32() / do_fast_syscall_32(): ia32_sys_call_table."""
        unr = nr & 0xFFFFFFFF
        return self.ia32.slots[unr] if unr < self.ia32.nr_syscalls else NI_SLOT

    def slot(self, arch: int, nr: int) -> Slot:
        if arch == AUDIT_ARCH_X86_64:
            return self.slot_64(nr)
        if arch == AUDIT_ARCH_I386:
            return self.slot_32(nr)
        return NI_SLOT

    def do_syscall_64(self, task, nr: int, args) -> int | InstallFd:
        """Linux: do_syscall_64(): the 64-bit table's slot, else the x32 table's."""
        unr = nr & 0xFFFFFFFF
        if unr < self.x64.nr_syscalls:      # a 64-bit number: bit 30 (x32) is clear
            task.abi = "64"
            return self.x64.calls[unr](task, args)
        slot = self.slot_64(nr)
        task.abi = "x32" if slot.abi == "x32" or (nr & X32_SYSCALL_BIT) else "64"
        return slot.call(task, args)

    def do_syscall_32(self, task, nr: int, args) -> int | InstallFd:
        task.abi = "i386"
        return self.slot_32(nr).call(task, args)

    def dispatch(self, task, arch: int, nr: int, args) -> int | InstallFd:
        """Run one call; returns rax or an InstallFd, or raises SyscallError, WouldBlock or
        HostPassthrough. Side effects deferred with task.on_commit() are the caller's to run
        once the response is accepted."""
        if arch == AUDIT_ARCH_X86_64:
            unr = nr & 0xFFFFFFFF
            if unr < self.x64.nr_syscalls:  # do_syscall_64()'s common case, written out
                task.abi = "64"
                return self.x64.calls[unr](task, args)
            return self.do_syscall_64(task, nr, args)
        if arch == AUDIT_ARCH_I386:
            return self.do_syscall_32(task, nr, args)
        raise SyscallError(Errno.ENOSYS)

    def trapped(self) -> dict[str, list[Slot]]:
        """The slots the seccomp filter must send to sysemu, per table."""
        return {t.abi: [s for s in t.slots if s.nr >= 0 and s.action is not Action.PASSTHROUGH
                        and (s.action is Action.SERVED or s.call is not sys_ni_syscall)]
                for t in (self.x64, self.x32, self.ia32)}

    def rows(self) -> list[Slot]:
        """Every numbered slot of every table, for `sysemu syscalls`."""
        return [s for t in (self.x64, self.x32, self.ia32) for s in t.slots if s.nr >= 0]


def run_model_call(syscalls: Syscalls, task, nr: int, *args: int, arch: int = AUDIT_ARCH_X86_64,
                   accepted: bool = True) -> int:
    """Finish one call in the model as the host would: rax, or -errno. An InstallFd goes into
    the task's FdTable. With accepted=False the response is lost (a signal cancelled the
    call): nothing deferred runs and nothing is installed. WouldBlock propagates."""
    task.commits = []
    args = list(args) + [0] * (6 - len(args))
    try:
        result = syscalls.dispatch(task, arch, nr, args)
    except SyscallError as err:
        return -int(err.errno)
    if not accepted:
        return -int(Errno.EINTR)
    if isinstance(result, InstallFd):
        fd = task.files.install(result.file, result.cloexec)
        if result.commit is not None:
            result.commit(fd)
        result = fd
    for action in task.commits:
        action()
    return result
