"""`sysemu exitpath` on live programs: the cases where Linux leaves a system call through
IRET, each made by tests/c/exitpath_probe.c, run natively and under the tracer (same
output, same end), with the decision and its reason asserted."""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from sysemu.arch.x86.sysret import task_size_max
from sysemu.host.ptrace_exit import host_cpu

PROBE = Path(__file__).parent / "c" / "exitpath_probe.c"
CPU = host_cpu()

pytestmark = pytest.mark.skipif(
    CPU.fred or CPU.xenpv,
    reason="FRED or Xen PV host: every exit is ERETU or IRET, these cases do not apply")

# `[pid  123] name(args) = result <path: reason>` and the lines of mode's own making:
# `[pid 124] <... clone resumed in the child> = 0 <iret: ret_from_fork>`,
# `[pid 123] <... tgkill returns into the SIGUSR1 handler> <iret: rcx != rip>`.
CALL = re.compile(r"^\[pid\s+(\d+)\] (\w+)\(.*\)\s+= (.*?) <(sysret|iret|eretu|i386)"
                  r"(?:: (.*?))?>( \(tracer set [^)]*\))?$")
RESUMED = re.compile(r"^\[pid\s+(\d+)\] <\.\.\. (\w+) resumed>.*= (.*?) "
                     r"<(sysret|iret|eretu|i386)(?:: (.*?))?>$")
CHILD = re.compile(r"^\[pid\s+(\d+)\] <\.\.\. (\w+) resumed in the child> = 0 "
                   r"<(iret): (ret_from_fork)>$")
HANDLER = re.compile(r"^\[pid\s+(\d+)\] <\.\.\. (\w+) returns into the (\w+) handler> "
                     r"<(sysret|iret)(?:: (.*?))?>$")


class Trace:
    def __init__(self, done: subprocess.CompletedProcess, text: str):
        self.rc, self.stdout, self.text = done.returncode, done.stdout, text
        self.stderr = done.stderr
        self.lines = text.splitlines()

    def calls(self, name: str, pid: str | None = None) -> list[tuple[str, str, str | None]]:
        """(result, path, reason) of each exit line of call `name` (of process `pid`)."""
        out = []
        for line in self.lines:
            m = CALL.match(line) or RESUMED.match(line)
            if m and m.group(2) == name and pid in (None, m.group(1)):
                out.append((m.group(3), m.group(4), m.group(5)))
        return out

    def decisions(self, pattern: re.Pattern) -> list[tuple[str, ...]]:
        return [m.groups()[1:] for m in map(pattern.match, self.lines) if m]

    def __repr__(self) -> str:
        return (f"rc={self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-2000:]}\n"
                f"trace:\n{self.text[-6000:]}")


def exitpath(sysemu_bin, tmp_path, argv, *options) -> Trace:
    out = tmp_path / "exitpath.txt"
    done = subprocess.run([str(sysemu_bin), "exitpath", "-o", str(out), *options, "--",
                           *map(str, argv)], capture_output=True, text=True, timeout=120)
    return Trace(done, out.read_text() if out.exists() else "")


def native(argv) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=60)


@pytest.fixture
def probe(cc):
    return cc(PROBE)


def test_execve_leaves_through_iret(probe, sysemu_bin, tmp_path):
    """A failed execve returns to the old registers (SYSRET); a successful one to the
    new program's entry with RCX cleared by ELF_PLAT_INIT: RCX != RIP."""
    want = native([probe, "execve"])
    assert (want.returncode, want.stdout) == (0, "execve failed as expected\n"
                                                 "exec-child running\n")
    got = exitpath(sysemu_bin, tmp_path, [probe, "execve"])
    assert (got.rc, got.stdout) == (want.returncode, want.stdout), got
    ran, failed, execd = got.calls("execve")
    assert ran == ("0", "iret", "rcx != rip"), got          # the launch of the probe
    assert failed[0].startswith("-1 ENOENT") and failed[1:] == ("sysret", None), got
    assert execd == ("0", "iret", "rcx != rip"), got


