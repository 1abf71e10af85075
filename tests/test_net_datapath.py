"""The model data path in process (no host): tcp_sendmsg/tcp_recvmsg through the read,
write, send*, recv* handlers, on a fake clock. Segments are read off the wire."""
from __future__ import annotations

import struct

import pytest

import sysemu.fs.fcntl  # noqa: F401  (ioctl)
import sysemu.fs.read_write  # noqa: F401  (registers read/write/readv/writev)
import sysemu.fs.splice  # noqa: F401  (registers splice)
from sysemu.abi.errno import Errno
from sysemu.abi.inet import TcpFlags, TcpState
from sysemu.abi.socket import (MSG_DONTWAIT, MSG_MORE, MSG_OOB, MSG_PEEK, MSG_TRUNC,
                               MSG_WAITALL, SHUTDOWN_MASK)
from sysemu.arch.x86.entry import (AUDIT_ARCH_I386, X32_SYSCALL_BIT, Syscalls,
                                   run_model_call)
from sysemu.fs.splice import (POLLERR, POLLHUP, POLLIN, POLLOUT, SPLICE_F_MORE,
                              SPLICE_F_NONBLOCK)
from sysemu.kernel.errors import SyscallError, WouldBlock
from sysemu.kernel.file import File
from sysemu.kernel.task import DATAPATH_MODEL, Task
from sysemu.kernel.wait import WaitQueue
from sysemu.net.socket import SIOCATMARK, SIOCINQ, SIOCOUTQ
from test_net_helpers import BLOCK, E, Env

NR_DATA = {"read": 0, "write": 1, "readv": 19, "writev": 20, "sendto": 44, "recvfrom": 45,
           "sendmsg": 46, "recvmsg": 47, "ioctl": 16, "recvmmsg": 299, "sendmmsg": 307,
           "poll": 7, "select": 23, "pselect6": 270, "ppoll": 271}
SOL_SOCKET, SO_RCVBUF, SO_SNDBUF, SO_OOBINLINE = 1, 8, 7, 10
IPPROTO_TCP, TCP_NODELAY, TCP_CORK, TCP_INFO = 6, 1, 3, 11


class DataEnv(Env):
    def __init__(self, **kw):
        super().__init__(log_wire=True, **kw)
        self.kernel.datapath = DATAPATH_MODEL
        self.sc = Syscalls(datapath=DATAPATH_MODEL)

    def dcall(self, name, *args, task=None):
        try:
            return run_model_call(self.sc, task or self.task, NR_DATA[name], *args)
        except WouldBlock as wb:
            self.last_block = wb
            return BLOCK

    def send(self, fd, data: bytes, flags=0, task=None):
        return self.dcall("sendto", fd, self.mem.alloc(data), len(data), flags, 0, 0,
                          task=task)

    def thread(self):
        """Another thread of the same program (its own Task.partial)."""
        return Task(self.kernel, pid=self.task.pid, tid=self.task.pid + 1000, mem=self.mem,
                    files=self.task.files)

    def write(self, fd, data: bytes):
        return self.dcall("write", fd, self.mem.alloc(data), len(data))

    def recv(self, fd, n, flags=0):
        buf = self.mem.alloc(bytes(max(n, 1)))
        r = self.dcall("recvfrom", fd, buf, n, flags, 0, 0)
        return r if r is BLOCK or r < 0 else self.mem.read(buf, r)

    def read(self, fd, n):
        buf = self.mem.alloc(bytes(max(n, 1)))
        r = self.dcall("read", fd, buf, n)
        return r if r is BLOCK or r < 0 else self.mem.read(buf, r)

    def ioctl(self, fd, cmd):
        buf = self.mem.alloc(bytes(4))
        r = self.dcall("ioctl", fd, cmd, buf)
        return r if r < 0 else struct.unpack("<i", self.mem.read(buf, 4))[0]

    def pair(self):
        lfd, port = self.server()
        c = self.socket()
        assert self.connect(c, "127.0.0.1", port) == 0
        s, _ = self.accept(lfd)
        assert s >= 0
        return lfd, c, s

    def data_segments(self, sport=None):
        return [seg for seg in self.seen if seg.length and (sport is None or seg.sport == sport)]


