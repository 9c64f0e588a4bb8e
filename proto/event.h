/* event.h: the presence event, published by the store scripts on Redis pub/sub
 * (channel ev:{pN}, Lua cmsgpack) and consumed by fanout. Format in README.md:
 *   [1, kind, user, status, last_seen, version, ts_ms, to]
 *
 * Ownership: pr_event_decode allocates nothing. `user` and `to` point into the
 * input bytes and are valid while the input lives (e.g. the redisReply). */
#ifndef PR_EVENT_H
#define PR_EVENT_H

#include "buf.h"
#include "proto.h"

#define PR_EVENT_FORMAT 1    /* element 0 of every event */
#define PR_EVENT_MAX_TO 4096 /* recipients an event may name (client-graph mode) */

enum {
  PR_EVENT_TRANSITION = 1, /* the visible status changed */
  PR_EVENT_HEARTBEAT = 2,  /* a relayed heartbeat (broadcast = "heartbeats") */
};

typedef struct {
  int kind;           /* PR_EVENT_TRANSITION or PR_EVENT_HEARTBEAT */
  pr_view user;       /* 1..PR_ID_MAX bytes */
  int status;         /* PR_STATUS_OFFLINE/ONLINE/IDLE/DND */
  uint64_t last_seen; /* ms since the epoch; 0 = none (JSON null) */
  uint64_t version;   /* the user's version after the change */
  uint64_t ts_ms;     /* Redis time when the event was produced */
  pr_id_list to;      /* recipients named by the client; n = 0 otherwise */
} pr_event;

/* Decodes one event from data[0..len). Returns 0 and fills *out, or:
 * PR_ETRUNC  the input ends before the event does (every strict prefix of a valid event);
 * PR_EPROTO  anything malformed: not an array of at least 8, wrong element type,
 *            unknown format version or kind or status, an id empty or longer than
 *            PR_ID_MAX, bytes after the event;
 * PR_ETOOBIG `to` names more than PR_EVENT_MAX_TO ids.
 * Integers may be any msgpack int encoding with a non-negative value; strings
 * may be str or bin; an empty `to` may be an empty array or an empty map;
 * elements after `to` are skipped. On error *out is unspecified. */
int pr_event_decode(const char *data, size_t len, pr_event *out);

/* Appends the msgpack encoding of *ev to out, with recipients to[0..n_to)
 * (ev->to is ignored). Returns PR_EINVAL, appending nothing, if the event would
 * not decode (bad kind or status, an id empty or over PR_ID_MAX, n_to over
 * PR_EVENT_MAX_TO). For tests and tools; production events come from Lua. */
int pr_event_encode(const pr_event *ev, const pr_view *to, size_t n_to, pr_buf *out);

#endif
