"""The supervisor's stalls under churn were Python's cycle collector: a full pass walked
every TIME_WAIT socket the sandbox held (0.3-2 s over 100,000 connections) and nothing was
answered meanwhile. Two halves keep the passes short (host/collector.py): what survives a
full pass is frozen, and the model's sockets are freed by their last reference, never left
to the collector (a frozen cycle would never be freed)."""
from __future__ import annotations

import gc
import random
import subprocess
import sys
import textwrap
import weakref

from sysemu.abi.socket import SOCK_NONBLOCK
from test_net_helpers import Env


def churn(env: Env, lfd: int, port: int, n: int, rng: random.Random) -> list:
    """n connections in every close order; weak references to every Sock, Socket, File."""
    refs = []
    for _ in range(n):
        c = env.socket(type_=1 | SOCK_NONBLOCK)
        env.connect(c, "127.0.0.1", port)
        a, _ = env.accept(lfd)
        for fd in (a, c):
            sock = env.sock(fd)
            refs += [weakref.ref(sock.sk), weakref.ref(sock), weakref.ref(sock.file)]
        env.close_in_order(a, c, rng.choice(("server", "client", "both", "rst")))
        env.advance(0.001)
    return refs


def assert_freed_without_the_collector(env: Env, make_refs) -> None:
    """Weak references `make_refs()` returns are all dead once it returns, with the cycle
    collector off: freed by reference counting alone."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        refs = make_refs()
        env.hooks.events.clear()         # the test's hooks record the Socks they are told of
        alive = [r() for r in refs if r() is not None]
        assert not alive, f"{len(alive)} of {len(refs)} objects left to the collector: " \
                          f"{sorted({type(o).__name__ for o in alive})}"
    finally:
        if was_enabled:
            gc.enable()


def test_closed_sockets_are_freed_without_the_cycle_collector():
    """After TIME_WAIT is over, every Sock, Socket and File of a churn is gone by reference
    counting alone (Net.sk_free() cuts sock_orphan()'s and __sock_release()'s links and
    the peer link): none waits for a collection."""
    env = Env(seed=3)
    lfd, port = env.server(backlog=128)

    def make_refs():
        refs = churn(env, lfd, port, 400, random.Random(3))
        env.advance(121)                 # every TIME_WAIT and FIN_WAIT2 is over
        return refs
    assert_freed_without_the_collector(env, make_refs)


def test_closed_datagram_sockets_are_freed_without_the_cycle_collector():
    """UDP, ping and raw sockets closed (sk_common_release()) are gone by reference
    counting alone, as TCP's are: a datagram socket that lived through a full pass is
    frozen, and a cycle left at its close would never be freed."""
    env = Env(seed=4)

    def make_refs():
        refs = []
        for i in range(300):
            kind = ((2, 0), (2, 1), (3, 1))[i % 3]     # UDP; ping (ICMP); raw ICMP
            fd = env.socket(type_=kind[0], proto=kind[1])
            if fd < 0:                  # ping/raw refused by the range or capabilities
                fd = env.socket(type_=2)
            if i % 2:
                assert env.bind(fd, "127.0.0.1", 0) == 0
                assert env.connect(fd, "127.0.0.1", 9) == 0
            sock = env.sock(fd)
            refs += [weakref.ref(sock.sk), weakref.ref(sock), weakref.ref(sock.file)]
            env.close(fd)
        return refs
    assert_freed_without_the_collector(env, make_refs)


def test_a_full_collection_freezes_what_survives():
    """After a full pass, its survivors are frozen: the next full pass walks only what is
    new (in a child: the freezing is for the whole process)."""
    code = textwrap.dedent("""
        import gc
        from sysemu.host import collector
        collector.install()
        held = [[i] for i in range(200_000)]          # long-lived, as TIME_WAIT sockets
        gc.collect()
        old = len(gc.get_objects(generation=2))
        assert gc.get_freeze_count() >= 200_000, gc.get_freeze_count()
        more = [[i] for i in range(1_000)]
        gc.collect(1)
        gc.collect(1)
        print(old, len(gc.get_objects(generation=2)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    after_full, promoted = map(int, out.stdout.split())
    assert after_full < 1_000            # everything was frozen, not kept in generation 2
    assert promoted < 10_000             # a later full pass would walk only these


def test_the_supervisor_makes_a_full_pass_every_second():
    """With a reactor, a full pass runs on a timer (and re-arms it), so no pass waits
    until a hundred thousand objects were promoted."""
    code = textwrap.dedent("""
        import gc
        from sysemu.host import collector

        class Reactor:
            def __init__(self):
                self.timers = []
            def call_later(self, delay, callback):
                self.timers.append((delay, callback))

        reactor = Reactor()
        collector.install(reactor)
        (delay, tick), = reactor.timers
        before = gc.get_stats()[2]["collections"]
        held = [[i] for i in range(50_000)]
        tick()
        assert gc.get_stats()[2]["collections"] == before + 1
        assert len(gc.get_objects(generation=2)) < 1_000
        assert len(reactor.timers) == 2 and reactor.timers[1][0] == delay
        print(delay)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert 0 < float(out.stdout) <= 1.0
