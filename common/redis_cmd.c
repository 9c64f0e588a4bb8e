/* redis_cmd.c: commands of a pr_redis: the record kept for each, its
 * deadline, exactly-once delivery, and scripts by SHA with the EVAL fallback
 * after NOSCRIPT. See redis.h. */
#include "redis_internal.h"
#include "base.h"

#include <openssl/evp.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the waiting list ------------------------------------------------------ */

/* Every command gets the same timeout, so appending keeps the list sorted by
 * deadline and expiry only looks at the head. */
static void call_link(pr_redis *r, redis_call *c) {
  c->prev = r->tail;
  c->next = NULL;
  if (r->tail)
    r->tail->next = c;
  else
    r->head = c;
  r->tail = c;
  r->stats.pending++;
}

static void call_unlink(pr_redis *r, redis_call *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    r->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    r->tail = c->prev;
  c->prev = c->next = NULL;
  r->stats.pending--;
}

/* Runs the user callback, once. The record stays until hiredis lets go. */
static void call_finish(redis_call *c, redisReply *reply, int err) {
  pr_redis *r = c->r;
  call_unlink(r, c);
  if (err == PR_ETIMEDOUT)
    r->stats.timeouts++;
  else if (err)
    r->stats.errors++;
  pr_redis_cb cb = c->cb;
  c->cb = NULL;
  cb(r, reply, err, c->arg);
}

static void call_free(redis_call *c) {
  if (c->cmd) redisFreeCommand(c->cmd);
  pr_free(c);
}

void pr_redis__calls_expire(pr_redis *r, uint64_t now_ms) {
  /* Re-read the head each time: the callback may free the client. */
  while (r->head && r->head->deadline_ms <= now_ms)
    call_finish(r->head, NULL, PR_ETIMEDOUT);
}

void pr_redis__calls_fail_all(pr_redis *r, int err) {
  while (r->head)
    call_finish(r->head, NULL, err);
}

/* ---- replies --------------------------------------------------------------- */

static int is_noscript(const redisReply *reply) {
  return reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
         strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata);

/* Rewrites the kept "EVALSHA sha n keys.. args.." as "EVAL body n keys..
 * args.." and queues it on the same connection. Returns 0 if queued. */
static int script_resend(redis_call *c, redisAsyncContext *ac) {
  /* The rest starts after five CRLFs: *argc, $7, EVALSHA, $40, sha. */
  const char *rest = c->cmd, *end = c->cmd + c->cmdlen;
  for (int i = 0; i < 5; i++) {
    rest = memchr(rest, '\n', (size_t)(end - rest));
    if (!rest) return PR_EPROTO;
    rest++;
  }
  size_t bodylen = strlen(c->script->body), restlen = (size_t)(end - rest);
  char head[64];
  int hlen = snprintf(head, sizeof(head), "*%d\r\n$4\r\nEVAL\r\n$%zu\r\n", c->argc, bodylen);
  size_t len = (size_t)hlen + bodylen + 2 + restlen;
  char *cmd = pr_malloc(len);
  memcpy(cmd, head, (size_t)hlen);
  memcpy(cmd + hlen, c->script->body, bodylen);
  memcpy(cmd + hlen + bodylen, "\r\n", 2);
  memcpy(cmd + hlen + bodylen + 2, rest, restlen);
  int rc = redisAsyncFormattedCommand(ac, on_reply, c, cmd, len);
  pr_free(cmd);
  return rc == REDIS_OK ? 0 : PR_EUNAVAIL;
}

/* hiredis's callback for every command: reply NULL means the context is
 * going away (disconnect or free). */
static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
  redis_call *c = privdata;
  pr_redis *r = c->r;
  redisReply *reply = reply_;
  r->inflight--;
  if (reply)
    r->last_progress_ms = pr_now_mono_ms();
  else
    pr_redis__conn_lost(r, ac); /* the first record to hear of it tells the client */
  if (c->cb) {
    if (!reply) {
      call_finish(c, NULL, r->closing ? PR_ECLOSED : PR_EUNAVAIL);
    } else if (c->script && !c->retried && is_noscript(reply) && ac == r->ac &&
               script_resend(c, ac) == 0) {
      c->retried = 1;
      r->inflight++;
      return; /* the record now belongs to the EVAL */
    } else {
      call_finish(c, reply, reply->type == REDIS_REPLY_ERROR ? PR_EREDIS : 0);
    }
  }
  call_free(c);
}

