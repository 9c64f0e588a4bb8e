// scenario_stack.mjs: a whole Presence stack for the scenario tests: one
// redis-server, N presence-send, N presence-fanout and N presence-receive with
// the given modes (graph, broadcast, offline), few partitions and short
// leases, plus helpers to connect WebSocket clients to a chosen receive
// instance and to wait for the frames a user would see.
//
//   const s = await startScenarioStack({ fanouts: 2, receives: 2, heartbeatTtlMs: 1000 });
//   const alice = await s.ws('alice', { device: 'laptop', receive: 1 });
//   await s.api('bob').post('/v1/heartbeat', { status: 'online' });
//   await waitPresence(alice, 'bob', (m) => m.status === 'online');
//   await s.stop();
//
// With PRESENCE_TEST_ENDPOINTS set (JSON) nothing is started and the stack
// points at a running one. The harness's shape (stack.mjs) is
//   {"send": URL, "receive": URL, "redis": "host:port", "jwt_secret": S, "partitions": P}
// and this file also reads
//   "receives": [URL, ...]    every receive instance (default: [receive])
//   "small_group_max": N      as configured on the services (default 100)
//   "leave_grace_ms": N       as configured on receive (default 3000)
//   "heartbeat_ttl_ms": N     as configured on send/fanout (default 60000)
// An external stack runs in the default modes (graph server, broadcast
// changes); tests that need other modes or kill processes skip there.
import crypto from 'node:crypto';
import { startRedis, startService } from './procs.mjs';
import { mintToken } from './jwt.mjs';
import { api } from './http.mjs';
import { redisClient } from './redis.mjs';
import { keys, partitionOf } from './keys.mjs';
import { connect } from './ws.mjs';
import { waitFor } from './wait.mjs';

/** Defaults of a started scenario stack (short, for speed). */
export const SCENARIO_DEFAULTS = {
  partitions: 16,
  leaseTtlMs: 2000, // receive --lease-ttl-ms
  ownerLeaseMs: 2000, // fanout --owner-lease-ms
  leaveGraceMs: 1000, // receive --leave-grace-ms
  sweepIntervalMs: 250, // fanout --sweep-interval-ms
  heartbeatTtlMs: 60000, // send/fanout --heartbeat-ttl-ms
  smallGroupMax: 100, // every service's --small-group-max
  graph: 'server',
  broadcast: 'changes',
  offline: 'sweeper',
};

/** True when PRESENCE_TEST_ENDPOINTS points the tests at a running stack. */
export const EXTERNAL = !!process.env.PRESENCE_TEST_ENDPOINTS;

/** A run-unique id so that tests against a shared external stack never collide. */
export const RUN = crypto.randomBytes(3).toString('hex');

/**
 * startScenarioStack(opts) -> stack
 *   sends, fanouts, receives   how many of each (1, 1, 1)
 *   partitions, leaseTtlMs, ownerLeaseMs, leaveGraceMs, sweepIntervalMs,
 *   heartbeatTtlMs, smallGroupMax, graph, broadcast, offline   (SCENARIO_DEFAULTS)
 *   sendArgs, fanoutArgs, receiveArgs   extra flags
 *   logLevel
 * stack: {external, cfg (the values above), secret, partitions, redis,
 *   sends[], fanouts[], receives[], workerIds[], instanceIds[], sendUrl,
 *   token(user), api(user), adminApi(), ws(user, {device, receive}),
 *   redis client r, partitionOf(user), keys (bound to P), stop()}
 */
