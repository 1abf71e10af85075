/* Attacks on sysemu's containment (tests/test_contain.py): each mode tries one way out of
 * the sandbox and prints `key=value` words saying how far it got. Run natively, the
 * network modes reach the test's host listeners (that is how the test knows the attack
 * works); under `sysemu run` none may. Build x86-64, or -m32 -static for "socketcall". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) {
    static char buf[32];
    if (r >= 0)
        return "ok";
    snprintf(buf, sizeof buf, "E%d", errno);
    return buf;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* A socket whose family word has high bits set: the kernel reads the low 32. */
static int width_tcp(int port) {
#ifdef __x86_64__
    long fd = syscall(SYS_socket, 0x100000002L, (long)SOCK_STREAM, 0L);
    printf("socket=%s ", err(fd));
    if (fd >= 0) {
        struct sockaddr_in a = loopback(port);
        printf("connect=%s", err(connect(fd, (struct sockaddr *)&a, sizeof a)));
    }
    printf("\n");
#endif
    return 0;
}

static int width_udp(int port) {
#ifdef __x86_64__
    long fd = syscall(SYS_socket, 0x100000002L, (long)SOCK_DGRAM, 0L);
    printf("socket=%s ", err(fd));
    if (fd >= 0) {
        struct sockaddr_in a = loopback(port);
        printf("sendto=%s", err(sendto(fd, "width", 5, 0, (struct sockaddr *)&a, sizeof a)));
    }
    printf("\n");
#endif
    return 0;
}

/* O_NONBLOCK set with a command word that has high bits: accept must not block. */
static int width_nonblock(const char *how) {
#ifdef __x86_64__
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4)) {
        printf("setup=%s\n", err(-1));
        return 1;
    }
    long r;
    int one = 1;
    if (!strcmp(how, "fcntl"))
        r = syscall(SYS_fcntl, (long)fd, (long)F_SETFL | (1L << 32), (long)O_NONBLOCK);
    else
        r = syscall(SYS_ioctl, (long)fd, (long)FIONBIO | (1L << 32), &one);
    printf("%s=%s ", how, err(r));
    fflush(stdout);
    alarm(5);                       /* a blocking accept dies of SIGALRM */
    printf("accept=%s\n", err(accept(fd, NULL, NULL)));
#endif
    return 0;
}

/* i386 socketcall(SYS_SOCKET): a thread flips the family between AF_UNIX and AF_INET
 * while the main thread makes the call; count host AF_INET sockets that result. */
#ifdef __i386__
static volatile unsigned long sc_args[3];
static volatile int stop_flipping;

static void *flipper(void *arg) {
    (void)arg;
    while (!stop_flipping) {
        sc_args[0] = AF_UNIX;
        sc_args[0] = AF_INET;
    }
    return NULL;
}
#endif

