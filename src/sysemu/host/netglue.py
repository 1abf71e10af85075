"""The model's host hooks for the live supervisor: what each placeholder is for.

The placeholders themselves (socketpairs, table, watching, hand-off) belong to
host/placeholder.py; this module implements kernel.task.HostHooks on top of them:

- new_file: a socket gets a fresh pair (listen(2) replaces it: `listening`). An accepted
  connection gets the *client's kept end*: the two programs then hold the two ends of one socketpair and their bytes flow
  natively, with no copy through sysemu. With a Pump (--pcap, data faults) it gets a
  pair of its own instead, and the Pump joins the two kept ends. A /proc file gets a pair
  whose kept end holds its content and receives what the program writes.
- listen_queue_changed: a listening placeholder is readable exactly when the accept
  queue is non-empty: sysemu writes one token byte into the kept end while it is, and takes
  it back out of the program's end when the queue empties. An accept that takes the last
  queued child takes the token out *before* its answer (Linux dequeues before accept
  returns: a program that polls again must not see the listener readable), and puts it
  back if the call is cancelled.
- listening: a listener's pair is prepared so that its program end shows what Linux's
  listener shows: the kept end has shut down reading, so the program's send, write and
  sendfile fail with EPIPE (and SIGPIPE); a few filler bytes the program's end "sent"
  hold its send buffer over a quarter full, so poll shows no POLLOUT (unix_writable())
  while a send still gets as far as the EPIPE (sock_alloc_send_pskb() allows up to the
  whole buffer). SIOCINQ/SIOCOUTQ are trapped (fs/fcntl.py): EINVAL as tcp_ioctl().
  Why not a host TCP listener: a real one must bind a host port, and its readiness
  would need a host connection per token; the pair gives the same answers but recv.
  The pair replaces the socket's first one at its descriptor (ADDFD with SETFD) before
  listen() returns; servers register a listener with epoll after listen().

Why a new socket is not a fresh host TCP socket (which would answer recv ENOTCONN, send
EPIPE, poll POLLOUT|POLLHUP exactly, and was tried): connect(2) must then replace it with
a pair, and a replaced descriptor loses its epoll registration. Programs register a
socket before connecting it: nginx's ngx_event_connect_peer() adds the upstream socket
to epoll (edge-triggered, once) and then connects, so a proxied request would never see
its connection complete. A pair from the start keeps that working; the data calls on an
unconnected socket are the difference left (README: Limitations).
- released: the last close anywhere of a placeholder shows as EPOLLHUP on the kept end
  (watched with no other event, so unread bytes don't wake us); once a connection is
  handed off, the placeholders' sweep notices when each end goes away.
- reconnecting: a fresh placeholder at the program's descriptor, installed by the
  supervisor (a ReplaceFd request: ADDFD with SETFD needs the notification).

The model data path (`sysemu run --datapath model`, kernel.datapath): the program's data
calls are trapped and served by the model (fs/read_write.py, net/socket.py), so nothing is
handed off: every socket keeps a pair of its own, and each program's last close shows as
the hang-up of its kept end when it happens (TIME_WAIT goes to the side that closed
first). select and poll are sysemu's there (fs/select.py, from the model's tcp_poll()); the
placeholder only shows readiness to what is not trapped (epoll, ppoll and pselect6 with a
signal mask), as tcp_poll() says (`readiness`):
- readable: a token byte sits in the program's end while the model's receive queue holds
  bytes or an error (written into the kept end; taken out of the program's end when the
  queue empties);
- EOF (POLLIN|POLLRDHUP): the kept end shuts its sending side once a FIN came or the
  program shut its reading side;
- a reset: the placeholder breaks as before (POLLERR|POLLHUP; the model answers reads);
- bytes the program writes with calls that are not trapped (sendmsg with MSG_PROBE,
  pwritev2 with offset -1) reach the kept end: sysemu reads them and queues them in the model's
  send queue (tcp_sendpage), after whatever it already holds, and before any trapped send
  that follows (pull_sent).
- writable: while the model's send queue has room (sk_stream_is_writeable()), else the
  program's end is filled as for a connecting socket (_fill), once the kept end holds
  nothing of the program's.
sysemu: POLLHUP and POLLPRI are not shown (README: Limitations).

sysemu: a socket that is neither connected nor listening is a pair end, so recv/read on
it fail with EAGAIN or wait (Linux: ENOTCONN), send/write succeed (Linux: EPIPE), poll
shows POLLOUT without POLLHUP; recv/read on a listener read the readiness token (Linux:
ENOTCONN), or wait for one; a dup of a socket made before its listen() keeps the first
pair. README: Limitations.
"""
from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
from collections import deque
from typing import Callable

import sysemu.net
from sysemu.abi.errno import Errno
from sysemu.abi.fcntl import O_CLOEXEC, O_NONBLOCK, O_RDWR
from sysemu.abi.socket import (AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_RAW,
                               TIMEVAL64)
from sysemu.abi.inet import TcpState
from sysemu.host import hostpoll, rights
from sysemu.host.notify import ReplaceFd
from sysemu.host.placeholder import Placeholder, Placeholders
from sysemu.host.pump import Pump
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.file import File
from sysemu.kernel.syscalls import InstallFd, InstallFds
from sysemu.kernel.wait import WaitQueue
from sysemu.host.files import HostFileReader, HostPipe
from sysemu.host.libc import drop_record, tgkill
from sysemu.kernel.task import DATAPATH_MODEL, HostHooks
from sysemu.net.ipv4.tcp import tcp_data_pending, tcp_placeholder_poll, tcp_sendpage
from sysemu.net.scm import KvecIter


MAX_NATIVE_SENDS = 4096      # records taken from one kept end in one go


def sock_of(file):
    """The Sock behind a socket File, or None."""
    return getattr(file.private_data, "sk", None)


