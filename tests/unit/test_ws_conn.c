/* test_ws_conn.c: the server connection over a real loopback socket. The test
 * loop accepts on 127.0.0.1:0 and hands the accepted tcp to pr_ws_conn_start,
 * as the receive service does after pr_http_detach; a blocking client socket in
 * a thread plays the browser and records what it saw. The main thread asserts
 * once the loop has finished and the client thread has been joined. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ws.h"

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

typedef struct fx fx;
struct fx {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t guard;
  int port;
  /* server side */
  pr_ws_opts opts;
  const char *key;
  const char *extra;
  const uint8_t *leftover;
  size_t leftover_len;
  int echo;
  void (*on_open)(fx *);
  pr_ws_conn *conn;
  int started;        /* pr_ws_conn_start has returned */
  int early_callback; /* a callback ran before it returned */
  int close_calls, close_code;
  int messages, activity;
  uint64_t t_start, t_close;
  int send_rc, sends_ok, send_after;
  int guard_fired;
  uv_sem_t closed; /* posted by on_close, for clients that wait for it */
  /* client side */
  void (*client)(fx *);
  char head[1024];
  int op[8];
  uint8_t data[8][256];
  size_t len[8];
  int nframes;
  int close_rx; /* close code the client received, -1 none */
  int eof;
  uint64_t elapsed_ms;
};

/* ---- client helpers (thread, blocking) ----------------------------------- */

