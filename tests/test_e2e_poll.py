"""Differential select/poll probe: each scenario of tests/probes/poll_probe.py runs natively
and under `sysemu run --datapath model` (plain and traced), where sysemu serves select,
pselect6, poll and ppoll itself (fs/select.py); the JSON results (values, revents, errno
names, the time left) must be equal. The default data path runs them too: there the calls
are the host's, on the placeholders."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from test_e2e_differential import compare_probe, run

PROBE = Path(__file__).parent / "probes" / "poll_probe.py"

# The native data path's placeholder readiness (README: Limitations), pinned.
XFAIL = {
    "tcp_poll_masks": "the native data path's placeholder is an AF_UNIX pair end: a fresh "
                      "or bound socket shows POLLOUT without POLLHUP, and urgent data is "
                      "AF_UNIX's (POLLIN with POLLPRI, and after its byte is read)",
    "udp_poll_masks": "shutdown() of a UDP socket is not applied to its placeholder: poll "
                      "shows neither POLLRDHUP nor POLLHUP after it",
    "select_sets_and_errors": "urgent data on the native data path is AF_UNIX's: the "
                              "urgent byte makes the socket readable too",
}


def scenarios() -> list[str]:
    return run([sys.executable, str(PROBE), "--list"], timeout=30).stdout.split()


def scenario_params(xfail):
    return [pytest.param(n, marks=pytest.mark.xfail(reason=xfail[n], strict=True))
            if n in xfail else n for n in scenarios()]


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
@pytest.mark.parametrize("name", scenario_params({}))
def test_poll_native_equals_sysemu_model_datapath(name, traced, sysemu_bin, tmp_path):
    compare_probe(PROBE, name, traced, sysemu_bin, tmp_path, mode=("--datapath", "model"))


@pytest.mark.parametrize("name", scenario_params(XFAIL))
def test_poll_native_equals_sysemu(name, sysemu_bin, tmp_path):
    compare_probe(PROBE, name, False, sysemu_bin, tmp_path)
