/* presence_routes.c: POST /v1/heartbeat, POST /v1/offline and
 * GET /v1/presence (with ETag/304), each one store round trip (the query:
 * one for the permission filter and one for the read). */
#include "send.h"

#include "base.h"
#include "buf.h"
#include "ids.h"
#include "json_out.h"
#include "proto.h"

#include <jansson.h>
#include <string.h>

#define MAX_TO 1000 /* recipients one heartbeat may name (graph = "client") */

/* ---- shared ---------------------------------------------------------------- */

int send_authorize(send_ctx *ctx, pr_http_req *req, bool admin, pr_claims *claims) {
  if (pr_service_authenticate(ctx->auth, req, 0, claims) != 0) return PR_EAUTH;
  if (admin && !claims->admin) {
    pr_service_error(req, 403, "forbidden", "this call needs a token with role admin");
    return PR_EFORBIDDEN;
  }
  return 0;
}

/* Parses an optional JSON object body. Empty body: *out = NULL. Answers 400
 * itself and returns PR_EINVAL when the body is not a JSON object. */
static int parse_body(pr_http_req *req, json_t **out) {
  size_t len;
  const char *body = pr_http_req_body(req, &len);
  *out = NULL;
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
    i++;
  if (i == len) return 0;
  json_error_t jerr;
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!j || !json_is_object(j)) {
    json_decref(j);
    pr_service_error(req, 400, "bad_request", "the body must be a JSON object");
    return PR_EINVAL;
  }
  *out = j;
  return 0;
}

/* Reads optional string field `name` of obj into *out (NULL when absent).
 * Answers 400 and returns PR_EINVAL when present but not a valid id. */
static int id_field(pr_http_req *req, json_t *obj, const char *name, const char **out) {
  json_t *v = obj ? json_object_get(obj, name) : NULL;
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || !pr_id_is_valid(json_string_value(v), json_string_length(v))) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be 1-64 characters of A-Z a-z 0-9 _ . : @ -", name);
    pr_service_error(req, 400, "bad_request", msg);
    return PR_EINVAL;
  }
  *out = json_string_value(v);
  return 0;
}

typedef struct {
  send_ctx *ctx;
  pr_http_req *req;
  uint64_t t0;
  pr_counter *counter;
} write_call;

static void on_written(const pr_store_update *res, int err, void *arg) {
  write_call *c = arg;
  pr_histogram_observe(c->ctx->store_latency, (double)(pr_now_mono_ms() - c->t0));
  if (err) {
    pr_service_backend_error(c->req, err);
  } else {
    pr_counter_inc(c->counter);
    if (res->changed) pr_counter_inc(c->ctx->transitions);
    pr_http_respond(c->req, 204, NULL, NULL, NULL, 0);
  }
  pr_free(c);
}

static write_call *write_call_new(send_ctx *ctx, pr_http_req *req, pr_counter *counter) {
  write_call *c = pr_malloc(sizeof *c);
  *c = (write_call){ctx, req, pr_now_mono_ms(), counter};
  return c;
}

/* ---- POST /v1/heartbeat ---------------------------------------------------- */

static const char *const statuses[] = {"online", "idle", "dnd", "invisible", "none"};

static const char *status_word(const char *s, size_t n) {
  for (size_t i = 0; i < PR_ARRAY_LEN(statuses); i++)
    if (strlen(statuses[i]) == n && memcmp(s, statuses[i], n) == 0) return statuses[i];
  return NULL;
}

/* The body nearly every heartbeat sends, {"device":"d","status":"s"}, read
 * without building a JSON tree (jansson's parse was the largest cost after
 * the token). Only a narrow form is taken: an object of at most 8 members,
 * every key and value a string of printable ASCII without escapes, no key
 * twice, no "to", a valid device id and a known status. jansson accepts all
 * of it and reads the same values; anything else (including every body that
 * must be refused) returns 0 and goes the general way, which answers it.
 * device is copied into dev (PR_ID_MAX + 1); absent fields are NULL. */
