/* store_pipe.h (private to the store module): a batch of Redis commands sent
 * together (pipelined) whose replies are copied into plain results, and one
 * callback when the last reply arrived. store.c and store_graph.c build their
 * reads and two-round-trip graph queries on it.
 *
 *   pr_pipe *p = pr_pipe_new(r, done, ctx);
 *   for (...) if ((rc = pr_pipe_cmd(p, argc, argv)) != 0) break;
 *   return pr_pipe_seal(p, rc);
 *
 * Ownership: the pipe frees itself (and its results) after `done` returns;
 * `done` may start another pipe. If pr_pipe_seal returns an error, no command
 * was sent, the pipe is freed and `done` is never called. */
#ifndef PR_STORE_PIPE_H
#define PR_STORE_PIPE_H

#include "redis.h"

#include <stddef.h>

/* One reply: an array (elements as strings, NULL for nil), a string (n = 1),
 * an integer (num) or nil (n = 0). A SSCAN reply gives `cursor` and the
 * members as v. The strings of v live in v's own allocation: release a result
 * only with pr_pipe_res_free, never element by element. */
typedef struct {
  char **v;
  size_t n;
  long long num;
  char *cursor;
} pr_pipe_res;

typedef struct pr_pipe pr_pipe;
/* err: the first error of the batch (0 if every command succeeded). */
typedef void (*pr_pipe_done)(pr_pipe *p, int err, void *ctx);

pr_pipe *pr_pipe_new(pr_redis *r, pr_pipe_done done, void *ctx);
/* Sends one command (NUL-terminated args); its result is slot number
 * (commands sent before it). Returns 0 or the client's error. */
int pr_pipe_cmd(pr_pipe *p, int argc, const char **argv);
/* Ends the batch; `rc` is the error that stopped it, if any (see above). */
int pr_pipe_seal(pr_pipe *p, int rc);
size_t pr_pipe_count(const pr_pipe *p);
const pr_pipe_res *pr_pipe_result(const pr_pipe *p, size_t i);
/* Moves result i out of the pipe (the slot is left empty): the caller then
 * owns it and releases it with pr_pipe_res_free. */
pr_pipe_res pr_pipe_take(pr_pipe *p, size_t i);
void pr_pipe_res_free(pr_pipe_res *res);

#endif
