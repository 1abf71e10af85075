"""The placeholders: the one owner of the socketpairs that stand for sysemu's files.

Every sysemu file a program holds is one end of an AF_UNIX socketpair (the program's
end); sysemu keeps the other (the kept end) while it needs it (DESIGN.md). Placeholders
makes them (the recipe), keeps the table (by the program's end's inode, which is how a
descriptor is found, and by File), watches kept ends for hang-ups and input, lends the
program's end (`program_end`), hands ends off (both ends then in programs: a sweep of the
host's AF_UNIX sockets, sock_diag, notices when each goes away) and forgets them.

Its clients: the model's host hooks (host/netglue.py) decide what each placeholder is
for; the supervisor installs a placeholder's program end (ADDFD) and tells `installed()`;
host/files.py finds the File behind a descriptor; the Pump borrows program ends.
The model's objects hold none of this: everything is keyed by the File or the Sock.
"""
from __future__ import annotations

import _socket
import errno
import os
import select
import socket
from time import perf_counter
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.host.control import sandbox_pids, socket_users
from sysemu.host.libc import Pidfds
from sysemu.host.sockdiag import UnixDiag
from sysemu.kernel.errors import SyscallError
from sysemu.kernel.wait import WaitQueue

# The sweep's period adapts to its cost: a dump of the host's AF_UNIX sockets is cheap
# when there are few (~0.1 ms), ~8 ms with 10,000. Sweeping every SWEEP_COST_FACTOR
# times the last dump's duration keeps it near 1/SWEEP_COST_FACTOR of one CPU, within
# [SWEEP_MIN, SWEEP_INTERVAL]: a close is seen within ~50 ms while the table is small,
# within SWEEP_INTERVAL at worst (measured: README, Performance).
SWEEP_INTERVAL = 0.25
SWEEP_MIN = 0.05
SWEEP_COST_FACTOR = 40


class Placeholder:
    """Host state of one sysemu file."""

    __slots__ = ("file", "prog_fd", "kept_fd", "inode", "token", "kind", "pending", "watching",
                 "filler", "broken", "listener", "holder", "on_installed", "mirror",
                 "mirror_bytes", "backlog", "syncing", "unsent", "shut")

    def __init__(self, file, prog_fd: int, kept_fd: int | None, kind: str):
        self.file = file
        self.prog_fd = prog_fd          # our copy of the program's end, until installed
        self.kept_fd = kept_fd          # sysemu's end, None once handed off or closed
        self.inode = os.fstat(prog_fd).st_ino
        self.token = False              # a readiness byte sits in the program's end
        self.kind = kind                # "socket" | "proc"
        self.pending = b""              # /proc content not yet written
        self.watching = False
        self.filler = 0                 # bytes keeping a connecting placeholder unwritable
        self.broken = False             # showing an error (failed connect, reset)
        self.listener = False           # a listener's pair (netglue's `listening`)
        self.holder: tuple[int, int] | None = None     # last (pid, fd) seen holding it
        # The model data path: bytes the program wrote natively (untrapped calls) that the
        # model's send queue had no room for yet; how far the kept end is shut down
        # (socket.SHUT_WR: EOF shown, SHUT_RDWR: hang-up shown).
        self.unsent = b""
        self.shut = -1
        # After ADDFD: called with True (the program has it) or False (the call was gone).
        self.on_installed: Callable[[bool], None] | None = None
        # A datagram socket's ("dgram": a SOCK_SEQPACKET pair): the lengths of the
        # datagrams written into the program's end and not yet known to be read (in
        # order) and their sum; payloads waiting for room in the kept end's send buffer
        self.mirror = None
        self.mirror_bytes = 0
        self.backlog = None
        self.syncing = False


class EndWritable(WaitQueue):
    """Woken once a program's end (`end`, sysemu's copy of it) takes bytes again
    (EPOLLOUT): a trapped send that must wait for send space (netglue's stream_writable).
    The copy is held and watched only while a call waits: it goes when the queue is
    woken or its last waiter leaves (an answer, a timeout, a signal), so a program's
    close still shows. No end (the program has none any more): woken at once, and the
    call runs again to meet that."""

    __slots__ = ("_reactor", "_end")

    def __init__(self, reactor, end: socket.socket | None):
        super().__init__("placeholder writable")
        self._reactor = reactor
        self._end = end
        if end is None:
            reactor.call_soon(self.wake_up)
        else:
            reactor.add_writer(end.fileno(), self._ready)

    def _ready(self) -> None:
        self._let_go()
        self.wake_up()

    def remove(self, waiter) -> None:
        super().remove(waiter)
        if not len(self):
            self._let_go()

    def _let_go(self) -> None:
        end, self._end = self._end, None
        if end is not None:
            self._reactor.remove_writer(end.fileno())
            end.close()


