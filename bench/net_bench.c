/* Network benchmark probe: run natively and under `sysemu run`, same binary.
 *   net_bench bulk MB        one connection, MB megabytes client -> server; prints MB/s
 *   net_bench connrate N     N x (connect, 1-byte echo, close); prints connections/s
 *   net_bench connpar N      the same with 32 client processes at once (N in all)
 *   net_bench pingpong N     one connection, N 1-byte round trips; prints us/rtt
 *   net_bench pingpong_msg N the same with sendmsg/recvmsg (what their trap costs TCP)
 *   net_bench udp_rr N       UDP request/response: the server recvfrom()s and sendto()s
 *                            (addresses), the client send()s and recv()s on a connected
 *                            socket; N round trips, prints us/rtt
 *   net_bench udp_bulk MB    1400-byte datagrams, connected send() to a server's recv():
 *                            MB received per second (a lost datagram is not counted)
 *   net_bench idle N         holds N connections open (both ends: two processes), prints
 *                            "held N" and waits for its standard input to end
 * Server and client are two processes (fork) on 127.0.0.1, an ephemeral port. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static int listener(struct sockaddr_in *addr) {
    socklen_t len = sizeof *addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0) die("bind");
    if (listen(fd, 128) < 0) die("listen");
    if (getsockname(fd, (struct sockaddr *)addr, &len) < 0) die("getsockname");
    return fd;
}

static int dial(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr) < 0) die("connect");
    return fd;
}

/* n x (accept, echo one byte, close) */
static void serve_echo(int lfd, long n) {
    for (long i = 0; i < n; i++) {
        int fd = accept(lfd, NULL, NULL);
        char c;
        if (fd < 0) die("accept");
        if (read(fd, &c, 1) != 1 || write(fd, &c, 1) != 1) die("echo");
        close(fd);
    }
}

