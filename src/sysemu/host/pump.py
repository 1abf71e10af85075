"""The data path of an observed connection: sysemu moves the bytes itself.

By default an accepted connection is handed off: the two programs hold the two ends of one
socketpair and sysemu never sees a byte (host/netglue.py). When the data must be seen or
bent (--pcap, --fault rst-after / latency: NetGlue.use_pump()), the glue gives the
accepted program a placeholder of its own and calls `Pump.join()` with the two kept ends;
the Pump then copies bytes between them in the supervisor's reactor:

    client program ⇄ client_kept  ==Pump==  child_kept ⇄ server program

- flow control: a direction stops reading its source while HIGH_WATER bytes wait for the
  destination (the programs' socket buffers then fill, and their writes block);
- EOF: the source's EOF (close or shutdown(SHUT_WR)) reaches the destination as
  shutdown(SHUT_WR) once everything before it is written; when both directions are done
  the kept ends are closed;
- reset: an error on either side (the peer program closed with data unread, or is gone
  while data is still coming) and rst-after faults close both kept ends with unread bytes
  pending, which an AF_UNIX stream socket reports to its peer as ECONNRESET, as a RST would;
- each chunk is reported to `on_data(sender_sock, receiver_sock, payload)` (the pcap
  writer), and latency faults delay it by N ms each way.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios
from typing import Callable

CHUNK = 1 << 18
HIGH_WATER = 1 << 20


class _Direction:
    """One way of a link: bytes read from `src`, written to `dst`."""

    __slots__ = ("src", "dst", "sender", "receiver", "buf", "inflight", "eof", "shut",
                 "reading", "writing", "moved", "name")

    def __init__(self, name: str, src: int, dst: int, sender, receiver):
        self.name = name
        self.src, self.dst = src, dst
        self.sender, self.receiver = sender, receiver
        self.buf = bytearray()
        self.inflight = 0           # bytes read but held back by a latency fault
        self.eof = False            # the source ended (close or SHUT_WR)
        self.shut = False           # the EOF reached the destination
        self.reading = False
        self.writing = False
        self.moved = 0              # bytes read from the source so far


class Link:
    """One pumped connection (two kept ends, two directions)."""

    def __init__(self, pump: "Pump", client_sock, client_fd: int, child_sock, child_fd: int):
        self.pump = pump
        self.client_sock, self.child_sock = client_sock, child_sock
        self.client_fd, self.child_fd = client_fd, child_fd
        self.up = _Direction("client->server", client_fd, child_fd, client_sock, child_sock)
        self.down = _Direction("server->client", child_fd, client_fd, child_sock, client_sock)
        port = getattr(child_sock, "num", 0) or 0
        faults = pump.faults
        self.delay = faults.latency(port) if faults is not None else 0.0
        self.rst_after = faults.rst_after(port) if faults is not None else None
        self.closed = False
        self.was_reset = False
        self._reset_pending = False     # rst-after reached: reset once delivered

    # -- reactor plumbing ------------------------------------------------------------
    def _want_read(self, d: _Direction, on: bool) -> None:
        if on == d.reading or self.closed:
            return
        d.reading = on
        if on:
            self.pump.reactor.add_reader(d.src, lambda d=d: self._readable(d))
        else:
            self.pump.reactor.remove_reader(d.src)

    def _want_write(self, d: _Direction, on: bool) -> None:
        if on == d.writing or self.closed:
            return
        d.writing = on
        if on:
            self.pump.reactor.add_writer(d.dst, lambda d=d: self._flush(d))
        else:
            self.pump.reactor.remove_writer(d.dst)

    def start(self) -> None:
        for fd in (self.client_fd, self.child_fd):
            os.set_blocking(fd, False)
        self._want_read(self.up, True)
        self._want_read(self.down, True)

    # -- moving bytes --------------------------------------------------------------------
    def _readable(self, d: _Direction) -> None:
        try:
            self._readable_inner(d)
        except Exception as exc:    # the supervisor never dies of what a program does
            self.pump.log(f"pump {d.name}: {exc!r}")
            self.reset()

    def _readable_inner(self, d: _Direction) -> None:
        if self.closed:
            return
        limit = CHUNK
        if d is self.up and self.rst_after is not None:
            limit = max(1, min(CHUNK, self.rst_after - d.moved))
        try:
            data = os.read(d.src, limit)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:      # ECONNRESET: the program closed with our bytes unread
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                self.pump.log(f"pump {d.name} read: {exc}")
            self.reset()
            return
        if not data:
            d.eof = True
            self._want_read(d, False)
            self._maybe_shut(d)
            return
        d.moved += len(data)
        if self.pump.on_data is not None and d.sender is not None and d.receiver is not None:
            try:
                self.pump.on_data(d.sender, d.receiver, bytes(data))
            except Exception as exc:    # an observer's failure must not reset the stream
                self.pump.log(f"pump {d.name} observer: {exc!r}")
        if self.delay > 0:
            d.inflight += len(data)
            self.pump.reactor.call_later(self.delay, lambda: self._arrive(d, data))
        else:
            self._arrive(d, data)
        if self.closed:
            return
        if d is self.up and self.rst_after is not None and d.moved >= self.rst_after:
            self._want_read(d, False)
            self._reset_when_delivered()
            return
        if len(d.buf) + d.inflight >= HIGH_WATER:
            self._want_read(d, False)

    def _arrive(self, d: _Direction, data: bytes) -> None:
        if self.delay > 0:
            d.inflight -= len(data)
        if self.closed:
            return
        d.buf += data
        self._flush(d)

    def _flush(self, d: _Direction) -> None:
        if self.closed:
            return
        while d.buf:
            try:
                n = os.write(d.dst, d.buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EPIPE/ECONNRESET: the receiving program is gone
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                    self.pump.log(f"pump {d.name} write: {exc}")
                self.reset()
                return
            del d.buf[:n]
        self._want_write(d, bool(d.buf))
        if not d.buf:
            if d.eof:
                self._maybe_shut(d)
            elif not d.reading and d.inflight < HIGH_WATER and not self._resetting(d):
                self._want_read(d, True)
            if self._reset_pending and self._delivered():
                self.reset()

    def _resetting(self, d: _Direction) -> bool:
        return d is self.up and self.rst_after is not None and d.moved >= self.rst_after

    def _maybe_shut(self, d: _Direction) -> None:
        if d.shut or d.buf or d.inflight:
            return
        d.shut = True
        try:
            _shutdown_wr(d.dst)
        except OSError:
            pass
        if self.up.shut and self.down.shut:
            self.close()

    # -- ends --------------------------------------------------------------------------
    def _delivered(self) -> bool:
        return not self.up.buf and not self.up.inflight

    def _reset_when_delivered(self) -> None:
        """rst-after: the first N bytes still reach the server, then the reset."""
        self._reset_pending = True
        if self._delivered():
            self.reset()

    def reset(self) -> None:
        """Abort: both programs see ECONNRESET (their ends' peers close with unread data)."""
        if self.closed:
            return
        self.was_reset = True
        for sock, fd in ((self.client_sock, self.client_fd), (self.child_sock, self.child_fd)):
            self.pump.make_unread(sock, fd)
        self.close()
        if self.pump.on_reset is not None:
            try:
                self.pump.on_reset(self.client_sock, self.child_sock)
            except Exception as exc:
                self.pump.log(f"pump reset: {exc!r}")

    def close(self) -> None:
        if self.closed:
            return
        for d in (self.up, self.down):
            self._want_read(d, False)
            self._want_write(d, False)
        self.closed = True
        for fd in (self.client_fd, self.child_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.pump.links.discard(self)
        if self.pump.on_close is not None:
            try:
                self.pump.on_close(self)
            except Exception as exc:
                self.pump.log(f"pump close: {exc!r}")


def _shutdown_wr(fd: int) -> None:
    """shutdown(fd, SHUT_WR) on a descriptor we own (without taking it over)."""
    s = socket.socket(fileno=fd)
    try:
        s.shutdown(socket.SHUT_WR)
    finally:
        s.detach()


def _unread_bytes(fd: int) -> int:
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", buf)[0]


class Pump:
    """Moves the bytes of observed connections (see the module docstring).

    reactor      the supervisor's Reactor (add_reader/add_writer/call_later)
    on_data      callable(sender_sock, receiver_sock, payload) per chunk (pcap), or None
    faults       a sysemu.net.faults.FaultSet (latency, rst-after by the server's port)
    on_reset     callable(client_sock, child_sock) after a reset (the model's RSTs)
    on_close     callable(link) once a link's kept ends are closed
    program_end  callable(sock) -> socket.socket | None: a borrowed copy of the program's
                 end of a placeholder (to leave a byte unread in a kept end before a reset);
                 NetGlue.use_pump() sets it to the placeholders'.
    """

    def __init__(self, reactor, *, on_data: Callable | None = None, faults=None,
                 on_reset: Callable | None = None, on_close: Callable | None = None,
                 program_end: Callable | None = None, log: Callable[[str], None] | None = None):
        self.reactor = reactor
        self.on_data = on_data
        self.faults = faults
        self.on_reset = on_reset
        self.on_close = on_close
        self.program_end = program_end if program_end is not None else (lambda sock: None)
        self.log = log or (lambda text: None)
        self.links: set[Link] = set()

    def join(self, client_sock, client_kept_fd: int, child_sock, child_kept_fd: int) -> Link:
        """Pump between the client's kept end and the accepted child's kept end. The Pump
        owns both descriptors from now on (closes them when the link ends)."""
        link = Link(self, client_sock, client_kept_fd, child_sock, child_kept_fd)
        self.links.add(link)
        link.start()
        return link

    def make_unread(self, sock, kept_fd: int) -> None:
        """Make sure `kept_fd` holds an unread byte, so closing it shows ECONNRESET to the
        program's end (Linux af_unix: unix_release_sock() sets the peer's sk_err when the
        receive queue is not empty)."""
        if _unread_bytes(kept_fd) > 0:
            return
        end = None
        try:
            end = self.program_end(sock)
            if end is not None:
                end.send(b"\0", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:
            pass
        finally:
            if end is not None:
                end.close()

    def close_all(self) -> None:
        for link in list(self.links):
            link.close()
