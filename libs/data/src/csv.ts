/**
 * CSV to Table. The format accepted is the common one: a header row naming the
 * columns (or, with header: false, none: the columns are then c0, c1, ...),
 * comma-separated fields, optional "double quotes" around a field (with "" for a
 * literal quote, and commas or line breaks inside), LF or CRLF line ends, an
 * optional UTF-8 byte-order mark. Whitespace around fields is trimmed and blank lines
 * are skipped, wherever they are, the way pandas does by default.
 *
 * Every column but the label is a feature and must hold finite decimal numbers. The
 * label column (named in the options, else the last) decides the task:
 * - any non-numeric value -> classification; classes are the distinct texts in
 *   sorted (code unit) order, so the class index of a text does not depend on row order;
 * - all numeric -> regression, unless task === 'classification', or no task is given,
 *   integerClasses is set and every value is an integer (Keras's sparse labels): then the
 *   classes are the distinct values in numeric order, each named by its first spelling.
 * What the column held is reported beside the table (LabelColumn), for the caller to
 * explain the task it got.
 *
 * A first row whose names are all numbers (but perhaps the label column's) is most
 * likely data in a file without a header. Taking it as a header would silently drop
 * a row, so it is refused unless header: true says that those are the names; every
 * other header error says so too when the first row looks like data.
 *
 * Errors name the file, the 1-based line number (of the record's first line) and the
 * column, because a 100k-line file is fixed by going to the line, not by reading code.
 */
import { DataError } from './errors.js';
import { readBytes } from './files.js';
import type { LabelColumn, Table, Task } from './types.js';

export type TaskKind = 'classification' | 'regression';

export interface CsvOptions {
  /** Name of the label column; default: the last column. */
  readonly label?: string;
  /** Force the task; by default it follows from the label values (see above). */
  readonly task?: TaskKind;
  /** Without task: numeric labels that are all integers are classes (see above). */
  readonly integerClasses?: boolean;
  /**
   * false: the file has no header and its columns are named c0, c1, ...; true: the first
   * row names the columns, even if they are numbers; default: a header, unless it looks
   * like data (see above).
   */
  readonly header?: boolean;
}

export interface ParsedCsv {
  readonly table: Table;
  readonly labelColumn: LabelColumn;
}

/** Reads a CSV file (plain or gzip) into a Table, with what its label column holds. */
export async function loadCsv(file: string, options: CsvOptions = {}): Promise<ParsedCsv> {
  const bytes = await readBytes(file);
  return parseCsv(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), file, options);
}

interface CsvRecord {
  /** 1-based line number where the record starts. */
  readonly line: number;
  readonly fields: string[];
}

/** Parses CSV text into a Table, with what its label column holds; `file` is only used in error messages. */
export function parseCsv(text: string, file: string, options: CsvOptions = {}): ParsedCsv {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  const hasHeader = options.header !== false;
  let dataLines = 0;
  for (const l of lines) if (!isBlank(l)) dataLines++;
  if (hasHeader) dataLines--;

  const reader = new RecordReader(lines, file);
  const first = reader.next();
  if (first === undefined) throw new DataError('DATA_FILE_EMPTY', `${file}: file is empty`, { file });
  const { names, labelIndex } = hasHeader ? readHeader(first, file, options) : numberedColumns(first, file, options.label);
  const featureNames = names.filter((_, i) => i !== labelIndex);
  const cols = featureNames.length;

  // Sized from the count of non-blank lines: exact unless quoted fields span lines.
  let features = new Float32Array(Math.max(0, dataLines) * cols);
  const labelText: string[] = [];
  const labelLine: number[] = [];
  let rows = 0;
  for (let rec = hasHeader ? reader.next() : first; rec !== undefined; rec = reader.next()) {
    const { fields, line } = rec;
    if (fields.length !== names.length) {
      const expected = hasHeader ? 'header has' : 'the first row has';
      throw new DataError('DATA_RAGGED_ROW', `${file}:${line}: row has ${fields.length} fields, ${expected} ${names.length}`, { file, row: line });
    }
    let o = rows * cols;
    for (let c = 0; c < fields.length; c++) {
      if (c === labelIndex) continue;
      features[o++] = parseNumber(fields[c]!, file, line, names[c]!);
    }
    const label = fields[labelIndex]!;
    if (label === '') throw missing(file, line, names[labelIndex]!, 'a label');
    labelText.push(label);
    labelLine.push(line);
    rows++;
  }
  if (rows === 0) throw new DataError('DATA_FILE_EMPTY', `${file}: has a header but no data rows`, { file });
  if (features.length !== rows * cols) features = features.slice(0, rows * cols);

  const name = names[labelIndex]!;
  const { labels, task, values } = makeLabels(labelText, labelLine, name, file, options);
  return { table: { features, rows, cols, featureNames, labels, task }, labelColumn: { name, file, values } };
}

