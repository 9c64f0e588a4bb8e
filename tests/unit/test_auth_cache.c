/* Auth: the verified-token cache answers exactly what a full verification
 * would (expiry, nbf, other tokens), stays within its size, and never keeps
 * a token that failed. The clock is the test's (opts.now). */
#include "auth.h"
#include "base.h"

#include <criterion/criterion.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET "cache-secret-0123456789"

static long long fake_now;
static long long clock_fn(void) { return fake_now; }

static void setup(void) { fake_now = (long long)time(NULL); }
TestSuite(auth_cache, .init = setup);

static pr_auth *cached(unsigned entries) {
  char err[256];
  pr_auth *a = NULL;
  pr_auth_opts o = {.hs256_secret = SECRET, .cache_entries = entries, .now = clock_fn};
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), 0, "%s", err);
  return a;
}

/* An HS256 token with exp = fake_now + exp_in and the extra claims (JSON members). */
static char *token(const char *secret, const char *sub, long long exp_in, const char *extra) {
  char claims[PR_AUTH_CACHE_MAX_TOKEN + 256];
  snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%lld%s%s}", sub, fake_now + exp_in,
           extra ? "," : "", extra ? extra : "");
  jwt_t *jwt = NULL;
  cr_assert_eq(jwt_new(&jwt), 0);
  cr_assert_eq(jwt_add_grants_json(jwt, claims), 0);
  cr_assert_eq(jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)),
               0);
  char *s = jwt_encode_str(jwt);
  jwt_free(jwt);
  char *out = pr_strdup(s);
  free(s);
  return out;
}

static int verify(pr_auth *a, const char *tok, pr_claims *c) {
  return pr_auth_verify(a, tok, strlen(tok), c);
}

static pr_auth_cache_stats stats(pr_auth *a) {
  pr_auth_cache_stats s;
  pr_auth_cache_stats_get(a, &s);
  return s;
}

Test(auth_cache, repeat_is_a_hit_with_the_same_claims) {
  pr_auth *a = cached(64);
  char *tok = token(SECRET, "alice", 60, "\"role\":\"admin\"");
  pr_claims c1, c2;
  cr_assert_eq(verify(a, tok, &c1), 0);
  cr_assert_eq(verify(a, tok, &c2), 0);
  cr_assert_str_eq(c2.sub, "alice");
  cr_assert_eq(c2.admin, 1);
  cr_assert_eq(c2.exp, fake_now + 60);
  cr_assert_eq(memcmp(&c1, &c2, sizeof(c1)), 0);
  pr_auth_cache_stats s = stats(a);
  cr_assert_eq(s.misses, 1);
  cr_assert_eq(s.hits, 1);
  cr_assert_eq(s.entries, 1);
  cr_assert_eq(s.capacity, 64);
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth_cache, expired_entry_is_not_served) {
  pr_auth *a = cached(64);
  char *tok = token(SECRET, "bob", 10, NULL);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  fake_now += 9;
  cr_assert_eq(verify(a, tok, &c), 0, "one second left");
  fake_now += 1; /* exp <= now: expired, no leeway, as without the cache */
  cr_assert_eq(verify(a, tok, &c), PR_EEXPIRED);
  cr_assert_str_eq(c.sub, "", "no claims for an expired token");
  cr_assert_eq(stats(a).entries, 0, "the expired entry is dropped");
  cr_assert_eq(verify(a, tok, &c), PR_EEXPIRED, "and a full verification says the same");
  cr_assert_eq(stats(a).entries, 0, "an expired token is not cached");
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth_cache, nbf_is_checked_again_on_a_hit) {
  pr_auth *a = cached(64);
  char nbf[64];
  snprintf(nbf, sizeof(nbf), "\"nbf\":%lld", fake_now - 5);
  char *tok = token(SECRET, "carol", 60, nbf);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  fake_now -= 10; /* the clock went back before nbf */
  cr_assert_eq(verify(a, tok, &c), PR_EAUTH);
  fake_now += 10;
  cr_assert_eq(verify(a, tok, &c), 0);
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth_cache, a_token_that_fails_is_not_cached) {
  pr_auth *a = cached(64);
  char *bad = token("another-secret", "mallory", 60, NULL);
  pr_claims c;
  for (int i = 0; i < 3; i++)
    cr_assert_eq(verify(a, bad, &c), PR_EAUTH);
  pr_auth_cache_stats s = stats(a);
  cr_assert_eq(s.entries, 0);
  cr_assert_eq(s.hits, 0);
  cr_assert_eq(s.misses, 3, "each attempt was verified in full");
  pr_free(bad);
  pr_auth_free(a);
}

