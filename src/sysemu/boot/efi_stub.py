"""The EFI stub's PE/COFF header of an x86 Linux kernel image, and its setup header.

Linux: arch/x86/boot/header.S lays a bzImage out so that UEFI firmware can load it as an
EFI application (CONFIG_EFI_STUB): an MS-DOS header ("MZ", the PE header's offset at
0x3c, LINUX_PE_MAGIC at 0x38), the "PE\\0\\0" signature, the COFF header (machine
AMD64), a PE32+ optional header (subsystem EFI_APPLICATION, entry point = setup_size +
efi_pe_entry), the section table (.setup, [.reloc,] [.compat,] .text, [.sbat,] .data)
and the data directories. The same first sector carries the boot protocol's setup
header at 0x1f1 (Documentation/arch/x86/boot.rst), read here with struct at its
documented offsets.

Pure: `parse_efi_stub(data)` takes the image's bytes and returns an `EfiStub` or raises
`ImageError` with a one-line reason; file IO is the caller's.
"""
from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field

import pefile

IMAGE_DOS_SIGNATURE = b"MZ"
IMAGE_NT_SIGNATURE = 0x00004550                 # "PE\0\0"
LINUX_PE_MAGIC = 0x818223CD                     # include/linux/pe.h, at 0x38 (header.S)
IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20B
IMAGE_SUBSYSTEM_EFI_APPLICATION = 10
BOOT_FLAG = 0xAA55
HDRS = b"HdrS"
SETUP_HEADER_OFFSET = 0x1F1
SECTOR = 512

# The setup header: (offset, struct format, name, protocol version that added it).
# Linux: Documentation/arch/x86/boot.rst "The Real-Mode Kernel Header".
SETUP_HEADER_FIELDS = (
    (0x1F1, "B", "setup_sects", 0),
    (0x1F2, "H", "root_flags", 0),
    (0x1F4, "I", "syssize", 0x204),
    (0x1F8, "H", "ram_size", 0),
    (0x1FA, "H", "vid_mode", 0),
    (0x1FC, "H", "root_dev", 0),
    (0x1FE, "H", "boot_flag", 0),
    (0x200, "H", "jump", 0x200),
    (0x202, "4s", "header", 0x200),
    (0x206, "H", "version", 0),
    (0x208, "I", "realmode_swtch", 0x200),
    (0x20C, "H", "start_sys_seg", 0x200),
    (0x20E, "H", "kernel_version", 0x200),
    (0x210, "B", "type_of_loader", 0x200),
    (0x211, "B", "loadflags", 0x200),
    (0x212, "H", "setup_move_size", 0x200),
    (0x214, "I", "code32_start", 0x200),
    (0x218, "I", "ramdisk_image", 0x200),
    (0x21C, "I", "ramdisk_size", 0x200),
    (0x220, "I", "bootsect_kludge", 0x200),
    (0x224, "H", "heap_end_ptr", 0x201),
    (0x226, "B", "ext_loader_ver", 0x202),
    (0x227, "B", "ext_loader_type", 0x202),
    (0x228, "I", "cmd_line_ptr", 0x202),
    (0x22C, "I", "initrd_addr_max", 0x203),
    (0x230, "I", "kernel_alignment", 0x205),
    (0x234, "B", "relocatable_kernel", 0x205),
    (0x235, "B", "min_alignment", 0x20A),
    (0x236, "H", "xloadflags", 0x20C),
    (0x238, "I", "cmdline_size", 0x206),
    (0x23C, "I", "hardware_subarch", 0x207),
    (0x240, "Q", "hardware_subarch_data", 0x207),
    (0x248, "I", "payload_offset", 0x208),
    (0x24C, "I", "payload_length", 0x208),
    (0x250, "Q", "setup_data", 0x209),
    (0x258, "Q", "pref_address", 0x20A),
    (0x260, "I", "init_size", 0x20A),
    (0x264, "I", "handover_offset", 0x20B),
    (0x268, "I", "kernel_info_offset", 0x20F),
)
SETUP_HEADER_END = 0x26C

LOADFLAGS = {0x01: "LOADED_HIGH", 0x02: "KASLR_FLAG", 0x20: "QUIET_FLAG",
             0x40: "KEEP_SEGMENTS", 0x80: "CAN_USE_HEAP"}
XLOADFLAGS = {0x01: "XLF_KERNEL_64", 0x02: "XLF_CAN_BE_LOADED_ABOVE_4G",
              0x04: "XLF_EFI_HANDOVER_32", 0x08: "XLF_EFI_HANDOVER_64",
              0x10: "XLF_EFI_KEXEC", 0x20: "XLF_5LEVEL", 0x40: "XLF_5LEVEL_ENABLED",
              0x80: "XLF_MEM_ENCRYPTION"}


