"""sysctl defaults, /proc/sys text in and out, and `sysemu run --sysctl`.

Linux: kernel/sysctl.c (proc_get_long, __do_proc_dointvec, do_proc_douintvec_w,
proc_dou8vec_minmax, proc_dointvec_jiffies), net/ipv4/sysctl_net_ipv4.c
(ipv4_local_port_range, ipv4_privileged_ports), net/core/sysctl_net_core.c (somaxconn).
The host's sysctls are only read here, never written: the errno expectations cite the
Linux function that produces them instead.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from sysemu.abi.errno import Errno
from sysemu.kernel import sysctl
from sysemu.kernel.errors import SyscallError
from sysemu.kernel.task import Kernel


@pytest.fixture
def kernel():
    k = Kernel()
    sysctl.register_defaults(k)
    return k


def einval(kernel, name, text):
    before = sysctl.sysctl_get(kernel, name)
    with pytest.raises(SyscallError) as exc:
        sysctl.sysctl_set(kernel, name, text)
    assert exc.value.errno == Errno.EINVAL
    assert sysctl.sysctl_get(kernel, name) == before, "a refused write changes nothing"


# -- defaults --------------------------------------------------------------------------------

LINUX_DEFAULTS = {
    "net.core.somaxconn": "4096\n",
    "net.ipv4.tcp_syn_retries": "6\n",
    "net.ipv4.tcp_synack_retries": "5\n",
    "net.ipv4.tcp_syncookies": "1\n",
    "net.ipv4.ip_local_port_range": "32768\t60999\n",
    "net.ipv4.ip_unprivileged_port_start": "1024\n",
    "net.ipv4.tcp_fin_timeout": "60\n",
    "net.ipv4.tcp_max_syn_backlog": "2048\n",
}


@pytest.mark.parametrize("name, text", sorted(LINUX_DEFAULTS.items()))
def test_default_text(kernel, name, text):
    assert sysctl.sysctl_format(kernel, name) == text


@pytest.mark.parametrize("name", sorted(set(LINUX_DEFAULTS) - {"net.ipv4.tcp_max_syn_backlog"}))
def test_defaults_match_host(kernel, name):
    """Host-independent Linux defaults equal what this host shows (unless it was tuned).
    tcp_max_syn_backlog is derived from RAM by Linux and fixed by sysemu: not compared."""
    path = Path("/proc/sys") / name.replace(".", "/")
    if not path.exists():
        pytest.skip(f"{path} not on this host")
    host = path.read_text()
    if host != LINUX_DEFAULTS[name]:
        pytest.skip(f"host was tuned: {name} = {host!r}, Linux default {LINUX_DEFAULTS[name]!r}")
    assert sysctl.sysctl_format(kernel, name) == host


def test_syn_backlog_matches_linux_formula_on_this_host(kernel):
    """Linux tcp_sk_init(): max(128, ehash_entries / 128). sysemu's fixed 2048 is that
    formula for a 262144-entry ehash; on a host with that ehash the two agree."""
    ehash = Path("/proc/sys/net/ipv4/tcp_ehash_entries")
    backlog = Path("/proc/sys/net/ipv4/tcp_max_syn_backlog")
    if not ehash.exists() or int(ehash.read_text()) != 262144:
        pytest.skip("host ehash size differs: the Linux value differs by design")
    assert int(backlog.read_text()) == max(128, 262144 // 128)
    assert sysctl.sysctl_get(kernel, "net.ipv4.tcp_max_syn_backlog") == int(backlog.read_text())


def test_get_without_register_reads_default():
    k = Kernel()
    assert sysctl.sysctl_get(k, "net.core.somaxconn") == 4096
    assert sysctl.sysctl_get(k, "net.ipv4.ip_local_port_range") == (32768, 60999)


def test_register_keeps_configured_values(kernel):
    sysctl.sysctl_set(kernel, "net.core.somaxconn", "10")
    sysctl.register_defaults(kernel)
    assert kernel.sysctl["net.core.somaxconn"] == 10


@pytest.mark.parametrize("spelling", ["net.core.somaxconn", "net/core/somaxconn",
                                      "/proc/sys/net/core/somaxconn", " net.core.somaxconn "])
def test_name_spellings(kernel, spelling):
    """sysctl(8) accepts dots or slashes."""
    sysctl.sysctl_set(kernel, spelling, "77")
    assert sysctl.sysctl_get(kernel, "net.core.somaxconn") == 77


def test_unknown_name(kernel):
    with pytest.raises(SyscallError) as exc:
        sysctl.sysctl_get(kernel, "net.core.nosuch")
    assert exc.value.errno == Errno.ENOENT


# -- proc_dointvec_minmax: somaxconn (0..INT_MAX) ----------------------------------------------

@pytest.mark.parametrize("text, value, consumed", [
    ("1024\n", 1024, 5),
    ("0", 0, 1),
    ("2147483647", 2**31 - 1, 10),
    ("  7  \n", 7, 6),
    ("0x10\n", 16, 5),        # proc_get_long: strtoul base 0
    ("010", 8, 3),            # ... octal
    ("5 junk", 5, 2),         # one int: the rest is not parsed; Linux reports 2 bytes
    ("5\t6\n", 5, 2),
])
def test_somaxconn_accepts(kernel, text, value, consumed):
    assert sysctl.sysctl_set(kernel, "net.core.somaxconn", text) == consumed
    assert sysctl.sysctl_get(kernel, "net.core.somaxconn") == value
    assert sysctl.sysctl_format(kernel, "net.core.somaxconn") == f"{value}\n"


@pytest.mark.parametrize("text", [
    "-1",                     # below extra1 = SYSCTL_ZERO
    "2147483648",             # do_proc_dointvec_conv: above INT_MAX
    "abc", "", "   \n",       # no number: __do_proc_dointvec returns -EINVAL when first
    "5abc", "12,", "08",      # trailer not in proc_wspace_sep (08: octal stops at 8)
    "0x",                     # octal 0 then 'x'
    "99999999999999999999999",  # 21+ digits: proc_get_long's TMPBUFLEN rule
    "5\0",                    # the NUL is the trailer
    "+5",                     # no '+' in proc_get_long
])
def test_somaxconn_rejects(kernel, text):
    einval(kernel, "net.core.somaxconn", text)


# -- proc_dou8vec_minmax: syn retries 1..127, synack and syncookies 0..255 ---------------------

@pytest.mark.parametrize("name, good, bad", [
    ("net.ipv4.tcp_syn_retries", ["1", "127", "6\n"], ["0", "128", "-1", "x"]),
    ("net.ipv4.tcp_synack_retries", ["0", "255"], ["256", "-1", "4294967296"]),
    ("net.ipv4.tcp_syncookies", ["0", "2", "255"], ["256", "-0"]),
])
def test_u8_sysctls(kernel, name, good, bad):
    for text in good:
        assert sysctl.sysctl_set(kernel, name, text) == len(text)  # douintvec: whole write
        assert sysctl.sysctl_get(kernel, name) == int(text)
    for text in bad:
        einval(kernel, name, text)


def test_jiffies_sysctl(kernel):
    """proc_dointvec_jiffies: seconds up to INT_MAX / HZ, negative allowed."""
    name = "net.ipv4.tcp_fin_timeout"
    sysctl.sysctl_set(kernel, name, "30")
    assert sysctl.sysctl_format(kernel, name) == "30\n"
    sysctl.sysctl_set(kernel, name, str((2**31 - 1) // sysctl.HZ))
    einval(kernel, name, str((2**31 - 1) // sysctl.HZ + 1))
    sysctl.sysctl_set(kernel, name, "-5")
    assert sysctl.sysctl_get(kernel, name) == -5


def test_syn_backlog_is_plain_dointvec(kernel):
    sysctl.sysctl_set(kernel, "net.ipv4.tcp_max_syn_backlog", "-3")
    assert sysctl.sysctl_get(kernel, "net.ipv4.tcp_max_syn_backlog") == -3
    einval(kernel, "net.ipv4.tcp_max_syn_backlog", "2147483648")
    sysctl.sysctl_set(kernel, "net.ipv4.tcp_max_syn_backlog", "-2147483648")


# -- ipv4_local_port_range and ipv4_privileged_ports --------------------------------------------

RANGE = "net.ipv4.ip_local_port_range"
UNPRIV = "net.ipv4.ip_unprivileged_port_start"


def test_port_range_set_and_format(kernel):
    sysctl.sysctl_set(kernel, RANGE, "40000 50000\n")
    assert sysctl.sysctl_get(kernel, RANGE) == (40000, 50000)
    assert sysctl.sysctl_format(kernel, RANGE) == "40000\t50000\n"
    sysctl.sysctl_set(kernel, RANGE, "45000")   # one value: only the low end changes
    assert sysctl.sysctl_get(kernel, RANGE) == (45000, 50000)
    sysctl.sysctl_set(kernel, RANGE, "2000\t2000 extra")   # lo == hi is allowed
    assert sysctl.sysctl_get(kernel, RANGE) == (2000, 2000)


@pytest.mark.parametrize("text", [
    "50000 40000",      # range[1] < range[0]
    "1000 2000",        # range[0] < ip_unprivileged_port_start (1024)
    "0 100",            # below extra1 (1)
    "1024 65536",       # above extra2 (65535)
    "1024 x",           # second value garbage
    "",
])
def test_port_range_rejects(kernel, text):
    einval(kernel, RANGE, text)


def test_unprivileged_port_start_vs_range(kernel):
    """ipv4_privileged_ports(): 0..65535 and not above the range's low end; the range
    may then start lower."""
    einval(kernel, UNPRIV, "40000")            # 40000 > 32768
    einval(kernel, UNPRIV, "65536")
    einval(kernel, UNPRIV, "-1")
    sysctl.sysctl_set(kernel, UNPRIV, "32768")  # equal to the low end: fine
    sysctl.sysctl_set(kernel, UNPRIV, "0")
    sysctl.sysctl_set(kernel, RANGE, "1 65535")
    assert sysctl.sysctl_get(kernel, RANGE) == (1, 65535)


# -- configure (sysemu run --sysctl) -------------------------------------------------------------

def test_configure_applies_in_order():
    k = Kernel()
    sysctl.configure(k, ["net.core.somaxconn=128", "net/ipv4/tcp_syn_retries = 2",
                         ("net.ipv4.ip_unprivileged_port_start", "500"),
                         "net.ipv4.ip_local_port_range=600 700"])
    assert sysctl.sysctl_get(k, "net.core.somaxconn") == 128
    assert sysctl.sysctl_get(k, "net.ipv4.tcp_syn_retries") == 2
    assert sysctl.sysctl_get(k, RANGE) == (600, 700)
    assert sysctl.sysctl_get(k, "net.ipv4.tcp_synack_retries") == 5   # defaults registered


@pytest.mark.parametrize("pair, words", [
    ("net.core.somaxconn", ["NAME=VALUE"]),
    ("net.core.nosuch=1", ["net.core.nosuch", "net.core.somaxconn"]),
    ("net.core.somaxconn=lots", ["'lots'", "net.core.somaxconn", "0..2147483647"]),
    ("net.ipv4.tcp_syn_retries=0", ["1..127"]),
    ("net.ipv4.ip_local_port_range=1000 2000", ["ip_unprivileged_port_start"]),
])
def test_configure_errors_name_the_pair(pair, words):
    k = Kernel()
    with pytest.raises(ValueError) as exc:
        sysctl.configure(k, [pair])
    message = str(exc.value)
    assert repr(pair) in message
    for word in words:
        assert word in message
