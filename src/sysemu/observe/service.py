"""What a sandbox answers on its control socket (pure: a request dict in, a reply out).

Requests are JSON objects with "op":

    {"op": "info"}    {"id", "pid", "supervisor", "command", "sockets"}
    {"op": "ss"}      {"rows": ss.snapshot(net), "pids": [sandbox pids]}
    {"op": "ss", "ports": [P, ...]}   {"rows": the listeners on those ports and the
                      connections of those client ports (ss.of_ports()), "pids": []}
    {"op": "nstat"}   {"mib": net.mib}
    {"op": "nstat", "names": [...]}   {"mib": those counters only (Net.counters())}

Anything else gets {"error": "..."}. The host side (host/control.py) adds the transport.
"""
from __future__ import annotations

from typing import Callable

from sysemu.net.ipv4.udp import udp_sync_all
from sysemu.observe.ss import snapshot


class ObserveService:
    """Answers control requests about one sandbox. `info` holds its id, command and
    supervisor pid; `pids()` lists its processes now (the host reads them)."""

    def __init__(self, kernel, info: dict, pids: Callable[[], list[int]] = lambda: []):
        self.kernel = kernel
        self.info = dict(info)
        self.pids = pids

    def handle(self, request) -> dict:
        if not isinstance(request, dict):
            return {"error": "a request is a JSON object"}
        op = request.get("op")
        net = self.kernel.net
        if net is not None and op in ("ss", "nstat"):
            udp_sync_all(net)       # what programs read natively counts as received
        if op == "info":
            pids = self.pids()
            return dict(self.info, pid=pids[0] if pids else self.info.get("supervisor"),
                        sockets=len(snapshot(net)) if net is not None else 0)
        if op == "ss":
            ports = request.get("ports")
            if ports is not None and (not isinstance(ports, list) or not all(
                    isinstance(p, int) and not isinstance(p, bool) for p in ports)):
                return {"error": "ports is a list of port numbers"}
            if ports is not None:       # a quick look: no walk of /proc either
                return {"rows": snapshot(net, set(ports)) if net is not None else [],
                        "pids": []}
            return {"rows": snapshot(net) if net is not None else [], "pids": self.pids()}
        if op == "nstat":
            names = request.get("names")
            if names is not None and (not isinstance(names, list)
                                      or not all(isinstance(n, str) for n in names)):
                return {"error": "names is a list of counter names"}
            if net is None:
                return {"mib": {}}
            return {"mib": net.mib if names is None else net.counters(names)}
        return {"error": f"unknown op {op!r}"}