def test_rt_sigreturn_restores_the_frame(probe, sysemu_bin, tmp_path):
    """Three signals: SIGUSR1 delivered at tgkill's exit (its frame holds the registers
    that call left, so rt_sigreturn can SYSRET), and two SIGILLs from ud2 with RCX=0x1234
    (RCX != RIP), the second with RCX and R11 made to agree by the handler."""
    want = native([probe, "sigreturn"])
    assert want.returncode == 0, want
    rf = "RF in the frame's EFLAGS: 1" in want.stdout     # the CPU sets RF for a fault
    got = exitpath(sysemu_bin, tmp_path, [probe, "sigreturn"])
    assert (got.rc, got.stdout) == (0, want.stdout), got
    assert got.calls("rt_sigreturn") == [
        ("0", "sysret", None),
        (got.calls("rt_sigreturn")[1][0], "iret", "rcx != rip"),
        (got.calls("rt_sigreturn")[2][0], "iret", "eflags.rf") if rf else
        (got.calls("rt_sigreturn")[2][0], "sysret", None),
    ], got
    # The signal itself: tgkill's exit goes into the handler, RIP moved, RCX not.
    assert ("tgkill", "SIGUSR1", "iret", "rcx != rip") in got.decisions(HANDLER), got


@pytest.mark.parametrize("where", ["task_size_max", "non-canonical"])
def test_sigreturn_to_a_bad_rip_irets_then_sigsegv(probe, sysemu_bin, tmp_path, where):
    """rt_sigreturn to RIP >= TASK_SIZE_MAX (RCX == RIP, R11 == EFLAGS, so only that check
    fails): IRET, then SIGSEGV, natively and traced."""
    addr = task_size_max(CPU.la57) if where == "task_size_max" else 0x8000_0000_0000_0000
    argv = [probe, "noncanonical", hex(addr)]
    want = native(argv)
    assert want.returncode == -signal.SIGSEGV, want
    got = exitpath(sysemu_bin, tmp_path, argv)
    assert (got.rc, got.stdout) == (128 + signal.SIGSEGV, want.stdout), got
    assert got.calls("rt_sigreturn") == [("0", "iret", "rip >= TASK_SIZE_MAX")], got
    assert re.search(r"--- SIGSEGV .*---\n.*\+\+\+ killed by SIGSEGV \+\+\+", got.text), got


def test_trap_flag_forces_iret(probe, sysemu_bin, tmp_path):
    """getppid with TF set (as a single-stepped thread has it): IRET, then one SIGTRAP
    right after the syscall, natively and traced."""
    want = native([probe, "tf"])
    assert (want.returncode, want.stdout) == (
        0, "tf: getppid ok 1, SIGTRAPs 1, first after the syscall: 1\n"), want
    got = exitpath(sysemu_bin, tmp_path, [probe, "tf"])
    assert (got.rc, got.stdout) == (0, want.stdout), got
    (_, path, reason), *_checks = got.calls("getppid")      # then the probe's own check
    assert (path, reason) == ("iret", "eflags.tf"), got
    assert "--- SIGTRAP" in got.text, got


@pytest.mark.parametrize("poke, path, reason, seen", [
    ("rcx=0x1234", "iret", "rcx != rip", "rcx=0x1234 r11=0x246 rcx_is_return_address=0"),
    ("r11=0", "iret", "r11 != eflags", "r11=0 rcx_is_return_address=1"),
    ("rax=77", "sysret", None, "getpgrp=77 "),
])
def test_registers_changed_by_the_tracer(probe, sysemu_bin, tmp_path, poke, path, reason,
                                         seen):
    """A tracer writing registers at the syscall-exit stop: do_syscall_64() decides on the
    written ones. The program sees the written value (IRET restores RCX/R11 from pt_regs;
    RAX is only a result, SYSRET stays)."""
    want = native([probe, "regs"])
    assert want.returncode == 0 and "rcx_is_return_address=1" in want.stdout, want
    got = exitpath(sysemu_bin, tmp_path, [probe, "regs"], "--set-reg", f"getpgrp:{poke}")
    assert got.rc == 0, got
    [(_, got_path, got_reason)] = got.calls("getpgrp")
    assert (got_path, got_reason) == (path, reason), got
    assert seen in got.stdout, got
    if poke.startswith("r11"):        # r11 = 0 came back, RFLAGS did not (IRET took flags)
        assert "r11=0 " in got.stdout, got


