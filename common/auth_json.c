/* auth_json.c: decodes the header and the claims of a JWT with a small strict
 * scanner instead of building a jansson tree (two parses, a dozen allocations
 * and most of the cost of a verification once the HMAC is cheap).
 *
 * What is accepted is RFC 8259 JSON, checked in full even where a value is
 * skipped: one object and nothing after it but whitespace; strings of valid
 * UTF-8 without raw control characters, with the standard escapes only,
 * surrogate escapes in pairs and no \u0000; the number grammar; nesting up to
 * MAX_DEPTH. A member this module reads (alg, crit; sub, exp, nbf, role),
 * named twice, even through escapes, is rejected: two readers of one token
 * must never disagree about it. Repeats of members nobody reads are not
 * looked at. Nothing here allocates. */
#include "auth_internal.h"
#include "base.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32

/* ---- base64url ---- */

/* Each base64url character's value + 1; 0: not one. */
static const unsigned char b64v[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

long pr_auth_b64url_decode(const char *s, size_t len, unsigned char *out) {
  const unsigned char *u = (const unsigned char *)s;
  if (len % 4 == 1) return -1;
  size_t i = 0, o = 0;
  for (; i + 4 <= len; i += 4) {
    unsigned a = b64v[u[i]], b = b64v[u[i + 1]], c = b64v[u[i + 2]], d = b64v[u[i + 3]];
    if (!a || !b || !c || !d) return -1;
    unsigned v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
    out[o++] = (unsigned char)(v >> 16);
    out[o++] = (unsigned char)(v >> 8);
    out[o++] = (unsigned char)v;
  }
  /* The last 2 or 3 characters: 1 or 2 bytes, the bits left over zero. */
  if (len - i == 2) {
    unsigned a = b64v[u[i]], b = b64v[u[i + 1]];
    if (!a || !b) return -1;
    unsigned v = (a - 1) << 6 | (b - 1);
    if (v & 0xf) return -1;
    out[o++] = (unsigned char)(v >> 4);
  } else if (len - i == 3) {
    unsigned a = b64v[u[i]], b = b64v[u[i + 1]], c = b64v[u[i + 2]];
    if (!a || !b || !c) return -1;
    unsigned v = (a - 1) << 12 | (b - 1) << 6 | (c - 1);
    if (v & 0x3) return -1;
    out[o++] = (unsigned char)(v >> 10);
    out[o++] = (unsigned char)(v >> 2);
  }
  return (long)o;
}

/* ---- scanner ---- */

typedef struct {
  const unsigned char *p, *end;
  int depth;
} scan;

static int peek(const scan *s) { return s->p < s->end ? *s->p : -1; }

static void skip_ws(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int expect(scan *s, unsigned char c) {
  if (peek(s) != c) return -1;
  s->p++;
  return 0;
}

static int hex4(scan *s, unsigned *out) {
  if (s->end - s->p < 4) return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = s->p[i];
    unsigned d = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : 16;
    if (d > 15) return -1;
    v = v << 4 | d;
  }
  s->p += 4;
  *out = v;
  return 0;
}

/* Length of the valid UTF-8 sequence at p (p[0] >= 0x80), or 0. Rejects
 * overlong forms, surrogates and code points over U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0];
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else
    return 0;
  if ((size_t)(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return n;
}

/* Appends one byte to a bounded output; past cap only the length grows. */
static void put(char *out, size_t cap, size_t *n, unsigned char c) {
  if (out && *n < cap) out[*n] = (char)c;
  (*n)++;
}

static void put_utf8(char *out, size_t cap, size_t *n, unsigned cp) {
  if (cp < 0x80) {
    put(out, cap, n, (unsigned char)cp);
  } else if (cp < 0x800) {
    put(out, cap, n, (unsigned char)(0xc0 | cp >> 6));
    put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    put(out, cap, n, (unsigned char)(0xe0 | cp >> 12));
    put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
    put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
  } else {
    put(out, cap, n, (unsigned char)(0xf0 | cp >> 18));
    put(out, cap, n, (unsigned char)(0x80 | (cp >> 12 & 0x3f)));
    put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
    put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
  }
}

/* A string at s->p (the opening quote). Its decoded bytes go to out (up to
 * cap of them, out may be NULL); *len gets the whole decoded length, which
 * exceeds cap when it did not fit. */
static int scan_string(scan *s, char *out, size_t cap, size_t *len) {
  size_t n = 0;
  if (expect(s, '"') < 0) return -1;
  for (;;) {
    int c = peek(s);
    if (c < 0 || c < 0x20) return -1;
    if (c == '"') {
      s->p++;
      break;
    }
    if (c >= 0x80) {
      size_t k = utf8_seq(s->p, s->end);
      if (!k) return -1;
      for (size_t i = 0; i < k; i++)
        put(out, cap, &n, s->p[i]);
      s->p += k;
      continue;
    }
    s->p++;
    if (c != '\\') {
      put(out, cap, &n, (unsigned char)c);
      continue;
    }
    if ((c = peek(s)) < 0) return -1;
    s->p++;
    unsigned cp;
    switch (c) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
      if (hex4(s, &cp) < 0 || cp == 0) return -1;
      if (cp >= 0xdc00 && cp <= 0xdfff) return -1; /* a low surrogate alone */
      if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;
        if (expect(s, '\\') < 0 || expect(s, 'u') < 0 || hex4(s, &lo) < 0) return -1;
        if (lo < 0xdc00 || lo > 0xdfff) return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      break;
    default: return -1;
    }
    put_utf8(out, cap, &n, cp);
  }
  *len = n;
  return 0;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* A number at s->p. With `v`, its value truncated toward zero goes there, or
 * -1 is returned when that is outside the range of a long long. The value is
 * computed from the decimal digits (no floating point, no locale). */
static int scan_number(scan *s, long long *v) {
  int neg = peek(s) == '-';
  if (neg) s->p++;
  const unsigned char *int_start = s->p;
  if (peek(s) == '0')
    s->p++;
  else if (is_digit(peek(s)))
    while (is_digit(peek(s)))
      s->p++;
  else
    return -1;
  const unsigned char *int_end = s->p, *frac_start = s->p, *frac_end = s->p;
  if (peek(s) == '.') {
    s->p++;
    frac_start = s->p;
    if (!is_digit(peek(s))) return -1;
    while (is_digit(peek(s)))
      s->p++;
    frac_end = s->p;
  }
  long e = 0;
  if (peek(s) == 'e' || peek(s) == 'E') {
    s->p++;
    int eneg = 0;
    if (peek(s) == '+' || peek(s) == '-') eneg = *s->p++ == '-';
    if (!is_digit(peek(s))) return -1;
    while (is_digit(peek(s))) {
      if (e < 100000) e = e * 10 + (*s->p - '0');
      s->p++;
    }
    if (eneg) e = -e;
  }
  if (!v) return 0;
  /* The digits of int ++ frac, the decimal point after the first `point`. */
  size_t nint = (size_t)(int_end - int_start), nfrac = (size_t)(frac_end - frac_start);
  long point = (long)nint + e;
  unsigned long long acc = 0;
  for (long i = 0; i < point; i++) {
    unsigned d = 0;
    if ((size_t)i < nint)
      d = int_start[i] - '0';
    else if ((size_t)i < nint + nfrac)
      d = frac_start[i - (long)nint] - '0';
    else if (acc == 0)
      break; /* zeros after zeros */
    if (acc > (ULLONG_MAX - d) / 10) return -1;
    acc = acc * 10 + d;
    if (acc > (unsigned long long)LLONG_MAX) return -1;
  }
  *v = neg ? -(long long)acc : (long long)acc;
  return 0;
}

static int skip_value(scan *s);

static int skip_container(scan *s, unsigned char open, unsigned char close) {
  if (++s->depth > MAX_DEPTH) return -1;
  s->p++; /* open */
  skip_ws(s);
  if (peek(s) == close) {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    if (open == '{') {
      size_t n;
      if (scan_string(s, NULL, 0, &n) < 0) return -1;
      skip_ws(s);
      if (expect(s, ':') < 0) return -1;
    }
    if (skip_value(s) < 0) return -1;
    skip_ws(s);
    if (peek(s) == close) break;
    if (expect(s, ',') < 0) return -1;
    skip_ws(s);
  }
  s->p++;
  s->depth--;
  return 0;
}

static int skip_literal(scan *s, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return -1;
  s->p += n;
  return 0;
}

/* Any value, checked and passed over; leading whitespace included. */
static int skip_value(scan *s) {
  skip_ws(s);
  size_t n;
  switch (peek(s)) {
  case '"': return scan_string(s, NULL, 0, &n);
  case '{': return skip_container(s, '{', '}');
  case '[': return skip_container(s, '[', ']');
  case 't': return skip_literal(s, "true");
  case 'f': return skip_literal(s, "false");
  case 'n': return skip_literal(s, "null");
  default: return scan_number(s, NULL);
  }
}

/* ---- objects ---- */

/* Names of the members read here are at most this long. */
#define NAME_CAP 8

static int object_open(scan *s, const unsigned char *json, size_t len) {
  s->p = json;
  s->end = json + len;
  s->depth = 1;
  skip_ws(s);
  return expect(s, '{');
}

/* The next member of the top-level object: 1 with its name in name (when it
 * is longer than NAME_CAP bytes, name is "") and s at its value, 0 after the
 * closing brace (nothing but whitespace may follow), -1 when malformed.
 * *count is the members seen so far. */
static int object_next(scan *s, int *count, char name[NAME_CAP + 1]) {
  skip_ws(s);
  if (peek(s) == '}') {
    s->p++;
    skip_ws(s);
    return s->p == s->end ? 0 : -1;
  }
  if (*count > 0) {
    if (expect(s, ',') < 0) return -1;
    skip_ws(s);
  }
  size_t n;
  if (scan_string(s, name, NAME_CAP, &n) < 0) return -1;
  name[n <= NAME_CAP ? n : 0] = '\0'; /* a name too long to be one read here reads as "" */
  skip_ws(s);
  if (expect(s, ':') < 0) return -1;
  skip_ws(s);
  (*count)++;
  return 1;
}

/* Marks member bit `bit` as seen; -1 if it was already. */
static int once(unsigned *seen, unsigned bit) {
  if (*seen & bit) return -1;
  *seen |= bit;
  return 0;
}

int pr_auth_json_header(const unsigned char *json, size_t len, const char *alg) {
  scan s;
  if (object_open(&s, json, len) < 0) return PR_EAUTH;
  char name[NAME_CAP + 1];
  int count = 0, r, alg_ok = 0;
  unsigned seen = 0;
  while ((r = object_next(&s, &count, name)) == 1) {
    if (strcmp(name, "alg") == 0) {
      char v[16];
      size_t n;
      if (once(&seen, 1) < 0 || peek(&s) != '"') return PR_EAUTH;
      if (scan_string(&s, v, sizeof(v), &n) < 0) return PR_EAUTH;
      alg_ok = n == strlen(alg) && memcmp(v, alg, n) == 0;
    } else if (strcmp(name, "crit") == 0) {
      return PR_EAUTH; /* no extension is understood */
    } else if (skip_value(&s) < 0) {
      return PR_EAUTH;
    }
  }
  return r == 0 && alg_ok ? 0 : PR_EAUTH;
}

enum { C_SUB = 1, C_EXP = 2, C_NBF = 4, C_ROLE = 8 };

static int claims_parse(const unsigned char *json, size_t len, pr_auth_json_claims *out) {
  scan s;
  if (object_open(&s, json, len) < 0) return PR_EAUTH;
  char name[NAME_CAP + 1];
  int count = 0, r;
  unsigned seen = 0;
  while ((r = object_next(&s, &count, name)) == 1) {
    if (strcmp(name, "sub") == 0) {
      size_t n;
      if (once(&seen, C_SUB) < 0 || peek(&s) != '"') return PR_EAUTH;
      if (scan_string(&s, out->sub, PR_ID_MAX, &n) < 0) return PR_EAUTH;
      if (n > PR_ID_MAX || !pr_id_is_valid(out->sub, n)) return PR_EAUTH;
      out->sub[n] = '\0';
      out->has_sub = 1;
    } else if (strcmp(name, "exp") == 0 || strcmp(name, "nbf") == 0) {
      int is_exp = name[0] == 'e';
      int c = peek(&s);
      if (once(&seen, is_exp ? C_EXP : C_NBF) < 0 || !(c == '-' || is_digit(c))) return PR_EAUTH;
      if (scan_number(&s, is_exp ? &out->exp : &out->nbf) < 0) return PR_EAUTH;
      *(is_exp ? &out->has_exp : &out->has_nbf) = 1;
    } else if (strcmp(name, "role") == 0) {
      if (once(&seen, C_ROLE) < 0) return PR_EAUTH;
      if (peek(&s) == '"') {
        char v[8];
        size_t n;
        if (scan_string(&s, v, sizeof(v), &n) < 0) return PR_EAUTH;
        out->admin = n == 5 && memcmp(v, "admin", 5) == 0;
      } else if (skip_value(&s) < 0) {
        return PR_EAUTH;
      }
    } else if (skip_value(&s) < 0) {
      return PR_EAUTH;
    }
  }
  return r == 0 ? 0 : PR_EAUTH;
}

int pr_auth_json_claims_parse(const unsigned char *json, size_t len, pr_auth_json_claims *out) {
  memset(out, 0, sizeof(*out));
  int rc = claims_parse(json, len, out);
  if (rc) memset(out, 0, sizeof(*out));
  return rc;
}
