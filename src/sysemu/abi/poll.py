"""poll(2) and select(2) values.

Linux: include/uapi/asm-generic/poll.h (POLLIN ... POLLRDHUP), include/uapi/linux/posix_types.h
(__FD_SETSIZE), include/uapi/asm-generic/poll.h struct pollfd, fs/select.c (POLLIN_SET,
POLLOUT_SET, POLLEX_SET).
"""
from __future__ import annotations

import struct

POLLIN = 0x0001
POLLPRI = 0x0002
POLLOUT = 0x0004
POLLERR = 0x0008
POLLHUP = 0x0010
POLLNVAL = 0x0020
POLLRDNORM = 0x0040
POLLRDBAND = 0x0080
POLLWRNORM = 0x0100
POLLWRBAND = 0x0200
POLLMSG = 0x0400
POLLRDHUP = 0x2000

# fs/select.c: what makes an fd ready for each of select's three sets
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI

FD_SETSIZE = 1024
BITS_PER_LONG = 64

POLLFD = struct.Struct("=ihh")          # struct pollfd: int fd; short events, revents
TIMEVAL = struct.Struct("=qq")          # struct __kernel_old_timeval (x86-64)
TIMESPEC = struct.Struct("=qq")         # struct __kernel_timespec
