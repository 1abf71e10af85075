"""Tracee memory: copy_from_user/copy_to_user on another process's address space.

Linux: mm/process_vm_access.c process_vm_rw(). One iovec each side; a failure or a short
transfer (the range ends in an unmapped page) is EFAULT for the syscall, never a crash.
"""
from __future__ import annotations

import ctypes
import struct

from sysemu.host.libc import LIBC
from sysemu.kernel.errors import fault
from sysemu.kernel.usermem import writev_pieces


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


# sysemu: called without argtypes, with the iovecs' addresses as prebuilt c_void_p: ctypes
# then converts nothing, which halves the cost of a small copy.
_readv = LIBC.process_vm_readv
_writev = LIBC.process_vm_writev
for _f in (_readv, _writev):
    _f.restype = ctypes.c_ssize_t

ADDR_LIMIT = 1 << 64


BUF_SIZE = 4096
WRITEV_MAX = 4          # remote pieces batched into one process_vm_writev


# local iovec, then 1..WRITEV_MAX remote ones, as words: set with one pack_into (a
# ctypes field set per word costs more than the whole pack)
_IOVECS = [struct.Struct(f"{2 + 2 * n}Q") for n in range(WRITEV_MAX + 1)]


class ProcessMemory:
    """The UserMemory of thread `tid` (kernel/usermem.py protocol).

    One preallocated buffer and iovec array per thread: most copies are a few bytes (a
    sockaddr, a length), and the ctypes set-up would cost more than the syscall."""

    __slots__ = ("tid", "_local", "_remote", "_laddr", "_raddr", "_buf", "_bufaddr",
                 "_view", "_iov", "_iovview", "_paddr")

    def __init__(self, tid: int):
        self.tid = tid
        self._buf = ctypes.create_string_buffer(BUF_SIZE)
        self._bufaddr = ctypes.addressof(self._buf)
        self._view = memoryview(self._buf).cast("B")
        # [local base, local len, remote base, remote len, ...]: _local and _remote are
        # the first two iovecs of it, the remote pieces of writev() all but the first
        self._iov = (ctypes.c_uint64 * (2 + 2 * WRITEV_MAX))()
        self._iovview = memoryview(self._iov).cast("B")
        self._local = IoVec.from_buffer(self._iov, 0)
        self._remote = IoVec.from_buffer(self._iov, ctypes.sizeof(IoVec))
        self._laddr = ctypes.c_void_p(ctypes.addressof(self._local))
        self._raddr = ctypes.c_void_p(ctypes.addressof(self._remote))
        self._paddr = self._raddr

    def _transfer(self, fn, addr: int, size: int, what: str) -> None:
        if addr < 0 or addr + size > ADDR_LIMIT:
            raise fault(f"{addr:#x}+{size}")
        self._local.iov_len = size
        remote = self._remote
        remote.iov_base = addr
        remote.iov_len = size
        n = fn(self.tid, self._laddr, 1, self._raddr, 1, 0)
        if n != size:
            raise fault(f"{what} {addr:#x}+{size} ({self.tid}): "
                        f"{n if n >= 0 else 'errno %d' % ctypes.get_errno()}")

    def read(self, addr: int, size: int) -> bytes:
        if 0 < size <= BUF_SIZE and 0 <= addr <= ADDR_LIMIT - size:
            # The common case, _transfer() written out: a few bytes into the buffer.
            _IOVECS[1].pack_into(self._iovview, 0, self._bufaddr, size, addr, size)
            if _readv(self.tid, self._laddr, 1, self._raddr, 1, 0) == size:
                return self._view[:size].tobytes()
            self._transfer(_readv, addr, size, "read")      # raises EFAULT
        if size <= 0:
            if size < 0:
                raise fault(f"{addr:#x}{size:+}")
            return b""
        if size > BUF_SIZE:
            return self._big(_readv, addr, size)
        self._local.iov_base = self._bufaddr
        self._transfer(_readv, addr, size, "read")
        return bytes(self._view[:size])

    def write(self, addr: int, data: bytes) -> None:
        size = len(data)
        if size == 0:
            return
        if size > BUF_SIZE:
            self._big(_writev, addr, size, data)
            return
        self._view[:size] = data
        self._local.iov_base = self._bufaddr
        self._transfer(_writev, addr, size, "write")

    def writev(self, pieces: tuple[tuple[int, bytes], ...]) -> None:
        """Small pieces in one process_vm_writev: the kernel copies them in order and
        stops at the first fault, as separate copies would."""
        if len(pieces) > WRITEV_MAX:
            writev_pieces(self, pieces)
            return
        view, offset = self._view, 0
        words = [self._bufaddr, 0]
        for addr, data in pieces:
            size = len(data)
            end = offset + size
            if addr < 0 or addr + size > ADDR_LIMIT or end > BUF_SIZE:
                writev_pieces(self, pieces)     # a faulting piece raises there
                return
            view[offset:end] = data
            words += (addr, size)
            offset = end
        words[1] = offset
        i = len(pieces)
        _IOVECS[i].pack_into(self._iovview, 0, *words)
        n = _writev(self.tid, self._laddr, 1, self._paddr, i, 0)
        if n != offset:
            raise fault(f"writev {i} pieces ({self.tid}): "
                        f"{n if n >= 0 else 'errno %d' % ctypes.get_errno()}")

    def _big(self, fn, addr: int, size: int, data: bytes | None = None) -> bytes:
        buf = ctypes.create_string_buffer(bytes(data) if data is not None else size, size)
        self._local.iov_base = ctypes.addressof(buf)
        self._transfer(fn, addr, size, "read" if data is None else "write")
        return buf.raw