@pytest.fixture
def env():
    return DataEnv()


def test_bytes_arrive_in_order_with_sequence_numbers(env):
    _, c, s = env.pair()
    assert env.send(c, b"hello ") == 6
    assert env.write(c, b"world") == 5
    assert env.read(s, 100) == b"hello world"
    segs = env.data_segments(env.sk(c).num)
    assert [bytes(seg.payload) for seg in segs] == [b"hello ", b"world"]
    assert segs[1].seq == (segs[0].seq + 6) & 0xFFFFFFFF
    assert env.read(s, 100) is BLOCK


def test_empty_receive_queue_eagain_and_block(env):
    _, c, s = env.pair()
    assert env.recv(s, 10, MSG_DONTWAIT) == -E.EAGAIN
    assert env.recv(s, 10) is BLOCK


def test_peek_leaves_the_bytes(env):
    _, c, s = env.pair()
    env.send(c, b"abcdef")
    assert env.recv(s, 3, MSG_PEEK) == b"abc"
    assert env.ioctl(s, SIOCINQ) == 6
    assert env.recv(s, 10) == b"abcdef"
    assert env.ioctl(s, SIOCINQ) == 0


def test_msg_more_and_cork_hold_a_partial_segment(env):
    _, c, s = env.pair()
    env.send(c, b"head", MSG_MORE)
    assert env.recv(s, 10, MSG_DONTWAIT) == -E.EAGAIN
    assert env.ioctl(c, SIOCOUTQ) == 4
    env.send(c, b"body")
    assert env.recv(s, 10) == b"headbody"
    assert [bytes(x.payload) for x in env.data_segments(env.sk(c).num)] == [b"headbody"]
    assert env.setsockopt(c, IPPROTO_TCP, TCP_CORK, 1) == 0
    env.send(c, b"x")
    env.send(c, b"y")
    assert env.recv(s, 10, MSG_DONTWAIT) == -E.EAGAIN
    assert env.setsockopt(c, IPPROTO_TCP, TCP_CORK, 0) == 0
    assert env.recv(s, 10) == b"xy"


def test_waitall_waits_for_the_rest(env):
    _, c, s = env.pair()
    env.send(c, b"abc")
    buf = env.mem.alloc(bytes(6))
    reader = Task(env.kernel, pid=1, tid=2, mem=env.mem, files=env.task.files)
    assert env.dcall("recvfrom", s, buf, 6, MSG_WAITALL, 0, 0, task=reader) is BLOCK
    assert env.ioctl(s, SIOCINQ) == 0         # taken: the window opens as for Linux
    env.send(c, b"def")
    # the same call again (woken): it goes on after the three bytes it has
    assert env.dcall("recvfrom", s, buf, 6, MSG_WAITALL, 0, 0, task=reader) == 6
    assert env.mem.read(buf, 6) == b"abcdef"


def test_fin_after_the_data_then_eof(env):
    _, c, s = env.pair()
    env.send(c, b"last words")
    env.close(c)
    assert env.sk(s).state == TcpState.TCP_CLOSE_WAIT
    assert env.recv(s, 4) == b"last"
    assert env.recv(s, 100) == b" words"
    assert env.recv(s, 100) == b""
    fins = [seg for seg in env.seen if seg.flags & TcpFlags.FIN]
    data = env.data_segments(env.sk(s).dport)
    assert len(fins) == 1 and fins[0].seq == (data[-1].seq + 10) & 0xFFFFFFFF


def test_close_with_unread_data_resets_and_write_after_peer_close(env):
    _, c, s = env.pair()
    env.send(c, b"unread")
    env.close(s)
    assert env.recv(c, 10) == -E.ECONNRESET
    assert env.recv(c, 10) == b""


def test_write_after_peer_close_first_succeeds_then_epipe(env):
    _, c, s = env.pair()
    env.close(s)
    assert env.send(c, b"a", 0x4000) == 1          # MSG_NOSIGNAL
    assert env.send(c, b"b", 0x4000) == -E.EPIPE


