/* redis_internal.h: what the files of the redis module share (redis_client.c:
 * the connection; redis_cmd.c: commands, timeouts and scripts; redis_sub.c:
 * pub/sub). Not for users of the module: they include redis.h. */
#ifndef PR_REDIS_INTERNAL_H
#define PR_REDIS_INTERNAL_H

#include "redis.h"

#include <hiredis/async.h>
#include <stdint.h>

/* One accepted command. hiredis holds the record as privdata until it calls
 * back (with the reply, or with NULL when the context goes away), so the
 * record outlives the user callback when that one ran early (timeout,
 * pr_redis_free): cb is then NULL and the reply is dropped. */
typedef struct redis_call redis_call;
struct redis_call {
  redis_call *prev, *next; /* in r->head..tail while cb has not run */
  pr_redis *r;
  pr_redis_cb cb; /* NULL once called */
  void *arg;
  uint64_t deadline_ms;
  /* A script call keeps its formatted EVALSHA to resend it as EVAL. */
  pr_redis_script *script;
  char *cmd; /* malloc'd RESP (format_argv or hiredis): free it with redisFreeCommand */
  size_t cmdlen;
  int argc;
  int retried;
};

struct pr_redis {
  uv_loop_t *loop;
  char *host, *name;
  int port;
  int cmd_timeout_ms, connect_timeout_ms, backoff_max_ms, max_pending, tick_ms;

  redisAsyncContext *ac; /* NULL while waiting to reconnect */
  int ready, ping_ok, ever_ready, closing, handles_open;
  uint64_t connect_deadline_ms;
  uint64_t last_progress_ms; /* last reply read, or when inflight went 0 -> 1 */
  int backoff_ms;
  uint64_t rng;
  uv_timer_t tick;  /* deadlines: commands, connect attempt, stuck connection */
  uv_timer_t retry; /* the next connection attempt */

  redis_call *head, *tail; /* waiting commands, oldest (earliest deadline) first */
  unsigned long inflight;  /* records hiredis holds: waiting plus timed out */
  unsigned unflushed;      /* commands queued since the last early write (redis_cmd.c) */
  pr_redis_stats stats;

  pr_redis_state_cb state_cb;
  void *state_arg;

  /* pub/sub */
  pr_redis_msg_cb msg_cb;
  void *msg_arg;
  int subscriber; /* has subscribed once: regular commands are refused */
  char **channels, **patterns;
  int nchannels, npatterns, capchannels, cappatterns;
  int sub_unconfirmed; /* subscriptions sent on this connection before ready */
};

/* redis_client.c */
/* The connection `ac` is going away (hiredis frees it): forget it, schedule
 * a reconnect, tell the state callback. */
void pr_redis__conn_lost(pr_redis *r, redisAsyncContext *ac);
/* We give up on the current connection: free it (its commands fail with
 * PR_EUNAVAIL) and reconnect. */
void pr_redis__conn_drop(pr_redis *r);
/* Becomes ready if every condition holds (see redis.h). */
void pr_redis__maybe_ready(pr_redis *r);
/* Starts the deadline timer if it is not running. */
void pr_redis__tick_ensure(pr_redis *r);

/* redis_cmd.c */
/* Fails the commands past their deadline with PR_ETIMEDOUT. */
void pr_redis__calls_expire(pr_redis *r, uint64_t now_ms);
/* Fails every waiting command with `err` (pr_redis_free). */
void pr_redis__calls_fail_all(pr_redis *r, int err);

/* redis_sub.c */
/* Sends SUBSCRIBE / PSUBSCRIBE for the whole set on a new connection. */
void pr_redis__sub_resubscribe(pr_redis *r);
void pr_redis__sub_free(pr_redis *r);

#endif
