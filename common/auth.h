/* auth.h: verifies client JWTs (HS256 with a shared secret, or RS256/ES256
 * with a public key so the service cannot mint tokens) and mints HS256 tokens
 * for presencectl and tests.
 *
 * Ownership: pr_auth_new gives the caller a pr_auth freed with pr_auth_free.
 * pr_auth_mint_hs256 gives the caller a string freed with pr_free.
 * Without a cache a pr_auth is read-only after creation (verify may be called
 * from any thread); with one (cache_entries > 0) verify updates the cache, so
 * call it from one thread at a time (the service's loop). */
#ifndef PR_AUTH_H
#define PR_AUTH_H

#include "ids.h"

#include <stddef.h>

/* Tokens longer than this are rejected without decoding. */
#define PR_AUTH_MAX_TOKEN 8192

typedef struct pr_auth pr_auth;

typedef struct {
  const char *hs256_secret;    /* shared secret, or NULL */
  const char *public_key_path; /* PEM public key file (RSA -> RS256, EC P-256 -> ES256), or NULL */
  /* Verified tokens remembered (0: no cache). A client repeats its token on
   * every request, so a hit skips the signature and JSON work. Rounded up to
   * a multiple of PR_AUTH_CACHE_WAYS; tokens longer than
   * PR_AUTH_CACHE_MAX_TOKEN are never cached. */
  unsigned cache_entries;
  long long (*now)(void); /* seconds since the epoch; NULL: time(). For tests. */
} pr_auth_opts;

#define PR_AUTH_CACHE_WAYS      8
#define PR_AUTH_CACHE_MAX_TOKEN 1024

typedef struct {
  char sub[PR_ID_MAX + 1]; /* the user id, valid per pr_id_is_valid */
  int admin;               /* claim "role" == "admin" */
  long long exp;           /* seconds since the epoch */
} pr_claims;

/* Exactly one of hs256_secret (non-empty) and public_key_path must be given.
 * Returns 0, or PR_ECONFIG with a message in err (unreadable key, not a
 * public key, unsupported key type or curve). */
int pr_auth_new(const pr_auth_opts *o, pr_auth **out, char *err, size_t errlen);
void pr_auth_free(pr_auth *a);
/* "HS256", "RS256" or "ES256". */
const char *pr_auth_alg(const pr_auth *a);

/* Verifies token[0..len). Returns 0 and fills *out, PR_EEXPIRED when exp has
 * passed (exp <= now, no leeway), or PR_EAUTH for anything else: malformed
 * (base64url in its canonical form only; header and payload strict JSON
 * objects, see auth_json.c), bad signature, alg "none" or any alg other than
 * the configured one (for RS256/ES256 the header is checked before libjwt
 * sees the token), a member this module reads given twice, missing exp or
 * exp / nbf not a number in the range of a long long (a fraction is
 * truncated), nbf in the future, missing or invalid sub, too long. */
int pr_auth_verify(const pr_auth *a, const char *token, size_t len, pr_claims *out);

/* The verified-token cache. Only a token that passed every check above is
 * stored, with its claims; a lookup compares the whole token, byte for byte
 * (the hash only picks the set). A hit re-checks exp and nbf against the
 * clock, so it answers exactly what a full verification would: an expired
 * entry answers PR_EEXPIRED and is dropped. A full set evicts its least
 * recently used entry. */
typedef struct {
  unsigned long long hits, misses, evictions;
  size_t entries, capacity;
} pr_auth_cache_stats;
/* All zero when the pr_auth has no cache. */
void pr_auth_cache_stats_get(const pr_auth *a, pr_auth_cache_stats *out);

/* Mints an HS256 token {sub, exp = now + ttl_s, role: "admin" if admin}.
 * Returns 0 and *out (caller frees with pr_free), or PR_EINVAL (empty
 * secret, invalid sub). */
int pr_auth_mint_hs256(const char *secret, const char *sub, int admin, long long ttl_s, char **out);

/* Finds the token in an Authorization header value "Bearer <token>" (scheme
 * case-insensitive). Returns 0 with *tok and *toklen pointing into `value`, or
 * PR_EAUTH. */
int pr_auth_parse_bearer(const char *value, size_t len, const char **tok, size_t *toklen);

#endif
