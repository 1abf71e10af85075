"""Descriptors handed in later: no SCM_RIGHTS from outside the sandbox (SECURITY.md).

A socket keeps the network namespace it was made in: a host TCP socket that a process
outside sends over a path-bound AF_UNIX socket reaches the host's network from inside,
whatever namespaces the program is in. Linux 6.16+ has SO_PASSRIGHTS: with it off, a
socket refuses descriptors sent to it (the sender's sendmsg fails with EPERM and nothing
is queued), and a connection accepted from a listener inherits the listener's setting at
connect() time. sysemu turns it off, before anyone could send, on every AF_UNIX socket of
the program that a process outside could send to:

- stdin, stdout and stderr when they are AF_UNIX sockets (made outside): by `sysemu run`,
  before the program starts (guard_inherited);
- every socket(AF_UNIX, ...) of the program: sysemu makes it (from the register values,
  or socketcall's copy of them) and installs it with the option off (unix_socket),
  so whatever it is later connected, bound or listening to, and every connection accepted
  from it, refuses descriptors;
- setsockopt(SO_PASSRIGHTS) is answered by sysemu, never CONTINUEd (its value is in the
  program's memory): it may turn the option off, never back on (set_passrights); and so
  is every i386 socketcall(SYS_SETSOCKOPT) of a host socket, whose option word is in the
  program's memory too (compat_setsockopt).

What stays open is what only the sandbox can reach: stream and seqpacket socketpair()s
(both ends made inside, connected to each other for good; not trapped; a datagram pair
is made by sysemu with the option off: socketpair()) and, with namespaces, a datagram
socket bound to an abstract name of the sandbox's network namespace: sysemu binds it
itself from its copy of the address and turns the option back on (abstract_bind). A
stream socket bound to an abstract name stays closed: it could still connect() to a
path of a process outside. A path-bound socket stays closed (a process outside can
connect or send to the path), and so does a connect()ed one whose peer sends it
descriptors (whether that peer is inside is known only after the connect, which sysemu
leaves to the host). Every race of the program's threads (rewriting the address, dup2 over
the descriptor) ends with a socket that has the option off: the safe side.

Where the kernel lacks the option (or the inheritance) nothing is changed and descriptors
handed in stay usable, as documented; `--allow-host-fd` turns all of this off.

Linux: net/core/sock.c sk_setsockopt() (SO_PASSRIGHTS: EOPNOTSUPP but for AF_UNIX),
net/unix/af_unix.c unix_create1() (on by default), unix_stream_sendmsg() and
unix_dgram_sendmsg() (EPERM), unix_stream_connect() (the accepted socket's flags).
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct

from sysemu.abi.errno import Errno
from sysemu.abi.socket import (SO_PASSRIGHTS, SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD, SOCK_CLOEXEC,
                               SOCK_TYPE_MASK, SOL_SOCKET, TIMEVAL32, TIMEVAL64)
from sysemu.host.libc import LIBC, getfd_of
from sysemu.kernel.errors import HostPassthrough, SyscallError

SIOCGSKNS = 0x894C          # a socket's network namespace, as a descriptor


def supported() -> bool:
    """Does this kernel refuse descriptors to a socket with SO_PASSRIGHTS off, and do
    accepted connections inherit their listener's setting? (Both since Linux 6.16.)"""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, SO_PASSRIGHTS, 0)
            listener.bind(b"")                  # an autobound abstract name
            listener.listen(1)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(listener.getsockname())
                accepted, _ = listener.accept()
                with accepted:
                    return accepted.getsockopt(socket.SOL_SOCKET, SO_PASSRIGHTS) == 0
    except OSError:
        return False


_OFF = ctypes.c_int(0)


def unix_socket(type_: int, protocol: int) -> int:
    """socket(AF_UNIX, type_, protocol) with SO_PASSRIGHTS off: the descriptor here (to be
    installed in the program), or SyscallError with the kernel's errno. Made by the
    supervisor itself, not the capability-less factory: creating an AF_UNIX socket checks
    no capability, and later checks ask the caller too (sk_ns_capable()), so the maker's
    privileges lend the program nothing; this saves the factory's round trip."""
    fd = LIBC.socket(socket.AF_UNIX, type_ | SOCK_CLOEXEC, protocol)
    if fd < 0:
        raise SyscallError(Errno(ctypes.get_errno()))
    if LIBC.setsockopt(fd, socket.SOL_SOCKET, SO_PASSRIGHTS, ctypes.byref(_OFF), 4) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise SyscallError(Errno(err))
    return fd


