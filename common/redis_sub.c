/* redis_sub.c: pub/sub on a pr_redis: the set of channels and patterns it
 * keeps, resubscription on every new connection, and message delivery.
 * See redis.h. */
#include "redis_internal.h"
#include "base.h"

#include <string.h>
#include <strings.h>

/* ---- the sets -------------------------------------------------------------- */

/* Linear sets: a service subscribes to a handful of channels. */
static int set_find(char **v, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0) return i;
  return -1;
}

static void set_add(char ***v, int *n, int *cap, const char *s) {
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 8;
    *v = pr_realloc(*v, (size_t)*cap * sizeof(**v));
  }
  (*v)[(*n)++] = pr_strdup(s);
}

static void set_del(char **v, int *n, int i) {
  pr_free(v[i]);
  v[i] = v[--*n];
}

void pr_redis__sub_free(pr_redis *r) {
  for (int i = 0; i < r->nchannels; i++)
    pr_free(r->channels[i]);
  for (int i = 0; i < r->npatterns; i++)
    pr_free(r->patterns[i]);
  pr_free(r->channels);
  pr_free(r->patterns);
}

/* ---- replies --------------------------------------------------------------- */

static int is_str(const redisReply *e) { return e->type == REDIS_REPLY_STRING; }

/* hiredis calls this for every push of a channel or pattern subscribed with
 * it ("subscribe" confirmations, "message", "pmessage", "unsubscribe"), and
 * with NULL when the context goes away. privdata is the client, which
 * outlives its contexts. */
static void on_push(redisAsyncContext *ac, void *reply_, void *privdata) {
  pr_redis *r = privdata;
  redisReply *reply = reply_;
  if (!reply) {
    pr_redis__conn_lost(r, ac);
    return;
  }
  if (ac != r->ac || r->closing) return;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
  redisReply **e = reply->element;
  if (!is_str(e[0])) return;
  const char *kind = e[0]->str;
  if (strcasecmp(kind, "message") == 0) {
    if (is_str(e[1]) && is_str(e[2]) && r->msg_cb)
      r->msg_cb(r, e[1]->str, e[2]->str, e[2]->len, r->msg_arg);
  } else if (strcasecmp(kind, "pmessage") == 0) {
    if (reply->elements >= 4 && is_str(e[2]) && is_str(e[3]) && r->msg_cb)
      r->msg_cb(r, e[2]->str, e[3]->str, e[3]->len, r->msg_arg);
  } else if (strcasecmp(kind, "subscribe") == 0 || strcasecmp(kind, "psubscribe") == 0) {
    if (r->sub_unconfirmed > 0 && --r->sub_unconfirmed == 0) pr_redis__maybe_ready(r);
  }
}

/* Sends verb with the names. `confirmed` when the server answers each name
 * with a (p)subscribe push: while not ready, readiness waits for those. */
static void send_names(pr_redis *r, const char *verb, char **names, int n, int confirmed) {
  if (!r->ac || n == 0) return;
  const char **argv = pr_malloc((size_t)(n + 1) * sizeof(*argv));
  argv[0] = verb;
  for (int i = 0; i < n; i++)
    argv[i + 1] = names[i];
  int rc = redisAsyncCommandArgv(r->ac, on_push, r, n + 1, argv, NULL);
  pr_free(argv);
  /* A refusal means the context is going away: the next one resubscribes. */
  if (rc == REDIS_OK && confirmed && !r->ready) r->sub_unconfirmed += n;
}

void pr_redis__sub_resubscribe(pr_redis *r) {
  send_names(r, "SUBSCRIBE", r->channels, r->nchannels, 1);
  send_names(r, "PSUBSCRIBE", r->patterns, r->npatterns, 1);
}

/* ---- public ---------------------------------------------------------------- */

void pr_redis_on_message(pr_redis *r, pr_redis_msg_cb cb, void *arg) {
  r->msg_cb = cb;
  r->msg_arg = arg;
}

static int sub_add(pr_redis *r, const char *verb, char ***v, int *n, int *cap, const char *name) {
  if (r->closing || !name || !*name) return PR_EINVAL;
  r->subscriber = 1;
  if (set_find(*v, *n, name) >= 0) return 0;
  set_add(v, n, cap, name);
  send_names(r, verb, &(*v)[*n - 1], 1, 1);
  return 0;
}

static int sub_del(pr_redis *r, const char *verb, char **v, int *n, const char *name) {
  if (r->closing || !name || !*name) return PR_EINVAL;
  int i = set_find(v, *n, name);
  if (i < 0) return PR_ENOTFOUND;
  send_names(r, verb, &v[i], 1, 0);
  set_del(v, n, i);
  return 0;
}

int pr_redis_subscribe(pr_redis *r, const char *channel) {
  if (!r) return PR_EINVAL;
  return sub_add(r, "SUBSCRIBE", &r->channels, &r->nchannels, &r->capchannels, channel);
}

int pr_redis_unsubscribe(pr_redis *r, const char *channel) {
  if (!r) return PR_EINVAL;
  return sub_del(r, "UNSUBSCRIBE", r->channels, &r->nchannels, channel);
}

int pr_redis_psubscribe(pr_redis *r, const char *pattern) {
  if (!r) return PR_EINVAL;
  return sub_add(r, "PSUBSCRIBE", &r->patterns, &r->npatterns, &r->cappatterns, pattern);
}

int pr_redis_punsubscribe(pr_redis *r, const char *pattern) {
  if (!r) return PR_EINVAL;
  return sub_del(r, "PUNSUBSCRIBE", r->patterns, &r->npatterns, pattern);
}
