"""Differential socket probe: one body, run natively and under `sysemu run`.

    python3 net_probe.py SCENARIO [SCENARIO ...]    prints {scenario: {check: result}} as JSON
    python3 net_probe.py --list                      prints the scenario names, one a line

A result is a return value or an errno NAME ("EADDRINUSE"), never a port number or an
address that differs from run to run. Every scenario uses ports picked free at run time
(bind port 0 and read it back). Waits are bounded (poll with a timeout), so a scenario
ends in about a second even when the system under test misbehaves.

The checks follow Linux: net/socket.c, net/ipv4/af_inet.c (inet_bind, inet_shutdown),
net/ipv4/inet_connection_sock.c (inet_csk_get_port, inet_csk_accept), tcp_ipv4.c.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from probekit import Probe      # (tests/probes/, this script's directory)

PROBE = Probe(indent=1, budget=20)
scenario = PROBE.scenario
SCENARIOS = PROBE.scenarios

LOOP = "127.0.0.1"
libc = ctypes.CDLL(None, use_errno=True)
libc.accept4.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
libc.bind.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32]
libc.connect.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32]
for _name in ("getsockname", "getpeername", "accept"):
    getattr(libc, _name).argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]




def outcome(fn, *args):
    """0 for success (or the value, if it is an int), else the errno name."""
    try:
        value = fn(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return value if isinstance(value, int) else 0


def c_outcome(fn, *args):
    """A libc call's return value, or the errno name when it returns -1."""
    ctypes.set_errno(0)
    ret = fn(*args)
    if ret == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return ret


def tcp(family=socket.AF_INET, *opts):
    s = socket.socket(family, socket.SOCK_STREAM)
    for level, name, value in opts:
        s.setsockopt(level, name, value)
    return s