export async function startScenarioStack(opts = {}) {
  const cfg = { ...SCENARIO_DEFAULTS, ...opts };
  if (EXTERNAL) return externalScenarioStack(JSON.parse(process.env.PRESENCE_TEST_ENDPOINTS), cfg);

  const id = `${process.pid}-${RUN}-${++seq}`;
  const secret = `scenario-${crypto.randomBytes(12).toString('hex')}`;
  const logLevel = opts.logLevel ?? process.env.PRESENCE_TEST_LOG_LEVEL ?? 'info';
  const started = [];
  const stack = base({ external: false, cfg, secret, partitions: cfg.partitions });
  stack.sends = [];
  stack.fanouts = [];
  stack.receives = [];
  stack.workerIds = [];
  stack.instanceIds = [];
  const common = (redis) => [
    '--redis', redis, '--partitions', cfg.partitions, '--log-level', logLevel,
    '--graph', cfg.graph, '--broadcast', cfg.broadcast, '--small-group-max', cfg.smallGroupMax,
  ];
  try {
    stack.redisServer = await startRedis({ args: cfg.offline === 'keyspace' ? ['--notify-keyspace-events', 'Ex'] : [] });
    const R = stack.redisServer.url;
    // fanout first, then receive, then send: nothing a send publishes is missed
    for (let i = 0; i < (opts.fanouts ?? 1); i++) {
      const worker = `fanout-${i}-${id}`;
      const svc = await startService('presence-fanout', (port) => [
        '--admin-listen', `127.0.0.1:${port}`, ...common(R), '--worker-id', worker,
        '--owner-lease-ms', cfg.ownerLeaseMs, '--sweep-interval-ms', cfg.sweepIntervalMs,
        '--heartbeat-ttl-ms', cfg.heartbeatTtlMs, '--offline', cfg.offline, '--batch-flush-ms', 2,
        ...(opts.fanoutArgs ?? []),
      ]);
      started.push(svc);
      stack.fanouts.push(svc);
      stack.workerIds.push(worker);
    }
    for (let i = 0; i < (opts.receives ?? 1); i++) {
      const inst = `receive-${i}-${id}`;
      const svc = await startService('presence-receive', (port) => [
        '--listen', `127.0.0.1:${port}`, ...common(R), '--jwt-secret', secret, '--instance-id', inst,
        '--nng-listen', 'tcp://127.0.0.1:0', '--lease-ttl-ms', cfg.leaseTtlMs,
        '--leave-grace-ms', cfg.leaveGraceMs, ...(opts.receiveArgs ?? []),
      ]);
      started.push(svc);
      stack.receives.push(svc);
      stack.instanceIds.push(inst);
    }
    for (let i = 0; i < (opts.sends ?? 1); i++) {
      const svc = await startService('presence-send', (port) => [
        '--listen', `127.0.0.1:${port}`, ...common(R), '--jwt-secret', secret,
        '--heartbeat-ttl-ms', cfg.heartbeatTtlMs, '--offline', cfg.offline, ...(opts.sendArgs ?? []),
      ]);
      started.push(svc);
      stack.sends.push(svc);
    }
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.stop()));
    if (stack.redisServer) await stack.redisServer.stop();
    throw e;
  }
  stack.redisAddr = stack.redisServer.url;
  stack.sendUrl = stack.sends[0]?.url ?? null;
  stack.receiveUrls = stack.receives.map((s) => s.url);
  stack.r = stack.redisClient();
  stack.stop = async () => {
    await stack.closeClients();
    for (const list of [stack.sends, stack.receives, stack.fanouts]) await Promise.allSettled(list.map((s) => s.stop()));
    await stack.redisServer.stop();
  };
  return stack;
}

let seq = 0;

