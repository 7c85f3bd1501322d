/**
 * Messages for the fuzz tests, generated from the protocol's zod schemas: `sample`
 * walks a schema (zod 4's `_zod.def`, with the bounds its number, string and array
 * checks carry, so the generator follows the schemas as they change) and builds a value
 * of its shape; `mutate` then breaks one field, chosen at random along the tree: a wrong
 * type, a number out of range (or NaN, an infinity, a fraction, a bigint), a huge
 * string or array, a key added or removed, a wrong `type`, bytes of an odd length.
 * Whether the result is still valid is for the caller's validator to say: the fuzz
 * tests ask libs/protocol's decoder, which the coordinator uses too.
 */
import type { Random } from './fuzz-random.js';

/** The parts of a zod 4 schema the generator reads. */
interface Def {
  readonly type: string;
  readonly shape?: Record<string, Schema>;
  readonly options?: readonly Schema[];
  readonly values?: readonly unknown[];
  readonly entries?: Record<string, unknown>;
  readonly element?: Schema;
  readonly innerType?: Schema;
  readonly in?: Schema;
  readonly checks?: readonly { _zod: { def: { check: string; minimum?: number; maximum?: number } } }[];
}
export interface Schema {
  readonly _zod: { readonly def: Def };
  readonly minValue?: number | null;
  readonly maxValue?: number | null;
  readonly isInt?: boolean;
  readonly minLength?: number | null;
  readonly maxLength?: number | null;
}

const def = (s: Schema): Def => s._zod.def;

function lengthBounds(s: Schema): { min: number; max: number } {
  let min = 0;
  let max = Infinity;
  for (const c of def(s).checks ?? []) {
    const d = c._zod.def;
    if (d.check === 'min_length' && d.minimum !== undefined) min = d.minimum;
    if (d.check === 'max_length' && d.maximum !== undefined) max = d.maximum;
  }
  return { min, max };
}

/** A value of `schema`'s shape (valid as far as the bounds go; refinements are the validator's business). */
export function sample(schema: Schema, r: Random): unknown {
  const d = def(schema);
  switch (d.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(d.shape ?? {})) {
        const v = sample(field, r);
        if (v !== undefined) out[key] = v;
      }
      return out;
    }
    case 'union':
      return sample(r.pick(d.options ?? []), r);
    case 'literal':
      return d.values?.[0];
    case 'enum':
      return r.pick(Object.values(d.entries ?? {}));
    case 'nullable':
      return r.chance(0.3) ? null : sample(d.innerType!, r);
    case 'optional':
      return r.chance(0.3) ? undefined : sample(d.innerType!, r);
    case 'array': {
      const { min, max } = lengthBounds(schema);
      const n = min + r.int(Math.max(1, Math.min(max, min + 3) - min + 1));
      return Array.from({ length: n }, () => sample(d.element!, r));
    }
    case 'string': {
      const min = schema.minLength ?? 0;
      const max = Math.min(schema.maxLength ?? 40, min + 20);
      return r.string(min + r.int(max - min + 1), 'abcdefghijklmnopqrstuvwxyz0123456789.-');
    }
    case 'number': {
      const lo = Math.max(schema.minValue ?? -1e6, -1e6);
      const hi = Math.min(schema.maxValue ?? 1e6, lo + 1000);
      // Small numbers half the time: counts, steps and ranks near their minimum get past the job's bounds to the handlers.
      const v = r.chance(0.5) ? lo + r.int(4) * (schema.isInt ? 1 : 0.25) : lo + r.next() * (hi - lo);
      return schema.isInt ? Math.max(lo, Math.min(hi, Math.round(v))) : Math.min(hi, v);
    }
    case 'boolean':
      return r.chance(0.5);
    case 'custom':
      // The protocol's only custom type: bytes (whole 4-byte values).
      return Uint8Array.from(r.bytes(4 * r.int(8)));
    case 'record':
      return {};
    case 'pipe':
      return sample(d.in!, r);
    default:
      return null;
  }
}

/** One value of a wrong kind, or an extreme of the right one. */
function oddValue(r: Random, like: unknown): unknown {
  const odd: unknown[] = [
    null,
    true,
    '',
    'x'.repeat(r.pick([300, 3000, 100_000])),
    -1,
    0.5,
    -0,
    2 ** 32,
    2 ** 53,
    -(2 ** 63),
    Number.MAX_VALUE,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    BigInt('18446744073709551615'),
    [],
    new Array(r.pick([5, 1000, 200_000])).fill(0),
    {},
    { type: 'register' },
    new Uint8Array(r.pick([0, 3, 5, 1 << 20])),
    new Date(0),
  ];
  if (typeof like === 'number') odd.push(like + 1, like - 1, -like, like * 1e9, like + 0.5);
  if (typeof like === 'string') odd.push(`${like}\u0000`, like.repeat(1000), '\ud800');
  return r.pick(odd);
}

/** Paths to every field of `v` (an object or array tree); [] is the whole value. */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (v instanceof Uint8Array) return out;
  if (Array.isArray(v)) v.slice(0, 8).forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

function clone(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(clone);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)]));
  return v;
}

/** `message` with one field broken, and what was done (for the failure message). */
export function mutate(message: Record<string, unknown>, r: Random, types: readonly string[]): { value: unknown; what: string } {
  const m = clone(message) as Record<string, unknown>;
  const candidates = paths(m).filter((p) => p.length > 0);
  const path = r.pick(candidates);
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], m) as Record<string | number, unknown>;
  const key = path.at(-1)!;
  const where = path.join('.');
  switch (r.int(7)) {
    case 0:
      delete parent[key];
      return { value: m, what: `removed ${where}` };
    case 1:
      if (Array.isArray(parent)) parent.push(oddValue(r, undefined));
      else parent[`extra_${r.int(1000)}`] = oddValue(r, undefined);
      return { value: m, what: `added a key beside ${where}` };
    case 2:
      m.type = r.pick([...types.filter((t) => t !== m.type), '', 'REGISTER', 'constructor', '__proto__', 7, null]);
      return { value: m, what: `type ${String(m.type)}` };
    case 3:
      if (parent[key] instanceof Uint8Array) {
        parent[key] = new Uint8Array((parent[key] as Uint8Array).length + 1 + r.int(3));
        return { value: m, what: `${where}: bytes of an odd length` };
      }
      parent[key] = oddValue(r, parent[key]);
      return { value: m, what: `${where}: odd value` };
    default: {
      const value = oddValue(r, parent[key]);
      parent[key] = value;
      return { value: m, what: `${where} = ${describe(value)}` };
    }
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `string(${v.length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (typeof v === 'bigint') return `${v}n`;
  return String(v);
}

/** The `type` literals of a discriminated union of messages. */
export function messageTypes(union: Schema): string[] {
  return (def(union).options ?? []).map((o) => String(def(def(o).shape!.type!).values?.[0]));
}