static void ignore_reply(pr_redis *r, redisReply *reply, int err, void *arg) {}

/* Commands that would turn the connection into a stream of pushes, which
 * hiredis 0.14 pairs with one callback per channel, not per command. */
static int is_push_command(const char *cmd, size_t len) {
  static const char *const names[] = {"subscribe",    "psubscribe",   "ssubscribe", "unsubscribe",
                                      "punsubscribe", "sunsubscribe", "monitor"};
  const char *p = memchr(cmd, '$', len);
  if (!p) return 0;
  char *q;
  long n = strtol(p + 1, &q, 10);
  if (n <= 0 || (size_t)(q + 2 - cmd) + (size_t)n > len) return 0;
  const char *name = q + 2;
  for (size_t i = 0; i < PR_ARRAY_LEN(names); i++)
    if (strlen(names[i]) == (size_t)n && strncasecmp(name, names[i], (size_t)n) == 0) return 1;
  return 0;
}

static int accepting(const pr_redis *r) {
  if (!r || r->subscriber) return PR_EINVAL;
  if (r->closing) return PR_ECLOSED; /* called from a callback run by pr_redis_free */
  if (!r->ready || !r->ac) return PR_EUNAVAIL;
  if (r->stats.pending >= (unsigned long long)r->max_pending) return PR_EBUSY;
  return 0;
}

/* hiredis writes what was queued when the socket is next writable, after
 * the loop turn: a turn that queues many commands (a burst of heartbeats)
 * would leave Redis idle until all are parsed, then keep the service idle
 * while Redis runs them all. Writing every PR_REDIS_FLUSH_EVERY commands
 * lets Redis start on the first ones while the rest are being prepared.
 * redisBufferWrite runs no callback: a write error is only recorded in the
 * context, and the poll callback handles it as any other (asynchronously). */
#define PR_REDIS_FLUSH_EVERY 8

static void flush_early(pr_redis *r) {
  if (++r->unflushed < PR_REDIS_FLUSH_EVERY) return;
  r->unflushed = 0;
  int done = 0;
  redisBufferWrite(&r->ac->c, &done);
}

/* Queues a formatted command (malloc'd RESP; taken over: freed
 * here or kept in the record for a script). */
static int submit(pr_redis *r, pr_redis_cb cb, void *arg, char *cmd, int len,
                  pr_redis_script *script, int argc) {
  if (len < 0) return PR_EINVAL; /* bad format, or out of memory inside hiredis */
  if (!script && is_push_command(cmd, (size_t)len)) { /* a script is EVALSHA */
    redisFreeCommand(cmd);
    return PR_EINVAL;
  }
  redis_call *c = pr_calloc(1, sizeof(*c));
  c->r = r;
  c->cb = cb ? cb : ignore_reply;
  c->arg = arg;
  c->deadline_ms = pr_now_mono_ms() + (uint64_t)r->cmd_timeout_ms;
  if (redisAsyncFormattedCommand(r->ac, on_reply, c, cmd, (size_t)len) != REDIS_OK) {
    /* The context is closing (a disconnect being processed). */
    redisFreeCommand(cmd);
    pr_free(c);
    return PR_EUNAVAIL;
  }
  if (script) {
    c->script = script;
    c->cmd = cmd;
    c->cmdlen = (size_t)len;
    c->argc = argc;
  } else {
    redisFreeCommand(cmd);
  }
  if (r->inflight++ == 0) r->last_progress_ms = pr_now_mono_ms();
  call_link(r, c);
  flush_early(r);
  r->stats.commands++;
  pr_redis__tick_ensure(r);
  return 0;
}

/* ---- formatting ------------------------------------------------------------ */

/* The RESP form of argv (an array of bulk strings), as hiredis's
 * redisFormatCommandArgv writes it, without its sprintf per argument: that
 * was a tenth of presence-send's time per heartbeat. The buffer comes from
 * pr_malloc (malloc), so redisFreeCommand frees it like hiredis's own. */
static size_t digits(size_t n) {
  size_t d = 1;
  while (n >= 10) {
    n /= 10;
    d++;
  }
  return d;
}

