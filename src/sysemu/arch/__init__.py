"""Architecture entry: the syscall tables and do_syscall_64 (Linux: arch/)."""
