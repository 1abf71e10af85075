"""`sysemu run --supervisor-nice N`: the supervisor, which serves every sandbox thread's
calls in one task, runs at nice N once the program has started; the program keeps the
nice value it was started with (README: Performance, connection churn)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sysemu.host.control import find_sandbox, request

PROBE = ("import os, sys; print(os.getpriority(os.PRIO_PROCESS, 0), flush=True); "
         "sys.stdin.read()")


def nice_of(pid: int) -> int:
    """Field 19 of /proc/PID/stat (after the command's closing parenthesis: field 3)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_supervisor_runs_at_its_nice_value_the_program_at_its_own(sysemu_bin, tmp_path):
    control = tmp_path / "ctl"
    env = dict(os.environ, SYSEMU_CONTROL_DIR=str(control))
    sandbox_id = f"nice-{os.getpid()}"
    own = os.getpriority(os.PRIO_PROCESS, 0)
    proc = subprocess.Popen(
        [str(sysemu_bin), "run", "--id", sandbox_id, "--supervisor-nice", "19", "--",
         sys.executable, "-c", PROBE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True)
    try:
        assert int(proc.stdout.readline()) == own          # the program: its own
        info = request(find_sandbox(sandbox_id, control), {"op": "info"})
        assert nice_of(info["supervisor"]) == 19
        assert nice_of(proc.pid) == own                     # sysemu's watchdog: untouched
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
