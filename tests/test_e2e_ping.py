"""Ping and raw ICMP end to end: each scenario of tests/probes/ping_probe.py natively (as
root in a fresh network namespace, `unshare -n`, lo up) and under `sysemu run` (plain and
traced) must give the same JSON; iputils ping inside the sandbox as root (raw sockets)
and as an unprivileged user (ping sockets, within net.ipv4.ping_group_range), with the
counters of a fresh namespace, and its packets in --pcap as tshark reads them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from test_e2e_differential import compare_probe, run

PROBE = Path(__file__).parent / "probes" / "ping_probe.py"
PING = shutil.which("ping")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Differences sysemu has knowingly, each named in README: Limitations.
XFAIL = {
    "unconnected_send": "an unconnected ping or raw socket's placeholder takes send() "
                        "without an address (sysemu drops the message; Linux: "
                        "EDESTADDRREQ), as for UDP",
}


def fresh_netns(argv: list[str]) -> list[str]:
    """argv as root in a new network namespace with lo up (what the sandbox gives)."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


@pytest.fixture(scope="module")
def native_ok():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("the native side needs root (unshare -n) and ip(8)")
    done = run(fresh_netns(["true"]))
    if done.returncode != 0:
        pytest.skip(f"unshare -n failed: {done.stderr}")


def scenario_params():
    names = subprocess.run([sys.executable, str(PROBE), "--list"], capture_output=True,
                           text=True, check=True).stdout.split()
    return [pytest.param(n, marks=pytest.mark.xfail(reason=XFAIL[n], strict=True))
            if n in XFAIL else n for n in names]


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
@pytest.mark.parametrize("name", scenario_params())
def test_probe_native_equals_sysemu(name, traced, native_ok, sysemu_bin, tmp_path):
    compare_probe(PROBE, name, traced, sysemu_bin, tmp_path, native_wrap=fresh_netns)


needs_ping = pytest.mark.skipif(PING is None, reason="iputils-ping is not installed")
PING_AND_COUNT = ("ping -c 3 -i 0.2 -W 2 127.0.0.1 && ping -c 2 -i 0.2 -W 2 ::1 && "
                  "grep -E '^Icmp(Msg)?:' /proc/net/snmp && "
                  "grep -E '^Icmp6(In|Out)(Msgs|Errors|Echos|EchoReplies|Type)' /proc/net/snmp6")


def _summary(out: str) -> tuple[list[str], list[str]]:
    """ping's statistics lines and the counter lines (times and ids vary)."""
    stats = [line for line in out.splitlines() if "packets transmitted" in line]
    counters = [line for line in out.splitlines() if line.startswith("Icmp")]
    return stats, counters


@needs_ping
def test_ping_as_root_counters_as_linux(native_ok, sysemu_bin):
    """Root has CAP_NET_RAW: ping falls back from the ping socket (EACCES under the
    default range "1 0") to a raw socket, and the counters of a fresh namespace after
    three echoes over IPv4 and two over IPv6 are Linux's, line for line."""
    native = run(fresh_netns(["sh", "-c", PING_AND_COUNT]))
    got = run([str(sysemu_bin), "run", "--", "sh", "-c", PING_AND_COUNT])
    assert native.returncode == 0, native.stderr
    assert got.returncode == 0, got.stderr[-3000:]
    stats, counters = _summary(got.stdout)
    assert [s.split(", time")[0] for s in stats] == \
        ["3 packets transmitted, 3 received, 0% packet loss",
         "2 packets transmitted, 2 received, 0% packet loss"], got.stdout
    assert counters == _summary(native.stdout)[1], (native.stdout, got.stdout)
    assert "IcmpMsg: InType0 InType8 OutType0 OutType8" in counters


@needs_ping
def test_ping_unprivileged_within_group_range(native_ok, sysemu_bin):
    """A user without CAP_NET_RAW (nobody, a copy of ping without its file capability)
    pings through ping sockets when ping_group_range holds its group, and fails as on
    Linux when it does not (no ping socket: EACCES, then the raw socket: EPERM)."""
    where = tempfile.mkdtemp(prefix="sysemu-ping-")
    try:
        os.chmod(where, 0o755)
        ping = shutil.copy(PING, where)             # no xattrs: no cap_net_raw
        cmd = f"{ping} -c 2 -i 0.2 -W 2 127.0.0.1 && {ping} -c 2 -i 0.2 -W 2 ::1"
        allowed = run([str(sysemu_bin), "run", "--sysctl",
                       "net.ipv4.ping_group_range=0 2147483647", "--", *NOBODY,
                       "sh", "-c", cmd])
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr[-3000:]
        assert allowed.stdout.count("2 packets transmitted, 2 received") == 2
        refused = run([str(sysemu_bin), "run", "--", *NOBODY, ping, "-c", "1", "127.0.0.1"])
        native = run(fresh_netns([*NOBODY, ping, "-c", "1", "127.0.0.1"]))
        assert refused.returncode == native.returncode == 2
        assert "socket: Operation not permitted" in refused.stderr
        assert "socket: Operation not permitted" in native.stderr
    finally:
        shutil.rmtree(where, ignore_errors=True)


@needs_ping
def test_ping_in_pcap(sysemu_bin, tmp_path):
    """--pcap holds the echoes as the wire carried them: tshark decodes each request and
    its reply, with good ICMP checksums."""
    if not shutil.which("tshark"):
        pytest.skip("tshark is not installed")
    pcap = tmp_path / "ping.pcap"
    done = run([str(sysemu_bin), "run", "--pcap", str(pcap), "--", "sh", "-c",
                "ping -c 2 -i 0.2 127.0.0.1 && ping -c 1 ::1"])
    assert done.returncode == 0, done.stderr[-3000:]
    fields = run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "icmp.type",
                  "-e", "icmpv6.type", "-e", "icmp.checksum.status",
                  "-e", "icmpv6.checksum.status"])
    rows = [line.split("\t") for line in fields.stdout.splitlines() if line.strip()]
    assert rows == [["8", "", "1", ""], ["0", "", "1", ""], ["8", "", "1", ""],
                    ["0", "", "1", ""], ["", "128", "", "1"], ["", "129", "", "1"]], \
        fields.stdout + fields.stderr
