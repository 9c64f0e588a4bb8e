// stack.mjs: the harness every integration, scenario and browser test
// imports. It re-exports the pieces (processes, tokens, HTTP, Redis, events,
// WebSocket, polling) and starts a whole local stack in one call:
//
//   import { startStack } from './lib/stack.mjs';
//   const stack = await startStack({ sends: 1, sendArgs: ['--heartbeat-ttl-ms', '1000'] });
//   const alice = stack.api('alice');             // HTTP client of presence-send as alice
//   await alice.post('/v1/heartbeat', { device: 'phone' });
//   await stack.stop();                           // or leave it to the harness's after hook
//
// With PRESENCE_TEST_ENDPOINTS set (JSON, see README.md) it starts nothing
// and points the same object at an already running stack.
import crypto from 'node:crypto';
import { startRedis, startService, freePort } from './procs.mjs';
import { mintToken } from './jwt.mjs';
import { api } from './http.mjs';
import { redisClient, subscribe } from './redis.mjs';
import { keys, partitionOf, DEFAULT_PARTITIONS } from './keys.mjs';
import { open, connect } from './ws.mjs';

export * from './procs.mjs';
export * from './jwt.mjs';
export * from './http.mjs';
export * from './redis.mjs';
export * from './keys.mjs';
export * from './msgpack.mjs';
export * from './ws.mjs';
export * from './wait.mjs';
export { registerCleanup, cleanupAll, dumpLogs, killAllSync, runDir, installHooks } from './track.mjs';

/**
 * How each service is started by startStack. args(ctx) gets
 *   {port, ports: [extra free ports], redis: "127.0.0.1:P", secret,
 *    partitions, index (0-based among its kind), logLevel, stack}
 * and returns the flags; `extraPorts: n` asks for n more free ports (ctx.ports).
 * Add a service or adjust flags here; per-stack additions go through
 * startStack's sendArgs/fanoutArgs/receiveArgs.
 */
export const SERVICES = {
  send: {
    bin: 'presence-send',
    ready: '/readyz',
    args: (c) => [
      '--listen', `127.0.0.1:${c.port}`,
      '--redis', c.redis,
      '--jwt-secret', c.secret,
      '--partitions', c.partitions,
      '--log-level', c.logLevel,
    ],
  },
  // presence-fanout serves only /healthz, /readyz and /metrics, on --admin-listen.
  fanout: {
    bin: 'presence-fanout',
    ready: '/readyz',
    args: (c) => [
      '--admin-listen', `127.0.0.1:${c.port}`,
      '--redis', c.redis,
      '--partitions', c.partitions,
      '--worker-id', `fanout-${c.index}-${c.stack.id}`,
      '--log-level', c.logLevel,
    ],
  },
  // presence-receive: WebSockets and ops routes on --listen; nng on any free port.
  receive: {
    bin: 'presence-receive',
    ready: '/readyz',
    args: (c) => [
      '--listen', `127.0.0.1:${c.port}`,
      '--redis', c.redis,
      '--jwt-secret', c.secret,
      '--partitions', c.partitions,
      '--instance-id', `receive-${c.index}-${c.stack.id}`,
      '--nng-listen', 'tcp://127.0.0.1:0',
      '--log-level', c.logLevel,
    ],
  },
};

const resolveExtra = (extra, ctx) => (typeof extra === 'function' ? extra(ctx) : extra ?? []);

/**
 * startStack(opts) -> stack.
 *   sends, fanouts, receives   how many of each (default 1, 0, 0)
 *   partitions (1024), secret (random), logLevel ('info'; PRESENCE_TEST_LOG_LEVEL)
 *   redisArgs                  extra redis-server flags
 *   sendArgs, fanoutArgs, receiveArgs   extra flags: array, or (ctx) => array
 *   env                        extra environment for the services
 *   readyMs                    readiness deadline per process
 *   external                   force (true) or forbid (false) PRESENCE_TEST_ENDPOINTS use
 *
 * stack: {external, id, secret, partitions, redis (startRedis() result or
 *   {url, host, port} when external), sends[], fanouts[], receives[], send,
 *   receive (first of each), sendUrl, receiveUrl,
 *   token(user, opts) / adminToken(user), api(userOrToken, opts), adminApi(),
 *   wsUrl(userOrToken, device), ws(userOrToken, device, opts) (connected client),
 *   redisClient(), subscribe(channels), subscribeUser(user),
 *   partitionOf(user), keys (bound to P), startService(kind, extraArgs),
 *   requireOwn(t) (skips the test on an external stack), stop()}
 */
