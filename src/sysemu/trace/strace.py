"""strace-style trace lines for the calls sysemu sees.

The supervisor calls `Tracer.enter()` when a notification arrives, before dispatch (input
arguments, such as the sockaddr of bind/connect, are read from user memory then), and
`Tracer.exit()` once the response is known (output arguments, such as accept's address,
are read from the memory as the call left it). A call that waits in between prints as
strace -f prints it when another line intervenes:

    [pid  1234] accept4(3,  <unfinished ...>
    [pid  1235] connect(4, {...}, 16) = 0
    [pid  1234] <... accept4 resumed>{sa_family=AF_INET, ...}, [16], SOCK_CLOEXEC) = 5

Lines follow strace 6.x: the result column is padded to column 40, `-1 ENAME (text)` for
errors, `(INJECTED)` after an injected result, `?` when the host ran the call and sysemu
does not know its result, ` <0.000021>` with -T (with_time).
"""
from __future__ import annotations

import struct
from typing import Callable, Protocol

from sysemu.abi.socket import LAYOUTS, SOCKETCALL_NAMES, SOCKETCALL_NARGS
from sysemu.trace import decode as d
from sysemu.trace.decode import Memory, printaddr, s32, s64, u32, u64

ACOLUMN = 40                 # strace -a default


class Output(Protocol):
    def write(self, text: str) -> object: ...


class Call:
    """One traced call between enter and exit (strace's struct tcb for one syscall)."""

    __slots__ = ("tracer", "pid", "name", "args", "mem", "entering", "done", "result",
                 "priv", "start", "interrupted", "aux", "rval_hex", "rval_fd", "abi",
                 "layouts")

    def __init__(self, tracer: "Tracer", pid: int, name: str, args, mem: Memory | None,
                 abi: str = "64"):
        self.tracer, self.pid, self.name, self.mem = tracer, pid, name, mem
        self.abi = abi                    # "64", "x32" or "i386": the caller's layouts
        self.layouts = LAYOUTS[abi]
        args = [u64(int(a)) for a in list(args)[:6]]
        self.args = args + [0] * (6 - len(args))
        self.entering, self.done, self.result = True, False, None
        self.priv: dict = {}
        self.start = 0.0
        self.interrupted = False
        self.aux: str | None = None       # strace's auxstr: `= 1 (aux)`
        self.rval_hex = False             # RVAL_HEX for this call's result
        self.rval_fd = False              # RVAL_FD for this call's result

    def u(self, i: int) -> int:
        return self.args[i]

    def i(self, i: int) -> int:
        return s32(self.args[i])

    def fd(self, i: int) -> str:
        return self.tracer.fd_text(self.pid, s32(self.args[i]))

    def fd_of(self, fd: int) -> str:
        return self.tracer.fd_text(self.pid, fd)

    @property
    def error(self) -> bool:
        """strace syserror(): the call failed, or its result is unknown."""
        return self.result is None or -4095 <= self.result < 0

    @property
    def rval(self) -> int:
        return self.result if self.result is not None else -1

    def str_(self, addr: int, length: int) -> str:
        return d.printstr(self.mem, addr, length, self.tracer.max_strlen)

    def int_at(self, addr: int) -> int | None:
        data = d.umove(self.mem, addr, 4)
        return None if data is None else int.from_bytes(data, "little", signed=True)


Decoder = Callable[[Call], str]


# --- decoders: each returns the text for the current phase; on entry, it sets call.done
# when everything was printed (strace's RVAL_DECODED on entering). ---------------------

def _all_on_entry(fn: Callable[[Call], str]) -> Decoder:
    def dec(c: Call) -> str:
        c.done = True
        return fn(c)
    return dec


def _generic(nargs: int) -> Decoder:
    """strace printargs(): the raw arguments in hex."""
    return _all_on_entry(lambda c: ", ".join(
        "0" if a == 0 else f"{a:#x}" for a in c.args[:nargs]))


def _fd_only(c: Call) -> str:
    c.done = True
    return c.fd(0)


def _read(c: Call) -> str:           # read(fd, buf, count), pread64(..., pos)
    if c.entering:
        return c.fd(0) + ", "
    buf = printaddr(c.u(1)) if c.error else c.str_(c.u(1), c.rval)
    text = f"{buf}, {c.u(2)}"
    return text + (f", {s64(c.u(3))}" if c.name == "pread64" else "")


