/* ws_utf8.c: incremental UTF-8 validation for text messages (RFC 3629 as
 * RFC 6455 requires it). The state is three bytes, so a sequence split across
 * fragments is checked without buffering the fragments. */
#include "ws.h"

#include <string.h>

void pr_ws_utf8_init(pr_ws_utf8 *v) { memset(v, 0, sizeof(*v)); }

/* Sets the state for a lead byte; 0 or PR_EUTF8. The range of the first
 * continuation byte is what excludes overlongs (E0, F0), surrogates (ED) and
 * code points past U+10FFFF (F4). */
static int lead(pr_ws_utf8 *v, uint8_t b) {
  v->lo = 0x80;
  v->hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf)
    v->need = 1;
  else if (b == 0xe0)
    v->need = 2, v->lo = 0xa0;
  else if (b == 0xed)
    v->need = 2, v->hi = 0x9f;
  else if (b >= 0xe1 && b <= 0xef)
    v->need = 2;
  else if (b == 0xf0)
    v->need = 3, v->lo = 0x90;
  else if (b >= 0xf1 && b <= 0xf3)
    v->need = 3;
  else if (b == 0xf4)
    v->need = 3, v->hi = 0x8f;
  else
    return PR_EUTF8; /* 80-C1 (continuation or overlong lead), F5-FF */
  return 0;
}

int pr_ws_utf8_feed(pr_ws_utf8 *v, const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (v->need == 0) {
      /* ASCII runs are the common case: skip them a word at a time. */
      while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i >= n) break;
      uint8_t b = p[i++];
      if (b < 0x80) continue;
      if (lead(v, b) != 0) return PR_EUTF8;
    } else {
      uint8_t b = p[i++];
      if (b < v->lo || b > v->hi) return PR_EUTF8;
      v->need--;
      v->lo = 0x80;
      v->hi = 0xbf;
    }
  }
  return 0;
}

int pr_ws_utf8_finish(const pr_ws_utf8 *v) { return v->need == 0 ? 0 : PR_EUTF8; }

int pr_ws_utf8_check(const uint8_t *p, size_t n) {
  pr_ws_utf8 v;
  pr_ws_utf8_init(&v);
  if (pr_ws_utf8_feed(&v, p, n) != 0) return PR_EUTF8;
  return pr_ws_utf8_finish(&v);
}
