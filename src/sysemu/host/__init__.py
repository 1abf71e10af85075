"""The only package that touches the host OS: the seccomp filter, the notification loop,
tracee memory, descriptor lookup, the reactor and the launcher (DESIGN.md)."""
