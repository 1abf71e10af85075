"""strace-style tracing and fault injection for sysemu's calls (pure: no OS access).

- syntax.parse_set(): `-e trace=SET` -> tbl names.
- strace.Tracer: enter()/exit()/record() lines in strace's format.
- inject.Injector: `--inject=`/`--fault=` specs; decide(pid, name) -> Injection | None.
"""
