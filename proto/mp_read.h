/* mp_read.h: a bounds-checked msgpack reader over a byte range, internal to
 * proto/. Decoding does not use msgpack_unpack: it allocates each array's
 * element table from the count in the header before the elements arrive (a
 * 5-byte message can ask for gigabytes) and builds a tree we would only walk.
 * This reader allocates nothing, yields views into the input, and tells a
 * truncated input (PR_ETRUNC) from a malformed one (PR_EPROTO).
 *
 * Ownership: a reader only points into the caller's bytes. */
#ifndef PR_MP_READ_H
#define PR_MP_READ_H

#include <stdint.h>

#include "base.h"
#include "proto.h"

#define PR_MP_MAX_DEPTH 16 /* nesting skipped in unknown trailing elements */

typedef struct {
  const unsigned char *p, *end;
} pr_mp_reader;

static inline void pr_mp_init(pr_mp_reader *r, const char *data, size_t len) {
  r->p = (const unsigned char *)data;
  r->end = r->p + len;
}

static inline size_t pr_mp_left(const pr_mp_reader *r) { return (size_t)(r->end - r->p); }

static inline uint64_t pr_mp_be(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* Reads an n-byte big-endian length or value after a 1-byte tag. */
static inline int pr_mp_tagged(pr_mp_reader *r, size_t n, uint64_t *v) {
  if (pr_mp_left(r) < 1 + n) return PR_ETRUNC;
  *v = pr_mp_be(r->p + 1, n);
  r->p += 1 + n;
  return 0;
}

/* A non-negative integer in any msgpack int encoding. */
static inline int pr_mp_read_uint(pr_mp_reader *r, uint64_t *v) {
  if (pr_mp_left(r) < 1) return PR_ETRUNC;
  unsigned c = *r->p;
  if (c <= 0x7f) {
    *v = c;
    r->p++;
    return 0;
  }
  size_t n;
  int is_signed = 0;
  switch (c) {
  case 0xcc: n = 1; break;
  case 0xcd: n = 2; break;
  case 0xce: n = 4; break;
  case 0xcf: n = 8; break;
  case 0xd0: n = 1, is_signed = 1; break;
  case 0xd1: n = 2, is_signed = 1; break;
  case 0xd2: n = 4, is_signed = 1; break;
  case 0xd3: n = 8, is_signed = 1; break;
  default: return PR_EPROTO; /* negative fixint, float, str, ... */
  }
  if (pr_mp_left(r) < 1 + n) return PR_ETRUNC;
  if (is_signed && (r->p[1] & 0x80)) return PR_EPROTO; /* negative */
  return pr_mp_tagged(r, n, v);
}

/* A str or bin. */
static inline int pr_mp_read_str(pr_mp_reader *r, pr_view *out) {
  if (pr_mp_left(r) < 1) return PR_ETRUNC;
  unsigned c = *r->p;
  uint64_t len;
  int err;
  if (c >= 0xa0 && c <= 0xbf) {
    len = c & 0x1f;
    r->p++;
  } else if (c == 0xd9 || c == 0xc4) {
    if ((err = pr_mp_tagged(r, 1, &len))) return err;
  } else if (c == 0xda || c == 0xc5) {
    if ((err = pr_mp_tagged(r, 2, &len))) return err;
  } else if (c == 0xdb || c == 0xc6) {
    if ((err = pr_mp_tagged(r, 4, &len))) return err;
  } else {
    return PR_EPROTO;
  }
  if (pr_mp_left(r) < len) return PR_ETRUNC;
  out->p = (const char *)r->p;
  out->len = (size_t)len;
  r->p += len;
  return 0;
}

/* An id: a str or bin of 1..PR_ID_MAX bytes. */
static inline int pr_mp_read_id(pr_mp_reader *r, pr_view *out) {
  int err = pr_mp_read_str(r, out);
  if (err) return err;
  return out->len >= 1 && out->len <= PR_ID_MAX ? 0 : PR_EPROTO;
}

/* A status on the wire: one of the four visible statuses, by name. */
static inline int pr_mp_read_status(pr_mp_reader *r, int *status) {
  pr_view v;
  int err = pr_mp_read_str(r, &v);
  if (err) return err;
  int st = pr_status_parse(v.p, v.len);
  if (st < 0 || st == PR_STATUS_INVISIBLE) return PR_EPROTO;
  *status = st;
  return 0;
}

static inline int pr_mp_is_map(const pr_mp_reader *r) {
  if (pr_mp_left(r) < 1) return 0;
  unsigned c = *r->p;
  return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
}

/* An array header (want_map 0) or a map header (want_map 1): its count. */
static inline int pr_mp_read_container(pr_mp_reader *r, int want_map, uint64_t *n) {
  if (pr_mp_left(r) < 1) return PR_ETRUNC;
  unsigned c = *r->p;
  unsigned fix = want_map ? 0x80 : 0x90;
  if (c >= fix && c <= fix + 0x0f) {
    *n = c & 0x0f;
    r->p++;
    return 0;
  }
  if (c == (want_map ? 0xde : 0xdc)) return pr_mp_tagged(r, 2, n);
  if (c == (want_map ? 0xdf : 0xdd)) return pr_mp_tagged(r, 4, n);
  return PR_EPROTO;
}

static inline int pr_mp_read_array(pr_mp_reader *r, uint64_t *n) {
  return pr_mp_read_container(r, 0, n);
}

/* Skips one value of any type, nesting at most PR_MP_MAX_DEPTH - depth deep.
 * Terminates within pr_mp_left() steps: every element takes at least a byte. */
static inline int pr_mp_skip(pr_mp_reader *r, int depth) {
  if (depth >= PR_MP_MAX_DEPTH) return PR_EPROTO;
  if (pr_mp_left(r) < 1) return PR_ETRUNC;
  unsigned c = *r->p;
  uint64_t n = 0, skip;
  int err;
  if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
    r->p++;
    return 0;
  }
  if ((c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb || (c >= 0xc4 && c <= 0xc6)) {
    pr_view v;
    return pr_mp_read_str(r, &v);
  }
  if ((c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf)) {
    int is_map = (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
    if ((err = pr_mp_read_container(r, is_map, &n))) return err;
    if (is_map) n *= 2; /* n < 2^32: no overflow */
    for (uint64_t i = 0; i < n; i++)
      if ((err = pr_mp_skip(r, depth + 1))) return err;
    return 0;
  }
  switch (c) {
  case 0xcc:
  case 0xd0: skip = 2; break;
  case 0xcd:
  case 0xd1: skip = 3; break;
  case 0xce:
  case 0xd2:
  case 0xca: skip = 5; break;
  case 0xcf:
  case 0xd3:
  case 0xcb: skip = 9; break;
  case 0xd4: skip = 3; break; /* fixext 1: tag, type, 1 byte */
  case 0xd5: skip = 4; break;
  case 0xd6: skip = 6; break;
  case 0xd7: skip = 10; break;
  case 0xd8: skip = 18; break;
  case 0xc7:
  case 0xc8:
  case 0xc9: { /* ext 8/16/32: tag, length, type, data */
    size_t w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
    if (pr_mp_left(r) < 1 + w) return PR_ETRUNC;
    skip = 1 + w + 1 + pr_mp_be(r->p + 1, w);
    break;
  }
  default: return PR_EPROTO; /* 0xc1: never used */
  }
  if (pr_mp_left(r) < skip) return PR_ETRUNC;
  r->p += skip;
  return 0;
}

/* A list of ids: an array of at most max ids; with allow_empty_map, an empty
 * map also reads as the empty list (Lua's {}). More than max: PR_ETOOBIG. */
static inline int pr_mp_read_id_list(pr_mp_reader *r, size_t max, int allow_empty_map,
                                     pr_id_list *out) {
  uint64_t n;
  int err;
  if (allow_empty_map && pr_mp_is_map(r)) {
    if ((err = pr_mp_read_container(r, 1, &n))) return err;
    if (n != 0) return PR_EPROTO;
  } else if ((err = pr_mp_read_array(r, &n))) {
    return err;
  }
  if (n > max) return PR_ETOOBIG;
  out->raw = (const char *)r->p;
  out->n = (uint32_t)n;
  for (uint64_t i = 0; i < n; i++) {
    pr_view id;
    if ((err = pr_mp_read_id(r, &id))) return err;
  }
  out->raw_len = (size_t)((const char *)r->p - out->raw);
  return 0;
}

#endif
