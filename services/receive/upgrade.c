/* upgrade.c: validates a WebSocket upgrade request and hands the socket over
 * to the ws module (DESIGN §6). */
#include "upgrade.h"
#include "app.h"
#include "base.h"
#include "buf.h"
#include "conn.h"
#include "json_out.h"
#include "lease.h"
#include "log.h"
#include "service.h"
#include "ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void refuse(recv_app *app, pr_http_req *req, int reason, int status, const char *headers,
                   const char *code, const char *message) {
  pr_counter_inc(app->m.refused[reason]);
  pr_service_error_with(req, status, code, message, headers);
}

/* 1 if a comma-separated header value contains `token` (case-insensitive). */
static int header_has_token(const char *value, const char *token) {
  size_t tl = strlen(token);
  for (const char *p = value; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *e = p;
    while (*e && *e != ',')
      e++;
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
      t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return 1;
    p = e;
  }
  return 0;
}

static void free_on_close(uv_handle_t *h) { pr_free(h); }

void recv_upgrade_handle(pr_http_req *req, void *arg) {
  recv_app *app = arg;
  const char *upgrade = pr_http_req_header(req, "Upgrade");
  if (!pr_http_req_upgrade(req) || !upgrade || !header_has_token(upgrade, "websocket")) {
    refuse(app, req, RECV_REFUSE_BAD_REQUEST, 400, NULL, "bad_request",
           "expected a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)");
    return;
  }
  const char *version = pr_http_req_header(req, "Sec-WebSocket-Version");
  if (!version || strcmp(version, "13") != 0) {
    refuse(app, req, RECV_REFUSE_VERSION, 426, "Sec-WebSocket-Version: 13\r\n", "bad_request",
           "unsupported WebSocket version (13 only)");
    return;
  }
  const char *key = pr_http_req_header(req, "Sec-WebSocket-Key");
  char accept[PR_WS_ACCEPT_LEN + 1];
  if (!key || pr_ws_accept_key(key, accept) != 0) {
    refuse(app, req, RECV_REFUSE_BAD_REQUEST, 400, NULL, "bad_request",
           "missing or invalid Sec-WebSocket-Key");
    return;
  }
  if (!recv_config_origin_allowed(&app->cfg, pr_http_req_header(req, "Origin"))) {
    refuse(app, req, RECV_REFUSE_ORIGIN, 403, NULL, "forbidden", "origin not allowed");
    return;
  }
  pr_claims claims;
  if (pr_service_authenticate(app->auth, req, 1, &claims) != 0) { /* answered 401 */
    pr_counter_inc(app->m.refused[RECV_REFUSE_UNAUTHORIZED]);
    return;
  }
  int rc;
  char device[PR_ID_MAX + 1];
  int n = pr_http_req_query(req, "device", device, sizeof(device));
  if (n == -1) {
    snprintf(device, sizeof(device), "ws-%016llx", (unsigned long long)recv_random_u64());
  } else if (n <= 0 || !pr_id_is_valid(device, (size_t)n)) {
    refuse(app, req, RECV_REFUSE_BAD_REQUEST, 400, NULL, "bad_request",
           "device must be 1-64 characters of [A-Za-z0-9_.:@-]");
    return;
  }
  if (app->draining || !pr_redis_is_ready(app->redis) || !recv_lease_is_held(app->lease)) {
    refuse(app, req, RECV_REFUSE_UNAVAILABLE, 503, "Retry-After: 1\r\n", "unavailable",
           "instance not ready, try again");
    return;
  }
  if (app->conns_open >= (size_t)app->cfg.max_connections) {
    refuse(app, req, RECV_REFUSE_OVERLOADED, 503, "Retry-After: 1\r\n", "unavailable",
           "instance full, try again");
    return;
  }

  uv_tcp_t *tcp;
  char *leftover;
  size_t leftover_len;
  if (pr_http_detach(req, &tcp, &leftover, &leftover_len) != 0) return; /* client gone */
  rc = recv_conn_open(app, tcp, accept, leftover, leftover_len, claims.sub, device,
                      (int64_t)claims.exp);
  pr_free(leftover);
  if (rc != 0) { /* cannot happen with a key pr_ws_accept_key took; close cleanly anyway */
    pr_log_warn("receive", "upgrade failed", "err=\"%s\"", pr_strerror(rc));
    uv_close((uv_handle_t *)tcp, free_on_close);
  }
}
