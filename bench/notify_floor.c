/* The floor of a trapped call: a minimal C supervisor answering seccomp notifications.
 *
 *   notify_floor ITERATIONS REPEATS [sync]
 *
 * Forks a child that loads a filter trapping getppid (SECCOMP_RET_USER_NOTIF) and calls it
 * ITERATIONS times per repeat; the parent receives each notification and answers it with a
 * value (blocking SECCOMP_IOCTL_NOTIF_RECV / SEND, nothing else). With "sync", the
 * listener gets SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6+): the kernel wakes the
 * supervisor and then the caller on the current CPU, so the pair runs on one CPU instead
 * of waking an idle one each way.
 *
 * Prints "ns <nanoseconds per call>" per repeat (after one untimed warm-up repeat), as
 * bench/syscall_probe.c does; "unavailable <reason>" and exit 3 where the kernel lacks
 * what the mode needs. Linux: kernel/seccomp.c, samples/seccomp/user-trap.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int load_filter(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
		       &prog);
}

static int send_fd(int sock, int fd)
{
	char data = 'L', ctrl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
			      .msg_controllen = sizeof(ctrl) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char data, ctrl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
			      .msg_controllen = sizeof(ctrl) };
	int fd = -1;
	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

/* The child: load the filter, hand the listener over, wait for the go-ahead, time calls.
 * The listener is sent before the first trapped call, and sendmsg is not trapped. */
static void child(int sock, long iterations, int repeats)
{
	int listener = load_filter();
	if (listener < 0) {
		printf("unavailable seccomp listener: %s\n", strerror(errno));
		fflush(stdout);
		_exit(3);
	}
	if (send_fd(sock, listener))
		_exit(4);
	close(listener);
	char go;
	if (read(sock, &go, 1) != 1 || go != 'g')
		_exit(5);
	for (int r = -1; r < repeats; r++) {
		double t0 = now_ns();
		for (long i = 0; i < iterations; i++)
			syscall(__NR_getppid);
		double per = (now_ns() - t0) / iterations;
		if (r >= 0)
			printf("ns %.1f\n", per);
	}
	fflush(stdout);
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;      /* only to interrupt a blocking RECV once the child is gone */
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ITERATIONS REPEATS [sync]\n", argv[0]);
		return 2;
	}
	long iterations = atol(argv[1]);
	int repeats = atoi(argv[2]);
	int sync_wake = argc > 3 && strcmp(argv[3], "sync") == 0;
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair))
		return 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(pair[0]);
		child(pair[1], iterations, repeats);
	}
	close(pair[1]);
	int listener = recv_fd(pair[0]);
	if (listener < 0) {
		waitpid(pid, NULL, 0);
		return 3;
	}
	if (sync_wake && ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
			       SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)) {
		printf("unavailable SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: %s\n", strerror(errno));
		fflush(stdout);
		kill(pid, 9);
		waitpid(pid, NULL, 0);
		return 3;
	}
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	struct sigaction sa = { .sa_handler = on_child };   /* no SA_RESTART */
	sigaction(SIGCHLD, &sa, NULL);
	int status;
	if (write(pair[0], "g", 1) != 1)
		return 1;
	for (;;) {
		memset(&req, 0, sizeof(req));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
			if (errno == EINTR && waitpid(pid, &status, WNOHANG) == 0)
				continue;
			if (errno == EINTR)
				return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
			break;
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.val = 1;
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) && errno != ENOENT)
			break;
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
