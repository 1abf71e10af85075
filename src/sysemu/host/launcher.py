"""`sysemu run`: the process layout around the program.

    W  the CLI process: watchdog and child subreaper; makes --publish's host listeners
    └─ S  the supervisor: subreaper, dies with W (PR_SET_PDEATHSIG)
       ├─ the egress helper (host/portfwd.py, --allow-egress), no capabilities, forked
       │  while S is still in the host's network namespace
       ├─ the socket factory (host/hostsock.py), no capabilities
       └─ C  the program, under the seccomp filter (and everything it starts); with
             containment (the default) C is sysemu's init, pid 1 of the sandbox's
             namespaces, and the program its child (host/namespaces.py)

S serves notifications until C exits, then SIGKILLs what is left of the sandbox (its
descendants: S is a subreaper, so orphans stay below it), reports C's status to W over a
pipe and exits with it. If S dies without reporting, W kills the sandbox (the orphans are
now W's) and exits 70. SIGINT/SIGTERM/SIGHUP/SIGQUIT go W -> S -> C; W and S survive them.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable

from sysemu.arch.x86.entry import Syscalls
from sysemu.host import collector, rights
from sysemu.host.hostsock import SocketFactory
from sysemu.host.libc import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_PDEATHSIG, prctl
from sysemu.host.namespaces import (Containment, ContainmentError, forward_signals,
                                    host_inet_fds, raise_nofile)
from sysemu.host.netglue import NetGlue
from sysemu.host.portfwd import PortForwarding, SpecError
from sysemu.host.procs import kill_descendants, reap_all
from sysemu.host.supervisor import Supervisor, decode_status
from sysemu.kernel.task import Kernel

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
EX_SOFTWARE = 70
EX_CONTAIN = 125        # the sandbox could not be made (as `docker run` says it)


def run(argv: list[str], syscalls: Syscalls, kernel: Kernel | None = None, *,
        setup: Callable[[Supervisor], None] | None = None, contain: bool = True,
        allow_host_fd: bool = False, forwarding: PortForwarding | None = None) -> int:
    """Run argv in a sandbox; the exit status as a shell reports it. `setup(supervisor)`
    runs in S before the program starts (the network glue attaches there). `contain`:
    the namespaces of host/namespaces.py (False: only the seccomp filter).
    `allow_host_fd`: start even if stdin/stdout/stderr is a host AF_INET/AF_INET6 socket
    (refused by default: the program could use it), and let the program's AF_UNIX sockets
    receive descriptors from outside (refused by default: host/rights.py).
    `forwarding`: --publish and --allow-egress (host/portfwd.py): their host sockets are
    made here, before any namespace."""
    inet = host_inet_fds()
    if inet and not allow_host_fd:
        print(f"sysemu: descriptor {', '.join(map(str, inet))} is a host TCP/IP socket, which "
              f"the program could use to reach the host's network; --allow-host-fd "
              f"passes it anyway", file=sys.stderr, flush=True)
        return EX_CONTAIN
    refuse_rights = not allow_host_fd and rights.supported()
    if refuse_rights:
        rights.guard_inherited()
    if forwarding:
        try:
            forwarding.listen()
        except SpecError as exc:
            print(f"sysemu: {exc}", file=sys.stderr, flush=True)
            return EX_CONTAIN
    watchdog = os.getpid()
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_DUMPABLE, 0)       # the sandbox may not ptrace or read W (nor S, its fork)
    report_r, report_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        code = EX_SOFTWARE
        try:
            profile = os.environ.get("SYSEMU_PROFILE")   # developers: cProfile the supervisor
            if profile:
                import cProfile
                prof = cProfile.Profile()
                try:
                    code = prof.runcall(_supervisor_main, argv, syscalls, kernel, setup,
                                        watchdog, report_w, contain, forwarding,
                                        refuse_rights)
                finally:
                    prof.dump_stats(profile)
            else:
                code = _supervisor_main(argv, syscalls, kernel, setup, watchdog, report_w,
                                        contain, forwarding, refuse_rights)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(report_w)
    if forwarding:
        forwarding.close()              # S holds the listeners now
    return _watchdog(pid, report_r)


def _watchdog(supervisor: int, report_r: int) -> int:
    forward_signals(lambda: supervisor, FORWARDED)
    _, status = os.waitpid(supervisor, 0)
    report = b""
    while chunk := os.read(report_r, 16):
        report += chunk
    os.close(report_r)
    leftovers = kill_descendants(os.getpid())
    reap_all()
    if report.strip().isdigit():
        return int(report)
    how = (f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
           if os.WIFSIGNALED(status) else f"exited with {os.waitstatus_to_exitcode(status)}")
    print(f"sysemu: the supervisor {how} without a result; killed {leftovers} sandbox "
          f"process(es)", file=sys.stderr, flush=True)
    return EX_SOFTWARE


def _supervisor_main(argv, syscalls, kernel, setup, watchdog: int, report_w: int,
                     contain: bool = True, forwarding: PortForwarding | None = None,
                     refuse_rights: bool = False) -> int:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != watchdog:      # W died before we could ask to die with it
        return EX_SOFTWARE
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    os.set_inheritable(report_w, False)
    containment = Containment(namespaces=contain, nofile=raise_nofile())
    if forwarding:
        forwarding.before_netns()       # the egress helper stays in the host's namespace
    try:
        containment.enter_supervisor()
    except ContainmentError as exc:
        print(f"sysemu: {exc.strerror}", file=sys.stderr, flush=True)
        os.write(report_w, str(EX_CONTAIN).encode())
        return EX_CONTAIN
    factory = SocketFactory()           # in the sandbox's network namespace, before its PIDs
    sup = Supervisor(syscalls, kernel)
    collector.install(sup.reactor)      # full collections walk only what is new
    if setup is not None:
        setup(sup)
    if forwarding:
        forwarding.attach(sup)
    if isinstance(sup.kernel.host, NetGlue):
        # HostHooks.passthrough_socket: socketcall's other families, from sysemu's copy
        sup.kernel.host.socket_factory = factory
        # host/rights.py: AF_UNIX sockets refuse descriptors from outside; abstract names
        # are the sandbox's own only in its own network namespace
        sup.kernel.host.refuse_rights = refuse_rights
        sup.kernel.host.abstract_inside = contain
    child: list[int] = []

    forward_signals(lambda: child[0] if child else None, FORWARDED)
    # Orphans of the sandbox are reparented to us: reap them as they die.
    reaped: dict[int, int] = {}

    def reap_orphans() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            reaped[pid] = status

    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    def on_signal() -> None:
        try:
            os.read(rfd, 512)
        except BlockingIOError:
            pass
        reap_orphans()      # may reap C too: exited() then finds its status in `reaped`

    sup.reactor.add_reader(rfd, on_signal)
    try:
        pid = sup.spawn(argv, containment=containment)
    except ContainmentError as exc:
        print(f"sysemu: {exc.strerror}", file=sys.stderr, flush=True)
        os.write(report_w, str(EX_CONTAIN).encode())
        return EX_CONTAIN
    child.append(pid)
    sup.renice()                        # run --supervisor-nice: the program keeps its own
    done: list[int] = []

    pidfd = os.pidfd_open(pid)

    def exited() -> None:
        sup.reactor.remove_reader(pidfd)
        if pid in reaped:
            done.append(decode_status(reaped.pop(pid)))
            return
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = reaped.pop(pid, 0)
        done.append(decode_status(status))

    sup.reactor.add_reader(pidfd, exited)
    sup.reactor.run_until(lambda: bool(done))
    if sup.parked and sup.listener is not None:
        sup._check_parked()     # calls a signal cut short just before the end: say so
    kill_descendants(os.getpid())
    reap_all()
    for cleanup in sup.on_exit:             # the control socket's file ...
        try:
            cleanup()
        except Exception as exc:
            sup.log(f"cleanup: {exc!r}")
    code = done[0]
    os.write(report_w, str(code).encode())
    os.close(report_w)
    sys.stdout.flush()
    return code