function isBlank(line: string): boolean {
  return line.length === 0 || line.trim().length === 0;
}

interface Columns {
  readonly names: readonly string[];
  readonly labelIndex: number;
}

/** The first row as a header: its names, checked, and the label column among them. */
function readHeader(rec: CsvRecord, file: string, options: CsvOptions): Columns {
  const names = rec.fields;
  const at = { file, row: rec.line };
  const hint = noHeaderHint(names, options.label);
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (n === '') throw new DataError('DATA_HEADER_INVALID', `${file}:${rec.line}: header column ${i + 1} has no name${hint}`, at);
    if (seen.has(n)) throw new DataError('DATA_HEADER_INVALID', `${file}:${rec.line}: header names column "${n}" twice${hint}`, { ...at, column: n });
    seen.add(n);
  });
  checkWidth(names.length, 'header has', at);
  const labelIndex = findLabel(names, options.label, file, `the header has ${names.join(', ')}${hint}`);
  if (hint !== '' && options.header === undefined) {
    const why = `${firstRowIsNumbers(names, labelIndex)}, so it is data rather than a header`;
    const fix = 'if the file has no header, set data.header: false (or --no-header); if these are the column names, set data.header: true';
    throw new DataError('DATA_HEADER_INVALID', `${file}:${rec.line}: ${why}: ${fix}`, at);
  }
  return { names, labelIndex };
}

/** A file without a header: its columns are c0, c1, ... */
function numberedColumns(rec: CsvRecord, file: string, label: string | undefined): Columns {
  const names = rec.fields.map((_, i) => `c${i}`);
  checkWidth(names.length, 'the first row has', { file, row: rec.line });
  return { names, labelIndex: findLabel(names, label, file, `the file has no header, so the columns are c0 to c${names.length - 1}`) };
}

function checkWidth(count: number, what: string, at: { file: string; row: number }): void {
  if (count < 2) {
    throw new DataError('DATA_HEADER_INVALID', `${at.file}:${at.row}: ${what} ${count} column, expected at least one feature column and a label column`, at);
  }
}

function findLabel(names: readonly string[], label: string | undefined, file: string, columns: string): number {
  if (label === undefined) return names.length - 1;
  const i = names.indexOf(label);
  if (i < 0) throw new DataError('DATA_UNKNOWN_LABEL', `${file}: no column "${label}" for the label; ${columns}`, { file, column: label });
  return i;
}

/** True when every name but the label column's is a number: the row is data, not names. */
function looksLikeData(names: readonly string[], labelIndex: number): boolean {
  return names.every((n, i) => i === labelIndex || isDecimal(n));
}

function firstRowIsNumbers(names: readonly string[], labelIndex: number): string {
  return names.every(isDecimal) ? 'the first row is all numbers' : `the first row is all numbers except its label column "${names[labelIndex]}"`;
}

/** For a header error: the suggestion that the file has none, when its first row looks like data; else ''. */
function noHeaderHint(names: readonly string[], label: string | undefined): string {
  const labelIndex = label === undefined ? names.length - 1 : names.indexOf(label);
  if (!looksLikeData(names, labelIndex)) return '';
  return `; ${firstRowIsNumbers(names, labelIndex)}: if the file has no header, set data.header: false (or --no-header)`;
}

