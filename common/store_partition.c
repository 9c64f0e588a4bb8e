/* store_partition.c: user -> partition (CRC16/XMODEM mod P, as Redis Cluster
 * slots) and the key names of a partition (partition.h). */
#include "partition.h"
#include "base.h"

#include <stdio.h>
#include <string.h>

uint16_t pr_crc16(const char *buf, size_t len) {
  uint16_t crc = 0;
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint16_t)((unsigned char)buf[i] << 8);
    for (int b = 0; b < 8; b++)
      crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc;
}

unsigned pr_partition_of(const char *user, size_t len, unsigned partitions) {
  if (partitions == 0) partitions = 1;
  return pr_crc16(user, len) % partitions;
}

/* snprintf into buf; the length, or PR_ETOOBIG when it did not fit. */
static int key_done(int n, size_t cap) {
  if (n < 0 || (size_t)n >= cap) return PR_ETOOBIG;
  return n;
}

int pr_key_presence(char *buf, size_t cap, unsigned p, const char *user) {
  return key_done(snprintf(buf, cap, "pr:{p%u}:%s", p, user), cap);
}

int pr_key_deadlines(char *buf, size_t cap, unsigned p) {
  return key_done(snprintf(buf, cap, "dl:{p%u}", p), cap);
}

int pr_key_events(char *buf, size_t cap, unsigned p) {
  return key_done(snprintf(buf, cap, "ev:{p%u}", p), cap);
}

int pr_key_owner(char *buf, size_t cap, unsigned p) {
  return key_done(snprintf(buf, cap, "own:{p%u}", p), cap);
}

int pr_key_route(char *buf, size_t cap, unsigned p, const char *user) {
  return key_done(snprintf(buf, cap, "rt:{p%u}:%s", p, user), cap);
}

int pr_key_hb(char *buf, size_t cap, unsigned p, const char *user, const char *device) {
  return key_done(snprintf(buf, cap, "hb:{p%u}:%s/%s", p, user, device), cap);
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
