/* Unit tests of the redis client (common/redis_*.c) against a real
 * redis-server started per test. */
#include "test_redis_server.h"

#include <errno.h>

static test_server srv;

static void setup(void) {
  test_loop_init();
  test_server_start(&srv, 0);
}

static void teardown(void) { test_server_cleanup(&srv); }

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

Test(redis, round_trip_argv_printf_and_errors) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){.name = "unit-test"}, &st);
  cr_assert(pr_redis_is_ready(r));

  const char *argv[] = {"SET", "bin", "a\0b\r\n"};
  const size_t lens[] = {3, 3, 5};
  test_reply set = {0}, get = {0}, name = {0}, bad = {0};
  cr_assert_eq(pr_redis_cmdargv(r, test_on_reply, &set, 3, argv, lens), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &get, "GET %s", "bin"), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &name, "CLIENT GETNAME"), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &bad, "NOSUCHCOMMAND %d", 1), 0);
  cr_assert(TEST_RUN_UNTIL(bad.calls, 3000));

  cr_assert_eq(set.calls, 1);
  cr_assert_eq(set.err, 0);
  cr_assert_str_eq(set.str, "OK");
  cr_assert_eq(get.err, 0);
  cr_assert_eq(get.len, 5);
  cr_assert(memcmp(get.str, "a\0b\r\n", 5) == 0, "binary value changed");
  cr_assert_str_eq(name.str, "unit-test");
  cr_assert_eq(bad.err, PR_EREDIS);
  cr_assert_eq(bad.type, REDIS_REPLY_ERROR);

  /* Push commands would break hiredis's reply pairing: refused. */
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &bad, "SUBSCRIBE x"), PR_EINVAL);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &bad, "monitor"), PR_EINVAL);

  pr_redis_stats s;
  pr_redis_get_stats(r, &s);
  cr_assert_eq(s.commands, 4);
  cr_assert_eq(s.errors, 1);
  cr_assert_eq(s.pending, 0);
  cr_assert_eq(s.timeouts, 0);
  pr_redis_free(r);
  test_loop_fini();
}

typedef struct {
  int n, out_of_order, errors;
} incr_ctx;

static void on_incr(pr_redis *r, redisReply *reply, int err, void *arg) {
  incr_ctx *c = arg;
  if (err || !reply || reply->type != REDIS_REPLY_INTEGER)
    c->errors++;
  else if (reply->integer != c->n + 1)
    c->out_of_order++;
  c->n++;
}

Test(redis, ten_thousand_pipelined_incr) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){.cmd_timeout_ms = 10000}, &st);
  incr_ctx c = {0};
  for (int i = 0; i < 10000; i++)
    cr_assert_eq(pr_redis_cmd(r, on_incr, &c, "INCR counter"), 0);
  pr_redis_stats s;
  pr_redis_get_stats(r, &s);
  cr_assert_eq(s.pending, 10000);
  cr_assert_eq(c.n, 0, "callbacks must not run inside the call");

  cr_assert(TEST_RUN_UNTIL(c.n == 10000, 15000), "only %d answered", c.n);
  cr_assert_eq(c.errors, 0);
  cr_assert_eq(c.out_of_order, 0);
  test_reply get = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &get, "GET counter"), 0);
  cr_assert(TEST_RUN_UNTIL(get.calls, 3000));
  cr_assert_str_eq(get.str, "10000");
  pr_redis_get_stats(r, &s);
  cr_assert_eq(s.commands, 10001);
  cr_assert_eq(s.pending, 0);
  pr_redis_free(r);
  test_loop_fini();
}

/* A burst is written while it is being queued, in chunks, not only when the
 * loop next polls: Redis can start on it at once. Replies still arrive only
 * through the loop. */