REUSEADDR = (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
REUSEPORT = (socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
V6ONLY = (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
V6BOTH = (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)


def free_port(family=socket.AF_INET, host=LOOP) -> int:
    """A port nobody holds right now (bound to port 0, read back, closed)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listener(backlog=8, host=LOOP, family=socket.AF_INET):
    s = tcp(family)
    s.bind((host, 0))
    s.listen(backlog)
    return s


def wait_fd(fd, events, timeout):
    """poll(2) one descriptor; the revents (0 on timeout)."""
    p = select.poll()
    p.register(fd, events)
    got = p.poll(int(timeout * 1000))
    return got[0][1] if got else 0


def so_error(s):
    return errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0)


def connected_pair(srv):
    """A blocking client connected to `srv`, and the server's accepted end."""
    c = socket.create_connection(srv.getsockname(), timeout=5)
    srv.settimeout(5)
    a, _ = srv.accept()
    a.settimeout(5)
    return c, a


# --- buffer sizes ---

@scenario
def buffer_force():
    """SO_SNDBUFFORCE / SO_RCVBUFFORCE (32, 33): past wmem_max/rmem_max with
    CAP_NET_ADMIN (EPERM without), doubled, negative as 0; not readable (ENOPROTOOPT);
    on stream and datagram sockets (LTP setsockopt04)."""
    r = {}
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        for opt, get in ((32, socket.SO_SNDBUF), (33, socket.SO_RCVBUF)):
            for v in (1 << 20, 10 << 20, -5, 0):
                key = f"{int(kind)}.{opt}.{v}"
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, v)
                    r[key] = s.getsockopt(socket.SOL_SOCKET, get)
                except OSError as exc:
                    r[key] = errno.errorcode[exc.errno]
        r[f"{int(kind)}.get"] = outcome(s.getsockopt, socket.SOL_SOCKET, 32)
        s.close()
    return r


# --- bind conflicts and reuse rules (inet_csk_get_port, inet_csk_bind_conflict) ---

@scenario
def bind_same_port_twice():
    a, b = tcp(), tcp()
    a.bind((LOOP, 0))
    port = a.getsockname()[1]
    result = {"second": outcome(b.bind, (LOOP, port))}
    # close() of an unconnected socket frees its port at once: the very next bind works.
    a.close()
    result["after_close_first"] = outcome(b.bind, (LOOP, port))
    b.close()
    return result


@scenario
def reuseaddr_rules():
    a, b = tcp(socket.AF_INET, REUSEADDR), tcp(socket.AF_INET, REUSEADDR)
    a.bind((LOOP, 0))
    port = a.getsockname()[1]
    result = {"both_reuseaddr_unlistened": outcome(b.bind, (LOOP, port))}
    # Both bound to the port; listening on one of them is still allowed (the listen-time
    # check looks for another *listener*), the second listen is refused.
    result["listen_first"] = outcome(a.listen, 4)
    result["listen_second"] = outcome(b.listen, 4)
    c = tcp(socket.AF_INET, REUSEADDR)
    result["reuseaddr_vs_listener"] = outcome(c.bind, (LOOP, port))
    d = tcp()
    result["plain_vs_reuseaddr_bound"] = outcome(d.bind, (LOOP, port))
    for s in (a, b, c, d):
        s.close()
    return result


@scenario
def reuseport_pair():
    a, b = tcp(socket.AF_INET, REUSEPORT), tcp(socket.AF_INET, REUSEPORT)
    a.bind((LOOP, 0))
    port = a.getsockname()[1]
    result = {"bind_second": outcome(b.bind, (LOOP, port)),
              "listen_first": outcome(a.listen, 4),
              "listen_second": outcome(b.listen, 4)}
    c = tcp()
    result["third_without_reuseport"] = outcome(c.bind, (LOOP, port))
    # Both listeners share the port: a connection reaches one of them.
    cl = socket.create_connection((LOOP, port), timeout=5)
    p = select.poll()
    for s in (a, b):
        p.register(s.fileno(), select.POLLIN)
    first = p.poll(2000)                       # wait for the connection to land
    later = p.poll(200)                        # and a little more: no second one appears
    result["exactly_one_listener_readable"] = (len(first), len(later)) == (1, 1)
    for s in (a, b, c, cl):
        s.close()
    return result


@scenario
def any_vs_loopback():
    a = tcp()
    a.bind(("0.0.0.0", 0))
    port = a.getsockname()[1]
    b = tcp()
    result = {"loopback_after_any": outcome(b.bind, (LOOP, port))}
    a.close()
    b.close()
    a, b = tcp(), tcp()
    a.bind((LOOP, 0))
    port = a.getsockname()[1]
    result["any_after_loopback"] = outcome(b.bind, ("0.0.0.0", port))
    a.close()
    b.close()
    a, b = tcp(socket.AF_INET, REUSEADDR), tcp(socket.AF_INET, REUSEADDR)
    a.bind(("0.0.0.0", 0))
    port = a.getsockname()[1]
    result["reuseaddr_loopback_after_any"] = outcome(b.bind, (LOOP, port))
    a.close()
    b.close()
    return result


@scenario
def v6_any_vs_v4():
    result = {}
    for label, opt in (("dual", V6BOTH), ("v6only", V6ONLY)):
        a = tcp(socket.AF_INET6, opt)
        a.bind(("::", 0))
        port = a.getsockname()[1]
        b, c = tcp(), tcp()
        result[f"{label}_v4_any"] = outcome(b.bind, ("0.0.0.0", port))
        result[f"{label}_v4_loopback"] = outcome(c.bind, (LOOP, port))
        for s in (a, b, c):
            s.close()
    a = tcp()
    a.bind(("0.0.0.0", 0))
    port = a.getsockname()[1]
    b, c = tcp(socket.AF_INET6, V6BOTH), tcp(socket.AF_INET6, V6ONLY)
    result["v4_any_then_v6_dual"] = outcome(b.bind, ("::", port))
    result["v4_any_then_v6only"] = outcome(c.bind, ("::", port))
    for s in (a, b, c):
        s.close()
    return result


@scenario
def time_wait_rebind():
    """The server restart case: the server closes first, so its side of the connection
    sits in TIME_WAIT on the listening port; a new listener on that port needs
    SO_REUSEADDR (the bind bucket still counts the TIME_WAIT socket)."""
    srv = tcp(socket.AF_INET, REUSEADDR)
    srv.bind((LOOP, 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    c, a = connected_pair(srv)
    a.close()                                  # active close: TIME_WAIT on the server side
    result = {"client_sees_eof": c.recv(10) == b""}
    c.close()
    srv.close()
    plain, reuse = tcp(), tcp(socket.AF_INET, REUSEADDR)
    result["rebind_plain"] = outcome(plain.bind, (LOOP, port))
    result["rebind_reuseaddr"] = outcome(reuse.bind, (LOOP, port))
    result["listen_reuseaddr"] = outcome(reuse.listen, 4)
    plain.close()
    reuse.close()
    return result


@scenario
def ephemeral_ports():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    srv = tcp()
    srv.bind(("0.0.0.0", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    c = socket.create_connection((LOOP, port), timeout=5)
    srv.settimeout(5)
    a, peer = srv.accept()
    b = tcp()
    b.bind((LOOP, 0))
    result = {"listener_port_in_range": low <= port <= high,
              "bind_0_port_in_range": low <= b.getsockname()[1] <= high,
              "connect_port_in_range": low <= c.getsockname()[1] <= high,
              "client_local_addr": c.getsockname()[0],
              "accepted_local_is_loopback": a.getsockname() == (LOOP, port),
              "accept_peer_is_client": peer == c.getsockname(),
              "client_peer": c.getpeername() == (LOOP, port)}
    for s in (a, b, c, srv):
        s.close()
    return result


# --- bind errors, in inet_bind's order ---

def sockaddr_in(family, port, addr):
    return struct.pack("=H", family) + struct.pack("!H4s", port, socket.inet_aton(addr)) + bytes(8)


@scenario
def bind_errors():
    result = {}
    s = tcp()
    raw = sockaddr_in(socket.AF_INET, 0, LOOP)
    result["addrlen_15"] = c_outcome(libc.bind, s.fileno(), raw, 15)
    result["addrlen_0"] = c_outcome(libc.bind, s.fileno(), raw, 0)
    result["addrlen_huge"] = c_outcome(libc.bind, s.fileno(), raw, 4096)
    # Short length is checked before the family.
    result["short_and_bad_family"] = c_outcome(
        libc.bind, s.fileno(), sockaddr_in(socket.AF_INET6, 0, LOOP), 8)
    result["af_unspec_loopback"] = c_outcome(
        libc.bind, s.fileno(), sockaddr_in(socket.AF_UNSPEC, 0, LOOP), 16)
    result["af_inet6_on_inet"] = c_outcome(
        libc.bind, s.fileno(), sockaddr_in(socket.AF_INET6, 0, LOOP), 16)
    result["not_local_10_1_2_3"] = outcome(s.bind, ("10.1.2.3", 0))
    # AF_UNSPEC with INADDR_ANY is accepted as AF_INET (a compatibility rule).
    result["af_unspec_any"] = c_outcome(
        libc.bind, s.fileno(), sockaddr_in(socket.AF_UNSPEC, 0, "0.0.0.0"), 16)
    result["double_bind"] = outcome(s.bind, (LOOP, 0))
    s.close()
    result["bad_fd"] = c_outcome(libc.bind, 1000, raw, 16)
    with open("/dev/null", "rb") as f:
        result["not_a_socket"] = c_outcome(libc.bind, f.fileno(), raw, 16)
    return result


@scenario
def bind_low_port():
    # As root (CAP_NET_BIND_SERVICE) a port below ip_unprivileged_port_start is fine;
    # otherwise EACCES. Search for a free one (another program may hold some).
    last = None
    for port in range(1023, 900, -1):
        s = tcp()
        last = outcome(s.bind, (LOOP, port))
        s.close()
        if last != "EADDRINUSE":
            break
    return {"root": os.geteuid() == 0, "bind_low_port": last}


def _in_child(fn):
    """fn() in a forked child; its JSON-able result (or exception text) back over a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
        except Exception as exc:
            out = {"exception": f"{type(exc).__name__}: {exc}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


@scenario
def bind_low_port_after_setuid():
    # Linux checks CAP_NET_BIND_SERVICE at each bind: a program that starts as root and
    # drops to an unprivileged user (setresuid clears the effective capabilities) is
    # refused a port below ip_unprivileged_port_start from then on.
    def child():
        before = tcp()
        low = None
        for port in range(1023, 900, -1):
            got = outcome(before.bind, (LOOP, port))
            if got != "EADDRINUSE":
                low = port
                break
        before.close()
        nobody = 65534
        try:
            os.setresgid(nobody, nobody, nobody)
            os.setresuid(nobody, nobody, nobody)
        except OSError as exc:
            return {"setresuid": errno.errorcode.get(exc.errno)}
        after = tcp()
        result = {"root_at_start": got, "after_setuid": outcome(after.bind, (LOOP, low)),
                  "high_port_after_setuid": outcome(after.bind, (LOOP, 0))}
        after.close()
        return result
    if os.geteuid() != 0:
        return {"root": False}
    return _in_child(child)


# --- listen: backlog+1 and the somaxconn cap ---

def count_established(backlog, clients=3, wait=0.5):
    """listen(fd, backlog), then connect clients one by one (nonblocking), never accepting.

    A client counts when its connect completes (writable, SO_ERROR 0) within `wait`. On
    Linux the accept queue holds backlog+1; a SYN meeting a full queue is dropped (the
    client would retransmit after 1 s, and the queue is still full then, so a longer wait
    gives the same count). Connecting one at a time keeps each handshake complete before
    the next SYN, so the count does not depend on timing."""
    srv = listener(backlog)
    addr = srv.getsockname()
    done, socks = 0, []
    for _ in range(clients):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(addr)
        socks.append(c)
        ev = wait_fd(c.fileno(), select.POLLOUT, wait)
        if ev & select.POLLOUT and so_error(c) == 0:
            done += 1
    queued = proc_net_tcp_rx_queue(addr[1])
    srv.setblocking(False)
    accepted = 0
    while accepted <= clients:
        try:
            srv.accept()[0].close()
        except BlockingIOError:
            break
        accepted += 1
    for s in socks + [srv]:
        s.close()
    return {"clients": clients, "established": done, "accepted_without_wait": accepted,
            "proc_net_tcp_listener_rx_queue": queued}


def proc_net_tcp_rx_queue(port):
    """The listener's rx_queue in /proc/net/tcp: for a listener, its accept queue length."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return int(queues.split(":")[1], 16)
    return "no listener line"


@scenario
def backlog_0():
    return count_established(0)


@scenario
def backlog_1():
    return count_established(1)


@scenario
def listen_limits():
    with open("/proc/sys/net/core/somaxconn") as f:
        result = {"somaxconn": int(f.read())}
    for label, backlog in (("huge", 1 << 20), ("negative", -1), ("zero", 0), ("five", 5)):
        s = tcp()
        s.bind((LOOP, 0))
        # Through libc: Python's listen() turns a negative backlog into 0.
        result[label] = c_outcome(libc.listen, s.fileno(), backlog)
        # ss(8) shows a listener's max backlog (inet_diag's idiag_wqueue) as Send-Q: the
        # backlog capped at somaxconn ((unsigned) -1 is capped too).
        result[f"{label}_ss_send_q"] = ss_send_q(s.getsockname()[1])
        s.close()
    s = tcp()
    result["unbound_listen"] = outcome(s.listen, 1)       # autobinds a port
    result["unbound_listen_has_port"] = s.getsockname()[1] != 0
    result["listen_again"] = outcome(s.listen, 5)          # re-listen adjusts the backlog
    s.close()
    srv = listener()
    c = socket.create_connection(srv.getsockname(), timeout=5)
    result["listen_connected"] = outcome(c.listen, 1)
    c.close()
    srv.close()
    return result


def ss_send_q(port):
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=10).stdout.split()
    except FileNotFoundError:
        return "no ss (Debian package iproute2)"
    return int(out[2]) if len(out) >= 3 and out[0] == "LISTEN" else " ".join(out)


# --- accept and accept4 ---

def fd_flags(fd):
    return {"nonblock": bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK),
            "cloexec": bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}


@scenario
def accept4_flags():
    srv = listener()
    result = {}
    keep = []
    for label, flags in (("none", 0), ("nonblock", socket.SOCK_NONBLOCK),
                         ("cloexec", socket.SOCK_CLOEXEC),
                         ("both", socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)):
        keep.append(socket.create_connection(srv.getsockname(), timeout=5))
        fd = c_outcome(libc.accept4, srv.fileno(), None, None, flags)
        result[label] = fd_flags(fd) if isinstance(fd, int) else fd
        if isinstance(fd, int):
            os.close(fd)
    # The accepted socket does not inherit the listener's O_NONBLOCK.
    srv.setblocking(False)
    keep.append(socket.create_connection(srv.getsockname(), timeout=5))
    wait_fd(srv.fileno(), select.POLLIN, 2)
    fd = c_outcome(libc.accept4, srv.fileno(), None, None, 0)
    result["from_nonblocking_listener"] = fd_flags(fd) if isinstance(fd, int) else fd
    if isinstance(fd, int):
        os.close(fd)
    for s in keep + [srv]:
        s.close()
    return result


@scenario
def accept_errors():
    result = {}
    # Current kernels look the descriptor up before checking the flags.
    result["bad_flags_bad_fd"] = c_outcome(libc.accept4, -1, None, None, 1)
    srv = listener()
    result["bad_flags"] = c_outcome(libc.accept4, srv.fileno(), None, None, 1)
    result["bad_fd"] = c_outcome(libc.accept4, 1000, None, None, 0)
    with open("/dev/null", "rb") as f:
        result["not_a_socket"] = c_outcome(libc.accept4, f.fileno(), None, None, 0)
    s = tcp()
    result["unbound_not_listening"] = c_outcome(libc.accept4, s.fileno(), None, None, 0)
    s.bind((LOOP, 0))
    result["bound_not_listening"] = c_outcome(libc.accept4, s.fileno(), None, None, 0)
    s.close()
    srv.setblocking(False)
    result["empty_queue_nonblocking"] = c_outcome(libc.accept4, srv.fileno(), None, None, 0)
    srv.close()
    return result


@scenario
def accept_nonblocking_empty():
    srv = listener()
    srv.setblocking(False)
    result = {"accept": outcome(srv.accept),
              "accept4": c_outcome(libc.accept4, srv.fileno(), None, None, socket.SOCK_NONBLOCK)}
    srv.close()
    return result


# --- address truncation: move_addr_to_user copies min(len, klen), returns klen ---

def truncated(fn, fd, length, port):
    buf = ctypes.create_string_buffer(b"\xaa" * 16, 16)
    ln = ctypes.c_uint32(length)
    ret = c_outcome(fn, fd, buf, ctypes.byref(ln))
    raw = buf.raw
    return {"ret": ret, "len": ln.value,
            "family_bytes": "untouched" if raw[:2] == b"\xaa\xaa" else raw[:2].hex(),
            "port_copied": raw[2:4] == struct.pack("!H", port),
            "rest_untouched": raw[length:] == b"\xaa" * (16 - length)}


@scenario
def address_truncation():
    srv = listener()
    port = srv.getsockname()[1]
    result = {}
    for n in (0, 2, 4, 16, 64):
        result[f"getsockname_{n}"] = truncated(libc.getsockname, srv.fileno(), n, port)
    ln = ctypes.c_int32(-1)
    buf = ctypes.create_string_buffer(16)
    result["getsockname_negative"] = c_outcome(libc.getsockname, srv.fileno(), buf,
                                               ctypes.byref(ln))
    result["getsockname_bad_pointer"] = c_outcome(
        libc.getsockname, srv.fileno(), ctypes.c_void_p(8), ctypes.byref(ctypes.c_uint32(16)))
    keep = []
    for n in (0, 4, 16):
        c = socket.create_connection(srv.getsockname(), timeout=5)
        keep.append(c)
        cport = c.getsockname()[1]
        buf = ctypes.create_string_buffer(b"\xaa" * 16, 16)
        ln = ctypes.c_uint32(n)
        fd = c_outcome(libc.accept, srv.fileno(), buf, ctypes.byref(ln))
        raw = buf.raw
        result[f"accept_{n}"] = {
            "fd_ok": isinstance(fd, int) and fd >= 0, "len": ln.value,
            "copied": raw[:n].hex() == (struct.pack("=H", socket.AF_INET)
                                        + struct.pack("!H", cport)
                                        + socket.inet_aton(LOOP) + bytes(8))[:n].hex(),
            "rest_untouched": raw[n:] == b"\xaa" * (16 - n)}
        if n == 4:
            result["getpeername_4"] = truncated(libc.getpeername, fd, 4, cport)
        if isinstance(fd, int) and fd >= 0:
            os.close(fd)
    for s in keep + [srv]:
        s.close()
    return result


# --- connect ---

@scenario
def nonblocking_connect():
    srv = listener()
    c = socket.socket()
    c.setblocking(False)
    rc = c.connect_ex(srv.getsockname())
    # On loopback the handshake may finish inside connect(): Linux returns EINPROGRESS for
    # a nonblocking TCP connect, but an emulation that completes it at once may say 0.
    # Both are correct answers to a nonblocking connect, so they are folded together.
    first = "EINPROGRESS_or_0" if rc in (0, errno.EINPROGRESS) else errno.errorcode[rc]
    ev = wait_fd(c.fileno(), select.POLLOUT, 5)
    result = {"connect": first, "writable": bool(ev & select.POLLOUT), "so_error": so_error(c)}
    # After an EINPROGRESS connect has completed, Linux answers the next connect() with 0
    # (it moves the socket to SS_CONNECTED) and only the one after with EISCONN; after a
    # connect that returned 0 at once, the next is EISCONN. Fold the two orders together.
    raw = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    again = [c_outcome(libc.connect, c.fileno(), raw, 16) for _ in range(2)]
    expected = [0, "EISCONN"] if rc == errno.EINPROGRESS else ["EISCONN", "EISCONN"]
    result["later_connects"] = "as_linux" if again == expected else f"{rc} then {again}"
    result["peer_is_listener"] = c.getpeername() == srv.getsockname()
    c.close()
    srv.close()
    return result


@scenario
def refused_connect():
    port = free_port()
    result = {}
    c = socket.socket()
    result["blocking"] = errno.errorcode.get(c.connect_ex((LOOP, port)), 0)
    result["so_error_after_blocking"] = so_error(c)
    c.close()
    c = socket.socket()
    c.setblocking(False)
    rc = c.connect_ex((LOOP, port))
    result["nonblocking"] = errno.errorcode.get(rc, rc)
    ev = wait_fd(c.fileno(), select.POLLOUT, 5)
    result["pollout"] = bool(ev & select.POLLOUT)
    result["pollerr"] = bool(ev & select.POLLERR)
    result["so_error"] = so_error(c)
    result["so_error_cleared"] = so_error(c)
    c.close()
    return result


@scenario
def connect_again_after_refused():
    """A non-blocking connect to a closed port, a second connect (the refusal), then a
    blocking connect of the same socket to a listener and a send: Linux lets a socket
    connect again after a failed attempt (tcp_disconnect() reset it)."""
    port = free_port()
    srv = listener()
    c = socket.socket()
    c.setblocking(False)
    rc = c.connect_ex((LOOP, port))
    result = {"first": "EINPROGRESS_or_ECONNREFUSED"
              if rc in (errno.EINPROGRESS, errno.ECONNREFUSED) else errno.errorcode.get(rc, rc)}
    wait_fd(c.fileno(), select.POLLOUT, 5)
    result["second"] = errno.errorcode.get(c.connect_ex((LOOP, port)), 0)
    c.setblocking(True)                 # a blocking connect(2) this time, as a program's
    raw = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    result["third"] = c_outcome(libc.connect, c.fileno(), raw, 16)
    srv.settimeout(5)
    a, _ = srv.accept()
    c.settimeout(5)
    result["send"] = outcome(c.send, b"ping")
    a.settimeout(5)
    result["received"] = a.recv(16).decode()
    a.close()
    c.close()
    srv.close()
    return result


@scenario
def connect_errors():
    srv = listener()
    result = {}
    c = socket.socket()
    c.connect(srv.getsockname())                # blocking: the socket is SS_CONNECTED now
    raw = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    result["eisconn"] = c_outcome(libc.connect, c.fileno(), raw, 16)
    c.close()
    s = tcp()
    result["getpeername_unconnected"] = outcome(s.getpeername)
    result["shutdown_unconnected"] = outcome(s.shutdown, socket.SHUT_RDWR)
    result["shutdown_bad_how"] = outcome(s.shutdown, 3)
    s.close()
    result["getpeername_listener"] = outcome(srv.getpeername)
    result["shutdown_listener_wr"] = outcome(srv.shutdown, socket.SHUT_WR)
    result["still_listening"] = srv.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    result["shutdown_listener_rd"] = outcome(srv.shutdown, socket.SHUT_RD)
    result["listening_after_shut_rd"] = srv.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    srv.setblocking(False)
    result["accept_after_shut_rd"] = outcome(srv.accept)
    srv.close()
    s = tcp()
    result["connect_af_inet6_addr_on_inet"] = c_outcome(
        libc.connect, s.fileno(), sockaddr_in(socket.AF_INET6, 80, LOOP), 16)
    result["connect_short_addrlen"] = c_outcome(
        libc.connect, s.fileno(), sockaddr_in(socket.AF_INET, 80, LOOP), 8)
    s.close()
    return result


# --- stream shutdown and close ---

@scenario
def shutdown_wr_eof():
    srv = listener()
    c, a = connected_pair(srv)
    result = {"shutdown": outcome(c.shutdown, socket.SHUT_WR)}
    result["peer_reads_eof"] = a.recv(100) == b""
    result["send_after_shut_wr"] = outcome(c.send, b"x")
    a.sendall(b"still open")
    result["half_open_reverse"] = c.recv(100).decode()
    a.close()
    result["then_eof"] = c.recv(100) == b""
    c.close()
    srv.close()
    return result


@scenario
def close_with_unread_data():
    srv = listener()
    c, a = connected_pair(srv)
    c.sendall(b"unread bytes")
    # Make sure the bytes reached the peer's receive queue before it closes.
    wait_fd(a.fileno(), select.POLLIN, 5)
    a.close()                                  # unread data: RST instead of FIN
    ev = wait_fd(c.fileno(), select.POLLIN, 5)
    result = {"pollin": bool(ev & select.POLLIN), "pollhup": bool(ev & select.POLLHUP),
              "pollerr": bool(ev & select.POLLERR)}
    result["recv"] = outcome(c.recv, 100)
    result["recv_again"] = outcome(lambda: len(c.recv(100)))
    result["send_after_reset"] = outcome(c.send, b"x")
    c.close()
    srv.close()
    return result


@scenario
def close_without_unread_data():
    srv = listener()
    c, a = connected_pair(srv)
    c.sendall(b"read")
    a.recv(100)
    a.close()                                  # nothing unread: FIN
    result = {"recv": outcome(lambda: len(c.recv(100)))}
    c.close()
    srv.close()
    return result


@scenario
def bulk_transfer():
    """2 MB each way at once (a writer thread per side), then compare digests."""
    srv = listener()
    c, a = connected_pair(srv)
    blob = bytes(range(256)) * (2 * 4096)
    got = {}

    def pump(name, tx, rx):
        tx.sendall(blob)
        tx.shutdown(socket.SHUT_WR)
        got[name] = None

    def drain(name, rx):
        parts = []
        while True:
            chunk = rx.recv(65536)
            if not chunk:
                break
            parts.append(chunk)
        got[name] = hashlib.sha256(b"".join(parts)).hexdigest()

    threads = [threading.Thread(target=pump, args=("c_tx", c, a), daemon=True),
               threading.Thread(target=pump, args=("a_tx", a, c), daemon=True),
               threading.Thread(target=drain, args=("at_a", a), daemon=True),
               threading.Thread(target=drain, args=("at_c", c), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    want = hashlib.sha256(blob).hexdigest()
    result = {"server_got_all": got.get("at_a") == want,
              "client_got_all": got.get("at_c") == want,
              "threads_done": not any(t.is_alive() for t in threads)}
    for s in (a, c, srv):
        s.close()
    return result


@scenario
def recv_flags():
    srv = listener()
    c, a = connected_pair(srv)
    a.settimeout(None)          # with a timeout Python would poll first instead of EAGAIN
    result = {"dontwait_empty": outcome(a.recv, 10, socket.MSG_DONTWAIT)}
    c.sendall(b"peekaboo")
    wait_fd(a.fileno(), select.POLLIN, 5)
    result["peek"] = a.recv(4, socket.MSG_PEEK).decode()
    result["then_read"] = a.recv(100).decode()
    c.sendall(b"x" * 10)
    result["waitall"] = len(a.recv(10, socket.MSG_WAITALL))
    for s in (a, c, srv):
        s.close()
    return result


# --- getsockopt / setsockopt ---

@scenario
def sockopts():
    result = {}
    srv = listener()
    c = socket.create_connection(srv.getsockname(), timeout=5)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    for label, s in (("listener", srv), ("client", c), ("v6", v6)):
        result[label] = {name: s.getsockopt(socket.SOL_SOCKET, getattr(socket, name))
                         for name in ("SO_TYPE", "SO_DOMAIN", "SO_PROTOCOL", "SO_ACCEPTCONN",
                                      "SO_ERROR", "SO_REUSEADDR")}
    result["unknown_sol_socket"] = outcome(srv.getsockopt, socket.SOL_SOCKET, 9999)
    result["unknown_sol_tcp"] = outcome(srv.getsockopt, socket.IPPROTO_TCP, 9999)
    result["set_unknown_sol_socket"] = outcome(srv.setsockopt, socket.SOL_SOCKET, 9999, 1)
    result["set_then_get_reuseaddr"] = (
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
        c.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))[1]
    result["nodelay_default"] = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    result["set_acceptconn_readonly"] = outcome(srv.setsockopt, socket.SOL_SOCKET,
                                                socket.SO_ACCEPTCONN, 1)
    for s in (srv, c, v6):
        s.close()
    return result


@scenario
def keepalive_options():
    """SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT and TCP_QUICKACK: defaults,
    round trips, bounds (Linux: do_tcp_setsockopt(), MAX_TCP_KEEPIDLE 32767,
    MAX_TCP_KEEPINTVL 32767, MAX_TCP_KEEPCNT 127); then a connection with a 1 s idle
    time: its probe is answered (tcpi_probes back to 0) and it still carries data."""
    tcp_, sol = socket.IPPROTO_TCP, socket.SOL_SOCKET
    r = {}
    fresh = tcp()
    r["defaults"] = [fresh.getsockopt(sol, socket.SO_KEEPALIVE)] + [
        fresh.getsockopt(tcp_, o) for o in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL,
                                            socket.TCP_KEEPCNT, socket.TCP_USER_TIMEOUT,
                                            socket.TCP_QUICKACK)]
    for name, opt, good, bad in (("keepidle", socket.TCP_KEEPIDLE, 60, (0, -1, 32768)),
                                 ("keepintvl", socket.TCP_KEEPINTVL, 7, (0, 32768)),
                                 ("keepcnt", socket.TCP_KEEPCNT, 3, (0, 128)),
                                 ("user_timeout", socket.TCP_USER_TIMEOUT, 1500, (-1,))):
        r[name] = ([outcome(fresh.setsockopt, tcp_, opt, good), fresh.getsockopt(tcp_, opt)]
                   + [outcome(fresh.setsockopt, tcp_, opt, v) for v in bad]
                   + [fresh.getsockopt(tcp_, opt)])
    r["keepidle_max"] = (outcome(fresh.setsockopt, tcp_, socket.TCP_KEEPIDLE, 32767),
                         fresh.getsockopt(tcp_, socket.TCP_KEEPIDLE))
    r["keepalive_on_off"] = [fresh.setsockopt(sol, socket.SO_KEEPALIVE, 5) or
                             fresh.getsockopt(sol, socket.SO_KEEPALIVE),
                             fresh.setsockopt(sol, socket.SO_KEEPALIVE, 0) or
                             fresh.getsockopt(sol, socket.SO_KEEPALIVE)]
    r["quickack"] = [fresh.setsockopt(tcp_, socket.TCP_QUICKACK, 0) or
                     fresh.getsockopt(tcp_, socket.TCP_QUICKACK),
                     fresh.setsockopt(tcp_, socket.TCP_QUICKACK, 2) or
                     fresh.getsockopt(tcp_, socket.TCP_QUICKACK),
                     fresh.setsockopt(tcp_, socket.TCP_QUICKACK, 1) or
                     fresh.getsockopt(tcp_, socket.TCP_QUICKACK)]
    r["short_optlen"] = outcome(fresh.setsockopt, tcp_, socket.TCP_KEEPIDLE, b"\x01")
    fresh.close()
    srv = listener()
    srv.setsockopt(sol, socket.SO_KEEPALIVE, 1)
    srv.setsockopt(tcp_, socket.TCP_KEEPIDLE, 1)
    srv.setsockopt(tcp_, socket.TCP_KEEPINTVL, 1)
    c, a = connected_pair(srv)
    r["inherited"] = (a.getsockopt(sol, socket.SO_KEEPALIVE),
                      a.getsockopt(tcp_, socket.TCP_KEEPIDLE))
    time.sleep(1.3)                 # the accepted end's first probe, answered
    info = a.getsockopt(tcp_, socket.TCP_INFO, 104)
    r["probes_after_answer"] = info[3]
    c.sendall(b"still")
    r["after_idle"] = a.recv(16).decode()
    for s in (c, a, srv):
        s.close()
    return r


def _group_req(group, ifindex):
    """struct group_req: gr_interface, pad, then a sockaddr_storage holding the group."""
    sin = struct.pack("<H2x4s", socket.AF_INET, socket.inet_aton(group))
    return struct.pack("<I4x", ifindex) + sin.ljust(128, b"\0")


@scenario
def accepted_sockopts():
    """Options Linux accepts on TCP sockets (issue 9), and LTP accept02: a group joined
    on the listener (on lo by index: the sandbox's namespace routes no multicast) is not
    the accepted socket's to leave (EADDRNOTAVAIL)."""
    tcp_, ip_, sol = socket.IPPROTO_TCP, socket.IPPROTO_IP, socket.SOL_SOCKET
    srv = tcp()
    result = {
        "fastopen": (outcome(srv.setsockopt, tcp_, 23, 5), srv.getsockopt(tcp_, 23),
                     outcome(srv.setsockopt, tcp_, 23, -1)),
        "transparent": (outcome(srv.setsockopt, ip_, 19, 1), srv.getsockopt(ip_, 19)),
        "bindtodevice": (outcome(srv.setsockopt, sol, 25, b"lo"),
                         srv.getsockopt(sol, 25, 16).hex(),
                         outcome(srv.setsockopt, sol, 25, b"nosuchdev0"),
                         outcome(srv.setsockopt, sol, 25, b""), srv.getsockopt(sol, 25, 16).hex()),
        "ip_add_membership": outcome(srv.setsockopt, ip_, socket.IP_ADD_MEMBERSHIP,
                                     socket.inet_aton("224.0.0.9") + socket.inet_aton(LOOP)),
        "join": (outcome(srv.setsockopt, ip_, 42, _group_req("224.0.0.9", 1)),
                 outcome(srv.setsockopt, ip_, 42, _group_req("224.0.0.9", 1))),
    }
    srv.bind((LOOP, 0))
    srv.listen(4)
    c = tcp()
    result["fastopen_connect"] = (outcome(c.setsockopt, tcp_, 30, 1), c.getsockopt(tcp_, 30))
    c.connect(srv.getsockname())
    c.sendall(b"ping")
    srv.settimeout(5)
    a, _ = srv.accept()
    a.settimeout(5)
    result["received"] = a.recv(16).decode()
    result["leave_on_accepted"] = outcome(a.setsockopt, ip_, 45, _group_req("224.0.0.9", 1))
    result["leave_on_listener"] = outcome(srv.setsockopt, ip_, 45, _group_req("224.0.0.9", 1))
    v6 = tcp(socket.AF_INET6)
    result["addrform_unconnected"] = outcome(v6.setsockopt, socket.IPPROTO_IPV6, 1,
                                             socket.AF_INET)
    for s in (srv, c, a, v6):
        s.close()
    return result


@scenario
def recv_errqueue():
    """MSG_ERRQUEUE with nothing in the error queue: EAGAIN at once, blocking socket or
    not, listening, connected or neither (LTP recv01, recvfrom01, recvmsg01); the data
    stays for the next plain recv."""
    flag = socket.MSG_ERRQUEUE
    srv = listener()
    idle = tcp()
    c, a = connected_pair(srv)
    c.sendall(b"data")
    wait_fd(a.fileno(), select.POLLIN, 5)
    result = {}
    for label, s in (("listener", srv), ("idle", idle), ("client", c), ("accepted", a)):
        s.settimeout(None)
        result[label] = (outcome(s.recv, 16, flag), outcome(s.recvfrom, 16, flag),
                         outcome(s.recvmsg, 16, 0, flag))
    result["data_after"] = a.recv(16).decode()
    for s in (srv, idle, c, a):
        s.close()
    return result


@scenario
def udp_stream_calls():
    """Stream-only calls on a datagram socket (kept apart: sysemu may not serve UDP)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    result = {"listen": outcome(u.listen, 1),
              "accept4": c_outcome(libc.accept4, u.fileno(), None, None, 0),
              "sockopts": {name: u.getsockopt(socket.SOL_SOCKET, getattr(socket, name))
                           for name in ("SO_TYPE", "SO_DOMAIN", "SO_PROTOCOL", "SO_ACCEPTCONN")}}
    u.close()
    return result


@scenario
def listener_readiness_after_accept():
    # tcp_poll on a listener: POLLIN exactly while the accept queue is non-empty
    # (inet_csk_listen_poll); accept dequeues before it returns, so a poll right after
    # the accept of the last connection finds nothing.
    srv = listener(backlog=16)
    addr = srv.getsockname()
    result = {"fresh": wait_fd(srv.fileno(), select.POLLIN, 0)}
    clients = [socket.create_connection(addr, timeout=5) for _ in range(2)]
    result["two_queued"] = wait_fd(srv.fileno(), select.POLLIN, 2)
    a1, _ = srv.accept()
    result["one_left"] = wait_fd(srv.fileno(), select.POLLIN, 0)
    a2, _ = srv.accept()
    result["none_left"] = wait_fd(srv.fileno(), select.POLLIN, 0)
    for s in clients + [a1, a2]:
        s.close()
    # One acceptor, sequential clients: poll, accept, poll again at once. A stale
    # readiness would make an event-driven server's next accept fail with EAGAIN (or a
    # blocking one hang).
    srv.setblocking(False)
    poller = select.poll()
    poller.register(srv.fileno(), select.POLLIN)
    stale = eagain = 0
    for _ in range(200):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(addr)
        if not wait_fd(srv.fileno(), select.POLLIN, 5) & select.POLLIN:
            break
        a = libc.accept(srv.fileno(), None, None)      # and poll at once, as C would
        if poller.poll(0):
            stale += 1
            try:
                srv.accept()[0].close()
            except BlockingIOError:
                eagain += 1
        os.close(a)
        c.close()
    result["sequential_stale_readiness"] = stale
    result["sequential_false_eagain"] = eagain
    srv.close()
    return result


def _data_calls(s, prefix, skip=()):
    """The data calls a program makes on a socket that is not connected, each in a child
    with SIGPIPE at its default (so the signal shows as the child's death). The socket is
    made non-blocking (Linux never waits here; a system that would must not hang)."""
    s.setblocking(False)
    src = os.open(__file__, os.O_RDONLY)
    calls = {
        "recv": lambda: s.recv(1, socket.MSG_DONTWAIT),
        "read": lambda: os.read(s.fileno(), 1),
        "send": lambda: s.send(b"x"),
        "send_nosignal": lambda: s.send(b"x", socket.MSG_NOSIGNAL),
        "write": lambda: os.write(s.fileno(), b"x"),
        "sendfile": lambda: os.sendfile(s.fileno(), src, 0, 4),
        "siocinq": lambda: struct.unpack("i", fcntl.ioctl(s, 0x541B, b"\0" * 4))[0],
        "siocoutq": lambda: struct.unpack("i", fcntl.ioctl(s, 0x5411, b"\0" * 4))[0],
    }
    result = {}
    for name, call in calls.items():
        if name in skip:
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            got = outcome(call)
            os._exit({0: 0, "ENOTCONN": 10, "EPIPE": 11, "EAGAIN": 12, "EINVAL": 13}.get(
                got, 99))
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            result[f"{prefix}_{name}"] = signal.Signals(os.WTERMSIG(status)).name
        else:
            code = os.WEXITSTATUS(status)
            result[f"{prefix}_{name}"] = {0: 0, 10: "ENOTCONN", 11: "EPIPE", 12: "EAGAIN",
                                          13: "EINVAL"}.get(code, code)
    os.close(src)
    return result


def _poll_and_select(s, prefix):
    fd = s.fileno()
    r, w, x = select.select([fd], [fd], [fd], 0)
    return {f"{prefix}_poll": wait_fd(fd, select.POLLIN | select.POLLOUT | select.POLLPRI, 0),
            f"{prefix}_select": [len(r), len(w), len(x)]}


@scenario
def unconnected_socket_calls():
    # A TCP socket that is neither connected nor listening: tcp_poll gives POLLOUT|POLLHUP
    # (state CLOSE); tcp_recvmsg ENOTCONN; tcp_sendmsg EPIPE (sk_stream_wait_connect)
    # and SIGPIPE unless MSG_NOSIGNAL; tcp_ioctl SIOCINQ 0. Fresh, bound, and after
    # shutdown.
    result = {}
    fresh = tcp()
    result.update(_poll_and_select(fresh, "fresh"))
    result.update(_data_calls(fresh, "fresh"))
    bound = tcp()
    bound.bind((LOOP, 0))
    result.update(_poll_and_select(bound, "bound"))
    result.update(_data_calls(bound, "bound"))
    fresh.setblocking(False)
    result["nonblocking_recv"] = outcome(fresh.recv, 1)
    result["shutdown"] = outcome(fresh.shutdown, socket.SHUT_RDWR)
    fresh.close()
    bound.close()
    return result


@scenario
def accept_efault_loses_the_connection():
    """Linux's do_accept() dequeues the child and makes its file before it copies the
    peer's address out: a copy that faults puts both, so the connection is gone (the
    next accept has nothing; the client reads EOF, or ECONNRESET when it had sent bytes
    the child never read) though accept said EFAULT."""
    srv = listener()
    srv.setblocking(False)
    c = socket.create_connection(srv.getsockname(), timeout=5)
    wait_fd(srv.fileno(), select.POLLIN, 5)
    addrlen = ctypes.c_uint32(16)
    result = {"accept_bad_addr": c_outcome(libc.accept4, srv.fileno(), 16,
                                           ctypes.byref(addrlen), 0)}
    result["next_accept"] = outcome(srv.accept)
    c.settimeout(2)
    result["client_reads"] = outcome(lambda: len(c.recv(10)))
    c.close()
    # a client that sent bytes first: the child closes with them unread, a reset
    c = socket.create_connection(srv.getsockname(), timeout=5)
    c.sendall(b"request")
    wait_fd(srv.fileno(), select.POLLIN, 5)
    result["sent_accept_bad_addrlen"] = c_outcome(libc.accept4, srv.fileno(), 16, 8, 0)
    result["sent_next_accept"] = outcome(srv.accept)
    result["sent_client_reads"] = outcome(lambda: len(c.recv(10)))
    c.close()
    srv.close()
    return result


@scenario
def listener_calls():
    # A listener: inet_csk_listen_poll gives POLLIN only while a connection is queued and
    # never POLLOUT; tcp_sendmsg EPIPE (+SIGPIPE); tcp_ioctl EINVAL; sendfile EPIPE.
    srv = listener()
    result = _poll_and_select(srv, "empty")
    # sysemu: recv/read on a listener read its placeholder (README: Limitations); they
    # are pinned apart in listener_recv.
    result.update(_data_calls(srv, "listener", skip=("recv", "read")))
    c = socket.create_connection(srv.getsockname(), timeout=5)
    wait_fd(srv.fileno(), select.POLLIN, 2)
    result.update(_poll_and_select(srv, "pending"))
    result.update(_data_calls(srv, "pending", skip=("recv", "read")))
    a, _ = srv.accept()
    result.update(_poll_and_select(srv, "accepted"))
    for s in (a, c, srv):
        s.close()
    return result


@scenario
def listener_recv():
    # Linux: recv on a listener is ENOTCONN and leaves the queued connection's readiness.
    srv = listener()
    c = socket.create_connection(srv.getsockname(), timeout=5)
    wait_fd(srv.fileno(), select.POLLIN, 2)
    result = {"recv": outcome(srv.recv, 1, socket.MSG_DONTWAIT),
              "still_readable": wait_fd(srv.fileno(), select.POLLIN, 0)}
    c.close()
    srv.close()
    return result


def _abort(s):
    """close() with SO_LINGER {1, 0}: a RST instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _no_sigpipe():
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)     # Python's default; said here


@scenario
def shutdown_rd_keeps_data():
    # tcp_shutdown() acts on SEND_SHUTDOWN only: after the reader's SHUT_RD the peer's
    # sends still succeed and their bytes are read.
    _no_sigpipe()
    srv = listener()
    c, a = connected_pair(srv)
    result = {"shutdown": outcome(a.shutdown, socket.SHUT_RD),
              "peer_send": outcome(c.send, b"hello")}
    wait_fd(a.fileno(), select.POLLIN, 2)
    result["recv"] = a.recv(10).decode()
    for s in (a, c, srv):
        s.close()
    return result


@scenario
def shutdown_rd_empty_read():
    # Linux: after SHUT_RD with nothing queued, recv returns 0 at once.
    srv = listener()
    c, a = connected_pair(srv)
    a.shutdown(socket.SHUT_RD)
    result = {"recv": outcome(lambda: len(a.recv(10, socket.MSG_DONTWAIT)))}
    for s in (a, c, srv):
        s.close()
    return result


@scenario
def linger_zero_close():
    # SO_LINGER {1, 0}: close() sends a RST (tcp_disconnect); the peer reads ECONNRESET,
    # then its send fails with EPIPE (the error was consumed, the socket is closed).
    _no_sigpipe()
    srv = listener()
    c, a = connected_pair(srv)
    _abort(a)
    ev = wait_fd(c.fileno(), select.POLLIN, 2)
    result = {"pollin": bool(ev & select.POLLIN), "pollerr": bool(ev & select.POLLERR),
              "recv": outcome(c.recv, 10), "send_after": outcome(c.send, b"x")}
    # Turned on and off again: an ordinary close (FIN), the peer reads EOF.
    c2, a2 = connected_pair(srv)
    a2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 0))
    a2.close()
    result["recv_after_linger_off"] = outcome(lambda: len(c2.recv(10)))
    for s in (c, c2, srv):
        s.close()
    return result


@scenario
def linger_zero_send_first():
    # Linux: the peer's first call after the RST gets the error: a send fails ECONNRESET.
    _no_sigpipe()
    srv = listener()
    c, a = connected_pair(srv)
    _abort(a)
    wait_fd(c.fileno(), select.POLLIN, 2)
    result = {"send": outcome(c.send, b"x")}
    c.close()
    srv.close()
    return result


def tcp_state(s):
    """tcpi_state (TCP_INFO's first byte)."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def settled_state(s, states=(6, 7), timeout=2.0):
    """tcpi_state once it is one of `states` (TIME_WAIT, CLOSE), or after `timeout`."""
    deadline = time.monotonic() + timeout
    while tcp_state(s) not in states and time.monotonic() < deadline:
        time.sleep(0.01)
    return tcp_state(s)


@scenario
def self_connect():
    # A socket connecting to its own address gets its own SYN in SYN_SENT: crossed SYNs
    # (tcp_rcv_synsent_state_process(): "it can be connect to self"), SYN_RECV, its own
    # SYN-ACK ends the handshake: ESTABLISHED, its own peer. Non-blocking, bound first.
    s = tcp()
    s.bind((LOOP, 0))
    port = s.getsockname()[1]
    s.setblocking(False)
    result = {"connect": errno.errorcode.get(s.connect_ex((LOOP, port)), 0)}
    ev = wait_fd(s.fileno(), select.POLLOUT, 2)
    result["pollout"] = bool(ev & select.POLLOUT)
    result["state"] = tcp_state(s)
    result["so_error"] = so_error(s)
    result["peer_is_self"] = s.getpeername() == s.getsockname()
    result["shutdown"] = outcome(s.shutdown, socket.SHUT_RD)
    s.close()
    return result


@scenario
def self_connect_after_shutdown():
    # A shutdown(SHUT_WR) that fails ENOTCONN still sets the socket's shutdown bits
    # (inet_shutdown()); connected to itself, it sends its FIN once established, takes
    # its own FIN and ACK, and ends in TIME_WAIT, which tcp_time_wait() hands to a
    # timewait sock: the socket the program holds is CLOSE.
    s = tcp()
    s.bind((LOOP, 0))
    port = s.getsockname()[1]
    result = {"shutdown": outcome(s.shutdown, socket.SHUT_WR)}
    s.setblocking(False)
    result["connect"] = errno.errorcode.get(s.connect_ex((LOOP, port)), 0)
    result["state"] = settled_state(s)
    result["getpeername"] = outcome(s.getpeername)
    s.close()
    return result


@scenario
def time_wait_of_a_held_socket():
    # Both ends shut down their sending side and keep their sockets: the first to send
    # FIN ends in TIME_WAIT, held by a timewait sock; the program's socket is CLOSE
    # (getpeername ENOTCONN).
    srv = listener()
    c, a = connected_pair(srv)
    a.shutdown(socket.SHUT_WR)
    wait_fd(c.fileno(), select.POLLIN, 2)
    result = {"client_eof": c.recv(10) == b""}
    c.shutdown(socket.SHUT_WR)
    wait_fd(a.fileno(), select.POLLIN, 2)
    result["server_eof"] = a.recv(10) == b""
    result["server_state"] = settled_state(a)
    result["server_getpeername"] = outcome(a.getpeername)
    result["client_state"] = tcp_state(c)
    for s in (a, c, srv):
        s.close()
    return result


@scenario
def write_after_peer_close():
    # Linux: after the peer closed, the first write succeeds (the peer answers with a
    # RST) and the next fails with EPIPE.
    _no_sigpipe()
    srv = listener()
    c, a = connected_pair(srv)
    a.close()
    wait_fd(c.fileno(), select.POLLIN, 2)
    result = {"send1": outcome(c.send, b"x")}
    time.sleep(0.1)
    result["send2"] = outcome(c.send, b"x")
    c.close()
    srv.close()
    return result


def _timeval(seconds):
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1e6))


@scenario
def signal_during_timed_accept():
    # Linux: a socket wait with a timeout (SO_RCVTIMEO) that a signal interrupts fails
    # with EINTR even under SA_RESTART (sock_intr_errno(); signal(7)); without a timeout
    # it restarts (ERESTARTSYS) and goes on waiting. The accept is libc's (ctypes), so
    # Python's own EINTR retry (PEP 475) does not hide the answer.
    got = []
    signal.signal(signal.SIGALRM, lambda *a: got.append("handler"))
    signal.siginterrupt(signal.SIGALRM, False)          # SA_RESTART
    result = {}
    srv = listener()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(5))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    result["timed_accept"] = c_outcome(libc.accept, srv.fileno(), None, None)
    result["handler_ran"] = got == ["handler"]
    # No timeout: the accept restarts and takes the connection that comes after the signal.
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0))
    port = srv.getsockname()[1]

    def late_client():
        time.sleep(0.6)
        c = socket.create_connection((LOOP, port), timeout=5)
        time.sleep(0.5)
        c.close()
    t = threading.Thread(target=late_client)
    t.start()
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    fd = c_outcome(libc.accept, srv.fileno(), None, None)
    result["untimed_accept_restarted"] = fd if isinstance(fd, str) else "fd"
    result["handler_ran_twice"] = got == ["handler", "handler"]
    if not isinstance(fd, str):
        os.close(fd)
    t.join()
    # After the EINTR, the same accept again waits its full timeout (no second EINTR).
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0.3))
    result["next_timed_accept"] = c_outcome(libc.accept, srv.fileno(), None, None)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    srv.close()
    return result


@scenario
def signal_during_timed_connect():
    # A blocking connect with SO_SNDTIMEO to a listener whose queue is full waits (the SYN
    # is dropped and retried); a signal ends it with EINTR (sock_intr_errno()).
    got = []
    signal.signal(signal.SIGALRM, lambda *a: got.append("handler"))
    signal.siginterrupt(signal.SIGALRM, False)
    srv = listener(backlog=0)
    addr = srv.getsockname()
    fillers = []
    for _ in range(2):                   # backlog 0 holds one; the next SYN is dropped
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(addr)
        fillers.append(f)
    time.sleep(0.3)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(5))
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    sa = struct.pack("HH4s8x", socket.AF_INET, socket.htons(addr[1]), socket.inet_aton(LOOP))
    result = {"connect": c_outcome(libc.connect, c.fileno(), sa, len(sa)),
              "handler_ran": got == ["handler"]}
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    for f in fillers + [c, srv]:
        f.close()
    return result


@scenario
def process_signal_storm_in_accept():
    # A signal sent to the process (an interval timer's SIGALRM, here every 200 us, with
    # SA_RESTART) is taken by one thread: complete_signal() picks the leader when it
    # wants it (here: sleeping), so the threads blocked in accept go on waiting, and one
    # that is interrupted restarts its accept. No accept fails, every connection made
    # meanwhile is accepted and answered. (sysemu parks the accepts and ends a wait itself
    # when a signal is for its thread: a thread Linux did not pick for the signal got
    # -512, ERESTARTSYS, with the leader asleep.)
    got = []
    signal.signal(signal.SIGALRM, lambda *a: got.append(1))
    signal.siginterrupt(signal.SIGALRM, False)          # SA_RESTART
    srv = listener(backlog=64)
    addr = srv.getsockname()
    errors, answered, done = [], [], threading.Event()    # the clients' end

    def acceptor():
        while len(errors) < 20:
            fd = c_outcome(libc.accept, srv.fileno(), None, None)
            if isinstance(fd, str):
                errors.append(fd)
                continue
            with socket.socket(fileno=fd) as a:
                a.settimeout(5)
                if a.recv(3) != b"hi":      # "end"
                    return
                a.sendall(b"ok")

    def clients():
        while not done.is_set():
            with socket.create_connection(addr, timeout=5) as c:
                c.sendall(b"hi")
                answered.append(c.recv(2) == b"ok")

    acceptors = [threading.Thread(target=acceptor) for _ in range(3)]
    client = threading.Thread(target=clients)
    for t in acceptors + [client]:
        t.start()
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        time.sleep(0.01)
    done.set()
    client.join(10)
    signal.setitimer(signal.ITIMER_REAL, 0)
    for _ in acceptors:                 # each takes one more connection and ends
        with socket.create_connection(addr, timeout=5) as c:
            c.sendall(b"end")
    for t in acceptors:
        t.join(10)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    srv.close()
    return {"accept_errors": sorted(set(errors)), "some_answered": len(answered) > 0,
            "all_answered": all(answered), "handler_ran": bool(got)}


@scenario
def process_signal_for_the_only_willing_thread():
    # The leader blocks SIGALRM; the one thread that does not is blocked in accept:
    # complete_signal() picks it (round-robin over the threads that want the signal), its
    # accept is interrupted, the handler runs, and the accept restarts (SA_RESTART) and
    # takes the connection that comes after.
    got = []
    signal.signal(signal.SIGALRM, lambda *a: got.append(1))
    signal.siginterrupt(signal.SIGALRM, False)
    srv = listener()
    result = {}

    def acceptor():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])
        fd = c_outcome(libc.accept, srv.fileno(), None, None)
        result["accept"] = fd if isinstance(fd, str) else "fd"
        if not isinstance(fd, str):
            os.close(fd)

    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    t = threading.Thread(target=acceptor)
    t.start()
    time.sleep(0.3)                     # the accept waits
    os.kill(os.getpid(), signal.SIGALRM)
    end = time.monotonic() + 3
    while not got and time.monotonic() < end:
        time.sleep(0.01)                # Python runs the handler in this thread
    result["handler_ran"] = bool(got)
    result["accept_still_waiting"] = t.is_alive()
    socket.create_connection(srv.getsockname(), timeout=5).close()
    t.join(10)
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    srv.close()
    return result


# --- the data path (tcp_sendmsg / tcp_recvmsg): what the receiver sees ---

SIOCINQ, SIOCOUTQ, SIOCATMARK, SIOCOUTQNSD = 0x541B, 0x5411, 0x8905, 0x894B


def _ioctl_int(sock, cmd):
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), cmd, b"\0" * 4))[0]
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def _recv_now(sock, n, flags=0):
    """recv without Python's timeout wait (which polls before it calls recv): the bytes
    as text, or the errno name."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(n, flags).decode()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        sock.settimeout(timeout)


def _readable(sock, timeout=2.0) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


@scenario
def msg_more_coalescing():
    # tcp_push() with MSG_MORE corks (TCP_NAGLE_CORK): a partial segment waits for the
    # next send without it; TCP_CORK holds partial segments until cleared. The receiver
    # sees nothing meanwhile, then everything in one read.
    srv = listener()
    c, a = connected_pair(srv)
    result = {}
    c.send(b"head ", socket.MSG_MORE)
    c.send(b"more ", socket.MSG_MORE)
    result["held_more"] = (_recv_now(a, 100), _ioctl_int(c, SIOCOUTQ),
                           _ioctl_int(c, SIOCOUTQNSD))
    c.send(b"body")
    _readable(a)
    result["after_more"] = a.recv(100).decode()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    c.send(b"x")
    c.send(b"y")
    result["held_cork"] = (_recv_now(a, 100), _ioctl_int(c, SIOCOUTQNSD))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    _readable(a)
    result["after_cork"] = a.recv(100).decode()
    # The cork holds a partial segment for at most about 200 ms (tcp(7): the probe
    # timer then sends it, tcp_write_wakeup()): waited for with poll, not timed.
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    c.send(b"late")
    result["cork_ceiling"] = (_readable(a, 3.0) and a.recv(100).decode(),
                              _ioctl_int(c, SIOCOUTQNSD))
    for s in (c, a, srv):
        s.close()
    return result


@scenario
def peek_and_waitall():
    # MSG_PEEK leaves the bytes queued; MSG_WAITALL waits for the whole length (the
    # rest comes from another thread); MSG_TRUNC drops bytes without copying them.
    srv = listener()
    c, a = connected_pair(srv)
    result = {}
    c.sendall(b"hello world")
    _readable(a)
    result["peek"] = a.recv(5, socket.MSG_PEEK).decode()
    result["inq_after_peek"] = _ioctl_int(a, SIOCINQ)
    result["read"] = a.recv(100).decode()
    c.sendall(b"abc")
    writer = threading.Timer(0.2, lambda: c.sendall(b"def"))
    writer.start()
    result["waitall"] = a.recv(6, socket.MSG_WAITALL).decode()
    writer.join()
    c.sendall(b"123456")
    _readable(a)
    result["trunc"] = (len(a.recv(4, socket.MSG_TRUNC)), a.recv(100).decode())
    c.shutdown(socket.SHUT_WR)
    result["waitall_eof"] = a.recv(10, socket.MSG_WAITALL).decode()
    for s in (c, a, srv):
        s.close()
    return result


@scenario
def queue_ioctls():
    # tcp_ioctl(): SIOCINQ counts what the reader has not read, SIOCOUTQ what is not yet
    # acknowledged, SIOCOUTQNSD what is not yet sent (held by TCP_CORK here); the
    # receiver's /proc/net/tcp rx_queue and tcpi_bytes_received agree.
    srv = listener()
    c, a = connected_pair(srv)
    result = {"fresh": (_ioctl_int(a, SIOCINQ), _ioctl_int(c, SIOCOUTQ))}
    c.sendall(b"z" * 1000)
    _readable(a)
    time.sleep(0.05)                # the receiver's ACK (not a pass/fail timing: any
    result["inq"] = _ioctl_int(a, SIOCINQ)      # later value is the same)
    port = a.getsockname()[1]
    peer = a.getpeername()[1]
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    rx = [int(r[4].split(":")[1], 16) for r in rows
          if int(r[1].split(":")[1], 16) == port and int(r[2].split(":")[1], 16) == peer]
    result["proc_rx_queue"] = rx
    info = a.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    result["bytes_received"] = struct.unpack_from("Q", info, 128)[0]
    a.recv(600)
    result["inq_after_read"] = _ioctl_int(a, SIOCINQ)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    c.send(b"q" * 10)
    result["corked"] = (_ioctl_int(c, SIOCOUTQ), _ioctl_int(c, SIOCOUTQNSD))
    for s in (c, a, srv):
        s.close()
    return result


@scenario
def urgent_data():
    # send(MSG_OOB): the last byte is urgent (tcp_mark_urg); the receiver's reads stop at
    # the mark (SIOCATMARK), recv(MSG_OOB) takes the byte, a second one fails EINVAL;
    # with SO_OOBINLINE the byte stays in the stream and MSG_OOB is EINVAL.
    srv = listener()
    result = {}
    for inline in (0, 1):
        c, a = connected_pair(srv)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, inline)
        c.send(b"abc")
        c.send(b"!", socket.MSG_OOB)
        c.send(b"def")
        _readable(a)
        time.sleep(0.05)            # everything has arrived (loopback)
        got = {"mark0": _ioctl_int(a, SIOCATMARK), "first": _recv_now(a, 100),
               "mark1": _ioctl_int(a, SIOCATMARK)}
        got["oob"] = _recv_now(a, 1, socket.MSG_OOB)
        got["rest"] = _recv_now(a, 100)
        got["oob_again"] = _recv_now(a, 1, socket.MSG_OOB)
        got["mark2"] = _ioctl_int(a, SIOCATMARK)
        got["empty"] = _recv_now(a, 100)
        result[f"inline{inline}"] = got
        c.close()
        a.close()
    srv.close()
    return result


