"""The control channel of a sandbox: a Unix socket the outside asks with JSON.

Each running sandbox listens on DIR/ID.sock, where DIR is $SYSEMU_CONTROL_DIR, else
$XDG_RUNTIME_DIR/sysemu, else /tmp/sysemu-$UID (made mode 0700, and refused unless it is
ours and private) and ID the sandbox id (`run --id`, default the supervisor's pid). Only the
same user may ask: the peer's uid (SO_PEERCRED) must be ours.

Protocol: one request line (a JSON object, at most MAX_REQUEST bytes), one reply line,
then the server closes. The server runs in the supervisor's reactor and never blocks it:
every socket is non-blocking, partial reads and writes wait for readiness.

The client half (request, list_sandboxes) and the /proc readers `ss -p` and `ps` need
(sandbox_pids, socket_users) are here too: they are the host-facing part of `sysemu ss`.
"""
from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import struct
from pathlib import Path
from typing import Callable

from sysemu.host.procs import descendants

MAX_REQUEST = 1 << 16
SUFFIX = ".sock"
ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ControlError(Exception):
    """The control channel cannot be used (the message says why)."""


def control_dir(create: bool = True) -> Path:
    """The directory of the control sockets, private to this user."""
    base = os.environ.get("SYSEMU_CONTROL_DIR")
    if base:
        path = Path(base)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "sysemu"
    else:
        path = Path(f"/tmp/sysemu-{os.getuid()}")
    if create:
        try:
            path.mkdir(mode=0o700, parents=False, exist_ok=True)
        except FileNotFoundError:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ControlError(f"{path} is not a directory of uid {os.getuid()}")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_id(sandbox_id: str) -> str:
    if not ID_PATTERN.match(sandbox_id):
        raise ControlError(f"bad sandbox id {sandbox_id!r} (letters, digits, . _ -; up to 64)")
    return sandbox_id


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[2]


class _Conn:
    __slots__ = ("sock", "inbuf", "outbuf")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""


