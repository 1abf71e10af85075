"""The network's /proc files: the renderers against this host's own files, the ProcNet
registry, and open/openat/openat2 on in-memory user memory through run_model_call.

Linux: net/ipv4/proc.c, net/ipv4/tcp_ipv4.c (tcp4_seq_show, get_tcp4_sock),
net/ipv6/tcp_ipv6.c, fs/open.c (build_open_flags, do_sys_openat2), fs/namei.c (getname,
do_open), fs/proc/proc_sysctl.c.
"""
from __future__ import annotations

import errno as host_errno
import os
import select
import socket
import struct
from pathlib import Path

import pytest

from sysemu.abi.errno import Errno
from sysemu.arch.x86.entry import Syscalls, run_model_call
from sysemu.fs import procfs
from sysemu.fs.procfs import (O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_PATH, O_RDONLY,
                              O_RDWR, O_TRUNC, O_WRONLY, PROC, ProcFile)
from sysemu.kernel import sysctl
from sysemu.kernel.errors import HostPassthrough, SyscallError
from sysemu.kernel.syscalls import HANDLERS
from sysemu.kernel.task import CAP_NET_ADMIN, HostHooks, Kernel, Task
from sysemu.kernel.usermem import BufferMemory
from sysemu.net.proc import (TCP_FIELDS, TCPEXT_FIELDS, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV, TCP_TIME_WAIT, TcpRow,
                             clock_t, render_netstat, render_snmp, render_tcp)
from test_net_helpers import Env

NR_OPEN, NR_OPENAT, NR_OPENAT2 = 2, 257, 437
AT_FDCWD = -100
ROOT_CAPS = frozenset({CAP_NET_ADMIN, procfs.CAP_DAC_OVERRIDE})


def host_file(path: str) -> str:
    p = Path(path)
    if not p.exists():
        pytest.skip(f"{path} not on this host")
    return p.read_text()


# -- renderers against the host's files ---------------------------------------------------------

def header_lines(text: str, skip=("IcmpMsg:",)) -> list[str]:
    """The name lines (every other line) of a netstat/snmp file; IcmpMsg lines exist only
    for message types seen (icmpmsg_put), so they are data, not layout."""
    lines = [line for line in text.splitlines() if not line.startswith(skip)]
    return lines[0::2]


def test_netstat_headers_match_host():
    host = host_file("/proc/net/netstat")
    mine = render_netstat(None)
    assert header_lines(mine) == header_lines(host)
    assert mine.endswith("\n") and host.endswith("\n")
    for line in mine.splitlines()[1::2]:            # value lines: zeros, one per name
        group, *values = line.split(" ")
        assert set(values) == {"0"}


def test_snmp_headers_match_host():
    host = host_file("/proc/net/snmp")
    mine = render_snmp(None)
    assert header_lines(mine) == header_lines(host)
    assert "IcmpMsg" not in mine
    tcp_values = mine.splitlines()[5].split()
    host_tcp = [line for line in host.splitlines() if line.startswith("Tcp:")][1].split()
    assert tcp_values[:5] == host_tcp[:5] == ["Tcp:", "1", "200", "120000", "-1"]


def test_snmp_values_from_mib():
    mib = {"Tcp.CurrEstab": 3, "Tcp": {"ActiveOpens": 7}, "Udp.NoPorts": 2,
           "IcmpMsg.OutType3": 4, "IcmpMsg.InType8": 5}
    lines = render_snmp(mib).splitlines()
    tcp_names, tcp_values = lines[6].split(), lines[7].split()
    assert lines[4:6] == ["IcmpMsg: InType8 OutType3", "IcmpMsg: 5 4"]
    values = dict(zip(tcp_names, tcp_values))
    assert values["CurrEstab"] == "3" and values["ActiveOpens"] == "7"
    assert lines[9] == "Udp: 0 2 0 0 0 0 0 0 0"


