"""The notification loop: every trapped call of the sandbox goes through Supervisor.

Per notification: the Task of the calling thread (cached per tid), dispatch, then the
answer (DESIGN.md "How one system call travels"):

    int                 -> the value          SyscallError -> -errno
    HostPassthrough     -> CONTINUE           InstallFd    -> ADDFD + SEND, then commit(fd)
                                              InstallFds   -> ADDFD each, store(fds), 0
    WouldBlock          -> parked on its wait queue, the attempt re-run when woken

attempt() turns the dispatch into an outcome (VALUE, ERROR, INSTALL, INSTALL_MANY,
CONTINUE, FAILED, INJECTED) and answer() delivers it: there is one path for every call. Deferred side
effects (task.on_commit) run only once the kernel accepted the answer; if the call was
already gone (a signal interrupted it: ENOENT), none run. Requests of the host hooks that
need the notification (ReplaceFd) are carried out right after the dispatch.

Tracing and injection (host/tracing.py configures them) are hooks on that path: with a
`tracer` or an `injector`, a traced or injected notification gets a Flight on entry
(_enter): the trace line is opened before dispatch and closed in answer(); an injection
may delay the call on entry or exit (reactor timers, the notification stays unanswered),
replace its result without running it, and signal the caller. A flight whose thread
makes another call was interrupted by a signal (a thread is in one call at a time): it
ends as `= ? ERESTARTSYS`, as strace shows it.

A File that an InstallFd carries has a placeholder in `placeholders` (host/placeholder.py):
ADDFD copies its program end into the program, and descriptors are found by its inode.
"""
from __future__ import annotations

import array
import errno
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import traceback
from typing import Callable, TextIO

from sysemu.abi.errno import ERESTARTSYS, Errno
from sysemu.arch.x86.entry import AUDIT_ARCH_I386, X32_SYSCALL_BIT, Slot, Syscalls
from sysemu.host.clock import MonotonicClock, host_random
from sysemu.host.files import HostFileTable
from sysemu.host.libc import PR_SET_PDEATHSIG, pidfd_getfd, prctl, tgkill
from sysemu.host.memory import ProcessMemory
from sysemu.host.namespaces import Containment
from sysemu.host.notify import (SECCOMP_USER_NOTIF_FLAG_CONTINUE, Listener, Notification,
                                ReplaceFd)
from sysemu.host.placeholder import Placeholders
from sysemu.host.procs import descendants
from sysemu.host.reactor import Reactor, TimerHandle
from sysemu.host.seccomp import Filter, build_filter
from sysemu.host.signals import (complete_signal_target, read_signals, read_threads,
                                 signals_in)
from sysemu.host.tracing import FD_PENDING, describe_file, render_exit, replace_result
from sysemu.kernel.errors import HostPassthrough, SyscallError, WouldBlock
from sysemu.kernel.syscalls import InstallFd, InstallFds
from sysemu.kernel.task import Kernel, Task
from sysemu.kernel.wait import WaitQueue
from sysemu.trace.decode import errno_text
from sysemu.trace.inject import Injection, Injector
from sysemu.trace.strace import Tracer, socket_subcall

PARKED_CHECK_INTERVAL = 0.05  # seconds between sweeps of parked calls (signals, ID_VALID)
PARKED_CHECK_COST = 0.0005    # ... at least this much per parked call (bounds their cost)
TASK_SWEEP_INTERVAL = 1.0     # seconds between sweeps forgetting exited threads
# Developers' switch for A/B measurements: SYSEMU_SYNC_WAKEUP=0 leaves the flag unset.
SYNC_WAKEUP = os.environ.get("SYSEMU_SYNC_WAKEUP", "1") != "0"

# What attempt() makes of a call, for answer().
VALUE, ERROR, INSTALL, CONTINUE, FAILED, INJECTED, INSTALL_MANY = range(7)


def unserved_logger(stream: TextIO | None = None) -> Callable[[Slot], None]:
    """Syscalls(on_unserved=...) for --policy strict: one line per syscall name."""

    def log(slot: Slot) -> None:
        nr = f"{X32_SYSCALL_BIT | slot.nr:#x}" if slot.abi == "x32" else str(slot.nr)
        print(f"sysemu: strict policy: {slot.name} ({slot.abi} nr {nr}) answered ENOSYS",
              file=stream or sys.stderr, flush=True)

    return log


def decode_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def read_task_status(tid: int) -> tuple[int, frozenset[int], str]:
    """(tgid, effective capabilities, comm) from /proc/TID/status."""
    tgid, caps, comm = tid, frozenset(), ""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "Name":
                    comm = value.strip()
                elif key == "Tgid":
                    tgid = int(value)
                elif key == "CapEff":
                    bits = int(value, 16)
                    caps = frozenset(i for i in range(64) if bits >> i & 1)
                    break
    except OSError:
        pass
    return tgid, caps, comm