class ControlServer:
    """Serves `handler(request) -> reply` on DIR/ID.sock from `reactor`."""

    def __init__(self, reactor, sandbox_id: str, handler: Callable[[object], dict],
                 directory: Path | None = None, log: Callable[[str], None] | None = None):
        self.reactor = reactor
        self.id = check_id(sandbox_id)
        self.handler = handler
        self.directory = directory if directory is not None else control_dir()
        self.path = self.directory / f"{self.id}{SUFFIX}"
        self.log = log or (lambda text: None)
        self.sock: socket.socket | None = None
        self.conns: dict[int, _Conn] = {}
        self.uid = os.getuid()

    def start(self) -> "ControlServer":
        if self.path.exists() or self.path.is_symlink():
            if probe(self.path) is not None:
                raise ControlError(f"a sandbox with id {self.id!r} is running ({self.path})")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(16)
        sock.setblocking(False)
        self.sock = sock
        self.reactor.add_reader(sock.fileno(), self._accept)
        return self

    def close(self) -> None:
        for fd in list(self.conns):
            self._drop(fd)
        if self.sock is not None:
            self.reactor.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    # -- serving ---------------------------------------------------------------------
    def _accept(self) -> None:
        while self.sock is not None:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log(f"control: accept: {exc}")
                return
            try:
                if peer_uid(conn) != self.uid:
                    conn.close()
                    continue
            except OSError:
                conn.close()
                continue
            conn.setblocking(False)
            fd = conn.fileno()
            self.conns[fd] = _Conn(conn)
            self.reactor.add_reader(fd, lambda fd=fd: self._readable(fd))

    def _readable(self, fd: int) -> None:
        c = self.conns.get(fd)
        if c is None:
            return
        try:
            data = c.sock.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd)
            return
        c.inbuf += data
        if b"\n" not in c.inbuf and data and len(c.inbuf) < MAX_REQUEST:
            return
        self.reactor.remove_reader(fd)
        line = bytes(c.inbuf).split(b"\n", 1)[0]
        try:
            reply = self.handler(json.loads(line))
        except ValueError:
            reply = {"error": "a request is one line of JSON"}
        except Exception as exc:    # the supervisor never dies of a request
            self.log(f"control: {exc!r}")
            reply = {"error": f"internal error: {exc!r}"}
        c.outbuf = json.dumps(reply).encode() + b"\n"
        self._writable(fd)

    def _writable(self, fd: int) -> None:
        c = self.conns.get(fd)
        if c is None:
            return
        try:
            n = c.sock.send(c.outbuf, socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._drop(fd)
            return
        c.outbuf = c.outbuf[n:]
        if c.outbuf:
            self.reactor.add_writer(fd, lambda fd=fd: self._writable(fd))
        else:
            self._drop(fd)

    def _drop(self, fd: int) -> None:
        c = self.conns.pop(fd, None)
        if c is None:
            return
        self.reactor.remove_reader(fd)
        self.reactor.remove_writer(fd)
        c.sock.close()


# -- the client ------------------------------------------------------------------------

def request(path: Path | str, req: dict, timeout: float = 5.0) -> dict:
    """One request to the sandbox at `path`; OSError if nobody answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(req).encode() + b"\n")
        data = bytearray()
        while b"\n" not in data:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    try:
        return json.loads(bytes(data).split(b"\n", 1)[0])
    except ValueError:
        raise OSError(errno.EPROTO, f"no reply from {path}") from None


def probe(path: Path) -> dict | None:
    """The sandbox's info, or None if the socket is stale (nobody listens)."""
    try:
        return request(path, {"op": "info"}, timeout=2.0)
    except OSError:
        return None


def list_sandboxes(directory: Path | None = None, clean: bool = True) -> list[tuple[str, Path, dict]]:
    """(id, socket path, info) of every running sandbox of this user, by id; stale
    sockets (their supervisor is gone) are removed."""
    directory = directory if directory is not None else control_dir(create=False)
    found = []
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        if not path.name.endswith(SUFFIX) or not stat.S_ISSOCK(path.lstat().st_mode):
            continue
        info = probe(path)
        if info is None:
            if clean:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            continue
        found.append((path.name[:-len(SUFFIX)], path, info))
    return found


def find_sandbox(sandbox_id: str | None, directory: Path | None = None) -> Path:
    """The socket of sandbox `sandbox_id`, or of the only one running when None."""
    directory = directory if directory is not None else control_dir(create=False)
    if sandbox_id is not None:
        path = directory / f"{check_id(sandbox_id)}{SUFFIX}"
        if not path.exists():
            raise ControlError(f"no sandbox with id {sandbox_id!r} (see `sysemu ps`)")
        return path
    running = list_sandboxes(directory)
    if not running:
        raise ControlError("no sandbox is running")
    if len(running) > 1:
        ids = ", ".join(i for i, _, _ in running)
        raise ControlError(f"{len(running)} sandboxes are running ({ids}): choose one with --id")
    return running[0][1]


# -- /proc: the sandbox's processes and their sockets ---------------------------------------

def my_pid() -> int:
    return os.getpid()


def sandbox_pids(root: int | None = None) -> list[int]:
    """The processes below `root` (default: this process, the supervisor), parents first."""
    return descendants(os.getpid() if root is None else root)


def socket_users(pids: list[int]) -> dict[int, list[tuple[str, int, int]]]:
    """inode -> [(comm, pid, fd)] for every `socket:[inode]` descriptor of `pids`."""
    users: dict[int, list[tuple[str, int, int]]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in sorted(fds, key=lambda n: int(n) if n.isdigit() else -1):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                users.setdefault(int(target[8:-1]), []).append((comm, pid, int(name)))
    return users


def wall_minus_monotonic() -> float:
    import time
    return time.time() - time.monotonic()
