"""errno values as Linux spells them (include/uapi/asm-generic/errno*.h)."""
import enum
import errno as _errno

Errno = enum.IntEnum("Errno", {name: code for code, name in sorted(_errno.errorcode.items())})
Errno.__doc__ = "Linux errno values; str(Errno.X) is the strerror text strace prints."

# Kernel-internal codes that never reach user space as such (include/linux/errno.h).
ERESTARTSYS = 512
ERESTARTNOINTR = 513
