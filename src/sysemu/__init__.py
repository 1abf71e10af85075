"""sysemu: the Linux x86-64 system-call layer in Python (see DESIGN.md)."""
__version__ = "0.1.0"