static int socketcall_race(int port, double seconds) {
#ifdef __i386__
    pthread_t t;
    sc_args[1] = SOCK_STREAM;
    sc_args[2] = 0;
    pthread_create(&t, NULL, flipper, NULL);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long tries = 0, unix_ = 0, inet = 0, reached = 0;
    do {
        long fd = syscall(SYS_socketcall, 1L /* SYS_SOCKET */, sc_args);
        tries++;
        if (fd >= 0) {
            int domain = -1;
            socklen_t len = sizeof domain;
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
            if (domain == AF_UNIX)
                unix_++;
            if (domain == AF_INET) {
                struct sockaddr_in a = loopback(port);
                inet++;
                /* sysemu's sockets meet no listener on its own 127.0.0.1; a host socket
                 * connects (a few suffice: more would fill the listener's backlog) */
                if (reached < 8 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
                    reached++;
            }
            close(fd);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    stop_flipping = 1;
    pthread_join(t, NULL);
    printf("tries=%ld unix=%ld inet=%ld reached=%ld\n", tries, unix_, inet, reached);
#endif
    return 0;
}

/* i386 socketcall(SYS_SETSOCKOPT) on an AF_UNIX socket: a thread flips the option word
 * between SO_PASSCRED and SO_PASSRIGHTS (value 1) while the main thread makes the call:
 * does SO_PASSRIGHTS, off as sysemu made it, ever come back on? */
#ifdef __i386__
static volatile unsigned long so_args[5];
static volatile int stop_opt_flipping;

static void *opt_flipper(void *arg) {
    (void)arg;
    while (!stop_opt_flipping) {
        so_args[2] = 16;            /* SO_PASSCRED */
        so_args[2] = 83;            /* SO_PASSRIGHTS */
    }
    return NULL;
}
#endif

static int socketcall_passrights(double seconds) {
#ifdef __i386__
    static int one = 1;
    int zero = 0, fd = socket(AF_UNIX, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, 83, &zero, sizeof zero);   /* natively: as sysemu makes it */
    so_args[0] = fd;
    so_args[1] = SOL_SOCKET;
    so_args[2] = 16;
    so_args[3] = (unsigned long)&one;
    so_args[4] = sizeof one;
    pthread_t t;
    pthread_create(&t, NULL, opt_flipper, NULL);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long tries = 0, on = 0;
    do {
        syscall(SYS_socketcall, 14L /* SYS_SETSOCKOPT */, so_args);
        tries++;
        int value = 0;
        socklen_t len = sizeof value;
        if (getsockopt(fd, SOL_SOCKET, 83, &value, &len) == 0 && value) {
            on++;
            setsockopt(fd, SOL_SOCKET, 83, &zero, sizeof zero);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    stop_opt_flipping = 1;
    pthread_join(t, NULL);
    int cred = 0;
    socklen_t len = sizeof cred;
    getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &cred, &len);
    printf("tries=%ld on=%ld passcred=%d\n", tries, on, cred);
#endif
    (void)seconds;
    return 0;
}

/* i386 socketcall(SYS_SETSOCKOPT) on an AF_UNIX socket, which sysemu makes from its copy:
 * values whose compat layout differs (old_timeval32, compat_sock_fprog), bad arguments,
 * and a privileged option both ways (socketcall and the direct call). */
#ifdef __i386__
static long sc_setsockopt(long fd, long level, long name, const void *val, long len) {
    unsigned long a[5] = {fd, level, name, (unsigned long)val, len};
    return syscall(SYS_socketcall, 14L /* SYS_SETSOCKOPT */, a);
}
#endif

static int socketcall_opts(void) {
#ifdef __i386__
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0), p[2], v = 1, size = 65536, got = 0;
    if (pipe(p))
        return 1;
    socklen_t len = sizeof got;
    struct { int sec, usec; } tv = {3, 500000}, back = {0, 0};
    struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 0xffff)};
    struct { unsigned short len; struct sock_filter *filter; } prog = {1, code}, bad = {1, (void *)8};
    printf("sndbuf=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4)));
    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len);
    printf("sndbuf_got=%d ", got);
    printf("passcred=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, 4)));
    len = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &got, &len);
    printf("passcred_got=%d ", got);
    printf("rcvtimeo=%s ", err(sc_setsockopt(fd, SOL_SOCKET, 20 /* SO_RCVTIMEO_OLD */, &tv, 8)));
    len = sizeof back;
    getsockopt(fd, SOL_SOCKET, 20, &back, &len);
    printf("rcvtimeo_got=%d.%06d ", back.sec, back.usec);
    printf("rcvtimeo_short=%s ", err(sc_setsockopt(fd, SOL_SOCKET, 20, &tv, 4)));
    printf("filter=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, 8)));
    printf("filter_len16=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, 16)));
    printf("filter_efault=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &bad, 8)));
    printf("bpf_badfd=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &p[0], 4)));
    printf("unknown=%s ", err(sc_setsockopt(fd, SOL_SOCKET, 9999, &v, 4)));
    printf("neglen=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, -1)));
    printf("efault=%s ", err(sc_setsockopt(fd, SOL_SOCKET, SO_PASSCRED, (void *)8, 4)));
    printf("badfd=%s ", err(sc_setsockopt(-1, SOL_SOCKET, SO_PASSCRED, &v, 4)));
    printf("pipe=%s ", err(sc_setsockopt(p[0], SOL_SOCKET, SO_PASSCRED, &v, 4)));
    long direct = syscall(366 /* i386 setsockopt */, fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4);
    printf("force_direct=%s ", err(direct));
    printf("force_socketcall=%s\n", err(sc_setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4)));
#endif
    return 0;
}

/* Every other process this one can name: can it signal, open, read, trace or steal a
 * descriptor (the supervisor's seccomp listener) from it? */
static int ppid_of(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    int ppid = 0;
    if (p)
        sscanf(p + 2, "%*c %d", &ppid);
    return ppid;
}

static char state_of(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p ? p[2] : '?';
}

static int reach(int sig) {
    int self = getpid(), visible = 0, signalled = 0, stopped = 0, opened = 0, read_mem = 0, traced = 0,
        stolen = 0, notify = 0;
    int targets[4096], ntargets = 0;
    /* the parent and grandparent first (where today's supervisor and watchdog are) */
    int parent = getppid(), grand = parent > 0 ? ppid_of(parent) : 0;
    if (parent > 0)
        targets[ntargets++] = parent;
    if (grand > 0)
        targets[ntargets++] = grand;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && ntargets < 4096) {
        int pid = atoi(e->d_name);
        if (pid > 0 && pid != self && pid != parent && pid != grand)
            targets[ntargets++] = pid;
    }
    if (d)
        closedir(d);
    for (int i = 0; i < ntargets; i++) {
        int pid = targets[i];
        /* only the parent and grandparent are attacked with signals or ptrace: natively
         * they are the test's own shell, so this mode runs under sysemu only */
        int near = i < 2 && (pid == parent || pid == grand);
        visible++;
        if (near && kill(pid, 0) == 0)
            signalled++;
        if (near && sig && kill(pid, sig) == 0) {
            usleep(200000);
            if (state_of(pid) == 'T')
                stopped++;
            kill(pid, SIGCONT);
        }
        int pidfd = syscall(SYS_pidfd_open, pid, 0);
        if (pidfd >= 0) {
            opened++;
            for (int fd = 0; fd < 256; fd++) {
                int got = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
                if (got < 0)
                    continue;
                stolen++;
                char path[64], link[128] = "";
                snprintf(path, sizeof path, "/proc/self/fd/%d", got);
                ssize_t n = readlink(path, link, sizeof link - 1);
                if (n > 0 && strstr(link, "seccomp"))
                    notify++;
                close(got);
            }
            close(pidfd);
        }
        char buf[16];
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
        if (syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0) >= 0 || errno == EFAULT)
            read_mem++;
        if (near && ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
            traced++;
            ptrace(PTRACE_DETACH, pid, 0, 0);
        }
    }
    printf("visible=%d signalled=%d stopped=%d pidfd=%d read_mem=%d traced=%d stolen=%d "
           "notify=%d\n", visible, signalled, stopped, opened, read_mem, traced, stolen, notify);
    return 0;
}

/* AF_PACKET on the host's loopback: the test sends datagrams carrying `marker`. */
static int packet_sniff(const char *marker) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    printf("packet=%s ", err(fd));
    int seen = 0;
    if (fd >= 0) {
        struct timeval tv = {0, 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[65536];
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {                        /* for 3 s, whatever else loopback carries meanwhile */
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0 && memmem(buf, n, marker, strlen(marker)))
                seen = 1;
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while (!seen && now.tv_sec - t0.tv_sec < 3);
    }
    printf("sniffed=%d\n", seen);
    return 0;
}

/* A NETLINK_SOCK_DIAG socket that was sent one inet_diag request for TCP over IPv4
 * (port 0: every socket; else the listener on 127.0.0.1:port), or -1. */
static int diag_request(int type, int flags, int port) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
    printf("diag=%s ", err(fd));
    if (fd < 0)
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg = {0};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = type;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | flags;
    msg.req.sdiag_family = AF_INET;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = ~0u;
    if (port) {
        msg.req.id.idiag_sport = htons(port);
        msg.req.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
        msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    }
    send(fd, &msg, sizeof msg, 0);
    return fd;
}

/* NETLINK_SOCK_DIAG: list TCP sockets; is the test's listener among them? */
static int sock_diag(int port) {
    int fd = diag_request(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, 0);
    int seen = 0, listed = 0;
    if (fd >= 0) {
        char buf[16384];
        int done = 0;
        while (!done) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
                 h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
                    done = 1;
                    break;
                }
                struct inet_diag_msg *m = NLMSG_DATA(h);
                listed++;
                if (ntohs(m->id.idiag_sport) == port)
                    seen = 1;
            }
        }
    }
    printf("listed=%d seen=%d\n", listed, seen);
    return 0;
}

