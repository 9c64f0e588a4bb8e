/* base_loop.c: signal handling and loop teardown for the services. */
#include "loop.h"
#include "base.h"

#include <signal.h>
#include <stdlib.h>

static uv_signal_t sig_term, sig_int;
static pr_signal_cb signal_cb;
static void *signal_arg;
static int signalled;

static void on_signal(uv_signal_t *h, int signum) {
  if (signalled++) _Exit(1);
  if (signal_cb) signal_cb(signal_arg);
}

int pr_loop_on_signals(uv_loop_t *loop, pr_signal_cb cb, void *arg) {
  signal_cb = cb;
  signal_arg = arg;
  if (uv_signal_init(loop, &sig_term) || uv_signal_init(loop, &sig_int)) return PR_EIO;
  if (uv_signal_start(&sig_term, on_signal, SIGTERM) ||
      uv_signal_start(&sig_int, on_signal, SIGINT))
    return PR_EIO;
  uv_unref((uv_handle_t *)&sig_term);
  uv_unref((uv_handle_t *)&sig_int);
  return 0;
}

void pr_loop_signals_close(void) {
  if (!uv_is_closing((uv_handle_t *)&sig_term)) uv_close((uv_handle_t *)&sig_term, NULL);
  if (!uv_is_closing((uv_handle_t *)&sig_int)) uv_close((uv_handle_t *)&sig_int, NULL);
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int pr_loop_close_all(uv_loop_t *loop) {
  uv_walk(loop, close_walk, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

void pr_loop_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }
