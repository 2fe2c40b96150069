// vigil review: the analyst UI. Every value from the server is put in the page with
// textContent or as an attribute value through the DOM API, never as HTML: a merchant named
// <script> shows as text. Nothing here parses data as HTML.
'use strict';

const state = { user: null, csrf: '', query: { status: 'open', rule: '', from: '', to: '',
                sort: 'priority', offset: 0, limit: 50 }, rows: [], sel: 0, current: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtNum(v, digits) {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(digits === undefined ? 3 : digits);
}
function fmtScore(v) { return v === null || v === undefined ? '–' : v.toFixed(3); }
function fmtTs(s) { return s ? String(s).replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '–'; }
function fmtVal(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'object') return JSON.stringify(v);
  return typeof v === 'number' ? fmtNum(v) : String(v);
}

function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 2500);
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') {
    opts.headers['X-CSRF-Token'] = state.csrf;
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = { error: 'bad response' }; }
  if (r.status === 401 && path !== '/api/login' && path !== '/api/session' && state.user) {
    state.user = null; // the session expired (or the service restarted): sign in again, stay here
    showLogin('Your session has ended: sign in again.');
  }
  return { status: r.status, data };
}

function setMain(...nodes) {
  const m = document.getElementById('main');
  m.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function renderNav() {
  const nav = document.getElementById('nav');
  if (!state.user) { nav.replaceChildren(); return; }
  nav.replaceChildren(
    el('a', { href: '#/' }, 'Queue'),
    el('span', { class: 'muted', id: 'whoami' }, state.user),
    el('button', { class: 'link', onclick: logout }, 'Log out'));
}

async function logout() {
  await api('POST', '/api/logout');
  state.user = null;
  state.csrf = '';
  showLogin();
}

// ---- login ----

function showLogin(msg) {
  renderNav();
  const user = el('input', { id: 'user', name: 'user', autocomplete: 'username', required: true });
  const pw = el('input', { id: 'password', name: 'password', type: 'password',
                           autocomplete: 'current-password', required: true });
  const err = el('p', { class: 'banner err', id: 'login-error', hidden: !msg }, msg || '');
  const form = el('form', { class: 'panel login', id: 'login-form' },
    el('h1', {}, 'Sign in'), err,
    el('label', {}, 'Analyst', user), el('label', {}, 'Password', pw),
    el('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await api('POST', '/api/login', { user: user.value, password: pw.value });
    if (r.status !== 200) {
      err.textContent = r.data.error || 'login failed';
      err.hidden = false;
      return;
    }
    state.user = r.data.user;
    state.csrf = r.data.csrf;
    route(); // the page the analyst asked for (the hash did not change)
  });
  setMain(form);
  user.focus();
}

// ---- queue ----

function queryString(q) {
  const p = new URLSearchParams();
  for (const k of ['status', 'rule', 'from', 'to', 'sort', 'offset', 'limit'])
    if (q[k] !== '' && q[k] !== null && q[k] !== undefined) p.set(k, q[k]);
  return p.toString();
}

// Each navigation (queue or case) bumps this; a slower, earlier load that finishes after a
// newer one started must not render over it (an analyst who labels and goes straight back
// would see the case as it was before the label).
let showSeq = 0;

async function showQueue() {
  const seq = ++showSeq;
  renderNav();
  const q = state.query;
  const r = await api('GET', '/api/cases?' + queryString(q));
  if (seq !== showSeq) return;
  if (r.status !== 200) {
    setMain(el('p', { class: 'banner err' }, r.data.error || 'cannot load the queue'));
    return;
  }
  const d = r.data;
  state.rows = d.cases;
  state.sel = Math.min(state.sel, Math.max(0, d.cases.length - 1));
  const all = d.counts.open + d.counts.claimed + d.counts.closed;
  const statusSel = el('select', { id: 'f-status', onchange: (e) => setFilter('status', e.target.value) },
    [['open', 'Open'], ['claimed', 'Claimed'], ['closed', 'Closed'], ['all', 'All']].map(([v, t]) =>
      el('option', { value: v, selected: (q.status || 'all') === v },
         `${t} (${v === 'all' ? all : d.counts[v]})`)));
  const ruleNames = Object.keys(d.rules).sort();
  if (q.rule && !ruleNames.includes(q.rule)) ruleNames.push(q.rule);
  const ruleSel = el('select', { id: 'f-rule', onchange: (e) => setFilter('rule', e.target.value) },
    el('option', { value: '' }, 'Any rule'),
    ruleNames.map((n) => el('option', { value: n, selected: q.rule === n },
                            `${n} (${d.rules[n] || 0})`)));
  const from = el('input', { type: 'date', id: 'f-from', value: q.from,
                             onchange: (e) => setFilter('from', e.target.value) });
  const to = el('input', { type: 'date', id: 'f-to', value: q.to,
                           onchange: (e) => setFilter('to', e.target.value) });
  const sort = el('select', { id: 'f-sort', onchange: (e) => setFilter('sort', e.target.value) },
    [['priority', 'Priority (score, amount)'], ['newest', 'Newest'], ['oldest', 'Oldest']].map(
      ([v, t]) => el('option', { value: v, selected: q.sort === v }, t)));
  const filters = el('div', { class: 'filters' },
    el('label', {}, 'Status', statusSel), el('label', {}, 'Rule', ruleSel),
    el('label', {}, 'From', from), el('label', {}, 'To', to), el('label', {}, 'Sort', sort),
    el('span', { class: 'muted' }, ' ', el('kbd', {}, 'j'), '/', el('kbd', {}, 'k'), ' move, ',
       el('kbd', {}, 'Enter'), ' open'));
  const rows = d.cases.map((c, i) => el('tr', {
      class: 'row' + (i === state.sel ? ' sel' : ''), 'data-id': c.txn_id,
      onclick: () => { location.hash = '#/case/' + encodeURIComponent(c.txn_id); } },
    el('td', { class: 'num' }, fmtScore(c.score)),
    el('td', { class: 'num' }, fmtNum(c.amount, 2)),
    el('td', {}, fmtTs(c.ts)),
    el('td', {}, c.txn_id),
    el('td', {}, c.card_id),
    el('td', {}, c.merchant_id || '–'),
    el('td', {}, c.rules.map((x) => el('span', { class: 'chip' + (x.shadow ? ' shadow' : '') }, x.id)),
       c.review_reason ? el('span', { class: 'chip' }, 'sample: ' + c.review_reason) : null),
    el('td', { class: 'status-' + c.status }, c.status,
       c.claimed_by ? ' (' + c.claimed_by + ')' : '',
       c.verdict ? el('span', { class: 'v-' + c.verdict }, ' ' + c.verdict) : null)));
  const table = el('table', { id: 'queue' },
    el('thead', {}, el('tr', {}, ['Score', 'Amount', 'Time', 'Txn', 'Card', 'Merchant', 'Why',
                                  'Status'].map((h, i) => el('th', { class: i < 2 ? 'num' : '' }, h)))),
    el('tbody', {}, rows));
  const last = Math.min(d.offset + d.cases.length, d.total);
  const pager = el('div', { class: 'pager' },
    el('button', { id: 'prev', disabled: d.offset === 0,
                   onclick: () => { q.offset = Math.max(0, q.offset - q.limit); showQueue(); } }, '‹ Prev'),
    el('span', { id: 'range' }, d.total ? `${d.offset + 1}–${last} of ${d.total}` : 'no cases'),
    el('button', { id: 'next', disabled: last >= d.total,
                   onclick: () => { q.offset += q.limit; showQueue(); } }, 'Next ›'));
  setMain(el('h1', {}, 'Review queue'), filters,
          el('div', { class: 'panel' }, d.cases.length ? table : el('p', { class: 'muted' }, 'Nothing here.'), pager));
}

function setFilter(k, v) {
  state.query[k] = k === 'status' && v === 'all' ? 'all' : v;
  state.query.offset = 0;
  state.sel = 0;
  showQueue();
}

// ---- case ----

function kvTable(obj) {
  return el('table', { class: 'kv' }, el('tbody', {},
    Object.entries(obj || {}).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, fmtVal(v))))));
}

