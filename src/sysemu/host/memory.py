"""Tracee memory: copy_from_user/copy_to_user on another process's address space.

Linux: mm/process_vm_access.c process_vm_rw(). One iovec each side; a failure or a short
transfer (the range ends in an unmapped page) is EFAULT for the syscall, never a crash.
"""
from __future__ import annotations

import ctypes

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


class ProcessMemory:
    """The UserMemory of thread `tid` (kernel/usermem.py protocol).

    One preallocated buffer and iovec pair per thread: most copies are a few bytes (a
    sockaddr, a length), and the ctypes set-up would cost more than the syscall."""

    __slots__ = ("tid", "_local", "_remote", "_laddr", "_raddr", "_buf", "_bufaddr",
                 "_view", "_pieces", "_paddr")

    def __init__(self, tid: int):
        self.tid = tid
        self._buf = ctypes.create_string_buffer(BUF_SIZE)
        self._bufaddr = ctypes.addressof(self._buf)
        self._view = memoryview(self._buf).cast("B")
        self._local = IoVec(self._bufaddr, 0)
        self._remote = IoVec()
        self._laddr = ctypes.c_void_p(ctypes.addressof(self._local))
        self._raddr = ctypes.c_void_p(ctypes.addressof(self._remote))
        self._pieces = (IoVec * WRITEV_MAX)()
        self._paddr = ctypes.c_void_p(ctypes.addressof(self._pieces))

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
            local, remote = self._local, self._remote
            local.iov_base = self._bufaddr
            local.iov_len = remote.iov_len = size
            remote.iov_base = addr
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
        view, remote, offset, i = self._view, self._pieces, 0, 0
        for addr, data in pieces:
            size = len(data)
            end = offset + size
            if addr < 0 or addr + size > ADDR_LIMIT or end > BUF_SIZE:
                writev_pieces(self, pieces)     # a faulting piece raises there
                return
            view[offset:end] = data
            piece = remote[i]
            piece.iov_base = addr
            piece.iov_len = size
            offset = end
            i += 1
        total = offset
        self._local.iov_base = self._bufaddr
        self._local.iov_len = total
        n = _writev(self.tid, self._laddr, 1, self._paddr, i, 0)
        if n != total:
            raise fault(f"writev {i} pieces ({self.tid}): "
                        f"{n if n >= 0 else 'errno %d' % ctypes.get_errno()}")

    def _big(self, fn, addr: int, size: int, data: bytes | None = None) -> bytes:
        buf = ctypes.create_string_buffer(bytes(data) if data is not None else size, size)
        self._local.iov_base = ctypes.addressof(buf)
        self._transfer(fn, addr, size, "read" if data is None else "write")
        return buf.raw
