"""Tasks and the sandbox kernel they share. Linux: struct task_struct, struct cred."""
from __future__ import annotations

import random
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.abi.poll import POLLNVAL
from sysemu.kernel.clock import Clock, FakeClock
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.file import FdTable, FileTable
from sysemu.kernel.usermem import BufferMemory, UserMemory
from sysemu.kernel.wait import WaitQueue

CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13


class HostHooks:
    """What the model tells the host side (host/ implements it; the model's default does
    nothing, and tests record). Every sysemu file a program gets is a placeholder in the
    program (DESIGN.md); these calls let the host keep the placeholders in step.

    new_file(file)               a File was created and is about to be installed
    established(sock)            a socket became connected (sock.peer is the other end)
    listen_queue_changed(sock)   a listener's accept queue length changed (readiness)
    accept_dropped(child) -> bool
                                 an accept that dequeued `child` failed (do_accept()): what
                                 of the connection is outside the model goes with it; True
                                 when bytes its client sent were unread there (a RST)
    connecting(sock)             a non-blocking connect returned still in progress
    connect_done(sock, errno)    an asynchronous connect finished (0 or the error)
    shutdown(sock, how)          shutdown(2) succeeded on a connected socket
    reset(sock)                  a connected socket was reset (RST): reads fail ECONNRESET
    reconnecting(task, fd, sock) connect(2) starts an attempt on an unconnected socket:
                                 its placeholder must become one a connection can use
    listening(task, fd, sock)    listen(2) succeeded: the placeholder must show a listener
    linger_changed(sock)         SO_LINGER was set: {1, 0} makes close() send a RST
    timeout_changed(sock)        SO_RCVTIMEO/SO_SNDTIMEO was set: the placeholder's reads
                                 and writes must time out as the socket's would
    released(sock)               the model is done with a socket (ports already freed)
    sock_inode(sock) -> int      the inode a program sees for the socket (/proc/net/tcp,
                                 ss); 0 if none
    datagram_queued(sock, skb)   a datagram joined a UDP sock's receive queue: the
                                 placeholder must hold it too
    datagram_dequeued(sock, skb) sysemu's recvmsg took the head datagram: so must the
                                 placeholder
    datagram_sync(sock) -> int   how many datagrams at the head the program read from
                                 the placeholder natively (and its native sends sent)
    datagram_error(sock)         a UDP sock's pending error (sk_err) was set or cleared
    take_closes()                take in the closes programs have made (before a datagram
                                 is delivered)
    readiness(sock)              (model data path) what poll would show of the socket may
                                 have changed: data or EOF came or was read, an error,
                                 send space
    pull_sent(sock)              (model data path) take in bytes the program wrote to its
                                 placeholder with calls sysemu does not trap (sendmsg
                                 with MSG_PROBE, pwritev2), before a trapped send adds its
                                 own
    stream_send(task, sk, data, flags) -> int
                                 (native data path) put `data` into the stream socket's
                                 placeholder as the program's own send(flags) would,
                                 without waiting: the bytes taken (0 when its buffer is
                                 full), or SyscallError (EPIPE, ECONNRESET ...) with no
                                 signal sent
    stream_writable(sk) -> WaitQueue
                                 (native data path) a wait queue woken once the stream
                                 socket's placeholder takes bytes again
    file_reader(task, fd)        (model data path) the host file at the caller's `fd`, to
                                 read from (sendfile): readable, seekable, read(n, pos),
                                 close(); SyscallError(EBADF) when there is none
    pipe_file(task, fd)          (model data path) the host descriptor at the caller's
                                 `fd` that splice() finds opposite a sysemu socket: pipe,
                                 readable, writable, nonblocking, queued(), space(),
                                 poll(), read(n), write(data) (never waiting), wait(events)
                                 -> a WaitQueue, close(); SyscallError(EBADF) when none
    poll_host(task, fds, wake) -> (revents, cancel)
                                 (model data path) poll(2) of the caller's host
                                 descriptors [(fd, events)] on its behalf: each one's
                                 revents (POLLNVAL when it is not open); with `wake`,
                                 wake() is called once any becomes ready, until
                                 cancel() (None when nothing was set up)
    rlimit_nofile(task)          the caller's RLIMIT_NOFILE (soft)
    max_fds(task)                the size of the caller's descriptor table (select caps
                                 its nfds there)
    send_sig(task, sig)          send signal `sig` to the calling thread as its call
                                 returns (SIGPIPE with EPIPE: Linux's send_sig() before
                                 the return; the host may defer it with task.on_commit)
    passthrough_socket(family, type, protocol)
                                 a host socket of a family sysemu does not serve, made
                                 from these values (never CONTINUE decided from user
                                 memory): an InstallFd, or SyscallError
    unix_socket(type, protocol)  socket(AF_UNIX, ...) from the register values: an
                                 InstallFd, or HostPassthrough (the host makes it)
    unix_bind(task, fd, read_address)
                                 bind(2) of a descriptor that is not sysemu's
                                 (`read_address()` copies the address in): 0,
                                 SyscallError, or HostPassthrough
    set_passrights(task, fd, optval, optlen)
                                 setsockopt(SOL_SOCKET, SO_PASSRIGHTS) of a descriptor
                                 that is not sysemu's: 0, SyscallError, HostPassthrough
                                 (host/rights.py: descriptors handed in)
    socketpair(task, family, type, protocol, usockvec)
                                 socketpair(2) made by the host side (an AF_UNIX datagram
                                 pair, or socketcall's from its copy): InstallFds,
                                 SyscallError, or HostPassthrough
    socketcall_setsockopt(task, fd, level, optname, optval, optlen)
                                 i386 socketcall(SYS_SETSOCKOPT) of a descriptor that is
                                 not sysemu's, from sysemu's copy of its words: 0,
                                 SyscallError, or HostPassthrough
    """

    def new_file(self, file) -> None: ...
    def established(self, sock) -> None: ...
    def listen_queue_changed(self, sock) -> None: ...

    def accept_dropped(self, child) -> bool:
        return False                                # in process: the model holds it all

    def connecting(self, sock) -> None: ...
    def connect_done(self, sock, errno: int) -> None: ...
    def shutdown(self, sock, how: int) -> None: ...
    def reset(self, sock) -> None: ...
    def reconnecting(self, task, fd: int, sock) -> None: ...
    def listening(self, task, fd: int, sock) -> None: ...
    def linger_changed(self, sock) -> None: ...
    def timeout_changed(self, sock) -> None: ...
    def released(self, sock) -> None: ...
    def sock_inode(self, sock) -> int: return 0
    def datagram_queued(self, sock, skb) -> None: ...
    def datagram_dequeued(self, sock, skb) -> None: ...
    def datagram_sync(self, sock) -> int: return 0
    def datagram_error(self, sock) -> None: ...
    def take_closes(self) -> None: ...
    def readiness(self, sock) -> None: ...
    def pull_sent(self, sock) -> None: ...
    def send_sig(self, task, sig: int) -> None: ...

    def stream_send(self, task, sk, data: bytes, flags: int) -> int:
        return len(data)                            # no placeholder here: all taken

    def stream_writable(self, sk) -> WaitQueue:
        return WaitQueue("stream writable")

    def poll_host(self, task, fds, wake):
        return [POLLNVAL] * len(fds), None          # no host files here (in-process models)

    def rlimit_nofile(self, task) -> int:
        return getattr(task.files, "max_fds", 1024)

    def max_fds(self, task) -> int:
        return getattr(task.files, "max_fds", 1024)

    def file_reader(self, task, fd: int):
        raise SyscallError(Errno.EBADF)             # no host files here (in-process models)

    def pipe_file(self, task, fd: int):
        raise SyscallError(Errno.EBADF)

    def passthrough_socket(self, family: int, type_: int, protocol: int):
        raise SyscallError(Errno.EAFNOSUPPORT)      # no host here (in-process models)

    def unix_socket(self, type_: int, protocol: int):
        raise HostPassthrough()

    def unix_bind(self, task, fd: int, read_address) -> int:
        raise HostPassthrough()

    def set_passrights(self, task, fd: int, optval: int, optlen: int) -> int:
        raise HostPassthrough()

    def socketcall_setsockopt(self, task, fd: int, level: int, optname: int, optval: int,
                              optlen: int) -> int:
        raise HostPassthrough()

    def socketpair(self, task, family: int, type_: int, protocol: int, usockvec: int):
        raise HostPassthrough()


