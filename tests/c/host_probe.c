/* Probe for tests/test_host_*.py: each mode makes a few syscalls and prints results.
 * The "memory", "interrupt", "wake" and "timeout" modes expect sysemu's test handlers
 * (uname, mq_unlink, acct); do not run them natively expecting anything meaningful. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void on_alarm(int sig) { (void)sig; }

static void report(const char *what, long r) {
    if (r < 0)
        printf("%s -1 errno=%d\n", what, errno);
    else
        printf("%s %ld\n", what, r);
    fflush(stdout);
}

static void *worker(void *arg) {
    long id = (long)arg, sum = 0;
    for (long i = 0; i < 200000; i++)
        sum += (i * id) % 7;
    printf("thread %ld sum %ld pid-same %d\n", id, sum, getpid() == (pid_t)syscall(SYS_getpid));
    return NULL;
}

static void *tgid_thread(void *arg) {
    (void)arg;
    printf("thread-tgid %ld\n", syscall(SYS_getppid));
    printf("thread-tid-differs %d\n", syscall(SYS_gettid) != getpid());
    return NULL;
}

static void *waker(void *arg) {
    (void)arg;
    usleep(50000);
    report("wake", syscall(SYS_acct, 2L));
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    long page = sysconf(_SC_PAGESIZE);
    if (!strcmp(mode, "memory")) {
        char buf[6 * 65];   /* struct utsname */
        memset(buf, 'x', sizeof buf);
        report("uname-good", syscall(SYS_uname, buf));
        printf("uname-text %s\n", buf);
        report("uname-bad", syscall(SYS_uname, (void *)8));
        char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (int i = 0; i < 64; i++)
            two[page - 32 + i] = (char)(i + 1);
        report("cross-page", syscall(SYS_mq_unlink, two + page - 32, 64L));
        munmap(two + page, page);
        report("cross-unmapped", syscall(SYS_mq_unlink, two + page - 32, 64L));
        report("bad-len-zero", syscall(SYS_mq_unlink, (void *)8, 0L));
    } else if (!strcmp(mode, "interrupt")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;      /* no SA_RESTART: the call fails with EINTR */
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = {{0, 0}, {0, 100000}};
        setitimer(ITIMER_REAL, &it, NULL);
        report("blocked", syscall(SYS_acct, 0L));
        report("after", syscall(SYS_acct, 9L));
    } else if (!strcmp(mode, "slow")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = {{0, 100000}, {0, 100000}};   /* until the call is hit */
        setitimer(ITIMER_REAL, &it, NULL);
        report("slow", syscall(SYS_acct, 4L));
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
    } else if (!strcmp(mode, "install")) {
        long fd = syscall(SYS_acct, 5L);
        report("install", fd);
        report("cloexec", fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
        report("write", write((int)fd, "ping", 4));
    } else if (!strcmp(mode, "tgid")) {
        pthread_t t;
        printf("main-tgid %ld\n", syscall(SYS_getppid));
        fflush(stdout);
        pthread_create(&t, NULL, tgid_thread, NULL);
        pthread_join(t, NULL);
    } else if (!strcmp(mode, "wake")) {
        pthread_t t;
        pthread_create(&t, NULL, waker, NULL);
        report("woken", syscall(SYS_acct, 1L));
        pthread_join(t, NULL);
    } else if (!strcmp(mode, "timeout")) {
        report("timeout", syscall(SYS_acct, 3L));
    } else if (!strcmp(mode, "acct")) {
        report("acct", syscall(SYS_acct, 0L));
        report("acct", syscall(SYS_acct, 0L));
    } else if (!strcmp(mode, "threads")) {
        pthread_t t[8];
        for (long i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, worker, (void *)i);
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
    } else if (!strcmp(mode, "getppid")) {
        report("getppid", syscall(SYS_getppid));
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