@_all_on_entry
def _write(c: Call) -> str:
    text = f"{c.fd(0)}, {c.str_(c.u(1), c.u(2))}, {c.u(2)}"
    return text + (f", {s64(c.u(3))}" if c.name == "pwrite64" else "")


def _readv(c: Call) -> str:
    if c.entering:
        return c.fd(0) + ", "
    iov = (printaddr(c.u(1)) if c.error else
           d.print_iovec(c.mem, c.u(1), c.u(2), c.rval, c.tracer.max_strlen, c.layouts))
    return f"{iov}, {c.i(2)}"


@_all_on_entry
def _writev(c: Call) -> str:
    iov = d.print_iovec(c.mem, c.u(1), c.u(2), None, c.tracer.max_strlen, c.layouts)
    return f"{c.fd(0)}, {iov}, {c.i(2)}"


def _open_tail(c: Call, flags_arg: int) -> str:
    flags = u32(c.u(flags_arg))
    text = d.open_flags(flags)
    if flags & d.O_CREAT or flags & d.O_TMPFILE == d.O_TMPFILE:
        text += ", " + d.open_mode(c.u(flags_arg + 1))
    return text


@_all_on_entry
def _open(c: Call) -> str:
    return f"{d.printpath(c.mem, c.u(0))}, {_open_tail(c, 1)}"


@_all_on_entry
def _openat(c: Call) -> str:
    return f"{c.tracer.dirfd_text(c.pid, c.i(0))}, {d.printpath(c.mem, c.u(1))}, {_open_tail(c, 2)}"


@_all_on_entry
def _socket(c: Call) -> str:
    return (f"{d.socket_family(c.u(0))}, {d.socket_type(c.u(1))}, "
            f"{d.socket_protocol(c.u(0), c.u(2))}")


def _socketpair(c: Call) -> str:
    if c.entering:      # strace's socketpair() prints the protocol as a number
        return f"{d.socket_family(c.u(0))}, {d.socket_type(c.u(1))}, {c.i(2)}, "
    data = None if c.error else d.umove(c.mem, c.u(3), 8)
    if data is None:
        return printaddr(c.u(3))
    a, b = struct.unpack("<ii", data)
    return f"[{c.fd_of(a)}, {c.fd_of(b)}]"


@_all_on_entry
def _bind(c: Call) -> str:           # bind, connect
    return f"{c.fd(0)}, {d.decode_sockaddr(c.mem, c.u(1), c.i(2))}, {c.i(2)}"


@_all_on_entry
def _listen(c: Call) -> str:
    return f"{c.fd(0)}, {c.i(1)}"


@_all_on_entry
def _shutdown(c: Call) -> str:
    return f"{c.fd(0)}, {d.shutdown_how(c.u(1))}"


def _sockname(c: Call) -> str:
    """strace decode_sockname(): getsockname, getpeername, accept, accept4."""
    tail = f", {d.accept4_flags(c.u(3))}" if c.name == "accept4" else ""
    if c.entering:
        ulen = c.int_at(c.u(2)) if c.u(1) and c.u(2) else None
        if ulen is None:
            c.done = True
            return f"{c.fd(0)}, {printaddr(c.u(1))}, {printaddr(c.u(2))}{tail}"
        c.priv["ulen"] = ulen
        return c.fd(0) + ", "
    ulen = c.priv["ulen"]
    rlen = None if c.error else c.int_at(c.u(2))
    if rlen is None:
        return f"{printaddr(c.u(1))}, [{ulen}]{tail}"
    return f"{d.decode_sockaddr(c.mem, c.u(1), min(ulen, rlen))}, {d.socklen(ulen, rlen)}{tail}"


@_all_on_entry
def _setsockopt(c: Call) -> str:
    return (f"{c.fd(0)}, {d.sockopt_level(c.u(1))}, {d.sockopt_name(c.u(1), c.u(2))}, "
            f"{d.sockopt_value(c.mem, c.u(1), c.u(2), c.u(3), c.i(4), c.tracer.max_strlen)}, "
            f"{c.i(4)}")


