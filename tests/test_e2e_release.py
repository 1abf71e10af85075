"""End to end: what a program leaves behind. A killed program releases its ports; a
signal arriving again and again during a blocking accept() loses no connection and no
byte. Each script runs natively and under `sysemu run`, and both must say the same."""
from __future__ import annotations

import subprocess
import sys

import pytest

KILLED_RELEASES_PORT = r"""
import os, signal, socket, subprocess, sys
child = subprocess.run([sys.executable, "-c", '''
import os, signal, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
print(s.getsockname()[1], flush=True)
os.kill(os.getpid(), signal.SIGKILL)
'''], capture_output=True, text=True)
port = int(child.stdout)
print("child killed by", -child.returncode)
s = socket.socket()
# the connection's sockets sit in TIME_WAIT; like the killed listener, they have
# SO_REUSEADDR (accepted sockets inherit it), so a new SO_REUSEADDR listener may bind
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(1)
print("port free again after the kill: listening")
"""

SIGNALS_DURING_ACCEPT = r"""
import os, signal, socket, threading, time
hits = []
signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
payload = bytes(range(256)) * 64
def client():
    time.sleep(0.4)
    c = socket.create_connection(("127.0.0.1", port)); c.sendall(payload); c.close()
threading.Thread(target=client).start()
signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)      # SIGALRM every 20 ms while we wait
conn, _ = srv.accept()
signal.setitimer(signal.ITIMER_REAL, 0, 0)
data = b""
while chunk := conn.recv(65536):
    data += chunk
print("interrupted by signals while waiting:", len(hits) > 5)
print("accepted the connection, bytes intact:", data == payload)
"""


LISTENER_GONE_RESETS_QUEUED = r"""
import ctypes, errno, socket, struct, time
libc = ctypes.CDLL(None, use_errno=True)
for how in ("close", "connect AF_UNSPEC"):
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
    c = socket.socket(); c.connect(l.getsockname()); c.sendall(b"early")
    time.sleep(0.05)
    if how == "close":
        l.close()
    else:
        libc.connect(l.fileno(), struct.pack("=H", 0) + bytes(14), 16)
    time.sleep(0.3)
    try:
        got = c.recv(10)
    except OSError as e:
        got = errno.errorcode[e.errno]
    print(f"listener {how}: the queued client's recv: {got}")
"""


RECONNECT_AFTER_REFUSAL = r"""
import errno, select, socket
c = socket.socket(); c.setblocking(False)
l = socket.socket(); l.bind(("127.0.0.1", 0)); port = l.getsockname()[1]   # not listening
print("first:", errno.errorcode.get(c.connect_ex(("127.0.0.1", port))))
select.select([], [c], [], 2)
print("SO_ERROR:", errno.errorcode.get(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
l.listen(4)
for i in range(3):          # Linux: the next connect reports the end of the failed one
    r = c.connect_ex(("127.0.0.1", port))
    print("again:", errno.errorcode.get(r, r))
    if r in (0, errno.EINPROGRESS):
        break
select.select([], [c], [], 2)
print("SO_ERROR:", c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
l.settimeout(5); a, _ = l.accept(); c.setblocking(True)
c.sendall(b"same socket, new connection"); print(a.recv(100))
"""


SHARED_AND_PASSED = r"""
import socket, threading, time, os, array
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4); port = l.getsockname()[1]
res = {}
def acc():
    try: res["acc"] = l.accept()
    except OSError as e: res["acc"] = e.errno
t = threading.Thread(target=acc, daemon=True); t.start(); time.sleep(0.2)
os.close(l.fileno()); l.detach(); time.sleep(0.3)
print("closed under a blocked accept: still blocked" if t.is_alive() else f"accept returned {res}")
# fork: parent and child accept on one listener
l2 = socket.socket(); l2.bind(("127.0.0.1", 0)); l2.listen(4); p2 = l2.getsockname()[1]
pid = os.fork()
if pid == 0:
    c, _ = l2.accept(); c.sendall(b"child"); os._exit(0)
c = socket.create_connection(("127.0.0.1", p2)); print("from forked acceptor:", c.recv(10))
os.waitpid(pid, 0)
# SCM_RIGHTS: hand a connected socket to a child, exit parent side
a, b = socket.socketpair()
s = socket.create_connection(("127.0.0.1", p2))
pid = os.fork()
if pid == 0:
    msg, fds, _, _ = socket.recv_fds(b, 10, 1)
    t = socket.socket(fileno=fds[0]); t.sendall(b"passed"); os._exit(0)
socket.send_fds(a, [b"x"], [s.fileno()]); s.close()
srv, _ = l2.accept(); print("through a passed fd:", srv.recv(10)); os.waitpid(pid, 0)
print("supervisor alive")
"""


@pytest.mark.parametrize("script", [KILLED_RELEASES_PORT, SIGNALS_DURING_ACCEPT,
                                    LISTENER_GONE_RESETS_QUEUED, RECONNECT_AFTER_REFUSAL,
                                    SHARED_AND_PASSED],
                         ids=["killed-program-releases-port", "signals-during-accept",
                              "listener-gone-resets-queued", "reconnect-after-refusal",
                              "closed-forked-and-passed-sockets"])
def test_same_story_as_linux(script, sysemu_bin):
    native = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    assert native.returncode == 0, native.stderr
    got = subprocess.run([str(sysemu_bin), "run", "--", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=30)
    assert (got.returncode, got.stdout) == (0, native.stdout), got.stderr[-2000:]
    assert any(word in native.stdout
               for word in ("True", "listening", "ECONNRESET", "new", "supervisor alive"))
