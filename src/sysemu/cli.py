"""The `sysemu` command.

    sysemu run [--policy passthrough|strict] [--sysctl NAME=VALUE ...] [--seed N]
               [--strace[=SET]] [-o FILE] [-T|--strace-time] [-y|--decode-fds]
               [--trace-all] [--inject=SPEC ...] [--fault=SPEC ...]
               [--datapath native|model] -- CMD ARGS...
    sysemu trace [-e [trace=]SET] [-e inject=SPEC] [-o FILE] [-T] [-y] ... -- CMD ARGS...
    sysemu syscalls [--policy passthrough|strict] [--format table|json]
    sysemu efi-stub IMAGE [--format text|json]
    sysemu exitpath [-o FILE] [--set-reg SYSCALL:REG=VALUE ...] -- CMD ARGS...
"""
from __future__ import annotations

import argparse
import json
import sys

from sysemu.arch.x86.entry import X32_SYSCALL_BIT, Policy, Syscalls


def load_handlers() -> None:
    """Import the packages whose @syscall handlers fill the tables."""
    import sysemu.fs.fcntl  # noqa: F401
    import sysemu.fs.procfs  # noqa: F401
    import sysemu.fs.read_write  # noqa: F401
    import sysemu.fs.select  # noqa: F401
    import sysemu.fs.splice  # noqa: F401
    import sysemu.net  # noqa: F401


def configure_kernel(kernel, pairs: list[tuple[str, str]]) -> None:
    """Attach the network and apply --sysctl NAME=VALUE pairs to the sandbox Kernel."""
    import sysemu.net
    from sysemu.kernel import sysctl
    sysctl.register_defaults(kernel)
    sysemu.net.attach(kernel)
    sysctl.configure(kernel, pairs)


def setup_supervisor(supervisor, args: argparse.Namespace) -> None:
    """Runs in the supervisor process S before the program starts: the network's host
    side (placeholders, readiness, release) and its timers; the trace and injections."""
    from sysemu.host.netglue import attach_network
    from sysemu.observe.cli import is_net_fault
    glue = attach_network(supervisor)
    supervisor.verbose = supervisor.verbose or getattr(args, "verbose", False)
    supervisor.nice = getattr(args, "supervisor_nice", None)
    trace = getattr(args, "trace_options", None)
    if trace is not None:
        from sysemu.host import tracing
        output = tracing.FdOutput(trace.output_fd) if trace.output_fd is not None else None
        tracing.configure(supervisor, trace=trace.set, trace_requested=trace.requested,
                          trap_set=trace.set is not None, output=output,
                          with_time=args.strace_time, decode_fds=args.decode_fds,
                          injects=args.inject,
                          faults=[f for f in args.fault if not is_net_fault(f)],
                          trap_all=args.trace_all)
    from sysemu.observe.cli import setup as observe_setup
    observe_setup(supervisor, args, glue)


class TraceOptions:
    """The checked trace options: the SET (None: every trapped call), whether a trace was
    asked for, the output descriptor (None: stderr)."""

    def __init__(self, requested: bool, set_: frozenset[str] | None, output_fd: int | None):
        self.requested, self.set, self.output_fd = requested, set_, output_fd


def check_trace_options(args: argparse.Namespace, sets: list[str], requested: bool,
                        prog: str) -> TraceOptions | None:
    """Parse the SETs and SPECs (strace's grammar) before anything starts; open -o FILE.
    Prints the error and returns None when an option is wrong."""
    from sysemu.observe.cli import is_net_fault
    from sysemu.trace import inject, syntax
    try:
        chosen: frozenset[str] | None = None
        for text in sets:                       # the last -e trace= wins, as in strace
            chosen = syntax.parse_set(text)
        for spec in args.inject:
            inject.parse_inject(spec)
        for spec in args.fault:
            if is_net_fault(spec):          # syn-drop:..., refuse:... are the network's
                continue
            inject.parse_inject(spec, fault=True)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    if chosen is not None and chosen == syntax.NAMES:
        chosen = None
    fd = None
    if args.output:
        from sysemu.host.tracing import open_output
        try:
            fd = open_output(args.output)
        except OSError as exc:
            print(f"{prog}: -o {args.output}: {exc.strerror}", file=sys.stderr)
            return None
    if args.trace_all and not requested and not args.inject and not args.fault:
        requested = True                        # --trace-all alone: show what it traps
    return TraceOptions(requested or bool(args.output), chosen, fd)