def _getsockopt(c: Call) -> str:
    if c.entering:
        c.priv["ulen"] = c.int_at(c.u(4))
        return f"{c.fd(0)}, {d.sockopt_level(c.u(1))}, {d.sockopt_name(c.u(1), c.u(2))}, "
    ulen = c.priv["ulen"]
    rlen = None if c.error else c.int_at(c.u(4))
    if ulen is None:
        return f"{printaddr(c.u(3))}, {printaddr(c.u(4))}"
    if rlen is None:
        return f"{printaddr(c.u(3))}, [{ulen}]"
    if (u32(c.u(1)), u32(c.u(2))) == (1, 4) and rlen != 4:     # SO_ERROR, not an int
        data = d.umove(c.mem, c.u(3), max(0, min(rlen, c.tracer.max_strlen)))
        value = printaddr(c.u(3)) if data is None else d.quote_hex(data)
        return f"{value}, {d.socklen(ulen, rlen)}"
    value = d.sockopt_value(c.mem, c.u(1), c.u(2), c.u(3), rlen, c.tracer.max_strlen)
    return f"{value}, {d.socklen(ulen, rlen)}"


@_all_on_entry
def _sendto(c: Call) -> str:
    return (f"{c.fd(0)}, {c.str_(c.u(1), c.u(2))}, {c.u(2)}, {d.msg_flags(c.u(3))}, "
            f"{d.decode_sockaddr(c.mem, c.u(4), c.i(5))}, {c.i(5)}")


def _recvfrom(c: Call) -> str:
    if c.entering:
        if c.u(4) and c.u(5):
            c.priv["ulen"] = c.int_at(c.u(5))
        return c.fd(0) + ", "
    buf = printaddr(c.u(1)) if c.error else c.str_(c.u(1), c.rval)
    text = f"{buf}, {c.u(2)}, {d.msg_flags(c.u(3))}, "
    ulen = c.priv.get("ulen")
    rlen = c.int_at(c.u(5)) if c.u(4) and c.u(5) else None
    if ulen is None or rlen is None:
        return text + f"{printaddr(c.u(4))}, {printaddr(c.u(5))}"
    if c.error:
        return text + f"{printaddr(c.u(4))}, [{ulen}]"
    return text + f"{d.decode_sockaddr(c.mem, c.u(4), min(ulen, rlen))}, {d.socklen(ulen, rlen)}"


@_all_on_entry
def _send(c: Call) -> str:           # send(fd, buf, len, flags): socketcall's SYS_SEND
    return f"{c.fd(0)}, {c.str_(c.u(1), c.u(2))}, {c.u(2)}, {d.msg_flags(c.u(3))}"


def _recv(c: Call) -> str:           # recv(fd, buf, len, flags): socketcall's SYS_RECV
    if c.entering:
        return c.fd(0) + ", "
    buf = printaddr(c.u(1)) if c.error else c.str_(c.u(1), c.rval)
    return f"{buf}, {c.u(2)}, {d.msg_flags(c.u(3))}"


@_all_on_entry
def _sendmsg(c: Call) -> str:
    msg = d.print_msghdr(c.mem, c.u(1), None, None, c.tracer.max_strlen, c.fd_of, c.layouts)
    return f"{c.fd(0)}, {msg}, {d.msg_flags(c.u(2))}"


def _recvmsg(c: Call) -> str:
    """strace SYS_FUNC(recvmsg): on error, only the msg_namelen passed in."""
    if c.entering:
        hdr = c.layouts.msghdr
        raw = d.umove(c.mem, c.u(1), hdr.size)
        if raw is None:
            c.done = True
            return f"{c.fd(0)}, {printaddr(c.u(1))}, {d.msg_flags(c.u(2))}"
        c.priv["namelen"] = s32(hdr.unpack(raw)[1])
        return c.fd(0) + ", "
    if c.error:
        msg = f"{{msg_namelen={c.priv['namelen']}}}"
    else:
        msg = d.print_msghdr(c.mem, c.u(1), c.rval, c.priv["namelen"], c.tracer.max_strlen,
                             c.fd_of, c.layouts)
    return f"{msg}, {d.msg_flags(c.u(2))}"


def _sendmmsg(c: Call) -> str:       # sendmmsg(fd, vec, vlen, flags): decoded on exit
    if c.entering:
        return c.fd(0) + ", "
    count = 0 if c.error else c.rval
    vec = d.print_mmsgvec(c.mem, c.u(1), c.u(2), count, None, c.tracer.max_strlen, c.fd_of,
                          c.layouts)
    return f"{vec}, {u32(c.u(2))}, {d.msg_flags(c.u(3))}"


