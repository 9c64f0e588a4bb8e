// harness.test.mjs: tests of the test harness itself (lib/*.mjs), against a
// real redis-server: process start/kill/restart and cleanup, tokens, the
// msgpack decoder against real cmsgpack output, CRC16, HTTP, pub/sub and
// WebSocket helpers. Needs no Presence binary.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import calculateSlot from 'cluster-key-slot';
import {
  startRedis, startService, startStack, freePort, redisPing, redisClient, subscribe,
  mintToken, decodeToken, verifyToken, decode, encode, decodeEvent, crc16, partitionOf, keys,
  parseDevice, request, api, connect, open, waitFor, loadScript, scriptHeader, REPO,
} from './lib/stack.mjs';

// Alive and not a zombie (a killed child of a dead parent may linger as one until reaped).
const alive = (pid) => {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

describe('redis process', () => {
  let redis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.stop());

  test('starts on a loopback port, answers PING, logs to its temp dir', async () => {
    assert.match(redis.url, /^127\.0\.0\.1:\d+$/);
    assert.equal(await redisPing(redis.port), true);
    assert.ok(fs.existsSync(redis.logPath));
    const c = redisClient(redis);
    assert.equal(await c.config('GET', 'save').then((r) => r[1]), '');
    assert.equal(await c.config('GET', 'appendonly').then((r) => r[1]), 'no');
    assert.equal(await c.config('GET', 'dir').then((r) => r[1]), fs.realpathSync(redis.dir));
    await c.close();
  });

  test('kill9 stops it at once; restart brings it back on the same port, empty', async () => {
    const c = redisClient(redis);
    await c.set('k', 'v');
    const pid = redis.pid;
    await redis.kill9();
    assert.equal(alive(pid), false);
    assert.equal(await redisPing(redis.port), false);
    const port = redis.port;
    await redis.restart();
    assert.equal(redis.port, port);
    assert.notEqual(redis.pid, pid);
    assert.equal(await redisPing(redis.port), true);
    // the client reconnects by itself; nothing was persisted
    assert.equal(await waitFor(async () => (await c.get('k')) === null && 'gone', 5000), 'gone');
    await c.close();
  });

  test('stop resolves to exit code 0 and frees the port', async () => {
    const r2 = await startRedis();
    const pid = r2.pid;
    assert.equal(await r2.stop(), 0);
    assert.equal(alive(pid), false);
    assert.equal(await redisPing(r2.port), false);
  });
});

describe('service process', () => {
  const fakeServer = `
    const http = require('http');
    const port = Number(process.argv[1]);
    let ready = false;
    setTimeout(() => { ready = true; }, 150);
    http.createServer((req, res) => {
      res.statusCode = req.url === '/readyz' ? (ready ? 200 : 503) : req.url === '/healthz' ? 200 : 404;
      res.end();
    }).listen(port, '127.0.0.1');
    console.log('fake service on', port);
    process.on('SIGTERM', () => { console.log('bye'); process.exit(0); });`;

  test('waits for /readyz, stop() sends SIGTERM and resolves to the exit code', async () => {
    const svc = await startService('fake', (port) => ['-e', fakeServer, String(port)], { bin: process.execPath });
    assert.equal((await request(`${svc.url}/readyz`)).status, 200);
    assert.match(svc.log(), /fake service on \d+/);
    assert.equal(await svc.stop(), 0);
    assert.equal(alive(svc.pid), false);
    assert.match(svc.log(), /bye/);
  });

  test('kill9 kills; a process ignoring SIGTERM is killed after the bound', async () => {
    const stubborn = `${fakeServer}; process.removeAllListeners('SIGTERM'); process.on('SIGTERM', () => {});`;
    const svc = await startService('stubborn', (port) => ['-e', stubborn, String(port)], { bin: process.execPath });
    assert.equal(await svc.stop(300), 'SIGKILL');
    const svc2 = await startService('fake', (port) => ['-e', fakeServer, String(port)], { bin: process.execPath });
    assert.equal(await svc2.kill9(), 'SIGKILL');
    assert.equal(alive(svc2.pid), false);
  });

  test('a process that exits during startup fails fast with its log tail', async () => {
    const t0 = Date.now();
    await assert.rejects(
      startService('crasher', ['-c', 'echo "fatal: bad flag --nope" >&2; exit 3'], { bin: '/bin/sh', readyPort: await freePort() }),
      (e) => /exited \(code 3\)/.test(e.message) && /fatal: bad flag --nope/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 5000, 'did not wait for the whole deadline');
  });

  test('a process never ready is killed at the deadline', async () => {
    let pid;
    await assert.rejects(
      startService('sleeper', ['-c', 'echo $$ > /dev/null; exec sleep 30'], {
        bin: '/bin/sh',
        readyPort: await freePort(),
        readyMs: 300,
      }),
      (e) => {
        pid = Number(/pid (\d+)/.exec(e.message)?.[1]);
        return /not ready .* after 300 ms; killed/.test(e.message);
      },
    );
    assert.equal(alive(pid), false);
  });

  test('a missing binary is reported with where it was looked for', async () => {
    const saved = process.env.PR_BIN_DIR;
    process.env.PR_BIN_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-nobin-'));
    try {
      await assert.rejects(startService('presence-send', ['--listen', '127.0.0.1:1']), (e) =>
        e.message.includes(`${process.env.PR_BIN_DIR}/presence-send`) && /PR_BIN_DIR/.test(e.message),
      );
      // startStack fails the same way and leaves no redis behind
      const before = new Set(pidsOf('redis-server'));
      await assert.rejects(startStack({ external: false }), /no executable at .*presence-send/);
      const leftover = pidsOf('redis-server').filter((p) => !before.has(p));
      assert.deepEqual(leftover, []);
    } finally {
      if (saved === undefined) delete process.env.PR_BIN_DIR;
      else process.env.PR_BIN_DIR = saved;
    }
  });
});