class ImageError(ValueError):
    """Why the bytes are not a readable EFI-stub kernel image: one line."""


class NotAKernel(ImageError):
    pass


class NotLinuxPE(ImageError):
    pass


class TruncatedImage(ImageError):
    pass


@dataclass
class Section:
    name: str
    virtual_size: int
    virtual_address: int
    raw_size: int
    raw_offset: int
    characteristics: int
    flags: list[str]


@dataclass
class DataDirectory:
    name: str
    virtual_address: int
    size: int


@dataclass
class CompatEntry:
    """One entry of the .compat section: another machine type the image can start as.
    Linux: header.S `.pecompat` (version 1, size 8, machine, entry point)."""
    machine: str
    entry_point: int


@dataclass
class EfiStub:
    size: int
    e_lfanew: int
    linux_pe_magic: bool
    machine: str
    number_of_sections: int
    time_date_stamp: int
    coff_characteristics: int
    coff_flags: list[str]
    optional_magic: str
    linker_version: str
    size_of_code: int
    size_of_initialized_data: int
    entry_point: int
    entry_section: str
    base_of_code: int
    image_base: int
    section_alignment: int
    file_alignment: int
    image_version: str
    size_of_image: int
    size_of_headers: int
    subsystem: str
    dll_characteristics: int
    dll_flags: list[str]
    sections: list[Section]
    data_directories: list[DataDirectory]
    compat: list[CompatEntry]
    setup_header: dict = field(default_factory=dict)
    setup_size: int = 0
    kernel_version: str = ""
    handover_entry_64: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _flags(value: int, names: dict[int, str]) -> list[str]:
    return [name for bit, name in sorted(names.items()) if value & bit]


def _pe_flags(value: int, table: list[tuple[str, int]], prefix: str) -> list[str]:
    """pefile's (name, bit) table as the names set in `value`; the section alignment field
    (IMAGE_SCN_ALIGN_*, a 4-bit number, not flags) is left out."""
    return [name[len(prefix):] for name, bit in table
            if name.startswith(prefix) and "_ALIGN_" not in name and bit
            and value & bit == bit]


def read_setup_header(data: bytes) -> dict:
    """The boot protocol header. Linux: Documentation/arch/x86/boot.rst; a field newer than
    the image's protocol version is None (it is not there to read)."""
    if data[0x202:0x206] != HDRS:
        raise NotAKernel("no boot protocol header ('HdrS' at 0x202)")
    if len(data) < SETUP_HEADER_END:
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the setup header ends at "
                             f"{SETUP_HEADER_END:#x}")
    version = struct.unpack_from("<H", data, 0x206)[0]
    header: dict = {}
    for offset, fmt, name, since in SETUP_HEADER_FIELDS:
        value = struct.unpack_from("<" + fmt, data, offset)[0]
        header[name] = value if version >= since else None
    header["header"] = HDRS.decode()
    return header


def _kernel_version(data: bytes, pointer: int | None) -> str:
    """Linux: boot.rst kernel_version: "set to a pointer to a NUL-terminated ... string,
    less 0x200"."""
    if not pointer:
        return ""
    start = pointer + 0x200
    end = data.find(b"\0", start, start + 512)
    if start >= len(data) or end < 0:
        return ""
    return data[start:end].decode("ascii", "replace")


def _compat_entries(data: bytes, sections: list[Section]) -> list[CompatEntry]:
    compat = next((s for s in sections if s.name == ".compat"), None)
    if compat is None:
        return []
    entries, pos = [], compat.raw_offset
    end = min(compat.raw_offset + compat.raw_size, len(data))
    while pos + 2 <= end and data[pos] != 0:
        version, size = data[pos], data[pos + 1]
        if size < 2 or pos + size > end:
            break
        if version == 1 and size >= 8:
            machine, entry = struct.unpack_from("<HI", data, pos + 2)
            entries.append(CompatEntry(pefile.MACHINE_TYPE.get(machine, hex(machine)), entry))
        pos += size
    return entries


