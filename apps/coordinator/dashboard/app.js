// The coordinator's dashboard: follows WS /api/stream (a snapshot, then an update
// a second), reconnects with backoff when the coordinator goes away, and sends
// pause/resume/stop with the job token. Without the token it is read-only.

import { createCharts } from './charts.js';
import { renderCheckpoints, renderEvents, renderHeader, renderRing, renderSpec, renderWorkers } from './view.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'ringtrain.token';
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;

/** What the page knows: the latest status and the metric history, step losses by step done. */
const job = { status: null, stepX: [], stepY: [], epochs: [], generations: [] };
const charts = createCharts($('loss-chart'), $('accuracy-chart'));

/** Adds the loss of global step `step` (0-based) at x = steps done; a step seen again (after a failure) is replaced. */
function addStep(step, loss) {
  const x = step + 1;
  const xs = job.stepX;
  if (xs.length === 0 || x > xs[xs.length - 1]) {
    xs.push(x);
    job.stepY.push(loss);
    return;
  }
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (xs[lo] === x) job.stepY[lo] = loss;
  else {
    xs.splice(lo, 0, x);
    job.stepY.splice(lo, 0, loss);
  }
}

function receive(msg) {
  if (msg.type === 'snapshot') {
    job.stepX = [];
    job.stepY = [];
  }
  for (const [step, loss] of msg.steps) addStep(step, loss);
  job.status = msg.status;
  job.epochs = msg.epochs;
  job.generations = msg.generations;
  render();
}

/**
 * The page redraws at most every RENDER_MS (the stream brings about one message a
 * second), the charts (the costly part: thousands of points) at most every CHART_MS,
 * each once more after the last message; a part of the page whose data did not change
 * is left alone, and a tab in the background draws nothing (no animation frames) until
 * it is shown again. On a machine that also trains, every millisecond the page takes
 * comes out of training: bench/dashboard measures it.
 */
const RENDER_MS = 1000;
const CHART_MS = 2000;
const shown = new Map();

/** Renders `part` of the status when its data changed since it was last rendered. */
function changed(part, data) {
  const key = JSON.stringify(data);
  if (shown.get(part) === key) return false;
  shown.set(part, key);
  return true;
}

/** `draw` on an animation frame, at most once per `ms`, and once after the last call. */
function throttled(ms, draw) {
  let at = 0;
  let timer = null;
  const run = () => {
    timer = null;
    at = Date.now();
    requestAnimationFrame(draw);
  };
  return () => {
    timer ??= setTimeout(run, Math.max(0, at + ms - Date.now()));
  };
}

const drawCharts = throttled(CHART_MS, () => {
  const s = job.status;
  charts.update({ stepX: job.stepX, stepY: job.stepY, epochs: job.epochs, generations: job.generations, stepsPerEpoch: s.stepsPerEpoch });
});

const render = throttled(RENDER_MS, () => {
  const s = job.status;
  if (!s) return;
  renderHeader(s);
  renderWorkers(s);
  if (changed('ring', [s.generation, s.ring])) renderRing(s);
  if (changed('events', s.events)) renderEvents(s);
  if (changed('checkpoints', s.checkpoints)) renderCheckpoints(s);
  if (changed('spec', s.spec)) renderSpec(s);
  drawCharts();
});

// ---- the stream, reconnecting with backoff -------------------------------------------

let retryMs = RETRY_FIRST_MS;

function showConnection(state, text) {
  const c = $('connection');
  c.dataset.state = state;
  c.textContent = text;
}

function connect() {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/stream`;
  const ws = new WebSocket(url);
  ws.onmessage = (e) => {
    if (retryMs !== RETRY_FIRST_MS || $('connection').dataset.state !== 'live') showConnection('live', 'live');
    retryMs = RETRY_FIRST_MS;
    receive(JSON.parse(e.data));
  };
  ws.onclose = () => {
    const wait = retryMs;
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    const finished = job.status && ['completed', 'stopped'].includes(job.status.state);
    showConnection('reconnecting', `${finished ? 'coordinator gone' : 'disconnected'}: reconnecting in ${(wait / 1000).toFixed(1)}s`);
    setTimeout(connect, wait);
  };
  ws.onerror = () => ws.close();
}

// ---- controls ------------------------------------------------------------------------

const tokenInput = $('token');
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) ?? '';

function showResult(ok, text) {
  const r = $('control-result');
  r.hidden = false;
  r.className = `control-result ${ok ? 'ok' : 'error'}`;
  r.textContent = text;
}

async function control(action) {
  const token = tokenInput.value.trim();
  if (token === '') {
    showResult(false, `${action} needs the job's control token: paste it from OUT/token into the token field.`);
    tokenInput.focus();
    return;
  }
  if (action === 'stop' && !confirm('Stop the job? It saves a checkpoint and ends the workers.')) return;
  try {
    const res = await fetch(`/api/${action}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      sessionStorage.setItem(TOKEN_KEY, token);
      showResult(true, `${action}: the job is ${body.state}`);
    } else {
      if (res.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      showResult(false, `${action} refused: ${res.status} ${body.code ?? ''} ${body.message ?? ''}`.trim());
    }
  } catch (err) {
    showResult(false, `${action} failed: ${err instanceof Error ? err.message : err}`);
  }
}

for (const b of document.querySelectorAll('button[data-action]')) {
  b.addEventListener('click', () => void control(b.dataset.action));
}

connect();
