/* store.h: the presence store and the social graph in Redis (DESIGN §4-5,
 * docs/data-model.md). Every presence write is one Lua script (common/store/)
 * run in one round trip; reads and graph calls are pipelined commands.
 *
 * Input: every string passed in (user, device, group, instance, worker ids,
 * statuses) must already be validated by the caller (pr_id_is_valid(), one of
 * the status words); the store does not check ids again.
 * Calls: each async call returns 0 (its callback will be called exactly once)
 * or a negative PR_E* code (PR_EINVAL, PR_EUNAVAIL while Redis is down,
 * PR_EBUSY when the client's queue is full), and then its callback is never
 * called. Calls taking a list of users need n >= 1 (else PR_EINVAL), so that
 * no callback ever runs inside the call. A callback may be NULL when the caller
 * does not need the result. Callbacks get err = 0 and a result, or err < 0
 * and NULL/empty results.
 * Ownership: results passed to a callback (structs, arrays, strings) belong
 * to the store and are freed after the callback returns: copy what you keep.
 * The pr_redis is the caller's; free the store after pr_redis_free() (which
 * completes every pending operation with an error) or when none is pending. */
#ifndef PR_STORE_H
#define PR_STORE_H

#include "redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The scripts, embedded from common/store/<name>.lua by scripts/embed_lua.cmake.
 * common.lua holds helpers that store.c prepends to each of the others. */
extern const char pr_store_lua_common[];
extern const char pr_store_lua_heartbeat[];
extern const char pr_store_lua_offline[];
extern const char pr_store_lua_sweep[];
extern const char pr_store_lua_expire_user[];
extern const char pr_store_lua_conn_set[];
extern const char pr_store_lua_conn_del[];

/* The full body of script `name` ("heartbeat", "offline", "sweep",
 * "expire_user", "conn_set", "conn_del"), helpers included, as sent to Redis
 * (for tools and tests that EVAL it themselves). Caller frees with pr_free;
 * NULL for an unknown name. */
char *pr_store_script_body(const char *name);

typedef struct pr_store pr_store;

typedef struct {
  unsigned partitions;       /* P, default 1024 (0 = default), at most PR_PARTITIONS_MAX */
  int64_t ttl_ms;            /* HTTP device lifetime after a heartbeat, default 60000 */
  bool broadcast_heartbeats; /* broadcast = "heartbeats": one event per heartbeat (kind 2 unless
                                it changed the status, docs/data-model.md) */
  bool keyspace_mode;        /* offline = "keyspace": heartbeats also SET hb:{pN}:<u>/<d> PX ttl */
  unsigned small_group_max;  /* groups up to this size make members watchers, default 100 */
} pr_store_opts;

/* Creates a store on `r` (which must outlive it). Returns 0 or PR_EINVAL. */
int pr_store_new(pr_redis *r, const pr_store_opts *o, pr_store **out);
void pr_store_free(pr_store *st);
/* The options in effect (defaults filled in). */
const pr_store_opts *pr_store_get_opts(const pr_store *st);
pr_redis *pr_store_redis(const pr_store *st);
/* The partition of `user` under this store's P. */
unsigned pr_store_partition_of(const pr_store *st, const char *user);

/* ---- presence writes (one script each) ---------------------------------- */

/* After a write: the user's visible status ("online", "idle", "dnd",
 * "offline"), its version, and whether the status changed (an event was
 * published). */
typedef struct {
  const char *status;
  uint64_t version;
  bool changed;
} pr_store_update;
typedef void (*pr_store_update_cb)(const pr_store_update *res, int err, void *arg);

/* An HTTP device heartbeat: the device lives until now + ttl. status_or_NULL:
 * "online"/"idle" set the device's activity, "dnd"/"invisible"/"none" the
 * user's preference; NULL keeps both. `to` (client-graph mode) names the
 * recipients carried by the user's events, at most PR_EVENT_MAX_TO (else
 * PR_ETOOBIG); nto = 0 keeps the last list. */
int pr_store_heartbeat(pr_store *st, const char *user, const char *device,
                       const char *status_or_NULL, const char **to, size_t nto,
                       pr_store_update_cb cb, void *arg);
/* Removes one HTTP device, or every HTTP device of the user when
 * device_or_NULL is NULL. Connection devices are not touched. */
int pr_store_offline(pr_store *st, const char *user, const char *device_or_NULL,
                     pr_store_update_cb cb, void *arg);
/* Expires the user's HTTP devices whose deadline has passed (the keyspace
 * path: called on an hb key's expired event). */
int pr_store_expire_user(pr_store *st, const char *user, pr_store_update_cb cb, void *arg);
/* Registers (or updates the status of) a WebSocket connection device held by
 * receive instance `instance`: d:<device> and rt:{pN}:<user>. */
int pr_store_conn_set(pr_store *st, const char *user, const char *device, const char *instance,
                      const char *status_or_NULL, pr_store_update_cb cb, void *arg);
