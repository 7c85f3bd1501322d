// The loss and accuracy charts (uPlot, loaded as the global `uPlot` by index.html).
// Both share the x axis, the global step (steps done), and its range, and mark each
// generation's first step with a dashed line. Step losses are drawn thinned to at most
// MAX_DRAWN points (every k-th, the last ones all) so a long run stays cheap to redraw.

const MAX_DRAWN = 1500;
const COLORS = { step: '#93b4e8', train: '#1d4ed8', validation: '#c2410c', generation: '#7c3aed' };

/** The step losses to draw: all of them, or every k-th plus the newest 300. */
function thin(xs, ys) {
  if (xs.length <= MAX_DRAWN) return [xs, ys];
  const recent = 300;
  const older = xs.length - recent;
  const k = Math.ceil(older / (MAX_DRAWN - recent));
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

function generationMarkers(getGenerations) {
  return (u) => {
    const gens = getGenerations();
    if (gens.length === 0) return;
    const { ctx } = u;
    const dpr = window.devicePixelRatio || 1;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.strokeStyle = COLORS.generation;
    ctx.fillStyle = COLORS.generation;
    ctx.lineWidth = dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.font = `${10 * dpr}px system-ui, sans-serif`;
    for (const g of gens) {
      const x = Math.round(u.valToPos(g.step, 'x', true));
      if (x < left || x > left + width) continue;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.fillText(`g${g.generation}`, x + 3 * dpr, top + 11 * dpr);
    }
    ctx.restore();
  };
}

function line(label, stroke, extra = {}) {
  return { label, stroke, width: 2, spanGaps: true, points: { show: true, size: 5, fill: stroke }, ...extra };
}

/**
 * Creates both charts in their elements. `update(view)` redraws them from
 * { stepX, stepY, epochs, generations, stepsPerEpoch, totalSteps }.
 */
export function createCharts(lossEl, accuracyEl) {
  let generations = [];
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
    hooks: { draw: [generationMarkers(() => generations)] },
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
      generations = v.generations;
      const lastStep = v.stepX.length > 0 ? v.stepX[v.stepX.length - 1] : 0;
      const lastEpoch = v.epochs.length > 0 ? v.epochs[v.epochs.length - 1].epoch * v.stepsPerEpoch : 0;
      xMax = Math.max(1, lastStep, lastEpoch);
      const [sx, sy] = thin(v.stepX, v.stepY);
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
