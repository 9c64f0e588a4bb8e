// presence.js: the browser client of Presence (docs/api.md, "WebSocket").
// A plain ES module with no dependencies and no build step:
//
//   import { PresenceClient } from './presence.js';
//   const pc = new PresenceClient({ url: 'ws://127.0.0.1:8081', token, device: 'laptop' });
//   pc.on('presence', (p) => console.log(p.user, p.status, p.last_seen));
//   pc.setStatus('idle');
//
// It holds one WebSocket to presence-receive, keeps a map user -> presence
// that is replaced by each connection's snapshot and then updated by pushes
// (dropping any update whose version is not newer than the one held),
// reconnects with exponential backoff and full jitter, and detects dead
// connections with application pings. See clients/js/README.md.

/** Statuses setStatus accepts. online/idle are this device's activity;
 * dnd/invisible/none are the user's preference (kept by the server until changed). */
export const STATUSES = Object.freeze(['online', 'idle', 'dnd', 'invisible', 'none']);
const ACTIVITIES = new Set(['online', 'idle']);

/** Close codes after which the client does not reconnect. */
export const FATAL_CLOSE_CODES = Object.freeze([4001, 4003]);
const CLOSE_DRAINING = 1012;
const CLOSE_DEAD = 4000; // our own code when we drop a connection that went silent

const ID_RE = /^[A-Za-z0-9_.:@-]{1,64}$/;

const DEFAULTS = {
  backoffBaseMs: 500, // first retry waits up to this long (full jitter)
  backoffCapMs: 30000, // no retry waits longer
  stableMs: 10000, // a connection that lives this long resets the backoff
  connectTimeoutMs: 10000, // socket open + hello must arrive within this
  heartbeatMs: 20000, // until the server's hello says otherwise
};

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') {
    const b = new Uint8Array(8);
    c.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }
  return Math.random().toString(16).slice(2, 18).padEnd(16, '0');
}

/** Turns http(s)://host, ws(s)://host or a full .../v1/ws URL into the WebSocket endpoint. */
function endpointOf(url) {
  let u = String(url);
  if (/^http/i.test(u)) u = u.replace(/^http/i, 'ws');
  const parsed = new URL(u);
  if (!/\/v1\/ws\/?$/.test(parsed.pathname)) parsed.pathname = parsed.pathname.replace(/\/?$/, '/v1/ws');
  parsed.search = '';
  parsed.hash = '';
  return parsed.toString();
}

function entryOf(u) {
  return {
    user: String(u.user),
    status: String(u.status),
    last_seen: u.last_seen == null ? null : Number(u.last_seen),
    version: Number(u.version) || 0,
  };
}

const countsOnline = (status) => status !== 'offline' && status !== 'invisible';

/**
 * new PresenceClient(options)
 *   url          receive's base URL (ws://host:8081, http://host:8081) or the
 *                full ws://host:8081/v1/ws
 *   token        a JWT, or
 *   getToken     async () => JWT, called before every (re)connect
 *   device       this device's id, kept across reconnects (default: random,
 *                fixed for the client's life)
 *   autoConnect  connect at construction (default true; else call connect())
 *   backoffBaseMs, backoffCapMs, stableMs, connectTimeoutMs  see DEFAULTS
 *   WebSocket    the WebSocket constructor (default globalThis.WebSocket)
 *
 * Events (EventTarget; each is a CustomEvent whose `detail` is described
 * here; on(type, fn) calls fn(detail)):
 *   state     {state: 'connecting'|'open'|'closed', previous, attempt, retryInMs}
 *   open      {url}                 the socket opened (hello not yet read)
 *   hello     {user, device, heartbeat_ms}
 *   snapshot  {users: Map<user, entry>}   state replaced from a fresh snapshot
 *   presence  entry {user, status, last_seen, version}   one user changed
 *   group     {group, online, users: Map<user, entry>, changed: [user]}
 *   error     {code, message, fatal}  server error frame (fatal false), or a
 *             close that stops the client (4001/4003: fatal true), or a
 *             getToken failure
 *   close     {code, reason, wasClean, willReconnect}
 */
