/* graph_routes.c: graph administration for admin tokens:
 * PUT|DELETE /v1/users/{u}/contacts/{c}, PUT|DELETE /v1/groups/{g}/members/{u},
 * GET /v1/groups/{g}/members?cursor=&count=. */
#include "send.h"

#include "base.h"
#include "buf.h"
#include "ids.h"
#include "json_out.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  send_ctx *ctx;
  pr_http_req *req;
} graph_call;

/* Both path captures must be valid ids; answers 400 otherwise. */
static int two_ids(pr_http_req *req, const char **a, const char **b) {
  *a = pr_http_req_param(req, 0);
  *b = pr_http_req_param(req, 1);
  if (!*a || !*b || !pr_id_is_valid(*a, strlen(*a)) || !pr_id_is_valid(*b, strlen(*b))) {
    pr_service_error(req, 400, "bad_request",
                     "ids must be 1-64 characters of A-Z a-z 0-9 _ . : @ -");
    return PR_EINVAL;
  }
  return 0;
}

static void on_done(int err, void *arg) {
  graph_call *c = arg;
  if (err) {
    pr_service_backend_error(c->req, err);
  } else {
    pr_counter_inc(c->ctx->graph_writes);
    pr_http_respond(c->req, 204, NULL, NULL, NULL, 0);
  }
  pr_free(c);
}

typedef int (*graph_edit_fn)(pr_store *, const char *, const char *, pr_store_done_cb, void *);

static void edit(send_ctx *ctx, pr_http_req *req, graph_edit_fn fn) {
  pr_claims claims;
  const char *a, *b;
  if (send_authorize(ctx, req, true, &claims) || two_ids(req, &a, &b)) return;
  graph_call *c = pr_malloc(sizeof *c);
  *c = (graph_call){ctx, req};
  int rc = fn(ctx->store, a, b, on_done, c);
  if (rc) {
    pr_free(c);
    pr_service_backend_error(req, rc);
  }
}

static void on_contact_put(pr_http_req *req, void *arg) { edit(arg, req, pr_graph_contact_add); }
static void on_contact_delete(pr_http_req *req, void *arg) {
  edit(arg, req, pr_graph_contact_remove);
}
static void on_member_put(pr_http_req *req, void *arg) { edit(arg, req, pr_graph_member_add); }
static void on_member_delete(pr_http_req *req, void *arg) {
  edit(arg, req, pr_graph_member_remove);
}

static void on_members_page(const char *const *members, size_t n, const char *next_cursor, int err,
                            void *arg) {
  graph_call *c = arg;
  if (err) {
    pr_service_backend_error(c->req, err);
    pr_free(c);
    return;
  }
  pr_buf b = PR_BUF_INIT;
  pr_buf_puts(&b, "{\"members\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) pr_buf_putc(&b, ',');
    pr_json_str(&b, members[i], strlen(members[i]));
  }
  pr_buf_puts(&b, "],\"cursor\":");
  pr_json_str(&b, next_cursor, strlen(next_cursor));
  pr_buf_puts(&b, "}");
  pr_http_respond_json(c->req, 200, b.data);
  pr_buf_free(&b);
  pr_free(c);
}

static void on_members_get(pr_http_req *req, void *arg) {
  send_ctx *ctx = arg;
  pr_claims claims;
  if (send_authorize(ctx, req, true, &claims)) return;
  const char *g = pr_http_req_param(req, 0);
  if (!g || !pr_id_is_valid(g, strlen(g))) {
    pr_service_error(req, 400, "bad_request", "bad group id");
    return;
  }
  /* pr_http_req_query: length, -1 when absent, or an error when malformed. */
  char cursor[32] = "0", count[16] = "";
  int n = pr_http_req_query(req, "cursor", cursor, sizeof cursor);
  if (n == -1) {
    strcpy(cursor, "0");
  } else if (n <= 0 || strspn(cursor, "0123456789") != (size_t)n) {
    pr_service_error(req, 400, "bad_request", "cursor must be a number from a previous page");
    return;
  }
  unsigned long per = 100;
  n = pr_http_req_query(req, "count", count, sizeof count);
  if (n != -1) {
    char *end = count;
    per = n > 0 ? strtoul(count, &end, 10) : 0;
    if (n <= 0 || *end || per < 1 || per > 1000) {
      pr_service_error(req, 400, "bad_request", "count must be between 1 and 1000");
      return;
    }
  }
  graph_call *c = pr_malloc(sizeof *c);
  *c = (graph_call){ctx, req};
  int rc = pr_graph_members(ctx->store, g, cursor, (unsigned)per, on_members_page, c);
  if (rc) {
    pr_free(c);
    pr_service_backend_error(req, rc);
  }
}

int send_add_graph_routes(pr_http_router *r, send_ctx *ctx) {
  if (pr_http_router_add(r, "PUT", "/v1/users/{}/contacts/{}", on_contact_put, ctx) ||
      pr_http_router_add(r, "DELETE", "/v1/users/{}/contacts/{}", on_contact_delete, ctx) ||
      pr_http_router_add(r, "PUT", "/v1/groups/{}/members/{}", on_member_put, ctx) ||
      pr_http_router_add(r, "DELETE", "/v1/groups/{}/members/{}", on_member_delete, ctx) ||
      pr_http_router_add(r, "GET", "/v1/groups/{}/members", on_members_get, ctx))
    return PR_EINVAL;
  return 0;
}