static char *put_count(char *p, char type, size_t n) {
  char tmp[24];
  size_t k = 0;
  do {
    tmp[k++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  *p++ = type;
  while (k)
    *p++ = tmp[--k];
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

static int format_argv(char **out, int argc, const char **argv, const size_t *lens) {
  size_t total = 1 + digits((size_t)argc) + 2;
  for (int i = 0; i < argc; i++)
    total += 1 + digits(lens[i]) + 2 + lens[i] + 2;
  if (total > INT_MAX) return -1;
  char *cmd = pr_malloc(total), *p = cmd;
  p = put_count(p, '*', (size_t)argc);
  for (int i = 0; i < argc; i++) {
    p = put_count(p, '$', lens[i]);
    memcpy(p, argv[i], lens[i]);
    p += lens[i];
    *p++ = '\r';
    *p++ = '\n';
  }
  *out = cmd;
  return (int)total;
}

/* ---- public ---------------------------------------------------------------- */

int pr_redis_cmdargv(pr_redis *r, pr_redis_cb cb, void *arg, int argc, const char **argv,
                     const size_t *lens) {
  if (argc <= 0 || !argv) return PR_EINVAL;
  int rc = accepting(r);
  if (rc) return rc;
  size_t small[16], *own = NULL;
  if (!lens) {
    own = (size_t)argc <= PR_ARRAY_LEN(small) ? small : pr_malloc((size_t)argc * sizeof(*own));
    for (int i = 0; i < argc; i++)
      own[i] = strlen(argv[i]);
    lens = own;
  }
  char *cmd = NULL;
  int len = format_argv(&cmd, argc, argv, lens);
  if (own != small) pr_free(own);
  return submit(r, cb, arg, cmd, len, NULL, 0);
}

int pr_redis_cmd(pr_redis *r, pr_redis_cb cb, void *arg, const char *fmt, ...) {
  if (!fmt) return PR_EINVAL;
  int rc = accepting(r);
  if (rc) return rc;
  char *cmd = NULL;
  va_list ap;
  va_start(ap, fmt);
  int len = redisvFormatCommand(&cmd, fmt, ap);
  va_end(ap);
  return submit(r, cb, arg, cmd, len, NULL, 0);
}

static void script_sha(pr_redis_script *s) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s->body, strlen(s->body), md, &n, EVP_sha1(), NULL);
  for (unsigned i = 0; i < 20; i++) {
    s->sha[2 * i] = hex[md[i] >> 4];
    s->sha[2 * i + 1] = hex[md[i] & 15];
  }
  s->sha[40] = '\0';
}

int pr_redis_script_run(pr_redis *r, pr_redis_script *s, pr_redis_cb cb, void *arg, int nkeys,
                        const char **keys, int nargs, const char **args) {
  if (!s || !s->body || nkeys < 0 || nargs < 0 || (nkeys && !keys) || (nargs && !args))
    return PR_EINVAL;
  int rc = accepting(r);
  if (rc) return rc;
  if (!s->sha[0]) script_sha(s);
  int argc = 3 + nkeys + nargs;
  /* On the stack for the usual few keys and args (a heartbeat has 10). */
  const char *argv_small[32];
  size_t lens_small[32];
  const char **argv = argv_small;
  size_t *lens = lens_small;
  if ((size_t)argc > PR_ARRAY_LEN(argv_small)) {
    argv = pr_malloc((size_t)argc * sizeof(*argv));
    lens = pr_malloc((size_t)argc * sizeof(*lens));
  }
  char nk[16] = {(char)('0' + nkeys), '\0'};
  if (nkeys > 9) snprintf(nk, sizeof(nk), "%d", nkeys);
  argv[0] = "EVALSHA";
  argv[1] = s->sha;
  argv[2] = nk;
  for (int i = 0; i < nkeys; i++)
    argv[3 + i] = keys[i];
  for (int i = 0; i < nargs; i++)
    argv[3 + nkeys + i] = args[i];
  for (int i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  char *cmd = NULL;
  int len = format_argv(&cmd, argc, argv, lens);
  if (argv != argv_small) {
    pr_free(argv);
    pr_free(lens);
  }
  return submit(r, cb, arg, cmd, len, s, argc);
}
