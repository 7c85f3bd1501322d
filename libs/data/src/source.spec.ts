import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { absoluteSource, builtinPath, loadSource, parseSource } from './source.js';
import { dataError, tmpDir, writeFixture } from './testing.js';

function columnMeans(t: { features: Float32Array; rows: number; cols: number }): number[] {
  const sums = new Array<number>(t.cols).fill(0);
  for (let r = 0; r < t.rows; r++) for (let c = 0; c < t.cols; c++) sums[c]! += t.features[r * t.cols + c]!;
  return sums.map((s) => Math.round((s / t.rows) * 1000) / 1000);
}

describe('parseSource', () => {
  it('names each kind', () => {
    assert.deepEqual(parseSource('builtin:iris'), { kind: 'builtin', name: 'iris' });
    assert.deepEqual(parseSource('csv:data/x.csv'), { kind: 'csv', path: 'data/x.csv' });
    assert.deepEqual(parseSource('idx:/d'), { kind: 'idx', dir: '/d' });
    assert.deepEqual(parseSource('synthetic:rows=5'), { kind: 'synthetic', spec: { rows: 5, features: 20, classes: 3, seed: 0 } });
  });

  it('rejects malformed strings', () => {
    for (const bad of ['iris', 'builtin:mnist', 'csv:', 'idx: ', 'http://x', '', 'synthetic:rows=x']) {
      assert.throws(() => parseSource(bad), dataError('DATA_SOURCE_INVALID'), bad);
    }
  });
});

describe('loadSource', () => {
  it('loads builtin:iris: 150 rows, 3 balanced classes, the known means', async () => {
    const { train, test } = await loadSource('builtin:iris');
    assert.equal(test, undefined);
    assert.equal(train.rows, 150);
    assert.equal(train.cols, 4);
    assert.deepEqual(train.featureNames, ['sepal_length', 'sepal_width', 'petal_length', 'petal_width']);
    assert.deepEqual(train.task, { kind: 'classification', classes: ['setosa', 'versicolor', 'virginica'] });
    const counts = [0, 0, 0];
    for (const l of train.labels) counts[l]!++;
    assert.deepEqual(counts, [50, 50, 50]);
    assert.deepEqual(columnMeans(train), [5.843, 3.057, 3.758, 1.199]);
    assert.ok(builtinPath('iris').endsWith(join('libs', 'data', 'data', 'iris.csv')));
  });

  it('passes the label option through to builtin CSVs', async () => {
    // Choosing another label leaves species as a feature, which is not numeric.
    await assert.rejects(loadSource('builtin:iris', { label: 'petal_width' }), dataError('DATA_NOT_NUMERIC', { row: 2, column: 'species' }));
    await assert.rejects(loadSource('builtin:iris', { label: 'colour' }), dataError('DATA_UNKNOWN_LABEL', { column: 'colour' }));
  });

  it('resolves a relative csv path against baseDir', async () => {
    const dir = await tmpDir();
    await writeFixture(dir, 'd.csv', 'a,y\n1,2\n3,4\n');
    const { train } = await loadSource('csv:d.csv', { baseDir: dir, task: 'classification' });
    assert.deepEqual(train.task, { kind: 'classification', classes: ['2', '4'] });
    await assert.rejects(loadSource('csv:missing.csv', { baseDir: dir }), dataError('DATA_FILE_MISSING', { file: join(dir, 'missing.csv') }));
  });

  it('applies the task option to synthetic sources', async () => {
    const { train } = await loadSource('synthetic:rows=10,features=3', { task: 'regression' });
    assert.equal(train.task.kind, 'regression');
    await assert.rejects(loadSource('synthetic:classes=0', { task: 'classification' }), dataError('DATA_SOURCE_INVALID'));
  });

  it('passes header and integerClasses to CSV files and reports the label column', async () => {
    const dir = await tmpDir();
    const file = await writeFixture(dir, 'n.csv', '1,2,0\n3,4,2\n5,6,1\n');
    const { train, labelColumn } = await loadSource('csv:n.csv', { baseDir: dir, header: false, integerClasses: true });
    assert.deepEqual(train.featureNames, ['c0', 'c1']);
    assert.deepEqual(train.task, { kind: 'classification', classes: ['0', '1', '2'] });
    assert.deepEqual(labelColumn, { name: 'c2', file, values: { kind: 'integers' } });
    // Other sources keep their tasks: Iris has text labels, synthetic and IDX report no label column.
    const iris = await loadSource('builtin:iris', { integerClasses: true });
    assert.deepEqual(iris.labelColumn?.values, { kind: 'text' });
    const synthetic = await loadSource('synthetic:rows=10,classes=0', { integerClasses: true });
    assert.equal(synthetic.train.task.kind, 'regression');
    assert.equal(synthetic.labelColumn, undefined);
  });

  it('rejects options that do not fit the source', async () => {
    for (const source of ['builtin:iris', 'synthetic:', 'idx:/nowhere']) {
      await assert.rejects(loadSource(source, { header: false }), dataError('DATA_SOURCE_INVALID', { message: /only a csv: source has a header option/ }), source);
    }
    await assert.rejects(loadSource('csv:x.csv', { header: 'no' as unknown as boolean }), dataError('DATA_SOURCE_INVALID', { message: /header must be true or false/ }));
    await assert.rejects(loadSource('synthetic:', { label: 'y' }), dataError('DATA_SOURCE_INVALID'));
    await assert.rejects(loadSource('idx:/nowhere', { label: 'y' }), dataError('DATA_SOURCE_INVALID'));
    await assert.rejects(loadSource('idx:/nowhere', { task: 'regression' }), dataError('DATA_SOURCE_INVALID'));
    await assert.rejects(loadSource('builtin:iris', { task: 'cluster' as 'regression' }), dataError('DATA_SOURCE_INVALID'));
  });
});

describe('absoluteSource', () => {
  it('resolves csv and idx paths against baseDir and leaves the rest alone', () => {
    assert.equal(absoluteSource('csv:data/x.csv', '/jobs'), 'csv:/jobs/data/x.csv');
    assert.equal(absoluteSource('idx:../fm', '/jobs/a'), 'idx:/jobs/fm');
    assert.equal(absoluteSource('csv:/abs/x.csv', '/jobs'), 'csv:/abs/x.csv');
    assert.equal(absoluteSource('builtin:iris', '/jobs'), 'builtin:iris');
    assert.equal(absoluteSource('synthetic:rows=5', '/jobs'), 'synthetic:rows=5');
  });
});
