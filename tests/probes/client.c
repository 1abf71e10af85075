/* client PORT FILE N: connect to 127.0.0.1:PORT N times, one after another, read each
 * reply to EOF and check it is byte for byte FILE. Retries a refused connect for up to
 * 5 s (the server may still be starting). Every read has a 10 s timeout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    rewind(f);
    char *buf = malloc(*len + 1);
    if (fread(buf, 1, *len, f) != (size_t)*len) { perror("fread"); exit(1); }
    fclose(f);
    return buf;
}

static int connect_retrying(int port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; tries < 500; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("socket"); exit(1); }
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0) return fd;
        int e = errno;
        close(fd);
        if (e != ECONNREFUSED) { errno = e; perror("connect"); exit(1); }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "client: connection refused for 5 s\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s PORT FILE N\n", argv[0]); return 64; }
    int port = atoi(argv[1]), n = atoi(argv[3]);
    long len;
    char *want = slurp(argv[2], &len);
    char *got = malloc(len + 65536);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int fd = connect_retrying(port);
        struct timeval tv = { 10, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        long have = 0;
        for (;;) {
            ssize_t k = read(fd, got + have, len + 65536 - have);
            if (k < 0) { if (errno == EINTR) continue; perror("read"); break; }
            if (k == 0) break;
            have += k;
            if (have >= len + 65536) break;
        }
        close(fd);
        if (have == len && memcmp(got, want, len) == 0) ok++;
        else fprintf(stderr, "client: connection %d got %ld bytes, want %ld\n", i, have, len);
    }
    printf("client: %d connections, %d replies equal to the file (%ld bytes each)\n", n, ok, len);
    return ok == n ? 0 : 1;
}
