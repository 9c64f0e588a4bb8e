/* http_load.h: a small libuv HTTP/1.1 load client: K keep-alive connections
 * (bound to loopback source addresses), up to `pipeline` requests in flight on
 * each, either as fast as answers come back (closed loop) or paced at a rate
 * (open loop: a backlog builds when the server falls behind).
 *
 * Ownership: opts strings and lists must outlive the load; requests built by
 * `make` are copied. http_load_free closes everything; the loop must then run
 * until the handles are closed. */
#ifndef PR_BENCH_HTTP_LOAD_H
#define PR_BENCH_HTTP_LOAD_H

#include "buf.h"

#include <stdint.h>
#include <uv.h>

typedef struct http_load http_load;

typedef struct {
  const char *url; /* host:port */
  char **addrs;    /* source addresses (NULL entries: no bind) */
  size_t naddrs;
  int conns, pipeline;
  double rate;    /* requests per second over all connections; 0: closed loop */
  uint64_t limit; /* stop after this many requests; 0: no limit */
  /* Appends one complete request to req for connection `conn` (requests of
   * one connection run in order) and returns a tag given back with its answer. */
  uint64_t (*make)(pr_buf *req, uint64_t seq, int conn, void *arg);
  /* The answer to a request: HTTP status (0 if the connection died first). */
  void (*on_answer)(int status, uint64_t tag, double sent_at, void *arg);
  void *arg;
} http_load_opts;

typedef struct {
  uint64_t sent, answered, ok, errors, conn_failures;
} http_load_stats;

int http_load_start(uv_loop_t *loop, const http_load_opts *o, http_load **out);
/* Stops issuing requests (answers in flight still arrive). */
void http_load_pause(http_load *l);
void http_load_stats_get(const http_load *l, http_load_stats *out);
void http_load_free(http_load *l);

#endif
