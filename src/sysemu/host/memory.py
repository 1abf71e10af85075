"""Tracee memory: copy_from_user/copy_to_user on another process's address space.

Linux: mm/process_vm_access.c process_vm_rw(). One iovec each side; a failure or a short
transfer (the range ends in an unmapped page) is EFAULT for the syscall, never a crash.
"""
from __future__ import annotations

import ctypes

from sysemu.kernel.errors import fault


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_readv = _libc.process_vm_readv
_writev = _libc.process_vm_writev
for _f in (_readv, _writev):
    _f.argtypes = [ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
                   ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong]
    _f.restype = ctypes.c_ssize_t

ADDR_LIMIT = 1 << 64


class ProcessMemory:
    """The UserMemory of thread `tid` (kernel/usermem.py protocol)."""

    __slots__ = ("tid", "_local", "_remote")

    def __init__(self, tid: int):
        self.tid = tid
        self._local = IoVec()
        self._remote = IoVec()

    def _check(self, addr: int, size: int) -> None:
        if addr < 0 or size < 0 or addr + size > ADDR_LIMIT:
            raise fault(f"{addr:#x}+{size}")

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        self._check(addr, size)
        buf = ctypes.create_string_buffer(size)
        self._local.iov_base = ctypes.addressof(buf)
        self._local.iov_len = size
        self._remote.iov_base = addr
        self._remote.iov_len = size
        n = _readv(self.tid, ctypes.byref(self._local), 1, ctypes.byref(self._remote), 1, 0)
        if n != size:
            raise fault(f"read {addr:#x}+{size} from {self.tid}: "
                        f"{n if n >= 0 else 'errno %d' % ctypes.get_errno()}")
        return buf.raw

    def write(self, addr: int, data: bytes) -> None:
        size = len(data)
        if size == 0:
            return
        self._check(addr, size)
        buf = ctypes.create_string_buffer(bytes(data), size)
        self._local.iov_base = ctypes.addressof(buf)
        self._local.iov_len = size
        self._remote.iov_base = addr
        self._remote.iov_len = size
        n = _writev(self.tid, ctypes.byref(self._local), 1, ctypes.byref(self._remote), 1, 0)
        if n != size:
            raise fault(f"write {addr:#x}+{size} to {self.tid}: "
                        f"{n if n >= 0 else 'errno %d' % ctypes.get_errno()}")
