"""`sysemu efi-stub`: the EFI stub's PE/COFF header and the boot protocol's setup header.

Linux: arch/x86/boot/header.S, Documentation/arch/x86/boot.rst. Tested on a real kernel:
Debian's current linux-image-*-amd64 package, downloaded once per test run with apt
(skipped, saying so, only when apt cannot reach the mirror), its section table and
optional header cross-checked against binutils' objdump; plus truncated and corrupted
copies, non-kernel files, a PE file that is not a kernel, and /boot/vmlinuz-* when the
machine has one."""
from __future__ import annotations

import fcntl
import glob
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sysemu.boot.efi_stub import (ImageError, NotAKernel, NotLinuxPE, TruncatedImage,
                                  format_report, parse_efi_stub)
from sysemu.cli import main

TIMEOUT = 300


# -- the Debian kernel image, one download per test run --------------------------------------

def _run(argv, cwd=None):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def _apt_update() -> None:
    if os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"])


def _current_image_package() -> str | None:
    """The kernel package linux-image-amd64 depends on now (linux-image-6.1.0-NN-amd64)."""
    for attempt in range(2):
        out = _run(["apt-cache", "depends", "linux-image-amd64"]).stdout
        m = re.search(r"Depends: (linux-image-[\w.+-]+-amd64)\b", out)
        if m:
            return m.group(1)
        if attempt == 0:
            _apt_update()
    return None


def _download_kernel(dest: Path) -> Path:
    package = _current_image_package()
    if package is None:
        pytest.skip("apt cannot reach the Debian mirror: no linux-image-amd64 in the package "
                    "lists even after apt-get update")
    for attempt in range(2):
        got = _run(["apt-get", "download", package], cwd=dest)
        if got.returncode == 0:
            break
        if attempt == 0:
            _apt_update()
    else:
        pytest.skip(f"apt cannot reach the Debian mirror: apt-get download {package}: "
                    f"{got.stderr.strip().splitlines()[-1:]}")
    deb = next(dest.glob("*.deb"))
    unpack = _run(["dpkg-deb", "-x", str(deb), str(dest / "root")])
    assert unpack.returncode == 0, unpack.stderr
    deb.unlink()
    return next((dest / "root" / "boot").glob("vmlinuz-*"))