function externalScenarioStack(ep, cfg) {
  for (const k of ['send', 'redis']) if (!ep[k]) throw new Error(`PRESENCE_TEST_ENDPOINTS lacks "${k}"`);
  const secret = ep.jwt_secret ?? ep.secret;
  if (!secret) throw new Error('PRESENCE_TEST_ENDPOINTS lacks "jwt_secret"');
  const receives = ep.receives ?? (ep.receive ? [ep.receive] : []);
  if (receives.length === 0) throw new Error('PRESENCE_TEST_ENDPOINTS lacks "receive" (or "receives")');
  const ext = {
    ...cfg,
    partitions: Number(ep.partitions ?? 1024),
    smallGroupMax: Number(ep.small_group_max ?? 100),
    leaveGraceMs: Number(ep.leave_grace_ms ?? 3000),
    heartbeatTtlMs: Number(ep.heartbeat_ttl_ms ?? 60000),
    graph: 'server',
    broadcast: 'changes',
  };
  const stack = base({ external: true, cfg: ext, secret, partitions: ext.partitions });
  stack.sends = [];
  stack.fanouts = [];
  stack.receives = [];
  stack.workerIds = [];
  stack.instanceIds = [];
  stack.redisAddr = String(ep.redis).replace(/^redis:\/\//, '');
  stack.sendUrl = String(ep.send).replace(/\/$/, '');
  stack.receiveUrls = receives.map((u) => String(u).replace(/\/$/, ''));
  stack.r = stack.redisClient();
  stack.stop = () => stack.closeClients();
  return stack;
}

function base({ external, cfg, secret, partitions }) {
  const closers = [];
  const stack = {
    external,
    cfg,
    secret,
    partitions,
    token: (user, o = {}) => mintToken({ sub: user, secret, ...o }),
    api: (user) => api(stack.sendUrl, stack.token(user)),
    adminApi: () => api(stack.sendUrl, mintToken({ sub: 'scenario-admin', admin: true, secret })),
    /** A connected WebSocket client of `user` on receive instance `receive` (index, wraps around). */
    async ws(user, { device, receive = 0 } = {}) {
      const baseUrl = stack.receiveUrls[receive % stack.receiveUrls.length].replace(/^http/, 'ws');
      const q = `token=${encodeURIComponent(stack.token(user))}${device ? `&device=${encodeURIComponent(device)}` : ''}`;
      const c = await connect(`${baseUrl}/v1/ws?${q}`);
      // arrival time of each frame, index for index with c.messages (ws.mjs's
      // listener was added first, so it has pushed the frame when this runs)
      c.times = c.messages.map(() => Date.now());
      c.ws.on('message', () => c.times.push(Date.now()));
      closers.push(() => c.terminate());
      await c.waitFor((m) => m.type === 'snapshot', 5000);
      return c;
    },
    redisClient() {
      const c = redisClient(stack.redisAddr);
      closers.push(() => c.close());
      return c;
    },
    partitionOf: (user) => partitionOf(user, partitions),
    keys: {
      ...keys,
      presence: (u) => keys.presence(u, partitions),
      eventsOf: (u) => keys.eventsOf(u, partitions),
      ownerOf: (u) => keys.ownerOf(u, partitions),
    },
    async closeClients() {
      await Promise.allSettled(closers.splice(0).map((f) => f()));
    },
    /** Graph edits through the admin API (they must answer 204). */
    async share(owner, ...watchers) {
      for (const w of watchers) {
        const res = await stack.adminApi().put(`/v1/users/${owner}/contacts/${w}`);
        if (res.status !== 204) throw new Error(`PUT contact ${owner} -> ${w}: ${res.status} ${res.text}`);
      }
    },
    async addMembers(group, ...users) {
      for (const u of users) {
        const res = await stack.adminApi().put(`/v1/groups/${group}/members/${u}`);
        if (res.status !== 204) throw new Error(`PUT member ${group} ${u}: ${res.status} ${res.text}`);
      }
    },
  };
  return stack;
}

// ---- what a client sees ----------------------------------------------------

/** A run-unique user (or group) id. */
export const uid = (name) => `${name}-${RUN}`;

/** Presence frames about `user` (type presence, or a heartbeat relay frame) received so far. */
export function framesAbout(client, user, types = ['presence']) {
  return client.messages.filter((m) => m && types.includes(m.type) && m.user === user);
}

/** Waits for a presence frame about `user` matching pred; returns it. */
export function waitPresence(client, user, pred = () => true, ms = 5000) {
  return client.waitFor((m) => m && m.type === 'presence' && m.user === user && pred(m), ms);
}

/**
 * A barrier on one connection: sends {"type":"ping"} and waits for the pong.
 * A delivery the server processed before this ping arrived is queued on the
 * connection ahead of the pong, so after the barrier the client has every
 * frame that was pushed to it before (used to assert that nothing came).
 */
export async function pingBarrier(client, ms = 5000) {
  const from = client.messages.length;
  client.send({ type: 'ping' });
  await waitFor(() => client.messages.slice(from).some((m) => m && m.type === 'pong'), ms, 5, 'pong');
}

/** The snapshot entry of `user` in the client's snapshot frame, or undefined. */
export function snapshotEntry(client, user) {
  const snap = client.messages.find((m) => m && m.type === 'snapshot');
  return snap?.users?.find((u) => u.user === user);
}

/**
 * Calls fn every `everyMs` (after the previous call ended) until stop() is
 * called; stop() resolves, once the last call ended, to the errors fn threw.
 */
export function every(everyMs, fn) {
  let stopped = false;
  let timer;
  let running = Promise.resolve();
  const errors = [];
  const tick = () => {
    if (stopped) return;
    running = Promise.resolve()
      .then(fn)
      .catch((e) => errors.push(e))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, everyMs);
      });
  };
  tick();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
    return errors;
  };
}