/* NETLINK_SOCK_DIAG SOCK_DESTROY of the TCP listener on 127.0.0.1:port. */
static int sock_destroy(int port) {
    int fd = diag_request(SOCK_DESTROY, NLM_F_ACK, port);
    if (fd >= 0) {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        int code = -1;
        if (n > 0 && NLMSG_OK(h, n) && h->nlmsg_type == NLMSG_ERROR)
            code = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
        printf("destroy=%s", code == 0 ? "ok" : code > 0 ? (errno = code, err(-1)) : "?");
    }
    printf("\n");
    return 0;
}

/* Write a /proc/sys/net value sysemu does not serve. */
static int sysctl_write(const char *path, const char *value) {
    int fd = open(path, O_WRONLY);
    printf("open=%s ", err(fd));
    if (fd >= 0)
        printf("write=%s", err(write(fd, value, strlen(value))));
    printf("\n");
    return 0;
}

/* A background sleeper, then the grandparent (today's watchdog) and the parent killed. */
static int kill_ancestors(const char *seconds) {
    pid_t child = fork();
    if (child == 0) {
        setsid();
        execlp("sleep", "sleep", seconds, (char *)NULL);
        _exit(127);
    }
    int parent = getppid(), grand = ppid_of(parent);
    printf("sleeper=%d parent=%d grand=%d ", child, parent, grand);
    printf("kill_grand=%s ", grand > 0 ? err(kill(grand, SIGKILL)) : "none");
    printf("kill_parent=%s\n", parent > 0 ? err(kill(parent, SIGKILL)) : "none");
    fflush(stdout);
    usleep(300000);
    return 0;
}

