"""`-e trace=SET` as strace reads it, resolved to x86-64 and i386 tbl names and
socketcall(2)'s calls."""
from __future__ import annotations

import pytest

from sysemu.trace.syntax import CLASSES, NAMES, parse_set

NET = {"socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
       "getsockname", "getpeername", "shutdown", "setsockopt", "getsockopt", "sendto",
       "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg"}


def test_names_come_from_the_64_and_32_bit_tables_and_socketcall():
    assert {"read", "accept4", "openat", "sendfile"} <= NAMES
    assert {"socketcall", "fcntl64", "_newselect", "mmap2"} <= NAMES     # i386's
    assert {"send", "recv"} <= NAMES       # socketcall's SYS_SEND, SYS_RECV only
    assert "socketcall" not in parse_set("%net")    # strace: in no class


def test_plain_names_and_numbers():
    assert parse_set("bind,listen") == {"bind", "listen"}
    assert parse_set(" bind , 42 ") == {"bind", "connect"}


def test_network_class_is_straces():
    assert parse_set("%net") == parse_set("%network") == parse_set("network")
    assert NET <= parse_set("%net")
    # strace's TN flag also marks sendfile and the STREAMS getpmsg/putpmsg, and on i386
    # socketcall's send and recv, sendfile64 and recvmmsg_time64
    assert parse_set("%net") - NET == {"sendfile", "getpmsg", "putpmsg", "send", "recv",
                                       "sendfile64", "recvmmsg_time64"}


def test_desc_file_process_classes():
    desc = parse_set("%desc")
    assert {"read", "write", "close", "dup", "fcntl", "epoll_wait", "openat", "sendfile",
            "poll", "select", "splice"} <= desc
    assert "socket" not in desc and "getpid" not in desc
    assert {"open", "openat", "execve", "stat", "unlinkat"} <= parse_set("%file")
    assert "read" not in parse_set("%file")
    assert {"clone", "fork", "execve", "exit_group", "wait4", "kill", "clone3"} \
        <= parse_set("%process")
    assert "getpid" not in parse_set("%process")
    assert parse_set("%pure") == {"getpid", "getppid", "getpgrp", "gettid", "getuid",
                                  "getgid", "geteuid", "getegid"}


def test_all_none_and_negation():
    assert parse_set("all") == NAMES
    assert parse_set("none") == frozenset()
    assert parse_set("!none") == NAMES
    assert parse_set("!%net") == NAMES - CLASSES["network"]
    assert parse_set("!bind,listen") == NAMES - {"bind", "listen"}
    assert parse_set("!all") == frozenset()


def test_regex_and_optional_names():
    assert parse_set("/^accept") == {"accept", "accept4"}
    assert parse_set("?nosuchcall,bind") == {"bind"}
    assert parse_set("?%nosuchclass") == frozenset()


@pytest.mark.parametrize("bad, words", [
    ("bnd", "invalid system call 'bnd'"),
    ("bind,,listen", "empty item"),
    ("", "empty"),
    ("!", "empty"),
    ("%nosuch", "invalid system call class '%nosuch'"),
    ("/(", "invalid regular expression"),
    ("/^zzzz", "matches no system call"),
    ("99999", "invalid system call number 99999"),
])
def test_errors_say_what_is_wrong(bad, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("[", r"\[")):
        parse_set(bad)
