"""Containment (SECURITY.md): attacks from inside `sysemu run`, each a mode of
tests/c/contain_attack.c. Where an attack can run natively it does, and must reach the
host listeners the test starts on 127.0.0.1 (TCP and UDP): that shows the attack works;
under sysemu nothing may reach them."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ATTACK = Path(__file__).parent / "c" / "contain_attack.c"
TIMEOUT = 60


@pytest.fixture(scope="module")
def attack_bin(cc):
    return cc(ATTACK, "-lpthread")


def words(text: str) -> dict[str, str]:
    """`key=value key=value` on the last line -> dict."""
    lines = text.strip().splitlines()
    return dict(w.split("=", 1) for w in (lines[-1].split() if lines else []) if "=" in w)


def run(argv: list[str], sysemu_bin: Path | None, timeout: float = TIMEOUT,
        **kwargs) -> subprocess.CompletedProcess:
    """argv natively (sysemu_bin None) or under `sysemu run`; its process group is killed
    afterwards in any case."""
    full = ([str(sysemu_bin), "run", "--"] if sysemu_bin else []) + [str(a) for a in argv]
    proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n[test: killed after {timeout} s]"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(full, proc.returncode, out, err)


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
    # sysemu's own socket: its 127.0.0.1 has no listener on that port; UDP is not served
    assert words(got_tcp.stdout) == {"socket": "ok", "connect": f"E{111}"}, got_tcp
    assert words(got_udp.stdout) == {"socket": f"E{93}"}, got_udp


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