@pytest.fixture(scope="session")
def debian_kernel(tmp_path_factory) -> Path:
    """Downloaded once per run: under pytest-xdist the workers share the directory above
    their basetemp (that run's) and take turns with a lock, so the first one downloads."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "debian-kernel"
    shared.mkdir(exist_ok=True)
    with open(shared.parent / "debian-kernel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = list(shared.glob("root/boot/vmlinuz-*"))
        if found:
            return found[0]
        return _download_kernel(shared)


@pytest.fixture(scope="session")
def kernel_bytes(debian_kernel) -> bytes:
    return debian_kernel.read_bytes()


# -- the real image --------------------------------------------------------------------------

def test_debian_kernel_header(debian_kernel, kernel_bytes):
    stub = parse_efi_stub(kernel_bytes)
    release = debian_kernel.name.removeprefix("vmlinuz-")
    assert stub.kernel_version.startswith(release + " ")
    assert stub.machine == "IMAGE_FILE_MACHINE_AMD64"
    assert stub.optional_magic == "PE32+"
    assert stub.subsystem == "IMAGE_SUBSYSTEM_EFI_APPLICATION"
    assert "EXECUTABLE_IMAGE" in stub.coff_flags
    names = [s.name for s in stub.sections]
    assert names[0] == ".setup" and ".text" in names
    text = stub.sections[names.index(".text")]
    # header.S: .text starts right after the setup code, and the PE entry point
    # (setup_size + efi_pe_entry) lies in it.
    assert text.virtual_address == stub.setup_size
    assert stub.entry_section == ".text"
    assert "CNT_CODE" in text.flags and "MEM_EXECUTE" in text.flags
    h = stub.setup_header
    assert (h["header"], h["boot_flag"]) == ("HdrS", 0xAA55)
    assert h["version"] >= 0x20F                      # kernel_info_offset is there
    assert h["xloadflags"] & 0x1                      # XLF_KERNEL_64
    assert h["init_size"] > len(kernel_bytes)
    assert stub.size_of_image >= text.virtual_address + text.virtual_size
    if stub.handover_entry_64 is not None:
        assert stub.handover_entry_64 == h["handover_offset"] + 0x200


def _objdump_sections(path: Path) -> list[tuple[str, int, int, int]]:
    """(name, size, vma, file offset) of each section, as objdump -h prints them."""
    out = _run(["objdump", "-h", str(path)]).stdout
    return [(m[1], int(m[2], 16), int(m[3], 16), int(m[5], 16)) for m in re.finditer(
        r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+2\*\*\d+",
        out, re.M)]


def _objdump_private(path: Path) -> dict[str, str]:
    out = _run(["objdump", "-p", str(path)]).stdout
    fields = dict(re.findall(r"^(\w+)\s+([0-9a-f]+)\b", out, re.M))
    fields["directories"] = re.findall(r"^Entry \w ([0-9a-f]+) ([0-9a-f]+)", out, re.M)
    return fields


@pytest.mark.skipif(shutil.which("objdump") is None, reason="binutils (objdump) not installed")
def test_sections_and_optional_header_agree_with_objdump(debian_kernel, kernel_bytes):
    stub = parse_efi_stub(kernel_bytes)
    ours = [(s.name, s.raw_size, stub.image_base + s.virtual_address, s.raw_offset)
            for s in stub.sections]
    assert ours == _objdump_sections(debian_kernel)
    p = _objdump_private(debian_kernel)
    assert int(p["AddressOfEntryPoint"], 16) == stub.entry_point
    assert int(p["SizeOfImage"], 16) == stub.size_of_image
    assert int(p["SizeOfHeaders"], 16) == stub.size_of_headers
    assert int(p["SectionAlignment"], 16) == stub.section_alignment
    assert int(p["FileAlignment"], 16) == stub.file_alignment
    assert int(p["BaseOfCode"], 16) == stub.base_of_code
    assert int(p["Subsystem"], 16) == 10                    # EFI application
    assert f"{p['MajorImageVersion']}.{p['MinorImageVersion']}" == stub.image_version
    n = int(p["NumberOfRvaAndSizes"], 16)
    assert [(int(a, 16), int(b, 16)) for a, b in p["directories"][:n]] == [
        (d.virtual_address, d.size) for d in stub.data_directories]


def test_cli_report_and_json(debian_kernel, kernel_bytes, capsys):
    assert main(["efi-stub", str(debian_kernel)]) == 0
    report = capsys.readouterr().out
    assert report == format_report(parse_efi_stub(kernel_bytes)) + "\n"
    for text in ("PE signature         PE\\0\\0", "IMAGE_FILE_MACHINE_AMD64",
                 "IMAGE_SUBSYSTEM_EFI_APPLICATION", "Setup header (boot protocol 2.",
                 "  .setup ", "  .text ", "header             HdrS"):
        assert text in report, text
    assert main(["efi-stub", "--format", "json", str(debian_kernel)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["subsystem"] == "IMAGE_SUBSYSTEM_EFI_APPLICATION"
    assert data["setup_header"]["header"] == "HdrS"
    assert [s["name"] for s in data["sections"]][0] == ".setup"
    assert data["entry_point"] == parse_efi_stub(kernel_bytes).entry_point


BOOT_IMAGES = sorted(glob.glob("/boot/vmlinuz-*"))


@pytest.mark.skipif(not BOOT_IMAGES, reason="this machine has no /boot/vmlinuz-*")
@pytest.mark.parametrize("path", BOOT_IMAGES)
def test_installed_kernels(path):
    stub = parse_efi_stub(Path(path).read_bytes())
    assert stub.subsystem == "IMAGE_SUBSYSTEM_EFI_APPLICATION"
    assert stub.kernel_version.startswith(Path(path).name.removeprefix("vmlinuz-"))
    if shutil.which("objdump"):
        assert [(s.name, s.raw_offset) for s in stub.sections] == [
            (name, off) for name, _size, _vma, off in _objdump_sections(Path(path))]


# -- truncated and corrupted copies ----------------------------------------------------------

def _cli_error(tmp_path, data: bytes, capsys) -> str:
    image = tmp_path / "image"
    image.write_bytes(data)
    assert main(["efi-stub", str(image)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sysemu efi-stub: {image}: "), lines
    return lines[0]


@pytest.mark.parametrize("cut", [0x30, 0x100, 0x250, 0x2000, "mid-text", "last-byte"])
def test_truncated_copy(kernel_bytes, tmp_path, capsys, cut):
    text = parse_efi_stub(kernel_bytes).sections[2]
    at = {"mid-text": text.raw_offset + text.raw_size // 2,
          "last-byte": len(kernel_bytes) - 1}.get(cut, cut)
    with pytest.raises(TruncatedImage):
        parse_efi_stub(kernel_bytes[:at])
    assert "truncated image" in _cli_error(tmp_path, kernel_bytes[:at], capsys)


def test_truncated_copy_through_the_real_command(kernel_bytes, tmp_path):
    """The installed entry point, not just main(): one line, status 1, no traceback."""
    image = tmp_path / "vmlinuz.part"
    image.write_bytes(kernel_bytes[:len(kernel_bytes) // 3])
    got = _run([sys.executable, "-m", "sysemu.cli", "efi-stub", str(image)])
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr.count("\n") == 1 and "Traceback" not in got.stderr
    assert "truncated image" in got.stderr


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def test_corrupted_pe_signature(kernel_bytes, tmp_path, capsys):
    e_lfanew = struct.unpack_from("<I", kernel_bytes, 0x3C)[0]
    bad = _patched(kernel_bytes, e_lfanew, b"XE\0\0")
    with pytest.raises(ImageError):
        parse_efi_stub(bad)
    assert "not a valid PE image" in _cli_error(tmp_path, bad, capsys)


def test_corrupted_e_lfanew_points_past_the_end(kernel_bytes, tmp_path, capsys):
    bad = _patched(kernel_bytes, 0x3C, struct.pack("<I", len(kernel_bytes) + 4096))
    assert "truncated image" in _cli_error(tmp_path, bad, capsys)


def test_corrupted_boot_protocol_signature_is_not_a_kernel(kernel_bytes, tmp_path, capsys):
    bad = _patched(kernel_bytes, 0x202, b"HdrX")
    with pytest.raises(NotLinuxPE):
        parse_efi_stub(bad)
    assert "a PE file, but not a Linux kernel" in _cli_error(tmp_path, bad, capsys)


def test_corrupted_section_table_past_the_file(kernel_bytes, tmp_path, capsys):
    stub = parse_efi_stub(kernel_bytes)
    table = stub.e_lfanew + 24 + struct.unpack_from("<H", kernel_bytes, stub.e_lfanew + 20)[0]
    text_raw_size = table + 2 * 40 + 16          # the third section header's SizeOfRawData
    bad = _patched(kernel_bytes, text_raw_size, struct.pack("<I", 0x7FFFFFF0))
    assert "truncated image" in _cli_error(tmp_path, bad, capsys)


def test_corrupted_payload_does_not_change_the_header(kernel_bytes):
    """Bytes of the compressed kernel are not the header: a copy damaged there reads the
    same (the loader, not this reader, would find the damage)."""
    text = parse_efi_stub(kernel_bytes).sections[2]
    middle = text.raw_offset + text.raw_size // 2
    damaged = _patched(kernel_bytes, middle, os.urandom(4096))
    assert parse_efi_stub(damaged) == parse_efi_stub(kernel_bytes)


def test_random_header_damage_is_a_report_or_one_error(kernel_bytes):
    """Fuzz the first 0x400 bytes (MZ, PE, COFF, optional header, section table, setup
    header): every copy gives a report or an ImageError, nothing else."""
    rng = random.Random(13)
    head = bytearray(kernel_bytes[:0x400])
    tail = kernel_bytes[0x400:]
    outcomes = set()
    for _ in range(300):
        data = bytearray(head)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            format_report(parse_efi_stub(bytes(data) + tail))
            outcomes.add("report")
        except ImageError as exc:
            assert "\n" not in str(exc)
            outcomes.add(type(exc).__name__)
    assert "report" in outcomes and len(outcomes) > 1


# -- files that are not kernel images --------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "no MZ header"),
    (b"#!/bin/sh\necho hello\n", "no MZ header"),
    (Path(sys.executable).resolve().read_bytes()[:65536], "no MZ header"),   # an ELF file
    (b"MZ", "truncated image"),
])
def test_non_kernel_files(tmp_path, capsys, content, message):
    with pytest.raises(ImageError):
        parse_efi_stub(content)
    assert message in _cli_error(tmp_path, content, capsys)


def test_bzimage_without_the_efi_stub(kernel_bytes, tmp_path, capsys):
    """CONFIG_EFI_STUB=n: the boot sector has no MZ header, only the setup header."""
    bare = _patched(kernel_bytes, 0, b"\xeb\x00")
    with pytest.raises(NotAKernel, match="without the EFI stub"):
        parse_efi_stub(bare)
    assert "CONFIG_EFI_STUB" in _cli_error(tmp_path, bare, capsys)


def tiny_pe(machine: int = 0x8664, subsystem: int = 10) -> bytes:
    """A minimal, valid PE32+ image with one .text section (what a non-Linux EFI
    application or a Windows program starts with): no boot protocol header."""
    e_lfanew = 0x80
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", e_lfanew)
    dos += bytes(e_lfanew - len(dos))
    opt = struct.pack("<HBBIIIII", 0x20B, 1, 0, 0x200, 0, 0, 0x1000, 0x1000)
    opt += struct.pack("<QIIHHHHHHIIIIHHQQQQII", 0x140000000, 0x1000, 0x200, 0, 0, 0, 0, 0,
                       0, 0, 0x2000, 0x200, 0, subsystem, 0, 0, 0, 0, 0, 0, 16)
    opt += bytes(16 * 8)
    coff = struct.pack("<HHIIIHH", machine, 1, 0, 0, 0, len(opt), 0x22)
    section = struct.pack("<8sIIIIIIHHI", b".text", 0x10, 0x1000, 0x200, 0x200, 0, 0, 0, 0,
                          0x60000020)
    headers = dos + b"PE\0\0" + coff + opt + section
    return headers + bytes(0x200 - len(headers)) + b"\xc3" + bytes(0x1FF)


def test_a_pe_file_that_is_not_a_kernel(tmp_path, capsys):
    import pefile
    pe = pefile.PE(data=tiny_pe())                # pefile reads it as a proper PE32+ image
    assert pe.OPTIONAL_HEADER.AddressOfEntryPoint == 0x1000 and len(pe.sections) == 1
    with pytest.raises(NotLinuxPE):
        parse_efi_stub(tiny_pe())
    assert "a PE file, but not a Linux kernel" in _cli_error(tmp_path, tiny_pe(), capsys)


def test_missing_file_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["efi-stub", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err == f"sysemu efi-stub: {missing}: No such file or directory\n"


def test_an_old_protocol_version_has_no_newer_fields(kernel_bytes):
    """boot.rst gives each field the protocol version that added it; an image claiming
    2.05 has no xloadflags (2.12) and no handover_offset (2.11) to read."""
    old = _patched(kernel_bytes, 0x206, struct.pack("<H", 0x0205))
    stub = parse_efi_stub(old)
    h = stub.setup_header
    assert h["version"] == 0x205 and h["kernel_alignment"] is not None
    assert h["xloadflags"] is None and h["handover_offset"] is None
    assert stub.handover_entry_64 is None
    report = format_report(stub)
    assert "Setup header (boot protocol 2.05)" in report
    assert "xloadflags         (protocol 2.05 has none)" in report