export async function startStack(opts = {}) {
  const endpoints = process.env.PRESENCE_TEST_ENDPOINTS;
  if (endpoints && opts.external !== false) return externalStack(JSON.parse(endpoints), opts);
  if (opts.external === true) throw new Error('startStack({external: true}) needs PRESENCE_TEST_ENDPOINTS');

  const stack = baseStack({
    external: false,
    secret: opts.secret ?? `test-secret-${crypto.randomBytes(12).toString('hex')}`,
    partitions: opts.partitions ?? DEFAULT_PARTITIONS,
  });
  stack.sends = [];
  stack.fanouts = [];
  stack.receives = [];
  stack.logLevel = opts.logLevel ?? process.env.PRESENCE_TEST_LOG_LEVEL ?? 'info';
  const started = [];
  try {
    stack.redis = await startRedis({ args: opts.redisArgs ?? [], readyMs: opts.readyMs });

    const extraFor = { send: opts.sendArgs, fanout: opts.fanoutArgs, receive: opts.receiveArgs };
    stack.startService = async (kind, extraArgs) => {
      const spec = SERVICES[kind];
      if (!spec) throw new Error(`unknown service kind ${kind}`);
      const list = stack[`${kind}s`];
      const index = list.length;
      const ports = [];
      for (let i = 0; i < (spec.extraPorts ?? 0); i++) ports.push(await freePort());
      const svc = await startService(
        spec.bin,
        (port) => {
          const ctx = {
            port, ports, index, stack,
            redis: stack.redis.url,
            secret: stack.secret,
            partitions: String(stack.partitions),
            logLevel: stack.logLevel,
          };
          return [...spec.args(ctx), ...resolveExtra(extraFor[kind], ctx), ...resolveExtra(extraArgs, ctx)];
        },
        { ready: spec.ready, env: opts.env, readyMs: opts.readyMs },
      );
      svc.kind = kind;
      svc.ports = ports;
      list.push(svc);
      started.push(svc);
      return svc;
    };
    // Fanout first, then receive, then send, so that nothing a send publishes is missed.
    for (let i = 0; i < (opts.fanouts ?? 0); i++) await stack.startService('fanout');
    for (let i = 0; i < (opts.receives ?? 0); i++) await stack.startService('receive');
    for (let i = 0; i < (opts.sends ?? 1); i++) await stack.startService('send');
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.stop()));
    if (stack.redis) await stack.redis.stop();
    throw e;
  }
  stack.send = stack.sends[0] ?? null;
  stack.receive = stack.receives[0] ?? null;
  stack.fanout = stack.fanouts[0] ?? null;
  stack.sendUrl = stack.send?.url ?? null;
  stack.receiveUrl = stack.receive?.url ?? null;
  stack.stop = async () => {
    await stack.closeClients();
    const codes = {};
    for (const kind of ['send', 'receive', 'fanout']) {
      codes[kind] = await Promise.all(stack[`${kind}s`].map((s) => s.stop()));
    }
    await stack.redis.stop();
    return codes;
  };
  return stack;
}

let stackSeq = 0;