def read_task_groups(tid: int) -> tuple[int, tuple[int, ...]]:
    """(effective gid, supplementary gids) from /proc/TID/status (the sandbox's user
    namespace maps ids to themselves, so these are the program's own)."""
    egid, groups = 0, ()
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "Gid":
                    egid = int(value.split()[1])
                elif key == "Groups":
                    groups = tuple(int(g) for g in value.split())
                    break
    except (OSError, ValueError, IndexError):
        pass
    return egid, groups


class Parked:
    """An unanswered notification waiting on a WaitQueue."""

    __slots__ = ("notif", "task", "waitqueue", "waiter", "timer", "on_timeout", "deadline",
                 "intr_errno", "moved", "cleanup")

    def __init__(self, notif: Notification, task: Task, waitqueue: WaitQueue,
                 on_timeout: int | None, intr_errno: int = ERESTARTSYS, moved: int = 0,
                 cleanup: Callable[[], None] | None = None):
        self.notif, self.task, self.waitqueue = notif, task, waitqueue
        self.on_timeout = on_timeout
        self.intr_errno = intr_errno
        self.moved = moved              # bytes moved before this wait (WouldBlock.moved)
        self.cleanup = cleanup
        self.deadline: float | None = None
        self.waiter: Callable[[], None] | None = None
        self.timer: TimerHandle | None = None


class Flight:
    """A traced or injected call, from its notification to its answer."""

    __slots__ = ("notif", "task", "name", "traced", "injection", "timer", "signalled")

    def __init__(self, notif: Notification, task: Task, name: str, traced: bool,
                 injection: Injection | None):
        self.notif, self.task, self.name = notif, task, name
        self.traced, self.injection = traced, injection
        self.timer: TimerHandle | None = None       # a delay_enter / delay_exit in progress
        self.signalled = False


