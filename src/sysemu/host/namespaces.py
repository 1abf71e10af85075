"""The second wall: namespaces around the program, sysemu's init, the supervisor's limits.

The seccomp filter decides what sysemu serves; whatever it misses (a raced argument
block, a descriptor handed in) must meet an empty world. With containment on:

    W  watchdog (the CLI)          host namespaces, not dumpable
    └─ S  supervisor               its own network namespace (empty: lo only, down),
       │                           not dumpable; outside the sandbox's PID namespace
       └─ I  sysemu's init          pid 1 of the sandbox's PID namespace, with its own
          │                        mount (a fresh /proc; host settings read-only), IPC
          │                        and UTS namespaces; in S's user namespace, not dumpable
          └─ P  the program          a user namespace of its own (identity map: files keep
                                   their owners, capabilities count only inside it),
                                   under the seccomp filter

P cannot name S or W (another PID namespace), nor ptrace, read or take descriptors from I
(a user namespace above its own, not dumpable). P's network namespace is S's: sysemu's
sockets are AF_UNIX socketpairs, which work in any namespace, and P has no capability
over that namespace (no AF_PACKET, no raw sockets; /proc/sys/net is the sandbox's).
`kill -9` of W: S dies (PR_SET_PDEATHSIG), I dies with it (its own PDEATHSIG), and the
kernel kills every process of a PID namespace whose init dies.

As root, S's network namespace belongs to the initial user namespace. Otherwise S first
makes a user namespace of its own (mapping only its uid and gid), which needs
unprivileged user namespaces; where the host forbids them `sysemu run` refuses unless
given --no-contain.

Linux: kernel/nsproxy.c (unshare), kernel/user_namespace.c (uid_map rules),
kernel/pid_namespace.c (zap_pid_ns_processes), man 7 namespaces, pid_namespaces.
"""
from __future__ import annotations

import os
import resource
import select
import signal
import socket
import sys

from sysemu.host.libc import (PR_SET_DUMPABLE, PR_SET_PDEATHSIG, mount, mount_setattr, prctl,
                              unshare)
from sysemu.host.procs import descendants

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 0x20, 0x1000, 0x4000
MS_PRIVATE = 1 << 18

# Host settings a uid-0 program could change by writing a file (permission by file mode,
# no capability check): read-only in the sandbox. /proc/sys/net stays writable: it is the
# sandbox's own network namespace (and sysemu serves the values it models).
READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
WRITABLE_AGAIN = ("/proc/sys/net",)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)

def forward_signals(target, signals=FORWARDED) -> None:
    """Pass each of `signals` on to the pid `target()` returns (None: nobody yet), as the
    watchdog, the supervisor and init each do for the process below them."""
    def forward(sig, _frame):
        pid = target()
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    for sig in signals:
        signal.signal(sig, forward)


def host_inet_fds(fds=(0, 1, 2)) -> list[int]:
    """Which of `fds` (the descriptors the program inherits: its stdio) are host AF_INET
    or AF_INET6 sockets: a way out of the sandbox that no namespace closes (a socket
    keeps the network namespace it was made in)."""
    found = []
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue                    # closed, or not a socket
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                found.append(fd)
        finally:
            sock.close()
    return found


def host_pid(root: int, ns_pid: int) -> int:
    """The host's pid of the process that calls itself `ns_pid` inside the sandbox below
    `root` (a pid of the sandbox's ancestors, e.g. `sysemu run`'s): the last NSpid of
    /proc/PID/status. `ns_pid` itself when none matches (no PID namespace)."""
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) > 1 and int(ids[-1]) == ns_pid:
                            return pid
                        break
        except OSError:
            continue
    return ns_pid


