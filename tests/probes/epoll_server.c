/* epoll_server PORT FILE N: serve FILE to N clients on 127.0.0.1:PORT, then exit.
 *
 * The listener is nonblocking and in an epoll set; each connection comes from
 * accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) (checked with fcntl) and gets the whole file by
 * sendfile(2), resumed on EPOLLOUT when the socket buffer is full, then is closed.
 * Prints one summary line. Exits 2 if nothing happens for 10 s (bounded). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXCONN 64

struct conn { int fd; off_t off; };

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s PORT FILE N\n", argv[0]); return 64; }
    int port = atoi(argv[1]), want = atoi(argv[3]);
    int file = open(argv[2], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (file < 0 || fstat(file, &st) < 0) die("file");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("setsockopt");
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0) die("bind");
    if (listen(lfd, 16) < 0) die("listen");

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl listener");

    int served = 0, accepted = 0, flags_ok = 0, partial = 0;
    long long bytes = 0;
    while (served < want) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, 10000);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        if (n == 0) { fprintf(stderr, "server: idle 10 s, served %d\n", served); return 2; }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {                              /* the listener: drain the queue */
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        if (errno == EAGAIN || errno == EINTR) break;
                        die("accept4");
                    }
                    accepted++;
                    if ((fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC))
                        flags_ok++;
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event cev = { .events = EPOLLOUT, .data.ptr = c };
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) die("epoll_ctl conn");
                }
                continue;
            }
            for (;;) {                                    /* a connection: send more */
                ssize_t k = sendfile(c->fd, file, &c->off, st.st_size - c->off);
                if (k < 0) {
                    if (errno == EAGAIN) { partial++; break; }
                    die("sendfile");
                }
                bytes += k;
                if (c->off == st.st_size || k == 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    free(c);
                    served++;
                    break;
                }
            }
        }
    }
    printf("server: accepted %d, accept4 flags ok %d, served %d, bytes %lld\n",
           accepted, flags_ok, served, bytes);
    fprintf(stderr, "server: %d sendfile calls met a full socket buffer\n", partial);
    return 0;
}
