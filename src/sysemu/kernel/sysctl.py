"""The sysctls sysemu owns: their Linux defaults, and /proc/sys text in and out.

Linux: kernel/sysctl.c (proc_dointvec and friends), net/core/sysctl_net_core.c,
net/ipv4/sysctl_net_ipv4.c. Values live in `kernel.sysctl`, keyed by the dotted name
("net.core.somaxconn"): an int, or an (lo, hi) tuple for net.ipv4.ip_local_port_range.

Writing follows the proc handler each sysctl has in Linux 6.x, so a program (or
`sysemu run --sysctl`) gets EINVAL exactly where Linux would:

- proc_dointvec / proc_dointvec_minmax: whitespace-separated signed integers, parsed
  with base 0 (so "0x10" is 16 and "010" is 8), each followed by a space, tab or newline
  (or the end); anything after the last value the table holds is ignored.
- proc_dou8vec_minmax: one unsigned value, 0..255 unless the table narrows it.
- proc_douintvec_minmax: the same with an unsigned int (0..UINT_MAX).
- proc_dointvec_jiffies: seconds, at most INT_MAX / HZ in magnitude.
- ip_local_port_range / ip_unprivileged_port_start: minmax, then the two checks of
  ipv4_local_port_range() and ipv4_privileged_ports() against each other.

Names are accepted as sysctl(8) accepts them: "net.ipv4.tcp_syn_retries",
"net/ipv4/tcp_syn_retries", or with a leading "/proc/sys/".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from sysemu.abi.errno import Errno
from sysemu.abi.inet import MAX_TCP_SYNCNT
from sysemu.abi.limits import HZ, INT_MAX, PAGE_SIZE, U8_MAX, UINT_MAX, ULONG_MAX
from sysemu.kernel.errors import SyscallError

Value = Union[int, tuple[int, int]]

# Linux: kernel/sysctl.c proc_wspace_sep[] and isspace() as skip_spaces() sees it.
_SEPARATORS = b" \t\n"
_SPACES = b" \t\n\v\f\r"
_TMPBUFLEN = 22


@dataclass(frozen=True)
class SysctlDef:
    """One ctl_table entry. `handler` names the Linux proc handler it behaves as."""
    name: str                    # dotted: "net.core.somaxconn"
    default: Value
    handler: str                 # "dointvec", "dointvec_minmax", "dou8vec_minmax",
                                 # "douintvec_minmax",
                                 # "dointvec_jiffies", "local_port_range", "privileged_ports"
    min: int | None = None       # extra1
    max: int | None = None       # extra2
    mode: int = 0o644
    linux: str = ""              # where Linux defines it

    @property
    def path(self) -> str:
        return "/proc/sys/" + self.name.replace(".", "/")

    def describe(self) -> str:
        """The accepted values, for a person."""
        if self.handler == "local_port_range":
            return ("two integers LOW HIGH, 1..65535, LOW <= HIGH, and LOW not below "
                    "net.ipv4.ip_unprivileged_port_start")
        if self.handler == "ping_group_range":
            return (f"two group ids LOW HIGH, 0..{self.max} (HIGH below LOW: nobody, "
                    f"as 1 0)")
        if self.handler == "privileged_ports":
            return ("an integer 0..65535, not above the low end of "
                    "net.ipv4.ip_local_port_range")
        if self.handler == "dointvec_jiffies":
            return f"an integer (seconds), -{INT_MAX // HZ}..{INT_MAX // HZ}"
        if self.handler in ("dou8vec_minmax", "douintvec_minmax"):
            lo = 0 if self.min is None else self.min
            hi = self.max if self.max is not None else (
                U8_MAX if self.handler == "dou8vec_minmax" else UINT_MAX)
            return f"an integer {lo}..{hi}"
        lo = -INT_MAX - 1 if self.min is None else self.min
        hi = INT_MAX if self.max is None else self.max
        return f"an integer {lo}..{hi}"


# The sysctls sysemu owns, with Linux 6.x defaults (include/net/tcp.h,
# net/ipv4/tcp_ipv4.c tcp_sk_init(), net/core/net_namespace.c ...).
SYSCTLS: dict[str, SysctlDef] = {d.name: d for d in (
    # Linux: net/core/sysctl_net_core.c, proc_dointvec_minmax with extra1 = SYSCTL_ZERO;
    # default SOMAXCONN (4096) set in netdev_init / sysctl_core_net_init.
    SysctlDef("net.core.somaxconn", 4096, "dointvec_minmax", 0, None,
              linux="net/core/sysctl_net_core.c"),
    # Linux: tcp_sk_init() sets max(128, ehash_entries / 128); the ehash is sized from
    # RAM at boot. sysemu: fixed at 2048, what a host with a 262144-entry ehash (the
    # 24 GB reference host: /proc/sys/net/ipv4/tcp_ehash_entries) derives, so the
    # sandbox does not depend on the machine it runs on.
    SysctlDef("net.ipv4.tcp_max_syn_backlog", 2048, "dointvec",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: TCP_SYN_RETRIES 6, proc_dou8vec_minmax 1..MAX_TCP_SYNCNT.
    SysctlDef("net.ipv4.tcp_syn_retries", 6, "dou8vec_minmax", 1, MAX_TCP_SYNCNT,
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: TCP_SYNACK_RETRIES 5, proc_dou8vec_minmax without bounds (0..255).
    SysctlDef("net.ipv4.tcp_synack_retries", 5, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: tcp_sk_init() sysctl_tcp_syncookies = 1, proc_dou8vec_minmax (0..255).
    SysctlDef("net.ipv4.tcp_syncookies", 1, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: inet_init_net() range 32768..60999, handler ipv4_local_port_range().
    SysctlDef("net.ipv4.ip_local_port_range", (32768, 60999), "local_port_range", 1, 65535,
              linux="net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range()"),
    # Linux: inet_init_net() sysctl_ip_prot_sock = PROT_SOCK (1024),
    # handler ipv4_privileged_ports() 0..65535.
    SysctlDef("net.ipv4.ip_unprivileged_port_start", 1024, "privileged_ports", 0, 65535,
              linux="net/ipv4/sysctl_net_ipv4.c ipv4_privileged_ports()"),
    # Linux 6.5+: tcp_sk_init() sysctl_tcp_syn_linear_timeouts = 4 (the first SYN
    # retransmissions keep the initial RTO before backing off), dou8vec_minmax 0..MAX_TCP_SYNCNT.
    SysctlDef("net.ipv4.tcp_syn_linear_timeouts", 4, "dou8vec_minmax", 0, MAX_TCP_SYNCNT,
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: TCP_FIN_TIMEOUT (60 s), proc_dointvec_jiffies.
    SysctlDef("net.ipv4.tcp_fin_timeout", 60, "dointvec_jiffies",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: tcp_sk_init() sysctl_tcp_tw_reuse = 2 (loopback only), dou8vec_minmax 0..2.
    SysctlDef("net.ipv4.tcp_tw_reuse", 2, "dou8vec_minmax", 0, 2,
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux 6.13+: tcp_sk_init() sysctl_tcp_tw_reuse_delay = 1000 (ms),
    # proc_douintvec_minmax 1..TCP_PAWS_MSL * MSEC_PER_SEC.
    SysctlDef("net.ipv4.tcp_tw_reuse_delay", 1000, "douintvec_minmax", 1, 60000,
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: tcp_sk_init(): TCP_RETR1 (3) and TCP_RETR2 (15) retransmissions of data
    # before the route is doubted and before the connection gives up (as the time the
    # RTO backoff takes: tcp_model_timeout()), tcp_orphan_retries 0 (8 while the RTO is
    # under TCP_RTO_MAX), all proc_dou8vec_minmax.
    SysctlDef("net.ipv4.tcp_retries1", 3, "dou8vec_minmax", 0, 255,
              linux="net/ipv4/sysctl_net_ipv4.c"),
    SysctlDef("net.ipv4.tcp_retries2", 15, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    SysctlDef("net.ipv4.tcp_orphan_retries", 0, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: TCP_FASTRETRANS_THRESH (3): duplicate ACKs that start fast retransmit,
    # proc_dointvec.
    SysctlDef("net.ipv4.tcp_reordering", 3, "dointvec",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: TCP_KEEPALIVE_TIME (2 h) and TCP_KEEPALIVE_INTVL (75 s), proc_dointvec_jiffies;
    # TCP_KEEPALIVE_PROBES (9), proc_dou8vec_minmax. TCP_KEEPIDLE/INTVL/CNT override them.
    SysctlDef("net.ipv4.tcp_keepalive_time", 7200, "dointvec_jiffies",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    SysctlDef("net.ipv4.tcp_keepalive_intvl", 75, "dointvec_jiffies",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    SysctlDef("net.ipv4.tcp_keepalive_probes", 9, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: tcp_sk_init() sysctl_tcp_timestamps = 1 (with per-connection random
    # offsets), proc_dou8vec_minmax.
    SysctlDef("net.ipv4.tcp_timestamps", 1, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: sysctl_tcp_rfc1337 = 0 (a RST kills a TIME_WAIT socket), dou8vec_minmax.
    SysctlDef("net.ipv4.tcp_rfc1337", 0, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: tcp_sk_init() sysctl_tcp_fastopen = TFO_CLIENT_ENABLE (1), proc_dointvec.
    SysctlDef("net.ipv4.tcp_fastopen", 1, "dointvec",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: sysctl_ip_nonlocal_bind = 0 (inet_can_nonlocal_bind()), proc_dou8vec_minmax.
    SysctlDef("net.ipv4.ip_nonlocal_bind", 0, "dou8vec_minmax",
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: sysctl_ip_autobind_reuse = 0 (inet_csk_find_open_port()), dou8vec_minmax 0..1.
    SysctlDef("net.ipv4.ip_autobind_reuse", 0, "dou8vec_minmax", 0, 1,
              linux="net/ipv4/sysctl_net_ipv4.c"),
    # Linux: inet_init_net() sets 1 0 (nobody may make ping sockets) in every new
    # namespace; ipv4_ping_group_range(): two gids 0..GID_T_MAX (unsigned: 6.18 takes
    # 2147483648, refuses -1), an inverted pair resets it to 1 0.
    SysctlDef("net.ipv4.ping_group_range", (1, 0), "ping_group_range", 0, 0xFFFFFFFE,
              linux="net/ipv4/sysctl_net_ipv4.c ipv4_ping_group_range()"),
)}


def canonical_name(name: str) -> str:
    """sysctl(8)'s spelling rules: slashes separate when present (then dots are part of
    a component), else dots do; a leading /proc/sys/ is dropped. Returns the dotted name."""
    name = name.strip()
    if name.startswith("/proc/sys/"):
        name = name[len("/proc/sys/"):]
    if "/" in name:
        return ".".join(part for part in name.split("/") if part)
    return name


def lookup(name: str) -> SysctlDef:
    """The definition of `name`; SyscallError(ENOENT) if sysemu does not own it (as an
    open of a missing /proc/sys file fails)."""
    try:
        return SYSCTLS[canonical_name(name)]
    except KeyError:
        raise SyscallError(Errno.ENOENT, f"sysctl {name!r}") from None


def register_defaults(kernel) -> None:
    """Give every sysctl sysemu owns its Linux default; values already set are kept."""
    for d in SYSCTLS.values():
        kernel.sysctl.setdefault(d.name, d.default)


def sysctl_get(kernel, name: str) -> Value:
    """The current value: an int, or (lo, hi) for ip_local_port_range. A sysctl never set
    reads as its default."""
    d = lookup(name)
    return kernel.sysctl.get(d.name, d.default)


def sysctl_format(kernel, name: str) -> str:
    """The text a read of /proc/sys/<name> returns. Linux: __do_proc_dointvec() read side
    (values separated by tabs, then a newline); do_proc_douintvec_r() ("%u\\n");
    do_proc_dointvec_jiffies_conv() (seconds)."""
    value = sysctl_get(kernel, name)
    if isinstance(value, tuple):
        return "\t".join(str(v) for v in value) + "\n"
    return f"{value}\n"


def sysctl_set(kernel, name: str, text: str | bytes) -> int:
    """Write `text` as a write(2) of it to /proc/sys/<name> at offset 0 would. Returns the
    byte count Linux reports (what the parser consumed); raises SyscallError(EINVAL) for a
    value Linux rejects, and leaves the value unchanged then."""
    d = lookup(name)
    data = text.encode() if isinstance(text, str) else bytes(text)
    data = data[: PAGE_SIZE - 1]                      # Linux: left > PAGE_SIZE - 1
    # Linux parses a NUL-terminated copy (memdup_user_nul): text past a NUL is never seen,
    # the NUL itself is (an invalid trailer).
    data = data.split(b"\0", 1)[0] + (b"\0" if b"\0" in data else b"")
    handler = _HANDLERS[d.handler]
    value, consumed = handler(kernel, d, data)
    kernel.sysctl[d.name] = value
    return consumed


def configure(kernel, pairs: Iterable[str | tuple[str, str]]) -> None:
    """Apply `sysemu run --sysctl NAME=VALUE` settings, in order (so a port range below
    1024 needs ip_unprivileged_port_start lowered first, as on Linux). Raises ValueError
    naming the bad pair; nothing after it is applied."""
    register_defaults(kernel)
    for pair in pairs:
        if isinstance(pair, tuple):
            name, value = pair
            shown = f"{name}={value}"
        else:
            shown = str(pair)
            if "=" not in shown:
                raise ValueError(f"--sysctl {shown!r}: expected NAME=VALUE, "
                                 f"for example net.core.somaxconn=1024")
            name, value = shown.split("=", 1)
        name = name.strip()
        try:
            d = lookup(name)
        except SyscallError:
            known = ", ".join(sorted(SYSCTLS))
            raise ValueError(f"--sysctl {shown!r}: sysemu does not provide sysctl "
                             f"{name!r}; it provides: {known}") from None
        try:
            sysctl_set(kernel, d.name, str(value).strip())
        except SyscallError:
            raise ValueError(f"--sysctl {shown!r}: invalid value {str(value).strip()!r} "
                             f"for {d.name}: expected {d.describe()} (Linux would "
                             f"answer EINVAL)") from None


# ---- the parser: Linux kernel/sysctl.c, proc_skip_spaces() and proc_get_long() ----

def _einval(why: str) -> SyscallError:
    return SyscallError(Errno.EINVAL, why)


def _skip_spaces(data: bytes, pos: int) -> int:
    """Linux: proc_skip_spaces() (skip_spaces(), i.e. isspace())."""
    while pos < len(data) and data[pos] in _SPACES:
        pos += 1
    return pos


def _strtoul(text: bytes) -> tuple[int, int]:
    """Linux: strtoul_lenient(p, &p, 0, val) (_parse_integer_fixup_radix then
    _parse_integer): base 0, stops at the first non-digit; (value, digits used).
    EINVAL on unsigned long overflow."""
    base, pos = 10, 0
    if text[:1] == b"0":
        if text[1:2] in (b"x", b"X") and text[2:3] and text[2:3] in b"0123456789abcdefABCDEF":
            base, pos = 16, 2
        else:
            base = 8
    value = 0
    while pos < len(text):
        c = text[pos]
        if 0x30 <= c <= 0x39:
            digit = c - 0x30
        elif 0x61 <= c <= 0x66 or 0x41 <= c <= 0x46:
            digit = (c | 0x20) - 0x61 + 10
        else:
            break
        if digit >= base:
            break
        value = value * base + digit
        if value > ULONG_MAX:
            raise _einval("overflow")
        pos += 1
    return value, pos


def _get_long(data: bytes, pos: int) -> tuple[bool, int, int]:
    """Linux: proc_get_long() with proc_wspace_sep as the permitted trailers.
    Returns (negative, magnitude, new position)."""
    size = len(data) - pos
    if size <= 0:
        raise _einval("no value")
    tmp = data[pos: pos + min(size, _TMPBUFLEN - 1)]
    p = 0
    neg = False
    if tmp[:1] == b"-" and size > 1:
        neg, p = True, 1
    if not tmp[p: p + 1].isdigit():
        raise _einval("not a number")
    value, used = _strtoul(tmp[p:].split(b"\0", 1)[0])
    length = p + used
    if length == _TMPBUFLEN - 1:
        raise _einval("number too long")
    if length < size and data[pos + length] not in _SEPARATORS:
        raise _einval("garbage after number")
    return neg, value, pos + length


def _parse_vector(data: bytes, count: int) -> tuple[list[tuple[bool, int]], int]:
    """Linux: the write side of __do_proc_dointvec(): up to `count` values; EINVAL when
    there is none. Returns the values and the byte count Linux reports."""
    values: list[tuple[bool, int]] = []
    pos = 0
    while pos < len(data) and len(values) < count:
        pos = _skip_spaces(data, pos)
        if pos >= len(data):
            break
        neg, value, pos = _get_long(data, pos)
        values.append((neg, value))
    if not values:
        raise _einval("no value")
    pos = _skip_spaces(data, pos)
    return values, pos


def _to_int(neg: bool, value: int) -> int:
    """Linux: do_proc_dointvec_conv()."""
    if neg:
        if value > INT_MAX + 1:
            raise _einval("below INT_MIN")
        return -value
    if value > INT_MAX:
        raise _einval("above INT_MAX")
    return value


def _check_range(d: SysctlDef, value: int) -> int:
    """Linux: do_proc_dointvec_minmax_conv() (extra1/extra2)."""
    if (d.min is not None and value < d.min) or (d.max is not None and value > d.max):
        raise _einval(f"{value} out of range")
    return value


def _dointvec(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: kernel/sysctl.c proc_dointvec()."""
    values, consumed = _parse_vector(data, 1)
    neg, value = values[0]
    return _to_int(neg, value), consumed