static int cl_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int readn(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* Reads the response head byte by byte so no frame byte is consumed. */
static void cl_read_head(fx *f, int fd) {
  size_t n = 0;
  while (n + 1 < sizeof(f->head)) {
    if (recv(fd, f->head + n, 1, 0) != 1) break;
    n++;
    if (n >= 4 && memcmp(f->head + n - 4, "\r\n\r\n", 4) == 0) break;
  }
  f->head[n] = 0;
}

static void cl_send(int fd, int op, int fin, int masked, const void *p, size_t n) {
  static const uint8_t key[4] = {0x5a, 0x01, 0xc3, 0x7e};
  uint8_t *buf = pr_malloc(PR_WS_MAX_HEADER + n);
  size_t hl = pr_ws_frame_header(buf, op, fin, n, masked ? key : NULL);
  memcpy(buf + hl, p, n);
  if (masked) pr_ws_mask(buf + hl, n, key, 0);
  send(fd, buf, hl + n, MSG_NOSIGNAL);
  pr_free(buf);
}

static void cl_send_close(int fd, int code, const char *reason) {
  uint8_t pl[PR_WS_MAX_CONTROL];
  size_t n = pr_ws_close_payload(pl, code, reason);
  cl_send(fd, PR_WS_OP_CLOSE, 1, 1, pl, n);
}

/* Reads one frame into the next slot (payload cut to 256 bytes, length kept).
 * A close frame also sets close_rx. Returns the opcode or -1. */
static int cl_read_frame(fx *f, int fd) {
  uint8_t h[PR_WS_MAX_HEADER];
  if (readn(fd, h, 2) != 0) return -1;
  size_t hl = pr_ws_header_len(h, 2);
  if (hl > 2 && readn(fd, h + 2, hl - 2) != 0) return -1;
  pr_ws_frame fr;
  if (pr_ws_frame_parse(h, hl, PR_WS_FORBID_MASK, &fr) != 0) return -1;
  int slot = f->nframes < 8 ? f->nframes++ : 7;
  f->op[slot] = fr.opcode;
  f->len[slot] = (size_t)fr.payload_len;
  for (uint64_t i = 0; i < fr.payload_len; i++) {
    uint8_t b;
    if (readn(fd, &b, 1) != 0) return -1;
    if (i < sizeof(f->data[slot])) f->data[slot][i] = b;
  }
  if (fr.opcode == PR_WS_OP_CLOSE)
    f->close_rx = fr.payload_len >= 2 ? (f->data[slot][0] << 8 | f->data[slot][1]) : 1005;
  return fr.opcode;
}

static void cl_read_eof(fx *f, int fd) {
  char b;
  f->eof = recv(fd, &b, 1, 0) == 0;
}

static uint64_t now_ms(void) { return pr_now_mono_ms(); }

/* ---- server side --------------------------------------------------------- */

static void h_message(pr_ws_conn *c, int is_text, const char *data, size_t len, void *user) {
  fx *f = user;
  if (!f->started) f->early_callback = 1;
  f->messages++;
  if (f->echo) {
    if (is_text)
      pr_ws_send_text(c, data, len);
    else
      pr_ws_send_binary(c, data, len);
  }
}

static void h_activity(pr_ws_conn *c, void *user) {
  fx *f = user;
  if (!f->started) f->early_callback = 1;
  f->activity++;
}

static void h_close(pr_ws_conn *c, int code, void *user) {
  fx *f = user;
  f->close_calls++;
  f->close_code = code;
  f->t_close = now_ms();
  uv_sem_post(&f->closed);
}

static const pr_ws_handlers handlers = {h_message, h_activity, h_close};

static void on_connection(uv_stream_t *srv, int status) {
  fx *f = srv->data;
  cr_assert_eq(status, 0);
  uv_tcp_t *tcp = pr_malloc(sizeof(*tcp));
  uv_tcp_init(&f->loop, tcp);
  tcp->data = NULL;
  cr_assert_eq(uv_accept(srv, (uv_stream_t *)tcp), 0);
  uv_close((uv_handle_t *)&f->listener, NULL);
  f->t_start = now_ms();
  int rc = pr_ws_conn_start(&f->loop, tcp, f->key, f->extra, (const char *)f->leftover,
                            f->leftover_len, &f->opts, &handlers, f, &f->conn);
  cr_assert_eq(rc, 0);
  f->started = 1;
  if (f->on_open) f->on_open(f);
}

static void on_guard(uv_timer_t *t) {
  fx *f = t->data;
  f->guard_fired = 1;
  uv_stop(&f->loop);
}

static void client_main(void *arg) {
  fx *f = arg;
  f->client(f);
}

static void fx_init(fx *f) {
  memset(f, 0, sizeof(*f));
  f->key = RFC_KEY;
  f->close_rx = -1;
}

static void fx_run(fx *f) {
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(uv_sem_init(&f->closed, 0), 0);
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  uv_tcp_init(&f->loop, &f->listener);
  f->listener.data = f;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&f->listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&f->listener, 16, on_connection), 0);
  struct sockaddr_in b;
  int blen = sizeof(b);
  uv_tcp_getsockname(&f->listener, (struct sockaddr *)&b, &blen);
  f->port = ntohs(b.sin_port);

  uv_timer_init(&f->loop, &f->guard);
  f->guard.data = f;
  uv_timer_start(&f->guard, on_guard, 10000, 0);
  uv_unref((uv_handle_t *)&f->guard);

  uv_thread_t th;
  cr_assert_eq(uv_thread_create(&th, client_main, f), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  if (f->guard_fired) uv_sem_post(&f->closed); /* unblock a waiting client */
  uv_thread_join(&th);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  cr_assert_not(f->guard_fired, "the test loop did not finish in 10 s");
  cr_assert_eq(uv_loop_close(&f->loop), 0);
  uv_sem_destroy(&f->closed);
  cr_assert_not(f->early_callback, "a callback ran inside pr_ws_conn_start");
  cr_assert_eq(f->close_calls, 1, "on_close called %d times", f->close_calls);
}

/* ---- tests --------------------------------------------------------------- */