/* Descriptors handed in later: take what an outside helper sends over SCM_RIGHTS (after
 * connecting to its path-bound AF_UNIX socket, or on stdin when path is "-"), and use
 * each as a way out: connect to the test's TCP listener, write, sendto its UDP socket. */
static int recv_fds(const char *path, int tcp_port, int udp_port, int bound) {
    int fd = 0;
    signal(SIGPIPE, SIG_IGN);
    alarm(20);
    if (strcmp(path, "-")) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path, path, sizeof a.sun_path - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (bound) {                /* an abstract name first (inside-only, were it not
                                     * for the connect that follows) */
            struct sockaddr_un b = {.sun_family = AF_UNIX};
            int len = snprintf(b.sun_path + 1, sizeof b.sun_path - 1, "sysemu-bound-%d", getpid());
            printf("bind=%s ", err(bind(fd, (struct sockaddr *)&b,
                                        offsetof(struct sockaddr_un, sun_path) + 1 + len)));
        }
        printf("connect=%s ", err(connect(fd, (struct sockaddr *)&a, sizeof a)));
    } else {
        printf("ready\n");         /* the helper sends once the program runs */
    }
    char data[64];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(8 * sizeof(int))];
    } control;
    struct iovec iov = {data, sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(fd, &msg, 0);
    int fds[8], received = 0, connected = 0, written = 0, sent = 0;
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && received < 8; i++)
                memcpy(&fds[received++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    printf("recv=%s received=%d ", err(n), received);
    struct sockaddr_in tcp = loopback(tcp_port), udp = loopback(udp_port);
    for (int i = 0; i < received; i++) {
        /* sendto first: a UDP socket connected to the TCP port would then fail it */
        if (sendto(fds[i], "escaped", 7, MSG_DONTWAIT, (struct sockaddr *)&udp, sizeof udp) == 7)
            sent++;
        if (connect(fds[i], (struct sockaddr *)&tcp, sizeof tcp) == 0)
            connected++;
        if (write(fds[i], "escaped", 7) == 7)
            written++;
    }
    printf("connected=%d written=%d sent=%d\n", connected, written, sent);
    return 0;
}

/* Descriptor passing inside the sandbox keeps working: a child sends a pipe's read end
 * over a socketpair, and over a connection to an abstract listener; the parent reads
 * through what it received. */
static int receive_and_read(int sock) {
    char data[8], buf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {data, sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf,
                         .msg_controllen = sizeof buf};
    struct cmsghdr *c;
    int got;
    if (recvmsg(sock, &msg, 0) < 0 || !(c = CMSG_FIRSTHDR(&msg)) || c->cmsg_type != SCM_RIGHTS)
        return -1;
    memcpy(&got, CMSG_DATA(c), sizeof got);
    ssize_t n = read(got, data, sizeof data);
    close(got);
    return n == 5 && !memcmp(data, "hello", 5) ? 0 : -1;
}

static int send_pipe(int sock) {
    int p[2];
    char buf[CMSG_SPACE(sizeof(int))] = {0};
    if (pipe(p))
        return -1;
    struct iovec iov = {"x", 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf,
                         .msg_controllen = sizeof buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    int r = sendmsg(sock, &msg, 0) == 1 && write(p[1], "hello", 5) == 5 ? 0 : -1;
    close(p[0]);
    close(p[1]);
    return r;
}

static int pass_inside(void) {
    int pair[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "sysemu-pass-%d", getpid());
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 + len;
    int receiver = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (bind(receiver, (struct sockaddr *)&a, alen)) {
        printf("bind=%s\n", err(-1));
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        int sender = socket(AF_UNIX, SOCK_DGRAM, 0);
        int ok = send_pipe(pair[1]) == 0 &&
                 connect(sender, (struct sockaddr *)&a, alen) == 0 && send_pipe(sender) == 0;
        _exit(ok ? 0 : 1);
    }
    printf("pair=%s ", receive_and_read(pair[0]) ? err(-1) : "ok");
    printf("abstract=%s ", receive_and_read(receiver) == 0 ? "ok" : err(-1));
    int status;
    waitpid(child, &status, 0);
    printf("child=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

/* AF_VSOCK: no network namespace confines it (CID 2 is the hypervisor). Only made,
 * never connected: the tests send nothing but loopback traffic. */
static int vsock(void) {
    printf("socket=%s", err(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)));
#ifdef __i386__
    unsigned long words[3] = {40, SOCK_STREAM, 0};
    printf(" socketcall=%s", err(syscall(SYS_socketcall, 1L /* SYS_SOCKET */, words)));
#endif
    printf("\n");
    return 0;
}

/* Other ways in to the kernel's socket calls, each tried against the test's TCP listener:
 * int 0x80 from a 64-bit process (the i386 table: socket, socketcall), io_uring, a child
 * in a network namespace of its own (clone3), a seccomp listener of the program's own
 * (which would receive the program's notifications before sysemu). */
#ifdef __x86_64__
static long int80(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

static int connect_tcp(long fd, int port) {
    struct sockaddr_in a = loopback(port);
    return fd >= 0 && connect((int)fd, (struct sockaddr *)&a, sizeof a) == 0;
}
#endif

static int entries(int port) {
#ifdef __x86_64__
    int reached = 0;
    long fd = int80(359 /* i386 socket */, AF_INET, SOCK_STREAM, 0);
    reached += connect_tcp(fd, port);
    printf("int80_socket=%s ", fd >= 0 ? "ok" : "fail");
    unsigned int *words = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    words[0] = AF_INET;
    words[1] = SOCK_STREAM;
    words[2] = 0;
    fd = int80(102 /* i386 socketcall */, 1 /* SYS_SOCKET */, (long)(uintptr_t)words, 0);
    reached += connect_tcp(fd, port);
    printf("int80_socketcall=%s ", fd >= 0 ? "ok" : "fail");
    char params[120] = {0};
    printf("io_uring=%s ", err(syscall(425 /* io_uring_setup */, 4, params)));
    struct clone_args ca = {.flags = CLONE_NEWUSER | CLONE_NEWNET, .exit_signal = SIGCHLD};
    long child = syscall(SYS_clone3, &ca, sizeof ca);
    if (child == 0)
        _exit(connect_tcp(socket(AF_INET, SOCK_STREAM, 0), port));
    int status = 0;
    if (child > 0)
        waitpid(child, &status, 0);
    reached += child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1;
    /* a listener that takes the program's getppid() calls */
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {4, f};
    fflush(stdout);
    child = fork();
    if (child == 0) {
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                         SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        printf("listener=%s ", err(r));
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("reached=%d\n", reached);
#endif
    (void)port;
    return 0;
}

/* The calls sysemu now answers for AF_UNIX sockets (bind to an abstract name,
 * setsockopt(SO_PASSRIGHTS)) with bad arguments: the errnos must be Linux's. */
static int rights_errnos(void) {
    int p[2], one = 1, zero = 0;
    if (pipe(p))
        return 1;
    int u = socket(AF_UNIX, SOCK_DGRAM, 0), v = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "sysemu-errnos-%d", getpid());
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1);
    struct sockaddr_in in = loopback(0);
    printf("bind_badfd=%s ", err(bind(-1, (struct sockaddr *)&a, alen)));
    printf("bind_pipe=%s ", err(bind(p[0], (struct sockaddr *)&a, alen)));
    printf("bind_efault=%s ", err(bind(u, (struct sockaddr *)8, alen)));
    printf("bind_toolong=%s ", err(bind(u, (struct sockaddr *)&a, 200)));
    printf("bind_inet=%s ", err(bind(u, (struct sockaddr *)&in, sizeof in)));
    printf("bind_short=%s ", err(bind(u, (struct sockaddr *)&a, 1)));
    printf("bind=%s ", err(bind(u, (struct sockaddr *)&a, alen)));
    printf("bind_again=%s ", err(bind(u, (struct sockaddr *)&a, alen)));
    printf("bind_inuse=%s ", err(bind(v, (struct sockaddr *)&a, alen)));
    printf("bind_auto=%s ", err(bind(v, (struct sockaddr *)&a, sizeof(sa_family_t))));
    printf("opt_badfd=%s ", err(setsockopt(-1, SOL_SOCKET, 83, &one, sizeof one)));
    printf("opt_pipe=%s ", err(setsockopt(p[0], SOL_SOCKET, 83, &one, sizeof one)));
    printf("opt_efault=%s ", err(setsockopt(u, SOL_SOCKET, 83, (void *)8, sizeof one)));
    printf("opt_short=%s ", err(setsockopt(u, SOL_SOCKET, 83, &one, 2)));
    printf("opt_neg=%s ", err(setsockopt(u, SOL_SOCKET, 83, &one, -1)));
    printf("opt_off=%s ", err(setsockopt(u, SOL_SOCKET, 83, &zero, sizeof zero)));
    int inet = socket(AF_INET, SOCK_STREAM, 0);
    printf("opt_inet=%s\n", err(setsockopt(inet, SOL_SOCKET, 83, &one, sizeof one)));
    return 0;
}

/* What sysemu keeps different (README: Limitations): a descriptor sent inside the sandbox
 * to a socket the program connect()ed, and SO_PASSRIGHTS as getsockopt shows it. */
static int pass_to_client(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "sysemu-client-%d", getpid());
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 + len;
    int listener = socket(AF_UNIX, SOCK_STREAM, 0), value = -1;
    socklen_t vlen = sizeof value;
    getsockopt(listener, SOL_SOCKET, 83 /* SO_PASSRIGHTS */, &value, &vlen);
    if (bind(listener, (struct sockaddr *)&a, alen) || listen(listener, 1))
        return 1;
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&a, alen))
        return 1;
    int server = accept(listener, NULL, NULL), pair[2];
    printf("to_client=%s ", send_pipe(server) == 0 && receive_and_read(client) == 0 ? "ok" : err(-1));
    printf("to_server=%s ", send_pipe(client) == 0 && receive_and_read(server) == 0 ? "ok" : err(-1));
    socketpair(AF_UNIX, SOCK_DGRAM, 0, pair);
    printf("dgram_pair=%s ", send_pipe(pair[0]) == 0 && receive_and_read(pair[1]) == 0 ? "ok" : err(-1));
    printf("passrights=%d\n", value);
    return 0;
}