def test_send_unconnected_epipe_recv_enotconn(env):
    fd = env.socket()
    assert env.send(fd, b"x", 0x4000) == -E.EPIPE
    assert env.recv(fd, 1) == -E.ENOTCONN
    lfd, _ = env.server()
    assert env.recv(lfd, 1) == -E.ENOTCONN
    assert env.ioctl(lfd, SIOCINQ) == -E.EINVAL


def test_window_limits_and_reader_opens_it(env):
    _, c, s = env.pair()
    assert env.setsockopt(s, SOL_SOCKET, SO_RCVBUF, 4096) == 0   # 8192 of room
    assert env.setsockopt(c, SOL_SOCKET, SO_SNDBUF, 4096) == 0
    env.send(c, b"")        # nothing
    data = bytes(range(256)) * 100                               # 25600 bytes
    n = env.send(c, data, MSG_DONTWAIT)
    assert 0 < n < len(data)
    assert env.ioctl(s, SIOCINQ) <= 65535
    got = b""
    while len(got) < n:
        chunk = env.recv(s, 100000, MSG_DONTWAIT)
        assert isinstance(chunk, bytes) and chunk
        got += chunk
    assert got == data[:n]


def test_urgent_byte_out_of_band_and_mark(env):
    _, c, s = env.pair()
    env.send(c, b"abc")
    env.send(c, b"!", MSG_OOB)
    env.send(c, b"def")
    assert env.ioctl(s, SIOCATMARK) == 0
    assert env.recv(s, 100) == b"abc"           # stops at the mark
    assert env.ioctl(s, SIOCATMARK) == 1
    assert env.recv(s, 1, MSG_OOB) == b"!"
    assert env.recv(s, 100) == b"def"
    assert env.recv(s, 1, MSG_OOB) == -E.EINVAL


def test_trunc_discards(env):
    _, c, s = env.pair()
    env.send(c, b"123456")
    buf = env.mem.alloc(bytes(1))
    assert env.dcall("recvfrom", s, buf, 4, MSG_TRUNC, 0, 0) == 4
    assert env.recv(s, 10) == b"56"


def test_tcp_info_counts_bytes(env):
    _, c, s = env.pair()
    env.send(c, b"x" * 1000)
    env.recv(s, 2000)
    info = env.getsockopt(s, IPPROTO_TCP, TCP_INFO, 232)
    bytes_received = struct.unpack_from("<Q", info, 128)[0]
    assert bytes_received == 1000
    info = env.getsockopt(c, IPPROTO_TCP, TCP_INFO, 232)
    assert struct.unpack_from("<Q", info, 120)[0] == 1001      # bytes_acked: the SYN too
    assert struct.unpack_from("<I", info, 156)[0] == 1         # data_segs_out


def test_nagle_holds_a_small_segment_while_one_is_unacknowledged(env):
    _, c, s = env.pair()
    env.net.link_delay = 0.01           # ACKs take time: a small segment stays in flight
    env.send(c, b"a")
    env.send(c, b"b")                   # Nagle: held while "a" is unacknowledged
    assert [bytes(x.payload) for x in env.data_segments(env.sk(c).num)] == [b"a"]
    env.run_until(env.clock.now() + 0.05)
    assert [bytes(x.payload) for x in env.data_segments(env.sk(c).num)] == [b"a", b"b"]
    assert env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1) == 0
    env.send(c, b"c")
    env.send(c, b"d")                   # TCP_NODELAY: both go at once
    assert [bytes(x.payload) for x in env.data_segments(env.sk(c).num)][2:] == [b"c", b"d"]
    env.run_until(env.clock.now() + 0.05)
    assert env.recv(s, 10) == b"abcd"


