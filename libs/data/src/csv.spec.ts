import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { type CsvOptions, loadCsv, parseCsv as parse } from './csv.js';
import { dataError, tmpDir, writeFixture } from './testing.js';
import type { Table } from './types.js';

/** The table of CSV text, as loadCsv gives it for a file. */
const parseCsv = (text: string, file: string, options?: CsvOptions): Table => parse(text, file, options).table;

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

  it('makes integer labels classes with integerClasses, and reports what the label column holds', () => {
    const text = 'x,y\n1,2\n2,0\n3,1\n4,2.0\n';
    const t = parseCsv(text, 'i.csv', { integerClasses: true });
    assert.deepEqual(t.task, { kind: 'classification', classes: ['0', '1', '2'] });
    assert.ok(t.labels instanceof Int32Array);
    assert.deepEqual([...t.labels], [2, 0, 1, 2]);
    // Without it, the same column is a regression target.
    assert.deepEqual(parseCsv(text, 'i.csv').task, { kind: 'regression', target: 'y' });
    // A forced task wins over integerClasses.
    assert.deepEqual(parseCsv(text, 'i.csv', { integerClasses: true, task: 'regression' }).task, { kind: 'regression', target: 'y' });
  });

  it('keeps non-integer numbers a regression target with integerClasses, naming the first fraction and its line', async () => {
    const dir = await tmpDir();
    const file = await writeFixture(dir, 'f.csv', 'x,y\n1,2\n\n2,0\n3,0.5\n4,1.5\n');
    const { table, labelColumn } = await loadCsv(file, { integerClasses: true });
    assert.deepEqual(table.task, { kind: 'regression', target: 'y' });
    assert.deepEqual(labelColumn, { name: 'y', file, values: { kind: 'numbers', nonInteger: '0.5', line: 5 } });
    assert.deepEqual((await loadCsv(await writeFixture(dir, 'i.csv', 'x,y\n1,-3\n2,7\n'))).labelColumn.values, { kind: 'integers' });
    assert.deepEqual((await loadCsv(await writeFixture(dir, 't.csv', 'x,y\n1,3\n2,cat\n'), { integerClasses: true })).labelColumn.values, { kind: 'text' });
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

  it('reads a file without a header: columns c0, c1, ..., the label last unless named', () => {
    const text = '5.1,3.5,0\n4.9,3.0,1\n6.2,2.9,0\n';
    const t = parseCsv(text, 'n.csv', { header: false });
    assert.equal(t.rows, 3);
    assert.deepEqual(t.featureNames, ['c0', 'c1']);
    assert.deepEqual([...t.features], [5.1, 3.5, 4.9, 3.0, 6.2, 2.9].map(Math.fround));
    assert.deepEqual(t.task, { kind: 'regression', target: 'c2' });
    const byName = parseCsv(text, 'n.csv', { header: false, label: 'c0', integerClasses: true });
    assert.deepEqual(byName.featureNames, ['c1', 'c2']);
    assert.deepEqual(byName.task, { kind: 'regression', target: 'c0' });
    // Errors count lines from the first row, which is data.
    assert.throws(() => parseCsv('1,2,x\n3,4\n', 'n.csv', { header: false }), dataError('DATA_RAGGED_ROW', { row: 2, message: /row has 2 fields, the first row has 3$/ }));
    assert.throws(() => parseCsv('1,a,x\n', 'n.csv', { header: false }), dataError('DATA_NOT_NUMERIC', { row: 1, column: 'c1' }));
    assert.throws(() => parseCsv('1,2\n', 'n.csv', { header: false, label: 'y' }), dataError('DATA_UNKNOWN_LABEL', { column: 'y', message: /no header, so the columns are c0 to c1$/ }));
    assert.throws(() => parseCsv('1\n2\n', 'n.csv', { header: false }), dataError('DATA_HEADER_INVALID', { message: /the first row has 1 column/ }));
    assert.throws(() => parseCsv('\n\n', 'n.csv', { header: false }), dataError('DATA_FILE_EMPTY'));
  });

  it('refuses a header that looks like data, suggesting header: false; header: true accepts it', () => {
    const numbers = '5.1,3.5,1.4,0\n4.9,3.0,1.4,1\n';
    assert.throws(
      () => parseCsv(numbers, 'n.csv'),
      dataError('DATA_HEADER_INVALID', { row: 1, message: /^n\.csv:1: the first row is all numbers, so it is data rather than a header: if the file has no header, set data\.header: false .*; if these are the column names, set data\.header: true$/ }),
    );
    // Text labels: every name but the label column's is a number.
    assert.throws(() => parseCsv('5.1,3.5,setosa\n4.9,3.0,virginica\n', 'n.csv'), dataError('DATA_HEADER_INVALID', { message: /all numbers except its label column "setosa"/ }));
    assert.throws(() => parseCsv('setosa,5.1,3.5\n', 'n.csv', { label: 'setosa' }), dataError('DATA_HEADER_INVALID', { message: /all numbers except its label column "setosa"/ }));
    const t = parseCsv(numbers, 'n.csv', { header: true });
    assert.deepEqual(t.featureNames, ['5.1', '3.5', '1.4']);
    assert.equal(t.rows, 1);
    // A feature name that is not a number makes it a header.
    assert.deepEqual(parseCsv('400,410,ratio,y\n1,2,3,4\n', 'n.csv').featureNames, ['400', '410', 'ratio']);
  });

  it('adds the header: false hint to header errors when the first row is all numbers', () => {
    const hint = /; the first row is all numbers: if the file has no header, set data\.header: false/;
    assert.throws(() => parseCsv('0,0,1\n1,0,0\n', 'n.csv'), dataError('DATA_HEADER_INVALID', { column: '0', message: /header names column "0" twice; the first row is all numbers: if the file has no header/ }));
    assert.throws(() => parseCsv('0,0,1\n', 'n.csv', { header: true }), dataError('DATA_HEADER_INVALID', { message: hint }));
    assert.throws(() => parseCsv('1,2,3\n', 'n.csv', { label: 'c2' }), dataError('DATA_UNKNOWN_LABEL', { column: 'c2', message: /the header has 1, 2, 3; the first row is all numbers/ }));
    // A header that is not numbers gets no hint.
    assert.throws(() => parseCsv('a,a,l\n1,2,x\n', 'h.csv'), dataError('DATA_HEADER_INVALID', { message: /twice$/ }));
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
      const { table: t } = await loadCsv(await writeFixture(dir, name, content));
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
