"""Containment (SECURITY.md): attacks from inside `sysemu run`, each a mode of
tests/c/contain_attack.c. Where an attack can run natively it does, and must reach the
host listeners the test starts on 127.0.0.1 (TCP and UDP): that shows the attack works;
under sysemu nothing may reach them."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sysemu.host.procs import descendants
from test_e2e_differential import run as run_group

ATTACK = Path(__file__).parent / "c" / "contain_attack.c"
TIMEOUT = 60


@pytest.fixture(scope="module")
def attack_bin(cc):
    return cc(ATTACK, "-lpthread")


@pytest.fixture(scope="module")
def attack32_bin(cc):
    """The i386 build (gcc-multilib, in the Makefile's APT_PACKAGES)."""
    probe = subprocess.run(["gcc", "-m32", "-static", "-x", "c", "-o", os.devnull, "-"],
                           input="int main(void){return 0;}", capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("gcc -m32 -static cannot link: run `make deps` (gcc-multilib)")
    return cc(ATTACK, "-m32", "-static", "-lpthread")


def words(text: str) -> dict[str, str]:
    """`key=value key=value` on the last line -> dict."""
    lines = text.strip().splitlines()
    return dict(w.split("=", 1) for w in (lines[-1].split() if lines else []) if "=" in w)


def run(argv: list[str], sysemu_bin: Path | None, timeout: float = TIMEOUT,
        **kwargs) -> subprocess.CompletedProcess:
    """argv natively (sysemu_bin None) or under `sysemu run`; its process group is killed
    afterwards in any case."""
    full = ([str(sysemu_bin), "run", "--"] if sysemu_bin else []) + [str(a) for a in argv]
    return run_group(full, timeout, **kwargs)


class HostListeners:
    """A TCP listener and a UDP socket on the host's 127.0.0.1, and what reached them."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]

    def reached(self) -> tuple[int, int]:
        """(connections accepted, datagrams received) since the last call."""
        conns = datagrams = 0
        while True:
            try:
                conn, _ = self.tcp.accept()
            except BlockingIOError:
                break
            conn.close()
            conns += 1
        while True:
            try:
                self.udp.recv(65536)
            except BlockingIOError:
                break
            datagrams += 1
        return conns, datagrams

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def host():
    listeners = HostListeners()
    yield listeners
    listeners.close()


# -- 1. argument width ------------------------------------------------------------------

def test_int_argument_high_bits_reach_no_host_listener(attack_bin, sysemu_bin, host):
    """socket(0x100000002, ...) is socket(AF_INET, ...): the kernel reads an int."""
    native_tcp = words(run([attack_bin, "width_tcp", host.tcp_port], None).stdout)
    native_udp = words(run([attack_bin, "width_udp", host.udp_port], None).stdout)
    assert native_tcp == {"socket": "ok", "connect": "ok"}, native_tcp
    assert native_udp == {"socket": "ok", "sendto": "ok"}, native_udp
    assert host.reached() == (1, 1)
    got_tcp = run([attack_bin, "width_tcp", host.tcp_port], sysemu_bin)
    got_udp = run([attack_bin, "width_udp", host.udp_port], sysemu_bin)
    assert host.reached() == (0, 0), (got_tcp.stdout, got_udp.stdout)
    # sysemu's own sockets: its 127.0.0.1 has no listener on that port (the datagram goes
    # into sysemu's network, where nothing is bound: an ICMP error, not the host's socket)
    assert words(got_tcp.stdout) == {"socket": "ok", "connect": f"E{111}"}, got_tcp
    assert words(got_udp.stdout) == {"socket": "ok", "sendto": "ok"}, got_udp


@pytest.mark.parametrize("how", ["fcntl", "ioctl"])
def test_nonblock_with_high_command_bits_is_seen(attack_bin, sysemu_bin, how):
    """F_SETFL | 1<<32 and FIONBIO | 1<<32 set O_NONBLOCK: accept then answers EAGAIN."""
    native = run([attack_bin, how], None)
    got = run([attack_bin, how], sysemu_bin)
    assert words(native.stdout) == {how: "ok", "accept": "E11"}, native
    assert (got.returncode, words(got.stdout)) == (0, words(native.stdout)), got


def test_filter_compares_int_arguments_on_32_bits():
    from sysemu.arch.x86.entry import Syscalls
    from sysemu.cli import load_handlers
    from sysemu.host.seccomp import INT_MASK, build_filter, narrow
    from sysemu.kernel.syscalls import Handler, HANDLERS
    load_handlers()
    for name in ("socket", "fcntl", "ioctl"):
        for conjunction in narrow(HANDLERS[name]):
            for arg, op, value, *mask in conjunction:
                assert HANDLERS[name].arg_bits(arg) == 32
                assert (op, mask) == ("masked_eq", [INT_MASK]), (name, conjunction)
    pfc = build_filter(Syscalls()).export_pfc()
    assert "$a0.lo32 & 0xffffffff == 2" in pfc and "$a1.lo32 & 0xffffffff == 4" in pfc, pfc
    with pytest.raises(ValueError):     # no masked form of "ne" on an int argument
        narrow(Handler("socket", lambda t, a: 0, HANDLERS["socket"].decoders,
                       trap_when=(((0, "ne", 1),),)))


# -- 2. check then use: i386 socketcall --------------------------------------------------

def test_socketcall_race_gives_no_host_inet_socket(attack32_bin, sysemu_bin, host):
    """A thread flips socketcall's family word between AF_UNIX and AF_INET while the call
    runs: sysemu must not let the host re-read it."""
    native = words(run([attack32_bin, "socketcall", host.tcp_port, "0.3"], None).stdout)
    assert int(native["reached"]) > 0, native       # natively AF_INET sockets connect
    host.reached()
    got = run([attack32_bin, "socketcall", host.tcp_port, "3"], sysemu_bin)
    result = words(got.stdout)
    print(f"socketcall race under sysemu: {result}")
    assert int(result["tries"]) > 100 and int(result["unix"]) > 0, got
    assert result["reached"] == "0" and host.reached() == (0, 0), got


# -- random arguments -----------------------------------------------------------------

STRESS_SECONDS = float(os.environ.get("SYSEMU_STRESS_SECONDS", "12"))


@pytest.mark.parametrize("build", ["x86_64", "i386"])
def test_random_arguments_reach_no_host_listener(attack_bin, attack32_bin, sysemu_bin, host,
                                                build, capsys):
    """Seeded random socket/socketcall/fcntl/ioctl arguments (high bits, odd flags) from 4
    threads, plus a thread rewriting socketcall's block on i386: every descriptor tries
    the test's TCP and UDP listeners. Natively they are reached at once."""
    binary = attack_bin if build == "x86_64" else attack32_bin
    seed = 20261130
    argv = [binary, "stress", seed, host.tcp_port, host.udp_port]
    native = words(run(argv + ["0.3"], None).stdout)
    assert (int(native["reached"]) > 0 or int(native["udp_sent"]) > 0) \
        and host.reached() != (0, 0), native
    got = run(argv + [STRESS_SECONDS], sysemu_bin, timeout=STRESS_SECONDS + 60)
    result = words(got.stdout)
    with capsys.disabled():
        print(f"\nrandom-argument stress ({build}, seed {seed}, {STRESS_SECONDS} s): {result}")
    assert got.returncode == 0 and int(result["calls"]) > 1000, got
    assert result["reached"] == "0" and host.reached() == (0, 0), got


# -- 3. the second wall ----------------------------------------------------------------

def test_supervisor_cannot_be_reached(attack_bin, sysemu_bin):
    """pidfd_getfd of the notify fd, ptrace, process_vm_readv, SIGSTOP of the supervisor
    (today's parent) and the watchdog (grandparent): the sandbox sees only itself."""
    got = run([attack_bin, "stop"], sysemu_bin, timeout=20)
    result = words(got.stdout)
    assert got.returncode == 0, got
    assert result["notify"] == "0" and result["stolen"] == "0", result
    assert result["stopped"] == "0" and result["traced"] == "0", result
    assert result["read_mem"] == "0", result
    assert int(result["visible"]) <= 1, result      # sysemu's init only


def test_contained_as_an_unprivileged_user(attack_bin, sysemu_bin):
    """As `nobody` the same wall is made through unprivileged user namespaces; where the
    host forbids them, sysemu run refuses with a clear error (exit 125)."""
    import shutil
    import tempfile
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become nobody")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    shared = Path(tempfile.mkdtemp(prefix="sysemu-contain-"))
    try:
        shared.chmod(0o755)
        binary = shared / "attack"
        shutil.copy(attack_bin, binary)
        binary.chmod(0o755)
        usable = subprocess.run(as_nobody + [str(sysemu_bin), "run", "--no-contain", "--",
                                             "true"], capture_output=True, timeout=TIMEOUT)
        if usable.returncode != 0:
            pytest.skip(f"nobody cannot run this sysemu: {usable.stderr[-200:]!r}")
        got = run(as_nobody + [str(sysemu_bin), "run", "--", str(binary), "stop"], None)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    if got.returncode == 125:
        assert "--no-contain" in got.stderr, got        # the host forbids them: said so
        return
    result = words(got.stdout)
    assert got.returncode == 0, got
    assert result["notify"] == result["stolen"] == result["traced"] == "0", result
    assert int(result["visible"]) <= 1, result


def test_packet_socket_sniffs_no_host_traffic(attack_bin, sysemu_bin, host):
    marker = f"sysemu-marker-{os.getpid()}-{time.monotonic_ns()}"
    stop = threading.Event()

    def chatter():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                s.sendto(marker.encode(), ("127.0.0.1", host.udp_port))
                stop.wait(0.02)

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        native = words(run([attack_bin, "packet", marker], None).stdout)
        got = run([attack_bin, "packet", marker], sysemu_bin)
    finally:
        stop.set()
        thread.join()
    assert native == {"packet": "ok", "sniffed": "1"}, native
    assert words(got.stdout)["sniffed"] == "0", got


def test_sock_diag_lists_no_host_socket(attack_bin, sysemu_bin, host):
    native = words(run([attack_bin, "diag", host.tcp_port], None).stdout)
    got = run([attack_bin, "diag", host.tcp_port], sysemu_bin)
    assert native["seen"] == "1", native
    assert words(got.stdout)["seen"] == "0", got


def test_sock_destroy_kills_no_host_listener(attack_bin, sysemu_bin):
    def listener_alive(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return True
        except OSError:
            return False

    victims = [HostListeners(), HostListeners()]
    try:
        native = words(run([attack_bin, "destroy", victims[0].tcp_port], None).stdout)
        got = run([attack_bin, "destroy", victims[1].tcp_port], sysemu_bin)
        if native.get("destroy") == "ok":       # CONFIG_INET_DIAG_DESTROY
            assert not listener_alive(victims[0].tcp_port), native
        assert listener_alive(victims[1].tcp_port), got
        assert words(got.stdout).get("destroy") != "ok", got
    finally:
        for victim in victims:
            victim.close()


def test_proc_sys_net_write_leaves_the_host_alone(attack_bin, sysemu_bin):
    """A /proc/sys/net value sysemu does not serve: the write lands in the sandbox's own
    network namespace (or is refused), never in the host's."""
    path = Path("/proc/sys/net/ipv4/icmp_msgs_burst")
    before = path.read_text()
    new = str(int(before) + 7)
    try:
        got = run([attack_bin, "sysctl", path, new], sysemu_bin)
        after = path.read_text()
    finally:
        if path.read_text() != before and os.geteuid() == 0:
            path.write_text(before)
    assert got.returncode == 0, got
    assert after == before, (got.stdout, after)


def test_host_settings_stay_the_hosts(attack_bin, sysemu_bin):
    """A uid-0 program may write root's files, but not the host's settings: the UTS
    namespace is the sandbox's, /proc/sys (but net) and /sys are read-only."""
    domainname = Path("/proc/sys/kernel/domainname")
    before = domainname.read_text()
    try:
        got = run([attack_bin, "sysctl", domainname, "sysemu-was-here"], sysemu_bin)
        after = domainname.read_text()
    finally:
        if domainname.read_text() != before and os.geteuid() == 0:
            domainname.write_text(before)
    assert after == before, got.stdout
    ratio = Path("/proc/sys/vm/overcommit_ratio")
    got = run([attack_bin, "sysctl", ratio, ratio.read_text().strip()], sysemu_bin)
    assert words(got.stdout) == {"open": f"E{30}"}, got      # EROFS
    writable = run([attack_bin, "sysctl", "/proc/sys/net/ipv4/icmp_msgs_burst", "49"],
                   sysemu_bin)
    assert words(writable.stdout) == {"open": "ok", "write": "ok"}, writable


@pytest.mark.parametrize("allow", [False, True])
def test_host_socket_as_stdout_is_refused_by_default(sysemu_bin, host, allow):
    """A host TCP connection handed in as stdout: refused (exit 125) unless allowed."""
    conn = socket.create_connection(("127.0.0.1", host.tcp_port))
    accepted, _ = host.tcp.accept() if _ready(host.tcp) else (None, None)
    try:
        options = ["--allow-host-fd"] if allow else []
        done = subprocess.run([str(sysemu_bin), "run", *options, "--", "echo", "escaped"],
                              stdout=conn.fileno(), stderr=subprocess.PIPE, text=True,
                              timeout=TIMEOUT)
        conn.close()
        accepted.settimeout(5)
        data = accepted.recv(100)
    finally:
        conn.close()
        accepted.close()
    if allow:
        assert (done.returncode, data) == (0, b"escaped\n"), done.stderr
    else:
        assert (done.returncode, data) == (125, b""), done.stderr
        assert "--allow-host-fd" in done.stderr


def _ready(sock: socket.socket) -> bool:
    import select
    return bool(select.select([sock], [], [], 5)[0])


# -- 4. nothing outlives `sysemu run` -------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def _wait_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def test_kill_9_of_sysemu_run_leaves_nothing(sysemu_bin):
    proc = subprocess.Popen([str(sysemu_bin), "run", "--", "sh", "-c",
                             "sleep 1000 & setsid sleep 1000 & wait"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        sandbox: list[int] = []
        while time.monotonic() < deadline:
            sandbox = descendants(proc.pid)
            sleepers = [p for p in sandbox if _cmdline(p).startswith("sleep")]
            if len(sleepers) == 2:
                break
            time.sleep(0.05)
        assert len(sleepers) == 2, [(p, _cmdline(p)) for p in sandbox]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_gone(sandbox) == [], [(p, _cmdline(p)) for p in sandbox if _alive(p)]
    finally:
        for pid in [proc.pid] + descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _sleepers(seconds: str) -> list[int]:
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and _cmdline(int(p)) == f"sleep {seconds}"]


def test_program_killing_its_ancestors_leaves_nothing(attack_bin, sysemu_bin):
    seconds = f"{900 + os.getpid() % 1000}.{time.monotonic_ns() % 1000:03d}"
    got = run([attack_bin, "kill_ancestors", seconds], sysemu_bin)
    leftovers = _wait_gone(_sleepers(seconds))
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert got.returncode == 0, got
    assert leftovers == [], got.stdout


# -- 5. resource limits ------------------------------------------------------------------

def test_socket_limit_is_the_programs_emfile(attack_bin, sysemu_bin):
    """With RLIMIT_NOFILE 64, socket() fails with EMFILE after the same count natively and
    under sysemu (whose supervisor raised its own limit and keeps the program's)."""
    import resource

    def limit():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    native = run([attack_bin, "fill_fds"], None, preexec_fn=limit)
    got = run([attack_bin, "fill_fds"], sysemu_bin, preexec_fn=limit)
    assert words(native.stdout)["error"] == "E24", native
    assert words(got.stdout) == words(native.stdout), got


def test_socket_limit_of_the_supervisor_gives_enfile(attack_bin, sysemu_bin):
    """`ulimit -n 64` lowers the hard limit too, which the supervisor cannot raise without
    CAP_SYS_RESOURCE: when its own table fills first, socket() fails with ENFILE (the
    sandbox's table is full), never ENOSYS."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    got = run([attack_bin, "fill_fds"], sysemu_bin, preexec_fn=limit)
    assert words(got.stdout)["error"] in ("E24", "E23"), got
    assert int(words(got.stdout)["sockets"]) > 20, got