static void client_echo(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_TEXT, 1, 1, "hello", 5);
  cl_read_frame(f, fd);
  cl_send_close(fd, 1000, "bye");
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, handshake_echo_and_client_close) {
  pr_ws_stats before, after;
  pr_ws_get_stats(&before);
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.extra = "X-Presence: 1\r\n";
  f.client = client_echo;
  fx_run(&f);
  cr_assert(strncmp(f.head, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "%s", f.head);
  cr_assert(strstr(f.head, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"), "%s", f.head);
  cr_assert(strstr(f.head, "Upgrade: websocket\r\n"));
  cr_assert(strstr(f.head, "Connection: Upgrade\r\n"));
  cr_assert(strstr(f.head, "\r\nX-Presence: 1\r\n\r\n"));
  cr_assert_eq(f.nframes, 2);
  cr_assert_eq(f.op[0], PR_WS_OP_TEXT);
  cr_assert_eq(f.len[0], 5);
  cr_assert_eq(memcmp(f.data[0], "hello", 5), 0);
  cr_assert_eq(f.op[1], PR_WS_OP_CLOSE);
  cr_assert_eq(f.close_rx, 1000);
  cr_assert(f.eof, "the server did not close the TCP connection");
  cr_assert_eq(f.close_code, 1000);
  cr_assert_eq(f.messages, 1);
  cr_assert_eq(f.activity, 2);
  pr_ws_get_stats(&after);
  cr_assert_geq(after.frames_in - before.frames_in, 2);
  cr_assert_geq(after.frames_out - before.frames_out, 2);
  cr_assert_geq(after.bytes_in - before.bytes_in, 2 + 4 + 5 + 2 + 4 + 5);
  cr_assert_eq(after.conns_open, before.conns_open);
}

Test(ws_conn, precomputed_accept_key_is_accepted) {
  fx f;
  fx_init(&f);
  f.key = RFC_ACCEPT;
  f.echo = 1;
  f.client = client_echo;
  fx_run(&f);
  cr_assert(strstr(f.head, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"), "%s", f.head);
  cr_assert_eq(f.close_code, 1000);
}

Test(ws_conn, start_rejects_bad_key) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t tcp;
  uv_tcp_init(&loop, &tcp);
  pr_ws_conn *c = NULL;
  cr_assert_eq(pr_ws_conn_start(&loop, &tcp, "short", NULL, NULL, 0, NULL, &handlers, NULL, &c),
               PR_EINVAL);
  cr_assert_eq(c, NULL);
  uv_close((uv_handle_t *)&tcp, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

static void client_echo_close_4000(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send_close(fd, 4000, "going");
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, client_close_is_echoed_with_its_code) {
  fx f;
  fx_init(&f);
  f.client = client_echo_close_4000;
  fx_run(&f);
  cr_assert_eq(f.nframes, 1);
  cr_assert_eq(f.op[0], PR_WS_OP_CLOSE);
  cr_assert_eq(f.len[0], 2);
  cr_assert_eq(f.close_rx, 4000);
  cr_assert(f.eof);
  cr_assert_eq(f.close_code, 4000);
}

static void client_unmasked(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_TEXT, 1, 0, "hello", 5);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, unmasked_client_frame_closes_1002) {
  pr_ws_stats before, after;
  pr_ws_get_stats(&before);
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.client = client_unmasked;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1002);
  cr_assert(f.eof);
  cr_assert_eq(f.messages, 0);
  cr_assert_eq(f.close_code, 1002);
  pr_ws_get_stats(&after);
  cr_assert_eq(after.protocol_errors - before.protocol_errors, 1);
}

static void client_too_big(fx *f) {
  static uint8_t big[1001];
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_BINARY, 1, 1, big, 1000); /* exactly the limit: fine */
  cl_read_frame(f, fd);
  cl_send(fd, PR_WS_OP_BINARY, 1, 1, big, 1001);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, oversized_message_closes_1009) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.opts.max_message_bytes = 1000;
  f.client = client_too_big;
  fx_run(&f);
  cr_assert_eq(f.nframes, 2);
  cr_assert_eq(f.op[0], PR_WS_OP_BINARY);
  cr_assert_eq(f.len[0], 1000);
  cr_assert_eq(f.close_rx, 1009);
  cr_assert_eq(f.close_code, 1009);
  cr_assert_eq(f.messages, 1);
}

static void client_too_big_fragmented(fx *f) {
  static uint8_t part[600];
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_BINARY, 0, 1, part, 600);
  cl_send(fd, PR_WS_OP_CONT, 1, 1, part, 600);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, oversized_fragmented_message_closes_1009) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.opts.max_message_bytes = 1000;
  f.client = client_too_big_fragmented;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1009);
  cr_assert_eq(f.close_code, 1009);
  cr_assert_eq(f.messages, 0);
}

static void client_bad_utf8(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_TEXT, 1, 1, "ok \xc0\xaf", 5);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, invalid_utf8_closes_1007) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.client = client_bad_utf8;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1007);
  cr_assert_eq(f.close_code, 1007);
  cr_assert_eq(f.messages, 0);
}