class Supervisor:
    """Serves one sandbox's notify fd in `reactor`.

    Public for the network glue: `reactor`, `placeholders`, `requests` (ReplaceFd
    requests for the call being served), `after_event` (callables run after each batch of
    notifications / reactor callbacks),
    `kernel`, `syscalls`, `filter`, `tracer` (strace lines) and `injector` (--inject),
    both None unless host/tracing.py configures them before spawn()."""

    def __init__(self, syscalls: Syscalls, kernel: Kernel | None = None, *,
                 reactor: Reactor | None = None, log: TextIO | None = None):
        self.syscalls = syscalls
        self.kernel = kernel if kernel is not None else Kernel(clock=MonotonicClock(),
                                                                 rng=host_random())
        self.reactor = reactor if reactor is not None else Reactor()
        self.after_event: list[Callable[[], None]] = self.reactor.after_batch
        self.placeholders = Placeholders(self.reactor, self.log)
        self.requests: list[ReplaceFd] = []
        self.filter: Filter = build_filter(syscalls)
        self.listener: Listener | None = None
        self.tasks: dict[int, Task] = {}
        self.parked: dict[int, Parked] = {}
        self._parked_of_tid: dict[int, Parked] = {}
        # tid -> the call a signal interrupted in a wait that ends with EINTR (see
        # _interrupted_wait): its restart is answered EINTR.
        self._restarts: dict[int, tuple] = {}
        # pid -> the thread sysemu last took as complete_signal()'s round-robin choice
        # (Linux: signal->curr_target; _marked_for)
        self._curr_target: dict[int, int] = {}
        self._log = log
        self._logged_kinds: set[str] = set()
        self._check_timer: TimerHandle | None = None
        # Set by the network glue: takes in closes not yet seen; True if any.
        self.settle: Callable[[], bool] | None = None
        # The model data path: take in the closes already made before each call, so a
        # program that closes and then calls sees the close's effects (FIN, TIME_WAIT)
        # as on Linux, where close() sends them before it returns.
        self.settle_on_entry: Callable[[], bool] | None = None
        # Run when the sandbox is over (the launcher calls them).
        self.on_exit: list[Callable[[], None]] = []
        self._sweep_timer: TimerHandle | None = None
        self.tracer: Tracer | None = None
        self.injector: Injector | None = None
        self._flights: dict[int, Flight] = {}        # notification id -> Flight
        self._flight_of_tid: dict[int, Flight] = {}
        self._pre_exec: set[int] = set()   # spawned, not yet at execve: sysemu's own calls
        self.program_pid: int | None = None  # spawn()'s program, as we number it
        # `sysemu run -v` (or SYSEMU_VERBOSE=1): say how the listener is served.
        self.verbose = bool(os.environ.get("SYSEMU_VERBOSE"))
        # `sysemu run --supervisor-nice N`: this process's nice value once the program
        # has started (renice()); None: left as it is
        self.nice: int | None = None

    def renice(self) -> None:
        """Set this process's nice value to `nice` (after the program has started: it
        keeps its own). Linux does a call's kernel work in the calling thread, with that
        thread's share of the CPUs; sysemu does every sandbox thread's here, in one
        task, which a loaded machine gives one task's share (README: Performance,
        connection churn). A negative value needs CAP_SYS_NICE (or RLIMIT_NICE)."""
        if self.nice is None:
            return
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.nice)
        except OSError as exc:
            self.log(f"--supervisor-nice {self.nice}: {exc.strerror}; the supervisor's nice "
                     f"value stays {os.getpriority(os.PRIO_PROCESS, 0)}")

    # -- logging -------------------------------------------------------------------
    def log(self, text: str) -> None:
        print(f"sysemu: {text}", file=self._log or sys.stderr, flush=True)

    def _internal_error(self, what: str, exc: BaseException) -> None:
        kind = f"{what}:{type(exc).__name__}"
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            self.log(f"internal error in {what} (answered ENOSYS; logged once per kind):\n"
                     + "".join(traceback.format_exception(exc)).rstrip())

    # -- the listener ----------------------------------------------------------------
    def attach(self, listener_fd: int) -> None:
        """Serve the notify fd (the sandbox's filter) from now on."""
        self.listener = Listener(listener_fd)
        why = self.listener.set_sync_wakeup() if SYNC_WAKEUP else "SYSEMU_SYNC_WAKEUP=0"
        if self.listener.sync_wakeup and "SYSEMU_SPIN_US" not in os.environ:
            # Both ends run on one CPU now: a spin after each answer would only take the
            # CPU from the program that is about to make its next call.
            self.reactor.spin = 0.0
        if self.verbose:
            self.log("listener: synchronous wake-up (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)"
                     if why is None else
                     f"listener: asynchronous wake-up ({why}); busy-poll "
                     f"{self.reactor.spin * 1e6:.0f} us")
        self.reactor.add_reader(listener_fd, self._on_listener)
        self._sweep_timer = self.reactor.call_later(TASK_SWEEP_INTERVAL, self._sweep_tasks)

    def detach(self) -> None:
        if self.listener is not None:
            self.reactor.remove_reader(self.listener.fd)
            os.close(self.listener.fd)
            self.listener = None
        for timer in (self._check_timer, self._sweep_timer):
            if timer is not None:
                timer.cancel()
        self._check_timer = self._sweep_timer = None
        for parked in list(self.parked.values()):
            self._unpark(parked)
        self._restarts.clear()
        for flight in list(self._flights.values()):
            self._land(flight, None)

    def _on_listener(self) -> None:
        """One notification per readiness event: RECV blocks when nothing is pending, and
        the listener shows EPOLLHUP alone once no task uses the filter any more."""
        listener = self.listener
        if not self.reactor.current_events & select.EPOLLIN:
            if self.reactor.current_events & (select.EPOLLHUP | select.EPOLLERR):
                self.reactor.remove_reader(listener.fd)
            return
        notif = listener.recv()
        if notif is not None:
            self.handle(notif)

    # -- tasks ---------------------------------------------------------------------
    def task_for(self, tid: int) -> Task:
        task = self.tasks.get(tid)
        if task is None:
            tgid, caps, comm = read_task_status(tid)
            # Capabilities are read again at each check (a program may drop them later);
            # only the calls that check pay for it.
            task = Task(self.kernel, pid=tgid, tid=tid, mem=ProcessMemory(tid),
                        files=HostFileTable(tid, self.placeholders.by_inode, tgid), caps=caps,
                        comm=comm, read_caps=lambda tid=tid: read_task_status(tid)[1],
                        read_groups=lambda tid=tid: read_task_groups(tid))
            self.tasks[tid] = task
        return task

    def _sweep_tasks(self) -> None:
        """Forget threads that no longer exist (bounded memory)."""
        parked_tids = {p.task.tid for p in self.parked.values()}
        for tid in list(self.tasks):
            if tid not in parked_tids and not os.path.exists(f"/proc/{tid}"):
                task = self.tasks.pop(tid)
                if isinstance(task.files, HostFileTable):
                    task.files.close()
                self._restarts.pop(tid, None)
                if self._curr_target.get(task.pid) == tid:
                    del self._curr_target[task.pid]
                if self.injector is not None:
                    self.injector.forget(tid)
        self._sweep_timer = self.reactor.call_later(TASK_SWEEP_INTERVAL, self._sweep_tasks)

    # -- one call ------------------------------------------------------------------
    def handle(self, notif: Notification) -> None:
        task = self.tasks.get(notif.pid) or self.task_for(notif.pid)
        if self.settle_on_entry is not None:
            self.settle_on_entry()
        if self._parked_of_tid:
            stale = self._parked_of_tid.get(notif.pid)
            if stale is not None:       # a thread is in one call at a time: a signal
                self._interrupted_wait(stale)       # interrupted its parked one
        if self.tracer is not None or self.injector is not None:
            if not self._enter(notif, task):
                return                  # delayed on entry (delay_enter)
        if self._restarts and self._restarts.pop(notif.pid, None) == _call_key(notif):
            flight = self._flights.get(notif.id) if self._flights else None
            self.answer(notif, ERROR, int(Errno.EINTR), [], flight)
            return
        self.attempt(notif, task)

    def attempt(self, notif: Notification, task: Task, deadline: float | None = None) -> None:
        """Run one call and answer it (or park it). `deadline` is the first attempt's when
        a woken call runs again: a timeout (SO_RCVTIMEO ...) counts from the call's start,
        not from each wake-up. A traced or injected call (a Flight) takes the same path:
        an injection that replaces the result skips the dispatch, and delay_exit holds
        the answer back."""
        flight = self._flights.get(notif.id) if self._flights else None
        if flight is not None and flight.injection is not None \
                and flight.injection.replaces_result:
            # strace replaces the syscall number with -1: the call does not run at all.
            kind, value, commits = INJECTED, flight.injection.result, []
        else:
            task.commits = []
            task.deadline = deadline
            try:
                try:
                    result = self.syscalls.dispatch(task, notif.arch, notif.nr, notif.args)
                except SyscallError as err:
                    # A port may be held only by a socket whose last close sysemu has not
                    # taken in yet (close() is not trapped): settle, and try once more.
                    if err.errno != Errno.EADDRINUSE or self.settle is None \
                            or not self.settle():
                        raise
                    task.commits = []
                    result = self.syscalls.dispatch(task, notif.arch, notif.nr, notif.args)
            except SyscallError as err:
                kind = ERROR
                value = int(err.errno)
            except HostPassthrough:
                kind = CONTINUE
                value = 0
            except WouldBlock as wb:
                if self.requests:
                    self._carry_out(notif)
                self._park(notif, task, wb, deadline)
                if flight is not None and flight.injection is not None \
                        and flight.injection.signal and not flight.signalled:
                    self._signal(flight)    # as strace's: it interrupts a call that waits
                    self._check_soon()
                return
            except Exception as exc:  # the supervisor never dies of what a program does
                self._internal_error(self._call_name(notif), exc)
                kind = FAILED
                value = int(Errno.ENOSYS)
            else:
                kind = VALUE if result.__class__ is int else (
                    INSTALL if isinstance(result, InstallFd) else
                    INSTALL_MANY if isinstance(result, InstallFds) else VALUE)
                value = result
            if self.requests:
                self._carry_out(notif)
            commits = task.commits
        if flight is not None and flight.injection is not None \
                and flight.injection.delay_exit_ns:
            flight.timer = self.reactor.call_later(
                flight.injection.delay_exit_ns / 1e9,
                lambda: self.answer(notif, kind, value, commits, flight))
            return
        self.answer(notif, kind, value, commits, flight)

    def answer(self, notif: Notification, kind: int, value, commits: list,
               flight: Flight | None = None) -> None:
        """Deliver an outcome of attempt(); run the commits once the kernel accepted it."""
        listener = self.listener
        text = None
        if flight is not None:
            flight.timer = None
            if self._flights.get(notif.id) is not flight:
                return                  # interrupted while delayed
            if listener is None:
                self._land(flight, None)
                return
        if kind == INSTALL_MANY and listener is not None:
            # before the trace line, which shows the numbers the program was given
            try:
                err = self._install_fds(notif, value)
            except Exception as exc:
                self._internal_error(f"answer of {self._call_name(notif)}", exc)
                err = int(Errno.ENOSYS)
            kind, value = (ERROR, err) if err else (VALUE, 0)
        if flight is not None:
            text = self._exit_text(flight, kind, value)
        try:
            # one SEND (Listener.send) for a value, an error or CONTINUE
            if kind == VALUE:
                accepted = listener.send(
                    notif.id, value if value.__class__ is int else int(value), 0, 0)
            elif kind == CONTINUE:
                accepted = listener.send(notif.id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
            elif kind == INSTALL:
                newfd = self._install_fd(notif, value)
                accepted = newfd is not None and newfd >= 0
                if text is not None and newfd is not None:
                    text = replace_result(text, self._fd_result(value.file, newfd))
            elif kind == INJECTED and value >= 0:
                accepted = listener.send_value(
                    notif.id, value if value.__class__ is int else int(value))
            else:                       # ERROR, FAILED, an injected error (-errno)
                accepted = listener.send(notif.id, 0, -abs(value), 0)
        except Exception as exc:
            self._internal_error(f"answer of {self._call_name(notif)}", exc)
            listener.send_error(notif.id, Errno.ENOSYS)
            self._write_trace(text and replace_result(text, f"-1 {errno_text(Errno.ENOSYS)}"))
            return
        if flight is not None:
            if not accepted:            # the call was gone: a signal interrupted it
                text = text and replace_result(text, f"? {errno_text(ERESTARTSYS)}")
            self._write_trace(text)
        if commits and accepted and kind != FAILED:
            for action in commits:
                try:
                    action()
                except Exception as exc:
                    self._internal_error(f"commit of {self._call_name(notif)}", exc)
        if accepted and flight is not None and flight.injection is not None \
                and flight.injection.signal and not flight.signalled:
            # sysemu: sent once the answer is in. A signal sent before would interrupt the
            # waiting notification (the call would restart or fail EINTR instead); after it,
            # it is delivered as the call returns, where strace's is.
            self._signal(flight)

    def _carry_out(self, notif: Notification) -> None:
        """The host hooks' requests for this notification (ReplaceFd), before its answer."""
        requests, self.requests[:] = list(self.requests), []
        for request in requests:
            try:
                ok = self.listener is not None and self.listener.replace_fd(
                    notif.id, request.srcfd, request.newfd, request.cloexec)
            except OSError as exc:
                self.log(f"{request!r}: {exc}")
                ok = False
            try:
                request.done(ok)
            except Exception as exc:
                self._internal_error(f"request of {self._call_name(notif)}", exc)

    def _install_fd(self, notif: Notification, result: InstallFd) -> int | None:
        """ADDFD + SEND of the File's placeholder: the new fd, -errno if it could not be
        installed (the call got that error), None if the call was gone."""
        ph = self.placeholders.of_file(result.file)
        if ph is None:
            raise LookupError("a new file without a placeholder")
        failed = 0
        try:
            newfd = self.listener.send_fd(notif.id, ph.prog_fd, result.cloexec)
        except OSError as exc:      # EMFILE ...: the call is still waiting for an answer
            failed = exc.errno or Errno.EFAULT
            if not self.listener.send_error(notif.id, failed):
                failed = 0
            newfd = None            # the call failed: nothing to commit
        try:
            self.placeholders.installed(ph, newfd is not None)
        except Exception as exc:
            self._internal_error(f"placeholder of {self._call_name(notif)}", exc)
        if newfd is None:
            return -failed if failed else None
        if result.commit is not None:
            try:
                result.commit(newfd)
            except Exception as exc:
                self._internal_error(f"commit of {self._call_name(notif)}", exc)
        return newfd

    def _install_fds(self, notif: Notification, result: InstallFds) -> int:
        """ADDFD of each File's placeholder at the lowest free number, then result.store():
        0, or the errno the call gets. sysemu: Linux reserves every number before it
        installs any; here a later ADDFD that fails (EMFILE) leaves the earlier ones
        installed, as does a store() that fails (EFAULT)."""
        phs = [self.placeholders.of_file(file) for file in result.files]
        if None in phs:
            raise LookupError("a new file without a placeholder")
        newfds: list[int] = []
        err = 0
        try:
            for ph in phs:
                newfd = self.listener.add_fd(notif.id, ph.prog_fd, result.cloexec)
                if newfd is None:
                    err = Errno.EINTR       # the call was gone: its answer is not seen
                    break
                newfds.append(newfd)
            else:
                result.store(newfds)
        except SyscallError as exc:
            err = int(exc.errno)
        except OSError as exc:
            err = exc.errno or Errno.EFAULT
        for ph in phs:
            try:
                self.placeholders.installed(ph, not err)
            except Exception as exc:
                self._internal_error(f"placeholder of {self._call_name(notif)}", exc)
        return err

    def _call_name(self, notif: Notification) -> str:
        slot = self.syscalls.slot(notif.arch, notif.nr)
        return slot.name or f"nr {notif.nr}"

    # -- tracing and injection: hooks on entry and exit -----------------------------------
    def _enter(self, notif: Notification, task: Task) -> bool:
        """Open the call's Flight when it is traced or injected; False if an injection
        delays it (it runs later, from the reactor)."""
        tid = notif.pid
        slot = self.syscalls.slot(notif.arch, notif.nr)
        name, args = slot.name, notif.args
        if self._pre_exec and tid in self._pre_exec:
            if name != "execve":        # sysemu's own calls between filter and exec
                return True
            self._pre_exec.discard(tid)
        stale = self._flight_of_tid.get(tid)
        if stale is not None:           # its thread moved on: a signal interrupted it
            parked = self.parked.get(stale.notif.id)
            if parked is not None:
                self._unpark(parked)
            self._land(stale, -ERESTARTSYS)
        if not name:
            name = f"syscall_{notif.nr:#x}"
        elif name == "socketcall":      # traced and injected as its call, as strace does
            name, args = socket_subcall(args, task.mem) or (name, args)
        abi = slot.table or ("i386" if notif.arch == AUDIT_ARCH_I386 else "64")
        tracer = self.tracer
        traced = tracer is not None and tracer.wants(name)
        injection = self.injector.decide(tid, name) if self.injector is not None else None
        if not traced and injection is None:
            return True
        flight = Flight(notif, task, name, traced, injection)
        self._flights[notif.id] = flight
        self._flight_of_tid[tid] = flight
        if traced:
            tracer.enter(tid, name, args, task.mem, abi)
        if injection is not None and injection.delay_enter_ns:
            flight.timer = self.reactor.call_later(injection.delay_enter_ns / 1e9,
                                                   lambda: self._delayed_enter(flight))
            return False
        return True

    def _delayed_enter(self, flight: Flight) -> None:
        flight.timer = None
        if self._flights.get(flight.notif.id) is not flight:
            return
        if self.listener is None or not self.listener.id_valid(flight.notif.id):
            self._land(flight, -ERESTARTSYS)
            return
        self.attempt(flight.notif, flight.task)

    def _exit_text(self, flight: Flight, kind: int, value) -> str | None:
        """The flight's trace line's end, rendered before the answer (once answered, the
        thread runs on and may reuse the memory its output arguments are decoded from)."""
        if kind == INSTALL:
            expected: int | None = FD_PENDING
        elif kind == CONTINUE:
            expected = None             # the host runs the call: its result is unknown
        elif kind in (VALUE, INJECTED):
            try:
                expected = int(value)
            except Exception:
                expected = None
        else:
            expected = -abs(value)
        return self._render(flight, expected, kind == INJECTED)

    def _fd_result(self, file, newfd: int) -> str:
        """The result column of a call that installed `file` as newfd (or failed -errno).
        Described from the File, not from /proc: the program runs on and may close it."""
        if newfd < 0:
            return f"-1 {errno_text(-newfd)}"
        desc = (describe_file(file, self.placeholders)
                if self.tracer.decorate_fd is not None else None)
        return f"{newfd}<{desc}>" if desc else str(newfd)

    def _render(self, flight: Flight, result: int | None, injected: bool) -> str | None:
        """Forget the flight; its trace line's end as text (None when not traced)."""
        tid = flight.notif.pid
        self._flights.pop(flight.notif.id, None)
        if self._flight_of_tid.get(tid) is flight:
            del self._flight_of_tid[tid]
        if flight.timer is not None:
            flight.timer.cancel()
            flight.timer = None
        if not flight.traced or self.tracer is None:
            return None
        try:
            return render_exit(self.tracer, tid, result, flight.task.mem, injected)
        except Exception as exc:
            self._internal_error(f"trace of {flight.name}", exc)
            return None

    def _write_trace(self, text: str | None) -> None:
        if text:
            self.tracer.out.write(text)

    def _signal(self, flight: Flight) -> None:
        flight.signalled = True
        try:
            tgkill(flight.task.pid, flight.notif.pid, flight.injection.signal)
        except OSError:
            pass                        # the thread is gone

    def _interrupted(self, notif_id: int) -> None:
        """A parked call went away unanswered (a signal): strace's `= ? ERESTARTSYS`."""
        flight = self._flights.get(notif_id) if self._flights else None
        if flight is not None:
            self._land(flight, -ERESTARTSYS)

    def _land(self, flight: Flight, result: int | None) -> None:
        """The flight is over without an answer of ours to wait for: close its line."""
        self._write_trace(self._render(flight, result, False))

    # -- parking ---------------------------------------------------------------------
    def _park(self, notif: Notification, task: Task, wb: WouldBlock,
              deadline: float | None = None) -> None:
        parked = Parked(notif, task, wb.waitqueue, wb.on_timeout, wb.intr_errno, wb.moved,
                        wb.cleanup)
        parked.deadline = deadline if deadline is not None else wb.deadline

        def waiter() -> None:
            self.reactor.call_soon(lambda: self._woken(parked))

        parked.waiter = waiter
        wb.waitqueue.add(waiter)
        if parked.deadline is not None:
            delay = parked.deadline - self.kernel.clock.now()
            parked.timer = self.reactor.call_at(self.reactor.time() + delay,
                                                lambda: self._timed_out(parked))
        self.parked[notif.id] = parked
        self._parked_of_tid[notif.pid] = parked
        self._arm_check()

    def _unpark(self, parked: Parked) -> bool:
        if self.parked.pop(parked.notif.id, None) is None:
            return False
        if self._parked_of_tid.get(parked.notif.pid) is parked:
            del self._parked_of_tid[parked.notif.pid]
        parked.waitqueue.remove(parked.waiter)
        if parked.timer is not None:
            parked.timer.cancel()
        if parked.cleanup is not None:
            cleanup, parked.cleanup = parked.cleanup, None
            try:
                cleanup()
            except Exception as exc:
                self._internal_error("the end of a wait", exc)
        # the waiter and the timer's callback refer back to `parked`: no cycle is left
        # for the collector (host/collector.py)
        parked.waiter = parked.timer = None
        return True

    def _woken(self, parked: Parked) -> None:
        if not self._unpark(parked):
            return
        if self.listener is not None and self.listener.id_valid(parked.notif.id):
            self.attempt(parked.notif, parked.task, parked.deadline)
        else:
            self._interrupted_wait(parked)

    def _interrupted_wait(self, parked: Parked) -> None:
        """A signal interrupted a parked call: the kernel ended its notification with
        ERESTARTSYS, which restarts the call (SA_RESTART, or a stop and SIGCONT) or fails
        it with EINTR. Where Linux's wait ends with EINTR whatever the handler (a socket
        wait with a timeout, sock_intr_errno()), the restarted call is answered EINTR.
        sysemu: a restart and a new identical call from the same place (a program that
        retries after EINTR) look the same; the first of them after the signal gets EINTR."""
        self._unpark(parked)
        if parked.intr_errno == Errno.EINTR:
            self._restarts[parked.notif.pid] = _call_key(parked.notif)
        self._interrupted(parked.notif.id)

    def _timed_out(self, parked: Parked) -> None:
        """The wait's timeout (SO_RCVTIMEO, SO_SNDTIMEO ...) ends the call: with the bytes
        its earlier attempts moved, if any (WouldBlock.moved; Linux: a stream send or
        receive returns what it copied before its wait timed out), else with its timeout
        errno. The call is over: its progress (Task.partial) goes. A call without a
        timeout errno (poll) answers for itself in one more attempt."""
        if parked.on_timeout is None:       # the call answers for itself (poll)
            self._woken(parked)
            return
        if self._unpark(parked):
            flight = self._flights.get(parked.notif.id) if self._flights else None
            if parked.moved:
                parked.task.partial = None
                self.answer(parked.notif, VALUE, parked.moved, [], flight)
                return
            self.answer(parked.notif, ERROR, int(parked.on_timeout), [], flight)

    def _check_parked(self) -> None:
        """Each parked call: gone (a fatal signal, or without WAIT_KILLABLE_RECV any
        signal ended it: the kernel restarts or fails it), or interrupted by sysemu when
        a signal it would have to act on is pending for its thread (Filter.load: the
        kernel no longer ends the wait itself): one sent to the thread, or one sent to
        its process that Linux would have woken this thread for (_marked_for)."""
        self._check_timer = None
        threads_of: dict[int, list] = {}        # pid -> read_threads(pid), once a sweep
        for parked in list(self.parked.values()):
            if parked.notif.id not in self.parked:
                continue
            if not self.listener.id_valid(parked.notif.id):
                self._interrupted_wait(parked)
                continue
            own, shared = read_signals(parked.notif.pid)
            if own or shared and self._marked_for(parked, shared, threads_of):
                self._signal_wait(parked)
        self._arm_check()

    def _marked_for(self, parked: Parked, shared: int, threads_of: dict[int, list]) -> bool:
        """Is the parked thread the one Linux marks (TIF_SIGPENDING) for one of its
        process's pending signals? Only that thread may be answered -ERESTARTSYS: another
        would return -512 to the program (host/signals.py). Linux: complete_signal()."""
        pid, tid = parked.task.pid, parked.notif.pid
        threads = threads_of.get(pid)
        if threads is None:
            threads = threads_of[pid] = read_threads(pid)
        for sig in signals_in(shared):
            if complete_signal_target(sig, threads, self._curr_target.get(pid)) == tid:
                if tid != pid:
                    self._curr_target[pid] = tid    # the round-robin goes on from here
                return True
        return False

    def _check_soon(self) -> None:
        """Look at the parked calls' signals now (sysemu just sent one)."""
        if self._check_timer is not None:
            self._check_timer.cancel()
            self._check_timer = None
        self._arm_check(0.0)

    def _arm_check(self, delay: float | None = None) -> None:
        if self._check_timer is not None or not self.parked:
            return
        if delay is None:
            delay = max(PARKED_CHECK_INTERVAL, PARKED_CHECK_COST * len(self.parked))
        self._check_timer = self.reactor.call_later(delay, self._check_parked)

    def _signal_wait(self, parked: Parked) -> None:
        """A signal is pending for a parked call's thread: end the wait as Linux's
        signal_pending() check in it does, with ERESTARTSYS (the kernel then restarts the
        call after the handler if SA_RESTART, or after a stop, else fails it with EINTR;
        with no signal left to deliver it restarts it) or, for a socket wait with a
        timeout (sock_intr_errno()), EINTR; a stream send or receive that moved bytes
        before it waited returns their count (tcp_sendmsg(), tcp_recvmsg(): `copied`)."""
        if not self._unpark(parked):
            return
        flight = self._flights.get(parked.notif.id) if self._flights else None
        if parked.moved:
            parked.task.partial = None
            self.answer(parked.notif, VALUE, parked.moved, [], flight)
            return
        if parked.intr_errno == Errno.EINTR:
            self.answer(parked.notif, ERROR, int(Errno.EINTR), [], flight)
            return
        if self.listener is not None:
            self.listener.send_error(parked.notif.id, ERESTARTSYS)
        self._interrupted(parked.notif.id)

    # -- running a program -----------------------------------------------------------
    def spawn(self, argv: list[str], stdio: tuple[int | None, int | None, int | None] = (
              None, None, None), containment: Containment | None = None) -> int:
        """Fork the program with the filter and serve it from now on; returns the pid to
        wait for (the program's, or sysemu's init with containment: host/namespaces.py).
        The program: PR_SET_PDEATHSIG(SIGKILL), fds >= 3 closed, filter loaded
        (no_new_privs), listener sent to us over a socketpair, go-ahead, execvp.
        `program_pid` is then the program's pid as we see it."""
        path = argv[0]
        tracing = self.tracer is not None or self.injector is not None
        if tracing and "/" not in path:
            # One execve, the program's (execvp would try each PATH entry in turn).
            path = shutil.which(path) or path
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)   # the sender's pid
        contained = containment is not None and containment.namespaces
        if contained:
            containment.new_pid_namespace()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                if contained:
                    for target, fd in enumerate(stdio):
                        if fd is not None:
                            os.dup2(fd, target)
                    containment.init_main(theirs, lambda: _child(argv, self.filter, theirs,
                                                                 (None, None, None), path))
                if containment is not None and containment.nofile is not None:
                    resource.setrlimit(resource.RLIMIT_NOFILE, containment.nofile)
                _child(argv, self.filter, theirs, stdio, path)
            finally:
                os._exit(127)
        theirs.close()
        with ours:
            if self.filter.empty:
                _msg, _fds, program = _recv_from_child(ours)
            else:
                listener, program = self._receive_listener(ours, pid)
                self.attach(listener)
            self.program_pid = program or pid
            if tracing:
                self._pre_exec.add(self.program_pid)
            ours.sendall(b"g")
        return pid

    @staticmethod
    def _receive_listener(ours: socket.socket, pid: int) -> tuple[int, int | None]:
        """The child's listener fd, sent with SCM_RIGHTS, and the sender's pid. If the
        filter traps the child's own sendmsg, it waits for an answer we cannot give
        without the listener: then take the listener straight from the child (pidfd_getfd)
        and serve that sendmsg. `pid` is the program's or its init's (then the program is
        among its descendants)."""
        while True:
            ready, _, _ = select.select([ours], [], [], 0.05)
            if ready:
                _msg, fds, sender = _recv_from_child(ours)
                if not fds:
                    raise OSError(Errno.EIO, "the child sent no seccomp listener")
                os.set_inheritable(fds[0], False)
                return fds[0], sender
            for candidate in [pid] + descendants(pid):
                fd = _listener_in(candidate)
                if fd is not None:
                    return fd, candidate

    def serve_child(self, argv: list[str], stdio: tuple[int | None, int | None, int | None] = (
                    None, None, None)) -> int:
        """spawn() and serve until the program exits; its status as a shell reports it.
        Only this child is waited for (usable in-process, in tests)."""
        pid = self.spawn(argv, stdio)
        status = self.wait_child(pid)
        self.detach()
        return status

    def wait_child(self, pid: int) -> int:
        pidfd = os.pidfd_open(pid)
        done: list[int] = []

        def exited() -> None:
            self.reactor.remove_reader(pidfd)
            _, status = os.waitpid(pid, 0)
            done.append(decode_status(status))

        self.reactor.add_reader(pidfd, exited)
        try:
            self.reactor.run_until(lambda: bool(done))
        finally:
            os.close(pidfd)
        return done[0]


