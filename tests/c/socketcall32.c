/* An i386 program doing every socket call, for tests/test_e2e_i386.py: built with
 * `gcc -m32 -static`, run natively and under `sysemu run`, outputs compared.
 *
 *   socketcall32 socketcall   each call through socketcall(2) (SYS_SOCKET .. SYS_SENDMMSG),
 *                             with the argument block in user memory as 32-bit words
 *   socketcall32 direct       the same calls as int 0x80 system calls of their own
 *                             (__NR_socket = 359 ...; send/recv are sendto/recvfrom)
 *   socketcall32 MODE udp     UDP over 127.0.0.1 instead (addresses, MSG_TRUNC,
 *                             IP_PKTINFO's compat cmsg, mmsg with names, ICMP refusal)
 *
 * TCP over 127.0.0.1 (a listener, two connections), then the datagram calls on an
 * AF_UNIX socketpair (which the host serves), then bad inputs. Each step prints one line,
 * `label result[ details]`, result being the value or -ERRNAME; nothing printed depends on
 * the port numbers or the timing. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/net.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef __i386__
#error "build with gcc -m32"
#endif

#define SO_RCVTIMEO_OLD_ 20
#define SO_SNDTIMEO_OLD_ 21
#define SO_RCVTIMEO_NEW_ 66

static int direct;

static long ret(long r)
{
    return r < 0 ? -errno : r;
}

/* socketcall(call, {a0..a5}) or the direct call: the one entry every step goes through */
static long sc(int call, long a0, long a1, long a2, long a3, long a4, long a5)
{
    static const int nr[] = {0, __NR_socket, __NR_bind, __NR_connect, __NR_listen, -1,
                             __NR_getsockname, __NR_getpeername, __NR_socketpair, -1, -1,
                             __NR_sendto, __NR_recvfrom, __NR_shutdown, __NR_setsockopt,
                             __NR_getsockopt, __NR_sendmsg, __NR_recvmsg, __NR_accept4,
                             __NR_recvmmsg, __NR_sendmmsg};
    unsigned long args[6] = {a0, a1, a2, a3, a4, a5};
    if (!direct)
        return ret(syscall(SYS_socketcall, call, args));
    switch (call) {
    case SYS_ACCEPT:                 /* i386 has no accept: accept4 with flags 0 */
        return ret(syscall(__NR_accept4, a0, a1, a2, 0));
    case SYS_SEND:
        return ret(syscall(__NR_sendto, a0, a1, a2, a3, 0, 0));
    case SYS_RECV:
        return ret(syscall(__NR_recvfrom, a0, a1, a2, a3, 0, 0));
    }
    return ret(syscall(nr[call], a0, a1, a2, a3, a4, a5));
}

#define SC(call, ...) sc_(call, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define sc_(call, a, b, c, d, e, f, ...) sc(call, (long)(a), (long)(b), (long)(c), \
                                            (long)(d), (long)(e), (long)(f))

static void show(const char *label, long r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void show(const char *label, long r, const char *fmt, ...)
{
    if (r < 0)
        printf("%s -%s", label, strerrorname_np((int)-r));
    else
        printf("%s %ld", label, r);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        putchar(' ');
        vprintf(fmt, ap);
        va_end(ap);
    }
    putchar('\n');
    fflush(stdout);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static const char *addr_text(const struct sockaddr_in *a)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "fam=%d addr=%s", a->sin_family, inet_ntoa(a->sin_addr));
    return buf;
}

/* wait (up to a second) until `fd` has `n` bytes to read */
static void wait_avail(int fd, int n)
{
    for (int tries = 0; tries < 100; tries++) {
        int avail = 0;
        if (ioctl(fd, FIONREAD, &avail) == 0 && avail >= n)
            return;
        usleep(10000);
    }
}

/* a page that is not mapped, and one whose last 4 bytes are the end of a mapping */
static char *unmapped, *edge;

