/* Batch builder and decoder: round trips, splitting, limits, and that no
 * input (truncated, mutated, random) crashes the decoder or reads past it. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "batch.h"

typedef struct {
  int n;
  char users[64][PR_ID_MAX + 1];
  int status[64];
  uint64_t last_seen[64], version[64], ts[64];
  uint32_t n_rcpt[64];
  char rcpt[64][256];  /* joined with ',' (truncated for long lists) */
  const char *lo, *hi; /* the input: every view must lie inside */
} collected;

static int collect(const pr_delivery *d, void *arg) {
  collected *c = arg;
  cr_assert(d->user.p >= c->lo && d->user.p + d->user.len <= c->hi);
  if (c->n < 64) {
    memcpy(c->users[c->n], d->user.p, d->user.len);
    c->users[c->n][d->user.len] = '\0';
    c->status[c->n] = d->status;
    c->last_seen[c->n] = d->last_seen;
    c->version[c->n] = d->version;
    c->ts[c->n] = d->ts_ms;
    c->n_rcpt[c->n] = d->recipients.n;
  }
  size_t pos = 0, len = 0, count = 0;
  pr_view id;
  while (pr_id_list_next(&d->recipients, &pos, &id)) {
    cr_assert(id.p >= c->lo && id.p + id.len <= c->hi);
    cr_assert(id.len >= 1 && id.len <= PR_ID_MAX);
    if (c->n < 64 && len + id.len + 2 < sizeof c->rcpt[0]) {
      if (count) c->rcpt[c->n][len++] = ',';
      memcpy(c->rcpt[c->n] + len, id.p, id.len);
      len += id.len;
      c->rcpt[c->n][len] = '\0';
    }
    count++;
  }
  cr_assert_eq(count, d->recipients.n);
  c->n++;
  return 0;
}

static int decode(const char *p, size_t len, const pr_batch_limits *lim, pr_view *sender,
                  collected *c) {
  memset(c, 0, sizeof *c);
  c->lo = p;
  c->hi = p + len;
  return pr_batch_decode(p, len, lim, sender, collect, c);
}

static void build_sample(pr_batch_builder *b) {
  pr_view r1[] = {PR_VIEW("bob"), PR_VIEW("carol")};
  cr_assert_eq(pr_batch_builder_init(b, PR_VIEW("fanout-1")), 0);
  cr_assert_eq(pr_batch_add_delivery(b, PR_VIEW("alice"), PR_STATUS_ONLINE, 0, 3,
                                     UINT64_C(1764423000000), r1, 2),
               0);
  cr_assert_eq(pr_batch_begin(b, PR_VIEW("dave"), PR_STATUS_OFFLINE, UINT64_C(1764423000000), 8,
                              UINT64_C(1764423000001)),
               0);
  cr_assert_eq(pr_batch_add_recipient(b, PR_VIEW("erin")), 0);
  cr_assert_eq(pr_batch_end(b), 0);
  cr_assert_eq(pr_batch_begin(b, PR_VIEW("frank"), PR_STATUS_DND, 0, UINT64_C(1) << 40, 5), 0);
  for (int i = 0; i < 20; i++) {
    char name[16];
    snprintf(name, sizeof name, "user.%02d", i);
    cr_assert_eq(pr_batch_add_recipient(b, pr_view_of(name)), 0);
  }
  cr_assert_eq(pr_batch_end(b), 0);
}