def test_flat_mib_like_net():
    """sysemu.net's Net.mib: one flat dict of TcpExt and Tcp names."""
    assert not set(TCPEXT_FIELDS) & set(TCP_FIELDS)
    mib = {"ListenOverflows": 2, "ActiveOpens": 3, "CurrEstab": 1, "TW": 4}
    netstat = render_netstat(mib).splitlines()
    table = dict(zip(netstat[0].split(), netstat[1].split()))
    assert (table["ListenOverflows"], table["TW"]) == ("2", "4")
    snmp = render_snmp(mib).splitlines()
    tcp = dict(zip(snmp[4].split(), snmp[5].split()))
    assert (tcp["ActiveOpens"], tcp["CurrEstab"], tcp["RtoMax"]) == ("3", "1", "120000")
    udp = dict(zip(snmp[6].split(), snmp[7].split()))
    assert set(list(udp.values())[1:]) == {"0"}


def test_netstat_values_from_mib():
    class Mib:
        TcpExt = {"ListenOverflows": 4, "ListenDrops": 5}
    for mib in (Mib(), {"TcpExt.ListenOverflows": 4, "ListenDrops": 5}):
        names, values = render_netstat(mib).splitlines()[:2]
        table = dict(zip(names.split(), values.split()))
        assert table["ListenOverflows"] == "4" and table["ListenDrops"] == "5"
        assert table["SyncookiesSent"] == "0"


def test_tcp_headers_match_host():
    assert render_tcp([]).splitlines(keepends=True)[0] == \
        host_file("/proc/net/tcp").splitlines(keepends=True)[0]
    assert render_tcp([], v6=True).splitlines(keepends=True)[0] == \
        host_file("/proc/net/tcp6").splitlines(keepends=True)[0]


def host_rows(path: str, port: int, state: str = "0A") -> list[str]:
    """The host's lines of `path` whose local port is `port` in `state`."""
    return [line for line in Path(path).read_text().splitlines(keepends=True)[1:]
            if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == state]


def render_at(line: str, row: TcpRow, v6: bool) -> str:
    """`row` rendered as line number `sl` of the host's `line` (earlier rows are fillers)."""
    sl = int(line.split(":")[0])
    filler = TcpRow(local=("::" if v6 else "0.0.0.0", 1), state=TCP_LISTEN)
    return render_tcp([filler] * sl + [row], v6=v6).splitlines(keepends=True)[sl + 1]


def row_like_host(line: str, local: tuple[str, int], rx_queue: int) -> TcpRow:
    """A TcpRow for a listener with the identity fields (uid, inode, refcnt, pointer)
    taken from the host's line; everything else is sysemu's own defaults."""
    f = line.split()
    return TcpRow(local=local, state=TCP_LISTEN, rx_queue=rx_queue, uid=int(f[7]),
                  inode=int(f[9]), refcnt=int(f[10]), sk_addr=int(f[11], 16))


@pytest.mark.parametrize("family, addr, path", [
    (socket.AF_INET, "127.0.0.1", "/proc/net/tcp"),
    (socket.AF_INET6, "::1", "/proc/net/tcp6"),
])
def test_listener_row_matches_host(family, addr, path):
    """A real listener on this host with one connection waiting in its accept queue: its
    /proc line and sysemu's rendering of the same socket are identical (columns, padding,
    address byte order, state 0A, rx_queue = accept queue length)."""
    host_file(path)
    try:
        server = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        pytest.skip("no such address family here")
    with server:
        try:
            server.bind((addr, 0))
        except OSError:
            pytest.skip(f"cannot bind {addr}")
        server.listen(4)
        port = server.getsockname()[1]
        [before] = host_rows(path, port)
        v6 = path.endswith("6")
        assert render_at(before, row_like_host(before, (addr, port), 0), v6) == before

        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect((addr, port))
            ready, _, _ = select.select([server], [], [], 10)   # accept queue non-empty
            assert ready
            [after] = host_rows(path, port)
            assert after.split()[4] == "00000000:00000001"
            assert render_at(after, row_like_host(after, (addr, port), 1), v6) == after
            established = host_rows(path, client.getsockname()[1], "01")
            assert established, "the client's row is ESTABLISHED"
            f = established[0].split()
            row = TcpRow(local=(addr, client.getsockname()[1]), remote=(addr, port),
                         state=TCP_ESTABLISHED)
            g = render_tcp([row], v6=v6).splitlines()[1].split()
            assert g[1:4] == f[1:4]             # addresses, ports and state columns
            assert len(g) == len(f)


