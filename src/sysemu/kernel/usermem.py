"""User memory: copy_from_user/copy_to_user. Linux: include/linux/uaccess.h.

One small protocol (read, write, writev, read_struct, write_struct); a bad address raises
SyscallError(EFAULT), never anything else. host/ implements it with process_vm_readv on
the calling thread; tests use BufferMemory.
"""
from __future__ import annotations

import struct
from typing import Protocol

from sysemu.kernel.errors import fault

U32 = struct.Struct("<I")
S32 = struct.Struct("<i")
U64 = struct.Struct("<Q")
S64 = struct.Struct("<q")


class UserMemory(Protocol):
    def read(self, addr: int, size: int) -> bytes: ...
    def write(self, addr: int, data: bytes) -> None: ...
    def writev(self, pieces: tuple[tuple[int, bytes], ...]) -> None: ...


def read_struct(mem: UserMemory, addr: int, layout: struct.Struct) -> tuple:
    """copy_from_user of one struct; EFAULT when any byte of it is unmapped."""
    return layout.unpack(mem.read(addr, layout.size))


def write_struct(mem: UserMemory, addr: int, layout: struct.Struct, *values) -> None:
    mem.write(addr, layout.pack(*values))


def writev_pieces(mem: UserMemory, pieces: tuple[tuple[int, bytes], ...]) -> None:
    """Several copy_to_user in order, as one write where the memory can batch them: the
    pieces before a faulting one are written, as separate copies would leave them."""
    for addr, data in pieces:
        mem.write(addr, data)


def get_user_int(mem: UserMemory, addr: int) -> int:
    """Linux get_user() of an int."""
    return S32.unpack(mem.read(addr, 4))[0]


def put_user_int(mem: UserMemory, addr: int, value: int) -> None:
    write_struct(mem, addr, S32, value)


class BufferMemory:
    """An in-memory address space for tests: mapped regions; everything else faults."""

    def __init__(self):
        self._regions: list[tuple[int, bytearray]] = []
        self._next = 0x10000

    def map(self, size: int, data: bytes = b"", addr: int | None = None) -> int:
        if addr is None:
            addr = self._next
            self._next += (size + 0x1FFF) & ~0xFFF  # leave an unmapped gap after each
        buf = bytearray(size)
        buf[: len(data)] = data
        self._regions.append((addr, buf))
        return addr

    def alloc(self, data: bytes) -> int:
        return self.map(len(data) or 1, data)

    def _find(self, addr: int, size: int) -> tuple[bytearray, int]:
        # Newest first: a test uses what it just mapped, so long runs stay fast.
        for base, buf in reversed(self._regions):
            if base <= addr and addr + size <= base + len(buf):
                return buf, addr - base
        raise fault(f"{addr:#x}+{size}")

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        buf, off = self._find(addr, size)
        return bytes(buf[off: off + size])

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        buf, off = self._find(addr, len(data))
        buf[off: off + len(data)] = data

    def writev(self, pieces: tuple[tuple[int, bytes], ...]) -> None:
        writev_pieces(self, pieces)