def _recvmmsg(c: Call) -> str:       # recvmmsg(fd, vec, vlen, flags, timeout)
    """strace do_recvmmsg(): the entries received, each entry's name length as passed
    in; the timeout as it was on entry, and `(left ...)` after. i386's recvmmsg (and
    socketcall's) take an old_timespec32, recvmmsg_time64 a 64-bit one."""
    layout = d.TIMESPEC if c.name == "recvmmsg_time64" else c.layouts.old_timespec
    if c.entering:
        c.priv["namelens"] = d.mmsg_namelens(c.mem, c.u(1), c.u(2), c.layouts)
        c.priv["timeout"] = ("NULL" if not c.u(4) else
                             d.print_timespec(c.mem, c.u(4), layout))
        return c.fd(0) + ", "
    if c.error:
        vec = printaddr(c.u(1))
    else:
        vec = d.print_mmsgvec(c.mem, c.u(1), c.rval, c.rval, c.priv["namelens"],
                              c.tracer.max_strlen, c.fd_of, c.layouts)
    text = f"{vec}, {u32(c.u(2))}, {d.msg_flags(c.u(3))}, {c.priv['timeout']}"
    if not c.error:
        if c.rval == 0:
            c.aux = "Timeout"
        elif c.u(4):
            c.aux = "left " + d.print_timespec(c.mem, c.u(4), layout)
    return text


def socket_subcall(args, mem: Memory | None) -> tuple[str, list[int]] | None:
    """strace decode_socket_subcall(): socketcall(call, args) shown as the call itself,
    its arguments the words of the block (32-bit, zero-extended). None (it stays
    socketcall) for a call number outside 1..20 or a block that cannot be read whole."""
    call = s32(int(args[0]))
    if not 1 <= call < len(SOCKETCALL_NAMES):
        return None
    nargs = SOCKETCALL_NARGS[call]
    raw = d.umove(mem, u32(int(args[1])), 4 * nargs)
    if raw is None:
        return None
    return SOCKETCALL_NAMES[call], [int.from_bytes(raw[i:i + 4], "little")
                                    for i in range(0, 4 * nargs, 4)]


@_all_on_entry
def _socketcall(c: Call) -> str:
    """strace SYS_FUNC(socketcall), for what stays undecoded: printxval_d()."""
    call = c.i(0)
    name = (f"SYS_{SOCKETCALL_NAMES[call].upper()}"
            if 1 <= call < len(SOCKETCALL_NAMES) else str(call))
    return f"{name}, {printaddr(c.u(1))}"


@_all_on_entry
def _dup2(c: Call) -> str:
    if c.name != "dup3":
        return f"{c.fd(0)}, {c.fd(1)}"
    return f"{c.fd(0)}, {c.fd(1)}, {d.flags(((0o2000000, 'O_CLOEXEC'),), u32(c.u(2)), 'O_???')}"


def _pollfds_in(c: Call) -> str:
    return d.print_pollfds(c.mem, c.u(0), c.u(1), revents=False, fd_text=c.fd_of,
                           max_strlen=c.tracer.max_strlen)


def _poll_aux(c: Call, left: str | None) -> None:
    if c.error:
        return
    if c.rval == 0:
        c.aux = "Timeout"
        return
    c.aux = d.print_pollfds(c.mem, c.u(0), c.u(1), revents=True, fd_text=c.fd_of,
                            max_strlen=c.tracer.max_strlen)
    if left is not None:
        c.aux += f", left {left}"


def _poll(c: Call) -> str:           # poll(fds, nfds, timeout)
    if c.entering:
        return f"{_pollfds_in(c)}, {u32(c.u(1))}, {c.i(2)}"
    _poll_aux(c, None)
    return ""


def _timespec_layout(c: Call):
    """The timespec a call takes: i386's ppoll, pselect6 and recvmmsg are the time32
    ones (old_timespec32); their *_time64 twins and every 64-bit call take 64 bits."""
    return d.TIMESPEC if c.name.endswith("_time64") else c.layouts.old_timespec


def _ppoll(c: Call) -> str:          # ppoll(fds, nfds, tsp, sigmask, sigsetsize)
    layout = _timespec_layout(c)
    if c.entering:
        tsp = "NULL" if not c.u(2) else d.print_timespec(c.mem, c.u(2), layout)
        return (f"{_pollfds_in(c)}, {u32(c.u(1))}, {tsp}, "
                f"{d.print_sigset(c.mem, c.u(3), c.u(4))}, {c.u(4)}")
    _poll_aux(c, d.print_timespec(c.mem, c.u(2), layout) if c.u(2) else None)
    return ""


