// Renders the job status (the coordinator's /api/status shape) into the page: header,
// workers, ring, events, checkpoints, spec. Text goes in through textContent only.

const $ = (id) => document.getElementById(id);

/** An element with attributes (class, data-*, title, ...) and children (strings or nodes). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
export const int = (n) => Math.round(n).toLocaleString('en-US');

/**
 * A job that stopped itself (GENERATION_LIVELOCK) shows its code in red beside its state,
 * the message in the title (the reason beside it says it too). Made here on first use, so
 * the page's markup has nothing to keep hidden; an older coordinator's status has no
 * `error` at all.
 */
function renderError(badge, error) {
  let code = $('error-code');
  if (!code) {
    code = el('span', { id: 'error-code', class: 'badge', 'data-testid': 'error-code', style: 'background:#dc2626' });
    badge.after(code);
  }
  code.hidden = !error;
  code.textContent = error ? error.code : '';
  code.title = error ? error.message : '';
}

export function renderHeader(s) {
  $('job-name').textContent = s.job;
  document.title = `${s.job}: ${s.state} · ringtrain`;
  const badge = $('state');
  badge.textContent = s.state;
  badge.dataset.state = s.state;
  renderError(badge, s.error);
  $('reason').textContent = s.reason;
  const total = s.epochs * s.stepsPerEpoch;
  $('step').textContent = `${int(s.step)} / ${int(total)}`;
  $('epoch').textContent = `${s.epoch} / ${s.epochs}`;
  $('elapsed').textContent = duration(s.elapsedSeconds);
  $('eta').textContent = s.state === 'completed' ? 'done' : duration(s.etaSeconds);
  $('rate').textContent = s.samplesPerSecond === null ? '–' : int(s.samplesPerSecond);
  $('generation').textContent = String(s.generation);
  $('progress-bar').style.width = `${total > 0 ? Math.min(100, (100 * s.step) / total) : 0}%`;
  $('model').hidden = !s.model;
}

function timingCell(t, scale) {
  if (!t || t.steps === 0) return el('td', { class: 'timing' }, el('span', { class: 'muted' }, 'no steps yet'));
  const total = t.computeMs + t.commMs + t.waitMs;
  const bar = el('div', { class: 'bar', style: `width:${Math.max(2, (100 * total) / scale)}%` });
  for (const [part, ms] of [['compute', t.computeMs], ['comm', t.commMs], ['wait', t.waitMs]]) {
    bar.append(el('i', { class: part, style: `width:${total > 0 ? (100 * ms) / total : 0}%`, title: `${part} ${ms.toFixed(1)} ms` }));
  }
  const numbers = el('span', { class: 'numbers' }, `${t.computeMs.toFixed(1)} · ${t.commMs.toFixed(1)} · ${t.waitMs.toFixed(1)}`);
  return el('td', { class: 'timing', title: `compute ${t.computeMs.toFixed(1)} ms, communication ${t.commMs.toFixed(1)} ms, waiting ${t.waitMs.toFixed(1)} ms per step, over ${t.steps} steps` }, el('div', { class: 'bar-track' }, bar), numbers);
}

const mib = (n) => Math.round(n / 1024 ** 2).toLocaleString('en-US');

/**
 * The backend, and under it the worker's memory by its last heartbeat: resident now and
 * the job's memory plan, in MiB (the limit in the title); amber once resident passes 90%
 * of the limit. Nothing under it before the worker has a job, or from an older worker.
 */
function backendCell(w) {
  const m = w.memory;
  if (!m) return el('td', {}, w.backend);
  const limit = m.limit === null ? 'no limit' : `limit ${bytes(m.limit)}`;
  const high = m.limit !== null && m.rss > 0.9 * m.limit;
  const title = `resident ${bytes(m.rss)}; memory plan ${bytes(m.planned)}; ${limit}`;
  return el('td', {}, w.backend, el('div', { class: `mem${high ? ' warn' : ' muted'}`, 'data-memory': '', title }, `${mib(m.rss)} / ${mib(m.planned)} MiB`));
}