Test(redis, burst_is_written_before_the_loop_turn_ends) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){0}, &st);
  incr_ctx c = {0};
  for (int i = 0; i < 64; i++)
    cr_assert_eq(pr_redis_cmd(r, on_incr, &c, "INCR burst"), 0);
  /* The loop does not run here: whatever Redis executes was written early. */
  redisContext *peek = redisConnect("127.0.0.1", srv.port);
  cr_assert(peek && !peek->err);
  long long seen = 0;
  for (int i = 0; i < 200 && seen < 64; i++) {
    redisReply *rep = redisCommand(peek, "GET burst");
    seen = rep && rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
    if (rep) freeReplyObject(rep);
    if (seen < 64) test_sleep_ms(10);
  }
  redisFree(peek);
  cr_assert_eq(seen, 64, "Redis ran %lld of the 64 commands before the loop turn", seen);
  cr_assert_eq(c.n, 0, "no callback inside the calls");
  cr_assert(TEST_RUN_UNTIL(c.n == 64, 3000));
  cr_assert_eq(c.errors + c.out_of_order, 0);
  pr_redis_free(r);
  test_loop_fini();
}

/* "cmdstat_eval:calls=N," from INFO commandstats. */
typedef struct {
  int calls;
  long eval_calls;
} info_ctx;

static void on_info(pr_redis *r, redisReply *reply, int err, void *arg) {
  info_ctx *c = arg;
  c->calls++;
  c->eval_calls = 0;
  const char *p = reply && reply->str ? strstr(reply->str, "cmdstat_eval:calls=") : NULL;
  if (p) c->eval_calls = strtol(p + strlen("cmdstat_eval:calls="), NULL, 10);
}

static void run_script(pr_redis *r, pr_redis_script *s, const char *key, const char *arg,
                       const char *want) {
  test_reply t = {0};
  const char *keys[] = {key}, *args[] = {arg};
  cr_assert_eq(pr_redis_script(r, s, test_on_reply, &t, 1, keys, 1, args), 0);
  cr_assert(TEST_RUN_UNTIL(t.calls, 3000));
  cr_assert_eq(t.calls, 1);
  cr_assert_eq(t.err, 0, "script failed: %s", t.str);
  cr_assert_str_eq(t.str, want);
}

Test(redis, script_by_sha_and_after_script_flush) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){0}, &st);
  pr_redis_script s = {.name = "concat", .body = "return KEYS[1] .. ':' .. ARGV[1]"};

  run_script(r, &s, "k1", "v1", "k1:v1"); /* not loaded yet: NOSCRIPT path */
  cr_assert_eq(strlen(s.sha), 40);
  test_reply exists = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &exists, "SCRIPT EXISTS %s", s.sha), 0);
  cr_assert(TEST_RUN_UNTIL(exists.calls, 3000));
  cr_assert_eq(exists.type, REDIS_REPLY_ARRAY);

  run_script(r, &s, "k2", "v2", "k2:v2"); /* by SHA */
  test_reply flush = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &flush, "SCRIPT FLUSH"), 0);
  cr_assert(TEST_RUN_UNTIL(flush.calls, 3000));
  run_script(r, &s, "k3", "v3", "k3:v3"); /* NOSCRIPT again */
  run_script(r, &s, "k4", "v4", "k4:v4"); /* by SHA */

  /* The body went over the wire exactly twice (after each NOSCRIPT). */
  info_ctx info = {0};
  cr_assert_eq(pr_redis_cmd(r, on_info, &info, "INFO commandstats"), 0);
  cr_assert(TEST_RUN_UNTIL(info.calls, 3000));
  cr_assert_eq(info.eval_calls, 2);

  /* Our SHA is the server's. */
  test_reply load = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &load, "SCRIPT LOAD %s", s.body), 0);
  cr_assert(TEST_RUN_UNTIL(load.calls, 3000));
  cr_assert_str_eq(load.str, s.sha);

  /* A script error is an error reply. */
  pr_redis_script bad = {.name = "bad", .body = "return redis.call('NOPE')"};
  test_reply t = {0};
  cr_assert_eq(pr_redis_script(r, &bad, test_on_reply, &t, 0, NULL, 0, NULL), 0);
  cr_assert(TEST_RUN_UNTIL(t.calls, 3000));
  cr_assert_eq(t.err, PR_EREDIS);
  pr_redis_free(r);
  test_loop_fini();
}

