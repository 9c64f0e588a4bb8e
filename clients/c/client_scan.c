/* client_scan.c: a scanner for the one frame a client receives most often,
 * {"type":"presence",...}, in the exact shape the server writes it
 * (proto/json_out.c): no DOM, no allocation. Anything else is left to the
 * full parser: the scanner either gives the same entry jansson would or
 * declines, so it can never change what a caller sees. */
#include "base.h"
#include "client_internal.h"

#include <stdint.h>
#include <string.h>

#define LIT(s) s, sizeof(s) - 1

/* Matches the literal lit at *p and moves past it. */
static int expect(const char **p, const char *end, const char *lit, size_t n) {
  if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return 0;
  *p += n;
  return 1;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* A JSON string at *p, unescaped into out[*used..cap) and NUL-terminated.
 * Declines (returns 0) what the fast path does not need to handle: bytes over
 * 0x7f, \u escapes outside 1..0x7f (they would need UTF-8 encoding or are
 * NULs jansson refuses), and strings that do not fit. */
static int scan_str(const char **p, const char *end, char *out, size_t cap, size_t *used,
                    const char **str) {
  const char *s = *p;
  if (s >= end || *s++ != '"') return 0;
  size_t o = *used;
  *str = out + o;
  while (s < end) {
    unsigned char ch = (unsigned char)*s++;
    if (ch == '"') {
      if (o >= cap) return 0;
      out[o++] = '\0';
      *used = o;
      *p = s;
      return 1;
    }
    if (ch < 0x20 || ch >= 0x80) return 0;
    if (ch == '\\') {
      if (s >= end) return 0;
      switch (*s++) {
      case '"': ch = '"'; break;
      case '\\': ch = '\\'; break;
      case '/': ch = '/'; break;
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      case 'u': {
        if (end - s < 4) return 0;
        int v = 0;
        for (int i = 0; i < 4; i++) {
          int h = hexval(s[i]);
          if (h < 0) return 0;
          v = v << 4 | h;
        }
        if (v == 0 || v >= 0x80) return 0;
        ch = (unsigned char)v;
        s += 4;
        break;
      }
      default: return 0;
      }
    }
    if (o >= cap) return 0;
    out[o++] = (char)ch;
  }
  return 0;
}

/* An unsigned JSON integer of at most INT64_MAX (jansson's json_int_t: it
 * refuses larger ones); no leading zero, no sign, fraction or exponent. */
static int scan_u64(const char **p, const char *end, uint64_t *v) {
  const char *s = *p;
  if (s >= end || *s < '0' || *s > '9') return 0;
  if (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9') return 0;
  uint64_t x = 0;
  for (; s < end && *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (x > ((uint64_t)INT64_MAX - d) / 10) return 0;
    x = x * 10 + d;
  }
  if (s < end && (*s == '.' || *s == 'e' || *s == 'E')) return 0;
  *v = x;
  *p = s;
  return 1;
}

int client_scan_presence(const char *data, size_t len, pr_client_entry *e, char *scratch,
                         size_t cap) {
  if (!data || !e || !scratch) return PR_EINVAL;
  const char *p = data, *end = data + len;
  size_t used = 0;
  pr_client_entry r;
  if (!expect(&p, end, LIT("{\"type\":\"presence\",\"user\":")) ||
      !scan_str(&p, end, scratch, cap, &used, &r.user) || !expect(&p, end, LIT(",\"status\":")) ||
      !scan_str(&p, end, scratch, cap, &used, &r.status) ||
      !expect(&p, end, LIT(",\"last_seen\":")))
    return PR_EPROTO;
  if (expect(&p, end, LIT("null")))
    r.last_seen = 0;
  else if (!scan_u64(&p, end, &r.last_seen))
    return PR_EPROTO;
  if (!expect(&p, end, LIT(",\"version\":")) || !scan_u64(&p, end, &r.version) ||
      !expect(&p, end, LIT("}")) || p != end)
    return PR_EPROTO;
  *e = r;
  return 0;
}