function reasonBars(reasons) {
  if (!reasons || !reasons.length) return el('p', { class: 'muted' }, 'No reason codes on this decision.');
  const max = Math.max(...reasons.map((r) => Math.abs(r.contribution || 0)), 1e-9);
  return el('div', { class: 'bars', id: 'reasons' }, reasons.map((r) => {
    const fill = el('div', { class: 'fill ' + ((r.contribution || 0) >= 0 ? 'pos' : 'neg') });
    fill.style.width = (50 * Math.abs(r.contribution || 0) / max).toFixed(1) + '%';
    return el('div', { class: 'bar-row' },
      el('span', {}, r.feature, ' = ', fmtVal(r.value)),
      el('div', { class: 'track' }, el('div', { class: 'mid' }), fill),
      el('span', { class: 'num' }, ((r.contribution || 0) >= 0 ? '+' : '') + fmtNum(r.contribution)));
  }));
}

function featureTable(features, usual) {
  return el('table', { id: 'features' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Feature'), el('th', { class: 'num' }, 'This txn'),
                       el('th', { class: 'num' }, "Card's usual (mean)"), el('th', { class: 'num' }, 'n'))),
    el('tbody', {}, Object.entries(features || {}).map(([k, v]) => {
      const u = (usual || {})[k] || { mean: null, n: 0 };
      const far = typeof v === 'number' && u.mean !== null &&
                  Math.abs(v - u.mean) > Math.max(1e-9, 2 * Math.abs(u.mean));
      return el('tr', { class: far ? 'far' : '' }, el('td', {}, k),
                el('td', { class: 'num' }, fmtVal(v)), el('td', { class: 'num' }, fmtVal(u.mean)),
                el('td', { class: 'num' }, String(u.n)));
    })));
}