/** Plain decimal notation only: Number() would also take '', '0x1f', 'Infinity' and ' '. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function isDecimal(s: string): boolean {
  return DECIMAL.test(s) && Number.isFinite(Number(s));
}

function parseNumber(s: string, file: string, line: number, column: string): number {
  if (s === '') throw missing(file, line, column, 'a number');
  if (!isDecimal(s)) {
    throw new DataError('DATA_NOT_NUMERIC', `${file}:${line}: column "${column}" has "${s}", expected a finite number`, { file, row: line, column });
  }
  return Number(s);
}

function missing(file: string, line: number, column: string, what: string): DataError {
  return new DataError('DATA_MISSING_VALUE', `${file}:${line}: column "${column}" is empty, expected ${what}`, { file, row: line, column });
}

function makeLabels(
  text: readonly string[],
  lines: readonly number[],
  column: string,
  file: string,
  options: CsvOptions,
): { labels: Int32Array | Float32Array; task: Task; values: LabelColumn['values'] } {
  const firstText = text.findIndex((t) => !isDecimal(t));
  if (firstText >= 0) {
    if (options.task === 'regression') parseNumber(text[firstText]!, file, lines[firstText]!, column); // throws
    const classes = [...new Set(text)].sort();
    const index = new Map(classes.map((c, i) => [c, i]));
    return { labels: Int32Array.from(text, (t) => index.get(t)!), task: { kind: 'classification', classes }, values: { kind: 'text' } };
  }
  const firstFraction = text.findIndex((t) => !Number.isInteger(Number(t)));
  const values: LabelColumn['values'] =
    firstFraction < 0 ? { kind: 'integers' } : { kind: 'numbers', nonInteger: text[firstFraction]!, line: lines[firstFraction]! };
  const classify = options.task === 'classification' || (options.task === undefined && options.integerClasses === true && firstFraction < 0);
  if (!classify) return { labels: Float32Array.from(text, Number), task: { kind: 'regression', target: column }, values };
  // Numeric class labels: keyed by value so that "1" and "1.0" are one class.
  const spelling = new Map<number, string>();
  text.forEach((t) => {
    const v = Number(t);
    if (!spelling.has(v)) spelling.set(v, t);
  });
  const sorted = [...spelling.keys()].sort((a, b) => a - b);
  const index = new Map(sorted.map((v, i) => [v, i]));
  return {
    labels: Int32Array.from(text, (t) => index.get(Number(t))!),
    task: { kind: 'classification', classes: sorted.map((v) => spelling.get(v)!) },
    values,
  };
}

/**
 * Splits lines into records. Lines without a quote take the fast path (split on ',');
 * a quoted field may contain commas, "" and line breaks, in which case the record
 * continues on the following lines.
 */
class RecordReader {
  private i = 0;
  constructor(
    private readonly lines: readonly string[],
    private readonly file: string,
  ) {}

  next(): CsvRecord | undefined {
    while (this.i < this.lines.length) {
      const start = this.i++;
      const line = stripCr(this.lines[start]!);
      if (isBlank(line)) continue;
      const fields = line.includes('"') ? this.quoted(line, start + 1) : line.split(',').map((f) => f.trim());
      return { line: start + 1, fields };
    }
    return undefined;
  }

  private quoted(first: string, lineNo: number): string[] {
    let s = first;
    let pos = 0;
    const fields: string[] = [];
    for (;;) {
      while (s[pos] === ' ' || s[pos] === '\t') pos++;
      if (s[pos] !== '"') {
        const comma = s.indexOf(',', pos);
        const end = comma < 0 ? s.length : comma;
        const field = s.slice(pos, end).trim();
        if (field.includes('"')) throw this.malformed(lineNo, `a quote inside the unquoted field "${field}"`);
        fields.push(field);
        if (comma < 0) return fields;
        pos = comma + 1;
        continue;
      }
      pos++;
      let value = '';
      for (;;) {
        const q = s.indexOf('"', pos);
        if (q < 0) {
          // The quoted field spans a line break: pull in the next line.
          if (this.i >= this.lines.length) throw this.malformed(lineNo, 'a quoted field is not closed');
          s += '\n' + stripCr(this.lines[this.i++]!);
          continue;
        }
        if (s[q + 1] === '"') {
          value += s.slice(pos, q) + '"';
          pos = q + 2;
          continue;
        }
        value += s.slice(pos, q);
        pos = q + 1;
        break;
      }
      fields.push(value.trim());
      while (s[pos] === ' ' || s[pos] === '\t') pos++;
      if (pos >= s.length) return fields;
      if (s[pos] !== ',') throw this.malformed(lineNo, `text after a closing quote: ${JSON.stringify(s.slice(pos, pos + 10))}`);
      pos++;
    }
  }

  private malformed(line: number, what: string): DataError {
    return new DataError('DATA_RAGGED_ROW', `${this.file}:${line}: malformed row: ${what}`, { file: this.file, row: line });
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
