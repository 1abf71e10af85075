"""struct sockaddr_in / sockaddr_in6 in and out. Linux: include/uapi/linux/in.h, in6.h.

Kernel code gets the bytes move_addr_to_kernel() copied (length = the caller's addrlen)
and decodes them here; each protocol checks the length it needs itself, as Linux does."""
from __future__ import annotations

from dataclasses import dataclass

from sysemu.abi.errno import Errno
from sysemu.abi.inet import SIN6_LEN_RFC2133, SOCKADDR_IN, SOCKADDR_IN6
from sysemu.abi.socket import AF_INET, AF_INET6, SA_FAMILY
from sysemu.kernel.errors import SyscallError


@dataclass(frozen=True)
class InetAddr:
    """A decoded sockaddr_in (addr 4 bytes) or sockaddr_in6 (addr 16 bytes)."""
    family: int
    addr: bytes
    port: int
    flowinfo: int = 0
    scope_id: int = 0


def sa_family(data: bytes) -> int:
    """The sa_family of a copied address; EINVAL when shorter than sa_family."""
    if len(data) < SA_FAMILY.size:
        raise SyscallError(Errno.EINVAL)
    return SA_FAMILY.unpack_from(data)[0]


def decode_sockaddr_in(data: bytes) -> InetAddr:
    """Linux: the (struct sockaddr_in *) cast; EINVAL if shorter than sockaddr_in. The
    family is returned as given (callers check it: EAFNOSUPPORT)."""
    if len(data) < SOCKADDR_IN.size:
        raise SyscallError(Errno.EINVAL)
    family, port, addr = SOCKADDR_IN.unpack_from(data)
    return InetAddr(family, addr, int.from_bytes(port, "big"))


def decode_sockaddr_in6(data: bytes) -> InetAddr:
    """sockaddr_in6: EINVAL if shorter than SIN6_LEN_RFC2133 (24, no scope id); the
    scope id is read only when the full 28 bytes are there (as Linux's addr_len checks)."""
    if len(data) < SIN6_LEN_RFC2133:
        raise SyscallError(Errno.EINVAL)
    padded = data[:SOCKADDR_IN6.size].ljust(SOCKADDR_IN6.size, b"\0")
    family, port, flow, addr, scope = SOCKADDR_IN6.unpack(padded)
    if len(data) < SOCKADDR_IN6.size:
        scope = 0
    return InetAddr(family, addr, int.from_bytes(port, "big"),
                    int.from_bytes(flow, "big"), scope)


def decode_sockaddr(data: bytes, family: int) -> InetAddr:
    """The address as a socket of `family` reads it (AF_INET: sockaddr_in, AF_INET6:
    sockaddr_in6). Any bytes give an InetAddr or SyscallError(EINVAL)."""
    return decode_sockaddr_in(data) if family == AF_INET else decode_sockaddr_in6(data)


def encode_sockaddr(family: int, addr: bytes, port: int, scope_id: int = 0) -> bytes:
    """Linux: inet_getname() / inet6_getname() output (16 or 28 bytes)."""
    if family == AF_INET:
        return SOCKADDR_IN.pack(AF_INET, port.to_bytes(2, "big"), addr)
    return SOCKADDR_IN6.pack(AF_INET6, port.to_bytes(2, "big"), b"\0\0\0\0", addr, scope_id)