@scenario
def signal_during_recv():
    # tcp_recvmsg's wait: SO_RCVTIMEO ends it with EAGAIN; a signal ends a timed wait
    # with EINTR even under SA_RESTART (sock_intr_errno()), an untimed one restarts and
    # gets the bytes sent after the signal; a blocking send of more than the peer takes
    # waits for send space and completes once the peer reads (libc's recv/send, so
    # Python's EINTR retry does not hide the answers).
    libc.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    got = []
    signal.signal(signal.SIGALRM, lambda *a: got.append("handler"))
    signal.siginterrupt(signal.SIGALRM, False)          # SA_RESTART
    srv = listener()
    c, a = connected_pair(srv)
    a.settimeout(None)
    buf = ctypes.create_string_buffer(64)
    result = {}
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0.3))
    signal.siginterrupt(signal.SIGALRM, True)           # a guard, should the timeout not
    signal.setitimer(signal.ITIMER_REAL, 3.0)           # end the wait (EINTR then)
    result["timeout"] = c_outcome(libc.recv, a.fileno(), buf, 64, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.siginterrupt(signal.SIGALRM, False)
    if got:
        return {"timeout": result["timeout"], "guard": got}
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(5))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    result["timed_signal"] = c_outcome(libc.recv, a.fileno(), buf, 64, 0)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0))
    late = threading.Timer(0.6, lambda: c.sendall(b"late"))
    late.start()
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    n = c_outcome(libc.recv, a.fileno(), buf, 64, 0)
    result["untimed_restarted"] = (n, buf.raw[:n].decode() if isinstance(n, int) else "")
    late.join()
    result["handlers"] = len(got)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    c.settimeout(None)
    big = b"w" * (8 << 20)
    reader = threading.Timer(0.3, lambda: result.__setitem__(
        "read_back", len(_read_all(a, len(big)))))
    reader.start()
    result["blocking_send"] = c.send(big)       # all of it, once the reader reads
    reader.join()
    for s in (c, a, srv):
        s.close()
    return result


