/* test_store_server.h: a throwaway redis-server for the store tests, on a free
 * loopback port in a temporary directory. Started in a test's init and
 * stopped (by pid) in its fini, which Criterion runs even after a failed
 * assertion; the server also dies with the test process (PDEATHSIG) if the
 * test crashes. Included by the test_store_*.c files only. */
#ifndef TEST_STORE_SERVER_H
#define TEST_STORE_SERVER_H

#include <arpa/inet.h>
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

typedef struct {
  pid_t pid;
  int port;
  char dir[64];
  char addr[32];
} test_redis;

static test_redis g_redis;

/* A port nobody listens on right now: bind port 0, read it, close. */
static int test_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  int port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static void test_redis_stop(void) {
  if (g_redis.pid > 0) {
    kill(g_redis.pid, SIGTERM);
    waitpid(g_redis.pid, NULL, 0);
    g_redis.pid = 0;
  }
  if (g_redis.dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_redis.dir);
    if (system(cmd) != 0) { /* a leftover temp dir is harmless */
    }
    g_redis.dir[0] = '\0';
  }
}

/* Starts the server and waits until it answers PING (up to 5 s). 0 or -1. */
static int test_redis_start(void) {
  memset(&g_redis, 0, sizeof(g_redis));
  snprintf(g_redis.dir, sizeof(g_redis.dir), "/tmp/pr-store-test-XXXXXX");
  if (!mkdtemp(g_redis.dir)) return -1;
  for (int attempt = 0; attempt < 5; attempt++) {
    g_redis.port = test_free_port();
    if (g_redis.port <= 0) return -1;
    char port[16];
    snprintf(port, sizeof(port), "%d", g_redis.port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);
      if (!freopen("/dev/null", "w", stdout)) _exit(1);
      execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", g_redis.dir, (char *)NULL);
      _exit(127);
    }
    g_redis.pid = pid;
    snprintf(g_redis.addr, sizeof(g_redis.addr), "127.0.0.1:%d", g_redis.port);
    for (int i = 0; i < 500; i++) {
      if (waitpid(pid, NULL, WNOHANG) == pid) { /* exited: port taken meanwhile? retry */
        g_redis.pid = 0;
        break;
      }
      redisContext *c = redisConnect("127.0.0.1", g_redis.port);
      if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        redisFree(c);
        if (ok) return 0;
      } else if (c) {
        redisFree(c);
      }
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    if (g_redis.pid > 0) {
      kill(g_redis.pid, SIGTERM);
      waitpid(g_redis.pid, NULL, 0);
      g_redis.pid = 0;
    }
  }
  return -1;
}

/* A plain synchronous connection to the test server (caller frees). */
static inline redisContext *test_redis_connect(void) {
  redisContext *c = redisConnect("127.0.0.1", g_redis.port);
  if (!c || c->err) {
    if (c) redisFree(c);
    return NULL;
  }
  return c;
}

#endif
