/* The client's presence-frame scanner (clients/c/client_scan.c): it reads the
 * frames the server's writer (proto/json_out.c) produces, gives what jansson
 * would, and declines anything else so the dispatcher falls back to jansson. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "base.h"
#include "client_internal.h"
#include "json_out.h"

static char scratch[512];

static int scan(const char *s, pr_client_entry *e) {
  return client_scan_presence(s, strlen(s), e, scratch, sizeof(scratch));
}

/* The frame the server writes for (user, status, last_seen, version). */
static const char *server_frame(const char *user, size_t ulen, const char *status,
                                uint64_t last_seen, uint64_t version) {
  static pr_buf b;
  pr_buf_clear(&b);
  pr_presence_entry pe = {
      .user = {user, ulen}, .status = status, .last_seen = last_seen, .version = version};
  pr_json_presence(&b, &pe);
  pr_buf_putc(&b, '\0');
  return b.data;
}

/* What jansson (the fallback) makes of the same text. */
static void jansson_entry(const char *s, char *user, size_t cap, uint64_t *ls, uint64_t *ver) {
  json_error_t je;
  json_t *m = json_loads(s, 0, &je);
  cr_assert_not_null(m, "jansson refused %s: %s", s, je.text);
  const char *u = json_string_value(json_object_get(m, "user"));
  cr_assert_not_null(u);
  cr_assert_lt(strlen(u), cap);
  strcpy(user, u);
  json_t *l = json_object_get(m, "last_seen");
  *ls = json_is_integer(l) ? (uint64_t)json_integer_value(l) : 0;
  *ver = (uint64_t)json_integer_value(json_object_get(m, "version"));
  json_decref(m);
}

Test(client_scan, the_server_frame) {
  pr_client_entry e;
  const char *f = server_frame("bob", 3, "offline", 1764423000000ull, 8);
  cr_assert_str_eq(f, "{\"type\":\"presence\",\"user\":\"bob\",\"status\":\"offline\","
                      "\"last_seen\":1764423000000,\"version\":8}");
  cr_assert_eq(scan(f, &e), 0);
  cr_assert_str_eq(e.user, "bob");
  cr_assert_str_eq(e.status, "offline");
  cr_assert_eq(e.last_seen, 1764423000000ull);
  cr_assert_eq(e.version, 8);
}

Test(client_scan, null_last_seen_is_zero) {
  pr_client_entry e;
  cr_assert_eq(scan(server_frame("fu17", 4, "online", 0, 1), &e), 0);
  cr_assert_str_eq(e.user, "fu17");
  cr_assert_str_eq(e.status, "online");
  cr_assert_eq(e.last_seen, 0);
  cr_assert_eq(e.version, 1);
}

Test(client_scan, every_status_the_server_writes) {
  static const char *st[] = {"online", "idle", "dnd", "invisible", "offline", "none"};
  for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
    pr_client_entry e;
    cr_assert_eq(scan(server_frame("u", 1, st[i], 5, 2), &e), 0);
    cr_assert_str_eq(e.status, st[i]);
  }
}

Test(client_scan, escaped_strings_match_jansson) {
  /* every ASCII byte the writer escapes, plus ordinary ones, as a user id */
  char user[128];
  size_t n = 0;
  for (int c = 1; c < 0x20; c++)
    user[n++] = (char)c;
  memcpy(user + n, "a\"b\\c/\x7f", 7);
  n += 7;
  const char *f = server_frame(user, n, "idle", 42, 7);
  cr_assert_not_null(strstr(f, "\\u0001"));
  cr_assert_not_null(strstr(f, "\\n"));
  pr_client_entry e;
  cr_assert_eq(scan(f, &e), 0);
  char ju[256];
  uint64_t ls, ver;
  jansson_entry(f, ju, sizeof(ju), &ls, &ver);
  cr_assert_eq(strlen(e.user), n);
  cr_assert_eq(memcmp(e.user, user, n), 0);
  cr_assert_str_eq(e.user, ju);
  cr_assert_eq(e.last_seen, ls);
  cr_assert_eq(e.version, ver);
  /* escapes the writer does not use but JSON allows */
  cr_assert_eq(scan("{\"type\":\"presence\",\"user\":\"a\\/b\\u0041\\u004a\",\"status\":\"dnd\","
                    "\"last_seen\":null,\"version\":3}",
                    &e),
               0);
  cr_assert_str_eq(e.user, "a/bAJ");
}