Test(auth_cache, same_prefix_different_token_is_verified_in_full) {
  pr_auth *a = cached(64);
  char *tok = token(SECRET, "dave", 60, NULL);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  size_t n = strlen(tok);
  /* Same bytes but one signature character near the end (the very last one
   * also carries padding bits). */
  char *forged = pr_strdup(tok);
  forged[n - 2] = forged[n - 2] == 'A' ? 'B' : 'A';
  cr_assert_eq(verify(a, forged, &c), PR_EAUTH);
  /* The cached token as a prefix of a longer one, and a prefix of it. */
  char *longer = pr_malloc(n + 3);
  snprintf(longer, n + 3, "%sAA", tok);
  cr_assert_eq(verify(a, longer, &c), PR_EAUTH);
  cr_assert_eq(pr_auth_verify(a, tok, n - 1, &c), PR_EAUTH);
  /* Same signature on another payload. */
  char *other = token(SECRET, "erin", 60, NULL);
  const char *sig = strrchr(tok, '.');
  char *swapped = pr_malloc(strlen(other) + strlen(sig) + 1);
  memcpy(swapped, other, (size_t)(strrchr(other, '.') - other));
  strcpy(swapped + (strrchr(other, '.') - other), sig);
  cr_assert_eq(verify(a, swapped, &c), PR_EAUTH);
  cr_assert_eq(stats(a).entries, 1, "only the genuine token is cached");
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_str_eq(c.sub, "dave");
  pr_free(tok);
  pr_free(forged);
  pr_free(longer);
  pr_free(other);
  pr_free(swapped);
  pr_auth_free(a);
}

Test(auth_cache, full_cache_evicts_the_least_recently_used) {
  pr_auth *a = cached(PR_AUTH_CACHE_WAYS); /* one set */
  char *t[PR_AUTH_CACHE_WAYS + 1];
  pr_claims c;
  for (int i = 0; i <= PR_AUTH_CACHE_WAYS; i++) {
    char sub[16];
    snprintf(sub, sizeof(sub), "u%d", i);
    t[i] = token(SECRET, sub, 60, NULL);
  }
  for (int i = 0; i < PR_AUTH_CACHE_WAYS; i++)
    cr_assert_eq(verify(a, t[i], &c), 0);
  cr_assert_eq(verify(a, t[0], &c), 0, "t0 used again: t1 is now the oldest");
  cr_assert_eq(verify(a, t[PR_AUTH_CACHE_WAYS], &c), 0);
  pr_auth_cache_stats s = stats(a);
  cr_assert_eq(s.entries, PR_AUTH_CACHE_WAYS, "bounded");
  cr_assert_eq(s.evictions, 1);
  unsigned long long misses = s.misses;
  cr_assert_eq(verify(a, t[0], &c), 0);
  cr_assert_eq(stats(a).misses, misses, "t0 stayed");
  cr_assert_eq(verify(a, t[1], &c), 0, "an evicted token still verifies, in full");
  cr_assert_str_eq(c.sub, "u1");
  cr_assert_eq(stats(a).misses, misses + 1, "t1 was the one evicted");
  for (int i = 0; i <= PR_AUTH_CACHE_WAYS; i++)
    pr_free(t[i]);
  pr_auth_free(a);
}

Test(auth_cache, many_tokens_stay_within_capacity) {
  pr_auth *a = cached(100); /* rounded up to 128 */
  pr_claims c;
  for (int i = 0; i < 1000; i++) {
    char sub[16];
    snprintf(sub, sizeof(sub), "m%d", i);
    char *tok = token(SECRET, sub, 60, NULL);
    cr_assert_eq(verify(a, tok, &c), 0);
    cr_assert_str_eq(c.sub, sub);
    pr_free(tok);
  }
  pr_auth_cache_stats s = stats(a);
  cr_assert_eq(s.capacity, 128);
  cr_assert_leq(s.entries, 128);
  cr_assert_eq(s.entries + s.evictions, 1000);
  pr_auth_free(a);
}

Test(auth_cache, long_tokens_are_not_cached) {
  pr_auth *a = cached(64);
  char pad[PR_AUTH_CACHE_MAX_TOKEN + 16];
  memset(pad, 'x', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  char extra[sizeof(pad) + 16];
  snprintf(extra, sizeof(extra), "\"pad\":\"%s\"", pad);
  char *tok = token(SECRET, "frank", 60, extra);
  cr_assert_gt(strlen(tok), PR_AUTH_CACHE_MAX_TOKEN);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_eq(stats(a).entries, 0);
  cr_assert_eq(stats(a).hits, 0);
  pr_free(tok);
  pr_auth_free(a);
}

Test(auth_cache, no_cache_by_default) {
  char err[256];
  pr_auth *a = NULL;
  pr_auth_opts o = {.hs256_secret = SECRET};
  cr_assert_eq(pr_auth_new(&o, &a, err, sizeof(err)), 0, "%s", err);
  char *tok = token(SECRET, "gina", 60, NULL);
  pr_claims c;
  cr_assert_eq(verify(a, tok, &c), 0);
  cr_assert_eq(verify(a, tok, &c), 0);
  pr_auth_cache_stats s = stats(a);
  cr_assert_eq(s.capacity + s.entries + s.hits + s.misses, 0);
  pr_free(tok);
  pr_auth_free(a);
}