def in_compat_syscall(task) -> bool:
    """Linux: in_compat_syscall(): the call came from an i386 or x32 program, whose
    structures (iovec, msghdr, cmsghdr, off_t ...) have the 32-bit layouts."""
    return task.abi != "64"


DATAPATH_NATIVE = "native"
DATAPATH_MODEL = "model"


class Kernel:
    """What all tasks of one sandbox share: the clock, the random source, sysctls and the
    network namespace (attached by sysemu.net). Everything here is deterministic given
    `clock` and `rng`."""

    def __init__(self, clock: Clock | None = None, rng: random.Random | None = None):
        self.clock = clock if clock is not None else FakeClock()
        self.rng = rng if rng is not None else random.Random(0)
        self.sysctl: dict[str, object] = {}
        self.net = None  # sysemu.net.Net, attached by sysemu.net.attach()
        self.host: HostHooks = HostHooks()
        # "native": once connected, the bytes flow between placeholders (the default);
        # "model": the data calls are served and every byte goes through sysemu's TCP
        # (sysemu run --datapath model; DESIGN.md "Data path").
        self.datapath = DATAPATH_NATIVE


class Task:
    """The calling thread as a handler sees it.

    pid is the thread group id, tid the thread; `mem` its address space; `files` its
    descriptor table; `caps` its effective capabilities, or `read_caps` (the host's) to
    read them at the time of each check, as Linux does (a program may drop privileges
    after start: setuid, capset). `abi` is "64", "x32" or "i386".
    Handlers defer side effects that must wait until the program has the result with
    on_commit(): dispatch runs them only when the response is accepted (a signal can
    cancel a call up to that point, and then nothing may have changed)."""

    __slots__ = ("pid", "tid", "mem", "files", "kernel", "caps", "read_caps", "abi",
                 "commits", "comm", "read_groups", "partial", "deadline")

    def __init__(self, kernel: Kernel, pid: int = 1, tid: int | None = None,
                 mem: UserMemory | None = None, files: FileTable | None = None,
                 caps: frozenset[int] = frozenset(), abi: str = "64", comm: str = "",
                 read_caps: Callable[[], frozenset[int]] | None = None,
                 read_groups: Callable[[], tuple[int, tuple[int, ...]]] | None = None):
        self.kernel = kernel
        self.pid = pid
        self.tid = tid if tid is not None else pid
        self.mem = mem if mem is not None else BufferMemory()
        self.files = files if files is not None else FdTable()
        self.caps = caps
        self.read_caps = read_caps
        self.abi = abi
        self.commits: list[Callable[[], None]] = []
        self.comm = comm
        self.read_groups = read_groups
        # A data call that moved some bytes and must wait for the rest (a blocking send
        # larger than the send space, MSG_WAITALL): (the call's key, bytes done). The
        # attempt that runs again when woken goes on from there (a thread is in one call
        # at a time; a restarted call has the same key).
        self.partial: tuple | None = None
        # When a call that waited runs again: its first attempt's deadline (clock
        # seconds), which a timeout keeps counting to; None on a first attempt.
        self.deadline: float | None = None

    def capable(self, cap: int) -> bool:
        """Linux: ns_capable(net->user_ns, cap): the credentials as they are now."""
        if self.read_caps is not None:
            return cap in self.read_caps()
        return cap in self.caps

    def groups(self) -> tuple[int, tuple[int, ...]]:
        """(effective gid, supplementary gids) as they are now (Linux: current_egid(),
        get_current_groups()); (0, ()) for an in-process task."""
        return self.read_groups() if self.read_groups is not None else (0, ())

    def on_commit(self, action: Callable[[], None]) -> None:
        self.commits.append(action)