#define FAST_MEMBERS 8

static size_t skip_ws(const char *b, size_t i, size_t len) {
  while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
    i++;
  return i;
}

/* A plain string at b[i] ('"'): its content in *s, *n; returns the index
 * after the closing quote, or 0 when it is not plain. */
static size_t plain_string(const char *b, size_t i, size_t len, const char **s, size_t *n) {
  if (i >= len || b[i] != '"') return 0;
  size_t j = i + 1;
  while (j < len && b[j] != '"') {
    unsigned char ch = (unsigned char)b[j];
    if (ch < 0x20 || ch > 0x7e || ch == '\\') return 0;
    j++;
  }
  if (j >= len) return 0;
  *s = b + i + 1;
  *n = j - i - 1;
  return j + 1;
}

static int heartbeat_body_fast(const char *b, size_t len, char *dev, const char **device,
                               const char **status) {
  const char *keys[FAST_MEMBERS];
  size_t klens[FAST_MEMBERS], nkeys = 0;
  *device = *status = NULL;
  size_t i = skip_ws(b, 0, len);
  if (i == len) return 1; /* no body: the defaults */
  if (b[i] != '{') return 0;
  i = skip_ws(b, i + 1, len);
  if (i < len && b[i] == '}') {
    i++;
  } else {
    for (;;) {
      const char *k, *v;
      size_t kn, vn;
      if (nkeys == FAST_MEMBERS || !(i = plain_string(b, i, len, &k, &kn))) return 0;
      i = skip_ws(b, i, len);
      if (i >= len || b[i] != ':') return 0;
      i = skip_ws(b, i + 1, len);
      if (!(i = plain_string(b, i, len, &v, &vn))) return 0;
      for (size_t m = 0; m < nkeys; m++)
        if (klens[m] == kn && memcmp(keys[m], k, kn) == 0) return 0;
      keys[nkeys] = k;
      klens[nkeys++] = kn;
      if (kn == 2 && memcmp(k, "to", 2) == 0) return 0;
      if (kn == 6 && memcmp(k, "device", 6) == 0) {
        if (!pr_id_is_valid(v, vn)) return 0;
        memcpy(dev, v, vn);
        dev[vn] = '\0';
        *device = dev;
      } else if (kn == 6 && memcmp(k, "status", 6) == 0) {
        if (!(*status = status_word(v, vn))) return 0;
      }
      i = skip_ws(b, i, len);
      if (i < len && b[i] == ',') {
        i = skip_ws(b, i + 1, len);
        continue;
      }
      if (i < len && b[i] == '}') {
        i++;
        break;
      }
      return 0;
    }
  }
  return skip_ws(b, i, len) == len;
}

static void heartbeat_store(send_ctx *ctx, pr_http_req *req, const pr_claims *claims,
                            const char *device, const char *status, const char **to, size_t nto) {
  write_call *c = write_call_new(ctx, req, ctx->heartbeats);
  int rc = pr_store_heartbeat(ctx->store, claims->sub, device ? device : "default", status, to, nto,
                              on_written, c);
  if (rc) {
    pr_free(c);
    pr_service_backend_error(req, rc);
  }
}

