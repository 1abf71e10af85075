"""Reaching in and out on purpose: `sysemu run --publish` and `--allow-egress`.

The sandbox's network is sysemu's own, in a network namespace of the supervisor's that
holds nothing; a socket keeps the namespace it was made in, so the host's ends of these
connections are made before the supervisor leaves the host's namespace:

- **--publish [HOST_IP:]HOST_PORT:SANDBOX_PORT** (HOST_IP 127.0.0.1 by default): the
  watchdog W makes the listening socket on the host before it forks (a port in use fails
  `sysemu run` at once, exit 125); the supervisor S inherits it and accepts in its
  reactor. Each accepted host connection becomes, in the model, a client connecting to
  127.0.0.1:SANDBOX_PORT from the host client's own address and port (as DNAT shows it:
  net/ipv4/portfwd.py forward_connect()); it goes through the SYN and accept queues like
  any client. Once the server accepts it, a Pump joins the host connection and the
  accepted child's kept end. No listener inside: the host client gets a reset (the
  socket closed with SO_LINGER 0).
- **--allow-egress HOST:PORT**: S forks, before its own network namespace, a helper
  without capabilities that makes host connections to the allowed pairs only (it is
  given an index into its own list, never an address). A program's SYN to an allowed
  address that no socket inside owns is queued (net/ipv4/portfwd.py EgressGate); the
  helper starts a non-blocking connect and hands the socket to S, which waits for it in
  its reactor: connected, the model's handshake completes (the program's connect returns
  0, or it becomes writable) and a Pump joins the program's kept end and the host socket;
  refused, the program gets the RST (ECONNREFUSED); any other error ends its connect
  with that errno. A connect to anything else behaves as without the option.

Both kinds are the model's sockets (`sysemu ss` shows them) and their bytes go through a
Pump of their own (`--pcap` records them; latency and rst-after faults on the server's
port apply). The program never holds a host socket.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from typing import NamedTuple

from sysemu.abi.inet import TcpState
from sysemu.host.hostsock import SocketHelper
from sysemu.host.pump import Pump
from sysemu.net.faults import reset_connection
from sysemu.net.ipv4.portfwd import EgressGate, forward_connect
from sysemu.net.ipv4.route import INADDR_LOOPBACK

REQUEST = struct.Struct("=i")       # the egress helper's: an index into the allowed list
LINGER_RESET = struct.pack("ii", 1, 0)


class SpecError(ValueError):
    """A --publish or --allow-egress value that cannot be used: one line saying why."""


class Publish(NamedTuple):
    host_ip: str
    host_port: int
    sandbox_port: int


class Egress(NamedTuple):
    host: str
    port: int


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SpecError(f"{spec!r}: {what} {text!r} is not a port (1-65535)")
    return int(text)


def _ipv4(text: str, spec: str) -> str:
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise SpecError(f"{spec!r}: {text!r} is not an IPv4 address") from None


def parse_publish(spec: str) -> Publish:
    """[HOST_IP:]HOST_PORT:SANDBOX_PORT[/tcp], as `docker run -p` takes it (TCP only)."""
    text = spec.strip()
    if text.endswith("/tcp"):
        text = text[:-4]
    elif "/" in text:
        raise SpecError(f"{spec!r}: only TCP ports can be published")
    parts = text.split(":")
    if len(parts) == 2:
        host_ip, (host_port, sandbox_port) = "127.0.0.1", parts
    elif len(parts) == 3:
        host_ip, host_port, sandbox_port = parts
        host_ip = _ipv4(host_ip, spec)
    else:
        raise SpecError(f"{spec!r}: expected [HOST_IP:]HOST_PORT:SANDBOX_PORT")
    return Publish(host_ip, _port(host_port, "host port", spec),
                   _port(sandbox_port, "sandbox port", spec))


def parse_egress(spec: str) -> Egress:
    """HOST:PORT, HOST an IPv4 loopback address (or localhost)."""
    host, sep, port = spec.strip().rpartition(":")
    if not sep or not host:
        raise SpecError(f"{spec!r}: expected HOST:PORT")
    host = _ipv4(host, spec)
    if not ipaddress.IPv4Address(host).is_loopback:
        # sysemu: the sandbox's network routes 127.0.0.0/8 only (net/ipv4/route.py)
        raise SpecError(f"{spec!r}: only host services on 127.0.0.0/8 can be allowed")
    return Egress(host, _port(port, "port", spec))


class PortForwarding:
    """The --publish and --allow-egress of one `sysemu run`, through its three steps:
    listen() in W before it forks, before_netns() in S before its network namespace,
    attach(supervisor) in S once the network's host side is set up."""

    def __init__(self, publish: list[Publish] = (), egress: list[Egress] = ()):
        self.publish = list(publish)
        self.egress = list(dict.fromkeys(egress))
        self.listeners: list[tuple[Publish, socket.socket]] = []
        self.helper: EgressHelper | None = None
        self.sup = None
        self.net = None
        self.glue = None
        self.pump: _Pump | None = None
        self.gate: EgressGate | None = None
        self.waiting: dict[object, socket.socket] = {}     # forwarded client Sock -> host conn
        self.connecting: dict[tuple, socket.socket] = {}   # egress key -> host socket
        self.ours: dict[object, object] = {}                # Link -> the Sock we hold in it

    def __bool__(self) -> bool:
        return bool(self.publish or self.egress)

    # -- W --------------------------------------------------------------------------
    def listen(self) -> None:
        """The published ports' host listeners (SpecError if one cannot be made)."""
        for pub in self.publish:
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lsock.bind((pub.host_ip, pub.host_port))
                lsock.listen(socket.SOMAXCONN)
            except OSError as exc:
                lsock.close()
                self.close()
                raise SpecError(f"--publish {pub.host_ip}:{pub.host_port}:{pub.sandbox_port}: "
                                f"cannot listen on {pub.host_ip}:{pub.host_port}: "
                                f"{exc.strerror}") from None
            lsock.setblocking(False)
            self.listeners.append((pub, lsock))

    def close(self) -> None:
        """Close this process's copies of the host sockets (W after the fork: S has them)."""
        for _, lsock in self.listeners:
            lsock.close()
        self.listeners = []

    # -- S, in the host's network namespace ---------------------------------------------
    def before_netns(self) -> None:
        if self.egress:
            self.helper = EgressHelper(self.egress)

    # -- S, serving ------------------------------------------------------------------------
    def attach(self, supervisor) -> None:
        self.sup = supervisor
        kernel = supervisor.kernel
        self.net = kernel.net
        self.glue = kernel.host
        writer = getattr(supervisor, "pcap", None)
        data_pump = getattr(supervisor, "pump", None)     # --pcap / data faults (observe)
        self.pump = _Pump(supervisor.reactor, on_data=writer.data if writer else None,
                          faults=data_pump.faults if data_pump is not None else None,
                          on_close=self._link_closed, log=supervisor.log,
                          program_end=self.glue.program_end)
        for pub, lsock in self.listeners:
            supervisor.reactor.add_reader(lsock.fileno(),
                                          lambda pub=pub, lsock=lsock: self._accept(pub, lsock))
        if self.egress:
            allowed = [(socket.inet_aton(e.host), e.port) for e in self.egress]
            self.gate = EgressGate(self.net, allowed, self._egress_syn, self._egress_child)
        supervisor.on_exit.append(self.shutdown)

    def shutdown(self) -> None:
        for _, lsock in self.listeners:
            try:
                self.sup.reactor.remove_reader(lsock.fileno())
            except (KeyError, ValueError, OSError):
                pass
        self.close()
        for conn in list(self.waiting.values()) + list(self.connecting.values()):
            conn.close()
        self.waiting.clear()
        self.connecting.clear()
        if self.pump is not None:
            self.pump.close_all()
        if self.helper is not None:
            self.helper.close()

    # -- published ports -------------------------------------------------------------------
    def _accept(self, pub: Publish, lsock: socket.socket) -> None:
        while True:
            try:
                conn, (addr, port) = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.sup.log(f"--publish {pub.host_port}: accept: {exc}")
                return
            conn.setblocking(False)
            try:
                sk = forward_connect(self.net, socket.inet_aton(addr), port, INADDR_LOOPBACK,
                                     pub.sandbox_port)
            except Exception as exc:       # no port left: as a refused connection
                self.sup.log(f"--publish {pub.host_port}: {exc!r}")
                _reset(conn)
                continue
            self.waiting[sk] = conn
            self.glue.outside[sk] = lambda child, kept, sk=sk: self._published(sk, child, kept)
            self._watch_client(sk)

    def _watch_client(self, sk) -> None:
        """A forwarded client until the server accepts it: if it fails (no listener, the
        listener closed with it queued, SYN retries exhausted) the host client is reset."""
        def woken(sk=sk) -> None:
            if sk not in self.waiting:
                return
            if sk.state != TcpState.TCP_CLOSE:
                sk.wait.add(woken)
                return
            _reset(self.waiting.pop(sk))
            self.glue.outside.pop(sk, None)
            self.net.release(sk)
        woken()         # (on loopback the RST of a port nobody listens on came already)

    def _published(self, sk, child, child_kept: int) -> None:
        """The server accepted: pump between the host connection and the child."""
        conn = self.waiting.pop(sk, None)
        if conn is None:
            os.close(child_kept)
            return
        link = self.pump.join(sk, conn.detach(), child, child_kept)
        self.pump.host_fds.add(link.client_fd)
        self._hold(link, sk)

    # -- allowed host services ----------------------------------------------------------------
    def _egress_syn(self, key, addr: bytes, port: int) -> None:
        """A program's SYN to an allowed service: connect on the host (after this segment's
        delivery: the verdict re-enters the model)."""
        index = self.egress.index(Egress(socket.inet_ntoa(addr), port))
        self.sup.reactor.call_soon(lambda: self._egress_start(key, index))

    def _egress_start(self, key, index: int) -> None:
        try:
            hsock = self.helper.connect(index)
        except OSError as exc:
            self._egress_verdict(key, None, exc.errno or errno.ECONNREFUSED)
            return
        self.connecting[key] = hsock
        self.sup.reactor.add_writer(hsock.fileno(), lambda: self._egress_ready(key))

    def _egress_ready(self, key) -> None:
        hsock = self.connecting.get(key)
        if hsock is None:
            return
        self.sup.reactor.remove_writer(hsock.fileno())
        err = hsock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._egress_verdict(key, hsock, err)

    def _egress_verdict(self, key, hsock: socket.socket | None, err: int) -> None:
        gate = self.gate
        if err == 0 and gate.accept(key):
            return          # the child comes to _egress_child (now, or after link delays)
        if err == errno.ECONNREFUSED:
            gate.refuse(key)
        elif err:
            gate.fail(key, err)
        self.connecting.pop(key, None)
        if hsock is not None:
            _reset(hsock)   # (connected, but the program's connect is gone)

    def _egress_child(self, key, child) -> None:
        """The handshake is done: pump between the program's kept end and the host socket."""
        hsock = self.connecting.pop(key, None)
        client = child.peer
        kept = self.glue.take_kept(client) if hsock is not None else None
        if kept is None:
            if hsock is not None:
                _reset(hsock)
            self.net.release(child)
            return
        link = self.pump.join(client, kept, child, hsock.detach())
        self.pump.host_fds.add(link.child_fd)
        self._hold(link, child)
        self.glue.placeholders.watch_hangup(kept, client)

    # -- both --------------------------------------------------------------------------------
    def _hold(self, link, sk) -> None:
        """`sk` is the model's end of the host connection in `link`. A RST that reaches it
        in the model (the program closed with SO_LINGER 0, or unread data) resets the
        host connection too: the bytes still in flight are dropped, as an abort drops
        them."""
        self.ours[link] = sk

        def woken() -> None:
            if link.closed:
                return
            if sk.state == TcpState.TCP_CLOSE and sk.sk_err in (errno.ECONNRESET,
                                                                 errno.EPIPE):
                link.reset()
                return
            sk.wait.add(woken)
        sk.wait.add(woken)

    def _link_closed(self, link) -> None:
        """A forwarded connection's bytes are done: the end sysemu held (the forwarded
        client, or the service's end) closes in the model, or is reset with the other
        (unless the model's connection is reset already)."""
        sk = self.ours.pop(link, None)
        self.pump.host_fds.discard(link.client_fd)
        self.pump.host_fds.discard(link.child_fd)
        if sk is None:
            return
        if link.was_reset and sk.state != TcpState.TCP_CLOSE:
            reset_connection(self.net, link.client_sock, link.child_sock)
        self.net.release(sk)