def test_a_lost_segment_is_sent_again_at_the_rto(env):
    _, c, s = env.pair()
    lost = []

    def drop(seg):
        if seg.length and not lost:
            lost.append(seg)
            return True
        return False
    env.net.drop = drop
    env.send(c, b"first")
    assert env.recv(s, 10, MSG_DONTWAIT) == -E.EAGAIN
    env.run_until(env.clock.now() + 0.25)           # TCP_RTO_MIN
    assert env.recv(s, 10) == b"first"
    assert env.sk(c).total_retrans == 1 and env.ioctl(c, SIOCOUTQ) == 0


def test_zero_window_then_the_reader_opens_it(env):
    lfd, port = env.server()
    assert env.setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, 2048) == 0  # inherited: 4096 of room
    c = env.socket()
    assert env.connect(c, "127.0.0.1", port) == 0
    s, _ = env.accept(lfd)
    data = bytes(range(256)) * 64                                   # 16384
    assert env.send(c, data) == len(data)                          # queued, not all sent
    assert env.ioctl(s, SIOCINQ) == 4096
    assert env.ioctl(c, SIOCOUTQ) == len(data) - 4096
    got = b""
    while len(got) < len(data):
        chunk = env.recv(s, 100000, MSG_DONTWAIT)
        assert isinstance(chunk, bytes) and chunk, chunk
        got += chunk
    assert got == data


def test_reset_in_the_middle_of_the_stream(env):
    _, c, s = env.pair()
    env.send(c, b"before")
    assert env.setsockopt(c, SOL_SOCKET, 13, struct.pack("ii", 1, 0)) == 0   # SO_LINGER
    env.close(c)                        # an abortive close: RST
    assert env.recv(s, 100) == b"before"    # the queued bytes first
    assert env.recv(s, 100) == -E.ECONNRESET
    assert env.recv(s, 100) == b""
    assert env.send(s, b"x", 0x4000) == -E.EPIPE


def test_shutdown_rd_reads_eof_but_keeps_queued_bytes(env):
    _, c, s = env.pair()
    env.send(c, b"kept")
    assert env.call("shutdown", s, 0) == 0
    assert env.recv(s, 100) == b"kept"
    assert env.recv(s, 100) == b""


try:
    from hypothesis import given, settings, strategies as st
except ImportError:         # pragma: no cover
    given = None

if given is not None:
    OPS = st.lists(st.one_of(
        st.tuples(st.just("send"), st.integers(0, 70000), st.sampled_from([0, MSG_MORE])),
        st.tuples(st.just("recv"), st.integers(1, 90000), st.sampled_from([0, MSG_PEEK])),
        st.tuples(st.just("cork"), st.integers(0, 1), st.just(0)),
        st.tuples(st.just("tick"), st.integers(0, 300), st.just(0))), max_size=40)

    @settings(max_examples=60, deadline=None)
    @given(OPS)
    def test_the_stream_arrives_whole_and_in_order(ops):
        """Any mix of sends (MSG_MORE), reads (MSG_PEEK), corking and time: what the
        reader gets is a prefix of what was sent, and after uncorking, pushing and
        draining, all of it; the sequence numbers on the wire have no gap."""
        env = DataEnv()
        _, c, s = env.pair()
        env.setsockopt(s, SOL_SOCKET, SO_RCVBUF, 8192)
        sent, got = bytearray(), bytearray()
        n = 0
        for op, arg, flags in ops:
            if op == "send":
                data = bytes((n + i) % 251 for i in range(arg))
                r = env.send(c, data, flags | MSG_DONTWAIT)
                if isinstance(r, int) and r > 0:
                    sent += data[:r]
                    n += r
            elif op == "recv":
                r = env.recv(s, arg, flags | MSG_DONTWAIT)
                if isinstance(r, bytes) and not flags & MSG_PEEK:
                    got += r
            elif op == "cork":
                env.setsockopt(c, IPPROTO_TCP, TCP_CORK, arg)
            else:
                env.run_until(env.clock.now() + arg / 1000)
            assert bytes(got) == bytes(sent[:len(got)])
        env.setsockopt(c, IPPROTO_TCP, TCP_CORK, 0)
        env.run_until(env.clock.now() + 1)
        for _ in range(1000):
            r = env.recv(s, 1 << 20, MSG_DONTWAIT)
            if not isinstance(r, bytes):
                if len(got) == len(sent):
                    break
                env.run_until(env.clock.now() + 0.5)
                continue
            got += r
        assert bytes(got) == bytes(sent)
        segs = env.data_segments(env.sk(c).num)
        start = segs[0].seq if segs else 0
        end = 0
        for seg in segs:                # no gap (a retransmission may go back)
            off = (seg.seq - start) & 0xFFFFFFFF
            assert off <= end
            end = max(end, off + seg.length)