function pidsOf(comm) {
  // only our own children count: parent pid is this process
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
      if (m && m[1] === comm && Number(m[2]) === process.pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('cleanup when the test process dies', () => {
  // A child node process starts redis through the harness and then dies in
  // various ways; the redis it started must not outlive it.
  const lib = path.join(REPO, 'tests/integration/lib/stack.mjs');
  const run = (how, signal) =>
    new Promise((resolve) => {
      const code = `
        import { startRedis } from ${JSON.stringify(lib)};
        const r = await startRedis();
        console.log('PID ' + r.pid);
        ${how}`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_TEST_CONTEXT: '' },
      });
      let outText = '';
      child.stdout.on('data', (d) => {
        outText += d;
        if (signal && /READY/.test(outText)) child.kill(signal);
      });
      child.stderr.resume();
      child.on('exit', (c, s) => resolve({ pid: Number(/PID (\d+)/.exec(outText)?.[1]), code: c, signal: s }));
    });

  for (const [label, how, signal] of [
    ['an uncaught exception', "setTimeout(() => { throw new Error('boom'); }, 10);"],
    ['an unhandled rejection', "Promise.reject(new Error('boom'));"],
    ['process.exit', 'process.exit(5);'],
    ['SIGTERM', "setInterval(() => {}, 1000); console.log('READY');", 'SIGTERM'],
    ['SIGINT', "setInterval(() => {}, 1000); console.log('READY');", 'SIGINT'],
  ]) {
    test(`on ${label}`, async () => {
      const r = await run(how, signal);
      assert.ok(r.pid > 0, 'the child started redis');
      // SIGKILL was sent before the child exited; give the kernel a moment to finish it
      await waitFor(() => !alive(r.pid), 2000, 10, `redis ${r.pid} gone after the child ended (${JSON.stringify(r)})`);
    });
  }
});

