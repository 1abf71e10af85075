/* The exit-path probe: system calls whose return to user mode Linux makes through IRET
 * (or SYSRET), one mode per case. `sysemu exitpath` reports the path taken; this program
 * prints what it can see itself, the same natively and under the tracer.
 *
 *   exitpath_probe execve         a failed execve, then a successful one (new registers)
 *   exitpath_probe sigreturn      rt_sigreturn after a signal at a syscall's exit, after a
 *                                 fault (#UD), and after a fault whose handler makes
 *                                 RCX == RIP and R11 == EFLAGS in the frame
 *   exitpath_probe noncanonical ADDR
 *                                 rt_sigreturn to RIP = ADDR (RCX, R11 made to agree):
 *                                 the process must die of SIGSEGV
 *   exitpath_probe tf             getppid with the trap flag set (popf), as a thread being
 *                                 single-stepped: one SIGTRAP after it
 *   exitpath_probe regs           getpgrp via a raw syscall; prints RCX and R11 as the
 *                                 instruction after it sees them (a tracer may change them)
 *   exitpath_probe restart        read(2) on a pipe while a child sends SIGWINCH (default:
 *                                 ignored), then writes one byte: natively the read just
 *                                 waits; a traced thread's read is interrupted
 *                                 (ERESTARTSYS) and restarted
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define X86_EFLAGS_TF 0x100UL
#define X86_EFLAGS_RF 0x10000UL

/* A raw syscall; the label right after it, and RCX and R11 as the next instruction sees
 * them (SYSRET: the return address and RFLAGS; IRET: whatever pt_regs held). */
static long sys0(long nr, unsigned long *after, unsigned long *rcx, unsigned long *r11)
{
    long ret;
    unsigned long ip, c, f;
    asm volatile("lea 1f(%%rip), %1\n\t"
                 "syscall\n"
                 "1:\n\t"
                 "mov %%rcx, %2\n\t"
                 "mov %%r11, %3\n\t"
                 : "=a"(ret), "=&r"(ip), "=&r"(c), "=&r"(f)
                 : "a"(nr)
                 : "rcx", "r11", "memory");
    *after = ip;
    *rcx = c;
    *r11 = f;
    return ret;
}

static void on_signal(int sig, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(2);
    }
}

/* --- execve */
static int do_execve(char **argv)
{
    char *none[] = {"/nonexistent/exitpath_probe", NULL};
    char *child[] = {argv[0], "exec-child", NULL};
    execve(none[0], none, environ);          /* fails: the old registers go back */
    printf("execve failed as expected\n");
    fflush(stdout);
    execve("/proc/self/exe", child, environ);
    perror("execve");
    return 1;
}

/* --- sigreturn */
static volatile unsigned long ill_flags;
static volatile int usr1_seen;
static int agree;                 /* the SIGILL handler makes RCX == RIP, R11 == EFLAGS */

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig; (void)si; (void)ctx;
    usr1_seen = 1;
}

static void on_ill(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    greg_t *g = uc->uc_mcontext.gregs;
    (void)sig; (void)si;
    ill_flags = g[REG_EFL];
    g[REG_RIP] += 2;                              /* over the ud2 */
    if (agree) {
        g[REG_RCX] = g[REG_RIP];
        g[REG_R11] = g[REG_EFL];
    }
}

static int do_sigreturn(void)
{
    on_signal(SIGUSR1, on_usr1);
    on_signal(SIGILL, on_ill);
    raise(SIGUSR1);                               /* delivered at a syscall's exit */
    printf("SIGUSR1 handled: %d\n", usr1_seen);
    asm volatile("mov $0x1234, %%rcx\n\tud2" ::: "rcx", "r11", "memory");
    printf("SIGILL handled, RF in the frame's EFLAGS: %d\n", !!(ill_flags & X86_EFLAGS_RF));
    agree = 1;
    asm volatile("mov $0x1234, %%rcx\n\tud2" ::: "rcx", "r11", "memory");
    printf("SIGILL handled again, RF in the frame's EFLAGS: %d\n",
           !!(ill_flags & X86_EFLAGS_RF));
    return 0;
}