async function showCase(id) {
  const seq = ++showSeq;
  renderNav();
  let r = await api('GET', '/api/cases/' + encodeURIComponent(id));
  if (seq !== showSeq) return;
  if (r.status !== 200) {
    setMain(el('p', { class: 'banner err' }, r.data.error || 'cannot load the case'),
            el('a', { href: '#/' }, '← back to the queue'));
    return;
  }
  let banner = null;
  if (r.data.case.status !== 'closed') {
    const c = await api('POST', '/api/cases/' + encodeURIComponent(id) + '/claim');
    if (seq !== showSeq) return;
    if (c.status === 200) r = c;
    else banner = el('div', { class: 'banner', id: 'claim-banner' }, c.data.error || 'cannot claim');
  }
  renderCase(r.data, banner);
}

function renderCase(d, banner) {
  const c = d.case, rec = c.record || {}, txn = rec.txn || {};
  state.current = c;
  const mine = c.status === 'claimed' && c.claimed_by === state.user;
  const note = el('textarea', { id: 'note', placeholder: 'Note (optional): n to focus, Esc to leave' });
  const can = mine;
  const head = el('div', { class: 'panel' },
    el('h1', {}, 'Case ', el('span', { id: 'case-id' }, c.txn_id), ' ',
       el('span', { class: 'status-' + c.status, id: 'case-status' }, c.status),
       c.verdict ? el('span', { class: 'v-' + c.verdict, id: 'case-verdict' }, ' ' + c.verdict) : null),
    el('p', {}, 'Decision ', el('b', {}, rec.decision || '–'), ' · score ', el('b', {}, fmtScore(rec.score)),
      ' · amount ', el('b', {}, fmtNum(rec.amount, 2)), ' · card ', el('b', {}, rec.card_id || '–'),
      ' · ', fmtTs(rec.ts),
      rec.review_reason ? el('span', { class: 'chip' }, 'sampled: ' + rec.review_reason) : null,
      rec.shadow_score !== undefined ? ' · shadow score ' + fmtScore(rec.shadow_score) : null),
    c.status === 'closed'
      ? el('p', {}, 'Closed by ', c.analyst || '–', ' at ', fmtTs(c.closed_at), ' · label ',
           c.label_state || '–', c.note ? el('span', {}, ' · note: ', el('q', { id: 'case-note' }, c.note)) : null)
      : el('div', { class: 'actions' },
          el('button', { class: 'fraud', id: 'btn-fraud', disabled: !can, onclick: () => label('fraud') },
             'Fraud ', el('kbd', {}, 'f')),
          el('button', { class: 'legit', id: 'btn-legit', disabled: !can, onclick: () => label('legit') },
             'Legit ', el('kbd', {}, 'l')),
          el('button', { id: 'btn-skip', onclick: skip }, 'Skip ', el('kbd', {}, 's')),
          el('button', { id: 'btn-note', onclick: () => note.focus() }, 'Note ', el('kbd', {}, 'n')),
          c.claim_until ? el('span', { class: 'muted' }, 'claimed by you until ', fmtTs(c.claim_until)) : null,
          note));
  const rules = !(rec.rules || []).length
    ? el('p', { class: 'muted', id: 'rules' }, rec.review_reason
      ? `No rule fired: sampled for review (${rec.review_reason}).` : 'No rule fired.')
    : el('ul', { id: 'rules' }, (rec.rules || []).map((x) =>
    el('li', {}, el('span', { class: 'chip ' + (x.shadow ? 'shadow' : x.action || '') }, x.action || ''), ' ',
       x.id, x.shadow ? ' (shadow)' : '')));
  const hist = el('table', { id: 'history' },
    el('thead', {}, el('tr', {}, ['Time', 'Txn', 'Amount', 'Merchant', 'Decision', 'Score', 'Case'].map(
      (h) => el('th', {}, h)))),
    el('tbody', {}, (d.history || []).map((h) => el('tr', {},
      el('td', {}, fmtTs(h.ts)),
      el('td', {}, h.case_status ? el('a', { href: '#/case/' + encodeURIComponent(h.txn_id) }, h.txn_id) : h.txn_id),
      el('td', { class: 'num' }, fmtNum(h.amount, 2)), el('td', {}, h.merchant_id || '–'),
      el('td', {}, h.decision || '–'), el('td', { class: 'num' }, fmtScore(h.score)),
      el('td', {}, h.case_status || '', h.verdict ? el('span', { class: 'v-' + h.verdict }, ' ' + h.verdict) : null)))));
  const audit = el('table', { id: 'audit' }, el('tbody', {}, (c.audit || []).map((a) => el('tr', {},
    el('td', {}, fmtTs(a.ts)), el('td', {}, a.analyst || 'system'), el('td', {}, a.action),
    el('td', {}, a.detail || '')))));
  setMain(el('p', {}, el('a', { href: '#/' }, '← queue'), ' ', el('span', { class: 'muted' }, 'times in UTC')),
    banner, head,
    el('div', { class: 'grid' },
      el('div', {},
        el('div', { class: 'panel' }, el('h2', {}, 'Why it was flagged'), rules,
           el('h2', {}, 'Reason codes (contribution to the score)'), reasonBars(rec.reasons)),
        el('div', { class: 'panel' }, el('h2', {}, 'Transaction'), el('div', { id: 'txn' }, kvTable(txn)))),
      el('div', {},
        el('div', { class: 'panel' }, el('h2', {}, 'Features beside the card\'s usual values'),
           featureTable(rec.features, d.usual)))),
    el('div', { class: 'panel' }, el('h2', {}, "Card's recent transactions"),
       (d.history || []).length ? hist : el('p', { class: 'muted' }, 'No other transactions of this card seen.')),
    el('div', { class: 'panel' }, el('h2', {}, 'Audit trail'), audit));
}

