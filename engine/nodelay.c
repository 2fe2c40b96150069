/*
 * nodelay.c - TCP_NODELAY on every socket this process accepts.
 *
 * librdkafka 2.0's mock cluster (the engine of `vigil broker`) does not set TCP_NODELAY on
 * the connections it accepts, so its responses meet Linux's 40 ms delayed ACK: a produce to
 * more than a couple of partitions took ~44 ms to acknowledge instead of ~0.4 ms, which
 * dominated every commit and every latency measured against the local broker. Apache Kafka
 * and Redpanda set TCP_NODELAY themselves. This file is linked into the `vigil` executable
 * only (not the library): a definition of accept()/accept4() in the executable takes
 * precedence for the shared libraries it loads, and calls through to libc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd)
{
    int one = 1;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "accept");
    int s = real(fd, addr, len);
    nodelay(s);
    return s;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "accept4");
    int s = real(fd, addr, len, flags);
    nodelay(s);
    return s;
}
