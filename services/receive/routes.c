/* routes.c: the router of presence-receive and its small handlers. */
#include "routes.h"
#include "lease.h"
#include "static_files.h"
#include "upgrade.h"

static int lease_held(void *arg) {
  recv_app *app = arg;
  return app->lease && recv_lease_is_held(app->lease);
}

int recv_routes_new(recv_app *app) {
  pr_http_router *r = pr_http_router_new();
  app->router = r;
  app->ops = (pr_service_ops){.metrics = app->metrics,
                              .server = &app->http,
                              .redis = app->redis,
                              .is_ready = lease_held,
                              .ready_arg = app};
  int rc = pr_http_router_add(r, "GET", "/v1/ws", recv_upgrade_handle, app);
  if (rc == 0) rc = pr_service_add_ops_routes(r, &app->ops);
  const char *dir = app->cfg.static_dir;
  pr_http_router_set_fallback(r, recv_static_handle, dir && *dir ? (void *)dir : NULL);
  return rc;
}