async function nextCase(after) {
  const r = await api('GET', '/api/cases?status=open&sort=priority&limit=2');
  const next = r.status === 200 ? r.data.cases.find((c) => c.txn_id !== after) : null;
  location.hash = next ? '#/case/' + encodeURIComponent(next.txn_id) : '#/';
}

async function label(verdict) {
  const c = state.current;
  if (!c || c.status === 'closed') return;
  const note = document.getElementById('note');
  const r = await api('POST', '/api/cases/' + encodeURIComponent(c.txn_id) + '/label',
                      { label: verdict, note: note ? note.value : '' });
  if (r.status !== 200) { toast(r.data.error || 'label failed'); return; }
  toast(`${c.txn_id} labelled ${verdict}`);
  nextCase(c.txn_id);
}

async function skip() {
  const c = state.current;
  if (!c) return;
  if (c.status === 'claimed' && c.claimed_by === state.user)
    await api('POST', '/api/cases/' + encodeURIComponent(c.txn_id) + '/release');
  nextCase(c.txn_id);
}

// ---- keyboard ----

document.addEventListener('keydown', (ev) => {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.tagName === 'SELECT')) {
    if (ev.key === 'Escape') t.blur();
    return;
  }
  const route = location.hash;
  if (route.startsWith('#/case/')) {
    const k = ev.key;
    if (k === 'f') label('fraud');
    else if (k === 'l') label('legit');
    else if (k === 's') skip();
    else if (k === 'n') { const n = document.getElementById('note'); if (n) { ev.preventDefault(); n.focus(); } }
    else if (k === 'Escape') location.hash = '#/';
  } else if (route === '#/' || route === '') {
    if (ev.key === 'j' || ev.key === 'k') {
      state.sel = Math.max(0, Math.min(state.rows.length - 1, state.sel + (ev.key === 'j' ? 1 : -1)));
      document.querySelectorAll('#queue tr.row').forEach((tr, i) => tr.classList.toggle('sel', i === state.sel));
    } else if (ev.key === 'Enter' && state.rows[state.sel]) {
      location.hash = '#/case/' + encodeURIComponent(state.rows[state.sel].txn_id);
    }
  }
});

// ---- routing ----

async function route() {
  const h = location.hash || '#/';
  if (!state.user) {
    const r = await api('GET', '/api/session');
    if (r.status === 200) { state.user = r.data.user; state.csrf = r.data.csrf; }
  }
  if (!state.user) {
    showLogin();
    return;
  }
  if (h.startsWith('#/case/')) showCase(decodeURIComponent(h.slice(7)));
  else showQueue();
}

window.addEventListener('hashchange', route);
route();