class ContainmentError(OSError):
    """The namespaces could not be made: say why and how to run anyway."""


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def raise_nofile() -> tuple[int, int]:
    """The supervisor holds a descriptor per sandbox socket, for every process of the
    sandbox: its RLIMIT_NOFILE goes up to fs.nr_open where it may (root: CAP_SYS_RESOURCE),
    else its soft limit to the hard one. Returns the limit as it was, which the program
    gets back (each process keeps its own, as on Linux)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            ceiling = int(f.read())
    except (OSError, ValueError):
        ceiling = hard
    for target in (max(hard, ceiling), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            break
        except (ValueError, OSError):
            continue
    return soft, hard


class Containment:
    """What spawn() needs to start the program inside the wall (or, with namespaces=False,
    only the program's own descriptor limit back)."""

    def __init__(self, namespaces: bool = True, nofile: tuple[int, int] | None = None):
        self.namespaces = namespaces
        self.nofile = nofile
        self.uid, self.gid = os.geteuid(), os.getegid()

    # -- in S ------------------------------------------------------------------------
    def enter_supervisor(self) -> None:
        """In S before anything else: not dumpable; its own network namespace (and, not
        as root, the user namespace that owns it). new_pid_namespace() comes later, once
        S has forked its other helpers."""
        try:
            if not self.namespaces:
                pass
            elif self.uid == 0:
                unshare(CLONE_NEWNET)
            else:
                # /proc/self/*_map belong to root while we are not dumpable (W's setting)
                prctl(PR_SET_DUMPABLE, 1)
                unshare(CLONE_NEWUSER | CLONE_NEWNET)
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{self.uid} {self.uid} 1")
                _write("/proc/self/gid_map", f"{self.gid} {self.gid} 1")
        except OSError as exc:
            raise ContainmentError(exc.errno, self._advice(exc)) from None
        finally:
            prctl(PR_SET_DUMPABLE, 0)

    def new_pid_namespace(self) -> None:
        """In S, right before it forks sysemu's init: S's next child is pid 1 of a new PID
        namespace (S itself stays outside, and forks nothing else after it)."""
        try:
            unshare(CLONE_NEWPID)
        except OSError as exc:
            raise ContainmentError(exc.errno, self._advice(exc)) from None

    def _advice(self, exc: OSError) -> str:
        how = ("as root" if self.uid == 0 else
               "(unprivileged user namespaces are off here: run as root, or allow them, "
               "e.g. sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces)")
        return (f"cannot make the sandbox's namespaces {how}: {exc.strerror}; "
                "--no-contain runs the program without this wall (see SECURITY.md)")

    # -- in I ------------------------------------------------------------------------
    def init_main(self, sock: socket.socket, start_program) -> None:
        """sysemu's init, pid 1 of the sandbox (forked by S after enter_supervisor()):
        dies with S, makes the mount, IPC and UTS namespaces, forks the program into its own
        user namespace (`start_program()` runs in it and never returns), then forwards
        signals, reaps, and exits with the program's status. Never returns."""
        code = 127
        try:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if select.select([sock], [], [], 0)[0] and not sock.recv(1, socket.MSG_PEEK):
                os._exit(code)                  # S died before we could die with it
            signal.set_wakeup_fd(-1)
            keep = sock.fileno()                # S's descriptors are not ours to hold
            os.closerange(3, keep)
            os.closerange(keep + 1, 1 << 20)
            for sig in (signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            try:
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            except OSError as exc:
                # sysemu: the host's /proc stays (numbers in it are the host's, but the
                # program's pids name only its namespace); said once, on stderr
                print(f"sysemu: a fresh /proc for the sandbox: {exc.strerror}; the "
                      f"host's is kept", file=sys.stderr, flush=True)
            self._protect_host_settings()
            to_child_r, to_child_w = os.pipe()
            to_init_r, to_init_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(to_child_w)
                    os.close(to_init_r)
                    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                    unshare(CLONE_NEWUSER)
                    # I writes our maps: /proc/PID/*_map of a process that is not
                    # dumpable belong to root, whom a non-root I cannot be (exec resets it)
                    prctl(PR_SET_DUMPABLE, 1)
                    os.write(to_init_w, b"u")
                    os.close(to_init_w)
                    if os.read(to_child_r, 1) != b"m":
                        os._exit(127)
                    os.close(to_child_r)
                    if self.nofile is not None:
                        resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
                    start_program()
                finally:
                    os._exit(127)
            os.close(to_child_r)
            os.close(to_init_w)
            if os.read(to_init_r, 1) == b"u":
                self._map_identity(pid)
                os.write(to_child_w, b"m")
            os.close(to_init_r)
            os.close(to_child_w)
            sock.close()
            code = self._reap_until(pid)
        except BaseException as exc:
            print(f"sysemu: init: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)

    @staticmethod
    def _protect_host_settings() -> None:
        """READ_ONLY bound read-only (then WRITABLE_AGAIN read-write), /sys read-only with
        all its submounts. The mount namespace belongs to I's user namespace, so the
        program cannot undo it (and in a mount namespace of its own they are locked)."""
        for path in READ_ONLY:
            try:
                mount(path, path, None, MS_BIND | MS_REC)
                mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
            except OSError:
                continue                # absent on this kernel
        for path in WRITABLE_AGAIN:
            try:
                mount(path, path, None, MS_BIND)
                mount(None, path, None, MS_REMOUNT | MS_BIND)
            except OSError:
                continue
        try:
            mount_setattr(AT_FDCWD, "/sys", AT_RECURSIVE, MOUNT_ATTR_RDONLY)
        except OSError:
            pass                        # best effort: Linux 5.12+

    def _map_identity(self, pid: int) -> None:
        """The program's user namespace maps ids to themselves: root stays uid 0 for the
        files it touches, with capabilities that count only in a namespace owning
        nothing (S's network namespace and I's mount, PID and IPC ones are above it)."""
        if self.uid == 0:
            ids = "0 0 4294967295"
            _write(f"/proc/{pid}/uid_map", ids)
            _write(f"/proc/{pid}/gid_map", ids)
        else:
            _write(f"/proc/{pid}/uid_map", f"{self.uid} {self.uid} 1")
            _write(f"/proc/{pid}/gid_map", f"{self.gid} {self.gid} 1")

    @staticmethod
    def _reap_until(program: int) -> int:
        """Forward signals to the program, reap every orphan of the namespace, and return
        the program's status as a shell reports it (pid 1 cannot die of a signal it
        sends itself, so a signal death becomes 128+N, which S reports unchanged)."""
        forward_signals(lambda: program)
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 127
            if pid == program:
                if os.WIFSIGNALED(status):
                    return 128 + os.WTERMSIG(status)
                return os.waitstatus_to_exitcode(status)
