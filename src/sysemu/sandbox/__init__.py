"""Driving sandboxes from outside: the Python API (api.py, public as `sysemu.api`) and the
agent that runs inside one (agent.py). Like host/, this package may use the OS
(subprocess, signal, tempfile); the model may not."""
