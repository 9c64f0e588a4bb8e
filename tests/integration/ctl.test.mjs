// ctl.test.mjs: presencectl against a real redis-server and presence-send:
// tokens the services accept, graph edits and imports, presence queries, and
// a capacity plan computed from result files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startStack, binDir } from './lib/stack.mjs';
import { verifyToken, decodeToken } from './lib/jwt.mjs';

let stack;
let tmp;
before(async () => {
  stack = await startStack({ partitions: 16 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'presencectl-'));
});
after(async () => {
  if (stack) await stack.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs presencectl; resolves {code, out, err}. */
function ctl(args, env = {}) {
  return new Promise((resolve) => {
    execFile(path.join(binDir(), 'presencectl'), args, { env: { ...process.env, ...env }, timeout: 20000 },
      (e, out, err) => resolve({ code: e ? e.code : 0, out, err }));
  });
}
const common = () => ['--redis', stack.redis.url, '--partitions', '16'];

test('token: HS256 with the secret, role admin only with --admin, and send accepts it', async () => {
  const r = await ctl(['token', '--user', 'tok-alice', '--ttl', '120'], { PRESENCE_JWT_SECRET: stack.secret });
  assert.equal(r.code, 0, r.err);
  const tok = r.out.trim();
  verifyToken(tok, stack.secret);
  const { header, payload } = decodeToken(tok);
  assert.equal(header.alg, 'HS256');
  assert.equal(payload.sub, 'tok-alice');
  assert.equal(payload.role, undefined);
  assert.ok(payload.exp - Date.now() / 1000 <= 121);
  assert.equal((await stack.api(tok).post('/v1/heartbeat', {})).status, 204);
  const adm = await ctl(['--jwt-secret', stack.secret, 'token', '--user', 'ops', '--admin']);
  assert.equal(decodeToken(adm.out.trim()).payload.role, 'admin');
  assert.equal((await ctl(['token', '--user', 'a b'], { PRESENCE_JWT_SECRET: 's' })).code, 2);
  assert.equal((await ctl(['token', '--user', 'x'], { PRESENCE_JWT_SECRET: '' })).code, 2);
});

test('graph: edits, an import file, member listing; presence reads what send wrote', async () => {
  assert.equal((await ctl([...common(), 'graph', 'contact', 'add', 'g-alice', 'g-bob'])).code, 0);
  const file = path.join(tmp, 'edits.txt');
  fs.writeFileSync(file, '# demo\nmember g-team g-alice\nmember g-team g-carol\ncontact g-carol g-bob\n-contact g-carol g-bob\n');
  const imp = await ctl([...common(), 'graph', 'import', file]);
  assert.equal(imp.code, 0, imp.err);
  assert.match(imp.out, /imported 4 edits/);
  const members = await ctl([...common(), 'graph', 'members', 'g-team']);
  assert.deepEqual(members.out.trim().split('\n').sort(), ['g-alice', 'g-carol']);
  // bob may watch alice (contact), carol may watch alice (group), carol may not watch... bob
  const bob = stack.api('g-bob');
  assert.equal((await stack.api('g-alice').post('/v1/heartbeat', { status: 'idle' })).status, 204);
  const seen = JSON.parse((await bob.get('/v1/presence?users=g-alice')).text);
  assert.equal(seen.users[0].status, 'idle');
  const p = await ctl([...common(), 'presence', '--json', 'g-alice', 'g-nobody']);
  assert.equal(p.code, 0, p.err);
  const rows = p.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((x) => [x.user, x.status]), [['g-alice', 'idle'], ['g-nobody', 'offline']]);
  const bad = path.join(tmp, 'bad.txt');
  fs.writeFileSync(bad, 'contact only-two\n');
  const r = await ctl([...common(), 'graph', 'import', bad]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /bad\.txt:1:/);
});

test('plan: the arithmetic on the measured figures of a results directory', async () => {
  const dir = path.join(tmp, 'results');
  fs.mkdirSync(dir);
  const put = (name, doc) => fs.writeFileSync(path.join(dir, name), JSON.stringify(doc));
  put('connections-20260101-000000.json', { connections: 15000, bytes_per_conn: 1000, connect_rate: 10000 });
  put('connections-20260102-000000.json', { connections: 5000, bytes_per_conn: 3000, connect_rate: 9000 });
  put('ingest-20260101-000000.json', { heartbeats_per_s: 20000 });
  put('baseline-redis-20260101-000000.json', { requests_per_s: 50000 });
  put('fanout-20260101-000000.json', { steps: [
    { deliveries_per_s: 40000, p99_ms: 10 }, { deliveries_per_s: 90000, p99_ms: 30 }] });
  put('redis-memory-20260101-000000.json', { bytes_per_online_user: 250 });
  const r = await ctl(['plan', '--results', dir, '--users', '1000000', '--online-ratio', '0.2',
    '--watchers', '10', '--changes-per-user-hour', '36', '--http-share', '0.5', '--heartbeat-s', '10']);
  assert.equal(r.code, 0, r.err);
  // online 200k; http devices 100k -> 10k heartbeats/s; changes 200k x 36 / 3600 = 2k/s;
  // deliveries 2k x 10 x 0.2 = 4k/s; redis = 10k + 8k + 4096 = 22096 -> 1 shard at 25k
  assert.match(r.out, /changes\/s\s+= online x 36 \/ 3600 = 2k/);
  assert.match(r.out, /deliveries\/s\s+= .* = 4k/);
  assert.match(r.out, /Redis shards\s+= ceil\(22096 \/ 25k\) = 1/);
  assert.match(r.out, /send pods\s+= ceil\(HTTP heartbeats\/s \/ 10k\) = 1/);
  assert.match(r.out, /fanout pods\s+= ceil\(deliveries\/s \/ 20k\) = 1/, 'the 90k step had p99 >= 20 ms');
  assert.match(r.out, /connections-20260101-000000\.json/, 'memory from the run with >= 10,000 connections');
  assert.match(r.out, /Redis presence\s+= online x 250 B/);
  const missing = await ctl(['plan', '--results', path.join(tmp, 'none'), '--users', '5']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /no result/);
});