static void tcp(void)
{
    int one = 1;
    char buf[256];
    struct sockaddr_in a = loopback(0), got, peer;
    socklen_t len;

    long l = SC(SYS_SOCKET, AF_INET, SOCK_STREAM, 0);
    show("socket", l, NULL);
    show("setsockopt.reuseaddr", SC(SYS_SETSOCKOPT, l, SOL_SOCKET, SO_REUSEADDR, &one, 4), NULL);
    show("bind", SC(SYS_BIND, l, &a, sizeof a), NULL);
    len = sizeof got;
    memset(&got, 0xff, sizeof got);
    long r = SC(SYS_GETSOCKNAME, l, &got, &len);
    int port = ntohs(got.sin_port);
    show("getsockname", r, "len=%u %s port_set=%d", len, addr_text(&got), port != 0);
    show("listen", SC(SYS_LISTEN, l, 0xFFFFFFFFu), NULL);   /* -1: capped at somaxconn */

    long c = SC(SYS_SOCKET, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    show("socket.cloexec", c, "fd_cloexec=%d", fcntl(c, F_GETFD));
    a = loopback(port);
    show("connect", SC(SYS_CONNECT, c, &a, sizeof a), NULL);
    struct sockaddr_in cname;
    len = sizeof cname;
    SC(SYS_GETSOCKNAME, c, &cname, &len);
    len = sizeof peer;
    long acc = SC(SYS_ACCEPT, l, &peer, &len);
    show("accept", acc, "len=%u %s peer_is_client=%d", len, addr_text(&peer),
         peer.sin_port == cname.sin_port);
    len = sizeof peer;
    r = SC(SYS_GETPEERNAME, c, &peer, &len);
    show("getpeername", r, "len=%u %s port_ok=%d", len, addr_text(&peer),
         ntohs(peer.sin_port) == port);
    len = 4;                 /* short: 4 bytes copied, the true length written back */
    memset(&peer, 0xee, sizeof peer);
    r = SC(SYS_GETPEERNAME, c, &peer, &len);
    show("getpeername.short", r, "len=%u fam=%d port_untouched=%d", len, peer.sin_family,
         peer.sin_port == 0xeeee);

    show("send", SC(SYS_SEND, c, "hello", 5, 0), NULL);
    memset(buf, 0, sizeof buf);
    r = SC(SYS_RECV, acc, buf, sizeof buf, 0);
    show("recv", r, "data=%s", buf);
    show("sendto", SC(SYS_SENDTO, c, "world", 5, MSG_NOSIGNAL, NULL, 0), NULL);
    memset(buf, 0, sizeof buf);
    len = sizeof peer;
    r = SC(SYS_RECVFROM, acc, buf, 2, MSG_PEEK, &peer, &len);
    show("recvfrom.peek", r, "data=%s len=%u", buf, len);
    r = SC(SYS_RECVFROM, acc, buf, sizeof buf, 0, NULL, NULL);
    show("recvfrom", r, "data=%.5s", buf);
    /* TCP ignores sendto's address on a connected socket (tcp_sendmsg_locked()); an
       unconnected one fails EPIPE (sk_stream_wait_connect()) */
    show("sendto.addr", SC(SYS_SENDTO, c, "named", 5, MSG_NOSIGNAL, &a, sizeof a), NULL);
    memset(buf, 0, sizeof buf);
    r = SC(SYS_RECVFROM, acc, buf, 5, MSG_WAITALL, NULL, NULL);
    show("recv.addr", r, "data=%.5s", buf);
    long unc = SC(SYS_SOCKET, AF_INET, SOCK_STREAM, 0);
    show("sendto.addr.unconnected", SC(SYS_SENDTO, unc, "x", 1, MSG_NOSIGNAL, &a, sizeof a),
         NULL);
    close(unc);

    struct iovec iov[2] = {{"ab", 2}, {"cde", 3}};
    struct msghdr m = {0};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    show("sendmsg", SC(SYS_SENDMSG, c, &m, 0), NULL);
    char b1[1], b2[16];
    struct iovec riov[2] = {{b1, 1}, {b2, sizeof b2}};
    struct sockaddr_in from;
    char ctl[64];
    memset(&m, 0, sizeof m);
    memset(b2, 0, sizeof b2);
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = riov;
    m.msg_iovlen = 2;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    m.msg_flags = 0x7fff;
    r = SC(SYS_RECVMSG, acc, &m, 0);
    show("recvmsg", r, "data=%c%s namelen=%u controllen=%u flags=%#x", b1[0], b2,
         m.msg_namelen, m.msg_controllen, m.msg_flags);

    struct mmsghdr mm[2];
    struct iovec miov[2] = {{"xyz", 3}, {"12345", 5}};
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr.msg_iov = &miov[0];
    mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &miov[1];
    mm[1].msg_hdr.msg_iovlen = 1;
    r = SC(SYS_SENDMMSG, c, mm, 2, 0);
    show("sendmmsg", r, "len0=%u len1=%u", mm[0].msg_len, mm[1].msg_len);
    char r0[32] = {0}, r1[32] = {0};
    struct iovec rmiov[2] = {{r0, sizeof r0 - 1}, {r1, sizeof r1 - 1}};
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr.msg_iov = &rmiov[0];
    mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &rmiov[1];
    mm[1].msg_hdr.msg_iovlen = 1;
    /* both sends are queued before this; WAITFORONE: the second finds nothing (EAGAIN) */
    for (int tries = 0; tries < 100; tries++) {
        int avail = 0;
        if (ioctl(acc, FIONREAD, &avail) == 0 && avail >= 8)
            break;
        usleep(10000);
    }
    r = SC(SYS_RECVMMSG, acc, mm, 2, MSG_WAITFORONE, NULL);
    show("recvmmsg", r, "len0=%u data0=%s", mm[0].msg_len, r0);

    /* the error queue of a TCP socket is empty: EAGAIN, the data stays */
    SC(SYS_SEND, c, "q", 1, 0);
    for (int tries = 0; tries < 100; tries++) {
        int avail = 0;
        if (ioctl(acc, FIONREAD, &avail) == 0 && avail >= 1)
            break;
        usleep(10000);
    }
    show("recv.errqueue", SC(SYS_RECV, acc, buf, sizeof buf, MSG_ERRQUEUE), NULL);
    show("recvfrom.errqueue", SC(SYS_RECVFROM, acc, buf, sizeof buf,
                                 MSG_ERRQUEUE | MSG_DONTWAIT, NULL, NULL), NULL);
    memset(&m, 0, sizeof m);
    m.msg_iov = riov;
    m.msg_iovlen = 2;
    show("recvmsg.errqueue", SC(SYS_RECVMSG, acc, &m, MSG_ERRQUEUE), NULL);
    show("recvmmsg.errqueue", SC(SYS_RECVMMSG, acc, mm, 2, MSG_ERRQUEUE, NULL), NULL);
    show("recvmmsg.errqueue.vlen0", SC(SYS_RECVMMSG, acc, mm, 0, MSG_ERRQUEUE, NULL), NULL);
    struct { int32_t sec, nsec; } badts = {0, -1};
    show("recvmmsg.errqueue.badtimeout", SC(SYS_RECVMMSG, acc, mm, 2, MSG_ERRQUEUE, &badts),
         NULL);
    show("recvmmsg.badtimeout", SC(SYS_RECVMMSG, acc, mm, 2, 0, &badts), NULL);
    show("recvmmsg.errqueue.efault", SC(SYS_RECVMMSG, acc, unmapped, 2, MSG_ERRQUEUE, NULL),
         NULL);
    r = SC(SYS_RECV, acc, buf, sizeof buf, MSG_DONTWAIT);
    show("recv.after_errqueue", r, "data=%.*s", r > 0 ? (int)r : 0, buf);

    /* read/write/readv/writev and sendfile of an i386 program: compat_iovec, and i386's
     * own sendfile (a 32-bit off_t, cut at MAX_NON_LFS) and sendfile64 */
    struct iovec wv[3] = {{"rv", 2}, {"", 0}, {"wxyz", 4}};
    show("writev", ret(syscall(__NR_writev, c, wv, 3)), NULL);
    wait_avail(acc, 6);
    char v1[3] = {0}, v2[8] = {0};
    struct iovec rv[2] = {{v1, 2}, {v2, sizeof v2 - 1}};
    r = ret(syscall(__NR_readv, acc, rv, 2));
    show("readv", r, "data=%s|%s", v1, v2);
    struct iovec neg[1] = {{"x", (size_t)-1}};
    show("writev.neglen", ret(syscall(__NR_writev, c, neg, 1)), NULL);
    show("readv.efault", ret(syscall(__NR_readv, acc, unmapped, 1)), NULL);
    show("readv.empty", ret(syscall(__NR_readv, acc, rv, 0)), NULL);
    show("write", ret(syscall(__NR_write, c, "wr", 2)), NULL);
    wait_avail(acc, 2);
    r = ret(syscall(__NR_read, acc, buf, sizeof buf));
    show("read", r, "data=%.*s", r > 0 ? (int)r : 0, buf);
    int mfd = syscall(__NR_memfd_create, "sendfile32", 0);
    if (write(mfd, "0123456789", 10) != 10)
        show("memfd.write", -errno, NULL);
    int32_t off32 = 2;
    r = ret(syscall(__NR_sendfile, c, mfd, &off32, 4));
    show("sendfile", r, "off=%d", off32);
    int64_t off64 = 8;
    r = ret(syscall(__NR_sendfile64, c, mfd, &off64, 100));
    show("sendfile64", r, "off=%lld", (long long)off64);
    off32 = 0x7fffffff;
    r = ret(syscall(__NR_sendfile, c, mfd, &off32, 1));
    show("sendfile.at_max", r, "off=%d", off32);
    off32 = 0x7ffffff0;
    r = ret(syscall(__NR_sendfile, c, mfd, &off32, 100));
    show("sendfile.near_max", r, "off=%d", off32);
    off32 = -1;
    show("sendfile.negative", ret(syscall(__NR_sendfile, c, mfd, &off32, 1)), NULL);
    show("sendfile.efault", ret(syscall(__NR_sendfile, c, mfd, unmapped, 1)), NULL);
    lseek(mfd, 5, SEEK_SET);
    r = ret(syscall(__NR_sendfile, c, mfd, NULL, 3));
    show("sendfile.nooffset", r, "pos=%ld", (long)lseek(mfd, 0, SEEK_CUR));
    close(mfd);
    wait_avail(acc, 9);
    memset(buf, 0, sizeof buf);
    r = ret(syscall(__NR_read, acc, buf, sizeof buf));
    show("read.sendfile", r, "data=%.*s", r > 0 ? (int)r : 0, buf);

    /* options with 32-bit layouts */
    int v = -1;
    len = sizeof v;
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_TYPE, &v, &len);
    show("getsockopt.type", r, "v=%d len=%u", v, len);
    v = -1;
    len = 2;
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_ERROR, &v, &len);
    show("getsockopt.error.short", r, "v=%#x len=%u", v, len);
    len = -1;
    show("getsockopt.neglen", SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_TYPE, &v, &len), NULL);
    show("setsockopt.neglen", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET, SO_REUSEADDR, &one, -1),
         NULL);
    show("setsockopt.nodelay", SC(SYS_SETSOCKOPT, c, IPPROTO_TCP, TCP_NODELAY, &one, 4), NULL);
    v = -1;
    len = sizeof v;
    r = SC(SYS_GETSOCKOPT, c, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    show("getsockopt.nodelay", r, "v=%d len=%u", v, len);

    struct { int32_t sec, usec; } tv32 = {1, 500000}, tv32out;
    show("setsockopt.rcvtimeo_old", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_OLD_,
                                       &tv32, sizeof tv32), NULL);
    show("setsockopt.rcvtimeo_old.short", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET,
                                             SO_RCVTIMEO_OLD_, &tv32, 4), NULL);
    memset(&tv32out, 0xff, sizeof tv32out);
    len = 64;
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_OLD_, &tv32out, &len);
    show("getsockopt.rcvtimeo_old", r, "sec=%d usec=%d len=%u", tv32out.sec, tv32out.usec,
         len);
    struct { int64_t sec, usec; } tv64 = {0, 0};
    len = sizeof tv64;
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_NEW_, &tv64, &len);
    show("getsockopt.rcvtimeo_new", r, "sec=%lld usec=%lld len=%u", (long long)tv64.sec,
         (long long)tv64.usec, len);
    memset(&tv32out, 0xff, sizeof tv32out);
    len = 4;                     /* a short buffer: 4 of the 8 bytes, len 4 */
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_OLD_, &tv32out, &len);
    show("getsockopt.rcvtimeo_old.short", r, "sec=%d usec=%d len=%u", tv32out.sec,
         tv32out.usec, len);
    tv64.sec = 3;
    tv64.usec = 0;
    show("setsockopt.rcvtimeo_new", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_NEW_,
                                       &tv64, sizeof tv64), NULL);
    show("setsockopt.rcvtimeo_new.short", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET,
                                             SO_RCVTIMEO_NEW_, &tv64, 8), NULL);
    len = sizeof tv32out;
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_OLD_, &tv32out, &len);
    show("getsockopt.rcvtimeo_old.after_new", r, "sec=%d usec=%d len=%u", tv32out.sec,
         tv32out.usec, len);
    tv64.sec = 2;
    tv64.usec = 250000;
    show("setsockopt.sndtimeo_old.long", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET,
                                            SO_SNDTIMEO_OLD_, &tv64, sizeof tv64), NULL);
    len = sizeof tv32out;
    r = SC(SYS_GETSOCKOPT, acc, SOL_SOCKET, SO_SNDTIMEO_OLD_, &tv32out, &len);
    show("getsockopt.sndtimeo_old", r, "sec=%d usec=%d len=%u", tv32out.sec, tv32out.usec,
         len);
    tv32.sec = 0;
    tv32.usec = 1000000;
    show("setsockopt.rcvtimeo_old.edom", SC(SYS_SETSOCKOPT, acc, SOL_SOCKET,
                                            SO_RCVTIMEO_OLD_, &tv32, sizeof tv32), NULL);
    tv32.usec = 100000;          /* 0.1 s: a recv on the empty connection times out */
    SC(SYS_SETSOCKOPT, acc, SOL_SOCKET, SO_RCVTIMEO_OLD_, &tv32, sizeof tv32);
    show("recv.timeout", SC(SYS_RECV, acc, buf, sizeof buf, 0), NULL);
    /* SO_MAX_PACING_RATE is an unsigned long: 8 bytes on a 64-bit kernel, i386 too */
    uint64_t rate = 0;
    len = sizeof rate;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, &len);
    show("getsockopt.pacing", r, "rate=%#llx len=%u", (unsigned long long)rate, len);
    uint32_t rate32 = 0;
    len = sizeof rate32;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate32, &len);
    show("getsockopt.pacing.32", r, "rate=%#x len=%u", rate32, len);
    rate32 = 1000;
    show("setsockopt.pacing.32", SC(SYS_SETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE,
                                    &rate32, 4), NULL);
    len = sizeof rate;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, &len);
    show("getsockopt.pacing.after32", r, "rate=%#llx len=%u", (unsigned long long)rate, len);
    rate = 5000000000ULL;
    show("setsockopt.pacing.64", SC(SYS_SETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE,
                                    &rate, 8), NULL);
    len = sizeof rate32;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate32, &len);
    show("getsockopt.pacing.capped", r, "rate=%#x len=%u", rate32, len);
    rate = 0;
    len = 6;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, &len);
    show("getsockopt.pacing.len6", r, "rate=%#llx len=%u", (unsigned long long)rate, len);
    rate32 = 0xFFFFFFFF;         /* ~0U: ~0UL */
    SC(SYS_SETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate32, 4);
    len = sizeof rate;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, &len);
    show("getsockopt.pacing.unlimited", r, "rate=%#llx len=%u", (unsigned long long)rate,
         len);
    struct linger lg = {1, 5}, lgout = {-1, -1};
    show("setsockopt.linger", SC(SYS_SETSOCKOPT, c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
         NULL);
    len = sizeof lgout;
    r = SC(SYS_GETSOCKOPT, c, SOL_SOCKET, SO_LINGER, &lgout, &len);
    show("getsockopt.linger", r, "onoff=%d linger=%d len=%u", lgout.l_onoff, lgout.l_linger,
         len);

    show("shutdown", SC(SYS_SHUTDOWN, c, SHUT_WR), NULL);
    show("recv.eof", SC(SYS_RECV, acc, buf, sizeof buf, 0), NULL);
    show("shutdown.bad_how", SC(SYS_SHUTDOWN, c, 7), NULL);

    fcntl(l, F_SETFL, O_NONBLOCK);
    show("accept4.empty", SC(SYS_ACCEPT4, l, NULL, NULL, SOCK_NONBLOCK), NULL);
    fcntl(l, F_SETFL, 0);
    tv32.sec = 0;
    tv32.usec = 100000;   /* a child made after this inherits the listener's timeout */
    SC(SYS_SETSOCKOPT, l, SOL_SOCKET, SO_RCVTIMEO_OLD_, &tv32, sizeof tv32);
    long c2 = SC(SYS_SOCKET, AF_INET, SOCK_STREAM, 0);
    SC(SYS_CONNECT, c2, &a, sizeof a);
    long acc2 = SC(SYS_ACCEPT4, l, NULL, NULL, SOCK_CLOEXEC);
    show("accept4.cloexec", acc2, "fd_cloexec=%d", fcntl(acc2, F_GETFD));
    show("recv.inherited_timeout", SC(SYS_RECV, acc2, buf, sizeof buf, 0), NULL);
    show("accept4.badflags", SC(SYS_ACCEPT4, l, NULL, NULL, 1), NULL);

    /* a port where nothing listens */
    long s = SC(SYS_SOCKET, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = loopback(0);
    SC(SYS_BIND, s, &b, sizeof b);
    len = sizeof b;
    SC(SYS_GETSOCKNAME, s, &b, &len);
    long s2 = SC(SYS_SOCKET, AF_INET, SOCK_STREAM, 0);
    show("connect.refused", SC(SYS_CONNECT, s2, &b, sizeof b), NULL);

    /* bad inputs on the TCP calls */
    show("bind.badfd", SC(SYS_BIND, -1, &a, sizeof a), NULL);
    int devnull = open("/dev/null", O_RDONLY);
    show("bind.notsock", SC(SYS_BIND, devnull, &a, sizeof a), NULL);
    long t = SC(SYS_SOCKET, AF_INET, SOCK_STREAM, 0);
    show("bind.longlen", SC(SYS_BIND, t, &a, 129), NULL);
    show("bind.neglen", SC(SYS_BIND, t, &a, -1), NULL);
    show("bind.shortlen", SC(SYS_BIND, t, &a, 4), NULL);
    show("bind.efault", SC(SYS_BIND, t, unmapped, sizeof a), NULL);
    show("connect.efault", SC(SYS_CONNECT, t, unmapped, sizeof a), NULL);
    len = sizeof got;
    show("getsockname.efault", SC(SYS_GETSOCKNAME, t, unmapped, &len), NULL);
    show("getsockname.lenfault", SC(SYS_GETSOCKNAME, t, &got, unmapped), NULL);
    len = -1;
    show("getsockname.neglen", SC(SYS_GETSOCKNAME, t, &got, &len), NULL);
    show("accept.notlistening", SC(SYS_ACCEPT, t, NULL, NULL), NULL);
    show("listen.badfd", SC(SYS_LISTEN, 1000, 1), NULL);
    show("send.efault", SC(SYS_SEND, acc2, unmapped, 5, MSG_DONTWAIT), NULL);
    show("getsockopt.lenfault", SC(SYS_GETSOCKOPT, acc2, SOL_SOCKET, SO_TYPE, &v, unmapped),
         NULL);
    show("sendmsg.efault", SC(SYS_SENDMSG, acc2, unmapped, 0), NULL);
    show("socket.badtype", SC(SYS_SOCKET, AF_INET, 77, 0), NULL);
    show("socket.badflags", SC(SYS_SOCKET, AF_INET, SOCK_STREAM | 0x40000000, 0), NULL);
    show("socket.inet_udp_lite", SC(SYS_SOCKET, AF_INET, SOCK_STREAM, IPPROTO_UDP), NULL);
    int spv[2];
    show("socketpair.inet", SC(SYS_SOCKETPAIR, AF_INET, SOCK_STREAM, 0, spv), NULL);
}

static void dgram(void)
{
    int sv[2] = {-1, -1};
    char buf[64];
    long r = SC(SYS_SOCKETPAIR, AF_UNIX, SOCK_DGRAM, 0, sv);
    show("socketpair", r, "distinct=%d", sv[0] >= 0 && sv[1] >= 0 && sv[0] != sv[1]);
    show("socketpair.efault", SC(SYS_SOCKETPAIR, AF_UNIX, SOCK_DGRAM, 0, unmapped), NULL);
    show("dgram.send", SC(SYS_SEND, sv[0], "datagram", 8, 0), NULL);
    memset(buf, 0, sizeof buf);
    r = SC(SYS_RECV, sv[1], buf, 4, MSG_TRUNC);
    show("dgram.recv.trunc", r, "data=%s", buf);
    show("dgram.sendto", SC(SYS_SENDTO, sv[0], "two", 3, 0, NULL, 0), NULL);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(buf, 0, sizeof buf);
    r = SC(SYS_RECVFROM, sv[1], buf, sizeof buf, 0, &ss, &len);
    show("dgram.recvfrom", r, "data=%s len=%u", buf, len);

    /* sendmsg/recvmsg with SCM_RIGHTS: 32-bit cmsghdr (12 bytes + the int), over a
     * SOCK_SEQPACKET pair (sysemu refuses descriptors on datagram pairs: SECURITY.md) */
    int sq[2] = {-1, -1};
    show("socketpair.seqpacket", SC(SYS_SOCKETPAIR, AF_UNIX, SOCK_SEQPACKET, 0, sq), NULL);
    int passed = open("/dev/null", O_RDONLY);
    struct iovec iov = {"m", 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof u.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &passed, sizeof passed);
    show("dgram.sendmsg.rights", SC(SYS_SENDMSG, sq[0], &m, 0), "cmsg_space=%u",
         (unsigned)sizeof u.buf);
    char rb[8] = {0};
    struct iovec riov = {rb, sizeof rb};
    union { char buf[64]; struct cmsghdr align; } ru;
    memset(&m, 0, sizeof m);
    m.msg_iov = &riov;
    m.msg_iovlen = 1;
    m.msg_control = ru.buf;
    m.msg_controllen = sizeof ru.buf;
    r = SC(SYS_RECVMSG, sq[1], &m, MSG_CMSG_CLOEXEC);
    cm = CMSG_FIRSTHDR(&m);
    int got = -1;
    if (cm)
        memcpy(&got, CMSG_DATA(cm), sizeof got);
    show("dgram.recvmsg.rights", r, "data=%s controllen=%u cmsg_len=%u level=%d type=%d "
         "fd_ok=%d cloexec=%d flags=%#x", rb, m.msg_controllen, cm ? cm->cmsg_len : 0,
         cm ? cm->cmsg_level : -1, cm ? cm->cmsg_type : -1, got > passed,
         got >= 0 ? fcntl(got, F_GETFD) : -1, m.msg_flags);
    /* the control buffer too small: MSG_CTRUNC */
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof u.buf;
    SC(SYS_SENDMSG, sq[0], &m, 0);
    memset(&m, 0, sizeof m);
    m.msg_iov = &riov;
    m.msg_iovlen = 1;
    m.msg_control = ru.buf;
    m.msg_controllen = 12;
    r = SC(SYS_RECVMSG, sq[1], &m, 0);
    show("dgram.recvmsg.ctrunc", r, "controllen=%u flags=%#x", m.msg_controllen, m.msg_flags);

    struct mmsghdr mm[3];
    struct iovec miov[3] = {{"one", 3}, {"three", 5}, {"seven!!", 7}};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        mm[i].msg_hdr.msg_iov = &miov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    r = SC(SYS_SENDMMSG, sv[0], mm, 3, 0);
    show("dgram.sendmmsg", r, "lens=%u,%u,%u", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    char d[3][8];
    struct iovec rmiov[3];
    memset(mm, 0, sizeof mm);
    memset(d, 0, sizeof d);
    for (int i = 0; i < 3; i++) {
        rmiov[i].iov_base = d[i];
        rmiov[i].iov_len = 4;
        mm[i].msg_hdr.msg_iov = &rmiov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    struct timespec tmo = {1, 0};
    r = SC(SYS_RECVMMSG, sv[1], mm, 3, MSG_DONTWAIT, &tmo);
    show("dgram.recvmmsg", r, "lens=%u,%u,%u flags=%#x,%#x,%#x data=%s,%s,%s", mm[0].msg_len,
         mm[1].msg_len, mm[2].msg_len, mm[0].msg_hdr.msg_flags, mm[1].msg_hdr.msg_flags,
         mm[2].msg_hdr.msg_flags, d[0], d[1], d[2]);
    show("dgram.recvmmsg.empty", SC(SYS_RECVMMSG, sv[1], mm, 3, MSG_DONTWAIT, NULL), NULL);
    show("dgram.recvmmsg.efault", SC(SYS_RECVMMSG, sv[1], unmapped, 3, MSG_DONTWAIT, NULL),
         NULL);
    show("dgram.shutdown", SC(SYS_SHUTDOWN, sv[0], SHUT_RDWR), NULL);
    show("dgram.send.after_shutdown", SC(SYS_SEND, sv[0], "x", 1, MSG_NOSIGNAL), NULL);
}

/* UDP over 127.0.0.1: the datagram calls with addresses, on sysemu's network (the udp
 * branch serves AF_INET SOCK_DGRAM; until then it is EPROTONOSUPPORT there) */
static void udp(void)
{
    char buf[64];
    int one = 1;
    struct sockaddr_in a1 = loopback(0), a2 = loopback(0), from;
    socklen_t len;
    long u1 = SC(SYS_SOCKET, AF_INET, SOCK_DGRAM, 0);
    long u2 = SC(SYS_SOCKET, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    show("udp.socket", u1, NULL);
    show("udp.bind", SC(SYS_BIND, u1, &a1, sizeof a1), NULL);
    SC(SYS_BIND, u2, &a2, sizeof a2);
    len = sizeof a1;
    SC(SYS_GETSOCKNAME, u1, &a1, &len);
    len = sizeof a2;
    SC(SYS_GETSOCKNAME, u2, &a2, &len);

    show("udp.sendto", SC(SYS_SENDTO, u2, "ping", 4, 0, &a1, sizeof a1), NULL);
    memset(buf, 0, sizeof buf);
    len = sizeof from;
    long r = SC(SYS_RECVFROM, u1, buf, sizeof buf, 0, &from, &len);
    show("udp.recvfrom", r, "data=%s len=%u %s from_u2=%d", buf, len, addr_text(&from),
         from.sin_port == a2.sin_port);
    show("udp.sendto.trunc", SC(SYS_SENDTO, u2, "abcdef", 6, 0, &a1, sizeof a1), NULL);
    memset(buf, 0, sizeof buf);
    r = SC(SYS_RECV, u1, buf, 2, MSG_TRUNC);
    show("udp.recv.trunc", r, "data=%s", buf);

    show("udp.setsockopt.pktinfo", SC(SYS_SETSOCKOPT, u1, IPPROTO_IP, IP_PKTINFO, &one, 4),
         NULL);
    struct iovec iov[2] = {{"he", 2}, {"llo", 3}};
    struct msghdr m = {0};
    m.msg_name = &a1;
    m.msg_namelen = sizeof a1;
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    show("udp.sendmsg", SC(SYS_SENDMSG, u2, &m, 0), NULL);
    char rb[3] = {0};
    struct iovec riov = {rb, sizeof rb};
    union { char buf[64]; struct cmsghdr align; } ctl;
    memset(&m, 0, sizeof m);
    memset(&from, 0, sizeof from);
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &riov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    r = SC(SYS_RECVMSG, u1, &m, 0);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    if (cm)
        memcpy(&pi, CMSG_DATA(cm), sizeof pi);
    show("udp.recvmsg.pktinfo", r, "data=%.3s namelen=%u from_u2=%d flags=%#x "
         "controllen=%u cmsg_len=%u level=%d type=%d ifindex=%d dst=%s", rb, m.msg_namelen,
         from.sin_port == a2.sin_port, m.msg_flags, m.msg_controllen, cm ? cm->cmsg_len : 0,
         cm ? cm->cmsg_level : -1, cm ? cm->cmsg_type : -1, pi.ipi_ifindex,
         inet_ntoa(pi.ipi_addr));
    one = 0;
    SC(SYS_SETSOCKOPT, u1, IPPROTO_IP, IP_PKTINFO, &one, 4);

    struct mmsghdr mm[3];
    struct iovec miov[3] = {{"one", 3}, {"three", 5}, {"seven!!", 7}};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        mm[i].msg_hdr.msg_name = &a1;
        mm[i].msg_hdr.msg_namelen = sizeof a1;
        mm[i].msg_hdr.msg_iov = &miov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    r = SC(SYS_SENDMMSG, u2, mm, 3, 0);
    show("udp.sendmmsg", r, "lens=%u,%u,%u", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    char d[3][8];
    struct iovec rmiov[3];
    struct sockaddr_in names[3];
    memset(mm, 0, sizeof mm);
    memset(d, 0, sizeof d);
    for (int i = 0; i < 3; i++) {
        rmiov[i].iov_base = d[i];
        rmiov[i].iov_len = 4;
        mm[i].msg_hdr.msg_name = &names[i];
        mm[i].msg_hdr.msg_namelen = sizeof names[i];
        mm[i].msg_hdr.msg_iov = &rmiov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    struct { int32_t sec, nsec; } tmo = {1, 0};
    r = SC(SYS_RECVMMSG, u1, mm, 3, MSG_WAITFORONE, &tmo);
    show("udp.recvmmsg", r, "lens=%u,%u,%u flags=%#x,%#x,%#x namelens=%u,%u,%u data=%s,%s,%s",
         mm[0].msg_len, mm[1].msg_len, mm[2].msg_len, mm[0].msg_hdr.msg_flags,
         mm[1].msg_hdr.msg_flags, mm[2].msg_hdr.msg_flags, mm[0].msg_hdr.msg_namelen,
         mm[1].msg_hdr.msg_namelen, mm[2].msg_hdr.msg_namelen, d[0], d[1], d[2]);

    show("udp.connect", SC(SYS_CONNECT, u2, &a1, sizeof a1), NULL);
    struct sockaddr_in peer;
    len = sizeof peer;
    r = SC(SYS_GETPEERNAME, u2, &peer, &len);
    show("udp.getpeername", r, "len=%u peer_is_u1=%d", len, peer.sin_port == a1.sin_port);
    show("udp.send", SC(SYS_SEND, u2, "c", 1, 0), NULL);
    memset(buf, 0, sizeof buf);
    show("udp.recv", SC(SYS_RECV, u1, buf, sizeof buf, 0), "data=%s", buf);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    show("udp.disconnect", SC(SYS_CONNECT, u2, &unspec, sizeof unspec), NULL);
    len = sizeof peer;
    show("udp.getpeername.disconnected", SC(SYS_GETPEERNAME, u2, &peer, &len), NULL);
    show("udp.recv.empty", SC(SYS_RECV, u1, buf, sizeof buf, MSG_DONTWAIT), NULL);
    struct { int32_t sec, usec; } tv = {0, 100000};
    SC(SYS_SETSOCKOPT, u1, SOL_SOCKET, SO_RCVTIMEO_OLD_, &tv, sizeof tv);
    show("udp.recv.timeout", SC(SYS_RECV, u1, buf, sizeof buf, 0), NULL);

    /* a datagram to a port where nothing listens: the connected socket's next call */
    long u3 = SC(SYS_SOCKET, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in closed = loopback(0);
    long tmp = SC(SYS_SOCKET, AF_INET, SOCK_DGRAM, 0);
    SC(SYS_BIND, tmp, &closed, sizeof closed);
    len = sizeof closed;
    SC(SYS_GETSOCKNAME, tmp, &closed, &len);
    close(tmp);
    SC(SYS_CONNECT, u3, &closed, sizeof closed);
    show("udp.send.nobody", SC(SYS_SEND, u3, "x", 1, 0), NULL);
    usleep(20000);
    show("udp.recv.refused", SC(SYS_RECV, u3, buf, sizeof buf, MSG_DONTWAIT), NULL);
    show("udp.sendto.badlen", SC(SYS_SENDTO, u2, "x", 1, 0, &a1, 4), NULL);
    show("udp.sendto.efault", SC(SYS_SENDTO, u2, "x", 1, 0, unmapped, sizeof a1), NULL);
}

/* what only socketcall(2) itself can be given */
static void socketcall_block(void)
{
    unsigned long args[6] = {AF_INET, SOCK_STREAM, 0, 0, 0, 0};
    show("socketcall.call0", ret(syscall(SYS_socketcall, 0, args)), NULL);
    show("socketcall.call21", ret(syscall(SYS_socketcall, 21, args)), NULL);
    show("socketcall.call_neg", ret(syscall(SYS_socketcall, -1, args)), NULL);
    show("socketcall.call_high", ret(syscall(SYS_socketcall, 0x80000001u, args)), NULL);
    show("socketcall.call_0x10001", ret(syscall(SYS_socketcall, 0x10001, args)), NULL);
    show("socketcall.null_block", ret(syscall(SYS_socketcall, SYS_SOCKET, NULL)), NULL);
    show("socketcall.unmapped_block", ret(syscall(SYS_socketcall, SYS_SOCKET, unmapped)),
         NULL);
    /* 4 readable bytes, 12 needed: the whole block must be readable */
    memcpy(edge, &args[0], 4);
    show("socketcall.edge_block", ret(syscall(SYS_socketcall, SYS_SOCKET, edge)), NULL);
    /* SYS_LISTEN needs 2 words: the 8 bytes before the end are enough */
    long fd = ret(syscall(SYS_socketcall, SYS_SOCKET, args));
    unsigned long two[2] = {fd, 5};
    memcpy(edge - 4, two, 8);
    show("socketcall.edge_listen", ret(syscall(SYS_socketcall, SYS_LISTEN, edge - 4)), NULL);
    show("socketcall.send_unmapped_block", ret(syscall(SYS_socketcall, SYS_SEND, unmapped)),
         NULL);
    show("socketcall.recvmmsg_unmapped_block",
         ret(syscall(SYS_socketcall, SYS_RECVMMSG, unmapped)), NULL);
}

int main(int argc, char **argv)
{
    alarm(30);                   /* bounded even if a call were to block */
    direct = argc > 1 && !strcmp(argv[1], "direct");
    int udp_only = argc > 2 && !strcmp(argv[2], "udp");
    char *pages = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    munmap(pages + 4096, 4096);
    unmapped = pages + 4096;
    edge = pages + 4096 - 4;
    if (udp_only) {
        udp();
        return 0;
    }
    tcp();
    dgram();
    if (!direct)
        socketcall_block();
    return 0;
}
