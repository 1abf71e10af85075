"""End to end in pcap/fault mode: a real client and server in one sandbox, their data
moved by the Pump, the capture read back with dpkt (and tshark if installed), and the
rst-after fault seen by both programs as ECONNRESET.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dpkt
import pytest

from sysemu.abi.inet import TcpFlags as F

PORT = 7777        # a port of the sandbox's own network: no clash with the host's
TIMEOUT = 60

PROGRAM_C = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int readall(int fd, char *buf, int n) {
    int got = 0;
    while (got < n) {
        int r = read(fd, buf + got, n - got);
        if (r < 0) return -errno;
        if (r == 0) break;
        got += r;
    }
    return got;
}

int main(int argc, char **argv) {
    int rst = argc > 1 && !strcmp(argv[1], "rst");
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7777),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(l, (void *)&a, sizeof a) || listen(l, 8)) { perror("listen"); return 1; }
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&a, sizeof a)) { perror("connect"); _exit(1); }
        char buf[64];
        if (rst) {
            write(c, "0123456789", 10);
            int r = readall(c, buf, sizeof buf);
            printf("client read %d\n", r);
        } else {
            write(c, "hello", 5);
            int r = readall(c, buf, 6);
            printf("client got %.*s\n", r > 0 ? r : 0, buf);
            shutdown(c, SHUT_WR);
            printf("client eof %d\n", readall(c, buf, sizeof buf));
        }
        fflush(stdout);
        close(c);
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    char buf[64];
    if (rst) {
        int r = readall(s, buf, 4);
        int r2 = readall(s, buf, sizeof buf);
        printf("server read %d then %d\n", r, r2);
    } else {
        int r = readall(s, buf, 5);
        printf("server got %.*s\n", r > 0 ? r : 0, buf);
        fflush(stdout);
        write(s, "world!", 6);
        printf("server eof %d\n", readall(s, buf, sizeof buf));
    }
    fflush(stdout);
    close(s);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"""

def run_sandboxed(prog, tmp_path, pcap=None, fault=None, mode="echo"):
    env = dict(os.environ, SYSEMU_CONTROL_DIR=str(tmp_path / "ctl"))
    sysemu = os.path.join(os.path.dirname(sys.executable), "sysemu")
    argv = [sysemu, "run"] + (["--pcap", str(pcap)] if pcap else []) \
        + (["--fault", fault] if fault else []) + ["--", str(prog), mode]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                          stdin=subprocess.DEVNULL)


def packets(path):
    with open(path, "rb") as f:
        out = []
        for ts, raw in dpkt.pcap.Reader(f):
            ip = dpkt.ip.IP(raw)
            out.append((ts, ip.data))
        return out


@pytest.fixture
def prog(cc):
    return cc(PROGRAM_C)


def test_pcap_of_a_real_exchange(prog, tmp_path):
    cap = tmp_path / "x.pcap"
    res = run_sandboxed(prog, tmp_path, pcap=cap)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == ["client eof 0", "client got world!",
                                               "server eof 0", "server got hello"]
    pk = packets(cap)
    flags = [t.flags for _, t in pk]
    assert flags[:3] == [F.SYN, F.SYN | F.ACK, F.ACK]
    data = [(t.sport, bytes(t.data)) for _, t in pk if t.data]
    cport = pk[0][1].sport
    assert data == [(cport, b"hello"), (PORT, b"world!")]
    fins = [t for _, t in pk if t.flags & F.FIN]
    assert [t.sport for t in fins] == [cport, PORT]                # the client shut first
    c_isn, s_isn = pk[0][1].seq, pk[1][1].seq
    assert fins[0].seq == (c_isn + 1 + 5) & 0xFFFFFFFF              # after its 5 bytes
    assert fins[1].seq == (s_isn + 1 + 6) & 0xFFFFFFFF
    assert not any(t.flags & F.RST for _, t in pk)
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-n", "-r", str(cap), "-T", "fields",
                              "-e", "tcp.analysis.flags", "-e", "tcp.len"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        rows = [line.split("\t") for line in out.stdout.splitlines()]
        assert not any(r[0] for r in rows), out.stdout
        assert sorted(int(r[1]) for r in rows if r[1] != "0") == [5, 6]