function baseStack({ external, secret, partitions }) {
  const clients = [];
  const stack = {
    id: `${process.pid}-${++stackSeq}`,
    external,
    secret,
    partitions,
    token: (user, o = {}) => mintToken({ sub: user, secret: stack.secret, ...o }),
    adminToken: (user = 'admin', o = {}) => mintToken({ sub: user, admin: true, secret: stack.secret, ...o }),
    /** HTTP client of the first send: a user id (a fresh token is minted) or a token. */
    api(userOrToken, o = {}) {
      const t = userOrToken == null ? undefined : isToken(userOrToken) ? userOrToken : stack.token(userOrToken, o);
      return api(o.baseUrl ?? stack.sendUrl, t);
    },
    adminApi: (user = 'admin') => api(stack.sendUrl, stack.adminToken(user)),
    wsUrl(userOrToken, device) {
      const t = isToken(userOrToken) ? userOrToken : stack.token(userOrToken);
      const base = String(stack.receiveUrl).replace(/^http/, 'ws');
      return `${base}/v1/ws?token=${encodeURIComponent(t)}${device ? `&device=${encodeURIComponent(device)}` : ''}`;
    },
    ws: (userOrToken, device, o) => connect(stack.wsUrl(userOrToken, device), o),
    wsOpen: (userOrToken, device, o) => open(stack.wsUrl(userOrToken, device), o),
    redisClient(o) {
      const c = redisClient(stack.redis.url, o);
      clients.push(c);
      return c;
    },
    async subscribe(channels, o) {
      const s = await subscribe(stack.redis.url, channels, o);
      clients.push(s);
      return s;
    },
    subscribeUser: (user) => stack.subscribe(keys.eventsOf(user, stack.partitions)),
    partitionOf: (user) => partitionOf(user, stack.partitions),
    keys: {
      ...keys,
      presence: (u) => keys.presence(u, stack.partitions),
      deadlinesOf: (u) => keys.deadlinesOf(u, stack.partitions),
      eventsOf: (u) => keys.eventsOf(u, stack.partitions),
      ownerOf: (u) => keys.ownerOf(u, stack.partitions),
      route: (u) => keys.route(u, stack.partitions),
      hb: (u, d) => keys.hb(u, d, stack.partitions),
    },
    async closeClients() {
      const cs = clients.splice(0);
      await Promise.allSettled(cs.map((c) => c.close()));
    },
    /** Skips the test (and returns false) when the stack is not ours to kill or restart. */
    requireOwn(t) {
      if (!stack.external) return true;
      t.skip('needs a stack started by the harness (PRESENCE_TEST_ENDPOINTS is set)');
      return false;
    },
  };
  return stack;
}

function isToken(s) {
  return typeof s === 'string' && s.split('.').length === 3;
}

function externalStack(ep, opts) {
  const need = (k) => {
    if (!ep[k]) throw new Error(`PRESENCE_TEST_ENDPOINTS lacks "${k}"`);
    return ep[k];
  };
  const stack = baseStack({
    external: true,
    secret: ep.jwt_secret ?? ep.secret ?? need('jwt_secret'),
    partitions: Number(ep.partitions ?? opts.partitions ?? DEFAULT_PARTITIONS),
  });
  const addr = String(need('redis')).replace(/^redis:\/\//, '');
  const i = addr.lastIndexOf(':');
  const refuse = (what) => async () => {
    throw new Error(`${what}: not possible on an external stack (PRESENCE_TEST_ENDPOINTS)`);
  };
  stack.redis = {
    external: true,
    url: addr,
    host: addr.slice(0, i),
    port: Number(addr.slice(i + 1)),
    stop: async () => null,
    kill9: refuse('redis kill9'),
    restart: refuse('redis restart'),
  };
  const svc = (kind, url) => ({
    kind,
    external: true,
    url: String(url).replace(/\/$/, ''),
    port: Number(new URL(url).port),
    stop: refuse(`${kind} stop`),
    kill9: refuse(`${kind} kill9`),
    log: () => '',
    logTail: () => '',
  });
  stack.sends = ep.send ? [svc('send', ep.send)] : [];
  stack.receives = ep.receive ? [svc('receive', ep.receive)] : [];
  stack.fanouts = [];
  stack.send = stack.sends[0] ?? null;
  stack.receive = stack.receives[0] ?? null;
  stack.fanout = null;
  stack.sendUrl = stack.send?.url ?? null;
  stack.receiveUrl = stack.receive?.url ?? null;
  stack.startService = refuse('startService');
  stack.stop = async () => {
    await stack.closeClients();
    return {};
  };
  return stack;
}
