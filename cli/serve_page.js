// The page of `tasklock serve`: renders the state the server pushes as server-sent events.
// Everything that comes from the store (keys, workers, task metadata, details) is inserted
// with textContent only, never as HTML.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let state = null;
  let skew = 0; // server clock minus ours, from each message's sent_at
  let online = false;
  const armed = new Map(); // key -> time the force button was first clicked

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // Like the CLI: 850ms, 3.2s, 3m12s, 2h05m, 1d03h.
  function age(ms) {
    if (!(ms > 0)) ms = 0;
    const s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;
    const two = (n) => String(Math.floor(n)).padStart(2, '0');
    if (ms < s) return Math.floor(ms) + 'ms';
    if (ms < m) return Math.floor(ms / s) + '.' + Math.floor((ms % s) / 100) + 's';
    if (ms < h) return Math.floor(ms / m) + 'm' + two((ms % m) / s) + 's';
    if (ms < d) return Math.floor(ms / h) + 'h' + two((ms % h) / m) + 'm';
    return Math.floor(ms / d) + 'd' + two((ms % d) / h) + 'h';
  }
  const now = () => Date.now() + skew;
  const since = (iso) => now() - Date.parse(iso);
  const clock = (iso) => {
    const t = new Date(Date.parse(iso));
    return isNaN(t) ? String(iso) : t.toLocaleTimeString();
  };

  function banner() {
    const b = $('banner');
    let text = '';
    if (!online) text = 'Cannot reach the tasklock serve process; retrying. What you see may be out of date.';
    else if (state && !state.store_ok)
      text = 'The store is unreachable: ' + (state.store_error || 'unknown error') +
        (state.last_ok ? '. Showing what it held at ' + clock(state.last_ok) + '.' : '.');
    b.textContent = text;
    b.hidden = text === '';
    document.body.classList.toggle('stale-view', text !== '');
    const c = $('conn');
    c.textContent = online ? 'live' : 'offline';
    c.className = 'pill ' + (online ? 'live' : 'down');
  }

  function notice(text) {
    const n = $('notice');
    n.textContent = text;
    n.hidden = !text;
  }

  function counters() {
    const box = $('counters');
    box.replaceChildren();
    const c = state.counters || {};
    const g = state.gauges || {};
    const items = [
      ['held', g.locks_held], ['stale', g.locks_stale, g.locks_stale > 0],
      ['waiting', g.waiters], ['acquired', c.acquired], ['released', c.released],
      ['stolen', c.stolen, c.stolen > 0], ['forced', c.forced, c.forced > 0],
      ['lost', c.lost, c.lost > 0],
    ];
    for (const [label, n, bad] of items) {
      const d = el('div', 'counter' + (bad ? ' bad' : ''));
      d.append(el('div', 'n', n === undefined ? '–' : n), el('div', 'l', label));
      box.append(d);
    }
    const chart = $('chart');
    chart.replaceChildren();
    const per = (state.per_minute && state.per_minute.acquisitions) || [];
    const max = Math.max(1, ...per);
    per.forEach((n, i) => {
      const b = el('div', 'b');
      b.style.height = (100 * n / max) + '%';
      b.title = n + ' acquisition' + (n === 1 ? '' : 's') + ', ' + (per.length - 1 - i) + ' min ago';
      chart.append(b);
    });
  }

  function freshness(td, lock) {
    const beat = since(lock.heartbeat_last);
    const ratio = lock.lock_timeout_ms > 0 ? beat / lock.lock_timeout_ms : 0;
    const f = el('div', 'fresh' + (lock.stale || ratio >= 1 ? ' bad' : ratio > 0.5 ? ' warn' : ''));
    const track = el('div', 'track');
    const fill = el('div', 'fill');
    // Full when just renewed, empty at the lock timeout; a stale lock shows a full red bar.
    fill.style.width = (lock.stale ? 100 : Math.max(0, Math.min(100, 100 * (1 - ratio)))) + '%';
    track.append(fill);
    f.append(track, el('span', null, age(beat) + ' ago'));
    f.title = 'lock timeout ' + age(lock.lock_timeout_ms);
    td.replaceChildren(f);
  }

  async function force(key, token, button) {
    const t = Date.now();
    if (!armed.has(key) || t - armed.get(key) > 4000) {
      armed.set(key, t);
      button.textContent = 'Confirm';
      button.classList.add('confirm');
      return;
    }
    armed.delete(key);
    const secret = $('token').value.trim();
    if (!secret) {
      notice('Give the admin token first.');
      return;
    }
    button.disabled = true;
    try {
      const r = await fetch('/api/locks/' + encodeURIComponent(key) + '/release?token=' + token, {
        method: 'POST', headers: { Authorization: 'Bearer ' + secret }, cache: 'no-store',
      });
      const body = await r.json().catch(() => ({}));
      notice(r.ok ? 'Force-released ' + key + '.' : 'Not released (' + r.status + '): ' + (body.error || ''));
    } catch (e) {
      notice('Not released: ' + e);
    }
    button.disabled = false;
  }

  function locks() {
    const body = document.querySelector('#locks tbody');
    body.replaceChildren();
    const list = state.locks || [];
    $('nlocks').textContent = list.length ? '(' + list.length + ')' : '';
    $('nolocks').hidden = list.length > 0;
    $('locks').hidden = list.length === 0;
    for (const item of list) {
      const lock = item.lock;
      const tr = el('tr', lock.stale ? 'stale' : '');
      tr.setAttribute('data-key', item.key);
      const key = el('td', 'key', item.key);
      if (lock.stale) key.append(el('span', 'badge', 'STALE'));
      const info = lock.task_info && Object.keys(lock.task_info).length ? JSON.stringify(lock.task_info) : '';
      if (info) key.title = info;
      if (item.waiters && item.waiters.length) {
        const ol = el('ol', 'waiters');
        for (const w of item.waiters) {
          const li = el('li', w.dead ? 'dead' : '',
            w.worker_id + ' on ' + w.node_id + (w.priority ? ', priority ' + w.priority : '') +
            ', waiting ' + age(since(w.since)));
          ol.append(li);
        }
        key.append(ol);
      }
      const cells = [
        key, el('td', null, lock.worker_id), el('td', null, lock.node_id),
        el('td', null, lock.token), el('td', 'held', age(since(lock.claimed_at))),
        el('td', 'beat'), el('td', null, item.waiting),
      ];
      ['Key', 'Holder', 'Node', 'Token', 'Held for', 'Heartbeat', 'Waiting'].forEach((l, i) =>
        cells[i].setAttribute('data-label', l));
      freshness(cells[5], lock);
      const act = el('td');
      if (state.admin) {
        const b = el('button', 'force', 'Force release');
        b.type = 'button';
        b.addEventListener('click', () => force(item.key, lock.token, b));
        act.append(b);
      }
      tr.append(...cells, act);
      body.append(tr);
    }
  }

  function feed() {
    const ol = $('feed');
    ol.replaceChildren();
    const events = (state.events || []).slice().reverse();
    $('nofeed').hidden = events.length > 0;
    $('nofeed').textContent = state.has_history === false ? 'This store keeps no audit trail.' : 'No events.';
    for (const e of events) {
      const li = el('li', 'event');
      li.setAttribute('data-event', e.event);
      li.append(el('span', 't', clock(e.at)), el('span', 'ev ev-' + e.event, e.event),
        el('span', 'k', e.key + ' #' + e.token), el('span', 'w', e.worker_id + ' on ' + e.node_id));
      if (e.detail) li.append(el('span', 'd', e.detail));
      ol.append(li);
    }
  }

  function render() {
    if (!state) return;
    $('store').textContent = state.store;
    $('admin').hidden = !state.admin;
    banner();
    counters();
    locks();
    feed();
  }

  // Ages move on between messages.
  function tick() {
    if (!state) return;
    for (const tr of document.querySelectorAll('#locks tbody tr')) {
      const item = (state.locks || []).find((l) => l.key === tr.getAttribute('data-key'));
      if (!item) continue;
      tr.querySelector('td.held').textContent = age(since(item.lock.claimed_at));
      freshness(tr.querySelector('td.beat'), item.lock);
    }
    for (const [key, t] of armed) {
      if (Date.now() - t > 4000) {
        armed.delete(key);
        render();
      }
    }
  }

  function connect() {
    const es = new EventSource('/api/events');
    es.addEventListener('state', (ev) => {
      const msg = JSON.parse(ev.data);
      skew = msg.sent_at - Date.now();
      state = msg.state;
      online = true;
      render();
    });
    es.addEventListener('open', () => { online = true; banner(); });
    es.addEventListener('error', () => { online = false; banner(); });
  }

  const saved = sessionStorage.getItem('tasklock-admin-token');
  if (saved) $('token').value = saved;
  $('token').addEventListener('change', () => sessionStorage.setItem('tasklock-admin-token', $('token').value));
  setInterval(tick, 1000);
  connect();
})();