def test_i386_and_x32_readv_writev_take_compat_iovecs(env):
    """i386's readv/writev (145, 146) and x32's (515, 516) are sys_readv/sys_writev,
    whose import_iovec() reads compat_iovecs (in_compat_syscall()): 32-bit base and
    length, a negative length EINVAL."""
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    data = env.mem.alloc(b"abcdef")
    vec = env.mem.alloc(struct.pack("<IiIi", data, 2, data + 2, 4))
    assert run_model_call(env.sc, env.task, X32_SYSCALL_BIT | 516, c, vec, 2) == 6
    assert run_model_call(env.sc, env.task, 146, c, vec, 1, arch=AUDIT_ARCH_I386) == 2
    buf = env.mem.alloc(bytes(8))
    rvec = env.mem.alloc(struct.pack("<IiIi", buf, 3, buf + 3, 5))
    assert run_model_call(env.sc, env.task, 145, s, rvec, 2, arch=AUDIT_ARCH_I386) == 8
    assert env.mem.read(buf, 8) == b"abcdefab"
    neg = env.mem.alloc(struct.pack("<Ii", data, -1))
    assert run_model_call(env.sc, env.task, X32_SYSCALL_BIT | 515, s, neg, 1) == -E.EINVAL
    assert run_model_call(env.sc, env.task, 146, c, neg, 1, arch=AUDIT_ARCH_I386) \
        == -E.EINVAL


def _mmsgs(env, sizes):
    """struct mmsghdr[len(sizes)] in env.mem, one iovec of each size, no names: (the
    vector, the buffers)."""
    bufs = [env.mem.alloc(bytes(n)) for n in sizes]
    iovs = [env.mem.alloc(struct.pack("<Qq", b, n)) for b, n in zip(bufs, sizes)]
    vec = env.mem.alloc(b"".join(struct.pack("<QiiQQQQI4xI4x", 0, 0, 0, iov, 1, 0, 0, 0, 0)
                                 for iov in iovs))
    return vec, bufs


def test_recvmmsg_and_sendmmsg_on_tcp_one_stream(env):
    """sendmmsg's messages are one stream; a recvmmsg entry takes what is queued and,
    with MSG_WAITFORONE, the next does not wait; the bytes come once."""
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    vec, bufs = _mmsgs(env, [3, 3])
    env.mem.write(bufs[0], b"abc")
    env.mem.write(bufs[1], b"def")
    assert env.dcall("sendmmsg", c, vec, 2, 0) == 2
    rvec, rbufs = _mmsgs(env, [4, 4])
    assert env.dcall("recvmmsg", s, rvec, 2, 0x10000, 0) == 2     # MSG_WAITFORONE
    assert env.mem.read(rbufs[0], 4) + env.mem.read(rbufs[1], 2) == b"abcdef"
    assert env.dcall("recvmmsg", s, rvec, 2, MSG_DONTWAIT, 0) == -E.EAGAIN


def test_recvmmsg_on_tcp_waits_in_the_second_entry(env):
    """Linux waits in the second entry (no MSG_WAITFORONE) once the first took all that
    was queued; the attempt run again when bytes come goes on with the second entry (the
    first entry's bytes are not read twice)."""
    _, c, s = env.pair()
    env.send(c, b"abc")
    rvec, rbufs = _mmsgs(env, [8, 8])
    assert env.dcall("recvmmsg", s, rvec, 2, 0, 0) is BLOCK
    env.send(c, b"defg", task=env.thread())
    assert env.dcall("recvmmsg", s, rvec, 2, 0, 0) == 2
    assert env.mem.read(rbufs[0], 3) == b"abc" and env.mem.read(rbufs[1], 4) == b"defg"
    lens = [struct.unpack_from("<I", env.mem.read(rvec + 64 * i + 56, 4))[0] for i in (0, 1)]
    assert lens == [3, 4]


