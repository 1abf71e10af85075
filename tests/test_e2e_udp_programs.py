"""Real UDP programs end to end, natively and under `sysemu run` (one sandbox each): a DNS
responder (tests/probes/dns_responder.py) queried with dig directly and through a socat
UDP relay, dig against a port where nothing listens, a name lookup whose resolver is
not on sysemu's network, multicast, iperf3 -u, memcached's UDP port."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from test_e2e_programs import PROBES, free_port, need, run_sh


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same_as_in_a_fresh_namespace(name: str, sysemu_bin) -> None:
    """Probe `name` natively in a network namespace of its own whose only device is lo
    (as the sandbox's: its routes, a fresh MIB) and under sysemu: the same output."""
    need("unshare", "ip", package="util-linux, iproute2")
    probe = str(PROBES / name)
    native = subprocess.run(["unshare", "-rn", "sh", "-c",
                             f"ip link set lo up && {sys.executable} {probe}"],
                            capture_output=True, timeout=30)
    if native.returncode != 0:
        pytest.skip(f"no network namespace here: {native.stderr.decode()[-300:]}")
    got = run_sh(f"{sys.executable} {probe}", sysemu_bin)
    assert got.stdout == native.stdout, (native.stdout, got.stdout, got.stderr[-2000:])


DNS_SCRIPT = """
P={port}; R={relay}
{python} {probes}/dns_responder.py $P 5 > {tmp}/ready &
until_ok 100 grep -q ready {tmp}/ready
dig +short +tries=1 +time=3 @127.0.0.1 -p $P example.com
dig +short +tries=1 +time=3 @127.0.0.1 -p $P www.sysemu.test
dig +tries=1 +time=3 @127.0.0.1 -p $P host.nx | grep -o 'status: [A-Z]*'
socat -T 3 UDP4-RECVFROM:$R,bind=127.0.0.1,fork UDP4-SENDTO:127.0.0.1:$P &
S=$!
sleep 0.5
dig +short +tries=1 +time=3 @127.0.0.1 -p $R via.relay.example
dig +short +tries=2 +time=3 @127.0.0.1 -p $R second.via.relay
kill $S
dig +tries=1 +time=3 @127.0.0.1 -p {closed} refused.example 2>&1 \
    | grep -o 'connection refused\\|timed out' | head -1
wait
echo done
"""


def test_dig_dns_responder_and_socat_relay(sysemu_bin, tmp_path):
    need("dig", package="dnsutils")
    need("socat", package="socat")
    results = []
    for which in (None, sysemu_bin):
        (tmp_path / "ready").unlink(missing_ok=True)
        script = DNS_SCRIPT.format(port=free_udp_port(), relay=free_udp_port(),
                                   closed=free_udp_port(), python=sys.executable,
                                   probes=PROBES, tmp=tmp_path)
        done = run_sh(script, which)
        results.append(done)
    native, got = (d.stdout.decode() for d in results)
    assert native.splitlines() == ["10.0.0.11", "10.0.0.15", "status: NXDOMAIN",
                                   "10.0.0.17", "10.0.0.16", "connection refused",
                                   "done"], results[0].stderr.decode()[-2000:]
    assert got == native, results[1].stderr.decode()[-3000:]


def test_lookup_with_an_unreachable_resolver_fails_fast(sysemu_bin):
    """/etc/resolv.conf names a server that is not on sysemu's network: the resolver's
    connect() fails (ENETUNREACH, as in a namespace with only lo) and the lookup ends
    at once, where a resolver waiting for an answer would take its timeouts."""
    code = ("import socket\n"
            "try:\n    socket.getaddrinfo('name.invalid', 80)\n"
            "except socket.gaierror as e:\n    print('gaierror', e.errno)\n")
    start = time.monotonic()
    done = run_sh(f"{sys.executable} -c \"{code}\"", sysemu_bin, timeout=30)
    took = time.monotonic() - start
    assert done.stdout.decode().startswith("gaierror"), done.stderr.decode()[-2000:]
    assert took < 15, f"the lookup took {took:.1f} s"


def test_program_opening_a_resolver_socket_at_startup(sysemu_bin):
    """A server that makes its UDP resolver socket (connected to a nameserver) before it
    serves starts under sysemu as natively."""
    code = ("import socket\n"
            "r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "r.connect(('127.0.0.53', 53))\n"
            "r.setblocking(False)\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print('started', r.getpeername())\n")
    native = run_sh(f"{sys.executable} -c \"{code}\"", None)
    got = run_sh(f"{sys.executable} -c \"{code}\"", sysemu_bin)
    assert native.stdout == got.stdout == b"started ('127.0.0.53', 53)\n", got.stderr


def test_multicast_on_loopback_as_in_a_namespace_with_only_lo(sysemu_bin):
    """Multicast depends on the namespace's routes: the native run is in a network
    namespace of its own whose only device is lo (as the sandbox's), where joining,
    IP_MULTICAST_IF, IP_MULTICAST_ALL and lo's loop decide who gets a datagram."""
    same_as_in_a_fresh_namespace("udp_multicast.py", sysemu_bin)


def test_iperf3_udp(sysemu_bin):
    """iperf3 -u: its TCP control connection and its UDP test stream, in one sandbox.
    At 2 Mbit/s (250 datagrams) a receiver that is served at all keeps up; datagrams a
    loaded machine drops for the receive buffer are UDP's right, so the loss bound is
    loose (at 10 Mbit/s under load average 20, 5% was crossed natively and under sysemu)."""
    need("iperf3", package="iperf3")
    script = ("P={port}; iperf3 -s -1 -B 127.0.0.1 -p $P >/dev/null 2>&1 & S=$!; "
              "until_ok 50 sh -c 'kill -0 $S'; sleep 0.5; "
              "iperf3 -c 127.0.0.1 -p $P -u -b 2M -t 1 -l 1000; wait")
    runs = []
    for which in (None, sysemu_bin):
        done = run_sh(script.format(port=free_udp_port()), which, timeout=30)
        text = done.stdout.decode()
        received = [line for line in text.splitlines() if line.endswith("receiver")]
        assert done.returncode == 0 and received, (text, done.stderr.decode()[-2000:])
        lost, total = received[0].split("(")[0].split()[-1].split("/")
        runs.append((int(lost), int(total)))
    (_, native_total), (lost, total) = runs
    assert total >= 0.9 * native_total and lost <= max(0.2 * total, runs[0][0]), runs


def test_memcached_udp_port(sysemu_bin):
    """memcached with its UDP port enabled (-U): set over TCP, get and stats over UDP."""
    need("memcached", package="memcached")
    script = ("memcached -l 127.0.0.1 -p {tcp} -U {udp} -u nobody -t 1 & M=$!; "
              "{python} {probes}/memcached_udp.py {tcp} {udp}; kill $M; wait")
    outs = []
    for which in (None, sysemu_bin):
        done = run_sh(script.format(tcp=free_port(), udp=free_udp_port(),
                                    python=sys.executable, probes=PROBES), which, timeout=30)
        outs.append(done.stdout.decode())
    assert outs[0] == "STORED\nTrue VALUE greeting 0 5|hello|END True\nstats ok True\n", outs
    assert outs[1] == outs[0], outs


def test_udp_counters_as_in_a_fresh_namespace(sysemu_bin):
    """/proc/net/snmp's Udp: and Icmp: lines after a fixed exchange (received, refused,
    dropped for the receive buffer, failed copies) equal those of a network namespace of
    its own (a fresh MIB, as the sandbox's)."""
    same_as_in_a_fresh_namespace("udp_counters.py", sysemu_bin)
