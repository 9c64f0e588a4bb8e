/* Unit tests of the redis client's pub/sub (common/redis_sub.c) against a
 * real redis-server, restarted on the same port to check resubscription. */
#include "test_redis_server.h"

static test_server srv;

static void setup(void) {
  test_loop_init();
  test_server_start(&srv, 0);
}

static void teardown(void) { test_server_cleanup(&srv); }

TestSuite(redis_pubsub, .init = setup, .fini = teardown, .timeout = 60);

typedef struct {
  int count;
  char channel[64];
  char data[64];
  size_t len;
} msgs;

static void on_msg(pr_redis *r, const char *channel, const char *data, size_t len, void *arg) {
  msgs *m = arg;
  m->count++;
  snprintf(m->channel, sizeof(m->channel), "%s", channel);
  m->len = len < sizeof(m->data) ? len : sizeof(m->data);
  memcpy(m->data, data, m->len);
}

/* PUBLISH channel data (binary), returns the number of receivers. */
static long long publish(pr_redis *pub, const char *channel, const char *data, size_t len) {
  const char *argv[] = {"PUBLISH", channel, data};
  const size_t lens[] = {7, strlen(channel), len};
  test_reply t = {0};
  cr_assert_eq(pr_redis_cmdargv(pub, test_on_reply, &t, 3, argv, lens), 0);
  cr_assert(TEST_RUN_UNTIL(t.calls, 3000));
  cr_assert_eq(t.err, 0);
  return t.integer;
}

Test(redis_pubsub, messages_and_resubscribe_after_restart) {
  test_state pst = {0}, sst = {0};
  pr_redis *pub = test_client(srv.addr, (pr_redis_opts){.backoff_max_ms = 100}, &pst);

  /* Subscribed before the first connection: readiness includes the
   * confirmations, so the first PUBLISH after ready reaches it. */
  msgs m = {0};
  pr_redis *sub = NULL;
  pr_redis_opts o = {.addr = srv.addr, .backoff_max_ms = 100, .name = "sub"};
  cr_assert_eq(pr_redis_new(&test_loop, &o, &sub), 0);
  pr_redis_on_state(sub, test_on_state, &sst);
  pr_redis_on_message(sub, on_msg, &m);
  cr_assert_eq(pr_redis_subscribe(sub, "presence:ch"), 0);
  cr_assert_eq(pr_redis_subscribe(sub, "presence:ch"), 0); /* already: no-op */
  cr_assert_eq(pr_redis_psubscribe(sub, "ev:*"), 0);
  cr_assert_eq(pr_redis_subscribe(sub, ""), PR_EINVAL);
  cr_assert(TEST_RUN_UNTIL(sst.ready, 5000));

  cr_assert_eq(publish(pub, "presence:ch", "he\0llo", 6), 1);
  cr_assert(TEST_RUN_UNTIL(m.count == 1, 2000));
  cr_assert_str_eq(m.channel, "presence:ch");
  cr_assert_eq(m.len, 6);
  cr_assert(memcmp(m.data, "he\0llo", 6) == 0);

  cr_assert_eq(publish(pub, "ev:user:1", "x", 1), 1);
  cr_assert(TEST_RUN_UNTIL(m.count == 2, 2000));
  cr_assert_str_eq(m.channel, "ev:user:1", "pmessage gives the actual channel");

  /* Regular commands are refused on a subscriber. */
  test_reply t = {0};
  cr_assert_eq(pr_redis_cmd(sub, test_on_reply, &t, "PING"), PR_EINVAL);

  /* Restart on the same port: both come back, the subscriber subscribed. */
  test_server_kill(&srv);
  cr_assert(TEST_RUN_UNTIL(!sst.ready && !pst.ready, 3000));
  test_server_start(&srv, srv.port);
  cr_assert(TEST_RUN_UNTIL(sst.ready && pst.ready, 5000));
  cr_assert_eq(publish(pub, "presence:ch", "again", 5), 1);
  cr_assert(TEST_RUN_UNTIL(m.count == 3, 2000));
  cr_assert_str_eq(m.channel, "presence:ch");
  cr_assert_eq(m.len, 5);
  cr_assert(memcmp(m.data, "again", 5) == 0);
  cr_assert_eq(publish(pub, "ev:user:2", "y", 1), 1);
  cr_assert(TEST_RUN_UNTIL(m.count == 4, 2000));
  cr_assert_str_eq(m.channel, "ev:user:2");

  /* Unsubscribe: no receiver once the server has processed it. */
  cr_assert_eq(pr_redis_unsubscribe(sub, "nope"), PR_ENOTFOUND);
  cr_assert_eq(pr_redis_unsubscribe(sub, "presence:ch"), 0);
  cr_assert_eq(pr_redis_punsubscribe(sub, "ev:*"), 0);
  test_run_for(100);
  cr_assert_eq(publish(pub, "presence:ch", "gone", 4), 0);
  cr_assert_eq(publish(pub, "ev:user:3", "gone", 4), 0);
  test_run_for(100);
  cr_assert_eq(m.count, 4);

  /* And after another restart the empty set stays empty, and a new
   * subscription made while down is made on reconnect. */
  test_server_kill(&srv);
  cr_assert(TEST_RUN_UNTIL(!sst.ready, 3000));
  cr_assert_eq(pr_redis_subscribe(sub, "later"), 0);
  test_server_start(&srv, srv.port);
  cr_assert(TEST_RUN_UNTIL(sst.ready && pst.ready, 5000));
  cr_assert_eq(publish(pub, "presence:ch", "gone", 4), 0);
  cr_assert_eq(publish(pub, "later", "hi", 2), 1);
  cr_assert(TEST_RUN_UNTIL(m.count == 5, 2000));
  cr_assert_str_eq(m.channel, "later");

  pr_redis_free(sub);
  pr_redis_free(pub);
  test_loop_fini();
}
