// The status page's script (served as /ui/app.js, compiled into the collector).
//
// It fetches the view, the maintenance windows and the recent history from the API with
// the credentials the browser already holds for this origin, draws them, and follows the
// event stream: each event schedules one refetch (events arriving during a fetch are
// coalesced into the next one), and transitions are added to the timelines as they come.
// A slow timer refetches too, because a node going silent (stale) is not an event.
//
// Every name and reason from the collector is written with textContent or as an SVG
// <title> text node: nothing the collector answers is ever parsed as HTML.
'use strict';

(function () {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const STATUSES = ['OK', 'Degraded', 'Fail'];
  // Timeline: transitions kept per node, and the history read at load.
  const MAX_TRANSITIONS = 20;
  const HISTORY_LIMIT = 1000;
  // Silence is not an event: refetch the view this often anyway.
  const REFRESH_MS = 15000;
  // Bursts of events (a whole cluster changing) become one refetch.
  const COALESCE_MS = 150;
  // A view fetch costs the collector about as much CPU as it takes (~0.1 s at 10,000
  // nodes, BENCHMARKS.md): under a stream of events a page refetches at most once per
  // second, and never spends more than a tenth of the time fetching.
  const MIN_VIEW_GAP_MS = 1000;
  const VIEW_GAP_FACTOR = 10;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;

  const state = {
    view: null,
    windows: [],
    // node name or id -> [{at: ms, from, to}], oldest first
    timelines: new Map(),
    lastId: null,
    want: new Set(),
    running: false,
    retryMs: RETRY_MIN_MS,
    source: null,
    refreshes: 0,
    nextViewAt: 0,
  };

  // URLs from the origin only: a page opened with user:password@ in its address must not put the
  // credentials into every request URL (fetch refuses such URLs anyway).
  function api(path) {
    return new URL(path, window.location.origin).toString();
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // A status as a CSS class: only the three known ones, anything else is "unknown".
  function statusClass(s) {
    return STATUSES.includes(s) ? 'st-' + s : 'st-unknown';
  }

  function badge(status) {
    const b = el('span', 'badge ' + statusClass(status), status || 'unknown');
    b.dataset.status = STATUSES.includes(status) ? status : 'unknown';
    return b;
  }

  function ago(ms) {
    if (!Number.isFinite(ms)) return '';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 90) return s + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }

  function when(ms) {
    return Number.isFinite(ms) ? new Date(ms).toLocaleString() : '';
  }

  async function getJSON(path) {
    const r = await fetch(api(path), {
      cache: 'no-store',
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (!r.ok) {
      let why = 'HTTP ' + r.status;
      try {
        const body = await r.json();
        if (body && typeof body.message === 'string') why += ': ' + body.message;
      } catch (_) {
        // not JSON: the status says enough
      }
      throw new Error(path.split('?')[0] + ': ' + why);
    }
    return r.json();
  }

  // ---- data ----

  function addTransition(item) {
    if (!item || item.kind !== 'transition' || item.service) return;
    const key = item.node_name || item.node_id;
    if (!key) return;
    const at = Date.parse(item.received_at || item.at);
    if (!Number.isFinite(at)) return;
    const list = state.timelines.get(key) || [];
    list.push({ at: at, from: String(item.from), to: String(item.to) });
    list.sort((a, b) => a.at - b.at);
    while (list.length > MAX_TRANSITIONS) list.shift();
    state.timelines.set(key, list);
  }

  async function refresh(what) {
    const jobs = [];
    if (what.has('view')) {
      const t0 = Date.now();
      jobs.push(getJSON('/api/v3.1/cluster-status').then((v) => {
        state.view = v;
        const took = Date.now() - t0;
        state.nextViewAt = Date.now() + Math.max(MIN_VIEW_GAP_MS, VIEW_GAP_FACTOR * took);
      }));
    }
    // A tier-2 collector ([fleet]) also lists its clusters; any other answers 404 once and
    // is not asked again.
    if (what.has('view') && state.fleet !== false) {
      jobs.push(getJSON('/api/tier2/v1/clusters').then((c) => {
        state.fleet = true;
        state.clusters = (c && c.clusters) || {};
      }, () => {
        if (state.fleet !== true) state.fleet = false;
        state.clusters = null;
      }));
    }
    if (what.has('maintenance')) {
      jobs.push(getJSON('/api/v3.1/maintenance-windows').then((m) => {
        state.windows = Array.isArray(m.items) ? m.items : [];
      }));
    }
    if (what.has('history')) {
      jobs.push(getJSON('/api/v3.1/history?limit=' + HISTORY_LIMIT).then((h) => {
        state.timelines = new Map();
        const items = Array.isArray(h.items) ? h.items.slice().reverse() : [];
        for (const item of items) addTransition(item);
      }));
    }
    await Promise.all(jobs);
    state.refreshes += 1;
    render();
  }

  function schedule(...what) {
    for (const w of what) state.want.add(w);
    if (state.running) return;
    state.running = true;
    const loop = async () => {
      while (state.want.size) {
        const wait = state.want.has('view') ? Math.max(COALESCE_MS, state.nextViewAt - Date.now()) : COALESCE_MS;
        await new Promise((r) => setTimeout(r, wait));
        const now = new Set(state.want);
        state.want.clear();
        try {
          await refresh(now);
          showError(null);
        } catch (e) {
          showError(e);
        }
      }
      state.running = false;
    };
    loop();
  }

  // ---- drawing ----

  function showError(e) {
    const p = byId('error');
    if (!e) {
      p.hidden = true;
      p.textContent = '';
      return;
    }
    p.hidden = false;
    p.textContent = 'Could not refresh: ' + (e && e.message ? e.message : String(e));
  }

  function reasonList(reasons, cls) {
    const ul = el('ul', cls || 'reasons');
    for (const r of reasons || []) {
      const li = el('li');
      li.append(el('code', 'code', r.code));
      li.append(el('span', 'msg', r.message));
      if (r.node) li.append(el('span', 'on', 'on ' + r.node));
      ul.append(li);
    }
    return ul;
  }

  function renderOverall(view) {
    const o = byId('overall');
    const s = view.status;
    o.className = 'badge big ' + statusClass(s);
    o.textContent = s || 'unknown';
    o.dataset.status = STATUSES.includes(s) ? s : 'unknown';
    document.title = (s || 'unknown') + ' · status-reporter';
    const reasons = view.reasons || [];
    const box = byId('problems');
    const list = byId('overall-reasons');
    list.replaceChildren(...reasonList(reasons).children);
    box.hidden = reasons.length === 0;
    byId('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  function renderServices(view) {
    const box = byId('services');
    const cards = [];
    for (const [name, svc] of Object.entries(view.services || {})) {
      const card = el('article', 'card service ' + statusClass(svc.status));
      card.dataset.service = name;
      const head = el('div', 'head');
      head.append(el('h3', null, name), badge(svc.status));
      card.append(head);
      const n = Object.keys(svc.nodes || {}).length;
      card.append(el('p', 'sub', n + (n === 1 ? ' node' : ' nodes') + (svc.is_external ? ', external' : '')));
      if ((svc.reasons || []).length) card.append(reasonList(svc.reasons));
      cards.push(card);
    }
    box.replaceChildren(...cards);
  }

  function timeline(key, current) {
    const list = state.timelines.get(key) || [];
    const now = Date.now();
    const w = 300;
    const h = 18;
    const root = svg('svg', {
      class: 'timeline',
      viewBox: '0 0 ' + w + ' ' + h,
      preserveAspectRatio: 'none',
      role: 'img',
    });
    const label = svg('title');
    label.textContent = list.length
      ? 'last ' + list.length + ' transitions of ' + key
      : 'no transition of ' + key + ' stored';
    root.append(label);
    const start = list.length ? Math.min(list[0].at, now - 60000) : now - 60000;
    const span = Math.max(1, now - start);
    const x = (t) => ((t - start) / span) * w;
    // Before the first transition: its "from"; then each "to" until the next one.
    const segments = [];
    if (list.length) {
      segments.push({ from: start, to: list[0].at, status: list[0].from });
      list.forEach((t, i) => {
        const end = i + 1 < list.length ? list[i + 1].at : now;
        segments.push({ from: t.at, to: end, status: t.to, t: t });
      });
    } else {
      segments.push({ from: start, to: now, status: current });
    }
    for (const s of segments) {
      const r = svg('rect', {
        x: x(s.from).toFixed(2),
        y: 2,
        width: Math.max(0.5, x(s.to) - x(s.from)).toFixed(2),
        height: h - 4,
        class: 'seg ' + statusClass(s.status),
      });
      const t = svg('title');
      t.textContent = s.t
        ? s.t.from + ' → ' + s.t.to + ' at ' + when(s.t.at)
        : String(s.status || 'unknown');
      r.append(t);
      root.append(r);
    }
    for (const t of list) {
      root.append(svg('line', { x1: x(t.at).toFixed(2), x2: x(t.at).toFixed(2), y1: 0, y2: h, class: 'tick' }));
    }
    return root;
  }

  function field(dl, name, value, cls) {
    if (value === undefined || value === null || value === '') return null;
    dl.append(el('dt', null, name));
    const dd = el('dd', cls, value);
    dl.append(dd);
    return dd;
  }

  function renderNodes(view) {
    const cards = [];
    for (const [service, svc] of Object.entries(view.services || {})) {
      for (const [key, node] of Object.entries(svc.nodes || {})) {
        const name = node.name || key;
        const card = el('article', 'card node ' + statusClass(node.status));
        card.dataset.node = name;
        card.dataset.service = service;
        const head = el('div', 'head');
        head.append(el('h3', 'name', key), badge(node.status));
        card.append(head);
        const dl = el('dl', 'facts');
        field(dl, 'service', service);
        field(dl, 'role', node.role);
        const seen = Date.parse(node.last_seen);
        const dd = field(dl, 'last seen', Number.isFinite(seen) ? ago(seen) : 'never', 'ago');
        if (dd && Number.isFinite(seen)) {
          dd.dataset.at = String(seen);
          dd.title = when(seen);
        }
        if (Number.isFinite(node.skew_ms)) {
          const skew = Math.round(node.skew_ms / 100) / 10;
          field(dl, 'clock skew', (skew > 0 ? '+' : '') + (skew === 0 ? '0.0' : skew.toFixed(1)) + ' s');
        }
        field(dl, 'address', node.private_ip);
        const flags = [];
        if (node.flapping) flags.push('flapping');
        if (node.key_mismatch) flags.push('key mismatch');
        if (node.unvouched) flags.push('unvouched');
        if (flags.length) field(dl, 'flags', flags.join(', '));
        card.append(dl);
        if ((node.reasons || []).length) card.append(reasonList(node.reasons));
        card.append(timeline(state.timelines.has(name) ? name : node.node_id, node.status));
        cards.push(card);
      }
    }
    byId('nodes').replaceChildren(...cards);
  }

  function renderMaintenance() {
    const box = byId('maintenance');
    const items = state.windows.map((w) => {
      const li = el('li');
      li.append(el('strong', null, w.target));
      li.append(el('span', 'msg', w.reason));
      li.append(el('span', 'on', 'by ' + w.by));
      li.append(el('span', 'on', w.until ? 'until ' + when(Date.parse(w.until)) : 'until turned off'));
      return li;
    });
    byId('maintenance-list').replaceChildren(...items);
    box.hidden = items.length === 0;
  }

  function renderClusters() {
    const cards = Object.entries(state.clusters || {}).map(([name, c]) => {
      const card = el('article', 'card service ' + statusClass(c.status));
      card.dataset.cluster = name;
      const head = el('div', 'head');
      head.append(el('h3', null, name), badge(c.status));
      card.append(head);
      card.append(el('p', 'sub', (c.nodes_total || 0) + ' nodes, ' + (c.nodes_silent || 0) + ' silent; summary ' + ago(Date.now() - (c.age_ms || 0))));
      if ((c.reasons || []).length) card.append(reasonList(c.reasons));
      return card;
    });
    byId('cluster-list').replaceChildren(...cards);
    byId('clusters').hidden = cards.length === 0;
  }

  function render() {
    renderClusters();
    if (state.view) {
      renderOverall(state.view);
      renderServices(state.view);
      renderNodes(state.view);
    }
    renderMaintenance();
    document.documentElement.dataset.refreshes = String(state.refreshes);
  }

  // ---- the event stream ----

  function setLive(s) {
    const l = byId('live');
    l.dataset.state = s;
    l.textContent = s;
  }

  function onEvent(ev) {
    if (ev.lastEventId) {
      state.lastId = ev.lastEventId;
      document.documentElement.dataset.lastEventId = ev.lastEventId;
    }
    let item = null;
    try {
      item = JSON.parse(ev.data);
    } catch (_) {
      // A malformed event still means something changed.
    }
    if (ev.type === 'maintenance') {
      schedule('view', 'maintenance');
    } else {
      addTransition(item);
      schedule('view');
    }
  }

  function connect() {
    let url = api('/api/v3.1/events');
    // EventSource resends the last id by itself while it reconnects; after it gave up
    // (an HTTP error), a new one resumes from the last id seen.
    if (state.lastId !== null) url += '?after=' + encodeURIComponent(state.lastId);
    const es = new EventSource(url);
    state.source = es;
    es.addEventListener('transition', onEvent);
    es.addEventListener('maintenance', onEvent);
    es.onopen = () => {
      state.retryMs = RETRY_MIN_MS;
      setLive('live');
      // Whatever happened while the stream was down shows now.
      schedule('view', 'maintenance');
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        setLive('reconnecting');
        const wait = state.retryMs;
        state.retryMs = Math.min(RETRY_MAX_MS, state.retryMs * 2);
        setTimeout(connect, wait);
      } else {
        setLive('reconnecting');
      }
    };
  }

  function tick() {
    for (const dd of document.querySelectorAll('dd.ago[data-at]')) {
      dd.textContent = ago(Number(dd.dataset.at));
    }
  }

  function start() {
    connect();
    schedule('view', 'maintenance', 'history');
    setInterval(() => schedule('view'), REFRESH_MS);
    setInterval(tick, 5000);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
