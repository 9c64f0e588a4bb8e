/* auth_internal.h: what the auth module's files share (auth.c verifies,
 * auth_json.c decodes the parts of a JWT). Not an API for other modules. */
#ifndef PR_AUTH_INTERNAL_H
#define PR_AUTH_INTERNAL_H

#include "ids.h"

#include <stddef.h>

/* Decodes unpadded base64url s[0..len) into out (room for len * 3 / 4 bytes).
 * Strict: only the 64 URL-safe characters, no padding, no length of the form
 * 4k+1, and the unused low bits of the last character must be zero (so a
 * byte string has exactly one encoding). Returns the decoded length or -1. */
long pr_auth_b64url_decode(const char *s, size_t len, unsigned char *out);

/* 0 if json[0..len) is a JOSE header this module accepts: one JSON object
 * whose "alg" is a string equal to `alg`, without "crit" (no extension is
 * understood). Else PR_EAUTH. */
int pr_auth_json_header(const unsigned char *json, size_t len, const char *alg);

/* The claims auth.c reads. has_* say whether the member was present. */
typedef struct {
  char sub[PR_ID_MAX + 1]; /* set only when has_sub: a string valid per pr_id_is_valid */
  int has_sub, has_exp, has_nbf;
  long long exp, nbf; /* NumericDate, a fraction truncated toward zero */
  int admin;          /* "role" is the string "admin" */
} pr_auth_json_claims;

/* Parses a JWT payload. 0 and *out, or PR_EAUTH when json is not one JSON
 * object, or sub is present but not a valid id string, or exp / nbf are
 * present but not numbers within the range of a long long. */
int pr_auth_json_claims_parse(const unsigned char *json, size_t len, pr_auth_json_claims *out);

#endif
