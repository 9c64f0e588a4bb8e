/* service_ops.c: /healthz, /readyz, /metrics, JSON errors and the token check
 * shared by every service's HTTP side. */
#include "service.h"
#include "base.h"
#include "buf.h"
#include "json_out.h"

#include <stdio.h>
#include <string.h>

static void on_healthz(pr_http_req *req, void *arg) { pr_http_respond_text(req, 200, "ok\n"); }

static void on_readyz(pr_http_req *req, void *arg) {
  pr_service_ops *ops = arg;
  const char *state = "ready";
  if (ops->draining)
    state = "draining";
  else if (!ops->redis || !pr_redis_is_ready(ops->redis))
    state = "redis unavailable";
  else if (ops->is_ready && !ops->is_ready(ops->ready_arg))
    state = "not ready";
  const char *detail = ops->ready_detail ? ops->ready_detail(ops->ready_arg) : NULL;
  char text[256];
  snprintf(text, sizeof text, "%s%s%s\n", state, detail ? " " : "", detail ? detail : "");
  pr_http_respond_text(req, strcmp(state, "ready") == 0 ? 200 : 503, text);
}

static void metric_line(pr_buf *b, const char *name, const char *type, const char *help,
                        unsigned long long v) {
  pr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static void on_metrics(pr_http_req *req, void *arg) {
  pr_service_ops *ops = arg;
  pr_buf b = PR_BUF_INIT;
  if (ops->metrics) pr_metrics_render(ops->metrics, &b);
  if (ops->server && *ops->server) {
    pr_http_stats s;
    pr_http_server_stats(*ops->server, &s);
    metric_line(&b, "presence_http_requests_total", "counter", "HTTP requests handled", s.requests);
    pr_buf_printf(&b,
                  "# HELP presence_http_responses_total HTTP responses by status class\n"
                  "# TYPE presence_http_responses_total counter\n"
                  "presence_http_responses_total{class=\"2xx\"} %llu\n"
                  "presence_http_responses_total{class=\"3xx\"} %llu\n"
                  "presence_http_responses_total{class=\"4xx\"} %llu\n"
                  "presence_http_responses_total{class=\"5xx\"} %llu\n",
                  (unsigned long long)s.responses_2xx, (unsigned long long)s.responses_3xx,
                  (unsigned long long)s.responses_4xx, (unsigned long long)s.responses_5xx);
    metric_line(&b, "presence_http_timeouts_total", "counter", "HTTP requests timed out",
                s.timeouts);
    metric_line(&b, "presence_http_connections", "gauge", "HTTP connections open",
                s.connections_open);
  }
  if (ops->redis) {
    pr_redis_stats r;
    pr_redis_get_stats(ops->redis, &r);
    metric_line(&b, "presence_redis_commands_total", "counter", "Redis commands sent", r.commands);
    metric_line(&b, "presence_redis_errors_total", "counter", "Redis commands failed", r.errors);
    metric_line(&b, "presence_redis_timeouts_total", "counter", "Redis commands timed out",
                r.timeouts);
    metric_line(&b, "presence_redis_reconnects_total", "counter", "Redis reconnections",
                r.reconnects);
    metric_line(&b, "presence_redis_pending", "gauge", "Redis commands awaiting a reply",
                r.pending);
    metric_line(&b, "presence_redis_ready", "gauge", "1 when Redis is connected",
                (unsigned long long)pr_redis_is_ready(ops->redis));
  }
  pr_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data ? b.data : "",
                  b.len);
  pr_buf_free(&b);
}

int pr_service_add_ops_routes(pr_http_router *r, pr_service_ops *ops) {
  if (pr_http_router_add(r, "GET", "/healthz", on_healthz, ops) ||
      pr_http_router_add(r, "GET", "/readyz", on_readyz, ops) ||
      pr_http_router_add(r, "GET", "/metrics", on_metrics, ops))
    return PR_EINVAL;
  return 0;
}

void pr_service_error_with(pr_http_req *req, int status, const char *code, const char *message,
                           const char *extra_headers) {
  pr_buf b = PR_BUF_INIT;
  pr_buf_puts(&b, "{\"error\":");
  pr_json_str(&b, code, strlen(code));
  pr_buf_puts(&b, ",\"message\":");
  pr_json_str(&b, message, strlen(message));
  pr_buf_puts(&b, "}");
  pr_http_respond(req, status, "application/json", extra_headers, b.data, b.len);
  pr_buf_free(&b);
}

void pr_service_error(pr_http_req *req, int status, const char *code, const char *message) {
  pr_service_error_with(req, status, code, message, NULL);
}

void pr_service_backend_error(pr_http_req *req, int err) {
  if (err == PR_EUNAVAIL || err == PR_ETIMEDOUT || err == PR_ECLOSED)
    pr_service_error(req, 503, "unavailable", "the presence store is unavailable, retry later");
  else
    pr_service_error(req, 500, "internal", pr_strerror(err));
}

int pr_service_authenticate(const pr_auth *auth, pr_http_req *req, int allow_query,
                            pr_claims *claims) {
  char qtok[PR_AUTH_MAX_TOKEN + 1];
  const char *tok = NULL;
  size_t len = 0;
  const char *h = pr_http_req_header(req, "Authorization");
  if (h) {
    if (pr_auth_parse_bearer(h, strlen(h), &tok, &len) != 0) tok = NULL;
  } else if (allow_query) {
    int n = pr_http_req_query(req, "token", qtok, sizeof qtok);
    if (n > 0) tok = qtok, len = (size_t)n;
  }
  int rc = tok ? pr_auth_verify(auth, tok, len, claims) : PR_EAUTH;
  if (rc == 0) return 0;
  if (rc == PR_EEXPIRED)
    pr_service_error(req, 401, "token_expired", "the token has expired");
  else
    pr_service_error(req, 401, "unauthorized", tok ? "invalid token" : "missing bearer token");
  return PR_EAUTH;
}
