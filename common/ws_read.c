/* ws_read.c: input: reading into the loop's buffer, frame parsing with the
 * ordering and size rules, reassembly of fragmented messages (UTF-8 checked
 * as it arrives), control frames (ping, pong, close) and incomplete frames. */
#include <string.h>

#include "ws_internal.h"

/* ---- input --------------------------------------------------------------- */

static int input_open(const pr_ws_conn *c) {
  return c->state == ST_OPEN || c->state == ST_CLOSE_SENT;
}

/* A close code for a header that breaks ordering or size rules, else 0. */
static int check_header(const pr_ws_conn *c, const pr_ws_frame *f) {
  switch (f->opcode) {
  case PR_WS_OP_TEXT:
  case PR_WS_OP_BINARY:
    if (c->frag) return PR_WS_CLOSE_PROTOCOL; /* new message inside a fragmented one */
    return f->payload_len > c->max_msg ? PR_WS_CLOSE_TOO_BIG : 0;
  case PR_WS_OP_CONT:
    if (!c->frag) return PR_WS_CLOSE_PROTOCOL; /* continuation of nothing */
    return f->payload_len > c->max_msg - c->frag->len ? PR_WS_CLOSE_TOO_BIG : 0;
  default: return 0;
  }
}

static void deliver(pr_ws_conn *c, int is_text, const char *data, size_t len) {
  if (c->state == ST_OPEN) c->h->on_message(c, is_text, data, len, c->user);
}

/* Appends to the fragmented message; 0 or PR_EUTF8. */
static int frag_append(pr_ws_conn *c, const uint8_t *p, size_t n) {
  frag *f = c->frag;
  if (f->is_text && pr_ws_utf8_feed(&f->utf8, p, n) != 0) return PR_EUTF8;
  if (f->len + n > f->cap) {
    size_t cap = f->cap * 2;
    if (cap > c->max_msg) cap = c->max_msg;
    if (cap < f->len + n) cap = f->len + n;
    f = pr_realloc(f, sizeof(*f) + cap);
    f->cap = cap;
    c->frag = f;
  }
  if (n) memcpy(f->data + f->len, p, n);
  f->len += n;
  return 0;
}

static void on_close_frame(pr_ws_conn *c, const uint8_t *p, size_t n) {
  int code;
  const char *reason;
  size_t reason_len;
  int rc = pr_ws_close_parse(p, n, &code, &reason, &reason_len);
  if (rc == PR_EUTF8) {
    ws_conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8 in close reason");
    return;
  }
  if (rc < 0) {
    ws_conn_fail(c, PR_WS_CLOSE_PROTOCOL, "bad close frame");
    return;
  }
  if (c->state == ST_OPEN) {
    /* Echo the peer's code (an empty close is answered with an empty close). */
    uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    c->close_code = (uint16_t)code;
    if (ws_send_frame(c, PR_WS_OP_CLOSE, pl, code == PR_WS_CLOSE_NO_STATUS ? 0 : 2, 1) < 0) {
      ws_teardown(c, code);
      return;
    }
  }
  ws_enter_drain(c);
}

/* One complete frame whose header passed check_header; payload is mutable. */
static void handle_frame(pr_ws_conn *c, const pr_ws_frame *f, uint8_t *payload) {
  size_t len = (size_t)f->payload_len;
  if (f->masked) pr_ws_mask(payload, len, f->mask, 0);
  STAT_ADD(ws_st_frames_in, 1);
  STAT_ADD(ws_st_bytes_in, f->header_len + len);
  c->last_rx = uv_now(c->tcp->loop);
  if (c->h->on_activity) c->h->on_activity(c, c->user);
  if (!input_open(c)) return;

  switch (f->opcode) {
  case PR_WS_OP_PING:
    if (c->state == ST_OPEN) {
      int rc = ws_send_frame(c, PR_WS_OP_PONG, payload, len, 0);
      if (rc == PR_EBUSY)
        ws_slow_consumer(c);
      else if (rc < 0)
        ws_teardown(c, PR_WS_CLOSE_ABNORMAL);
    }
    return;
  case PR_WS_OP_PONG: return;
  case PR_WS_OP_CLOSE: on_close_frame(c, payload, len); return;
  case PR_WS_OP_TEXT:
  case PR_WS_OP_BINARY: {
    int is_text = f->opcode == PR_WS_OP_TEXT;
    if (f->fin) {
      if (is_text && pr_ws_utf8_check(payload, len) != 0) {
        ws_conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
        return;
      }
      deliver(c, is_text, (const char *)payload, len);
      return;
    }
    size_t cap = len > 1024 ? len : 1024; /* len <= max_msg: check_header saw to it */
    if (cap > c->max_msg) cap = c->max_msg > len ? c->max_msg : len;
    frag *fr = pr_malloc(sizeof(*fr) + cap);
    fr->len = 0;
    fr->cap = cap;
    fr->is_text = (uint8_t)is_text;
    pr_ws_utf8_init(&fr->utf8);
    c->frag = fr;
    if (frag_append(c, payload, len) != 0) ws_conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
    return;
  }
  case PR_WS_OP_CONT: {
    if (frag_append(c, payload, len) != 0) {
      ws_conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
      return;
    }
    if (!f->fin) return;
    frag *fr = c->frag;
    c->frag = NULL;
    if (fr->is_text && pr_ws_utf8_finish(&fr->utf8) != 0)
      ws_conn_fail(c, PR_WS_CLOSE_BAD_DATA, "invalid utf-8");
    else
      deliver(c, fr->is_text, fr->data, fr->len);
    pr_free(fr);
    return;
  }
  }
}

