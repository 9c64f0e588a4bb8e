// run.test.mjs: `make run`'s script (scripts/run.sh) starts the whole local
// stack, seeds the demo graph and prints where to look; SIGTERM (what Ctrl-C
// amounts to) stops every process it started.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { REPO, binDir, freePort } from './lib/procs.mjs';
import { request } from './lib/http.mjs';
import { mintToken } from './lib/jwt.mjs';
import { waitFor } from './lib/wait.mjs';

const portFree = (port) =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

/** A base port with `n` free consecutive ports after it. */
async function freeRange(n) {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const ok = await Promise.all([...Array(n).keys()].map((k) => portFree(base + k)));
    if (ok.every(Boolean)) return base;
  }
  throw new Error('no free port range');
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let child;
let pids = [];
after(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

test('make run starts everything, seeds the demo, and SIGTERM leaves nothing running', async () => {
  const base = await freeRange(5);
  const nng = await freeRange(3);
  const redisPort = await freePort();
  const secret = 'run-test-secret';
  child = spawn('bash', [path.join(REPO, 'scripts/run.sh'), path.dirname(binDir())], {
    cwd: REPO,
    env: {
      ...process.env,
      PRESENCE_PORT_BASE: String(base),
      PRESENCE_NNG_PORT_BASE: String(nng),
      PRESENCE_REDIS_PORT: String(redisPort),
      PRESENCE_JWT_SECRET: secret,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig)));
  await waitFor(() => out.includes('Presence is running') || child.exitCode !== null, 60000, 50,
    'the stack to start');
  pids = [...out.matchAll(/started [\w-]+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  assert.equal(pids.length, 6, out);
  assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${base + 1}/\\?token=`));

  for (const port of [base, base + 1, base + 2, base + 3, base + 4]) {
    assert.equal((await request(`http://127.0.0.1:${port}/readyz`)).status, 200, `port ${port}`);
  }
  // the demo page is served, and the demo graph is seeded: bob may watch alice
  assert.equal((await request(`http://127.0.0.1:${base + 1}/`)).status, 200);
  const alice = mintToken({ sub: 'alice', secret });
  const bob = mintToken({ sub: 'bob', secret });
  const api = `http://127.0.0.1:${base}`;
  assert.equal((await request(`${api}/v1/heartbeat`, { method: 'POST', token: alice })).status, 204);
  const r = await request(`${api}/v1/presence?users=alice`, { token: bob });
  assert.equal(JSON.parse(r.text).users[0].status, 'online');

  child.kill('SIGTERM');
  await exited;
  await waitFor(() => pids.every((pid) => !alive(pid)), 15000, 50, 'every process to exit');
  assert.match(out, /stopped/);
});