static void client_utf8_split(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  /* "€uro" split inside the euro sign: valid, echoed whole. */
  cl_send(fd, PR_WS_OP_TEXT, 0, 1, "\xe2\x82", 2);
  cl_send(fd, PR_WS_OP_CONT, 1, 1,
          "\xac"
          "uro",
          4);
  cl_read_frame(f, fd);
  /* A surrogate split across fragments: rejected. */
  cl_send(fd, PR_WS_OP_TEXT, 0, 1, "a\xed", 2);
  cl_send(fd, PR_WS_OP_CONT, 1, 1, "\xa0\x80", 2);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, utf8_split_across_fragments) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.client = client_utf8_split;
  fx_run(&f);
  cr_assert_eq(f.nframes, 2);
  cr_assert_eq(f.op[0], PR_WS_OP_TEXT);
  cr_assert_eq(f.len[0], 6);
  cr_assert_eq(memcmp(f.data[0], "\xe2\x82\xacuro", 6), 0);
  cr_assert_eq(f.close_rx, 1007);
  cr_assert_eq(f.close_code, 1007);
  cr_assert_eq(f.messages, 1);
}

static void client_ping(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_PING, 1, 1, "abc", 3);
  cl_read_frame(f, fd);
  cl_send(fd, PR_WS_OP_PONG, 1, 1, "unsolicited", 11); /* accepted silently */
  /* A ping between the fragments of a message. */
  cl_send(fd, PR_WS_OP_TEXT, 0, 1, "Hel", 3);
  cl_send(fd, PR_WS_OP_PING, 1, 1, "x", 1);
  cl_send(fd, PR_WS_OP_CONT, 0, 1, "l", 1);
  cl_send(fd, PR_WS_OP_CONT, 1, 1, "o", 1);
  cl_read_frame(f, fd);
  cl_read_frame(f, fd);
  cl_send_close(fd, 1000, NULL);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, ping_pong_and_fragments) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.client = client_ping;
  fx_run(&f);
  cr_assert_eq(f.nframes, 4);
  cr_assert_eq(f.op[0], PR_WS_OP_PONG);
  cr_assert_eq(f.len[0], 3);
  cr_assert_eq(memcmp(f.data[0], "abc", 3), 0);
  cr_assert_eq(f.op[1], PR_WS_OP_PONG);
  cr_assert_eq(f.len[1], 1);
  cr_assert_eq(f.data[1][0], 'x');
  cr_assert_eq(f.op[2], PR_WS_OP_TEXT);
  cr_assert_eq(f.len[2], 5);
  cr_assert_eq(memcmp(f.data[2], "Hello", 5), 0);
  cr_assert_eq(f.close_rx, 1000);
  cr_assert_eq(f.messages, 1);
  cr_assert_eq(f.activity, 7); /* every frame, control frames included */
  cr_assert_eq(f.close_code, 1000);
}

static void client_bad_sequence(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_CONT, 1, 1, "orphan", 6);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, continuation_without_start_closes_1002) {
  fx f;
  fx_init(&f);
  f.client = client_bad_sequence;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1002);
  cr_assert_eq(f.close_code, 1002);
}

static void client_interleaved(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_send(fd, PR_WS_OP_TEXT, 0, 1, "first", 5);
  cl_send(fd, PR_WS_OP_TEXT, 1, 1, "second", 6);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, new_message_inside_fragmented_closes_1002) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.client = client_interleaved;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1002);
  cr_assert_eq(f.messages, 0);
}

static void client_dribble_and_big(fx *f) {
  static uint8_t big[70000];
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  /* One frame a byte at a time: the server keeps the partial frame. */
  static const uint8_t key[4] = {9, 8, 7, 6};
  uint8_t fr[32];
  size_t hl = pr_ws_frame_header(fr, PR_WS_OP_TEXT, 1, 7, key);
  memcpy(fr + hl, "dribble", 7);
  pr_ws_mask(fr + hl, 7, key, 0);
  for (size_t i = 0; i < hl + 7; i++) {
    send(fd, fr + i, 1, MSG_NOSIGNAL);
    usleep(2000);
  }
  cl_read_frame(f, fd);
  /* 16-bit and 64-bit lengths, both ways. */
  for (size_t i = 0; i < sizeof(big); i++)
    big[i] = (uint8_t)i;
  cl_send(fd, PR_WS_OP_BINARY, 1, 1, big, 40000);
  cl_read_frame(f, fd);
  cl_send(fd, PR_WS_OP_BINARY, 1, 1, big, 70000);
  cl_read_frame(f, fd);
  cl_send_close(fd, 1000, NULL);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, partial_frames_and_large_lengths) {
  fx f;
  fx_init(&f);
  f.echo = 1;
  f.opts.max_message_bytes = 100000;
  f.client = client_dribble_and_big;
  fx_run(&f);
  cr_assert_eq(f.nframes, 4);
  cr_assert_eq(f.len[0], 7);
  cr_assert_eq(memcmp(f.data[0], "dribble", 7), 0);
  cr_assert_eq(f.len[1], 40000);
  cr_assert_eq(f.len[2], 70000);
  for (int i = 0; i < 256; i++)
    cr_assert_eq(f.data[2][i], (uint8_t)i);
  cr_assert_eq(f.close_rx, 1000);
  cr_assert_eq(f.messages, 3);
}