@scenario
def sendfile_edges():
    # do_sendfile() into a connected TCP socket: the offset pointer moves past what was
    # sent and the file's position does not; without one the position moves; count 0;
    # a huge count (clamped, the file's end ends it); ESPIPE for an offset on a pipe, and
    # EINVAL for a pipe without one (splice_direct_to_actor() wants a regular file);
    # EBADF for a source not open for reading or not open at all.
    import tempfile
    srv = listener()
    c, a = connected_pair(srv)
    result = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f")
        with open(path, "wb") as f:
            f.write(bytes(range(256)) * 40)                 # 10240 bytes
        fd = os.open(path, os.O_RDONLY)
        libc.sendfile.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                  ctypes.c_size_t]
        off = ctypes.c_int64(100)
        result["offset"] = (c_outcome(libc.sendfile, c.fileno(), fd, ctypes.byref(off), 1000),
                            off.value, os.lseek(fd, 0, os.SEEK_CUR))
        result["no_offset"] = (c_outcome(libc.sendfile, c.fileno(), fd, None, 500),
                               os.lseek(fd, 0, os.SEEK_CUR))
        result["count0"] = c_outcome(libc.sendfile, c.fileno(), fd, None, 0)
        result["huge"] = (c_outcome(libc.sendfile, c.fileno(), fd, None, 1 << 40),
                          os.lseek(fd, 0, os.SEEK_CUR))
        result["at_end"] = c_outcome(libc.sendfile, c.fileno(), fd, None, 10)
        wfd = os.open(path, os.O_WRONLY)
        result["write_only"] = c_outcome(libc.sendfile, c.fileno(), wfd, None, 10)
        rp, wp = os.pipe()
        os.write(wp, b"piped")
        off = ctypes.c_int64(0)
        result["pipe_offset"] = c_outcome(libc.sendfile, c.fileno(), rp, ctypes.byref(off), 5)
        result["pipe"] = c_outcome(libc.sendfile, c.fileno(), rp, None, 5)
        result["bad_fd"] = c_outcome(libc.sendfile, c.fileno(), 9999, None, 5)
        for x in (fd, wfd, rp, wp):
            os.close(x)
    c.shutdown(socket.SHUT_WR)
    got = _read_all(a, 1 << 20)
    want = (bytes(range(256)) * 40)
    result["stream"] = got == want[100:1100] + want[:500] + want[500:]
    for s in (c, a, srv):
        s.close()
    return result


