/* Event decoding against the bytes Redis 7.0.15's Lua cmsgpack.pack really
 * produced (captured with redis-cli --no-raw EVAL "return cmsgpack.pack(...)"),
 * encoding, and robustness against truncated and mutated input. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "base.h"
#include "event.h"

/* ------------------------------------------------------------ fixtures */
/* cmsgpack.pack({1,1,'alice','online',0,3,1764423000000,{}}) */
static const unsigned char ev_alice_online[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c, 0x69,
    0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,'alice','online',0,3,1764423000000,{'bob','carol'}}) */
static const unsigned char ev_alice_to[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c,
    0x69, 0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f,
    0xc0, 0x92, 0xa3, 0x62, 0x6f, 0x62, 0xa5, 0x63, 0x61, 0x72, 0x6f, 0x6c,
};
/* cmsgpack.pack({1,1,'bob','offline',1764423000000,8,1764423000123,{}}) */
static const unsigned char ev_bob_offline[] = {
    0x98, 0x01, 0x01, 0xa3, 0x62, 0x6f, 0x62, 0xa7, 0x6f, 0x66, 0x66, 0x6c,
    0x69, 0x6e, 0x65, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0,
    0x08, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x60, 0x3b, 0x90,
};
/* cmsgpack.pack({1,2,'carol','idle',0,70000,1764423000456,{'alice'}}) */
static const unsigned char ev_carol_heartbeat[] = {
    0x98, 0x01, 0x02, 0xa5, 0x63, 0x61, 0x72, 0x6f, 0x6c, 0xa4, 0x69, 0x64,
    0x6c, 0x65, 0x00, 0xce, 0x00, 0x01, 0x11, 0x70, 0xcf, 0x00, 0x00, 0x01,
    0x9a, 0xcf, 0xce, 0x61, 0x88, 0x91, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65,
};
/* cmsgpack.pack({1,1,'dave','dnd',0,4294967296,1764423000789,{}}) */
static const unsigned char ev_dave_dnd[] = {
    0x98, 0x01, 0x01, 0xa4, 0x64, 0x61, 0x76, 0x65, 0xa3, 0x64, 0x6e, 0x64, 0x00, 0xcf, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x62, 0xd5, 0x90,
};
/* cmsgpack.pack({1,1,string.rep('u',64),'online',0,1,1,{}}) */
static const unsigned char ev_id64[] = {
    0x98, 0x01, 0x01, 0xd9, 0x40, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0xa6, 0x6f, 0x6e, 0x6c, 0x69, 0x6e, 0x65, 0x00, 0x01, 0x01, 0x90,
};
/* cmsgpack.pack({1,1,string.rep('u',65),'online',0,1,1,{}}) */
static const unsigned char ev_id65[] = {
    0x98, 0x01, 0x01, 0xd9, 0x41, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75, 0x75,
    0xa6, 0x6f, 0x6e, 0x6c, 0x69, 0x6e, 0x65, 0x00, 0x01, 0x01, 0x90,
};
/* cmsgpack.pack({2,1,'alice','online',0,3,1764423000000,{}}) */
static const unsigned char ev_format2[] = {
    0x98, 0x02, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c, 0x69,
    0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,'alice','online',1.5,3,1764423000000,{}}) */
static const unsigned char ev_float_seen[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c, 0x69, 0x6e, 0x65,
    0xca, 0x3f, 0xc0, 0x00, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,'alice','away',0,3,1764423000000,{}}) */
static const unsigned char ev_bad_status[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa4, 0x61, 0x77, 0x61,
    0x79, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,42,'online',0,3,1764423000000,{}}) */
static const unsigned char ev_user_number[] = {
    0x98, 0x01, 0x01, 0x2a, 0xa6, 0x6f, 0x6e, 0x6c, 0x69, 0x6e, 0x65, 0x00,
    0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,'alice','online',-1,3,1764423000000,{}}) */
static const unsigned char ev_negative_seen[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c, 0x69,
    0x6e, 0x65, 0xff, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,'alice','online',0,3,1764423000000,{},'extra',{1,2}}) */
static const unsigned char ev_extra[] = {
    0x9a, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c,
    0x69, 0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f,
    0xc0, 0x90, 0xa5, 0x65, 0x78, 0x74, 0x72, 0x61, 0x92, 0x01, 0x02,
};
/* cmsgpack.pack({1,1,'alice','online',0,3,1764423000000,{x='bob'}}) */
static const unsigned char ev_to_map[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e,
    0x6c, 0x69, 0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf,
    0xce, 0x5f, 0xc0, 0x81, 0xa1, 0x78, 0xa3, 0x62, 0x6f, 0x62,
};
/* cmsgpack.pack({1,3,'alice','online',0,3,1764423000000,{}}) */
static const unsigned char ev_kind3[] = {
    0x98, 0x01, 0x03, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c, 0x69,
    0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};