DGRAM_SNDBUF = 8 << 20
SO_SNDBUFFORCE = 32


def _big_sndbuf(kept) -> None:
    """A datagram placeholder's kept end holds, in flight, every datagram the program has
    not read (up to its SO_RCVBUF, at most net.core.rmem_max): give it room beyond
    wmem_max when allowed (SO_SNDBUFFORCE needs CAP_NET_ADMIN); what still does not fit
    waits in Placeholder.backlog."""
    for opt in (SO_SNDBUFFORCE, socket.SO_SNDBUF):
        try:
            kept.setsockopt(socket.SOL_SOCKET, opt, DGRAM_SNDBUF)
            return
        except OSError:
            continue


# The socketpair type of each kind of placeholder sysemu makes (Placeholders.new).
_PAIR_TYPES = {"socket": socket.SOCK_STREAM, "proc": socket.SOCK_STREAM,
               "dgram": socket.SOCK_SEQPACKET}


def _end_socket(ph: Placeholder, fd: int) -> socket.socket:
    """A socket object for a copy of ph's program end. Its family and type are known
    (one of sysemu's socketpairs): given, CPython asks the kernel only getsockname, not
    SO_TYPE and SO_PROTOCOL too (two system calls per borrow fewer)."""
    kind_type = _PAIR_TYPES.get(ph.kind)
    if kind_type is None:
        return socket.socket(fileno=fd)
    return socket.socket(socket.AF_UNIX, kind_type, 0, fd)


