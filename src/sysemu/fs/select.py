"""select(2), pselect6(2), poll(2) and ppoll(2) in the model data path.

Linux: fs/select.c (poll_select_set_timeout, poll_select_finish, core_sys_select,
do_select, kern_select, do_pselect, do_sys_poll, do_poll, do_pollfd, sys_poll, sys_ppoll,
poll_initwait, poll_freewait). One readiness core (`vfs_poll_fds`) serves the four
front-ends: a sysemu socket answers with its protocol's mask (sock_poll(): tcp_poll,
datagram_poll), any other descriptor is the host's and the host polls it on the
program's behalf (HostHooks.poll_host).

Under `sysemu run --datapath model` the filter traps poll and select always, ppoll only
without a signal mask (arg 3 NULL) and pselect6 only without its sigmask argument block
(arg 5 NULL, what glibc's select() passes): sysemu cannot apply a mask to the thread for
the time of the wait, so those run on the host, on the placeholders (README:
Limitations). In the native data path none of them is trapped, and a call that reaches
a handler there (tracing) is the host's.

Waiting: the call's own wait queue (PollWqueues, Linux's struct poll_wqueues) gets a
wake-up from each polled socket's queue (poll_wait()) and from the host, and the
notification is parked on it until the deadline; then one more pass answers (do_poll()'s
last loop). A signal ends the wait with EINTR whatever SA_RESTART says (Linux:
ERESTARTNOHAND for select, ERESTART_RESTARTBLOCK for poll; both EINTR once a handler
runs).
"""
from __future__ import annotations

from sysemu.abi.errno import Errno
from sysemu.abi.poll import (BITS_PER_LONG, POLLERR, POLLEX_SET, POLLFD, POLLHUP, POLLIN_SET,
                             POLLNVAL, POLLOUT_SET, TIMESPEC, TIMEVAL)
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from sysemu.kernel.syscalls import NEVER, CInt, CUInt, CULong, UserPtr, syscall
from sysemu.kernel.task import DATAPATH_MODEL
from sysemu.kernel.wait import WaitQueue
from sysemu.net.socket import Socket, sock_poll

NSEC_PER_SEC = 1_000_000_000
USEC_PER_SEC = 1_000_000
MSEC_PER_SEC = 1000
# Beyond this a timeout cannot end while anything runs (Linux: timespec64_add_safe()
# saturates at TIME64_MAX): it waits as if without one, and writes back what is left.
FOREVER = 1 << 40

# select(2) asks each descriptor for all three sets at once (Linux: wait_key_set())
SELECT_EVENTS = (POLLIN_SET | POLLOUT_SET | POLLEX_SET) & ~(POLLERR | POLLHUP)


class PollWqueues:
    """Linux: struct poll_wqueues: the call's wait queue, an entry on the wait queue of
    each socket polled (poll_wait()), and the host's watch of its descriptors; all taken
    off when the call stops waiting (poll_freewait())."""

    __slots__ = ("wait", "entries", "unwatch")

    def __init__(self):
        self.wait = WaitQueue("poll")
        self.entries: list[WaitQueue] = []
        self.unwatch = None

    def wake(self) -> None:
        """Linux: pollwake(): a polled file changed; the call polls again."""
        self.wait.wake_up()

    def poll_wait(self, queue: WaitQueue) -> None:
        """Linux: poll_wait() -> __pollwait()."""
        queue.add(self.wake)
        self.entries.append(queue)

    def freewait(self) -> None:
        """Linux: poll_freewait()."""
        for queue in self.entries:
            queue.remove(self.wake)
        self.entries.clear()
        cancel, self.unwatch = self.unwatch, None
        if cancel is not None:
            cancel()


class Timeout:
    """A call's end_time (Linux: struct timespec64 *end_time): `end` in clock seconds,
    None without a timeout; `zero` for a timeout of 0 (poll once, write nothing back)."""

    __slots__ = ("end", "zero")

    def __init__(self, end: float | None, zero: bool = False):
        self.end, self.zero = end, zero