static void client_leftover(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_read_frame(f, fd); /* "early", sent with the upgrade request */
  cl_read_frame(f, fd); /* "second" */
  /* Third frame: its first 3 bytes were in the leftover. */
  static const uint8_t rest[] = {'t', 'h', 'r', 'e', 'e'};
  uint8_t m[5];
  memcpy(m, rest, 5);
  static const uint8_t key[4] = {1, 2, 3, 4};
  pr_ws_mask(m, 5, key, 0);
  send(fd, m, 5, MSG_NOSIGNAL);
  cl_read_frame(f, fd);
  cl_send_close(fd, 1000, NULL);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, leftover_is_processed_first) {
  static const uint8_t key[4] = {1, 2, 3, 4};
  uint8_t lo[64];
  size_t n = 0;
  n += pr_ws_frame_header(lo + n, PR_WS_OP_TEXT, 1, 5, key);
  memcpy(lo + n, "early", 5);
  pr_ws_mask(lo + n, 5, key, 0);
  n += 5;
  size_t hl = pr_ws_frame_header(lo + n, PR_WS_OP_TEXT, 1, 6, key);
  memcpy(lo + n + hl, "second", 6);
  pr_ws_mask(lo + n + hl, 6, key, 0);
  n += hl + 6;
  n += pr_ws_frame_header(lo + n, PR_WS_OP_TEXT, 1, 5, key); /* header only */

  fx f;
  fx_init(&f);
  f.echo = 1;
  f.leftover = lo;
  f.leftover_len = n;
  f.client = client_leftover;
  fx_run(&f);
  cr_assert_eq(f.nframes, 4);
  cr_assert_eq(memcmp(f.data[0], "early", 5), 0);
  cr_assert_eq(memcmp(f.data[1], "second", 6), 0);
  cr_assert_eq(f.len[2], 5);
  cr_assert_eq(memcmp(f.data[2], "three", 5), 0);
  cr_assert_eq(f.close_rx, 1000);
  cr_assert_eq(f.messages, 3);
}

/* The server sends until PR_EBUSY to a client that never reads. */
static void open_flood(fx *f) {
  static char chunk[16384];
  int rc;
  while ((rc = pr_ws_send_binary(f->conn, chunk, sizeof(chunk))) == 0)
    f->sends_ok++;
  f->send_rc = rc;
  f->send_after = pr_ws_send_binary(f->conn, chunk, 1);
  cr_assert_not(pr_ws_conn_is_open(f->conn));
  cr_assert_leq(pr_ws_conn_outbound(f->conn), 65536 + 200);
}

static void client_never_reads(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  uv_sem_wait(&f->closed);
  close(fd);
}

Test(ws_conn, slow_consumer_closed_4008) {
  pr_ws_stats before, after;
  pr_ws_get_stats(&before);
  fx f;
  fx_init(&f);
  f.opts.max_outbound_bytes = 65536;
  f.opts.close_timeout_ms = 200;
  f.on_open = open_flood;
  f.client = client_never_reads;
  fx_run(&f);
  cr_assert_eq(f.send_rc, PR_EBUSY);
  cr_assert_gt(f.sends_ok, 0);
  cr_assert_eq(f.send_after, PR_ECLOSED);
  cr_assert_eq(f.close_code, 4008);
  cr_assert_geq(f.t_close - f.t_start, 150, "closed after %llu ms",
                (unsigned long long)(f.t_close - f.t_start));
  pr_ws_get_stats(&after);
  cr_assert_eq(after.slow_consumers_closed - before.slow_consumers_closed, 1);
}

/* ---- cork: coalesced writes ------------------------------------------------ */

