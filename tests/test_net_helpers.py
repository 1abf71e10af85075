"""Shared helpers for the tests of sysemu.net (no tests here): a model sandbox with a fake
clock, a recording HostHooks, and one method per socket call returning rax or -errno."""
from __future__ import annotations

import ipaddress
import random
import struct

import sysemu.net  # noqa: F401  (registers the handlers)
from sysemu.abi.errno import Errno
from sysemu.abi.inet import SOCKADDR_IN, SOCKADDR_IN6
from sysemu.abi.limits import HZ
from sysemu.abi.socket import AF_INET, AF_INET6, SOCK_STREAM
from sysemu.arch.x86.entry import Syscalls, run_model_call
from sysemu.kernel.clock import FakeClock
from sysemu.kernel.errors import WouldBlock
from sysemu.kernel.task import HostHooks, Kernel, Task
from sysemu.net import attach

NR = {"socket": 41, "connect": 42, "accept": 43, "recvfrom": 45, "recvmsg": 47, "shutdown": 48,
      "bind": 49, "listen": 50,
      "getsockname": 51, "getpeername": 52, "setsockopt": 54, "getsockopt": 55,
      "accept4": 288, "io_uring_setup": 425}


class RecordingHooks(HostHooks):
    def __init__(self):
        self.events: list[tuple] = []
        self.inodes: dict = {}          # Sock -> the inode sock_inode() answers

    def sock_inode(self, sock):
        return self.inodes.get(sock, 0)

    def new_file(self, file):
        self.events.append(("new_file", file))

    def established(self, sock):
        self.events.append(("established", sock))

    def listen_queue_changed(self, sock):
        self.events.append(("listen_queue_changed", sock))

    def connect_done(self, sock, errno):
        self.events.append(("connect_done", sock, errno))

    def released(self, sock):
        self.events.append(("released", sock))

    def kinds(self):
        return [e[0] for e in self.events]


def wheel_slack(seconds: float) -> float:
    """How late a timer armed `seconds` ahead may fire: its timer-wheel level's
    granularity (kernel/time/timer.c: 1 jiffy below 63 jiffies, 8 below 504, 64 below
    4032, 512 below 32256), as measured natively (a 1 s SYN retransmission at 1.024 s),
    plus a microsecond for the float clock."""
    jiffies, gran = seconds * HZ, 1
    while jiffies >= 63 * gran:
        gran *= 8
    return gran / HZ + 1e-6


def assert_wheel_intervals(times: list[float], nominal: list[float]) -> None:
    """`times` (first at 0) fired `nominal` seconds apart, each interval late by no more
    than its level's granularity and never early, as Linux's timer wheel fires them."""
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == len(nominal), (times, nominal)
    for gap, want in zip(gaps, nominal):
        assert want < gap <= want + wheel_slack(want), (times, nominal)


def sockaddr(host: str, port: int, scope_id: int = 0) -> bytes:
    ip = ipaddress.ip_address(host)
    if ip.version == 4:
        return SOCKADDR_IN.pack(AF_INET, port.to_bytes(2, "big"), ip.packed)
    return SOCKADDR_IN6.pack(AF_INET6, port.to_bytes(2, "big"), b"\0" * 4, ip.packed, scope_id)


def parse_sockaddr(data: bytes) -> tuple[str, int]:
    family = struct.unpack_from("<H", data)[0]
    port = int.from_bytes(data[2:4], "big")
    if family == AF_INET:
        return str(ipaddress.ip_address(data[4:8])), port
    ip = ipaddress.ip_address(data[8:24])
    if ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}", port
    return str(ip), port


BLOCK = "WouldBlock"