export class PresenceClient extends EventTarget {
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError('PresenceClient: url is required');
    if (!options.token && typeof options.getToken !== 'function')
      throw new TypeError('PresenceClient: token or getToken is required');
    if (options.device != null && !ID_RE.test(String(options.device)))
      throw new TypeError('PresenceClient: device must be 1-64 characters of [A-Za-z0-9_.:@-]');
    this.url = endpointOf(options.url);
    this.device = options.device != null ? String(options.device) : `web-${randomId()}`;
    this._token = options.token ?? null;
    this._getToken = options.getToken ?? null;
    this._WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WS !== 'function') throw new TypeError('PresenceClient: no WebSocket implementation');
    this._opt = {};
    for (const k of Object.keys(DEFAULTS)) this._opt[k] = Number(options[k]) > 0 ? Number(options[k]) : DEFAULTS[k];

    this.state = 'closed';
    this.user = null; // from hello
    this.heartbeatMs = this._opt.heartbeatMs;
    this._users = new Map(); // user -> entry (snapshot + pushes)
    this._groups = new Map(); // group -> {group, online, users: Map}
    this._subs = new Set(); // groups to (re)subscribe
    this._activity = null; // last online/idle set, re-sent after a reconnect
    this._pendingPref = null; // dnd/invisible/none set while not connected
    this._ws = null;
    this._stopped = true;
    this._attempt = 0; // failed attempts since the last stable connection
    this._drainUsed = false; // one immediate reconnect per stable period
    this._timers = { retry: null, ping: null, watchdog: null, stable: null };
    this._gen = 0; // bumps on every new socket; stale callbacks compare it

    if (options.autoConnect !== false) this.connect();
  }

  // ---- public API -------------------------------------------------------

  /** Starts (or restarts after close()/a fatal close) connecting. */
  connect() {
    if (!this._stopped) return;
    this._stopped = false;
    this._attempt = 0;
    this._drainUsed = false;
    this._open();
  }

  /** Closes the connection for good (no reconnect) and keeps the last state readable. */
  close(code = 1000, reason = 'client closed') {
    this._stopped = true;
    this._clearTimers();
    const ws = this._detach();
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        /* already closing */
      }
      this._emit('close', { code, reason, wasClean: true, willReconnect: false });
    }
    this._setState('closed');
  }

  /** 'online' | 'idle' (this device) or 'dnd' | 'invisible' | 'none' (the user's preference). */
  setStatus(status) {
    if (!STATUSES.includes(status)) throw new TypeError(`setStatus: status must be one of ${STATUSES.join(', ')}`);
    if (ACTIVITIES.has(status)) this._activity = status;
    if (this._isOpen()) this._send({ type: 'status', status });
    else if (!ACTIVITIES.has(status)) this._pendingPref = status;
  }

  /** Subscribes to a group (members only); kept across reconnects. */
  subscribe(group) {
    group = String(group);
    if (!ID_RE.test(group)) throw new TypeError('subscribe: group must be 1-64 characters of [A-Za-z0-9_.:@-]');
    this._subs.add(group);
    if (this._isOpen()) this._send({ type: 'subscribe', group });
  }

  unsubscribe(group) {
    group = String(group);
    const had = this._subs.delete(group);
    this._groups.delete(group);
    if (had && this._isOpen()) this._send({ type: 'unsubscribe', group });
  }

  /** The presence held for a user ({user, status, last_seen, version}) or undefined. */
  get(user) {
    const e = this._users.get(user);
    return e ? { ...e } : undefined;
  }

  /** Everyone held (snapshot + pushes): a new Map user -> entry. */
  all() {
    return new Map([...this._users].map(([k, v]) => [k, { ...v }]));
  }

  /** A subscribed group's state {group, online, users: Map} or undefined. */
  group(name) {
    const g = this._groups.get(name);
    return g ? { group: g.group, online: g.online, users: new Map(g.users) } : undefined;
  }

  /** The groups subscribed to (kept across reconnects). */
  subscriptions() {
    return [...this._subs];
  }

  /** on(type, fn): fn(detail); returns a function that removes the listener. */
  on(type, fn) {
    const wrapped = (ev) => fn(ev.detail);
    (this._wrapped ??= new Map()).set(fn, [...(this._wrapped.get(fn) ?? []), [type, wrapped]]);
    this.addEventListener(type, wrapped);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const list = this._wrapped?.get(fn);
    if (!list) return;
    const keep = [];
    for (const [t, w] of list) {
      if (t === type) this.removeEventListener(t, w);
      else keep.push([t, w]);
    }
    if (keep.length) this._wrapped.set(fn, keep);
    else this._wrapped.delete(fn);
  }

  // ---- connection -------------------------------------------------------

  _isOpen() {
    return this.state === 'open' && this._ws && this._ws.readyState === 1;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state, extra = {}) {
    const previous = this.state;
    if (previous === state && state !== 'connecting') return;
    this.state = state;
    this._emit('state', { state, previous, attempt: this._attempt, ...extra });
  }

  _clearTimers() {
    for (const k of Object.keys(this._timers)) {
      clearTimeout(this._timers[k]);
      clearInterval(this._timers[k]);
      this._timers[k] = null;
    }
  }

  /** Unhooks the current socket (its late events are ignored) and returns it. */
  _detach() {
    const ws = this._ws;
    this._ws = null;
    this._gen++;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // closing a socket that is still connecting may report an error
    }
    return ws;
  }

  async _open() {
    this._clearTimers();
    const gen = ++this._gen;
    this._setState('connecting', { retryInMs: 0 });
    let token;
    try {
      token = this._getToken ? await this._getToken() : this._token;
      if (!token) throw new Error('no token');
    } catch (e) {
      if (gen !== this._gen || this._stopped) return;
      this._emit('error', { code: 'token', message: `getToken failed: ${e?.message ?? e}`, fatal: false });
      this._scheduleRetry();
      return;
    }
    if (gen !== this._gen || this._stopped) return;
    const u = new URL(this.url);
    u.searchParams.set('token', token);
    u.searchParams.set('device', this.device);
    let ws;
    try {
      ws = new this._WS(u.toString());
    } catch (e) {
      this._emit('error', { code: 'connect', message: String(e?.message ?? e), fatal: false });
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    const mine = this._gen;
    let gotHello = false;
    // Until hello arrives the watchdog is the connect timeout.
    this._armWatchdog(this._opt.connectTimeoutMs);
    ws.onopen = () => {
      if (mine !== this._gen) return;
      this._emit('open', { url: this.url });
    };
    ws.onmessage = (ev) => {
      if (mine !== this._gen) return;
      if (gotHello) this._armWatchdog(2 * this.heartbeatMs);
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data));
      } catch {
        return; // not ours to understand
      }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'hello') {
        gotHello = true;
        this._onHello(msg);
      } else this._onFrame(msg);
    };
    ws.onerror = () => {}; // a close follows
    ws.onclose = (ev) => {
      if (mine !== this._gen) return;
      this._onClose(ev.code, ev.reason ?? '', !!ev.wasClean);
    };
  }

  _armWatchdog(ms) {
    clearTimeout(this._timers.watchdog);
    this._timers.watchdog = setTimeout(() => {
      // Silent for too long (or never got hello): the connection is dead.
      const ws = this._detach();
      try {
        ws?.close(CLOSE_DEAD, 'no traffic');
      } catch {
        /* ignore */
      }
      this._onClose(CLOSE_DEAD, 'heartbeat timeout', false, true);
    }, ms);
  }

  _onHello(msg) {
    this.user = msg.user ?? null;
    const hb = Number(msg.heartbeat_ms);
    if (hb > 0) this.heartbeatMs = hb;
    this._armWatchdog(2 * this.heartbeatMs);
    clearInterval(this._timers.ping);
    this._timers.ping = setInterval(() => this._send({ type: 'ping' }), this.heartbeatMs);
    clearTimeout(this._timers.stable);
    this._timers.stable = setTimeout(() => {
      this._attempt = 0;
      this._drainUsed = false;
    }, this._opt.stableMs);
    this._setState('open');
    this._emit('hello', { user: msg.user, device: msg.device, heartbeat_ms: this.heartbeatMs });
    // Restore what this client had asked for before the reconnect. Only the
    // activity is re-sent: the preference lives on the server and another
    // device may have changed it meanwhile.
    if (this._activity && this._activity !== 'online') this._send({ type: 'status', status: this._activity });
    if (this._pendingPref) {
      this._send({ type: 'status', status: this._pendingPref });
      this._pendingPref = null;
    }
    for (const g of this._subs) this._send({ type: 'subscribe', group: g });
  }

  _onFrame(msg) {
    switch (msg.type) {
      case 'snapshot': {
        const users = new Map();
        for (const u of Array.isArray(msg.users) ? msg.users : []) {
          if (u && typeof u.user === 'string') users.set(u.user, entryOf(u));
        }
        this._users = users;
        this._emit('snapshot', { users: this.all() });
        break;
      }
      case 'presence':
        if (typeof msg.user === 'string') this._applyPresence(entryOf(msg));
        break;
      case 'presence_batch':
        this._applyBatch(msg);
        break;
      case 'group':
        this._applyGroup(msg);
        break;
      case 'pong':
        break;
      case 'error':
        this._emit('error', { code: msg.code ?? 'error', message: msg.message ?? '', fatal: false, group: msg.group });
        break;
      default:
        break;
    }
  }

  /** Applies one user's change everywhere it is held; emits presence/group events. */
  _applyPresence(e) {
    const held = this._users.get(e.user);
    if (held ? e.version > held.version : true) {
      this._users.set(e.user, e);
      this._emit('presence', { ...e });
    }
    for (const g of this._groups.values()) {
      if (this._applyToGroup(g, e)) this._emitGroup(g, [e.user]);
    }
  }

  /** true when the group's copy changed (the version is newer). */
  _applyToGroup(g, e) {
    const held = g.users.get(e.user);
    if (!held || e.version <= held.version) return false;
    if (countsOnline(held.status) !== countsOnline(e.status)) g.online += countsOnline(e.status) ? 1 : -1;
    if (g.online < 0) g.online = 0;
    g.users.set(e.user, e);
    return true;
  }

  _applyBatch(msg) {
    const g = this._groups.get(msg.group);
    const changed = [];
    for (const u of Array.isArray(msg.users) ? msg.users : []) {
      if (!u || typeof u.user !== 'string') continue;
      const e = entryOf(u);
      if (g) {
        const held = g.users.get(e.user);
        if (!held) {
          g.users.set(e.user, e);
          changed.push(e.user);
        } else if (this._applyToGroup(g, e)) changed.push(e.user);
      }
      const mine = this._users.get(e.user);
      if (mine && e.version > mine.version) {
        this._users.set(e.user, e);
        this._emit('presence', { ...e });
      }
    }
    if (g) {
      if (Number.isFinite(Number(msg.online))) g.online = Number(msg.online);
      this._emitGroup(g, changed);
    }
  }

  _applyGroup(msg) {
    if (typeof msg.group !== 'string' || !this._subs.has(msg.group)) return;
    const users = new Map();
    for (const u of Array.isArray(msg.users) ? msg.users : []) {
      if (!u || typeof u.user !== 'string') continue;
      const e = entryOf(u);
      // A reply read before a push we already applied must not roll it back.
      const mine = this._users.get(e.user);
      users.set(e.user, mine && mine.version > e.version ? { ...mine } : e);
    }
    let online = Number(msg.online);
    if (!Number.isFinite(online)) online = [...users.values()].filter((e) => countsOnline(e.status)).length;
    const g = { group: msg.group, online, users };
    this._groups.set(msg.group, g);
    this._emitGroup(g, [...users.keys()]);
  }

  _emitGroup(g, changed) {
    this._emit('group', { group: g.group, online: g.online, users: new Map(g.users), changed });
  }

  _send(obj) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  _onClose(code, reason, wasClean, dead = false) {
    this._clearTimers();
    this._detach();
    if (this._stopped) return;
    const fatal = FATAL_CLOSE_CODES.includes(code);
    this._emit('close', { code, reason, wasClean, willReconnect: !fatal });
    if (fatal) {
      this._stopped = true;
      this._emit('error', {
        code,
        message: reason || (code === 4001 ? 'unauthorized or token expired' : 'forbidden'),
        fatal: true,
      });
      this._setState('closed', { code });
      return;
    }
    if (code === CLOSE_DRAINING && !this._drainUsed) {
      // The instance is draining: go elsewhere now (once per stable period,
      // so that a balancer that keeps sending us back cannot make a loop).
      this._drainUsed = true;
      this._open();
      return;
    }
    void dead;
    this._scheduleRetry();
  }

  _scheduleRetry() {
    if (this._stopped) return;
    const { backoffBaseMs, backoffCapMs } = this._opt;
    const ceiling = Math.min(backoffCapMs, backoffBaseMs * 2 ** Math.min(this._attempt, 30));
    const wait = Math.floor(Math.random() * ceiling); // full jitter
    this._attempt++;
    this._setState('connecting', { retryInMs: wait });
    clearTimeout(this._timers.retry);
    this._timers.retry = setTimeout(() => {
      this._timers.retry = null;
      if (!this._stopped) this._open();
    }, wait);
  }
}

export default PresenceClient;
