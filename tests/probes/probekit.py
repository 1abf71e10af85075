"""What the differential probes share: a registry of scenarios and the command line.

    python3 PROBE.py --list            the scenario names, a line each
    python3 PROBE.py NAME [NAME ...]   one JSON object: each scenario's result

A scenario is a function returning something JSON can hold; an exception is reported as
{"exception": "Type: message"}, so the comparison with the native run shows it."""
from __future__ import annotations

import errno
import json
import time


class Probe:
    def __init__(self, indent: int | None = None, budget: float | None = None):
        self.scenarios: dict = {}
        self.indent = indent            # the JSON's
        self.budget = budget            # seconds a scenario may take (asserted)

    def scenario(self, fn):
        self.scenarios[fn.__name__] = fn
        return fn

    def main(self, argv: list[str]) -> int:
        if argv == ["--list"]:
            print("\n".join(self.scenarios))
            return 0
        out = {}
        for name in argv:
            t0 = time.monotonic()
            try:
                out[name] = self.scenarios[name]()
            except Exception as exc:            # reported, so the comparison shows it
                out[name] = {"exception": f"{type(exc).__name__}: {exc}"}
            if self.budget is not None:
                assert time.monotonic() - t0 < self.budget, name
        print(json.dumps(out, indent=self.indent, sort_keys=True))
        return 0


def outcome(fn, *args):
    """The value (an int, bytes as their length), else the errno name."""
    try:
        value = fn(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return value