class Env:
    """One sandbox: kernel (FakeClock, seeded rng), its Net, a task, the 64-bit table."""

    def __init__(self, seed: int = 0, caps=frozenset(), sysctl: dict | None = None,
                 log_wire: bool = False):
        self.clock = FakeClock()
        self.kernel = Kernel(self.clock, random.Random(seed))
        self.hooks = RecordingHooks()
        self.kernel.host = self.hooks
        self.net = attach(self.kernel)
        if sysctl:
            self.kernel.sysctl.update(sysctl)
        self.sc = Syscalls()
        self.task = Task(self.kernel, caps=frozenset(caps))
        self.seen: list = []                      # with log_wire: every segment carried
        if log_wire:
            self.net.wire.append(self.seen.append)
        self.mem = self.task.mem
        self.last_block: WouldBlock | None = None

    def call(self, name: str, *args: int, task: Task | None = None, **kw):
        try:
            return run_model_call(self.sc, task or self.task, NR[name], *args, **kw)
        except WouldBlock as wb:
            self.last_block = wb
            return BLOCK

    # -- conveniences --------------------------------------------------------------
    def socket(self, family=AF_INET, type_=SOCK_STREAM, proto=0):
        return self.call("socket", family, type_, proto)

    def bind(self, fd, host, port, addrlen=None):
        data = sockaddr(host, port)
        return self.call("bind", fd, self.mem.alloc(data),
                         len(data) if addrlen is None else addrlen)

    def connect(self, fd, host, port, addrlen=None):
        data = sockaddr(host, port)
        return self.call("connect", fd, self.mem.alloc(data),
                         len(data) if addrlen is None else addrlen)

    def listen(self, fd, backlog=128):
        return self.call("listen", fd, backlog)

    def accept(self, fd, flags=0, want_addr=True):
        if not want_addr:
            return self.call("accept4", fd, 0, 0, flags), None
        buf = self.mem.alloc(bytes(128))
        ln = self.mem.alloc(struct.pack("<i", 128))
        r = self.call("accept4", fd, buf, ln, flags)
        if isinstance(r, int) and r >= 0:
            n = struct.unpack("<i", self.mem.read(ln, 4))[0]
            return r, parse_sockaddr(self.mem.read(buf, n))
        return r, None

    def getname(self, fd, peer=False):
        buf = self.mem.alloc(bytes(128))
        ln = self.mem.alloc(struct.pack("<i", 128))
        r = self.call("getpeername" if peer else "getsockname", fd, buf, ln)
        if r != 0:
            return r
        n = struct.unpack("<i", self.mem.read(ln, 4))[0]
        return parse_sockaddr(self.mem.read(buf, n))

    def setsockopt(self, fd, level, opt, value, optlen=None):
        data = struct.pack("<i", value) if isinstance(value, int) else value
        return self.call("setsockopt", fd, level, opt, self.mem.alloc(data),
                         len(data) if optlen is None else optlen)

    def getsockopt(self, fd, level, opt, optlen=4):
        buf = self.mem.alloc(bytes(max(optlen, 1) + 512))
        ln = self.mem.alloc(struct.pack("<i", optlen))
        r = self.call("getsockopt", fd, level, opt, buf, ln)
        if r != 0:
            return r
        n = struct.unpack("<i", self.mem.read(ln, 4))[0]
        return self.mem.read(buf, n) if n > 0 else b""

    def getint(self, fd, level, opt):
        data = self.getsockopt(fd, level, opt)
        return data if isinstance(data, int) and data < 0 else struct.unpack("<i", data)[0]

    def sock(self, fd):
        return self.task.files.lookup(fd).private_data

    def sk(self, fd):
        return self.sock(fd).sk

    def close(self, fd, unread=False):
        file = self.task.files.close(fd)
        if file.refs == 0:
            self.net.release(file.private_data, unread)

    def close_in_order(self, a, c, order):
        """Close an accepted `a` and its client `c` in one of the churn's close orders:
        server first, client first, both at once, or a RST (unread data at the server)."""
        if order == "server":
            self.close(a)
            self.advance(0.05)
            self.close(c)
        elif order == "client":
            self.close(c)
            self.advance(0.05)
            self.close(a)
        elif order == "both":
            self.close(a)
            self.close(c)
        else:
            self.close(a, unread=True)
            self.close(c)

    def advance(self, seconds):
        self.clock.advance(seconds)
        return self.net.run_timers(self.clock.now())

    def run_until(self, t):
        """Fire timers in order up to absolute time t (moving the clock to each)."""
        while True:
            nd = self.net.next_deadline()
            if nd is None or nd > t:
                break
            self.clock.t = max(self.clock.t, nd)
            self.net.run_timers(nd)
        self.clock.t = max(self.clock.t, t)

    def server(self, host="127.0.0.1", port=0, backlog=128, family=None):
        family = family or (AF_INET6 if ":" in host else AF_INET)
        fd = self.socket(family)
        assert self.bind(fd, host, port) == 0
        assert self.listen(fd, backlog) == 0
        return fd, self.getname(fd)[1]


E = Errno
