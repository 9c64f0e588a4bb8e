/* util.c: helpers every scenario uses: the clock, quantiles, /proc readers
 * (RSS, the pid behind a port), lists, tokens, Redis checks and result files. */
#include "auth.h"
#include "base.h"
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_self_cost_get(bench_self_cost *out) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  out->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  out->reads = -1;
  FILE *f = fopen("/proc/self/io", "r");
  if (!f) return;
  char line[128];
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "syscr: %lld", &out->reads) == 1) break;
  fclose(f);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_quantile(double *v, size_t n, double q) {
  if (n == 0) return 0;
  qsort(v, n, sizeof(*v), cmp_double);
  size_t i = (size_t)(q * (double)n);
  if (i >= n) i = n - 1;
  return v[i];
}

long bench_rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kib = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

/* The inode of a socket listening on port (state 0A), or 0. */
static unsigned long listen_inode(const char *file, int port) {
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  char line[512];
  unsigned long inode = 0;
  while (!inode && fgets(line, sizeof(line), f)) {
    char local[128];
    unsigned st;
    unsigned long ino;
    if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*d %*d %lu", local, &st, &ino) != 3) continue;
    char *colon = strrchr(local, ':');
    if (colon && st == 0x0A && (int)strtol(colon + 1, NULL, 16) == port) inode = ino;
  }
  fclose(f);
  return inode;
}

pid_t bench_pid_of_port(int port) {
  unsigned long inode = listen_inode("/proc/net/tcp", port);
  if (!inode) inode = listen_inode("/proc/net/tcp6", port);
  if (!inode) return -1;
  char want[64];
  snprintf(want, sizeof(want), "socket:[%lu]", inode);
  DIR *proc = opendir("/proc");
  if (!proc) return -1;
  pid_t found = -1;
  struct dirent *d;
  while (found < 0 && (d = readdir(proc))) {
    if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
    char dir[300];
    snprintf(dir, sizeof(dir), "/proc/%s/fd", d->d_name);
    DIR *fds = opendir(dir);
    if (!fds) continue;
    struct dirent *e;
    while ((e = readdir(fds))) {
      char p[600], target[128];
      snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
      ssize_t n = readlink(p, target, sizeof(target) - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (strcmp(target, want) == 0) {
        found = (pid_t)atoi(d->d_name);
        break;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  return found;
}

size_t bench_split(const char *list, char ***out) {
  size_t n = 0;
  char **v = NULL;
  for (const char *p = list ? list : ""; *p;) {
    while (*p == ',' || *p == ' ')
      p++;
    const char *e = p;
    while (*e && *e != ',')
      e++;
    if (e > p) {
      v = pr_realloc(v, (n + 1) * sizeof(*v));
      v[n++] = pr_strndup(p, (size_t)(e - p));
    }
    p = e;
  }
  *out = v;
  return n;
}

size_t bench_source_addrs(const char *spec, char ***out) {
  unsigned a[4], b[4];
  if (spec &&
      sscanf(spec, "%u.%u.%u.%u-%u.%u.%u.%u", &a[0], &a[1], &a[2], &a[3], &b[0], &b[1], &b[2],
             &b[3]) == 8 &&
      a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] <= b[3]) {
    size_t n = b[3] - a[3] + 1;
    char **v = pr_malloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
      char s[32];
      snprintf(s, sizeof(s), "%u.%u.%u.%u", a[0], a[1], a[2], a[3] + (unsigned)i);
      v[i] = pr_strdup(s);
    }
    *out = v;
    return n;
  }
  size_t n = bench_split(spec, out);
  if (n == 0) {
    *out = pr_calloc(1, sizeof(char *));
    n = 1;
  }
  return n;
}

void bench_free_list(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    pr_free(v[i]);
  pr_free(v);
}

char *bench_token(const bench_config *cfg, const char *user) {
  char *tok = NULL;
  if (!cfg->common.jwt_secret || pr_auth_mint_hs256(cfg->common.jwt_secret, user, 0, 86400, &tok))
    return NULL;
  return tok;
}

redisContext *bench_redis(const bench_config *cfg) {
  char host[256];
  int port = 6379;
  const char *a = cfg->common.redis ? cfg->common.redis : "127.0.0.1:6379";
  const char *colon = strrchr(a, ':');
  size_t hl = colon ? (size_t)(colon - a) : strlen(a);
  if (hl >= sizeof(host)) hl = sizeof(host) - 1;
  memcpy(host, a, hl);
  host[hl] = '\0';
  if (colon) port = atoi(colon + 1);
  redisContext *rc = redisConnect(host, port);
  if (!rc || rc->err) {
    fprintf(stderr, "bench: cannot connect to redis %s: %s\n", a, rc ? rc->errstr : "oom");
    if (rc) redisFree(rc);
    return NULL;
  }
  return rc;
}

long long bench_registered(redisContext *rc) {
  redisReply *m = redisCommand(rc, "SMEMBERS insts");
  long long sum = 0;
  for (size_t i = 0; m && m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
    redisReply *r = redisCommand(rc, "SCARD ic:%s", m->element[i]->str);
    if (r && r->type == REDIS_REPLY_INTEGER) sum += r->integer;
    if (r) freeReplyObject(r);
  }
  if (m) freeReplyObject(m);
  return sum;
}

long long bench_redis_script_calls(redisContext *rc) {
  redisReply *r = redisCommand(rc, "INFO commandstats");
  long long total = 0;
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *names[] = {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="};
    for (size_t i = 0; i < PR_ARRAY_LEN(names); i++) {
      const char *p = strstr(r->str, names[i]);
      if (p) total += atoll(p + strlen(names[i]));
    }
  }
  if (r) freeReplyObject(r);
  return total;
}

void bench_stamp(char out[32]) {
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(out, 32, "%Y%m%d-%H%M%S", &tm);
}

int bench_write_result(const bench_config *cfg, const char *scenario, const char *ext,
                       const pr_buf *b, const char *stamp) {
  const char *dir = cfg->out && *cfg->out ? cfg->out : "bench/results";
  mkdir(dir, 0755);
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s%s%s-%s.%s", dir, scenario, cfg->label ? "-" : "",
           cfg->label ? cfg->label : "", stamp, ext);
  FILE *f = fopen(path, "w");
  if (!f || fwrite(b->data, 1, b->len, f) != b->len) {
    fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
    if (f) fclose(f);
    return PR_EIO;
  }
  fclose(f);
  printf("wrote %s\n", path);
  return 0;
}

void bench_json_machine(pr_buf *b) {
  struct utsname u;
  uname(&u);
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  pr_buf_printf(b, "\"machine\":{\"nproc\":%ld,\"mem_kib\":%lld,\"kernel\":\"%s\"}",
                sysconf(_SC_NPROCESSORS_ONLN), (long long)pages * psz / 1024, u.release);
}
