"""The observe subcommands (`sysemu ss`, `nstat`, `ps`) and the `run` options (--pcap,
--fault, --id), with what they set up in the supervisor.

The lead wires these into sysemu/cli.py:

    add_subcommands(sub)          in build_parser(), after the other subparsers
    add_run_options(run)          in build_parser(), on the `run` parser
    setup(supervisor, args)       in setup_supervisor(), after attach_network()
"""
from __future__ import annotations

import argparse
import sys

from sysemu.net.faults import KINDS, FaultSet, FaultSpecError, parse_fault


def is_net_fault(spec: str) -> bool:
    """True for a network fault SPEC (syn-drop:..., refuse:..., rst-after:..., latency:...),
    as opposed to the tracer's syscall faults that share `run --fault`."""
    return spec.split(":", 1)[0].strip() in KINDS


def net_fault_specs(args) -> list[str]:
    """The network faults of a `run`: --net-fault, and those given as --fault."""
    specs = list(getattr(args, "net_faults", None) or [])
    specs += [s for s in getattr(args, "fault", None) or [] if is_net_fault(s)]
    return specs


def _fault_spec(text: str) -> str:
    try:
        parse_fault(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--pcap", metavar="FILE",
                     help="write the virtual network's packets to FILE (pcap, raw IP); the "
                          "data of connections then goes through sysemu")
    help_text = ("inject a network fault (repeatable): syn-drop:port=P[:count=N], "
                 "refuse:port=P, rst-after:port=P:bytes=N, latency:port=P:ms=N, "
                 "loss:pct=X, duplicate:pct=X, reorder:pct=X[:ms=N], corrupt:pct=X, "
                 "bandwidth:kbit=N (these five take [:port=P])")
    try:
        run.add_argument("--net-fault", "--fault", metavar="SPEC", action="append",
                         default=[], type=_fault_spec, dest="net_faults", help=help_text)
    except argparse.ArgumentError:
        # `run --fault` is the tracer's (strace's SET:error=E): network faults come as
        # --net-fault, or through that --fault when is_net_fault(spec) (see setup()).
        run.add_argument("--net-fault", metavar="SPEC", action="append", default=[],
                         type=_fault_spec, dest="net_faults", help=help_text)
    run.add_argument("--id", metavar="NAME", dest="sandbox_id",
                     help="the sandbox's name for `sysemu ss/nstat/ps` (default: the "
                          "supervisor's pid)")


def add_subcommands(sub) -> None:
    ss = sub.add_parser("ss", help="a running sandbox's sockets, like ss -tuan")
    ss.add_argument("-l", "--listening", action="store_true", help="listening sockets only")
    ss.add_argument("-a", "--all", action="store_true", help="sockets in every state")
    ss.add_argument("-t", "--tcp", action="store_true", help="TCP sockets")
    ss.add_argument("-u", "--udp", action="store_true", help="UDP sockets")
    ss.add_argument("-w", "--raw", action="store_true", help="raw sockets")
    ss.add_argument("-n", "--numeric", action="store_true", help="ports as numbers")
    ss.add_argument("-p", "--processes", action="store_true", help="the processes using them")
    ss.add_argument("--id", dest="sandbox_id", help="which sandbox (see sysemu ps)")
    ss.set_defaults(func=cmd_ss)

    nstat = sub.add_parser("nstat", help="a running sandbox's TCP counters, like nstat -az")
    nstat.add_argument("-a", "--absolute", action="store_true", help="(always absolute)")
    nstat.add_argument("-z", "--zeros", action="store_true", help="(zeros always shown)")
    nstat.add_argument("--id", dest="sandbox_id", help="which sandbox (see sysemu ps)")
    nstat.set_defaults(func=cmd_nstat)

    ps = sub.add_parser("ps", help="the running sandboxes of this user")
    ps.set_defaults(func=cmd_ps)


# -- the client commands -----------------------------------------------------------------

def _ask(args, op: str) -> dict | None:
    from sysemu.host import control
    try:
        path = control.find_sandbox(getattr(args, "sandbox_id", None))
        reply = control.request(path, {"op": op})
    except (control.ControlError, OSError) as exc:
        print(f"sysemu {args.command}: {exc}", file=sys.stderr)
        return None
    if "error" in reply:
        print(f"sysemu {args.command}: {reply['error']}", file=sys.stderr)
        return None
    return reply


