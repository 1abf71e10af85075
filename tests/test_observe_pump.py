"""The Pump on its own: two socketpairs stand for the two placeholders (the programs'
ends and sysemu's kept ends); a real Reactor moves the bytes."""
from __future__ import annotations

import errno
import socket
import time
from types import SimpleNamespace

import pytest

from sysemu.host.pump import HIGH_WATER, Pump
from sysemu.host.reactor import Reactor
from sysemu.net.faults import FaultSet

DEADLINE = 10.0   # seconds: a bound against hangs, not a timing assertion


class Setup:
    def __init__(self, faults=None, port=8080, program_end=True):
        self.reactor = Reactor()
        self.client, client_kept = socket.socketpair()
        child_kept, self.server = socket.socketpair()
        self.client_sk = SimpleNamespace(name="client", num=40000, dport=port)
        self.child_sk = SimpleNamespace(name="child", num=port, dport=40000)
        self.chunks: list[tuple[str, str, bytes]] = []
        self.resets: list[tuple] = []
        self.closed: list = []
        ends = {id(self.client_sk): self.client, id(self.child_sk): self.server}

        def borrow(sk):   # what netglue.program_end does with pidfd_getfd
            return socket.socket(fileno=ends[id(sk)].dup().detach()) if program_end else None

        self.pump = Pump(self.reactor, faults=faults, program_end=borrow,
                         on_data=lambda s, r, data: self.chunks.append((s.name, r.name, data)),
                         on_reset=lambda c, s: self.resets.append((c.name, s.name)),
                         on_close=self.closed.append)
        self.link = self.pump.join(self.client_sk, client_kept.detach(), self.child_sk,
                                   child_kept.detach())
        for s in (self.client, self.server):
            s.setblocking(False)

    def run_until(self, predicate):
        end = time.monotonic() + DEADLINE
        while not predicate():
            assert time.monotonic() < end, "pump made no progress"
            self.reactor.run_once(0.02)

    def recv_all(self, sock, n):
        got = bytearray()

        def more():
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return len(got) >= n
            if not data:
                return True
            got.extend(data)
            return len(got) >= n
        self.run_until(more)
        return bytes(got)

    def read_result(self, sock):
        """b"" at EOF, the errno on error, None if nothing yet."""
        try:
            return sock.recv(1 << 16)
        except BlockingIOError:
            return None
        except OSError as exc:
            return exc.errno

    def close(self):
        self.pump.close_all()
        self.client.close()
        self.server.close()
        self.reactor.close()


@pytest.fixture
def setup():
    made = []

    def make(**kw):
        s = Setup(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def test_bytes_flow_both_ways_and_are_reported(setup):
    s = setup()
    s.client.send(b"GET / HTTP/1.0\r\n\r\n")
    assert s.recv_all(s.server, 18) == b"GET / HTTP/1.0\r\n\r\n"
    s.server.send(b"HTTP/1.0 200 OK\r\n")
    assert s.recv_all(s.client, 17) == b"HTTP/1.0 200 OK\r\n"
    assert s.chunks == [("client", "child", b"GET / HTTP/1.0\r\n\r\n"),
                        ("child", "client", b"HTTP/1.0 200 OK\r\n")]


def test_large_transfer_with_flow_control(setup):
    s = setup()
    payload = bytes(range(256)) * (3 * HIGH_WATER // 256)   # more than any buffer holds
    sent = 0
    got = bytearray()

    def step():
        nonlocal sent
        if sent < len(payload):
            try:
                sent += s.client.send(payload[sent:sent + 65536])
            except BlockingIOError:
                pass
        try:
            got.extend(s.server.recv(1 << 18))
        except BlockingIOError:
            pass
        return len(got) == len(payload)
    s.run_until(step)
    assert bytes(got) == payload
    assert sum(len(c[2]) for c in s.chunks) == len(payload)


def test_shutdown_propagates_as_eof_and_link_closes(setup):
    s = setup()
    s.client.send(b"last words")
    s.client.shutdown(socket.SHUT_WR)
    assert s.recv_all(s.server, 1 << 30) == b"last words"        # then EOF
    # the other direction still works after a half-close
    s.server.send(b"reply")
    assert s.recv_all(s.client, 5) == b"reply"
    assert not s.closed
    s.server.shutdown(socket.SHUT_WR)
    assert s.recv_all(s.client, 1 << 30) == b""
    s.run_until(lambda: bool(s.closed))
    assert s.link.closed and not s.link.was_reset and s.resets == []


def test_close_with_unread_data_resets_the_other_side(setup):
    s = setup()
    s.server.send(b"unread by the client")
    s.run_until(lambda: s.link.down.moved == 20)
    s.client.close()              # closes with the server's bytes unread: a RST
    s.run_until(lambda: s.link.closed)
    assert s.link.was_reset and s.resets == [("client", "child")]
    assert s.read_result(s.server) == errno.ECONNRESET
    s.client = socket.socket()    # (closed above; the fixture closes this one)


def test_rst_after_n_client_bytes(setup):
    s = setup(faults=FaultSet.parse(["rst-after:port=8080:bytes=10"]))
    s.client.send(b"0123456789ABCDEF")
    # the server gets exactly the first 10 bytes, then ECONNRESET
    got = bytearray()

    def reset_seen():
        r = s.read_result(s.server)
        if isinstance(r, bytes):
            got.extend(r)
            assert r, "EOF instead of ECONNRESET"
            return False
        return r == errno.ECONNRESET
    s.run_until(reset_seen)
    assert bytes(got) == b"0123456789"
    assert s.read_result(s.client) == errno.ECONNRESET
    assert s.resets == [("client", "child")]
    assert b"".join(c[2] for c in s.chunks) == b"0123456789"


def test_rst_after_exact_budget_still_resets_both(setup):
    """The client sends exactly N bytes and waits: nothing of its own is left unread, so
    the Pump leaves one (through the program's end) before closing the kept ends."""
    s = setup(faults=FaultSet.parse(["rst-after:port=8080:bytes=4"]))
    s.client.send(b"ping")
    assert s.recv_all(s.server, 4) == b"ping"
    s.run_until(lambda: s.link.closed)
    assert s.read_result(s.client) == errno.ECONNRESET
    assert s.read_result(s.server) == errno.ECONNRESET


def test_latency_delays_but_keeps_order(setup):
    s = setup(faults=FaultSet.parse(["latency:port=8080:ms=1000"]))
    for part in (b"a", b"b", b"c"):
        s.client.send(part)
        s.reactor.run_once(0)
    assert s.link.up.inflight == 3                  # held back for 1 s
    assert s.read_result(s.server) is None
    assert s.recv_all(s.server, 3) == b"abc"
    s.client.shutdown(socket.SHUT_WR)
    assert s.recv_all(s.server, 1 << 30) == b""
