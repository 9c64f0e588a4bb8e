/* base.h: the project's one error convention and one allocator.
 *
 * Functions that can fail return int: 0 on success, a negative PR_E* code on
 * failure; pr_strerror() names the code. Detail goes in the object or in a
 * caller's buffer, never printed deep in library code.
 * Allocation failure aborts the process through pr_malloc and friends, so
 * callers never check their result. */
#ifndef PR_BASE_H
#define PR_BASE_H

#include <stddef.h>
#include <stdint.h>

enum {
  PR_OK = 0,
  PR_EINVAL = -1,      /* bad argument or bad input */
  PR_EPROTO = -2,      /* malformed wire data */
  PR_ETRUNC = -3,      /* input ended early (more bytes may complete it) */
  PR_ETOOBIG = -4,     /* over a configured size limit */
  PR_ETIMEDOUT = -5,   /* a timeout fired */
  PR_EIO = -6,         /* a system call failed */
  PR_ECLOSED = -7,     /* the peer or the object is closed */
  PR_EAUTH = -8,       /* bad credentials */
  PR_EEXPIRED = -9,    /* credentials expired */
  PR_EFORBIDDEN = -10, /* not allowed */
  PR_ENOTFOUND = -11,  /* no such thing */
  PR_EBUSY = -12,      /* a queue or limit is full */
  PR_EREDIS = -13,     /* Redis answered with an error */
  PR_EUNAVAIL = -14,   /* a dependency is unreachable right now */
  PR_EUTF8 = -15,      /* invalid UTF-8 */
  PR_ECONFIG = -16,    /* bad setting */
};

/* A static string naming `err` ("invalid argument", ...). */
const char *pr_strerror(int err);
/* Writes a message into a caller's buffer (the detail of an error, for the
 * caller to print); does nothing when err is NULL or errlen 0. */
void pr_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Allocation: never returns NULL (aborts with a message instead). */
void *pr_malloc(size_t n);
void *pr_calloc(size_t count, size_t n);
void *pr_realloc(void *p, size_t n);
char *pr_strdup(const char *s);
char *pr_strndup(const char *s, size_t n);
void pr_free(void *p);

/* FNV-1a, 64 bits, of p[0..n): the one string hash of hash tables and tags. */
uint64_t pr_hash64(const void *p, size_t n);

/* Milliseconds from CLOCK_MONOTONIC (timeouts) and CLOCK_REALTIME (log lines). */
uint64_t pr_now_mono_ms(void);
uint64_t pr_now_wall_ms(void);

#define PR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
