"""The accept-queue demo: listen(fd, 1), five clients, no accept() for a while.

Linux keeps backlog+1 = 2 established connections in the accept queue (the listener's
Recv-Q in /proc/net/tcp); the other SYNs are dropped (ListenOverflows) and their clients
retransmit (1 s, then 1 s, 1 s ...) until accept() makes room. A client whose SYN got its
SYN-ACK before the queue filled, and whose final ACK then met the full queue, counts itself
connected while the server still holds only a request: how many clients that is depends
on how the five handshakes interleave, so the demo prints it in parentheses, apart from the
story. Run it natively and under `sysemu run`: the story is the same.
"""
import socket
import sys
import threading
import time

CLIENTS = 5


def netstat_counter(name: str) -> int:
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, values in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            return int(dict(zip(head.split()[1:], values.split()[1:]))[name])
    raise KeyError(name)


def accept_queue_length(port: int) -> int:
    """The listener's Recv-Q (its accept queue length) from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                return int(fields[4].split(":")[1], 16)
    raise KeyError(port)


def main() -> int:
    overflows_before = netstat_counter("ListenOverflows")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    t0 = time.monotonic()
    connected: list[tuple[int, float]] = []
    keep = []
    lock = threading.Lock()

    def client(i: int) -> None:
        c = socket.socket()
        c.settimeout(30)
        c.connect(("127.0.0.1", port))
        # Speak first, as an HTTP client does. Linux detail worth seeing: a client whose
        # final ACK met a full queue believes it is connected while the server still holds
        # only a request; its data segment completes the handshake once there is room.
        c.sendall(b"hello")
        with lock:
            connected.append((i, time.monotonic() - t0))
            keep.append(c)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(0.6)
    with lock:
        early = len(connected)
    queued = accept_queue_length(port)
    overflows = netstat_counter("ListenOverflows") - overflows_before
    print(f"listen(fd, 1), {CLIENTS} clients, no accept for 0.6 s: the accept queue holds "
          f"{queued} (backlog+1), the rest wait in retransmission "
          f"(connect() had returned in {early} clients)")
    print(f"ListenOverflows grew: {overflows > 0}")
    srv.settimeout(30)
    accepted = 0
    while accepted < CLIENTS:
        conn, _ = srv.accept()
        conn.recv(5)
        conn.close()
        accepted += 1
    for t in threads:
        t.join(30)
    late = sorted(round(t) for _, t in connected[early:])
    print(f"accepting released the rest: {len(connected)} of {CLIENTS} connected; "
          f"the waiting ones got in after their retransmissions (at about {late} s)")
    return 0 if len(connected) == CLIENTS and queued == 2 and overflows > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