@scenario
def sendfile_limits():
    # do_sendfile()'s other edges: rw_verify_area() (EINVAL for a negative offset, a
    # count past SSIZE_MAX, an offset the count carries past LLONG_MAX), an offset past
    # the file's end (0, the offset kept), EFAULT for an unreadable offset pointer, and
    # EINVAL for an O_APPEND socket (do_splice_direct()); the offset written back.
    import tempfile
    srv = listener()
    c, a = connected_pair(srv)
    result = {}
    libc.sendfile.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f")
        with open(path, "wb") as f:
            f.write(b"0123456789")
        fd = os.open(path, os.O_RDONLY)
        for label, start, count in (("negative", -1, 1), ("ssize_max", 0, 1 << 63),
                                    ("past_llong_max", (1 << 63) - 10, 100),
                                    ("past_end", 100, 5), ("tail", 7, 100)):
            off = ctypes.c_int64(start)
            result[label] = (c_outcome(libc.sendfile, c.fileno(), fd, ctypes.byref(off),
                                       count), off.value)
        result["offset_efault"] = c_outcome(libc.sendfile, c.fileno(), fd, 8, 1)
        flags = fcntl.fcntl(c.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(c.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        result["append"] = c_outcome(libc.sendfile, c.fileno(), fd, None, 5)
        result["append_count0"] = c_outcome(libc.sendfile, c.fileno(), fd, None, 0)
        fcntl.fcntl(c.fileno(), fcntl.F_SETFL, flags)
        result["after_append"] = c_outcome(libc.sendfile, c.fileno(), fd, None, 2)
        os.close(fd)
    c.shutdown(socket.SHUT_WR)
    result["stream"] = _read_all(a, 1 << 16).decode()
    for s in (c, a, srv):
        s.close()
    return result


def _splice(fd_in, fd_out, length, flags=0, off_in=None, off_out=None):
    """splice(2) through libc (offsets as loff_t pointers): the value or the errno name."""
    libc.splice.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_size_t, ctypes.c_uint]
    libc.splice.restype = ctypes.c_ssize_t
    return c_outcome(libc.splice, fd_in, off_in, fd_out, off_out, length, flags)


SPLICE_F_NONBLOCK, SPLICE_F_MORE = 2, 4


@scenario
def splice_socket_pipe():
    # splice(2) with a connected TCP socket at one end and a pipe at the other, both
    # ways: splice_to_socket() takes the pipe's bytes (no more than asked), an empty
    # pipe waits for a writer, is EAGAIN non-blocking and 0 once no writer is left;
    # tcp_splice_read() gives what is queued (no more than asked), waits for data, EAGAIN
    # on an O_NONBLOCK socket, 0 at EOF; EPIPE (SIGPIPE ignored) for a pipe with no
    # reader. Then the checks: len 0, unknown flags, EBADF (a bad descriptor, the wrong
    # end of the pipe), ESPIPE for an offset on the pipe, EINVAL for one on the socket,
    # for no pipe at all (socket to socket, file to socket), for an O_APPEND socket.
    import tempfile
    import threading
    srv = listener()
    c, a = connected_pair(srv)
    for s in (c, a):                # blocking descriptors, each wait bounded by 5 s
        s.setblocking(True)
        for opt in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            s.setsockopt(socket.SOL_SOCKET, opt, struct.pack("qq", 5, 0))
    r, w = os.pipe()
    result = {}
    os.write(w, b"hello pipe")
    result["to_socket"] = _splice(r, c.fileno(), 5)
    result["to_socket_rest"] = _splice(r, c.fileno(), 100, SPLICE_F_MORE)
    result["to_socket_got"] = _recv_exactly(a, 10).decode()
    c.sendall(b"to the pipe")
    _wait_readable(a)
    result["from_socket"] = _splice(a.fileno(), w, 5)
    result["from_socket_rest"] = _splice(a.fileno(), w, 100)
    result["pipe_got"] = os.read(r, 100).decode()
    a.setblocking(False)
    result["from_socket_empty_nonblock"] = _splice(a.fileno(), w, 100)
    a.setblocking(True)
    result["to_socket_empty_nonblock"] = _splice(r, c.fileno(), 100, SPLICE_F_NONBLOCK)
    os.set_blocking(r, False)
    result["to_socket_empty_o_nonblock"] = _splice(r, c.fileno(), 100)
    os.set_blocking(r, True)
    # the waits: a thread writes a little later
    later = threading.Timer(0.1, lambda: os.write(w, b"late"))
    later.start()
    result["to_socket_waits"] = _splice(r, c.fileno(), 100)
    later.join()
    result["waited_got"] = _recv_exactly(a, 4).decode()
    later = threading.Timer(0.1, lambda: c.sendall(b"later"))
    later.start()
    result["from_socket_waits"] = _splice(a.fileno(), w, 100)
    later.join()
    result["waited_pipe"] = os.read(r, 100).decode()
    # a bigger stream through a pipe each way
    blob = bytes(range(256)) * 1024
    sender = threading.Thread(target=lambda: (os.write(w, blob[:65536]),))
    moved, chunks = 0, []
    sender.start()
    while moved < 65536:
        n = _splice(r, c.fileno(), 65536 - moved)
        if not isinstance(n, int) or n <= 0:
            break
        moved += n
    sender.join()
    result["to_socket_64k"] = moved
    got = _recv_exactly(a, moved)
    result["to_socket_64k_intact"] = got == blob[:65536]
    back = threading.Thread(target=lambda: a.sendall(blob))
    back.start()
    moved = 0
    while moved < len(blob):
        n = _splice(c.fileno(), w, len(blob) - moved)
        if not isinstance(n, int) or n <= 0:
            result["from_socket_stopped"] = n
            break
        moved += n
        while n:
            chunk = os.read(r, n)
            chunks.append(chunk)
            n -= len(chunk)
    back.join()
    result["from_socket_256k_intact"] = b"".join(chunks) == blob
    # the checks
    result["len0"] = _splice(a.fileno(), w, 0, 0x100)
    result["bad_flags"] = _splice(a.fileno(), w, 1, 0x100)
    result["bad_fd_in"] = _splice(9999, c.fileno(), 1)
    result["bad_fd_out"] = _splice(a.fileno(), 9999, 1)
    result["read_end_out"] = _splice(a.fileno(), r, 1)
    result["write_end_in"] = _splice(w, c.fileno(), 1)
    off = ctypes.c_int64(0)
    result["offset_on_pipe"] = _splice(r, c.fileno(), 1, off_in=ctypes.byref(off))
    result["offset_on_socket_out"] = _splice(r, c.fileno(), 1, off_out=ctypes.byref(off))
    result["offset_on_socket_in"] = _splice(a.fileno(), w, 1, off_in=ctypes.byref(off))
    result["offset_efault"] = _splice(a.fileno(), w, 1, off_in=8)
    result["socket_to_socket"] = _splice(a.fileno(), c.fileno(), 1)
    with tempfile.TemporaryFile() as f:
        f.write(b"file")
        f.seek(0)
        result["file_to_socket"] = _splice(f.fileno(), c.fileno(), 4)
        result["socket_to_file"] = _splice(a.fileno(), f.fileno(), 4)
    flags = fcntl.fcntl(c.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(c.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    os.write(w, b"x")
    result["append_socket"] = _splice(r, c.fileno(), 1)
    fcntl.fcntl(c.fileno(), fcntl.F_SETFL, flags)
    result["after_append"] = _splice(r, c.fileno(), 1)
    result["after_append_got"] = _recv_exactly(a, 1).decode()
    # tee wants two pipes, vmsplice a pipe: a socket is neither
    libc.tee.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
    result["tee_from_socket"] = c_outcome(libc.tee, a.fileno(), w, 1, 0)
    result["tee_to_socket"] = c_outcome(libc.tee, r, c.fileno(), 1, 0)
    result["tee_len0"] = c_outcome(libc.tee, a.fileno(), w, 0, 0)
    iov = (ctypes.c_uint64 * 2)(ctypes.addressof(ctypes.create_string_buffer(b"v", 1)), 1)
    libc.vmsplice.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    result["vmsplice_socket"] = c_outcome(libc.vmsplice, c.fileno(), iov, 1, 0)
    result["vmsplice_socket_empty"] = c_outcome(libc.vmsplice, c.fileno(), iov, 0, 0)
    # the ends going away
    c.sendall(b"z")
    _wait_readable(a)
    os.close(r)
    result["no_reader"] = _splice(a.fileno(), w, 1)
    result["kept_byte"] = a.recv(10).decode()
    os.close(w)
    r, w = os.pipe()
    os.close(w)
    result["no_writer"] = _splice(r, c.fileno(), 1)
    os.close(r)
    r, w = os.pipe()
    c.shutdown(socket.SHUT_WR)
    result["from_socket_eof"] = _splice(a.fileno(), w, 1)
    for x in (r, w):
        os.close(x)
    for s in (c, a, srv):
        s.close()
    return result


def _recv_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _wait_readable(sock):
    wait_fd(sock.fileno(), select.POLLIN, 5)
    time.sleep(0.05)                # the rest of what was sent


@scenario
def mmsg_waits_and_ends():
    # __sys_sendmmsg() / do_recvmmsg() on blocking sockets: an entry after the first
    # that must wait waits (TCP: the second recvmmsg entry until more bytes come, a
    # sendmmsg message until there is send space; UDP: the second datagram); a zero
    # timeout ends recvmmsg after one message and writes back 0; an error in a later
    # entry (an unreadable msghdr) ends the call with the count so far and becomes the
    # socket's error (SO_ERROR, then the next read); a pending error (a reset) is the
    # call's before any queued bytes.
    libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                              ctypes.c_void_p]
    result = {}
    srv = listener()
    c, a = connected_pair(srv)
    for s in (c, a):
        s.setblocking(True)
        for opt in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            s.setsockopt(socket.SOL_SOCKET, opt, struct.pack("qq", 5, 0))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b"abc")
    _wait_readable(a)
    bufs = [ctypes.create_string_buffer(8) for _ in range(2)]
    vec, keep = _tcp_mmsg_vec(bufs, [None, None])
    later = threading.Timer(0.1, lambda: c.sendall(b"defg"))
    later.start()
    result["recvmmsg_waits"] = c_outcome(libc.recvmmsg, a.fileno(), vec, 2, 0, None)
    later.join()
    result["recvmmsg_waits_got"] = [b.raw.rstrip(b"\0").decode() for b in bufs]
    result["recvmmsg_waits_lens"] = _mmsg_lens(vec, 2)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = [ctypes.create_string_buffer(bytes([i + 65]) * n, n)
           for i, n in enumerate((100, 300000, 5))]
    svec, skeep = _tcp_mmsg_vec(big, [None] * 3)
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(_recv_exactly(a, 300105)))
    reader.start()
    result["sendmmsg_waits"] = c_outcome(libc.sendmmsg, c.fileno(), svec, 3, 0)
    reader.join()
    result["sendmmsg_waits_lens"] = _mmsg_lens(svec, 3)
    result["sendmmsg_waits_intact"] = bytes(got) == b"".join(b.raw for b in big)
    c.sendall(b"hijkl")
    _wait_readable(a)
    ts = (ctypes.c_int64 * 2)(0, 0)
    small = [ctypes.create_string_buffer(2) for _ in range(2)]
    vec2, keep2 = _tcp_mmsg_vec(small, [None, None])
    result["zero_timeout"] = (c_outcome(libc.recvmmsg, a.fileno(), vec2, 2, 0, ts),
                              list(ts))
    ts = (ctypes.c_int64 * 2)(5, 0)
    n = c_outcome(libc.recvmmsg, a.fileno(), vec2, 2, socket.MSG_DONTWAIT, ts)
    result["timeout_left"] = (n, 0 < ts[0] * 10**9 + ts[1] <= 5 * 10**9)
    c.sendall(b"mnop")
    _wait_readable(a)
    raw = bytearray(vec2)
    raw[64:128] = bytes(64)
    struct.pack_into("<QQ", raw, 64 + 16, 8, 1)         # msg_iov of entry 2: unmapped
    bad = ctypes.create_string_buffer(bytes(raw), len(raw))
    result["later_efault"] = c_outcome(libc.recvmmsg, a.fileno(), bad, 2, 0, None)
    result["later_efault_so_error"] = a.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    c.sendall(b"qr")
    _wait_readable(a)
    result["after_efault_recv"] = _recv_text(a)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sendall(b"st")
    time.sleep(0.05)
    c.close()
    _wait_readable(a)
    result["reset_first"] = c_outcome(libc.recvmmsg, a.fileno(), vec, 2, 0, None)
    result["reset_then_recv"] = _recv_text(a)
    a.close()
    srv.close()
    u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u1.bind((LOOP, 0))
    u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u2.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("qq", 5, 0))
    u2.bind((LOOP, 0))
    u1.sendto(b"one", u2.getsockname())
    time.sleep(0.05)
    later = threading.Timer(0.1, lambda: u1.sendto(b"two", u2.getsockname()))
    later.start()
    ubufs = [ctypes.create_string_buffer(8) for _ in range(2)]
    uvec, ukeep = _tcp_mmsg_vec(ubufs, [None, None])
    result["udp_recvmmsg_waits"] = c_outcome(libc.recvmmsg, u2.fileno(), uvec, 2, 0, None)
    later.join()
    result["udp_recvmmsg_got"] = [b.raw.rstrip(b"\0").decode() for b in ubufs]
    u1.close()
    u2.close()
    return result


