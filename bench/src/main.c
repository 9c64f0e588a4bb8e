/* main.c: presence-bench: reads the settings and runs one scenario
 * (connections, ingest, fanout, offline) or the helper `script-body NAME`
 * (prints a store script, helpers included, for redis-benchmark). */
#include "base.h"
#include "bench.h"
#include "log.h"
#include "store.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define ROW_INT(name, def, min, max, field, help)                                                  \
  { name, PR_SET_INT, def, min, max, NULL, NULL, offsetof(bench_config, field), help }
#define ROW_STR(name, def, field, help)                                                            \
  { name, PR_SET_STRING, def, 0, 0, NULL, NULL, offsetof(bench_config, field), help }

static const pr_setting table[] = {
    PR_SETTINGS_COMMON(bench_config, common),
    ROW_STR("send", "127.0.0.1:8080", send, "presence-send host:port"),
    ROW_STR("receive", "127.0.0.1:8081", receive, "comma list of presence-receive host:port"),
    ROW_INT("receive-pid", "0", 0, 4194304, receive_pid,
            "pid of the (first) receive process for RSS; 0: found from its port"),
    ROW_INT("connections", "10000", 1, 1000000, connections, "connections to open (connections)"),
    ROW_INT("processes", "2", 1, 64, processes, "client processes (each < 20,000 fds)"),
    ROW_STR("source-addrs", "127.0.0.2-127.0.0.9", source_addrs,
            "loopback source addresses to bind, a range a.b.c.d-a.b.c.e or a comma list"),
    ROW_INT("rate", "0", 0, 100000000, rate, "fanout: one rate of changes/s instead of a sweep"),
    ROW_STR("rates", "500,1000,2000,4000,8000", rates, "fanout: the sweep of changes/s"),
    ROW_INT("duration-s", "5", 1, 3600, duration_s, "seconds of load per measurement"),
    ROW_STR("out", "bench/results", out, "directory of the JSON and SVG results"),
    ROW_STR("label", NULL, label, "word added to the result file names (e.g. baseline)"),
    ROW_INT("http-conns", "32", 1, 100000, http_conns,
            "ingest/fanout: keep-alive HTTP connections"),
    ROW_INT("pipeline", "16", 1, 1024, pipeline, "HTTP requests in flight per connection"),
    ROW_INT("users", "2000", 1, 10000000, users, "fanout/offline: users whose presence changes"),
    ROW_INT("watchers", "2000", 1, 1000000, watchers, "fanout: watcher WebSocket connections"),
    ROW_INT("per-user", "50", 1, 100000, per_user, "fanout: watchers per user"),
    ROW_INT("ttl-ms", "1000", 100, 3600000, ttl_ms,
            "offline: the heartbeat-ttl-ms the send service runs with"),
    ROW_INT("ws-rate", "20", 0, 100000, ws_rate,
            "ingest: status frames per second per WebSocket (0: no WebSocket part)"),
    {"registration-check", PR_SET_BOOL, "true", 0, 0, NULL, NULL,
     offsetof(bench_config, registration_check),
     "connections: wait until Redis lists every connection (ic:<id>); off for the baseline"},
};

static const pr_settings_info info = {
    .program = "presence-bench",
    .description = "Load generator for Presence: connections, ingest, fanout, offline",
    .usage = "presence-bench [options] connections|ingest|fanout|offline|script-body NAME",
    .version = PR_VERSION,
};

int main(int argc, char **argv) {
  bench_config cfg = {0};
  char err[512];
  int argi = 0;
  int rc = pr_settings_load(table, PR_ARRAY_LEN(table), &cfg, argc, argv, &info, &argi, err,
                            sizeof(err));
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presence-bench: %s\n", err);
    return 2;
  }
  pr_log_level lvl;
  if (pr_log_parse_level(cfg.common.log_level, &lvl) == 0) pr_log_set_level(lvl);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *cmd = argi < argc ? argv[argi] : "";
  if (strcmp(cmd, "script-body") == 0) {
    char *body = argi + 1 < argc ? pr_store_script_body(argv[argi + 1]) : NULL;
    if (!body) {
      fprintf(stderr, "presence-bench: script-body needs a script name (heartbeat, ...)\n");
      rc = 2;
    } else {
      fputs(body, stdout);
      pr_free(body);
    }
  } else if (strcmp(cmd, "connections") == 0) {
    rc = sc_connections(&cfg);
  } else if (strcmp(cmd, "ingest") == 0) {
    rc = sc_ingest(&cfg);
  } else if (strcmp(cmd, "fanout") == 0) {
    rc = sc_fanout(&cfg);
  } else if (strcmp(cmd, "offline") == 0) {
    rc = sc_offline(&cfg);
  } else {
    fprintf(stderr, "usage: %s\n", info.usage);
    rc = 2;
  }
  pr_settings_free(table, PR_ARRAY_LEN(table), &cfg);
  return rc == 0 ? 0 : rc > 0 ? rc : 1;
}
