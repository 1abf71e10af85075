"""Random control-plane calls with random arguments, the same sequence natively and under
sysemu (fixed seed): results and errnos must match, and sysemu's supervisor must survive.

    python3 fuzz_probe.py SEED N

Every call goes through libc on sockets this probe made, with argument values drawn from
sets that include the invalid: negative and huge lengths, NULL, misaligned and unmapped
pointers, unknown levels and options. Prints one line per call: the call, its result."""
import ctypes
import errno
import random
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
for name in ("bind", "connect", "listen", "getsockname", "getpeername", "getsockopt",
             "setsockopt", "shutdown", "accept4", "socket", "close"):
    getattr(libc, name).restype = ctypes.c_int

BAD_PTRS = [0, 1, 0x7FFFFFFFF000, 0xFFFFFFFFFFFFF000]
LEVELS = [socket.SOL_SOCKET, socket.IPPROTO_TCP, socket.IPPROTO_IP, socket.IPPROTO_IPV6,
          255, -1]
OPTS = {socket.SOL_SOCKET: [1, 2, 3, 4, 7, 8, 9, 13, 15, 20, 21, 30, 38, 39, 999],
        socket.IPPROTO_TCP: [1, 4, 5, 6, 7, 9, 11, 12, 999],
        socket.IPPROTO_IP: [1, 2, 15, 24, 999], socket.IPPROTO_IPV6: [26, 999]}


def rc(value):
    return f"-1 {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}" \
        if value < 0 else str(value)


def main(seed: int, count: int) -> None:
    rnd = random.Random(seed)
    buf = ctypes.create_string_buffer(4096)    # larger than any option value (TCP_INFO ...)
    lenbuf = ctypes.c_int(0)
    # A port below the ephemeral range (so other programs' connects do not take it
    # meanwhile), free on this host (or in this sandbox) now.
    free_port = 20000 + (seed * 7919) % 9000
    while True:
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", free_port))
                break
            except OSError:
                free_port += 1
    socks = []
    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_INET):
        fd = libc.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0)
        socks.append((fd, family))

    def sockaddr(family):
        # 0, or the one port this run found free: the host's own listeners (natively) must
        # not decide the results
        port = rnd.choice([0, 0, free_port])
        if family == socket.AF_INET:
            # Only loopback and the wildcard: a connect must never leave this machine (a
            # non-local address only ever goes to bind, which sends nothing).
            addr = rnd.choice([b"\x7f\x00\x00\x01", b"\x00\x00\x00\x00"])
            raw = struct.pack("!HH4s8x", 0, port, addr)
            raw = struct.pack("=H", rnd.choice([socket.AF_INET, socket.AF_INET,
                                                socket.AF_UNSPEC, socket.AF_INET6])) + raw[2:]
        else:
            addr = rnd.choice([bytes(15) + b"\x01", bytes(16),
                               bytes(10) + b"\xff\xff\x7f\x00\x00\x01"])
            raw = struct.pack("=H", rnd.choice([socket.AF_INET6, socket.AF_INET6,
                                                socket.AF_INET])) \
                + struct.pack("!HI16sI", port, 0, addr, 0)
        return raw

    def pointer(data=b""):
        if rnd.random() < 0.15:
            return rnd.choice(BAD_PTRS)
        ctypes.memmove(buf, data, len(data))
        return ctypes.addressof(buf)

    def length(natural):
        return rnd.choice([natural, natural, natural, 0, -1, 1, 2, 4, 7, 16, 24, 28, 128,
                           129, 1 << 20])

    for i in range(count):
        fd, family = rnd.choice(socks)
        call = rnd.choice(["bind", "connect", "listen", "getsockname", "getpeername",
                           "getsockopt", "setsockopt", "shutdown", "accept4"])
        ctypes.set_errno(0)
        if call in ("bind", "connect"):
            raw = sockaddr(family)
            n = length(len(raw))
            shown = raw[:2] + (b"PP" if raw[2:4] != b"\0\0" else b"00") + raw[4:]
            call += f"(fd{socks.index((fd, family))}, {shown[:n].hex() if 0 < n <= 28 else '-'}, {n})"
            res = getattr(libc, call.split("(")[0])(fd, ctypes.c_void_p(pointer(raw)), n)
            out = rc(res)
            if call.startswith("connect") and res < 0 and ctypes.get_errno() == errno.EINPROGRESS:
                out = "-1 EINPROGRESS"
        elif call == "listen":
            out = rc(libc.listen(fd, rnd.choice([0, 1, 5, -1, 1 << 30])))
        elif call in ("getsockname", "getpeername", "accept4"):
            lenbuf.value = length(128)
            lp = ctypes.addressof(lenbuf) if rnd.random() > 0.1 else rnd.choice(BAD_PTRS)
            args = [fd, ctypes.c_void_p(pointer()), ctypes.c_void_p(lp)]
            if call == "accept4":
                args.append(rnd.choice([0, socket.SOCK_NONBLOCK, socket.SOCK_CLOEXEC, 0x40,
                                        -1]))
            res = getattr(libc, call)(*args)
            out = rc(res) + (f" len={lenbuf.value}" if res >= 0 and lp ==
                             ctypes.addressof(lenbuf) else "")
            if call == "accept4" and res >= 0:
                libc.close(res)
                out = "accepted" + out[len(str(res)):]
        elif call == "getsockopt":
            level = rnd.choice(LEVELS)
            opt = rnd.choice(OPTS.get(level, [1, 999]))
            lenbuf.value = length(4)
            lp = ctypes.addressof(lenbuf) if rnd.random() > 0.1 else rnd.choice(BAD_PTRS)
            res = libc.getsockopt(fd, level, opt, ctypes.c_void_p(pointer()), ctypes.c_void_p(lp))
            value = ""
            if res >= 0 and lp == ctypes.addressof(lenbuf) and opt not in (11, 999):
                value = f" len={lenbuf.value}"
            out = rc(res) + value
            call += f"({level},{opt})"
        elif call == "setsockopt":
            level = rnd.choice(LEVELS)
            opt = rnd.choice(OPTS.get(level, [1, 999]))
            val = struct.pack("=i", rnd.choice([0, 1, 2, -1, 4096, 1 << 30]))
            res = libc.setsockopt(fd, level, opt, ctypes.c_void_p(pointer(val + bytes(12))),
                                  length(4))
            out = rc(res)
            call += f"({level},{opt})"
        else:
            out = rc(libc.shutdown(fd, rnd.choice([0, 1, 2, 3, -1])))
        if "(fd" not in call:
            call += f"[fd{socks.index((fd, family))}]"
        print(i, call, out, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