def socketpair(family: int, type_: int, protocol: int) -> tuple[int, int]:
    """socketpair(family, type_, protocol) made here (SyscallError with the kernel's errno),
    with SO_PASSRIGHTS off on both ends of an AF_UNIX SOCK_DGRAM pair: such an end can be
    disconnected (connect(AF_UNSPEC)) and bound to a path, and then any process outside can
    send to it. Stream and seqpacket ends stay as Linux makes them (they only ever hear
    from each other: nginx's channels, Chromium's IPC). Made without the supervisor's
    capabilities (another family's socketpair creates its sockets first)."""
    sv = (ctypes.c_int * 2)()
    with _without_capabilities():
        ret = LIBC.socketpair(family, type_ | SOCK_CLOEXEC, protocol, sv)
    if ret != 0:
        raise SyscallError(Errno(ctypes.get_errno()))
    if family == socket.AF_UNIX and type_ & SOCK_TYPE_MASK == socket.SOCK_DGRAM:
        for fd in sv:
            if LIBC.setsockopt(fd, socket.SOL_SOCKET, SO_PASSRIGHTS, ctypes.byref(_OFF), 4):
                err = ctypes.get_errno()
                os.close(sv[0])
                os.close(sv[1])
                raise SyscallError(Errno(err))
    return sv[0], sv[1]


def guard_inherited(fds=(0, 1, 2)) -> list[int]:
    """SO_PASSRIGHTS off on those of `fds` (what the program inherits) that are AF_UNIX
    sockets; which ones. The setting is the socket's: a process outside that holds the
    same socket cannot receive descriptors on it either."""
    guarded = []
    for fd in fds:
        try:
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.family != socket.AF_UNIX:
                    continue
                sock.setsockopt(socket.SOL_SOCKET, SO_PASSRIGHTS, 0)
                guarded.append(fd)
        except OSError:
            continue                    # closed, or not a socket
    return guarded


def _borrow(task, fd: int) -> socket.socket:
    """The program's descriptor `fd` as a socket here (the same open file: pidfd_getfd).
    SyscallError EBADF when there is none, ENOTSOCK when it is no socket."""
    try:
        got = getfd_of(task.pid, fd)
    except OSError as exc:
        if exc.errno == Errno.EBADF:
            raise SyscallError(Errno.EBADF) from None
        raise HostPassthrough() from None   # the process is going: the host answers
    try:
        return socket.socket(fileno=got)
    except OSError:
        os.close(got)
        raise SyscallError(Errno.ENOTSOCK) from None


def set_passrights(task, fd: int, optval: int, optlen: int) -> int:
    """setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, optval, optlen) of a host socket, made
    here. Linux: net/core/sock.c sk_setsockopt(): EINVAL for optlen < sizeof(int), EFAULT,
    EOPNOTSUPP but for AF_UNIX. sysemu: 0 turns the option off; anything else leaves it as
    it is (on for a socketpair, off where sysemu turned it off) and answers 0."""
    with _borrow(task, fd) as sock:
        if optlen < 4:
            raise SyscallError(Errno.EINVAL)
        value = int.from_bytes(task.mem.read(optval, 4), "little")
        try:
            if value == 0:
                sock.setsockopt(socket.SOL_SOCKET, SO_PASSRIGHTS, 0)
            else:
                sock.getsockopt(socket.SOL_SOCKET, SO_PASSRIGHTS)  # EOPNOTSUPP but AF_UNIX
        except OSError as exc:
            raise SyscallError(Errno(exc.errno)) from None
    return 0


def _netns(sock: socket.socket) -> int | None:
    """The inode of `sock`'s network namespace (None if it cannot be read)."""
    try:
        nsfd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
    except OSError:
        return None
    try:
        return os.fstat(nsfd).st_ino
    finally:
        os.close(nsfd)


def abstract_bind(task, fd: int, read_address) -> int:
    """bind(fd, address) of a host AF_UNIX datagram socket to an abstract name (or
    autobind) in the sandbox's network namespace, made here from sysemu's copy of the
    address, with SO_PASSRIGHTS turned back on: only the sandbox can reach that name, and
    a process outside can send to it neither by name (its lookups are in its own
    namespace) nor as its peer. Anything else (a path, another family or type, a socket
    made outside) is the host's (HostPassthrough): the socket keeps its setting, whatever
    the program's threads change meanwhile. sysemu: not a stream or seqpacket socket,
    which could still connect() to a path of a process outside and hear from it then."""
    with _borrow(task, fd) as sock:
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_DGRAM:
            raise HostPassthrough()
        address = read_address()
        if len(address) < 2 or int.from_bytes(address[:2], "little") != socket.AF_UNIX \
                or (len(address) > 2 and address[2] != 0):
            raise HostPassthrough()
        if _netns(sock) != os.stat("/proc/self/ns/net").st_ino:
            raise HostPassthrough()     # e.g. stdin made outside: its abstract names are
                                        # the host's
        buf = ctypes.create_string_buffer(address, len(address))
        if LIBC.bind(sock.fileno(), buf, len(address)) != 0:
            raise SyscallError(Errno(ctypes.get_errno()))
        sock.setsockopt(socket.SOL_SOCKET, SO_PASSRIGHTS, 1)
    return 0


