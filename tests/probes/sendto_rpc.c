/* Request/response over TCP where every send is sendto() with the peer's address, as
 * some old C, Java and Go code does: Linux's TCP ignores the address on a connected
 * socket. A forked server accepts CONNS connections, one after the other, and answers
 * each request (a 4-byte length, then that many bytes) with the same bytes reversed,
 * sent with sendto() to the address accept() gave. The client makes REQS requests per
 * connection; every 100th is 200 KB (the send waits for space). Prints one line each
 * side; no port, no timing.  Usage: sendto_rpc CONNS REQS */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG (200 * 1024)

static int read_all(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += r;
    }
    return 0;
}

static int sendto_all(int fd, const void *buf, size_t n, const struct sockaddr_in *to)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = sendto(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL,
                           (const struct sockaddr *)to, sizeof *to);
        if (r < 0) {
            fprintf(stderr, "sendto: %s\n", strerror(errno));
            return -1;
        }
        done += r;
    }
    return 0;
}

static int message(int fd, const struct sockaddr_in *to, const char *data, uint32_t len)
{
    static char out[4 + BIG];       /* one send per message: no Nagle wait on loopback */
    uint32_t be = htonl(len);
    memcpy(out, &be, 4);
    memcpy(out + 4, data, len);
    return sendto_all(fd, out, 4 + len, to);
}

static void serve(int l, int conns)
{
    static char buf[BIG], rev[BIG];
    long requests = 0, bytes = 0;
    for (int c = 0; c < conns; c++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int a = accept(l, (struct sockaddr *)&peer, &plen);
        if (a < 0) {
            perror("accept");
            exit(1);
        }
        uint32_t be;
        while (read_all(a, &be, 4) == 0) {
            uint32_t len = ntohl(be);
            if (len > BIG || read_all(a, buf, len))
                exit(2);
            for (uint32_t i = 0; i < len; i++)
                rev[i] = buf[len - 1 - i];
            if (message(a, &peer, rev, len))
                exit(3);
            requests++;
            bytes += len;
        }
        close(a);
    }
    printf("server: %d connections, %ld requests, %ld bytes\n", conns, requests, bytes);
}

int main(int argc, char **argv)
{
    int conns = argc > 1 ? atoi(argv[1]) : 5, reqs = argc > 2 ? atoi(argv[2]) : 1000;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t alen = sizeof addr;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 8)
            || getsockname(l, (struct sockaddr *)&addr, &alen)) {
        perror("listen");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        serve(l, conns);
        return 0;
    }
    close(l);
    static char req[BIG], rep[BIG];
    long ok = 0, bad = 0;
    for (int c = 0; c < conns; c++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) {
            perror("connect");
            return 1;
        }
        for (int i = 0; i < reqs; i++) {
            uint32_t len = i % 100 == 99 ? BIG : 16 + i % 32;
            for (uint32_t k = 0; k < len; k++)
                req[k] = (char)(c * 31 + i * 7 + k);
            uint32_t be;
            if (message(fd, &addr, req, len) || read_all(fd, &be, 4)
                    || ntohl(be) != len || read_all(fd, rep, len)) {
                fprintf(stderr, "request %d/%d failed\n", c, i);
                return 1;
            }
            int same = 1;
            for (uint32_t k = 0; k < len && same; k++)
                same = rep[k] == req[len - 1 - k];
            same ? ok++ : bad++;
        }
        close(fd);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("client: %d connections, %ld replies right, %ld wrong; server exit %d\n", conns,
           ok, bad, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
