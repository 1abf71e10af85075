"""The Udp counters of /proc/net/snmp after a fixed exchange, in a network namespace of
its own (a fresh MIB): datagrams sent and received (natively and with recvfrom), port
unreachable (NoPorts, and the Icmp counters of the errors), receive-buffer drops, a
failed copy (InErrors). Prints the Udp: and Icmp: lines as JSON."""
import ctypes
import json
import socket
import time

LOOP = "127.0.0.1"
libc = ctypes.CDLL(None, use_errno=True)
libc.recvfrom.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_void_p]

a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind((LOOP, 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    b.sendto(b"x" * 10, a.getsockname())
time.sleep(0.05)
a.recv(100)
a.recvfrom(100)
a.recvfrom(100, socket.MSG_PEEK)
closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
closed.bind((LOOP, 0))
port = closed.getsockname()[1]
closed.close()
for i in range(3):
    b.sendto(b"y", (LOOP, port))
small = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
small.bind((LOOP, 0))
for i in range(6):
    b.sendto(b"z" * 1000, small.getsockname())
time.sleep(0.05)
got = 0
while True:
    try:
        small.recv(2000, socket.MSG_DONTWAIT)
        got += 1
    except BlockingIOError:
        break
b.sendto(b"lost", a.getsockname())
time.sleep(0.05)
name = ctypes.create_string_buffer(16)
nlen = ctypes.c_int(16)
# EFAULT: the datagram is dropped (InErrors). (With an address: a recv() without one
# reads sysemu's placeholder, whose failed copy sysemu does not see.)
libc.recvfrom(a.fileno(), None, 10, 0, name, ctypes.byref(nlen))
libc.recvfrom(a.fileno(), 0x10000, 10, 0, name, ctypes.byref(nlen))
with open("/proc/net/snmp") as f:
    lines = [line.split() for line in f]
out = {"small_got": got}
for group in ("Udp:", "Icmp:"):
    head, values = [line for line in lines if line[0] == group][:2]
    out[group] = dict(zip(head[1:], values[1:]))
print(json.dumps(out, sort_keys=True))
