"""The seccomp filter: which calls the kernel sends to sysemu (SECCOMP_RET_USER_NOTIF).

Built with libseccomp through ctypes from a Syscalls object: one filter context per
architecture (x86-64, x32, i386), each given the raw numbers of its own table, merged
into one program. Default action ALLOW: a call the filter does not trap costs nothing.

Linux: kernel/seccomp.c; libseccomp's seccomp_rule_add_array(3), seccomp_notify_fd(3).
"""
from __future__ import annotations

import ctypes
import os

from sysemu.arch.x86.entry import X32_SYSCALL_BIT, Syscalls
from sysemu.host.libc import LIBC, NR_SECCOMP, PR_SET_NO_NEW_PRIVS, prctl

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_NOTIFY = 0x7FC00000

SCMP_ARCH_X86_64 = 0xC000003E
SCMP_ARCH_X86 = 0x40000003
SCMP_ARCH_X32 = 0x4000003E

SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8

# include/uapi/linux/seccomp.h
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5      # Linux 5.19+

# enum scmp_compare
SCMP_CMP = {"ne": 1, "lt": 2, "le": 3, "eq": 4, "ge": 5, "gt": 6, "masked_eq": 7}

ARCH_OF_TABLE = {"64": SCMP_ARCH_X86_64, "x32": SCMP_ARCH_X32, "i386": SCMP_ARCH_X86}


class ScmpArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_lib = None