/** A worker is a straggler when its compute time is 50% over the median of the ring's. */
function stragglers(workers) {
  const computes = workers.filter((w) => w.rank !== null && w.timing && w.timing.steps > 0).map((w) => w.timing.computeMs);
  if (computes.length < 2) return new Set();
  const sorted = [...computes].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return new Set(workers.filter((w) => w.rank !== null && w.timing && w.timing.computeMs > 1.5 * median).map((w) => w.id));
}

export function renderWorkers(s) {
  const scale = Math.max(1e-9, ...s.workers.map((w) => (w.timing && w.timing.steps > 0 ? w.timing.computeMs + w.timing.commMs + w.timing.waitMs : 0)));
  const slow = stragglers(s.workers);
  const rows = s.workers.map((w) => {
    const silent = w.lastHeartbeatMs > 3000;
    const status = w.rank === null ? 'idle' : 'in ring';
    return el(
      'tr',
      { 'data-worker': w.id, class: [slow.has(w.id) ? 'straggler' : '', silent ? 'silent' : ''].join(' ').trim() || undefined },
      el('td', { class: 'num' }, w.rank === null ? '–' : w.rank),
      el('td', { class: 'id' }, w.id, slow.has(w.id) ? el('span', { class: 'tag slow' }, 'slow') : ''),
      el('td', { class: 'mono' }, w.address),
      backendCell(w),
      el('td', {}, el('span', { class: `status ${w.rank === null ? 'idle' : 'ring'}` }, status)),
      el('td', { class: `num${silent ? ' warn' : ''}` }, `${(w.lastHeartbeatMs / 1000).toFixed(1)}s`),
      timingCell(w.timing, scale),
    );
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'no workers connected')));
  $('workers').replaceChildren(...rows);
}

export function renderRing(s) {
  $('ring-generation').textContent = `generation ${s.generation}, ${s.ring.length} member${s.ring.length === 1 ? '' : 's'}`;
  const members = s.ring.map((id, rank) => el('li', { 'data-rank': rank }, el('span', { class: 'rank' }, rank), id));
  if (members.length === 0) members.push(el('li', { class: 'muted empty' }, 'no ring formed'));
  $('ring').replaceChildren(...members);
}

/** Events newest first, a run of consecutive checkpoints as one line (they are all in the checkpoints table). */
function eventLines(events) {
  const lines = [];
  for (let i = events.length - 1; i >= 0 && lines.length < 100; i--) {
    const e = events[i];
    let j = i;
    while (e.kind === 'checkpoint' && j > 0 && events[j - 1].kind === 'checkpoint') j--;
    if (j === i) lines.push(e);
    else {
      const first = /step (\d+)/.exec(events[j].message)?.[1] ?? '?';
      const last = /step (\d+)/.exec(e.message)?.[1] ?? '?';
      lines.push({ ...e, message: `${i - j + 1} checkpoints, steps ${first} ... ${last}` });
    }
    i = j;
  }
  return lines;
}

export function renderEvents(s) {
  const items = eventLines(s.events).map((e) =>
    el('li', { 'data-kind': e.kind }, el('time', { datetime: e.time }, clock(e.time)), el('span', { class: `kind ${e.kind}` }, e.kind), el('span', { class: 'gen' }, `g${e.generation}`), el('span', { class: 'message', title: e.message }, e.message)),
  );
  $('events').replaceChildren(...items);
}

export function renderCheckpoints(s) {
  const rows = [...s.checkpoints]
    .reverse()
    .map((c) =>
      el(
        'tr',
        {},
        el('td', { class: 'num' }, int(c.step)),
        el('td', { class: 'num' }, c.epoch),
        el('td', {}, c.reason),
        el('td', {}, clock(c.time)),
        el('td', { class: 'num' }, bytes(c.bytes)),
        el('td', { class: c.verified ? 'ok' : 'warn' }, c.verified ? '✓ SHA-256' : 'no'),
        el('td', { class: 'mono path', title: c.dir }, c.dir.split('/').slice(-2).join('/')),
      ),
    );
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'none yet')));
  $('checkpoints').replaceChildren(...rows);
}

export function renderSpec(s) {
  $('spec').textContent = JSON.stringify(s.spec, null, 2);
}
