"""sysemu's network: one `Net` per sandbox (loopback only) and the socket syscalls.

Importing the package registers the handlers (socket, bind, listen, accept, accept4,
connect, getsockname, getpeername, shutdown, setsockopt, getsockopt, socketcall,
io_uring_setup). `attach(kernel)` gives a kernel its Net.

What the host calls: `net.release(sock, unread)` when the last reference to a socket's
file is gone; `net.next_deadline()` / `net.run_timers(now)` to drive time; and it
implements kernel.host (HostHooks) to hear about new files, connections and queues.
"""
from __future__ import annotations

from sysemu.kernel.sysctl import register_defaults
from sysemu.net.core import Net, Segment, Sock
from sysemu.net.ipv4 import af_inet  # noqa: F401  (registers PF_INET, PF_INET6)
from sysemu.net.ipv4.inet_hashtables import InetHashInfo
from sysemu.net.ipv4.tcp_ipv4 import tcp_v4_rcv
from sysemu.net.ipv4.udp import UdpTable
from sysemu.net.socket import Socket  # (importing it registers the handlers)

__all__ = ["Net", "Sock", "Socket", "Segment", "attach"]


def attach(kernel) -> Net:
    """Give `kernel` its network namespace (kernel.net) and the sysctl defaults: TCP's
    tables and receive handler (Linux: setup_net() -> tcp_sk_init(), and
    inet_add_protocol(&tcp_protocol) from inet_init())."""
    register_defaults(kernel)
    kernel.net = Net(kernel, InetHashInfo(), tcp_v4_rcv)
    kernel.net.udp_table = UdpTable()      # Linux: udp_table, from udp_init()
    return kernel.net
