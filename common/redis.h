/* redis.h: the Redis client every service uses, on hiredis async + libuv.
 *
 * One pr_redis is one connection with: reconnect with exponential backoff,
 * a timeout on every command, scripts loaded once and called by SHA (reloaded
 * after NOSCRIPT), and a readiness state (connected and answering).
 * Commands issued in one loop iteration are pipelined: they are written
 * together at the end of the turn, except that every 8th queued command
 * writes what is queued at once, so Redis starts on a burst early.
 * A subscriber connection (pr_redis_subscribe) resubscribes after reconnect.
 *
 * Ownership: the reply passed to a callback belongs to the client and is
 * freed after the callback returns. The callback is called exactly once per
 * command that was accepted (returned 0), with err = 0 and a reply, or with
 * err < 0 (PR_ETIMEDOUT, PR_EUNAVAIL when disconnected) and reply NULL.
 * A reply of type REDIS_REPLY_ERROR is passed with err = PR_EREDIS.
 *
 * Readiness: the client is ready once connected, named (CLIENT SETNAME
 * opts->name) and its first PING answered, and for a subscriber once every
 * subscription it had is confirmed again. Commands are accepted only while
 * ready; otherwise they return PR_EUNAVAIL at once. Wait for the state
 * callback (ready = 1) before the first command. The state callback fires on
 * changes only: ready 1 when (re)connected, ready 0 when a ready connection
 * is lost; a failed attempt while not ready just schedules the next one
 * (50 ms doubling up to backoff_max_ms, each delay jittered to [d/2, d]).
 * A connection attempt that is not ready within connect_timeout_ms is
 * abandoned and retried.
 *
 * Timeouts: a command not answered within cmd_timeout_ms gets PR_ETIMEDOUT;
 * its late reply, if any, is read and dropped. One slow command does not
 * drop the connection (the commands behind it in the pipe get their own
 * replies or timeouts), but when commands are waiting and nothing at all was
 * read for 3 x cmd_timeout_ms, the connection is considered stuck (a hung
 * server or a dead network path): it is dropped, the commands it still held
 * get PR_EUNAVAIL and the client reconnects. TCP keepalive (about 30 s)
 * catches a dead path under an idle or subscriber connection.
 *
 * The callbacks may call any function here, pr_redis_free included (the
 * client is freed later, from a libuv close callback).
 *
 * Allocation: hiredis 0.14 has no allocator hooks, so hiredis's own buffers
 * (contexts, replies, formatted commands) come from malloc, not pr_malloc. */
#ifndef PR_REDIS_H
#define PR_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct pr_redis pr_redis;

typedef struct {
  const char *addr;       /* "host:port" or "redis://host:port" ("[::1]:6379" too; a
                             URL without port means 6379); copied */
  int cmd_timeout_ms;     /* per command, default 2000 */
  int connect_timeout_ms; /* default 2000 */
  int backoff_max_ms;     /* reconnect backoff cap, default 2000 (starts at 50) */
  const char *name;       /* for logs and CLIENT SETNAME, e.g. "send"; copied */
  int max_pending;        /* commands waiting for a reply at most, default 100000;
                             beyond it commands return PR_EBUSY */
} pr_redis_opts;

typedef void (*pr_redis_cb)(pr_redis *r, redisReply *reply, int err, void *arg);
/* Called on every state change: ready = 1 when connected, 0 when lost. */
typedef void (*pr_redis_state_cb)(pr_redis *r, int ready, void *arg);

/* A script known by its body; the client computes its SHA1 once. Define them
 * statically (see store.h): { .name = "heartbeat", .body = pr_store_lua_heartbeat }.
 * The script (body included) must outlive the calls that use it. */
typedef struct {
  const char *name;
  const char *body;
  char sha[41]; /* filled on first use */
} pr_redis_script;

/* Creates the client and starts connecting (it never fails for an unreachable
 * server: it retries). Returns 0 or PR_EINVAL for a bad address or a negative
 * setting (0 means the default). */
int pr_redis_new(uv_loop_t *loop, const pr_redis_opts *opts, pr_redis **out);
void pr_redis_on_state(pr_redis *r, pr_redis_state_cb cb, void *arg);
/* Fails every pending command with PR_ECLOSED, disconnects, frees `r` once
 * its handles are closed (the loop must run). No state callback follows. */
void pr_redis_free(pr_redis *r);
int pr_redis_is_ready(const pr_redis *r);

/* Sends a command given as argv (binary safe; lens NULL means strlen). Returns
 * 0 (cb will be called) or PR_EUNAVAIL while disconnected (cb will not be
 * called), PR_EBUSY over max_pending, PR_ECLOSED from a callback run by
 * pr_redis_free, PR_EINVAL for a subscribe/monitor command or any command
 * on a subscriber client. cb may be NULL. */
int pr_redis_cmdargv(pr_redis *r, pr_redis_cb cb, void *arg, int argc, const char **argv,
                     const size_t *lens);
/* printf-style like redisAsyncCommand. Same return as above (PR_EINVAL for a
 * bad format too). */
int pr_redis_cmd(pr_redis *r, pr_redis_cb cb, void *arg, const char *fmt, ...);
/* EVALSHA script with keys then args (NUL-terminated strings, copied). On
 * NOSCRIPT it sends EVAL with the body (one more round trip; Redis caches the
 * body, so the next EVALSHA hits) and only that reply reaches cb. The
 * command's deadline covers both round trips. Same return as above. */
int pr_redis_script_run(pr_redis *r, pr_redis_script *s, pr_redis_cb cb, void *arg, int nkeys,
                        const char **keys, int nargs, const char **args);
/* C gives a typedef and a function one namespace, so the type
 * pr_redis_script and a function pr_redis_script cannot both exist: the call
 * is spelled pr_redis_script(r, s, cb, ...) through this macro (a
 * function-like macro only expands before a parenthesis, so the type name
 * is untouched). */
#define pr_redis_script(...) pr_redis_script_run(__VA_ARGS__)

/* Pub/sub on a dedicated client (do not send other commands on it: once it
 * has subscribed, pr_redis_cmd* return PR_EINVAL).
 * msg_cb gets each message of the channels subscribed; the client
 * resubscribes to the current set after every reconnect. For a pattern
 * message, `channel` is the actual channel, not the pattern. Subscribing is
 * allowed while disconnected (it takes effect on connect); the functions
 * return 0, PR_EINVAL for an empty name, PR_ENOTFOUND to unsubscribe from
 * something not subscribed. Classic SUBSCRIBE only (hiredis 0.14 does not know
 * sharded pub/sub). */
typedef void (*pr_redis_msg_cb)(pr_redis *r, const char *channel, const char *data, size_t len,
                                void *arg);
void pr_redis_on_message(pr_redis *r, pr_redis_msg_cb cb, void *arg);
int pr_redis_subscribe(pr_redis *r, const char *channel);
int pr_redis_unsubscribe(pr_redis *r, const char *channel);
int pr_redis_psubscribe(pr_redis *r, const char *pattern); /* for keyspace events */
int pr_redis_punsubscribe(pr_redis *r, const char *pattern);

/* Counters for /metrics: commands accepted; errors = commands answered with
 * an error reply or failed by a lost connection or pr_redis_free; timeouts;
 * reconnects = times the client became ready again after being ready; pending
 * = commands waiting now (a gauge). */
typedef struct {
  unsigned long long commands, errors, timeouts, reconnects, pending;
} pr_redis_stats;
void pr_redis_get_stats(const pr_redis *r, pr_redis_stats *out);

#endif
