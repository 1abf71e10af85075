"""Write arch/x86/syscall_{64,32}.tbl from the kernel's UAPI headers (linux-libc-dev).

The .tbl files are sysemu's data, in the kernel's format: `<number> <abi> <name> [<entry>]`.
They are composed from <asm/unistd_64.h>, <asm/unistd_x32.h> and <asm/unistd_32.h>, plus
the calls newer than the headers (LATER below). Run once by hand when the headers move on:

    python tools/make_tbl.py /usr/include/x86_64-linux-gnu/asm src/sysemu/arch/x86
"""
import re
import sys
from pathlib import Path

# Numbered in the tables but without an entry point: sys_ni_syscall (ENOSYS).
NO_ENTRY_64 = {"uselib", "create_module", "get_kernel_syms", "query_module", "nfsservctl",
               "getpmsg", "putpmsg", "afs_syscall", "tuxcall", "security", "set_thread_area",
               "get_thread_area", "epoll_ctl_old", "epoll_wait_old", "vserver", "_sysctl"}
NO_ENTRY_32 = {"break", "stty", "gtty", "ftime", "prof", "lock", "mpx", "ulimit", "profil",
               "idle", "afs_syscall", "getpmsg", "putpmsg", "vserver", "create_module",
               "get_kernel_syms", "query_module", "nfsservctl", "_sysctl"}
ENTRY_ALIAS = {"stat": "sys_newstat", "fstat": "sys_newfstat", "lstat": "sys_newlstat",
               "uname": "sys_newuname", "sendfile": "sys_sendfile64", "umount2": "sys_umount"}
# Calls added to the kernel after the 6.1 headers: (number, abi in the 64-bit table, name).
LATER = [(335, "common", "uretprobe"), (336, "common", "uprobe"), (451, "common", "cachestat"), (452, "common", "fchmodat2"),
         (453, "64", "map_shadow_stack"), (454, "common", "futex_wake"),
         (455, "common", "futex_wait"), (456, "common", "futex_requeue"),
         (457, "common", "statmount"), (458, "common", "listmount"),
         (459, "common", "lsm_get_self_attr"), (460, "common", "lsm_set_self_attr"),
         (461, "common", "lsm_list_modules"), (462, "common", "mseal"),
         (463, "common", "setxattrat"), (464, "common", "getxattrat"),
         (465, "common", "listxattrat"), (466, "common", "removexattrat"),
         (467, "common", "open_tree_attr"), (468, "common", "file_getattr"),
         (469, "common", "file_setattr")]


def parse(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"#define __NR_(\w+)\s+(?:\(__X32_SYSCALL_BIT \+\s*)?(\d+)", line)
        if m:
            out.setdefault(m.group(1), int(m.group(2)))
    return out


def entry(name, no_entry, prefix="sys_"):
    if name in no_entry:
        return ""
    return ENTRY_ALIAS.get(name, prefix + name)


def main(headers, outdir):
    n64 = parse(Path(headers, "unistd_64.h"))
    nx32 = parse(Path(headers, "unistd_x32.h"))
    n32 = parse(Path(headers, "unistd_32.h"))
    rows = []
    for name, nr in n64.items():
        abi = "common" if nx32.get(name) == nr else "64"
        rows.append((nr, abi, name, entry(name, NO_ENTRY_64)))
    for name, nr in nx32.items():
        if nr >= 512:
            rows.append((nr, "x32", name, entry(name, (), "compat_sys_")))
    for nr, abi, name in LATER:
        if name not in n64:
            rows.append((nr, abi, name, "sys_" + name))
    rows.sort()
    head = ("#\n# 64-bit system call numbers and entry vectors (sysemu's copy, composed by\n"
            "# tools/make_tbl.py from the kernel's UAPI headers)\n#\n"
            "# The format is:\n# <number> <abi> <name> <entry point>\n#\n"
            "# The abi is \"common\", \"64\" or \"x32\" for this file.\n#\n")
    Path(outdir, "syscall_64.tbl").write_text(
        head + "".join(f"{nr}\t{abi}\t{name}\t{ent}".rstrip() + "\n" for nr, abi, name, ent in rows))
    rows32 = [(nr, name, entry(name, NO_ENTRY_32)) for name, nr in n32.items()]
    for nr, _abi, name in LATER:
        if name not in n32 and name not in ("uretprobe", "uprobe", "map_shadow_stack"):
            rows32.append((nr, name, "sys_" + name))
    rows32.sort()
    head32 = ("#\n# 32-bit system call numbers and entry vectors (sysemu's copy, composed by\n"
              "# tools/make_tbl.py from the kernel's UAPI headers)\n#\n"
              "# The format is:\n# <number> <abi> <name> <entry point>\n#\n"
              "# The abi is always \"i386\" for this file.\n#\n")
    Path(outdir, "syscall_32.tbl").write_text(
        head32 + "".join(f"{nr}\ti386\t{name}\t{ent}".rstrip() + "\n" for nr, name, ent in rows32))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