def _recv_text(sock):
    try:
        return sock.recv(16).decode()
    except OSError as exc:
        return errno.errorcode[exc.errno]


def _mmsg_lens(vec, n):
    return [struct.unpack_from("<I", bytes(vec), 64 * i + 56)[0] for i in range(n)]


def _read_all(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def _tcp_mmsg_vec(bufs, names):
    """struct mmsghdr[len(bufs)], one iovec each over `bufs`, names `names` (or NULL)."""
    iovs = [ctypes.create_string_buffer(struct.pack("<Qq", ctypes.addressof(b), len(b)))
            for b in bufs]
    vec = b"".join(struct.pack("<QiiQQQQI4xI4x", ctypes.addressof(n) if n else 0,
                               len(n) if n else 0, 0, ctypes.addressof(iov), 1, 0, 0, 0, 0)
                   for iov, n in zip(iovs, names))
    return ctypes.create_string_buffer(vec), iovs


@scenario
def tcp_mmsg():
    """sendmmsg/recvmmsg on a TCP connection: every message's bytes in one stream; a
    recvmmsg entry takes what is queued (MSG_WAITFORONE: the next ones do not wait); no
    name (msg_namelen 0); MSG_ERRQUEUE is EAGAIN; vlen 0 is 0."""
    libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                              ctypes.c_void_p]
    srv = listener()
    c, a = connected_pair(srv)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bufs = [ctypes.create_string_buffer(f"m{i}".encode(), 2) for i in range(3)]
    vec, keep = _tcp_mmsg_vec(bufs, [None] * 3)
    r = {"sendmmsg": c_outcome(libc.sendmmsg, c.fileno(), vec, 3, 0),
         "msg_len": [struct.unpack_from("<I", vec.raw, 56 + 64 * i)[0] for i in range(3)]}
    deadline = time.monotonic() + 5
    while len(a.recv(16, socket.MSG_PEEK)) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    rbufs = [ctypes.create_string_buffer(8) for _ in range(3)]
    names = [ctypes.create_string_buffer(16) for _ in range(3)]
    rvec, keep2 = _tcp_mmsg_vec(rbufs, names)
    r["recvmmsg"] = c_outcome(libc.recvmmsg, a.fileno(), rvec, 3, 0x10000, None)
    r["got"] = rbufs[0].raw[:6].decode()
    r["first_len"] = struct.unpack_from("<I", rvec.raw, 56)[0]
    r["namelen"] = struct.unpack_from("<i", rvec.raw, 8)[0]
    r["empty"] = c_outcome(libc.recvmmsg, a.fileno(), rvec, 3, socket.MSG_DONTWAIT, None)
    r["errqueue"] = c_outcome(libc.recvmmsg, a.fileno(), rvec, 3, 0x2000, None)   # MSG_ERRQUEUE
    r["vlen0"] = c_outcome(libc.recvmmsg, a.fileno(), rvec, 0, socket.MSG_DONTWAIT, None)
    for s in (c, a, srv):
        s.close()
    return r


