/* JSON output: string escaping (control characters, quote, backslash, UTF-8
 * pass-through and replacement of invalid UTF-8) and the exact frames. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "json_out.h"

/* pr_json_str of s[0..len) as a C string (static storage, one at a time). */
static const char *esc(const char *s, size_t len, size_t *replaced) {
  static pr_buf b;
  pr_buf_clear(&b);
  size_t r = pr_json_str(&b, s, len);
  if (replaced) *replaced = r;
  pr_buf_putc(&b, '\0');
  return b.data;
}

#define ESC(lit) esc((lit), sizeof(lit) - 1, NULL)

Test(proto_json, every_control_character) {
  for (int c = 0; c < 0x20; c++) {
    char in = (char)c, want[16];
    switch (c) {
    case '\b': strcpy(want, "\"\\b\""); break;
    case '\f': strcpy(want, "\"\\f\""); break;
    case '\n': strcpy(want, "\"\\n\""); break;
    case '\r': strcpy(want, "\"\\r\""); break;
    case '\t': strcpy(want, "\"\\t\""); break;
    default: snprintf(want, sizeof want, "\"\\u%04x\"", c);
    }
    cr_assert_str_eq(esc(&in, 1, NULL), want, "control 0x%02x", c);
  }
  cr_assert_str_eq(ESC("\x7f"), "\"\\u007f\"");
  cr_assert_str_eq(esc("a\0b", 3, NULL), "\"a\\u0000b\"", "NUL inside the string");
}

Test(proto_json, quote_backslash_and_plain) {
  cr_assert_str_eq(ESC(""), "\"\"");
  cr_assert_str_eq(ESC("alice"), "\"alice\"");
  cr_assert_str_eq(ESC("say \"hi\""), "\"say \\\"hi\\\"\"");
  cr_assert_str_eq(ESC("a\\b"), "\"a\\\\b\"");
  cr_assert_str_eq(ESC("</script>"), "\"</script>\"", "slash is not escaped");
  cr_assert_str_eq(ESC("line1\nline2\ttab"), "\"line1\\nline2\\ttab\"");
}

