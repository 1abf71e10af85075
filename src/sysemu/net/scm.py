"""struct msghdr / mmsghdr / iovec in, control messages out, for the calls sysemu answers.

Linux: net/socket.c copy_msghdr_from_user() / __copy_msghdr(), net/compat.c
get_compat_msghdr() (i386 and x32 programs: 32-bit pointers and lengths), lib/iov_iter.c
import_iovec(), net/core/scm.c put_cmsg(), net/compat.c put_cmsg_compat().
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from sysemu.abi.errno import Errno
from sysemu.kernel.errors import SyscallError

UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000               # INT_MAX & PAGE_MASK
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
    iov: list
    control: int
    controllen: int
    flags: int

    @property
    def total(self) -> int:
        return sum(length for _, length in self.iov)

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


def copy_msghdr_from_user(mem, addr: int, compat: bool) -> UserMsghdr:
    """Linux: copy_msghdr_from_user() / get_compat_msghdr() + import_iovec(): EFAULT,
    EINVAL for a negative msg_namelen with a name, EMSGSIZE above UIO_MAXIOV segments,
    EFAULT for the iovec array, EINVAL for a negative segment length (or a total past
    MAX_RW_COUNT, where Linux shortens: sysemu caps it too)."""
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
    if iovlen > UIO_MAXIOV:
        raise SyscallError(Errno.EMSGSIZE)
    vecs = []
    if iovlen:
        layout = COMPAT_IOVEC if compat else IOVEC
        raw = mem.read(iov, iovlen * layout.size)
        total = 0
        for base, length in layout.iter_unpack(raw):
            if length < 0:
                raise SyscallError(Errno.EINVAL)
            length = min(length, MAX_RW_COUNT - total)
            total += length
            vecs.append((base, length))
    return UserMsghdr(addr, compat, name, namelen, vecs, control, controllen, flags)


def gather(mem, iov: list) -> bytes:
    """The bytes the iovecs point to, in order (EFAULT)."""
    return b"".join(mem.read(base, length) for base, length in iov if length)


def scatter(mem, iov: list, data: bytes) -> None:
    """Copy `data` into the iovecs in order, as far as they hold (EFAULT)."""
    pos = 0
    for base, length in iov:
        if pos >= len(data):
            break
        piece = data[pos:pos + length]
        mem.write(base, piece)
        pos += len(piece)


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