def test_sendmmsg_on_tcp_waits_in_a_later_entry(env):
    """A blocking sendmmsg whose second message finds no send space waits in it (Linux:
    sk_stream_wait_memory()); woken, it sends the rest of that message and goes on."""
    _, c, s = env.pair()
    env.setsockopt(s, SOL_SOCKET, SO_RCVBUF, 4096)
    env.setsockopt(c, SOL_SOCKET, SO_SNDBUF, 4096)
    sizes = [100, 300000, 5]
    vec, bufs = _mmsgs(env, sizes)
    for b, n in zip(bufs, sizes):
        env.mem.write(b, bytes([n % 251]) * n)
    r = env.dcall("sendmmsg", c, vec, 3, 0)
    got = bytearray()
    reader = env.thread()
    for _ in range(2000):
        if r is not BLOCK:
            break
        buf = env.mem.alloc(bytes(1 << 16))
        n = env.dcall("recvfrom", s, buf, 1 << 16, MSG_DONTWAIT, 0, 0, task=reader)
        chunk = env.mem.read(buf, n) if n is not BLOCK and n > 0 else None
        if isinstance(chunk, bytes):
            got += chunk
        env.run_until(env.clock.now() + 0.01)
        r = env.dcall("sendmmsg", c, vec, 3, 0)
    assert r == 3
    env.run_until(env.clock.now() + 1)
    while True:
        chunk = env.recv(s, 1 << 20, MSG_DONTWAIT)
        if not isinstance(chunk, bytes) or not chunk:
            break
        got += chunk
    assert bytes(got) == b"".join(bytes([n % 251]) * n for n in sizes)


def test_recvmmsg_timeout_looked_at_after_each_message(env):
    """do_recvmmsg(): a zero timeout ends the call after the first message (end_time 0),
    and the time left, 0, is written back."""
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    env.send(c, b"abc")
    rvec, rbufs = _mmsgs(env, [2, 8])
    ts = env.mem.alloc(struct.pack("<qq", 0, 0))
    assert env.dcall("recvmmsg", s, rvec, 2, MSG_DONTWAIT, ts) == 1
    assert struct.unpack("<qq", env.mem.read(ts, 16)) == (0, 0)
    env.mem.write(ts, struct.pack("<qq", 5, 0))
    assert env.dcall("recvmmsg", s, rvec, 2, MSG_DONTWAIT, ts) == 1      # then EAGAIN
    sec, nsec = struct.unpack("<qq", env.mem.read(ts, 16))
    assert 0 < sec * 10**9 + nsec <= 5 * 10**9


# -- splice between a socket and a pipe (fs/splice.py), the pipe a stand-in ---------------

NR_SPLICE = 275
PIPE_SIZE = 65536


class FakePipe:
    """What HostHooks.pipe_file gives for a program's pipe (host/files.py HostPipe),
    over bytes held here: one end of a 64 KiB pipe."""

    def __init__(self, data=b"", readable=True, writable=True):
        self.buf = bytearray(data)
        self.pipe, self.readable, self.writable = True, readable, writable
        self.nonblocking = False
        self.readers = self.writers = True
        self.queue = WaitQueue("pipe")
        self.waited = []

    def queued(self):
        return len(self.buf)

    def space(self):
        return max(PIPE_SIZE - len(self.buf), 0)

    def poll(self):
        return ((POLLIN if self.buf else 0) | (POLLOUT if self.space() else 0)
                | (0 if self.writers else POLLHUP) | (0 if self.readers else POLLERR))

    def read(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def write(self, data):
        if not self.readers:
            raise SyscallError(Errno.EPIPE)
        n = min(len(data), self.space())
        self.buf += data[:n]
        return n

    def wait(self, events):
        self.waited.append(events)
        return self.queue

    def close(self):
        pass


@pytest.fixture
def spliced():
    """A connected pair and a stand-in pipe at descriptor `p` (a file that is not a
    socket: splice asks the host for it)."""
    env = DataEnv()
    _, c, s = env.pair()
    env.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1)
    pipe = FakePipe()
    p = env.task.files.install(File(object()))
    env.hooks.pipe_file = lambda task, fd: pipe
    signals = []
    env.hooks.send_sig = lambda task, sig: signals.append(sig)
    return env, c, s, p, pipe, signals