def libseccomp() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        for name in ("seccomp_arch_add", "seccomp_arch_remove"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
        lib.seccomp_merge.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_notify_fd.argtypes = [ctypes.c_void_p]
        lib.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p  # malloc'ed char *
        lib.free = LIBC.free
        lib.free.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise OSError(-rc, f"libseccomp {what}: {os.strerror(-rc)}")
    return rc


def _compare(rule: tuple) -> ScmpArgCmp:
    """(arg, op, value[, mask]) -> struct scmp_arg_cmp (masked_eq: datum_a mask, b value)."""
    arg, op, value, *mask = rule
    if op == "masked_eq":
        return ScmpArgCmp(arg, SCMP_CMP[op], mask[0] & (2**64 - 1), value & (2**64 - 1))
    return ScmpArgCmp(arg, SCMP_CMP[op], value & (2**64 - 1), 0)


class SockFprog(ctypes.Structure):
    """struct sock_fprog."""
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """A built (not yet loaded) filter. Build it in the supervisor before fork; the child
    calls load() between fork and exec and gets the listener fd."""

    def __init__(self, rules: dict[str, list[tuple[int, tuple[tuple, ...] | None]]]):
        # rules: table abi -> [(raw nr, trap_when)], the plan, kept for tests and export.
        self.rules = rules
        self.wait_killable = True       # load() asks for WAIT_KILLABLE_RECV (tests clear it)
        self.skipped: list[tuple[str, int]] = []   # (abi, nr) libseccomp cannot name
        self.ctx = None
        lib = libseccomp()
        merged = None
        for abi, arch in ARCH_OF_TABLE.items():
            if abi not in rules:
                continue
            ctx = self._context(lib, arch)
            for nr, trap_when in rules[abi]:
                native = self._native_number(lib, arch, nr)
                if native is None:
                    self.skipped.append((abi, nr))
                    continue
                self._add(lib, ctx, native, trap_when)
            if merged is None:
                merged = ctx
            else:
                _check(lib.seccomp_merge(merged, ctx), "merge")
        self.ctx = merged
        self.bpf = self._export_bpf() if merged is not None else b""

    @staticmethod
    def _context(lib, arch: int):
        ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
        if not ctx:
            raise OSError(ctypes.get_errno(), "seccomp_init failed")
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW), "attr")
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "attr optimize")
        # SECCOMP_FILTER_FLAG_SPEC_ALLOW: loading a filter would otherwise also turn on the
        # Speculative Store Bypass mitigation for the program, a cost natively it does not
        # pay (the untrapped-call benchmark measures it).
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1), "attr ssb")
        if arch != SCMP_ARCH_X86_64:
            _check(lib.seccomp_arch_add(ctx, arch), "arch_add")
            _check(lib.seccomp_arch_remove(ctx, SCMP_ARCH_X86_64), "arch_remove")
        return ctx

    @staticmethod
    def _native_number(lib, arch: int, nr: int) -> int | None:
        """libseccomp reads a rule's number as the native (x86-64) call and translates it to
        each other arch by name; so a foreign-arch slot goes in as its native (or pseudo,
        negative) number. None when this libseccomp does not know the call."""
        if arch == SCMP_ARCH_X86_64:
            return nr
        raw = nr | X32_SYSCALL_BIT if arch == SCMP_ARCH_X32 else nr
        ptr = lib.seccomp_syscall_resolve_num_arch(arch, raw)
        if not ptr:
            return None
        try:
            name = ctypes.string_at(ptr)
        finally:
            lib.free(ptr)
        native = lib.seccomp_syscall_resolve_name(name)
        return None if native == -1 else native

    @staticmethod
    def _add(lib, ctx, nr: int, trap_when) -> None:
        if trap_when is None:
            _check(lib.seccomp_rule_add_array(ctx, SCMP_ACT_NOTIFY, nr, 0, None),
                   f"rule_add {nr}")
            return
        for conjunction in trap_when:
            cmps = (ScmpArgCmp * max(1, len(conjunction)))(*map(_compare, conjunction))
            _check(lib.seccomp_rule_add_array(ctx, SCMP_ACT_NOTIFY, nr, len(conjunction), cmps),
                   f"rule_add {nr} {conjunction}")

    @property
    def empty(self) -> bool:
        return not any(self.rules.values())

    def load(self) -> int:
        """Load the filter (no_new_privs first) and return the listener fd (close-on-exec).
        Called in the child only. With nothing to trap no filter is loaded and -1 returned.

        The program libseccomp built is loaded with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        (Linux 5.19+; libseccomp 2.5 cannot set it): once sysemu has received a
        notification, only a fatal signal ends the caller's wait (seccomp.c
        should_sleep_killable()). Without it any signal would end the wait of every trapped
        call, even one Linux never interrupts (socket, bind, a UDP recvfrom that has its
        datagram): the call would fail with EINTR, or restart after sysemu had already
        acted on it (a second bind: EINVAL), which Go's SIGURG preemption and any
        timer signal make happen. A parked call sysemu interrupts itself when a signal is
        pending for the thread (Supervisor._check_parked). On an older kernel (EINVAL)
        the filter is loaded as libseccomp loads it."""
        if self.empty:
            return -1
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        code = (ctypes.c_char * len(self.bpf)).from_buffer_copy(self.bpf)
        fprog = SockFprog(len(self.bpf) // 8, ctypes.cast(code, ctypes.c_void_p))
        flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_SPEC_ALLOW
        if self.wait_killable:
            fd = LIBC.syscall(NR_SECCOMP, SECCOMP_SET_MODE_FILTER,
                              flags | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                              ctypes.byref(fprog))
            if fd >= 0:
                return fd
        lib = libseccomp()
        _check(lib.seccomp_load(self.ctx), "load")
        return _check(lib.seccomp_notify_fd(self.ctx), "notify_fd")

    def _export_bpf(self) -> bytes:
        """The BPF program libseccomp built (struct sock_filter[], 8 bytes each)."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(libseccomp().seccomp_export_bpf(self.ctx, fd), "export_bpf")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def export_pfc(self) -> str:
        """The filter as libseccomp's pseudo-C, for tests and debugging."""
        fd = os.memfd_create("seccomp-pfc", os.MFD_CLOEXEC)
        try:
            _check(libseccomp().seccomp_export_pfc(self.ctx, fd), "export_pfc")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return os.pread(fd, size, 0).decode()
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.ctx:
            libseccomp().seccomp_release(self.ctx)
            self.ctx = None


INT_MASK = 0xFFFFFFFF


def narrow(handler, datapath_model: bool = False) -> tuple | None:
    """The handler's trap_when as the filter must compare it: a rule on an argument the
    kernel reads as an int (the handler declares it CInt/CUInt) compares the low 32 bits
    only, a masked equality: the kernel ignores the upper half, so `socket(0x100000002,
    ...)` is socket(AF_INET, ...) and must be trapped as such. Only equalities can be
    narrowed this way (libseccomp has no masked ne/lt/ge)."""
    if handler is None:
        return None
    rules = handler.trap_when
    if datapath_model and handler.datapath:
        rules = handler.datapath_when   # the model data path: None, every invocation
    if rules is None:
        return None
    narrowed = []
    for conjunction in rules:
        cmps = []
        for arg, op, value, *mask in conjunction:
            if handler.arg_bits(arg) == 32:
                if op == "eq":
                    op, mask = "masked_eq", [INT_MASK]
                elif op != "masked_eq":
                    raise ValueError(f"{handler.name}: trap_when {op!r} on the int argument "
                                     f"{arg} cannot ignore its upper half; use eq or masked_eq")
                mask = [mask[0] & INT_MASK]
                value &= mask[0]
            cmps.append((arg, op, value, *mask))
        narrowed.append(tuple(cmps))
    return tuple(narrowed)


def plan(syscalls: Syscalls) -> dict[str, list[tuple[int, tuple | None]]]:
    """Per table, the table numbers to trap and their argument rules (None: always).
    x32 numbers are given without X32_SYSCALL_BIT: libseccomp's x32 arch adds the bit
    itself (the program's rax carries it) and rejects numbers that already have it."""
    rules: dict[str, list[tuple[int, tuple | None]]] = {}
    for abi, slots in syscalls.trapped().items():
        if abi == "x32" and not syscalls.x32_abi:
            continue
        rules[abi] = [(slot.nr, narrow(slot.handler, syscalls.datapath == "model"))
                      for slot in slots]
    # sysemu: calls newer than the host's libseccomp cannot be named on the i386 and x32
    # arches (libseccomp translates rules by name): they are left out (Filter.skipped).
    # sysemu: under strict, numbers past the end of the x64 table are not trapped: libseccomp
    # cannot express a number range, and the host answers them with the same -ENOSYS that
    # dispatch would (sys_ni_syscall, which is not logged either).
    return rules


def build_filter(syscalls: Syscalls) -> Filter:
    return Filter(plan(syscalls))


