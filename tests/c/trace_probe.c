/* A scripted probe for tests/test_trace_live.py: the same calls natively (under strace)
 * and under `sysemu run --strace`. Each step prints `name rc errno` on stdout.
 *
 *   trace_probe net      socket, SO_REUSEADDR, bind 127.0.0.1:0, getsockname, listen,
 *                        a 2nd bind (127.0.0.1:0, succeeds), a 3rd that fails EADDRINUSE,
 *                        connect to a closed port (ECONNREFUSED), accept4 that waits for a
 *                        forked child's connect, close
 *   trace_probe delay    ns spent in one getpid (for delay_enter/delay_exit injection)
 *   trace_probe getpid   what getpid returns (retval injection)
 *   trace_probe signal   whether SIGUSR1 arrived around one getpid (signal injection)
 *   trace_probe eintr    an accept4 interrupted by SIGALRM (no SA_RESTART)
 *   trace_probe small    a few ordinary calls, for --trace-all against strace -f
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, long rc)
{
    printf("%s %ld %s\n", what, rc, rc < 0 ? strerrorname_np(errno) : "0");
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

/* Wait until `pid` is inside syscall `nr` (natively, or held by a seccomp notification):
 * /proc/PID/syscall starts with the number while the thread is blocked in it. */
static void wait_in_syscall(pid_t pid, int nr)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", pid);
    for (int i = 0; i < 200000; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = 0;
            if (atoi(buf) == nr && buf[0] != '-')
                return;
        }
        usleep(1000);
    }
}

static int net(void)
{
    int one = 1;
    struct sockaddr_in a = loopback(0), b;
    socklen_t len = sizeof b;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    report("socket", s);
    report("setsockopt", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    report("bind", bind(s, (struct sockaddr *)&a, sizeof a));
    report("getsockname", getsockname(s, (struct sockaddr *)&b, &len));
    int port = ntohs(b.sin_port);
    report("listen", listen(s, 16));

    int t = socket(AF_INET, SOCK_STREAM, 0);          /* a port nobody listens on */
    report("bind2", bind(t, (struct sockaddr *)&a, sizeof a));
    len = sizeof b;
    getsockname(t, (struct sockaddr *)&b, &len);
    int closed = ntohs(b.sin_port);
    close(t);

    int u = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in taken = loopback(port);
    report("bind3", bind(u, (struct sockaddr *)&taken, sizeof taken));
    struct sockaddr_in refused = loopback(closed);
    report("connect", connect(u, (struct sockaddr *)&refused, sizeof refused));
    close(u);

    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        wait_in_syscall(parent, SYS_accept4);
        int c = socket(AF_INET, SOCK_STREAM, 0);
        int rc = connect(c, (struct sockaddr *)&taken, sizeof taken);
        close(c);
        _exit(rc == 0 ? 0 : 1);
    }
    struct sockaddr_in peer;
    len = sizeof peer;
    int fd = accept4(s, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    report("accept4", fd);
    int status = 0;
    waitpid(child, &status, 0);
    report("child", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
    close(fd);
    close(s);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t got;

static void on_signal(int sig)
{
    got = sig;
}

static int eintr(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;           /* no SA_RESTART: the call fails EINTR */
    sigaction(SIGALRM, &sa, NULL);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    bind(s, (struct sockaddr *)&a, sizeof a);
    listen(s, 1);
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
    report("accept4", accept4(s, NULL, NULL, 0));
    report("signal", got);
    return 0;
}

static int small(void)
{
    char buf[16];
    int fd = open("/dev/null", O_RDONLY);
    report("read", read(fd, buf, sizeof buf));
    close(fd);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    report("bind", bind(s, (struct sockaddr *)&a, sizeof a));
    close(s);
    struct timespec ts = {0, 1000};
    nanosleep(&ts, NULL);
    report("getpid", getpid() > 0);
    return 0;
}

int main(int argc, char **argv)
{
    alarm(20);                       /* bounded whatever happens */
    const char *mode = argc > 1 ? argv[1] : "net";
    if (!strcmp(mode, "net"))
        return net();
    if (!strcmp(mode, "delay")) {
        double t0 = now();
        syscall(SYS_getpid);
        printf("elapsed %.6f\n", now() - t0);
        return 0;
    }
    if (!strcmp(mode, "getpid")) {
        printf("getpid %ld\n", syscall(SYS_getpid));
        return 0;
    }
    if (!strcmp(mode, "signal")) {
        signal(SIGUSR1, on_signal);
        syscall(SYS_getpid);
        for (int i = 0; i < 5000 && !got; i++)
            usleep(1000);
        printf("signal %d\n", (int)got);
        return 0;
    }
    if (!strcmp(mode, "eintr"))
        return eintr();
    if (!strcmp(mode, "small"))
        return small();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