static uint64_t cork_writes, cork_frames;
static size_t cork_outbound;

/* Five frames while corked: nothing written until the uncork, then one write. */
static void open_cork_five(fx *f) {
  pr_ws_stats a, b;
  pr_ws_get_stats(&a);
  cr_assert_eq(pr_ws_cork(f->conn), 1);
  cr_assert_eq(pr_ws_cork(f->conn), 0, "a second cork is a no-op");
  char msg[8];
  for (int i = 0; i < 5; i++) {
    int n = snprintf(msg, sizeof(msg), "m%d", i);
    cr_assert_eq(pr_ws_send_text(f->conn, msg, (size_t)n), 0);
  }
  cork_outbound = pr_ws_conn_outbound(f->conn);
  pr_ws_get_stats(&b);
  cr_assert_eq(b.writes, a.writes, "written while corked");
  pr_ws_uncork(f->conn);
  pr_ws_get_stats(&b);
  cork_writes = b.writes - a.writes;
  cork_frames = b.frames_out - a.frames_out;
}

static void client_reads_five(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  for (int i = 0; i < 5; i++)
    cl_read_frame(f, fd);
  cl_send_close(fd, 1000, NULL);
  cl_read_frame(f, fd);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, cork_writes_frames_in_order_in_one_write) {
  fx f;
  fx_init(&f);
  f.on_open = open_cork_five;
  f.client = client_reads_five;
  fx_run(&f);
  cr_assert_eq(cork_outbound, 5 * (2 + 2), "corked bytes count as outbound");
  cr_assert_eq(cork_frames, 5);
  cr_assert_eq(cork_writes, 1, "%llu writes for 5 corked frames", (unsigned long long)cork_writes);
  cr_assert_eq(f.nframes, 6);
  for (int i = 0; i < 5; i++) {
    char want[8];
    snprintf(want, sizeof(want), "m%d", i);
    cr_assert_eq(f.op[i], PR_WS_OP_TEXT);
    cr_assert_eq(f.len[i], 2);
    cr_assert_eq(memcmp(f.data[i], want, 2), 0, "frame %d out of order", i);
  }
  cr_assert_eq(f.close_rx, 1000);
  cr_assert_eq(f.close_code, 1000);
}

/* Corked, to a client that never reads: the limit still refuses and closes. */
static void open_cork_flood(fx *f) {
  cr_assert_eq(pr_ws_cork(f->conn), 1);
  open_flood(f);
  pr_ws_uncork(f->conn);
}

Test(ws_conn, cork_keeps_the_outbound_limit_4008) {
  pr_ws_stats before, after;
  pr_ws_get_stats(&before);
  fx f;
  fx_init(&f);
  f.opts.max_outbound_bytes = 65536;
  f.opts.close_timeout_ms = 200;
  f.on_open = open_cork_flood;
  f.client = client_never_reads;
  fx_run(&f);
  cr_assert_eq(f.send_rc, PR_EBUSY);
  cr_assert_gt(f.sends_ok, 4, "the kernel was never offered the corked bytes");
  cr_assert_eq(f.send_after, PR_ECLOSED);
  cr_assert_eq(f.close_code, 4008);
  pr_ws_get_stats(&after);
  cr_assert_eq(after.slow_consumers_closed - before.slow_consumers_closed, 1);
}

/* A close while corked goes out after the frames collected before it. */
static void open_cork_close(fx *f) {
  pr_ws_stats a, b;
  pr_ws_get_stats(&a);
  cr_assert_eq(pr_ws_cork(f->conn), 1);
  cr_assert_eq(pr_ws_send_text(f->conn, "first", 5), 0);
  cr_assert_eq(pr_ws_close(f->conn, 1012, "draining"), 0);
  cr_assert_eq(pr_ws_send_text(f->conn, "late", 4), PR_ECLOSED);
  pr_ws_uncork(f->conn);
  pr_ws_get_stats(&b);
  cork_writes = b.writes - a.writes;
}

