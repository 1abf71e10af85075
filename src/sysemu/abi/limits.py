"""Limits, sizes and clock rates the kernel's C types and build give it.

Linux: include/vdso/limits.h (INT_MAX, UINT_MAX, ULONG_MAX, U8_MAX, U32_MAX),
include/uapi/linux/limits.h (PATH_MAX), arch/x86/include/asm/page_types.h (PAGE_SIZE),
include/asm-generic/param.h (HZ, USER_HZ), include/vdso/time64.h (USEC_PER_SEC).
"""
from __future__ import annotations

INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
ULONG_MAX = 2**64 - 1
U8_MAX = 255
U32_MAX = 0xFFFFFFFF
PATH_MAX = 4096
PAGE_SIZE = 4096

# sysemu: Linux's HZ is a build option (100, 250, 300 or 1000); timeouts kept in jiffies
# (SO_RCVTIMEO, the *_jiffies sysctls' INT_MAX / HZ bound) use the reference hosts' 250.
HZ = 250
USER_HZ = 100       # clock_t ticks per second, what /proc and times(2) count in
USEC_PER_SEC = 1_000_000
