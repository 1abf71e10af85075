"""do_syscall_64()'s SYSRET-or-IRET decision (sysemu.arch.x86.sysret), one check at a
time and in Linux's order (arch/x86/entry/syscall_64.c, 6.18)."""
from __future__ import annotations

import pytest

from sysemu.arch.x86 import sysret
from sysemu.arch.x86.sysret import (Cpu, ExitPath, Path, PtRegs, Reason, exit_path,
                                    restart_regs, syscall_return_via_sysret, task_size_max)

RIP = 0x55555555_5123
EFLAGS = 0x246                               # IF, ZF, PF and the reserved bit 1

# The registers entry_SYSCALL_64 saves: RCX is the return address, R11 the flags.
GOOD = PtRegs(ip=RIP, cx=RIP, flags=EFLAGS, r11=EFLAGS, cs=0x33, ss=0x2B, ax=0,
              orig_ax=39, sp=0x7FFF_FFFF_E000)


def decide(regs: PtRegs, **cpu) -> ExitPath:
    return syscall_return_via_sysret(regs, Cpu(**cpu))


def iret(reason: Reason) -> ExitPath:
    return ExitPath(Path.IRET, reason)


def test_segments_are_linux_user_selectors():
    assert (sysret.USER_CS, sysret.USER_DS) == (0x33, 0x2B)


def test_task_size_max_is_a_page_below_the_canonical_end():
    assert task_size_max(False) == 0x7FFF_FFFF_F000
    assert task_size_max(True) == 0xFF_FFFF_FFFF_F000
    assert Cpu(la57=True).task_size_max == task_size_max(True)


def test_registers_as_syscall_left_them_take_sysret():
    assert decide(GOOD) == sysret.SYSRET
    assert str(decide(GOOD)) == "<sysret>"


def test_xen_pv_always_irets():
    assert decide(GOOD, xenpv=True) == iret(Reason.XENPV)


def test_rcx_must_equal_rip():
    assert decide(GOOD.replace(cx=RIP + 2)) == iret(Reason.RCX_NE_RIP)
    assert str(iret(Reason.RCX_NE_RIP)) == "<iret: rcx != rip>"


def test_r11_must_equal_eflags():
    assert decide(GOOD.replace(r11=0)) == iret(Reason.R11_NE_EFLAGS)


def test_cs_must_be_user_cs():
    assert decide(GOOD.replace(cs=0x23)) == iret(Reason.CS_NE_USER_CS)   # a 32-bit CS


def test_ss_must_be_user_ds():
    assert decide(GOOD.replace(ss=0x2B + 8)) == iret(Reason.SS_NE_USER_DS)


@pytest.mark.parametrize("la57", [False, True])
def test_rip_must_be_below_task_size_max(la57):
    edge = task_size_max(la57)
    below = GOOD.replace(ip=edge - 1, cx=edge - 1)
    at = GOOD.replace(ip=edge, cx=edge)
    assert decide(below, la57=la57) == sysret.SYSRET
    assert decide(at, la57=la57) == iret(Reason.RIP_GE_TASK_SIZE_MAX)
    non_canonical = GOOD.replace(ip=1 << 63, cx=1 << 63)
    assert decide(non_canonical, la57=la57) == iret(Reason.RIP_GE_TASK_SIZE_MAX)


def test_the_paging_mode_moves_the_boundary():
    """2**47 is past the 4-level user range but inside the 5-level one."""
    regs = GOOD.replace(ip=1 << 47, cx=1 << 47)
    assert decide(regs, la57=False) == iret(Reason.RIP_GE_TASK_SIZE_MAX)
    assert decide(regs, la57=True) == sysret.SYSRET


@pytest.mark.parametrize("flag, reason", [
    (sysret.X86_EFLAGS_TF, Reason.EFLAGS_TF),
    (sysret.X86_EFLAGS_RF, Reason.EFLAGS_RF),
    (sysret.X86_EFLAGS_TF | sysret.X86_EFLAGS_RF, Reason.EFLAGS_RF_TF),
])
def test_rf_and_tf_need_iret(flag, reason):
    flags = EFLAGS | flag
    assert decide(GOOD.replace(flags=flags, r11=flags)) == iret(reason)


