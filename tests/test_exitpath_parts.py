"""The parts of `sysemu exitpath` that need no process: option parsing, the summary, the
names it prints."""
from __future__ import annotations

import signal

import pytest

from sysemu.arch.x86 import sysret
from sysemu.arch.x86.entry import AUDIT_ARCH_I386, AUDIT_ARCH_X86_64
from sysemu.host.ptrace_exit import (SetReg, Summary, host_cpu, si_code_text, signame,
                                     syscall_name)

RCX = sysret.ExitPath(sysret.Path.IRET, sysret.Reason.RCX_NE_RIP)


def test_set_reg_takes_gdb_and_pt_regs_names():
    assert SetReg.parse("getpgrp:rcx=0x1234") == SetReg("getpgrp", "cx", 0x1234, "rcx")
    assert SetReg.parse("read:eflags=0x346").reg == "flags"
    assert SetReg.parse("read:r11=0").value == 0
    for bad in ("getpgrp", "getpgrp:rcx", ":rcx=1", "getpgrp:rcx=x", "getpgrp:xmm0=1"):
        with pytest.raises(ValueError):
            SetReg.parse(bad)


def test_summary_moves_a_redecided_call():
    s = Summary()
    s.add("read", sysret.SYSRET)
    s.add("tgkill", sysret.SYSRET)
    s.add("tgkill", sysret.SYSRET, -1)        # the handler line replaces its answer
    s.add("tgkill", RCX)
    assert s.counts == {sysret.SYSRET: 1, RCX: 1}
    assert s.names == {sysret.SYSRET: {"read": 1}, RCX: {"tgkill": 1}}
    table = s.table().splitlines()
    assert table[1].split()[:3] == ["sysret", "-", "1"]
    assert table[2].split()[:5] == ["iret", "rcx", "!=", "rip", "1"]
    assert table[-1].split() == ["total", "2"]


def test_names():
    assert syscall_name(AUDIT_ARCH_X86_64, 15) == "rt_sigreturn"
    assert syscall_name(AUDIT_ARCH_X86_64, 0x40000000 | 513) == "rt_sigreturn"   # x32
    assert syscall_name(AUDIT_ARCH_I386, 1).startswith("syscall_i386_")
    assert signame(signal.SIGSEGV) == "SIGSEGV"
    assert si_code_text(signal.SIGSEGV, 1) == "SEGV_MAPERR"
    assert si_code_text(signal.SIGUSR1, -6) == "SI_TKILL"
    assert si_code_text(signal.SIGUSR1, 77) == "77"


def test_host_cpu_reads_the_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu lm la57 sse2\n\nflags\t: fpu\n")
    assert host_cpu(str(cpuinfo)) == sysret.Cpu(la57=True)
    assert host_cpu(str(tmp_path / "missing")) == sysret.Cpu()