def test_restarted_call_leaves_with_rip_rewound(probe, sysemu_bin, tmp_path):
    """A blocking read interrupted by a signal nobody handles is restarted: the kernel
    moves RIP back over the syscall instruction, so RCX != RIP and it IRETs. (SIGWINCH is
    ignored by default: natively it never interrupts the read; a traced thread gets it
    queued and delivered anyway, so the tracer sees it: sig_ignored().)"""
    want = native([probe, "restart"])
    assert (want.returncode, want.stdout) == (0, "restart: read 1 byte: x, child status 0\n")
    got = exitpath(sysemu_bin, tmp_path, [probe, "restart"])
    assert (got.rc, got.stdout) == (0, want.stdout), got
    parent = CALL.match(got.lines[0]).group(1)
    reads = [c for c in got.calls("read", parent) if c[0] != "832"]      # not the loader's
    assert reads[0][0].startswith("? ERESTARTSYS") and reads[0][1:] == (
        "iret", "rcx != rip"), got
    assert reads[1] == ("1", "sysret", None), got
    assert "--- SIGWINCH" in got.text, got


def test_fork_child_returns_through_ret_from_fork(sysemu_bin, tmp_path):
    """The child of fork never passes do_syscall_64(): ret_from_fork_asm IRETs."""
    sh = shutil.which("sh")
    got = exitpath(sysemu_bin, tmp_path, [sh, "-c", "/bin/true; echo done"])
    assert (got.rc, got.stdout) == (0, "done\n"), got
    children = got.decisions(CHILD)
    assert children and all(c[0] in ("clone", "clone3", "fork", "vfork") for c in children), got
    assert "+++ exited with 0 +++" in got.text


def test_summary_counts_every_exit(probe, sysemu_bin, tmp_path):
    """The table's total is the exits the trace shows (a handler line replaces its
    call's first answer), and each row's count is what the lines say."""
    got = exitpath(sysemu_bin, tmp_path, [probe, "sigreturn"])
    assert got.rc == 0, got
    rows = {}
    head = got.lines.index(next(x for x in got.lines if x.startswith("exit path")))
    for line in got.lines[head + 1:]:
        parts = line.split()
        if parts[0] == "total":
            total = int(parts[1])
            break
        reason = " ".join(parts[1:parts.index(next(p for p in parts[1:] if p.isdigit()))])
        rows[(parts[0], reason)] = int(next(p for p in parts[1:] if p.isdigit()))
    seen: dict[tuple[str, str], int] = {}
    for pattern in (CALL, RESUMED):
        for m in map(pattern.match, got.lines):
            if m:
                key = (m.group(4), m.group(5) or "-")
                seen[key] = seen.get(key, 0) + 1
    for m in map(HANDLER.match, got.lines):
        if m:                                   # the call's own line said sysret
            seen[("sysret", "-")] -= 1
            key = (m.group(4), m.group(5) or "-")
            seen[key] = seen.get(key, 0) + 1
    assert rows == {k: v for k, v in seen.items() if v}, got
    assert total == sum(rows.values()), got


def test_real_python(sysemu_bin, tmp_path):
    python = Path("/usr/bin/python3")
    if not python.exists():
        pytest.skip("no /usr/bin/python3")
    got = exitpath(sysemu_bin, tmp_path, [python, "-c", "print(6 * 7)"])
    assert (got.rc, got.stdout) == (0, "42\n"), got
    assert got.calls("execve")[0] == ("0", "iret", "rcx != rip"), got
    others = [c for line in got.lines if (c := CALL.match(line)) and c.group(2) != "execve"]
    assert len(others) > 50, got
    # Straight-line calls leave as they came: SYSRET.
    assert all(c.group(4) == "sysret" for c in others if c.group(2) in ("openat", "mmap")), got


def test_real_nginx_config_check(sysemu_bin, tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx not installed: run `make deps`")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                    "events {}\nhttp { access_log off; server { listen 127.0.0.1:1; } }\n")
    argv = [nginx, "-t", "-q", "-p", tmp_path, "-c", conf, "-e", tmp_path / "error.log"]
    want = native(argv)
    got = exitpath(sysemu_bin, tmp_path, argv)
    assert (got.rc, got.stdout) == (want.returncode, want.stdout), got
    assert got.calls("execve")[0] == ("0", "iret", "rcx != rip"), got
    assert any(c[1] == "sysret" for c in got.calls("openat")), got
