// The loss and accuracy charts (uPlot, loaded as the global `uPlot` by index.html, and
// inlined in report.html). Both share the x axis, the global step (steps done), and its
// range, and mark each generation's first step with a dashed line (and, in a report,
// the best epoch's end). Step losses are drawn thinned to at most MAX_DRAWN points
// (every k-th, the last ones all) so a long run stays cheap to redraw.

const MAX_DRAWN = 1500;
const COLORS = { step: '#93b4e8', train: '#1d4ed8', validation: '#c2410c', generation: '#7c3aed', best: '#15803d' };

/** The step losses to draw: all of them, or every k-th plus the newest 300. */
function thin(xs, ys, max) {
  if (xs.length <= max) return [xs, ys];
  const recent = 300;
  const older = xs.length - recent;
  const k = Math.ceil(older / (max - recent));
  const x = [];
  const y = [];
  for (let i = 0; i < older; i += k) x.push(xs[i]), y.push(ys[i]);
  for (let i = older; i < xs.length; i++) x.push(xs[i]), y.push(ys[i]);
  return [x, y];
}

/** Merges sorted step xs with the epoch-end xs into one x array and aligned series (null where absent). */
function alignLoss(stepX, stepY, epochs, perEpoch) {
  const ex = epochs.map((e) => e.epoch * perEpoch);
  const x = [];
  const step = [];
  const train = [];
  const validation = [];
  let i = 0;
  let j = 0;
  while (i < stepX.length || j < ex.length) {
    const a = i < stepX.length ? stepX[i] : Infinity;
    const b = j < ex.length ? ex[j] : Infinity;
    const at = Math.min(a, b);
    x.push(at);
    step.push(a === at ? stepY[i++] : null);
    if (b === at) {
      const e = epochs[j++];
      train.push(e.train.loss);
      validation.push(e.validation ? e.validation.loss : null);
    } else {
      train.push(null);
      validation.push(null);
    }
  }
  return [x, step, train, validation];
}

/** Dashed vertical lines with a label: { step, label, color } each. */
function markers(getMarks) {
  return (u) => {
    const marks = getMarks();
    if (marks.length === 0) return;
    const { ctx } = u;
    const dpr = window.devicePixelRatio || 1;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.lineWidth = dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.font = `${10 * dpr}px system-ui, sans-serif`;
    for (const m of marks) {
      const x = Math.round(u.valToPos(m.step, 'x', true));
      if (x < left || x > left + width) continue;
      ctx.strokeStyle = m.color;
      ctx.fillStyle = m.color;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.fillText(m.label, x + 3 * dpr, top + 11 * dpr);
    }
    ctx.restore();
  };
}

function line(label, stroke, extra = {}) {
  return { label, stroke, width: 2, spanGaps: true, points: { show: true, size: 5, fill: stroke }, ...extra };
}

/**
 * Creates both charts in their elements, drawing at most `maxDrawn` step losses.
 * `update(view)` redraws them from { stepX, stepY, epochs, generations, stepsPerEpoch },
 * and `best` (the step where the best epoch ended) when there is one to mark.
 */
export function createCharts(lossEl, accuracyEl, { maxDrawn = MAX_DRAWN } = {}) {
  let marks = [];
  let xMax = 1;
  const shared = (title) => ({
    width: lossEl.clientWidth || 600,
    height: 200,
    legend: { live: false },
    cursor: { drag: { x: false, y: false }, sync: { key: 'ringtrain' } },
    scales: { x: { time: false, range: () => [0, xMax] } },
    axes: [
      { label: 'step', labelSize: 16, size: 34, stroke: '#475569', grid: { stroke: '#e2e8f0' } },
      { label: title, labelSize: 16, size: 52, stroke: '#475569', grid: { stroke: '#e2e8f0' } },
    ],
    hooks: { draw: [markers(() => marks)] },
  });
  const loss = new uPlot(
    {
      ...shared('loss'),
      series: [
        { label: 'step' },
        { label: 'train (step)', stroke: COLORS.step, width: 1, points: { show: false } },
        line('train (epoch)', COLORS.train),
        line('validation', COLORS.validation),
      ],
    },
    [[], [], [], []],
    lossEl,
  );
  const accuracy = new uPlot(
    {
      ...shared('accuracy'),
      height: 170,
      series: [{ label: 'step' }, line('train', COLORS.train), line('validation', COLORS.validation)],
    },
    [[], [], []],
    accuracyEl,
  );
  const resize = () => {
    loss.setSize({ width: lossEl.clientWidth, height: 200 });
    accuracy.setSize({ width: accuracyEl.clientWidth, height: 170 });
  };
  new ResizeObserver(resize).observe(lossEl);

  return {
    update(v) {
      marks = v.generations.map((g) => ({ step: g.step, label: `g${g.generation}`, color: COLORS.generation }));
      if (v.best) marks.push({ step: v.best, label: 'best', color: COLORS.best });
      const lastStep = v.stepX.length > 0 ? v.stepX[v.stepX.length - 1] : 0;
      const lastEpoch = v.epochs.length > 0 ? v.epochs[v.epochs.length - 1].epoch * v.stepsPerEpoch : 0;
      xMax = Math.max(1, lastStep, lastEpoch);
      const [sx, sy] = thin(v.stepX, v.stepY, maxDrawn);
      loss.setData(alignLoss(sx, sy, v.epochs, v.stepsPerEpoch));
      const withAccuracy = v.epochs.filter((e) => e.train.accuracy !== null);
      accuracy.setData([
        withAccuracy.map((e) => e.epoch * v.stepsPerEpoch),
        withAccuracy.map((e) => e.train.accuracy),
        withAccuracy.map((e) => (e.validation ? e.validation.accuracy : null)),
      ]);
      lossEl.dataset.points = String(v.stepX.length);
      accuracyEl.dataset.points = String(withAccuracy.length);
    },
  };
}