def parse_efi_stub(data: bytes) -> EfiStub:
    """Read an x86 kernel image's EFI stub header. Raises NotAKernel (no MZ header, or a
    bzImage without the EFI stub), NotLinuxPE (a PE file without the boot protocol
    header), TruncatedImage (shorter than its headers say) or ImageError (a malformed
    header)."""
    if data[:2] != IMAGE_DOS_SIGNATURE:
        if data[0x202:0x206] == HDRS:
            raise NotAKernel("a bzImage without the EFI stub (CONFIG_EFI_STUB): no MZ header")
        raise NotAKernel("not a kernel image: no MZ header")
    if len(data) < 0x40:
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the MS-DOS header needs 64")
    e_lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    if e_lfanew + 24 > len(data):
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the PE header is at "
                             f"{e_lfanew:#x}")
    nsections, optional_size = struct.unpack_from("<H12xH", data, e_lfanew + 6)
    headers_end = e_lfanew + 24 + optional_size + 40 * nsections
    if headers_end > len(data):
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the section table ends "
                             f"at {headers_end:#x}")
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as exc:
        raise ImageError(f"not a valid PE image: {exc.value}") from None
    fh, opt = pe.FILE_HEADER, pe.OPTIONAL_HEADER
    if opt is None:
        raise ImageError("no PE optional header")
    sections = [Section(s.Name.rstrip(b"\0").decode("ascii", "replace"), s.Misc_VirtualSize,
                        s.VirtualAddress, s.SizeOfRawData, s.PointerToRawData,
                        s.Characteristics,
                        _pe_flags(s.Characteristics, pefile.section_characteristics,
                                  "IMAGE_SCN_"))
                for s in pe.sections]
    if len(sections) != fh.NumberOfSections:
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the section table holds "
                             f"{len(sections)} of {fh.NumberOfSections} sections")
    for s in sections:
        if s.raw_offset + s.raw_size > len(data):
            raise TruncatedImage(f"truncated image: {len(data)} bytes, section {s.name} ends "
                                 f"at {s.raw_offset + s.raw_size:#x}")
    # The certificate table (a signed image's Authenticode signature) is the one data
    # directory given as a file offset, not an RVA.
    security = next((d for d in opt.DATA_DIRECTORY
                     if d.name == "IMAGE_DIRECTORY_ENTRY_SECURITY"), None)
    if security is not None and security.Size and \
            security.VirtualAddress + security.Size > len(data):
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the certificate table ends "
                             f"at {security.VirtualAddress + security.Size:#x}")
    try:
        setup = read_setup_header(data)
    except NotAKernel:
        raise NotLinuxPE("a PE file, but not a Linux kernel: no boot protocol header "
                         "('HdrS' at 0x202)") from None
    if setup["boot_flag"] != BOOT_FLAG:
        raise NotLinuxPE(f"a PE file, but not a Linux kernel: boot_flag "
                         f"{setup['boot_flag']:#06x}, not 0xaa55")
    setup_sects = setup["setup_sects"] or 4     # boot.rst: "If this field is 0, ... 4"
    setup_size = (setup_sects + 1) * SECTOR
    if setup_size > len(data):
        raise TruncatedImage(f"truncated image: {len(data)} bytes, the setup code ends at "
                             f"{setup_size:#x}")
    entry = opt.AddressOfEntryPoint
    entry_section = next((s.name for s in sections
                          if s.virtual_address <= entry < s.virtual_address + s.virtual_size), "")
    xloadflags = setup["xloadflags"] or 0
    return EfiStub(
        size=len(data),
        e_lfanew=pe.DOS_HEADER.e_lfanew,
        linux_pe_magic=struct.unpack_from("<I", data, 0x38)[0] == LINUX_PE_MAGIC,
        machine=pefile.MACHINE_TYPE.get(fh.Machine, hex(fh.Machine)),
        number_of_sections=fh.NumberOfSections,
        time_date_stamp=fh.TimeDateStamp,
        coff_characteristics=fh.Characteristics,
        coff_flags=_pe_flags(fh.Characteristics, pefile.image_characteristics, "IMAGE_FILE_"),
        optional_magic={IMAGE_NT_OPTIONAL_HDR64_MAGIC: "PE32+", 0x10B: "PE32"}.get(
            opt.Magic, hex(opt.Magic)),
        linker_version=f"{opt.MajorLinkerVersion}.{opt.MinorLinkerVersion}",
        size_of_code=opt.SizeOfCode,
        size_of_initialized_data=opt.SizeOfInitializedData,
        entry_point=entry,
        entry_section=entry_section,
        base_of_code=opt.BaseOfCode,
        image_base=opt.ImageBase,
        section_alignment=opt.SectionAlignment,
        file_alignment=opt.FileAlignment,
        image_version=f"{opt.MajorImageVersion}.{opt.MinorImageVersion}",
        size_of_image=opt.SizeOfImage,
        size_of_headers=opt.SizeOfHeaders,
        subsystem=pefile.SUBSYSTEM_TYPE.get(opt.Subsystem, str(opt.Subsystem)),
        dll_characteristics=opt.DllCharacteristics,
        dll_flags=_pe_flags(opt.DllCharacteristics, pefile.dll_characteristics,
                            "IMAGE_DLLCHARACTERISTICS_"),
        sections=sections,
        data_directories=[DataDirectory(d.name.replace("IMAGE_DIRECTORY_ENTRY_", ""),
                                        d.VirtualAddress, d.Size)
                          for d in opt.DATA_DIRECTORY],
        compat=_compat_entries(data, sections),
        setup_header=setup,
        setup_size=setup_size,
        kernel_version=_kernel_version(data, setup["kernel_version"]),
        # boot.rst: the 64-bit EFI handoff entry point is at handover_offset + 0x200
        handover_entry_64=(setup["handover_offset"] + 0x200
                           if xloadflags & 0x08 and setup["handover_offset"] is not None
                           else None),
    )


