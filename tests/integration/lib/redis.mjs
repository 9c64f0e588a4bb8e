// redis.mjs: ioredis clients to the test redis (closed automatically at the
// end), a subscriber that counts and decodes the events of a channel, and
// EVAL of the store scripts in common/store/.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { registerCleanup } from './track.mjs';
import { REPO } from './procs.mjs';
import { decodeEvent } from './msgpack.mjs';
import { keys } from './keys.mjs';
import { withTimeout } from './wait.mjs';

function parseAddr(addr) {
  if (typeof addr === 'number') return { host: '127.0.0.1', port: addr };
  if (addr && typeof addr === 'object') return { host: addr.host ?? '127.0.0.1', port: addr.port };
  const s = String(addr).replace(/^redis:\/\//, '');
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}

/**
 * An ioredis client to addr ("127.0.0.1:PORT", a port, or a startRedis()
 * result). It reconnects quickly when the server comes back (tests kill and
 * restart redis), keeps its last error in client.lastError instead of
 * printing it, and is closed by the harness at the end.
 */
export function redisClient(addr, opts = {}) {
  const { host, port } = parseAddr(addr?.url ?? addr);
  const client = new Redis({
    host,
    port,
    lazyConnect: false,
    maxRetriesPerRequest: 2,
    retryStrategy: (n) => Math.min(20 * n, 250),
    ...opts,
  });
  client.on('error', (e) => {
    client.lastError = e;
  });
  const unregister = registerCleanup(() => closeClient(client));
  const origQuit = client.quit.bind(client);
  client.close = async () => {
    unregister();
    await closeClient(client, origQuit);
  };
  return client;
}

async function closeClient(client, quit = client.quit.bind(client)) {
  if (client.status === 'end') return;
  try {
    await withTimeout(quit(), 1000, 'redis quit');
  } catch {
    client.disconnect();
  }
}

/**
 * Subscribes to `channel` (a name, or an array of names; `pattern: true` for
 * PSUBSCRIBE) on its own connection. Returns once the subscription is active:
 *   messages  [{channel, data: Buffer, at}] in arrival order
 *   count     number of messages so far
 *   events()  the messages decoded as events (proto/README.md)
 *   waitForCount(n, ms)  resolves when at least n messages arrived
 *   barrier(ms)  resolves when every message published before the call has
 *             arrived: it publishes a marker on a private channel of the same
 *             connection (Redis keeps one connection's messages in order), so
 *             "nothing was published" can be asserted without sleeping
 *   clear(), close()
 */
export async function subscribe(addr, channel, { pattern = false } = {}) {
  const conn = redisClient(addr);
  const channels = Array.isArray(channel) ? channel : [channel];
  const marker = `test:barrier:${crypto.randomUUID()}`;
  const messages = [];
  const waiters = new Set();
  const barriers = new Map();
  const onMessage = (ch, data) => {
    const name = ch.toString();
    if (name === marker) {
      const id = data.toString();
      barriers.get(id)?.();
      barriers.delete(id);
      return;
    }
    messages.push({ channel: name, data, at: Date.now() });
    for (const w of waiters) w();
  };
  conn.on('messageBuffer', onMessage);
  conn.on('pmessageBuffer', (_pat, ch, data) => onMessage(ch, data));
  if (pattern) await conn.psubscribe(...channels);
  else await conn.subscribe(...channels);
  await conn.subscribe(marker);
  const pub = redisClient(addr);
  let n = 0;
  const self = {
    channels,
    messages,
    get count() {
      return messages.length;
    },
    events: () => messages.map((m) => decodeEvent(m.data)),
    clear() {
      messages.length = 0;
    },
    waitForCount(count, ms = 5000) {
      if (messages.length >= count) return Promise.resolve(messages.slice());
      return withTimeout(
        new Promise((resolve) => {
          const w = () => {
            if (messages.length >= count) {
              waiters.delete(w);
              resolve(messages.slice());
            }
          };
          waiters.add(w);
        }),
        ms,
        `waiting for ${count} message(s) on ${channels.join(',')} (got ${messages.length})`,
      );
    },
    async barrier(ms = 5000) {
      const id = String(++n);
      const arrived = new Promise((resolve) => barriers.set(id, resolve));
      await pub.publish(marker, id);
      await withTimeout(arrived, ms, `barrier on ${channels.join(',')}`);
    },
    async close() {
      await Promise.allSettled([conn.close(), pub.close()]);
    },
  };
  return self;
}

/** Subscribes to the event channel ev:{pN} of `user`. */
export function subscribeUserEvents(addr, user, partitions) {
  return subscribe(addr, keys.eventsOf(user, partitions));
}

const scriptCache = new Map();
const storeDir = () => path.join(REPO, 'common', 'store');

function readStoreFile(name) {
  const file = path.join(storeDir(), name.endsWith('.lua') ? name : `${name}.lua`);
  if (!fs.existsSync(file)) throw new Error(`store script ${file} does not exist (yet)`);
  return fs.readFileSync(file, 'utf8');
}

/**
 * The body of common/store/<name>.lua as the services load it: common.lua's
 * helpers, a newline, then the script (store.c, pr_store_script_body()).
 * Throws clearly when the file is absent.
 */
export function loadScript(name) {
  const base = name.replace(/\.lua$/, '');
  if (!scriptCache.has(base)) {
    const body = readStoreFile(base);
    const common = base !== 'common' && fs.existsSync(path.join(storeDir(), 'common.lua')) ? readStoreFile('common') : null;
    scriptCache.set(base, common === null ? body : `${common}\n${body}`);
  }
  return scriptCache.get(base);
}

/** The leading comment block of common/store/<name>.lua (its KEYS/ARGV contract). */
export function scriptHeader(name) {
  const lines = [];
  for (const line of readStoreFile(name.replace(/\.lua$/, '')).split('\n')) {
    if (!/^\s*--/.test(line)) break;
    lines.push(line.replace(/^\s*--\s?/, ''));
  }
  return lines.join('\n');
}

/** EVALs common/store/<name>.lua with keys and args; returns the reply (Buffers when opts.buffers). */
export function evalScript(client, name, keyList = [], argList = [], { buffers = false } = {}) {
  const fn = buffers ? client.evalBuffer.bind(client) : client.eval.bind(client);
  return fn(loadScript(name), keyList.length, ...keyList, ...argList.map(String));
}

/**
 * Runs common/store/sweep.lua once for partition p, as its owner would:
 * KEYS dl:{pN} ev:{pN} own:{pN}; ARGV worker ('' skips the owner check),
 * limit. Returns {owner, users, events} (owner 0: not the owner, nothing done).
 */
export async function sweep(client, p, { worker = '', limit = 1000 } = {}) {
  const r = await evalScript(client, 'sweep', [keys.deadlines(p), keys.events(p), keys.owner(p)], [worker, limit]);
  return { owner: Number(r[0]), users: Number(r[1]), events: Number(r[2]) };
}

/** Redis's clock in ms (the clock every script uses). */
export async function redisNowMs(client) {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** The presence record pr:{pN}:<user> as a plain object (HGETALL). */
export function presenceRecord(client, user, partitions) {
  return client.hgetall(keys.presence(user, partitions));
}
