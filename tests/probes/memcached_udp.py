"""memcached over UDP: a value set over TCP, read with a UDP get (memcached's 8-byte
frame header: request id, sequence, count, reserved) and `stats` over UDP.

    python3 memcached_udp.py TCP_PORT UDP_PORT
"""
import socket, sys, time
tport, uport = int(sys.argv[1]), int(sys.argv[2])
for _ in range(50):
    try:
        t = socket.create_connection(("127.0.0.1", tport), timeout=2); break
    except OSError: time.sleep(0.1)
t.sendall(b"set greeting 0 0 5\r\nhello\r\n"); print(t.recv(100).decode().strip())
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
u.sendto(b"\x00\x07\x00\x00\x00\x01\x00\x00get greeting\r\n", ("127.0.0.1", uport))
data, src = u.recvfrom(2000)
print(data[:2] == b"\x00\x07", data[8:].decode().strip().replace("\r\n", "|"), src[1] == uport)
u.sendto(b"\x00\x08\x00\x00\x00\x01\x00\x00stats\r\n", ("127.0.0.1", uport))
data = u.recv(65536)
print("stats ok", b"STAT pid" in data)
t.sendall(b"shutdown\r\n")
