"""strace's qualifying expressions: `-e trace=SET`.

SET is a comma list of syscall names, numbers, `%class` (or the old bare class names
`file`, `process`, `network`, ...), `/regex`, `all` and `none`; a leading `!` negates the
whole set; a `?` before an item makes an unknown name silently match nothing.
Syscall names are the tbl names of x86-64 and i386 (sysemu.arch.x86._syscalls), and
socketcall(2)'s calls, which strace shows as calls of their own (`send`, `recv` exist
only there); numbers are x86-64's. The class memberships follow strace's x86_64 and
i386 syscallent.h flags (TD, TF, TN, TP, ...); socketcall itself is in none.
"""
from __future__ import annotations

import re

from sysemu.abi.socket import SOCKETCALL_NAMES
from sysemu.arch.x86 import _syscalls

# socketcall(2)'s calls (strace: linux/subcall.h), traced under their own names
SOCKET_SUBCALLS = frozenset(SOCKETCALL_NAMES[1:])
NAMES: frozenset[str] = (frozenset(name for nr, abi, name, entry in _syscalls.SYSCALL_64
                                   if abi in ("common", "64"))
                         | frozenset(name for nr, abi, name, entry in _syscalls.SYSCALL_32)
                         | SOCKET_SUBCALLS)
BY_NUMBER: dict[int, str] = {nr: name for nr, abi, name, entry in _syscalls.SYSCALL_64
                             if abi in ("common", "64")}

_NETWORK = """socket socketpair bind listen accept accept4 connect getsockname getpeername
shutdown setsockopt getsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg sendfile
getpmsg putpmsg send recv recvmmsg_time64 sendfile64"""

_DESC = """read write open close fstat poll lseek mmap ioctl pread64 pwrite64 readv writev pipe
select dup dup2 sendfile fcntl flock fsync fdatasync ftruncate getdents fchdir creat fchmod
fchown fstatfs readahead fsetxattr fgetxattr flistxattr fremovexattr epoll_create
getdents64 fadvise64 epoll_wait epoll_ctl mq_open mq_timedsend mq_timedreceive mq_notify
mq_getsetattr inotify_init inotify_add_watch inotify_rm_watch openat mkdirat mknodat
fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat
faccessat pselect6 ppoll splice tee sync_file_range vmsplice utimensat epoll_pwait signalfd
timerfd_create eventfd fallocate timerfd_settime timerfd_gettime signalfd4 eventfd2
epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev perf_event_open fanotify_init
fanotify_mark name_to_handle_at open_by_handle_at syncfs setns finit_module renameat2
memfd_create kexec_file_load bpf execveat userfaultfd copy_file_range preadv2 pwritev2
statx pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree
move_mount fsopen fsconfig fsmount fspick pidfd_open close_range openat2 pidfd_getfd
faccessat2 process_madvise epoll_pwait2 mount_setattr quotactl_fd landlock_create_ruleset
landlock_add_rule landlock_restrict_self memfd_secret process_mrelease cachestat fchmodat2
setxattrat getxattrat listxattrat removexattrat open_tree_attr file_getattr file_setattr
_newselect fcntl64 mmap2 fstat64 ftruncate64 sendfile64 pselect6_time64 ppoll_time64
epoll_pwait fadvise64_64 recvmmsg_time64 readdir"""

_FILE = """open stat lstat access execve truncate getcwd chdir rename mkdir rmdir creat link unlink
symlink readlink chmod chown lchown utime mknod uselib statfs pivot_root chroot acct mount
umount2 swapon swapoff quotactl setxattr lsetxattr getxattr lgetxattr listxattr llistxattr
removexattr lremovexattr utimes inotify_add_watch openat mkdirat mknodat fchownat futimesat
newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat utimensat
fanotify_mark name_to_handle_at renameat2 execveat statx open_tree move_mount fsconfig
fspick openat2 faccessat2 mount_setattr fchmodat2 setxattrat getxattrat listxattrat
removexattrat open_tree_attr file_getattr file_setattr"""

_PROCESS = """clone fork vfork execve exit wait4 kill rt_sigqueueinfo tkill exit_group tgkill
waitid rt_tgsigqueueinfo execveat clone3"""