class Placeholders:
    """The table of placeholders (see the module docstring).

    by_inode     program end's inode -> Placeholder (descriptor lookup)
    by_file      File -> its current Placeholder
    handed       inode -> Sock, for ends both in programs (released when the sweep misses it)
    orphan_kept  child Sock -> the kept end of a client that closed before the accept
    on_release   callable(sock): the model's release of a Sock whose placeholder is gone
    """

    def __init__(self, reactor, log: Callable[[str], None]):
        self.reactor = reactor
        self.log = log
        self.by_inode: dict[int, Placeholder] = {}
        self.by_file: dict[object, Placeholder] = {}
        self.handed: dict[int, object] = {}
        self.orphan_kept: dict[object, int] = {}
        self.on_release: Callable[[object], None] = lambda sock: None
        self._diag: UnixDiag | None = None
        self._told_full = False
        self._sweep_handle = None
        self._sweep_period = SWEEP_INTERVAL
        # Kept ends are watched in an epoll of their own, itself watched by the reactor, so
        # settle() can take in every pending hang-up at once before an answer depends on it.
        self._epoll = select.epoll()
        self._pidfds = Pidfds()         # program_end()'s borrows
        self._watch_cbs: dict[int, Callable[[int], None]] = {}
        reactor.add_reader(self._epoll.fileno(), self.settle)

    # -- making and forgetting -----------------------------------------------------------
    def new(self, file, kind: str, nonblocking: bool) -> Placeholder:
        """A fresh socketpair for `file`, tracked; the program's end is what ADDFD installs.
        A datagram socket's ("dgram") is SOCK_SEQPACKET: records keep their boundaries,
        and a hang-up still shows when the program's last copy closes.
        SyscallError(ENFILE) when the supervisor's own descriptor table is full."""
        kind_type = socket.SOCK_SEQPACKET if kind == "dgram" else socket.SOCK_STREAM
        try:
            # _socket's: socket.socketpair() wraps each end again, asking the kernel
            # getsockname of each (two system calls a placeholder for nothing)
            prog, kept = _socket.socketpair(
                socket.AF_UNIX, kind_type | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # sysemu: the supervisor's table (its RLIMIT_NOFILE, raised at start as far as
            # it may be) holds every sandbox's file: when it is full, the sandbox's file
            # table is, so ENFILE, as Linux says when the system's table is full.
            if not self._told_full:
                self._told_full = True
                self.log(f"the supervisor's descriptor limit is reached: new sockets fail "
                         f"with ENFILE ({exc.strerror})")
            raise SyscallError(Errno.ENFILE) from None
        if kind == "dgram":
            _big_sndbuf(kept)
        prog_fd, kept_fd = prog.detach(), kept.detach()
        if not nonblocking:             # both ends were made non-blocking
            os.set_blocking(prog_fd, True)
        return self.track(Placeholder(file, prog_fd, kept_fd, kind))

    def replaced(self, old: Placeholder, new: Placeholder, holder: tuple[int, int]) -> None:
        """`new` is at the descriptor where `old` was (ADDFD with SETFD): `old` is
        forgotten (a dup made before still holds it, but is no longer found)."""
        new.holder = holder
        self.handed.pop(old.inode, None)
        if self.by_inode.get(old.inode) is old:
            del self.by_inode[old.inode]

    def adopt(self, file, prog_fd: int, nonblocking: bool) -> Placeholder:
        """`file`'s program end is `prog_fd`, a socket sysemu already holds (an accepted
        connection gets its client's kept end); sysemu keeps no end of it."""
        os.set_blocking(prog_fd, not nonblocking)
        return self.track(Placeholder(file, prog_fd, None, "socket"))

    def passthrough_socket(self, file, fd: int) -> Placeholder:
        """`file` is a host socket (`fd`, made by sysemu for the program: host/hostsock.py),
        not a sysemu file: found by File until ADDFD installs it, then forgotten (its
        descriptor is the host's from then on)."""
        ph = Placeholder(file, fd, None, "host")
        self.by_file[file] = ph
        ph.on_installed = lambda ok, ph=ph: self.forget(ph)
        return ph

    def track(self, ph: Placeholder) -> Placeholder:
        self.by_file[ph.file] = ph
        self.by_inode[ph.inode] = ph
        return ph

    def forget(self, ph: Placeholder) -> None:
        """Drop `ph` from the table and close what sysemu still holds of it."""
        self.unwatch(ph)
        if self.by_inode.get(ph.inode) is ph:
            del self.by_inode[ph.inode]
        if self.by_file.get(ph.file) is ph:
            del self.by_file[ph.file]
        self.handed.pop(ph.inode, None)
        for fd in (ph.kept_fd, ph.prog_fd if ph.prog_fd >= 0 else None):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        ph.kept_fd = None
        ph.prog_fd = -1

    def installed(self, ph: Placeholder, ok: bool) -> None:
        """After ADDFD: the program has the end (ok), or the call was gone."""
        on_installed, ph.on_installed = ph.on_installed, None
        if on_installed is not None:
            on_installed(ok)

    def close_prog(self, ph: Placeholder) -> None:
        """Close sysemu's copy of the program's end (once the program has its own)."""
        if ph.prog_fd >= 0:
            os.close(ph.prog_fd)
            ph.prog_fd = -1

    # -- finding -------------------------------------------------------------------------
    def of_file(self, file) -> Placeholder | None:
        return self.by_file.get(file)

    def of_sock(self, sock) -> Placeholder | None:
        socket_obj = getattr(sock, "socket", None)
        file = getattr(socket_obj, "file", None) if socket_obj is not None else None
        return self.by_file.get(file) if file is not None else None

    def inode_of_sock(self, sock) -> int:
        ph = self.of_sock(sock)
        return ph.inode if ph is not None else 0

    def program_end(self, ph: Placeholder | None) -> socket.socket | None:
        """A copy of the program's end (close it after use): sysemu's own while it still
        holds one, else borrowed (pidfd_getfd) from its last holder, else from whichever
        sandbox process /proc shows holding it. None when no program has it any more."""
        fd = self.program_end_fd(ph)
        return _end_socket(ph, fd) if fd is not None else None

    def program_end_fd(self, ph: Placeholder | None) -> int | None:
        """program_end() as a bare descriptor (close it after use), for a caller that
        needs no socket object: CPython's socket() of a descriptor asks the kernel its
        getsockname, a system call per borrow."""
        if ph is None:
            return None
        if ph.prog_fd >= 0:
            return os.dup(ph.prog_fd)
        for holder in (ph.holder, None):
            if holder is None:
                holder = self._find_holder(ph.inode)
                if holder is None:
                    return None
            try:
                dup = self._pidfds.getfd(*holder)
            except OSError:
                continue
            if os.fstat(dup).st_ino == ph.inode:
                ph.holder = holder
                return dup
            os.close(dup)
        return None

    def writable_wait(self, end: socket.socket | None) -> EndWritable:
        """A wait queue woken once `end` (a program end from program_end(), now the
        queue's) takes bytes again."""
        return EndWritable(self.reactor, end)

    @staticmethod
    def _find_holder(inode: int) -> tuple[int, int] | None:
        """(pid, fd) of a sandbox process holding socket `inode` (rare: resets only)."""
        users = socket_users(sandbox_pids()).get(inode)
        return (users[0][1], users[0][2]) if users else None

    # -- watching kept ends --------------------------------------------------------------
    def watch(self, ph: Placeholder, on_event: Callable[[Placeholder, int], None],
              hangup_only: bool = False) -> None:
        """Call on_event(ph, events) for its kept end: a /proc file's input (EPOLLIN), a
        socket's hang-up (always reported) and first written bytes (EPOLLIN, once;
        not with hangup_only)."""
        if ph.watching or ph.kept_fd is None:
            return
        ph.watching = True
        if hangup_only:
            events = 0
        else:
            events = select.EPOLLIN if ph.kind in ("proc", "dgram") \
                else select.EPOLLIN | select.EPOLLONESHOT
        self._watch_cbs[ph.kept_fd] = lambda ev, ph=ph: on_event(ph, ev)
        self._epoll.register(ph.kept_fd, events)

    def rearm(self, ph: Placeholder, events: int) -> None:
        if ph.watching and ph.kept_fd is not None:
            self._epoll.modify(ph.kept_fd, events)

    def unwatch(self, ph: Placeholder) -> None:
        if ph.watching and ph.kept_fd is not None:
            self._watch_cbs.pop(ph.kept_fd, None)
            try:
                self._epoll.unregister(ph.kept_fd)
            except OSError:
                pass
        ph.watching = False

    def watch_hangup(self, fd: int, sock) -> None:
        """Release `sock` when `fd` (a kept end the Pump moves data through) hangs up: its
        program closed its end."""
        def hangup(events: int, fd=fd, sock=sock) -> None:
            self._watch_cbs.pop(fd, None)
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass
            ph = self.of_sock(sock)
            if ph is not None and self.handed.pop(ph.inode, None) is not None:
                self.forget(ph)
            self.on_release(sock)
        self._watch_cbs[fd] = hangup
        try:
            self._epoll.register(fd, 0)
        except OSError as exc:
            self._watch_cbs.pop(fd, None)
            self.log(f"watch: {exc}")

    def take_events(self) -> bool:
        """Handle the kept ends' pending events now (hang-ups: the programs' closes) rather
        than at the reactor's next turn. True if there were any."""
        taken = False
        for fd, events in self._epoll.poll(0):
            cb = self._watch_cbs.get(fd)
            if cb is not None:
                cb(events)
                taken = True
        return taken

    def settle(self) -> bool:
        """Take in the placeholders programs have closed (hang-ups pending, and handed-off
        ends gone): Linux frees a port at close(), and sysemu must not answer EADDRINUSE
        for a port whose owner is already closed. True if anything was released."""
        released = self.take_events()
        if self.handed:
            before = len(self.handed)
            self.sweep()
            released = released or len(self.handed) != before
        return released

    # -- handed-off ends ---------------------------------------------------------------
    def hand_off(self, ph: Placeholder, sock) -> None:
        """Both ends of `ph` are (or will be) in programs: the sweep releases `sock` once
        no program holds the program end any more."""
        self.handed[ph.inode] = sock
        if self._sweep_handle is None:
            self._sweep_handle = self.reactor.call_later(self._sweep_period, self._sweep_tick)

    def _sweep_tick(self) -> None:
        self._sweep_handle = None
        try:
            self.sweep()
        except Exception as exc:
            self.log(f"sweep: {exc!r}")
        if self.handed:
            self._sweep_handle = self.reactor.call_later(self._sweep_period, self._sweep_tick)

    def sweep(self) -> None:
        """Release the handed-off sockets whose placeholders no program holds any more."""
        if not self.handed:
            return
        if self._diag is None:
            self._diag = UnixDiag()
        start = perf_counter()
        try:
            alive = self._diag.inodes()
        except OSError as exc:
            self.log(f"sock_diag: {exc}")
            return
        self._sweep_period = min(SWEEP_INTERVAL, max(
            SWEEP_MIN, (perf_counter() - start) * SWEEP_COST_FACTOR))
        for inode in [i for i in self.handed if i not in alive]:
            sock = self.handed.pop(inode)
            ph = self.by_inode.get(inode)
            if ph is not None:
                self.forget(ph)
            self.on_release(sock)
