/* service.h: what every service's HTTP side shares: the operational routes
 * (/healthz, /readyz, /metrics), JSON error answers, and the bearer-token
 * check of client requests.
 *
 * Ownership: pr_service_ops is the caller's and must outlive the router it
 * was added to; nothing here allocates beyond a request's answer. */
#ifndef PR_SERVICE_H
#define PR_SERVICE_H

#include "auth.h"
#include "http.h"
#include "metrics.h"
#include "redis.h"

typedef struct {
  pr_metrics *metrics;     /* rendered by /metrics */
  pr_http_server **server; /* its stats are added to /metrics (may point to NULL) */
  pr_redis *redis;         /* /readyz needs it ready, and its stats go to /metrics */
  /* Extra readiness condition (e.g. "holds its lease"), or NULL. */
  int (*is_ready)(void *arg);
  /* Optional words added to the /readyz body ("instance=recv-a"), or NULL. */
  const char *(*ready_detail)(void *arg);
  void *ready_arg;
  int draining; /* set on SIGTERM: /readyz answers 503 */
} pr_service_ops;

/* Adds GET /healthz (200 while the process runs), GET /readyz (200 when Redis
 * is ready and is_ready agrees and not draining, else 503) and GET /metrics
 * (Prometheus text) to the router. Returns 0 or PR_EINVAL. */
int pr_service_add_ops_routes(pr_http_router *r, pr_service_ops *ops);

/* Answers {"error":"<code>","message":"<message>"} with `status`;
 * pr_service_error_with adds extra headers ("Name: value\r\n"..., or NULL). */
void pr_service_error(pr_http_req *req, int status, const char *code, const char *message);
void pr_service_error_with(pr_http_req *req, int status, const char *code, const char *message,
                           const char *extra_headers);

/* Maps a store/redis error to an answer: PR_EUNAVAIL/PR_ETIMEDOUT -> 503,
 * anything else -> 500. */
void pr_service_backend_error(pr_http_req *req, int err);

/* Verifies the request's token (Authorization: Bearer, or `token` in the
 * query when allow_query) into *claims. On failure it answers 401 itself
 * ({"error":"unauthorized"|"token_expired"}) and returns PR_EAUTH: the caller
 * must not touch req again. Returns 0 on success. */
int pr_service_authenticate(const pr_auth *auth, pr_http_req *req, int allow_query,
                            pr_claims *claims);

#endif
