// clang-format off
// clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon tests/fuzz/fuzz_ws.c common/ws_codec.c common/ws_utf8.c -lcrypto -o fuzz_ws && ./fuzz_ws -max_total_time=60
// clang-format on
/* fuzz_ws.c: libFuzzer target for the WebSocket codec. Walks the input as a
 * stream of frames (both mask policies), and checks that the incremental UTF-8
 * validator agrees with the whole-buffer one however the input is split. */
#include <stdlib.h>
#include <string.h>

#include "ws.h"

/* The codec itself never allocates; these satisfy base.h for the link. */
void *pr_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}
void pr_free(void *p) { free(p); }

static void walk(const uint8_t *data, size_t size, int flags) {
  size_t off = 0;
  while (off < size) {
    pr_ws_frame f;
    int rc = pr_ws_frame_parse(data + off, size - off, flags, &f);
    if (rc != 0) {
      if (rc != PR_ETRUNC && rc != PR_EPROTO) abort();
      return;
    }
    if (f.header_len != pr_ws_header_len(data + off, size - off)) abort();
    if (f.opcode >= 8 && (f.payload_len > PR_WS_MAX_CONTROL || !f.fin)) abort();
    /* Re-encoding the header gives a header that parses to the same frame. */
    uint8_t h[PR_WS_MAX_HEADER];
    size_t hl = pr_ws_frame_header(h, f.opcode, f.fin, f.payload_len, f.masked ? f.mask : NULL);
    pr_ws_frame g;
    if (pr_ws_frame_parse(h, hl, 0, &g) != 0 || g.payload_len != f.payload_len ||
        g.opcode != f.opcode || g.fin != f.fin)
      abort();
    if (f.payload_len > size - off - f.header_len) return;
    size_t len = (size_t)f.payload_len;
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, data + off + f.header_len, len);
    pr_ws_mask(p, len, f.mask, 0);
    if (f.opcode == PR_WS_OP_CLOSE) {
      int code;
      const char *reason;
      size_t rlen;
      if (pr_ws_close_parse(p, len, &code, &reason, &rlen) == 0 && code != 1005 &&
          !pr_ws_close_code_is_valid(code))
        abort();
    }
    free(p);
    off += f.header_len + len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  walk(data, size, PR_WS_REQUIRE_MASK);
  walk(data, size, PR_WS_FORBID_MASK);

  int whole = pr_ws_utf8_check(data, size);
  size_t cut = size ? data[0] % (size + 1) : 0;
  pr_ws_utf8 v;
  pr_ws_utf8_init(&v);
  int rc = pr_ws_utf8_feed(&v, data, cut);
  if (rc == 0) rc = pr_ws_utf8_feed(&v, data + cut, size - cut);
  if (rc == 0) rc = pr_ws_utf8_finish(&v);
  if (rc != whole) abort();
  return 0;
}
