/* app.h: the state of one presence-receive process, shared by its modules
 * (all of it lives on the loop thread, except what deliver.c documents).
 *
 * Ownership: main.c creates and frees everything here; modules keep a
 * pointer to the app and never free what they did not create. */
#ifndef RECV_APP_H
#define RECV_APP_H

#include "auth.h"
#include "config.h"
#include "http.h"
#include "ids.h"
#include "metrics.h"
#include "redis.h"
#include "service.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct recv_registry recv_registry;
typedef struct recv_lease recv_lease;
typedef struct recv_deliver recv_deliver;
typedef struct recv_versions recv_versions;
typedef struct recv_expiry recv_expiry;

/* Room kept in an instance id for its epoch suffix ".<n>" (n < 2^32). */
#define RECV_EPOCH_SUFFIX_MAX 11

/* Why an upgrade was refused (the label of recv_upgrades_refused_total). */
enum {
  RECV_REFUSE_BAD_REQUEST,  /* not an upgrade, bad key, bad device id */
  RECV_REFUSE_VERSION,      /* Sec-WebSocket-Version is not 13 */
  RECV_REFUSE_ORIGIN,       /* Origin not in --allowed-origins */
  RECV_REFUSE_UNAUTHORIZED, /* token absent, bad or expired */
  RECV_REFUSE_OVERLOADED,   /* --max-connections reached */
  RECV_REFUSE_UNAVAILABLE,  /* Redis not ready, lease not held, or draining */
  RECV_REFUSE_COUNT,
};

/* Why a presence update was not pushed (recv_drops_total). */
enum {
  RECV_DROP_STALE,      /* version not newer than the last delivered for that user */
  RECV_DROP_HELD,       /* over the per-connection hold limit while its snapshot is pending */
  RECV_DROP_BAD_BATCH,  /* an nng message that did not decode */
  RECV_DROP_QUEUE_FULL, /* nng messages refused while the loop's queue was full */
  RECV_DROP_COUNT,
};

typedef struct {
  pr_counter *refused[RECV_REFUSE_COUNT];
  pr_counter *drops[RECV_DROP_COUNT - 1]; /* QUEUE_FULL is read from deliver.c's atomic */
  pr_counter *upgrades;                   /* connections accepted */
  pr_counter *deliveries;                 /* deliveries decoded and accepted */
  pr_counter *pushes;                     /* presence frames sent */
  pr_counter *bad_frames;                 /* client frames answered with bad_request */
  pr_counter *rate_limited;               /* client frames refused by the rate limit */
  pr_counter *rate_closed;                /* connections closed for exceeding it */
  pr_counter *redis_failures;             /* registrations and removals Redis did not take */
  pr_counter *lease_losses;               /* leases found lost: a new epoch each time */
  pr_counter *tokens_expired;             /* connections closed because their token expired */
  pr_histogram *register_seconds;
} recv_metrics;

typedef struct recv_app {
  uv_loop_t *loop;
  recv_config cfg;
  /* The instance id in Redis: instance_base at start, "<base>.<epoch>" once
   * the lease was lost `epoch` times (lease.c). Every write names the current
   * one; a device remembers the epoch it was registered under (registry.h). */
  char instance[PR_ID_MAX + 1];
  char ready_text[PR_ID_MAX + 16]; /* /readyz detail, see routes.c */
  char instance_base[PR_ID_MAX + 1 - RECV_EPOCH_SUFFIX_MAX];
  uint32_t epoch;
  char *advertise; /* the nng address in the lease (pr_malloc'd) */
  bool graph_client;
  pr_auth *auth;
  pr_redis *redis;
  pr_store *store;
  pr_metrics *metrics;
  recv_metrics m;
  pr_service_ops ops; /* /healthz, /readyz, /metrics (common/service.h) */
  pr_http_router *router;
  pr_http_server *http;
  recv_registry *reg;
  recv_lease *lease;
  recv_deliver *deliver;
  recv_versions *versions;
  recv_expiry *expiry;
  size_t conns_open; /* WebSocket connections accepted and not yet closed */
  bool draining;     /* SIGTERM received */
  bool finished;     /* tearing down: callbacks only free memory */
} recv_app;

/* 64 random bits from the kernel (getrandom). */
uint64_t recv_random_u64(void);

/* Writes the instance id of `epoch` into out: the base id for epoch 0,
 * "<base>.<epoch>" otherwise (always a valid id: the base is at most
 * PR_ID_MAX - RECV_EPOCH_SUFFIX_MAX bytes). */
void recv_instance_of(const recv_app *app, uint32_t epoch, char *out, size_t cap);

#endif