def _select(c: Call) -> str:         # select(n, in, out, ex, tv) / pselect6(..., ts, sig)
    """select (i386: _newselect, with an old_timeval32) and pselect6."""
    nfds = c.i(0)
    is_select = c.name in ("select", "_newselect")
    if is_select:
        show_tmo = lambda: d.print_timeval(c.mem, c.u(4), c.layouts.old_timeval)  # noqa: E731
    else:
        show_tmo = lambda: d.print_timespec(c.mem, c.u(4), _timespec_layout(c))  # noqa: E731
    if c.entering:
        sets = ", ".join(d.print_fdset(c.mem, c.u(i), nfds, c.fd_of) for i in (1, 2, 3))
        tmo = "NULL" if not c.u(4) else show_tmo()
        if is_select:
            return f"{nfds}, {sets}, {tmo}"
        return f"{nfds}, {sets}, {tmo}, {_pselect_sigmask(c)}"
    if not c.error:
        if c.rval == 0:
            c.aux = "Timeout"
        else:
            parts = []
            for label, i in (("in", 1), ("out", 2), ("except", 3)):
                fds = d.fdset_members(c.mem, c.u(i), nfds)
                if fds:
                    parts.append(f"{label} [" + " ".join(c.fd_of(fd) for fd in fds) + "]")
            if c.u(4):
                parts.append(f"left {show_tmo()}")
            c.aux = ", ".join(parts) or None
    return ""


def _pselect_sigmask(c: Call) -> str:
    if not c.u(5):
        return "NULL"
    word = c.layouts.word            # {const sigset_t *ss; size_t ss_len;}
    data = d.umove(c.mem, c.u(5), 2 * word)
    if data is None:
        return printaddr(c.u(5))
    ptr, size = int.from_bytes(data[:word], "little"), int.from_bytes(data[word:], "little")
    return f"{{{d.print_sigset(c.mem, ptr, size)}, {size}}}"


def _fcntl(c: Call) -> str:          # fcntl(fd, cmd, arg)
    cmd = u32(c.u(1))
    if c.entering:
        c.done = True
        head = f"{c.fd(0)}, {d.xlat(d.FCNTL_CMDS, cmd, 'F_???')}"
        if cmd in (1, 3, 9, 11, 1025, 1032, 1034):             # no argument
            c.done = False
            return head
        if cmd == 2:
            return f"{head}, {d.flags(d.FD_FLAGS, u32(c.u(2)), 'FD_???')}"
        if cmd == 4:
            return f"{head}, {d.open_flags(c.u(2))}"
        if cmd in (0, 1030):
            c.done = False
            return f"{head}, {c.i(2)}"
        if cmd in (8, 10, 1024, 1026, 1031, 1033):
            return f"{head}, {c.i(2)}"
        if cmd in d.FCNTL_CMDS:
            return f"{head}, {printaddr(c.u(2))}"
        return f"{head}, {c.u(2):#x}"
    if not c.error:
        if cmd in (0, 1030):
            c.rval_fd = True
        elif cmd == 1:
            c.rval_hex = True
            if c.rval:
                c.aux = "flags " + d.flags(d.FD_FLAGS, c.rval, "FD_???")
        elif cmd == 3:
            c.rval_hex = True
            c.aux = "flags " + d.open_flags(c.rval)
    return ""


@_all_on_entry
def _epoll_create1(c: Call) -> str:
    return d.flags(((0o2000000, "EPOLL_CLOEXEC"),), u32(c.u(0)), "EPOLL_???")


@_all_on_entry
def _epoll_ctl(c: Call) -> str:      # epoll_ctl(epfd, op, fd, event)
    if not c.u(3):
        event = "NULL"
    else:
        data = d.umove(c.mem, c.u(3), d.EPOLL_EVENT.size)
        event = printaddr(c.u(3)) if data is None else d.print_epoll_event(data)
    return (f"{c.fd(0)}, {d.xlat(d.EPOLL_CTL_OPS, u32(c.u(1)), 'EPOLL_CTL_???')}, "
            f"{c.fd(2)}, {event}")