typedef struct {
  int calls, err;
  const char *want;
  size_t want_len, len;
  int same;
} value_check;

static void on_value(pr_redis *r, redisReply *reply, int err, void *arg) {
  value_check *v = arg;
  v->calls++;
  v->err = err;
  v->len = reply && reply->type == REDIS_REPLY_STRING ? reply->len : (size_t)-1;
  v->same = v->len == v->want_len && memcmp(reply->str, v->want, v->len) == 0;
}

/* The command formatter: lengths at every digit boundary, empty and binary
 * values, argv with and without lens, and a script with more arguments than
 * fit on the formatter's stack (the heap path). */
Test(redis, formatting_round_trips_every_length) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){0}, &st);
  static const size_t sizes[] = {0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 100000};
  char *val = pr_malloc(100000);
  for (size_t i = 0; i < 100000; i++)
    val[i] = (char)(i * 7 + 3); /* every byte value, \r and \n included */
  for (size_t k = 0; k < PR_ARRAY_LEN(sizes); k++) {
    char key[32];
    snprintf(key, sizeof(key), "len:%zu", sizes[k]);
    const char *argv[] = {"SET", key, val};
    const size_t lens[] = {3, strlen(key), sizes[k]};
    test_reply set = {0};
    value_check get = {.want = val, .want_len = sizes[k]};
    cr_assert_eq(pr_redis_cmdargv(r, test_on_reply, &set, 3, argv, lens), 0);
    const char *gargv[] = {"GET", key}; /* lens NULL: strlen */
    cr_assert_eq(pr_redis_cmdargv(r, on_value, &get, 2, gargv, NULL), 0);
    cr_assert(TEST_RUN_UNTIL(get.calls, 3000));
    cr_assert_eq(set.err, 0);
    cr_assert_eq(get.err, 0);
    cr_assert_eq(get.len, sizes[k], "length %zu came back as %zu", sizes[k], get.len);
    cr_assert(get.same, "value of length %zu changed", sizes[k]);
  }
  pr_free(val);

  pr_redis_script cat = {.name = "cat",
                         .body = "local s = #KEYS .. '/' .. #ARGV\n"
                                 "for i = 1, #KEYS do s = s .. ' ' .. KEYS[i] end\n"
                                 "for i = 1, #ARGV do s = s .. ' ' .. ARGV[i] end\n"
                                 "return s"};
  const char *keys[20], *args[25];
  char kb[20][8], ab[25][8];
  char want[512];
  int n = snprintf(want, sizeof(want), "20/25");
  for (int i = 0; i < 20; i++) {
    snprintf(kb[i], sizeof(kb[i]), "k%d", i);
    keys[i] = kb[i];
    n += snprintf(want + n, sizeof(want) - (size_t)n, " %s", kb[i]);
  }
  for (int i = 0; i < 25; i++) {
    snprintf(ab[i], sizeof(ab[i]), i == 3 ? "" : "a%d", i);
    args[i] = ab[i];
  }
  for (int i = 0; i < 25; i++)
    n += snprintf(want + n, sizeof(want) - (size_t)n, " %s", ab[i]);
  for (int round = 0; round < 2; round++) { /* EVAL after NOSCRIPT, then EVALSHA */
    test_reply t = {0};
    cr_assert_eq(pr_redis_script(r, &cat, test_on_reply, &t, 20, keys, 25, args), 0);
    cr_assert(TEST_RUN_UNTIL(t.calls, 3000));
    cr_assert_eq(t.err, 0, "%s", t.str);
    cr_assert_str_eq(t.str, want);
  }
  pr_redis_free(r);
  test_loop_fini();
}