def splice(env, fd_in, fd_out, length, flags=0, off_in=0, off_out=0):
    try:
        return run_model_call(env.sc, env.task, NR_SPLICE, fd_in, off_in, fd_out, off_out,
                              length, flags)
    except WouldBlock:
        return BLOCK


def test_splice_pipe_to_socket_sends_what_the_pipe_holds(spliced):
    env, c, s, p, pipe, _ = spliced
    pipe.buf += b"hello pipe"
    assert splice(env, p, c, 5) == 5
    assert splice(env, p, c, 100, SPLICE_F_MORE) == 5 and not pipe.buf
    env.run_until(env.clock.now() + 1)          # MSG_MORE's held segment goes at 200 ms
    assert env.recv(s, 100) == b"hello pipe"
    assert splice(env, p, c, 10, SPLICE_F_NONBLOCK) == -E.EAGAIN
    pipe.nonblocking = True
    assert splice(env, p, c, 10) == -E.EAGAIN
    pipe.nonblocking = False
    assert splice(env, p, c, 10) is BLOCK and pipe.waited == [POLLIN]
    pipe.buf += b"late"
    assert splice(env, p, c, 10) == 4
    pipe.writers = False
    assert splice(env, p, c, 10) == 0                       # no writer: the end


def test_splice_socket_to_pipe_takes_only_what_fits(spliced):
    env, c, s, p, pipe, signals = spliced
    assert splice(env, s, p, 10) is BLOCK                   # waits as a read does
    env.send(c, b"to the pipe")
    assert splice(env, s, p, 5) == 5 and bytes(pipe.buf) == b"to th"
    pipe.buf[:] = b"x" * (PIPE_SIZE - 2)
    assert splice(env, s, p, 100) == 2                      # the room left
    assert splice(env, s, p, 100, SPLICE_F_NONBLOCK) == -E.EAGAIN    # full
    assert splice(env, s, p, 100) is BLOCK and pipe.waited == [POLLOUT]
    pipe.buf.clear()
    assert splice(env, s, p, 100) == 4 and bytes(pipe.buf) == b"pipe"
    env.send(c, b"z")
    pipe.readers = False
    assert splice(env, s, p, 1) == -E.EPIPE and signals == [13]
    assert env.recv(s, 10) == b"z"                          # still queued


def test_splice_checks_in_linuxs_order(spliced):
    env, c, s, p, pipe, _ = spliced
    off = env.mem.alloc(bytes(8))
    assert splice(env, s, p, 0, 0x100) == 0                 # len 0 before the flags
    assert splice(env, s, p, 1, 0x100) == -E.EINVAL
    assert splice(env, 99, p, 1) == -E.EBADF
    assert splice(env, p, c, 1, off_in=off) == -E.ESPIPE    # an offset on the pipe
    assert splice(env, p, c, 1, off_out=0x8) == -E.EFAULT   # read before do_splice()
    assert splice(env, p, c, 1, off_out=off) == -E.EINVAL   # the socket: no pwrite
    assert splice(env, s, p, 1, off_in=off) == -E.EINVAL
    assert splice(env, s, c, 1) == -E.EINVAL                # no pipe at all
    pipe.readable = False
    assert splice(env, p, c, 1) == -E.EBADF                 # the pipe's write end
    pipe.readable, pipe.pipe = True, False
    assert splice(env, p, c, 1) == -E.EINVAL                # a file, not a pipe