/* cmsgpack.pack({1,1,'alice','online',0,3,1764423000000}) */
static const unsigned char ev_short[] = {
    0x97, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f, 0x6e, 0x6c, 0x69,
    0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0,
};
/* cmsgpack.pack({1,1,'alice','online',0,3,1764423000000,{'bob',7}}) */
static const unsigned char ev_to_number[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa6, 0x6f,
    0x6e, 0x6c, 0x69, 0x6e, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01,
    0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x92, 0xa3, 0x62, 0x6f, 0x62, 0x07,
};
/* cmsgpack.pack({1,1,'alice','invisible',0,3,1764423000000,{}}) */
static const unsigned char ev_invisible[] = {
    0x98, 0x01, 0x01, 0xa5, 0x61, 0x6c, 0x69, 0x63, 0x65, 0xa9, 0x69, 0x6e, 0x76, 0x69, 0x73, 0x69,
    0x62, 0x6c, 0x65, 0x00, 0x03, 0xcf, 0x00, 0x00, 0x01, 0x9a, 0xcf, 0xce, 0x5f, 0xc0, 0x90,
};

#define DECODE(arr, ev) pr_event_decode((const char *)(arr), sizeof(arr), (ev))

static const struct {
  const unsigned char *p;
  size_t len;
} valid[] = {
    {ev_alice_online, sizeof ev_alice_online},
    {ev_alice_to, sizeof ev_alice_to},
    {ev_bob_offline, sizeof ev_bob_offline},
    {ev_carol_heartbeat, sizeof ev_carol_heartbeat},
    {ev_dave_dnd, sizeof ev_dave_dnd},
    {ev_id64, sizeof ev_id64},
    {ev_extra, sizeof ev_extra},
};

static void assert_view(pr_view v, const char *s) {
  cr_assert_eq(v.len, strlen(s), "length %zu, expected %zu (%s)", v.len, strlen(s), s);
  cr_assert(memcmp(v.p, s, v.len) == 0, "expected %s", s);
}

/* The ids of a list, joined with ',' into out. */
static void join_ids(const pr_id_list *l, char *out, size_t cap) {
  size_t pos = 0, n = 0, count = 0;
  pr_view id;
  out[0] = '\0';
  while (pr_id_list_next(l, &pos, &id)) {
    cr_assert_lt(n + id.len + 2, cap);
    if (count++) out[n++] = ',';
    memcpy(out + n, id.p, id.len);
    n += id.len;
    out[n] = '\0';
  }
  cr_assert_eq(count, l->n, "walked %zu ids, list says %u", count, l->n);
}

/* ------------------------------------------------------------ cmsgpack fixtures */
Test(proto_event, cmsgpack_empty_to) {
  pr_event ev;
  cr_assert_eq(DECODE(ev_alice_online, &ev), 0);
  cr_assert_eq(ev.kind, PR_EVENT_TRANSITION);
  assert_view(ev.user, "alice");
  cr_assert_eq(ev.status, PR_STATUS_ONLINE);
  cr_assert_eq(ev.last_seen, 0);
  cr_assert_eq(ev.version, 3);
  cr_assert_eq(ev.ts_ms, UINT64_C(1764423000000));
  cr_assert_eq(ev.to.n, 0);
  /* views point into the input */
  cr_assert(ev.user.p > (const char *)ev_alice_online &&
            ev.user.p < (const char *)ev_alice_online + sizeof ev_alice_online);
}

Test(proto_event, cmsgpack_to_list) {
  pr_event ev;
  char ids[256];
  cr_assert_eq(DECODE(ev_alice_to, &ev), 0);
  cr_assert_eq(ev.to.n, 2);
  join_ids(&ev.to, ids, sizeof ids);
  cr_assert_str_eq(ids, "bob,carol");
}

Test(proto_event, cmsgpack_offline_with_last_seen) {
  pr_event ev;
  cr_assert_eq(DECODE(ev_bob_offline, &ev), 0);
  assert_view(ev.user, "bob");
  cr_assert_eq(ev.status, PR_STATUS_OFFLINE);
  cr_assert_eq(ev.last_seen, UINT64_C(1764423000000));
  cr_assert_eq(ev.version, 8);
  cr_assert_eq(ev.ts_ms, UINT64_C(1764423000123));
}

