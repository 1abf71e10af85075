"""The Python API: drive a sandbox from your own code and tests.

    from sysemu.api import Sandbox

    with Sandbox(sysctls={"net.core.somaxconn": "16"}, faults=["refuse:port=9"]) as sb:
        server = sb.spawn(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"])
        sb.wait_listening(8000)
        print(sb.run("curl -s http://127.0.0.1:8000/ | head -c 60").stdout)
        print(sb.ss(listening=True))        # [{'state': 'LISTEN', 'recv_q': 0, ...}]
        print(sb.nstat()["TcpPassiveOpens"])
        print(sb.sysctl("net.core.somaxconn"))

A Sandbox is ONE `sysemu run --id ID [options] -- python3 -m sysemu.sandbox.agent`
process. The agent (sysemu/sandbox/agent.py) runs inside the sandbox and starts the
commands you ask for, so they share its virtual network (a server started by `spawn` is
reachable from `run`, and not from the host unless published: `publish=["8080:8000"]`;
`allow_egress=["127.0.0.1:6379"]` lets them reach that host service). Sockets and counters come from the sandbox's control channel
(host/control.py, what `sysemu ss` / `sysemu nstat` read).

Leaving the `with` block (or `close()`) always ends the sandbox and everything in it, also
when the body raised: the agent is told to stop, then `sysemu run` is terminated, then
killed. Errors are SandboxError, whose message ends with the tail of sysemu's stderr.

In pytest, the fixture `sandbox` gives each test a fresh default Sandbox:

    # conftest.py: either line
    pytest_plugins = ["sysemu.api"]
    from sysemu.api import pytest_sandbox as sandbox     # (or: import sandbox)

    def test_echo(sandbox):
        assert sandbox.run("echo hi").stdout == "hi\\n"

(A conftest may not hold an attribute named pytest_*: pytest takes it for a hook and
refuses the file, hence the `as`.) Or a fixture of your own with options:

    import pytest
    from sysemu.api import Sandbox

    @pytest.fixture
    def sandbox():
        with Sandbox(faults=["latency:port=8000:ms=50"]) as sb:
            yield sb

(`sandbox_fixture(**options)` builds such a fixture in one line.)
"""
from __future__ import annotations

import base64
import collections
import itertools
import json
import queue
import shlex
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

from sysemu.host import control
from sysemu.host.namespaces import host_pid

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
REPLY_MARGIN = 10.0        # seconds the API waits beyond a command's own timeout
STDERR_TAIL = 200          # lines of sysemu's stderr kept for error messages


class SandboxError(Exception):
    """The sandbox failed (did not start, died, or a request failed). `stderr` is the
    tail of sysemu's stderr."""

    def __init__(self, message: str, stderr: str = ""):
        self.stderr = stderr
        if stderr.strip():
            message = f"{message}\n--- sysemu stderr (tail) ---\n{stderr.rstrip()}"
        super().__init__(message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def sysemu_command() -> list[str]:
    """How to start `sysemu`: the script beside this interpreter, else `-m sysemu.cli`."""
    script = Path(sys.executable).parent / "sysemu"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "sysemu.cli"]


def _command_request(cmd: str | Sequence[str]) -> dict:
    if isinstance(cmd, str):
        return {"shell": cmd}
    return {"argv": [str(a) for a in cmd]}


def _describe(cmd: str | Sequence[str]) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(str(a) for a in cmd)


def _decode(data: bytes, text: bool):
    return data.decode("utf-8", "replace") if text else data