/* n x (connect, one byte there and back, close) */
static void dial_echo(struct sockaddr_in *addr, long n) {
    for (long i = 0; i < n; i++) {
        int fd = dial(addr);
        char c = 'x';
        if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) die("client echo");
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s bulk MB | connrate N | connpar N | pingpong N | idle N\n",
                argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    struct sockaddr_in addr;
    int lfd = listener(&addr);
    if (!strcmp(argv[1], "bulk")) {
        static char buf[1 << 17];
        pid_t pid = fork();
        if (pid == 0) {                       /* client: send n MB */
            close(lfd);
            int fd = dial(&addr);
            long left = n << 20;
            while (left > 0) {
                ssize_t w = write(fd, buf, left < (long)sizeof buf ? left : (long)sizeof buf);
                if (w <= 0) die("write");
                left -= w;
            }
            close(fd);
            _exit(0);
        }
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) die("accept");
        double t0 = now();
        long got = 0;
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) got += r;
        double dt = now() - t0;
        waitpid(pid, NULL, 0);
        if (got != n << 20) { fprintf(stderr, "short: %ld\n", got); return 1; }
        printf("%.1f MB/s\n", n / dt);
    } else if (!strcmp(argv[1], "connrate")) {
        pid_t pid = fork();
        if (pid == 0) {                       /* server: accept, echo one byte, close */
            serve_echo(lfd, n);
            _exit(0);
        }
        close(lfd);
        double t0 = now();
        dial_echo(&addr, n);
        double dt = now() - t0;
        waitpid(pid, NULL, 0);
        printf("%.0f conn/s\n", n / dt);
    } else if (!strcmp(argv[1], "connpar")) {
        enum { CLIENTS = 32 };
        long each = n / CLIENTS;
        n = each * CLIENTS;
        pid_t server = fork();
        if (server == 0) {
            serve_echo(lfd, n);
            _exit(0);
        }
        close(lfd);
        double t0 = now();
        for (int k = 0; k < CLIENTS; k++) {
            if (fork() == 0) {
                dial_echo(&addr, each);
                _exit(0);
            }
        }
        int status, failed = 0;
        for (int k = 0; k < CLIENTS + 1; k++) {
            if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) failed = 1;
        }
        double dt = now() - t0;
        if (failed) { fprintf(stderr, "a process failed\n"); return 1; }
        printf("%.0f conn/s\n", n / dt);
    } else if (!strcmp(argv[1], "pingpong")) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = accept(lfd, NULL, NULL);
            char c;
            if (fd < 0) die("accept");
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            while (read(fd, &c, 1) == 1)
                if (write(fd, &c, 1) != 1) die("echo");
            _exit(0);
        }
        close(lfd);
        int fd = dial(&addr), one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char c = 'x';
        double t0 = now();
        for (long i = 0; i < n; i++)
            if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) die("ping");
        double dt = now() - t0;
        close(fd);
        waitpid(pid, NULL, 0);
        printf("%.2f us/rtt\n", dt / n * 1e6);
    } else if (!strcmp(argv[1], "pingpong_msg")) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = accept(lfd, NULL, NULL);
            char c;
            struct iovec iov = {&c, 1};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
            if (fd < 0) die("accept");
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            while (recvmsg(fd, &m, 0) == 1)
                if (sendmsg(fd, &m, 0) != 1) die("echo");
            _exit(0);
        }
        close(lfd);
        int fd = dial(&addr), one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char c = 'x';
        struct iovec iov = {&c, 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        double t0 = now();
        for (long i = 0; i < n; i++)
            if (sendmsg(fd, &m, 0) != 1 || recvmsg(fd, &m, 0) != 1) die("ping");
        double dt = now() - t0;
        close(fd);
        waitpid(pid, NULL, 0);
        printf("%.2f us/rtt\n", dt / n * 1e6);
    } else if (!strcmp(argv[1], "udp_rr") || !strcmp(argv[1], "udp_bulk")) {
        int bulk = !strcmp(argv[1], "udp_bulk");
        close(lfd);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        int srv = socket(AF_INET, SOCK_DGRAM, 0);
        if (srv < 0 || bind(srv, (struct sockaddr *)&sa, sizeof sa) < 0) die("udp bind");
        if (getsockname(srv, (struct sockaddr *)&sa, &len) < 0) die("getsockname");
        int rcvbuf = 4 << 20;
        setsockopt(srv, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        static char buf[2048];
        long total = bulk ? (n << 20) / 1400 : n;
        pid_t pid = fork();
        if (pid == 0) {
            struct sockaddr_in peer;
            if (bulk) {
                long got = 0, bytes = 0;
                struct timeval tv = {1, 0};
                setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                double t0 = 0;
                for (;;) {
                    ssize_t r = recv(srv, buf, sizeof buf, 0);
                    if (r < 0) break;             /* a second without datagrams: done */
                    if (r == 1) break;            /* the end marker */
                    if (!got++) t0 = now();
                    bytes += r;
                }
                double dt = now() - t0;
                printf("%.1f MB/s (%ld of %ld datagrams)\n", bytes / dt / 1048576, got, total);
                fflush(stdout);
                _exit(0);
            }
            for (long i = 0; i < total; i++) {
                socklen_t plen = sizeof peer;
                ssize_t r = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
                if (r < 0) die("recvfrom");
                if (sendto(srv, buf, r, 0, (struct sockaddr *)&peer, plen) != r) die("sendto");
            }
            _exit(0);
        }
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("udp connect");
        double t0 = now();
        if (bulk) {
            for (long i = 0; i < total; i++) {
                if (send(fd, buf, 1400, 0) != 1400) die("send");
                if ((i & 63) == 63) usleep(50);  /* paced: a queue that overflows drops */
            }
            usleep(100000);
            send(fd, buf, 1, 0);
            waitpid(pid, NULL, 0);
            return 0;
        }
        for (long i = 0; i < total; i++)
            if (send(fd, buf, 32, 0) != 32 || recv(fd, buf, sizeof buf, 0) != 32) die("rr");
        double dt = now() - t0;
        waitpid(pid, NULL, 0);
        printf("%.2f us/rtt\n", dt / n * 1e6);
    } else if (!strcmp(argv[1], "idle")) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        int ready[2];
        if (pipe(ready)) die("pipe");
        pid_t pid = fork();
        if (pid == 0) {                       /* the client ends */
            close(lfd);
            close(ready[0]);
            for (long i = 0; i < n; i++) dial(&addr);
            if (write(ready[1], "c", 1) != 1) die("ready");
            char c;
            while (read(0, &c, 1) > 0) {}
            _exit(0);
        }
        close(ready[1]);
        for (long i = 0; i < n; i++)
            if (accept(lfd, NULL, NULL) < 0) die("accept");
        char c;
        if (read(ready[0], &c, 1) != 1) die("client");
        printf("held %ld\n", n);
        fflush(stdout);
        while (read(0, &c, 1) > 0) {}
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    } else {
        return 2;
    }
    return 0;
}