Test(proto_event, cmsgpack_heartbeat_relay) {
  pr_event ev;
  char ids[64];
  cr_assert_eq(DECODE(ev_carol_heartbeat, &ev), 0);
  cr_assert_eq(ev.kind, PR_EVENT_HEARTBEAT);
  cr_assert_eq(ev.status, PR_STATUS_IDLE);
  cr_assert_eq(ev.version, 70000); /* uint32 encoding */
  join_ids(&ev.to, ids, sizeof ids);
  cr_assert_str_eq(ids, "alice");
}

Test(proto_event, cmsgpack_dnd_and_uint64_version) {
  pr_event ev;
  cr_assert_eq(DECODE(ev_dave_dnd, &ev), 0);
  cr_assert_eq(ev.status, PR_STATUS_DND);
  cr_assert_eq(ev.version, UINT64_C(4294967296));
}

Test(proto_event, id_of_64_bytes_accepted_65_rejected) {
  pr_event ev;
  cr_assert_eq(DECODE(ev_id64, &ev), 0);
  cr_assert_eq(ev.user.len, 64);
  cr_assert_eq(DECODE(ev_id65, &ev), PR_EPROTO);
}

Test(proto_event, trailing_elements_are_skipped) {
  pr_event ev;
  cr_assert_eq(DECODE(ev_extra, &ev), 0);
  assert_view(ev.user, "alice");
  cr_assert_eq(ev.to.n, 0);
}

Test(proto_event, rejects_bad_fields) {
  pr_event ev;
  cr_assert_eq(DECODE(ev_format2, &ev), PR_EPROTO, "unknown format version");
  cr_assert_eq(DECODE(ev_kind3, &ev), PR_EPROTO, "unknown kind");
  cr_assert_eq(DECODE(ev_float_seen, &ev), PR_EPROTO, "float where an int belongs");
  cr_assert_eq(DECODE(ev_negative_seen, &ev), PR_EPROTO, "negative int");
  cr_assert_eq(DECODE(ev_bad_status, &ev), PR_EPROTO, "unknown status");
  cr_assert_eq(DECODE(ev_invisible, &ev), PR_EPROTO, "invisible is never on the wire");
  cr_assert_eq(DECODE(ev_user_number, &ev), PR_EPROTO, "user is a number");
  cr_assert_eq(DECODE(ev_short, &ev), PR_EPROTO, "7 elements");
  cr_assert_eq(DECODE(ev_to_map, &ev), PR_EPROTO, "non-empty map as to");
  cr_assert_eq(DECODE(ev_to_number, &ev), PR_EPROTO, "number in to");
}

Test(proto_event, empty_map_as_to) {
  unsigned char m[sizeof ev_alice_online];
  pr_event ev;
  memcpy(m, ev_alice_online, sizeof m);
  cr_assert_eq(m[sizeof m - 1], 0x90);
  m[sizeof m - 1] = 0x80; /* {} as an empty map */
  cr_assert_eq(DECODE(m, &ev), 0);
  cr_assert_eq(ev.to.n, 0);
}

Test(proto_event, other_int_and_string_encodings) {
  /* int8 format, uint16 kind, bin8 user, str8 status, int64 last_seen,
   * uint8 version, int32 ts, array16 to with a bin id */
  static const unsigned char m[] = {0x98, 0xd0, 0x01, 0xcd, 0x00, 0x02, 0xc4, 0x03, 'e',  'v',
                                    'e',  0xd9, 0x04, 'i',  'd',  'l',  'e',  0xd3, 0,    0,
                                    0,    0,    0,    0,    0,    9,    0xcc, 0xc8, 0xd2, 0,
                                    0,    1,    0,    0xdc, 0x00, 0x01, 0xc4, 0x01, 'x'};
  pr_event ev;
  char ids[16];
  cr_assert_eq(DECODE(m, &ev), 0);
  cr_assert_eq(ev.kind, PR_EVENT_HEARTBEAT);
  assert_view(ev.user, "eve");
  cr_assert_eq(ev.status, PR_STATUS_IDLE);
  cr_assert_eq(ev.last_seen, 9);
  cr_assert_eq(ev.version, 200);
  cr_assert_eq(ev.ts_ms, 256);
  join_ids(&ev.to, ids, sizeof ids);
  cr_assert_str_eq(ids, "x");
}

