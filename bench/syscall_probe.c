/* The benchmark's probe: time one cheap system call in a tight loop.
 *
 *   syscall_probe MODE ITERATIONS REPEATS
 *
 * MODE is getppid (never trapped by sysemu), getsockname_unix (an AF_UNIX socket: the
 * host's), getsockname_inet (an AF_INET socket: sysemu's, when it serves AF_INET) or
 * open (openat of /etc/hostname and close: trapped by sysemu, then the host's).
 * Prints one line "ns <nanoseconds per call>" per repeat, after one untimed warm-up
 * repeat. When the socket cannot be made, prints "unavailable <reason>" and exits 3.
 * Timing uses clock_gettime(CLOCK_MONOTONIC), which the vDSO answers without a syscall.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int loop_getppid(long iterations)
{
	for (long i = 0; i < iterations; i++)
		if (syscall(SYS_getppid) <= 0)
			return -1;
	return 0;
}

static int loop_getsockname(int fd, int family, long iterations)
{
	struct sockaddr_storage ss;
	for (long i = 0; i < iterations; i++) {
		socklen_t len = sizeof(ss);
		if (syscall(SYS_getsockname, fd, &ss, &len) != 0 || ss.ss_family != family)
			return -1;
	}
	return 0;
}

static int loop_open(long iterations)
{
	for (long i = 0; i < iterations; i++) {
		int fd = openat(AT_FDCWD, "/etc/hostname", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s getppid|getsockname_unix|getsockname_inet|open N REPEATS\n",
			argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	long iterations = atol(argv[2]);
	int repeats = atoi(argv[3]);
	int fd = -1, family = 0;

	if (strcmp(mode, "getsockname_unix") == 0) {
		family = AF_UNIX;
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
	} else if (strcmp(mode, "getsockname_inet") == 0) {
		family = AF_INET;
		fd = socket(AF_INET, SOCK_STREAM, 0);
	} else if (strcmp(mode, "getppid") != 0 && strcmp(mode, "open") != 0) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	if (family && fd < 0) {
		printf("unavailable socket(%s): %s\n", family == AF_INET ? "AF_INET" : "AF_UNIX",
		       strerror(errno));
		return 3;
	}
	for (int r = -1; r < repeats; r++) {
		double start = now_ns();
		int rc = family ? loop_getsockname(fd, family, iterations)
			 : strcmp(mode, "open") == 0 ? loop_open(iterations) : loop_getppid(iterations);
		double elapsed = now_ns() - start;
		if (rc != 0) {
			printf("unavailable %s failed: %s\n", mode, strerror(errno));
			return 3;
		}
		if (r >= 0)
			printf("ns %.1f\n", elapsed / iterations);
	}
	fflush(stdout);
	return 0;
}