/* socketpair(), which sysemu makes for an AF_UNIX datagram pair (and for i386 socketcall):
 * the descriptors' numbers (lowest free), the errnos, the pair working. */
static const char *pair_result(long r, int sv[2], int expect) {
    static char buf[64];
    if (r < 0)
        return err(r);
    ssize_t n = write(sv[0], "x", 1);
    char c = 0;
    snprintf(buf, sizeof buf, "%s", n == 1 && read(sv[1], &c, 1) == 1 && c == 'x' &&
             sv[0] == expect && sv[1] == expect + 1 ? "ok" : "wrong");
    close(sv[0]);
    close(sv[1]);
    return buf;
}

static int pairs(void) {
    int sv[2], lowest = dup(0);
    close(lowest);
    printf("dgram=%s ", pair_result(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), sv, lowest));
    printf("stream=%s ", pair_result(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), sv, lowest));
    printf("dgram_flags=%s ", pair_result(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
                                                     SOCK_CLOEXEC, 0, sv), sv, lowest));
    printf("bad_flags=%s ", err(socketpair(AF_UNIX, SOCK_DGRAM | 0x100, 0, sv)));
    int *volatile nowhere = (int *)8;
    printf("efault=%s ", err(socketpair(AF_UNIX, SOCK_DGRAM, 0, nowhere)));
    printf("proto=%s ", err(socketpair(AF_UNIX, SOCK_DGRAM, 6, sv)));
