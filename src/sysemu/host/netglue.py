"""The host side of sysemu's files: placeholders, readiness, hand-off and release.

Every sysemu file a program holds is one end of an AF_UNIX socketpair (the placeholder);
sysemu keeps the other end (the kept end) while it needs it (DESIGN.md). This module
implements kernel.task.HostHooks for the live supervisor:

- new_file: make the placeholder. A socket gets a fresh pair. An accepted connection
  gets the *client's kept end*: the two programs then hold the two ends of one socketpair
  and their bytes flow natively, with no copy through sysemu (the fast path the issue
  asks to weigh; measured in bench/). A /proc file gets a pair whose kept end holds its
  content and receives what the program writes.
- listen_queue_changed: a listening placeholder is readable exactly when the accept
  queue is non-empty: sysemu writes one token byte into the kept end while it is, and takes
  it back out of the program's end (pidfd_getfd) when the queue empties.
- release: the last close anywhere of a placeholder shows as EPOLLHUP on the kept end
  (watched with no other event, so unread bytes don't wake us). Once a connection is handed
  off sysemu holds neither end; a sweep of the host's AF_UNIX sockets (sock_diag) notices
  when each end goes away.

sysemu: a socket that is not connected is still a socketpair end in the program, so
read/write on it do not fail with ENOTCONN/EPIPE as on Linux (they would wait or succeed);
calls sysemu serves (connect, accept, getsockopt ...) are exact. README: Limitations.
"""
from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import sys
from typing import Callable

from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpState
from sysemu.host.sockdiag import UnixDiag
from sysemu.kernel.errors import SyscallError
from sysemu.kernel.file import File
from sysemu.kernel.task import HostHooks

SWEEP_INTERVAL = 0.25
SYS_pidfd_getfd = 438


_libc = ctypes.CDLL(None, use_errno=True)


def pidfd_getfd(pid: int, fd: int) -> int:
    """A dup of descriptor `fd` of process `pid` (same open file description)."""
    pidfd = os.pidfd_open(pid)
    try:
        res = _libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if res < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return res
    finally:
        os.close(pidfd)


def program_end(file: File) -> socket.socket | None:
    """The program's end of a placeholder, borrowed through its last holder (pid, fd);
    close it after use. None when that holder no longer has it."""
    holder = file.holder
    if holder is None:
        return None
    try:
        dup = pidfd_getfd(*holder)
    except OSError:
        return None
    sock = socket.socket(fileno=dup)
    if os.fstat(dup).st_ino != sock_inode(file):
        sock.close()
        return None
    return sock


def sock_inode(file: File) -> int:
    return file.host_inode


class Placeholder:
    """Host state of one sysemu file."""

    __slots__ = ("file", "prog_fd", "kept_fd", "inode", "token", "kind", "pending", "watching",
                 "filler", "broken")

    def __init__(self, file: File, prog_fd: int, kept_fd: int | None, kind: str):
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


def sock_of(file: File):
    """The Sock behind a socket File, or None."""
    socket_obj = file.private_data
    return getattr(socket_obj, "sk", None)


