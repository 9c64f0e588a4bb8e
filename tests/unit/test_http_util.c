/* test_http_util.c: the HTTP module's pure helpers: host:port parsing,
 * percent-decoding and status texts. */
#include <criterion/criterion.h>
#include <string.h>
#include "base.h"
#include "http.h"

Test(http_util, hostport_valid) {
  char host[64];
  int port = -1;
  cr_assert_eq(pr_http_parse_hostport("127.0.0.1:8080", host, sizeof host, &port), 0);
  cr_assert_str_eq(host, "127.0.0.1");
  cr_assert_eq(port, 8080);
  cr_assert_eq(pr_http_parse_hostport("[::1]:0", host, sizeof host, &port), 0);
  cr_assert_str_eq(host, "::1");
  cr_assert_eq(port, 0);
  cr_assert_eq(pr_http_parse_hostport("redis-1.local:65535", host, sizeof host, &port), 0);
  cr_assert_str_eq(host, "redis-1.local");
  cr_assert_eq(port, 65535);
}

Test(http_util, hostport_invalid) {
  static const char *bad[] = {"",        "127.0.0.1", "127.0.0.1:",  ":80",      "host:65536",
                              "host:-1", "host:8o",   "::1:80",      "[::1]80",  "[::1:80",
                              "[]:80",   "a b:80",    "host:123456", "[::g]:80", "h/x:80"};
  char host[64];
  int port;
  for (size_t i = 0; i < PR_ARRAY_LEN(bad); i++)
    cr_assert_eq(pr_http_parse_hostport(bad[i], host, sizeof host, &port), PR_EINVAL, "%s", bad[i]);
  cr_assert_eq(pr_http_parse_hostport(NULL, host, sizeof host, &port), PR_EINVAL);
  char tiny[4];
  cr_assert_eq(pr_http_parse_hostport("abcd:1", tiny, sizeof tiny, &port), PR_EINVAL);
  cr_assert_eq(pr_http_parse_hostport("abc:1", tiny, sizeof tiny, &port), 0);
}

Test(http_util, percent_decode) {
  char out[16];
  cr_assert_eq(pr_http_percent_decode("a%20b+c", 7, out, sizeof out, 1), 5);
  cr_assert_str_eq(out, "a b c");
  cr_assert_eq(pr_http_percent_decode("a%20b+c", 7, out, sizeof out, 0), 5);
  cr_assert_str_eq(out, "a b+c");
  cr_assert_eq(pr_http_percent_decode("%e2%82%AC", 9, out, sizeof out, 0), 3);
  cr_assert_str_eq(out, "\xe2\x82\xac");
  cr_assert_eq(pr_http_percent_decode("", 0, out, sizeof out, 0), 0);
  cr_assert_str_eq(out, "");
  cr_assert_eq(pr_http_percent_decode("%", 1, out, sizeof out, 0), PR_EPROTO);
  cr_assert_eq(pr_http_percent_decode("%4", 2, out, sizeof out, 0), PR_EPROTO);
  cr_assert_eq(pr_http_percent_decode("%4g", 3, out, sizeof out, 0), PR_EPROTO);
  cr_assert_eq(pr_http_percent_decode("%00", 3, out, sizeof out, 0), PR_EPROTO);
  cr_assert_eq(pr_http_percent_decode("abcd", 4, out, 4, 0), PR_ETOOBIG);
  cr_assert_eq(pr_http_percent_decode("abc", 3, out, 4, 0), 3);
  cr_assert_eq(pr_http_percent_decode("abc", 3, out, 0, 0), PR_ETOOBIG);
  cr_assert_eq(pr_http_percent_decode("ab%41", 3, out, sizeof out, 0), PR_EPROTO); /* cut */
  cr_assert_eq(pr_http_percent_decode("ab%41", 5, out, sizeof out, 0), 3);
  cr_assert_str_eq(out, "abA");
}

Test(http_util, status_text) {
  cr_assert_str_eq(pr_http_status_text(200), "OK");
  cr_assert_str_eq(pr_http_status_text(404), "Not Found");
  cr_assert_str_eq(pr_http_status_text(431), "Request Header Fields Too Large");
  cr_assert_str_eq(pr_http_status_text(799), "Unknown");
}