/* A connection's heartbeat frame (client-graph mode): refreshes the device
 * like conn_set, stores `to` as the recipients of the user's events (nto = 0
 * keeps the last list), and with broadcast = "heartbeats" publishes a kind 2
 * event when nothing changed (approach 1: watchers infer offline by absence). */
int pr_store_conn_heartbeat(pr_store *st, const char *user, const char *device,
                            const char *instance, const char **to, size_t nto,
                            pr_store_update_cb cb, void *arg);
/* Removes a connection device if `instance` still holds it (a reconnect to
 * another instance may have replaced it: then nothing changes). */
int pr_store_conn_del(pr_store *st, const char *user, const char *device, const char *instance,
                      pr_store_update_cb cb, void *arg);

typedef struct {
  bool owner;         /* false: own:{pN} is not worker_id, nothing was done */
  unsigned expired;   /* users whose due devices were removed (== limit: call again) */
  unsigned published; /* events published */
} pr_store_sweep_result;
typedef void (*pr_store_sweep_cb)(const pr_store_sweep_result *res, int err, void *arg);
/* Sweeps up to `limit` due users of `partition`, if own:{pN} == worker_id
 * (worker_id "" or NULL skips the check). */
int pr_store_sweep(pr_store *st, unsigned partition, const char *worker_id, unsigned limit,
                   pr_store_sweep_cb cb, void *arg);

/* ---- presence reads ----------------------------------------------------- */

typedef struct {
  const char *user;
  const char *status; /* online | idle | dnd | offline, or invisible (caller == user) */
  uint64_t last_seen; /* ms since the epoch when offline; 0 = none (JSON null) */
  uint64_t version;   /* 0 for a user never seen */
} pr_presence;
typedef void (*pr_store_read_cb)(const pr_presence *users, size_t n, int err, void *arg);
/* Reads n users in one pipelined round trip, in order. caller_or_NULL: when
 * it equals a user, that user reads "invisible" while invisible and live.
 * No permission filter here (see pr_graph_filter_watchable). */
int pr_store_read(pr_store *st, const char *caller_or_NULL, const char **users, size_t n,
                  pr_store_read_cb cb, void *arg);

/* ---- graph and routing (store_graph.c) ----------------------------------- */

typedef void (*pr_store_done_cb)(int err, void *arg);
/* u shares its presence with c: ct:u ∋ c and cw:c ∋ u, in one MULTI. */
int pr_graph_contact_add(pr_store *st, const char *u, const char *c, pr_store_done_cb cb,
                         void *arg);
int pr_graph_contact_remove(pr_store *st, const char *u, const char *c, pr_store_done_cb cb,
                            void *arg);
/* gm:g ∋ u and ug:u ∋ g, in one MULTI. */
int pr_graph_member_add(pr_store *st, const char *g, const char *u, pr_store_done_cb cb, void *arg);
int pr_graph_member_remove(pr_store *st, const char *g, const char *u, pr_store_done_cb cb,
                           void *arg);

/* A page of group members (SSCAN). next_cursor is "0" at the end. */
typedef void (*pr_store_members_cb)(const char *const *members, size_t n, const char *next_cursor,
                                    int err, void *arg);
int pr_graph_members(pr_store *st, const char *g, const char *cursor, unsigned count,
                     pr_store_members_cb cb, void *arg);

/* A user and a set of ids (watchers, or receive instances), no duplicates. */
typedef struct {
  const char *user;
  const char *const *ids;
  size_t n;
} pr_store_list;
typedef void (*pr_store_lists_cb)(const pr_store_list *lists, size_t n, int err, void *arg);
typedef void (*pr_store_ids_cb)(const char *const *ids, size_t n, int err, void *arg);

/* For each user, who may watch it: ct:<user> ∪ members of its small groups,
 * minus the user. Two pipelined round trips for the whole batch. */
int pr_graph_watchers(pr_store *st, const char **users, size_t n, pr_store_lists_cb cb, void *arg);
/* Everyone `user` may watch: cw:<user> ∪ co-members of its small groups,
 * minus the user (for the snapshot). Two round trips. */
int pr_graph_watchable(pr_store *st, const char *user, pr_store_ids_cb cb, void *arg);
/* allowed[i]: may `caller` watch users[i]? (itself: yes; ct:<u> ∋ caller, or
 * a shared small group.) Two round trips. */
typedef void (*pr_store_filter_cb)(const bool *allowed, size_t n, int err, void *arg);
int pr_graph_filter_watchable(pr_store *st, const char *caller, const char **users, size_t n,
                              pr_store_filter_cb cb, void *arg);
/* For each user, the receive instances holding its connections
 * (HVALS rt:{pN}:<user>), pipelined in one round trip. */
int pr_route_instances(pr_store *st, const char **users, size_t n, pr_store_lists_cb cb, void *arg);

#endif