def _epoll_wait(c: Call) -> str:     # epoll_wait(epfd, events, max, timeout[, mask, size])
    if c.entering:
        return c.fd(0) + ", "
    events = (printaddr(c.u(1)) if c.error else
              d.print_epoll_events(c.mem, c.u(1), c.rval, c.tracer.max_strlen))
    text = f"{events}, {c.i(2)}, {c.i(3)}"
    if c.name == "epoll_pwait":
        text += f", {d.print_sigset(c.mem, c.u(4), c.u(5))}, {c.u(5)}"
    return text


@_all_on_entry
def _eventfd2(c: Call) -> str:
    return f"{u32(c.u(0))}, {d.flags(d.EFD_FLAGS, u32(c.u(1)), 'EFD_???')}"


def _pipe2(c: Call) -> str:          # pipe(fds) / pipe2(fds, flags)
    if c.entering:
        return ""
    data = None if c.error else d.umove(c.mem, c.u(0), 8)
    fds = printaddr(c.u(0)) if data is None else "[{}, {}]".format(
        *(c.fd_of(v) for v in struct.unpack("<ii", data)))
    if c.name == "pipe2":
        return f"{fds}, {d.open_flags_no_access(c.u(1))}"
    return fds


SPLICE_FLAGS = ((1, "SPLICE_F_MOVE"), (2, "SPLICE_F_NONBLOCK"), (4, "SPLICE_F_MORE"),
                (8, "SPLICE_F_GIFT"))


def _loff(c: Call, addr: int) -> str:
    """strace printnum_int64(): NULL, [value], or the address when unreadable."""
    data = d.umove(c.mem, addr, 8) if addr else None
    return f"[{int.from_bytes(data, 'little', signed=True)}]" if data is not None \
        else printaddr(addr)


@_all_on_entry
def _splice(c: Call) -> str:         # splice(fd_in, off_in, fd_out, off_out, len, flags)
    return (f"{c.fd(0)}, {_loff(c, c.u(1))}, {c.fd(2)}, {_loff(c, c.u(3))}, {c.u(4)}, "
            f"{d.flags(SPLICE_FLAGS, u32(c.args[5]), 'SPLICE_F_???')}")


def _sendfile(c: Call) -> str:       # sendfile(out, in, offset, count)
    # i386 sendfile takes a 32-bit off_t (compat_sys_sendfile); sendfile64 a loff_t
    size = 4 if c.abi == "i386" and c.name == "sendfile" else 8
    if c.entering:
        data = d.umove(c.mem, c.u(2), size) if c.u(2) else None
        if data is None:
            c.done = True
            return f"{c.fd(0)}, {c.fd(1)}, {printaddr(c.u(2))}, {c.u(3)}"
        c.priv["off"] = int.from_bytes(data, "little", signed=True)
        return f"{c.fd(0)}, {c.fd(1)}, [{c.priv['off']}]"
    data = None if c.error else d.umove(c.mem, c.u(2), size)
    moved = ""
    if data is not None:
        off = int.from_bytes(data, "little", signed=True)
        moved = f" => [{off}]" if off != c.priv["off"] else ""
    return f"{moved}, {c.u(3)}"


@_all_on_entry
def _close_range(c: Call) -> str:
    return (f"{u32(c.u(0))}, {u32(c.u(1))}, "
            f"{d.flags(d.CLOSE_RANGE_FLAGS, u32(c.u(2)), 'CLOSE_RANGE_???')}")


@_all_on_entry
def _exit(c: Call) -> str:
    return str(c.i(0))


