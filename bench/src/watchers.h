/* watchers.h: what the fanout and offline scenarios share: a contact graph
 * written straight into Redis (pipelined SADDs, the keys of
 * docs/data-model.md), the versions and statuses of the users that will
 * change, and a set of watcher WebSockets connected and snapshotted.
 *
 * Ownership: watch_set_free frees the clients (the loop must run after it to
 * release them) and the arrays. */
#ifndef PR_BENCH_WATCHERS_H
#define PR_BENCH_WATCHERS_H

#include "bench.h"
#include "pr_client.h"

/* Watchers of user i are watcher (i * per_user + m) % nwatchers, m < per_user:
 * SADD ct:<up><i> <wp><j> and cw:<wp><j> <up><i>. Returns 0 or PR_EREDIS. */
int watch_graph(redisContext *rc, const char *up, long long users, const char *wp,
                long long watchers, long long per_user);
/* Reads ver and st of users <up>0..users-1 (partition tags from cfg). online[i]
 * is 1 when st is online. Returns 0 or PR_EREDIS. */
int watch_versions(redisContext *rc, const bench_config *cfg, const char *up, long long users,
                   uint64_t *ver, uint8_t *online);

typedef struct {
  pr_client **c;
  long long n, ready;
} watch_set;

/* Connects n watchers <wp>0..n-1 round robin over the receive instances and
 * source addresses, runs the loop until all sent their snapshot or timeout_s
 * passed; returns the number ready. */
long long watch_connect(uv_loop_t *loop, const bench_config *cfg, const char *wp, long long n,
                        const pr_client_handlers *h, void *arg, watch_set *ws, double timeout_s);
void watch_set_free(watch_set *ws);
/* Runs the loop for s seconds. */
void watch_run_for(uv_loop_t *loop, double s);

#endif
