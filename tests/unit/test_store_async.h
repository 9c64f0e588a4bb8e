/* test_store_async.h: a libuv loop, a pr_redis client and a pr_store on the
 * test's redis-server (test_store_server.h), and run_until() to drive the loop
 * until a callback set a flag (or 5 s passed, which fails the test). */
#ifndef TEST_STORE_ASYNC_H
#define TEST_STORE_ASYNC_H

#include <criterion/criterion.h>
#include <uv.h>

#include "base.h"
#include "redis.h"
#include "store.h"
#include "test_store_server.h"

static uv_loop_t g_loop;
static pr_redis *g_r;
static pr_store *g_st;

static void tick_cb(uv_timer_t *t) { (void)t; }

/* Runs the loop until *flag is set; fails the test after 5 s. */
static void run_until(const int *flag) {
  uv_timer_t tick; /* wakes the loop so that the deadline is checked */
  uv_timer_init(&g_loop, &tick);
  uv_timer_start(&tick, tick_cb, 10, 10);
  uint64_t deadline = pr_now_mono_ms() + 5000;
  while (!*flag && pr_now_mono_ms() < deadline)
    uv_run(&g_loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  cr_assert(*flag, "timed out waiting for a callback");
}

static void on_ready(pr_redis *r, int ready, void *arg) {
  (void)r;
  if (ready) *(int *)arg = 1;
}

/* Starts redis-server, the loop, the client (waits until ready) and the store. */
static void async_setup(const pr_store_opts *o) {
  cr_assert_eq(test_redis_start(), 0, "redis-server did not start");
  cr_assert_eq(uv_loop_init(&g_loop), 0);
  pr_redis_opts ro = {.addr = g_redis.addr, .name = "store-test"};
  cr_assert_eq(pr_redis_new(&g_loop, &ro, &g_r), 0);
  int ready = 0;
  pr_redis_on_state(g_r, on_ready, &ready);
  run_until(&ready);
  cr_assert_eq(pr_store_new(g_r, o, &g_st), 0);
}

static void async_teardown(void) {
  if (g_r) {
    pr_redis_free(g_r);
    uv_run(&g_loop, UV_RUN_DEFAULT); /* until the client's handles are closed */
    g_r = NULL;
  }
  pr_store_free(g_st);
  g_st = NULL;
  uv_loop_close(&g_loop);
  test_redis_stop();
}

#endif
