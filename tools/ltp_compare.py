"""The Linux Test Project's socket, pipe, fd and I/O syscall tests, native against sysemu.

    python tools/ltp_compare.py LTP_SRC [--no-build] [--only REGEX] [--skip REGEX] [--timeout S]
                                [--json FILE] [--sysemu PATH] [--scratch DIR]

LTP_SRC is a checkout of github.com/linux-test-project/ltp, fetched by hand (CI cannot
download it, so this is a tool, not a test). The tool builds what it needs there, unless
--no-build: `make autotools` and `./configure` if not configured yet, then `make -C lib`
and `make -C testcases/kernel/syscalls/<name>` for each name in SYSCALLS. Build deps on
Debian: autoconf automake m4 bison flex pkg-config make gcc libc6-dev.

Then it runs every test of those directories listed in LTP_SRC/runtest/syscalls, each
natively and under `sysemu run`, one after the other, each in a fresh scratch directory
(TMPDIR and the working directory), with LTPROOT pointing to an installed layout made
of symlinks (testcases/bin, also first on PATH, where tests find the helpers they copy or
exec) and LTP_RUNTIME_MUL=--runtime-mul,
bounded by --timeout seconds (its whole session is killed after it), and prints a table: test, native result, sysemu
result, same or different. A result is a verdict (PASS, FAIL, BROK, WARN, CONF, TIMEOUT, SIGn, EXIT) with
LTP's counts (p passed, f failed, b broken, c skipped, w warnings) and the exit code
(LTP's: bit 0 TFAIL, 1 TBROK, 2 TWARN, 5 TCONF). Under the table, each difference with
the result lines (TFAIL/TBROK/TCONF/TWARN) sysemu's run printed and the native run did not.
--json FILE writes everything, with both runs' result lines.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSCALLS = (
    "socket bind listen accept accept4 connect getsockname getpeername getsockopt "
    "setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg shutdown "
    "read write readv writev sendfile splice select poll epoll_create epoll_create1 "
    "epoll_ctl epoll_wait epoll_pwait fcntl dup dup2 dup3 pipe pipe2").split()
SYSEMU = Path(sys.executable).with_name("sysemu")

# "accept01.c:91: TPASS: ..." (new API) and "accept01    1  TPASS  :  ..." (old API)
RESULT_LINE = re.compile(r"(?:^\S+:\d+: (T[A-Z]+): |^\S+\s+\d+\s+(T[A-Z]+)\s+:\s)")
TAGS = ("TPASS", "TFAIL", "TBROK", "TCONF", "TWARN")
SUMMARY = re.compile(r"^Summary:\npassed\s+(\d+)\nfailed\s+(\d+)\nbroken\s+(\d+)\n"
                     r"skipped\s+(\d+)\nwarnings\s+(\d+)", re.M)


# ---------------------------------------------------------------------------------------
# Build

def build(ltp: Path, log) -> None:
    def make(*args: str) -> None:
        print(f"  make {' '.join(args)}", file=sys.stderr, flush=True)
        subprocess.run(["make", f"-j{os.cpu_count() or 1}", *args], cwd=ltp, check=True,
                       stdout=log, stderr=subprocess.STDOUT)

    if not (ltp / "include" / "mk" / "config.mk").exists():
        make("autotools")
        print("  ./configure", file=sys.stderr, flush=True)
        subprocess.run(["./configure"], cwd=ltp, check=True, stdout=log,
                       stderr=subprocess.STDOUT)
    make("-C", "lib")
    for name in SYSCALLS:
        make("-C", f"testcases/kernel/syscalls/{name}")


def programs_of(ltp: Path) -> dict[str, Path]:
    """The executables built in the SYSCALLS directories (tests and their helpers)."""
    programs = {}
    for name in SYSCALLS:
        d = ltp / "testcases" / "kernel" / "syscalls" / name
        for f in sorted(d.iterdir()) if d.is_dir() else ():
            if f.is_file() and os.access(f, os.X_OK) and not f.suffix:
                programs[f.name] = f
    return programs


def install_root(programs: dict[str, Path], root: Path) -> Path:
    """An LTPROOT as `make install` lays it out, of symlinks: ROOT/testcases/bin holds
    every program, where LTP's library finds a test's helpers (resource files, programs
    it execs by name with PATH=ROOT/testcases/bin:$PATH)."""
    bin_dir = root / "testcases" / "bin"
    bin_dir.mkdir(parents=True)
    for name, path in programs.items():
        (bin_dir / name).symlink_to(path)
    return root


def tests_of(ltp: Path) -> list[tuple[str, Path, list[str]]]:
    """(name, binary, arguments) of each runtest/syscalls entry whose program is built in
    one of the SYSCALLS directories, in the runtest file's order."""
    programs = programs_of(ltp)
    tests = []
    for line in (ltp / "runtest" / "syscalls").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and not words[0].startswith("#") and words[1] in programs:
            tests.append((words[0], programs[words[1]], words[2:]))
    return tests


