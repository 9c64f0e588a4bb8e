/* redis.h: the Redis client every service uses, on hiredis async + libuv.
 *
 * One pr_redis is one connection with: reconnect with exponential backoff,
 * a timeout on every command, scripts loaded once and called by SHA (reloaded
 * after NOSCRIPT), and a readiness state (connected and answering).
 * Commands issued in one loop iteration are written together (pipelined).
 * A subscriber connection (pr_redis_subscribe) resubscribes after reconnect.
 *
 * Ownership: the reply passed to a callback belongs to the client and is
 * freed after the callback returns. The callback is called exactly once per
 * command that was accepted (returned 0), with err = 0 and a reply, or with
 * err < 0 (PR_ETIMEDOUT, PR_EUNAVAIL when disconnected) and reply NULL.
 * A reply of type REDIS_REPLY_ERROR is passed with err = PR_EREDIS. */
#ifndef PR_REDIS_H
#define PR_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct pr_redis pr_redis;

typedef struct {
  const char *addr;         /* "host:port" or "redis://host:port" */
  int cmd_timeout_ms;       /* per command, default 2000 */
  int connect_timeout_ms;   /* default 2000 */
  int backoff_max_ms;       /* reconnect backoff cap, default 2000 (starts at 50) */
  const char *name;         /* for logs and CLIENT SETNAME, e.g. "send" */
} pr_redis_opts;

typedef void (*pr_redis_cb)(pr_redis *r, redisReply *reply, int err, void *arg);
/* Called on every state change: ready = 1 when connected, 0 when lost. */
typedef void (*pr_redis_state_cb)(pr_redis *r, int ready, void *arg);

/* A script known by its body; the client computes its SHA1 once. Define them
 * statically (see store.h): { .name = "heartbeat", .body = pr_store_lua_heartbeat }. */
typedef struct {
  const char *name;
  const char *body;
  char sha[41]; /* filled on first use */
} pr_redis_script;

/* Creates the client and starts connecting (it never fails for an unreachable
 * server: it retries). Returns 0 or PR_EINVAL for a bad address. */
int pr_redis_new(uv_loop_t *loop, const pr_redis_opts *opts, pr_redis **out);
void pr_redis_on_state(pr_redis *r, pr_redis_state_cb cb, void *arg);
/* Fails every pending command with PR_ECLOSED, disconnects, frees `r` once
 * its handles are closed (the loop must run). */
void pr_redis_free(pr_redis *r);
int pr_redis_is_ready(const pr_redis *r);

/* Sends a command given as argv (binary safe). Returns 0 (cb will be called)
 * or PR_EUNAVAIL while disconnected (cb will not be called). */
int pr_redis_cmdargv(pr_redis *r, pr_redis_cb cb, void *arg, int argc, const char **argv,
                     const size_t *lens);
/* printf-style like redisAsyncCommand. Same return as above. */
int pr_redis_cmd(pr_redis *r, pr_redis_cb cb, void *arg, const char *fmt, ...);
/* EVALSHA script with keys then args (NUL-terminated strings). Falls back to
 * SCRIPT LOAD + EVALSHA on NOSCRIPT, transparently to the caller. */
int pr_redis_script(pr_redis *r, pr_redis_script *s, pr_redis_cb cb, void *arg, int nkeys,
                    const char **keys, int nargs, const char **args);

/* Pub/sub on a dedicated client (do not send other commands on it).
 * msg_cb gets each message of the channels subscribed; the client
 * resubscribes to the current set after every reconnect. */
typedef void (*pr_redis_msg_cb)(pr_redis *r, const char *channel, const char *data, size_t len,
                                void *arg);
void pr_redis_on_message(pr_redis *r, pr_redis_msg_cb cb, void *arg);
int pr_redis_subscribe(pr_redis *r, const char *channel);
int pr_redis_unsubscribe(pr_redis *r, const char *channel);
int pr_redis_psubscribe(pr_redis *r, const char *pattern); /* for keyspace events */

/* Counters for /metrics. */
typedef struct {
  unsigned long long commands, errors, timeouts, reconnects, pending;
} pr_redis_stats;
void pr_redis_get_stats(const pr_redis *r, pr_redis_stats *out);

#endif
