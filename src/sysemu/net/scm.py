"""struct msghdr / mmsghdr / iovec in (the one decoder of every data call: sys_recv*,
sys_send*, readv/writev), control messages out, for the calls sysemu answers.

Linux: net/socket.c copy_msghdr_from_user() / __copy_msghdr(), net/compat.c
get_compat_msghdr() (i386 and x32 programs: 32-bit pointers and lengths), lib/iov_iter.c
import_iovec(), net/core/scm.c put_cmsg(), net/compat.c put_cmsg_compat().
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from sysemu.abi.errno import Errno
from sysemu.abi.socket import SOCKADDR_STORAGE_SIZE
from sysemu.kernel.errors import SyscallError

UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000               # INT_MAX & PAGE_MASK
TASK_SIZE_MAX = (1 << 47) - 4096        # x86-64, 4-level paging
MSG_CTRUNC = 0x8

USER_MSGHDR = struct.Struct("<QiiQQQQI4x")       # name, namelen, pad, iov, iovlen, control,
                                                 # controllen, flags: 56 bytes
COMPAT_MSGHDR = struct.Struct("<IiIIIII")        # 28 bytes
IOVEC = struct.Struct("<Qq")
COMPAT_IOVEC = struct.Struct("<Ii")
CMSGHDR = struct.Struct("<Qii")                  # len, level, type: 16 bytes
COMPAT_CMSGHDR = struct.Struct("<Iii")           # 12 bytes


@dataclass
class UserMsghdr:
    """A copied msghdr: where it lives (`addr`) and its layout (`compat`), the name
    buffer and its length, the iovecs (base, length), the control buffer."""
    addr: int
    compat: bool
    name: int
    namelen: int
    iov: "IovIter"
    control: int
    controllen: int
    flags: int

    # where the kernel writes back msg_namelen, msg_controllen, msg_flags
    @property
    def namelen_addr(self) -> int:
        return self.addr + 4 if self.compat else self.addr + 8

    @property
    def controllen_addr(self) -> int:
        return self.addr + 20 if self.compat else self.addr + 40

    @property
    def flags_addr(self) -> int:
        return self.addr + 24 if self.compat else self.addr + 48


def msghdr_size(compat: bool) -> int:
    return COMPAT_MSGHDR.size if compat else USER_MSGHDR.size


class KvecIter:
    """Linux: an ITER_KVEC iov_iter, over bytes the kernel holds (kernel_sendmsg()): the
    datagrams a program wrote into its placeholder natively, sent on its behalf."""

    __slots__ = ("data", "count")

    def __init__(self, data: bytes):
        self.data = data
        self.count = len(data)

    def __iter__(self):
        return iter(((0, self.count),))

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


class IovIter:
    """Linux: struct iov_iter over user memory (ITER_UBUF or ITER_IOVEC): `segs` are
    (address, length) pairs, `count` their total. read() and write() move bytes at an
    offset into the whole; a bad address raises EFAULT. Iterating gives the segments."""

    __slots__ = ("mem", "segs", "count")

    def __init__(self, mem, segs: tuple[tuple[int, int], ...]):
        self.mem = mem
        self.segs = segs
        self.count = sum(length for _, length in segs)

    def __iter__(self):
        return iter(self.segs)

    def _spans(self, offset: int, n: int):
        for addr, length in self.segs:
            if offset >= length:
                offset -= length
                continue
            take = min(length - offset, n)
            if take > 0:
                yield addr + offset, take
            n -= take
            offset = 0
            if n <= 0:
                return

    def read(self, offset: int, n: int) -> bytes:
        if len(self.segs) == 1:
            return self.mem.read(self.segs[0][0] + offset, n)
        return b"".join(self.mem.read(addr, take) for addr, take in self._spans(offset, n))

    def write(self, offset: int, data: bytes) -> None:
        if len(self.segs) == 1:
            self.mem.write(self.segs[0][0] + offset, data)
            return
        pieces = self.pieces(offset, data)
        if pieces:
            self.mem.writev(pieces)

    def pieces(self, offset: int, data: bytes) -> tuple[tuple[int, bytes], ...]:
        """What write(offset, data) copies, as (address, bytes) pieces in order, for a
        caller that batches them with copies of its own (UserMemory.writev)."""
        if len(self.segs) == 1:
            return ((self.segs[0][0] + offset, data),) if data else ()
        pos = 0
        pieces = []
        for addr, take in self._spans(offset, len(data)):
            pieces.append((addr, data[pos:pos + take]))
            pos += take
        return tuple(pieces)


def access_ok(addr: int, size: int) -> None:
    """Linux: access_ok(): the range lies below TASK_SIZE_MAX, else EFAULT."""
    if addr + size > TASK_SIZE_MAX:
        raise SyscallError(Errno.EFAULT)


def import_ubuf(mem, buf: int, length: int) -> IovIter:
    """Linux: import_ubuf(): the length clamped to MAX_RW_COUNT, the range checked
    (access_ok: EFAULT)."""
    length = min(length, MAX_RW_COUNT)
    access_ok(buf, length)
    return IovIter(mem, ((buf, length),))


def import_iovec(mem, uvec: int, nr_segs: int, compat: bool = False) -> IovIter:
    """Linux: import_iovec() / __import_iovec(): EINVAL above UIO_MAXIOV segments; the
    copy of the vector (EFAULT; compat_iovec for i386 and x32), EINVAL for a negative
    length (copy_iovec_from_user()); then each range (access_ok: EFAULT), the total
    clamped to MAX_RW_COUNT."""
    if nr_segs > UIO_MAXIOV:
        raise SyscallError(Errno.EINVAL)
    if not nr_segs:
        return IovIter(mem, ())
    layout = COMPAT_IOVEC if compat else IOVEC
    vec = list(layout.iter_unpack(mem.read(uvec, nr_segs * layout.size)))
    if any(length < 0 for _, length in vec):
        raise SyscallError(Errno.EINVAL)
    segs = []
    total = 0
    for base, length in vec:
        access_ok(base, length)
        length = min(length, MAX_RW_COUNT - total)
        total += length
        segs.append((base, length))
    return IovIter(mem, tuple(segs))


def copy_msghdr_from_user(mem, addr: int, compat: bool) -> UserMsghdr:
    """Linux: copy_msghdr_from_user() / get_compat_msghdr() -> __copy_msghdr(), then
    import_iovec(): EFAULT reading it; a NULL name has no length; EINVAL for a negative
    msg_namelen, which is capped at sizeof(struct sockaddr_storage); EMSGSIZE above
    UIO_MAXIOV segments; then import_iovec() (EFAULT, EINVAL, EFAULT, the clamp)."""
    if compat:
        name, namelen, iov, iovlen, control, controllen, flags = COMPAT_MSGHDR.unpack(
            mem.read(addr, COMPAT_MSGHDR.size))
    else:
        name, namelen, _, iov, iovlen, control, controllen, flags = USER_MSGHDR.unpack(
            mem.read(addr, USER_MSGHDR.size))
    if not name:
        namelen = 0
    elif namelen < 0:
        raise SyscallError(Errno.EINVAL)
    namelen = min(namelen, SOCKADDR_STORAGE_SIZE)
    if iovlen > UIO_MAXIOV:
        raise SyscallError(Errno.EMSGSIZE)
    return UserMsghdr(addr, compat, name, namelen, import_iovec(mem, iov, iovlen, compat),
                      control, controllen, flags)


def cmsg_align(length: int, compat: bool) -> int:
    align = 4 if compat else 8
    return (length + align - 1) & ~(align - 1)


def put_cmsgs(mem, msg: UserMsghdr, cmsgs: list[tuple[int, int, bytes]]) -> tuple[int, int]:
    """Linux: put_cmsg() for each (level, type, data) in order: a header that does not
    fit sets MSG_CTRUNC and ends it; data that does not fit is cut (MSG_CTRUNC). Returns
    (bytes of the control buffer used, MSG_CTRUNC or 0)."""
    hdr = COMPAT_CMSGHDR if msg.compat else CMSGHDR
    used = 0
    room = msg.controllen if msg.control else 0
    flags = 0
    pieces = []
    for level, type_, data in cmsgs:
        if room - used < hdr.size:
            flags |= MSG_CTRUNC
            break
        cmlen = hdr.size + len(data)
        if room - used < cmlen:
            flags |= MSG_CTRUNC
            cmlen = room - used
        pieces.append((msg.control + used, hdr.pack(cmlen, level, type_)
                       + data[:cmlen - hdr.size]))
        used += min(cmsg_align(cmlen, msg.compat), room - used)
    for addr, blob in pieces:
        mem.write(addr, blob)
    return used, flags