Test(proto_event, empty_user_and_empty_input) {
  static const unsigned char m[] = {0x98, 1,   1,   0xa0, 0xa6, 'o', 'n', 'l',
                                    'i',  'n', 'e', 0,    3,    4,   0x90};
  pr_event ev;
  cr_assert_eq(DECODE(m, &ev), PR_EPROTO);
  cr_assert_eq(pr_event_decode("", 0, &ev), PR_ETRUNC);
  cr_assert_eq(pr_event_decode("\x93\x01\x01", 3, &ev), PR_EPROTO, "array of 3");
  cr_assert_eq(pr_event_decode("\xc0", 1, &ev), PR_EPROTO, "nil");
  cr_assert_eq(pr_event_decode("\x88", 1, &ev), PR_EPROTO, "map");
}

Test(proto_event, bytes_after_the_event) {
  unsigned char m[sizeof ev_alice_online + 1];
  pr_event ev;
  memcpy(m, ev_alice_online, sizeof ev_alice_online);
  m[sizeof m - 1] = 0x01;
  cr_assert_eq(DECODE(m, &ev), PR_EPROTO);
}

Test(proto_event, too_many_recipients) {
  pr_buf b = PR_BUF_INIT;
  pr_event ev;
  pr_buf_append(&b, ev_alice_online, sizeof ev_alice_online - 1);
  size_t n = PR_EVENT_MAX_TO + 1;
  unsigned char hdr[3] = {0xdc, (unsigned char)(n >> 8), (unsigned char)n};
  pr_buf_append(&b, hdr, 3);
  for (size_t i = 0; i < n; i++)
    pr_buf_append(&b, "\xa1x", 2);
  cr_assert_eq(pr_event_decode(b.data, b.len, &ev), PR_ETOOBIG);
  /* exactly the limit is fine */
  b.len -= 2;
  b.data[sizeof ev_alice_online - 1 + 2] = (unsigned char)(n - 1);
  cr_assert_eq(pr_event_decode(b.data, b.len, &ev), 0);
  cr_assert_eq(ev.to.n, PR_EVENT_MAX_TO);
  pr_buf_free(&b);
}

/* ------------------------------------------------------------ robustness */
Test(proto_event, every_truncation_is_etrunc) {
  for (size_t f = 0; f < PR_ARRAY_LEN(valid); f++) {
    for (size_t n = 0; n < valid[f].len; n++) {
      /* a heap copy of exactly n bytes, so ASan sees any read past the end */
      char *p = pr_malloc(n ? n : 1);
      memcpy(p, valid[f].p, n);
      pr_event ev;
      int rc = pr_event_decode(p, n, &ev);
      cr_assert_eq(rc, PR_ETRUNC, "fixture %zu cut at %zu/%zu: %d", f, n, valid[f].len, rc);
      pr_free(p);
    }
  }
}

