/* routes.c: the router of presence-receive and its small handlers. */
#include "routes.h"
#include "lease.h"
#include "static_files.h"
#include "upgrade.h"

#include <stdio.h>

static int lease_held(void *arg) {
  recv_app *app = arg;
  return app->lease && recv_lease_is_held(app->lease);
}

/* /readyz names the current instance id: it changes when the lease was lost
 * (lease.h). */
static const char *ready_detail(void *arg) {
  recv_app *app = arg;
  snprintf(app->ready_text, sizeof(app->ready_text), "instance=%s", app->instance);
  return app->ready_text;
}

int recv_routes_new(recv_app *app) {
  pr_http_router *r = pr_http_router_new();
  app->router = r;
  app->ops = (pr_service_ops){.metrics = app->metrics,
                              .server = &app->http,
                              .redis = app->redis,
                              .is_ready = lease_held,
                              .ready_detail = ready_detail,
                              .ready_arg = app};
  int rc = pr_http_router_add(r, "GET", "/v1/ws", recv_upgrade_handle, app);
  if (rc == 0) rc = pr_service_add_ops_routes(r, &app->ops);
  const char *dir = app->cfg.static_dir;
  pr_http_router_set_fallback(r, recv_static_handle, dir && *dir ? (void *)dir : NULL);
  return rc;
}
