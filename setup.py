"""Build hook: regenerate the syscall table from the .tbl files, as Linux does at build time.

Linux: arch/x86/entry/syscalls/Makefile runs scripts/syscalltbl.sh on syscall_64.tbl and
syscall_32.tbl to produce asm/syscalls_64.h. Here build_py writes
src/sysemu/arch/x86/_syscalls.py before it copies the package. All metadata stays in
pyproject.toml; this file only adds the command class.
"""
import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
GENERATOR = ROOT / "src" / "sysemu" / "arch" / "x86" / "syscalltbl.py"


def regenerate_syscall_table() -> bool:
    """Write _syscalls.py when the .tbl files changed; True if it was rewritten.

    The generator is loaded from its file, not imported as sysemu.arch.x86.syscalltbl, so
    the build needs nothing of the package but that one stdlib-only module."""
    spec = importlib.util.spec_from_file_location("_sysemu_syscalltbl", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.generate()
    current = module.OUTPUT.read_text() if module.OUTPUT.exists() else None
    if current == text:
        return False
    module.OUTPUT.write_text(text)
    return True


class BuildPyWithSyscallTable(build_py):
    """build_py that first regenerates the syscall table (also runs for `pip install -e`)."""

    def run(self):
        if regenerate_syscall_table():
            self.announce("regenerated sysemu/arch/x86/_syscalls.py", level=2)
        super().run()


setup(cmdclass={"build_py": BuildPyWithSyscallTable})