# --- sendto() with an address on a TCP socket ---

BAD_PTR = 8                 # in the unmapped page at 0: EFAULT, and not NULL


def _sendto(s, data, flags, addr, addrlen):
    """libc sendto(2) as given: `data` and `addr` are bytes, or an int pointer (BAD_PTR;
    4 bytes of data then)."""
    libc.sendto.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                            ctypes.c_void_p, ctypes.c_uint32]
    libc.sendto.restype = ctypes.c_ssize_t
    if isinstance(data, int):
        buf, size = data, 4
    else:
        buf, size = ctypes.create_string_buffer(data, len(data)), len(data)
    name = addr if isinstance(addr, int) else ctypes.create_string_buffer(addr, max(len(addr), 1))
    return c_outcome(libc.sendto, s.fileno(), buf, size, flags, name, addrlen)


def _sigpipe_taken():
    """Whether a SIGPIPE (blocked by the caller) is pending; taken if so."""
    if signal.SIGPIPE in signal.sigpending():
        signal.sigtimedwait([signal.SIGPIPE], 0)
        return True
    return False


@scenario
def tcp_sendto_address_ignored():
    # tcp_sendmsg_locked() ignores msg_name (but for fastopen): on a connected socket
    # sendto/sendmsg/sendmmsg with any address send the bytes. __sys_sendto() still
    # copies the address in first (move_addr_to_kernel(): EINVAL above
    # sizeof(sockaddr_storage) or negative, EFAULT for an unreadable one); length 0 and
    # a short or foreign address are fine. The peer gets every byte sent, in order.
    srv = listener()
    c, a = connected_pair(srv)
    peer = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    r = {"peer": _sendto(c, b"hello", 0, peer, len(peer)),
         "elsewhere": _sendto(c, b"abc", 0, sockaddr_in(socket.AF_INET, 1, "10.9.9.9"), 16),
         "v6_name": _sendto(c, b"v6", 0, struct.pack("=H", socket.AF_INET6) + bytes(9)
                            + b"\1" + bytes(16), 28),
         "garbage_short": _sendto(c, b"g", 0, b"\xff\x07\x01", 3),
         "addrlen0": _sendto(c, b"zero", 0, peer, 0),
         "addrlen128": _sendto(c, b"s", 0, peer + bytes(112), 128),
         "addrlen129": _sendto(c, b"x", 0, peer + bytes(113), 129),
         "addrlen_neg": _sendto(c, b"x", 0, peer, 0xFFFFFFFF),
         "bad_address": _sendto(c, b"x", 0, BAD_PTR, 16),
         "bad_address_len0": _sendto(c, b"0", 0, BAD_PTR, 0),
         "bad_buffer": _sendto(c, BAD_PTR, 0, peer, 16),
         "empty": _sendto(c, b"", 0, peer, 16),
         "dontwait": _sendto(c, b"dw", socket.MSG_DONTWAIT, peer, 16),
         "nosignal": _sendto(c, b"ns", socket.MSG_NOSIGNAL, peer, 16)}
    r["sendmsg"] = outcome(c.sendmsg, [b"m1", b"m2"], [], 0, ("127.0.0.1", 9))
    r["sendmsg_unnamed"] = outcome(c.sendmsg, [b"m3"])
    bufs = [ctypes.create_string_buffer(f"q{i}".encode(), 2) for i in range(2)]
    names = [ctypes.create_string_buffer(peer, 16) for _ in range(2)]
    vec, keep = _tcp_mmsg_vec(bufs, names)
    libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    r["sendmmsg"] = c_outcome(libc.sendmmsg, c.fileno(), vec, 2, 0)
    c.shutdown(socket.SHUT_WR)
    r["stream"] = _read_all(a, 1 << 16).decode("latin-1")
    for s in (c, a, srv):
        s.close()
    return r


