"""Differential UDP probe: each scenario of tests/probes/udp_probe.py runs natively and
under `sysemu run` (plain and traced); the JSON results (values, errno names, address
comparisons) must be equal."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from test_e2e_differential import compare_probe, run

PROBE = Path(__file__).parent / "probes" / "udp_probe.py"

# Differences sysemu has knowingly, each named in README: Limitations.
XFAIL = {
    "refused_native_calls": "send()/recv()/read()/write() of a connected UDP socket use its "
                            "placeholder: after an ICMP error they do not fail with "
                            "ECONNREFUSED (sysemu's own calls do)",
    "unconnected_send": "an unconnected UDP socket's placeholder takes send()/write() "
                        "without an address (sysemu drops the datagram; Linux: "
                        "EDESTADDRREQ)",
    "refused_wakes_poll": "an ICMP error wakes poll() on a connected UDP socket with an "
                          "empty record in its placeholder: POLLIN (Linux: POLLERR), and a "
                          "native recv() reads an empty datagram (Linux: ECONNREFUSED)",
    "signals_without_restart": "a signal that arrives after a trapped call entered seccomp "
                               "but before sysemu received it ends the call with "
                               "ERESTARTSYS (kernel/seccomp.c): without SA_RESTART, "
                               "socket() and bind() fail with EINTR",
}


def scenarios() -> list[str]:
    out = run([sys.executable, str(PROBE), "--list"], timeout=30)
    return out.stdout.split()


# Under `--datapath model` send/recv/read/write of a UDP socket are sysemu's calls too,
# and poll/select (fs/select.py: datagram_poll): the differences of its placeholder's
# native calls are gone.
MODEL_XFAIL = {name: XFAIL[name] for name in ("signals_without_restart",)}


def scenario_params(xfail=None):
    xfail = XFAIL if xfail is None else xfail
    return [pytest.param(n, marks=pytest.mark.xfail(reason=xfail[n], strict=True))
            if n in xfail else n for n in scenarios()]


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
@pytest.mark.parametrize("name", scenario_params())
def test_udp_native_equals_sysemu(name, traced, sysemu_bin, tmp_path):
    compare_probe(PROBE, name, traced, sysemu_bin, tmp_path)


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
@pytest.mark.parametrize("name", scenario_params(MODEL_XFAIL))
def test_udp_native_equals_sysemu_model_datapath(name, traced, sysemu_bin, tmp_path):
    """The same scenarios under `--datapath model` (UDP's data calls on the same path as
    TCP's there)."""
    compare_probe(PROBE, name, traced, sysemu_bin, tmp_path, mode=("--datapath", "model"))