def load_services(path: str = "/etc/services") -> dict[int, str]:
    """TCP port -> service name (what ss prints without -n)."""
    names: dict[int, str] = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[1].endswith("/tcp"):
                    port = fields[1].split("/")[0]
                    if port.isdigit():
                        names.setdefault(int(port), fields[0])
    except OSError:
        pass
    return names


def cmd_ss(args) -> int:
    from sysemu.observe.ss import format_ss, select_rows
    reply = _ask(args, "ss")
    if reply is None:
        return 1
    netids = tuple(kind for kind, flag in (("tcp", "tcp"), ("udp", "udp"), ("raw", "raw"))
                   if getattr(args, flag, False)) or None
    rows = select_rows(reply["rows"], listening=args.listening, all_states=args.all,
                       netids=netids)
    users = None
    if args.processes:
        from sysemu.host.control import socket_users
        users = socket_users(reply.get("pids", []))
    services = None if args.numeric else load_services()
    sys.stdout.write(format_ss(rows, users, services))
    return 0


def cmd_nstat(args) -> int:
    from sysemu.observe.nstat import format_nstat
    reply = _ask(args, "nstat")
    if reply is None:
        return 1
    sys.stdout.write(format_nstat(reply["mib"]))
    return 0


def format_ps(sandboxes: list[tuple[str, object, dict]]) -> str:
    header = ("ID", "PID", "SOCKETS", "COMMAND")
    rows = [(i, str(info.get("pid", "")), str(info.get("sockets", "")), info.get("command", ""))
            for i, _, info in sandboxes]
    widths = [max([len(header[k])] + [len(r[k]) for r in rows]) for k in range(3)]
    lines = []
    for r in [header] + rows:
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    return "\n".join(lines) + "\n"


def cmd_ps(args) -> int:
    from sysemu.host import control
    try:
        sandboxes = control.list_sandboxes()
    except (control.ControlError, OSError) as exc:
        print(f"sysemu ps: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(format_ps(sandboxes))
    return 0


# -- in the supervisor -------------------------------------------------------------------------

def setup(supervisor, args, glue=None) -> None:
    """Runs in the supervisor before the program starts: faults on the net, the pcap writer
    on net.wire, the Pump when the data must be seen (supervisor.pump, given to `glue`,
    the network's host hooks) and the control channel in the supervisor's reactor
    (supervisor.control)."""
    from sysemu.host import control
    from sysemu.host.pump import Pump
    from sysemu.net.faults import reset_connection
    from sysemu.observe.service import ObserveService

    kernel = supervisor.kernel
    if kernel.net is None:
        import sysemu.net
        sysemu.net.attach(kernel)
    net = kernel.net
    faults = FaultSet.parse(net_fault_specs(args))
    if faults:
        faults.install(net)
    writer = None
    pcap = getattr(args, "pcap", None)
    if pcap:
        from sysemu.trace.pcap import open_pcap
        writer = open_pcap(pcap, clock=kernel.clock, time_offset=control.wall_minus_monotonic())
        net.wire.append(writer.segment)
        net.dgram_wire.append(writer.datagram)
    supervisor.pcap = writer
    pump = None
    if writer is not None or any(f.kind in ("rst-after", "latency") for f in faults.faults):
        pump = Pump(supervisor.reactor, on_data=writer.data if writer else None,
                    faults=faults, log=supervisor.log,
                    on_reset=lambda client, child: reset_connection(net, client, child))
        if glue is not None:
            glue.use_pump(pump)
    supervisor.pump = pump

    argv = list(getattr(args, "argv", []) or [])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    sandbox_id = getattr(args, "sandbox_id", None) or str(control.my_pid())
    service = ObserveService(kernel, {"id": sandbox_id, "supervisor": control.my_pid(),
                                      "command": " ".join(argv)},
                             pids=control.sandbox_pids)
    server = control.ControlServer(supervisor.reactor, sandbox_id, service.handle,
                                   log=supervisor.log)
    try:
        server.start()
    except (control.ControlError, OSError) as exc:
        supervisor.log(f"control channel: {exc} (sysemu ss/nstat/ps won't see this sandbox)")
        server = None
    supervisor.control = server
    on_exit = getattr(supervisor, "on_exit", None)
    if on_exit is not None:
        if server is not None:
            on_exit.append(server.close)        # remove the socket file
        if writer is not None:
            on_exit.append(writer.close)