Test(proto_batch, round_trip) {
  pr_batch_builder b;
  build_sample(&b);
  cr_assert_eq(pr_batch_count(&b), 3);
  const char *p;
  size_t len;
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  cr_assert_eq(pr_batch_bytes(&b), len, "bytes predicts the finished size");

  collected c;
  pr_view sender = {0};
  cr_assert_eq(decode(p, len, NULL, &sender, &c), 0);
  cr_assert(sender.len == 8 && memcmp(sender.p, "fanout-1", 8) == 0);
  cr_assert_eq(c.n, 3);
  cr_assert_str_eq(c.users[0], "alice");
  cr_assert_eq(c.status[0], PR_STATUS_ONLINE);
  cr_assert_eq(c.last_seen[0], 0);
  cr_assert_eq(c.version[0], 3);
  cr_assert_eq(c.ts[0], UINT64_C(1764423000000));
  cr_assert_str_eq(c.rcpt[0], "bob,carol");
  cr_assert_str_eq(c.users[1], "dave");
  cr_assert_eq(c.status[1], PR_STATUS_OFFLINE);
  cr_assert_eq(c.last_seen[1], UINT64_C(1764423000000));
  cr_assert_eq(c.version[1], 8);
  cr_assert_str_eq(c.rcpt[1], "erin");
  cr_assert_str_eq(c.users[2], "frank");
  cr_assert_eq(c.status[2], PR_STATUS_DND);
  cr_assert_eq(c.version[2], UINT64_C(1) << 40);
  cr_assert_eq(c.n_rcpt[2], 20);
  cr_assert(strncmp(c.rcpt[2], "user.00,user.01,", 16) == 0);

  /* msgpack-c reads the same structure */
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  cr_assert_eq(msgpack_unpack_next(&u, p, len, &off), MSGPACK_UNPACK_SUCCESS);
  cr_assert_eq(off, len);
  cr_assert_eq(u.data.via.array.size, 3);
  cr_assert_eq(u.data.via.array.ptr[2].via.array.size, 3);
  cr_assert_eq(u.data.via.array.ptr[2].via.array.ptr[2].via.array.ptr[5].via.array.size, 20);
  msgpack_unpacked_destroy(&u);
  pr_batch_builder_free(&b);
}

Test(proto_batch, reset_reuses_and_finish_again_grows) {
  pr_batch_builder b;
  build_sample(&b);
  const char *p;
  size_t len, len2;
  collected c;
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  pr_view r = PR_VIEW("zed");
  cr_assert_eq(pr_batch_add_delivery(&b, PR_VIEW("yan"), PR_STATUS_IDLE, 1, 2, 3, &r, 1), 0);
  cr_assert_eq(pr_batch_finish(&b, &p, &len2), 0);
  cr_assert_gt(len2, len);
  cr_assert_eq(decode(p, len2, NULL, NULL, &c), 0);
  cr_assert_eq(c.n, 4);
  cr_assert_str_eq(c.users[3], "yan");

  pr_batch_reset(&b);
  cr_assert_eq(pr_batch_count(&b), 0);
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  cr_assert_eq(decode(p, len, NULL, NULL, &c), 0);
  cr_assert_eq(c.n, 0, "an empty batch is valid");
  cr_assert_eq(pr_batch_add_delivery(&b, PR_VIEW("x"), PR_STATUS_ONLINE, 0, 1, 2, &r, 1), 0);
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  cr_assert_eq(decode(p, len, NULL, NULL, &c), 0);
  cr_assert_eq(c.n, 1);
  cr_assert_str_eq(c.users[0], "x");
  pr_batch_builder_free(&b);
}

Test(proto_batch, builder_misuse) {
  pr_batch_builder b;
  char big[PR_ID_MAX + 1];
  memset(big, 'q', sizeof big);
  cr_assert_eq(pr_batch_builder_init(&b, (pr_view){big, sizeof big}), PR_EINVAL);
  cr_assert_eq(pr_batch_builder_init(&b, (pr_view){big, PR_ID_MAX}), 0, "64-byte sender");
  const char *p;
  size_t len;
  cr_assert_eq(pr_batch_add_recipient(&b, PR_VIEW("a")), PR_EINVAL, "no open delivery");
  cr_assert_eq(pr_batch_end(&b), PR_EINVAL);
  cr_assert_eq(pr_batch_begin(&b, PR_VIEW("u"), PR_STATUS_INVISIBLE, 0, 1, 1), PR_EINVAL);
  cr_assert_eq(pr_batch_begin(&b, (pr_view){big, sizeof big}, PR_STATUS_ONLINE, 0, 1, 1),
               PR_EINVAL);
  cr_assert_eq(pr_batch_begin(&b, PR_VIEW("u"), PR_STATUS_ONLINE, 0, 1, 1), 0);
  cr_assert_eq(pr_batch_begin(&b, PR_VIEW("v"), PR_STATUS_ONLINE, 0, 1, 1), PR_EINVAL,
               "already open");
  cr_assert_eq(pr_batch_add_recipient(&b, (pr_view){big, 0}), PR_EINVAL, "empty id");
  cr_assert_eq(pr_batch_finish(&b, &p, &len), PR_EINVAL, "open delivery");
  cr_assert_eq(pr_batch_end(&b), 0);
  cr_assert_eq(pr_batch_count(&b), 0, "a delivery without recipients is dropped");
  pr_view bad[] = {PR_VIEW("ok"), {big, sizeof big}};
  cr_assert_eq(pr_batch_add_delivery(&b, PR_VIEW("u"), PR_STATUS_ONLINE, 0, 1, 1, bad, 2),
               PR_EINVAL);
  cr_assert_eq(pr_batch_count(&b), 0, "all or nothing");
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  pr_view sender;
  collected c;
  cr_assert_eq(decode(p, len, NULL, &sender, &c), 0);
  cr_assert_eq(sender.len, PR_ID_MAX);
  pr_batch_builder_free(&b);
}