def format_report(stub: EfiStub) -> str:
    """The header as a readable report, in header.S's order."""
    h = stub.setup_header
    version = h["version"]
    lines = [
        f"Linux kernel image, {stub.size} bytes: {stub.kernel_version or '(no version string)'}",
        "",
        "MS-DOS header",
        f"  e_magic            MZ",
        f"  LINUX_PE_MAGIC     {'present at 0x38' if stub.linux_pe_magic else 'absent'}",
        f"  e_lfanew           {stub.e_lfanew:#x}",
        "PE signature         PE\\0\\0",
        "COFF header",
        f"  machine            {stub.machine}",
        f"  sections           {stub.number_of_sections}",
        f"  characteristics    {stub.coff_characteristics:#06x} {' '.join(stub.coff_flags)}",
        f"Optional header ({stub.optional_magic})",
        f"  subsystem          {stub.subsystem}",
        f"  entry point        {stub.entry_point:#x} (in {stub.entry_section or 'no section'}"
        f"; efi_pe_entry at {stub.entry_point - stub.setup_size:#x} past the setup code)",
        f"  image version      {stub.image_version} (LINUX_EFISTUB_MAJOR/MINOR_VERSION)",
        f"  size of image      {stub.size_of_image:#x}",
        f"  size of headers    {stub.size_of_headers:#x}",
        f"  size of code       {stub.size_of_code:#x}",
        f"  base of code       {stub.base_of_code:#x}",
        f"  image base         {stub.image_base:#x}",
        f"  alignment          section {stub.section_alignment:#x}, file {stub.file_alignment:#x}",
        f"  dll flags          {stub.dll_characteristics:#06x} {' '.join(stub.dll_flags)}",
        "Sections",
        f"  {'name':<8}  {'vsize':>10}  {'vaddr':>10}  {'rawsize':>10}  {'rawoff':>10}  flags",
    ]
    for s in stub.sections:
        lines.append(f"  {s.name:<8}  {s.virtual_size:>#10x}  {s.virtual_address:>#10x}  "
                     f"{s.raw_size:>#10x}  {s.raw_offset:>#10x}  "
                     f"{' '.join(s.flags)}")
    for c in stub.compat:
        lines.append(f"  .compat: {c.machine} entry point {c.entry_point:#x}")
    lines.append("Data directories")
    for d in stub.data_directories:
        lines.append(f"  {d.name:<20}  {d.virtual_address:>#10x}  {d.size:>#10x}")
    lines += [
        f"Setup header (boot protocol {version >> 8}.{version & 0xff:02d})",
        f"  setup_sects        {h['setup_sects']} (setup code {stub.setup_size:#x} bytes)",
        f"  boot_flag          {h['boot_flag']:#06x}",
        f"  header             {h['header']}",
        f"  kernel_version     {stub.kernel_version}",
    ]
    for name in ("loadflags", "xloadflags", "kernel_alignment", "relocatable_kernel", "min_alignment",
                 "cmdline_size", "pref_address", "init_size", "handover_offset",
                 "kernel_info_offset", "syssize", "payload_offset", "payload_length"):
        value = h[name]
        if value is None:
            lines.append(f"  {name:<18} (protocol {version >> 8}.{version & 0xff:02d} has none)")
        elif name in ("loadflags", "xloadflags"):
            names = _flags(value, LOADFLAGS if name == "loadflags" else XLOADFLAGS)
            lines.append(f"  {name:<18} {value:#06x} {' '.join(names)}")
        else:
            lines.append(f"  {name:<18} {value:#x}")
    if stub.handover_entry_64 is not None:
        lines.append(f"  EFI handover (64)  {stub.handover_entry_64:#x} "
                     "(handover_offset + 0x200)")
    return "\n".join(lines)
