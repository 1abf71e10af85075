"""Every decoder: any bytes and integers in -> a string, never an exception."""
from __future__ import annotations

import io

from hypothesis import given, settings, strategies as st

from sysemu.abi.socket import LAYOUTS
from sysemu.kernel.usermem import BufferMemory
from sysemu.trace import decode as d
from sysemu.trace.strace import DECODERS, Call, Tracer, socket_subcall

BASE = 0x10000
ints = st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(-5, 300))
FAST = settings(max_examples=150, deadline=None)


def memory(image: bytes) -> BufferMemory:
    mem = BufferMemory()
    mem.map(len(image) or 1, image, addr=BASE)
    return mem


def pointers(size_hint: int = 512):
    return st.one_of(st.just(0), st.integers(BASE, BASE + size_hint), st.integers(0, 2**64 - 1))


@FAST
@given(st.binary(max_size=140), st.integers(-10, 300))
def test_sockaddr(data, addrlen):
    if len(data) >= 2 and addrlen >= 2:
        assert isinstance(d.print_sockaddr(data, min(addrlen, len(data))), str)
    text = d.decode_sockaddr(memory(data), BASE, addrlen)
    assert isinstance(text, str) and text


@FAST
@given(st.binary(max_size=64), st.booleans())
def test_quote_round_trips_printables(data, zt):
    text, ended = d.quote(data, zero_terminated=zt)
    assert text.startswith('"') and text.endswith('"')
    assert ended == (zt and b"\0" in data)
    if not zt:
        # strace's escapes are C's: reading the literal back gives the bytes
        assert bytes(text[1:-1], "ascii").decode("unicode_escape").encode("latin-1") == data


@FAST
@given(st.binary(max_size=600), pointers(), ints, ints)
def test_msghdr_and_iovec(image, addr, a, b):
    mem = memory(image)
    assert isinstance(d.print_msghdr(mem, addr, a if a >= 0 else None, b), str)
    assert isinstance(d.print_iovec(mem, addr, a, b if b >= 0 else None), str)
    assert isinstance(d.printpath(mem, addr), str)
    assert isinstance(d.printstr(mem, addr, a), str)
    assert isinstance(d.print_cmsgs(mem, addr, a), str)
    for text in (d.print_sigset(mem, addr, a), d.print_fdset(mem, addr, a),
                 d.print_pollfds(mem, addr, a, revents=bool(b & 1)),
                 d.print_epoll_events(mem, addr, a), d.print_timespec(mem, addr),
                 d.print_timeval(mem, addr), str(d.fdset_members(mem, addr, a))):
        assert isinstance(text, str) and text


@FAST
@given(ints, ints, ints, st.binary(max_size=16), pointers(16))
def test_scalar_decoders(a, b, c, image, addr):
    mem = memory(image)
    for text in (d.socket_family(a), d.socket_type(a), d.socket_protocol(a, b),
                 d.accept4_flags(a), d.shutdown_how(a), d.msg_flags(a), d.sockopt_level(a),
                 d.sockopt_name(a, b), d.sockopt_value(mem, a, b, addr, c),
                 d.open_flags(a), d.open_mode(a), d.dirfd(a), d.errno_text(a),
                 d.errno_name(a), d.printaddr(a), d.socklen(a, b)):
        assert isinstance(text, str) and text


@FAST
@given(st.binary(max_size=600), pointers(), ints, ints, st.sampled_from(sorted(LAYOUTS)))
def test_layouts_of_every_abi(image, addr, a, b, abi):
    mem, layouts = memory(image), LAYOUTS[abi]
    for text in (d.print_msghdr(mem, addr, a if a >= 0 else None, b, layouts=layouts),
                 d.print_iovec(mem, addr, a, b if b >= 0 else None, layouts=layouts),
                 d.print_cmsgs(mem, addr, a, layouts=layouts),
                 d.print_mmsgvec(mem, addr, a, b, d.mmsg_namelens(mem, addr, a, layouts)
                                 if b & 1 else None, layouts=layouts),
                 d.print_timespec(mem, addr, layouts.old_timespec)):
        assert isinstance(text, str) and text
    sub = socket_subcall((a, addr), mem)
    assert sub is None or (isinstance(sub[0], str) and all(0 <= w < 2**32 for w in sub[1]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(DECODERS) + ["mmap", "futex", "nosuchcall"]),
       st.lists(st.one_of(pointers(), ints), min_size=6, max_size=6),
       st.binary(max_size=600), st.binary(max_size=600),
       st.one_of(st.none(), ints), st.sampled_from(sorted(LAYOUTS)))
def test_every_call_decoder_both_phases(name, args, enter_image, exit_image, result, abi):
    tracer = Tracer(io.StringIO(), decorate_fd=lambda pid, fd: "TCP:[x]" if fd == 3 else None)
    call = Call(tracer, 1, name, args, memory(enter_image), abi)
    decoder = DECODERS.get(name)
    if decoder is not None:                   # the decoder itself, without the safety net
        assert isinstance(decoder(call), str)
        if not call.done:
            call.entering, call.result, call.mem = False, result, memory(exit_image)
            if result is not None:
                call.result = d.s64(result)
            assert isinstance(decoder(call), str)
    out = io.StringIO()
    t = Tracer(out, show_pid=True)
    t.record(7, name, args, memory(enter_image), result, exit_mem=memory(exit_image), abi=abi)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and "cannot decode" not in text
