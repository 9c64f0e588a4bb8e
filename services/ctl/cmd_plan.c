/* cmd_plan.c: `presencectl plan`: the pods, Redis shards, memory and bandwidth
 * a deployment needs, from the per-instance figures measured by
 * presence-bench (the JSON files of bench/results), with the arithmetic shown. */
#include "ctl.h"

#include "base.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  long long users, watchers, heartbeat_s, devices;
  char *online_ratio, *changes, *http_share, *headroom, *results;
} plan_opts;

static const pr_setting table[] = {
    {"users", PR_SET_INT, NULL, 1, 10000000000LL, NULL, NULL, offsetof(plan_opts, users),
     "registered users"},
    {"online-ratio", PR_SET_STRING, "0.1", 0, 0, NULL, NULL, offsetof(plan_opts, online_ratio),
     "share of users online at the peak (0..1)"},
    {"watchers", PR_SET_INT, "50", 0, 1000000, NULL, NULL, offsetof(plan_opts, watchers),
     "watchers per user: contacts sharing with them plus small-group co-members"},
    {"heartbeat-s", PR_SET_INT, "20", 1, 3600, NULL, NULL, offsetof(plan_opts, heartbeat_s),
     "client heartbeat interval (s)"},
    {"changes-per-user-hour", PR_SET_STRING, "6", 0, 0, NULL, NULL, offsetof(plan_opts, changes),
     "visible status changes per online user per hour"},
    {"devices", PR_SET_INT, "1", 1, 100, NULL, NULL, offsetof(plan_opts, devices),
     "live devices per online user"},
    {"http-share", PR_SET_STRING, "0", 0, 0, NULL, NULL, offsetof(plan_opts, http_share),
     "share of devices that heartbeat over HTTP instead of holding a WebSocket (0..1)"},
    {"headroom", PR_SET_STRING, "0.5", 0, 0, NULL, NULL, offsetof(plan_opts, headroom),
     "plan each instance for this share of its measured capacity (0..1]"},
    {"results", PR_SET_STRING, "bench/results", 0, 0, NULL, NULL, offsetof(plan_opts, results),
     "directory of presence-bench results"},
};

static const pr_settings_info info = {
    .program = "presencectl plan",
    .description = "Capacity plan from the measured per-instance figures in bench/results",
    .usage = "presencectl plan --users U [--online-ratio R] [--watchers K] [--heartbeat-s H]\n"
             "                 [--changes-per-user-hour C] [--devices D] [--http-share S]",
    .version = PR_VERSION,
};

/* ---- measured figures ------------------------------------------------------ */

typedef struct {
  char file[512];
  double value;
} figure;

typedef double (*figure_fn)(json_t *doc);

/* The newest result file named <prefix><digits...>.json for which fn gives a
 * positive value (the names carry the time, so the newest sorts last). */
static int newest(const char *dir, const char *prefix, figure_fn fn, figure *out) {
  DIR *d = opendir(dir);
  if (!d) return PR_ENOTFOUND;
  struct dirent *e;
  char best[256] = "";
  double best_v = 0;
  size_t pl = strlen(prefix);
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (strncmp(e->d_name, prefix, pl) != 0 || n < pl + 6 || e->d_name[pl] < '0' ||
        e->d_name[pl] > '9' || strcmp(e->d_name + n - 5, ".json") != 0 ||
        strcmp(e->d_name, best) <= 0)
      continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    json_t *doc = json_load_file(path, 0, NULL);
    double v = doc ? fn(doc) : 0;
    json_decref(doc);
    if (v > 0) {
      snprintf(best, sizeof best, "%s", e->d_name);
      best_v = v;
    }
  }
  closedir(d);
  if (!*best) return PR_ENOTFOUND;
  snprintf(out->file, sizeof out->file, "%s/%s", dir, best);
  out->value = best_v;
  return 0;
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

/* Memory per idle connection, from runs of at least 10,000 connections. */
static double conn_bytes(json_t *d) {
  return num(d, "connections") >= 10000 ? num(d, "bytes_per_conn") : 0;
}
static double conn_rate(json_t *d) { return num(d, "connect_rate"); }
static double ingest_rate(json_t *d) { return num(d, "heartbeats_per_s"); }
static double redis_rate(json_t *d) { return num(d, "requests_per_s"); }
static double redis_user_bytes(json_t *d) { return num(d, "bytes_per_online_user"); }
/* The highest delivery rate measured with p99 under 20 ms. */
static double fanout_rate(json_t *d) {
  double best = 0;
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(d, "steps"), i, s) {
    if (num(s, "p99_ms") < 20 && num(s, "deliveries_per_s") > best)
      best = num(s, "deliveries_per_s");
  }
  return best;
}

