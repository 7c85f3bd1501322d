/**
 * An exact, order-independent sum of a step's gradients: the same bits whatever the
 * number of workers and whichever worker computed which part (issue 17).
 *
 * Float addition is not associative, so a float32 sum of the same gradients split
 * differently (another worker count, a world that changed, a ring that added in another
 * order) differs in its last bits, and training amplifies that. Integers below 2^53 add
 * exactly in float64, in any order. So each micro-batch's summed gradient g (float32, a
 * function of its rows alone) becomes integers n = round(g * 2^s) on a power-of-two scale
 * 2^s that every worker uses for the step; the integers are summed (here, then by the
 * ring's float64 all-reduce) and converted back once, sum * 2^-s, rounded to float32.
 *
 * The scale. Below 2^53 for any order of the additions means every partial sum is below
 * 2^53: with at most `parts` micro-batches of elements below 2^e in magnitude, s = 52 -
 * e - ceil(log2 parts) gives |n| < 2^(52 - ceil(log2 parts)) and any sum of them below
 * 2^52. An element's resolution is 2^-s: relative to a bound 2^e it is 2^-(52 -
 * ceil(log2 parts)), 2^-48 for 16 micro-batches, far below float32's 2^-24. Elements
 * smaller than half of 2^-s round to 0.
 *
 * Every worker must know the bound before it converts, and the gradients are not kept
 * (a large model's would not fit many times over), so the bound is the previous step's
 * largest element times 2^HEADROOM_BITS, known to all from the previous reduction. An
 * element at or above the bound is an overflow: each micro-batch's largest element goes
 * through the reduction in a slot of its own, every worker sees the same maxima, and on
 * an overflow every worker computes the step again on the scale of its true maximum
 * (the trainer's loop; at the first step, where there is no previous bound, always).
 */

/** How much a step's largest gradient element may grow over the previous one's before the step is computed again. */
export const HEADROOM_BITS = 10;

/** The smallest e with |x| < 2^e, for finite x != 0. */
export function exponentAbove(x: number): number {
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a)) + 1;
  // log2 can be off by one near powers of two: settle it exactly.
  while (2 ** (e - 1) > a) e--;
  while (2 ** e <= a) e++;
  return e;
}

/**
 * The scale exponent for a step whose micro-batch elements are below 2^e in magnitude
 * (`bound` <= 2^e), summed over at most `parts` micro-batches: |round(g 2^s)| stays
 * below 2^(52 - ceil(log2 parts)), and any sum of `parts` of them below 2^52.
 */
export function scaleExponent(bound: number, parts: number): number {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError(`the bound must be a finite positive number, got ${bound}`);
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`parts must be a positive integer, got ${parts}`);
  return 52 - exponentAbove(bound) - Math.ceil(Math.log2(parts));
}

export class ExactSum {
  /** The integer sums, scaled by 2^scale; the buffer the ring all-reduces starts with them. */
  readonly ints: Float64Array;
  private scale = 0;
  /** 2^e: elements at or above it overflow the step's scale. */
  private limit = 0;

  constructor(ints: Float64Array) {
    this.ints = ints;
  }

  /** Starts a step: zero sums, on the scale for elements below `bound` over at most `parts` micro-batches. */
  begin(bound: number, parts: number): void {
    this.scale = scaleExponent(bound, parts);
    this.limit = 2 ** exponentAbove(bound);
    this.ints.fill(0);
  }

  /** Whether an element of magnitude `maxAbs` fits the step's scale. */
  fits(maxAbs: number): boolean {
    return maxAbs < this.limit;
  }

  /**
   * Adds g's elements as integers on the step's scale and returns the largest finite
   * |element| (the caller's overflow check and next bound). Exact while every element
   * fits; a non-finite element makes its sum non-finite, whatever the order.
   */
  add(g: Float32Array): number {
    const ints = this.ints;
    const k = 2 ** this.scale;
    let max = 0;
    for (let i = 0; i < g.length; i++) {
      const v = g[i]!;
      const a = Math.abs(v);
      if (a > max && a !== Infinity) max = a;
      ints[i] = ints[i]! + Math.round(v * k);
    }
    return max;
  }

  /** out[i] = ints[i] * 2^-scale, rounded to float32 once. */
  readInto(out: Float32Array): void {
    const ints = this.ints;
    const k = 2 ** -this.scale;
    for (let i = 0; i < out.length; i++) out[i] = ints[i]! * k;
  }
}
