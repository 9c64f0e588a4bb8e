// app.js: the Presence demo page. Served by presence-receive from --static-dir
// (web/); the client module is web/presence.js, a symlink to
// clients/js/presence.js.
//
// URL parameters: token (a JWT; without it a small form asks for one),
// user (default: the token's sub), device (default: one id per user kept in
// localStorage), group (subscribe to it at once), ws (the receive URL; default
// this page's origin).
import { PresenceClient } from './presence.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const LAST_SEEN_REFRESH_MS = 5000;
const LOG_MAX = 50;

function tokenSub(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '==='.slice((part.length + 3) % 4))).sub ?? null;
  } catch {
    return null;
  }
}

function deviceFor(user) {
  const key = `presence.device.${user}`;
  let id = null;
  try {
    id = localStorage.getItem(key);
    if (!/^[A-Za-z0-9_.:@-]{1,64}$/.test(id ?? '')) {
      const b = new Uint8Array(6);
      crypto.getRandomValues(b);
      id = `web-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
      localStorage.setItem(key, id);
    }
  } catch {
    id = `web-${Math.random().toString(16).slice(2, 14)}`; // storage blocked: one id per page load
  }
  return id;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", else the date. */
export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `on ${new Date(ms).toLocaleDateString()}`;
}

function log(text, cls) {
  const ul = $('log');
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (cls) li.className = cls;
  ul.prepend(li);
  while (ul.children.length > LOG_MAX) ul.lastChild.remove();
}

/** Creates or updates one row <li data-testid="<prefix>-<user>" data-status>. */
function renderRow(list, prefix, e) {
  const testid = `${prefix}-${e.user}`;
  let li = list.querySelector(`li[data-testid="${CSS.escape(testid)}"]`);
  if (!li) {
    li = document.createElement('li');
    li.dataset.testid = testid;
    li.dataset.user = e.user;
    const dot = document.createElement('span');
    dot.className = 'dot';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = e.user;
    const st = document.createElement('span');
    st.className = 'status-text';
    const seen = document.createElement('span');
    seen.className = 'last-seen';
    if (prefix === 'contact') seen.dataset.testid = `last-seen-${e.user}`;
    li.append(dot, name, st, seen);
    list.append(li);
  }
  li.dataset.status = e.status;
  li.dataset.version = String(e.version);
  li.querySelector('.status-text').textContent = e.status === 'dnd' ? 'do not disturb' : e.status;
  const seen = li.querySelector('.last-seen');
  if (e.status === 'offline' && e.last_seen != null) seen.dataset.ts = String(e.last_seen);
  else delete seen.dataset.ts;
  seen.textContent = lastSeenText(e);
  return li;
}

function lastSeenText(e) {
  if (e.status !== 'offline') return '';
  return e.last_seen != null ? `last seen ${ago(e.last_seen)}` : '';
}

function sortRows(list) {
  const rows = [...list.children].sort((a, b) => a.dataset.user.localeCompare(b.dataset.user));
  for (const r of rows) list.append(r);
}

function startLogin() {
  $('login').hidden = false;
  const u = params.get('user');
  if (u) $('login-user').value = u;
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams(location.search);
    q.set('user', $('login-user').value);
    q.set('token', $('login-token').value.trim());
    location.search = q.toString();
  });
}

function start(token) {
  const sub = tokenSub(token);
  const user = params.get('user') || sub || '?';
  const device = params.get('device') || deviceFor(user);
  const url = params.get('ws') || location.origin;
  $('app').hidden = false;
  $('me-user').textContent = user;
  $('me-device').textContent = device;
  document.title = `${user} · Presence demo`;

  const client = new PresenceClient({ url, token, device, autoConnect: false });
  window.presence = client; // for the console and tests

  const contacts = $('contacts');
  const members = $('group-members');
  let shownGroup = null;

  const setConn = ({ state, retryInMs }) => {
    const el = $('conn-state');
    el.dataset.state = state;
    el.parentElement.dataset.state = state;
    el.textContent =
      state === 'open' ? 'connected'
        : state === 'connecting' ? (retryInMs > 0 ? `reconnecting in ${Math.ceil(retryInMs / 1000)} s` : 'connecting')
          : 'disconnected';
  };

  const showSelf = (e) => {
    // A user reads its own status (invisible included) when the snapshot holds it.
    const picker = $('status-picker');
    if (document.activeElement === picker) return;
    if (['online', 'idle', 'dnd', 'invisible'].includes(e.status)) picker.value = e.status;
  };

  const renderContact = (e) => {
    if (e.user === client.user || e.user === sub) {
      showSelf(e);
      return;
    }
    renderRow(contacts, 'contact', e);
  };

  const renderAllContacts = (users) => {
    const keep = new Set([...users.keys()].map((u) => `contact-${u}`));
    for (const li of [...contacts.children]) if (!keep.has(li.dataset.testid)) li.remove();
    for (const e of users.values()) renderContact(e);
    sortRows(contacts);
    $('contacts-empty').hidden = contacts.children.length > 0;
  };

  const renderGroup = (g) => {
    if (g.group !== shownGroup) return;
    $('group-panel').hidden = false;
    $('group-title').textContent = g.group;
    $('group-online').textContent = String(g.online);
    $('group-count').textContent = String(g.users.size);
    const keep = new Set([...g.users.keys()].map((u) => `member-${u}`));
    for (const li of [...members.children]) if (!keep.has(li.dataset.testid)) li.remove();
    for (const e of g.users.values()) renderRow(members, 'member', e);
    sortRows(members);
  };

  client.on('state', (s) => setConn(s));
  client.on('hello', (h) => log(`connected as ${h.user} (device ${h.device}, heartbeat ${h.heartbeat_ms} ms)`));
  client.on('snapshot', ({ users }) => renderAllContacts(users));
  client.on('presence', (e) => {
    renderContact(e);
    sortRows(contacts);
    $('contacts-empty').hidden = contacts.children.length > 0;
  });
  client.on('group', (g) => renderGroup(g));
  client.on('error', (e) => log(`error ${e.code}: ${e.message}`, 'error'));
  client.on('close', (c) =>
    log(`connection closed (${c.code}${c.reason ? ` ${c.reason}` : ''})${c.willReconnect ? ', reconnecting' : ''}`),
  );

  $('status-picker').addEventListener('change', (ev) => {
    const s = ev.target.value;
    // online/idle are this device's activity; choosing one also clears a
    // dnd/invisible preference. dnd/invisible set the preference.
    if (s === 'online' || s === 'idle') {
      client.setStatus('none');
      client.setStatus(s);
    } else client.setStatus(s);
    log(`status set to ${s}`);
  });

  const subscribeTo = (name) => {
    if (!/^[A-Za-z0-9_.:@-]{1,64}$/.test(name)) {
      log('a group name is 1-64 characters of A-Z a-z 0-9 _ . : @ -', 'error');
      return;
    }
    if (shownGroup && shownGroup !== name) client.unsubscribe(shownGroup);
    shownGroup = name;
    members.replaceChildren();
    $('group-panel').hidden = true;
    client.subscribe(name);
    log(`subscribed to ${name}`);
  };
  $('group-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    subscribeTo($('group-name').value.trim());
  });
  $('group-unsubscribe').addEventListener('click', () => {
    if (!shownGroup) return;
    client.unsubscribe(shownGroup);
    log(`unsubscribed from ${shownGroup}`);
    shownGroup = null;
    $('group-panel').hidden = true;
    members.replaceChildren();
  });
  if (params.get('group')) {
    $('group-name').value = params.get('group');
    subscribeTo(params.get('group'));
  }

  // "last seen X ago" moves on by itself.
  setInterval(() => {
    for (const el of document.querySelectorAll('.last-seen[data-ts]')) {
      el.textContent = `last seen ${ago(Number(el.dataset.ts))}`;
    }
  }, LAST_SEEN_REFRESH_MS);

  client.connect();
}

const token = params.get('token');
if (token) start(token);
else startLogin();
