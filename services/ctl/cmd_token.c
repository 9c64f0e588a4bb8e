/* cmd_token.c: `presencectl token --user U [--admin] [--ttl S]` mints an
 * HS256 token with the configured secret and prints it. */
#include "ctl.h"

#include "auth.h"
#include "base.h"

#include <stdio.h>
#include <string.h>

typedef struct {
  char *user;
  int admin;
  long long ttl;
} token_opts;

static const pr_setting table[] = {
    {"user", PR_SET_STRING, NULL, 0, 0, NULL, NULL, offsetof(token_opts, user),
     "the user id (the token's sub)"},
    {"admin", PR_SET_BOOL, "false", 0, 0, NULL, NULL, offsetof(token_opts, admin),
     "role admin: may edit the graph"},
    {"ttl", PR_SET_INT, "3600", 1, 31536000, NULL, NULL, offsetof(token_opts, ttl),
     "seconds until the token expires"},
};

static const pr_settings_info info = {
    .program = "presencectl token",
    .description = "Mint an HS256 client token with --jwt-secret (or PRESENCE_JWT_SECRET)",
    .usage = "presencectl [--jwt-secret S] token --user U [--admin] [--ttl S]",
    .version = PR_VERSION,
};

int ctl_cmd_token(ctl *c, int argc, char **argv) {
  token_opts o = {0};
  char err[256];
  int argi, status = 2;
  int rc =
      pr_settings_load(table, PR_ARRAY_LEN(table), &o, argc, argv, &info, &argi, err, sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presencectl token: %s\n", err);
    return 2;
  }
  if (argi < argc) {
    fprintf(stderr, "presencectl token: unexpected argument '%s'\n", argv[argi]);
  } else if (!o.user || !pr_id_is_valid(o.user, strlen(o.user))) {
    fprintf(stderr, "presencectl token: --user must be 1-64 characters of A-Z a-z 0-9 _ . : @ -\n");
  } else if (!c->cfg.common.jwt_secret || !*c->cfg.common.jwt_secret) {
    fprintf(stderr, "presencectl token: give --jwt-secret or set PRESENCE_JWT_SECRET\n");
  } else {
    char *tok = NULL;
    if (pr_auth_mint_hs256(c->cfg.common.jwt_secret, o.user, o.admin, o.ttl, &tok) == 0) {
      printf("%s\n", tok);
      pr_free(tok);
      status = 0;
    } else {
      fprintf(stderr, "presencectl token: cannot mint the token\n");
      status = 1;
    }
  }
  pr_settings_free(table, PR_ARRAY_LEN(table), &o);
  return status;
}
