/* config.c: the settings table of presence-receive and the values derived
 * from it. */
#include "config.h"
#include "app.h"
#include "base.h"
#include "ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROW_INT(name, def, min, max, field, help)                                                  \
  { name, PR_SET_INT, def, min, max, NULL, NULL, offsetof(recv_config, field), help }
#define ROW_STR(name, def, field, help)                                                            \
  { name, PR_SET_STRING, def, 0, 0, NULL, NULL, offsetof(recv_config, field), help }

static const pr_setting table[] = {
    PR_SETTINGS_COMMON(recv_config, common),
    ROW_STR("listen", "0.0.0.0:8081", listen, "HTTP and WebSocket address host:port"),
    ROW_STR("nng-listen", "tcp://127.0.0.1:7101", nng_listen,
            "nng PULL address where fanout delivers batches (port 0: any free port)"),
    ROW_STR("nng-advertise", NULL, nng_advertise,
            "nng address written in the instance lease; unset: the bound --nng-listen"),
    ROW_STR("instance-id", NULL, instance_id,
            "this instance's id, at most 53 bytes (\".<n>\" is appended after a lost lease); "
            "unset: recv-<host>-<random>"),
    ROW_INT("lease-ttl-ms", "10000", 1000, 600000, lease_ttl_ms,
            "instance lease lifetime; refreshed every third of it"),
    ROW_INT("leave-grace-ms", "3000", 0, 600000, leave_grace_ms,
            "a closed connection's device stays this long for a reconnect"),
    ROW_INT("heartbeat-ms", "20000", 100, 3600000, heartbeat_ms,
            "client heartbeat interval; silent for twice this long closes the connection"),
    ROW_INT("max-message-bytes", "65536", 128, 16777216, max_message_bytes,
            "largest client message (bigger closes with 1009)"),
    ROW_INT("max-outbound-bytes", "262144", 4096, 1073741824, max_outbound_bytes,
            "bytes queued for one connection before it is closed as a slow consumer (4008)"),
    ROW_INT("rate-limit", "50", 1, 1000000, rate_limit, "client frames per second per connection"),
    ROW_INT("rate-burst", "100", 1, 1000000, rate_burst, "client frames allowed in a burst"),
    ROW_STR("allowed-origins", NULL, allowed_origins,
            "comma list of allowed Origin values for WebSockets (empty: any)"),
    ROW_STR("static-dir", NULL, static_dir, "directory of static files served (the demo page)"),
    ROW_INT("drain-timeout-ms", "10000", 100, 600000, drain_timeout_ms,
            "on SIGTERM, exit at the latest after this long"),
    {"graph", PR_SET_ENUM, "server", 0, 0, "server|client", NULL, offsetof(recv_config, graph),
     "server: contacts and groups in Redis; client: heartbeats name their recipients"},
    {"broadcast", PR_SET_ENUM, "changes", 0, 0, "changes|heartbeats", NULL,
     offsetof(recv_config, broadcast),
     "heartbeats: every heartbeat frame is relayed to watchers (same as send and fanout)"},
    ROW_INT("small-group-max", "100", 1, 1000000, small_group_max,
            "groups up to this size make members watchers (same as send and fanout)"),
    ROW_INT("listen-backlog", "4096", 16, 65535, listen_backlog,
            "pending connections the kernel queues for accept (capped by net.core.somaxconn);"
            " a burst beyond it costs clients a 1 s SYN retry"),
    ROW_INT("max-connections", "100000", 1, 10000000, max_connections,
            "WebSocket connections held at most (more are refused with 503)"),
    ROW_INT("deliver-queue-max-bytes", "67108864", 1048576, 1073741824, deliver_queue_max_bytes,
            "bytes of fanout batches held for the loop at most (more are dropped and counted)"),
};

int recv_config_load(recv_config *cfg, int argc, char **argv, char *err, size_t errlen) {
  static const pr_settings_info info = {
      .program = "presence-receive",
      .description = "Holds client WebSockets and pushes presence to them",
      .usage = "presence-receive [options]",
      .version = PR_VERSION,
  };
  int argi = 0;
  int rc = pr_settings_load(table, PR_ARRAY_LEN(table), cfg, argc, argv, &info, &argi, err, errlen);
  if (rc != 0) return rc;
  if (argi < argc) {
    snprintf(err, errlen, "unexpected argument '%s'", argv[argi]);
    recv_config_free(cfg);
    return PR_ECONFIG;
  }
  return 0;
}

void recv_config_free(recv_config *cfg) { pr_settings_free(table, PR_ARRAY_LEN(table), cfg); }

int recv_config_instance_id(const recv_config *cfg, char *out, size_t outlen) {
  if (cfg->instance_id && *cfg->instance_id) {
    size_t n = strlen(cfg->instance_id);
    if (!pr_id_is_valid(cfg->instance_id, n) || n >= outlen) return PR_ECONFIG;
    memcpy(out, cfg->instance_id, n + 1);
    return 0;
  }
  char host[40] = "";
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  host[sizeof(host) - 1] = '\0';
  /* keep only id characters so that the generated id is always valid */
  size_t w = 0;
  for (size_t i = 0; host[i]; i++)
    if (pr_id_is_valid(&host[i], 1)) host[w++] = host[i];
  host[w] = '\0';
  snprintf(out, outlen, "recv-%s-%08llx", w ? host : "host",
           (unsigned long long)(recv_random_u64() & 0xffffffffull));
  return 0;
}

bool recv_config_origin_allowed(const recv_config *cfg, const char *origin) {
  const char *p = cfg->allowed_origins;
  if (!p || !*p) return true;
  if (!origin) return true; /* not a browser: the allow-list guards browsers only */
  size_t olen = strlen(origin);
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *e = p;
    while (*e && *e != ',')
      e++;
    const char *t = e;
    while (t > p && t[-1] == ' ')
      t--;
    if ((size_t)(t - p) == olen && olen && memcmp(p, origin, olen) == 0) return true;
    p = e;
  }
  return false;
}