DECODERS: dict[str, Decoder] = {
    "poll": _poll, "ppoll": _ppoll, "select": _select, "pselect6": _select,
    "fcntl": _fcntl, "epoll_create1": _epoll_create1, "epoll_ctl": _epoll_ctl,
    "epoll_wait": _epoll_wait, "epoll_pwait": _epoll_wait, "eventfd2": _eventfd2,
    "pipe": _pipe2, "pipe2": _pipe2, "close_range": _close_range, "exit": _exit,
    "exit_group": _exit,
    "read": _read, "pread64": _read, "write": _write, "pwrite64": _write,
    "readv": _readv, "writev": _writev, "close": _fd_only, "dup": _fd_only,
    "dup2": _dup2, "dup3": _dup2, "fsync": _fd_only, "fdatasync": _fd_only,
    "open": _open, "openat": _openat, "socket": _socket, "socketpair": _socketpair,
    "bind": _bind, "connect": _bind, "listen": _listen, "shutdown": _shutdown,
    "accept": _sockname, "accept4": _sockname, "getsockname": _sockname,
    "getpeername": _sockname, "setsockopt": _setsockopt, "getsockopt": _getsockopt,
    "sendto": _sendto, "recvfrom": _recvfrom, "sendmsg": _sendmsg, "recvmsg": _recvmsg,
    "sendmmsg": _sendmmsg, "recvmmsg": _recvmmsg, "recvmmsg_time64": _recvmmsg,
    "sendfile": _sendfile, "sendfile64": _sendfile, "send": _send, "recv": _recv,
    "splice": _splice,
    "socketcall": _socketcall,
    # i386 names of the same calls
    "fcntl64": _fcntl, "_newselect": _select, "pselect6_time64": _select,
    "ppoll_time64": _ppoll,
}
NARGS = {"getpid": 0, "gettid": 0, "getuid": 0, "geteuid": 0, "getgid": 0, "getegid": 0,
         "getppid": 0, "sched_yield": 0, "fork": 0, "vfork": 0, "pause": 0,
         "exit": 1, "exit_group": 1, "brk": 1, "close_range": 3, "fcntl": 3, "ioctl": 3,
         "lseek": 3, "poll": 3, "ppoll": 5, "select": 5, "pselect6": 6, "mmap": 6,
         "munmap": 2, "mprotect": 3, "epoll_wait": 4, "epoll_ctl": 4, "epoll_pwait": 6,
         "epoll_create1": 1, "pipe2": 2, "eventfd2": 2, "splice": 6, "kill": 2,
         "clone": 5, "clone3": 2, "wait4": 4, "execve": 3, "nanosleep": 2,
         "clock_nanosleep": 4, "futex": 6, "rt_sigaction": 4, "rt_sigprocmask": 4}
FD_RETURNING = frozenset("""socket accept accept4 open openat creat dup dup2 dup3 epoll_create
epoll_create1 eventfd eventfd2 signalfd signalfd4 timerfd_create memfd_create pidfd_open
pidfd_getfd inotify_init inotify_init1 openat2 fanotify_init userfaultfd perf_event_open
open_by_handle_at fsopen fsmount fspick open_tree memfd_secret""".split())
HEX_RETURNING = frozenset({"mmap", "mmap2", "mremap", "brk", "shmat"})


def decoder_for(name: str) -> Decoder:
    return DECODERS.get(name) or _generic(NARGS.get(name, 6))


