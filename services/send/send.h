/* send.h: the state presence-send's route handlers share (one per process).
 *
 * Ownership: main.c creates and frees everything here; handlers only borrow. */
#ifndef PR_SEND_H
#define PR_SEND_H

#include "auth.h"
#include "http.h"
#include "metrics.h"
#include "service.h"
#include "settings.h"
#include "store.h"

#include <stdbool.h>

typedef struct {
  pr_common_config common;
  char *listen;
  long long heartbeat_ttl_ms;
  long long max_query_users;
  long long max_body_bytes;
  long long max_connections;
  long long small_group_max;
  long long drain_timeout_ms;
  long long redis_timeout_ms;
  long long auth_cache_entries;
  char *graph;     /* server | client */
  char *broadcast; /* changes | heartbeats */
  char *offline;   /* sweeper | keyspace */
} send_config;

typedef struct {
  send_config cfg;
  bool client_graph; /* graph = "client": no server graph, `to` allowed */
  pr_auth *auth;
  pr_redis *redis;
  pr_store *store;
  pr_metrics *metrics;
  pr_counter *heartbeats, *offlines, *queries, *not_modified, *graph_writes, *transitions;
  pr_histogram *store_latency;
} send_ctx;

/* Adds the /v1 routes (presence_routes.c, graph_routes.c). */
int send_add_presence_routes(pr_http_router *r, send_ctx *ctx);
int send_add_graph_routes(pr_http_router *r, send_ctx *ctx);

/* Authenticates `req` (answers 401 itself on failure) and, when admin is
 * required, answers 403 for a non-admin token. Returns 0 when the handler
 * may go on. */
int send_authorize(send_ctx *ctx, pr_http_req *req, bool admin, pr_claims *claims);

#endif
