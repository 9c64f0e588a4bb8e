/* store_pipe.c: pipelined command batches with copied results (store_pipe.h). */
#include "store_pipe.h"
#include "base.h"

#include <stdio.h>
#include <string.h>

/* The callback argument of one command. Slots live in chunks that never move
 * (the result array may be reallocated while replies are awaited), so a batch
 * of hundreds of commands costs a few allocations, not one per command. */
typedef struct {
  struct pr_pipe *p;
  size_t i;
} slot;

#define SLOTS_PER_CHUNK 64

typedef struct slot_chunk {
  struct slot_chunk *next;
  slot s[SLOTS_PER_CHUNK];
} slot_chunk;

struct pr_pipe {
  pr_redis *r;
  pr_pipe_done done;
  void *ctx;
  pr_pipe_res *res;
  size_t n, cap;
  size_t pending; /* replies awaited, + 1 until sealed */
  int err;
  slot_chunk *slots; /* newest first: the head holds slots slot_cap - SLOTS_PER_CHUNK.. */
  size_t slot_cap;
};

pr_pipe *pr_pipe_new(pr_redis *r, pr_pipe_done done, void *ctx) {
  pr_pipe *p = pr_calloc(1, sizeof(*p));
  p->r = r;
  p->done = done;
  p->ctx = ctx;
  p->pending = 1;
  return p;
}

void pr_pipe_res_free(pr_pipe_res *res) {
  pr_free(res->v); /* the strings are in the same block */
  pr_free(res->cursor);
  memset(res, 0, sizeof(*res));
}

static void pipe_free(pr_pipe *p) {
  for (size_t i = 0; i < p->n; i++)
    pr_pipe_res_free(&p->res[i]);
  pr_free(p->res);
  while (p->slots) {
    slot_chunk *c = p->slots;
    p->slots = c->next;
    pr_free(c);
  }
  pr_free(p);
}

static void pipe_release(pr_pipe *p) {
  if (--p->pending > 0) return;
  p->done(p, p->err, p->ctx);
  pipe_free(p);
}

/* The text of a string-like element in *buf (integers are formatted), its
 * length, or -1 for nil. An error or a nested array sets *err. */
static long elem_text(const redisReply *e, char *buf, size_t cap, const char **text, int *err) {
  switch (e->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS: *text = e->str; return (long)e->len;
  case REDIS_REPLY_NIL: return -1;
  case REDIS_REPLY_INTEGER: *text = buf; return snprintf(buf, cap, "%lld", e->integer);
  default: *err = PR_EREDIS; return -1; /* an error inside EXEC's reply, or a nested array */
  }
}

static char *str_of(const redisReply *e, int *err) {
  char buf[32];
  const char *t;
  long len = elem_text(e, buf, sizeof(buf), &t, err);
  return len < 0 ? NULL : pr_strndup(t, (size_t)len);
}

/* n elements as res->v: the pointer array and the NUL-terminated copies in
 * one allocation, so a result costs one malloc and one free whatever its size. */
static void copy_elements(pr_pipe_res *res, redisReply *const *el, size_t n, int *err) {
  res->n = n;
  res->v = NULL;
  if (n == 0) return;
  size_t bytes = n * sizeof(char *);
  char num[32];
  const char *t;
  for (size_t j = 0; j < n; j++) {
    long len = elem_text(el[j], num, sizeof(num), &t, err);
    if (len >= 0) bytes += (size_t)len + 1;
  }
  res->v = pr_malloc(bytes);
  char *out = (char *)(res->v + n);
  for (size_t j = 0; j < n; j++) {
    long len = elem_text(el[j], num, sizeof(num), &t, err);
    if (len < 0) {
      res->v[j] = NULL;
      continue;
    }
    memcpy(out, t, (size_t)len);
    out[len] = '\0';
    res->v[j] = out;
    out += len + 1;
  }
}

static void on_reply(pr_redis *r, redisReply *reply, int err, void *arg) {
  slot *s = arg;
  pr_pipe *p = s->p;
  pr_pipe_res *res = &p->res[s->i];
  if (!err && reply) {
    switch (reply->type) {
    case REDIS_REPLY_ARRAY:
      if (reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_ARRAY) { /* SSCAN */
        res->cursor = str_of(reply->element[0], &err);
        copy_elements(res, reply->element[1]->element, reply->element[1]->elements, &err);
      } else {
        copy_elements(res, reply->element, reply->elements, &err);
      }
      break;
    case REDIS_REPLY_INTEGER: res->num = reply->integer; break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: copy_elements(res, &reply, 1, &err); break;
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
  if (p->n == p->slot_cap) {
    slot_chunk *c = pr_malloc(sizeof(*c));
    c->next = p->slots;
    p->slots = c;
    p->slot_cap += SLOTS_PER_CHUNK;
  }
  slot *s = &p->slots->s[p->n % SLOTS_PER_CHUNK];
  s->p = p;
  s->i = p->n;
  memset(&p->res[p->n], 0, sizeof(p->res[p->n]));
  p->pending++;
  int rc = pr_redis_cmdargv(p->r, on_reply, s, argc, argv, lens);
  if (rc) {
    p->pending--; /* the slot is reused by the next command, or freed with the pipe */
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
