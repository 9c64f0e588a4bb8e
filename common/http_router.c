/* http_router.c: (method, pattern) -> handler, with `{}` segment captures,
 * 404 for unknown paths and 405 + Allow for known paths with another method.
 * A linear scan: services have a dozen routes. */
#include <string.h>
#include "base.h"
#include "buf.h"
#include "http_internal.h"

typedef struct route route;
struct route {
  route *next;
  char *method;
  char *pattern;
  pr_http_handler handler;
  void *arg;
};

struct pr_http_router {
  route *head, *tail;
  pr_http_handler fallback;
  void *fallback_arg;
};

pr_http_router *pr_http_router_new(void) { return pr_calloc(1, sizeof(pr_http_router)); }

void pr_http_router_free(pr_http_router *r) {
  if (!r) return;
  for (route *rt = r->head, *next; rt; rt = next) {
    next = rt->next;
    pr_free(rt->method);
    pr_free(rt->pattern);
    pr_free(rt);
  }
  pr_free(r);
}

static int pattern_ok(const char *p) {
  if (p[0] != '/') return 0;
  unsigned caps = 0;
  for (const char *seg = p + 1;;) {
    const char *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    int is_cap = len == 2 && seg[0] == '{' && seg[1] == '}';
    if (is_cap)
      caps++;
    else if (memchr(seg, '{', len) || memchr(seg, '}', len))
      return 0;
    if (!end) break;
    seg = end + 1;
  }
  return caps <= PR_HTTP_MAX_PARAMS;
}

int pr_http_router_add(pr_http_router *r, const char *method, const char *pattern,
                       pr_http_handler handler, void *arg) {
  if (!r || !method || !pattern || !handler || !method[0] || !pattern_ok(pattern)) return PR_EINVAL;
  for (const char *m = method; *m; m++)
    if (*m < 'A' || *m > 'Z') return PR_EINVAL;
  route *rt = pr_calloc(1, sizeof *rt);
  rt->method = pr_strdup(method);
  rt->pattern = pr_strdup(pattern);
  rt->handler = handler;
  rt->arg = arg;
  if (r->tail)
    r->tail->next = rt;
  else
    r->head = rt;
  r->tail = rt;
  return 0;
}

void pr_http_router_set_fallback(pr_http_router *r, pr_http_handler handler, void *arg) {
  r->fallback = handler;
  r->fallback_arg = arg;
}

typedef struct {
  const char *at[PR_HTTP_MAX_PARAMS];
  size_t len[PR_HTTP_MAX_PARAMS];
  unsigned n;
} captures;

/* Matches a raw path against a pattern segment by segment ("/a/" has the
 * segments "a" and ""), recording what the `{}` segments cover. */
static int route_match(const char *pat, const char *path, captures *cap) {
  cap->n = 0;
  const char *p = pat + 1, *q = path + 1;
  for (;;) {
    const char *pe = strchr(p, '/'), *qe = strchr(q, '/');
    size_t pl = pe ? (size_t)(pe - p) : strlen(p);
    size_t ql = qe ? (size_t)(qe - q) : strlen(q);
    if (pl == 2 && p[0] == '{' && p[1] == '}') {
      if (ql == 0) return 0;
      cap->at[cap->n] = q;
      cap->len[cap->n++] = ql;
    } else if (pl != ql || memcmp(p, q, pl) != 0) {
      return 0;
    }
    if (!pe || !qe) return !pe && !qe;
    p = pe + 1;
    q = qe + 1;
  }
}

static void add_allowed(pr_buf *allow, const char *method) {
  size_t ml = strlen(method);
  for (const char *p = allow->data; p && *p;) { /* already listed? */
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == ml && memcmp(p, method, ml) == 0) return;
    p = comma ? comma + 2 : p + len;
  }
  if (allow->len) pr_buf_puts(allow, ", ");
  pr_buf_puts(allow, method);
}

static void answer_405(pr_http_router *r, pr_http_req *req, const char *path) {
  pr_buf allow = PR_BUF_INIT;
  captures cap;
  int get = 0;
  for (route *rt = r->head; rt; rt = rt->next) {
    if (!route_match(rt->pattern, path, &cap)) continue;
    add_allowed(&allow, rt->method);
    if (strcmp(rt->method, "GET") == 0) get = 1;
  }
  if (get) add_allowed(&allow, "HEAD");
  pr_buf hdr = PR_BUF_INIT;
  pr_buf_printf(&hdr, "Allow: %s\r\n", allow.data);
  pr_http_respond_error(req, 405, hdr.data);
  pr_buf_free(&allow);
  pr_buf_free(&hdr);
}

void pr_http_router_handle(pr_http_req *req, void *arg) {
  pr_http_router *r = arg;
  const char *path = pr_http_req_path(req);
  const char *method = pr_http_req_method(req);
  int is_head = pr_http_req_method_id(req) == HTTP_HEAD;
  int path_known = 0;
  captures cap;
  if (path[0] == '/') {
    for (route *rt = r->head; rt; rt = rt->next) {
      if (!route_match(rt->pattern, path, &cap)) continue;
      path_known = 1;
      if (strcmp(rt->method, method) != 0 && !(is_head && strcmp(rt->method, "GET") == 0)) continue;
      size_t offs[PR_HTTP_MAX_PARAMS]; /* adding params moves the path's storage */
      for (unsigned i = 0; i < cap.n; i++)
        offs[i] = (size_t)(cap.at[i] - path);
      for (unsigned i = 0; i < cap.n; i++) {
        if (http_req_add_param(req, offs[i], cap.len[i]) < 0) {
          pr_http_respond_error(req, 400, NULL);
          return;
        }
      }
      rt->handler(req, rt->arg);
      return;
    }
  }
  if (path_known) {
    answer_405(r, req, path);
  } else if (r->fallback) {
    r->fallback(req, r->fallback_arg);
  } else {
    pr_http_respond_error(req, 404, NULL);
  }
}