#ifdef __i386__
    unsigned long words[4] = {AF_UNIX, SOCK_DGRAM, 0, (unsigned long)sv};
    printf("sc_dgram=%s ", pair_result(syscall(SYS_socketcall, 8L, words), sv, lowest));
    words[1] = SOCK_STREAM;
    printf("sc_stream=%s ", pair_result(syscall(SYS_socketcall, 8L, words), sv, lowest));
    words[0] = AF_INET;
    printf("sc_inet=%s ", err(syscall(SYS_socketcall, 8L, words)));
    words[0] = 99;
    printf("sc_family=%s ", err(syscall(SYS_socketcall, 8L, words)));
    words[0] = AF_UNIX;
    words[3] = 8;
    printf("sc_efault=%s ", err(syscall(SYS_socketcall, 8L, words)));
#endif
    printf("after=%s\n", dup(0) == lowest ? "ok" : "leaked");
    return 0;
}

/* A datagram socketpair end, disconnected and bound to a path: can a process outside
 * send it descriptors there? */
static int dgram_pair_path(const char *path) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
        return 1;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    printf("disconnect=%s ", err(connect(sv[0], &unspec, sizeof unspec)));
    printf("bind=%s\nready\n", err(bind(sv[0], (struct sockaddr *)&a, sizeof a)));
    alarm(20);
    char data[16], buf[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {data, sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf,
                         .msg_controllen = sizeof buf};
    ssize_t n = recvmsg(sv[0], &msg, 0);
    struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL;
    printf("received=%d\n", c && c->cmsg_type == SCM_RIGHTS ?
           (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0);
    return 0;
}

/* Sockets until the descriptor limit: how many, and the error. */
static int fill_fds(void) {
    int n = 0;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            printf("sockets=%d error=%s\n", n, err(fd));
            return 0;
        }
        n++;
    }
}

