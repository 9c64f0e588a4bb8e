/* batch.c: the fanout -> receive batch. The builder writes deliveries after a
 * reserved room at the front of its buffer; finish writes the header (whose
 * delivery count is known only then) right-aligned into that room, so the
 * message is contiguous without moving the deliveries. */
#include <msgpack.h>
#include <string.h>

#include "base.h"
#include "batch.h"
#include "event.h"
#include "mp_read.h"

/* fixarray(3) + format + str8 header + sender + array32 header */
#define HDR_ROOM        (1 + 1 + 2 + PR_ID_MAX + 5)
#define DELIVERY_FIELDS 6

static int buf_write(void *data, const char *p, size_t n) {
  pr_buf_append(data, p, n);
  return 0;
}

/* A fixed buffer for the header: HDR_ROOM bytes always suffice. */
typedef struct {
  char b[HDR_ROOM];
  size_t n;
} hdr_buf;

static int hdr_write(void *data, const char *p, size_t n) {
  hdr_buf *h = data;
  if (n > sizeof h->b - h->n) return -1;
  memcpy(h->b + h->n, p, n);
  h->n += n;
  return 0;
}

static int id_ok(pr_view v) { return v.len >= 1 && v.len <= PR_ID_MAX && v.p; }

static int wire_status_ok(int st) { return st >= PR_STATUS_OFFLINE && st <= PR_STATUS_DND; }

/* msgpack array header size for n elements */
static size_t array_hdr_len(size_t n) { return n < 16 ? 1 : n <= 0xffff ? 3 : 5; }

int pr_batch_builder_init(pr_batch_builder *b, pr_view sender) {
  memset(b, 0, sizeof *b);
  if (!id_ok(sender)) return PR_EINVAL;
  memcpy(b->sender, sender.p, sender.len);
  b->sender_len = sender.len;
  pr_batch_reset(b);
  return 0;
}

void pr_batch_builder_free(pr_batch_builder *b) {
  pr_buf_free(&b->buf);
  pr_buf_free(&b->rcpt);
  pr_buf_free(&b->head);
  b->count = b->n_rcpt = 0;
  b->open = 0;
}

void pr_batch_reset(pr_batch_builder *b) {
  pr_buf_clear(&b->buf);
  pr_buf_reserve(&b->buf, HDR_ROOM);
  b->buf.len = HDR_ROOM; /* the room is written by finish */
  pr_buf_clear(&b->rcpt);
  pr_buf_clear(&b->head);
  b->count = b->n_rcpt = 0;
  b->open = 0;
}

/* Moves the open delivery's recipients so far into the batch as one delivery. */
static void flush_open(pr_batch_builder *b) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, &b->buf, buf_write);
  int relay = b->kind != PR_EVENT_TRANSITION;
  msgpack_pack_array(&pk, DELIVERY_FIELDS + relay);
  pr_buf_append(&b->buf, b->head.data, b->head.len);
  msgpack_pack_array(&pk, b->n_rcpt);
  pr_buf_append(&b->buf, b->rcpt.data, b->rcpt.len);
  if (relay) msgpack_pack_uint8(&pk, (uint8_t)b->kind);
  pr_buf_clear(&b->rcpt);
  b->n_rcpt = 0;
  b->count++;
}

int pr_batch_begin(pr_batch_builder *b, pr_view user, int status, uint64_t last_seen,
                   uint64_t version, uint64_t ts_ms) {
  return pr_batch_begin_kind(b, PR_EVENT_TRANSITION, user, status, last_seen, version, ts_ms);
}

int pr_batch_begin_kind(pr_batch_builder *b, int kind, pr_view user, int status, uint64_t last_seen,
                        uint64_t version, uint64_t ts_ms) {
  if (b->open || !id_ok(user) || !wire_status_ok(status) ||
      (kind != PR_EVENT_TRANSITION && kind != PR_EVENT_HEARTBEAT))
    return PR_EINVAL;
  b->kind = kind;
  const char *st = pr_status_name(status);
  msgpack_packer pk;
  pr_buf_clear(&b->head);
  msgpack_packer_init(&pk, &b->head, buf_write);
  msgpack_pack_str_with_body(&pk, user.p, user.len);
  msgpack_pack_str_with_body(&pk, st, strlen(st));
  msgpack_pack_uint64(&pk, last_seen);
  msgpack_pack_uint64(&pk, version);
  msgpack_pack_uint64(&pk, ts_ms);
  pr_buf_clear(&b->rcpt);
  b->n_rcpt = 0;
  b->open = 1;
  return 0;
}

int pr_batch_add_recipient(pr_batch_builder *b, pr_view r) {
  if (!b->open || !id_ok(r)) return PR_EINVAL;
  if (b->n_rcpt == PR_BATCH_MAX_RECIPIENTS) flush_open(b); /* split: same update, next ids */
  msgpack_packer pk;
  msgpack_packer_init(&pk, &b->rcpt, buf_write);
  msgpack_pack_str_with_body(&pk, r.p, r.len);
  b->n_rcpt++;
  return 0;
}

