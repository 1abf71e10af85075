"""End to end: a real server in a sandbox whose accept queue fills; `sysemu ss -ltn`,
`sysemu nstat` and `sysemu ps` read it from outside through the control channel.

Uses `sysemu run --id` once the lead has wired observe.cli into sysemu/cli.py; until then a
small driver runs cmd_run with observe.cli.setup added to the supervisor's setup."""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time

import pytest

DEADLINE = 20.0

SERVER_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t n = sizeof a;
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &n))
        return 1;
    for (int i = 0; i < 5; i++) {           /* backlog 1: two get in, three retry */
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(c, (void *)&a, sizeof a);
    }
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    char b;
    while (read(0, &b, 1) > 0) ;            /* until the test closes our stdin */
    return 0;
}
"""

DRIVER = r"""
import sys
from sysemu import cli
from sysemu.observe import cli as observe_cli
sandbox_id, prog = sys.argv[1], sys.argv[2]
args = cli.build_parser().parse_args(["run", "--", prog])
args.sandbox_id, args.pcap, args.net_faults = sandbox_id, None, []
plain = cli.setup_supervisor
def setup(sup, args):
    plain(sup, args)
    observe_cli.setup(sup, args)
cli.setup_supervisor = setup
sys.exit(args.func(args))
"""


def wired(sysemu_bin) -> bool:
    out = subprocess.run([str(sysemu_bin), "run", "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    return "--id" in out


def sysemu(sysemu_bin, env, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([str(sysemu_bin), *argv], capture_output=True, text=True,
                          timeout=30, env=env)


def poll(fn, what):
    end = time.monotonic() + DEADLINE
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def overflows(text: str) -> int:
    m = re.search(r"^TcpExtListenOverflows\s+(\d+)\s+0\.0$", text, re.M)
    assert m, text
    return int(m.group(1))


def test_ss_and_nstat_from_outside(sysemu_bin, cc, tmp_path):
    prog = cc(SERVER_C)
    env = dict(os.environ, SYSEMU_CONTROL_DIR=str(tmp_path / "ctl"))
    sandbox_id = f"e2e-{os.getpid()}"
    if wired(sysemu_bin):
        argv = [str(sysemu_bin), "run", "--id", sandbox_id, "--", str(prog)]
    else:
        argv = [sys.executable, "-c", DRIVER, sandbox_id, str(prog)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(DEADLINE), "the server printed no port"
        port = int(proc.stdout.readline())

        def listening():
            out = sysemu(sysemu_bin, env, "ss", "-ltn", "--id", sandbox_id)
            lines = out.stdout.splitlines()
            return lines if out.returncode == 0 and len(lines) == 2 else None
        lines = poll(listening, "sysemu ss")
        assert lines[0].split()[:3] == ["State", "Recv-Q", "Send-Q"]
        # Recv-Q: the accept queue (backlog 1 holds 2); Send-Q: the backlog
        assert lines[1].split() == ["LISTEN", "2", "1", f"127.0.0.1:{port}", "0.0.0.0:*"]

        withp = sysemu(sysemu_bin, env, "ss", "-ltnp", "--id", sandbox_id).stdout.splitlines()
        assert withp[0].endswith("Process")
        m = re.search(r'users:\(\("([^"]+)",pid=(\d+),fd=3\)\)$', withp[1])
        assert m, withp
        assert prog.name.startswith(m.group(1))                # comm: the first 15 chars
        assert int(m.group(2)) != proc.pid                     # the program, not sysemu

        ps = sysemu(sysemu_bin, env, "ps")
        assert ps.returncode == 0
        row = [line for line in ps.stdout.splitlines() if line.startswith(sandbox_id)]
        assert len(row) == 1 and row[0].endswith(str(prog))

        est = sysemu(sysemu_bin, env, "ss", "-tn")        # --id optional with one sandbox
        states = [line.split()[0] for line in est.stdout.splitlines()[1:]]
        assert states.count("ESTAB") == 4 and states.count("SYN-SENT") == 3, est.stdout

        first = overflows(sysemu(sysemu_bin, env, "nstat").stdout)
        assert first >= 3                                  # the three SYNs that found it full
        poll(lambda: overflows(sysemu(sysemu_bin, env, "nstat").stdout) > first,
             "ListenOverflows to grow with the SYN retransmissions")
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
    # the sandbox is gone: ps shows nothing (and drops the stale socket)
    ps = sysemu(sysemu_bin, env, "ps")
    assert ps.stdout.splitlines()[1:] == []
    assert not list((tmp_path / "ctl").glob("*.sock"))