/* Seeded random arguments with high bits and odd flags, from several threads (i386:
 * socketcall with a thread rewriting the argument block meanwhile). Every descriptor
 * that results tries the test's listeners: TCP connect, UDP sendto. */
static volatile int stress_stop;
static int stress_tcp, stress_udp;
static volatile long stress_calls, stress_sockets, stress_reached, stress_sent;
#ifdef __i386__
static volatile unsigned long stress_block[3];
#endif

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static long pick(uint64_t *s, const long *values, int n) {
    long v = values[xorshift(s) % n];
    if (xorshift(s) % 4 == 0)
        v = (long)(xorshift(s) % 64);
#ifdef __x86_64__
    if (xorshift(s) % 2)
        v |= (long)(xorshift(s) & 0xffffffff00000000ULL);
#endif
    return v;
}

static const long FAMILIES[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, 0};
static const long TYPES[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET,
                             SOCK_STREAM | SOCK_NONBLOCK, SOCK_DGRAM | SOCK_CLOEXEC};
static const long PROTOS[] = {0, IPPROTO_TCP, IPPROTO_UDP, 0};

static void try_escape(int fd) {
    struct sockaddr_in tcp = loopback(stress_tcp), udp = loopback(stress_udp);
    __sync_fetch_and_add(&stress_sockets, 1);
    /* A sent datagram is no proof (sysemu's UDP sockets send into sysemu's network): the
     * test's UDP socket counts what reaches it. */
    if (sendto(fd, "stress", 6, MSG_DONTWAIT, (struct sockaddr *)&udp, sizeof udp) == 6)
        __sync_fetch_and_add(&stress_sent, 1);
    int type = 0;
    socklen_t tlen = sizeof type;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
    /* a datagram socket's connect() only names its peer: a stream connect is a reach */
    if (stress_reached < 8 && connect(fd, (struct sockaddr *)&tcp, sizeof tcp) == 0
            && type == SOCK_STREAM)
        __sync_fetch_and_add(&stress_reached, 1);
    close(fd);
}

