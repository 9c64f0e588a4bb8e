/* store_partition.c: user -> partition (CRC16/XMODEM mod P, as Redis Cluster
 * slots) and the key names of a partition (partition.h). */
#include "partition.h"
#include "base.h"

#include <string.h>

/* Four bits at a time: the CRC of each nibble at the top of the register
 * (a bit at a time cost 8 steps per byte, and every request hashes its user). */
static const uint16_t crc_nibble[16] = {0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5,
                                        0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
                                        0xc18c, 0xd1ad, 0xe1ce, 0xf1ef};

uint16_t pr_crc16(const char *buf, size_t len) {
  unsigned crc = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned b = (unsigned char)buf[i];
    crc = (crc << 4 ^ crc_nibble[(crc >> 12 ^ b >> 4) & 0xf]) & 0xffff;
    crc = (crc << 4 ^ crc_nibble[(crc >> 12 ^ b) & 0xf]) & 0xffff;
  }
  return (uint16_t)crc;
}

unsigned pr_partition_of(const char *user, size_t len, unsigned partitions) {
  if (partitions == 0) partitions = 1;
  return pr_crc16(user, len) % partitions;
}

/* Key names are built by hand: snprintf showed in the profiles of every
 * request (a heartbeat or a WebSocket registration formats two or three). */
typedef struct {
  char *buf;
  size_t cap, n; /* n may pass cap: the key did not fit */
} key_buf;

static void kb_put(key_buf *k, const char *s, size_t len) {
  if (k->n + len < k->cap) memcpy(k->buf + k->n, s, len);
  k->n += len;
}

static void kb_str(key_buf *k, const char *s) { kb_put(k, s, strlen(s)); }

/* "<prefix>{p<p>}" */
static void kb_tag(key_buf *k, const char *prefix, unsigned p) {
  char d[16];
  int i = (int)sizeof(d);
  d[--i] = '}';
  do
    d[--i] = (char)('0' + p % 10);
  while (p /= 10);
  d[--i] = 'p';
  d[--i] = '{';
  kb_str(k, prefix);
  kb_put(k, d + i, sizeof(d) - (size_t)i);
}

/* The length, or PR_ETOOBIG (buf then holds ""). */
static int kb_done(key_buf *k) {
  if (k->n >= k->cap) {
    if (k->cap) k->buf[0] = '\0';
    return PR_ETOOBIG;
  }
  k->buf[k->n] = '\0';
  return (int)k->n;
}

static int key_tag_user(char *buf, size_t cap, const char *prefix, unsigned p, const char *user) {
  key_buf k = {buf, cap, 0};
  kb_tag(&k, prefix, p);
  if (user) {
    kb_put(&k, ":", 1);
    kb_str(&k, user);
  }
  return kb_done(&k);
}

int pr_key_presence(char *buf, size_t cap, unsigned p, const char *user) {
  return key_tag_user(buf, cap, "pr:", p, user);
}

int pr_key_deadlines(char *buf, size_t cap, unsigned p) {
  return key_tag_user(buf, cap, "dl:", p, NULL);
}

int pr_key_events(char *buf, size_t cap, unsigned p) {
  return key_tag_user(buf, cap, "ev:", p, NULL);
}

int pr_key_owner(char *buf, size_t cap, unsigned p) {
  return key_tag_user(buf, cap, "own:", p, NULL);
}

int pr_key_route(char *buf, size_t cap, unsigned p, const char *user) {
  return key_tag_user(buf, cap, "rt:", p, user);
}

int pr_key_hb(char *buf, size_t cap, unsigned p, const char *user, const char *device) {
  key_buf k = {buf, cap, 0};
  kb_tag(&k, "hb:", p);
  kb_put(&k, ":", 1);
  kb_str(&k, user);
  kb_put(&k, "/", 1);
  kb_str(&k, device);
  return kb_done(&k);
}

/* Parses "{p<digits>}" at s[0..len); returns the bytes used, or -1. */
static int parse_tag(const char *s, size_t len, unsigned *p) {
  if (len < 4 || s[0] != '{' || s[1] != 'p') return -1;
  size_t i = 2;
  unsigned long v = 0;
  while (i < len && s[i] >= '0' && s[i] <= '9' && i < 8)
    v = v * 10 + (unsigned long)(s[i++] - '0');
  if (i == 2 || i >= len || s[i] != '}' || v >= PR_PARTITIONS_MAX) return -1;
  *p = (unsigned)v;
  return (int)i + 1;
}

int pr_key_events_parse(const char *channel, size_t len, unsigned *p) {
  if (len < 3 || memcmp(channel, "ev:", 3) != 0) return PR_EINVAL;
  int n = parse_tag(channel + 3, len - 3, p);
  if (n < 0 || (size_t)n != len - 3) return PR_EINVAL;
  return 0;
}

int pr_key_hb_parse(const char *key, size_t len, unsigned *p, const char **user, size_t *user_len) {
  if (len < 3 || memcmp(key, "hb:", 3) != 0) return PR_EINVAL;
  int n = parse_tag(key + 3, len - 3, p);
  if (n < 0) return PR_EINVAL;
  size_t at = 3 + (size_t)n;
  if (at >= len || key[at] != ':') return PR_EINVAL;
  at++;
  const char *slash = memchr(key + at, '/', len - at);
  if (!slash || slash == key + at || slash == key + len - 1) return PR_EINVAL;
  *user = key + at;
  *user_len = (size_t)(slash - (key + at));
  return 0;
}
