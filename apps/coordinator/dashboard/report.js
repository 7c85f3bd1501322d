// A run's report.html: draws the data ringtrain embedded in the page (report-data.ts's
// ReportData) with the dashboard's own charts and helpers. Inlined into the file with
// charts.js and view.js (report.ts), so it runs from disk; text goes in through
// textContent only.

import { createCharts } from './charts.js';
import { duration, el, int } from './view.js';

const $ = (id) => document.getElementById(id);
const fixed = (v, digits = 4) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
const percent = (v) => (typeof v === 'number' && Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '–');

/** A stat: a small label over a value (and an optional note after it). */
function stat(label, value, note = '', testid = undefined) {
  return el('div', { 'data-testid': testid }, el('span', { class: 'label' }, label), el('span', { class: 'value' }, value, note ? el('small', {}, ` ${note}`) : ''));
}

function earlyStopping(r) {
  const t = r.timings;
  if (!t.earlyStopping) return 'off';
  const patience = `patience ${t.earlyStopping.patience}`;
  return t.stoppedEarly ? `stopped at epoch ${t.epochs} (${patience})` : `not triggered (${patience})`;
}

function renderHeader(r) {
  document.title = `${r.job}: ${r.outcome} · ringtrain report`;
  $('job-name').textContent = r.job;
  const badge = $('outcome');
  badge.textContent = r.outcome;
  badge.dataset.state = r.outcome;
  const task = r.task.kind === 'classification' ? `${r.task.classes.length} classes` : `regression on ${r.task.target}`;
  $('about').textContent = `${r.source} · ${task} · ${r.loss} · ${int(r.parameters)} parameters · ${r.backend}`;
  $('written').textContent = `written ${new Date(r.writtenAt).toLocaleString()}`;
  if (r.outcome === 'interrupted') {
    const note = $('interrupted');
    note.hidden = false;
    note.textContent =
      `Interrupted after ${int(r.timings.steps)} of ${int(r.timings.plannedSteps)} steps (${r.timings.epochs} epochs recorded): ` +
      'the curves so far, no final evaluation. --resume continues the run and rewrites this report at its end.';
  }
}

function renderStats(r) {
  const t = r.timings;
  const parts = [
    stat('time', duration(t.seconds), '', 'time'),
    stat('samples/s', Number.isFinite(t.samplesPerSecond) ? int(t.samplesPerSecond) : '–'),
    stat('steps', `${int(t.steps)} / ${int(t.plannedSteps)}`, '', 'steps'),
    stat('epochs', `${t.epochs} / ${t.plannedEpochs}`, `${int(t.stepsPerEpoch)} steps each`, 'epochs'),
    stat('best epoch', r.outcome === 'completed' ? String(t.bestEpoch) : '–', '', 'best-epoch'),
    stat('early stopping', earlyStopping(r)),
  ];
  if (r.generations.length > 0) {
    const most = Math.max(...r.generations.map((g) => g.world));
    parts.push(stat('generations', String(r.generations.length), `up to ${most} worker${most === 1 ? '' : 's'}`, 'generations'));
  }
  $('stats').replaceChildren(...parts);
}

function renderCharts(r) {
  const t = r.timings;
  const classification = r.task.kind === 'classification';
  $('accuracy-card').hidden = !classification;
  // The page draws what it was given: ringtrain thinned the steps already.
  const charts = createCharts($('loss-chart'), $('accuracy-chart'), { maxDrawn: Math.max(1, r.steps.x.length) });
  const best = r.outcome === 'completed' && t.earlyStopping ? t.bestEpoch * t.stepsPerEpoch : null;
  charts.update({ stepX: r.steps.x, stepY: r.steps.y, epochs: r.epochs, generations: r.generations, stepsPerEpoch: t.stepsPerEpoch, best });
  if (r.steps.logged > r.steps.x.length) {
    $('loss-note').textContent += ` (${int(r.steps.x.length)} of ${int(r.steps.logged)} steps drawn: every k-th)`;
  }
}

function renderFinal(r) {
  const box = $('final');
  if (!r.final) {
    box.replaceChildren(el('p', { class: 'muted' }, 'none: the run was interrupted before its final evaluation'));
    return;
  }
  const classification = r.task.kind === 'classification';
  const head = el('tr', {}, el('th', {}, 'split'), el('th', {}, 'rows'), el('th', {}, `loss (${r.loss})`), classification ? el('th', {}, 'accuracy') : '');
  const rows = [
    ['train', r.final.train, r.rows.train],
    ['validation', r.final.validation, r.rows.validation],
    ['test', r.final.test, r.rows.test],
  ]
    .filter(([, m]) => m)
    .map(([name, m, n]) => el('tr', { 'data-split': name }, el('td', {}, name), el('td', {}, int(n)), el('td', {}, fixed(m.loss)), classification ? el('td', {}, fixed(m.accuracy)) : ''));
  box.replaceChildren(el('table', { class: 'metrics' }, el('thead', {}, head), el('tbody', {}, ...rows)));
}