class Tracer:
    """strace's output for sysemu's calls.

    `out` gets whole and partial lines (it needs only .write(str)). `trace` is the set of
    tbl names to show (sysemu.trace.syntax.parse_set), None for all. `clock` gives seconds
    (for -T); `decorate_fd(pid, fd)` returns strace -yy's text for a descriptor
    ("TCP:[127.0.0.1:8000]") or None, and is asked for AT_FDCWD too.
    """

    def __init__(self, out: Output, *, with_time: bool = False, show_pid: bool = True,
                 trace: frozenset[str] | set[str] | None = None,
                 decorate_fd: Callable[[int, int], str | None] | None = None,
                 clock: Callable[[], float] | None = None, max_strlen: int = d.MAX_STRLEN):
        if with_time and clock is None:
            raise ValueError("with_time needs a clock")
        self.out = out
        self.with_time, self.show_pid = with_time, show_pid
        self.trace = None if trace is None else frozenset(trace)
        self.decorate_fd = decorate_fd
        self.clock = clock
        self.max_strlen = max_strlen
        self._calls: dict[int, Call] = {}
        self._open: Call | None = None      # the call whose line is still open
        self._curcol = 0

    # --- policy
    def wants(self, name: str) -> bool:
        return self.trace is None or name in self.trace

    # --- fds
    def _describe(self, pid: int, fd: int) -> str | None:
        if self.decorate_fd is None:
            return None
        try:
            return self.decorate_fd(pid, fd)
        except Exception:                        # a describer must not break the trace
            return None

    def fd_text(self, pid: int, fd: int) -> str:
        """`3`, or `3<TCP:[...]>` with decorate_fd (strace -yy)."""
        desc = self._describe(pid, fd) if fd >= 0 else None
        return f"{fd}<{desc}>" if desc else str(fd)

    def dirfd_text(self, pid: int, fd: int) -> str:
        if fd == d.AT_FDCWD:
            desc = self._describe(pid, fd)
            return f"AT_FDCWD<{desc}>" if desc else "AT_FDCWD"
        return self.fd_text(pid, fd)

    # --- output
    def _prefix(self, pid: int) -> str:
        return f"[pid {pid:5d}] " if self.show_pid else ""

    def _close_open_line(self) -> None:
        """strace printleader(): an open line gets ` <unfinished ...>` before another."""
        if self._open is not None:
            self.out.write(" <unfinished ...>\n")
            self._open.interrupted = True
            self._open = None

    def message(self, pid: int, text: str) -> None:
        """A whole line of its own: `+++ exited with 0 +++`, `--- SIGINT {...} ---`."""
        self._close_open_line()
        self.out.write(f"{self._prefix(pid)}{text}\n")

    def exited(self, pid: int, status: int) -> None:
        """The tracee is gone; a call it left unfinished ends as `= ?` first."""
        if pid in self._calls:
            self.exit(pid, None)
        self.message(pid, f"+++ exited with {status} +++")

    def killed(self, pid: int, signame: str) -> None:
        if pid in self._calls:
            self.exit(pid, None)
        self.message(pid, f"+++ killed by {signame} +++")

    # --- calls
    def enter(self, pid: int, name: str, args, mem: Memory | None,
              abi: str = "64") -> Call | None:
        """Before dispatch: print the call's name and its input arguments. `abi` is the
        calling convention ("64", "x32", "i386"): it picks the struct layouts the
        decoders read (msghdr, iovec, timespec ...)."""
        if not self.wants(name):
            return None
        old = self._calls.pop(pid, None)
        if old is not None and self._open is old:
            self._close_open_line()
        self._close_open_line()
        call = Call(self, pid, name, args, mem, abi)
        if self.clock is not None:
            call.start = self.clock()
        text = self._decode(call)
        self._curcol = len(self._prefix(pid)) + len(name) + 1 + len(text)
        self.out.write(f"{self._prefix(pid)}{name}({text}")
        self._calls[pid] = call
        self._open = call
        return call

    def exit(self, pid: int, result: int | None, mem: Memory | None = None, *,
             injected: bool = False) -> None:
        """After the result: the output arguments and `= result`. result is rax (a value
        or -errno); None when the host ran the call and its result is unknown."""
        call = self._calls.pop(pid, None)
        if call is None:
            return
        if result is not None:
            result = d.s64(result)
        call.result = result
        call.entering = False
        if mem is not None:
            call.mem = mem
        text = "" if call.done else self._decode(call)
        if self._open is call:
            line = ""
            col = self._curcol
        else:
            self._close_open_line()
            line = f"{self._prefix(pid)}<... {call.name} resumed>"
            col = len(line)
        line += text + ") "
        col += len(text) + 2
        if col < ACOLUMN:
            line += " " * (ACOLUMN - col)
        line += "= " + self._result_text(call, result, injected)
        if self.with_time and self.clock is not None:
            ns = max(0, round((self.clock() - call.start) * 1e9))
            us = ns // 1000
            line += f" <{us // 1000000}.{us % 1000000:06d}>"
        self.out.write(line + "\n")
        self._open = None

    def record(self, pid: int, name: str, args, mem: Memory | None, result: int | None, *,
               injected: bool = False, exit_mem: Memory | None = None,
               abi: str = "64") -> None:
        """enter() and exit() of a call that did not wait."""
        if self.enter(pid, name, args, mem, abi) is not None:
            self.exit(pid, result, exit_mem or mem, injected=injected)

    def _decode(self, call: Call) -> str:
        try:
            return decoder_for(call.name)(call)
        except Exception as exc:          # a decoder bug must never stop the program
            call.done = True
            return f"/* sysemu: cannot decode: {type(exc).__name__} */"

    def _result_text(self, call: Call, result: int | None, injected: bool) -> str:
        if result is None:
            return "?"
        if -4095 <= result < 0:
            err = -result
            text = f"? {d.errno_text(err)}" if 512 <= err < 530 else f"-1 {d.errno_text(err)}"
        elif call.name in HEX_RETURNING or call.rval_hex:
            text = f"{u64(result):#x}" if result else "0"
        elif call.name in FD_RETURNING or call.rval_fd:
            text = self.fd_text(call.pid, result)
        elif call.name == "umask":
            text = f"{result:#o}"
        else:
            text = str(result)
        if call.aux is not None and not injected:
            text += f" ({call.aux})"
        return text + (" (INJECTED)" if injected else "")
