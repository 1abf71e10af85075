"""Differential select/poll probe: one body, run natively and under `sysemu run`.

    python3 poll_probe.py SCENARIO [SCENARIO ...]    prints {scenario: {check: result}} as JSON
    python3 poll_probe.py --list                      prints the scenario names

The calls are made raw (ctypes, libc.syscall for pselect6 and ppoll, whose libc wrappers
copy the timeout), so what the kernel writes back and the errno it returns are seen as
they are. A result is a return value, revents, an errno NAME, or a boolean about the time
left (which varies from run to run). Every wait is bounded.

The checks follow Linux: fs/select.c (kern_select, core_sys_select, do_select,
do_pselect, do_sys_poll, do_poll, sys_ppoll, poll_select_set_timeout,
poll_select_finish), net/ipv4/tcp.c tcp_poll(), net/core/datagram.c datagram_poll().
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time

from probekit import Probe      # (tests/probes/, this script's directory)

PROBE = Probe()
scenario = PROBE.scenario

LOOP = "127.0.0.1"
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR_POLL, NR_SELECT, NR_PSELECT6, NR_PPOLL = 7, 23, 270, 271
UNMAPPED = 0x10000          # below mmap_min_addr: never mapped
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 0x10, 0x20
POLLRDNORM, POLLWRNORM, POLLRDHUP = 0x40, 0x100, 0x2000
ALL = POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLRDNORM | POLLWRNORM


def raw(nr, *args):
    """A raw system call: its value, or the errno name."""
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if ret == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return ret


KEEP: list = []         # buffers whose address a call was given: alive until the exit


def addr(buf) -> int:
    KEEP.append(buf)
    return ctypes.addressof(buf)


def pollfds(*entries):
    """A struct pollfd array of (fd, events)."""
    buf = ctypes.create_string_buffer(8 * max(len(entries), 1))
    for i, (fd, events) in enumerate(entries):
        struct.pack_into("=ihh", buf, 8 * i, fd, events, 0x7777)
    return buf


def revents(buf, n):
    return [struct.unpack_from("=ihh", buf, 8 * i)[2] for i in range(n)]


def poll(entries, timeout_ms):
    buf = pollfds(*entries)
    ret = raw(NR_POLL, addr(buf), len(entries), timeout_ms)
    return [ret, revents(buf, len(entries))]


def fdset(*fds, size=128):
    buf = ctypes.create_string_buffer(size)
    for fd in fds:
        buf[fd // 8] = bytes([buf[fd // 8][0] | 1 << (fd % 8)])
    return buf


def members(buf):
    data = buf.raw
    return [i for i in range(len(data) * 8) if data[i // 8] >> (i % 8) & 1]


def timeval(sec, usec):
    buf = ctypes.create_string_buffer(16)
    struct.pack_into("=qq", buf, 0, sec, usec)
    return buf


def tv(buf):
    return struct.unpack_from("=qq", buf, 0)


def tcp_pair():
    srv = socket.socket()
    srv.bind((LOOP, 0))
    srv.listen(4)
    c = socket.create_connection(srv.getsockname(), timeout=5)
    a, _ = srv.accept()
    srv.close()
    return c, a


def wait_for(fd, events, timeout_ms=3000):
    """Poll until `fd` shows any of `events` (bounded); its revents."""
    return poll([(fd, events)], timeout_ms)[1][0]


@scenario
def poll_timeouts():
    # do_poll(): a zero timeout polls once; a short one expires with 0; a negative one
    # waits for ever (here: until the data that is already there); revents written for
    # every entry, 0 where nothing happened.
    c, a = tcp_pair()
    result = {"zero": poll([(a.fileno(), POLLIN)], 0),
              "short": poll([(a.fileno(), POLLIN)], 30)}
    c.send(b"x")
    result["negative"] = poll([(a.fileno(), POLLIN), (c.fileno(), POLLIN)], -1)
    result["writable"] = poll([(c.fileno(), POLLOUT)], 0)
    c.close()
    a.close()
    return result


@scenario
def poll_nval_negative_and_mixed():
    # do_pollfd(): fd < 0 is skipped (revents 0), a closed fd is POLLNVAL and counts, a
    # pipe (the host's descriptor) next to sockets answers for itself.
    c, a = tcp_pair()
    r, w = os.pipe()
    closed = os.dup(r)
    os.close(closed)
    result = {"entries": poll([(-1, POLLIN), (closed, POLLIN), (r, POLLIN), (w, POLLOUT),
                               (a.fileno(), POLLIN | POLLOUT)], 0)}
    os.write(w, b"y")
    c.send(b"z")
    result["ready"] = poll([(r, POLLIN), (a.fileno(), POLLIN), (-5, POLLIN)], 1000)
    result["events_zero"] = poll([(a.fileno(), 0)], 0)    # POLLERR|POLLHUP only
    for s in (c, a):
        s.close()
    os.close(r)
    os.close(w)
    return result


@scenario
def poll_nfds_limits():
    # do_sys_poll(): EINVAL for nfds > RLIMIT_NOFILE (entries with fd -1 are fine up to
    # it); EFAULT for an unreadable array; nfds 0 with any pointer polls nothing.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        ok = pollfds(*[(-1, POLLIN)] * 64)
        over = pollfds(*[(-1, POLLIN)] * 65)
        result = {"at_limit": raw(NR_POLL, addr(ok), 64, 0),
                  "over_limit": raw(NR_POLL, addr(over), 65, 0),
                  "huge": raw(NR_POLL, addr(over), 1 << 31, 0)}
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    result["efault"] = raw(NR_POLL, UNMAPPED, 1, 0)
    result["zero_nfds_bad_pointer"] = raw(NR_POLL, UNMAPPED, 0, 0)
    # a read-only array: read fine, the revents cannot be written (EFAULT)
    c, a = tcp_pair()
    page = mmap.mmap(-1, 4096)
    page[:8] = struct.pack("=ihh", a.fileno(), POLLOUT, 0)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    libc.mprotect(ctypes.c_void_p(base), 4096, 1)        # PROT_READ
    result["read_only"] = raw(NR_POLL, base, 1, 0)
    libc.mprotect(ctypes.c_void_p(base), 4096, 3)
    c.close()
    a.close()
    return result


@scenario
def tcp_poll_masks():
    # tcp_poll(): a fresh socket POLLOUT|POLLHUP; connected and idle POLLOUT; urgent data
    # POLLPRI (the urgent byte alone is not POLLIN: target + 1); the peer's FIN
    # POLLIN|POLLRDHUP; both sides shut POLLHUP; a reset POLLERR with all of those.
    fresh = socket.socket()
    result = {"fresh": poll([(fresh.fileno(), ALL)], 0)}
    fresh.bind((LOOP, 0))
    result["bound"] = poll([(fresh.fileno(), ALL)], 0)
    fresh.close()
    c, a = tcp_pair()
    result["idle"] = poll([(a.fileno(), ALL)], 0)
    c.send(b"!", socket.MSG_OOB)
    result["urgent"] = wait_for(a.fileno(), POLLPRI) and poll([(a.fileno(), ALL)], 0)
    result["urgent_read"] = len(a.recv(1, socket.MSG_OOB))
    result["after_urgent"] = poll([(a.fileno(), ALL)], 0)
    c.send(b"data")
    result["data"] = wait_for(a.fileno(), POLLIN) and poll([(a.fileno(), ALL)], 0)
    a.recv(100)
    c.shutdown(socket.SHUT_WR)
    result["peer_fin"] = wait_for(a.fileno(), POLLRDHUP) and poll([(a.fileno(), ALL)], 0)
    a.shutdown(socket.SHUT_WR)
    result["both_shut"] = wait_for(a.fileno(), POLLHUP) and poll([(a.fileno(), ALL)], 0)
    c.close()
    a.close()
    c, a = tcp_pair()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    result["reset"] = wait_for(a.fileno(), POLLERR) and poll([(a.fileno(), ALL)], 0)
    a.close()
    return result


@scenario
def udp_poll_masks():
    # datagram_poll(): always POLLOUT; POLLIN with a datagram queued; shut down reading:
    # POLLIN|POLLRDHUP; both: POLLHUP.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOP, 0))
    result = {"empty": poll([(s.fileno(), ALL)], 0)}
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t.sendto(b"d", s.getsockname())
    result["queued"] = wait_for(s.fileno(), POLLIN) and poll([(s.fileno(), ALL)], 0)
    s.recv(10)
    s.connect(t.getsockname() if t.getsockname()[1] else (LOOP, 9))
    s.shutdown(socket.SHUT_RD)
    result["shut_rd"] = poll([(s.fileno(), ALL)], 0)
    s.shutdown(socket.SHUT_WR)
    result["shut_rdwr"] = poll([(s.fileno(), ALL)], 0)
    s.close()
    t.close()
    return result


@scenario
def select_sets_and_errors():
    # core_sys_select(): EINVAL for n < 0; n past FD_SETSIZE is capped at the table's
    # size; EBADF for a set bit naming a closed fd; EFAULT for an unreadable set; the
    # sets come back with only the ready bits; exceptfds on urgent data (POLLPRI).
    c, a = tcp_pair()
    r, w = os.pipe()
    closed = os.dup(r)
    os.close(closed)
    fa, fc = a.fileno(), c.fileno()
    result = {"negative": raw(NR_SELECT, -1, 0, 0, 0, 0)}
    zero = timeval(0, 0)
    rd, wr = fdset(fa, r), fdset(fa, fc, w)
    result["ready"] = [raw(NR_SELECT, max(fa, fc, r, w) + 1, addr(rd), addr(wr), 0, addr(zero)),
                       members(rd) == [], sorted(members(wr)) == sorted([fa, fc, w])]
    big_r = fdset(fa, size=1 << 17)
    result["past_fd_setsize"] = [raw(NR_SELECT, 1 << 20, addr(big_r), 0, 0, addr(zero)),
                                 members(big_r)]
    bad = fdset(fa, closed)
    result["ebadf"] = raw(NR_SELECT, max(fa, closed) + 1, addr(bad), 0, 0, addr(zero))
    result["efault_set"] = raw(NR_SELECT, fa + 1, UNMAPPED, 0, 0, addr(zero))
    result["efault_timeval"] = raw(NR_SELECT, fa + 1, addr(fdset(fa)), 0, 0, UNMAPPED)
    c.send(b"!", socket.MSG_OOB)
    wait_for(fa, POLLPRI)
    ex, rd = fdset(fa), fdset(fa)
    result["exceptional"] = [raw(NR_SELECT, fa + 1, addr(rd), 0, addr(ex), addr(zero)),
                             members(rd) == [], members(ex) == [fa]]
    os.write(w, b"p")
    rd = fdset(r, fa)
    result["pipe_read"] = [raw(NR_SELECT, max(r, fa) + 1, addr(rd), 0, 0, addr(zero)),
                           members(rd) == [r]]
    for fd in (r, w):
        os.close(fd)
    c.close()
    a.close()
    return result


@scenario
def select_timeouts():
    # kern_select(): EINVAL for a negative second or microsecond; microseconds past a
    # second carry; the time left written back (0 once it expired; less than given when
    # an fd was ready; a zero timeout is not written).
    c, a = tcp_pair()
    fa = a.fileno()
    result = {}
    for name, t in (("neg_sec", (-1, 0)), ("neg_usec", (0, -1)),
                    ("neg_usec_whole", (1, -1000000))):
        buf = timeval(*t)
        result[name] = raw(NR_SELECT, fa + 1, addr(fdset(fa)), 0, 0, addr(buf))
    buf = timeval(0, 50000)
    result["expired"] = [raw(NR_SELECT, fa + 1, addr(fdset(fa)), 0, 0, addr(buf)), tv(buf)]
    buf = timeval(3, 0)
    wr = fdset(fa)
    got = raw(NR_SELECT, fa + 1, 0, addr(wr), 0, addr(buf))
    sec, usec = tv(buf)
    result["ready_left"] = [got, 2 <= sec <= 3 and 0 <= usec < 1000000 and (sec, usec) != (3, 0)]
    buf = timeval(0, 1500000)
    got = raw(NR_SELECT, fa + 1, 0, addr(fdset(fa)), 0, addr(buf))
    result["usec_carry"] = [got, tv(buf)[0]]
    buf = timeval(0, 0)
    result["zero"] = [raw(NR_SELECT, fa + 1, addr(fdset(fa)), 0, 0, addr(buf)), tv(buf)]
    # a pipe whose writer closed: POLLHUP is in no write set (POLLOUT_SET), so select
    # waits out its timeout for it; poll counts the POLLHUP
    r, w = os.pipe()
    os.close(w)
    buf = timeval(0, 50000)
    wr = fdset(r)
    result["hup_not_writable"] = [raw(NR_SELECT, r + 1, 0, addr(wr), 0, addr(buf)), tv(buf),
                                  members(wr)]
    result["hup_polled"] = poll([(r, POLLOUT)], 50)
    os.close(r)
    # EBADF after the timeout was taken: the time left is written back all the same
    closed = os.dup(fa)
    os.close(closed)
    buf = timeval(5, 0)
    got = raw(NR_SELECT, closed + 1, addr(fdset(closed)), 0, 0, addr(buf))
    result["ebadf_left"] = [got, tv(buf)[0] in (4, 5) and tv(buf) != (5, 0)]
    c.close()
    a.close()
    return result


@scenario
def pselect6_and_ppoll():
    # do_pselect() and sys_ppoll(): the timespec checked (EINVAL for nsec out of range),
    # read (EFAULT), the time left written back; with a signal mask too (the host runs
    # those under sysemu: README, Limitations).
    c, a = tcp_pair()
    fa = a.fileno()
    result = {}
    ts = timeval(0, 40_000_000)
    result["pselect6_expired"] = [raw(NR_PSELECT6, fa + 1, addr(fdset(fa)), 0, 0, addr(ts), 0),
                                  tv(ts)]
    ts = timeval(0, 1_000_000_000)
    result["pselect6_bad_nsec"] = raw(NR_PSELECT6, fa + 1, addr(fdset(fa)), 0, 0, addr(ts), 0)
    result["pselect6_efault"] = raw(NR_PSELECT6, fa + 1, addr(fdset(fa)), 0, 0, UNMAPPED, 0)
    ts = timeval(0, 30_000_000)
    fds = pollfds((fa, POLLIN))
    result["ppoll_expired"] = [raw(NR_PPOLL, addr(fds), 1, addr(ts), 0, 8), tv(ts)]
    ts = timeval(-1, 0)
    result["ppoll_bad_sec"] = raw(NR_PPOLL, addr(fds), 1, addr(ts), 0, 8)
    result["ppoll_efault"] = raw(NR_PPOLL, addr(fds), 1, UNMAPPED, 0, 8)
    result["ppoll_null_timeout"] = raw(NR_PPOLL, addr(pollfds((fa, POLLOUT))), 1, 0, 0, 8)
    c.send(b"q")
    ts = timeval(3, 0)
    fds = pollfds((fa, POLLIN))
    got = raw(NR_PPOLL, addr(fds), 1, addr(ts), 0, 8)
    result["ppoll_ready"] = [got, revents(fds, 1), 2 <= tv(ts)[0] <= 3 and tv(ts) != (3, 0)]
    mask = ctypes.c_uint64(0)
    ts = timeval(3, 0)
    fds = pollfds((fa, POLLIN))
    got = raw(NR_PPOLL, addr(fds), 1, addr(ts), ctypes.addressof(mask), 8)
    result["ppoll_sigmask"] = [got, revents(fds, 1)]
    c.close()
    a.close()
    return result


def _interrupted(call, restart: bool):
    """`call()` while SIGALRM comes after 50 ms, with a handler installed without or with
    SA_RESTART: its result."""
    hits = []
    old = signal.signal(signal.SIGALRM, lambda *_: hits.append(1))
    signal.siginterrupt(signal.SIGALRM, not restart)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        got = call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return got


@scenario
def signal_interrupts_wait():
    # A signal with a handler ends poll/select/ppoll/pselect6 with EINTR, SA_RESTART or
    # not (ERESTARTNOHAND, ERESTART_RESTARTBLOCK); select writes back the time left.
    c, a = tcp_pair()
    fa = a.fileno()
    result = {}
    for restart in (False, True):
        key = "restart" if restart else "plain"
        fds = pollfds((fa, POLLIN))
        result[f"poll_{key}"] = _interrupted(lambda: raw(NR_POLL, addr(fds), 1, 3000), restart)
        buf = timeval(3, 0)
        result[f"select_{key}"] = _interrupted(
            lambda: raw(NR_SELECT, fa + 1, addr(fdset(fa)), 0, 0, addr(buf)), restart)
        result[f"ppoll_{key}"] = _interrupted(
            lambda: raw(NR_PPOLL, addr(fds), 1, 0, 0, 8), restart)
        ts = timeval(3, 0)
        result[f"pselect6_{key}"] = _interrupted(
            lambda: raw(NR_PSELECT6, fa + 1, addr(fdset(fa)), 0, 0, addr(ts), 0), restart)
    # the call after: not interrupted, answered as usual
    c.send(b"k")
    result["after"] = poll([(fa, POLLIN)], 2000)
    c.close()
    a.close()
    return result


@scenario
def wakeups():
    # A waiting poll/select wakes when a socket it polls gets data, when a pipe (the
    # host's) gets data, and when a connection is queued on a listener.
    c, a = tcp_pair()
    r, w = os.pipe()
    fa = a.fileno()

    def later(fn):
        timer = threading.Timer(0.05, fn)
        timer.start()
        return timer

    result = {}
    t = later(lambda: c.send(b"w"))
    result["socket"] = poll([(r, POLLIN), (fa, POLLIN)], 3000)
    t.join()
    a.recv(10)
    t = later(lambda: os.write(w, b"w"))
    rd = fdset(r, fa)
    buf = timeval(3, 0)
    result["pipe"] = [raw(NR_SELECT, max(r, fa) + 1, addr(rd), 0, 0, addr(buf)),
                      members(rd) == [r]]
    t.join()
    srv = socket.socket()
    srv.bind((LOOP, 0))
    srv.listen(4)
    t = later(lambda: socket.create_connection(srv.getsockname(), timeout=5).close())
    result["listener"] = poll([(srv.fileno(), POLLIN), (r, POLLOUT & 0)], 3000)
    t.join()
    for fd in (r, w):
        os.close(fd)
    for s in (c, a, srv):
        s.close()
    return result


if __name__ == "__main__":
    sys.exit(PROBE.main(sys.argv[1:]))
