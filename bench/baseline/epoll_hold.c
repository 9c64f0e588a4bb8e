/* epoll_hold.c: the floor for held connections: a bare epoll server that
 * accepts WebSocket upgrades, answers each with a canned 101, hello and empty
 * snapshot (so presence-bench's client counts it as ready) and then holds it
 * with no per-connection state beyond the fd. Its RSS growth per connection
 * is the user-space floor that presence-receive is compared against.
 *   bench-epoll-hold PORT   (listens on 127.0.0.1; stops on SIGTERM/SIGINT) */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept ---- */
static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  uint8_t block[64];
  size_t total = ((len + 8) / 64 + 1) * 64;
  for (size_t off = 0; off < total; off += 64) {
    for (size_t i = 0; i < 64; i++) {
      size_t p = off + i;
      block[i] = p < len ? msg[p] : p == len ? 0x80 : 0;
    }
    if (off + 64 == total)
      for (int i = 0; i < 8; i++)
        block[63 - i] = (uint8_t)((uint64_t)len * 8 >> (8 * i));
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
             (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 80; i++)
      w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20)
        f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40)
        f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60)
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else
        f = b ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  for (int i = 0; i < 20; i++)
    out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* Answers an upgrade request in buf; returns 0 or -1 (then the fd is closed). */
static int answer(int fd, const char *buf) {
  const char *k = strcasestr(buf, "Sec-WebSocket-Key:");
  if (!k) return -1;
  k += 18;
  while (*k == ' ')
    k++;
  char key[128];
  size_t n = 0;
  while (k[n] && k[n] != '\r' && n < 60)
    key[n] = k[n], n++;
  memcpy(key + n, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 37);
  uint8_t dig[20];
  sha1((const uint8_t *)key, n + 36, dig);
  char acc[32];
  base64(dig, 20, acc);
  static const char hello[] =
      "{\"type\":\"hello\",\"user\":\"u\",\"device\":\"d\",\"heartbeat_ms\":20000}";
  static const char snap[] = "{\"type\":\"snapshot\",\"users\":[]}";
  char out[512];
  int len = snprintf(out, sizeof(out),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                     "\x81%c%s\x81%c%s",
                     acc, (char)(sizeof(hello) - 1), hello, (char)(sizeof(snap) - 1), snap);
  return write(fd, out, (size_t)len) == len ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: bench-epoll-hold PORT\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0) {
    perror("bench-epoll-hold: listen");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("bench-epoll-hold: listening on 127.0.0.1:%s\n", argv[1]);
  fflush(stdout);
  long held = 0;
  struct epoll_event evs[256];
  char buf[8192];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 500);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
          held++;
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof(buf) - 1);
      if (r < 0 && errno == EAGAIN) continue;
      if (r > 0) {
        buf[r] = '\0';
        /* the upgrade is the first thing a client sends; frames after it are dropped */
        if (strncmp(buf, "GET ", 4) != 0 || answer(fd, buf) == 0) continue;
      }
      close(fd);
      held--;
    }
  }
  printf("bench-epoll-hold: stopping with %ld connections\n", held);
  return 0;
}
