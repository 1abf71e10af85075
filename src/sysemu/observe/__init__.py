"""See the virtual network from outside a sandbox: `sysemu ss`, `sysemu nstat`, `sysemu ps`.

A running sandbox serves a control socket (host/control.py) answering JSON requests with
snapshots the model makes here (service.py); ss.py and nstat.py print them the way the
iproute2 tools print the host's. cli.py holds the subcommands and the `run` options
(--pcap, --fault, --id) with the supervisor-side setup.
"""
