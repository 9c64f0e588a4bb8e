/* app.c: the helpers the modules of presence-receive share beyond their own
 * files: random bits for generated ids, and the instance id of an epoch. */
#include "app.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

uint64_t recv_random_u64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
    /* no entropy source: ids only need to differ, not to be secret */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&v;
  }
  return v;
}

void recv_instance_of(const recv_app *app, uint32_t epoch, char *out, size_t cap) {
  if (epoch == 0)
    snprintf(out, cap, "%s", app->instance_base);
  else
    snprintf(out, cap, "%s.%u", app->instance_base, (unsigned)epoch);
}