class NetGlue(HostHooks):
    """HostHooks for the live supervisor (see module docstring). `requests` is the
    supervisor's list of notification requests (ReplaceFd), carried out before the
    answer of the call being served; `pump` is set for --pcap and data faults;
    `socket_factory` (host/hostsock.py) makes the host sockets of passthrough_socket().
    `refuse_rights`: the program's AF_UNIX sockets refuse descriptors (host/rights.py);
    `abstract_inside`: an abstract name is the sandbox's alone (its network namespace)."""

    def __init__(self, kernel, placeholders: Placeholders, requests: list,
                 log: Callable[[str], None]):
        self.kernel = kernel
        self.placeholders = placeholders
        self.requests = requests
        self.log = log
        self.pump: Pump | None = None
        self.socket_factory = None
        self.refuse_rights = False
        self.abstract_inside = False
        self._abort_armed: set = set()      # Socks with an abort byte (linger_changed)
        self._borrowed: dict = {}           # Placeholder -> its program end (fd), one batch
        self._pulling: set = set()          # placeholders _pull() is working on
        # Sock -> callable(child, child_kept_fd): a client from outside the sandbox (a
        # published port: host/portfwd.py), which takes the accepted child's kept end
        self.outside: dict = {}
        placeholders.on_release = self._release_model

    @property
    def model(self) -> bool:
        """The model data path: the bytes go through sysemu's TCP (module docstring)."""
        return self.kernel.datapath == DATAPATH_MODEL

    def use_pump(self, pump: Pump) -> None:
        """From now on accepted connections go through `pump`, not handed off (not in the
        model data path, where the model moves every byte and the pcap has its segments)."""
        if self.model:
            return
        self.pump = pump
        pump.program_end = self.program_end

    # -- HostHooks -----------------------------------------------------------------
    def new_file(self, file) -> None:
        phs = self.placeholders
        sock = sock_of(file)
        if sock is None:                        # a /proc file
            ph = phs.new(file, "proc", file.nonblocking)
            ph.on_installed = lambda ok, ph=ph: self._installed(ph, ok)
            ph.pending = bytes(file.private_data.content)
            self._proc_flush(ph)
            return
        if sock.type in (SOCK_DGRAM, SOCK_RAW):
            ph = phs.new(file, "dgram", file.nonblocking)
            ph.mirror, ph.backlog = deque(), deque()
            ph.on_installed = lambda ok, ph=ph: self._installed(ph, ok)
            return
        if sock.peer is not None and getattr(sock, "parent", None) is not None:
            self._accepting(sock.parent)
            if self.model and sock.peer not in self.outside:
                ph = phs.new(file, "socket", file.nonblocking)     # the model moves the bytes
                ph.on_installed = lambda ok, ph=ph: self._installed(ph, ok)
                return
            if self.pump is not None or sock.peer in self.outside:
                # the Pump moves the bytes: a pair of its own
                ph = phs.new(file, "socket", file.nonblocking)
                ph.on_installed = lambda ok, ph=ph, sock=sock: self._pumped(ph, sock, ok)
                return
            kept = self._take_client_kept(sock)
            if kept is not None:
                ph = phs.adopt(file, kept, file.nonblocking)
                self._inherit_timeouts(ph, sock)
                ph.on_installed = lambda ok, ph=ph, sock=sock: self._accepted(ph, sock, ok)
                return
        ph = phs.new(file, "socket", file.nonblocking)
        self._inherit_timeouts(ph, sock)
        ph.on_installed = lambda ok, ph=ph: self._installed(ph, ok)

    def _inherit_timeouts(self, ph: Placeholder, sock) -> None:
        """A new placeholder of a socket with timeouts (an accepted child inherits its
        listener's: Linux sk_clone_lock() copies sk_rcvtimeo/sk_sndtimeo)."""
        if (sock.rcvtimeo is not None or sock.sndtimeo is not None) and ph.prog_fd >= 0:
            self._set_timeouts(ph.prog_fd, sock)

    def sock_inode(self, sock) -> int:
        return self.placeholders.inode_of_sock(sock)

    def passthrough_socket(self, family: int, type_: int, protocol: int) -> InstallFd:
        """A host socket made from sysemu's copy of the arguments (socketcall of a family
        sysemu leaves to the host), installed as the kernel would have: never CONTINUE."""
        if family == AF_UNIX and self.refuse_rights:
            return self.unix_socket(type_, protocol)
        if self.socket_factory is None:
            return super().passthrough_socket(family, type_, protocol)
        return self._install_host_socket(self.socket_factory.make(family, type_, protocol),
                                         type_)

    def unix_socket(self, type_: int, protocol: int) -> InstallFd:
        if not self.refuse_rights:
            raise HostPassthrough()
        return self._install_host_socket(rights.unix_socket(type_, protocol), type_)

    def socketpair(self, task, family: int, type_: int, protocol: int,
                   usockvec: int) -> InstallFds:
        if not self.refuse_rights:
            raise HostPassthrough()
        fds = rights.socketpair(family, type_, protocol)
        try:        # Linux: EFAULT installs nothing; so a first copy before ADDFD
            task.mem.write(usockvec, bytes(8))
        except SyscallError:
            for fd in fds:
                os.close(fd)
            raise
        files = []
        for fd in fds:
            file = File(None, O_RDWR | (O_NONBLOCK if type_ & SOCK_NONBLOCK else 0))
            self.placeholders.passthrough_socket(file, fd)
            files.append(file)
        return InstallFds(tuple(files), bool(type_ & SOCK_CLOEXEC),
                          lambda newfds: task.mem.write(usockvec, struct.pack("<ii", *newfds)))

    def _install_host_socket(self, fd: int, type_: int) -> InstallFd:
        """The program gets host socket `fd` (sysemu's copy, closed once installed)."""
        file = File(None, O_RDWR | (O_NONBLOCK if type_ & SOCK_NONBLOCK else 0))
        self.placeholders.passthrough_socket(file, fd)
        return InstallFd(file, bool(type_ & SOCK_CLOEXEC))

    def unix_bind(self, task, fd: int, read_address) -> int:
        if not (self.refuse_rights and self.abstract_inside):
            raise HostPassthrough()
        return rights.abstract_bind(task, fd, read_address)

    def set_passrights(self, task, fd: int, optval: int, optlen: int) -> int:
        if not self.refuse_rights:
            raise HostPassthrough()
        return rights.set_passrights(task, fd, optval, optlen)

    def socketcall_setsockopt(self, task, fd: int, level: int, optname: int, optval: int,
                              optlen: int) -> int:
        if not self.refuse_rights:
            raise HostPassthrough()
        return rights.compat_setsockopt(task, fd, level, optname, optval, optlen)

    def listen_queue_changed(self, sock) -> None:
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.kept_fd is None or ph.kind != "socket":
            return
        want = sock.ack_backlog > 0
        if want and not ph.token:
            try:
                os.write(ph.kept_fd, b"\0")
                ph.token = True
            except OSError as exc:
                self.log(f"listen token: {exc}")
        elif not want and ph.token and sock.state == TcpState.TCP_LISTEN:
            if self._drain_token(ph):
                ph.token = False

    def _accepting(self, listener) -> None:
        """An accept is about to hand out a child of `listener` (dequeued once the answer
        is in): if it is the last one, the listener stops showing readable now."""
        ph = self.placeholders.of_sock(listener)
        if ph is not None and ph.token and listener.ack_backlog <= 1 \
                and listener.state == TcpState.TCP_LISTEN and self._drain_token(ph):
            ph.token = False

    def connecting(self, sock) -> None:
        """A connecting socket is not writable until established (Linux: tcp_poll in
        SYN_SENT): fill the program's end's send buffer (_fill); connect_done() takes the
        filler out again."""
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.kept_fd is None or ph.filler:
            return
        self._fill(ph)

    def _fill(self, ph: Placeholder) -> None:
        """The program's end stops showing POLLOUT: its send buffer, made as small as it
        goes, is filled with bytes the kept end does not read (unix_writable())."""
        end = self.placeholders.program_end(ph)
        if end is None:
            return
        if self.model:
            self.placeholders.rearm(ph, 0)      # the filler is not the program's bytes
        try:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)   # the minimum
            chunk = b"\0" * 4096
            while True:
                try:
                    ph.filler += end.send(chunk, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
        except OSError as exc:
            self.log(f"filling a placeholder: {exc}")
        finally:
            end.close()

    def _unfill(self, ph: Placeholder, sock) -> None:
        """_fill() undone: the filler read out of the kept end, the program's end's send
        buffer as it was: POLLOUT again."""
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
        # the filler woke the first-write watch: arm it again
        self.placeholders.rearm(ph, select.EPOLLIN if self.model
                                else select.EPOLLIN | select.EPOLLONESHOT)
        end = self.placeholders.program_end(ph)
        if end is not None:
            try:
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sock.sndbuf // 2)
            except OSError:
                pass
            end.close()

    def connect_done(self, sock, err: int) -> None:
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.kept_fd is None:
            return
        if err and ph.file.nonblocking:
            self._break(ph)
            return
        if ph.filler:
            self._unfill(ph, sock)

    def reset(self, sock) -> None:
        """A connection reset before sysemu handed it off (its listener went away, an RST
        fault ...): the program's reads and writes fail with ECONNRESET, as on Linux."""
        ph = self.placeholders.of_sock(sock)
        if ph is not None and ph.kept_fd is not None and ph.kind == "socket":
            self._break(ph)

    def _break(self, ph: Placeholder) -> None:
        """The placeholder shows an error: POLLERR|POLLHUP (and POLLOUT), reads fail with
        ECONNRESET (after a failed non-blocking connect, or a reset). An AF_UNIX end gets
        sk_err when its peer closes with bytes unread, so: make sure the kept end has some,
        and close it."""
        phs = self.placeholders
        if not ph.filler and not _unread(ph.kept_fd):
            end = phs.program_end(ph)
            if end is not None:
                try:
                    end.send(b"\0", socket.MSG_DONTWAIT)
                except OSError:
                    pass
                end.close()
        phs.unwatch(ph)
        os.close(ph.kept_fd)
        ph.kept_fd = None
        ph.filler = 0
        ph.broken = True
        phs.hand_off(ph, sock_of(ph.file))      # its release is seen by the sweep

    def reconnecting(self, task, fd: int, sock) -> None:
        """Linux lets a socket connect again after a failed attempt; its placeholder broke
        to show that failure (_break), so the program gets a fresh one at the same fd
        (SECCOMP_ADDFD_FLAG_SETFD, as dup2), same flags, before the call is answered.
        Until then the fresh placeholder's program end is sysemu's own copy."""
        old = self.placeholders.of_sock(sock)
        if old is not None and old.broken:
            self._replace(task, fd, old, False)

    def listening(self, task, fd: int, sock) -> None:
        """listen(2) succeeded: a socket gets a listener's pair (see the module
        docstring), installed at its descriptor before the answer; once."""
        old = self.placeholders.of_sock(sock)
        if old is not None and old.kind == "socket" and not old.listener \
                and old.kept_fd is not None:
            self._replace(task, fd, old, True)

    def _replace(self, task, fd: int, old: Placeholder, listener: bool) -> None:
        """A new pair for `old`'s File at the program's `fd` (SECCOMP_ADDFD_FLAG_SETFD,
        as dup2), same flags, before the call is answered. Until then the new pair's
        program end is sysemu's own copy."""
        phs = self.placeholders
        try:
            with open(f"/proc/{task.pid}/fdinfo/{fd}") as info:
                flags = int(next(l for l in info if l.startswith("flags:")).split()[1], 8)
        except (OSError, StopIteration, ValueError):
            return
        new = phs.new(old.file, "socket", bool(flags & O_NONBLOCK))
        sock = sock_of(old.file)
        if sock is not None:
            self._inherit_timeouts(new, sock)
        if listener:
            self._make_listener(new)
            new.listener = True

        def done(ok: bool) -> None:
            if not ok:                  # the call is gone: the program keeps the old one
                phs.forget(new)
                phs.track(old)
                return
            phs.replaced(old, new, (task.pid, fd))
            phs.close_prog(new)
            phs.unwatch(old)
            if old.kept_fd is not None:     # the program no longer holds its end
                os.close(old.kept_fd)
                old.kept_fd = None
            phs.watch(new, self._kept_event, hangup_only=listener)

        self.requests.append(ReplaceFd(new.prog_fd, fd, bool(flags & O_CLOEXEC), done))

    def _make_listener(self, ph: Placeholder) -> None:
        """Fill the program end's send buffer past a quarter (no POLLOUT), then shut the
        kept end's reading (the program's sends fail with EPIPE)."""
        end = socket.socket(fileno=os.dup(ph.prog_fd))
        try:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)   # the minimum
            poller = select.poll()
            poller.register(end, select.POLLOUT)
            for _ in range(64):
                if not poller.poll(0):
                    break
                end.send(b"\0", socket.MSG_DONTWAIT)
            with socket.socket(fileno=os.dup(ph.kept_fd)) as kept:
                kept.shutdown(socket.SHUT_RD)
        except OSError as exc:
            self.log(f"listener placeholder: {exc}")
        finally:
            end.close()

    # -- datagram sockets ------------------------------------------------------------
    # A UDP socket's placeholder is a SOCK_SEQPACKET pair. Each datagram the model queues
    # for it is written into the kept end as one record (so the program's end is readable
    # exactly while the model's queue is not empty, and read()/recv() without an address
    # get the payload natively with its boundary). Ph.mirror keeps the lengths of the
    # records in the program's end, in order. sysemu's own recvfrom/recvmsg take the head
    # datagram out of the model and the record out of the program's end (a borrowed copy
    # of it). Records the program read natively are found from SIOCINQ of the program's
    # end (the bytes still queued, unix_inq_len()): the head of the mirror goes until the
    # rest adds up to it. What the program sends natively (send()/write() on a connected
    # socket) arrives at the kept end and is sent by the model as the socket's datagram.

    def datagram_queued(self, sock, skb) -> None:
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.kept_fd is None or ph.mirror is None:
            return
        ph.mirror.append(len(skb.data))
        ph.mirror_bytes += len(skb.data)
        if ph.backlog:
            ph.backlog.append(skb.data)
            return
        try:
            os.write(ph.kept_fd, skb.data)
        except (BlockingIOError, InterruptedError):
            ph.backlog.append(skb.data)
            self.placeholders.rearm(ph, select.EPOLLIN | select.EPOLLOUT)
        except OSError as exc:
            self.log(f"datagram placeholder: {exc}")

    def _flush_backlog(self, ph: Placeholder) -> None:
        while ph.backlog and ph.kept_fd is not None:
            try:
                os.write(ph.kept_fd, ph.backlog[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log(f"datagram placeholder: {exc}")
                ph.backlog.clear()
                break
            ph.backlog.popleft()
        self.placeholders.rearm(ph, select.EPOLLIN)

    def _borrow(self, ph: Placeholder) -> int | None:
        """The program's end of `ph` (a borrowed copy, a bare descriptor), kept until the
        end of the batch of events being handled (release_borrowed): one trapped recvfrom
        uses it twice."""
        end = self._borrowed.get(ph)
        if end is None:
            end = self.placeholders.program_end_fd(ph)
            if end is not None:
                self._borrowed[ph] = end
        return end

    def release_borrowed(self) -> None:
        """After each batch: close the borrowed copies (a copy sysemu holds would hide
        the program's last close)."""
        if self._borrowed:
            for end in self._borrowed.values():
                os.close(end)
            self._borrowed.clear()

    def datagram_dequeued(self, sock, skb) -> None:
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.mirror is None or not ph.mirror:
            return
        while ph.mirror and ph.mirror[0] is None:     # an error marker read natively
            ph.mirror.popleft()
        if not ph.mirror:
            return
        length = ph.mirror.popleft()
        ph.mirror_bytes -= length
        if ph.backlog and len(ph.backlog) > len(ph.mirror):
            ph.backlog.popleft()            # it never reached the program's end
            return
        end = self._borrow(ph)
        if end is None:
            return
        drop_record(end)
        if ph.backlog:
            self._flush_backlog(ph)

    def datagram_sync(self, sock) -> int:
        """Send what the program sent natively; return how many records at the head it
        read natively (see above)."""
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.mirror is None or ph.syncing:
            return 0
        ph.syncing = True
        try:
            self._native_sends(ph, sock)
            if not ph.mirror or len(ph.backlog) >= len(ph.mirror) \
                    or ph.mirror_bytes == 0 and None in ph.mirror:
                return 0
            end = self._borrow(ph)
            if end is None:
                return 0
            try:
                buf = fcntl.ioctl(end, termios.FIONREAD, b"\0\0\0\0")
                left = int.from_bytes(buf, "little", signed=True)
            except OSError:
                return 0
            left += sum(len(b) for b in ph.backlog)
            taken = 0
            mirror = ph.mirror
            while mirror and ph.mirror_bytes > left:
                length = mirror.popleft()
                if length is not None:          # (an error marker is no datagram)
                    ph.mirror_bytes -= length
                    taken += 1
            if ph.backlog:
                self._flush_backlog(ph)
            return taken
        finally:
            ph.syncing = False

    def _native_sends(self, ph: Placeholder, sock) -> None:
        """Records the program wrote into its end: datagrams of the socket (its
        sock->ops->sendmsg without an address). sysemu: their errors (EDESTADDRREQ unconnected, a pending
        ECONNREFUSED) cannot reach the program, whose send() already returned; the
        datagram is dropped as Linux would have refused it."""
        socket_obj = sock.socket
        if socket_obj is None or socket_obj.type not in (SOCK_DGRAM, SOCK_RAW) \
                or ph.kept_fd is None:
            return
        hung_up = None
        for _ in range(MAX_NATIVE_SENDS):      # bounded: an EOF also reads as b""
            if ph.kept_fd is None:             # closed meanwhile (a send takes in closes)
                return
            try:
                data = os.read(ph.kept_fd, 1 << 17)
            except OSError:
                return
            if not data:
                if hung_up is None:            # an empty record, or the program's EOF?
                    poller = select.poll()
                    poller.register(ph.kept_fd, select.POLLIN)
                    ready = poller.poll(0)
                    hung_up = bool(ready and ready[0][1] & (select.POLLHUP | select.POLLRDHUP))
                if hung_up:
                    return
            try:
                socket_obj.ops.sendmsg(None, socket_obj, KvecIter(data), 0, True, 0)
            except SyscallError:
                pass

    def take_closes(self) -> None:
        """A program's close() of a placeholder shows on its kept end at once, but the
        reactor takes it in later: a datagram sent in between must not reach a socket
        that is already closed (Linux: nothing is bound there any more, port
        unreachable)."""
        self.placeholders.take_events()

    def datagram_error(self, sock) -> None:
        """An ICMP error is pending (sk_err) on a socket with nothing queued: a zero-length
        record (a marker, None in the mirror) makes the placeholder readable, so a program
        waiting in poll/epoll/a blocking recv wakes up as Linux wakes it (POLLERR), and
        its recvfrom/recvmsg (sysemu's) fails with the error. When the error is taken,
        the marker goes again if it is still at the head.
        sysemu: a native recv()/read() reads the marker as an empty datagram."""
        ph = self.placeholders.of_sock(sock)
        if ph is None or ph.kept_fd is None or ph.mirror is None:
            return
        if sock.sk_err:
            if not ph.mirror and not ph.backlog:
                try:
                    os.write(ph.kept_fd, b"")
                    ph.mirror.append(None)
                except OSError:
                    pass
            return
        if not ph.mirror or ph.mirror[0] is not None:
            return
        ph.mirror.popleft()
        end = self.placeholders.program_end(ph)
        if end is None:
            return
        try:
            if len(end.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT | socket.MSG_TRUNC)) == 0:
                end.recv(1, socket.MSG_DONTWAIT)
        except OSError:
            pass
        finally:
            end.close()

    def shutdown(self, sock, how: int) -> None:
        """shutdown(2)'s sending half reaches the placeholder too, so the peer program
        reads EOF. The receiving half does not: TCP sends nothing for it (tcp_shutdown()
        acts on SEND_SHUTDOWN only), so the peer's writes still succeed and their bytes
        stay readable, where an AF_UNIX SHUT_RD would fail them with EPIPE.
        sysemu: a read after SHUT_RD with nothing queued waits (or EAGAIN) where Linux
        returns 0. In the model data path the model answers a stream's reads: the
        placeholder only shows the readiness (SHUT_RD: POLLIN|POLLRDHUP, as tcp_poll()).
        A datagram (or raw) socket's placeholder is its own (shut down in the model only)."""
        if sock.type in (SOCK_DGRAM, SOCK_RAW):
            return
        if self.model:
            self.readiness(sock)
            return
        if how == socket.SHUT_RD:
            return
        end = self.placeholders.program_end(self.placeholders.of_sock(sock))
        if end is None:
            return
        try:
            end.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.log(f"shutdown of placeholder: {exc}")
        finally:
            end.close()

    def timeout_changed(self, sock) -> None:
        """SO_RCVTIMEO / SO_SNDTIMEO: an established connection's reads and writes are the
        placeholder's, so the program's end carries the socket's timeouts (Linux:
        sock_rcvtimeo() / sock_sndtimeo() bound tcp_recvmsg's and tcp_sendmsg's waits)."""
        end = self.placeholders.program_end(self.placeholders.of_sock(sock))
        if end is None:
            return
        try:
            self._set_timeouts(end.fileno(), sock)
        finally:
            end.close()

    def _set_timeouts(self, fd: int, sock) -> None:
        """Give the placeholder end `fd` the timeouts of `sock` (None: forever; 0: do not
        wait, which SO_RCVTIMEO spells as a negative tv_sec)."""
        try:
            with socket.socket(fileno=os.dup(fd)) as end:
                for opt, seconds in ((socket.SO_RCVTIMEO, sock.rcvtimeo),
                                     (socket.SO_SNDTIMEO, sock.sndtimeo)):
                    if seconds is None:
                        sec, usec = 0, 0
                    elif seconds <= 0:
                        sec, usec = -1, 0
                    else:
                        usec_total = round(seconds * 1_000_000)
                        sec, usec = divmod(usec_total, 1_000_000)
                    end.setsockopt(socket.SOL_SOCKET, opt, TIMEVAL64.pack(sec, usec))
        except OSError as exc:
            self.log(f"timeouts of placeholder: {exc}")

    def linger_changed(self, sock) -> None:
        """SO_LINGER {1, 0} on a handed-off connection: Linux's close() then sends a RST
        (tcp_disconnect()), which the peer reads as ECONNRESET. An AF_UNIX end closed with
        bytes unread gives its peer ECONNRESET: sysemu puts one out-of-band byte into the
        program's end (sent from the peer's end), which a normal read skips and drops
        (MSG_OOB without SO_OOBINLINE); turning the option off takes it back out.
        sysemu: while it waits, poll on the program's end shows POLLIN|POLLPRI (a read
        finds nothing and drops it, and then the close is a FIN); the peer's send after
        the reset fails with EPIPE (Linux: ECONNRESET)."""
        if self.pump is not None or sock.peer is None or self.model:
            return                      # the model's close sends the RST itself
        want = sock.linger == (1, 0)
        if want == (sock in self._abort_armed):
            return
        phs = self.placeholders
        if want:
            end = phs.program_end(phs.of_sock(sock.peer))
            if end is None:
                return
            try:
                end.send(b"\0", socket.MSG_OOB | socket.MSG_DONTWAIT)
                self._abort_armed.add(sock)
            except OSError as exc:
                self.log(f"linger placeholder: {exc}")
            finally:
                end.close()
            return
        self._abort_armed.discard(sock)
        end = phs.program_end(phs.of_sock(sock))
        if end is None:
            return
        try:
            end.recv(1, socket.MSG_OOB | socket.MSG_DONTWAIT)
        except OSError:
            pass                        # already read past (dropped)
        finally:
            end.close()

    def released(self, sock) -> None:
        self._abort_armed.discard(sock)
        phs = self.placeholders
        kept = phs.orphan_kept.pop(sock, None)
        if kept is not None:        # a child never accepted: its client's kept end goes too
            os.close(kept)
        ph = phs.of_sock(sock)
        if ph is not None:
            phs.forget(ph)

    # -- after ADDFD ---------------------------------------------------------------------
    def _installed(self, ph: Placeholder, ok: bool) -> None:
        """The program has its end (or the call was cancelled: nobody holds the file, and
        the kept end's hang-up releases it like a close)."""
        self.placeholders.close_prog(ph)
        if ph.kept_fd is not None:
            self.placeholders.watch(ph, self._kept_event)
            if self.model and ph.kind == "socket":
                self.placeholders.rearm(ph, select.EPOLLIN)    # untrapped writes, level
                self._show(ph, sock_of(ph.file))     # an accepted child may have bytes
            elif ph.kind == "proc" and ph.pending:
                self._proc_flush(ph)                 # the rest, as the reader drains it

    def _accepted(self, ph: Placeholder, child, ok: bool) -> None:
        if not ok:  # the child stays queued; the kept end stays with its client's entry
            self.listen_queue_changed(child.parent)     # and the listener readable
            return
        phs = self.placeholders
        client = child.peer
        phs.orphan_kept.pop(child, None)
        cph = phs.of_sock(client) if client is not None else None
        if cph is not None and cph.kept_fd == ph.prog_fd:
            phs.unwatch(cph)
            cph.kept_fd = None
            phs.hand_off(cph, client)
        phs.close_prog(ph)
        phs.hand_off(ph, child)

    def _pumped(self, ph: Placeholder, child, ok: bool) -> None:
        """An accepted connection with a Pump: once the program has its end, the Pump joins
        the client's kept end and the child's. Both placeholders then count as handed off,
        and sysemu holds both kept ends, so each program's last close shows as a hang-up on
        its kept end in the order they happen (TIME_WAIT goes to the side that closed
        first); the sweep stays as the backstop."""
        phs = self.placeholders
        phs.close_prog(ph)
        if not ok:
            phs.forget(ph)          # the accept was cancelled: the child stays queued
            self.listen_queue_changed(child.parent)
            return
        client = child.peer
        outside = self.outside.pop(client, None)
        kept = phs.orphan_kept.pop(child, None) if outside is None else None
        if kept is None and outside is None:
            kept = self.take_kept(client)
            if kept is None:
                phs.watch(ph, self._kept_event)
                return
        phs.unwatch(ph)
        child_kept, ph.kept_fd = ph.kept_fd, None
        phs.hand_off(ph, child)
        if outside is not None:
            outside(child, child_kept)
            phs.watch_hangup(child_kept, child)
            return
        self.pump.join(client, kept, child, child_kept)
        for sock, fd in ((client, kept), (child, child_kept)):
            phs.watch_hangup(fd, sock)

    def take_kept(self, sock) -> int | None:
        """Take a connected socket's kept end from its placeholder, for a Pump to move
        its bytes (the placeholder then counts as handed off); None if there is none."""
        phs = self.placeholders
        ph = phs.of_sock(sock) if sock is not None else None
        if ph is None or ph.kept_fd is None:
            return None
        phs.unwatch(ph)
        kept, ph.kept_fd = ph.kept_fd, None
        phs.hand_off(ph, sock)
        return kept

    def accept_dropped(self, child) -> bool:
        """A child dequeued by an accept that then failed goes (inet_accept_drop()): the
        kept end of its client's pair, which holds what the client sent, closes with it,
        so the client reads EOF, or ECONNRESET when bytes were unread (AF_UNIX's close
        with a non-empty queue, as tcp_close() resets); its placeholder is then handed
        off (the sweep sees the client's close). In the model data path the model holds
        the bytes."""
        if self.model:
            return False
        phs = self.placeholders
        kept = phs.orphan_kept.pop(child, None)
        cph = None
        if kept is None:
            cph = phs.of_sock(child.peer) if child.peer is not None else None
            if cph is None or cph.kept_fd is None:
                return False
            kept = cph.kept_fd
            phs.unwatch(cph)
            cph.kept_fd = None
            phs.hand_off(cph, child.peer)
        try:
            unread = struct.unpack("i", fcntl.ioctl(kept, termios.FIONREAD, b"\0" * 4))[0] > 0
        except OSError:
            unread = False
        os.close(kept)
        return unread

    def _take_client_kept(self, child) -> int | None:
        kept = self.placeholders.orphan_kept.get(child)
        if kept is not None:
            return kept
        cph = self.placeholders.of_sock(child.peer)
        if cph is None or cph.kept_fd is None:
            return None
        return cph.kept_fd

    def program_end(self, sock) -> socket.socket | None:
        """The Pump's borrowed copy of a Sock's program end."""
        return self.placeholders.program_end(self.placeholders.of_sock(sock))

    # -- kept-end events -------------------------------------------------------------
    def _kept_event(self, ph: Placeholder, events: int) -> None:
        try:
            if ph.kind == "proc":
                if events & select.EPOLLOUT and ph.pending:
                    self._proc_flush(ph)
                if events & ~select.EPOLLOUT:
                    self._proc_input(ph)
            elif ph.kind == "dgram":
                # what the program sent before it closed was sent (Linux: at write()):
                # its records are taken before its close is
                sock = sock_of(ph.file)
                closed = events & (select.EPOLLHUP | select.EPOLLERR)
                if events & select.EPOLLOUT and not closed:
                    self._flush_backlog(ph)
                if events & select.EPOLLIN and sock is not None and not ph.syncing:
                    ph.syncing = True
                    try:
                        self._native_sends(ph, sock)
                    finally:
                        ph.syncing = False
                if closed and not ph.syncing:   # (a send of its own records takes in
                    self._program_closed(ph)    # closes: this one waits for the drain)
            elif events & (select.EPOLLHUP | select.EPOLLERR):
                self._program_closed(ph)
            elif events & select.EPOLLIN and ph.kept_fd is not None and self.model:
                self._pull(ph)
            elif events & select.EPOLLIN and ph.kept_fd is not None:
                # The program wrote before its connection was accepted. If its final ACK
                # met a full accept queue, Linux's data segment carries that ACK again.
                self.placeholders.rearm(ph, 0)          # from now on: hang-up only
                sock = sock_of(ph.file)
                if sock is not None and sock.peer is None and sock.parent is None:
                    tcp_data_pending(self.kernel.net, sock)
        except Exception as exc:  # the supervisor never dies of what a program does
            self.log(f"placeholder event: {exc!r}")

    def _program_closed(self, ph: Placeholder) -> None:
        """The last reference to a placeholder in any program is gone: sock_close()."""
        phs = self.placeholders
        sock = sock_of(ph.file)
        if self.model and ph.kept_fd is not None and sock is not None:
            self._pull(ph)              # what it wrote untrapped goes before the FIN
        phs.unwatch(ph)
        child = getattr(sock, "peer", None)
        if not self.model and child is not None and getattr(child, "socket", None) is None \
                and getattr(child, "parent", None) is not None and ph.kept_fd is not None:
            # A client closed before its connection was accepted: the kept end still holds
            # what it sent (and its EOF) for the server; keep it for the hand-off.
            phs.orphan_kept[child] = ph.kept_fd
            ph.kept_fd = None
        self._release_model(sock)
        phs.forget(ph)

    def _release_model(self, sock) -> None:
        if sock is None:
            return
        try:
            self.kernel.net.release(sock)
        except Exception as exc:  # the supervisor never dies of a model error
            self.log(f"release of {sock!r} failed: {exc!r}")

    # -- the model data path -----------------------------------------------------------
    def readiness(self, sock) -> None:
        """Show on the placeholder what tcp_poll() says of `sock` (module docstring)."""
        if self.model:
            self._show(self.placeholders.of_sock(sock), sock)

    def _show(self, ph: Placeholder | None, sock) -> None:
        if ph is None or sock is None or ph.kept_fd is None or ph.kind != "socket" \
                or ph.listener:
            return
        if ph.unsent:
            self._pull(ph)
        readable, rdhup, writable = tcp_placeholder_poll(sock)
        if sock.state in (TcpState.TCP_ESTABLISHED, TcpState.TCP_CLOSE_WAIT):
            if not writable and not ph.filler:
                self._pull(ph)          # the kept end must hold nothing of the program's
                if not ph.unsent and not _unread(ph.kept_fd):
                    self._fill(ph)
            elif writable and ph.filler:
                self._unfill(ph, sock)
        elif ph.filler and writable:
            self._unfill(ph, sock)
        if readable and not ph.token and ph.shut < socket.SHUT_WR:
            try:
                os.write(ph.kept_fd, b"\0")
                ph.token = True
            except (BrokenPipeError, ConnectionResetError):
                pass                    # the program's end is closed: its hang-up follows
            except OSError as exc:
                self.log(f"readiness token: {exc}")
        elif not readable and ph.token and self._drain_token(ph):
            ph.token = False
        if rdhup and ph.shut < socket.SHUT_WR:
            # sysemu: not SHUT_RDWR: a kept end shut both ways shows EPOLLHUP to
            # sysemu, which is how the program's close is seen
            try:
                with socket.socket(fileno=os.dup(ph.kept_fd)) as kept:
                    kept.shutdown(socket.SHUT_WR)
                ph.shut = socket.SHUT_WR
            except OSError as exc:
                self.log(f"readiness EOF: {exc}")

    def pull_sent(self, sock) -> None:
        if self.model:
            ph = self.placeholders.of_sock(sock)
            if ph is not None:
                self._pull(ph)

    def _pull(self, ph: Placeholder) -> None:
        """Bytes the program wrote natively into its end go to the model's send queue;
        what finds no room waits in ph.unsent (the kept end is then not read, so the
        program's end fills and its writes wait natively)."""
        sock = sock_of(ph.file)
        if sock is None or ph.kept_fd is None or ph.filler or ph.listener \
                or ph.kind != "socket" or ph in self._pulling:
            return                      # (re-entered from the ACK its own send brought;
                                        # a datagram socket's records are _native_sends')
        self._pulling.add(ph)
        try:
            self._pull_into(ph, sock)
        finally:
            self._pulling.discard(ph)

    def _pull_into(self, ph: Placeholder, sock) -> None:
        net = self.kernel.net
        while True:
            if ph.unsent:
                taken = tcp_sendpage(net, sock, ph.unsent)
                ph.unsent = ph.unsent[taken:]
                if ph.unsent:
                    self.placeholders.rearm(ph, 0)
                    return
            try:
                data = os.read(ph.kept_fd, 1 << 18)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:                # EOF or error: the program's end is going away
                self.placeholders.rearm(ph, 0)
                return
            ph.unsent = data
        self.placeholders.rearm(ph, select.EPOLLIN)

    # -- the native data path's trapped sends -----------------------------------------
    def stream_send(self, task, sk, data: bytes, flags: int) -> int:
        """tcp.py _native_sendmsg(): `data` into the program's end as the caller's own
        send() would put it, through a copy of the caller's descriptor (the lookup of
        this call just named it: Placeholder.holder, checked by inode: a dup2 in between
        finds no end); never waiting, and no SIGPIPE of sysemu's own (the caller's is
        tcp.py's). No end: EPIPE, as a send on a closed pair."""
        end = self.placeholders.program_end(self.placeholders.of_sock(sk))
        if end is None:
            raise SyscallError(Errno.EPIPE)
        try:
            return end.send(data, flags | socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            raise SyscallError(exc.errno or Errno.EIO) from None
        finally:
            end.close()

    def stream_writable(self, sk) -> WaitQueue:
        phs = self.placeholders
        return phs.writable_wait(phs.program_end(phs.of_sock(sk)))

    def file_reader(self, task, fd: int) -> HostFileReader:
        return HostFileReader(task.pid, fd)

    def poll_host(self, task, fds, wake):
        return hostpoll.poll_host(self.placeholders.reactor, task.pid, fds, wake)

    def rlimit_nofile(self, task) -> int:
        return hostpoll.rlimit_nofile(task.pid)

    def max_fds(self, task) -> int:
        return hostpoll.max_fds(task.pid)

    def pipe_file(self, task, fd: int) -> HostPipe:
        return HostPipe(task.pid, fd, self._watch_pipe)

    def _watch_pipe(self, fd: int, events: int) -> WaitQueue:
        """A wait queue woken once the pipe behind our copy `fd` shows `events` (or an
        error or hang-up): a copy of its own is watched by the reactor until then, or
        until nobody waits on the queue any more (a signal ended the call; looked at
        each second)."""
        queue = WaitQueue("pipe")
        watched = os.dup(fd)
        reactor = self.placeholders.reactor
        timer = None

        def done() -> None:
            reactor.remove_watch(watched)
            os.close(watched)
            if timer is not None:
                timer.cancel()

        def ready(mask: int) -> None:
            done()
            queue.wake_up()

        def check() -> None:
            nonlocal timer
            if len(queue):
                timer = reactor.call_later(1.0, check)
            else:
                timer = None
                done()

        reactor.add_watch(watched, events, ready)
        timer = reactor.call_later(1.0, check)
        return queue

    def send_sig(self, task, sig: int) -> None:
        """Linux's send_sig() makes the signal pending before the call returns. A signal
        the thread catches would interrupt the waiting notification (the call would
        restart, or fail with EINTR): it is sent once the answer is in, and its handler
        runs a few instructions late. One it blocks or leaves at its default (death, for
        SIGPIPE) is sent now; one it ignores is not sent."""
        caught, ignored = _signal_disposition(task.tid, sig)
        if ignored:
            return

        def kill() -> None:
            try:
                tgkill(task.pid, task.tid, sig)
            except OSError:
                pass                    # the thread is gone
        if caught:
            task.on_commit(kill)
        else:
            kill()

    def _drain_token(self, ph: Placeholder) -> bool:
        end = self.placeholders.program_end(ph)
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
        # what the pair cannot hold yet goes when the reader drains it (EPOLLOUT)
        self.placeholders.rearm(ph, select.EPOLLIN | (select.EPOLLOUT if ph.pending else 0))
        if not ph.pending:
            try:
                with socket.socket(fileno=os.dup(ph.kept_fd)) as kept:
                    kept.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _proc_input(self, ph: Placeholder) -> None:
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
        self.placeholders.forget(ph)


def _signal_disposition(tid: int, sig: int) -> tuple[bool, bool]:
    """(caught, ignored) for signal `sig` of thread `tid` (/proc/TID/status SigCgt and
    SigIgn; a blocked signal is neither)."""
    caught = ignored = False
    bit = 1 << (sig - 1)
    try:
        with open(f"/proc/{tid}/status") as status:
            for line in status:
                if line.startswith("SigBlk:") and int(line.split()[1], 16) & bit:
                    return False, False
                if line.startswith("SigIgn:"):
                    ignored = bool(int(line.split()[1], 16) & bit)
                elif line.startswith("SigCgt:"):
                    caught = bool(int(line.split()[1], 16) & bit)
    except (OSError, ValueError, IndexError):
        pass
    return caught, ignored


def _unread(fd: int) -> bool:
    """Whether bytes wait in our end (the program wrote some)."""
    s = socket.socket(fileno=fd)
    try:
        return bool(s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False
    finally:
        s.detach()


def attach_network(supervisor) -> NetGlue:
    """Give a supervisor's kernel its network's host side: NetGlue as kernel.host over the
    supervisor's placeholders, and the TCP timers (retransmissions, TIME_WAIT) driven by
    the reactor."""
    kernel = supervisor.kernel
    if kernel.net is None:
        sysemu.net.attach(kernel)
    glue = NetGlue(kernel, supervisor.placeholders, supervisor.requests, log=supervisor.log)
    kernel.host = glue
    supervisor.settle = supervisor.placeholders.settle
    supervisor.settle_on_entry = supervisor.placeholders.take_events if glue.model else None
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
    supervisor.after_event.append(glue.release_borrowed)
    return glue