def test_rst_after_both_programs_see_econnreset(prog, tmp_path):
    cap = tmp_path / "r.pcap"
    res = run_sandboxed(prog, tmp_path, pcap=cap, fault=f"rst-after:port={PORT}:bytes=4",
                        mode="rst")
    assert res.returncode == 0, res.stderr
    econnreset = -104
    assert sorted(res.stdout.splitlines()) == [f"client read {econnreset}",
                                               f"server read 4 then {econnreset}"]
    pk = packets(cap)
    assert [bytes(t.data) for _, t in pk if t.data] == [b"0123"]
    rsts = [t for _, t in pk if t.flags & F.RST]
    assert len(rsts) >= 2                                          # one to each end


BULK = r"""
import hashlib, os, socket, sys, threading
size = int(sys.argv[1])
blob = bytes(range(256)) * (size // 256)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
# Each side closes only once the other has everything (a FIN racing bytes the Pump still
# holds shows before them in the capture: README, pcap ordering).
def client():
    c = socket.create_connection(srv.getsockname())
    c.sendall(blob)
    print("client got", c.recv(100).decode(), flush=True)
    c.close()
t = threading.Thread(target=client)
t.start()
a, _ = srv.accept()
h, n = hashlib.sha256(), 0
while n < size and (data := a.recv(1 << 20)):
    h.update(data)
    n += len(data)
a.sendall(b"ok")
a.recv(1)
a.close()
t.join()
print("server got", n, h.hexdigest() == hashlib.sha256(blob).hexdigest(), flush=True)
"""


def test_pcap_bulk_transfer_is_segmented_and_whole(tmp_path):
    """The Pump reads up to 256 KB at a time; the capture cuts each chunk at the loopback
    MSS (as TCP would), so no packet overflows the IP length field, the connection is not
    reset, and tshark reassembles the stream with no gap."""
    size = 4 << 20
    cap = tmp_path / "bulk.pcap"
    script = tmp_path / "bulk.py"
    script.write_text(BULK)
    env = dict(os.environ, SYSEMU_CONTROL_DIR=str(tmp_path / "ctl"))
    sysemu = os.path.join(os.path.dirname(sys.executable), "sysemu")
    res = subprocess.run([sysemu, "run", "--pcap", str(cap), "--", sys.executable,
                          str(script), str(size)], capture_output=True, text=True,
                         timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == ["client got ok", f"server got {size} True"]
    assert "observer" not in res.stderr, res.stderr
    pk = packets(cap)
    assert not any(t.flags & F.RST for _, t in pk)
    lengths = [len(t.data) for _, t in pk if t.data]
    assert max(lengths) <= 65495 and sum(lengths) == size + 2
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-n", "-r", str(cap), "-T", "fields",
                              "-e", "tcp.analysis.flags"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert not any(line.strip() for line in out.stdout.splitlines()), out.stdout[:2000]
        follow = subprocess.run(["tshark", "-n", "-r", str(cap), "-q",
                                 "-z", "follow,tcp,raw,0"],
                                capture_output=True, text=True, timeout=120)
        assert follow.returncode == 0, follow.stderr
        # raw follow: one hex line per segment, the second node's indented by a tab
        hexdigits = set("0123456789abcdef")
        lines = [line for line in follow.stdout.splitlines()
                 if line.strip() and set(line.strip()) <= hexdigits]
        sent = b"".join(bytes.fromhex(line) for line in lines if not line.startswith("\t"))
        answer = b"".join(bytes.fromhex(line.strip()) for line in lines
                          if line.startswith("\t"))
        assert sent == bytes(range(256)) * (size // 256) and answer == b"ok"
