"""The agent: a tiny program that runs inside a sandbox and starts commands for
`sysemu.api.Sandbox` (the outside half).

    sysemu run --id ID [options] -- python3 -m sysemu.sandbox.agent

Everything it starts is below it, so inside the sandbox: same seccomp filter, same virtual
network. It reads one JSON request per line on stdin (a pipe from the API) and writes one
JSON reply per line on stdout. Bytes travel base64-encoded. Requests:

    {"op": "hello"}                          {"pid"}
    {"op": "run", "argv": [...] | "shell": "...", "env": {...}|null, "cwd": str|null,
     "stdin": b64|null, "timeout": s|null}   {"returncode", "stdout", "stderr"}
                                             or {"timeout": true, "stdout", "stderr"}
    {"op": "spawn", "argv"|"shell", "env", "cwd"}          {"handle", "pid"}
    {"op": "wait", "handle", "timeout"}      {"returncode", "stdout", "stderr"}
                                             or {"timeout": true}
    {"op": "kill", "handle", "signal"}       as wait (after the process ended)
    {"op": "read", "path"}                   {"data": b64}
    {"op": "stop"}                           {"stopped": n}, then the agent exits

A request that fails gets {"error": "...", "type": "ExceptionName"}. A request's "id", if
any, comes back in its reply. End of input is
"stop". Started commands never see the agent's stdin or stdout: their stdin is the
request's bytes or /dev/null, their output is captured (run: pipes; spawn: files in a
private temporary directory, read back by wait).

sysemu: kill signals the spawned process itself (as subprocess.Popen.kill does); whatever
it started and left behind is killed when the sandbox ends (the supervisor kills every
descendant of the program when the agent exits).
"""
from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _command(request: dict) -> list[str]:
    """The argv of a run/spawn request (a shell string runs under /bin/sh -c)."""
    if request.get("shell") is not None:
        return ["/bin/sh", "-c", str(request["shell"])]
    argv = request.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings (or give shell)")
    return argv


class _Spawned:
    """A background command: its Popen and the files its output goes to."""

    def __init__(self, proc: subprocess.Popen, out: Path, err: Path, files):
        self.proc, self.out, self.err, self.files = proc, out, err, files

    def result(self) -> dict:
        for f in self.files:
            f.flush()
        return {"returncode": self.proc.returncode, "stdout": _b64(self.out.read_bytes()),
                "stderr": _b64(self.err.read_bytes())}

    def close(self) -> None:
        for f in self.files:
            f.close()


class Agent:
    def __init__(self, pid: int):
        self.pid = pid
        self.spawned: dict[int, _Spawned] = {}
        self.next_handle = 1
        self.tmp = tempfile.TemporaryDirectory(prefix="sysemu-agent-")
        self.stopping = False

    # -- requests ----------------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        op = request.get("op")
        method = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if method is None:
            return {"error": f"unknown op {op!r}", "type": "ValueError"}
        try:
            return method(request)
        except Exception as exc:
            return {"error": str(exc), "type": type(exc).__name__}

    def op_hello(self, request: dict) -> dict:
        return {"pid": self.pid}

    def op_run(self, request: dict) -> dict:
        argv = _command(request)
        stdin = request.get("stdin")
        timeout = request.get("timeout")
        proc = subprocess.Popen(argv, env=request.get("env"), cwd=request.get("cwd"),
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(_unb64(stdin) if stdin is not None else None,
                                        timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return {"timeout": True, "stdout": _b64(out), "stderr": _b64(err)}
        return {"returncode": proc.returncode, "stdout": _b64(out), "stderr": _b64(err)}

    def op_spawn(self, request: dict) -> dict:
        argv = _command(request)
        handle = self.next_handle
        self.next_handle += 1
        out = Path(self.tmp.name) / f"{handle}.out"
        err = Path(self.tmp.name) / f"{handle}.err"
        files = [out.open("wb"), err.open("wb")]
        try:
            proc = subprocess.Popen(argv, env=request.get("env"), cwd=request.get("cwd"),
                                    stdin=subprocess.DEVNULL, stdout=files[0],
                                    stderr=files[1], start_new_session=True)
        except BaseException:
            for f in files:
                f.close()
            raise
        self.spawned[handle] = _Spawned(proc, out, err, files)
        return {"handle": handle, "pid": proc.pid}

    def _lookup(self, request: dict) -> _Spawned:
        spawned = self.spawned.get(request.get("handle"))
        if spawned is None:
            raise ValueError(f"no spawned process with handle {request.get('handle')!r}")
        return spawned

    def op_wait(self, request: dict) -> dict:
        spawned = self._lookup(request)
        try:
            spawned.proc.wait(timeout=request.get("timeout"))
        except subprocess.TimeoutExpired:
            return {"timeout": True}
        return spawned.result()

    def op_kill(self, request: dict) -> dict:
        spawned = self._lookup(request)
        if spawned.proc.poll() is None:
            spawned.proc.send_signal(int(request.get("signal") or signal.SIGKILL))
            try:
                spawned.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                spawned.proc.kill()
                spawned.proc.wait()
        return spawned.result()

    def op_read(self, request: dict) -> dict:
        return {"data": _b64(Path(str(request["path"])).read_bytes())}

    def op_stop(self, request: dict) -> dict:
        self.stopping = True
        return {"stopped": self.stop()}

    def stop(self) -> int:
        """Kill every spawned process still running; the number killed."""
        killed = 0
        for spawned in self.spawned.values():
            if spawned.proc.poll() is None:
                spawned.proc.kill()
                killed += 1
        for spawned in self.spawned.values():
            spawned.proc.wait()
            spawned.close()
        self.spawned.clear()
        self.tmp.cleanup()
        return killed

    # -- the loop ----------------------------------------------------------------------
    def serve(self, rfile, wfile) -> int:
        for line in rfile:
            request = None
            try:
                request = json.loads(line)
            except ValueError:
                reply = {"error": "a request is one line of JSON", "type": "ValueError"}
            else:
                reply = (self.handle(request) if isinstance(request, dict)
                         else {"error": "a request is a JSON object", "type": "ValueError"})
            if isinstance(request, dict) and "id" in request:
                reply["id"] = request["id"]         # the API matches replies by it
            wfile.write(json.dumps(reply).encode() + b"\n")
            wfile.flush()
            if self.stopping:
                return 0
        self.stop()                 # the API went away: end what we started
        return 0


def main() -> int:
    import multiprocessing
    pid = multiprocessing.current_process().pid
    agent = Agent(pid)
    return agent.serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
