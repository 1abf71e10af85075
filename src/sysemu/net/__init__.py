"""sysemu's network: one `Net` per sandbox (loopback only) and the socket syscalls.

Importing the package registers the handlers (socket, bind, listen, accept, accept4,
connect, getsockname, getpeername, shutdown, setsockopt, getsockopt, socketcall,
io_uring_setup). `attach(kernel)` gives a kernel its Net.

What the host calls: `net.release(sock, unread)` when the last reference to a socket's
file is gone; `net.next_deadline()` / `net.run_timers(now)` to drive time; and it
implements kernel.host (HostHooks) to hear about new files, connections and queues.
"""
from __future__ import annotations

from sysemu.net.core import Net, Segment, Sock
from sysemu.net import socket as _socket_handlers  # noqa: F401  (registers handlers)
from sysemu.kernel.sysctl import register_defaults
from sysemu.net.socket import Socket

__all__ = ["Net", "Sock", "Socket", "Segment", "attach"]


def attach(kernel) -> Net:
    """Give `kernel` its network namespace (kernel.net) and the sysctl defaults."""
    register_defaults(kernel)
    kernel.net = Net(kernel)
    return kernel.net