/* --- noncanonical */
static unsigned long target;

static void on_usr1_jump(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    greg_t *g = uc->uc_mcontext.gregs;
    (void)sig; (void)si;
    g[REG_RIP] = target;
    g[REG_RCX] = target;                          /* only the RIP check may fail */
    g[REG_R11] = g[REG_EFL];
}

static int do_noncanonical(const char *addr)
{
    target = strtoul(addr, NULL, 0);
    on_signal(SIGUSR1, on_usr1_jump);
    printf("rt_sigreturn to %#lx\n", target);
    fflush(stdout);
    raise(SIGUSR1);
    printf("still running after rt_sigreturn to %#lx\n", target);
    return 1;
}

/* --- tf */
static volatile int traps;
static volatile unsigned long trap_ip;

static void on_trap(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig; (void)si;
    if (traps++ == 0)
        trap_ip = uc->uc_mcontext.gregs[REG_RIP];
    uc->uc_mcontext.gregs[REG_EFL] &= ~X86_EFLAGS_TF;
}

static int do_tf(void)
{
    long ret;
    unsigned long after;
    on_signal(SIGTRAP, on_trap);
    /* Step over the red zone (pushfq writes below RSP), set TF, make the call. */
    asm volatile("lea -128(%%rsp), %%rsp\n\t"
                 "lea 1f(%%rip), %1\n\t"
                 "pushfq\n\t"
                 "orq $0x100, (%%rsp)\n\t"
                 "popfq\n\t"
                 "syscall\n"
                 "1:\n\t"
                 "lea 128(%%rsp), %%rsp\n\t"
                 : "=a"(ret), "=&r"(after)
                 : "a"((long)SYS_getppid)
                 : "rcx", "r11", "memory", "cc");
    printf("tf: getppid ok %d, SIGTRAPs %d, first after the syscall: %d\n",
           ret == getppid(), traps, trap_ip >= after && trap_ip <= after + 8);
    return 0;
}

/* --- regs */
static int do_regs(void)
{
    unsigned long after, rcx, r11;
    long ret = sys0(SYS_getpgrp, &after, &rcx, &r11);
    printf("regs: getpgrp=%ld rcx=%#lx r11=%#lx rcx_is_return_address=%d\n",
           ret, rcx, r11, rcx == after);
    return 0;
}

/* --- restart */
static int in_read(pid_t pid)
{
    char path[64], buf[64] = "";
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = 0;
    fclose(f);
    return !strncmp(buf, "0 ", 2);                /* in read(2), or stopped at its entry */
}

static int do_restart(void)
{
    int fds[2], status;
    char c = 0;
    pid_t parent = getpid(), child;
    if (pipe(fds) != 0)
        return 2;
    child = fork();
    if (child == 0) {
        for (int i = 0; i < 2000 && !in_read(parent); i++)
            usleep(5000);
        kill(parent, SIGWINCH);
        usleep(100000);
        if (write(fds[1], "x", 1) != 1)
            _exit(3);
        _exit(0);
    }
    ssize_t n = read(fds[0], &c, 1);
    waitpid(child, &status, 0);
    printf("restart: read %zd byte: %c, child status %d\n", n, c, status);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "execve"))
        return do_execve(argv);
    if (argc >= 2 && !strcmp(argv[1], "exec-child")) {
        printf("exec-child running\n");
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "sigreturn"))
        return do_sigreturn();
    if (argc >= 3 && !strcmp(argv[1], "noncanonical"))
        return do_noncanonical(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "tf"))
        return do_tf();
    if (argc >= 2 && !strcmp(argv[1], "regs"))
        return do_regs();
    if (argc >= 2 && !strcmp(argv[1], "restart"))
        return do_restart();
    fprintf(stderr, "usage: %s execve|sigreturn|noncanonical ADDR|tf|regs|restart\n", argv[0]);
    return 2;
}
