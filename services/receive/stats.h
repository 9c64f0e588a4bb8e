/* stats.h: the metrics of presence-receive (GET /metrics): connections,
 * refused upgrades by reason, frames and bytes, deliveries, drops by reason,
 * slow consumers closed, registration latency. */
#ifndef RECV_STATS_H
#define RECV_STATS_H

#include "app.h"

/* Creates app->metrics and fills app->m. */
void recv_stats_register(recv_app *app);

#endif
