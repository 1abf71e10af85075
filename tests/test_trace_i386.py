"""`sysemu run --strace` on i386 programs, against the real strace.

strace shows socketcall(2) as the call it stands for (`socket(AF_INET, SOCK_STREAM,
IPPROTO_IP) = 3`), its arguments read from the block as 32-bit words, and decodes the
32-bit layouts (compat msghdr, iovec, cmsghdr, mmsghdr, old_timespec32). The probe
(tests/c/socketcall32.c, gcc -m32 -static) runs under both; lines compare after the
addresses, ports and pid prefixes that differ between runs are masked. A call sysemu
leaves to the host (send, recv ...) traces with `= ?` and without the arguments only the
exit shows; its name and its entry-decoded arguments must still be strace's."""
from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import sysemu.net  # noqa: F401  (registers the handlers)
from sysemu.arch.x86.entry import Syscalls
from sysemu.host.tracing import trace_plan
from sysemu.kernel.usermem import BufferMemory
from sysemu.trace.strace import Tracer, socket_subcall

PROBE = Path(__file__).parent / "c" / "socketcall32.c"

TIMEOUT = 60


@pytest.fixture(scope="module")
def probe32(cc32):
    return cc32(PROBE)
# calls strace prints whole on entry: their line is strace's even when the host ran them
ENTRY_DECODED = {"send", "sendto", "sendmsg", "socket", "bind", "connect", "listen",
                 "shutdown", "setsockopt"}