function renderConfusion(r) {
  const box = $('confusion');
  const note = $('confusion-note');
  if (r.task.kind !== 'classification') {
    const test = r.final && r.final.test;
    $('confusion-title').textContent = 'Test split';
    note.textContent = '';
    box.replaceChildren(
      el('p', { class: 'muted' }, `A regression (target ${r.task.target}) has no classes to confuse.`),
      test ? el('p', {}, `Test loss (${r.loss}): ${fixed(test.loss)} over ${int(r.rows.test)} rows.`) : el('p', { class: 'muted' }, 'No test loss: the run has no test split, or was interrupted.'),
    );
    return;
  }
  const c = r.confusion;
  if (!c) {
    note.textContent = '';
    box.replaceChildren(el('p', { class: 'muted' }, r.outcome === 'interrupted' ? 'none: the run was interrupted before its final model' : 'none: no test or validation rows to count'));
    return;
  }
  note.textContent = `${c.split} split, ${c.rows < c.splitRows ? `${int(c.rows)} evenly spaced of its ${int(c.splitRows)} rows` : `${int(c.rows)} rows`}; rows: true class, columns: predicted`;
  const k = c.classes.length;
  const rowTotals = c.matrix.map((row) => row.reduce((a, b) => a + b, 0));
  const colTotals = c.classes.map((_, j) => c.matrix.reduce((a, row) => a + row[j], 0));
  const head = el('tr', {}, el('th', { class: 'corner', title: 'rows: the true class; columns: the predicted one' }, 'true \\ pred.'), ...c.classes.map((name) => el('th', { title: name }, name)), el('th', {}, 'rows'), el('th', {}, 'recall'));
  const body = c.matrix.map((row, i) =>
    el(
      'tr',
      { 'data-class': c.classes[i] },
      el('th', {}, c.classes[i]),
      ...row.map((n, j) => {
        const share = rowTotals[i] > 0 ? n / rowTotals[i] : 0;
        const style = `background: rgba(${i === j ? '21, 128, 61' : '220, 38, 38'}, ${n > 0 ? (0.08 + 0.6 * share).toFixed(3) : 0})`;
        return el('td', { 'data-count': n, class: i === j ? 'hit' : undefined, style, title: `true ${c.classes[i]}, predicted ${c.classes[j]}: ${n} (${percent(share)} of ${c.classes[i]})` }, int(n));
      }),
      el('td', { class: 'total' }, int(rowTotals[i])),
      el('td', { class: 'total' }, percent(rowTotals[i] > 0 ? row[i] / rowTotals[i] : NaN)),
    ),
  );
  const correct = c.matrix.reduce((a, row, i) => a + row[i], 0);
  const foot = el('tr', {}, el('th', { class: 'corner' }, 'predicted'), ...colTotals.map((n) => el('td', {}, int(n))), el('td', {}, int(c.rows)), el('td', { title: 'accuracy' }, percent(c.rows > 0 ? correct / c.rows : NaN)));
  box.replaceChildren(el('table', { class: k > 6 ? 'confusion many' : 'confusion', 'data-classes': k }, el('thead', {}, head), el('tbody', {}, ...body), el('tfoot', {}, foot)));
}

function renderEpochs(r) {
  const classification = r.task.kind === 'classification';
  const head = el('tr', {}, ...['epoch', 'train loss', classification ? 'train acc.' : null, 'val. loss', classification ? 'val. acc.' : null, 'learning rate', 'seconds'].filter((h) => h).map((h) => el('th', {}, h)));
  const rows = r.epochs.map((e) =>
    el(
      'tr',
      { class: r.outcome === 'completed' && r.timings.earlyStopping && e.epoch === r.timings.bestEpoch ? 'best' : undefined },
      el('td', {}, e.epoch),
      el('td', {}, fixed(e.train.loss)),
      classification ? el('td', {}, fixed(e.train.accuracy)) : '',
      el('td', {}, fixed(e.validation && e.validation.loss)),
      classification ? el('td', {}, fixed(e.validation && e.validation.accuracy)) : '',
      el('td', {}, e.learningRate.toPrecision(3)),
      el('td', {}, fixed(e.seconds, 2)),
    ),
  );
  $('epochs').replaceChildren(el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)));
}

/** Fills the page from `r`, a ReportData. */
export function renderReport(r) {
  renderHeader(r);
  renderStats(r);
  renderCharts(r);
  renderFinal(r);
  renderConfusion(r);
  renderEpochs(r);
  $('spec').textContent = r.spec;
}
