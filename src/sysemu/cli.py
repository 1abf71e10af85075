"""The `sysemu` command.

    sysemu run [--policy passthrough|strict] [--sysctl NAME=VALUE ...] -- CMD ARGS...
    sysemu syscalls [--policy passthrough|strict] [--format table|json]
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
    side (placeholders, readiness, release) and its timers."""
    from sysemu.host.netglue import attach_network
    attach_network(supervisor)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysemu", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a program on sysemu's syscall layer")
    add_policy(run)
    run.add_argument("--sysctl", metavar="NAME=VALUE", type=sysctl_pair, action="append",
                     default=[], help="set a sysctl of the sandbox kernel (repeatable)")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(func=cmd_run)

    tables = sub.add_parser("syscalls", help="list the syscall tables and what serves each")
    add_policy(tables)
    tables.add_argument("--format", choices=["table", "json"], default="table")
    tables.set_defaults(func=cmd_syscalls)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from sysemu.host.clock import MonotonicClock
    from sysemu.host.launcher import run
    from sysemu.host.supervisor import unserved_logger
    from sysemu.kernel.task import Kernel

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        print("sysemu run: no command given (sysemu run [options] -- CMD ARGS...)",
              file=sys.stderr)
        return 2
    load_handlers()
    syscalls = Syscalls(args.policy, on_unserved=unserved_logger())
    kernel = Kernel(clock=MonotonicClock())
    try:
        configure_kernel(kernel, args.sysctl)
    except ValueError as exc:
        print(f"sysemu run: --sysctl: {exc}", file=sys.stderr)
        return 2
    return run(argv, syscalls, kernel, setup=lambda sup: setup_supervisor(sup, args))


def slot_row(slot) -> dict:
    nr = f"{X32_SYSCALL_BIT | slot.nr:#x}" if slot.abi == "x32" else str(slot.nr)
    table = {"common": "64", "64": "64"}.get(slot.abi, slot.abi)
    return {"nr": nr, "abi": slot.abi, "table": table, "name": slot.name,
            "entry": slot.entry or "-", "action": slot.action.value}


def cmd_syscalls(args: argparse.Namespace) -> int:
    load_handlers()
    rows = [slot_row(s) for s in Syscalls(args.policy).rows()]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'nr':>10}  {'abi':<6}  {'name':<24}  {'entry point':<28}  action")
    for r in rows:
        print(f"{r['nr']:>10}  {r['abi']:<6}  {r['name']:<24}  {r['entry']:<28}  {r['action']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
