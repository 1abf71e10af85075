"""x86: syscall_64.tbl / syscall_32.tbl, the generated tables, do_syscall_64, socketcall."""
