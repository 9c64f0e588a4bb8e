// wait.mjs: polling with a deadline; tests never sleep for a fixed time to
// let something happen.

/**
 * Calls fn (sync or async) every intervalMs until it returns a truthy value,
 * which is returned. Throws after timeoutMs with what fn last returned or
 * threw. `what` names the condition in the error.
 */
export async function waitFor(fn, timeoutMs = 5000, intervalMs = 25, what = '') {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const why = lastErr ? `last error: ${lastErr.message}` : `last value: ${fmt(last)}`;
      throw new Error(`waitFor${what ? ` (${what})` : ''}: not true after ${timeoutMs} ms; ${why}`);
    }
    await delay(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
}

function fmt(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** A timer promise; for pacing polls only, never to wait for a state. */
export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a clear message when p does not settle within ms. */
export function withTimeout(p, ms, what = 'operation') {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
