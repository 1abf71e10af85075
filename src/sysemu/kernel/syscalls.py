"""The syscall handler registry and argument decoding.

A handler is declared once with its tbl name and annotated raw arguments:

    @syscall("bind")
    def sys_bind(task: Task, fd: CInt, umyaddr: UserPtr, addrlen: CInt) -> int: ...

The annotations say how each 64-bit register is narrowed (Linux: SYSCALL_DEFINEn's
__SC_CAST); decoders are built once, when arch/x86 builds the table, not per call.
A handler returns an int (rax), or an InstallFd (fd_install of a new file), or raises
SyscallError / WouldBlock / HostPassthrough.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, NewType

CInt = NewType("CInt", int)        # int: low 32 bits, sign-extended
CUInt = NewType("CUInt", int)      # unsigned int: low 32 bits
CLong = NewType("CLong", int)      # long: 64 bits, signed
CULong = NewType("CULong", int)    # unsigned long / size_t: 64 bits
UserPtr = NewType("UserPtr", int)  # void __user *: 64 bits (32 in compat, zero-extended)


def _cint(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _cuint(v: int) -> int:
    return v & 0xFFFFFFFF


def _clong(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


def _culong(v: int) -> int:
    return v & 0xFFFFFFFFFFFFFFFF


DECODERS: dict[object, Callable[[int], int]] = {
    CInt: _cint, CUInt: _cuint, CLong: _clong, CULong: _culong, UserPtr: _culong,
    "CInt": _cint, "CUInt": _cuint, "CLong": _clong, "CULong": _culong, "UserPtr": _culong,
}


# Each decoder as an expression on `a[i]`, so a handler's call narrows its registers in
# one generated function: a Python call per argument costs more than the narrowing.
_INLINE = {
    _cint: "((a[{i}] & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000",
    _cuint: "a[{i}] & 0xFFFFFFFF",
    _clong: "((a[{i}] & 0xFFFFFFFFFFFFFFFF) ^ 0x8000000000000000) - 0x8000000000000000",
    _culong: "a[{i}] & 0xFFFFFFFFFFFFFFFF",
}


def compile_call(func: Callable, decoders: tuple[Callable[[int], int], ...]) -> Callable:
    """`lambda task, a: func(task, d0(a[0]), d1(a[1]) ...)` with the decoders written out
    (Linux: the __SC_CAST of SYSCALL_DEFINEn, expanded at build time). The registers of
    one call are all there: seccomp_data carries six."""
    namespace = {"func": func}
    exprs = []
    for i, d in enumerate(decoders):
        if d in _INLINE:
            exprs.append("(" + _INLINE[d].format(i=i) + ")")
        else:
            namespace[f"d{i}"] = d
            exprs.append(f"d{i}(a[{i}])")
    return eval(f"lambda task, a: func(task{''.join(', ' + e for e in exprs)})", namespace)


@dataclass
class InstallFd:
    """The call's result is a new descriptor: Linux fd_install(). The host installs `file`
    and answers with its number in one step (SECCOMP_ADDFD_FLAG_SEND); `commit(fd)` runs only
    once the program has it. In the model, the Task's FileTable installs it."""
    file: object
    cloexec: bool = False
    commit: Callable[[int], None] | None = None


@dataclass
class InstallFds:
    """The call makes several descriptors and returns 0 (socketpair: Linux
    __sys_socketpair(), fd_install() of both): the host installs each of `files` at the
    lowest free number (ADDFD), then `store(fds)` copies their numbers to the program (may
    raise SyscallError EFAULT, the call's result then), then the call returns 0."""
    files: tuple
    cloexec: bool
    store: Callable[[list], None]


@dataclass
class Handler:
    name: str
    func: Callable
    decoders: tuple[Callable[[int], int], ...]
    abis: frozenset[str] = field(default_factory=lambda: frozenset({"64", "x32", "i386"}))
    # When the seccomp filter sends this call to sysemu: None for always, else rules that
    # are OR-ed, each an AND of (arg index, op, value[, mask]) with op "eq", "ne", "lt",
    # "ge" or "masked_eq" (libseccomp's comparisons). Other calls run on the host.
    trap_when: tuple[tuple[tuple, ...], ...] | None = None
    # A data call (read, write, send*, recv* ...): under the model data path the filter
    # traps it on every invocation (trap_when applies to the native data path only).
    datapath: bool = False
    # With datapath: the rules the model data path traps it by (None: every invocation).
    datapath_when: tuple[tuple[tuple, ...], ...] | None = None
    # func with its arguments narrowed inline: call(task, args) (built in __post_init__).
    call: Callable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.call = compile_call(self.func, self.decoders)

    def __call__(self, task, args):
        return self.call(task, args)

    def arg_bits(self, index: int) -> int:
        """How many low bits of register `index` the kernel reads: 32 for an int or
        unsigned int argument, else 64. The seccomp filter compares no more than that."""
        if index < len(self.decoders) and self.decoders[index] in (_cint, _cuint):
            return 32
        return 64


HANDLERS: dict[str, Handler] = {}


NEVER = ()     # trap_when that traps nothing (a data call of the model data path only)


def syscall(name: str, *, abis: tuple[str, ...] = ("64", "x32", "i386"),
            trap_when: tuple[tuple[tuple, ...], ...] | None = None, datapath: bool = False,
            datapath_when: tuple[tuple[tuple, ...], ...] | None = None):
    """Register `func` as the handler of the tbl entry `name`. `trap_when` narrows what the
    filter traps (see Handler); a handler must then raise HostPassthrough itself for
    anything else that reaches it. `datapath`: trapped always under the model data path
    (Handler.datapath), or as `datapath_when` says there."""

    def register(func):
        params = list(inspect.signature(func).parameters.values())[1:]  # skip task
        try:
            decoders = tuple(DECODERS[p.annotation] for p in params)
        except KeyError as exc:
            raise TypeError(f"{func.__name__}: undeclared argument type {exc}") from None
        if name in HANDLERS:
            raise ValueError(f"two handlers for {name}")
        HANDLERS[name] = Handler(name, func, decoders, frozenset(abis), trap_when, datapath,
                                 datapath_when)
        return func

    return register
