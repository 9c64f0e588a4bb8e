/* watch.c: presence-watch, a command-line client on the C client library.
 * It connects as one device, prints every event as one JSON line on stdout,
 * and takes commands on stdin ("status idle", "subscribe team", "ping",
 * "close"), so that a person, a script or a test can drive a real client. */
#include "pr_client.h"

#include "base.h"
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *url;
  char *token;
  char *device;
  int reconnect;
} watch_opts;

static const pr_setting table[] = {
    {"url", PR_SET_STRING, "127.0.0.1:8081", 0, 0, NULL, NULL, offsetof(watch_opts, url),
     "presence-receive address ip:port"},
    {"token", PR_SET_STRING, NULL, 0, 0, NULL, "PRESENCE_TOKEN", offsetof(watch_opts, token),
     "the user's JWT (presencectl token --user U)"},
    {"device", PR_SET_STRING, NULL, 0, 0, NULL, NULL, offsetof(watch_opts, device),
     "device id (default: the server makes one)"},
    {"reconnect", PR_SET_BOOL, "false", 0, 0, NULL, NULL, offsetof(watch_opts, reconnect),
     "reconnect with backoff after the connection ends"},
};

static const pr_settings_info info = {
    .program = "presence-watch",
    .description = "Watch presence over a WebSocket: events out as JSON lines, commands in",
    .usage = "presence-watch --url IP:PORT --token JWT [--device D] [--reconnect]\n"
             "stdin commands: status online|idle|dnd|invisible|none, subscribe GROUP, ping, close",
    .version = PR_VERSION,
};

static uv_loop_t *loop;
static union {
  uv_handle_t h;
  uv_stream_t s;
  uv_pipe_t pipe;
  uv_tty_t tty;
} in;
static int in_open, reconnect;
static pr_client *client;
static char line[1024];
static size_t line_len;
static int exit_code;

static void out_entry(const pr_client_entry *e) {
  printf("{\"user\":\"%s\",\"status\":\"%s\",\"last_seen\":", e->user, e->status);
  if (e->last_seen)
    printf("%llu", (unsigned long long)e->last_seen);
  else
    printf("null");
  printf(",\"version\":%llu}", (unsigned long long)e->version);
}

static void on_hello(pr_client *c, const char *user, const char *device, uint64_t hb, void *arg) {
  printf("{\"event\":\"hello\",\"user\":\"%s\",\"device\":\"%s\",\"heartbeat_ms\":%llu}\n", user,
         device, (unsigned long long)hb);
  fflush(stdout);
}

static void on_snapshot(pr_client *c, const pr_client_entry *e, size_t n, void *arg) {
  printf("{\"event\":\"snapshot\",\"users\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) putchar(',');
    out_entry(&e[i]);
  }
  printf("]}\n");
  fflush(stdout);
}

static void on_presence(pr_client *c, const pr_client_entry *e, void *arg) {
  printf("{\"event\":\"presence\",\"entry\":");
  out_entry(e);
  printf("}\n");
  fflush(stdout);
}

static void on_frame(pr_client *c, const char *type, const char *json, size_t len, void *arg) {
  printf("{\"event\":\"frame\",\"frame\":%.*s}\n", (int)len, json);
  fflush(stdout);
}

static void on_close(pr_client *c, int code, void *arg) {
  printf("{\"event\":\"close\",\"code\":%d}\n", code);
  fflush(stdout);
  exit_code = code == 1000 ? 0 : 1;
  if (!reconnect) {
    if (in_open && !uv_is_closing(&in.h)) uv_close(&in.h, NULL);
    pr_client_free(client);
  }
}

static void on_error(pr_client *c, int err, const char *what, void *arg) {
  fprintf(stderr, "presence-watch: %s (%s)\n", what, pr_strerror(err));
}

static const pr_client_handlers handlers = {on_hello, on_snapshot, on_presence,
                                            on_frame, on_close,    on_error};

static void run_command(char *cmd) {
  char *arg = strchr(cmd, ' ');
  if (arg) *arg++ = '\0';
  int rc = PR_EINVAL;
  if (strcmp(cmd, "status") == 0 && arg)
    rc = pr_client_set_status(client, arg);
  else if (strcmp(cmd, "subscribe") == 0 && arg)
    rc = pr_client_subscribe(client, arg);
  else if (strcmp(cmd, "ping") == 0)
    rc = pr_client_ping(client);
  else if (strcmp(cmd, "close") == 0)
    rc = pr_client_close(client);
  if (rc) fprintf(stderr, "presence-watch: '%s': %s\n", cmd, pr_strerror(rc));
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char b[4096];
  *buf = uv_buf_init(b, sizeof b);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) { /* stdin closed: close the connection and finish */
    uv_close(&in.h, NULL);
    reconnect = 0;
    if (pr_client_close(client) != 0) pr_client_free(client);
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char ch = buf->base[i];
    if (ch == '\n' || line_len == sizeof line - 1) {
      line[line_len] = '\0';
      if (line_len) run_command(line);
      line_len = 0;
    } else if (ch != '\r') {
      line[line_len++] = ch;
    }
  }
}

int main(int argc, char **argv) {
  watch_opts o = {0};
  char err[256];
  int argi;
  int rc =
      pr_settings_load(table, PR_ARRAY_LEN(table), &o, argc, argv, &info, &argi, err, sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presence-watch: %s\n", err);
    return 2;
  }
  if (!o.token) {
    fprintf(stderr, "presence-watch: give --token (or PRESENCE_TOKEN)\n");
    pr_settings_free(table, PR_ARRAY_LEN(table), &o);
    return 2;
  }
  loop = uv_default_loop();
  pr_client_opts co = {
      .url = o.url, .token = o.token, .device = o.device, .reconnect = o.reconnect};
  if (pr_client_new(loop, &co, &handlers, NULL, &client) != 0) {
    fprintf(stderr, "presence-watch: bad --url '%s' (an ip:port)\n", o.url);
    pr_settings_free(table, PR_ARRAY_LEN(table), &o);
    return 2;
  }
  reconnect = o.reconnect;
  /* Commands from stdin when it is a pipe or a terminal; none otherwise. */
  uv_handle_type t = uv_guess_handle(0);
  if (t == UV_TTY)
    in_open = uv_tty_init(loop, &in.tty, 0, 1) == 0;
  else if (t == UV_NAMED_PIPE)
    in_open = uv_pipe_init(loop, &in.pipe, 0) == 0 && uv_pipe_open(&in.pipe, 0) == 0;
  if (in_open) uv_read_start(&in.s, alloc_cb, read_cb);
  exit_code = 1;
  uv_run(loop, UV_RUN_DEFAULT);
  pr_settings_free(table, PR_ARRAY_LEN(table), &o);
  return exit_code;
}
