/* routes.c: the router of presence-receive and its small handlers. */
#include "routes.h"
#include "lease.h"
#include "static_files.h"
#include "upgrade.h"

#include <stdio.h>
#include <string.h>

static int lease_held(void *arg) {
  recv_app *app = arg;
  return app->lease && recv_lease_is_held(app->lease);
}

/* /readyz as every service answers it (common/service.h), plus the current
 * instance id: it changes when the lease was lost (lease.h). */
static void on_readyz(pr_http_req *req, void *arg) {
  recv_app *app = arg;
  const char *state = "ready";
  if (app->ops.draining)
    state = "draining";
  else if (!app->redis || !pr_redis_is_ready(app->redis))
    state = "redis unavailable";
  else if (!lease_held(app))
    state = "not ready";
  char text[PR_ID_MAX + 64];
  snprintf(text, sizeof(text), "%s instance=%s\n", state, app->instance);
  pr_http_respond_text(req, strcmp(state, "ready") == 0 ? 200 : 503, text);
}

int recv_routes_new(recv_app *app) {
  pr_http_router *r = pr_http_router_new();
  app->router = r;
  app->ops = (pr_service_ops){.metrics = app->metrics,
                              .server = &app->http,
                              .redis = app->redis,
                              .is_ready = lease_held,
                              .ready_arg = app};
  /* first match wins: this /readyz comes before the common one */
  int rc = pr_http_router_add(r, "GET", "/readyz", on_readyz, app);
  if (rc == 0) rc = pr_http_router_add(r, "GET", "/v1/ws", recv_upgrade_handle, app);
  if (rc == 0) rc = pr_service_add_ops_routes(r, &app->ops);
  const char *dir = app->cfg.static_dir;
  pr_http_router_set_fallback(r, recv_static_handle, dir && *dir ? (void *)dir : NULL);
  return rc;
}