static void client_reads_then_answers_close(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_read_frame(f, fd);
  cl_read_frame(f, fd);
  cl_send_close(fd, 1012, NULL);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, close_while_corked_follows_the_corked_frames) {
  fx f;
  fx_init(&f);
  f.on_open = open_cork_close;
  f.client = client_reads_then_answers_close;
  fx_run(&f);
  cr_assert_eq(cork_writes, 1);
  cr_assert_eq(f.nframes, 2);
  cr_assert_eq(f.op[0], PR_WS_OP_TEXT);
  cr_assert_eq(memcmp(f.data[0], "first", 5), 0);
  cr_assert_eq(f.op[1], PR_WS_OP_CLOSE);
  cr_assert_eq(f.close_rx, 1012);
  cr_assert(f.eof);
  cr_assert_eq(f.close_code, 1012);
}

static void client_idle(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  uint64_t t0 = now_ms();
  cl_read_head(f, fd);
  usleep(100 * 1000);
  cl_send(fd, PR_WS_OP_PING, 1, 1, "", 0); /* activity pushes the deadline */
  cl_read_frame(f, fd);                    /* pong */
  cl_read_frame(f, fd);                    /* the idle close */
  f->elapsed_ms = now_ms() - t0;
  cl_send_close(fd, f->close_rx > 0 ? f->close_rx : 1000, NULL);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, idle_timeout_closes) {
  fx f;
  fx_init(&f);
  f.opts.idle_timeout_ms = 150;
  f.client = client_idle;
  fx_run(&f);
  cr_assert_eq(f.nframes, 2);
  cr_assert_eq(f.op[0], PR_WS_OP_PONG);
  cr_assert_eq(f.op[1], PR_WS_OP_CLOSE);
  cr_assert_eq(f.close_rx, 1001);
  cr_assert_geq(f.elapsed_ms, 240, "idle close after %llu ms", (unsigned long long)f.elapsed_ms);
  cr_assert_lt(f.elapsed_ms, 2000);
  cr_assert(f.eof);
  cr_assert_eq(f.close_code, 1001);
}

static void client_drop(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  close(fd);
}

Test(ws_conn, dropped_socket_reports_1006) {
  fx f;
  fx_init(&f);
  f.client = client_drop;
  fx_run(&f);
  cr_assert_eq(f.close_code, 1006);
}

static void open_server_close(fx *f) {
  cr_assert_eq(pr_ws_close(f->conn, 1005, NULL), PR_EINVAL);
  cr_assert_eq(pr_ws_close(f->conn, 1012, "draining"), 0);
  cr_assert_eq(pr_ws_close(f->conn, 1000, NULL), PR_ECLOSED);
  cr_assert_eq(pr_ws_send_text(f->conn, "x", 1), PR_ECLOSED);
}

static void client_answers_close(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_read_frame(f, fd);
  cl_send_close(fd, 1012, NULL);
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, server_close_handshake) {
  fx f;
  fx_init(&f);
  f.on_open = open_server_close;
  f.client = client_answers_close;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1012);
  cr_assert_eq(f.len[0], 10);
  cr_assert_eq(memcmp(f.data[0] + 2, "draining", 8), 0);
  cr_assert(f.eof);
  cr_assert_eq(f.close_code, 1012);
}

static void client_silent_after_close(fx *f) {
  int fd = cl_connect(f->port);
  if (fd < 0) return;
  cl_read_head(f, fd);
  cl_read_frame(f, fd); /* the close; never answered */
  cl_read_eof(f, fd);
  close(fd);
}

Test(ws_conn, close_timeout_when_peer_never_answers) {
  fx f;
  fx_init(&f);
  f.opts.close_timeout_ms = 150;
  f.on_open = open_server_close;
  f.client = client_silent_after_close;
  fx_run(&f);
  cr_assert_eq(f.close_rx, 1012);
  cr_assert(f.eof);
  cr_assert_eq(f.close_code, 1012);
  cr_assert_geq(f.t_close - f.t_start, 140);
}

/* ---- several connections on one loop (one timer heap) ---------------------- */

/* Four connections with idle timeouts 300, 100, 200 and 250 ms; the client
 * drops the fourth at once (its timer leaves the middle of the heap). Each
 * must close on its own deadline, in deadline order, whatever the order of
 * arrival. */
#define MULTI 4
static const uint32_t multi_idle[MULTI] = {300, 100, 200, 250};

typedef struct {
  uv_loop_t loop;
  uv_tcp_t listener;
  int port, accepted, closed;
  int order[MULTI], code[MULTI];
  uint64_t t0, at[MULTI];
} multi;

typedef struct {
  multi *m;
  int idx;
} multi_conn;

