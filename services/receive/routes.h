/* routes.h: the HTTP routes of presence-receive: /v1/ws (upgrade.c),
 * /healthz, /readyz (Redis ready and lease held), /metrics (common/service.h),
 * and the static files of the demo page as the fallback. */
#ifndef RECV_ROUTES_H
#define RECV_ROUTES_H

#include "app.h"

/* Creates app->router (after app->metrics and app->redis exist). Returns 0
 * or PR_EINVAL. */
int recv_routes_new(recv_app *app);

#endif
