/* json_out.c: the escaping JSON writer and the fixed-shape frames. */
#include <string.h>

#include "json_out.h"

#define PUTS(b, lit) pr_buf_append((b), (lit), sizeof(lit) - 1)

static const char hex[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s[0..n) (its first byte is >= 0x80),
 * or 0 with *bad = the length of its maximal ill-formed prefix (at least 1). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
  unsigned c = s[0];
  size_t need;
  unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    if (c == 0xe0)
      lo = 0xa0; /* overlong */
    else if (c == 0xed)
      hi = 0x9f; /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    if (c == 0xf0)
      lo = 0x90; /* overlong */
    else if (c == 0xf4)
      hi = 0x8f; /* over U+10FFFF */
  } else {
    *bad = 1; /* continuation byte, C0, C1 or F5..FF */
    return 0;
  }
  for (size_t i = 1; i < need; i++) {
    unsigned min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xbf;
    if (i >= n || s[i] < min || s[i] > max) {
      *bad = i;
      return 0;
    }
  }
  return need;
}

size_t pr_json_str(pr_buf *b, const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0, replaced = 0;
  pr_buf_reserve(b, len + 2);
  pr_buf_putc(b, '"');
  while (i < len) {
    unsigned c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f) {
      i++;
      continue;
    }
    if (c >= 0x80) {
      size_t bad, n = utf8_seq(s + i, len - i, &bad);
      if (n) {
        i += n;
        continue;
      }
      pr_buf_append(b, s + run, i - run);
      PUTS(b, "\xef\xbf\xbd"); /* U+FFFD */
      replaced++;
      i += bad;
      run = i;
      continue;
    }
    pr_buf_append(b, s + run, i - run);
    char esc[6] = {'\\', 0};
    size_t esc_len = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default:
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      esc_len = 6;
    }
    pr_buf_append(b, esc, esc_len);
    i++;
    run = i;
  }
  pr_buf_append(b, s + run, i - run);
  pr_buf_putc(b, '"');
  return replaced;
}

void pr_json_u64(pr_buf *b, uint64_t v) {
  char tmp[20];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  pr_buf_append(b, tmp + i, sizeof tmp - i);
}

static void put_cstr(pr_buf *b, const char *s) { pr_json_str(b, s ? s : "", s ? strlen(s) : 0); }

/* "user":..,"status":..,"last_seen":..,"version":.. without braces */
static void entry_fields(pr_buf *b, const pr_presence_entry *e) {
  PUTS(b, "\"user\":");
  pr_json_str(b, e->user.p, e->user.len);
  PUTS(b, ",\"status\":");
  put_cstr(b, e->status);
  PUTS(b, ",\"last_seen\":");
  if (e->last_seen)
    pr_json_u64(b, e->last_seen);
  else
    PUTS(b, "null");
  PUTS(b, ",\"version\":");
  pr_json_u64(b, e->version);
}

void pr_json_entry(pr_buf *b, const pr_presence_entry *e) {
  pr_buf_putc(b, '{');
  entry_fields(b, e);
  pr_buf_putc(b, '}');
}

/* "users":[E, ...] */
static void users(pr_buf *b, const pr_presence_entry *e, size_t n) {
  PUTS(b, "\"users\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) pr_buf_putc(b, ',');
    pr_json_entry(b, &e[i]);
  }
  pr_buf_putc(b, ']');
}

void pr_json_hello(pr_buf *b, pr_view user, pr_view device, uint64_t heartbeat_ms) {
  PUTS(b, "{\"type\":\"hello\",\"user\":");
  pr_json_str(b, user.p, user.len);
  PUTS(b, ",\"device\":");
  pr_json_str(b, device.p, device.len);
  PUTS(b, ",\"heartbeat_ms\":");
  pr_json_u64(b, heartbeat_ms);
  pr_buf_putc(b, '}');
}

void pr_json_snapshot(pr_buf *b, const pr_presence_entry *e, size_t n) {
  PUTS(b, "{\"type\":\"snapshot\",");
  users(b, e, n);
  pr_buf_putc(b, '}');
}

void pr_json_presence(pr_buf *b, const pr_presence_entry *e) {
  PUTS(b, "{\"type\":\"presence\",");
  entry_fields(b, e);
  pr_buf_putc(b, '}');
}

void pr_json_heartbeat(pr_buf *b, const pr_presence_entry *e) {
  PUTS(b, "{\"type\":\"heartbeat\",");
  entry_fields(b, e);
  pr_buf_putc(b, '}');
}

static void group_frame(pr_buf *b, const char *type, pr_view group, uint64_t online,
                        const pr_presence_entry *e, size_t n) {
  PUTS(b, "{\"type\":");
  put_cstr(b, type);
  PUTS(b, ",\"group\":");
  pr_json_str(b, group.p, group.len);
  PUTS(b, ",\"online\":");
  pr_json_u64(b, online);
  pr_buf_putc(b, ',');
  users(b, e, n);
  pr_buf_putc(b, '}');
}

void pr_json_group(pr_buf *b, pr_view group, uint64_t online, const pr_presence_entry *e,
                   size_t n) {
  group_frame(b, "group", group, online, e, n);
}

void pr_json_presence_batch(pr_buf *b, pr_view group, uint64_t online, const pr_presence_entry *e,
                            size_t n) {
  group_frame(b, "presence_batch", group, online, e, n);
}

void pr_json_error(pr_buf *b, const char *code, const char *message) {
  PUTS(b, "{\"type\":\"error\",\"code\":");
  put_cstr(b, code);
  PUTS(b, ",\"message\":");
  put_cstr(b, message);
  pr_buf_putc(b, '}');
}

void pr_json_pong(pr_buf *b) { PUTS(b, "{\"type\":\"pong\"}"); }

void pr_json_presence_body(pr_buf *b, const pr_presence_entry *e, size_t n) {
  pr_buf_putc(b, '{');
  users(b, e, n);
  pr_buf_putc(b, '}');
}