describe('cleanup by the node:test hooks', () => {
  // A test file that leaves its redis and a service running: the harness's
  // root after hook stops them, pass or fail, and a failure prints their logs.
  const lib = path.join(REPO, 'tests/integration/lib/stack.mjs');
  const runTestFile = (fail) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-harness-'));
    const file = path.join(dir, 'leak.test.mjs');
    fs.writeFileSync(
      file,
      `import { test } from 'node:test';
       import { startRedis, startService } from ${JSON.stringify(lib)};
       test('leaves processes behind', async () => {
         const r = await startRedis();
         const s = await startService('sleepy', ['-e', 'console.log("sleepy says hi"); setInterval(() => {}, 1000)'], { bin: process.execPath, ready: null });
         console.log('PIDS ' + r.pid + ' ' + s.pid);
         ${fail ? "throw new Error('deliberate failure');" : ''}
       });`,
    );
    return new Promise((resolve) => {
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT; // run it as its own test file, not as part of this run
      const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => {
        fs.rmSync(dir, { recursive: true, force: true });
        const m = /PIDS (\d+) (\d+)/.exec(out);
        resolve({ code, out, pids: m ? [Number(m[1]), Number(m[2])] : [] });
      });
    });
  };

  test('a passing test file', async () => {
    const r = await runTestFile(false);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.pids.length, 2, r.out);
    for (const pid of r.pids) assert.equal(alive(pid), false, `pid ${pid} outlived its test file`);
    assert.doesNotMatch(r.out, /sleepy says hi/);
  });

  test('a failing test file prints the logs', async () => {
    const r = await runTestFile(true);
    assert.equal(r.code, 1, r.out);
    assert.equal(r.pids.length, 2, r.out);
    for (const pid of r.pids) assert.equal(alive(pid), false, `pid ${pid} outlived its test file`);
    assert.match(r.out, /sleepy says hi/);
    assert.match(r.out, /Ready to accept connections/);
  });
});

describe('tokens', () => {
  const secret = 's3cret';
  test('HS256 token with sub, exp and role', () => {
    const t = mintToken({ sub: 'alice', admin: true, expSeconds: 60, secret });
    const { header, payload } = decodeToken(t);
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' });
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.role, 'admin');
    const now = Math.floor(Date.now() / 1000);
    assert.ok(payload.exp > now + 55 && payload.exp <= now + 60);
    assert.equal(verifyToken(t, secret).sub, 'alice');
    assert.equal(decodeToken(mintToken({ sub: 'bob', secret })).payload.role, undefined);
  });

  test('known HS256 signature (independent check of the signing input)', () => {
    // header {"alg":"HS256","typ":"JWT"} payload {"sub":"alice","exp":2000000000}, key "k"
    const t = mintToken({ sub: 'alice', exp: 2000000000, secret: 'k', claims: {}, omitExp: false });
    const [h, p] = t.split('.');
    assert.equal(h, 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9');
    assert.deepEqual(JSON.parse(Buffer.from(p, 'base64url')), { sub: 'alice', iat: decodeToken(t).payload.iat, exp: 2000000000 });
  });

  test('negative tokens: expired, wrong signature, alg none, no exp', () => {
    assert.throws(() => verifyToken(mintToken({ sub: 'a', secret, expSeconds: -10 }), secret), /expired/);
    const wrong = mintToken({ sub: 'a', secret, wrongSignature: true });
    assert.equal(decodeToken(wrong).header.alg, 'HS256');
    assert.throws(() => verifyToken(wrong, secret), /bad signature/);
    const none = mintToken({ sub: 'a', alg: 'none' });
    assert.match(none, /^[\w-]+\.[\w-]+\.$/);
    assert.equal(decodeToken(none).header.alg, 'none');
    assert.throws(() => verifyToken(none, secret), /refused/);
    assert.equal(decodeToken(mintToken({ sub: 'a', secret, omitExp: true })).payload.exp, undefined);
  });
});

