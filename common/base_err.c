/* base_err.c: names of the PR_E* codes. */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>

const char *pr_strerror(int err) {
  switch (err) {
  case PR_OK: return "ok";
  case PR_EINVAL: return "invalid argument";
  case PR_EPROTO: return "protocol error";
  case PR_ETRUNC: return "truncated input";
  case PR_ETOOBIG: return "too big";
  case PR_ETIMEDOUT: return "timed out";
  case PR_EIO: return "i/o error";
  case PR_ECLOSED: return "closed";
  case PR_EAUTH: return "unauthorized";
  case PR_EEXPIRED: return "expired";
  case PR_EFORBIDDEN: return "forbidden";
  case PR_ENOTFOUND: return "not found";
  case PR_EBUSY: return "busy";
  case PR_EREDIS: return "redis error";
  case PR_EUNAVAIL: return "unavailable";
  case PR_EUTF8: return "invalid utf-8";
  case PR_ECONFIG: return "bad configuration";
  default: return "unknown error";
  }
}

void pr_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}