# -- i386 socketcall(SYS_SETSOCKOPT) of a host socket ------------------------------------

SO_ATTACH_FILTER, SO_ATTACH_BPF = 26, 50
SO_ATTACH_REUSEPORT_CBPF, SO_ATTACH_REUSEPORT_EBPF = 51, 52
COMPAT_SOCK_FPROG = struct.Struct("<H2xI")     # struct compat_sock_fprog
SOCK_FPROG = struct.Struct("<H6xQ")            # struct sock_fprog
SOCK_FILTER_SIZE = 8                           # struct sock_filter
OPTLEN_COPIED = 1 << 16
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@contextlib.contextmanager
def _without_capabilities():
    """This thread's effective capabilities off meanwhile: a call made here for the program
    gets no more than the program's own would (it holds none over the sandbox's network
    namespace). sysemu: under --no-contain a root program's own call would have them."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    saved = (ctypes.c_uint32 * 6)()
    if LIBC.capget(header, saved) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    dropped = (ctypes.c_uint32 * 6)(*saved)
    dropped[0] = dropped[3] = 0                  # effective, both halves
    if LIBC.capset(header, dropped) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    try:
        yield
    finally:
        LIBC.capset(header, saved)


def compat_setsockopt(task, fd: int, level: int, optname: int, optval: int,
                      optlen: int) -> int:
    """socketcall(SYS_SETSOCKOPT) of a descriptor that is not sysemu's, made here from
    sysemu's copy of the words: a CONTINUE would let the kernel read them again, and a
    racing thread turn the call into setsockopt(SO_PASSRIGHTS, 1). The option value is
    copied in (at most OPTLEN_COPIED bytes) and given to the 64-bit setsockopt, turned
    into its 64-bit layout where the compat one differs. Linux: net/socket.c
    __sys_setsockopt() for a compat caller: EINVAL for optlen < 0; net/core/sock.c
    sock_set_timeout() (old_timeval32), net/core/filter.c copy_bpf_fprog_from_user()
    (compat_sock_fprog, whose length must be exact), sock_setsockopt's SO_ATTACH_BPF (a
    descriptor of the caller's)."""
    if level == SOL_SOCKET and optname == SO_PASSRIGHTS:
        return set_passrights(task, fd, optval, optlen)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(_borrow(task, fd))
        if optlen < 0:
            raise SyscallError(Errno.EINVAL)
        length = min(optlen, OPTLEN_COPIED)
        value = task.mem.read(optval, length) if length else b""
        keep: list = []                         # what the value points to, alive till the call
        if level == SOL_SOCKET:
            value = _native_value(task, stack, keep, optname, value)
        buf = ctypes.create_string_buffer(value, len(value)) if value else None
        with _without_capabilities():
            ret = LIBC.setsockopt(sock.fileno(), level, optname, buf, len(value))
        if ret != 0:
            raise SyscallError(Errno(ctypes.get_errno()))
    return 0


def _native_value(task, stack: contextlib.ExitStack, keep: list, optname: int,
                  value: bytes) -> bytes:
    """A SOL_SOCKET option's compat value in the 64-bit layout (as is where they agree)."""
    if optname in (SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD):
        if len(value) < TIMEVAL32.size:
            raise SyscallError(Errno.EINVAL)
        return TIMEVAL64.pack(*TIMEVAL32.unpack(value[:TIMEVAL32.size]))
    if optname in (SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF):
        if len(value) != COMPAT_SOCK_FPROG.size:
            raise SyscallError(Errno.EINVAL)
        count, filt = COMPAT_SOCK_FPROG.unpack(value)
        code = task.mem.read(filt, count * SOCK_FILTER_SIZE) if count else b""
        program = ctypes.create_string_buffer(code, max(len(code), 1))
        keep.append(program)
        return SOCK_FPROG.pack(count, ctypes.addressof(program))
    if optname in (SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_EBPF) and len(value) == 4:
        borrowed = stack.enter_context(_borrow_any(task, int.from_bytes(value, "little")))
        return borrowed.to_bytes(4, "little")
    return value


@contextlib.contextmanager
def _borrow_any(task, fd: int):
    """The program's descriptor `fd` here, whatever it is (closed afterwards)."""
    try:
        got = getfd_of(task.pid, fd)
    except OSError:
        raise SyscallError(Errno.EBADF) from None
    try:
        yield got
    finally:
        os.close(got)