/* Keeps an incomplete frame's n bytes, with room for `want` in all. */
void ws_part_keep(pr_ws_conn *c, const uint8_t *p, size_t n, size_t want) {
  size_t cap = want > n ? want : n;
  c->part = pr_malloc(sizeof(part) + cap);
  memcpy(c->part->data, p, n);
  c->part->len = (uint32_t)n;
  c->part->cap = (uint32_t)cap;
}

/* Parses a header and applies the rules; 0, PR_ETRUNC or a close code > 0
 * (the caller fails the connection with it). */
static int parse_checked(const pr_ws_conn *c, const uint8_t *p, size_t n, pr_ws_frame *f) {
  int rc = pr_ws_frame_parse(p, n, PR_WS_REQUIRE_MASK, f);
  if (rc == PR_ETRUNC) return rc;
  if (rc < 0) return PR_WS_CLOSE_PROTOCOL;
  return check_header(c, f);
}

/* Handles every complete frame of p[0..n) (part must be empty) and keeps an
 * incomplete tail in part. */
static void input_span(pr_ws_conn *c, uint8_t *p, size_t n) {
  while (n > 0 && input_open(c)) {
    pr_ws_frame f;
    int rc = parse_checked(c, p, n, &f);
    if (rc == PR_ETRUNC) {
      ws_part_keep(c, p, n, pr_ws_header_len(p, n));
      return;
    }
    if (rc > 0) {
      ws_conn_fail(c, rc, rc == PR_WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
      return;
    }
    size_t total = f.header_len + (size_t)f.payload_len;
    if (n < total) {
      ws_part_keep(c, p, n, total);
      return;
    }
    handle_frame(c, &f, p + f.header_len);
    p += total;
    n -= total;
  }
}

/* New bytes from the socket: first complete the frame in part (copying only
 * what it needs), then work on the rest in place. */
static void on_input(pr_ws_conn *c, uint8_t *p, size_t n) {
  while (c->part && n > 0 && input_open(c)) {
    pr_ws_frame f;
    int rc = parse_checked(c, c->part->data, c->part->len, &f);
    size_t want;
    if (rc == PR_ETRUNC) {
      want = pr_ws_header_len(c->part->data, c->part->len);
    } else if (rc > 0) {
      ws_conn_fail(c, rc, rc == PR_WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
      return;
    } else {
      want = f.header_len + (size_t)f.payload_len;
    }
    size_t take = want - c->part->len;
    if (take > n) take = n;
    if (want > c->part->cap) {
      c->part = pr_realloc(c->part, sizeof(part) + want);
      c->part->cap = (uint32_t)want;
    }
    memcpy(c->part->data + c->part->len, p, take);
    c->part->len += (uint32_t)take;
    p += take;
    n -= take;
    if (rc == 0 && c->part->len == want) {
      part *buf = c->part;
      c->part = NULL;
      handle_frame(c, &f, buf->data + f.header_len);
      pr_free(buf);
    }
  }
  if (!c->part) input_span(c, p, n);
}

/* Processes the upgrade leftover (it may hold several frames). */
void ws_kick_leftover(pr_ws_conn *c) {
  if (!c->kick) return;
  c->kick = 0;
  part *buf = c->part;
  c->part = NULL;
  input_span(c, buf->data, buf->len);
  pr_free(buf);
}

void ws_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  pr_ws_conn *c = h->data;
  *buf = uv_buf_init(c->lc->data, READ_BUF_SIZE);
}

void ws_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pr_ws_conn *c = s->data;
  if (c->state == ST_CLOSED) return;
  if (nread < 0) {
    ws_teardown(c, PR_WS_CLOSE_ABNORMAL); /* EOF or error; keeps a code already set */
    return;
  }
  if (nread == 0 || c->state == ST_DRAIN) return;
  ws_kick_leftover(c);
  on_input(c, (uint8_t *)buf->base, (size_t)nread);
}
