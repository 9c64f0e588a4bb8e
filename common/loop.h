/* loop.h: helpers around the libuv loop shared by every service.
 *
 * pr_loop_on_signals() calls `cb` once on the first SIGTERM or SIGINT (the
 * service then starts its drain); a second signal exits at once with status 1. */
#ifndef PR_LOOP_H
#define PR_LOOP_H

#include <uv.h>

typedef void (*pr_signal_cb)(void *arg);

/* Installs the handlers on `loop`. The handles are unref'd: they do not keep
 * the loop alive. Returns 0 or a PR_E* code. */
int pr_loop_on_signals(uv_loop_t *loop, pr_signal_cb cb, void *arg);
/* Closes the signal handles (part of a clean shutdown). */
void pr_loop_signals_close(void);
/* Closes every handle still open on `loop` and runs it until it is empty;
 * returns uv_loop_close()'s result. */
int pr_loop_close_all(uv_loop_t *loop);
/* Ignores SIGPIPE (writes to closed sockets return EPIPE instead). */
void pr_loop_ignore_sigpipe(void);

#endif