describe('msgpack and events', () => {
  let redis;
  let c;
  before(async () => {
    redis = await startRedis();
    c = redisClient(redis);
  });
  after(async () => {
    await c.close();
    await redis.stop();
  });

  test('decodes the exact cmsgpack bytes of an event', async () => {
    const bytes = await c.evalBuffer("return cmsgpack.pack({1,1,'alice','online',0,3,1764423000000,{}})", 0);
    assert.equal(bytes.toString('hex'), '980101a5616c696365a66f6e6c696e650003cf0000019acfce5fc090');
    assert.deepEqual(decode(bytes), [1, 1, 'alice', 'online', 0, 3, 1764423000000, []]);
    assert.deepEqual(decodeEvent(bytes), {
      format: 1, kind: 1, user: 'alice', status: 'online', last_seen: 0, version: 3, ts_ms: 1764423000000, to: [],
    });
  });

  test('decodes every width cmsgpack produces', async () => {
    const long = 'u'.repeat(40); // str8
    const longer = 'v'.repeat(300); // str16
    const bytes = await c.evalBuffer(
      `local big = {} for i = 1, 20 do big[i] = i * 1000 end
       return cmsgpack.pack({1, 2, ARGV[1], 'offline', 1764423000123, 70000, 4294967296, {'bob', ARGV[2]}, big, 200, -5, -200, 1.5, true})`,
      0, long, longer,
    );
    const v = decode(bytes);
    assert.equal(v[2], long);
    assert.equal(v[5], 70000);
    assert.equal(v[6], 4294967296);
    assert.deepEqual(v[7], ['bob', longer]);
    assert.deepEqual(v[8], Array.from({ length: 20 }, (_, i) => (i + 1) * 1000));
    assert.deepEqual(v.slice(9), [200, -5, -200, 1.5, true]);
    const ev = decodeEvent(bytes); // trailing elements are ignored
    assert.deepEqual([ev.kind, ev.user, ev.status, ev.last_seen, ev.version, ev.ts_ms, ev.to], [2, long, 'offline', 1764423000123, 70000, 4294967296, ['bob', longer]]);
  });

  test('an empty map for `to` reads as []', () => {
    assert.deepEqual(decodeEvent(Buffer.from('980101a161a16f00000080', 'hex')).to, []);
  });

  test('the encoder round-trips through cmsgpack', async () => {
    // (no nil inside: Lua tables cannot hold one, cmsgpack would turn the array into a map)
    const value = [1, 'x'.repeat(33), 255, 65536, 2 ** 40, -1, -129, ['a', 'b'], Array.from({ length: 17 }, (_, i) => i)];
    const repacked = await c.evalBuffer('return cmsgpack.pack(cmsgpack.unpack(ARGV[1]))', 0, encode(value));
    assert.deepEqual(decode(repacked), value);
    const local = [...value, null, true, false, 0.25, { k: 'v' }, Buffer.from([1, 2]), 'é'.repeat(200), -(2 ** 40)];
    assert.deepEqual(decode(encode(local)), local);
  });

  test('truncated, trailing and malformed input throws', () => {
    const ok = Buffer.from('980101a5616c696365a66f6e6c696e650003cf0000019acfce5fc090', 'hex');
    for (let n = 0; n < ok.length; n++) assert.throws(() => decode(ok.subarray(0, n)), /truncated/, `prefix ${n}`);
    assert.throws(() => decode(Buffer.concat([ok, Buffer.from([0])])), /trailing/);
    assert.throws(() => decode(Buffer.from([0xc1])), /unsupported/);
    assert.throws(() => decodeEvent(encode([2, 1, 'a', 'online', 0, 1, 1, []])), /format/);
    assert.throws(() => decodeEvent(encode([1, 1, 'a', 'online', 0, 1])), /8 elements/);
  });
});

describe('partitions and keys', () => {
  test('crc16("123456789") is the XMODEM check value 0x31C3', () => {
    assert.equal(crc16('123456789'), 0x31c3);
    assert.equal(crc16(''), 0);
  });
  test('agrees with Redis Cluster key slots', () => {
    for (const u of ['alice', 'bob', 'user:42', 'x', 'Ünïcode', 'a'.repeat(64)]) {
      assert.equal(partitionOf(u, 16384), calculateSlot(u), u);
    }
  });
  test('key names follow docs/data-model.md', () => {
    const p = partitionOf('alice', 1024);
    assert.equal(keys.presence('alice'), `pr:{p${p}}:alice`);
    assert.equal(keys.eventsOf('alice', 1024), `ev:{p${p}}`);
    assert.equal(keys.deadlines(7), 'dl:{p7}');
    assert.equal(keys.hb('alice', 'phone', 1), 'hb:{p0}:alice/phone');
    assert.equal(keys.contacts('alice'), 'ct:alice');
    assert.deepEqual(parseDevice('h|idle|1000|900'), { kind: 'http', activity: 'idle', deadline: 1000, seen: 900 });
    assert.deepEqual(parseDevice('c|online|r1'), { kind: 'conn', activity: 'online', instance: 'r1' });
  });
  test('the store scripts are loaded with common.lua prepended', () => {
    const body = loadScript('sweep');
    assert.ok(body.startsWith(fs.readFileSync(path.join(REPO, 'common/store/common.lua'), 'utf8')));
    assert.match(scriptHeader('sweep'), /KEYS\[1\]/);
  });
});