Test(proto_batch, large_delivery_is_split) {
  pr_batch_builder b;
  cr_assert_eq(pr_batch_builder_init(&b, PR_VIEW("w")), 0);
  size_t total = PR_BATCH_MAX_RECIPIENTS * 2 + 5;
  cr_assert_eq(pr_batch_begin(&b, PR_VIEW("star"), PR_STATUS_ONLINE, 0, 9, 10), 0);
  for (size_t i = 0; i < total; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%zu", i);
    cr_assert_eq(pr_batch_add_recipient(&b, pr_view_of(name)), 0);
  }
  size_t predicted = pr_batch_bytes(&b);
  cr_assert_eq(pr_batch_end(&b), 0);
  cr_assert_eq(pr_batch_count(&b), 3);
  const char *p;
  size_t len;
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  cr_assert_lt(len > predicted ? len - predicted : predicted - len, 16);
  collected c;
  cr_assert_eq(decode(p, len, NULL, NULL, &c), 0);
  cr_assert_eq(c.n, 3);
  cr_assert_eq(c.n_rcpt[0], PR_BATCH_MAX_RECIPIENTS);
  cr_assert_eq(c.n_rcpt[1], PR_BATCH_MAX_RECIPIENTS);
  cr_assert_eq(c.n_rcpt[2], 5);
  for (int i = 0; i < 3; i++) {
    cr_assert_str_eq(c.users[i], "star");
    cr_assert_eq(c.version[i], 9);
  }
  cr_assert(strncmp(c.rcpt[2], "f32768,f32769,", 14) == 0, "%s", c.rcpt[2]);
  pr_batch_builder_free(&b);
}

