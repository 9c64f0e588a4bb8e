/* workers.c: forked load processes (each under the per-process fd limit)
 * that report progress to the parent as text lines through a pipe, and stop
 * when the parent closes their control pipe. */
#include "base.h"
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int bench_workers_start(bench_worker *w, int n, bench_worker_fn fn, void *arg) {
  fflush(stdout);
  fflush(stderr);
  for (int i = 0; i < n; i++) {
    int rep[2], ctl[2];
    if (pipe(rep) != 0) return PR_EIO;
    if (pipe(ctl) != 0) {
      close(rep[0]);
      close(rep[1]);
      return PR_EIO;
    }
    pid_t pid = fork();
    if (pid < 0) return PR_EIO;
    if (pid == 0) {
      close(rep[0]);
      close(ctl[1]);
      for (int j = 0; j < i; j++) { /* siblings' pipes are not ours */
        close(w[j].report_fd);
        close(w[j].control_fd);
      }
      _exit(fn(i, n, rep[1], ctl[0], arg) == 0 ? 0 : 1);
    }
    close(rep[1]);
    close(ctl[0]);
    w[i] = (bench_worker){.pid = pid, .report_fd = rep[0], .control_fd = ctl[1]};
  }
  return 0;
}

int bench_workers_poll(bench_worker *w, int n, int timeout_ms,
                       void (*cb)(int idx, const char *line, void *arg), void *arg) {
  struct pollfd pf[256];
  int map[256], m = 0;
  for (int i = 0; i < n && m < 256; i++)
    if (w[i].report_fd >= 0) {
      pf[m] = (struct pollfd){.fd = w[i].report_fd, .events = POLLIN};
      map[m++] = i;
    }
  if (m == 0) return 0;
  if (poll(pf, (nfds_t)m, timeout_ms) <= 0) return m;
  int open = m;
  for (int k = 0; k < m; k++) {
    if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    bench_worker *x = &w[map[k]];
    char buf[4096];
    ssize_t r = read(x->report_fd, buf, sizeof(buf));
    if (r <= 0) {
      close(x->report_fd);
      x->report_fd = -1;
      open--;
      continue;
    }
    pr_buf_append(&x->line, buf, (size_t)r);
    char *nl;
    while (x->line.len && (nl = memchr(x->line.data, '\n', x->line.len))) {
      *nl = '\0';
      cb(map[k], x->line.data, arg);
      pr_buf_consume(&x->line, (size_t)(nl - x->line.data) + 1);
    }
  }
  return open;
}

int bench_workers_stop(bench_worker *w, int n) {
  int failed = 0;
  for (int i = 0; i < n; i++)
    if (w[i].control_fd >= 0) {
      close(w[i].control_fd);
      w[i].control_fd = -1;
    }
  for (int i = 0; i < n; i++) {
    int st = 0;
    if (waitpid(w[i].pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
    if (w[i].report_fd >= 0) close(w[i].report_fd);
    w[i].report_fd = -1;
    pr_buf_free(&w[i].line);
  }
  return failed;
}

void bench_report(int fd, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof(line) - 2) n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  ssize_t w = write(fd, line, (size_t)n);
  (void)w;
}
