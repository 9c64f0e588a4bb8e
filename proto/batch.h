/* batch.h: the fanout -> receive batch sent over nng PUSH/PULL: many deliveries
 * of presence updates to one receive instance. Format in README.md:
 *   [1, sender, [[user, status, last_seen, version, ts_ms, [recipient, ...]], ...]]
 *
 * Ownership: the builder owns its memory (pr_batch_builder_free releases it);
 * the bytes from pr_batch_finish are the builder's, valid until its next call.
 * pr_batch_decode allocates nothing: the views it hands the visitor point into
 * the input and are valid while the input lives. */
#ifndef PR_BATCH_H
#define PR_BATCH_H

#include "buf.h"
#include "event.h" /* PR_EVENT_TRANSITION, PR_EVENT_HEARTBEAT */
#include "proto.h"

#define PR_BATCH_FORMAT                 1
#define PR_BATCH_MAX_BYTES              (4u << 20) /* a receiver refuses a larger message */
#define PR_BATCH_MAX_RECIPIENTS         16384      /* per delivery (64-byte ids: ~1 MiB) */
#define PR_BATCH_DEFAULT_MAX_DELIVERIES 4096 /* decoder default; fanout sends <= --batch-max */

/* One decoded delivery: push this update to each recipient's local connections. */
typedef struct {
  int kind; /* PR_EVENT_TRANSITION, or PR_EVENT_HEARTBEAT for a relayed heartbeat */
  pr_view user;
  int status; /* PR_STATUS_OFFLINE/ONLINE/IDLE/DND */
  uint64_t last_seen, version, ts_ms;
  pr_id_list recipients; /* 0..max_recipients ids */
} pr_delivery;

/* ------------------------------------------------------------------ builder
 * Typical use in fanout, one builder per receive instance:
 *   pr_batch_begin(b, user, status, last_seen, version, ts_ms);
 *   for each recipient on that instance: pr_batch_add_recipient(b, r);
 *   pr_batch_end(b);
 *   if (pr_batch_count(b) >= batch_max || pr_batch_bytes(b) >= limit) {
 *     pr_batch_finish(b, &p, &n); send p[0..n); pr_batch_reset(b); }
 * A delivery that reaches PR_BATCH_MAX_RECIPIENTS is split transparently: the
 * builder ends it and continues the recipients in a new delivery of the same
 * update (so count may grow by more than one per begin/end). */
typedef struct {
  pr_buf buf;  /* [room for the header][deliveries...] */
  pr_buf rcpt; /* encoded recipients of the open delivery */
  pr_buf head; /* encoded fields of the open delivery (reused on a split) */
  char sender[PR_ID_MAX];
  size_t sender_len;
  uint32_t count;  /* deliveries ended */
  uint32_t n_rcpt; /* recipients of the open delivery */
  int open;        /* a delivery is begun and not ended */
  int kind;        /* of the open delivery */
} pr_batch_builder;

/* PR_EINVAL if sender is not 1..PR_ID_MAX bytes (the builder is then unusable). */
int pr_batch_builder_init(pr_batch_builder *b, pr_view sender);
void pr_batch_builder_free(pr_batch_builder *b);
/* Empties the builder for the next batch; keeps its memory and sender. */
void pr_batch_reset(pr_batch_builder *b);

/* Opens a delivery. PR_EINVAL: a delivery is already open, user is not 1..PR_ID_MAX bytes, or
 * status is not one of the four. */
int pr_batch_begin(pr_batch_builder *b, pr_view user, int status, uint64_t last_seen,
                   uint64_t version, uint64_t ts_ms);
/* The same for a delivery of another kind: PR_EVENT_HEARTBEAT (a relayed
 * heartbeat, whose version repeats the last transition's) is written with a
 * 7th field; a transition (pr_batch_begin) is not. */
int pr_batch_begin_kind(pr_batch_builder *b, int kind, pr_view user, int status, uint64_t last_seen,
                        uint64_t version, uint64_t ts_ms);
/* PR_EINVAL if no delivery is open or r is not 1..PR_ID_MAX bytes. */
int pr_batch_add_recipient(pr_batch_builder *b, pr_view r);
/* Closes the open delivery (one with no recipient is dropped, not sent). */
int pr_batch_end(pr_batch_builder *b);
/* begin + add_recipient for each of r[0..n) + end, all or nothing. */
int pr_batch_add_delivery(pr_batch_builder *b, pr_view user, int status, uint64_t last_seen,
                          uint64_t version, uint64_t ts_ms, const pr_view *r, size_t n);

/* Deliveries ended so far (the open one not included). */
uint32_t pr_batch_count(const pr_batch_builder *b);
/* The size finish would return now, open delivery included, within a few bytes. */
size_t pr_batch_bytes(const pr_batch_builder *b);
/* Writes the header and returns the whole message in *data, *len (the builder's
 * memory, valid until the next call on b). PR_EINVAL if a delivery is open. An
 * empty batch is valid (count 0). More deliveries may follow and finish again
 * returns the longer batch; pr_batch_reset starts a new one. */
int pr_batch_finish(pr_batch_builder *b, const char **data, size_t *len);

/* ------------------------------------------------------------------ decoder */
typedef struct {
  size_t max_bytes;      /* larger input: PR_ETOOBIG (default PR_BATCH_MAX_BYTES) */
  size_t max_deliveries; /* default PR_BATCH_DEFAULT_MAX_DELIVERIES */
  size_t max_recipients; /* per delivery, default PR_BATCH_MAX_RECIPIENTS */
} pr_batch_limits;

/* Called once per delivery, in order. Return 0 to go on; anything else stops
 * the decode, which returns that value. */
typedef int (*pr_batch_visit_fn)(const pr_delivery *d, void *arg);

/* Checks the whole message first and calls visit only if all of it is valid
 * (a bad batch delivers nothing). limits NULL: the defaults; a 0 field: its default.
 * sender (may be NULL) receives the sender id. Returns 0, or:
 * PR_ETRUNC  the input ends early; PR_EPROTO  malformed, wrong types, unknown
 * format version or status, bad id length, bytes after the batch;
 * PR_ETOOBIG over a limit; or the visitor's nonzero return. Never reads outside
 * data[0..len) and never recurses deeper than a small fixed bound. */
int pr_batch_decode(const char *data, size_t len, const pr_batch_limits *limits, pr_view *sender,
                    pr_batch_visit_fn visit, void *arg);

#endif