def test_tcp_address_byte_order():
    text = render_tcp([TcpRow(local=("127.0.0.1", 8080), remote=("10.1.2.3", 443))])
    assert " 0100007F:1F90 0302010A:01BB 01 " in text
    text6 = render_tcp([TcpRow(local=("::ffff:127.0.0.1", 80), remote=("::", 0))], v6=True)
    assert " 0000000000000000FFFF00000100007F:0050 " in text6


def test_tcp_special_rows():
    rows = [TcpRow(local=("127.0.0.1", 80), remote=("127.0.0.1", 5000), state=TCP_TIME_WAIT,
                   timer=(3, clock_t(59.5))),
            TcpRow(local=("127.0.0.1", 80), remote=("127.0.0.1", 5001), state=TCP_SYN_RECV,
                   timer=(1, clock_t(1)), retransmits=2, uid=1000)]
    lines = render_tcp(rows).splitlines()
    assert lines[1].split()[3:] == ["06", "00000000:00000000", "03:0000173E", "00000000",
                                    "0", "0", "0", "1", "0000000000000000"]
    assert lines[2].split()[3:] == ["03", "00000000:00000000", "01:00000064", "00000002",
                                    "1000", "0", "0", "0", "0000000000000000"]
    assert all(len(line) == 149 for line in lines)


# -- the registry --------------------------------------------------------------------------------

@pytest.mark.parametrize("path, canonical", [
    ("/proc/sys/net/core/somaxconn", "/proc/sys/net/core/somaxconn"),
    ("/proc/sys/net/ipv4/ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range"),
    ("/proc/net/tcp", "/proc/net/tcp"),
    ("/proc/self/net/tcp6", "/proc/net/tcp6"),
    ("/proc/4242/net/snmp", "/proc/net/snmp"),
    ("/proc/thread-self/net/netstat", "/proc/net/netstat"),
    ("/proc/self/task/7/net/tcp", "/proc/net/tcp"),
    ("//proc/./net//tcp", "/proc/net/tcp"),
    ("/proc/sys/net/ipv4/./tcp_syn_retries", "/proc/sys/net/ipv4/tcp_syn_retries"),
])
def test_lookup_ours(path, canonical):
    entry = PROC.lookup(path)
    assert entry is not None and entry.path == canonical


@pytest.mark.parametrize("path", [
    "/etc/passwd", "/proc/net/raw", "/proc/sys/net/ipv4/tcp_rmem", "proc/net/tcp",
    "/proc/net/../net/tcp", "/proc/0123/net/tcp", "/proc/abc/net/tcp", "/proc/sys/net",
    "/proc/net", "/", "/proc/self/task/net/tcp",
])
def test_lookup_not_ours(path):
    assert PROC.lookup(path) is None


def test_every_sysctl_has_a_file():
    for d in sysctl.SYSCTLS.values():
        assert PROC.lookup(d.path).render(Kernel()) == sysctl.sysctl_format(Kernel(), d.name).encode()


def test_net_entries_use_the_model():
    """A listener with two connections queued: its row (the inode from the host hooks),
    then the four established socks; CurrEstab counts them."""
    assert PROC.lookup("/proc/net/tcp").render(Kernel()).count(b"\n") == 1    # header only
    env = Env()
    lfd = env.socket()
    assert env.bind(lfd, "127.0.0.1", 8080) == 0 and env.listen(lfd, 5) == 0
    for _ in range(2):
        assert env.connect(env.socket(), "127.0.0.1", 8080) == 0
    env.hooks.inodes[env.sk(lfd)] = 99
    tcp = PROC.lookup("/proc/net/tcp").render(env.kernel).decode().splitlines()
    fields = tcp[1].split()
    assert fields[1:5] == ["0100007F:1F90", "00000000:0000", "0A", "00000000:00000002"]
    assert fields[9] == "99"
    assert [line.split()[3] for line in tcp[2:]] == ["01"] * 4
    assert PROC.lookup("/proc/net/tcp6").render(env.kernel).count(b"\n") == 1
    snmp = PROC.lookup("/proc/net/snmp").render(env.kernel).decode().splitlines()
    assert dict(zip(snmp[4].split(), snmp[5].split()))["CurrEstab"] == "4"