Test(redis, timeout_on_a_stuck_server_is_reported_once) {
  test_state st = {0};
  pr_redis *r =
      test_client(srv.addr, (pr_redis_opts){.cmd_timeout_ms = 200, .backoff_max_ms = 100}, &st);
  test_reply t = {0};
  uint64_t t0 = pr_now_mono_ms();
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &t, "DEBUG SLEEP 1"), 0);
  cr_assert(TEST_RUN_UNTIL(t.calls, 2000));
  uint64_t took = pr_now_mono_ms() - t0;
  cr_assert_eq(t.err, PR_ETIMEDOUT);
  cr_assert(took >= 195 && took < 800, "timed out after %llu ms", (unsigned long long)took);

  /* Past the sleep: nothing read for 3 x 200 ms, the client dropped the
   * connection and came back; the callback is never called again. */
  test_run_for(1500);
  cr_assert_eq(t.calls, 1);
  cr_assert(TEST_RUN_UNTIL(st.ready, 3000));
  cr_assert_eq(st.downs, 1);
  test_reply ping = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &ping, "PING"), 0);
  cr_assert(TEST_RUN_UNTIL(ping.calls, 2000));
  cr_assert_str_eq(ping.str, "PONG");
  pr_redis_stats s;
  pr_redis_get_stats(r, &s);
  cr_assert_eq(s.timeouts, 1);
  cr_assert_eq(s.reconnects, 1);
  pr_redis_free(r);
  test_loop_fini();
}

Test(redis, slow_reply_after_timeout_is_dropped_and_connection_kept) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){.cmd_timeout_ms = 200}, &st);
  test_reply slow = {0}, behind = {0}, after = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &slow, "DEBUG SLEEP 0.4"), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &behind, "PING"), 0);
  cr_assert(TEST_RUN_UNTIL(slow.calls && behind.calls, 2000));
  cr_assert_eq(slow.err, PR_ETIMEDOUT);
  cr_assert_eq(behind.err, PR_ETIMEDOUT);
  test_run_for(500); /* both late replies arrive and are dropped */
  cr_assert_eq(slow.calls, 1);
  cr_assert_eq(behind.calls, 1);
  cr_assert_eq(st.downs, 0, "one slow command must not drop the connection");
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &after, "ECHO %s", "still"), 0);
  cr_assert(TEST_RUN_UNTIL(after.calls, 2000));
  cr_assert_eq(after.err, 0);
  cr_assert_str_eq(after.str, "still");
  pr_redis_stats s;
  pr_redis_get_stats(r, &s);
  cr_assert_eq(s.timeouts, 2);
  cr_assert_eq(s.reconnects, 0);
  pr_redis_free(r);
  test_loop_fini();
}

Test(redis, server_killed_then_restarted_on_the_same_port) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){.backoff_max_ms = 100}, &st);
  test_reply b[3] = {{0}};
  for (int i = 0; i < 3; i++)
    cr_assert_eq(pr_redis_cmd(r, test_on_reply, &b[i], "BLPOP nothing-%d 0", i), 0);
  test_run_for(100); /* written and blocking on the server */
  cr_assert_eq(b[0].calls + b[1].calls + b[2].calls, 0);

  test_server_kill(&srv);
  cr_assert(TEST_RUN_UNTIL(b[0].calls && b[1].calls && b[2].calls && !st.ready, 3000));
  for (int i = 0; i < 3; i++)
    cr_assert_eq(b[i].err, PR_EUNAVAIL);
  cr_assert_eq(st.downs, 1);
  cr_assert_not(pr_redis_is_ready(r));
  test_reply t = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &t, "PING"), PR_EUNAVAIL);

  test_run_for(300); /* a few refused attempts */
  cr_assert_eq(st.ups, 1);
  test_server_start(&srv, srv.port);
  cr_assert(TEST_RUN_UNTIL(st.ready, 5000), "no reconnect");
  cr_assert_eq(st.ups, 2);

  test_reply set = {0}, get = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &set, "SET again %s", "yes"), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &get, "GET again"), 0);
  cr_assert(TEST_RUN_UNTIL(get.calls, 3000));
  cr_assert_str_eq(get.str, "yes");
  for (int i = 0; i < 3; i++)
    cr_assert_eq(b[i].calls, 1);
  pr_redis_stats s;
  pr_redis_get_stats(r, &s);
  cr_assert_eq(s.reconnects, 1);
  cr_assert_eq(s.errors, 3);
  pr_redis_free(r);
  test_loop_fini();
}