static void *stress_thread(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    int one = 1;
    while (!stress_stop) {
        long r;
        switch (xorshift(&s) % 4) {
#ifdef __i386__
        case 0:
        case 1:
            stress_block[0] = pick(&s, FAMILIES, 6);
            stress_block[1] = pick(&s, TYPES, 6);
            stress_block[2] = pick(&s, PROTOS, 4);
            r = syscall(SYS_socketcall, 1L, stress_block);
            break;
#else
        case 0:
        case 1:
            r = syscall(SYS_socket, pick(&s, FAMILIES, 6), pick(&s, TYPES, 6),
                        pick(&s, PROTOS, 4));
            break;
#endif
        case 2:
            r = socket(AF_INET, SOCK_STREAM, 0);
            if (r >= 0) {
                long cmd = F_SETFL;
#ifdef __x86_64__
                cmd |= (long)(xorshift(&s) & 0xffffffff00000000ULL);
#endif
                syscall(SYS_fcntl, r, cmd, (long)(xorshift(&s) & (O_NONBLOCK | O_APPEND)));
            }
            break;
        default:
            r = socket(AF_INET, SOCK_STREAM, 0);
            if (r >= 0) {
                long cmd = FIONBIO;
#ifdef __x86_64__
                cmd |= (long)(xorshift(&s) & 0xffffffff00000000ULL);
#endif
                syscall(SYS_ioctl, r, cmd, &one);
            }
            break;
        }
        __sync_fetch_and_add(&stress_calls, 1);
        if (r >= 0)
            try_escape((int)r);
    }
    return NULL;
}

#ifdef __i386__
static void *stress_flipper(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg + 7;
    while (!stress_stop)
        stress_block[0] = pick(&s, FAMILIES, 6);
    return NULL;
}
#endif

static int stress(long seed, double seconds) {
    pthread_t t[5];
    int n = 4;
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)seconds + 30);
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, stress_thread, (void *)(uintptr_t)(seed * 16 + i));
#ifdef __i386__
    pthread_create(&t[n++], NULL, stress_flipper, (void *)(uintptr_t)seed);
#endif
    usleep((useconds_t)(seconds * 1e6));
    stress_stop = 1;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    printf("calls=%ld sockets=%ld reached=%ld udp_sent=%ld\n", stress_calls, stress_sockets,
           stress_reached, stress_sent);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "0";
    if (!strcmp(mode, "width_tcp"))
        return width_tcp(atoi(arg));
    if (!strcmp(mode, "width_udp"))
        return width_udp(atoi(arg));
    if (!strcmp(mode, "fcntl") || !strcmp(mode, "ioctl"))
        return width_nonblock(mode);
    if (!strcmp(mode, "socketcall"))
        return socketcall_race(atoi(arg), argc > 3 ? atof(argv[3]) : 2.0);
    if (!strcmp(mode, "socketcall_passrights"))
        return socketcall_passrights(atof(arg));
    if (!strcmp(mode, "socketcall_opts"))
        return socketcall_opts();
    if (!strcmp(mode, "reach"))
        return reach(0);
    if (!strcmp(mode, "stop"))
        return reach(SIGSTOP);
    if (!strcmp(mode, "packet"))
        return packet_sniff(arg);
    if (!strcmp(mode, "diag"))
        return sock_diag(atoi(arg));
    if (!strcmp(mode, "destroy"))
        return sock_destroy(atoi(arg));
    if (!strcmp(mode, "sysctl"))
        return sysctl_write(arg, argc > 3 ? argv[3] : "1");
    if (!strcmp(mode, "kill_ancestors"))
        return kill_ancestors(arg);
    if (!strcmp(mode, "stress") && argc > 5) {
        stress_tcp = atoi(argv[3]);
        stress_udp = atoi(argv[4]);
        return stress(atol(arg), atof(argv[5]));
    }
    if (!strcmp(mode, "recv_fds") && argc > 4)
        return recv_fds(arg, atoi(argv[3]), atoi(argv[4]), argc > 5 && !strcmp(argv[5], "bound"));
    if (!strcmp(mode, "dgram_pair_path"))
        return dgram_pair_path(arg);
    if (!strcmp(mode, "pairs"))
        return pairs();
    if (!strcmp(mode, "pass_to_client"))
        return pass_to_client();
    if (!strcmp(mode, "rights_errnos"))
        return rights_errnos();
    if (!strcmp(mode, "entries"))
        return entries(atoi(arg));
    if (!strcmp(mode, "vsock"))
        return vsock();
    if (!strcmp(mode, "pass_inside"))
        return pass_inside();
    if (!strcmp(mode, "fill_fds"))
        return fill_fds();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