def _dointvec_minmax(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: kernel/sysctl.c proc_dointvec_minmax()."""
    values, consumed = _parse_vector(data, 1)
    neg, value = values[0]
    return _check_range(d, _to_int(neg, value)), consumed


def _dointvec_jiffies(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: kernel/sysctl.c proc_dointvec_jiffies(), do_proc_dointvec_jiffies_conv().
    Stored in seconds (Linux stores jiffies and reads back value / HZ: the same number)."""
    values, consumed = _parse_vector(data, 1)
    neg, value = values[0]
    if value > INT_MAX // HZ:
        raise _einval("too many seconds")
    return (-value if neg else value), consumed


def _dou8vec_minmax(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: kernel/sysctl.c proc_dou8vec_minmax() -> do_proc_douintvec_w(): one value,
    no sign, within extra1..extra2 (default 0..U8_MAX). Linux reports the whole write."""
    return _douintvec(d, data, U8_MAX)


def _douintvec_minmax(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: kernel/sysctl.c proc_douintvec_minmax(): as proc_dou8vec_minmax() with an
    unsigned int (default bound UINT_MAX)."""
    return _douintvec(d, data, UINT_MAX)


def _douintvec(d: SysctlDef, data: bytes, limit: int) -> tuple[Value, int]:
    """Linux: do_proc_douintvec_w() with the table's extra1..extra2 (0..limit unset)."""
    pos = _skip_spaces(data, 0)
    if pos >= len(data):
        raise _einval("no value")
    neg, value, _ = _get_long(data, pos)
    if neg:
        raise _einval("negative")
    if value > UINT_MAX:
        raise _einval("above UINT_MAX")
    lo = 0 if d.min is None else d.min
    hi = limit if d.max is None else d.max
    if not lo <= value <= hi:
        raise _einval(f"{value} out of range")
    return value, len(data)


def _local_port_range(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range(): proc_dointvec_minmax
    over the current pair (one value given changes only the low end), then EINVAL unless
    lo <= hi and lo >= ip_unprivileged_port_start."""
    values, consumed = _parse_vector(data, 2)
    pair = list(kernel.sysctl.get(d.name, d.default))
    for i, (neg, value) in enumerate(values):
        pair[i] = _check_range(d, _to_int(neg, value))
    lo, hi = pair
    prot_sock = sysctl_get(kernel, "net.ipv4.ip_unprivileged_port_start")
    if hi < lo or lo < prot_sock:
        raise _einval(f"range {lo} {hi} (unprivileged ports start at {prot_sock})")
    return (lo, hi), consumed


def _privileged_ports(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: net/ipv4/sysctl_net_ipv4.c ipv4_privileged_ports(): 0..65535, then EINVAL if
    the local port range would start below it."""
    values, consumed = _parse_vector(data, 1)
    neg, value = values[0]
    pports = _check_range(d, _to_int(neg, value))
    lo, _hi = sysctl_get(kernel, "net.ipv4.ip_local_port_range")
    if lo < pports:
        raise _einval(f"{pports} above the local port range start {lo}")
    return pports, consumed


def _ping_group_range(kernel, d: SysctlDef, data: bytes) -> tuple[Value, int]:
    """Linux: net/ipv4/sysctl_net_ipv4.c ipv4_ping_group_range(): over the current pair
    (one value changes the low end), each 0..GID_T_MAX, no sign; high below low means
    "1 0" (nobody)."""
    values, consumed = _parse_vector(data, 2)
    pair = list(kernel.sysctl.get(d.name, d.default))
    for i, (neg, value) in enumerate(values):
        if neg and value:
            raise _einval("a negative group id")
        pair[i] = _check_range(d, value)
    lo, hi = pair
    if hi < lo:
        lo, hi = 1, 0
    return (lo, hi), consumed


_HANDLERS = {
    "ping_group_range": _ping_group_range,
    "dointvec": _dointvec,
    "dointvec_minmax": _dointvec_minmax,
    "dointvec_jiffies": _dointvec_jiffies,
    "dou8vec_minmax": _dou8vec_minmax,
    "douintvec_minmax": _douintvec_minmax,
    "local_port_range": _local_port_range,
    "privileged_ports": _privileged_ports,
}
