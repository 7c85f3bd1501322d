import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { loadCsv, parseCsv } from './csv.js';
import { dataError, tmpDir, writeFixture } from './testing.js';

describe('parseCsv', () => {
  it('reads features row-major and string labels as sorted classes', () => {
    const t = parseCsv('a,b,kind\n1,2,dog\n3,4,cat\n5,6,dog\n', 'x.csv');
    assert.equal(t.rows, 3);
    assert.equal(t.cols, 2);
    assert.deepEqual(t.featureNames, ['a', 'b']);
    assert.deepEqual([...t.features], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(t.task, { kind: 'classification', classes: ['cat', 'dog'] });
    assert.ok(t.labels instanceof Int32Array);
    assert.deepEqual([...t.labels], [1, 0, 1]);
  });

  it('takes a numeric label as a regression target', () => {
    const t = parseCsv('x,y\n1,0.5\n2,-1.5e1\n', 'r.csv');
    assert.deepEqual(t.task, { kind: 'regression', target: 'y' });
    assert.ok(t.labels instanceof Float32Array);
    assert.deepEqual([...t.labels], [0.5, -15]);
  });

  it('makes numeric labels classes in numeric order when asked, named by their text', () => {
    const t = parseCsv('x,y\n1,10\n2,9\n3,10.0\n4,2\n', 'c.csv', { task: 'classification' });
    assert.deepEqual(t.task, { kind: 'classification', classes: ['2', '9', '10'] });
    assert.deepEqual([...t.labels], [2, 1, 2, 0]);
  });

  it('picks the label column by name from anywhere in the header', () => {
    const t = parseCsv('y,a,b\nu,1,2\nv,3,4\n', 'l.csv', { label: 'y' });
    assert.deepEqual(t.featureNames, ['a', 'b']);
    assert.deepEqual([...t.features], [1, 2, 3, 4]);
    assert.deepEqual([...t.labels], [0, 1]);
  });

  it('handles CRLF, a BOM, whitespace, blank lines and quoted fields', () => {
    const text = '\uFEFF a , "b, quoted" ,label\r\n\r\n 1 , "2" , "big, red"\r\n3,4,"say ""hi"""\r\n  \r\n\r\n';
    const t = parseCsv(text, 'q.csv');
    assert.deepEqual(t.featureNames, ['a', 'b, quoted']);
    assert.deepEqual([...t.features], [1, 2, 3, 4]);
    assert.deepEqual(t.task, { kind: 'classification', classes: ['big, red', 'say "hi"'] });
  });

  it('lets a quoted field span lines and numbers rows by their first line', () => {
    const text = 'a,label\n1,"two\nlines"\n2,x\nbad,y\n';
    assert.throws(() => parseCsv(text, 'm.csv'), dataError('DATA_NOT_NUMERIC', { row: 5, column: 'a' }));
    const t = parseCsv(text.replace('bad', '3'), 'm.csv');
    assert.deepEqual(t.task, { kind: 'classification', classes: ['two\nlines', 'x', 'y'] });
  });

  it('rejects a ragged row naming file and line', () => {
    const text = 'a,b,c,d,label\n' + '1,2,3,4,x\n'.repeat(15) + '1,2,3,x\n';
    assert.throws(() => parseCsv(text, 'iris.csv'), dataError('DATA_RAGGED_ROW', { file: 'iris.csv', row: 17, message: /^iris\.csv:17: row has 4 fields, header has 5$/ }));
  });

  it('rejects a non-numeric feature naming the column', () => {
    assert.throws(
      () => parseCsv('width,height,label\n1,2,a\n1,tall,b\n', 'f.csv'),
      dataError('DATA_NOT_NUMERIC', { file: 'f.csv', row: 3, column: 'height', message: /"tall", expected a finite number/ }),
    );
    for (const bad of ['0x10', 'Infinity', 'NaN', '1e999', '1,5']) {
      assert.throws(() => parseCsv(`a,l\n"${bad}",x\n`, 'f.csv'), dataError('DATA_NOT_NUMERIC', { column: 'a' }), bad);
    }
  });

  it('rejects empty values as missing', () => {
    assert.throws(() => parseCsv('a,b,l\n1,,x\n', 'e.csv'), dataError('DATA_MISSING_VALUE', { row: 2, column: 'b' }));
    assert.throws(() => parseCsv('a,l\n1,\n', 'e.csv'), dataError('DATA_MISSING_VALUE', { row: 2, column: 'l' }));
  });

  it('rejects an unknown label column', () => {
    assert.throws(() => parseCsv('a,b\n1,2\n', 'u.csv', { label: 'species' }), dataError('DATA_UNKNOWN_LABEL', { file: 'u.csv', column: 'species' }));
  });

  it('rejects a text label when regression is forced', () => {
    assert.throws(() => parseCsv('a,y\n1,2\n2,high\n', 'r.csv', { task: 'regression' }), dataError('DATA_NOT_NUMERIC', { row: 3, column: 'y' }));
  });

  it('rejects bad headers and malformed quoting', () => {
    assert.throws(() => parseCsv('a,a,l\n1,2,x\n', 'h.csv'), dataError('DATA_HEADER_INVALID', { column: 'a' }));
    assert.throws(() => parseCsv('a,,l\n1,2,x\n', 'h.csv'), dataError('DATA_HEADER_INVALID'));
    assert.throws(() => parseCsv('label\nx\n', 'h.csv'), dataError('DATA_HEADER_INVALID'));
    assert.throws(() => parseCsv('a,l\n1,"open\n', 'h.csv'), dataError('DATA_RAGGED_ROW', { row: 2 }));
    assert.throws(() => parseCsv('a,l\n1,"x"y\n', 'h.csv'), dataError('DATA_RAGGED_ROW', { row: 2 }));
  });

  it('rejects empty input', () => {
    assert.throws(() => parseCsv(' \n\n', 'e.csv'), dataError('DATA_FILE_EMPTY', { file: 'e.csv' }));
    assert.throws(() => parseCsv('a,l\n\n', 'e.csv'), dataError('DATA_FILE_EMPTY', { message: /no data rows/ }));
  });
});

describe('loadCsv', () => {
  it('reads plain and gzipped files', async () => {
    const dir = await tmpDir();
    const text = 'a,l\n1,x\n2,y\n';
    for (const [name, content] of [['p.csv', text], ['g.csv.gz', gzipSync(text)]] as const) {
      const t = await loadCsv(await writeFixture(dir, name, content));
      assert.deepEqual([...t.features], [1, 2]);
    }
  });

  it('reports a missing, an empty and an unreadable file', async () => {
    const dir = await tmpDir();
    const missing = `${dir}/nope.csv`;
    await assert.rejects(loadCsv(missing), dataError('DATA_FILE_MISSING', { file: missing }));
    const empty = await writeFixture(dir, 'empty.csv', '');
    await assert.rejects(loadCsv(empty), dataError('DATA_FILE_EMPTY', { file: empty }));
    await assert.rejects(loadCsv(dir), dataError('DATA_FILE_UNREADABLE', { file: dir }));
    const badGzip = await writeFixture(dir, 'bad.gz', new Uint8Array([0x1f, 0x8b, 1, 2, 3]));
    await assert.rejects(loadCsv(badGzip), dataError('DATA_GZIP_INVALID', { file: badGzip }));
  });

  it('names the file on disk in row errors', async () => {
    const dir = await tmpDir();
    const ragged = await writeFixture(dir, 'ragged.csv', 'a,b,l\r\n1,2,x\r\n3,4\r\n');
    await assert.rejects(loadCsv(ragged), dataError('DATA_RAGGED_ROW', { file: ragged, row: 3, message: new RegExp(`^${ragged}:3: row has 2 fields, header has 3$`) }));
    const text = await writeFixture(dir, 'text.csv', 'a,b,l\n1,2,x\n3,four,y\n');
    await assert.rejects(loadCsv(text), dataError('DATA_NOT_NUMERIC', { file: text, row: 3, column: 'b' }));
  });
});