describe('pub/sub helper', () => {
  test('counts messages; barrier makes "nothing more arrived" checkable', async () => {
    const redis = await startRedis();
    const pub = redisClient(redis);
    const sub = await subscribe(redis, 'ev:{p1}');
    await sub.barrier();
    assert.equal(sub.count, 0);
    await pub.publish('ev:{p1}', encode([1, 1, 'alice', 'online', 0, 1, 5, []]));
    await pub.publish('ev:{p2}', 'elsewhere');
    await sub.barrier();
    assert.equal(sub.count, 1);
    assert.equal(sub.events()[0].user, 'alice');
    await pub.publish('ev:{p1}', encode([1, 1, 'bob', 'idle', 0, 2, 6, []]));
    await sub.waitForCount(2, 2000);
    await assert.rejects(sub.waitForCount(3, 100), /timed out/);
    await sub.close();
    await pub.close();
    await redis.stop();
  });
});

describe('http helper', () => {
  test('sends the bearer token and JSON; reads an early 413 answer', async () => {
    const seen = [];
    const srv = http.createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, type: req.headers['content-type'] });
      if (Number(req.headers['content-length']) > 1000) {
        res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
        res.end('{"error":"too_big","message":"body too large"}');
        req.socket.destroySoon?.();
        return;
      }
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', etag: '"e1"' });
        res.end(JSON.stringify({ echo: body }));
      });
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${srv.address().port}`;
    try {
      const a = api(base, 'TOKEN');
      const r = await a.post('/v1/heartbeat', { device: 'phone' });
      assert.equal(r.status, 200);
      assert.equal(r.headers.etag, '"e1"');
      assert.deepEqual(r.body, { echo: '{"device":"phone"}' });
      assert.deepEqual(seen[0], { method: 'POST', url: '/v1/heartbeat', auth: 'Bearer TOKEN', type: 'application/json' });
      const big = await a.post('/v1/heartbeat', undefined, { body: 'x'.repeat(4 << 20) });
      assert.equal(big.status, 413);
      assert.equal(big.body.error, 'too_big');
      const anon = await request(`${base}/x?y=1`);
      assert.equal(seen.at(-1).auth, undefined);
      assert.equal(seen.at(-1).url, '/x?y=1');
      assert.equal(anon.status, 200);
    } finally {
      srv.close();
    }
  });
});

describe('websocket helper', () => {
  test('records frames, next/waitFor with timeouts, close codes', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    const url = `ws://127.0.0.1:${wss.address().port}/v1/ws?token=t`;
    wss.on('connection', (sock, req) => {
      if (req.url.includes('reject')) return sock.close(4001, 'unauthorized');
      sock.send(JSON.stringify({ type: 'hello', user: 'alice' }));
      sock.send(JSON.stringify({ type: 'snapshot', users: [] }));
      sock.on('message', (d) => {
        const m = JSON.parse(d);
        if (m.type === 'ping') sock.send(JSON.stringify({ type: 'pong' }));
        if (m.type === 'bye') sock.close(4008, 'slow');
      });
    });
    try {
      const c = await connect(url);
      assert.equal((await c.next()).type, 'hello');
      assert.equal((await c.next((m) => m.type === 'snapshot')).type, 'snapshot');
      c.send({ type: 'ping' });
      assert.equal((await c.next((m) => m.type === 'pong', 2000)).type, 'pong');
      assert.equal((await c.waitFor((m) => m.type === 'hello')).user, 'alice'); // from history
      await assert.rejects(c.next((m) => m.type === 'never', 100), /no matching WebSocket frame within 100 ms/);
      c.send({ type: 'bye' });
      assert.deepEqual(await c.closed, { code: 4008, reason: 'slow' });
      await assert.rejects(c.next(() => true, 1000), /closed \(4008 slow\)/);

      const r = open(`${url}&reject=1`);
      await r.opened; // the upgrade succeeds, then the server closes
      assert.equal((await r.closed).code, 4001);

      const c2 = await connect(url);
      assert.equal((await c2.close(1000)).code, 1000);
    } finally {
      wss.close();
    }
  });
});

describe('waitFor', () => {
  test('returns the first truthy value; times out with the last value', async () => {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? n : 0), 1000, 5), 3);
    await assert.rejects(waitFor(() => ({ state: 'nope' }) && false, 50, 10, 'never'), /waitFor \(never\): not true after 50 ms; last value: false/);
    await assert.rejects(waitFor(() => { throw new Error('kaput'); }, 50, 10), /last error: kaput/);
  });
});
