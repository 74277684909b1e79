/* A spoofing flood sender for tests/e2e_flood.rs: packets to a virtual
 * service from random source addresses and ports, through a raw IPv4
 * socket (the kernel routes and resolves the next hop; the sender writes
 * the IPv4 and UDP/TCP headers itself, checksums included), in batches of
 * sendmmsg.
 *
 *   flood MODE DST_IP DST_PORT SECONDS PPS
 *
 * MODE udp: one 32-byte UDP datagram per random source.
 * MODE synack: a blind SYN-then-ACK per random source (two packets), as a
 *   sender that never sees the SYN-ACK would: the ACK's numbers guessed.
 * Sources are drawn from 100.64.0.0/10 (shared address space: no host of
 * the test owns them). PPS 0 sends as fast as it can; otherwise the
 * sender keeps to that many packets a second. Prints
 * `sent PACKETS packets in SECONDS s: RATE pps`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXLEN 64

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
    /* xorshift64*: fast, and good enough to spread sources. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (uint32_t)p[i] << 8 | p[i + 1];
    if (n & 1)
        acc += (uint32_t)p[n - 1] << 8;
    return acc;
}

static uint16_t fold(uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* Writes an IPv4 header and an L4 segment of `l4len` bytes (already in
 * place after the header) with their checksums. */
static void finish(uint8_t *f, size_t l4len, uint8_t proto, uint32_t src, uint32_t dst) {
    size_t len = 20 + l4len;
    memset(f, 0, 20);
    f[0] = 0x45;
    f[2] = len >> 8;
    f[3] = len & 0xff;
    f[6] = 0x40; /* DF */
    f[8] = 64;
    f[9] = proto;
    memcpy(f + 12, &src, 4);
    memcpy(f + 16, &dst, 4);
    uint16_t c = fold(sum16(f, 20, 0));
    f[10] = c >> 8;
    f[11] = c & 0xff;
    /* Pseudo-header, then the segment (its checksum field zero). */
    uint8_t *l4 = f + 20;
    size_t at = proto == IPPROTO_UDP ? 6 : 16;
    l4[at] = l4[at + 1] = 0;
    uint32_t acc = sum16(f + 12, 8, 0) + proto + (uint32_t)l4len;
    c = fold(sum16(l4, l4len, acc));
    if (proto == IPPROTO_UDP && c == 0)
        c = 0xffff;
    l4[at] = c >> 8;
    l4[at + 1] = c & 0xff;
}

static size_t udp(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
    uint8_t *u = f + 20;
    size_t l4len = 8 + 32;
    memset(u, 0, l4len);
    u[0] = sport >> 8;
    u[1] = sport & 0xff;
    u[2] = dport >> 8;
    u[3] = dport & 0xff;
    u[4] = l4len >> 8;
    u[5] = l4len & 0xff;
    memcpy(u + 8, "rvs flood datagram, spoofed src", 32);
    finish(f, l4len, IPPROTO_UDP, src, dst);
    return 20 + l4len;
}

static size_t tcp(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                  uint32_t seq, uint32_t ack, uint8_t flags) {
    uint8_t *t = f + 20;
    memset(t, 0, 20);
    t[0] = sport >> 8;
    t[1] = sport & 0xff;
    t[2] = dport >> 8;
    t[3] = dport & 0xff;
    memcpy(t + 4, &seq, 4);
    memcpy(t + 8, &ack, 4);
    t[12] = 5 << 4;
    t[13] = flags;
    t[14] = 0xff;
    t[15] = 0xff;
    finish(f, 20, IPPROTO_TCP, src, dst);
    return 40;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: flood udp|synack DST_IP DST_PORT SECONDS PPS\n");
        return 2;
    }
    int synack = strcmp(argv[1], "synack") == 0;
    if (!synack && strcmp(argv[1], "udp") != 0) {
        fprintf(stderr, "flood: unknown mode %s\n", argv[1]);
        return 2;
    }
    struct in_addr dst_addr;
    if (inet_pton(AF_INET, argv[2], &dst_addr) != 1) {
        fprintf(stderr, "flood: bad address %s\n", argv[2]);
        return 2;
    }
    uint32_t dst = dst_addr.s_addr;
    uint16_t dport = (uint16_t)atoi(argv[3]);
    double seconds = atof(argv[4]);
    double pps = atof(argv[5]);
    rng_state ^= (uint64_t)getpid() << 32 ^ (uint64_t)(now_s() * 1e9);

    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) {
        perror("flood: socket");
        return 1;
    }
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);

    static uint8_t frames[BATCH][MAXLEN];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = dst_addr};
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = frames[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
    }

    uint64_t sent = 0;
    double start = now_s(), end = start + seconds;
    for (;;) {
        double t = now_s();
        if (t >= end)
            break;
        if (pps > 0) {
            double due = (t - start) * pps;
            if ((double)sent > due) {
                double wait = ((double)sent - due) / pps;
                struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        for (int i = 0; i < BATCH; i += synack ? 2 : 1) {
            uint64_t r = rnd();
            /* 100.64.0.0/10 */
            uint32_t src = htonl(0x64400000u | (uint32_t)(r & 0x003fffffu));
            uint16_t sport = (uint16_t)(1024 + (r >> 32) % 64000);
            if (synack) {
                uint32_t seq = (uint32_t)rnd();
                iov[i].iov_len = tcp(frames[i], src, sport, dst, dport, seq, 0, 0x02);
                iov[i + 1].iov_len = tcp(frames[i + 1], src, sport, dst, dport,
                                         htonl(ntohl(seq) + 1), (uint32_t)rnd(), 0x10);
            } else {
                iov[i].iov_len = udp(frames[i], src, sport, dst, dport);
            }
        }
        int n = sendmmsg(fd, msgs, BATCH, 0);
        if (n < 0) {
            if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
                continue;
            perror("flood: sendmmsg");
            return 1;
        }
        sent += (uint64_t)n;
    }
    double took = now_s() - start;
    printf("sent %llu packets in %.2f s: %.0f pps\n", (unsigned long long)sent, took,
           sent / took);
    return 0;
}