def _strace(argv: list[str], expr: str, tmp_path) -> list[str]:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace not installed")
    log = tmp_path / "strace.log"
    proc = subprocess.run([strace, "-qq", "-e", expr, "-o", str(log), *argv],
                          capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode != 0 or not log.exists():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    return [ln for ln in log.read_text().splitlines() if not ln.startswith(("---", "+++"))]


def _sysemu(sysemu_bin, argv: list[str], expr: str, tmp_path) -> list[str]:
    log = tmp_path / "sysemu.log"
    proc = subprocess.run([str(sysemu_bin), "run", f"--strace={expr}", "-o", str(log), "--",
                           *argv], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [ln for ln in log.read_text().splitlines()
            if not ln.startswith(("---", "+++")) and "execve(" not in ln]


def _norm(line: str) -> str:
    line = re.sub(r"^\[pid\s+\d+\] ", "", line)
    line = re.sub(r"0x[0-9a-f]{5,}", "ADDR", line)
    line = re.sub(r"htons\(\d+\)", "htons(P)", line)
    line = re.sub(r'sa_data="[^"]*"', "sa_data=D", line)
    line = re.sub(r" \(left \{[^)]*\}\)$", "", line)         # time left: timing
    return re.sub(r"\)\s+= ", ") = ", line)


def _name(line: str) -> str:
    return line.split("(", 1)[0]


def _compare(real: list[str], ours: list[str]) -> int:
    """Same calls in the same order; a line whose result sysemu knows is strace's line;
    an entry-decoded call sysemu passed on is strace's up to its result. Returns how many
    lines compared whole."""
    real, ours = [_norm(x) for x in real], [_norm(x) for x in ours]
    assert [_name(x) for x in ours] == [_name(x) for x in real], (real, ours)
    whole = 0
    for theirs, mine in zip(real, ours):
        if not mine.endswith(") = ?"):
            assert mine == theirs
            whole += 1
        elif _name(mine) in ENTRY_DECODED:
            assert mine[:-len(" = ?")] == theirs.rsplit(" = ", 1)[0]
    return whole


def test_socketcall_net_trace_equals_strace(probe32, sysemu_bin, tmp_path):
    real = _strace([str(probe32), "socketcall"], "trace=%net", tmp_path)
    assert real[0] == "socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3", real[:3]
    assert not any(x.startswith("socketcall(") for x in real)
    ours = _sysemu(sysemu_bin, [str(probe32), "socketcall"], "%net", tmp_path)
    assert _compare(real, ours) >= 50


def test_direct_i386_net_trace_equals_strace(probe32, sysemu_bin, tmp_path):
    real = _strace([str(probe32), "direct"], "trace=%net", tmp_path)
    ours = _sysemu(sysemu_bin, [str(probe32), "direct"], "%net", tmp_path)
    assert _compare(real, ours) >= 50


def test_undecodable_socketcalls_equal_strace(probe32, sysemu_bin, tmp_path):
    """Call numbers outside 1..20 and unreadable blocks stay `socketcall(...)`, the only
    lines `-e trace=socketcall` selects."""
    real = _strace([str(probe32), "socketcall"], "trace=socketcall", tmp_path)
    ours = _sysemu(sysemu_bin, [str(probe32), "socketcall"], "socketcall", tmp_path)
    assert len(real) == 10 and real[3].startswith("socketcall(-2147483647, "), real
    assert [_norm(x) for x in ours] == [_norm(x) for x in real]


def test_named_set_selects_the_socketcall(probe32, sysemu_bin, tmp_path):
    real = _strace([str(probe32), "socketcall"], "trace=socket,accept", tmp_path)
    ours = _sysemu(sysemu_bin, [str(probe32), "socketcall"], "socket,accept", tmp_path)
    assert {_name(x) for x in real} == {"socket", "accept"}
    assert [_norm(x) for x in ours] == [_norm(x) for x in real]


def test_int80_calls_decode_as_strace(probe32, sysemu_bin, tmp_path):
    """Ordinary i386 calls (int 0x80 write, openat, fcntl64) under --strace=SET."""
    real = _strace([str(probe32), "direct"], "trace=write,openat,fcntl64", tmp_path)
    ours = _sysemu(sysemu_bin, [str(probe32), "direct"], "write,openat,fcntl64", tmp_path)
    assert [_name(x) for x in real][:3] == ["write", "write", "write"]
    real, ours = [_norm(x) for x in real], [_norm(x) for x in ours]
    assert len(real) == len(ours)
    for theirs, mine in zip(real, ours):
        if mine.endswith(") = ?"):
            assert mine[:-len(" = ?")] == theirs.rsplit(" = ", 1)[0]
        else:
            assert mine == theirs


MISC32 = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void)
{
    alarm(20);
    int p[2];
    pipe2(p, O_CLOEXEC);
    struct iovec iov[2] = {{"de", 2}, {"fgh", 3}};
    writev(p[1], iov, 2);
    fd_set rfds;
    FD_ZERO(&rfds);
    FD_SET(p[0], &rfds);
    struct { int sec, usec; } tv = {1, 500};           /* old_timeval32 */
    syscall(SYS__newselect, p[0] + 1, &rfds, NULL, NULL, &tv);
    struct pollfd pfd = {p[0], POLLIN, 0};
    struct { int sec, nsec; } ts = {2, 7};             /* old_timespec32 */
    syscall(SYS_ppoll, &pfd, 1, &ts, NULL, 8);
    struct { long long sec, nsec; } ts64 = {3, 9};
    syscall(SYS_ppoll_time64, &pfd, 1, &ts64, NULL, 8);
    struct { int sec, nsec; } pts = {0, 100};
    syscall(SYS_pselect6, p[0] + 1, &rfds, NULL, NULL, &pts, NULL);
    int fd = open("/proc/self/cmdline", O_RDONLY);
    int off32 = 5;                                     /* i386 sendfile: a 32-bit off_t */
    syscall(SYS_sendfile, p[1], fd, &off32, 2);
    long long off64 = 6;
    syscall(SYS_sendfile64, p[1], fd, &off64, 2);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {EPOLLIN, {.u64 = 0x100000007ULL}};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    return 0;
}
"""
MISC_SET = ("writev,_newselect,ppoll,ppoll_time64,pselect6,openat,sendfile,sendfile64,"
            "fcntl64,epoll_create1,epoll_ctl")


def test_i386_layouts_in_ordinary_calls_equal_strace(cc32, sysemu_bin, tmp_path):
    """The 32-bit timeval/timespec of _newselect, ppoll and pselect6 (64-bit for
    ppoll_time64), i386 sendfile's 32-bit offset, the compat iovec: the host runs these
    calls, so their lines end `= ?`; what strace prints on entry must be the same."""
    exe = cc32(MISC32)
    real = _strace([str(exe)], f"trace={MISC_SET}", tmp_path)
    ours = _sysemu(sysemu_bin, [str(exe)], MISC_SET, tmp_path)
    assert len(real) == len(ours) == 11, (real, ours)
    assert "{tv_sec=1, tv_usec=500}" in real[1] and "[5]" in real[6], real
    for theirs, mine in zip(map(_norm, real), map(_norm, ours)):
        assert mine.rsplit(" = ", 1)[0] == theirs.rsplit(" = ", 1)[0]


# -- the pure parts ----------------------------------------------------------------------

def test_socket_subcall_reads_the_block_as_32_bit_words():
    mem = BufferMemory()
    block = mem.alloc(struct.pack("<III", 2, 1, 0xFFFFFFFF))
    assert socket_subcall((1, block), mem) == ("socket", [2, 1, 0xFFFFFFFF])
    assert socket_subcall((4, block), mem) == ("listen", [2, 1])
    assert socket_subcall((0, block), mem) is None           # outside 1..20
    assert socket_subcall((21, block), mem) is None
    assert socket_subcall((0x80000001, block), mem) is None  # an int: negative
    assert socket_subcall((1 | 1 << 32, block), mem) == ("socket", [2, 1, 0xFFFFFFFF])
    assert socket_subcall((11, block), mem) is None          # 6 words: past the block
    assert socket_subcall((1, 0), mem) is None


def test_compat_msghdr_and_mmsghdr_decode():
    """The 28-byte compat_msghdr, 8-byte compat_iovec, 12-byte compat_cmsghdr (4-byte
    aligned) and 32-byte compat_mmsghdr."""
    mem = BufferMemory()
    data = mem.alloc(b"hello")
    iov = mem.alloc(struct.pack("<II", data, 5))
    cmsg = mem.alloc(struct.pack("<Iiii", 16, 1, 1, 7))
    msg = struct.pack("<IiIIIII", 0, 0, iov, 1, cmsg, 16, 0)
    vec = mem.alloc(msg + struct.pack("<I", 5) + msg + struct.pack("<I", 5))
    out = io.StringIO()
    tracer = Tracer(out, show_pid=False)
    tracer.record(1, "sendmsg", (3, vec, 0), mem, 5, abi="i386")
    tracer.record(1, "sendmmsg", (3, vec, 2, 0), mem, 1, abi="i386")
    hdr = ('{msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="hello", iov_len=5}], '
           'msg_iovlen=1, msg_control=[{cmsg_len=16, cmsg_level=SOL_SOCKET, '
           'cmsg_type=SCM_RIGHTS, cmsg_data=[7]}], msg_controllen=16, msg_flags=0}')
    lines = out.getvalue().splitlines()
    assert lines[0] == f"sendmsg(3, {hdr}, 0)".ljust(39) + " = 5"
    assert lines[1] == (f"sendmmsg(3, [{{msg_hdr={hdr}, msg_len=5}}, {{msg_hdr={hdr}}}], "
                        "2, 0) = 1")


def test_tracing_widens_i386_socketcall():
    syscalls = Syscalls()
    nr = next(s.nr for s in syscalls.ia32.slots if s.name == "socketcall")
    plain = dict(trace_plan(syscalls)["i386"])[nr]
    assert plain is not None                     # narrowed to the calls sysemu serves
    served = {cmp[0][2] for cmp in plain}
    assert 1 in served and 9 not in served       # SYS_SOCKET trapped, SYS_SEND not
    assert dict(trace_plan(syscalls, {"send"})["i386"])[nr] is None
    assert dict(trace_plan(syscalls, trap_all=True)["i386"])[nr] is None
    write32 = next(s.nr for s in syscalls.ia32.slots if s.name == "write")
    assert write32 not in dict(trace_plan(syscalls)["i386"])
    assert dict(trace_plan(syscalls, {"write"})["i386"])[write32] is None


def test_inject_on_a_socketcall_equals_strace(probe32, sysemu_bin, tmp_path):
    """--inject names a socketcall's call as strace's -e inject= does: the socketcall
    that stands for it fails, the others run."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace not installed")
    specs = ("shutdown:error=EPERM:when=1", "getsockopt:error=ENOPROTOOPT:when=1")
    argv = [str(probe32), "socketcall"]
    real = subprocess.run([strace, "-qq", "-o", "/dev/null",
                           *[a for spec in specs for a in ("-e", f"inject={spec}")], *argv],
                          capture_output=True, text=True, timeout=TIMEOUT)
    if real.returncode != 0:
        pytest.skip(f"strace cannot inject here: {real.stderr.strip()[:200]}")
    assert "shutdown -EPERM" in real.stdout.splitlines()
    ours = subprocess.run([str(sysemu_bin), "run", *[f"--inject={spec}" for spec in specs],
                           "--", *argv], capture_output=True, text=True, timeout=TIMEOUT)
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert ours.stdout == real.stdout
