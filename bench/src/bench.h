/* bench.h: presence-bench, the load generator: its settings, the scenarios
 * and the helpers they share (clock, percentiles, /proc readers, Redis setup,
 * forked workers, JSON and SVG output). Everything runs on 127.0.0.0/8.
 *
 * Ownership: strings in bench_config belong to the settings module
 * (pr_settings_free); helpers that return allocated memory say so. */
#ifndef PR_BENCH_H
#define PR_BENCH_H

#include "buf.h"
#include "settings.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
  pr_common_config common; /* --redis, --jwt-secret, --partitions, --log-level */
  char *send;              /* presence-send host:port */
  char *receive;           /* comma list of presence-receive host:port */
  long long receive_pid;   /* 0: found from the first receive port */
  long long connections;
  long long processes;
  char *source_addrs; /* "127.0.0.2-127.0.0.9" or a comma list */
  long long rate;     /* changes per second (fanout, one rate) or 0 */
  char *rates;        /* fanout sweep "1000,2000,..." */
  long long duration_s;
  char *out; /* directory of the JSON and SVG results */
  char *label;
  long long http_conns;   /* K keep-alive connections */
  long long pipeline;     /* requests in flight per connection */
  long long users;        /* fanout/offline: users that change */
  long long watchers;     /* fanout: watcher connections */
  long long per_user;     /* fanout: watchers per user */
  long long ttl_ms;       /* offline: the send service's heartbeat ttl */
  long long ws_rate;      /* ingest: status frames per second per WebSocket */
  int registration_check; /* connections: wait for ic:<id> SCARD (off for the baseline) */
} bench_config;

/* ---- scenarios (sc_*.c): each returns 0 or a PR_E* code ---- */
int sc_connections(const bench_config *cfg);
int sc_ingest(const bench_config *cfg);
int sc_fanout(const bench_config *cfg);
int sc_offline(const bench_config *cfg);

/* ---- util.c ---- */
double bench_now(void); /* seconds, CLOCK_MONOTONIC */
/* Sorts v and returns the q-quantile (0..1) by nearest rank; 0 for n == 0. */
double bench_quantile(double *v, size_t n, double q);
/* This process's CPU time (user + system, seconds) and read-type syscalls
 * (/proc/self/io syscr, -1 if unreadable): the bench's own cost, so that a
 * scenario can report what measuring took from the cores it shares. */
typedef struct {
  double cpu_s;
  long long reads;
} bench_self_cost;
void bench_self_cost_get(bench_self_cost *out);
/* VmRSS of pid in KiB, or -1. */
long bench_rss_kib(pid_t pid);
/* The pid listening on TCP port, or -1 (reads /proc/net/tcp{,6} and /proc/<pid>/fd). */
pid_t bench_pid_of_port(int port);
/* Splits a comma list into pr_malloc'd strings (*out, caller frees each and the array). */
size_t bench_split(const char *list, char ***out);
/* Expands "127.0.0.2-127.0.0.9" or "a,b,c" (NULL or "": {NULL}, n = 1). */
size_t bench_source_addrs(const char *spec, char ***out);
void bench_free_list(char **v, size_t n);
/* A token for user (HS256, 1 day); caller frees with pr_free. NULL without a secret. */
char *bench_token(const bench_config *cfg, const char *user);
/* A synchronous Redis connection for setup and checks (NULL on failure, message printed). */
redisContext *bench_redis(const bench_config *cfg);
/* Sum of SCARD ic:<id> over the members of insts. */
long long bench_registered(redisContext *rc);
/* INFO commandstats calls of evalsha + eval. */
long long bench_redis_script_calls(redisContext *rc);
/* Writes buf to <out>/<scenario>-<timestamp>.<ext>; prints the path. Returns 0 or PR_EIO. */
int bench_write_result(const bench_config *cfg, const char *scenario, const char *ext,
                       const pr_buf *b, const char *stamp);
/* "20261129-170000" now, into out[32]. */
void bench_stamp(char out[32]);
/* Appends the machine description ("nproc", "mem_kib", "kernel") as JSON members. */
void bench_json_machine(pr_buf *b);

/* ---- workers.c: forked load processes reporting through a pipe ---- */
typedef int (*bench_worker_fn)(int index, int nworkers, int report_fd, int control_fd, void *arg);
typedef struct {
  pid_t pid;
  int report_fd;  /* parent reads lines the worker writes */
  int control_fd; /* parent writes; closing it tells the worker to stop */
  pr_buf line;
} bench_worker;
/* Forks n workers running fn (its return value is the exit status). Returns
 * 0 or PR_EIO. */
int bench_workers_start(bench_worker *w, int n, bench_worker_fn fn, void *arg);
/* Reads whatever lines are ready (waits up to timeout_ms) and calls cb per
 * complete line. Returns the number of workers whose pipe is still open. */
int bench_workers_poll(bench_worker *w, int n, int timeout_ms,
                       void (*cb)(int idx, const char *line, void *arg), void *arg);
/* Closes the control pipes, waits for every worker; returns how many failed. */
int bench_workers_stop(bench_worker *w, int n);
/* In a worker: writes one line (printf style) to the report pipe. */
void bench_report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- svg.c: a line chart ---- */
typedef struct {
  const char *name;
  const double *x, *y;
  size_t n;
} bench_series;
/* Appends an SVG document: the series as lines with dots, axes from 0 with
 * ticks, a legend. */
void bench_svg_chart(pr_buf *out, const char *title, const char *xlabel, const char *ylabel,
                     const bench_series *s, size_t ns);

#endif
