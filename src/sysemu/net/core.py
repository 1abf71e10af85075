"""The network namespace and the socket object every protocol function works on.

Linux: include/net/net_namespace.h (struct net), include/net/sock.h (struct sock,
struct proto), include/net/inet_sock.h, include/linux/tcp.h, include/net/tcp.h (the
timing constants), include/net/inet_connection_sock.h.

sysemu keeps struct sock, inet_sock, inet_connection_sock and tcp_sock in one class,
`Sock`: only TCP over loopback lives here. Time is `kernel.clock.now()` (seconds);
timers are a heap the host drives with `Net.next_deadline()` / `Net.run_timers(now)`.
The protocol above is handed in, as Linux registers it: `Net` gets the receive handler
and the tables (inet_add_protocol(), tcp_hashinfo), each `Sock` its `sk_prot`.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
import itertools
from dataclasses import dataclass
from typing import Callable

from sysemu.abi.errno import ERESTARTSYS, Errno
from sysemu.abi.inet import IN6ADDR_ANY, INADDR_ANY, V4MAPPED_PREFIX, TcpFlags, TcpState
from sysemu.abi.limits import HZ, INT_MAX, ULONG_MAX
from sysemu.abi.socket import AF_INET, SOCK_STREAM
from sysemu.kernel.sysctl import sysctl_get
from sysemu.kernel.wait import WaitQueue
from sysemu.net.secure_seq import NetSecret

# Linux: net.core.rmem_max / wmem_max and tcp_rmem[1] / tcp_wmem[1] defaults on the
# reference host (probed on 6.18: SO_RCVBUF 131072, SO_SNDBUF 16384 for a new socket).
RMEM_MAX = 4194304
WMEM_MAX = 4194304
TCP_RMEM_DEFAULT = 131072
TCP_WMEM_DEFAULT = 16384

# Linux: include/net/tcp.h, in seconds
TCP_TIMEOUT_INIT = 1.0      # initial RTO
TCP_RTO_MAX = 120.0
TCP_RTO_MIN = 0.2           # the RTO once a round trip was measured
TCP_TIMEWAIT_LEN = 60.0
TCP_DELACK_MIN = 0.04       # HZ/25: the delayed ACK of a FIN (ATO on a fresh connection)
TCP_DELACK_MAX = 0.2        # HZ/5: the longest delayed ACK
TCP_ATO_MIN = 0.04          # HZ/25: the delayed-ACK timeout a connection starts with
TCP_MAX_QUICKACKS = 16      # segments ACKed at once in quick-ack mode
TCP_KEEPALIVE_TIME = 7200   # seconds idle before the first probe (TCP_KEEPIDLE's default)
TCP_KEEPALIVE_INTVL = 75    # seconds between probes (TCP_KEEPINTVL's default)
TCP_KEEPALIVE_PROBES = 9    # unanswered probes before ETIMEDOUT (TCP_KEEPCNT's default)
TCP_RESOURCE_PROBE_INTERVAL = 0.5   # HZ/2: a keepalive probe that could not be sent
TCP_INIT_CWND = 10          # the initial congestion window, in segments (RFC 6928)
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
# Linux: enum tcp_ca_state (icsk_ca_state)
TCP_CA_Open, TCP_CA_Disorder, TCP_CA_CWR, TCP_CA_Recovery, TCP_CA_Loss = range(5)
TCP_PAWS_MSL = 60           # per-host timestamps are invalid after this (seconds)
TCP_PAWS_WRAP = INT_MAX // HZ   # a ts_recent this old (24 days) no longer rejects
# Linux: net.ipv4.tcp_invalid_ratelimit's default (HZ/2): at most one ACK per 0.5 s to
# out-of-window segments (tcp_oow_rate_limited()).
TCP_INVALID_RATELIMIT = 0.5

# Linux: include/net/sock.h sk_userlocks bits
SOCK_SNDBUF_LOCK = 1
SOCK_RCVBUF_LOCK = 2
SOCK_BINDADDR_LOCK = 4
SOCK_BINDPORT_LOCK = 8


def sysctl(kernel, name: str):
    """One place that reads a sysctl (int, or (lo, hi) for ip_local_port_range): the
    sandbox's value, or Linux's default (kernel/sysctl.py's table) when never set."""
    value = kernel.sysctl.get(name)
    return value if value is not None else sysctl_get(kernel, name)


def tcp_clock_ms(now: float) -> int:
    """Linux: include/net/tcp.h tcp_clock_ms(): the TCP clock in milliseconds (what
    timestamps and TIME_WAIT entry stamps count in)."""
    return int(now * 1000)


def ktime_get_seconds(now: float) -> int:
    """Linux: ktime_get_seconds(): whole seconds (what ts_recent_stamp counts in)."""
    return int(now)


def before(seq1: int, seq2: int) -> bool:
    """Linux: include/net/tcp.h before(): seq1 precedes seq2 in u32 sequence space."""
    return ((seq1 - seq2) & 0xFFFFFFFF) >= 0x80000000


def after(seq1: int, seq2: int) -> bool:
    """Linux: include/net/tcp.h after(): before(seq2, seq1), written out (a call fewer on
    every segment)."""
    return ((seq2 - seq1) & 0xFFFFFFFF) >= 0x80000000


def tcp_paws_check(ts_recent: int, ts_recent_stamp: int, rcv_tsval: int, paws_win: int,
                   now: float) -> bool:
    """Linux: include/net/tcp.h tcp_paws_check(): the timestamp is not older than
    ts_recent (by more than paws_win), or ts_recent is too old or zero to judge."""
    if s32(ts_recent - rcv_tsval) <= paws_win:
        return True
    if ktime_get_seconds(now) - (ts_recent_stamp + TCP_PAWS_WRAP) >= 0:
        return True
    return not ts_recent


def tcp_paws_reject(ts_recent: int, ts_recent_stamp: int, rcv_tsval: int, rst: bool,
                    now: float) -> bool:
    """Linux: include/net/tcp.h tcp_paws_reject(): PAWS rejects the segment; a RST is
    accepted once ts_recent is older than TCP_PAWS_MSL."""
    if tcp_paws_check(ts_recent, ts_recent_stamp, rcv_tsval, 0, now):
        return False
    if rst and ktime_get_seconds(now) - (ts_recent_stamp + TCP_PAWS_MSL) >= 0:
        return False
    return True


def s32(value: int) -> int:
    """(s32) of a u32 difference (how Linux compares timestamps)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def mapped(v4: bytes) -> bytes:
    """::ffff:a.b.c.d, the form every address takes on sysemu's virtual wire."""
    return V4MAPPED_PREFIX + v4


@dataclass(slots=True)
class Segment:
    """One TCP segment on the virtual wire. Addresses are 16-byte IPv6 (IPv4 v4-mapped).
    tsval/tsecr: the timestamp option (RFC 7323), tsval None when the segment has none."""
    saddr: bytes
    sport: int
    daddr: bytes
    dport: int
    seq: int
    ack: int
    flags: TcpFlags
    length: int = 0
    time: float = 0.0
    tsval: int | None = None
    tsecr: int = 0
    payload: bytes = b""        # the data bytes (length == len(payload) when carried)
    window: int = 65535         # the receive window offered, in bytes (no scaling)
    urg_ptr: int = 0            # with URG: the urgent pointer (offset past seq)
    csum_bad: bool = False      # a corrupted copy (the corrupt fault): fails the checksum

    @property
    def end_seq(self) -> int:
        """Linux: TCP_SKB_CB(skb)->end_seq: seq + SYN + FIN + payload length."""
        return (self.seq + self.length + (self.flags & 0x02 and 1)
                + (self.flags & 0x01)) & 0xFFFFFFFF

    @property
    def is_v4(self) -> bool:
        return self.saddr[:12] == V4MAPPED_PREFIX


# Linux: kernel/time/timer.c, the timer wheel: LVL_DEPTH levels of 64 buckets, each level's
# granularity 8 times the one below (LVL_CLK_SHIFT); a level takes timers due up to
# LVL_START(level + 1) jiffies away.
LVL_CLK_SHIFT = 3
LVL_SIZE = 64
LVL_DEPTH = 9           # HZ > 100
WHEEL_TIMEOUT_CUTOFF = (LVL_SIZE - 1) << ((LVL_DEPTH - 1) * LVL_CLK_SHIFT)
WHEEL_TIMEOUT_MAX = WHEEL_TIMEOUT_CUTOFF - (1 << ((LVL_DEPTH - 1) * LVL_CLK_SHIFT))


def calc_wheel_expiry(expires: int, clk: int) -> int:
    """Linux: timer.c calc_wheel_index() and calc_index(): the jiffy at which a timer due
    at jiffy `expires`, armed at jiffy `clk`, fires: rounded up past `expires` to its
    level's granularity (1 jiffy for timers less than 63 jiffies away, 8 below 504, 64
    below 4032, ...), never early."""
    delta = expires - clk
    if delta < 0:
        return clk
    if delta >= WHEEL_TIMEOUT_CUTOFF:
        expires = clk + WHEEL_TIMEOUT_MAX
    lvl = 0
    while lvl < LVL_DEPTH - 1 and delta >= (LVL_SIZE - 1) << (lvl * LVL_CLK_SHIFT):
        lvl += 1
    shift = lvl * LVL_CLK_SHIFT
    return ((expires >> shift) + 1) << shift


class Timer:
    """Linux: struct timer_list, one-shot. cancel() is del_timer()."""

    __slots__ = ("deadline", "fn", "cancelled")

    def __init__(self, deadline: float, fn: Callable[[float], None]):
        self.deadline = deadline
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.fn = None      # a cancelled timer waits in the heap: let its Sock go now


@dataclass(frozen=True)
class Proto:
    """Linux: struct proto (tcp_prot): the protocol's functions that the layers below it
    reach through sk->sk_prot. close is inet_release()'s (Net.release), disconnect
    inet_child_forget()'s.
    sysemu: Linux gives a sock's timers their handlers once (inet_csk_init_xmit_timers());
    sysemu's timers take theirs when armed, so the protocol carries the two that code
    below it arms: write_timer (icsk_retransmit_timer) and keepalive_timer (sk_timer,
    which also ends FIN_WAIT2 orphans). twsk_unique is twsk_prot->twsk_unique: may a
    connect (sk) take the 4-tuple of a TIME_WAIT sock (tw)?"""
    name: str
    close: Callable[["Net", "Sock", bool], None]
    disconnect: Callable[["Net", "Sock"], None]
    write_timer: Callable[["Net", "Sock"], None]
    keepalive_timer: Callable[["Net", "Sock"], None]
    twsk_unique: Callable[["Net", "Sock", "Sock", bool], bool]
    get_port: Callable[["Net", "Sock", int], None] | None = None   # None: inet_csk_get_port
    # datagram protocols: take a received datagram out of the queue once the answer is
    # in (consume(net, sk, skb, dropped)); the control messages a recvmsg of it gets
    # (cmsgs(net, sk, skb, compat) -> [(level, type, data)])
    consume: Callable | None = None
    cmsgs: Callable | None = None
    # recv with MSG_TRUNC returns the datagram's real length (udp_recvmsg(),
    # raw_recvmsg()); ping_recvmsg() returns what it copied
    trunc_real_len: bool = True


def struct_fields(*instance_fields: str):
    """A class whose body lists its fields with their defaults, as a C struct's
    declaration does (Sock), made a class of slots: each field a slot (`instance_fields`
    too: those its __init__ sets), and one function, `_init_fields(self)`, that stores
    every default; what else is set on an instance goes to its __dict__ as before.
    sysemu: a field left at a default on the class is found by two dict lookups and
    a read of a slot is one step; the model reads a few hundred fields a connection
    (slots: 9.4% fewer instructions a connection in bench/model_connrate.py, and the
    defaults filled from a tuple 2.7% more; README: Performance). A slot is also
    smaller than a dict entry (memory per connection)."""
    def make(cls):
        namespace = dict(vars(cls))
        defaults = {name: value for name, value in namespace.items()
                    if not name.startswith("_") and not callable(value)
                    and not isinstance(value, (property, staticmethod, classmethod))}
        for name in (*defaults, "__dict__", "__weakref__"):
            namespace.pop(name, None)
        namespace["__slots__"] = (*defaults, *instance_fields, "__dict__", "__weakref__")
        # the defaults are the arguments' defaults: the call fills them in C, and each
        # store is one STORE_ATTR of a slot
        names = list(defaults)
        source = (f"def _init_fields(self, {', '.join(names)}):\n"
                  + "".join(f"    self.{name} = {name}\n" for name in names))
        scope: dict = {}
        exec(source, scope)     # noqa: S102  (the class's own field names only)
        init_fields = scope["_init_fields"]
        init_fields.__defaults__ = tuple(defaults.values())
        namespace["_init_fields"] = init_fields
        return type(cls)(cls.__name__, cls.__bases__, namespace)
    return make


@struct_fields("id", "net", "family", "protocol", "uid", "wait", "mc_list", "sockflags",
               "tcp_opts", "sndq", "rcvq", "ofo")
class Sock:
    """Linux: struct sock + inet_sock + inet_connection_sock + tcp_sock (TCP only).

    What the host reads:
      state        TcpState (ESTABLISHED, LISTEN, SYN_SENT, CLOSE_WAIT, TIME_WAIT ...)
      family       AF_INET or AF_INET6
      local()      (addr, port) as the program sees it (getsockname)
      remote()     (addr, port) of the peer, or None
      peer         the other end's Sock once the connection is linked, else None
      ack_backlog, max_ack_backlog   accept queue length and limit (listeners)
      sk_err       pending error (SO_ERROR), 0 if none
      rcvbuf, sndbuf                 SO_RCVBUF / SO_SNDBUF as getsockopt reports them
      shutdown     RCV_SHUTDOWN | SEND_SHUTDOWN bits
      socket       the Socket (struct socket) it belongs to (None for a child not yet
                   accepted; kept after close, when `dead` is True)
      parent       the listener a child came from (None for active opens)
      dead         the program closed it (orphan: FIN_WAIT/TIME_WAIT/LAST_ACK live on)
      wait         the WaitQueue blocked accept/connect sleep on
      sk_prot      the protocol's functions (Proto); icsk_af_ops its address-family
                   ones (InetConnectionSockAfOps), both set by the protocol's init
    """

    _ids = itertools.count(1)

    # The fields, with their defaults (struct_fields() makes each a slot, stored by
    # __init__). Per-instance state (containers, the wait queue) is made in __init__.
    type = SOCK_STREAM
    state = TcpState.TCP_CLOSE
    socket = None
    sk_prot: Proto | None = None
    icsk_af_ops = None
    # inet_sock: addresses in network form (4-byte v4, 16-byte v6)
    rcv_saddr = INADDR_ANY                # inet_rcv_saddr
    v6_rcv_saddr = IN6ADDR_ANY            # sk_v6_rcv_saddr (AF_INET6 only)
    daddr = INADDR_ANY
    v6_daddr = IN6ADDR_ANY
    num = 0                               # inet_num: local port, 0 when unbound
    dport = 0
    ipv6only = False
    bound_dev_if = 0
    userlocks = 0                         # SOCK_BINDADDR_LOCK | SOCK_BINDPORT_LOCK
    bind_address_no_port = False
    freebind = False                      # IP_FREEBIND
    transparent = False                   # IP_TRANSPARENT
    priority = 0                          # SO_PRIORITY
    rcvlowat = 1                          # SO_RCVLOWAT
    # sock options
    reuse = False
    reuseport = False
    keepalive = False
    linger: tuple[int, int] = (0, 0)
    rcvbuf = TCP_RMEM_DEFAULT
    sndbuf = TCP_WMEM_DEFAULT
    rcvtimeo: float | None = None         # None: wait forever (MAX_SCHEDULE_TIMEOUT)
    sndtimeo: float | None = None
    max_pacing_rate = ULONG_MAX           # SO_MAX_PACING_RATE: ~0UL, no limit
    nodelay = False
    defer_accept = 0                      # rskq_defer_accept, in retransmits
    syn_retries = 0                       # icsk_syn_retries (TCP_SYNCNT); 0: sysctl
    total_rto = 0
    sk_err = 0
    sk_err_soft = 0
    shutdown = 0
    dead = False                          # SOCK_DEAD: orphaned (no file)
    # listening
    ack_backlog = 0
    max_ack_backlog = 0
    accept_queue = None                   # RequestSockQueue when listening
    bind_bucket = None                    # icsk_bind_hash
    hashed = False                        # in ehash
    # connection
    peer: Sock | None = None
    isn = 0
    write_seq = 0                         # the next connect's ISN; 0: secure_tcp_seq()
    snd_nxt = 0
    rcv_nxt = 0
    # timestamps (tp->rx_opt): negotiated, the peer's latest tsval and when it came
    # (seconds), the offset added to ours (tp->tsoffset)
    tstamp_ok = False
    ts_recent = 0
    ts_recent_stamp = 0
    tsoffset = 0
    # TIME_WAIT (struct tcp_timewait_sock): entered at (ms), last out-of-window ACK
    tw_entry_stamp = 0
    tw_last_oow_ack_time: float | None = None
    retransmits = 0                       # icsk_retransmits
    backoff = 0
    total_retrans = 0
    retrans_stamp = 0.0
    rto = TCP_TIMEOUT_INIT
    timer: Timer | None = None            # retransmit / time-wait / fin-wait2 timer
    delack: Timer | None = None           # the delayed ACK (ICSK_TIME_DACK)
    parent: Sock | None = None            # the listener a child came from
    data_retries = -1                     # ACK-carrying data retransmissions, -1: none
    # The data path (tcp_sock), used when the bytes go through the model (--datapath
    # model; in the native data path the queues stay empty). sndq holds the bytes from
    # snd_una on: the first snd_sent of them are in flight, the rest not yet sent
    # (Linux: the write queue / rtx queue). rcvq holds what arrived in order and was
    # not yet read (sk_receive_queue; copied_seq is rcv_nxt - len(rcvq)).
    snd_una = 0
    snd_sent = 0
    snd_wnd_end = 0                       # snd_una + snd_wnd of the latest ACK
    snd_sml = 0                           # end of the last small segment (Minshall)
    fin_pending = False                   # FIN queued behind unsent data
    rcv_wnd_end = 0                       # right edge of the window last offered
    done = False                          # SOCK_DONE: a FIN came in
    nonagle = 0                           # TCP_NAGLE_OFF | TCP_NAGLE_CORK | TCP_NAGLE_PUSH
    mss_cache = 536
    urg_data: int | None = None           # the urgent byte not yet read (TCP_URG_VALID)
    urg_seq = 0                           # its sequence number
    urg_off = -1                          # where in rcvq the urgent mark is (-1: none)
    snd_up = 0                            # the send side's urgent pointer (0: none)
    rtx_timer: Timer | None = None        # data retransmission / zero-window probe
    # Loss recovery (tcp_sock): snd_max is the highest sequence number sent (BSD's
    # name: Linux keeps snd_nxt there and resends from its rtx queue; sysemu's snd_nxt
    # goes back to snd_una at an RTO). rtx_q: one [end_seq, sent at, retransmitted]
    # per segment in flight (packets_out is its length), a deque while any is (an empty
    # deque is 760 bytes, and an idle connection has two Socks).
    rtx_q: "deque | tuple" = ()
    snd_max = 0
    retrans_out = 0                       # segments of rtx_q sent more than once
    snd_cwnd = TCP_INIT_CWND              # in segments
    snd_ssthresh = TCP_INFINITE_SSTHRESH
    snd_cwnd_cnt = 0
    is_cwnd_limited = False
    ca_state = TCP_CA_Open
    dupacks = 0                           # Reno's sacked_out: duplicate ACKs counted
    high_seq = 0                          # snd_max when recovery or loss began
    # the RTT estimator (tcp_rtt_estimator), in microseconds as Linux keeps them
    srtt_us = 0                           # smoothed RTT << 3
    mdev_us = 0                           # mean deviation << 2
    mdev_max_us = 0
    rttvar_us = 0
    rtt_seq = 0
    # keepalive and the user timeout
    ka_timer: Timer | None = None         # sk_timer while connected (keepalive)
    probes_out = 0                        # icsk_probes_out: unanswered probes
    rcv_tstamp = 0.0                      # when the last ACK came (tp->rcv_tstamp)
    lrcvtime = 0.0                        # when the last segment came (icsk_ack.lrcvtime)
    # delayed ACKs (icsk_ack): quick-ack segments left, ATO, pingpong, what is owed
    ack_quick = 0
    ack_ato = 0.0
    ack_pingpong = 0
    ack_pending = 0                       # ICSK_ACK_SCHED | ICSK_ACK_TIMER | ...
    rcv_wup = 0                           # rcv_nxt when the last ACK went out
    rcv_wnd = 0                           # the window that ACK offered
    rcv_mss = 536                         # icsk_ack.rcv_mss: the peer's segment size
    # tcp_info counters
    bytes_sent = 0
    bytes_acked = 0
    bytes_received = 0
    segs_out = 0
    segs_in = 0
    data_segs_out = 0
    data_segs_in = 0

    def __init__(self, net: "Net", family: int, protocol: int, uid: int = 0):
        self._init_fields()
        self.id = next(Sock._ids)
        self.net = net
        self.family = family
        self.protocol = protocol
        self.uid = uid
        self.wait = WaitQueue(f"sock{self.id}")
        self.mc_list: list[tuple[bytes, int]] = []   # inet->mc_list: (group, ifindex)
        self.sockflags: dict[int, bool] = {}  # SO_DEBUG, SO_DONTROUTE, SO_BROADCAST ...
        self.tcp_opts: dict = {}              # other stored options (keepidle, tos ...)
        self.sndq = bytearray()
        self.rcvq = bytearray()
        self.ofo: dict[int, bytes] = {}       # out-of-order segments by sequence number

    # -- views -------------------------------------------------------------------
    def wire_local(self) -> bytes:
        return mapped(self.rcv_saddr) if self.family == AF_INET else self.v6_rcv_saddr

    def wire_remote(self) -> bytes:
        return mapped(self.daddr) if self.family == AF_INET else self.v6_daddr

    def local(self) -> tuple[bytes, int]:
        if self.family == AF_INET:
            return self.rcv_saddr, self.num
        return self.v6_rcv_saddr, self.num

    def remote(self) -> tuple[bytes, int] | None:
        if not self.dport:
            return None
        return (self.daddr if self.family == AF_INET else self.v6_daddr), self.dport

    def __repr__(self) -> str:
        return f"<Sock {self.id} {self.state.name} :{self.num}->{self.dport}>"


def sock_intr_errno(timeo: float | None) -> int:
    """Linux: include/net/sock.h sock_intr_errno(): a socket wait that a signal interrupts
    fails with EINTR when it had a timeout (SO_RCVTIMEO/SO_SNDTIMEO: such calls are never
    restarted, signal(7)), else ERESTARTSYS (restarted under SA_RESTART)."""
    return ERESTARTSYS if timeo is None else Errno.EINTR


def sk_acceptq_is_full(sk: Sock) -> bool:
    """Linux: include/net/sock.h sk_acceptq_is_full(): `>`, so backlog+1 fit."""
    return sk.ack_backlog > sk.max_ack_backlog


class Net:
    """Linux: struct net, one network namespace: loopback only (127.0.0.0/8, ::1).

    hashinfo: the TCP tables (InetHashInfo). rcv: the handler every segment the wire
    delivers goes to (tcp_v4_rcv). mib: Linux counter name -> count (TcpExt and Tcp
    names, "CurrEstab" computed). wire: callables given every Segment the virtual wire
    carries (pcap, tracing). link_delay: one-way delay of loopback in seconds (0:
    delivered at once); drop: a predicate, True drops a segment (fault injection);
    nf_queue: a predicate given each SYN no socket owns, True takes it (as an NFQUEUE rule
    hands a packet to user space; net/ipv4/portfwd.py)."""

    MIB_NAMES = ("ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies",
                 "TCPTimeouts", "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnLinger",
                 "TCPSynRetrans", "ActiveOpens", "PassiveOpens", "AttemptFails",
                 "EstabResets", "InSegs", "OutSegs", "RetransSegs", "OutRsts", "InErrs",
                 "TW", "TWRecycled", "TWKilled", "PAWSTimewait", "TCPACKSkippedTimeWait")

    def __init__(self, kernel, hashinfo, rcv: Callable[["Net", Segment], None]):
        """`hashinfo` and `rcv` are the protocol's (Linux: tcp_sk_init() and
        inet_add_protocol(&tcp_protocol)); sysemu.net.attach() hands them in."""
        self.kernel = kernel
        self.hashinfo = hashinfo
        self.rcv = rcv
        self._mib: dict[str, int] = {name: 0 for name in self.MIB_NAMES}
        self.wire: list[Callable[[Segment], None]] = []
        self.link_delay = 0.0
        self.drop: Callable[[Segment], bool] | None = None
        self.nf_queue: Callable[[Segment], bool] | None = None
        self._timers: list[tuple[float, int, Timer]] = []   # (fires, seq, timer) heap
        self._seq = itertools.count()
        self._rx: deque[Segment] = deque()
        self._delivering = False
        self.socks: set[Sock] = set()         # every live TCP Sock (for ss and CurrEstab)
        # UDP (net/ipv4/udp.py): its port table (attach() hands it in), its live socks,
        # and callables given (kind, SkBuff) for every datagram ("udp") and ICMP error
        # ("icmp") the loopback carries (pcap)
        self.udp_table = None
        self.udp_socks: set[Sock] = set()
        self.dgram_wire: list[Callable[[str, object], None]] = []
        # Linux: net_secret / ts_secret (secure_seq.c), once per sandbox
        self.secret = NetSecret(kernel.rng)
        self.boot_time = kernel.clock.now()
        # The clock's own now(), not a method that asks it: the model reads the time a
        # few dozen times a connection (time.monotonic itself on the host: no frame).
        self.now: Callable[[], float] = kernel.clock.now

    # -- counters ------------------------------------------------------------------
    @property
    def mib(self) -> dict[str, int]:
        out = dict(self._mib)
        out["CurrEstab"] = sum(1 for s in self.socks if s.state in
                               (TcpState.TCP_ESTABLISHED, TcpState.TCP_CLOSE_WAIT))
        return out

    def counters(self, names) -> dict[str, int]:
        """The counters `names`, as `mib` has them (only CurrEstab walks the sockets)."""
        return {name: self.mib[name] if name == "CurrEstab" else self._mib.get(name, 0)
                for name in names}

    def count(self, name: str, n: int = 1) -> None:
        self._mib[name] = self._mib.get(name, 0) + n

    def sysctl(self, name: str):
        return sysctl(self.kernel, name)

    def uptime(self) -> float:
        """Seconds since the namespace was made (the sandbox's boot): what the keyed
        hashes of secure_seq count time in."""
        return self.kernel.clock.now() - self.boot_time

    # -- timers ----------------------------------------------------------------------
    def add_timer(self, delay: float, fn: Callable[[float], None]) -> Timer:
        """Linux: kernel/time/timer.c mod_timer() -> internal_add_timer(): the timer is due
        `delay` seconds from now (its `deadline`, what /proc/net/tcp shows) and fires at
        its wheel bucket's expiry, the first tick at or after that on its level's
        granularity, so timers armed close together fire together, in one run_timers."""
        now = self.now()
        timer = Timer(now + delay, fn)
        clk = int((now - self.boot_time) * HZ)
        expires = clk + max(0, math.ceil(delay * HZ - 1e-9))
        fires = self.boot_time + calc_wheel_expiry(expires, clk) / HZ
        heapq.heappush(self._timers, (fires, next(self._seq), timer))
        return timer

    def add_hrtimer(self, delay: float, fn: Callable[[float], None]) -> Timer:
        """Linux: kernel/time/hrtimer.c hrtimer_start(): fires `delay` seconds from now,
        to the clock's resolution (netem's delays; the wire's link delay)."""
        timer = Timer(self.now() + delay, fn)
        heapq.heappush(self._timers, (timer.deadline, next(self._seq), timer))
        return timer

    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def run_timers(self, now: float) -> int:
        """Fire every timer due at `now` (in deadline order); returns how many fired."""
        fired = 0
        # Segments the timers send are delivered after every due timer has fired, as a
        # softirq drains its backlog: retransmitted SYNs that left together arrive together
        # (each gets its SYN-ACK before any handshake completes, as on Linux).
        nested, self._delivering = self._delivering, True
        try:
            while self._timers and self._timers[0][0] <= now:
                _, _, timer = heapq.heappop(self._timers)
                if timer.cancelled:
                    continue
                timer.cancelled = True
                timer.fn(now)
                fired += 1
        finally:
            self._delivering = nested
        if not nested and self._rx:
            self._deliver_queued()
        return fired

    def sk_free(self, sk: Sock) -> None:
        """Linux: the last sock_put() of an orphan (sk_free(), from
        inet_csk_destroy_sock() and inet_twsk_kill()): out of the namespace's sockets, the
        host told (released()), and the links cut that Linux cut at close:
        sock_orphan()'s sk_socket and __sock_release()'s sock->file (sysemu keeps them
        until here, so the host can find the Sock's File), and sysemu's `peer` link.
        The Sock, its Socket and File are then freed by their last reference going, not
        left as reference cycles for Python's cycle collector, whose full passes stall
        the supervisor in proportion to what it holds (README: Performance)."""
        if sk not in self.socks:
            return
        self.socks.discard(sk)
        self.sk_destruct(sk)

    def sk_destruct(self, sk: Sock) -> None:
        """The host told the Sock is gone (released()), and the links cut that Linux cuts
        at close (see sk_free(); datagram sockets come here from sk_common_release())."""
        self.kernel.host.released(sk)
        sock, sk.socket, sk.peer = sk.socket, None, None
        if sock is not None:
            sock.file = None

    def release(self, sock, unread: bool = False) -> None:
        """Linux: sock_close() -> inet_release() -> sk->sk_prot->close() (tcp_close()):
        the last reference to the socket's file is gone. `sock` is the Socket (or its
        Sock). A listener stops (queued children get RST); a connection sends FIN (RST
        if unread data remains, or with SO_LINGER 0) and, closing first, sits in
        TIME_WAIT for 60 s holding its port. kernel.host.released(sk) follows once the
        Sock is gone entirely."""
        sk = getattr(sock, "sk", sock)
        if sk is None or sk.dead:
            return
        sk.sk_prot.close(self, sk, unread)

    # -- the wire --------------------------------------------------------------------
    def transmit(self, seg: Segment) -> None:
        """ip_queue_xmit onto loopback: log, then deliver now or after link_delay."""
        seg.time = self.now()
        self.count("OutSegs")
        for hook in self.wire:
            hook(seg)
        if self.drop is not None and self.drop(seg):
            return
        if self.link_delay > 0:
            self.add_hrtimer(self.link_delay, lambda now, seg=seg: self._deliver(seg))
        else:
            self._deliver(seg)

    def _deliver(self, seg: Segment) -> None:
        # Delivery is a loop, not recursion: a segment sent while another is being
        # received waits its turn (as netif_rx queues to the backlog).
        self._rx.append(seg)
        if not self._delivering:
            self._deliver_queued()

    def _deliver_queued(self) -> None:
        self._delivering = True
        try:
            rcv = self.rcv
            rx = self._rx
            while rx:
                rcv(self, rx.popleft())
        finally:
            self._delivering = False