def poll_select_set_timeout(task, sec: int, nsec: int) -> Timeout:
    """Linux: poll_select_set_timeout(): EINVAL unless 0 <= nsec < 1 s and sec >= 0. A
    call waiting again after a wake-up keeps its first attempt's end (task.deadline)."""
    if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
        raise SyscallError(Errno.EINVAL)
    if not sec and not nsec:
        return Timeout(None, zero=True)
    if task.deadline is not None:
        return Timeout(task.deadline)
    if sec >= FOREVER:
        return Timeout(task.kernel.clock.now() + FOREVER)
    return Timeout(task.kernel.clock.now() + sec + nsec / NSEC_PER_SEC)


def _remaining_ns(task, timeout: Timeout) -> int:
    left = timeout.end - task.kernel.clock.now()
    return max(int(round(left * NSEC_PER_SEC)), 0)


def poll_select_finish(task, timeout: Timeout | None, utime: int, timeval: bool) -> None:
    """Linux: poll_select_finish(): the time left written back to the caller's timeval
    (select) or timespec (pselect6, ppoll); nothing for a zero timeout; a write that
    faults is ignored (the call's result stands)."""
    if not utime or timeout is None or timeout.zero or timeout.end is None:
        return
    ns = _remaining_ns(task, timeout)
    sec, rest = divmod(ns, NSEC_PER_SEC)
    data = TIMEVAL.pack(sec, rest // 1000) if timeval else TIMESPEC.pack(sec, rest)
    try:
        task.mem.write(utime, data)
    except SyscallError:
        pass                        # Linux: the `sticky` path, no EFAULT


def _finishing(task, timeout: Timeout | None, utime: int, timeval: bool, call, *args) -> int:
    """call(task, *args), then poll_select_finish() whatever it returned or failed with (not
    while it waits: the time is written when the call ends)."""
    try:
        result = call(task, *args)
    except SyscallError:
        poll_select_finish(task, timeout, utime, timeval)
        raise
    poll_select_finish(task, timeout, utime, timeval)
    return result


def vfs_poll_fds(task, fds: list[tuple[int, int]], pt: PollWqueues | None) -> list[int]:
    """One pass over (fd, events): each descriptor's mask (Linux: vfs_poll()), limited to
    `events` | POLLERR | POLLHUP for the host's; POLLNVAL for a descriptor that is not
    open, 0 for a negative one. A sysemu socket answers from the model; the others in
    one go from the host. With `pt`, the call's wake-ups are set up too (poll_wait() on
    each socket, the host's watch of its descriptors)."""
    masks = [0] * len(fds)
    host: list[int] = []
    for i, (fd, events) in enumerate(fds):
        if fd < 0:
            continue
        try:
            file = task.files.lookup(fd)
        except HostPassthrough:
            host.append(i)
            continue
        except SyscallError:
            masks[i] = POLLNVAL
            continue
        sock = file.private_data
        if not isinstance(sock, Socket):
            host.append(i)          # a /proc file's placeholder holds its bytes
            continue
        masks[i] = sock_poll(sock)
        if pt is not None:
            pt.poll_wait(sock.wait)
    if host:
        revents, cancel = task.kernel.host.poll_host(task, [fds[i] for i in host],
                                                     pt.wake if pt is not None else None)
        for i, mask in zip(host, revents):
            masks[i] = mask
        if cancel is not None:
            pt.unwatch = cancel
    return masks


def poll_or_wait(task, fds: list[tuple[int, int]], timeout: Timeout | None,
                 count) -> list[int]:
    """One attempt of do_poll()'s and do_select()'s loop: the masks if `count(masks)`
    finds one ready or the time is up; else a second pass that sets up the wake-ups
    (Linux's first pass does both; here a call that will not wait pays for none) and,
    if still nothing, the wait (WouldBlock)."""
    masks = vfs_poll_fds(task, fds, None)
    if count(masks) or _timed_out(task, timeout):
        return masks
    pt = PollWqueues()
    try:
        masks = vfs_poll_fds(task, fds, pt)
        ready = count(masks)
    except BaseException:
        pt.freewait()
        raise
    if ready:
        pt.freewait()
        return masks
    raise _wait(task, pt, timeout)


def _wait(task, pt: PollWqueues, timeout: Timeout | None) -> WouldBlock:
    """The call waits on its own queue until a polled file wakes it or its end passes;
    then it runs again (on_timeout None) and polls once more."""
    return WouldBlock(pt.wait, None if timeout is None else timeout.end, on_timeout=None,
                      intr_errno=Errno.EINTR, cleanup=pt.freewait)


def _timed_out(task, timeout: Timeout | None) -> bool:
    if timeout is None:
        return False
    return timeout.zero or (timeout.end is not None and task.kernel.clock.now() >= timeout.end)


def _model(task) -> None:
    if task.kernel.datapath != DATAPATH_MODEL:
        raise HostPassthrough()


def _timespec_timeout(task, tsp: int, sigmask: int) -> Timeout | None:
    """ppoll's and pselect6's start: the host's outside the model data path or with a
    signal mask (a register: never decided from user memory), then the timespec read
    (get_timespec64(): EFAULT) and checked (EINVAL); None for a NULL one."""
    _model(task)
    if sigmask:
        raise HostPassthrough()
    if not tsp:
        return None
    return poll_select_set_timeout(task, *TIMESPEC.unpack(task.mem.read(tsp, TIMESPEC.size)))


# -- poll -----------------------------------------------------------------------------

def do_sys_poll(task, ufds: int, nfds: int, timeout: Timeout | None) -> int:
    """Linux: fs/select.c do_sys_poll(): EINVAL for more entries than RLIMIT_NOFILE, the
    pollfds copied in (EFAULT), do_poll(): each entry's revents (its events, POLLERR and
    POLLHUP, POLLNVAL for a closed fd, 0 for a negative one) until one is ready, the time
    is up or a signal comes; the revents copied out (EFAULT). Returns how many entries
    have revents."""
    if nfds > task.kernel.host.rlimit_nofile(task):
        raise SyscallError(Errno.EINVAL)
    raw = task.mem.read(ufds, nfds * POLLFD.size) if nfds else b""
    entries = [POLLFD.unpack_from(raw, i * POLLFD.size) for i in range(nfds)]
    fds = [(fd, events & 0xFFFF) for fd, events, _ in entries]

    def polled(masks: list[int]) -> list[int]:
        return [mask if mask == POLLNVAL else mask & (events | POLLERR | POLLHUP)
                for mask, (fd, events) in zip(masks, fds)]

    revents = polled(poll_or_wait(task, fds, timeout, lambda m: any(polled(m))))
    count = sum(1 for r in revents if r)
    if nfds:
        task.mem.write(ufds, b"".join(POLLFD.pack(fd, _s16(events), _s16(r))
                                      for (fd, events, _), r in zip(entries, revents)))
    return count


def _s16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


@syscall("poll", abis=("64",), trap_when=NEVER, datapath=True)
def sys_poll(task, ufds: UserPtr, nfds: CUInt, timeout_msecs: CInt) -> int:
    """poll(2). Linux: fs/select.c SYSCALL_DEFINE3(poll): a negative timeout waits for
    ever; nothing is written back but the revents."""
    _model(task)
    timeout = None
    if timeout_msecs >= 0:
        timeout = poll_select_set_timeout(task, timeout_msecs // MSEC_PER_SEC,
                                          timeout_msecs % MSEC_PER_SEC * 1_000_000)
    return do_sys_poll(task, ufds, nfds, timeout)


@syscall("ppoll", abis=("64",), trap_when=NEVER, datapath=True,
         datapath_when=(((3, "eq", 0),),))
def sys_ppoll(task, ufds: UserPtr, nfds: CUInt, tsp: UserPtr, sigmask: UserPtr,
              sigsetsize: CULong) -> int:
    """ppoll(2) without a signal mask. Linux: fs/select.c SYSCALL_DEFINE5(ppoll): the
    timespec read (EFAULT) and checked (EINVAL), do_sys_poll(), the time left written
    back (poll_select_finish()). With a mask the host runs it (the filter does not trap
    it; the handler checks the register too)."""
    timeout = _timespec_timeout(task, tsp, sigmask)
    return _finishing(task, timeout, tsp, False, do_sys_poll, ufds, nfds, timeout)


# -- select ---------------------------------------------------------------------------

def _fds_bytes(n: int) -> int:
    """Linux: FDS_BYTES(): whole longs."""
    return (n + BITS_PER_LONG - 1) // BITS_PER_LONG * 8


def _get_fd_set(task, n: int, ufdset: int) -> int:
    """Linux: get_fd_set(): the first n bits (whole longs) of the caller's fd_set
    (EFAULT); 0 for a NULL set."""
    if not ufdset:
        return 0
    return int.from_bytes(task.mem.read(ufdset, _fds_bytes(n)), "little")


def do_select(task, n: int, inp: int, outp: int, exp: int,
              timeout: Timeout | None) -> tuple[int, int, int, int]:
    """Linux: fs/select.c do_select(): EBADF for a set bit naming a descriptor that is not
    open (max_select_fd()), then each descriptor with a bit in any set: readable on
    POLLIN_SET, writable on POLLOUT_SET, exceptional on POLLEX_SET, until one is ready,
    the time is up or a signal comes. Returns (count, res_in, res_out, res_ex)."""
    wanted = inp | outp | exp
    fds = []
    bits = wanted
    while bits:
        low = bits & -bits
        fd = low.bit_length() - 1
        events = (POLLIN_SET if inp & low else 0) | (POLLOUT_SET if outp & low else 0) \
            | (POLLEX_SET if exp & low else 0)
        fds.append((fd, events & SELECT_EVENTS))
        bits ^= low

    def ready(masks: list[int]) -> tuple[int, int, int, int]:
        """(count, res_in, res_out, res_ex); EBADF for a closed descriptor."""
        if POLLNVAL in masks:
            raise SyscallError(Errno.EBADF)
        res_in = res_out = res_ex = count = 0
        for (fd, _), mask in zip(fds, masks):
            bit = 1 << fd
            if inp & bit and mask & POLLIN_SET:
                res_in |= bit
                count += 1
            if outp & bit and mask & POLLOUT_SET:
                res_out |= bit
                count += 1
            if exp & bit and mask & POLLEX_SET:
                res_ex |= bit
                count += 1
        return count, res_in, res_out, res_ex

    return ready(poll_or_wait(task, fds, timeout, lambda masks: ready(masks)[0]))


def core_sys_select(task, n: int, inp: int, outp: int, exp: int,
                    timeout: Timeout | None) -> int:
    """Linux: fs/select.c core_sys_select(): EINVAL for a negative n, n capped at the
    descriptor table's size (max_fds: FD_SETSIZE is no limit here), the three sets read
    (EFAULT), do_select(), then each set given written with its result (EFAULT)."""
    if n < 0:
        raise SyscallError(Errno.EINVAL)
    if n > BITS_PER_LONG:           # the smallest table has BITS_PER_LONG entries
        n = min(n, task.kernel.host.max_fds(task))
    sets = [_get_fd_set(task, n, p) for p in (inp, outp, exp)]
    count, *results = do_select(task, n, *sets, timeout)
    size = _fds_bytes(n)
    pieces = tuple((p, r.to_bytes(size, "little")) for p, r in zip((inp, outp, exp), results)
                   if p)
    if pieces:
        task.mem.writev(pieces)
    return count


@syscall("select", abis=("64",), trap_when=NEVER, datapath=True)
def sys_select(task, n: CInt, inp: UserPtr, outp: UserPtr, exp: UserPtr, tvp: UserPtr) -> int:
    """select(2). Linux: fs/select.c kern_select(): the timeval read (EFAULT) and checked
    (EINVAL; microseconds past a second carry into the seconds), core_sys_select(), the
    time left written back (poll_select_finish()), after an error too."""
    _model(task)
    timeout = None
    if tvp:
        sec, usec = TIMEVAL.unpack(task.mem.read(tvp, TIMEVAL.size))
        carry = int(usec / USEC_PER_SEC)            # C division: towards zero
        timeout = poll_select_set_timeout(task, sec + carry,
                                          (usec - carry * USEC_PER_SEC) * 1000)
    return _finishing(task, timeout, tvp, True, core_sys_select, n, inp, outp, exp, timeout)


@syscall("pselect6", abis=("64",), trap_when=NEVER, datapath=True,
         datapath_when=(((5, "eq", 0),),))
def sys_pselect6(task, n: CInt, inp: UserPtr, outp: UserPtr, exp: UserPtr, tsp: UserPtr,
                 sig: UserPtr) -> int:
    """pselect6(2) without its sigmask block. Linux: fs/select.c do_pselect(): the timespec
    read (EFAULT) and checked (EINVAL), core_sys_select(), the time left written back.
    With the block (which may name a mask) the host runs it."""
    timeout = _timespec_timeout(task, tsp, sig)
    return _finishing(task, timeout, tsp, False, core_sys_select, n, inp, outp, exp, timeout)

