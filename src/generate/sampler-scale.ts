/**
 * The log-weight scale the fast draws share. A candidate's weight is
 * exp((logit − max) / temperature), exactly as the exact path computes it; its
 * log-weight, in units of 1/perUnit below the top, is t = (max − logit) ×
 * perUnit / temperature. Bucket b holds t in [b, b + 1): weights between
 * bound[b + 1] and bound[b].
 */

/** Buckets over the log-weight range; bucket NB is the tail beyond it. */
export const NB = 4096;
/** The range covers log-weights down to −64 at most (weights under 1.7e-28 of the top's): lower ones are only bounded. */
const RMAX = 64;
/** Buckets narrower than 1e-10 in log-weight would put most tokens near a bound. */
const SMAX = 1e10;
/**
 * Least distance, relative to the mass in play, between a threshold and the sums compared
 * with it. The fast sums and the exact path's differ by ~1e-11 at most (100k terms, each
 * rounding by 2^-53, cheap exponentials within 3e-13): a hundredfold margin.
 */
export const TOL = 1e-9;
/** The float64 unit roundoff. */
export const U = 2 ** -53;
/** Widening for quantities that went through rounded arithmetic on t (a few ulp of NB). */
export const WIDEN = 1e-11;

/**
 * A first try buckets only the candidates with log-weight above −depth: the deepest of
 * 24, 20, 16, 12 whose candidates number at most CAP.
 */
const DEPTHS = [24, 20, 16, 12];
export const NEAR_TOP_CAP = 4096;
const CAP = NEAR_TOP_CAP;

/** This call's candidates and scale: `scan` sets the candidates, `useScale` the scale. */
export const scale = {
  vals: new Float32Array(0) as Float32Array,
  n: 0,
  max: 0,
  min: 0,
  temperature: 1,
  /** Buckets per unit of log-weight. */
  perUnit: 0,
  /** perUnit / temperature: t = (max − logit) × c. */
  c: 1,
  /**
   * Tokens with t this close (in bucket units) to a bound are placed by their exact weight.
   * The band covers the rounding of t and 1e-12 in log-weight, far more than the ulp by
   * which Math.exp may be off: outside it a weight is strictly inside its bucket.
   */
  guard: 0,
  /** The positions `collectNearTop` collected, how many, and their depth. */
  nearTop: new Int32Array(CAP),
  nearTopCount: 0,
  depth: 0,
};

/** bound[b] ≈ exp(−b / perUnit), the top weight of bucket b (bound[NB]: of the tail). */
export const bound = new Float64Array(NB + 1);
/** boundBelow[b] = bound[b + 1], the weight under bucket b (0 under the tail). */
export const boundBelow = new Float64Array(NB + 1);
/** exp at each bucket's middle: a token's weight is this times exp of its offset from the middle. */
export const middle = new Float64Array(NB);

const minMax = new Float64Array(3);

/**
 * Finds the max and min of `logits[0..len)`. False when the exact path must decide: a NaN, or
 * a top logit of ±Infinity.
 */
export function scan(logits: Float32Array, len: number, temperature: number): boolean {
  extremes(logits, len, minMax);
  const top = minMax[0];
  if (minMax[2] !== 0 || !(top > -Infinity && top < Infinity)) return false;
  scale.vals = logits;
  scale.n = len;
  scale.max = top;
  scale.min = minMax[1];
  scale.temperature = temperature;
  return true;
}

/**
 * Collects the candidates with log-weight above −depth (a little more, so that every other
 * weight is clearly below exp(−depth)), for the deepest depth that leaves at most CAP.
 * False when even the shallowest leaves more.
 */
export function collectNearTop(): boolean {
  const { vals, n, max, temperature } = scale;
  // Start from the deepest depth that a sample of every 32nd logit says will fit.
  let d = 0;
  while (d < DEPTHS.length - 1 && countAboveStrided(vals, n, 32, max - (DEPTHS[d] + 1e-6) * temperature) * 32 > CAP / 2) d++;
  let floor = max - (DEPTHS[d] + 1e-6) * temperature;
  let k = 0;
  for (let from = 0; ; ) {
    const stop = collectAbove(vals, from, n, floor, k, CAP, scale.nearTop, minMax);
    k = minMax[0];
    if (stop === n) break;
    // Full: go shallower, keep what is still above, go on from where it stopped.
    if (++d === DEPTHS.length) return false;
    floor = max - (DEPTHS[d] + 1e-6) * temperature;
    k = keepAbove(vals, floor, k, scale.nearTop);
    from = stop;
  }
  scale.nearTopCount = k;
  scale.depth = DEPTHS[d];
  return true;
}

