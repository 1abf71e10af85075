"""`sysemu run` end to end: real programs natively and under sysemu, same results."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysemu.abi.errno import Errno
from sysemu.host.procs import descendants

C_DIR = Path(__file__).parent / "c"
SYSEMU = [sys.executable, "-m", "sysemu.cli"]
TIMEOUT = 30


@pytest.fixture(scope="session")
def probe(tmp_path_factory) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    out = tmp_path_factory.mktemp("host_run_c") / "host_probe"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(out), str(C_DIR / "host_probe.c")],
                   check=True)
    return str(out)


def native(argv):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode < 0:                  # killed by a signal: report it as a shell does
        done.returncode = 128 - done.returncode
    return done


def sysemu(argv, *options):
    return subprocess.run([*SYSEMU, "run", *options, "--", *argv], capture_output=True,
                          text=True, timeout=TIMEOUT)


def same(argv, *options, sort=False):
    want, got = native(argv), sysemu(argv, *options)
    norm = (lambda s: sorted(s.splitlines())) if sort else (lambda s: s)
    assert (got.returncode, norm(got.stdout)) == (want.returncode, norm(want.stdout)), got.stderr
    return got


def test_python_prints():
    got = sysemu(["python3", "-c", "print(6*7)"])
    assert (got.returncode, got.stdout) == (0, "42\n"), got.stderr


@pytest.mark.parametrize("script,code", [("exit 3", 3), ("kill -KILL $$", 137),
                                         ("kill -TERM $$", 143), ("true", 0)])
def test_exit_status_like_a_shell(script, code):
    assert native(["sh", "-c", script]).returncode == code
    assert sysemu(["sh", "-c", script]).returncode == code


def test_pipeline_same_as_native():
    same(["sh", "-c", "echo a b c | tr a-z A-Z | wc -c"])


def test_fork_exec_chain():
    got = same(["sh", "-c", 'sh -c "sh -c \\"echo deep\\""'])
    assert got.stdout == "deep\n"


def test_sigpipe_is_default_in_the_program():
    # Python ignores SIGPIPE itself; the program must get the default disposition back.
    got = same(["sh", "-c", "yes | head -n 3"])
    assert got.stdout == "y\ny\ny\n"


def test_threads_same_as_native(probe):
    got = same([probe, "threads"], sort=True)
    assert len(got.stdout.splitlines()) == 8


def test_exec_failure_like_a_shell(tmp_path):
    got = sysemu(["/nonexistent/cmd"])
    assert got.returncode == 127
    assert got.stderr.strip() == "sysemu: /nonexistent/cmd: No such file or directory"
    plain = tmp_path / "plain"
    plain.write_text("not executable")
    got = sysemu([str(plain)])
    assert got.returncode == 126
    assert "Permission denied" in got.stderr


def test_strict_policy_answers_enosys_and_logs_once(probe):
    got = sysemu([probe, "acct"], "--policy", "strict")
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == [f"acct -1 errno={Errno.ENOSYS}"] * 2
    line = "sysemu: strict policy: acct (common nr 163) answered ENOSYS"
    assert got.stderr.count(line) == 1, got.stderr


def test_passthrough_policy_gives_the_host_answer(probe):
    # --no-contain: acct(2) needs CAP_SYS_PACCT over the host, which the sandbox's own user
    # namespace takes away (test_contained_acct_is_refused_by_the_host)
    got = same([probe, "acct"], "--no-contain")
    assert "strict policy" not in got.stderr


def test_contained_acct_is_refused_by_the_host(probe):
    """The host still answers (passthrough), but to a program whose capabilities count
    only in its own user namespace: EPERM where root natively succeeds."""
    want, got = native([probe, "acct"]), sysemu([probe, "acct"])
    assert got.returncode == 0, got.stderr
    if want.stdout.startswith("acct 0"):
        assert got.stdout.splitlines() == [f"acct -1 errno={Errno.EPERM}"] * 2, got


def test_no_fd_leaks_into_the_program():
    got = same(["python3", "-c", "import os; print(sorted(os.listdir('/proc/self/fd')))"])
    assert got.stdout == "['0', '1', '2', '3']\n"     # 3: listdir's own descriptor


def _wait_for(predicate, seconds=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


def _comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_supervisor_death_kills_the_sandbox():
    w = subprocess.Popen([*SYSEMU, "run", "--", "sleep", "30"], stderr=subprocess.PIPE,
                         text=True)
    try:
        sleeper = _wait_for(lambda: [p for p in descendants(w.pid) if _comm(p) == "sleep"])
        assert sleeper, "the program never started"
        supervisor = [p for p in descendants(w.pid) if p not in sleeper][0]
        os.kill(supervisor, signal.SIGKILL)
        assert w.wait(timeout=TIMEOUT) == 70
        assert "supervisor was killed by signal SIGKILL" in w.stderr.read()
        assert _wait_for(lambda: not _alive(sleeper[0]), 5)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


def test_sigterm_is_forwarded_to_the_program():
    w = subprocess.Popen([*SYSEMU, "run", "--", "sleep", "30"], stderr=subprocess.PIPE,
                         text=True)
    try:
        assert _wait_for(lambda: [p for p in descendants(w.pid) if _comm(p) == "sleep"])
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=TIMEOUT) == 128 + signal.SIGTERM   # sleep died of it; W did not
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


def test_syscalls_listing():
    got = subprocess.run([*SYSEMU, "syscalls", "--format", "json"], capture_output=True,
                         text=True, timeout=TIMEOUT)
    import json
    rows = json.loads(got.stdout)
    by = {(r["table"], r["abi"], r["name"]): r for r in rows}
    assert by[("64", "common", "read")]["nr"] == "0"
    assert by[("64", "common", "read")]["action"] == "passthrough"
    # the x32 table holds the common calls too, called with the x32 bit
    assert by[("x32", "common", "read")]["nr"] == hex(0x40000000)
    assert by[("x32", "common", "socket")]["action"] == "served"
    assert by[("x32", "x32", "readv")]["nr"] == hex(0x40000000 | 515)
    assert ("64", "x32", "readv") not in by
    assert by[("i386", "i386", "socketcall")]["nr"] == "102"
    strict = subprocess.run([*SYSEMU, "syscalls", "--policy", "strict"], capture_output=True,
                            text=True, timeout=TIMEOUT).stdout
    acct = [line for line in strict.splitlines() if " acct " in line and "common" in line]
    assert acct and acct[0].split()[-1] == "ENOSYS"