_SIGNAL = """rt_sigaction rt_sigprocmask rt_sigreturn pause kill rt_sigpending rt_sigtimedwait
rt_sigqueueinfo rt_sigsuspend sigaltstack tkill tgkill signalfd signalfd4 rt_tgsigqueueinfo
pidfd_send_signal io_uring_enter"""

_IPC = """shmget shmat shmctl semget semop semctl shmdt msgget msgsnd msgrcv msgctl
semtimedop"""

_MEMORY = """mmap mprotect munmap brk mremap msync mincore madvise shmat shmdt mlock munlock
mlockall munlockall io_setup io_destroy remap_file_pages mbind set_mempolicy get_mempolicy
migrate_pages move_pages mlock2 pkey_mprotect io_uring_register set_mempolicy_home_node
map_shadow_stack mseal mmap2"""

_CREDS = """getuid getgid setuid setgid geteuid getegid setreuid setregid getgroups setgroups
setresuid getresuid setresgid getresgid setfsuid setfsgid capget capset prctl"""

_CLOCK = """gettimeofday adjtimex settimeofday time clock_settime clock_gettime clock_getres
clock_adjtime"""

_PURE = "getpid getppid getpgrp gettid getuid getgid geteuid getegid"

CLASSES: dict[str, frozenset[str]] = {
    "desc": frozenset(_DESC.split()),
    "file": frozenset(_FILE.split()),
    "network": frozenset(_NETWORK.split()),
    "process": frozenset(_PROCESS.split()),
    "signal": frozenset(_SIGNAL.split()),
    "ipc": frozenset(_IPC.split()),
    "memory": frozenset(_MEMORY.split()),
    "creds": frozenset(_CREDS.split()),
    "clock": frozenset(_CLOCK.split()),
    "pure": frozenset(_PURE.split()),
    "stat": frozenset({"stat"}), "lstat": frozenset({"lstat"}),
    "fstat": frozenset({"fstat", "newfstatat", "statx"}),
    "%stat": frozenset({"stat", "lstat", "fstat", "newfstatat", "statx"}),
    "statfs": frozenset({"statfs"}), "fstatfs": frozenset({"fstatfs"}),
    "%statfs": frozenset({"ustat", "statfs", "fstatfs"}),
}
CLASSES["net"] = CLASSES["network"]
CLASSES = {k: v & NAMES for k, v in CLASSES.items()}
# The bare names strace still accepts (deprecated spellings of %class).
_BARE_CLASSES = {"file", "process", "network", "signal", "ipc", "desc", "memory"}


def parse_set(expr: str, universe: frozenset[str] = NAMES) -> frozenset[str]:
    """Resolve a strace SET to the tbl names it selects.

    Mirrors strace: src/filter_qualify.c qualify_syscall_tokens(). ValueError for an
    unknown name, class or a bad regex; `?name` tolerates an unknown name."""
    text = expr.strip()
    negate = False
    while text.startswith("!"):
        negate = not negate
        text = text[1:].lstrip()
    if not text:
        raise ValueError(f"invalid system call set {expr!r}: empty")
    selected: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        optional = False
        while item.startswith("?"):
            optional, item = True, item[1:]
        if not item:
            raise ValueError(f"invalid system call set {expr!r}: empty item")
        if item == "all":
            selected |= universe
        elif item == "none":
            pass
        elif item.startswith("%"):
            klass = item[1:]
            if klass not in CLASSES:
                if optional:
                    continue
                raise ValueError(f"invalid system call class {item!r} in {expr!r}; known: "
                                 + ", ".join("%" + k for k in sorted(CLASSES)))
            selected |= CLASSES[klass] & universe
        elif item.startswith("/"):
            try:
                rx = re.compile(item[1:])
            except re.error as exc:
                raise ValueError(f"invalid regular expression {item[1:]!r}: {exc}") from None
            matched = {n for n in universe if rx.search(n)}
            if not matched and not optional:
                raise ValueError(f"regular expression {item[1:]!r} matches no system call")
            selected |= matched
        elif item.isdigit():
            name = BY_NUMBER.get(int(item))
            if name is None:
                if optional:
                    continue
                raise ValueError(f"invalid system call number {item} in {expr!r}")
            selected.add(name)
        elif item in universe:
            selected.add(item)
        elif item in _BARE_CLASSES:
            selected |= CLASSES[item] & universe
        elif optional:
            continue
        else:
            raise ValueError(f"invalid system call {item!r} in {expr!r}")
    return frozenset(universe - selected if negate else selected)