/** The scale whose NB − 1 buckets span the log-weights present (down to −RMAX): the last bucket holds the lowest token. */
export function rangePerUnit(): number {
  const range = Math.min((scale.max - scale.min) / scale.temperature, RMAX);
  return range > 0 ? Math.min((NB - 1) / range, SMAX) : SMAX;
}

/** Buckets of `perUnit` per unit of log-weight, for candidates `vals[0..n)`. */
export function useScale(vals: Float32Array, n: number, perUnit: number): void {
  scale.vals = vals;
  scale.n = n;
  scale.c = perUnit / scale.temperature;
  scale.guard = 1e-9 + 1e-12 * perUnit;
  if (perUnit !== scale.perUnit) {
    scale.perUnit = perUnit;
    fillTables(perUnit, bound, boundBelow, middle);
  }
}

/** The exact weight of candidate i, as the exact path computes it. */
export function weightOf(i: number): number {
  return Math.exp((scale.vals[i] - scale.max) / scale.temperature);
}

/** The weight at the top of bucket b, exactly as bucket membership is decided near it. */
export function boundWeight(b: number): number {
  return Math.exp(-b / scale.perUnit);
}

/**
 * The bucket of candidate i, whose t lies within the guard band of a bound: decided on its
 * exact weight w (bucket b holds boundWeight(b + 1) < w ≤ boundWeight(b)).
 */
export function placeExactly(i: number, w: number): number {
  const t = (scale.max - scale.vals[i]) * scale.c;
  const b = t | 0;
  if (t - b <= scale.guard) return b > 0 && w > boundWeight(b) ? b - 1 : b;
  return w > boundWeight(b + 1) ? b : b + 1;
}

// The loops below are functions of their own, each ending at its loop: V8 (Node 20) may
// compile a long loop on its first run, before it has seen the code after the loop, and
// then throw that code away on every call.

/** out[0] = max, out[1] = min of x[0..len); out[2] = 1 for a NaN. */
function extremes(x: Float32Array, len: number, out: Float64Array): void {
  let top = x[0];
  let low = top;
  let nan = top !== top ? 1 : 0;
  // Two comparisons for most logits, not three: a new max is not a new min, and NaN fails both.
  for (let i = 1; i < len; i++) {
    const v = x[i];
    if (v > top) top = v;
    else if (!(v >= low)) {
      if (v !== v) nan = 1;
      else low = v;
    }
  }
  out[0] = top;
  out[1] = low;
  out[2] = nan;
}

/** How many of x[0], x[stride], x[2·stride], … are above `floor`. */
function countAboveStrided(x: Float32Array, len: number, stride: number, floor: number): number {
  let k = 0;
  for (let i = 0; i < len; i += stride) if (x[i] > floor) k++;
  return k;
}

/**
 * Appends to list[k..] the positions from `from` on with x above `floor`, until `cap`; returns
 * where it stopped (len when done), out[0] the new count.
 */
function collectAbove(x: Float32Array, from: number, len: number, floor: number, k: number, cap: number, list: Int32Array, out: Float64Array): number {
  let i = from;
  for (; i < len; i++) {
    if (x[i] > floor) {
      if (k === cap) break;
      list[k++] = i;
    }
  }
  out[0] = k;
  return i;
}

/** Keeps the positions in list[0..k) with x above `floor`; returns how many. */
function keepAbove(x: Float32Array, floor: number, k: number, list: Int32Array): number {
  let kept = 0;
  for (let j = 0; j < k; j++) if (x[list[j]] > floor) list[kept++] = list[j];
  return kept;
}

function fillTables(perUnit: number, up: Float64Array, down: Float64Array, mid: Float64Array): void {
  // Exact every 64 bounds, products of one rounded step between: within 1e-13.
  const step = Math.exp(-1 / perUnit);
  const half = Math.exp(-0.5 / perUnit);
  up[0] = 1;
  for (let b = 1; b <= NB; b++) up[b] = (b & 63) === 0 ? Math.exp(-b / perUnit) : up[b - 1] * step;
  for (let b = 0; b < NB; b++) {
    down[b] = up[b + 1];
    mid[b] = up[b] * half;
  }
  down[NB] = 0;
}
