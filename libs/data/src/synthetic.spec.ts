import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSyntheticSpec, SYNTHETIC_DEFAULTS, syntheticTable } from './synthetic.js';
import { dataError } from './testing.js';

describe('parseSyntheticSpec', () => {
  it('fills defaults and reads keys', () => {
    assert.deepEqual(parseSyntheticSpec(''), SYNTHETIC_DEFAULTS);
    assert.deepEqual(parseSyntheticSpec('rows=10000, features=784,classes=10,seed=1'), { rows: 10000, features: 784, classes: 10, seed: 1 });
    assert.equal(parseSyntheticSpec('task=regression,classes=5').classes, 0);
    assert.equal(parseSyntheticSpec('classes=0').classes, 0);
  });

  it('rejects what it cannot read', () => {
    for (const bad of ['rows', 'rows=-1', 'rows=1.5', 'rows=0', 'colour=2', 'classes=1', 'task=cluster', 'classes=0,task=classification', 'features=0', 'seed=99999999999']) {
      assert.throws(() => parseSyntheticSpec(bad), dataError('DATA_SOURCE_INVALID', { message: /synthetic:/ }), bad);
    }
  });
});

/** Softmax regression by full-batch gradient descent: a stand-in for "a small model". */
function linearAccuracy(x: Float32Array, y: Int32Array, cols: number, k: number, trainRows: number): number {
  const w = new Float64Array(cols * k);
  const b = new Float64Array(k);
  const p = new Float64Array(k);
  for (let epoch = 0; epoch < 60; epoch++) {
    const gw = new Float64Array(cols * k);
    const gb = new Float64Array(k);
    for (let r = 0; r < trainRows; r++) {
      let max = -Infinity;
      for (let c = 0; c < k; c++) {
        let z = b[c]!;
        for (let j = 0; j < cols; j++) z += w[j * k + c]! * x[r * cols + j]!;
        p[c] = z;
        max = Math.max(max, z);
      }
      let s = 0;
      for (let c = 0; c < k; c++) s += p[c] = Math.exp(p[c]! - max);
      for (let c = 0; c < k; c++) {
        const g = p[c]! / s - (c === y[r] ? 1 : 0);
        gb[c]! += g;
        for (let j = 0; j < cols; j++) gw[j * k + c]! += g * x[r * cols + j]!;
      }
    }
    for (let i = 0; i < w.length; i++) w[i]! -= (0.5 * gw[i]!) / trainRows;
    for (let c = 0; c < k; c++) b[c]! -= (0.5 * gb[c]!) / trainRows;
  }
  let correct = 0;
  const rows = y.length;
  for (let r = trainRows; r < rows; r++) {
    let best = 0;
    let bestZ = -Infinity;
    for (let c = 0; c < k; c++) {
      let z = b[c]!;
      for (let j = 0; j < cols; j++) z += w[j * k + c]! * x[r * cols + j]!;
      if (z > bestZ) [best, bestZ] = [c, z];
    }
    if (best === y[r]) correct++;
  }
  return correct / (rows - trainRows);
}

describe('syntheticTable', () => {
  it('is deterministic, seed-dependent and prefix-stable', () => {
    const a = syntheticTable({ rows: 50, features: 7, classes: 4, seed: 3 });
    const b = syntheticTable({ rows: 50, features: 7, classes: 4, seed: 3 });
    const c = syntheticTable({ rows: 20, features: 7, classes: 4, seed: 3 });
    const d = syntheticTable({ rows: 50, features: 7, classes: 4, seed: 4 });
    assert.deepEqual(a, b);
    assert.deepEqual(c.features, a.features.subarray(0, 20 * 7));
    assert.deepEqual(c.labels, a.labels.subarray(0, 20));
    assert.notDeepEqual(d.features, a.features);
    assert.equal(a.featureNames[6], 'x6');
    assert.deepEqual(a.task, { kind: 'classification', classes: ['0', '1', '2', '3'] });
  });

  it('draws inputs near N(0, 1) and uses every class', () => {
    const t = syntheticTable({ rows: 2000, features: 10, classes: 10, seed: 1 });
    let sum = 0;
    let sq = 0;
    for (const v of t.features) [sum, sq] = [sum + v, sq + v * v];
    const mean = sum / t.features.length;
    assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
    assert.ok(Math.abs(sq / t.features.length - mean * mean - 1) < 0.03);
    const counts = new Array<number>(10).fill(0);
    for (const l of t.labels) counts[l]!++;
    assert.ok(Math.min(...counts) > 2000 / 10 / 5, `class counts ${counts.join(' ')}`);
  });

  it('gives a regression target with spread', () => {
    const t = syntheticTable({ rows: 500, features: 5, classes: 0, seed: 2 });
    assert.deepEqual(t.task, { kind: 'regression', target: 'y' });
    assert.ok(t.labels instanceof Float32Array);
    const mean = t.labels.reduce((s, v) => s + v, 0) / t.rows;
    const variance = t.labels.reduce((s, v) => s + (v - mean) ** 2, 0) / t.rows;
    assert.ok(variance > 0.05, `variance ${variance}`);
  });

  it('is learnable: a linear model beats chance by far', () => {
    const t = syntheticTable({ rows: 3000, features: 10, classes: 3, seed: 5 });
    const acc = linearAccuracy(t.features, t.labels as Int32Array, t.cols, 3, 2000);
    assert.ok(acc > 0.7, `held-out accuracy ${acc}`);
  });

  it('generates 10000 x 784 quickly', () => {
    const t0 = performance.now();
    const t = syntheticTable({ rows: 10000, features: 784, classes: 10, seed: 1 });
    const ms = performance.now() - t0;
    assert.equal(t.features.length, 10000 * 784);
    assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  });
});