Test(proto_event, every_byte_mutation_is_safe) {
  static const unsigned char values[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                         0xbf, 0xc0, 0xc1, 0xc4, 0xcf, 0xd3, 0xd9, 0xdb,
                                         0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
  for (size_t f = 0; f < PR_ARRAY_LEN(valid); f++) {
    size_t len = valid[f].len;
    char *p = pr_malloc(len);
    for (size_t i = 0; i < len; i++) {
      for (size_t v = 0; v < sizeof values; v++) {
        memcpy(p, valid[f].p, len);
        p[i] = (char)values[v];
        pr_event ev;
        int rc = pr_event_decode(p, len, &ev);
        cr_assert(rc == 0 || rc == PR_ETRUNC || rc == PR_EPROTO || rc == PR_ETOOBIG);
        if (rc == 0) {
          cr_assert(ev.user.p >= p && ev.user.p + ev.user.len <= p + len);
          cr_assert(ev.user.len >= 1 && ev.user.len <= PR_ID_MAX);
          cr_assert(ev.to.raw >= p && ev.to.raw + ev.to.raw_len <= p + len);
          size_t pos = 0, count = 0;
          pr_view id;
          while (pr_id_list_next(&ev.to, &pos, &id)) {
            cr_assert(id.len >= 1 && id.len <= PR_ID_MAX);
            count++;
          }
          cr_assert_eq(count, ev.to.n);
        }
      }
    }
    pr_free(p);
  }
}

/* ------------------------------------------------------------ encoding */
Test(proto_event, encode_reproduces_cmsgpack_bytes) {
  pr_event ev = {.kind = PR_EVENT_TRANSITION,
                 .user = PR_VIEW("alice"),
                 .status = PR_STATUS_ONLINE,
                 .last_seen = 0,
                 .version = 3,
                 .ts_ms = UINT64_C(1764423000000)};
  pr_view to[] = {PR_VIEW("bob"), PR_VIEW("carol")};
  pr_buf b = PR_BUF_INIT;
  cr_assert_eq(pr_event_encode(&ev, NULL, 0, &b), 0);
  cr_assert_eq(b.len, sizeof ev_alice_online);
  cr_assert(memcmp(b.data, ev_alice_online, b.len) == 0);
  pr_buf_clear(&b);
  cr_assert_eq(pr_event_encode(&ev, to, 2, &b), 0);
  cr_assert_eq(b.len, sizeof ev_alice_to);
  cr_assert(memcmp(b.data, ev_alice_to, b.len) == 0);
  pr_buf_free(&b);
}

Test(proto_event, round_trip) {
  char user[PR_ID_MAX];
  memset(user, 'z', sizeof user);
  pr_event in = {.kind = PR_EVENT_HEARTBEAT,
                 .user = {user, sizeof user},
                 .status = PR_STATUS_DND,
                 .last_seen = UINT64_MAX,
                 .version = 123456789,
                 .ts_ms = 42};
  pr_view to[40];
  char names[40][8];
  for (int i = 0; i < 40; i++) {
    snprintf(names[i], sizeof names[i], "u%d", i);
    to[i] = pr_view_of(names[i]);
  }
  pr_buf b = PR_BUF_INIT;
  cr_assert_eq(pr_event_encode(&in, to, 40, &b), 0);
  pr_event out;
  cr_assert_eq(pr_event_decode(b.data, b.len, &out), 0);
  cr_assert_eq(out.kind, in.kind);
  cr_assert_eq(out.user.len, PR_ID_MAX);
  cr_assert(memcmp(out.user.p, user, PR_ID_MAX) == 0);
  cr_assert_eq(out.status, in.status);
  cr_assert_eq(out.last_seen, UINT64_MAX);
  cr_assert_eq(out.version, in.version);
  cr_assert_eq(out.ts_ms, in.ts_ms);
  cr_assert_eq(out.to.n, 40);
  size_t pos = 0;
  pr_view id;
  for (int i = 0; i < 40; i++) {
    cr_assert(pr_id_list_next(&out.to, &pos, &id));
    assert_view(id, names[i]);
  }
  cr_assert_not(pr_id_list_next(&out.to, &pos, &id));

  /* msgpack-c's own unpacker reads it as an 8-element array too */
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  cr_assert_eq(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
  cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
  cr_assert_eq(u.data.via.array.size, 8);
  cr_assert_eq(u.data.via.array.ptr[7].via.array.size, 40);
  cr_assert_eq(off, b.len);
  msgpack_unpacked_destroy(&u);
  pr_buf_free(&b);
}

Test(proto_event, encode_refuses_what_would_not_decode) {
  pr_event ev = {.kind = PR_EVENT_TRANSITION, .user = PR_VIEW("a"), .status = PR_STATUS_ONLINE};
  char big[PR_ID_MAX + 1];
  memset(big, 'b', sizeof big);
  pr_view bad_to[] = {{big, sizeof big}};
  pr_buf b = PR_BUF_INIT;
  cr_assert_eq(pr_event_encode(&ev, bad_to, 1, &b), PR_EINVAL);
  ev.status = PR_STATUS_INVISIBLE;
  cr_assert_eq(pr_event_encode(&ev, NULL, 0, &b), PR_EINVAL);
  ev.status = PR_STATUS_ONLINE;
  ev.kind = 7;
  cr_assert_eq(pr_event_encode(&ev, NULL, 0, &b), PR_EINVAL);
  ev.kind = PR_EVENT_TRANSITION;
  ev.user = (pr_view){big, 0};
  cr_assert_eq(pr_event_encode(&ev, NULL, 0, &b), PR_EINVAL);
  cr_assert_eq(b.len, 0, "nothing appended on error");
  pr_buf_free(&b);
}

Test(proto_event, status_names) {
  cr_assert_str_eq(pr_status_name(PR_STATUS_OFFLINE), "offline");
  cr_assert_str_eq(pr_status_name(PR_STATUS_DND), "dnd");
  cr_assert_null(pr_status_name(5));
  cr_assert_null(pr_status_name(-1));
  cr_assert_eq(pr_status_parse("idle", 4), PR_STATUS_IDLE);
  cr_assert_eq(pr_status_parse("invisible", 9), PR_STATUS_INVISIBLE);
  cr_assert_eq(pr_status_parse("onlin", 5), PR_EINVAL);
  cr_assert_eq(pr_status_parse("onlinex", 7), PR_EINVAL);
}