Test(proto_json, valid_utf8_passes_through) {
  size_t r;
  cr_assert_str_eq(esc("caf\xc3\xa9", 5, &r), "\"caf\xc3\xa9\""); /* é */
  cr_assert_eq(r, 0);
  cr_assert_str_eq(ESC("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\""); /* 😀 */
  cr_assert_str_eq(ESC("\xe2\x82\xac 5"), "\"\xe2\x82\xac 5\"");     /* € */
  cr_assert_str_eq(ESC("\xe2\x80\xa8"), "\"\xe2\x80\xa8\"");         /* U+2028 */
  cr_assert_str_eq(ESC("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
  cr_assert_str_eq(ESC("\xef\xbf\xbd"), "\"\xef\xbf\xbd\"");         /* U+FFFD itself */
}

#define FFFD "\xef\xbf\xbd"

Test(proto_json, invalid_utf8_is_replaced) {
  size_t r;
  cr_assert_str_eq(esc("a\x80z", 3, &r), "\"a" FFFD "z\"", "stray continuation");
  cr_assert_eq(r, 1);
  cr_assert_str_eq(esc("\xff\xfe", 2, &r), "\"" FFFD FFFD "\"", "never-valid bytes");
  cr_assert_eq(r, 2);
  cr_assert_str_eq(ESC("\xc0\xaf"), "\"" FFFD FFFD "\"", "overlong '/' (C0 is never valid)");
  cr_assert_str_eq(ESC("\xe0\x80\xaf"), "\"" FFFD FFFD FFFD "\"", "overlong 3-byte");
  cr_assert_str_eq(ESC("\xed\xa0\x80"), "\"" FFFD FFFD FFFD "\"", "surrogate D800");
  cr_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"", "over U+10FFFF");
  cr_assert_str_eq(esc("\xe2\x82z", 3, &r), "\"" FFFD "z\"", "truncated 3-byte: one U+FFFD");
  cr_assert_eq(r, 1);
  cr_assert_str_eq(ESC("\xf0\x9f\x98"), "\"" FFFD "\"", "truncated at the end");
  cr_assert_str_eq(ESC("\xc3\"x"), "\"" FFFD "\\\"x\"", "the byte that ends it is kept");
  cr_assert_str_eq(ESC("\xc3\xa9\x80\xc3\xa9"), "\"\xc3\xa9" FFFD "\xc3\xa9\"");
}

Test(proto_json, numbers) {
  pr_buf b = PR_BUF_INIT;
  pr_json_u64(&b, 0);
  pr_buf_putc(&b, ' ');
  pr_json_u64(&b, 1764423000000);
  pr_buf_putc(&b, ' ');
  pr_json_u64(&b, UINT64_MAX);
  cr_assert_str_eq(b.data, "0 1764423000000 18446744073709551615");
  pr_buf_free(&b);
}

static const pr_presence_entry entries[] = {
    {PR_VIEW_INIT("bob"), "online", 0, 3},
    {PR_VIEW_INIT("carol"), "offline", 1764423000000, 8},
};

Test(proto_json, frames) {
  pr_buf b = PR_BUF_INIT;
  pr_json_hello(&b, PR_VIEW("alice"), PR_VIEW("laptop"), 20000);
  cr_assert_str_eq(
      b.data,
      "{\"type\":\"hello\",\"user\":\"alice\",\"device\":\"laptop\",\"heartbeat_ms\":20000}");
  pr_buf_clear(&b);
  pr_json_snapshot(&b, entries, 2);
  cr_assert_str_eq(b.data,
                   "{\"type\":\"snapshot\",\"users\":["
                   "{\"user\":\"bob\",\"status\":\"online\",\"last_seen\":null,\"version\":3},"
                   "{\"user\":\"carol\",\"status\":\"offline\",\"last_seen\":1764423000000,"
                   "\"version\":8}]}");
  pr_buf_clear(&b);
  pr_json_snapshot(&b, NULL, 0);
  cr_assert_str_eq(b.data, "{\"type\":\"snapshot\",\"users\":[]}");
  pr_buf_clear(&b);
  pr_json_presence(&b, &entries[1]);
  cr_assert_str_eq(b.data, "{\"type\":\"presence\",\"user\":\"carol\",\"status\":\"offline\","
                           "\"last_seen\":1764423000000,\"version\":8}");
  pr_buf_clear(&b);
  pr_json_presence(&b, &entries[0]);
  cr_assert_str_eq(b.data, "{\"type\":\"presence\",\"user\":\"bob\",\"status\":\"online\","
                           "\"last_seen\":null,\"version\":3}");
  pr_buf_clear(&b);
  pr_json_group(&b, PR_VIEW("g"), 2, entries, 2);
  cr_assert_str_eq(b.data,
                   "{\"type\":\"group\",\"group\":\"g\",\"online\":2,\"users\":["
                   "{\"user\":\"bob\",\"status\":\"online\",\"last_seen\":null,\"version\":3},"
                   "{\"user\":\"carol\",\"status\":\"offline\",\"last_seen\":1764423000000,"
                   "\"version\":8}]}");
  pr_buf_clear(&b);
  pr_json_presence_batch(&b, PR_VIEW("big"), 1234, entries, 1);
  cr_assert_str_eq(b.data, "{\"type\":\"presence_batch\",\"group\":\"big\",\"online\":1234,"
                           "\"users\":[{\"user\":\"bob\",\"status\":\"online\",\"last_seen\":null,"
                           "\"version\":3}]}");
  pr_buf_clear(&b);
  pr_json_error(&b, "bad_request", "bad \"type\"\n");
  cr_assert_str_eq(
      b.data, "{\"type\":\"error\",\"code\":\"bad_request\",\"message\":\"bad \\\"type\\\"\\n\"}");
  pr_buf_clear(&b);
  pr_json_pong(&b);
  cr_assert_str_eq(b.data, "{\"type\":\"pong\"}");
  pr_buf_clear(&b);
  pr_json_presence_body(&b, entries, 2);
  cr_assert_str_eq(b.data,
                   "{\"users\":["
                   "{\"user\":\"bob\",\"status\":\"online\",\"last_seen\":null,\"version\":3},"
                   "{\"user\":\"carol\",\"status\":\"offline\",\"last_seen\":1764423000000,"
                   "\"version\":8}]}");
  pr_buf_clear(&b);
  pr_json_presence_body(&b, NULL, 0);
  cr_assert_str_eq(b.data, "{\"users\":[]}");
  pr_buf_free(&b);
}

Test(proto_json, writers_append_and_escape_fields) {
  pr_buf b = PR_BUF_INIT;
  pr_buf_puts(&b, "X");
  pr_json_pong(&b);
  cr_assert_str_eq(b.data, "X{\"type\":\"pong\"}", "appends, does not clear");
  pr_buf_clear(&b);
  pr_presence_entry e = {{"a\"b", 3}, pr_status_name(PR_STATUS_INVISIBLE), 0, 1};
  pr_json_presence(&b, &e);
  cr_assert_str_eq(b.data, "{\"type\":\"presence\",\"user\":\"a\\\"b\",\"status\":\"invisible\","
                           "\"last_seen\":null,\"version\":1}");
  pr_buf_free(&b);
}
