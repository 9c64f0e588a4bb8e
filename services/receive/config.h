/* config.h: the settings of presence-receive (one table: file keys, flags,
 * defaults, --help) and the values derived from them (instance id, nng
 * advertise address, origin allow-list).
 *
 * Ownership: recv_config_load fills the caller's struct with allocated
 * strings; recv_config_free releases them. */
#ifndef RECV_CONFIG_H
#define RECV_CONFIG_H

#include "settings.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  pr_common_config common;
  char *listen;
  char *nng_listen;
  char *nng_advertise; /* NULL: derived from the bound nng address */
  char *instance_id;   /* NULL: generated "recv-<host>-<random>"; at most 53 bytes */
  long long lease_ttl_ms;
  long long leave_grace_ms;
  long long heartbeat_ms;
  long long max_message_bytes;
  long long max_outbound_bytes;
  long long rate_limit;
  long long rate_burst;
  char *allowed_origins; /* comma list; NULL or empty: any origin */
  char *static_dir;
  long long drain_timeout_ms;
  char *graph;     /* server|client */
  char *broadcast; /* changes|heartbeats */
  long long small_group_max;
  long long listen_backlog;
  long long max_connections;
  long long deliver_queue_max_bytes;
} recv_config;

/* Loads defaults, environment, --config and flags. Returns 0, 1 when --help
 * or --version was printed (exit 0), or PR_ECONFIG with a message in err. */
int recv_config_load(recv_config *cfg, int argc, char **argv, char *err, size_t errlen);
void recv_config_free(recv_config *cfg);

/* Writes the instance id into out (cfg->instance_id, else generated). Returns
 * 0 or PR_ECONFIG (an invalid --instance-id, or one of outlen bytes or more). */
int recv_config_instance_id(const recv_config *cfg, char *out, size_t outlen);

/* 1 if `origin` may open a WebSocket: the list is empty, or it names it
 * exactly (comma-separated, spaces around entries ignored). */
bool recv_config_origin_allowed(const recv_config *cfg, const char *origin);

#endif
