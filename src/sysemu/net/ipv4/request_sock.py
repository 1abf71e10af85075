"""The SYN queue and the accept queue of a listener.

Linux: include/net/request_sock.h (struct request_sock, struct request_sock_ops,
struct request_sock_queue, reqsk_queue_remove), net/core/request_sock.c.
The queue operations a listener does (inet_csk_reqsk_queue_*) are in
inet_connection_sock.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sysemu.abi.inet import TcpState

if TYPE_CHECKING:
    from sysemu.net.core import Net, Segment, Sock, Timer


@dataclass(frozen=True)
class RequestSockOps:
    """Linux: struct request_sock_ops (tcp_request_sock_ops): how the protocol resends a
    request's SYN-ACK (rtx_syn_ack) and answers a segment that does not fit it
    (send_reset)."""
    rtx_syn_ack: Callable[["Net", "RequestSock"], None]
    send_reset: Callable[["Net", "Segment"], None]


class RequestSock:
    """Linux: struct request_sock / inet_request_sock / tcp_request_sock: a connection in
    SYN_RECV, known by its 4-tuple, until the client's ACK makes it a child socket.
    tstamp_ok, ts_recent, ts_off: the SYN's timestamp option (tcp_openreq_init()) and
    the offset of ours (tcp_rsk(req)->ts_off)."""

    __slots__ = ("listener", "rsk_ops", "loc_addr", "loc_port", "rmt_addr", "rmt_port",
                 "snt_isn", "rcv_isn", "num_timeout", "timer", "sk", "tstamp_ok",
                 "ts_recent", "ts_off", "snt_synack", "rcv_wnd")
    state = TcpState.TCP_NEW_SYN_RECV      # what ehash lookups see (sk_state)

    def __init__(self, listener: "Sock", rsk_ops: RequestSockOps, loc_addr: bytes,
                 loc_port: int, rmt_addr: bytes, rmt_port: int, rcv_isn: int, snt_isn: int):
        self.listener = listener
        self.rsk_ops = rsk_ops
        self.loc_addr, self.loc_port = loc_addr, loc_port
        self.rmt_addr, self.rmt_port = rmt_addr, rmt_port
        self.rcv_isn = rcv_isn
        self.snt_isn = snt_isn
        self.num_timeout = 0
        self.timer: Timer | None = None
        self.sk: Sock | None = None     # the child, once in the accept queue
        self.tstamp_ok = False
        self.ts_recent = 0
        self.ts_off = 0
        self.snt_synack = 0.0           # when the last SYN-ACK went (an RTT sample)
        self.rcv_wnd = 0                # the window it offered (rsk_rcv_wnd)

    @property
    def key(self) -> tuple[bytes, int, bytes, int]:
        return (self.loc_addr, self.loc_port, self.rmt_addr, self.rmt_port)


class RequestSockQueue:
    """Linux: struct request_sock_queue. `syn` holds requests in SYN_RECV by 4-tuple
    (qlen is its size: Linux keeps them in ehash, counted per listener); `accept` is the
    FIFO of established children (rskq_accept_head .. tail)."""

    def __init__(self):
        self.syn: dict[tuple[bytes, int, bytes, int], RequestSock] = {}
        self.accept: deque[RequestSock] = deque()
        # sysemu: SYN cookies are kept as the requests they encode (no timer, not counted
        # in qlen), so the ACK that returns one can be checked (cookie_v4_check()).
        self.cookies: dict[tuple[bytes, int, bytes, int], RequestSock] = {}

    @property
    def qlen(self) -> int:
        return len(self.syn)

    def empty(self) -> bool:
        """Linux: reqsk_queue_empty()."""
        return not self.accept


def reqsk_queue_remove(sk: "Sock") -> RequestSock | None:
    """Linux: reqsk_queue_remove() + sk_acceptq_removed()."""
    queue = sk.accept_queue
    if not queue.accept:
        return None
    req = queue.accept.popleft()
    sk.ack_backlog -= 1
    return req