Test(proto_batch, limits) {
  pr_batch_builder b;
  const char *p;
  size_t len;
  collected c;
  pr_view r[] = {PR_VIEW("a"), PR_VIEW("b"), PR_VIEW("c")};
  cr_assert_eq(pr_batch_builder_init(&b, PR_VIEW("w")), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(pr_batch_add_delivery(&b, PR_VIEW("u"), PR_STATUS_ONLINE, 0, (uint64_t)i, 0, r, 3),
                 0);
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  pr_batch_limits lim = {.max_deliveries = 4};
  cr_assert_eq(decode(p, len, &lim, NULL, &c), PR_ETOOBIG);
  cr_assert_eq(c.n, 0, "nothing delivered from a refused batch");
  lim.max_deliveries = 5;
  cr_assert_eq(decode(p, len, &lim, NULL, &c), 0);
  lim.max_recipients = 2;
  cr_assert_eq(decode(p, len, &lim, NULL, &c), PR_ETOOBIG);
  lim = (pr_batch_limits){.max_bytes = len - 1};
  cr_assert_eq(decode(p, len, &lim, NULL, &c), PR_ETOOBIG);
  pr_batch_builder_free(&b);

  /* over 4 MiB by default, whatever the content */
  size_t big = PR_BATCH_MAX_BYTES + 1;
  char *m = pr_calloc(1, big);
  cr_assert_eq(pr_batch_decode(m, big, NULL, NULL, collect, &c), PR_ETOOBIG);
  pr_free(m);
}

static int stop_at_second(const pr_delivery *d, void *arg) {
  int *n = arg;
  return ++*n == 2 ? 77 : 0;
}

Test(proto_batch, visitor_can_stop) {
  pr_batch_builder b;
  build_sample(&b);
  const char *p;
  size_t len;
  int n = 0;
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  cr_assert_eq(pr_batch_decode(p, len, NULL, NULL, stop_at_second, &n), 77);
  cr_assert_eq(n, 2);
  pr_batch_builder_free(&b);
}

Test(proto_batch, malformed) {
  collected c;
  static const struct {
    const char *m;
    size_t len;
    int rc;
    const char *what;
  } cases[] = {
      {"\x93\x02\xa1w\x90", 5, PR_EPROTO, "format 2"},
      {"\x92\x01\xa1w", 4, PR_EPROTO, "two elements"},
      {"\x93\x01\xa0\x90", 4, PR_EPROTO, "empty sender"},
      {"\x93\x01\x01\x90", 4, PR_EPROTO, "sender is an int"},
      {"\x93\x01\xa1w\x80", 5, PR_EPROTO, "deliveries is a map"},
      {"\x93\x01\xa1w\x91\x95\xa1u\xa6online\x00\x01\x02", 19, PR_EPROTO, "5-field delivery"},
      {"\x93\x01\xa1w\x91\x96\xa1u\xa4"
       "away\x00\x01\x02\x90",
       18, PR_EPROTO, "unknown status"},
      {"\x93\x01\xa1w\x91\x96\xa1u\xa3"
       "dnd\x00\x01\x02\x80",
       17, PR_EPROTO, "recipients map"},
      {"\x93\x01\xa1w\x91\x96\xa1u\xa3"
       "dnd\xff\x01\x02\x90",
       17, PR_EPROTO, "negative"},
      {"\x93\x01\xa1w\x91\x96\xa1u\xa3"
       "dnd\x00\x01\x02\x91\x01",
       18, PR_EPROTO, "int recipient"},
      {"\x93\x01\xa1w\x90\x00", 6, PR_EPROTO, "trailing byte"},
      {"\x93\x01\xa1w\xdd\xff\xff\xff\xff", 9, PR_ETOOBIG, "2^32-1 deliveries claimed"},
      {"\x93\x01\xa1w\x91", 5, PR_ETRUNC, "missing delivery"},
      {"\xc1", 1, PR_EPROTO, "never-used byte"},
      {"", 0, PR_ETRUNC, "empty"},
  };
  for (size_t i = 0; i < PR_ARRAY_LEN(cases); i++) {
    int rc = decode(cases[i].m, cases[i].len, NULL, NULL, &c);
    cr_assert_eq(rc, cases[i].rc, "%s: %d", cases[i].what, rc);
    cr_assert_eq(c.n, 0, "%s: nothing delivered", cases[i].what);
  }
}

Test(proto_batch, unknown_trailing_elements_skipped) {
  /* batch with a 4th element and a delivery with an 8th after its kind (nested map, float, ext) */
  static const unsigned char m[] = {0x94, 0x01, 0xa1, 'w',  0x91, 0x98, 0xa1, 'u',  0xa3,
                                    'd',  'n',  'd',  0x00, 0x01, 0x02, 0x91, 0xa1, 'r',
                                    0x02, 0x81, 0xa1, 'k',  0x92, 0xcb, 0,    0,    0,
                                    0,    0,    0,    0,    0,    0xd4, 1,    2,    0xc3};
  collected c;
  cr_assert_eq(decode((const char *)m, sizeof m, NULL, NULL, &c), 0);
  cr_assert_eq(c.n, 1);
  cr_assert_str_eq(c.rcpt[0], "r");
}

typedef struct {
  int kinds[4];
  size_t n;
} kinds_seen;

static int collect_kind(const pr_delivery *d, void *arg) {
  kinds_seen *k = arg;
  if (k->n < PR_ARRAY_LEN(k->kinds)) k->kinds[k->n++] = d->kind;
  return 0;
}

Test(proto_batch, relay_kind_round_trip) {
  pr_batch_builder b;
  cr_assert_eq(pr_batch_builder_init(&b, PR_VIEW("w")), 0);
  cr_assert_eq(
      pr_batch_begin_kind(&b, PR_EVENT_HEARTBEAT, PR_VIEW("alice"), PR_STATUS_ONLINE, 0, 3, 1), 0);
  cr_assert_eq(pr_batch_add_recipient(&b, PR_VIEW("bob")), 0);
  cr_assert_eq(pr_batch_end(&b), 0);
  cr_assert_eq(pr_batch_add_delivery(&b, PR_VIEW("carol"), PR_STATUS_IDLE, 0, 4, 1,
                                     &(pr_view)PR_VIEW_INIT("bob"), 1),
               0);
  cr_assert_eq(pr_batch_begin_kind(&b, 7, PR_VIEW("x"), PR_STATUS_ONLINE, 0, 1, 1), PR_EINVAL);
  const char *p;
  size_t n;
  cr_assert_eq(pr_batch_finish(&b, &p, &n), 0);
  kinds_seen k = {{0}, 0};
  cr_assert_eq(pr_batch_decode(p, n, NULL, NULL, collect_kind, &k), 0);
  cr_assert_eq(k.n, 2);
  cr_assert_eq(k.kinds[0], PR_EVENT_HEARTBEAT);
  cr_assert_eq(k.kinds[1], PR_EVENT_TRANSITION);
  pr_batch_builder_free(&b);
}

Test(proto_batch, deep_nesting_in_unknown_element_is_refused) {
  pr_buf b = PR_BUF_INIT;
  pr_buf_append(&b, "\x94\x01\xa1w\x90", 5);
  for (int i = 0; i < 100000; i++)
    pr_buf_putc(&b, (char)0x91);
  pr_buf_putc(&b, 0x01);
  collected c;
  cr_assert_eq(decode(b.data, b.len, NULL, NULL, &c), PR_EPROTO);
  pr_buf_free(&b);
}

Test(proto_batch, every_truncation) {
  pr_batch_builder b;
  build_sample(&b);
  const char *p;
  size_t len;
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  for (size_t n = 0; n < len; n++) {
    char *copy = pr_malloc(n ? n : 1);
    memcpy(copy, p, n);
    collected c;
    int rc = decode(copy, n, NULL, NULL, &c);
    cr_assert_eq(rc, PR_ETRUNC, "cut at %zu/%zu: %d", n, len, rc);
    cr_assert_eq(c.n, 0);
    pr_free(copy);
  }
  pr_batch_builder_free(&b);
}

/* xorshift64*: a fixed seed, so a failure reproduces */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

static void assert_safe(const char *p, size_t len) {
  collected c;
  int rc = decode(p, len, NULL, NULL, &c);
  cr_assert(rc == 0 || rc == PR_ETRUNC || rc == PR_EPROTO || rc == PR_ETOOBIG, "rc %d", rc);
  if (rc != 0) cr_assert_eq(c.n, 0);
}

Test(proto_batch, random_bytes_never_crash) {
  uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
  for (int iter = 0; iter < 20000; iter++) {
    size_t len = (size_t)(rnd(&seed) % 200);
    char *m = pr_malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
      m[i] = (char)rnd(&seed);
    if (len && iter % 2) m[0] = (char)0x93; /* often a plausible start */
    if (len > 1 && iter % 4 == 1) m[1] = 0x01;
    assert_safe(m, len);
    pr_free(m);
  }
}

Test(proto_batch, mutated_valid_batches_never_crash) {
  pr_batch_builder b;
  build_sample(&b);
  const char *p;
  size_t len;
  cr_assert_eq(pr_batch_finish(&b, &p, &len), 0);
  uint64_t seed = 42;
  char *m = pr_malloc(len);
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(m, p, len);
    int flips = 1 + (int)(rnd(&seed) % 4);
    for (int k = 0; k < flips; k++)
      m[rnd(&seed) % len] = (char)rnd(&seed);
    size_t cut = iter % 3 == 0 ? (size_t)(rnd(&seed) % (len + 1)) : len;
    assert_safe(m, cut);
  }
  pr_free(m);
  pr_batch_builder_free(&b);
}