Test(redis, free_fails_pending_with_closed) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){0}, &st);
  test_reply b = {0}, p = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &b, "BLPOP nothing 0"), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &p, "PING"), 0);
  test_run_for(50);
  pr_redis_free(r);
  cr_assert_eq(b.calls, 1);
  cr_assert_eq(b.err, PR_ECLOSED);
  cr_assert_eq(p.calls, 1);
  cr_assert_eq(p.err, PR_ECLOSED);
  test_loop_fini();
  cr_assert_eq(b.calls, 1);
  cr_assert_eq(st.downs, 0, "no state callback after free");
}

static void free_from_callback(pr_redis *r, redisReply *reply, int err, void *arg) {
  int *n = arg;
  (*n)++;
  pr_redis_free(r);
}

Test(redis, free_inside_a_callback) {
  test_state st = {0};
  pr_redis *r = test_client(srv.addr, (pr_redis_opts){0}, &st);
  int first = 0;
  test_reply second = {0};
  cr_assert_eq(pr_redis_cmd(r, free_from_callback, &first, "PING"), 0);
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &second, "PING"), 0);
  cr_assert(TEST_RUN_UNTIL(first && second.calls, 2000));
  cr_assert_eq(second.err, PR_ECLOSED);
  test_loop_fini();
  cr_assert_eq(first, 1);
  cr_assert_eq(second.calls, 1);
}

Test(redis, bad_address_is_einval) {
  const char *bad[] = {"",
                       "nonsense",
                       "127.0.0.1",
                       "127.0.0.1:",
                       "127.0.0.1:0",
                       "127.0.0.1:70000",
                       "127.0.0.1:12ab",
                       ":6379",
                       "http://127.0.0.1:6379",
                       "redis://",
                       "redis://user@127.0.0.1:6379",
                       "::1:6379",
                       "[::1:6379"};
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++) {
    pr_redis *r = NULL;
    pr_redis_opts o = {.addr = bad[i]};
    cr_assert_eq(pr_redis_new(&test_loop, &o, &r), PR_EINVAL, "accepted \"%s\"", bad[i]);
    cr_assert_null(r);
  }
  pr_redis *r = NULL;
  pr_redis_opts o = {.addr = NULL};
  cr_assert_eq(pr_redis_new(&test_loop, &o, &r), PR_EINVAL);
  o = (pr_redis_opts){.addr = srv.addr, .cmd_timeout_ms = -1};
  cr_assert_eq(pr_redis_new(&test_loop, &o, &r), PR_EINVAL);

  /* The URL form works. */
  char url[80];
  snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
  test_state st = {0};
  r = test_client(url, (pr_redis_opts){0}, &st);
  cr_assert(pr_redis_is_ready(r));
  pr_redis_free(r);
  test_loop_fini();
}

Test(redis, connect_timeout_when_nothing_answers) {
  /* A socket that accepts TCP (the backlog) but never answers the PING. */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
  cr_assert(listen(fd, 128) == 0);
  cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));

  test_state st = {0};
  pr_redis *r = NULL;
  pr_redis_opts o = {.addr = addr, .connect_timeout_ms = 100, .backoff_max_ms = 50};
  cr_assert_eq(pr_redis_new(&test_loop, &o, &r), 0);
  pr_redis_on_state(r, test_on_state, &st);
  test_run_for(1000);
  cr_assert_eq(st.ups, 0);
  cr_assert_not(pr_redis_is_ready(r));
  test_reply t = {0};
  cr_assert_eq(pr_redis_cmd(r, test_on_reply, &t, "PING"), PR_EUNAVAIL);

  int attempts = 0;
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) break;
    attempts++;
    close(c);
  }
  cr_assert(errno == EAGAIN || errno == EWOULDBLOCK);
  /* About 1000 / (100 + 25..50): one attempt only without the timeout. */
  cr_assert(attempts >= 4 && attempts <= 12, "%d attempts", attempts);
  close(fd);
  pr_redis_free(r);
  test_loop_fini();
}