def _recv_from_child(sock: socket.socket) -> tuple[bytes, list[int], int | None]:
    """One message of the spawned child: (data, descriptors, the sender's pid as we see
    it, from SCM_CREDENTIALS: the program's own, under containment too)."""
    fds = array.array("i")
    creds = struct.Struct("=iII")
    msg, ancdata, _flags, _addr = sock.recvmsg(
        1, socket.CMSG_SPACE(fds.itemsize) + socket.CMSG_SPACE(creds.size))
    sender = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            sender = creds.unpack_from(data)[0] or None
    return msg, list(fds), sender
def _call_key(notif: Notification) -> tuple:
    """What tells a restarted call: the same call, arguments and instruction."""
    return (notif.arch, notif.nr, notif.ip, notif.args)


def _listener_in(pid: int) -> int | None:
    """A copy of `pid`'s seccomp listener (anon_inode:seccomp notify), or None yet."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == "anon_inode:seccomp notify":
                pidfd = os.pidfd_open(pid)
                try:
                    return pidfd_getfd(pidfd, int(name))
                finally:
                    os.close(pidfd)
        except OSError:
            continue
    return None


MSG_PROBE = 0x10


def _child(argv: list[str], filt: Filter, sock: socket.socket,
           stdio: tuple[int | None, int | None, int | None], path: str | None = None) -> None:
    """Between fork and exec in the program's process. Only what the child must do runs
    after the filter is loaded: sendmsg (the listener), recvfrom (go-ahead), execve."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    parent = os.getppid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:        # the supervisor died before we could ask to die too
        os._exit(127)
    for target, fd in enumerate(stdio):
        if fd is not None:
            os.dup2(fd, target)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 20)
    fd = filt.load()
    if fd < 0:
        sock.sendall(b"-")
    else:
        try:   # MSG_NOSIGNAL: the supervisor may have taken it already and hung up
            # (socket.send_fds would drop the flags in Python 3.11)
            # MSG_PROBE: the filter does not trap a sendmsg with it (net/socket.py), so
            # this one is not (AF_UNIX ignores the flag)
            sock.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                   fd.to_bytes(4, sys.byteorder))],
                         socket.MSG_NOSIGNAL | MSG_PROBE)
        except OSError:
            pass
        os.close(fd)
    if sock.recv(1) != b"g":
        os._exit(127)
    sock.close()
    try:
        os.execvp(path or argv[0], argv)
    except OSError as exc:
        code = 126 if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC) else 127
        reason = exc.strerror or "cannot execute"
        os.write(2, f"sysemu: {argv[0]}: {reason}\n".encode())
        os._exit(code)
