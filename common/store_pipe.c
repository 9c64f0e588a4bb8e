/* store_pipe.c: pipelined command batches with copied results (store_pipe.h). */
#include "store_pipe.h"
#include "base.h"

#include <stdio.h>
#include <string.h>

struct pr_pipe {
  pr_redis *r;
  pr_pipe_done done;
  void *ctx;
  pr_pipe_res *res;
  size_t n, cap;
  size_t pending; /* replies awaited, + 1 until sealed */
  int err;
};

typedef struct {
  pr_pipe *p;
  size_t i;
} slot;

pr_pipe *pr_pipe_new(pr_redis *r, pr_pipe_done done, void *ctx) {
  pr_pipe *p = pr_calloc(1, sizeof(*p));
  p->r = r;
  p->done = done;
  p->ctx = ctx;
  p->pending = 1;
  return p;
}

void pr_pipe_res_free(pr_pipe_res *res) {
  for (size_t j = 0; j < res->n; j++)
    pr_free(res->v[j]);
  pr_free(res->v);
  pr_free(res->cursor);
  memset(res, 0, sizeof(*res));
}

static void pipe_free(pr_pipe *p) {
  for (size_t i = 0; i < p->n; i++)
    pr_pipe_res_free(&p->res[i]);
  pr_free(p->res);
  pr_free(p);
}

static void pipe_release(pr_pipe *p) {
  if (--p->pending > 0) return;
  p->done(p, p->err, p->ctx);
  pipe_free(p);
}

static char *str_of(const redisReply *e, int *err) {
  switch (e->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS: return pr_strndup(e->str, e->len);
  case REDIS_REPLY_NIL: return NULL;
  case REDIS_REPLY_INTEGER: {
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", e->integer);
    return pr_strdup(buf);
  }
  default: *err = PR_EREDIS; return NULL; /* an error inside EXEC's reply, or a nested array */
  }
}

static void copy_array(pr_pipe_res *res, const redisReply *a, int *err) {
  res->n = a->elements;
  res->v = a->elements ? pr_calloc(a->elements, sizeof(char *)) : NULL;
  for (size_t j = 0; j < a->elements; j++)
    res->v[j] = str_of(a->element[j], err);
}

static void on_reply(pr_redis *r, redisReply *reply, int err, void *arg) {
  slot *s = arg;
  pr_pipe *p = s->p;
  pr_pipe_res *res = &p->res[s->i];
  pr_free(s);
  if (!err && reply) {
    switch (reply->type) {
    case REDIS_REPLY_ARRAY:
      if (reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_ARRAY) { /* SSCAN */
        res->cursor = str_of(reply->element[0], &err);
        copy_array(res, reply->element[1], &err);
      } else {
        copy_array(res, reply, &err);
      }
      break;
    case REDIS_REPLY_INTEGER: res->num = reply->integer; break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      res->v = pr_malloc(sizeof(char *));
      res->v[0] = pr_strndup(reply->str, reply->len);
      res->n = 1;
      break;
    case REDIS_REPLY_NIL: break;
    default: err = PR_EREDIS; break;
    }
  } else if (!err) {
    err = PR_EREDIS;
  }
  if (err && !p->err) p->err = err;
  pipe_release(p);
}

int pr_pipe_cmd(pr_pipe *p, int argc, const char **argv) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 8;
    p->res = pr_realloc(p->res, p->cap * sizeof(*p->res));
  }
  size_t lens[argc > 0 ? argc : 1];
  for (int i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  slot *s = pr_malloc(sizeof(*s));
  s->p = p;
  s->i = p->n;
  memset(&p->res[p->n], 0, sizeof(p->res[p->n]));
  p->pending++;
  int rc = pr_redis_cmdargv(p->r, on_reply, s, argc, argv, lens);
  if (rc) {
    p->pending--;
    pr_free(s);
    return rc;
  }
  p->n++;
  return 0;
}

int pr_pipe_seal(pr_pipe *p, int rc) {
  if (p->n == 0) {
    pipe_free(p);
    return rc ? rc : PR_EINVAL;
  }
  if (rc && !p->err) p->err = rc;
  pipe_release(p);
  return 0;
}

size_t pr_pipe_count(const pr_pipe *p) { return p->n; }

const pr_pipe_res *pr_pipe_result(const pr_pipe *p, size_t i) { return &p->res[i]; }

pr_pipe_res pr_pipe_take(pr_pipe *p, size_t i) {
  pr_pipe_res res = p->res[i];
  memset(&p->res[i], 0, sizeof(p->res[i]));
  return res;
}
