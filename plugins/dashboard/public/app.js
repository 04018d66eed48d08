/*
 * tapgate dashboard: plain browser JavaScript, no build step.
 *
 * It opens a same-origin WebSocket to <page path>/ws (the HttpOnly session cookie authenticates it)
 * and renders the feed protocol v1: one `snapshot`, then `delta` messages. Every piece of data is put
 * into the page with textContent or DOM nodes, never as HTML. Charts use the global `uPlot`.
 */
/* global document, location, Element, ResizeObserver, getComputedStyle, requestAnimationFrame, uPlot, CSS */
(() => {
  const MAX_ROWS = 200; // requests kept, and rows in the DOM
  const WINDOW_S = 900; // the charts show the last 15 minutes
  const MIN_SPAN_S = 120; // or, on a fresh gateway, since it started (2 minutes at least)
  const MAX_POINTS = 900;
  const CHART_HEIGHT = 140;
  /** WebSocket close codes that mean "not logged in": the feed's 4401 ("log in again"), and kin. */
  const AUTH_CLOSE_CODES = new Set([1008, 4001, 4003, 4401, 4403]);

  // ------------------------------------------------------------------------------------------------
  // Paths: the page is served at the plugin's `path` (default /dashboard); the feed is <path>/ws.
  const basePath = location.pathname.replace(/\/+$/, '').replace(/\/(index\.html|login)$/, '') || '';
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + basePath + '/ws';

  const $ = (id) => document.getElementById(id);

  /** Builds an element. Strings among the children become text nodes, never markup. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = v;
        else el.setAttribute(k, String(v));
      }
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      el.append(typeof c === 'object' ? c : String(c));
    }
    return el;
  }

  // ------------------------------------------------------------------------------------------------
  // Formatting
  const pad2 = (n) => String(n).padStart(2, '0');
  const isNum = (n) => typeof n === 'number' && Number.isFinite(n);
  const intFmt = new Intl.NumberFormat('en-US');

  function fmtClock(ms) {
    if (!isNum(ms)) return '–';
    const d = new Date(ms);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }
  function fmtInt(n) {
    return isNum(n) ? intFmt.format(n) : '–';
  }
  /** Token counts: exact below 100k, then 123.4k / 1.23M. */
  function fmtCount(n) {
    if (!isNum(n)) return '–';
    if (Math.abs(n) < 100_000) return intFmt.format(n);
    if (Math.abs(n) < 1_000_000) return (n / 1000).toFixed(1) + 'k';
    if (Math.abs(n) < 1_000_000_000) return (n / 1_000_000).toFixed(2) + 'M';
    return (n / 1_000_000_000).toFixed(2) + 'B';
  }
  function fmtMs(ms) {
    if (!isNum(ms)) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
    return fmtSpan(ms);
  }
  /** A span of time, two units at most: 45s, 12m 05s, 3h 04m, 2d 5h. */
  function fmtSpan(ms) {
    if (!isNum(ms)) return '–';
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad2(s % 60)}s`;
    const hr = Math.floor(m / 60);
    if (hr < 24) return `${hr}h ${pad2(m % 60)}m`;
    return `${Math.floor(hr / 24)}d ${hr % 24}h`;
  }
  /** A fraction (0–1) as a percentage. */
  function fmtPct(f) {
    if (!isNum(f)) return '–';
    const p = f * 100;
    if (p === 0) return '0%';
    if (p < 0.1) return '<0.1%';
    return (p < 10 ? p.toFixed(1) : Math.round(p)) + '%';
  }
  /** Axis labels: compact milliseconds. */
  function fmtMsShort(ms) {
    if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10_000 ? 0 : 1) + 's';
    return Math.round(ms) + 'ms';
  }
  function fmtDetail(detail) {
    if (detail === undefined || detail === null || detail === '') return '';
    if (typeof detail === 'string') return detail;
    if (typeof detail === 'number' || typeof detail === 'boolean') return String(detail);
    try {
      return JSON.stringify(detail);
    } catch {
      return String(detail);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // State
  const state = {
    skew: 0, // server clock − browser clock, from each message's `now`
    totals: null,
    upstreams: [],
    requests: new Map(), // id → Request
    order: [], // ids, newest first, at most MAX_ROWS
    points: [], // oldest first
    step: 1000,
  };
  const expanded = new Set(); // request ids whose lifecycle is shown
  const dirty = new Set(); // request ids whose row must be rebuilt
  const serverNow = () => Date.now() + state.skew;

  function mergeRequests(list) {
    if (!Array.isArray(list)) return;
    for (const r of list) {
      if (!r || typeof r.id !== 'string') continue;
      state.requests.set(r.id, r);
      dirty.add(r.id);
    }
    const all = [...state.requests.values()];
    // Newest first; the server's order breaks ties (a stable sort keeps it).
    all.sort((a, b) => (b.time || 0) - (a.time || 0));
    const kept = all.slice(0, MAX_ROWS);
    for (const r of all.slice(MAX_ROWS)) state.requests.delete(r.id);
    state.order = kept.map((r) => r.id);
  }

  function mergePoints(list) {
    if (!Array.isArray(list)) return;
    for (const p of list) {
      if (!p || !isNum(p.t)) continue;
      const last = state.points[state.points.length - 1];
      if (last && p.t === last.t) state.points[state.points.length - 1] = p;
      else if (!last || p.t > last.t) state.points.push(p);
      else {
        const i = state.points.findIndex((q) => q.t >= p.t);
        if (state.points[i].t === p.t) state.points[i] = p;
        else state.points.splice(i, 0, p);
      }
    }
    if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== 'object') return;
    if (isNum(msg.now)) state.skew = msg.now - Date.now();
    if (msg.type === 'snapshot') {
      state.requests.clear();
      state.order = [];
      state.points = [];
      mergeRequests(msg.requests); // rows still open stay open (renderFeed forgets the others)
      if (msg.series && isNum(msg.series.step)) state.step = msg.series.step;
      mergePoints(msg.series && msg.series.points);
      state.upstreams = Array.isArray(msg.upstreams) ? msg.upstreams : [];
      state.totals = msg.totals || null;
      resetFeedDom();
    } else if (msg.type === 'delta') {
      mergeRequests(msg.requests);
      mergePoints(msg.points);
      if (Array.isArray(msg.upstreams)) state.upstreams = msg.upstreams;
      if (msg.totals) state.totals = msg.totals;
    } else {
      return; // an unknown message type: ignored, so the server can add types later
    }
    scheduleRender();
  }

  // ------------------------------------------------------------------------------------------------
  // Connection: reconnects with backoff; a close that means "not logged in" shows the login link.
  const conn = { ws: null, attempt: 0, retryAt: 0, timer: 0, opened: false, waiting: false };

  function setConn(kind, text) {
    const el = $('conn');
    el.dataset.state = kind;
    $('conn-text').textContent = text;
    $('conn-login').hidden = kind !== 'auth';
    $('logout').hidden = kind === 'auth';
    document.body.classList.toggle('stale', kind !== 'live');
  }

  function connect() {
    clearTimeout(conn.timer);
    conn.waiting = false;
    conn.opened = false;
    setConn('connecting', conn.attempt === 0 ? 'Connecting…' : 'Reconnecting…');
    let ws;
    try {
      ws = new WebSocket(wsUrl);
    } catch {
      scheduleReconnect();
      return;
    }
    conn.ws = ws;
    ws.addEventListener('open', () => {
      conn.opened = true;
    });
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && msg.type === 'snapshot') {
        conn.attempt = 0;
        setConn('live', 'Live');
      }
      onMessage(msg);
    });
    ws.addEventListener('close', (ev) => {
      if (conn.ws !== ws) return;
      conn.ws = null;
      if (AUTH_CLOSE_CODES.has(ev.code)) return signedOut();
      if (!conn.opened) {
        // The handshake itself failed: a browser hides its HTTP status, so ask the server plainly.
        probeAuth().then((unauthorized) => (unauthorized ? signedOut() : scheduleReconnect()));
        return;
      }
      scheduleReconnect();
    });
  }

  /** True when the feed's URL answers a plain GET with 401 or 403 (the session is gone). */
  async function probeAuth() {
    try {
      const res = await fetch(basePath + '/ws', { cache: 'no-store', credentials: 'same-origin' });
      return res.status === 401 || res.status === 403;
    } catch {
      return false;
    }
  }

  function signedOut() {
    clearTimeout(conn.timer);
    conn.waiting = false;
    setConn('auth', 'Signed out');
  }

  function scheduleReconnect() {
    clearTimeout(conn.timer);
    const delay = Math.min(30_000, 1000 * 2 ** conn.attempt) * (0.8 + Math.random() * 0.4);
    conn.attempt = Math.min(conn.attempt + 1, 10);
    conn.retryAt = Date.now() + delay;
    conn.waiting = true;
    updateRetryText();
    conn.timer = setTimeout(connect, delay);
  }

  function updateRetryText() {
    const left = Math.ceil((conn.retryAt - Date.now()) / 1000);
    if (conn.waiting && left > 0) setConn('retry', `Disconnected · retrying in ${left}s`);
  }

  // ------------------------------------------------------------------------------------------------
  // Rendering
  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderTotals();
      renderUpstreams();
      renderFeed();
      renderCharts();
    });
  }

  function renderTotals() {
    const t = state.totals;
    $('t-requests').textContent = t ? fmtInt(t.requests) : '–';
    $('t-errors').textContent = t ? fmtInt(t.errors) : '–';
    $('t-error-rate').textContent = t && t.requests > 0 ? fmtPct(t.errors / t.requests) : '';
    $('t-inflight').textContent = t ? fmtInt(t.inflight) : '–';
    $('t-tokens-in').textContent = t ? fmtCount(t.tokensIn) : '–';
    $('t-tokens-out').textContent = t ? fmtCount(t.tokensOut) : '–';
    $('t-errors').parentElement.classList.toggle('bad', !!t && t.errors > 0);
    renderUptime();
  }

  function renderUptime() {
    const t = state.totals;
    const el = $('t-uptime');
    el.textContent = t && isNum(t.startedAt) ? fmtSpan(serverNow() - t.startedAt) : '–';
    if (t && isNum(t.startedAt)) el.title = 'since ' + new Date(t.startedAt).toLocaleString();
  }

  // Upstream cards ----------------------------------------------------------------------------------
  const cards = new Map(); // name → element

  function stateBadge(u) {
    if (u.state === 'disabled') return h('span', { class: 'badge badge-bad' }, 'disabled');
    if (u.state === 'cooling') return h('span', { class: 'badge badge-warn' }, 'cooling');
    if (u.state === 'ok') return h('span', { class: 'badge badge-ok' }, 'ok');
    return h('span', { class: 'badge' }, String(u.state || 'unknown'));
  }

  function coolingLine(u) {
    if (u.state !== 'cooling') return null;
    const line = h('div', { class: 'up-status up-status-warn' });
    if (isNum(u.coolingUntil)) {
      const left = u.coolingUntil - serverNow();
      line.append(
        'until ',
        h('strong', null, fmtClock(u.coolingUntil)),
        h('span', { class: 'countdown' }, left > 0 ? ` · ${fmtSpan(left + 999)} left` : ' · ending'),
      );
    } else line.append('cooling down');
    if (u.reason) line.append(h('div', { class: 'up-reason', title: u.reason }, u.reason));
    return line;
  }

  function metric(label, value, extra) {
    return h(
      'div',
      { class: 'metric' + (extra ? ' ' + extra : '') },
      h('dt', null, label),
      h('dd', null, value),
    );
  }

  /** A quota window's reset, from now: `resets in 2h 13m`, or `reset` once it is past. */
  function resetText(w, now) {
    if (!isNum(w.resetsAt)) return '';
    const left = w.resetsAt - now;
    return left > 0 ? `resets in ${fmtSpan(left)}` : 'reset';
  }

  /**
   * The provider's usage windows (Codex: 5-hour and weekly), a bar and the percent each, with the
   * reset; nothing for an upstream that never reported them. A window past its reset shows empty.
   */
  function quotaBlock(u) {
    const q = u.quota;
    if (!q || !Array.isArray(q.windows) || q.windows.length === 0) return null;
    const now = serverNow();
    const box = h('div', {
      class: 'quota',
      title: isNum(q.observedAt) ? 'as of ' + fmtClock(q.observedAt) : null,
    });
    for (const w of q.windows) {
      if (!w || !isNum(w.usedPercent)) continue;
      const used = isNum(w.resetsAt) && w.resetsAt <= now ? 0 : Math.max(0, w.usedPercent);
      const fill = h('span', { class: 'quota-fill' });
      fill.style.width = Math.min(100, used) + '%';
      box.append(
        h(
          'div',
          {
            class: 'quota-row',
            'data-window': String(w.id),
            'data-level': used >= 100 ? 'bad' : used >= 80 ? 'warn' : 'ok',
            title: isNum(w.resetsAt) ? 'resets at ' + new Date(w.resetsAt).toLocaleString() : null,
          },
          h('span', { class: 'quota-label' }, String(w.label || w.id)),
          h('span', { class: 'quota-bar' }, fill),
          h('span', { class: 'quota-pct' }, `${Math.round(used)}%`),
          h('span', { class: 'quota-reset' }, resetText(w, now)),
        ),
      );
    }
    return box;
  }

  // Operator actions on a card: POST to the admin API with the session cookie. The custom header
  // (and the Origin the browser adds) is what lets the gateway tell the page from another site.
  const ACTIONS = {
    disable: { label: 'Disable', done: 'Disabled' },
    enable: { label: 'Enable', done: 'Enabled' },
    'clear-cooldown': { label: 'Clear cooldown', done: 'Cooldown cleared' },
    refresh: { label: 'Refresh token', done: 'Token refreshed' },
  };
  const ACTION_NOTE_MS = 8000;
  const pending = new Map(); // upstream name → action running
  const notes = new Map(); // upstream name → { text, bad, until }

  function cardActions(u) {
    const wanted = [u.state === 'disabled' ? 'enable' : 'disable'];
    if (u.state === 'cooling') wanted.push('clear-cooldown');
    if (u.refreshable === true) wanted.push('refresh');
    const busy = pending.get(u.name);
    const box = h('div', { class: 'up-actions' });
    for (const a of wanted)
      box.append(
        h(
          'button',
          { type: 'button', class: 'up-action', 'data-action': a, disabled: busy !== undefined },
          busy === a ? ACTIONS[a].label + '…' : ACTIONS[a].label,
        ),
      );
    const note = notes.get(u.name);
    if (note && note.until > Date.now())
      box.append(
        h(
          'span',
          { class: 'up-action-note' + (note.bad ? ' bad' : ''), role: 'status', title: note.text },
          note.text,
        ),
      );
    return box;
  }

  async function runAction(name, action) {
    if (pending.has(name) || !ACTIONS[action]) return;
    pending.set(name, action);
    notes.delete(name);
    renderUpstreams();
    let note;
    try {
      const res = await fetch(basePath + '/api/upstreams/' + encodeURIComponent(name) + '/' + action, {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'x-tapgate-admin': '1', 'content-type': 'application/json' },
        body: action === 'disable' ? JSON.stringify({ reason: 'disabled from the dashboard' }) : undefined,
      });
      let body = null;
      try {
        body = await res.json();
      } catch {
        // not JSON: the status says enough
      }
      if (res.ok) {
        note = { text: ACTIONS[action].done, bad: false };
        // The feed brings the new state within a batch; the answer shows it at once.
        const up = body && body.upstream;
        const i = state.upstreams.findIndex((x) => x && x.name === name);
        if (up && i >= 0) {
          const cur = state.upstreams[i];
          const cooling = up.cooldowns && up.cooldowns.length > 0;
          state.upstreams[i] = {
            ...cur,
            state: up.state,
            reason: up.state === 'disabled' ? up.disabledReason : cooling ? cur.reason : null,
            coolingUntil: cooling ? cur.coolingUntil : null,
          };
        }
      } else if (res.status === 401) note = { text: 'Log in again', bad: true };
      else {
        const msg = body && body.error && body.error.message;
        note = { text: msg ? String(msg) : `Failed (HTTP ${res.status})`, bad: true };
      }
    } catch {
      note = { text: 'The gateway did not answer', bad: true };
    }
    pending.delete(name);
    notes.set(name, { ...note, until: Date.now() + ACTION_NOTE_MS });
    renderUpstreams();
  }

  function buildCard(u) {
    const max = isNum(u.maxConcurrency) && u.maxConcurrency > 0 ? u.maxConcurrency : 0;
    const inflight = isNum(u.inFlight) ? u.inFlight : 0;
    const rate = isNum(u.errorRate5m)
      ? u.errorRate5m
      : u.requests5m > 0 && isNum(u.errors5m)
        ? u.errors5m / u.requests5m
        : null;
    const children = [
      h(
        'div',
        { class: 'up-head' },
        h('span', { class: 'up-name', title: u.name }, u.name),
        u.type ? h('span', { class: 'up-type' }, u.type) : null,
        stateBadge(u),
      ),
    ];
    if (u.state === 'cooling') children.push(coolingLine(u));
    if (u.state === 'disabled')
      children.push(
        h('div', { class: 'up-status up-status-bad', title: u.reason || '' }, u.reason || 'disabled'),
      );
    // A bar of the slots in use; an unlimited upstream has none.
    let load = null;
    if (max) {
      const bar = h('span', { class: 'load-bar' });
      bar.style.width = Math.min(100, (inflight / max) * 100) + '%';
      load = h('div', { class: 'load', title: `${inflight} of ${max} slots in use` }, bar);
    }
    children.push(
      h(
        'dl',
        { class: 'metrics' },
        metric('In flight', `${fmtInt(inflight)} / ${max ? fmtInt(max) : '∞'}`),
        metric('Queue', fmtInt(u.queue), u.queue > 0 ? 'warn' : ''),
        metric('Req 5m', fmtInt(u.requests5m)),
        metric(
          'Err 5m',
          `${fmtPct(rate)}${isNum(u.errors5m) && u.errors5m > 0 ? ` (${fmtInt(u.errors5m)})` : ''}`,
          rate > 0 ? 'bad' : '',
        ),
      ),
      load,
      quotaBlock(u),
      cardActions(u),
    );
    if (u.lastError && (u.lastError.message || isNum(u.lastError.time))) {
      children.push(
        h(
          'div',
          { class: 'up-last-error', title: u.lastError.message || '' },
          h('span', { class: 'up-last-error-time' }, 'last error ' + fmtClock(u.lastError.time)),
          ' ',
          u.lastError.message || '',
        ),
      );
    }
    return children;
  }

  function renderUpstreams() {
    const box = $('upstreams');
    const seen = new Set();
    if (state.upstreams.length === 0) {
      cards.clear();
      box.replaceChildren(h('p', { class: 'empty' }, state.totals ? 'No upstreams configured.' : 'Waiting…'));
      $('upstreams-summary').textContent = '';
      return;
    }
    const counts = { ok: 0, cooling: 0, disabled: 0 };
    let prev = null;
    for (const u of state.upstreams) {
      if (!u || typeof u.name !== 'string') continue;
      seen.add(u.name);
      if (u.state in counts) counts[u.state]++;
      let card = cards.get(u.name);
      if (!card) {
        card = h('article', { class: 'up-card' });
        card.dataset.upstream = u.name;
        cards.set(u.name, card);
      }
      card.dataset.state = u.state || '';
      card.replaceChildren(...buildCard(u).filter(Boolean));
      // Keep the server's order.
      const want = prev ? prev.nextSibling : box.firstChild;
      if (want !== card) box.insertBefore(card, want);
      prev = card;
    }
    for (const [name, card] of cards) {
      if (!seen.has(name)) {
        card.remove();
        cards.delete(name);
      }
    }
    for (const el of [...box.children]) if (!el.classList.contains('up-card')) el.remove();
    const parts = [`${counts.ok} ok`];
    if (counts.cooling) parts.push(`${counts.cooling} cooling`);
    if (counts.disabled) parts.push(`${counts.disabled} disabled`);
    $('upstreams-summary').textContent = parts.join(' · ');
  }

  // One listener for every card's buttons: cards are rebuilt on every message.
  $('upstreams').addEventListener('click', (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest('button[data-action]') : null;
    const card = button && button.closest('.up-card');
    if (!card || button.disabled) return;
    void runAction(card.dataset.upstream, button.dataset.action);
  });

  /** Refreshes the countdowns on cooling cards and quota resets once a second, between messages. */
  function tickCards() {
    for (const u of state.upstreams) {
      const card = u && cards.get(u.name);
      if (!card) continue;
      // A window that reset since the last message is redrawn empty.
      const quota = card.querySelector('.quota');
      if (quota && u.quota && Array.isArray(u.quota.windows)) {
        const now = serverNow();
        if (u.quota.windows.some((w) => w && isNum(w.resetsAt) && w.resetsAt <= now))
          quota.replaceWith(quotaBlock(u));
        else
          for (const w of u.quota.windows) {
            const el =
              w && quota.querySelector(`.quota-row[data-window="${CSS.escape(String(w.id))}"] .quota-reset`);
            if (el) el.textContent = resetText(w, now);
          }
      }
      if (u.state !== 'cooling') continue;
      const el = card.querySelector('.countdown');
      if (!el || !isNum(u.coolingUntil)) continue;
      const left = u.coolingUntil - serverNow();
      el.textContent = left > 0 ? ` · ${fmtSpan(left + 999)} left` : ' · ending';
    }
  }

  // Request feed ------------------------------------------------------------------------------------
  const rows = new Map(); // id → { tr, detail }

  function resetFeedDom() {
    for (const r of rows.values()) {
      r.tr.remove();
      if (r.detail) r.detail.remove();
    }
    rows.clear();
    dirty.clear();
    for (const id of state.order) dirty.add(id);
  }

  function statusCell(r) {
    let text;
    let cls;
    if (r.state === 'active') {
      text = 'active';
      cls = 'st-active';
    } else if (r.state === 'aborted') {
      text = isNum(r.status) && r.status !== 499 ? `${r.status} aborted` : 'aborted';
      cls = 'st-aborted';
    } else {
      text = isNum(r.status) ? String(r.status) : r.state || '–';
      if (r.state === 'error' || (isNum(r.status) && r.status >= 500)) cls = 'st-error';
      else if (isNum(r.status) && r.status >= 400) cls = 'st-warn';
      else cls = 'st-ok';
      // A 200 stream that ended in response.failed is an error too.
      if (r.state === 'error' && isNum(r.status) && r.status < 400) cls = 'st-error';
    }
    return h('td', { class: 'c-status' }, h('span', { class: 'status ' + cls }, text));
  }

  function durationText(r) {
    if (isNum(r.durationMs)) return fmtMs(r.durationMs);
    if (r.state === 'active' && isNum(r.time)) return fmtMs(Math.max(0, serverNow() - r.time));
    return '–';
  }

  function buildRow(r, tr) {
    const failed = r.state === 'error' || r.state === 'aborted' || (isNum(r.status) && r.status >= 400);
    const err = r.error && typeof r.error === 'object' ? r.error : null;
    const id = String(r.id);
    tr.className = 'req req-' + (r.state || 'unknown') + (expanded.has(id) ? ' open' : '');
    tr.dataset.state = r.state || '';
    tr.setAttribute('aria-expanded', expanded.has(id) ? 'true' : 'false');
    const errCell = h('td', { class: 'c-error' });
    if (failed && err) {
      errCell.title = [err.code, err.message].filter(Boolean).join(': ');
      if (err.code) errCell.append(h('span', { class: 'err-code' }, err.code));
      if (err.message) errCell.append(h('span', { class: 'err-msg' }, err.message));
    }
    const tokensIn = isNum(r.tokensIn) ? fmtCount(r.tokensIn) : '–';
    const tokensOut = isNum(r.tokensOut) ? fmtCount(r.tokensOut) : '–';
    tr.replaceChildren(
      h(
        'td',
        { class: 'c-time', title: isNum(r.time) ? new Date(r.time).toLocaleString() : '' },
        fmtClock(r.time),
      ),
      h(
        'td',
        { class: 'c-id mono', title: id },
        h('span', { class: 'chev', 'aria-hidden': 'true' }),
        id.slice(0, 8),
      ),
      h('td', { class: 'c-route', title: r.route || '' }, r.route || '–'),
      h('td', { class: 'c-model', title: r.model || '' }, r.model || '–'),
      h('td', { class: 'c-client', title: r.client || '' }, r.client || '–'),
      h('td', { class: 'c-upstream', title: r.upstream || '' }, r.upstream || '–'),
      h(
        'td',
        { class: 'c-attempts num' + (r.attempts > 1 ? ' multi' : '') },
        isNum(r.attempts) ? r.attempts : '–',
      ),
      statusCell(r),
      h('td', { class: 'c-ttfb num' }, fmtMs(r.ttfbMs)),
      h('td', { class: 'c-duration num' + (r.state === 'active' ? ' live' : '') }, durationText(r)),
      h('td', { class: 'c-tokens num' }, `${tokensIn} / ${tokensOut}`),
      errCell,
    );
  }

  const EVENT_LABELS = {
    start: 'start',
    attempt: 'attempt',
    response: 'response',
    first_byte: 'first byte',
    failover: 'failover',
    terminal: 'terminal',
    finish: 'finish',
  };

  function buildDetail(r, detail) {
    const events = Array.isArray(r.events) ? r.events : [];
    const list = h('ol', { class: 'events' });
    for (const ev of events) {
      if (!ev || typeof ev !== 'object') continue;
      const kind = String(ev.kind || 'event');
      list.append(
        h(
          'li',
          { class: 'ev ev-' + kind.replace(/[^a-z_]/g, ''), 'data-kind': kind },
          h('span', { class: 'ev-t' }, isNum(ev.t) ? `+${fmtMs(ev.t)}` : ''),
          h('span', { class: 'ev-kind' }, EVENT_LABELS[kind] || kind),
          h('span', { class: 'ev-detail' }, fmtDetail(ev.detail)),
        ),
      );
    }
    if (events.length === 0) list.append(h('li', { class: 'ev ev-none' }, 'No lifecycle events recorded.'));
    const meta = h(
      'div',
      { class: 'detail-meta' },
      h('span', null, 'Request ', h('code', null, String(r.id))),
      isNum(r.time) ? h('span', null, 'started ' + new Date(r.time).toLocaleString()) : null,
    );
    const parts = [meta];
    if (r.error && typeof r.error === 'object' && (r.error.code || r.error.message)) {
      parts.push(
        h(
          'div',
          { class: 'detail-error' },
          r.error.code ? h('strong', null, r.error.code) : null,
          r.error.code && r.error.message ? ': ' : null,
          r.error.message || null,
        ),
      );
    }
    parts.push(list);
    detail.replaceChildren(h('td', { colspan: '12' }, ...parts));
  }

  function toggleRow(id) {
    if (expanded.has(id)) expanded.delete(id);
    else expanded.add(id);
    dirty.add(id);
    renderFeed();
  }

  function renderFeed() {
    const tbody = $('feed');
    const keep = new Set(state.order);
    for (const [id, r] of rows) {
      if (keep.has(id)) continue;
      r.tr.remove();
      if (r.detail) r.detail.remove();
      rows.delete(id);
      expanded.delete(id);
    }
    for (const id of state.order) {
      const req = state.requests.get(id);
      let r = rows.get(id);
      if (!r) {
        const tr = h('tr', { tabindex: '0' });
        tr.dataset.id = id;
        r = { tr, detail: null };
        rows.set(id, r);
        dirty.add(id);
      }
      if (!dirty.has(id)) continue;
      buildRow(req, r.tr);
      if (expanded.has(id)) {
        if (!r.detail) r.detail = h('tr', { class: 'detail' });
        r.detail.dataset.id = id;
        buildDetail(req, r.detail);
      } else if (r.detail) {
        r.detail.remove();
        r.detail = null;
      }
    }
    dirty.clear();
    // Put the rows in order, moving only those that are out of place.
    let cursor = tbody.firstChild;
    for (const id of state.order) {
      const r = rows.get(id);
      for (const el of r.detail ? [r.tr, r.detail] : [r.tr]) {
        if (el === cursor) cursor = cursor.nextSibling;
        else tbody.insertBefore(el, cursor);
      }
    }
    $('feed-empty').hidden = state.order.length > 0;
  }

  function tickFeed() {
    for (const id of state.order) {
      const req = state.requests.get(id);
      if (!req || req.state !== 'active') continue;
      const cell = rows.get(id) && rows.get(id).tr.querySelector('.c-duration');
      if (cell) cell.textContent = durationText(req);
    }
  }

  $('feed').addEventListener('click', (ev) => {
    const tr = ev.target instanceof Element ? ev.target.closest('tr.req') : null;
    if (!tr || !tr.dataset.id) return;
    const sel = document.getSelection && document.getSelection();
    if (sel && sel.type === 'Range') return; // selecting text, not toggling
    toggleRow(tr.dataset.id);
  });
  $('feed').addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' && ev.key !== ' ') return;
    const tr = ev.target instanceof Element ? ev.target.closest('tr.req') : null;
    if (!tr || !tr.dataset.id) return;
    ev.preventDefault();
    toggleRow(tr.dataset.id);
  });

  // Charts ----------------------------------------------------------------------------------------
  const charts = [];

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  /** Rates are averaged over this many seconds: per-second counts of a quiet gateway are mostly 0 or 1. */
  const SMOOTH_S = 10;
  const num = (v) => (isNum(v) ? v : 0);

  /** Requests per second, averaged over the SMOOTH_S seconds that end at each point. */
  function rollingRps(pts) {
    const out = [];
    let sum = 0;
    for (let i = 0; i < pts.length; i++) {
      sum += num(pts[i].rps);
      if (i >= SMOOTH_S) sum -= num(pts[i - SMOOTH_S].rps);
      out.push(sum / Math.min(i + 1, SMOOTH_S));
    }
    return out;
  }

  /** Failed ÷ finished over the same SMOOTH_S seconds, in percent (0 when nothing finished). */
  function rollingErrorPct(pts) {
    const out = [];
    let done = 0;
    let failed = 0;
    for (let i = 0; i < pts.length; i++) {
      done += num(pts[i].rps);
      failed += num(pts[i].rps) * num(pts[i].errorRate);
      if (i >= SMOOTH_S) {
        done -= num(pts[i - SMOOTH_S].rps);
        failed -= num(pts[i - SMOOTH_S].rps) * num(pts[i - SMOOTH_S].errorRate);
      }
      out.push(done > 0.0001 ? Math.max(0, (failed / done) * 100) : 0);
    }
    return out;
  }

  /**
   * A per-second latency figure averaged over the same SMOOTH_S seconds, each second weighted by the
   * requests that finished in it; null where no request finished.
   */
  const rollingLatency = (key) => (pts) => {
    const out = [];
    let weight = 0;
    let sum = 0;
    const w = (p) => (isNum(p[key]) ? Math.max(1, num(p.rps)) : 0);
    for (let i = 0; i < pts.length; i++) {
      weight += w(pts[i]);
      sum += w(pts[i]) * num(pts[i][key]);
      if (i >= SMOOTH_S) {
        const old = pts[i - SMOOTH_S];
        weight -= w(old);
        sum -= w(old) * num(old[key]);
      }
      out.push(weight > 0.0001 ? sum / weight : null);
    }
    return out;
  };

  const CHARTS = [
    {
      id: 'chart-rps',
      series: [{ values: rollingRps, label: 'req/s', color: '--c-rps', fill: true }],
      fmt: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(v === 0 ? 0 : 1)),
      axis: (v) => (v >= 10 ? v.toFixed(0) : +v.toFixed(1) + ''),
      floor: 1,
    },
    {
      id: 'chart-latency',
      series: [
        { values: rollingLatency('p50'), label: 'p50', color: '--c-p50' },
        { values: rollingLatency('p95'), label: 'p95', color: '--c-p95' },
        { values: rollingLatency('ttfb50'), label: 'ttfb p50', color: '--c-ttfb50', dash: [4, 3] },
        { values: rollingLatency('ttfb95'), label: 'ttfb p95', color: '--c-ttfb95', dash: [4, 3] },
      ],
      fmt: (v) => fmtMs(v),
      axis: fmtMsShort,
      floor: 100,
    },
    {
      id: 'chart-errors',
      series: [{ values: rollingErrorPct, label: 'errors', color: '--c-err', fill: true }],
      fmt: (v) => (v === 0 ? '0%' : (v < 10 ? v.toFixed(1) : Math.round(v)) + '%'),
      axis: (v) => +v.toFixed(1) + '%',
      floor: 5,
    },
  ];

  /** Seconds shown: the last 15 minutes, or since the gateway started (2 minutes at least). */
  function chartSpan() {
    const t = state.totals;
    if (!t || !isNum(t.startedAt)) return WINDOW_S;
    const since = Math.ceil((serverNow() - t.startedAt) / 1000);
    return Math.min(WINDOW_S, Math.max(MIN_SPAN_S, since));
  }

  function withAlpha(color, alpha) {
    const m = /^#([0-9a-f]{6})$/i.exec(color);
    if (!m) return color;
    const n = parseInt(m[1], 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
  }

  function initCharts() {
    if (typeof uPlot !== 'function') {
      for (const def of CHARTS) {
        const box = document.querySelector(`#${def.id} .plot`);
        if (box) box.replaceChildren(h('p', { class: 'empty' }, 'Charts unavailable (uPlot did not load).'));
      }
      return;
    }
    const axisColor = cssVar('--muted', '#6b7480');
    const gridColor = cssVar('--grid', '#eceef1');
    const font = `11px ${cssVar('--font-ui', 'system-ui, sans-serif')}`;
    for (const def of CHARTS) {
      const fig = $(def.id);
      const box = fig.querySelector('.plot');
      const legend = fig.querySelector('.chart-legend');
      const values = [];
      const chart = { def, values, plot: null, box };
      for (const s of def.series) {
        const value = h('span', { class: 'lg-value' }, '–');
        const item = h('span', { class: 'lg-item' }, h('span', { class: 'lg-swatch' }), s.label, ' ', value);
        item.firstChild.style.background = cssVar(s.color, '#3b6fd8');
        if (s.dash) item.firstChild.classList.add('dashed');
        legend.append(item);
        values.push(value);
      }
      const opts = {
        width: Math.max(200, box.clientWidth),
        height: CHART_HEIGHT,
        legend: { show: false },
        padding: [8, 24, 0, 0],
        cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 6 } },
        scales: {
          x: { time: true, range: () => [serverNow() / 1000 - chartSpan(), serverNow() / 1000] },
          y: { range: (_u, _min, max) => [0, Math.max(def.floor, (max || 0) * 1.15)] },
        },
        axes: [
          {
            stroke: axisColor,
            font,
            grid: { stroke: gridColor, width: 1 },
            ticks: { show: false },
            size: 26,
            space: 70,
            values: (_u, splits, _axis, _space, incr) =>
              splits.map((s) => {
                const d = new Date(s * 1000);
                const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
                return incr < 60 ? `${hm}:${pad2(d.getSeconds())}` : hm;
              }),
          },
          {
            stroke: axisColor,
            font,
            grid: { stroke: gridColor, width: 1 },
            ticks: { show: false },
            size: 48,
            space: 26,
            values: (_u, splits) => splits.map((v) => def.axis(v)),
          },
        ],
        series: [
          {},
          ...def.series.map((s) => {
            const color = cssVar(s.color, '#3b6fd8');
            return {
              label: s.label,
              stroke: color,
              width: 1.5,
              dash: s.dash,
              fill: s.fill ? withAlpha(color, 0.12) : undefined,
              points: { size: 4 },
              spanGaps: !!s.spanGaps,
            };
          }),
        ],
        hooks: { setCursor: [(u) => updateLegend(chart, u.cursor.idx)] },
      };
      chart.plot = new uPlot(opts, buildData(def), box);
      charts.push(chart);
      new ResizeObserver(() => {
        const w = Math.floor(box.clientWidth);
        if (w > 0 && w !== chart.plot.width) chart.plot.setSize({ width: w, height: CHART_HEIGHT });
      }).observe(box);
    }
  }

  function buildData(def) {
    const from = serverNow() - chartSpan() * 1000;
    // Rolling values need the seconds just before the window too, so compute first, then cut.
    const all = state.points;
    let start = all.findIndex((p) => p.t >= from);
    if (start < 0) start = all.length;
    const xs = all.slice(start).map((p) => p.t / 1000);
    return [xs, ...def.series.map((s) => s.values(all).slice(start))];
  }

  function updateLegend(chart, idx) {
    if (!chart.plot) return;
    const data = chart.plot.data;
    chart.def.series.forEach((_s, i) => {
      const ys = data[i + 1] || [];
      let v = null;
      if (idx !== null && idx !== undefined) v = ys[idx];
      else for (let j = ys.length - 1; j >= 0 && v === null; j--) if (isNum(ys[j])) v = ys[j];
      chart.values[i].textContent = isNum(v) ? chart.def.fmt(v) : '–';
    });
  }

  function renderCharts() {
    $('h-charts').textContent = chartSpan() < WINDOW_S ? 'Since the gateway started' : 'Last 15 minutes';
    for (const chart of charts) {
      chart.plot.setData(buildData(chart.def));
      updateLegend(chart, chart.plot.cursor.idx);
    }
  }

  // Usage per key and per account ------------------------------------------------------------------
  // Read from the gateway's usage records (every worker's) over HTTP, not the feed: it changes slowly.
  const USAGE_POLL_MS = 15_000;

  function usageTable(title, lines) {
    const head = h(
      'tr',
      null,
      h('th', { class: 'u-name' }, title),
      h('th', { class: 'num', title: 'Requests today' }, 'Req. today'),
      h('th', { class: 'num', title: 'Tokens in / out today' }, 'Tokens today'),
      h('th', { class: 'num', title: 'Requests this month' }, 'Req. month'),
      h('th', { class: 'num', title: 'Tokens in / out this month' }, 'Tokens month'),
    );
    const rows = lines.map((l) =>
      h(
        'tr',
        { 'data-name': l.name === null ? '' : l.name, class: l.others ? 'u-others' : null },
        h('td', { class: 'u-name', title: l.name === null ? 'no client key' : l.name }, l.name ?? '(none)'),
        h('td', { class: 'num' }, fmtInt(l.today.requests)),
        h('td', { class: 'num' }, `${fmtCount(l.today.input)} / ${fmtCount(l.today.output)}`),
        h('td', { class: 'num' }, fmtInt(l.month.requests)),
        h('td', { class: 'num' }, `${fmtCount(l.month.input)} / ${fmtCount(l.month.output)}`),
      ),
    );
    const empty = lines.length === 0 ? h('p', { class: 'empty' }, 'Nothing this month.') : null;
    return h(
      'div',
      { class: 'usage-block' },
      h('table', { class: 'usage-table' }, h('thead', null, head), h('tbody', null, ...rows)),
      empty,
    );
  }

  function renderUsage(u) {
    const el = $('usage');
    if (!u.available) {
      el.replaceChildren(h('p', { class: 'empty' }, 'Usage records are off (usage.enabled: false).'));
      return;
    }
    el.replaceChildren(
      h('div', { class: 'usage-key', id: 'usage-keys' }, usageTable('Client key', u.keys)),
      h('div', { class: 'usage-account', id: 'usage-accounts' }, usageTable('Account', u.accounts)),
    );
  }

  async function pollUsage() {
    try {
      const res = await fetch(basePath + '/api/usage', { cache: 'no-store', credentials: 'same-origin' });
      if (res.ok) renderUsage(await res.json());
    } catch {
      // The feed's connection state tells the user the gateway is away; the next poll tries again.
    }
  }

  // ------------------------------------------------------------------------------------------------
  $('conn-login').href = basePath || '/';
  $('logout').action = basePath + '/logout';
  initCharts();
  renderFeed();
  connect();
  void pollUsage();
  setInterval(pollUsage, USAGE_POLL_MS);
  setInterval(() => {
    renderUptime();
    tickCards();
    tickFeed();
    updateRetryText();
    renderCharts(); // the window slides even when nothing changes
  }, 1000);
})();