int pr_batch_end(pr_batch_builder *b) {
  if (!b->open) return PR_EINVAL;
  if (b->n_rcpt > 0) flush_open(b);
  b->open = 0;
  return 0;
}

int pr_batch_add_delivery(pr_batch_builder *b, pr_view user, int status, uint64_t last_seen,
                          uint64_t version, uint64_t ts_ms, const pr_view *r, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!id_ok(r[i])) return PR_EINVAL;
  int err = pr_batch_begin(b, user, status, last_seen, version, ts_ms);
  if (err) return err;
  for (size_t i = 0; i < n; i++)
    pr_batch_add_recipient(b, r[i]);
  return pr_batch_end(b);
}

uint32_t pr_batch_count(const pr_batch_builder *b) { return b->count; }

size_t pr_batch_bytes(const pr_batch_builder *b) {
  size_t n = 1 + 1 + (b->sender_len < 32 ? 1 : 2) + b->sender_len;
  n += array_hdr_len(b->count + (b->open && b->n_rcpt ? 1 : 0));
  n += b->buf.len - HDR_ROOM;
  if (b->open && b->n_rcpt) n += 1 + b->head.len + array_hdr_len(b->n_rcpt) + b->rcpt.len;
  return n;
}

int pr_batch_finish(pr_batch_builder *b, const char **data, size_t *len) {
  if (b->open) return PR_EINVAL;
  hdr_buf h = {.n = 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &h, hdr_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint64(&pk, PR_BATCH_FORMAT);
  msgpack_pack_str_with_body(&pk, b->sender, b->sender_len);
  msgpack_pack_array(&pk, b->count);
  char *start = b->buf.data + HDR_ROOM - h.n;
  memcpy(start, h.b, h.n);
  *data = start;
  *len = b->buf.len - (HDR_ROOM - h.n);
  return 0;
}

/* ------------------------------------------------------------------ decoder */

/* One pass over the message: validates everything, and calls visit (when not
 * NULL) for each delivery as it goes. */
static int walk(const char *data, size_t len, const pr_batch_limits *lim, pr_view *sender,
                pr_batch_visit_fn visit, void *arg) {
  pr_mp_reader r;
  uint64_t n, format, nd;
  pr_view from;
  int err;
  pr_mp_init(&r, data, len);
  if ((err = pr_mp_read_array(&r, &n))) return err;
  if (n < 3) return PR_EPROTO;
  if ((err = pr_mp_read_uint(&r, &format))) return err;
  if (format != PR_BATCH_FORMAT) return PR_EPROTO;
  if ((err = pr_mp_read_id(&r, &from))) return err;
  if (sender) *sender = from;
  if ((err = pr_mp_read_array(&r, &nd))) return err;
  if (nd > lim->max_deliveries) return PR_ETOOBIG;
  for (uint64_t i = 0; i < nd; i++) {
    pr_delivery d;
    uint64_t m;
    if ((err = pr_mp_read_array(&r, &m))) return err;
    if (m < DELIVERY_FIELDS) return PR_EPROTO;
    if ((err = pr_mp_read_id(&r, &d.user))) return err;
    if ((err = pr_mp_read_status(&r, &d.status))) return err;
    if ((err = pr_mp_read_uint(&r, &d.last_seen))) return err;
    if ((err = pr_mp_read_uint(&r, &d.version))) return err;
    if ((err = pr_mp_read_uint(&r, &d.ts_ms))) return err;
    if ((err = pr_mp_read_id_list(&r, lim->max_recipients, 0, &d.recipients))) return err;
    d.kind = PR_EVENT_TRANSITION;
    if (m > DELIVERY_FIELDS) { /* optional 7th field: the kind */
      uint64_t kind;
      if ((err = pr_mp_read_uint(&r, &kind))) return err;
      if (kind != PR_EVENT_TRANSITION && kind != PR_EVENT_HEARTBEAT) return PR_EPROTO;
      d.kind = (int)kind;
    }
    for (uint64_t j = DELIVERY_FIELDS + 1; j < m; j++)
      if ((err = pr_mp_skip(&r, 3))) return err;
    if (visit && (err = visit(&d, arg))) return err;
  }
  for (uint64_t i = 3; i < n; i++)
    if ((err = pr_mp_skip(&r, 1))) return err;
  return pr_mp_left(&r) == 0 ? 0 : PR_EPROTO;
}

int pr_batch_decode(const char *data, size_t len, const pr_batch_limits *limits, pr_view *sender,
                    pr_batch_visit_fn visit, void *arg) {
  pr_batch_limits lim = {PR_BATCH_MAX_BYTES, PR_BATCH_DEFAULT_MAX_DELIVERIES,
                         PR_BATCH_MAX_RECIPIENTS};
  if (limits) {
    if (limits->max_bytes) lim.max_bytes = limits->max_bytes;
    if (limits->max_deliveries) lim.max_deliveries = limits->max_deliveries;
    if (limits->max_recipients) lim.max_recipients = limits->max_recipients;
  }
  if (len > lim.max_bytes) return PR_ETOOBIG;
  int err = walk(data, len, &lim, sender, NULL, NULL);
  if (err || !visit) return err;
  return walk(data, len, &lim, NULL, visit, arg);
}
