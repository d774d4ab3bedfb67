// Tessera admin page. fetch() only; every value is put in the page with textContent (never as
// HTML). Writes send the CSRF token from /dashboard/api/me in the x-tessera-csrf header.
'use strict';

const api = '/dashboard/api/';
let csrf = null;
let currentUser = null;

const $ = (id) => document.getElementById(id);

function time(ms) {
  return ms == null ? '—' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

async function get(path) {
  const r = await fetch(api + path, { credentials: 'same-origin' });
  if (r.status === 401) { showSignIn(); throw new Error('signed out'); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function post(path, body) {
  const r = await fetch(api + path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-tessera-csrf': csrf || '' },
    body: JSON.stringify(body || {}),
  });
  const text = await r.text();
  const json = text ? JSON.parse(text) : {};
  if (!r.ok) throw new Error(json.error || r.statusText);
  return json;
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function showSignIn() {
  csrf = null;
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
}

async function showApp() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  const apps = await get('apps');
  const select = $('app-select');
  const chosen = select.value || 'public';
  select.textContent = '';
  for (const id of apps.apps) {
    const o = document.createElement('option');
    o.value = id; o.textContent = id;
    select.appendChild(o);
  }
  select.value = apps.apps.includes(chosen) ? chosen : 'public';
  await Promise.all([loadCounters(), loadKeys(), loadEvents()]);
}

async function start() {
  try {
    const me = await get('me');
    csrf = me.csrf;
    await showApp();
  } catch (e) {
    showSignIn();
  }
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('signin-error');
  err.textContent = '';
  const key = $('admin-key').value;
  const r = await fetch(api + 'sign-in', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key }),
  });
  const body = await r.json().catch(() => ({}));
  $('admin-key').value = '';
  if (!r.ok) { err.textContent = body.error || 'Sign-in refused.'; return; }
  csrf = body.csrf;
  await showApp();
});

$('sign-out').addEventListener('click', async () => {
  try { await post('sign-out'); } finally { showSignIn(); }
});

async function loadCounters() {
  const c = await get('counters');
  $('counters-since').textContent = 'since ' + time(c.since_ms);
  const dl = $('counters');
  dl.textContent = '';
  for (const [name, n] of Object.entries(c.counters)) {
    const div = document.createElement('div');
    div.dataset.counter = name;
    const dt = document.createElement('dt'); dt.textContent = name;
    const dd = document.createElement('dd'); dd.textContent = String(n);
    div.append(dt, dd);
    dl.appendChild(div);
  }
}

async function loadSessions() {
  const app = $('app-select').value;
  const user = $('user-id').value.trim();
  currentUser = user;
  const status = $('sessions-status');
  const tbody = $('sessions-table').querySelector('tbody');
  tbody.textContent = '';
  if (!user) return;
  const r = await get('sessions?app=' + encodeURIComponent(app) + '&user=' + encodeURIComponent(user));
  status.textContent = r.sessions.length + ' live session(s) of ' + user;
  $('revoke-all').hidden = r.sessions.length === 0;
  for (const s of r.sessions) {
    const tr = document.createElement('tr');
    tr.dataset.handle = s.handle;
    cell(tr, s.handle, 'mono');
    cell(tr, s.label + (s.userAgent ? '' : ' (no user agent)'));
    cell(tr, s.ip || '—');
    cell(tr, time(s.createdAt));
    cell(tr, time(s.lastActiveAt));
    const td = cell(tr, '');
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'danger revoke'; b.textContent = 'Revoke';
    b.addEventListener('click', () => revoke({ app, user, handles: [s.handle] }));
    td.appendChild(b);
    tbody.appendChild(tr);
  }
}

async function revoke(body) {
  const status = $('sessions-status');
  try {
    const r = await post('revoke', body);
    await loadSessions();
    status.textContent = 'Revoked ' + r.revoked.length + ' session(s). ' + status.textContent;
    status.className = 'ok';
    await Promise.all([loadEvents(), loadCounters()]);
  } catch (e) {
    status.textContent = 'Revoke failed: ' + e.message;
    status.className = 'error';
  }
}

$('sessions-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('sessions-status').className = '';
  try { await loadSessions(); } catch (e) { $('sessions-status').textContent = e.message; }
  await loadKeys();
});

$('revoke-all').addEventListener('click', () => {
  if (currentUser) revoke({ app: $('app-select').value, user: currentUser, all: true });
});

$('app-select').addEventListener('change', () => loadKeys());

async function loadKeys() {
  const app = $('app-select').value || 'public';
  const r = await get('keys?app=' + encodeURIComponent(app));
  $('keys-app').textContent = 'app ' + r.app;
  const tbody = $('keys-table').querySelector('tbody');
  tbody.textContent = '';
  for (const k of r.keys) {
    const tr = document.createElement('tr');
    tr.dataset.kid = k.kid;
    cell(tr, k.kid, 'mono kid');
    cell(tr, k.kind);
    cell(tr, time(k.created_ms));
    cell(tr, k.kind === 'static' ? (k.signing ? 'while configured' : 'verifies only') : time(k.signs_until_ms));
    cell(tr, k.verifies_until_ms == null ? 'while configured' : time(k.verifies_until_ms));
    cell(tr, k.signing ? 'signing' : '', k.signing ? 'signing' : '');
    tbody.appendChild(tr);
  }
}

async function loadEvents() {
  const kind = $('event-kind').value;
  const user = $('event-user').value.trim();
  let q = 'events?limit=200';
  if (kind) q += '&kind=' + encodeURIComponent(kind);
  if (user) q += '&user=' + encodeURIComponent(user);
  const r = await get(q);
  $('events-source').textContent = r.source === 'store'
    ? 'from the audit store'
    : 'from memory (last 500 records of this process; turn on audit_retention_days to keep them)';
  const tbody = $('events-table').querySelector('tbody');
  tbody.textContent = '';
  for (const e of r.records) {
    const tr = document.createElement('tr');
    tr.className = e.kind;
    cell(tr, time(e.at_ms), 'nowrap');
    cell(tr, e.kind, 'kind');
    cell(tr, e.app_id);
    cell(tr, e.user_id, 'mono');
    cell(tr, e.session_handle, 'mono');
    cell(tr, e.client_ip, 'mono nowrap');
    cell(tr, e.detail ? JSON.stringify(e.detail) : '', 'mono');
    tbody.appendChild(tr);
  }
}

$('events-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  await loadEvents();
});

setInterval(() => {
  if (!csrf) return;
  loadCounters().catch(() => {});
  loadEvents().catch(() => {});
}, 3000);

start();