# -- open / openat / openat2 through run_model_call --------------------------------------------------

class Recorder(HostHooks):
    def __init__(self):
        self.files = []

    def new_file(self, file):
        self.files.append(file)


@pytest.fixture
def sc():
    return Syscalls(handlers={n: HANDLERS[n] for n in ("open", "openat", "openat2")})


def make_task(caps=ROOT_CAPS) -> Task:
    kernel = Kernel()
    sysctl.register_defaults(kernel)
    kernel.host = Recorder()
    return Task(kernel, mem=BufferMemory(), caps=caps)


def openat(sc, task, path, flags=O_RDONLY, dfd=AT_FDCWD):
    addr = task.mem.alloc(path.encode() + b"\0") if isinstance(path, str) else path
    return run_model_call(sc, task, NR_OPENAT, dfd & 0xFFFFFFFF, addr, flags, 0)


def proc_file(task, fd) -> ProcFile:
    return task.files.lookup(fd).private_data


@pytest.mark.parametrize("path, start", [
    ("/proc/sys/net/core/somaxconn", b"4096\n"),
    ("/proc/sys/net/ipv4/ip_local_port_range", b"32768\t60999\n"),
    ("/proc/self/net/tcp", b"  sl  local_address"),
    ("/proc/1/net/tcp6", b"  sl  local_address"),
    ("/proc/thread-self/net/netstat", b"TcpExt: SyncookiesSent"),
    ("//proc/./net/snmp", b"Ip: Forwarding"),
])
def test_openat_ours(sc, path, start):
    task = make_task()
    fd = openat(sc, task, path, O_RDONLY | O_CLOEXEC)
    assert fd == 0
    assert fd in task.files.cloexec
    pf = proc_file(task, fd)
    assert pf.content.startswith(start)
    assert task.kernel.host.files == [task.files.lookup(fd)]


def test_open_and_openat_same(sc):
    task = make_task()
    addr = task.mem.alloc(b"/proc/net/tcp\0")
    assert run_model_call(sc, task, NR_OPEN, addr, O_RDONLY, 0) == 0
    assert openat(sc, task, "/proc/net/tcp") == 1
    assert 0 not in task.files.cloexec


@pytest.mark.parametrize("path, dfd, flags", [
    ("/etc/hostname", AT_FDCWD, O_RDONLY),
    ("/proc/net/raw", AT_FDCWD, O_RDONLY),
    ("/proc/sys/net/ipv4/tcp_rmem", AT_FDCWD, O_RDONLY),
    ("proc/net/tcp", AT_FDCWD, O_RDONLY),          # relative: never ours
    ("net/tcp", 3, O_RDONLY),                      # relative to a dirfd
    ("tcp", 5, O_WRONLY),
    ("/proc/net/../net/tcp", AT_FDCWD, O_RDONLY),
    ("/proc/net/tcp", AT_FDCWD, O_PATH),           # a path fd: the host's
])
def test_openat_not_ours(sc, path, dfd, flags):
    task = make_task()
    with pytest.raises(HostPassthrough):
        openat(sc, task, path, flags, dfd)
    assert task.kernel.host.files == []


def test_absolute_path_ignores_dirfd(sc):
    task = make_task()
    assert openat(sc, task, "/proc/net/tcp", O_RDONLY, dfd=77) == 0