/* ---- output ---------------------------------------------------------------- */

static void si(char *out, size_t n, double v) {
  const char *unit[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (fabs(v) >= 1000 && u < 4)
    v /= 1000, u++;
  snprintf(out, n, u ? "%.3g%s" : "%.4g%s", v, unit[u]);
}

static void bytes(char *out, size_t n, double v) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (v >= 1024 && u < 4)
    v /= 1024, u++;
  snprintf(out, n, "%.3g %s", v, unit[u]);
}

static int parse_ratio(const char *name, const char *s, double lo, double hi, double *out) {
  char *end;
  *out = strtod(s, &end);
  if (end == s || *end || *out < lo || *out > hi) {
    fprintf(stderr, "presencectl plan: --%s must be a number between %g and %g\n", name, lo, hi);
    return PR_EINVAL;
  }
  return 0;
}

/* Approximate frame sizes (bytes on the wire) from the shapes in docs/api.md. */
#define PRESENCE_FRAME_BYTES 86  /* {"type":"presence",...} with an 8-byte id, + WS header */
#define PING_FRAME_BYTES     21  /* {"type":"ping"} masked, + WS header */
#define BATCH_BYTES_PER_DLV  40  /* msgpack delivery with one recipient */
#define HTTP_HEARTBEAT_BYTES 420 /* request line, headers with a JWT, small body */
#define RECEIVE_BASE_MIB     64  /* a receive process before connections (4 MiB version map, ...) */

