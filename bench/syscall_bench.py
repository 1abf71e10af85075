"""What a system call costs under sysemu (issue 2). Not a test: `make bench` runs it.

One run reports, as medians over interleaved native / sysemu rounds:

(a) a cheap syscall natively: getppid, and getsockname on AF_UNIX and AF_INET sockets;
(b) getsockname on an AF_INET socket made inside `sysemu run`, trapped and answered by
    sysemu (target: under 10 us per call). Only when sysemu serves socket(AF_INET) and
    getsockname; otherwise the output says so and (b) is skipped;
(c) getppid under `sysemu run`, which the filter allows (target: at least 0.98 of the
    native speed).

The probe is bench/syscall_probe.c, built with gcc into a temporary directory.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE_SOURCE = HERE / "syscall_probe.c"
ANSWERED_TARGET_US = 10.0
UNTRAPPED_TARGET = 0.98


class Unavailable(Exception):
    pass


def build_probe(outdir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("bench: gcc not found (make deps)")
    exe = outdir / "syscall_probe"
    subprocess.run([gcc, "-O2", "-Wall", "-o", str(exe), str(PROBE_SOURCE)], check=True)
    return exe


def run_probe(prefix: list[str], probe: Path, mode: str, iterations: int, repeats: int,
              timeout: float) -> list[float]:
    """ns/call of each repeat of one probe process (optionally under `prefix`)."""
    cmd = prefix + [str(probe), mode, str(iterations), str(repeats)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{' '.join(cmd[:3])}: no answer in {timeout:.0f} s") from None
    except OSError as exc:
        raise Unavailable(f"{cmd[0]}: {exc}") from None
    values = [float(line.split()[1]) for line in proc.stdout.splitlines()
              if line.startswith("ns ")]
    if proc.returncode != 0 or len(values) != repeats:
        said = [line for line in proc.stdout.splitlines() if line.startswith("unavailable")]
        tail = (said or proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise Unavailable(tail)
    return values


def sysemu_command() -> list[str] | None:
    script = Path(sys.executable).parent / "sysemu"
    found = str(script) if script.exists() else shutil.which("sysemu")
    return [found, "run", "--"] if found else None


def served_by_sysemu(names: tuple[str, ...]) -> tuple[bool, str]:
    """Whether sysemu registers handlers for all `names` (after loading its CLI, which
    loads every package that serves calls)."""
    try:
        importlib.import_module("sysemu.cli").load_handlers()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot tell"
        return False, f"sysemu.cli does not load ({type(exc).__name__}: {exc})"
    from sysemu.kernel.syscalls import HANDLERS
    missing = [n for n in names if n not in HANDLERS]
    if missing:
        return False, f"sysemu has no handler for {', '.join(missing)} yet"
    return True, ""


def measure(probe: Path, rounds: int, plan: list[tuple[str, list[str], str, int]],
            repeats: int, timeout: float) -> dict[str, float | str]:
    """Run every (key, prefix, mode, iterations) of the plan once per round, interleaved, so
    load from elsewhere on the machine falls on all of them alike. Median ns/call per key,
    or the reason it could not run."""
    samples: dict[str, list[float]] = {key: [] for key, *_ in plan}
    failed: dict[str, str] = {}
    for _ in range(rounds):
        for key, prefix, mode, iterations in plan:
            if key in failed:
                continue
            try:
                samples[key] += run_probe(prefix, probe, mode, iterations, repeats, timeout)
            except Unavailable as exc:
                failed[key] = str(exc)
    return {key: failed.get(key) or statistics.median(samples[key]) for key, *_ in plan}


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed loops per process (3)")
    parser.add_argument("--native-iterations", type=int, default=1_000_000)
    parser.add_argument("--trapped-iterations", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=120.0, help="per process, seconds")
    parser.add_argument("--sysemu", help="the sysemu script (default: the venv's)")
    parser.add_argument("--force-answered", action="store_true",
                        help="run (b) even when sysemu registers no socket handlers")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sysemu-bench-") as tmp:
        probe = build_probe(Path(tmp))
        n, t = args.native_iterations, args.trapped_iterations
        plan = [("native getppid", [], "getppid", n),
                ("native getsockname AF_UNIX", [], "getsockname_unix", n),
                ("native getsockname AF_INET", [], "getsockname_inet", n)]
        notes = []
        sysemu = [args.sysemu, "run", "--"] if args.sysemu else sysemu_command()
        if sysemu is None:
            notes.append("sysemu script not found (make venv): (b) and (c) skipped")
        else:
            try:
                run_probe(sysemu, probe, "getppid", 1000, 1, args.timeout)
            except Unavailable as exc:
                notes.append(f"`sysemu run` does not run the probe ({exc}): (b), (c) skipped")
                sysemu = None
        served = False
        if sysemu is not None:
            plan.append(("sysemu getppid (untrapped)", sysemu, "getppid", n))
            served, why = served_by_sysemu(("socket", "getsockname"))
            if served or args.force_answered:
                plan.append(("sysemu getsockname AF_INET (answered)", sysemu,
                             "getsockname_inet", t))
            else:
                notes.append(f"socket(AF_INET) is not served by sysemu yet ({why}): "
                             "(b) skipped, reporting (a) and (c)")
        results = measure(probe, args.rounds, plan, args.repeats, args.timeout)

    print(f"sysemu syscall benchmark: medians of {args.rounds} rounds x {args.repeats} loops")
    for key, value in results.items():
        shown = f"{value:10.1f} ns/call" if isinstance(value, float) else f"  failed: {value}"
        print(f"  {key:<40}{shown}")
    native = results["native getppid"]
    untrapped = results.get("sysemu getppid (untrapped)")
    if isinstance(native, float) and isinstance(untrapped, float):
        ratio = native / untrapped
        print(f"(c) untrapped speed vs native: {ratio:.3f} "
              f"(target >= {UNTRAPPED_TARGET}) {verdict(ratio >= UNTRAPPED_TARGET)}")
    answered = results.get("sysemu getsockname AF_INET (answered)")
    native_inet = results["native getsockname AF_INET"]
    if isinstance(answered, float):
        line = (f"(b) answered by sysemu: {answered / 1000:.2f} us/call "
                f"(target < {ANSWERED_TARGET_US:g} us) "
                f"{verdict(answered < ANSWERED_TARGET_US * 1000)}")
        if isinstance(native_inet, float):
            line += f"; {answered / native_inet:.0f}x the native call"
        print(line)
        if answered < 1000:
            print("    note: under 1 us per call looks like the host answered, not sysemu")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