static void on_heartbeat(pr_http_req *req, void *arg) {
  send_ctx *ctx = arg;
  pr_claims claims;
  json_t *body = NULL;
  const char *device = NULL, *status = NULL;
  const char *to[MAX_TO];
  size_t nto = 0;
  if (send_authorize(ctx, req, false, &claims)) return;
  size_t len;
  const char *raw = pr_http_req_body(req, &len);
  char dev[PR_ID_MAX + 1];
  if (heartbeat_body_fast(raw, len, dev, &device, &status)) {
    heartbeat_store(ctx, req, &claims, device, status, NULL, 0);
    return;
  }
  if (parse_body(req, &body) || id_field(req, body, "device", &device)) goto out;
  json_t *st = body ? json_object_get(body, "status") : NULL;
  if (st && !json_is_null(st)) {
    if (json_is_string(st)) status = status_word(json_string_value(st), json_string_length(st));
    if (!status) {
      pr_service_error(req, 400, "bad_request",
                       "status must be one of online, idle, dnd, invisible, none");
      goto out;
    }
  }
  json_t *jto = body ? json_object_get(body, "to") : NULL;
  if (jto && !json_is_null(jto)) {
    if (!ctx->client_graph) {
      pr_service_error(req, 400, "bad_request", "to is only accepted with graph = client");
      goto out;
    }
    if (!json_is_array(jto) || json_array_size(jto) > MAX_TO) {
      pr_service_error(req, 400, "bad_request", "to must be an array of at most 1000 user ids");
      goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(jto, i, v) {
      if (!json_is_string(v) || !pr_id_is_valid(json_string_value(v), json_string_length(v))) {
        pr_service_error(req, 400, "bad_request", "to must hold valid user ids");
        goto out;
      }
      to[nto++] = json_string_value(v);
    }
  }
  heartbeat_store(ctx, req, &claims, device, status, to, nto);
out:
  json_decref(body);
}

/* ---- POST /v1/offline -------------------------------------------------------- */

static void on_offline(pr_http_req *req, void *arg) {
  send_ctx *ctx = arg;
  pr_claims claims;
  json_t *body = NULL;
  const char *device = NULL;
  if (send_authorize(ctx, req, false, &claims) || parse_body(req, &body) ||
      id_field(req, body, "device", &device))
    goto out;
  write_call *c = write_call_new(ctx, req, ctx->offlines);
  int rc = pr_store_offline(ctx->store, claims.sub, device, on_written, c);
  if (rc) {
    pr_free(c);
    pr_service_backend_error(req, rc);
  }
out:
  json_decref(body);
}

/* ---- GET /v1/presence?users=a,b,c -------------------------------------------- */

typedef struct {
  send_ctx *ctx;
  pr_http_req *req;
  char caller[PR_ID_MAX + 1];
  char *list;         /* the decoded users parameter, split in place */
  const char **users; /* n pointers into list */
  size_t n;
  bool *allowed;      /* per user */
  const char **asked; /* the allowed users, in order */
  size_t nasked;
} query_call;

static void query_free(query_call *q) {
  pr_free(q->list);
  pr_free(q->users);
  pr_free(q->allowed);
  pr_free(q->asked);
  pr_free(q);
}

static bool etag_matches(const char *if_none_match, const char *etag) {
  if (!if_none_match) return false;
  if (strcmp(if_none_match, "*") == 0) return true;
  return strstr(if_none_match, etag) != NULL; /* a list of tags, or the tag alone */
}

static void on_read(const pr_presence *users, size_t n, int err, void *arg) {
  query_call *q = arg;
  if (err) {
    pr_service_backend_error(q->req, err);
    query_free(q);
    return;
  }
  pr_presence_entry *e = pr_malloc(sizeof *e * (q->n ? q->n : 1));
  size_t k = 0;
  for (size_t i = 0; i < q->n; i++) {
    e[i] = (pr_presence_entry){pr_view_of(q->users[i]), "offline", 0, 0};
    if (q->allowed[i] && k < n) {
      e[i].status = users[k].status;
      e[i].last_seen = users[k].last_seen;
      e[i].version = users[k].version;
      k++;
    }
  }
  pr_buf body = PR_BUF_INIT;
  pr_json_presence_body(&body, e, q->n);
  pr_free(e);
  char etag[40], headers[96];
  snprintf(etag, sizeof etag, "\"%016llx\"", (unsigned long long)pr_hash64(body.data, body.len));
  snprintf(headers, sizeof headers, "ETag: %s\r\nCache-Control: no-cache\r\n", etag);
  pr_counter_inc(q->ctx->queries);
  if (etag_matches(pr_http_req_header(q->req, "If-None-Match"), etag)) {
    pr_counter_inc(q->ctx->not_modified);
    pr_http_respond(q->req, 304, NULL, headers, NULL, 0);
  } else {
    pr_http_respond(q->req, 200, "application/json", headers, body.data, body.len);
  }
  pr_buf_free(&body);
  query_free(q);
}

static void read_allowed(query_call *q) {
  q->asked = pr_malloc(sizeof *q->asked * (q->n ? q->n : 1));
  for (size_t i = 0; i < q->n; i++)
    if (q->allowed[i]) q->asked[q->nasked++] = q->users[i];
  if (q->nasked == 0) {
    on_read(NULL, 0, 0, q);
    return;
  }
  int rc = pr_store_read(q->ctx->store, q->caller, q->asked, q->nasked, on_read, q);
  if (rc) {
    pr_service_backend_error(q->req, rc);
    query_free(q);
  }
}

static void on_filtered(const bool *allowed, size_t n, int err, void *arg) {
  query_call *q = arg;
  if (err) {
    pr_service_backend_error(q->req, err);
    query_free(q);
    return;
  }
  for (size_t i = 0; i < q->n; i++)
    q->allowed[i] = i < n && allowed[i];
  read_allowed(q);
}

static void on_presence(pr_http_req *req, void *arg) {
  send_ctx *ctx = arg;
  pr_claims claims;
  if (send_authorize(ctx, req, false, &claims)) return;
  size_t cap = strlen(pr_http_req_query_string(req)) + 1;
  char *list = pr_malloc(cap);
  int len = pr_http_req_query(req, "users", list, cap);
  if (len <= 0) {
    pr_free(list);
    pr_service_error(req, 400, "bad_request", "give users=a,b,c (1 or more user ids)");
    return;
  }
  query_call *q = pr_calloc(1, sizeof *q);
  q->ctx = ctx;
  q->req = req;
  q->list = list;
  memcpy(q->caller, claims.sub, sizeof q->caller);
  size_t max = (size_t)ctx->cfg.max_query_users, n = 1;
  for (int i = 0; i < len; i++)
    n += list[i] == ',';
  if (n > max) {
    char msg[96];
    snprintf(msg, sizeof msg, "at most %zu users per query", max);
    pr_service_error(req, 400, "bad_request", msg);
    query_free(q);
    return;
  }
  q->users = pr_malloc(sizeof *q->users * n);
  q->allowed = pr_calloc(n, sizeof *q->allowed);
  for (char *s = list;; s++) {
    char *comma = strchr(s, ',');
    if (comma) *comma = '\0';
    if (!pr_id_is_valid(s, strlen(s))) {
      pr_service_error(req, 400, "bad_request",
                       "users must be ids of 1-64 characters of A-Z a-z 0-9 _ . : @ -");
      query_free(q);
      return;
    }
    q->users[q->n++] = s;
    if (!comma) break;
    s = comma;
  }
  int rc;
  if (ctx->client_graph) {
    /* No server graph to check against: the application decides who asks. */
    for (size_t i = 0; i < q->n; i++)
      q->allowed[i] = true;
    read_allowed(q);
    return;
  }
  rc = pr_graph_filter_watchable(ctx->store, q->caller, q->users, q->n, on_filtered, q);
  if (rc) {
    pr_service_backend_error(req, rc);
    query_free(q);
  }
}

int send_add_presence_routes(pr_http_router *r, send_ctx *ctx) {
  if (pr_http_router_add(r, "POST", "/v1/heartbeat", on_heartbeat, ctx) ||
      pr_http_router_add(r, "POST", "/v1/offline", on_offline, ctx) ||
      pr_http_router_add(r, "GET", "/v1/presence", on_presence, ctx))
    return PR_EINVAL;
  return 0;
}
