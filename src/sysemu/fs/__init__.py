"""The file side of the syscall layer: read/write, splice/sendfile, select/poll/epoll and
the sandbox's /proc views (fs.procfs). Importing fs.procfs registers its open handlers."""
