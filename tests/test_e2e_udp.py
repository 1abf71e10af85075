"""Differential UDP probe: each scenario of tests/probes/udp_probe.py runs natively and
under `sysemu run` (plain and traced); the JSON results (values, errno names, address
comparisons) must be equal."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_e2e_differential import TRACED, probe_json, run

PROBE = Path(__file__).parent / "probes" / "udp_probe.py"

# Differences sysemu has knowingly, each named in README: Limitations.
XFAIL = {
    "refused_native_calls": "send()/recv()/read()/write() of a connected UDP socket use its "
                            "placeholder: after an ICMP error they do not fail with "
                            "ECONNREFUSED (sysemu's own calls do)",
    "unconnected_send": "an unconnected UDP socket's placeholder takes send()/write() "
                        "without an address (sysemu drops the datagram; Linux: "
                        "EDESTADDRREQ)",
    "refused_wakes_poll": "an ICMP error does not show on the placeholder: poll() on a "
                          "connected UDP socket waits (Linux: POLLERR at once); sysemu's "
                          "own calls (recvfrom with an address, recvmsg, sendto) see it",
}


def scenarios() -> list[str]:
    out = run([sys.executable, str(PROBE), "--list"], timeout=30)
    return out.stdout.split()


def scenario_params():
    return [pytest.param(n, marks=pytest.mark.xfail(reason=XFAIL[n], strict=True))
            if n in XFAIL else n for n in scenarios()]


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
@pytest.mark.parametrize("name", scenario_params())
def test_udp_native_equals_sysemu(name, traced, sysemu_bin, tmp_path):
    native, ndone = probe_json([sys.executable, str(PROBE), name])
    problem = native.get(name, {}).get("exception", "") if isinstance(native, dict) else ""
    if "Errno 97" in problem:
        pytest.skip(f"the host kernel has no IPv6: {problem}")
    assert ndone.returncode == 0 and not problem, f"native run failed: {native}\n{ndone.stderr}"
    options = TRACED + [str(tmp_path / "trace")] if traced else []
    got, sdone = probe_json([str(sysemu_bin), "run", *options, "--", sys.executable,
                             str(PROBE), name])
    assert got == native, (
        f"sysemu differs from Linux in {name}:\n"
        f"native: {json.dumps(native, sort_keys=True)}\n"
        f"sysemu: {json.dumps(got, sort_keys=True)}\n"
        f"sysemu stderr (tail):\n{sdone.stderr[-3000:]}")
    assert sdone.returncode == 0, sdone.stderr[-3000:]
