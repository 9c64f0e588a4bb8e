/* test_redis_server.h: a real redis-server for the redis tests, on a free
 * loopback port in a temp dir, stopped by pid; plus loop helpers. Included by
 * tests/unit/test_redis_*.c only (static functions). */
#ifndef TEST_REDIS_SERVER_H
#define TEST_REDIS_SERVER_H

#include "base.h"
#include "redis.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <uv.h>

typedef struct {
  pid_t pid;
  int port;
  char dir[64];
  char addr[64];
} test_server;

/* A port the kernel just gave out (the small race with other processes is
 * accepted: redis-server cannot be told to pick one). */
static int test_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  cr_assert(fd >= 0);
  cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
  cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void test_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Blocking PING: 1 when the server on `port` answers PONG. */
static int test_server_answers(int port) {
  struct timeval tv = {0, 200000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  int ok = 0;
  if (c && !c->err) {
    redisReply *rep = redisCommand(c, "PING");
    ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep) freeReplyObject(rep);
  }
  if (c) redisFree(c);
  return ok;
}

/* Starts redis-server on s->port (0: a free one) and waits until it answers. */
static void test_server_start(test_server *s, int port) {
  if (!s->dir[0]) {
    strcpy(s->dir, "/tmp/pr-redis-test-XXXXXX");
    cr_assert(mkdtemp(s->dir) != NULL);
  }
  s->port = port ? port : test_free_port();
  snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
  char portstr[16];
  snprintf(portstr, sizeof(portstr), "%d", s->port);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    /* Dies with the test process, even if that one crashes. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", s->dir, "--daemonize", "no", "--enable-debug-command",
           "local", "--loglevel", "warning", (char *)NULL);
    _exit(127);
  }
  s->pid = pid;
  for (int i = 0; i < 500; i++) {
    if (test_server_answers(s->port)) return;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      s->pid = 0;
      cr_assert_fail("redis-server exited early (port %d taken?)", s->port);
    }
    test_sleep_ms(10);
  }
  cr_assert_fail("redis-server did not answer on port %d", s->port);
}

/* Kills the server (SIGKILL: no goodbye to the clients) and reaps it. */
static void test_server_kill(test_server *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

static void test_server_cleanup(test_server *s) {
  test_server_kill(s);
  if (!s->dir[0]) return;
  DIR *d = opendir(s->dir);
  if (d) {
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(s->dir);
  s->dir[0] = '\0';
}

/* ---- loop helpers ---------------------------------------------------------- */

static uv_loop_t test_loop;
static uv_timer_t test_wakeup;

static void test_on_wakeup(uv_timer_t *t) {}

static void test_loop_init(void) {
  cr_assert(uv_loop_init(&test_loop) == 0);
  uv_timer_init(&test_loop, &test_wakeup);
}

/* Runs the loop until cond holds or ms pass (a 5 ms wakeup keeps it from
 * blocking forever); evaluates to cond. */
#define TEST_RUN_UNTIL(cond, ms)                                                                   \
  ({                                                                                               \
    uint64_t end_ = pr_now_mono_ms() + (ms);                                                       \
    uv_timer_start(&test_wakeup, test_on_wakeup, 5, 5);                                            \
    while (!(cond) && pr_now_mono_ms() < end_)                                                     \
      uv_run(&test_loop, UV_RUN_ONCE);                                                             \
    uv_timer_stop(&test_wakeup);                                                                   \
    (cond);                                                                                        \
  })

/* Runs the loop for ms (to see that something does NOT happen). */
static void test_run_for(int ms) {
  uint64_t end = pr_now_mono_ms() + (uint64_t)ms;
  uv_timer_start(&test_wakeup, test_on_wakeup, 5, 5);
  while (pr_now_mono_ms() < end)
    uv_run(&test_loop, UV_RUN_ONCE);
  uv_timer_stop(&test_wakeup);
}

/* Closes what is left (the clients must have been freed) and checks that
 * the clients let go of every handle. */
static void test_loop_fini(void) {
  uv_close((uv_handle_t *)&test_wakeup, NULL);
  uv_run(&test_loop, UV_RUN_DEFAULT);
  cr_expect(uv_loop_close(&test_loop) == 0, "a handle was left open");
}

/* A client with a state counter, waiting until it is ready. */
typedef struct {
  int ready;
  int ups, downs;
} test_state;

static void test_on_state(pr_redis *r, int ready, void *arg) {
  test_state *st = arg;
  st->ready = ready;
  if (ready)
    st->ups++;
  else
    st->downs++;
}

static pr_redis *test_client(const char *addr, pr_redis_opts o, test_state *st) {
  pr_redis *r = NULL;
  o.addr = addr;
  cr_assert(pr_redis_new(&test_loop, &o, &r) == 0);
  pr_redis_on_state(r, test_on_state, st);
  cr_assert(TEST_RUN_UNTIL(st->ready, 5000), "client not ready");
  return r;
}

/* One reply recorded by a test callback. */
typedef struct {
  int calls;
  int err;
  int type;
  long long integer;
  char str[256];
  size_t len;
} test_reply;

static void test_on_reply(pr_redis *r, redisReply *reply, int err, void *arg) {
  test_reply *t = arg;
  t->calls++;
  t->err = err;
  t->type = reply ? reply->type : -1;
  t->integer = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
  t->len = 0;
  if (reply && reply->str) {
    t->len = reply->len < sizeof(t->str) ? reply->len : sizeof(t->str) - 1;
    memcpy(t->str, reply->str, t->len);
  }
  t->str[t->len] = '\0';
}

#endif