Test(client_scan, large_versions) {
  pr_client_entry e;
  cr_assert_eq(scan(server_frame("u", 1, "online", INT64_MAX, INT64_MAX), &e), 0);
  cr_assert_eq(e.version, (uint64_t)INT64_MAX);
  cr_assert_eq(e.last_seen, (uint64_t)INT64_MAX);
  /* past jansson's json_int_t: declined (jansson then reports the frame) */
  cr_assert_eq(scan(server_frame("u", 1, "online", 1, (uint64_t)INT64_MAX + 1), &e), PR_EPROTO);
  cr_assert_eq(scan(server_frame("u", 1, "online", 1, UINT64_MAX), &e), PR_EPROTO);
  cr_assert_eq(scan(server_frame("u", 1, "online", UINT64_MAX, 1), &e), PR_EPROTO);
  cr_assert_eq(scan("{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\","
                    "\"last_seen\":null,\"version\":99999999999999999999999}",
                    &e),
               PR_EPROTO);
}

/* Each must be declined (and e left alone), never half-read. */
Test(client_scan, anything_else_is_declined) {
  static const char *bad[] = {
      "",
      "{",
      "{\"type\":\"pong\"}",
      "{\"type\":\"hello\",\"user\":\"bob\",\"device\":\"d\",\"heartbeat_ms\":20000}",
      "{\"type\":\"heartbeat\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1}",
      /* other layouts that jansson would read */
      "{\"type\": "
      "\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":1}",
      "{\"type\":\"presence\",\"status\":\"online\",\"user\":\"u\",\"last_seen\":null,\"version\":"
      "1}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1} ",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1,"
      "\"x\":0}",
      "{\"type\":\"presence\",\"user\":\"\xc3\xa9\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"\\u00e9\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      /* malformed */
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":nul,\"version\":"
      "1}",
      "{\"type\":\"presence\",\"user\":\"u,\"status\":\"online\",\"last_seen\":null,\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\\\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\\x\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\\u00\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\\u0000\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\tv\",\"status\":\"online\",\"last_seen\":null,"
      "\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":-1,\"version\":1}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "01}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1.5}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1e3}",
      "{\"type\":\"presence\",\"user\":\"u\",\"status\":\"online\",\"last_seen\":null,\"version\":"
      "\"1\"}",
      "{\"type\":\"presence\",\"user\":null,\"status\":\"online\",\"last_seen\":null,\"version\":"
      "1}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    pr_client_entry e = {.user = "keep", .version = 77};
    cr_assert_eq(scan(bad[i], &e), PR_EPROTO, "accepted: %s", bad[i]);
    cr_assert_str_eq(e.user, "keep");
    cr_assert_eq(e.version, 77);
  }
}

Test(client_scan, every_prefix_of_a_frame_is_declined) {
  const char *f = server_frame("al\"ice", 6, "online", 1764423000000ull, 12345);
  size_t n = strlen(f);
  pr_client_entry e;
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(client_scan_presence(f, i, &e, scratch, sizeof(scratch)), PR_EPROTO, "prefix %zu",
                 i);
  cr_assert_eq(client_scan_presence(f, n, &e, scratch, sizeof(scratch)), 0);
}

Test(client_scan, strings_that_do_not_fit_are_declined) {
  const char *f = server_frame("abcdefgh", 8, "online", 0, 1);
  pr_client_entry e;
  char small[16]; /* "abcdefgh\0" fits, "online\0" does not after it */
  cr_assert_eq(client_scan_presence(f, strlen(f), &e, small, 12), PR_EPROTO);
  cr_assert_eq(client_scan_presence(f, strlen(f), &e, small, 8), PR_EPROTO);
  cr_assert_eq(client_scan_presence(f, strlen(f), &e, small, 16), 0);
  cr_assert_str_eq(e.user, "abcdefgh");
  cr_assert_str_eq(e.status, "online");
}
