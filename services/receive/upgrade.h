/* upgrade.h: GET /v1/ws, the WebSocket upgrade of presence-receive. Every
 * check runs before upgrading, so a refused client gets a plain HTTP answer:
 * 400 (not an upgrade, bad Sec-WebSocket-Key, bad device id), 426 (version
 * not 13), 403 (Origin not allowed), 401 JSON (token absent, bad or
 * expired), 503 (draining, Redis not ready, lease not held, too many
 * connections). Then the socket is detached and becomes a recv_conn. */
#ifndef RECV_UPGRADE_H
#define RECV_UPGRADE_H

#include "http.h"

/* A pr_http_handler; arg is the recv_app. */
void recv_upgrade_handle(pr_http_req *req, void *arg);

#endif