def test_path_errors(sc):
    task = make_task()
    mem = task.mem
    assert openat(sc, task, 0) == -Errno.EFAULT                          # NULL
    assert openat(sc, task, 0xdead0000) == -Errno.EFAULT                 # unmapped
    no_nul = mem.alloc(b"/proc/net/tcp")          # mapped, but the NUL would be past it
    assert openat(sc, task, no_nul) == -Errno.EFAULT
    assert openat(sc, task, "") == -Errno.ENOENT
    assert openat(sc, task, "/" + "a" * 4095) == -Errno.ENAMETOOLONG     # no NUL in 4096
    assert openat(sc, task, "/" * 4096) == -Errno.ENAMETOOLONG
    with pytest.raises(HostPassthrough):                                  # 4095 + NUL: fine
        openat(sc, task, "/" + "a" * 4094)
    long_ours = "/proc" + "/" * (4095 - len("/procnet/tcp")) + "net/tcp"
    assert len(long_ours) == 4095
    assert openat(sc, task, long_ours) == 0
    assert task.kernel.host.files and len(task.files.fds) == 1


def test_path_across_page_boundary(sc):
    task = make_task()
    path = b"/proc/net/tcp\0"
    addr = task.mem.map(0x2000, addr=0x40000)
    task.mem.write(0x41000 - 5, path)
    assert openat(sc, task, 0x41000 - 5) == 0


@pytest.mark.parametrize("path, flags, err", [
    ("/proc/net/tcp", O_WRONLY, Errno.EACCES),
    ("/proc/net/tcp6", O_RDWR, Errno.EACCES),
    ("/proc/net/tcp", O_RDONLY | O_TRUNC, 0),    # MAY_WRITE (root passes), no FMODE_WRITE
    ("/proc/net/tcp", O_ACCMODE, 0),             # MAY_WRITE, but OPEN_FMODE(3) is 0
    ("/proc/net/snmp", O_WRONLY, 0),             # single_open_net(): opens; write fails
    ("/proc/net/tcp", O_WRONLY | O_CREAT | O_EXCL, Errno.EEXIST),
    ("/proc/net/tcp", O_RDONLY | O_DIRECTORY, Errno.ENOTDIR),
    ("/proc/net/tcp/", O_RDONLY, Errno.ENOTDIR),
    ("/proc/net/tcp/.", O_RDONLY, Errno.ENOTDIR),
    ("/proc/net/tcp/", O_WRONLY | O_CREAT, Errno.EISDIR),
    ("/proc/sys/net/core/somaxconn", O_RDONLY | O_DIRECTORY, Errno.ENOTDIR),
    ("/proc/sys/net/core/somaxconn", O_WRONLY | O_CREAT | O_EXCL, Errno.EEXIST),
    ("/proc/sys/net/core/somaxconn", O_RDONLY | O_CREAT | O_DIRECTORY, Errno.EINVAL),
])
def test_open_errors_as_root(sc, path, flags, err):
    """The same opens on the host (as root; nothing is ever written) give the same result;
    the host comparison runs when the tests run as root. err 0: the open succeeds."""
    task = make_task(ROOT_CAPS)
    assert openat(sc, task, path, flags) == (-err if err else 0)
    if os.geteuid() != 0 or not Path(path.rstrip("/.")).exists():
        return
    try:
        os.close(os.open(path, flags))
        host = 0
    except OSError as exc:
        host = exc.errno
    assert host == int(err), host_errno.errorcode.get(host, host)


def test_unprivileged_cannot_open_sysctl_for_write(sc):
    task = make_task(caps=frozenset())
    assert openat(sc, task, "/proc/sys/net/core/somaxconn", O_WRONLY) == -Errno.EACCES
    assert openat(sc, task, "/proc/net/snmp", O_WRONLY) == -Errno.EACCES
    assert openat(sc, task, "/proc/sys/net/core/somaxconn", O_RDONLY) == 0


def test_root_opens_snmp_for_write_but_write_fails(sc):
    """Linux 6.18, as root: open("/proc/net/snmp", O_WRONLY) succeeds and write() fails
    with EACCES."""
    task = make_task(ROOT_CAPS)
    fd = openat(sc, task, "/proc/net/snmp", O_WRONLY | O_TRUNC)
    assert fd == 0
    with pytest.raises(SyscallError) as exc:
        proc_file(task, fd).write(b"1\n")
    assert exc.value.errno == Errno.EACCES


