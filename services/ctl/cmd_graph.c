/* cmd_graph.c: `presencectl graph ...`: add or remove contacts and group
 * members, list a group, import edits from a file (pipelined). */
#include "ctl.h"

#include "base.h"
#include "ids.h"

#include <stdio.h>
#include <string.h>

static const pr_settings_info info = {
    .program = "presencectl graph",
    .description = "Edit the user/group graph in Redis",
    .usage = "presencectl graph contact add|remove U C | member add|remove G U | members G | "
             "import FILE",
    .version = PR_VERSION,
};

static void on_done(int err, void *arg) {
  ctl *c = arg;
  c->pending--;
  if (err) {
    c->failed = 1;
    fprintf(stderr, "presencectl graph: %s\n", pr_strerror(err));
  }
}

static int valid(const char *what, const char *id) {
  if (pr_id_is_valid(id, strlen(id))) return 1;
  fprintf(stderr, "presencectl graph: bad %s id '%s' (1-64 of A-Z a-z 0-9 _ . : @ -)\n", what, id);
  return 0;
}

/* Queues one edit: kind "contact" (a = user, b = contact) or "member"
 * (a = group, b = user), op "add" or "remove". Returns 0 or prints why. */
static int queue_edit(ctl *c, const char *kind, const char *op, const char *a, const char *b) {
  int add = strcmp(op, "add") == 0;
  if (!add && strcmp(op, "remove") != 0) {
    fprintf(stderr, "presencectl graph: '%s' is not add or remove\n", op);
    return 1;
  }
  int rc;
  if (strcmp(kind, "contact") == 0) {
    if (!valid("user", a) || !valid("contact", b)) return 1;
    rc = (add ? pr_graph_contact_add : pr_graph_contact_remove)(c->store, a, b, on_done, c);
  } else if (strcmp(kind, "member") == 0) {
    if (!valid("group", a) || !valid("user", b)) return 1;
    rc = (add ? pr_graph_member_add : pr_graph_member_remove)(c->store, a, b, on_done, c);
  } else {
    fprintf(stderr, "presencectl graph: '%s' is not contact or member\n", kind);
    return 1;
  }
  if (rc) {
    fprintf(stderr, "presencectl graph: %s\n", pr_strerror(rc));
    return 1;
  }
  c->pending++;
  return 0;
}

/* Lines: "contact U C" or "member G U" (add), or "-contact U C" to remove. */
static int import_file(ctl *c, const char *path) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (!f) {
    fprintf(stderr, "presencectl graph import: cannot open %s\n", path);
    return 1;
  }
  char line[512];
  int lineno = 0, bad = 0;
  unsigned applied = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char kind[16], a[128], b[128], extra[2];
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    int n = sscanf(line, "%15s %127s %127s %1s", kind, a, b, extra);
    if (n <= 0) continue;
    const char *k = kind[0] == '-' ? kind + 1 : kind;
    if (n != 3 || queue_edit(c, k, kind[0] == '-' ? "remove" : "add", a, b)) {
      fprintf(stderr, "%s:%d: expected 'contact USER CONTACT' or 'member GROUP USER'\n", path,
              lineno);
      bad = 1;
      break;
    }
    applied++;
    if (c->pending >= 1000 && ctl_wait(c)) break; /* bound what is in flight */
  }
  if (f != stdin) fclose(f);
  int rc = ctl_wait(c);
  if (!bad && !rc) printf("imported %u edits\n", applied);
  return bad || rc;
}

/* One page of `graph members`: prints it and keeps the next cursor. */
typedef struct {
  ctl *c;
  char cursor[32];
} members_page;

static void on_members(const char *const *members, size_t n, const char *next, int err, void *arg) {
  members_page *p = arg;
  p->c->pending--;
  if (err) {
    p->c->failed = 1;
    fprintf(stderr, "presencectl graph members: %s\n", pr_strerror(err));
    return;
  }
  for (size_t i = 0; i < n; i++)
    printf("%s\n", members[i]);
  snprintf(p->cursor, sizeof p->cursor, "%s", next);
}

int ctl_cmd_graph(ctl *c, int argc, char **argv) {
  char err[256];
  int argi;
  int rc = pr_settings_load(NULL, 0, NULL, argc, argv, &info, &argi, err, sizeof err);
  if (rc == 1) return 0;
  if (rc != 0) {
    fprintf(stderr, "presencectl graph: %s\n", err);
    return 2;
  }
  int n = argc - argi;
  char **a = argv + argi;
  if (n < 2) {
    fprintf(stderr, "usage: %s\n", info.usage);
    return 2;
  }
  if (ctl_connect(c)) return 1;
  if ((strcmp(a[0], "contact") == 0 || strcmp(a[0], "member") == 0) && n == 4) {
    if (queue_edit(c, a[0], a[1], a[2], a[3])) return 2;
    return ctl_wait(c);
  }
  if (strcmp(a[0], "import") == 0 && n == 2) return import_file(c, a[1]);
  if (strcmp(a[0], "members") == 0 && n == 2) {
    if (!valid("group", a[1])) return 2;
    members_page p = {c, "0"};
    do {
      c->pending++;
      if (pr_graph_members(c->store, a[1], p.cursor, 1000, on_members, &p) != 0) return 1;
      if (ctl_wait(c)) return 1;
    } while (strcmp(p.cursor, "0") != 0);
    return 0;
  }
  fprintf(stderr, "usage: %s\n", info.usage);
  return 2;
}
