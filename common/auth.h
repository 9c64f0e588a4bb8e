/* auth.h: verifies client JWTs (HS256 with a shared secret, or RS256/ES256
 * with a public key so the service cannot mint tokens) and mints HS256 tokens
 * for presencectl and tests.
 *
 * Ownership: pr_auth_new gives the caller a pr_auth freed with pr_auth_free.
 * pr_auth_mint_hs256 gives the caller a string freed with pr_free.
 * A pr_auth is read-only after creation (verify may be called from any thread). */
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
} pr_auth_opts;

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
 * passed (exp <= now, no leeway), or PR_EAUTH for anything else: malformed,
 * bad signature, alg "none" or any alg other than the configured one (the
 * header is checked before libjwt sees the token), missing or non-integer
 * exp, nbf in the future, missing or invalid sub, too long. */
int pr_auth_verify(const pr_auth *a, const char *token, size_t len, pr_claims *out);

/* Mints an HS256 token {sub, exp = now + ttl_s, role: "admin" if admin}.
 * Returns 0 and *out (caller frees with pr_free), or PR_EINVAL (empty
 * secret, invalid sub). */
int pr_auth_mint_hs256(const char *secret, const char *sub, int admin, long long ttl_s, char **out);

/* Finds the token in an Authorization header value "Bearer <token>" (scheme
 * case-insensitive). Returns 0 with *tok and *toklen pointing into `value`, or
 * PR_EAUTH. */
int pr_auth_parse_bearer(const char *value, size_t len, const char **tok, size_t *toklen);

#endif