def add_trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the trace to FILE instead of stderr")
    parser.add_argument("-T", "--strace-time", action="store_true",
                        help="show the time spent in each call (strace -T)")
    parser.add_argument("-y", "--decode-fds", action="store_true",
                        help="describe descriptors: TCP:[addr:port->addr:port], paths "
                             "(strace -yy)")
    parser.add_argument("--trace-all", action="store_true",
                        help="trap every x86-64 syscall, not only those sysemu serves (the "
                             "others run on the host and trace as `= ?`)")
    parser.add_argument("--inject", metavar="SPEC", action="append", default=[],
                        help="strace's SET:error=E|retval=N[:signal=S][:delay_enter=D]"
                             "[:delay_exit=D][:when=EXPR] (repeatable)")
    parser.add_argument("--fault", metavar="SPEC", action="append", default=[],
                        help="a network fault (syn-drop:port=P[:count=N], refuse:port=P, "
                             "rst-after:port=P:bytes=N, latency:port=P:ms=N, loss:pct=X, "
                             "duplicate:pct=X, reorder:pct=X[:ms=N], corrupt:pct=X, "
                             "bandwidth:kbit=N, these five with [:port=P]) or strace's "
                             "SET[:error=E][:when=EXPR] (error defaults to ENOSYS)")


def sysctl_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def add_policy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", choices=[p.value for p in Policy],
                        default=Policy.PASSTHROUGH.value,
                        help="what happens to syscalls sysemu does not serve "
                             "(passthrough: the host runs them; strict: ENOSYS)")


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", metavar="N", type=int, default=None,
                        help="seed the sandbox kernel's random source (ephemeral ports, "
                             "sequence numbers): the same N gives the same choices; "
                             "default: a random secret per run")


def add_forward_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--publish", metavar="[HOST_IP:]HOST_PORT:SANDBOX_PORT",
                        action="append", default=[],
                        help="forward a host port (on 127.0.0.1 unless HOST_IP) to a "
                             "server inside, as docker run -p (repeatable)")
    parser.add_argument("--allow-egress", metavar="HOST:PORT", action="append", default=[],
                        help="let the program connect to this host service (HOST on "
                             "127.0.0.0/8), through sysemu (repeatable)")


def check_forward_options(args: argparse.Namespace, prog: str):
    """The PortForwarding of --publish/--allow-egress (None if none given), or False
    after printing one line about the first bad value."""
    from sysemu.host.portfwd import PortForwarding, SpecError, parse_egress, parse_publish
    parsed: dict[str, list] = {"--publish": [], "--allow-egress": []}
    for option, specs, parse in (("--publish", args.publish, parse_publish),
                                 ("--allow-egress", args.allow_egress, parse_egress)):
        for spec in specs:
            try:
                parsed[option].append(parse(spec))
            except SpecError as exc:
                print(f"{prog}: {option} {exc}", file=sys.stderr)
                return False
    publish, egress = parsed["--publish"], parsed["--allow-egress"]
    forwarding = PortForwarding(publish, egress)
    return forwarding if forwarding else None


def add_datapath_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datapath", choices=["native", "model"], default="native",
                        help="how the bytes of connected sockets move: native (the default: "
                             "between the programs, through the host kernel) or model "
                             "(read/write/send/recv served by sysemu, every byte through "
                             "its TCP: exact segments, MSG_MORE/TCP_CORK, urgent data, queue "
                             "sizes, close order; a trap per data call)")