static multi_conn multi_conns[MULTI];

static void m_message(pr_ws_conn *c, int is_text, const char *data, size_t len, void *user) {}

static void m_close(pr_ws_conn *c, int code, void *user) {
  multi_conn *mc = user;
  multi *m = mc->m;
  m->code[mc->idx] = code;
  m->at[mc->idx] = now_ms() - m->t0;
  m->order[m->closed++] = mc->idx;
  if (m->closed == MULTI) uv_close((uv_handle_t *)&m->listener, NULL);
}

static const pr_ws_handlers multi_handlers = {.on_message = m_message, .on_close = m_close};

static void m_connection(uv_stream_t *srv, int status) {
  multi *m = srv->data;
  cr_assert_eq(status, 0);
  uv_tcp_t *tcp = pr_malloc(sizeof(*tcp));
  uv_tcp_init(&m->loop, tcp);
  cr_assert_eq(uv_accept(srv, (uv_stream_t *)tcp), 0);
  int i = m->accepted++;
  if (i == 0) m->t0 = now_ms();
  multi_conns[i] = (multi_conn){m, i};
  pr_ws_opts o = {.idle_timeout_ms = multi_idle[i], .close_timeout_ms = 100};
  pr_ws_conn *c;
  cr_assert_eq(pr_ws_conn_start(&m->loop, tcp, RFC_KEY, NULL, NULL, 0, &o, &multi_handlers,
                                &multi_conns[i], &c),
               0);
}

static void multi_client(void *arg) {
  multi *m = arg;
  fx scratch;
  fx_init(&scratch);
  int fd[MULTI];
  for (int i = 0; i < MULTI; i++) {
    fd[i] = cl_connect(m->port);
    if (fd[i] < 0) return;
    cl_read_head(&scratch, fd[i]); /* in order: accepted in this order */
  }
  close(fd[3]);
  static const int expect[] = {1, 2, 0}; /* by deadline */
  for (int k = 0; k < 3; k++) {
    int i = expect[k];
    cl_read_frame(&scratch, fd[i]); /* the server's close (1001) */
    cl_send_close(fd[i], 1001, NULL);
    cl_read_eof(&scratch, fd[i]);
    close(fd[i]);
  }
}

Test(ws_conn, connections_on_one_loop_time_out_in_deadline_order) {
  signal(SIGPIPE, SIG_IGN);
  multi m;
  memset(&m, 0, sizeof(m));
  cr_assert_eq(uv_loop_init(&m.loop), 0);
  uv_tcp_init(&m.loop, &m.listener);
  m.listener.data = &m;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&m.listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&m.listener, 16, m_connection), 0);
  struct sockaddr_in b;
  int blen = sizeof(b);
  uv_tcp_getsockname(&m.listener, (struct sockaddr *)&b, &blen);
  m.port = ntohs(b.sin_port);
  uv_thread_t th;
  cr_assert_eq(uv_thread_create(&th, multi_client, &m), 0);
  uv_run(&m.loop, UV_RUN_DEFAULT);
  uv_thread_join(&th);
  cr_assert_eq(uv_loop_close(&m.loop), 0, "the loop's timer was not closed");
  cr_assert_eq(m.closed, MULTI);
  int want[MULTI] = {3, 1, 2, 0};
  for (int k = 0; k < MULTI; k++)
    cr_assert_eq(m.order[k], want[k], "close #%d was connection %d", k, m.order[k]);
  cr_assert_eq(m.code[3], PR_WS_CLOSE_ABNORMAL);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(m.code[i], PR_WS_CLOSE_GOING_AWAY);
    cr_assert_geq(m.at[i], multi_idle[i], "conn %d closed after %llu ms", i,
                  (unsigned long long)m.at[i]);
    cr_assert_lt(m.at[i], multi_idle[i] + 1000);
  }
}

Test(ws_conn, idle_connection_is_lean) {
  size_t n = pr_ws_conn_idle_bytes();
  cr_log_info("idle connection: %zu bytes (pr_ws_conn + uv_tcp_t %zu + its timer slot)", n,
              sizeof(uv_tcp_t));
  /* uv_tcp_t is libuv's; the rest is ours: no uv_timer_t (152 bytes) per conn */
  cr_assert_leq(n - sizeof(uv_tcp_t), 112);
}
