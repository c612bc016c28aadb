// The operator console: one page on the operator API (/ops/..., same
// origin, HTTP Basic credentials the browser already holds). Plain JS, no
// build step; charts with uPlot (vendor/). Views are hash routes:
// #/summary, #/events?order=1, #/event/<id>, #/dlq?topic=t, #/connector,
// #/audit?target=t.
'use strict';

(() => {
  const POLL_MS = 2000; // the summary's refresh while the tab is visible
  // A summary that takes long (a busy database, a large backlog to count)
  // is asked for again only after this many times its answer time, so an
  // open console never keeps the server busy more than a tenth of the time.
  const POLL_BACKOFF = 10;
  const KEEP_S = 600; // the charts keep the last 10 minutes
  const MIN_SPAN_S = 30; // the charts span at least the last 30 s
  const WINDOW = '10s'; // the summary's throughput and latency window
  const STATUSES = ['INIT', 'PUBLISHED', 'COMPLETE', 'FAILED', 'PARKED', 'DISCARDED'];
  const UNFINISHED = new Set(['INIT', 'PUBLISHED']);
  const PALETTE = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];
  const STATUS_COLOR = {
    INIT: '#64748b', PUBLISHED: '#2563eb', COMPLETE: '#059669',
    FAILED: '#dc2626', PARKED: '#d97706', DISCARDED: '#7c3aed',
  };

  const $ = (sel, root = document) => root.querySelector(sel);

  // h builds an element: attrs are attributes (class, data-*, ...), except
  // on* (listeners) and text; children are nodes or strings (null skipped).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function fill(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  // ---- the API

  class Problem extends Error {
    constructor(status, title, detail) {
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail || '';
    }
  }

  // api calls the operator API; a problem (RFC 7807) or any other failure
  // is thrown as a Problem.
  async function api(path, body) {
    const opts = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.method = 'POST';
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      // Against the origin, not the page's URL: a page opened as
      // http://user:password@host/console would make every relative
      // request carry credentials in its URL, which fetch refuses.
      res = await fetch(new URL(path, location.origin), opts);
    } catch {
      throw new Problem(0, 'No answer', 'the console cannot reach its server');
    }
    let data = null;
    if ((res.headers.get('Content-Type') || '').includes('json')) {
      try { data = await res.json(); } catch { data = null; }
    }
    if (!res.ok) {
      if (data && data.title) throw new Problem(res.status, data.title, data.detail);
      const detail = res.status === 401 ? 'not signed in: reload the page to sign in' : '';
      throw new Problem(res.status, res.statusText || 'Error', detail);
    }
    return data;
  }

  function problemText(e) {
    if (e instanceof Problem) return `${e.status ? e.status + ' ' : ''}${e.title}${e.detail ? ': ' + e.detail : ''}`;
    return String((e && e.message) || e);
  }

  const list = (v) => (Array.isArray(v) ? v : []);

  // ---- formatting

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtClock(iso) {
    const d = new Date(iso);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function fmtDur(s) {
    if (!(s > 0)) return '0 s';
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} m ${pad(Math.floor(s % 60))} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} m`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function fmtAgo(iso) {
    const s = (Date.now() - Date.parse(iso)) / 1000;
    return Number.isFinite(s) ? `${fmtDur(Math.max(0, s))} ago` : '';
  }

  function fmtMs(ms) {
    if (!(ms > 0)) return '–';
    if (ms < 10) return `${ms.toFixed(1)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  }

  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

  // fmtCount fits a count in a small tile: 182.4k, 3.1M.
  function fmtCount(n) {
    if (typeof n !== 'number') return '–';
    if (n < 100000) return fmtNum(n);
    if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
    if (n < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)}M`;
    return `${(n / 1e9).toFixed(2)}G`;
  }

  function fmtBytes(b) {
    if (!(b > 0)) return '0 B';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return `${b.toFixed(i && b < 10 ? 1 : 0)} ${units[i]}`;
  }

  const timeCell = (iso) => h('td', { class: 'nowrap', title: iso ? `${iso} (${fmtAgo(iso)})` : null }, fmtTime(iso));
  const shortID = (id) => (id ? id.slice(0, 8) + '…' : '');
  const badge = (status) => h('span', { class: `badge s-${status}`, 'data-status': status }, status);
  const stateBadge = (state) => h('span', { class: `badge c-${state || 'UNKNOWN'}`, 'data-state': state || 'UNKNOWN' }, state || 'UNKNOWN');
  const isUUID = (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s || '');
  const empty = (cols, text) => h('tr', { class: 'empty' }, h('td', { colspan: cols }, text));

  // ---- outcome toasts

  let toastTimer = null;

  function toast(kind, text) {
    const el = $('#toast');
    el.dataset.kind = kind;
    fill(el, h('span', { class: 'toast-text' }, text), h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Close', onclick: () => { el.hidden = true; } }, '×'));
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 20000 : 10000);
  }

  // ---- confirmation with a reason, then the action

  let confirmResolve = null;

  function askReason(title, text, okLabel, danger) {
    const dlg = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-reason').value = '';
    $('#confirm-problem').hidden = true;
    const ok = $('#confirm-ok');
    ok.textContent = okLabel;
    ok.classList.toggle('danger', !!danger);
    ok.classList.toggle('primary', !danger);
    dlg.showModal();
    $('#confirm-reason').focus();
    return new Promise((resolve) => { confirmResolve = resolve; });
  }

  function closeConfirm(reason) {
    const dlg = $('#confirm');
    if (dlg.open) dlg.close();
    if (confirmResolve) { const r = confirmResolve; confirmResolve = null; r(reason); }
  }

  function setupConfirm() {
    $('#confirm-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const reason = $('#confirm-reason').value.trim();
      if (!reason) {
        const p = $('#confirm-problem');
        p.textContent = 'Give a reason: it goes into the audit log.';
        p.hidden = false;
        $('#confirm-reason').focus();
        return;
      }
      closeConfirm(reason);
    });
    $('#confirm-cancel').addEventListener('click', () => closeConfirm(null));
    $('#confirm').addEventListener('cancel', () => closeConfirm(null)); // Escape
  }

  // act asks for a reason, posts the action and tells its outcome; then
  // refreshes the current view and the summary.
  async function act({ title, text, okLabel, danger, path, body, label }) {
    const reason = await askReason(title, text, okLabel || title, danger);
    if (reason === null) return;
    try {
      const r = await api(path, { ...(body || {}), reason });
      const parts = [];
      parts.push(r.changed ? `${label}: done` : `${label}: nothing to change (already so)`);
      if (r.status) parts.push(`status ${r.status}`);
      if (typeof r.redriven === 'number' || (label.startsWith('Re-drive') && r.changed !== undefined)) parts.push(`${r.redriven || 0} record(s) re-driven`);
      parts.push(`audit #${r.audit_id}`);
      toast(r.changed ? 'ok' : 'noop', parts.join(' · '));
    } catch (e) {
      toast('error', `${label} refused: ${problemText(e)}`);
    }
    pollNow();
    refreshView();
  }

  // ---- live summary: polled every 2 s (or POLL_BACKOFF times its answer
  // time, if longer) while the tab is visible

  // since: the time (s) of the first sample or completion the charts know of.
  const live = { timer: null, inflight: false, again: false, last: null, started: false, since: null };

  const perf = { t: [], tp: [], p50: [], p95: [], p99: [] };
  const lagData = { t: [], groups: new Map() };
  const statusData = { t: [], rows: Object.fromEntries(STATUSES.map((s) => [s, []])) };
  const charts = {};

  function pollNow() {
    clearTimeout(live.timer);
    live.timer = null;
    if (document.visibilityState === 'hidden') return;
    if (live.inflight) { live.again = true; return; }
    poll();
  }

  async function poll() {
    live.inflight = true;
    const started = performance.now();
    try {
      const s = await api(`/ops/summary?window=${WINDOW}`);
      live.last = s;
      addSample(s);
      renderSummary(s);
      if (current.view === 'connector') renderConnector(s);
      setLive('ok', `live · ${fmtTime(s.at).slice(11)}`);
    } catch (e) {
      setLive('error', problemText(e));
    } finally {
      live.inflight = false;
    }
    if (document.visibilityState === 'hidden') {
      setLive('paused', 'paused (tab hidden)');
      return;
    }
    const delay = live.again ? 0 : Math.max(POLL_MS, POLL_BACKOFF * (performance.now() - started));
    live.again = false;
    live.timer = setTimeout(pollNow, delay);
  }

  function setLive(kind, text) {
    const el = $('#live');
    el.dataset.kind = kind;
    el.textContent = text;
  }

  // backfill fills the throughput and latency charts from the server's
  // buckets of the last 10 minutes (empty buckets had no completions).
  async function backfill() {
    let series;
    try {
      series = await api('/ops/series?minutes=10&step=5s');
    } catch {
      return; // the live samples fill the charts anyway
    }
    const step = series.step_seconds || 5;
    const byT = new Map(list(series.buckets).map((b) => [Math.round(Date.parse(b.at) / 1000 / step) * step, b]));
    const now = Date.now() / 1000;
    const end = Math.floor(now / step) * step - step; // the last whole bucket
    for (let t = end - KEEP_S + step; t <= end; t += step) {
      const b = byT.get(t);
      if (b && b.completed && live.since === null) live.since = t - step;
      perf.t.push(t);
      perf.tp.push(b ? b.per_second : 0);
      perf.p50.push(b && b.completed ? b.p50_ms : null);
      perf.p95.push(b && b.completed ? b.p95_ms : null);
      perf.p99.push(b && b.completed ? b.p99_ms : null);
    }
  }

  function addSample(s) {
    const t = Date.parse(s.at) / 1000;
    const w = s.window || {};
    if (live.since === null || t < live.since) live.since = t;
    if (!perf.t.length || t > perf.t[perf.t.length - 1]) {
      perf.t.push(t);
      perf.tp.push(w.per_second ?? null);
      const any = w.completed > 0;
      perf.p50.push(any ? w.p50_ms : null);
      perf.p95.push(any ? w.p95_ms : null);
      perf.p99.push(any ? w.p99_ms : null);
    }
    if (!lagData.t.length || t > lagData.t[lagData.t.length - 1]) {
      const kafkaDown = list(s.unavailable).includes('kafka');
      const seen = new Set();
      let added = false;
      for (const g of list(s.consumers)) {
        if (!lagData.groups.has(g.group)) {
          lagData.groups.set(g.group, lagData.t.map(() => null));
          added = true;
        }
        lagData.groups.get(g.group).push(kafkaDown ? null : g.lag);
        seen.add(g.group);
      }
      for (const [g, arr] of lagData.groups) if (!seen.has(g)) arr.push(null);
      lagData.t.push(t);
      if (added && charts.lag) { charts.lag.destroy(); delete charts.lag; }
    }
    if (!statusData.t.length || t > statusData.t[statusData.t.length - 1]) {
      statusData.t.push(t);
      const rows = (s.outbox && s.outbox.rows) || {};
      for (const st of STATUSES) statusData.rows[st].push(rows[st] ?? 0);
    }
    trim();
    drawCharts();
  }

  function trimArrays(ts, arrays) {
    const cut = Date.now() / 1000 - KEEP_S;
    let n = 0;
    while (n < ts.length && ts[n] < cut) n++;
    if (n) { ts.splice(0, n); for (const a of arrays) a.splice(0, n); }
  }

  function trim() {
    trimArrays(perf.t, [perf.tp, perf.p50, perf.p95, perf.p99]);
    trimArrays(lagData.t, [...lagData.groups.values()]);
    trimArrays(statusData.t, Object.values(statusData.rows));
  }

  // Every chart shows the same span: the last 10 minutes, or less when
  // nothing is known from further back (the page opened, or the first
  // completion, less than 10 minutes ago), but at least the last 30 s.
  function timeRange() {
    const now = Date.now() / 1000;
    const since = Math.min(live.since ?? now, now - MIN_SPAN_S);
    return [Math.max(now - KEEP_S, since), now];
  }

  // fromZero: counts and rates start at 0, with some room above the top.
  function fromZero(u, min, max) {
    return [0, max > 0 ? max * 1.15 : 1];
  }

  function chartSize(el) {
    return { width: Math.max(280, el.clientWidth), height: 180 };
  }

  function makeChart(el, series, yFmt, extra) {
    const opts = {
      ...chartSize(el),
      series: [{}, ...series],
      scales: { x: { time: true, range: timeRange }, y: { range: fromZero } },
      fmtDate: (tpl) => uPlot.fmtDate(tpl.replace('{h}', '{HH}').replace('{aa}', '').replace('{M}/{D}/{YY}', '{YYYY}-{MM}-{DD}').replace('{M}/{D}', '{MM}-{DD}')),
      axes: [
        { stroke: '#475569', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#cbd5e1' } },
        { stroke: '#475569', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#cbd5e1' }, size: 64, values: (u, vals) => vals.map(yFmt) },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      ...(extra || {}),
    };
    return new uPlot(opts, [[]], el);
  }

  const line = (label, stroke, more) => ({ label, stroke, width: 1.5, points: { size: 4 }, spanGaps: false, ...(more || {}) });

  function ensureCharts() {
    if (typeof uPlot === 'undefined') return false;
    if (current.view !== 'summary') return false;
    if (!charts.tp) {
      charts.tp = makeChart($('#chart-throughput'), [line('completions/s', PALETTE[0], { fill: 'rgba(37,99,235,0.08)', value: (u, v) => (v == null ? '–' : v.toFixed(1)) })], (v) => v.toFixed(v < 10 ? 1 : 0));
    }
    if (!charts.lat) {
      const v = (u, x) => (x == null ? '–' : fmtMs(x));
      charts.lat = makeChart($('#chart-latency'), [line('p50', PALETTE[2], { value: v }), line('p95', PALETTE[1], { value: v }), line('p99', PALETTE[3], { value: v })], (x) => (x > 0 ? fmtMs(x) : '0'));
    }
    if (!charts.lag) {
      const groups = [...lagData.groups.keys()];
      charts.lag = makeChart($('#chart-lag'), groups.map((g, i) => line(g, PALETTE[i % PALETTE.length])), (x) => fmtNum(x));
    }
    if (!charts.status) {
      const ser = STATUSES.map((s) => line(s, STATUS_COLOR[s], s === 'COMPLETE' ? { scale: 'complete', dash: [4, 3] } : {}));
      charts.status = makeChart($('#chart-status'), ser, (x) => fmtNum(x), {
        scales: { x: { time: true, range: timeRange }, y: { range: fromZero }, complete: { range: fromZero } },
        axes: [
          { stroke: '#475569', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#cbd5e1' } },
          { stroke: '#475569', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#cbd5e1' }, size: 56, values: (u, vals) => vals.map((x) => fmtNum(x)) },
          { scale: 'complete', side: 1, stroke: STATUS_COLOR.COMPLETE, grid: { show: false }, size: 64, values: (u, vals) => vals.map((x) => fmtNum(x)) },
        ],
      });
    }
    return true;
  }

  function drawCharts() {
    if (!ensureCharts()) return;
    charts.tp.setData([perf.t, perf.tp]);
    charts.lat.setData([perf.t, perf.p50, perf.p95, perf.p99]);
    charts.lag.setData([lagData.t, ...lagData.groups.values()]);
    charts.status.setData([statusData.t, ...STATUSES.map((s) => statusData.rows[s])]);
  }

  function resizeCharts() {
    if (current.view !== 'summary') return;
    const els = { tp: '#chart-throughput', lat: '#chart-latency', lag: '#chart-lag', status: '#chart-status' };
    for (const [k, sel] of Object.entries(els)) {
      const size = chartSize($(sel));
      if (charts[k] && (charts[k].width !== size.width)) charts[k].setSize(size);
    }
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(resizeCharts, 150);
  });

  // ---- summary tiles

  const openGroups = new Set(); // consumer groups whose partitions are shown

  function renderSummary(s) {
    const un = list(s.unavailable);
    const banner = $('#unavailable');
    banner.hidden = un.length === 0;
    banner.textContent = un.length ? `Not reachable for this summary: ${un.join(', ')} — the parts from there are missing or stale.` : '';

    const rows = (s.outbox && s.outbox.rows) || {};
    fill($('#rows'), STATUSES.map((st) => {
      const n = rows[st] ?? 0;
      const alarm = n > 0 && (st === 'FAILED' ? 'bad' : (st === 'PARKED' || st === 'DISCARDED') ? 'warn' : '');
      return h('a', { class: `status-cell ${alarm || ''}`, href: `#/events?status=${st}`, 'data-status': st, title: st === 'COMPLETE' && n >= 10000 ? "the planner's estimate" : `list the ${st} rows` },
        h('span', { class: 'status-name' }, st),
        h('span', { class: 'status-count', title: fmtNum(n) }, (st === 'COMPLETE' && n >= 10000 ? '≈ ' : '') + fmtCount(n)));
    }));

    const oldest = (s.outbox && s.outbox.oldest_unfinished_seconds) || 0;
    const oldEl = $('#oldest');
    oldEl.textContent = oldest > 0 ? fmtDur(oldest) : 'none';
    $('#tile-oldest').classList.toggle('warn', oldest > 60);

    const w = s.window || {};
    $('#throughput').textContent = `${(w.per_second || 0).toFixed(1)}/s`;
    $('#throughput-sub').textContent = `${fmtNum(w.completed || 0)} completed in the last ${fmtDur(w.seconds || 0)}`;
    fill($('#latency'), [['p50', w.p50_ms], ['p95', w.p95_ms], ['p99', w.p99_ms]].map(([k, v]) =>
      h('div', { class: 'pct' }, h('span', { class: 'pct-name' }, k), h('span', { class: 'pct-value' }, fmtMs(v)))));

    const c = s.connector || {};
    fill($('#summary-connector'),
      h('div', { class: 'line' }, stateBadge(c.state), ' ', h('span', { class: 'mono' }, c.name || '')),
      h('div', { class: 'sub' }, list(c.tasks).length ? list(c.tasks).map((t) => `task ${t.id}: ${t.state}`).join(' · ') : 'no tasks'));
    $('#tile-connector').classList.toggle('bad', !!c.state && c.state !== 'RUNNING');

    fill($('#slots'), list(s.slots).length ? list(s.slots).map((sl) => h('div', { class: 'line' },
      h('span', { class: `dot ${sl.active ? 'on' : 'off'}`, title: sl.active ? 'active' : 'inactive' }),
      h('span', { class: 'mono' }, sl.name), h('span', { class: 'right' }, fmtBytes(sl.lag_bytes), h('small', {}, sl.active ? ' active' : ' inactive')))) : h('div', { class: 'sub' }, 'no slots'));

    const dlq = list(s.dlq);
    fill($('#dlq-depth'), dlq.length ? dlq.map((d) => h('a', { class: `line ${d.depth > 0 ? 'bad' : ''}`, href: `#/dlq?topic=${encodeURIComponent(d.topic)}`, 'data-topic': d.topic },
      h('span', { class: 'mono' }, d.topic), h('span', { class: 'right' }, fmtNum(d.depth)))) : h('div', { class: 'sub' }, un.includes('kafka') ? 'unknown' : 'no dead-letter topics'));
    fill($('#dlq-topics'), dlq.map((d) => h('option', { value: d.topic })));

    const groups = list(s.consumers);
    fill($('#consumers'), groups.length ? h('table', { class: 'grid compact' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Group'), h('th', { class: 'num' }, 'Lag'), h('th', {}, 'Partitions'))),
      h('tbody', {}, groups.map((g) => {
        const parts = list(g.partitions);
        const det = h('details', { 'data-group': g.group, open: openGroups.has(g.group) },
          h('summary', {}, `${parts.length} partition${parts.length === 1 ? '' : 's'}`),
          h('table', { class: 'grid compact partitions' },
            h('thead', {}, h('tr', {}, ['Topic', 'Partition', 'Committed', 'End', 'Lag'].map((x) => h('th', {}, x)))),
            h('tbody', {}, parts.map((p) => h('tr', {},
              h('td', { class: 'mono' }, p.topic), h('td', { class: 'num' }, p.partition),
              h('td', { class: 'num' }, p.committed < 0 ? '–' : fmtNum(p.committed)), h('td', { class: 'num' }, fmtNum(p.end)),
              h('td', { class: `num ${p.lag > 0 ? 'strong' : ''}` }, fmtNum(p.lag)))))));
        det.addEventListener('toggle', () => { if (det.open) openGroups.add(g.group); else openGroups.delete(g.group); });
        return h('tr', { 'data-group': g.group }, h('td', { class: 'mono' }, g.group), h('td', { class: `num ${g.lag > 0 ? 'strong' : ''}` }, fmtNum(g.lag)), h('td', {}, det));
      }))) : h('div', { class: 'sub' }, un.includes('kafka') ? 'unknown' : 'no consumer groups'));
  }

  // ---- routing

  const current = { view: '', arg: '', params: new URLSearchParams(), gen: 0, timer: null };

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const [view, ...rest] = path.split('/');
    return { view: view || 'summary', arg: rest.length ? decodeURIComponent(rest.join('/')) : '', params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
  }

  const VIEWS = { summary: showSummary, events: showEvents, event: showEvent, dlq: showDLQ, connector: showConnector, audit: showAudit };

  function route() {
    let r = parseHash();
    if (!VIEWS[r.view]) r = { view: 'summary', arg: '', params: new URLSearchParams() };
    Object.assign(current, r);
    current.gen++;
    clearTimeout(current.timer);
    for (const sec of document.querySelectorAll('.view')) sec.hidden = sec.id !== `view-${r.view}`;
    const navView = r.view === 'event' ? 'events' : r.view;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === navView);
    refreshView();
  }

  function refreshView() {
    clearTimeout(current.timer);
    VIEWS[current.view](current.gen);
  }

  // again refreshes the current view in 2 s while it is still the one
  // shown and the tab is visible (an event on its way to COMPLETE).
  function again(gen) {
    if (gen !== current.gen) return;
    clearTimeout(current.timer);
    current.timer = setTimeout(() => {
      if (gen !== current.gen) return;
      if (document.visibilityState === 'hidden') { current.pending = true; return; }
      refreshView();
    }, POLL_MS);
  }

  function showSummary() {
    document.title = 'Summary · outboxpay console';
    // The charts need their laid-out width: size and draw them once the
    // view is shown (a resize while hidden left them narrow).
    requestAnimationFrame(() => {
      resizeCharts();
      drawCharts();
    });
  }

  // ---- search

  const SEARCH_FIELDS = { order: '#search-order', event: '#search-event', aggregatetype: '#search-aggregatetype', aggregateid: '#search-aggregateid', type: '#search-type', status: '#search-status', older_than: '#search-older', newer_than: '#search-newer' };

  function setupSearch() {
    $('#search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, sel] of Object.entries(SEARCH_FIELDS)) {
        const v = $(sel).value.trim();
        if (v) q.set(k, v);
      }
      const hash = `#/events${q.toString() ? '?' + q : ''}`;
      if (location.hash === hash) refreshView();
      else location.hash = hash;
    });
    $('#search-form').addEventListener('reset', () => setTimeout(() => { location.hash = '#/events'; }, 0));
  }

  async function showEvents(gen) {
    document.title = 'Events · outboxpay console';
    $('#event-back').setAttribute('href', location.hash || '#/events'); // the event view's way back
    for (const [k, sel] of Object.entries(SEARCH_FIELDS)) $(sel).value = current.params.get(k) || '';
    const q = new URLSearchParams();
    for (const k of Object.keys(SEARCH_FIELDS)) if (current.params.get(k)) q.set(k, current.params.get(k));
    const info = $('#results-info');
    const tbody = $('#results tbody');
    let events;
    try {
      events = list((await api(`/ops/events${q.toString() ? '?' + q : ''}`)).events);
    } catch (e) {
      if (gen !== current.gen) return;
      info.textContent = '';
      fill(tbody, empty(9, problemText(e)));
      tbody.firstChild.classList.add('problem');
      return;
    }
    if (gen !== current.gen) return;
    info.textContent = `${events.length} row${events.length === 1 ? '' : 's'}, newest first${events.length >= 50 ? ' (the first 50)' : ''}${events.some((e) => UNFINISHED.has(e.status)) ? ' · refreshing while some are unfinished' : ''}`;
    fill(tbody, events.length ? events.map((e) => h('tr', { class: 'clickable', 'data-event-id': e.id, 'data-status': e.status, onclick: () => { location.hash = `#/event/${e.id}`; } },
      h('td', { class: 'mono', title: e.id }, h('a', { href: `#/event/${e.id}` }, shortID(e.id))),
      h('td', {}, e.type),
      h('td', { class: 'mono' }, `${e.aggregatetype}/${e.aggregateid}`),
      h('td', { class: 'num' }, e.order_id || ''),
      h('td', {}, badge(e.status)),
      h('td', { class: 'num' }, e.attempts),
      timeCell(e.created_at),
      timeCell(e.completed_at || e.failed_at),
      h('td', { class: 'error-text', title: e.last_error || null }, e.last_error || ''))) : empty(9, 'No rows match.'));
    if (events.some((e) => UNFINISHED.has(e.status))) again(gen);
  }

  // ---- one event's life

  async function showEvent(gen) {
    const id = current.arg;
    document.title = `Event ${shortID(id)} · outboxpay console`;
    let life;
    try {
      life = await api(`/ops/events/${encodeURIComponent(id)}`);
    } catch (e) {
      if (gen !== current.gen) return;
      renderEventProblem(id, e);
      return;
    }
    if (gen !== current.gen) return;
    renderEvent(life);
    if (UNFINISHED.has(life.event.status)) again(gen);
  }

  function renderEventProblem(id, e) {
    $('#event-type').textContent = e instanceof Problem && e.status === 404 ? 'No such event' : 'Cannot show the event';
    fill($('#event-status'));
    $('#event-status').removeAttribute('data-status');
    $('#event-status').className = '';
    $('#event-id').textContent = id;
    $('#event-body').hidden = true;
    const err = $('#event-error');
    err.hidden = false;
    err.textContent = problemText(e);
    for (const b of ['#btn-retry', '#btn-park', '#btn-discard']) $(b).disabled = true;
  }

  function renderEvent(life) {
    const e = life.event;
    $('#event-type').textContent = e.type;
    const st = $('#event-status');
    st.className = `badge s-${e.status}`;
    st.dataset.status = e.status;
    st.textContent = e.status;
    $('#event-id').textContent = e.id;
    $('#event-body').hidden = false;

    const facts = [
      ['Aggregate', `${e.aggregatetype}/${e.aggregateid}`],
      ['Order', e.order_id ? h('a', { href: `#/events?order=${e.order_id}` }, String(e.order_id)) : '–'],
      ['Topic', e.topic],
      ['Attempts', String(e.attempts)],
      ['Committed', fmtTime(e.created_at)],
      ['Published', fmtTime(e.published_at) || '–'],
      [e.failed_at && !e.completed_at ? 'Failed' : 'Completed', fmtTime(e.completed_at || e.failed_at) || '–'],
      ['Handled by', list(e.handled_by).join(', ') || '–'],
    ];
    fill($('#event-facts'), facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { class: k === 'Topic' || k === 'Aggregate' ? 'mono' : null }, v))));
    const err = $('#event-error');
    err.hidden = !e.last_error;
    fill(err, e.last_error ? [h('strong', {}, 'Last error '), e.last_error] : []);

    $('#btn-retry').disabled = !['FAILED', 'PARKED'].includes(e.status);
    $('#btn-park').disabled = !['INIT', 'PUBLISHED', 'FAILED'].includes(e.status);
    $('#btn-discard').disabled = !['INIT', 'PUBLISHED', 'FAILED', 'PARKED'].includes(e.status);

    const tl = list(life.timeline);
    fill($('#timeline'), tl.length ? tl.map((m) => h('li', { class: `tl-${m.what.replace(/[^a-z-]/gi, '')}`, 'data-what': m.what },
      h('span', { class: 'tl-dot' }),
      h('div', { class: 'tl-body' },
        h('div', { class: 'tl-head' }, h('span', { class: 'tl-what' }, m.what.charAt(0).toUpperCase() + m.what.slice(1)), h('time', { datetime: m.at, title: m.at }, `${fmtTime(m.at).slice(0, 10)} ${fmtClock(m.at)}`)),
        m.detail ? h('div', { class: 'tl-detail' }, m.detail) : null))) : h('li', { class: 'muted' }, 'Nothing yet.'));

    const handlers = list(life.handlers);
    fill($('#handlers tbody'), handlers.length ? handlers.map((x) => h('tr', { 'data-group': x.group },
      h('td', { class: 'mono' }, x.group), x.processed_at ? timeCell(x.processed_at) : h('td', { class: 'muted' }, 'not yet'))) : empty(2, 'No group handles this type.'));

    fill($('#event-dlq tbody'), list(life.dlq).length ? list(life.dlq).map((r) => dlqRow(r, false)) : empty(6, 'None.'));

    fill($('#event-audit tbody'), list(life.audit).length ? list(life.audit).map((a) => h('tr', { 'data-audit-id': a.id },
      timeCell(a.at), h('td', {}, a.actor), h('td', {}, a.action), h('td', { class: 'wrap' }, a.reason), h('td', {}, a.changed ? 'yes' : 'no'))) : empty(5, 'No operator action yet.'));

    let payload = '';
    try { payload = JSON.stringify(life.payload, null, 2); } catch { payload = String(life.payload); }
    $('#event-payload').textContent = payload;
  }

  function eventAction(kind) {
    const id = current.arg;
    const what = {
      retry: ['Retry', 'The row goes back to PUBLISHED (INIT if it never was) with no attempts and is published again; the consumer groups then make it COMPLETE.', false],
      park: ['Park', 'The row is set aside (PARKED): the reconciler neither republishes nor fails it until someone retries it.', false],
      discard: ['Discard', 'The row is given up for good (DISCARDED): it cannot be retried.', true],
    }[kind];
    act({ title: `${what[0]} event ${shortID(id)}`, text: what[1], okLabel: what[0], danger: what[2], path: `/ops/events/${encodeURIComponent(id)}/${kind}`, label: what[0] });
  }

  // ---- dead letters

  function dlqRow(r, withEvent) {
    const redrive = h('button', {
      type: 'button', class: 'redrive small', disabled: !!r.redriven_at, title: r.redriven_at ? 'already re-driven' : 'produce the record again to its original topic',
      onclick: (ev) => {
        ev.stopPropagation();
        act({
          title: 'Re-drive one record', okLabel: 'Re-drive', label: 'Re-drive',
          text: `${r.topic} partition ${r.partition} offset ${r.offset} goes back to ${r.original_topic || 'its original topic'} with its key, value and headers.`,
          path: '/ops/dlq/redrive', body: { topic: r.topic, partition: r.partition, offset: r.offset },
        });
      },
    }, 'Re-drive');
    return h('tr', { 'data-topic': r.topic, 'data-partition': r.partition, 'data-offset': r.offset, class: r.redriven_at ? 'done' : null },
      h('td', { class: 'record', title: `dead-lettered to ${r.topic} at ${r.timestamp}` },
        h('div', { class: 'mono' }, r.topic), h('div', { class: 'muted small' }, `partition ${r.partition} · offset ${r.offset}`)),
      withEvent ? h('td', { class: 'mono' }, r.event_id ? h('a', { href: `#/event/${r.event_id}`, title: r.event_id }, shortID(r.event_id)) : '–') : null,
      h('td', { class: 'mono' }, r.handler || '–'),
      h('td', { class: 'error-text wrap reason' }, r.reason || '–'),
      timeCell(r.dead_lettered_at || r.timestamp),
      r.redriven_at ? timeCell(r.redriven_at) : h('td', { class: 'muted' }, 'no'),
      h('td', { class: 'nowrap' }, redrive));
  }

  function setupDLQ() {
    $('#dlq-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const topic = $('#dlq-topic').value.trim();
      const hash = topic ? `#/dlq?topic=${encodeURIComponent(topic)}` : '#/dlq';
      if (location.hash === hash) refreshView();
      else location.hash = hash;
    });
    $('#btn-redrive-all').addEventListener('click', () => {
      const topic = current.params.get('topic');
      if (!topic) return;
      act({
        title: 'Re-drive a whole topic', okLabel: 'Re-drive all', label: 'Re-drive all', danger: true,
        text: `Every record of ${topic} not re-driven before, up to its end now, goes back to its original topic.`,
        path: '/ops/dlq/redrive', body: { topic },
      });
    });
  }

  async function showDLQ(gen) {
    document.title = 'Dead letters · outboxpay console';
    const topic = current.params.get('topic') || '';
    $('#dlq-topic').value = topic;
    const all = $('#btn-redrive-all');
    all.disabled = !topic;
    all.title = topic ? `re-drive every record of ${topic} not re-driven yet` : 'Choose a topic first';
    const tbody = $('#dlq tbody');
    const info = $('#dlq-info');
    let recs;
    try {
      recs = list((await api(`/ops/dlq${topic ? '?topic=' + encodeURIComponent(topic) : ''}`)).records);
    } catch (e) {
      if (gen !== current.gen) return;
      info.textContent = '';
      fill(tbody, empty(7, problemText(e)));
      tbody.firstChild.classList.add('problem');
      return;
    }
    if (gen !== current.gen) return;
    const waiting = recs.filter((r) => !r.redriven_at).length;
    info.textContent = `${recs.length} record${recs.length === 1 ? '' : 's'}${topic ? ' of ' + topic : ''}, newest first · ${waiting} not re-driven`;
    fill(tbody, recs.length ? recs.map((r) => dlqRow(r, true)) : empty(7, 'No dead-lettered records.'));
  }

  // ---- connector

  function showConnector() {
    document.title = 'Connector · outboxpay console';
    if (live.last) renderConnector(live.last);
    else pollNow();
  }

  function renderConnector(s) {
    const c = s.connector || {};
    const state = c.state || 'UNKNOWN';
    $('#connector-name').textContent = c.name || '';
    const el = $('#connector-state');
    el.className = `badge c-${state}`;
    el.dataset.state = state;
    el.textContent = state;
    const tasks = list(c.tasks);
    fill($('#connector-tasks tbody'), tasks.length ? tasks.map((t) => h('tr', {}, h('td', { class: 'num' }, t.id), h('td', {}, stateBadge(t.state)))) : empty(2, 'No tasks.'));
    $('#btn-pause').disabled = state === 'PAUSED';
    $('#btn-resume').disabled = state === 'RUNNING';
  }

  function connectorAction(action) {
    const text = {
      pause: 'The connector and its tasks pause: no change from the outbox reaches Kafka until it resumes.',
      resume: 'The connector and its tasks resume streaming the outbox to Kafka.',
      restart: 'The connector and its tasks restart.',
    }[action];
    const label = action[0].toUpperCase() + action.slice(1);
    act({ title: `${label} the connector`, text, okLabel: label, danger: action === 'pause', path: `/ops/connector/${action}`, label: `${label} connector` });
  }

  // ---- audit

  function setupAudit() {
    $('#audit-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const target = $('#audit-target').value.trim();
      const hash = target ? `#/audit?target=${encodeURIComponent(target)}` : '#/audit';
      if (location.hash === hash) refreshView();
      else location.hash = hash;
    });
  }

  function targetLink(t, action) {
    if (isUUID(t)) return h('a', { href: `#/event/${t}`, title: t }, shortID(t));
    if (action === 'redrive') return h('a', { href: `#/dlq?topic=${encodeURIComponent(t)}` }, t);
    if (action.startsWith('connector-')) return h('a', { href: '#/connector' }, t);
    return t;
  }

  async function showAudit(gen) {
    document.title = 'Audit · outboxpay console';
    const target = current.params.get('target') || '';
    $('#audit-target').value = target;
    const tbody = $('#audit tbody');
    let entries;
    try {
      entries = list((await api(`/ops/audit${target ? '?target=' + encodeURIComponent(target) : ''}`)).entries);
    } catch (e) {
      if (gen !== current.gen) return;
      fill(tbody, empty(8, problemText(e)));
      tbody.firstChild.classList.add('problem');
      return;
    }
    if (gen !== current.gen) return;
    fill(tbody, entries.length ? entries.map((a) => h('tr', { 'data-audit-id': a.id, 'data-action': a.action, class: a.changed ? null : 'unchanged' },
      h('td', { class: 'num' }, a.id), timeCell(a.at), h('td', {}, a.actor), h('td', { class: 'nowrap' }, a.action),
      h('td', { class: 'mono' }, targetLink(a.target, a.action || '')), h('td', { class: 'wrap' }, a.reason),
      h('td', {}, a.changed ? 'yes' : 'no'), h('td', { class: 'wrap muted' }, a.detail || ''))) : empty(8, 'No operator action yet.'));
  }

  // ---- start

  function start() {
    setupConfirm();
    setupSearch();
    setupDLQ();
    setupAudit();
    $('#btn-retry').addEventListener('click', () => eventAction('retry'));
    $('#btn-park').addEventListener('click', () => eventAction('park'));
    $('#btn-discard').addEventListener('click', () => eventAction('discard'));
    for (const a of ['pause', 'resume', 'restart']) $(`#btn-${a}`).addEventListener('click', () => connectorAction(a));

    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'hidden') {
        clearTimeout(live.timer);
        live.timer = null;
        setLive('paused', 'paused (tab hidden)');
      } else {
        pollNow();
        if (current.pending) { current.pending = false; refreshView(); }
      }
    });
    window.addEventListener('hashchange', route);
    if (typeof uPlot === 'undefined') toast('error', 'The charts library (vendor/uPlot) did not load: the charts are off.');
    route();
    backfill().finally(pollNow);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