class NetGlue(HostHooks):
    """HostHooks for the live supervisor (see module docstring)."""

    def __init__(self, kernel, reactor, registry: dict[int, File],
                 log: Callable[[str], None] | None = None):
        self.kernel = kernel
        self.reactor = reactor
        self.registry = registry        # placeholder inode -> File (host/files.py reads it)
        self.by_file: dict[int, Placeholder] = {}      # id(File) -> Placeholder
        self.handed: dict[int, object] = {}            # inode -> Sock, both ends in programs
        self.orphan_kept: dict[int, int] = {}          # id(child Sock) -> kept fd to hand off
        self._diag: UnixDiag | None = None
        self._sweep_handle = None
        # Kept ends are watched in an epoll of their own, itself watched by the reactor, so
        # settle() can take in every pending hang-up at once before an answer depends on it.
        self._epoll = select.epoll()
        self._watch_cbs: dict[int, Callable[[int], None]] = {}
        reactor.add_reader(self._epoll.fileno(), self.settle)
        self.log = log or (lambda text: print(f"sysemu: {text}", file=sys.stderr))
        self.listener = None            # the supervisor's notify listener (fresh fds)
        self._told_enfile = False

    def settle(self) -> bool:
        """Take in the placeholders programs have closed (hang-ups pending, and handed-off
        ends gone): Linux frees a port at close(), and sysemu must not answer EADDRINUSE
        for a port whose owner is already closed. True if anything was released."""
        released = False
        for fd, events in self._epoll.poll(0):
            cb = self._watch_cbs.get(fd)
            if cb is not None:
                cb(events)
                released = True
        if self.handed:
            before = len(self.handed)
            self.sweep()
            released = released or len(self.handed) != before
        return released

    def watch_hangup(self, fd: int, sock) -> None:
        """Release `sock` in the model when `fd` (a kept end someone else moves data
        through) hangs up: its program closed its end."""
        def hangup(events: int, fd=fd, sock=sock) -> None:
            self._watch_cbs.pop(fd, None)
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass
            file = self._file_of(sock)
            inode = file.host_inode if file is not None else 0
            if self.handed.pop(inode, None) is not None:
                self.registry.pop(inode, None)
                self.by_file.pop(id(file), None)
            self._release_model(sock)
        self._watch_cbs[fd] = hangup
        try:
            self._epoll.register(fd, 0)
        except OSError as exc:
            self._watch_cbs.pop(fd, None)
            self.log(f"watch: {exc}")

    # -- HostHooks -----------------------------------------------------------------
    def new_file(self, file: File) -> None:
        if getattr(self.kernel, "observe_data", False):
            # --pcap / data faults: connections go through sysemu's Pump, not handed off
            from sysemu.host.pump import observe_new_file
            if observe_new_file(self, file):
                return
        kind = "socket" if sock_of(file) is not None else "proc"
        sock = sock_of(file)
        if kind == "socket" and sock.peer is not None and getattr(sock, "parent", None) is not None:
            kept = self._take_client_kept(sock)
            if kept is not None:
                os.set_blocking(kept, not file.nonblocking)
                ph = Placeholder(file, kept, None, kind)
                self._track(ph)
                file.host_fd = kept
                file.host_installed = lambda ok, ph=ph, sock=sock: self._accepted(ph, sock, ok)
                return
        flags = socket.SOCK_CLOEXEC
        try:
            prog, kept = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | flags)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # sysemu: the supervisor's own table is full (its RLIMIT_NOFILE, raised at
            # start as far as it may be): the sandbox's file table is, so ENFILE.
            if not self._told_enfile:
                self._told_enfile = True
                self.log(f"the supervisor's descriptor limit is reached: sockets fail with "
                         f"ENFILE ({exc.strerror})")
            raise SyscallError(Errno.ENFILE) from None
        prog_fd, kept_fd = prog.detach(), kept.detach()
        os.set_blocking(prog_fd, not file.nonblocking)
        os.set_blocking(kept_fd, False)
        ph = Placeholder(file, prog_fd, kept_fd, kind)
        self._track(ph)
        file.host_fd = prog_fd
        file.host_installed = lambda ok, ph=ph: self._installed(ph, ok)
        if kind == "proc":
            ph.pending = bytes(file.private_data.content)
            self._proc_flush(ph)

    def established(self, sock) -> None:
        pass  # the client's placeholder already pairs with its kept end; accept hands it off

    def listen_queue_changed(self, sock) -> None:
        file = self._file_of(sock)
        ph = self.by_file.get(id(file)) if file is not None else None
        if ph is None or ph.kept_fd is None:
            return
        want = sock.ack_backlog > 0
        if want and not ph.token:
            try:
                os.write(ph.kept_fd, b"\0")
                ph.token = True
            except OSError as exc:
                self.log(f"listen token: {exc}")
        elif not want and ph.token and sock.state == TcpState.TCP_LISTEN:
            if self._drain_token(file):
                ph.token = False

    def connecting(self, sock) -> None:
        """A connecting socket is not writable until established (Linux: tcp_poll in
        SYN_SENT): fill the program's end's send buffer, made as small as it goes, so that
        poll() shows no POLLOUT; connect_done() takes the filler out again."""
        ph = self._placeholder_of_sock(sock)
        if ph is None or ph.kept_fd is None or ph.filler:
            return
        end = program_end(ph.file)
        if end is None:
            return
        try:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)   # the minimum
            chunk = b"\0" * 4096
            while True:
                try:
                    ph.filler += end.send(chunk, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
        except OSError as exc:
            self.log(f"connecting placeholder: {exc}")
        finally:
            end.close()

    def connect_done(self, sock, err: int) -> None:
        ph = self._placeholder_of_sock(sock)
        if ph is None or ph.kept_fd is None:
            return
        file = ph.file
        if err and file.nonblocking:
            self._break(ph)
            return
        if ph.filler:
            remaining = ph.filler
            while remaining > 0:
                try:
                    got = os.read(ph.kept_fd, min(remaining, 1 << 16))
                except BlockingIOError:
                    break
                if not got:
                    break
                remaining -= len(got)
            ph.filler = 0
            if ph.watching:         # the filler woke the first-write watch: arm it again
                self._epoll.modify(ph.kept_fd, select.EPOLLIN | select.EPOLLONESHOT)
            end = program_end(file)
            if end is not None:
                try:
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sock.sndbuf // 2)
                except OSError:
                    pass
                end.close()

    def reset(self, sock) -> None:
        """A connection reset before sysemu handed it off (its listener went away, an RST
        fault ...): the program's reads and writes fail with ECONNRESET, as on Linux."""
        ph = self._placeholder_of_sock(sock)
        if ph is not None and ph.kept_fd is not None and ph.kind == "socket":
            self._break(ph)

    def _break(self, ph: Placeholder) -> None:
        """The placeholder shows an error: POLLERR|POLLHUP (and POLLOUT), reads fail with
        ECONNRESET (after a failed non-blocking connect, or a reset). An AF_UNIX end gets
        sk_err when its peer closes with bytes unread, so: make sure the kept end has some,
        and close it."""
        if not ph.filler and not self._unread(ph.kept_fd):
            end = program_end(ph.file)
            if end is not None:
                try:
                    end.send(b"\0", socket.MSG_DONTWAIT)
                except OSError:
                    pass
                end.close()
        self._unwatch(ph)
        os.close(ph.kept_fd)
        ph.kept_fd = None
        ph.filler = 0
        ph.broken = True
        self.handed[ph.inode] = sock_of(ph.file)    # its release is seen by the sweep
        self._schedule_sweep()

    def reconnecting(self, task, fd: int, sock) -> None:
        """Linux lets a socket connect again after a failed attempt; its placeholder broke
        to show that failure (_break), so the program gets a fresh one at the same fd
        (SECCOMP_ADDFD_FLAG_SETFD, as dup2), same flags, before the new attempt."""
        ph = self._placeholder_of_sock(sock)
        if ph is None or not ph.broken or self.listener is None or task.notif_id is None:
            return
        try:
            with open(f"/proc/{task.pid}/fdinfo/{fd}") as info:
                flags = int(next(l for l in info if l.startswith("flags:")).split()[1], 8)
        except (OSError, StopIteration, ValueError):
            return
        prog, kept = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        prog_fd, kept_fd = prog.detach(), kept.detach()
        os.set_blocking(prog_fd, not flags & os.O_NONBLOCK)
        os.set_blocking(kept_fd, False)
        try:
            ok = self.listener.replace_fd(task.notif_id, prog_fd, fd, bool(flags & os.O_CLOEXEC))
        except OSError as exc:
            self.log(f"fresh placeholder: {exc}")
            ok = False
        if not ok:
            os.close(prog_fd)
            os.close(kept_fd)
            return
        self.handed.pop(ph.inode, None)
        if self.registry.get(ph.inode) is ph.file:
            del self.registry[ph.inode]
        fresh = Placeholder(ph.file, prog_fd, kept_fd, "socket")
        self._track(fresh)
        self._installed(fresh, True)            # closes our copy of the program's end
        ph.file.holder = (task.pid, fd)

    @staticmethod
    def _unread(fd: int) -> bool:
        """Whether bytes wait in our end (the program wrote some)."""
        s = socket.socket(fileno=fd)
        try:
            return bool(s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False
        finally:
            s.detach()

    def shutdown(self, sock, how: int) -> None:
        """shutdown(2) reaches the placeholder too, so the peer program reads EOF."""
        file = self._file_of(sock)
        end = program_end(file) if file is not None else None
        if end is None:
            return
        try:
            end.shutdown(how)
        except OSError as exc:
            self.log(f"shutdown of placeholder: {exc}")
        finally:
            end.close()

    def released(self, sock) -> None:
        kept = self.orphan_kept.pop(id(sock), None)
        if kept is not None:        # a child never accepted: its client's kept end goes too
            os.close(kept)
        file = self._file_of(sock)
        ph = self.by_file.get(id(file)) if file is not None else None
        if ph is not None:
            self._forget(ph)

    # -- placeholders ----------------------------------------------------------------
    def _track(self, ph: Placeholder) -> None:
        ph.file.host_inode = ph.inode
        self.by_file[id(ph.file)] = ph
        self.registry[ph.inode] = ph.file
        sock = sock_of(ph.file)
        if sock is not None:
            sock.host_inode = ph.inode      # the inode column of /proc/net/tcp

    def _installed(self, ph: Placeholder, ok: bool) -> None:
        """After ADDFD: the program has its end (ok) or the call was cancelled."""
        os.close(ph.prog_fd)
        ph.prog_fd = -1
        if not ok:
            # Nobody holds the file: the kept end's hang-up releases it like a close.
            pass
        if ph.kept_fd is not None:
            self._watch(ph)

    def _accepted(self, ph: Placeholder, child, ok: bool) -> None:
        if not ok:
            return  # the child stays queued; the kept end stays with its client's entry
        client = child.peer
        self.orphan_kept.pop(id(child), None)
        cph = self._placeholder_of_sock(client) if client is not None else None
        if cph is not None and cph.kept_fd == ph.prog_fd:
            self._unwatch(cph)
            cph.kept_fd = None
            self.handed[cph.inode] = client
        os.close(ph.prog_fd)
        ph.prog_fd = -1
        self.handed[ph.inode] = child
        self._schedule_sweep()

    def _take_client_kept(self, child) -> int | None:
        kept = self.orphan_kept.get(id(child))
        if kept is not None:
            return kept
        cph = self._placeholder_of_sock(child.peer)
        if cph is None or cph.kept_fd is None:
            return None
        return cph.kept_fd

    def _placeholder_of_sock(self, sock) -> Placeholder | None:
        file = self._file_of(sock)
        return self.by_file.get(id(file)) if file is not None else None

    @staticmethod
    def _file_of(sock) -> File | None:
        socket_obj = getattr(sock, "socket", None)
        return getattr(socket_obj, "file", None) if socket_obj is not None else None

    def _watch(self, ph: Placeholder) -> None:
        if ph.watching or ph.kept_fd is None:
            return
        ph.watching = True
        # /proc files: what the program writes. Sockets: hang-up (epoll always reports it),
        # and once the first bytes the program writes (see _kept_event_inner).
        events = select.EPOLLIN if ph.kind == "proc" else select.EPOLLIN | select.EPOLLONESHOT
        self._watch_cbs[ph.kept_fd] = lambda ev, ph=ph: self._kept_event(ph, ev)
        self._epoll.register(ph.kept_fd, events)

    def _unwatch(self, ph: Placeholder) -> None:
        if ph.watching and ph.kept_fd is not None:
            self._watch_cbs.pop(ph.kept_fd, None)
            try:
                self._epoll.unregister(ph.kept_fd)
            except OSError:
                pass
        ph.watching = False

    def _kept_event(self, ph: Placeholder, events: int) -> None:
        try:
            self._kept_event_inner(ph, events)
        except Exception as exc:  # the supervisor never dies of what a program does
            self.log(f"placeholder event: {exc!r}")

    def _kept_event_inner(self, ph: Placeholder, events: int) -> None:
        if ph.kind == "proc":
            self._proc_input(ph, events)
            return
        if events & (select.EPOLLHUP | select.EPOLLERR):
            self._program_closed(ph)
            return
        if events & select.EPOLLIN and ph.kept_fd is not None:
            # The program wrote before its connection was accepted. If its final ACK met a
            # full accept queue, Linux's data segment carries that ACK again: tell the model.
            self._epoll.modify(ph.kept_fd, 0)          # from now on: hang-up only
            sock = sock_of(ph.file)
            if sock is not None and sock.peer is None and sock.parent is None:
                from sysemu.net.ipv4.tcp import tcp_data_pending
                tcp_data_pending(self.kernel.net, sock)

    def _program_closed(self, ph: Placeholder) -> None:
        """The last reference to a placeholder in any program is gone: sock_close()."""
        sock = sock_of(ph.file)
        self._unwatch(ph)
        child = getattr(sock, "peer", None)
        if child is not None and getattr(child, "socket", None) is None \
                and getattr(child, "parent", None) is not None and ph.kept_fd is not None:
            # A client closed before its connection was accepted: the kept end still holds
            # what it sent (and its EOF) for the server; keep it for the hand-off.
            self.orphan_kept[id(child)] = ph.kept_fd
            ph.kept_fd = None
        self._release_model(sock)
        self._forget(ph)

    def _release_model(self, sock) -> None:
        if sock is None:
            return

        try:
            self.kernel.net.release(sock)
        except Exception as exc:  # the supervisor never dies of a model error
            self.log(f"release of {sock!r} failed: {exc!r}")

    def _forget(self, ph: Placeholder) -> None:
        self._unwatch(ph)
        if self.registry.get(ph.inode) is ph.file:
            del self.registry[ph.inode]
        self.by_file.pop(id(ph.file), None)
        self.handed.pop(ph.inode, None)
        for fd in (ph.kept_fd, ph.prog_fd if ph.prog_fd >= 0 else None):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        ph.kept_fd = None
        ph.prog_fd = -1

    def _drain_token(self, file: File) -> bool:
        end = program_end(file)
        if end is None:
            return False
        try:
            end.recv(1, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self.log(f"listen token: {exc}")
            return False
        finally:
            end.close()
        return True

    # -- /proc files -------------------------------------------------------------------
    def _proc_flush(self, ph: Placeholder) -> None:
        while ph.pending:
            try:
                n = os.write(ph.kept_fd, ph.pending)
            except BlockingIOError:
                break
            except OSError:
                ph.pending = b""
                break
            ph.pending = ph.pending[n:]
        if not ph.pending:
            try:
                socket.socket(fileno=os.dup(ph.kept_fd)).shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _proc_input(self, ph: Placeholder, events: int) -> None:
        try:
            data = os.read(ph.kept_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            try:
                ph.file.private_data.write(data)
            except Exception as exc:
                self.log(f"write to {getattr(ph.file.private_data, 'path', '/proc')}: {exc}")
            return
        if ph.pending:
            self._proc_flush(ph)
        self._forget(ph)

    # -- handed-off connections ----------------------------------------------------------
    def _schedule_sweep(self) -> None:
        if self._sweep_handle is None and self.handed:
            self._sweep_handle = self.reactor.call_later(SWEEP_INTERVAL, self._sweep_tick)

    def _sweep_tick(self) -> None:
        self._sweep_handle = None
        try:
            self.sweep()
        except Exception as exc:
            self.log(f"sweep: {exc!r}")
        self._schedule_sweep()

    def sweep(self) -> None:
        """Release the handed-off sockets whose placeholders no program holds any more."""
        if not self.handed:
            return
        if self._diag is None:
            self._diag = UnixDiag()
        try:
            alive = self._diag.dump()
        except OSError as exc:
            self.log(f"sock_diag: {exc}")
            return
        for inode in [i for i in self.handed if i not in alive]:
            sock = self.handed.pop(inode)
            self.registry.pop(inode, None)
            file = self._file_of(sock)
            if file is not None:
                self.by_file.pop(id(file), None)
            self._release_model(sock)


def attach_network(supervisor) -> NetGlue:
    """Give a supervisor's kernel its network's host side: NetGlue as kernel.host, and the
    TCP timers (retransmissions, TIME_WAIT) driven by the reactor."""
    kernel = supervisor.kernel
    if kernel.net is None:
        import sysemu.net
        sysemu.net.attach(kernel)
    glue = NetGlue(kernel, supervisor.reactor, supervisor.registry, log=supervisor.log)
    kernel.host = glue
    supervisor.settle = glue.settle
    glue.listener = _ListenerProxy(supervisor)
    net = kernel.net
    reactor = supervisor.reactor
    state = {"handle": None, "when": None}

    def fire() -> None:
        state["handle"] = state["when"] = None
        try:
            net.run_timers(kernel.clock.now())
        except Exception as exc:
            supervisor.log(f"TCP timers: {exc!r}")

    def arm() -> None:
        when = net.next_deadline()
        if when is None or when == state["when"]:
            return
        if state["handle"] is not None:
            state["handle"].cancel()
        delay = max(0.0, when - kernel.clock.now())
        state["when"] = when
        state["handle"] = reactor.call_later(delay, fire)

    supervisor.after_event.append(arm)
    return glue


class _ListenerProxy:
    """The supervisor's listener as it is when used (it is attached after setup)."""

    def __init__(self, supervisor):
        self._supervisor = supervisor

    def replace_fd(self, *args, **kwargs) -> bool:
        listener = self._supervisor.listener
        return listener.replace_fd(*args, **kwargs) if listener is not None else False