# ---------------------------------------------------------------------------------------
# Run and compare

def run_one(cmd: list[str], scratch: Path, ltproot: Path, timeout: float,
            runtime_mul: float) -> dict:
    scratch.mkdir(parents=True)
    env = dict(os.environ, LTPROOT=str(ltproot), TMPDIR=str(scratch),
               PATH=f"{ltproot}/testcases/bin:{os.environ.get('PATH', '/usr/bin:/bin')}",
               LTP_COLORIZE_OUTPUT="n", LTP_RUNTIME_MUL=str(runtime_mul))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:   # a straggler still holds the pipe: give up on it
            proc.kill()
            out = b""
        rc = None
    text = out.decode(errors="replace")
    return verdict(text, rc, time.monotonic() - t0)


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (the run we started with a new session):
    LTP's library puts each test in a process group of its own, so the run's process
    group alone would miss it."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) "
        if int(fields[3]) == sid:                      # state ppid pgrp session
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def verdict(text: str, rc: int | None, took: float) -> dict:
    lines = [ln for ln in text.splitlines() if RESULT_LINE.search(ln)]
    counts = dict.fromkeys(TAGS, 0)
    for ln in lines:
        m = RESULT_LINE.search(ln)
        tag = m.group(1) or m.group(2)
        if tag in counts:
            counts[tag] += 1
    m = SUMMARY.search(text)
    if m:   # new API: the library's own count, children's results included
        counts = dict(zip(TAGS, map(int, m.groups())))
    if rc is None:
        word = "TIMEOUT"
    elif rc < 0:
        word = f"SIG{-rc}"
    elif rc & 2:
        word = "BROK"
    elif rc & 1:
        word = "FAIL"
    elif rc & 4:
        word = "WARN"
    else:
        word = {0: "PASS", 32: "CONF"}.get(rc, "EXIT")
    summary = (f"{word} p{counts['TPASS']} f{counts['TFAIL']} b{counts['TBROK']} "
               f"c{counts['TCONF']} w{counts['TWARN']} rc={'-' if rc is None else rc}")
    results = [ln for ln in lines if any(t in ln for t in ("TFAIL", "TBROK", "TCONF", "TWARN"))]
    return {"verdict": word, "counts": counts, "rc": rc, "summary": summary,
            "seconds": round(took, 2), "lines": lines, "problems": results,
            "tail": text.splitlines()[-15:] if word not in ("PASS", "CONF") else []}