class Process:
    """A command started by Sandbox.spawn, running in the background inside the sandbox.
    After wait() or kill(): returncode, stdout and stderr (str, or bytes if text=False)."""

    def __init__(self, sandbox: "Sandbox", handle: int, pid: int, args, text: bool):
        self.sandbox, self.handle, self.pid, self.args, self.text = (
            sandbox, handle, pid, args, text)
        self.returncode: int | None = None
        self.stdout = self.stderr = None

    def _done(self, reply: dict) -> int:
        self.returncode = reply["returncode"]
        self.stdout = _decode(_unb64(reply.get("stdout")), self.text)
        self.stderr = _decode(_unb64(reply.get("stderr")), self.text)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end; its return code (negative: killed by that signal).
        subprocess.TimeoutExpired if it is still running after `timeout` seconds."""
        if self.returncode is not None:
            return self.returncode
        reply = self.sandbox._request({"op": "wait", "handle": self.handle, "timeout": timeout},
                                      None if timeout is None else timeout + REPLY_MARGIN)
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._done(reply)

    def poll(self) -> int | None:
        """Its return code if it has ended, else None."""
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, signal: int = 9) -> int:
        """Send `signal` (default SIGKILL) and wait for it to end; its return code."""
        if self.returncode is not None:
            return self.returncode
        return self._done(self.sandbox._request(
            {"op": "kill", "handle": self.handle, "signal": int(signal)}, 30.0))

    def terminate(self) -> int:
        return self.kill(15)

    def __repr__(self) -> str:
        return f"<sysemu.api.Process pid={self.pid} {_describe(self.args)!r} rc={self.returncode}>"


class Sandbox:
    """One sandbox: `sysemu run` with the agent inside. Use as a context manager."""

    _ids = itertools.count(1)

    def __init__(self, sysctls: dict | None = None, faults: Sequence[str] = (),
                 injects: Sequence[str] = (), pcap: str | Path | None = None,
                 strace: str | None = None, strace_output: str | Path | None = None,
                 policy: str = "passthrough", id: str | None = None,
                 start_timeout: float = START_TIMEOUT, publish: Sequence[str] = (),
                 allow_egress: Sequence[str] = ()):
        self.sysctls = dict(sysctls or {})
        self.publish = list(publish)            # --publish [HOST_IP:]HOST_PORT:SANDBOX_PORT
        self.allow_egress = list(allow_egress)  # --allow-egress HOST:PORT
        self.faults = list(faults)
        self.injects = list(injects)
        self.pcap = pcap
        self.strace = strace
        self.strace_output = strace_output
        self.policy = policy
        self.id = control.check_id(id) if id is not None else (
            f"api-{uuid.uuid4().hex[:12]}-{next(self._ids)}")
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.agent_pid: int | None = None
        self.supervisor_pid: int | None = None
        self.returncode: int | None = None
        self._replies: queue.Queue = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._request_ids = itertools.count(1)
        self._closed = False

    # -- life cycle -------------------------------------------------------------------
    def argv(self) -> list[str]:
        """The `sysemu run ...` command line this sandbox runs."""
        cmd = sysemu_command() + ["run", "--id", self.id, "--policy", self.policy]
        for name, value in self.sysctls.items():
            cmd += ["--sysctl", f"{name}={value}"]
        for spec in self.faults:
            cmd += ["--fault", spec]
        for spec in self.injects:
            cmd += ["--inject", spec]
        if self.pcap is not None:
            cmd += ["--pcap", str(self.pcap)]
        for spec in self.publish:
            cmd += ["--publish", spec]
        for spec in self.allow_egress:
            cmd += ["--allow-egress", spec]
        if self.strace is not None:
            cmd.append(f"--strace={self.strace}" if self.strace else "--strace")
        if self.strace_output is not None:
            cmd += ["-o", str(self.strace_output)]
        return cmd + ["--", sys.executable, "-m", "sysemu.sandbox.agent"]

    def start(self) -> "Sandbox":
        if self.proc is not None:
            raise SandboxError("the sandbox is already started")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._threads = [
            threading.Thread(target=self._read_replies, daemon=True, name=f"{self.id}-out"),
            threading.Thread(target=self._read_stderr, daemon=True, name=f"{self.id}-err"),
        ]
        for t in self._threads:
            t.start()
        try:
            self.agent_pid = self.host_pid(
                self._request({"op": "hello"}, self.start_timeout)["pid"])
            info = self._control({"op": "info"})
            self.supervisor_pid = info.get("supervisor")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> int | None:
        """End the sandbox and everything in it (idempotent); sysemu's exit status."""
        if self.proc is None or self._closed:
            return self.returncode
        self._closed = True
        proc = self.proc
        try:
            # Ask the agent to stop, unless another thread is stuck in a request: then
            # terminate at once (W forwards SIGTERM to the agent; the supervisor kills
            # whatever is left in the sandbox when the agent exits).
            if proc.poll() is None and self._lock.acquire(timeout=STOP_TIMEOUT):
                try:
                    self._send({"op": "stop"})
                    deadline = time.monotonic() + STOP_TIMEOUT
                    while (line := self._replies.get(
                            timeout=max(0.0, deadline - time.monotonic()))) is not None:
                        if b'"stopped"' in line:
                            break
                except (OSError, queue.Empty, ValueError):
                    pass
                finally:
                    self._lock.release()
            for step in (None, proc.terminate, proc.kill):
                if step is not None:
                    step()
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                proc.wait()
        finally:
            for f in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
            for t in self._threads:
                t.join(timeout=STOP_TIMEOUT)
            self.returncode = proc.returncode
            self._remove_stale_socket()
        return self.returncode

    def _remove_stale_socket(self) -> None:
        # sysemu: `sysemu run` leaves its control socket behind when it exits; nobody
        # answers on it any more, so it goes (as `sysemu ps` removes stale sockets).
        try:
            path = self.control_path
            if path.exists() and control.probe(path) is None:
                path.unlink(missing_ok=True)
        except (OSError, control.ControlError):
            pass

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The pid of the `sysemu run` process."""
        return self.proc.pid if self.proc is not None else None

    @property
    def control_path(self) -> Path:
        return control.control_dir(create=False) / f"{self.id}{control.SUFFIX}"

    def stderr_tail(self) -> str:
        """The last lines sysemu (and the agent) wrote to stderr."""
        return "".join(self._stderr)

    # -- the agent's pipes ------------------------------------------------------------
    def _read_replies(self) -> None:
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)          # end of output: the sandbox ended

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))

    def _send(self, request: dict) -> None:
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()

    def _error(self, message: str) -> SandboxError:
        if self.proc is not None and self.proc.poll() is not None:
            message += f" (sysemu exited with {self.proc.returncode})"
        return SandboxError(message, self.stderr_tail())

    def _request(self, request: dict, timeout: float | None) -> dict:
        """One request to the agent and its reply; SandboxError if it fails or the
        sandbox is gone, or if no reply comes within `timeout` seconds."""
        if self.proc is None or self._closed:
            raise SandboxError("the sandbox is not running")
        request = dict(request, id=next(self._request_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            try:
                self._send(request)
            except (OSError, ValueError):
                self._await_exit()
                raise self._error(f"{request['op']}: the sandbox is gone") from None
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    line = self._replies.get(timeout=left)
                except queue.Empty:
                    raise self._error(f"{request['op']}: no reply from the agent in "
                                      f"{timeout} s") from None
                if line is None:
                    self._replies.put(None)
                    self._await_exit()
                    raise self._error(f"{request['op']}: the sandbox ended")
                reply = json.loads(line)
                if reply.get("id") == request["id"]:
                    break           # else: the late reply of a request that timed out
        if "error" in reply:
            raise self._error(f"{request['op']}: {reply.get('type', 'Error')}: {reply['error']}")
        return reply

    def _await_exit(self) -> None:
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads[1:]:
            t.join(timeout=1.0)

    def _control(self, request: dict) -> dict:
        try:
            reply = control.request(self.control_path, request)
        except (OSError, control.ControlError) as exc:
            raise self._error(f"control {request['op']}: {exc}") from None
        if "error" in reply:
            raise self._error(f"control {request['op']}: {reply['error']}")
        return reply

    # -- commands ---------------------------------------------------------------------
    def run(self, cmd: str | Sequence[str], timeout: float | None = 60.0, *,
            input: bytes | str | None = None, env: dict | None = None,
            cwd: str | Path | None = None, text: bool = True,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run `cmd` (argv, or a string for /bin/sh -c) inside the sandbox to completion.
        `env` replaces the environment (None: the agent's). stdout/stderr are str unless
        text=False. subprocess.TimeoutExpired after `timeout` s (the command is killed);
        CalledProcessError if check and it failed; SandboxError if it cannot start."""
        request = dict(_command_request(cmd), op="run", timeout=timeout, env=env,
                       cwd=None if cwd is None else str(cwd))
        if input is not None:
            request["stdin"] = _b64(input.encode() if isinstance(input, str) else input)
        reply = self._request(request, None if timeout is None else timeout + REPLY_MARGIN)
        out = _decode(_unb64(reply.get("stdout")), text)
        err = _decode(_unb64(reply.get("stderr")), text)
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err)
        done = subprocess.CompletedProcess(cmd, reply["returncode"], out, err)
        if check:
            done.check_returncode()
        return done

    def spawn(self, cmd: str | Sequence[str], *, env: dict | None = None,
              cwd: str | Path | None = None, text: bool = True) -> Process:
        """Start `cmd` in the background inside the sandbox (stdin /dev/null, output kept
        until wait/kill)."""
        request = dict(_command_request(cmd), op="spawn", env=env,
                       cwd=None if cwd is None else str(cwd))
        reply = self._request(request, 30.0)
        return Process(self, reply["handle"], self.host_pid(reply["pid"]), cmd, text)

    def host_pid(self, pid: int) -> int:
        """A pid as the sandbox numbers it (its own PID namespace: what `echo $!` prints
        inside) as the host knows it. Process.pid and agent_pid are host pids already."""
        return host_pid(self.proc.pid, pid)

    def read_file(self, path: str | Path) -> bytes:
        """A file's bytes as a program inside the sandbox reads them."""
        return _unb64(self._request({"op": "read", "path": str(path)}, 30.0)["data"])

    def sysctl(self, name: str) -> str:
        """A sysctl of the sandbox (net.core.somaxconn), read from /proc/sys inside it."""
        path = "/proc/sys/" + name.replace(".", "/")
        return self.read_file(path).decode().strip()

    # -- observing --------------------------------------------------------------------
    def ss(self, listening: bool = False) -> list[dict]:
        """The sandbox's TCP sockets (`sysemu ss -tanp`): dicts with state, recv_q, send_q
        (for a listener: accept queue length and its limit, the backlog), local and peer
        ("addr:port"), local_port, peer_port (None for "*"), and process: the
        [{"comm", "pid", "fd"}] holding it. listening=True: listeners only (ss -l)."""
        reply = self._control({"op": "ss"})
        users = control.socket_users(reply.get("pids", []))
        rows = []
        for r in reply["rows"]:
            if listening and r["state"] != "LISTEN":
                continue
            (laddr, lport), (paddr, pport) = r["local"], r["peer"]
            rows.append({
                "state": r["state"], "recv_q": r["recv_q"], "send_q": r["send_q"],
                "local": f"{laddr}:{lport}", "peer": f"{paddr}:{pport}",
                "local_port": lport, "peer_port": pport if isinstance(pport, int) else None,
                "process": [{"comm": c, "pid": p, "fd": fd}
                            for c, p, fd in (users.get(r["inode"], []) if r["inode"] else [])],
            })
        return rows

    def nstat(self) -> dict[str, int]:
        """The sandbox's TCP counters as `nstat -az` names them (TcpActiveOpens,
        TcpExtListenOverflows, ...)."""
        from sysemu.observe.nstat import nstat_rows
        return dict(nstat_rows(self._control({"op": "nstat"})["mib"]))

    def wait_listening(self, port: int, timeout: float = 10.0, interval: float = 0.05) -> dict:
        """Poll ss until a socket listens on `port`; its row. SandboxError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for row in self.ss(listening=True):
                if row["local_port"] == port:
                    return row
            if self.proc is None or self.proc.poll() is not None:
                raise self._error(f"the sandbox ended before port {port} listened")
            if time.monotonic() >= deadline:
                raise self._error(f"nothing listens on port {port} after {timeout} s")
            time.sleep(interval)


def sandbox_fixture(name: str = "sandbox", **options):
    """A pytest fixture called `name` yielding a fresh Sandbox(**options) per test,
    closed after it (also when the test fails)."""
    import pytest

    @pytest.fixture(name=name)
    def sandbox():
        with Sandbox(**options) as sb:
            yield sb
    return sandbox


try:
    import pytest as _pytest  # noqa: F401
except ImportError:           # the API works without pytest; only the fixture needs it
    pass
else:
    sandbox = sandbox_fixture("sandbox")


def __getattr__(name: str):
    # `pytest_sandbox` is the fixture `sandbox` under the name the docs promise. It is
    # looked up lazily (not in dir()) because pytest treats every pytest_* attribute of a
    # plugin module as a hook: with it, `pytest_plugins = ["sysemu.api"]` would fail.
    if name == "pytest_sandbox" and "sandbox" in globals():
        return globals()["sandbox"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