int ctl_cmd_plan(ctl *c, int argc, char **argv) {
  plan_opts o = {0};
  char err[256];
  int argi, status = 2;
  if ((status = pr_settings_load(table, PR_ARRAY_LEN(table), &o, argc, argv, &info, &argi, err,
                                 sizeof err)) != 0) {
    if (status == 1) return 0;
    fprintf(stderr, "presencectl plan: %s\n", err);
    return 2;
  }
  status = 2;
  double ratio, changes, http_share, headroom;
  if (!o.users) {
    fprintf(stderr, "presencectl plan: give --users\n");
    goto done;
  }
  if (parse_ratio("online-ratio", o.online_ratio, 0, 1, &ratio) ||
      parse_ratio("changes-per-user-hour", o.changes, 0, 1e6, &changes) ||
      parse_ratio("http-share", o.http_share, 0, 1, &http_share) ||
      parse_ratio("headroom", o.headroom, 0.01, 1, &headroom))
    goto done;

  figure f_mem, f_rate, f_ingest, f_redis, f_fan, f_rmem;
  struct {
    const char *prefix;
    figure_fn fn;
    figure *f;
    const char *what;
  } need[] = {
      {"connections-2", conn_bytes, &f_mem, "memory per connection (connections, >= 10,000)"},
      {"connections-2", conn_rate, &f_rate, "connect rate (connections)"},
      {"ingest-2", ingest_rate, &f_ingest, "HTTP heartbeats/s per send (ingest)"},
      {"baseline-redis-2", redis_rate, &f_redis, "Redis scripts/s per shard (baseline-redis)"},
      {"fanout-2", fanout_rate, &f_fan, "deliveries/s at p99 < 20 ms (fanout)"},
      {"redis-memory-2", redis_user_bytes, &f_rmem, "Redis bytes per online user (redis-memory)"},
  };
  for (size_t i = 0; i < PR_ARRAY_LEN(need); i++) {
    if (newest(o.results, need[i].prefix, need[i].fn, need[i].f) != 0) {
      fprintf(stderr,
              "presencectl plan: no result for %s in %s (run bench/run.sh and "
              "bench/redis_memory.sh, or give --results DIR)\n",
              need[i].what, o.results);
      status = 1;
      goto done;
    }
  }

  double users = (double)o.users, online = users * ratio;
  double devices = online * (double)o.devices;
  double ws = devices * (1 - http_share), http = devices * http_share;
  double hb_http = http / (double)o.heartbeat_s, hb_ws = ws / (double)o.heartbeat_s;
  double chg = online * changes / 3600;
  double dlv = chg * (double)o.watchers * ratio;
  double sweeps = 1024 * 4.0; /* P = 1024 partitions swept every 250 ms */
  double redis_ops = hb_http + chg * 4 + sweeps;
  char a[32], b[32], d[32], e[32], g[32];

  printf("Measured per-instance figures (2-core machine, everything on one box):\n");
  for (size_t i = 0; i < PR_ARRAY_LEN(need); i++) {
    si(a, sizeof a, need[i].f->value);
    printf("  %-52s %10s   %s\n", need[i].what, a, need[i].f->file);
  }
  printf("Planning each instance at %.0f%% of its measured capacity.\n\n", headroom * 100);

  printf("Load\n");
  si(a, sizeof a, online);
  printf("  online users      = users x online-ratio = %lld x %g = %s\n", o.users, ratio, a);
  si(a, sizeof a, ws);
  si(b, sizeof b, http);
  printf("  devices           = online x devices = %s WebSocket + %s HTTP\n", a, b);
  si(a, sizeof a, hb_http);
  si(b, sizeof b, hb_ws);
  printf("  heartbeats/s      = devices / %llds = %s HTTP (Redis) + %s WebSocket (no Redis)\n",
         o.heartbeat_s, a, b);
  si(a, sizeof a, chg);
  printf("  changes/s         = online x %g / 3600 = %s\n", changes, a);
  si(a, sizeof a, dlv);
  printf("  deliveries/s      = changes/s x watchers x online-ratio = %s x %lld x %g = %s\n",
         (si(b, sizeof b, chg), b), o.watchers, ratio, a);
  si(a, sizeof a, redis_ops);
  printf("  Redis commands/s  = HTTP heartbeats + 4 per change (script, watchers x2, routes)\n"
         "                      + sweeps (1024 partitions x 4/s) = %s\n\n",
         a);

  double n_redis = ceil(redis_ops / (f_redis.value * headroom));
  double n_recv = ceil(ws / (100000 * headroom));
  double n_fan = ceil(dlv / (f_fan.value * headroom));
  double n_send = ceil(hb_http / (f_ingest.value * headroom));
  if (n_recv < 1) n_recv = 1;
  if (n_fan < 1) n_fan = 1;
  if (n_send < 1) n_send = 1;
  if (n_redis < 1) n_redis = 1;
  double recv_mem = ws * f_mem.value / n_recv + RECEIVE_BASE_MIB * 1048576.0;
  double redis_mem = online * f_rmem.value;

  printf("Instances\n");
  si(a, sizeof a, f_redis.value * headroom);
  printf("  Redis shards      = ceil(%.0f / %s) = %.0f\n", redis_ops, a, n_redis);
  printf("  receive pods      = ceil(WebSocket devices / (100k connections x %g)) = %.0f\n"
         "                      (100k: receive's --max-connections default)\n",
         headroom, n_recv);
  printf("  reconnect storm   = all WebSocket devices at %s connects/s per pod: %.1f s\n",
         (si(a, sizeof a, f_rate.value), a), ws / (n_recv * f_rate.value));
  si(a, sizeof a, f_fan.value * headroom);
  printf("  fanout pods       = ceil(deliveries/s / %s) = %.0f\n", a, n_fan);
  si(a, sizeof a, f_ingest.value * headroom);
  printf("  send pods         = ceil(HTTP heartbeats/s / %s) = %.0f (at least 1; 2 for "
         "availability)\n\n",
         a, n_send);

  printf("Memory\n");
  bytes(a, sizeof a, f_mem.value);
  bytes(b, sizeof b, recv_mem);
  printf("  receive pod       = connections per pod x %s + %d MiB = %s\n", a, RECEIVE_BASE_MIB, b);
  bytes(a, sizeof a, f_rmem.value);
  bytes(b, sizeof b, redis_mem);
  bytes(d, sizeof d, redis_mem / n_redis);
  printf("  Redis presence    = online x %s = %s (%s per shard; the graph's sets come on\n"
         "                      top and are not measured here)\n\n",
         a, b, d);

  printf("Bandwidth\n");
  bytes(a, sizeof a, dlv * PRESENCE_FRAME_BYTES);
  bytes(b, sizeof b, hb_ws * PING_FRAME_BYTES);
  bytes(d, sizeof d, dlv * BATCH_BYTES_PER_DLV);
  bytes(e, sizeof e, hb_http * HTTP_HEARTBEAT_BYTES);
  si(g, sizeof g, dlv);
  printf("  receive -> clients  %s/s (%s deliveries x %d B)\n", a, g, PRESENCE_FRAME_BYTES);
  printf("  clients -> receive  %s/s (heartbeat frames x %d B)\n", b, PING_FRAME_BYTES);
  printf("  fanout -> receive   %s/s (deliveries x %d B in batches)\n", d, BATCH_BYTES_PER_DLV);
  printf("  clients -> send     %s/s (HTTP heartbeats x %d B)\n", e, HTTP_HEARTBEAT_BYTES);
  status = 0;
done:
  pr_settings_free(table, PR_ARRAY_LEN(table), &o);
  return status;
}