@scenario
def tcp_sendto_not_connected():
    # sk_stream_wait_connect(): a socket neither connected nor connecting gets EPIPE,
    # and sk_stream_error() raises SIGPIPE unless MSG_NOSIGNAL (seen here pending, with
    # SIGPIPE blocked): fresh, bound, listening, and after shutdown(SHUT_WR) of a
    # connected one (sendto and sendmsg). The address never connects it.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGPIPE])
    srv = listener()
    peer = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    bound = tcp()
    bound.bind((LOOP, 0))
    c, a = connected_pair(srv)
    c.shutdown(socket.SHUT_WR)
    srv.settimeout(None)        # (a Python timeout would poll before sending)
    r = {}
    for name, s in (("fresh", tcp()), ("bound", bound), ("listener", srv), ("shut_wr", c)):
        r[name] = (_sendto(s, b"x", 0, peer, len(peer)), _sigpipe_taken())
        r[name + "_nosignal"] = (_sendto(s, b"x", socket.MSG_NOSIGNAL, peer, len(peer)),
                                 _sigpipe_taken())
        r[name + "_sendmsg"] = (outcome(s.sendmsg, [b"y"], [], 0, (LOOP, 1)),
                                _sigpipe_taken())
    r["fresh_bad_address"] = (_sendto(tcp(), b"x", 0, BAD_PTR, 16), _sigpipe_taken())
    r["fresh_still_unconnected"] = outcome(tcp().getpeername)
    r["peer_got"] = outcome(a.recv, 16)
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    for s in (c, a, srv, bound):
        s.close()
    return r


@scenario
def tcp_sendto_nonblocking_full():
    # A non-blocking sendto on a connected socket whose peer does not read: the send
    # space runs out and the call fails EAGAIN (sk_stream_wait_memory() with no timeout)
    # after short counts; every byte it took arrives once the peer reads. (How many fit
    # is the buffers' business: not compared.)
    srv = listener()
    c, a = connected_pair(srv)
    peer = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    c.setblocking(False)
    sent, last = 0, None
    for _ in range(10000):
        last = _sendto(c, b"z" * 65536, 0, peer, len(peer))
        if not isinstance(last, int):
            break
        sent += last
    r = {"ended_with": last, "some_sent": sent > 0}
    c.setblocking(True)
    c.shutdown(socket.SHUT_WR)
    r["all_arrived"] = len(_read_all(a, sent + 1)) == sent
    for s in (c, a, srv):
        s.close()
    return r


@scenario
def tcp_sendto_blocking_slow_reader():
    # A blocking sendto of 8 MB with an address whose peer reads slowly: the call waits
    # for send space as often as it must (sk_stream_wait_memory()) and returns the whole
    # length; the bytes arrive whole and in order. With SO_SNDTIMEO and a peer that
    # stops reading, it returns what it sent before the timeout (not EAGAIN).
    srv = listener()
    c, a = connected_pair(srv)
    c.settimeout(None)
    peer = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    data = hashlib.sha256(b"seed").digest() * (8 << 15)         # 8 MB
    got = bytearray()

    def reader():
        while len(got) < len(data):
            time.sleep(0.002)
            chunk = a.recv(1 << 16)
            if not chunk:
                break
            got.extend(chunk)
    t = threading.Thread(target=reader)
    t.start()
    r = {"sent": _sendto(c, data, 0, peer, len(peer))}
    t.join(10)
    r["arrived"] = hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(0.3))
    n = _sendto(c, data, 0, peer, len(peer))
    r["timed_out_partial"] = isinstance(n, int) and 0 < n < len(data)
    for s in (c, a, srv):
        s.close()
    return r


@scenario
def tcp_sendto_interrupted():
    # A blocking sendto with an address that a signal (a handler without SA_RESTART, as
    # Python installs them) interrupts after part of its bytes were queued returns that
    # part: tcp_sendmsg_locked() answers what it copied over sk_stream_wait_memory()'s
    # error. The peer never reads.
    srv = listener()
    c, a = connected_pair(srv)
    c.settimeout(None)
    peer = sockaddr_in(socket.AF_INET, srv.getsockname()[1], LOOP)
    data = bytes(16 << 20)
    old = signal.signal(signal.SIGALRM, lambda *args: None)
    signal.setitimer(signal.ITIMER_REAL, 0.3, 0.3)       # again, until the send is in
    n = _sendto(c, data, 0, peer, len(peer))
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)
    for s in (c, a, srv):
        s.close()
    return {"result": "part" if isinstance(n, int) and 0 < n < len(data) else n}


main = PROBE.main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