class _Pump(Pump):
    """The Pump of forwarded connections: a reset reaches a host socket as a RST."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.host_fds: set[int] = set()

    def make_unread(self, sock, kept_fd: int) -> None:
        if kept_fd in self.host_fds:
            _linger_reset(kept_fd)
        else:
            super().make_unread(sock, kept_fd)


def _linger_reset(fd: int) -> None:
    """SO_LINGER 0: closing `fd` sends a RST instead of a FIN."""
    s = socket.socket(fileno=fd)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    finally:
        s.detach()


def _reset(sock: socket.socket) -> None:
    _linger_reset(sock.fileno())
    sock.close()


class EgressHelper(SocketHelper):
    """S's end of the egress helper: a child forked in the host's network namespace, with
    no capabilities, that connects to the allowed services only (see the module
    docstring). `connect(i)` returns a host socket with a non-blocking connect to the
    i-th service in progress (or done); OSError with the errno of an immediate failure."""

    def __init__(self, allowed: list[Egress]):
        super().__init__(lambda index: _connect(allowed, index), REQUEST)

    def connect(self, index: int) -> socket.socket:
        return socket.socket(fileno=self.ask(index))


def _connect(allowed: list[Egress], index: int) -> int:
    """In the helper: start connecting to the index-th allowed service."""
    if not 0 <= index < len(allowed):
        return -errno.EACCES
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    err = s.connect_ex(tuple(allowed[index]))
    if err not in (0, errno.EINPROGRESS):
        s.close()
        return -err
    return s.detach()