def test_write_sysctl_and_read_back(sc):
    task = make_task()
    fd = openat(sc, task, "/proc/sys/net/core/somaxconn", O_WRONLY | O_CREAT | O_TRUNC)
    assert fd == 0
    pf = proc_file(task, fd)
    assert pf.write(b"1000\n") == 5
    assert sysctl.sysctl_get(task.kernel, "net.core.somaxconn") == 1000
    assert pf.write(b"7\n") == 2            # not at offset 0: ignored (sysctl_writes_strict)
    assert sysctl.sysctl_get(task.kernel, "net.core.somaxconn") == 1000
    again = openat(sc, task, "/proc/sys/net/core/somaxconn")
    assert proc_file(task, again).content == b"1000\n"


def test_write_bad_value_is_einval(sc):
    task = make_task()
    fd = openat(sc, task, "/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY)
    pf = proc_file(task, fd)
    for bad in (b"60999 32768\n", b"80 90\n", b"x\n"):
        with pytest.raises(SyscallError) as exc:
            pf.write(bad)
        assert exc.value.errno == Errno.EINVAL
    assert pf.write(b"40000 50000\n") == 12
    assert sysctl.sysctl_get(task.kernel, "net.ipv4.ip_local_port_range") == (40000, 50000)
    assert pf.write(b"") == 0


@pytest.mark.parametrize("flags", [O_RDONLY, O_RDONLY | O_TRUNC, O_ACCMODE])
def test_write_without_fmode_write_is_ebadf(sc, flags):
    task = make_task()
    fd = openat(sc, task, "/proc/sys/net/core/somaxconn", flags)
    with pytest.raises(SyscallError) as exc:
        proc_file(task, fd).write(b"1\n")
    assert exc.value.errno == Errno.EBADF
    assert sysctl.sysctl_get(task.kernel, "net.core.somaxconn") == 4096


def test_cancelled_open_installs_nothing(sc):
    task = make_task()
    addr = task.mem.alloc(b"/proc/net/tcp\0")
    assert run_model_call(sc, task, NR_OPENAT, AT_FDCWD & 0xFFFFFFFF, addr, 0, 0,
                          accepted=False) == -Errno.EINTR
    assert task.files.fds == {}


# -- openat2 ----------------------------------------------------------------------------------

def openat2(sc, task, path, flags=0, mode=0, resolve=0, extra=b"", usize=None):
    addr = task.mem.alloc(path.encode() + b"\0")
    how = struct.pack("<QQQ", flags, mode, resolve) + extra
    how_addr = task.mem.alloc(how)
    return run_model_call(sc, task, NR_OPENAT2, AT_FDCWD & 0xFFFFFFFF, addr, how_addr,
                          len(how) if usize is None else usize)


def test_openat2(sc):
    task = make_task()
    assert openat2(sc, task, "/proc/net/tcp", O_RDONLY | O_CLOEXEC) == 0
    assert 0 in task.files.cloexec
    assert openat2(sc, task, "/proc/net/tcp", extra=b"\0" * 8) == 1     # larger, zeroed: ok
    assert openat2(sc, task, "/proc/net/tcp", usize=16) == -Errno.EINVAL
    assert openat2(sc, task, "/proc/net/tcp", extra=b"\1" + b"\0" * 7) == -Errno.E2BIG
    assert openat2(sc, task, "/proc/net/tcp", usize=4097) == -Errno.E2BIG
    assert openat2(sc, task, "/proc/net/tcp", flags=1 << 40) == -Errno.EINVAL
    assert openat2(sc, task, "/proc/net/tcp", mode=0o644) == -Errno.EINVAL
    assert openat2(sc, task, "/proc/net/tcp", resolve=0x40) == -Errno.EINVAL
    assert openat2(sc, task, "/proc/net/tcp", resolve=0x18) == -Errno.EINVAL
    assert openat2(sc, task, "/proc/net/tcp", O_WRONLY) == -Errno.EACCES
    with pytest.raises(HostPassthrough):
        openat2(sc, task, "/proc/net/tcp", resolve=0x04)
    with pytest.raises(HostPassthrough):
        openat2(sc, task, "/etc/hostname")