def normalise(line: str) -> str:
    """A result line without the numbers that differ run to run (pids, ports, times)."""
    return re.sub(r"\d+", "N", line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ltp", type=Path, help="the LTP source checkout")
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--only", default="", help="run only tests whose name matches this regex")
    p.add_argument("--skip", default="", help="skip tests whose name matches this regex")
    p.add_argument("--timeout", type=float, default=180.0, help="per test run, seconds")
    p.add_argument("--runtime-mul", type=float, default=0.1,
                   help="LTP_RUNTIME_MUL: scales the runtime of the tests that loop for a "
                        "time (not below their min_runtime)")
    p.add_argument("--sysemu", type=Path, default=SYSEMU, help="the sysemu script")
    p.add_argument("--scratch", type=Path, default=None,
                   help="keep the runs' scratch dirs in a new directory under this one "
                        "(default: a temp dir, removed at the end)")
    p.add_argument("--json", type=Path, default=None, help="write all results to this file")
    args = p.parse_args(argv)
    ltp = args.ltp.resolve()
    if not (ltp / "runtest" / "syscalls").exists():
        print(f"{ltp} is not an LTP source checkout", file=sys.stderr)
        return 2
    if not args.sysemu.exists():
        print(f"no sysemu at {args.sysemu}: run from the project's venv or pass --sysemu",
              file=sys.stderr)
        return 2
    if not args.no_build:
        with tempfile.NamedTemporaryFile("w", prefix="ltp-build-", suffix=".log",
                                         delete=False) as log:
            print(f"building LTP (log: {log.name})", file=sys.stderr)
            build(ltp, log)
    tests = [t for t in tests_of(ltp) if re.search(args.only, t[0])
             and not (args.skip and re.search(args.skip, t[0]))]
    if not tests:
        print("no tests found: build them first", file=sys.stderr)
        return 2
    if args.scratch is not None:
        args.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ltp-compare-", dir=args.scratch))
    ltproot = install_root(programs_of(ltp), scratch / "ltproot")
    rows = []
    for i, (name, binary, targs) in enumerate(tests, 1):
        cmd = [str(binary), *targs]
        native = run_one(cmd, scratch / name / "native", ltproot, args.timeout,
                         args.runtime_mul)
        sysemu = run_one([str(args.sysemu), "run", "--"] + cmd, scratch / name / "sysemu",
                         ltproot, args.timeout, args.runtime_mul)
        same = (native["verdict"] == sysemu["verdict"]
                and native["counts"] == sysemu["counts"])
        rows.append({"test": name, "command": [binary.name, *targs], "native": native,
                     "sysemu": sysemu, "same": same})
        print(f"  [{i}/{len(tests)}] {name}: {native['summary']} | {sysemu['summary']}",
              file=sys.stderr, flush=True)
    if args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)

    width = max(len(r["test"]) for r in rows)
    print(f"{'test':<{width}}  {'native':<32}  {'sysemu':<32}  same")
    for r in rows:
        print(f"{r['test']:<{width}}  {r['native']['summary']:<32}  "
              f"{r['sysemu']['summary']:<32}  {'yes' if r['same'] else 'NO'}")
    n_pass = sum(r["native"]["verdict"] == "PASS" for r in rows)
    s_pass = sum(r["sysemu"]["verdict"] == "PASS" for r in rows)
    both = sum(r["native"]["verdict"] == "PASS" == r["sysemu"]["verdict"] for r in rows)
    same_pass = sum(r["native"]["verdict"] == "PASS" and r["same"] for r in rows)
    print(f"\n{len(rows)} tests: {n_pass} pass natively, {s_pass} under sysemu, {both} both "
          f"({same_pass} with the same counts: no check skipped); "
          f"{sum(not r['same'] for r in rows)} differ")
    for r in rows:
        if r["same"]:
            continue
        seen = {normalise(ln) for ln in r["native"]["lines"]}
        extra = [ln for ln in r["sysemu"]["problems"] if normalise(ln) not in seen]
        print(f"\n{r['test']} ({' '.join(r['command'])}): native {r['native']['summary']}, "
              f"sysemu {r['sysemu']['summary']}")
        for ln in (extra or r["sysemu"]["tail"])[:12]:
            print(f"    {ln}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
