"""Differential: a C probe runs under the real strace; sysemu's Tracer renders the same
calls (same argument values and memory bytes, the result strace saw) and must print the
same line, character for character. Skipped where strace or ptrace is unavailable."""
from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess

import pytest

from sysemu.abi.errno import Errno
from sysemu.kernel.usermem import BufferMemory
from sysemu.trace.strace import Tracer

PROBE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(void)
{
    alarm(20);                 /* bounded even if a call were to block */
    int one = 1, err = -1;
    socklen_t len = 4;
    struct linger lg = {1, 5};
    struct sockaddr_in a = {0};
    struct sockaddr_un un = {0};
    struct sockaddr_in6 a6 = {0};
    static const char msg[] = "hello\n\0\1\"\\AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, 4);
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    bind(s, (void *)&a, sizeof a);
    bind(s, (void *)&a, sizeof a);
    listen(s, 511);
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    shutdown(s, SHUT_WR);
    accept4(s, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    int u = socket(AF_UNIX, SOCK_DGRAM, 0);
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, "\0sysemu-trace-probe", 19);
    bind(u, (void *)&un, 2 + 19);
    sendto(u, msg, 50, MSG_DONTWAIT | MSG_NOSIGNAL, (void *)&un, 2 + 19);
    int s6 = socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(1);
    a6.sin6_addr = in6addr_loopback;
    connect(s6, (void *)&a6, sizeof a6);
    openat(AT_FDCWD, "/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC);
    return 0;
}
"""


def _result(line: str) -> int:
    m = re.search(r" = (-1 (E[A-Z0-9]+) \(.*\)|0x[0-9a-f]+|\d+)(?: \(.*\))?$", line)
    assert m, line
    return -int(Errno[m.group(2)]) if m.group(2) else int(m.group(1), 0)


def run_under_strace(cc, tmp_path, source: str, expr: str) -> list[str]:
    """The probe's lines as the real strace prints them (no signal/exit lines)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace not installed")
    exe = cc(source)
    log = tmp_path / "strace.log"
    proc = subprocess.Popen([strace, "-qq", "-e", expr, "-o", str(log), str(exe)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0 or not log.exists():
        pytest.skip(f"strace cannot trace here: {stderr.strip()[:200]}")
    return [ln for ln in log.read_text().splitlines() if not ln.startswith(("---", "+++"))]


def test_tracer_lines_equal_real_strace(cc, tmp_path):
    real = run_under_strace(cc, tmp_path, PROBE, "trace=%net,openat")
    real = [ln for ln in real if not ln.startswith("openat") or "somaxconn" in ln]
    assert len(real) == 16, real

    mem = BufferMemory()
    ONE = mem.alloc(struct.pack("<i", 1))
    LINGER = mem.alloc(struct.pack("<ii", 1, 5))
    SIN = mem.alloc(struct.pack("<H", 2) + b"\0\0" + bytes([127, 0, 0, 1]) + bytes(8))
    ERR, LEN = mem.alloc(struct.pack("<i", -1)), mem.alloc(struct.pack("<i", 4))
    SUN = mem.alloc(struct.pack("<H", 1) + b"\0sysemu-trace-probe")
    MSG = mem.alloc(b"hello\n\0\1\"\\" + b"A" * 40)
    SIN6 = mem.alloc(struct.pack("<H", 10) + struct.pack(">HI", 1, 0) + bytes(15) + b"\1"
                     + bytes(4))
    PATH = mem.alloc(b"/proc/sys/net/core/somaxconn\0")
    s, u, s6 = (_result(real[i]) for i in (0, 10, 13))
    calls = [
        ("socket", (2, 1 | 0o2000000 | 0o4000, 0)),
        ("setsockopt", (s, 1, 2, ONE, 4)),
        ("setsockopt", (s, 6, 1, ONE, 4)),
        ("setsockopt", (s, 1, 13, LINGER, 8)),
        ("bind", (s, SIN, 16)),
        ("bind", (s, SIN, 16)),
        ("listen", (s, 511)),
        ("getsockopt", (s, 1, 4, ERR, LEN)),
        ("shutdown", (s, 1)),
        ("accept4", (s, 0, 0, 0o2000000 | 0o4000)),
        ("socket", (1, 2, 0)),
        ("bind", (u, SUN, 21)),
        ("socket", (10, 1, 6)),
        ("connect", (s6, SIN6, 28)),
        ("openat", (-100, PATH, 0o2000000)),
    ]
    # sendto's line (after the unix bind) is checked separately: its result varies
    out = io.StringIO()
    tracer = Tracer(out, show_pid=False)
    real_lines = [ln for ln in real if not ln.startswith("sendto")]
    for (name, args), line in zip(calls, real_lines):
        result = _result(line)
        if name == "getsockopt" and result == 0:
            tracer.enter(1, name, args, mem)
            mem.write(ERR, struct.pack("<i", 0))
            tracer.exit(1, result, mem)
        else:
            tracer.record(1, name, args, mem, result)
    assert out.getvalue().splitlines() == real_lines
    sendto = next(ln for ln in real if ln.startswith("sendto"))
    out = io.StringIO()
    Tracer(out, show_pid=False).record(1, "sendto", (u, MSG, 50, 0x40 | 0x4000, SUN, 21),
                                       mem, _result(sendto))
    assert out.getvalue().rstrip("\n") == sendto


FD_PROBE = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    alarm(20);
    int m = memfd_create("p", 0);
    write(m, "abcdef", 6);
    int p[2];
    pipe2(p, O_CLOEXEC | O_NONBLOCK);
    write(p[1], "x", 1);
    struct pollfd fds[2] = {{p[0], POLLIN | POLLPRI, 0}, {p[1], POLLOUT, 0}};
    poll(fds, 2, 100);
    struct pollfd none[1] = {{-1, POLLIN, 0}};
    poll(none, 1, 0);
    fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, O_NONBLOCK | O_APPEND);
    fcntl(p[0], F_GETFD);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[0], F_DUPFD_CLOEXEC, 10);
    fcntl(p[0], 1234, 5);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {EPOLLIN | EPOLLET | EPOLLRDHUP, {.u64 = 0x100000007ULL}};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL);
    struct epoll_event out[4];
    epoll_wait(ep, out, 4, 0);
    int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    off_t off = 0;
    sendfile(p[1], m, &off, 3);
    syscall(SYS_close_range, 20, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    ppoll(fds, 1, NULL, &ss);
    return e < 0;
}
"""


def test_fd_calls_equal_real_strace(cc, tmp_path):
    real = run_under_strace(cc, tmp_path, FD_PROBE, "trace=pipe2,poll,ppoll,fcntl,epoll_create1,"
                            "epoll_ctl,epoll_wait,eventfd2,sendfile,close_range")
    assert len(real) == 17, real
    rfd, wfd = map(int, re.match(r"pipe2\(\[(\d+), (\d+)\]", real[0]).groups())
    ep = _result(real[9])
    memfd = int(re.match(r"sendfile\(\d+, (\d+),", real[14]).group(1))
    mem = BufferMemory()
    PIPE = mem.map(8)
    FDS = mem.alloc(struct.pack("<ihh", rfd, 0x3, 0) + struct.pack("<ihh", wfd, 0x4, 0))
    NONE = mem.alloc(struct.pack("<ihh", -1, 0x1, 0))
    EV = mem.alloc(struct.pack("<IQ", 0x1 | 0x2000 | (1 << 31), 0x100000007))
    OUT = mem.map(48)
    OFF = mem.alloc(struct.pack("<q", 0))
    SIGS = mem.alloc(struct.pack("<Q", (1 << 1) | (1 << 14)))
    # what the kernel writes back, per call index
    effects = {0: (PIPE, struct.pack("<ii", rfd, wfd)),
               1: (FDS, struct.pack("<ihh", rfd, 0x3, 0x1) + struct.pack("<ihh", wfd, 0x4, 0x4)),
               14: (OFF, struct.pack("<q", 3)),
               16: (FDS, struct.pack("<ihh", rfd, 0x3, 0x1))}
    calls = [
        ("pipe2", (PIPE, 0o2000000 | 0o4000)),
        ("poll", (FDS, 2, 100)),
        ("poll", (NONE, 1, 0)),
        ("fcntl", (rfd, 3)),
        ("fcntl", (rfd, 4, 0o4000 | 0o2000)),
        ("fcntl", (rfd, 1)),
        ("fcntl", (rfd, 2, 1)),
        ("fcntl", (rfd, 1030, 10)),
        ("fcntl", (rfd, 1234, 5)),
        ("epoll_create1", (0o2000000,)),
        ("epoll_ctl", (ep, 1, rfd, EV)),
        ("epoll_ctl", (ep, 2, rfd, 0)),
        ("epoll_wait", (ep, OUT, 4, 0)),
        ("eventfd2", (0, 0o2000000 | 0o4000)),
        ("sendfile", (wfd, memfd, OFF, 3)),
        ("close_range", (20, 0xFFFFFFFF, 4)),
        ("ppoll", (FDS, 1, 0, SIGS, 8)),
    ]
    out = io.StringIO()
    tracer = Tracer(out, show_pid=False)
    for i, ((name, args), line) in enumerate(zip(calls, real)):
        tracer.enter(1, name, args, mem)
        if i in effects:
            mem.write(*effects[i])
        tracer.exit(1, _result(line), mem)
    assert out.getvalue().splitlines() == real
