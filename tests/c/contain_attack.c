/* Attacks on sysemu's containment (tests/test_contain.py): each mode tries one way out of
 * the sandbox and prints `key=value` words saying how far it got. Run natively, the
 * network modes reach the test's host listeners (that is how the test knows the attack
 * works); under `sysemu run` none may. Build x86-64, or -m32 -static for "socketcall". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
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
    if (!strcmp(mode, "fill_fds"))
        return fill_fds();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
