/* fanout.h: the state of one presence-fanout process (the task runner),
 * shared by its modules: who owns which partitions (owner.c), the pub/sub
 * consumer (consume.c), the catch-up and trim of chg:{pN} (changes.c), the
 * batcher and resolver (resolve.c), the nng peers (peers.c), the sweeper
 * (sweeper.c) and the dead-instance cleaner (instances.c).
 *
 * Ownership: main.c creates and frees everything here; every module keeps a
 * pointer to the app and frees only what it created. Single-threaded: all of
 * it runs on the loop thread. */
#ifndef FANOUT_H
#define FANOUT_H

#include "ids.h"
#include "metrics.h"
#include "redis.h"
#include "settings.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
  pr_common_config common;
  char *admin_listen;
  char *worker_id; /* NULL: generated */
  long long owner_lease_ms;
  long long sweep_interval_ms;
  long long sweep_limit;
  long long batch_max;
  long long batch_flush_ms;
  long long send_buffer;
  long long instance_check_ms;
  long long small_group_max;
  long long heartbeat_ttl_ms;
  long long redis_timeout_ms;
  char *offline;   /* sweeper|keyspace */
  char *graph;     /* server|client */
  char *broadcast; /* changes|heartbeats */
} fanout_config;

/* Why something meant for a client was not sent (presence_fanout_drops_total). */
enum {
  FANOUT_DROP_SEND_FULL,   /* nng send buffer full (NNG_EAGAIN): the batch is dropped */
  FANOUT_DROP_DIAL_FAILED, /* the instance's socket could not be opened or dialled */
  FANOUT_DROP_NO_INSTANCE, /* a route names an instance with no lease */
  FANOUT_DROP_OVERLOAD,    /* the batcher was full while Redis lagged (caught up again) */
  FANOUT_DROP_REDIS,       /* graph or route reads failed (caught up again from chg:{pN}) */
  FANOUT_DROP_BAD_EVENT,   /* an event that did not decode */
  FANOUT_DROP_COUNT,
};

typedef struct {
  pr_counter *events_in;  /* events taken from owned partitions (catch-up included) */
  pr_counter *catchup;    /* of which re-read from chg:{pN} (takeover, reconnect, failed round) */
  pr_counter *deliveries; /* deliveries sent to receive instances */
  pr_counter *batches;    /* nng messages sent */
  pr_counter *sweeps;     /* sweep script calls */
  pr_counter *expired;    /* users whose HTTP devices expired (sweeps and keyspace) */
  pr_counter *cleaned;    /* dead receive instances cleaned up */
  pr_counter *drops[FANOUT_DROP_COUNT];
  pr_histogram *batch_size; /* deliveries per batch */
  pr_histogram *lag_ms;     /* event ts_ms (Redis time) to send (wall clock) */
  pr_gauge *owned;          /* partitions owned now */
} fanout_metrics;

typedef struct fanout_owner fanout_owner;
typedef struct fanout_consumer fanout_consumer;
typedef struct fanout_changes fanout_changes;
typedef struct fanout_resolver fanout_resolver;
typedef struct fanout_peers fanout_peers;
typedef struct fanout_sweeper fanout_sweeper;
typedef struct fanout_instances fanout_instances;

typedef struct fanout_app {
  uv_loop_t *loop;
  fanout_config cfg;
  char worker[PR_ID_MAX + 1];
  unsigned partitions;
  bool graph_client;     /* --graph client: recipients are the event's `to` */
  bool relay_heartbeats; /* --broadcast heartbeats: kind 2 events are delivered too */
  bool keyspace;         /* --offline keyspace */
  pr_redis *redis;       /* commands and scripts */
  pr_redis *sub;         /* the subscriber connection */
  pr_store *store;
  pr_metrics *metrics;
  fanout_metrics m;
  fanout_owner *owner;
  fanout_consumer *consumer;
  fanout_changes *changes;
  fanout_resolver *resolver;
  fanout_peers *peers;
  fanout_sweeper *sweeper;
  fanout_instances *instances;
  bool draining; /* SIGTERM received: take nothing new */
  bool finished; /* tearing down: callbacks only free memory */
} fanout_app;

#endif