def test_checks_run_in_linux_order():
    """Break every check; fix them one at a time: the reason is always the first check
    still failing, in do_syscall_64()'s order."""
    tf = EFLAGS | sysret.X86_EFLAGS_TF
    regs = PtRegs(ip=1 << 63, cx=0, flags=tf, r11=0, cs=0x23, ss=0x33)
    fixes = [("cx", 1 << 63), ("r11", tf), ("cs", 0x33), ("ss", 0x2B),
             ("ip", RIP), ("flags", EFLAGS)]
    order = [Reason.RCX_NE_RIP, Reason.R11_NE_EFLAGS, Reason.CS_NE_USER_CS,
             Reason.SS_NE_USER_DS, Reason.RIP_GE_TASK_SIZE_MAX, Reason.EFLAGS_TF]
    assert decide(regs, xenpv=True) == iret(Reason.XENPV)
    for (field, value), reason in zip(fixes, order):
        assert decide(regs) == iret(reason), field
        regs = regs.replace(**{field: value})
        if field == "ip":
            regs = regs.replace(cx=RIP)
        if field == "flags":
            regs = regs.replace(r11=EFLAGS)
    assert decide(regs) == sysret.SYSRET


def test_fred_returns_by_eretu_whatever_do_syscall_64_says():
    assert exit_path(GOOD, Cpu(fred=True)) == sysret.FRED_ERETU
    assert exit_path(GOOD.replace(cx=0), Cpu(fred=True)) == sysret.FRED_ERETU
    assert exit_path(GOOD, Cpu()) == sysret.SYSRET


def test_cpu_from_cpuinfo_flags():
    assert Cpu.from_flags(frozenset("fpu sse2 la57".split())) == Cpu(la57=True)
    assert Cpu.from_flags(frozenset("fpu xenpv".split())) == Cpu(xenpv=True)
    assert Cpu.from_flags(frozenset("fred lm".split())) == Cpu(fred=True)
    assert Cpu.from_flags(frozenset()) == Cpu()


def test_user_regs_struct_round_trip_and_names():
    regs = PtRegs(**{f: i + 1 for i, f in enumerate(sysret.USER_REGS_FIELDS)})
    assert sysret.USER_REGS.size == 27 * 8
    assert PtRegs.unpack(regs.pack()) == regs
    assert regs.replace(rcx=5, eflags=7, rip=9) == regs.replace(cx=5, flags=7, ip=9)
    assert regs.replace(rax=-1).ax == 2**64 - 1
    assert sysret.reg_name("r11") == "r11" and sysret.reg_name("rip") == "ip"
    with pytest.raises(ValueError):
        sysret.reg_name("xmm0")


@pytest.mark.parametrize("err, ax", [
    (sysret.ERESTARTSYS, 7), (sysret.ERESTARTNOINTR, 7), (sysret.ERESTARTNOHAND, 7),
    (sysret.ERESTART_RESTARTBLOCK, 219),
])
def test_restart_moves_rip_back_and_so_irets(err, ax):
    regs = GOOD.replace(ax=-err, orig_ax=7)            # poll(2), interrupted
    restarted = restart_regs(regs)
    assert restarted == regs.replace(ax=ax, ip=RIP - 2)
    assert decide(restarted) == iret(Reason.RCX_NE_RIP)


def test_restart_keeps_the_x32_bit():
    regs = GOOD.replace(ax=-sysret.ERESTART_RESTARTBLOCK, orig_ax=0x40000000 | 35)
    assert restart_regs(regs).ax == 0x40000000 | 219


@pytest.mark.parametrize("regs", [
    GOOD.replace(ax=-4, orig_ax=7),                    # EINTR: no restart
    GOOD.replace(ax=3, orig_ax=7),                     # a result
    GOOD.replace(ax=-sysret.ERESTARTSYS, orig_ax=-1),  # not from a syscall
])
def test_no_restart(regs):
    assert restart_regs(regs) is None
