// clang-format off
// clang -g -O1 -fsanitize=fuzzer,address,undefined -Iproto -Icommon tests/fuzz/fuzz_proto.c proto/*.c common/base_alloc.c common/base_buf.c common/base_err.c -lmsgpackc -o fuzz_proto && ./fuzz_proto -max_total_time=60
// clang-format on
/* fuzz_proto.c: libFuzzer target for the wire decoders and the JSON string
 * writer. Every input must decode to an error or to views inside the input,
 * and pr_json_str must always produce valid UTF-8 with no raw control byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "batch.h"
#include "event.h"
#include "json_out.h"

static const char *lo, *hi;

static void check_view(pr_view v) {
  if (v.len < 1 || v.len > PR_ID_MAX || v.p < lo || v.p + v.len > hi) abort();
}

static void check_list(const pr_id_list *l) {
  size_t pos = 0, n = 0;
  pr_view id;
  while (pr_id_list_next(l, &pos, &id))
    check_view(id), n++;
  if (n != l->n) abort();
}

static int visit(const pr_delivery *d, void *arg) {
  check_view(d->user);
  check_list(&d->recipients);
  ++*(size_t *)arg;
  return 0;
}

static void check_json(const char *s, size_t len) {
  pr_buf b = PR_BUF_INIT;
  pr_json_str(&b, s, len);
  const unsigned char *p = (const unsigned char *)b.data;
  if (b.len < 2 || p[0] != '"' || p[b.len - 1] != '"') abort();
  for (size_t i = 1; i + 1 < b.len; i++) {
    if (p[i] < 0x20 || p[i] == 0x7f) abort();
    if (p[i] == '"' && p[i - 1] != '\\') abort(); /* crude: an unescaped quote */
  }
  /* the output is valid UTF-8: writing it again replaces nothing */
  pr_buf again = PR_BUF_INIT;
  if (pr_json_str(&again, b.data + 1, b.len - 2) != 0) abort();
  pr_buf_free(&again);
  pr_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  lo = p;
  hi = p + size;
  pr_event ev;
  if (pr_event_decode(p, size, &ev) == 0) {
    check_view(ev.user);
    check_list(&ev.to);
    if (!pr_status_name(ev.status)) abort();
  }
  size_t n = 0;
  pr_view sender;
  int rc = pr_batch_decode(p, size, NULL, &sender, visit, &n);
  if (rc == 0)
    check_view(sender);
  else if (n != 0)
    abort(); /* a refused batch delivers nothing */
  check_json(p, size);
  return 0;
}