def add_contain_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-contain", action="store_true",
                        help="no namespaces around the program (user, network, PID, mount, "
                             "IPC): only the seccomp filter stands between it and the host "
                             "(SECURITY.md)")
    parser.add_argument("--allow-host-fd", action="store_true",
                        help="start even when stdin/stdout/stderr is a host TCP/IP socket, "
                             "and let processes outside send the program descriptors over "
                             "AF_UNIX sockets (both refused by default: the program could "
                             "reach the host's network through them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysemu", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a program on sysemu's syscall layer")
    add_policy(run)
    run.add_argument("--sysctl", metavar="NAME=VALUE", type=sysctl_pair, action="append",
                     default=[], help="set a sysctl of the sandbox kernel (repeatable)")
    add_seed(run)
    run.add_argument("--strace", metavar="SET", nargs="?", const="", default=None,
                     help="print each trapped call as strace does; SET (strace's -e "
                          "trace=) selects them, and its calls are trapped too")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="say how sysemu serves the program (the listener's wake-up mode)")
    run.add_argument("--supervisor-nice", metavar="N", type=int, default=None,
                     help="the supervisor's nice value (-20..19) once the program has "
                          "started; the program keeps its own. On a loaded machine a "
                          "negative value (CAP_SYS_NICE) gives the one task that serves "
                          "every sandbox thread's calls a larger share of the CPUs")
    add_trace_options(run)
    add_datapath_option(run)
    add_contain_option(run)
    add_forward_options(run)
    from sysemu.observe.cli import add_run_options
    add_run_options(run)
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(func=cmd_run)

    trace = sub.add_parser("trace", help="run a program on sysemu and trace its calls "
                                         "(sysemu run --strace)")
    add_policy(trace)
    trace.add_argument("--sysctl", metavar="NAME=VALUE", type=sysctl_pair, action="append",
                       default=[], help="set a sysctl of the sandbox kernel (repeatable)")
    add_seed(trace)
    trace.add_argument("-e", dest="exprs", metavar="EXPR", action="append", default=[],
                       help="[trace=]SET, inject=SPEC or fault=SPEC (strace's -e)")
    add_trace_options(trace)
    add_datapath_option(trace)
    add_contain_option(trace)
    add_forward_options(trace)
    trace.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    trace.set_defaults(func=cmd_trace)

    tables = sub.add_parser("syscalls", help="list the syscall tables and what serves each")
    add_policy(tables)
    add_datapath_option(tables)
    tables.add_argument("--format", choices=["table", "json"], default="table")
    tables.set_defaults(func=cmd_syscalls)

    efi = sub.add_parser("efi-stub", help="read a Linux kernel image's EFI stub PE/COFF "
                                          "header and boot protocol setup header")
    efi.add_argument("image", metavar="IMAGE", help="bzImage / vmlinuz")
    efi.add_argument("--format", choices=["text", "json"], default="text")
    efi.set_defaults(func=cmd_efi_stub)
    exitpath = sub.add_parser("exitpath", help="run a program under ptrace; show for each "
                                               "call whether the kernel leaves by SYSRET or IRET")
    exitpath.add_argument("-o", "--output", metavar="FILE",
                          help="write the trace and the summary to FILE instead of stderr")
    exitpath.add_argument("--set-reg", metavar="SYSCALL:REG=VALUE", action="append",
                          default=[], help="as a debugger would, write REG (rcx, r11, rip, "
                                           "rax, eflags...) at each exit of SYSCALL")
    exitpath.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    exitpath.set_defaults(func=cmd_exitpath)
    try:
        from sysemu.observe.cli import add_subcommands
    except ImportError:
        pass
    else:
        add_subcommands(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from sysemu.host.clock import MonotonicClock, host_random
    from sysemu.host.launcher import run
    from sysemu.host.libc import host_has_x32_abi
    from sysemu.host.supervisor import unserved_logger
    from sysemu.kernel.task import Kernel

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        print("sysemu run: no command given (sysemu run [options] -- CMD ARGS...)",
              file=sys.stderr)
        return 2
    sets = [args.strace] if args.strace else []
    prog = f"sysemu {args.command}"
    args.trace_options = check_trace_options(args, sets, args.strace is not None, prog)
    if args.trace_options is None:
        return 2
    forwarding = check_forward_options(args, prog)
    if forwarding is False:
        return 2
    if forwarding and getattr(args, "datapath", "native") == "model":
        # sysemu: a forwarded connection's bytes are moved between the host socket and a
        # placeholder's kept end (host/portfwd.py), which the model data path does not use
        print(f"{prog}: --publish and --allow-egress work in the native data path only "
              f"(not with --datapath model)", file=sys.stderr)
        return 2
    load_handlers()
    # Linux: CONFIG_X86_X32_ABI: follow the host kernel (without it x32 calls are ENOSYS).
    syscalls = Syscalls(args.policy, x32_abi=host_has_x32_abi(),
                        on_unserved=unserved_logger(), datapath=args.datapath)
    kernel = Kernel(clock=MonotonicClock(), rng=host_random(args.seed))
    kernel.datapath = args.datapath
    try:
        configure_kernel(kernel, args.sysctl)
    except ValueError as exc:
        print(f"sysemu run: --sysctl: {exc}", file=sys.stderr)
        return 2
    return run(argv, syscalls, kernel, setup=lambda sup: setup_supervisor(sup, args),
               contain=not args.no_contain, allow_host_fd=args.allow_host_fd,
               forwarding=forwarding)


def cmd_trace(args: argparse.Namespace) -> int:
    """`sysemu trace -e SET -- CMD`: `sysemu run --strace=SET -- CMD`."""
    sets: list[str] = []
    for expr in args.exprs:
        key, eq, value = expr.partition("=")
        if eq and key in ("inject", "fault"):
            (args.inject if key == "inject" else args.fault).append(value)
        elif eq and key in ("trace", "t"):
            sets.append(value)
        elif eq:
            print(f"sysemu trace: -e {expr}: only trace=, inject= and fault= are supported",
                  file=sys.stderr)
            return 2
        else:
            sets.append(expr)
    args.strace = sets[-1] if sets else ""
    return cmd_run(args)


def cmd_exitpath(args: argparse.Namespace) -> int:
    from sysemu.host.ptrace_exit import main as exitpath_main
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        print("sysemu exitpath: no command given (sysemu exitpath -- CMD ARGS...)",
              file=sys.stderr)
        return 2
    return exitpath_main(argv, output=args.output, set_regs=args.set_reg)


def slot_row(slot) -> dict:
    nr = f"{X32_SYSCALL_BIT | slot.nr:#x}" if slot.table == "x32" else str(slot.nr)
    table = slot.table
    return {"nr": nr, "abi": slot.abi, "table": table, "name": slot.name,
            "entry": slot.entry or "-", "compat": slot.compat or "-", "symbol": slot.symbol,
            "noreturn": slot.noreturn, "action": slot.action.value}


def cmd_syscalls(args: argparse.Namespace) -> int:
    load_handlers()
    rows = [slot_row(s) for s in Syscalls(args.policy, datapath=args.datapath).rows()]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    # entry point and compat: the .tbl's columns; calls: the function the kernel's table
    # calls (__x64_sys_read, __ia32_compat_sys_socketcall).
    print(f"{'nr':>10}  {'abi':<6}  {'name':<24}  {'entry point':<28}  "
          f"{'compat entry point':<30}  {'calls':<36}  action")
    for r in rows:
        print(f"{r['nr']:>10}  {r['abi']:<6}  {r['name']:<24}  {r['entry']:<28}  "
              f"{r['compat']:<30}  {r['symbol']:<36}  {r['action']}")
    return 0


def cmd_efi_stub(args: argparse.Namespace) -> int:
    """`sysemu efi-stub IMAGE`: one line on stderr and status 1 for anything unreadable."""
    from sysemu.boot.efi_stub import ImageError, format_report, parse_efi_stub
    try:
        with open(args.image, "rb") as f:
            data = f.read()
    except OSError as exc:
        print(f"sysemu efi-stub: {args.image}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        stub = parse_efi_stub(data)
    except ImageError as exc:
        print(f"sysemu efi-stub: {args.image}: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        json.dump(stub.to_dict(), sys.stdout, indent=1)
        print()
    else:
        print(format_report(stub))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
