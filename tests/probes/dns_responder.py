"""A small DNS responder over UDP for the real-program tests (dig, socat relays).

    python3 dns_responder.py PORT [COUNT]

Answers every A query for NAME with 10.0.0.N (N = the length of NAME), TTL 60; other
types get an empty NOERROR answer; a name under "nx." gets NXDOMAIN. Serves COUNT
queries (default 20) and exits; recvfrom/sendto with addresses, as DNS servers do.
"""
from __future__ import annotations

import socket
import struct
import sys


def parse_question(msg: bytes) -> tuple[str, int, int]:
    pos, labels = 12, []
    while msg[pos]:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    qtype, _ = struct.unpack_from(">HH", msg, pos + 1)
    return ".".join(labels), qtype, pos + 5


def answer(query: bytes) -> bytes:
    qid, flags = struct.unpack_from(">HH", query)
    name, qtype, end = parse_question(query)
    question = query[12:end]
    rcode = 3 if name.endswith("nx") or ".nx." in name + "." else 0
    records = b""
    count = 0
    if qtype == 1 and not rcode:
        records = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4)
                   + bytes([10, 0, 0, len(name) % 256]))
        count = 1
    header = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, count, 0, 0)
    return header + question + records


def main() -> int:
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print("ready", flush=True)
    s.settimeout(20)
    for _ in range(count):
        try:
            query, peer = s.recvfrom(4096)
        except socket.timeout:
            break
        s.sendto(answer(query), peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
