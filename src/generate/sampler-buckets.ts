/**
 * The fast draw for the truncating configurations (any of top-k, top-p, min-p):
 * the exact path's token without sorting the vocabulary or calling Math.exp
 * 100k times.
 *
 * Every decision of the exact path (where top_p's cumulative mass is reached,
 * where the min_p cut falls, where the uniform draw lands) compares a running
 * sum, in sorted order, with a threshold. Here tokens go into buckets by weight
 * (sampler-scale.ts), each bucket's mass summed from a cheap exponential. Whole
 * buckets are skipped by their mass; a bucket where a threshold may fall is
 * sorted by exact weights and walked token by token. Tokens near a bucket bound
 * are placed by their exact weight, so bucket order is sorted order, ties
 * included.
 *
 * These sums are not the exact path's (another order, approximate
 * exponentials), but both lie within ~1e-11 of the true sums, relative to the
 * total. A decision is taken only when the threshold clears every value the
 * sums could have by `TOL` (1e-9) of the total; the exact path then decides
 * alike. Otherwise this returns -1 and the caller runs the exact path (two or three
 * draws in 10^4 on flat logits).
 *
 * Peaked logits get a cheaper first try: only the few thousand tokens at most
 * within 12–24 of the top log-weight (sampler-scale.ts collects them) are
 * bucketed; every other weight is below exp(−depth), which bounds the tail's
 * mass without summing it. That decides most draws where a few tokens hold the
 * mass, in a pass that compares each logit with a threshold and little more;
 * the others take the full pass.
 *
 * The exact path's top-p bisection has no counterpart: the set it keeps already
 * holds top_p of the mass, so whenever the top-p cut is clear it falls inside
 * that set, and the pruning removes nothing the cut keeps.
 */
import type { SamplingOptions } from "./sampler";
import { NB as BUCKETS, NEAR_TOP_CAP, TOL, U, WIDEN, bound, boundBelow, boundWeight, collectNearTop, middle, placeExactly, rangePerUnit, scale, scan, useScale, weightOf } from "./sampler-scale";

// A local copy: imported bindings may compile to getters (tsx), too slow for the hot loops.
const NB = BUCKETS;
const TAIL = NB;
const UNDECIDED = -1;

let ids: Int32Array | null = null;
/** Buckets below this one are listed and summed; the rest is the tail. */
let limitT = NB;
const count = new Int32Array(NB + 1);
/** Each bucket's members as a linked list through `next`. */
const head = new Int32Array(NB + 1);
let next = new Int32Array(0);
/** Bucket masses: lo ≤ mass ≤ hi, up to float rounding (a point for listed buckets). */
const lo = new Float64Array(NB + 1);
const hi = new Float64Array(NB + 1);
const poly = new Float64Array(NB);
/** Tokens within the guard band of a bound, placed after the hot loop. */
let near = new Int32Array(0);
/** Out-parameters of the hot loop: tail bounds and the number of tokens listed. */
const loopOut = new Float64Array(3);

// Sorted buckets: members (candidate positions) and exact weights, best first, in a pool.
const sortedAt = new Int32Array(NB).fill(-1);
const sortedList: number[] = [];
let poolUsed = 0;
let poolPos = new Int32Array(1024);
let poolW = new Float64Array(1024);
let scratchPos = new Int32Array(1024);
let scratchW = new Float64Array(1024);
let order = new Int32Array(1024);

/**
 * Draws like `drawExact`: the token, in order of weight then id, where `r` times the kept
 * mass is reached. Candidate i is token `candIds[i]` (or i), with logit `logits[i]`, for
 * i < `len`. Returns -1 when a decision is too close to call.
 */
export function drawBucketed(logits: Float32Array, candIds: Int32Array | null, len: number, opts: SamplingOptions, r: number): number {
  const { topP, minP } = opts;
  if (topP < 1 && !(topP > 0)) return UNDECIDED;
  if (minP > 0 && !(minP < 1 - 16 * U)) return UNDECIDED;
  if (!scan(logits, len, opts.temperature)) return UNDECIDED;
  ids = candIds;
  if (len > 2 * NEAR_TOP_CAP && collectNearTop()) {
    // First try: only the candidates near the top, every other weight being below
    // exp(−depth), which bounds the tail.
    const k = scale.nearTopCount;
    const at = scale.nearTop;
    if (nearVals.length < k) {
      nearVals = new Float32Array(at.length);
      nearIds = new Int32Array(at.length);
    }
    for (let j = 0; j < k; j++) {
      const i = at[j];
      nearVals[j] = logits[i];
      nearIds[j] = candIds ? candIds[i] : i;
    }
    ids = nearIds;
    useScale(nearVals, k, (NB - 1) / scale.depth);
    fillBuckets(NB - 1, len - k, Math.exp(-scale.depth));
    const token = decide(opts, r);
    if (token !== UNDECIDED) return token;
    ids = candIds;
  }
  // Every candidate summed, buckets spanning the whole range.
  useScale(logits, len, rangePerUnit());
  fillBuckets(NB, 0, 0);
  return decide(opts, r);
}

let nearVals = new Float32Array(0);
let nearIds = new Int32Array(0);

/**
 * Lists and sums the tokens of buckets below `limit`, bounds the rest (the tail), with
 * `unlisted` more tail tokens outside the candidates, each weighing below `unlistedMax`.
 */
function fillBuckets(limit: number, unlisted: number, unlistedMax: number): void {
  const { vals, n, max, c, perUnit, guard } = scale;
  limitT = limit;
  if (next.length < n) {
    next = new Int32Array(n);
    near = new Int32Array(n);
  }
  count.fill(0);
  head.fill(-1);
  poly.fill(0);
  for (const b of sortedList) sortedAt[b] = -1;
  sortedList.length = 0;
  poolUsed = 0;
  const nearCount = listAndSum(vals, n, max, c, 1 / perUnit, guard, limit, count, head, next, poly, near, bound, boundBelow, loopOut);
  let tailLo = loopOut[0] * (1 - WIDEN);
  let tailHi = loopOut[1] * (1 + WIDEN);
  let tailCount = n - loopOut[2] - nearCount;
  for (let k = 0; k < nearCount; k++) {
    const i = near[k];
    const w = weightOf(i);
    const b = placeExactly(i, w);
    if (b < limit) {
      count[b]++;
      next[i] = head[b];
      head[b] = i;
      poly[b] += w / middle[b];
    } else {
      tailLo += w;
      tailHi += w;
      tailCount++;
    }
  }
  for (let b = 0; b < limit; b++) lo[b] = hi[b] = middle[b] * poly[b];
  for (let b = limit; b < NB; b++) lo[b] = hi[b] = 0;
  count[TAIL] = tailCount + unlisted;
  lo[TAIL] = tailLo;
  hi[TAIL] = tailHi + unlisted * unlistedMax * (1 + WIDEN);
}

/**
 * The hot loop of fillBuckets, on arguments only (V8 compiles that best). For t = (max − x) × c
 * below `limit`: counts and lists the token in bucket ⌊t⌋ and adds exp((0.5 − u)·h), u the
 * fraction of t, to the bucket's sum (times the bucket's middle weight that is the token's
 * weight; |d| ≤ h/2 ≤ 1/128, so the 4th-power Taylor polynomial is within 3e-13). Past the
 * limit: adds the bucket bounds to out[0..1]. Tokens within `g` of a bound go to `nearOut`.
 * Returns how many those are (out[2]: how many were listed).
 */
function listAndSum(
  x: Float32Array,
  len: number,
  top: number,
  c: number,
  h: number,
  g: number,
  limit: number,
  cnt: Int32Array,
  first: Int32Array,
  link: Int32Array,
  acc: Float64Array,
  nearOut: Int32Array,
  up: Float64Array,
  down: Float64Array,
  out: Float64Array,
): number {
  let k = 0;
  let listed = 0;
  let sHi = 0;
  let beyond = 0;
  for (let i = 0; i < len; i++) {
    const t = (top - x[i]) * c;
    if (t < limit) {
      const b = t | 0;
      const u = t - b;
      if (u > g && u < 1 - g) {
        listed++;
        cnt[b]++;
        link[i] = first[b];
        first[b] = i;
        const d = (0.5 - u) * h;
        acc[b] += 1 + d * (1 + d * (0.5 + d * (1 / 6 + d * (1 / 24))));
      } else {
        nearOut[k++] = i;
      }
    } else if (t < limit + g) {
      nearOut[k++] = i;
    } else if (t < NB) {
      sHi += up[t | 0];
    } else {
      beyond++;
    }
  }
  // Bucket b's lower bound is its upper bound times one step (to the table's rounding), the
  // tail beyond NB's is 0.
  out[0] = sHi * down[0];
  out[1] = sHi + beyond * up[NB];
  out[2] = listed;
  return k;
}

/** A place in sorted order: the first `j` members of bucket `b` and all of the buckets before it. */
interface Position {
  b: number;
  j: number;
}

/** The place after the last listed token. */
function end(): Position {
  let b = limitT - 1;
  while (b > 0 && count[b] === 0) b--;
  return { b, j: count[b] };
}

/**
 * Where min_p cuts: after the last token with weight ≥ min_p (the top weight is 1). Null
 * when some weight is within rounding of min_p (the exact path's two min-p thresholds,
 * min_p itself and min_p/total·total, could then disagree) or the cut is in the tail.
 */
function minPCut(minP: number): Position | null {
  const low = minP * (1 - 4 * U);
  const high = minP * (1 + 4 * U);
  const b = Math.floor(-Math.log(minP) * scale.perUnit);
  if (b >= limitT) {
    // At or below the tail's top: every listed token is kept, and the tail must be clearly below.
    return count[TAIL] === 0 && boundWeight(limitT) >= high ? end() : null;
  }
  // Buckets above b must hold only weights clearly above min_p, those below (the tail too) only weights clearly below.
  if (!(boundWeight(b) >= high && boundWeight(b + 1) < low)) return null;
  let j = 0;
  if (count[b] > 0) {
    const s = sortBucket(b);
    const m = count[b];
    while (j < m && poolW[s + j] >= high) j++;
    if (j < m && poolW[s + j] >= low) return null;
  }
  if (j > 0) return { b, j };
  // The cut is at b's top: the limit is the end of the last non-empty bucket above (the top token's at least).
  let a = b - 1;
  while (a > 0 && count[a] === 0) a--;
  return { b: a, j: count[a] };
}

/** Where a walk stopped, the mass up to there (bounds) and the token there (-1 for none). */
interface Walk extends Position {
  lo: number;
  hi: number;
  token: number;
}

/**
 * Walks sorted order up to `limit` and stops at the first token after which the mass may
 * reach `x` (its upper bound does); without one, stops at the limit with token -1.
 */
function walk(x: number, limit: Position): Walk {
  let sumLo = 0;
  let sumHi = 0;
  for (let b = 0; b <= limit.b; b++) {
    const m = count[b];
    if (m === 0) continue;
    const take = b < limit.b ? m : limit.j;
    if (take === m && sumHi + hi[b] < x) {
      sumLo += lo[b];
      sumHi += hi[b];
      continue;
    }
    const s = sortBucket(b);
    let part = 0;
    for (let j = 0; j < take; j++) {
      part += poolW[s + j];
      if (sumHi + part >= x) return { b, j: j + 1, lo: sumLo + part, hi: sumHi + part, token: tokenAt(s + j) };
    }
    sumLo += part;
    sumHi += part;
  }
  return { b: limit.b, j: limit.j, lo: sumLo, hi: sumHi, token: -1 };
}

function tokenAt(poolIndex: number): number {
  const i = poolPos[poolIndex];
  return ids ? ids[i] : i;
}

/** The min-p cut, the top-p cut, then the draw, with what the buckets are known to hold. */
function decide(opts: SamplingOptions, r: number): number {
  const { topP, minP } = opts;
  const hasMinP = minP > 0;
  const cut = hasMinP ? minPCut(minP) : end();
  if (!cut) return UNDECIDED;
  let totalLo = 0;
  let totalHi = 0;
  for (let b = 0; b < limitT; b++) {
    totalLo += lo[b];
    totalHi += hi[b];
  }
  totalLo += lo[TAIL];
  totalHi += hi[TAIL];
  const slack = TOL * totalHi;
  let limit = cut;
  let keptLo: number;
  let keptHi: number;
  if (topP < 1) {
    // The exact path stops at the first token whose cumulative mass reaches top_p.
    const p = walk(topP * totalLo - slack, limit);
    if (p.token >= 0) {
      const atLimit = hasMinP && p.b === limit.b && p.j === limit.j;
      // Before p the mass is clearly short of top_p; p is the cut if the mass with it clearly
      // reaches it. At the min-p limit the kept set is the limit whether or not it does.
      if (!atLimit && !(p.lo >= topP * totalHi + slack)) return UNDECIDED;
      limit = p;
    } else if (!hasMinP) {
      return UNDECIDED; // top_p is reached only in the tail, or just about
    }
    keptLo = p.lo;
    keptHi = p.hi;
  } else {
    const all = walk(Infinity, limit);
    keptLo = all.lo;
    keptHi = all.hi;
    if (!hasMinP) {
      // No cut: the tail is kept too.
      keptLo += lo[TAIL];
      keptHi += hi[TAIL];
    }
  }

  // The exact path returns the first token after which r − Σp goes below 0: its mass exceeds r × kept.
  const slackDraw = TOL * keptHi;
  const q = walk(r * keptLo - slackDraw, limit);
  if (q.token < 0 || !(q.lo > r * keptHi + slackDraw)) return UNDECIDED;
  return q.token;
}

/** Sorts bucket b's members by exact weight (then id) into the pool; its mass is then their sum. */
function sortBucket(b: number): number {
  if (sortedAt[b] >= 0) return sortedAt[b];
  const m = count[b];
  if (scratchPos.length < m) {
    scratchPos = new Int32Array(m);
    scratchW = new Float64Array(m);
    order = new Int32Array(m);
  }
  if (poolPos.length < poolUsed + m) {
    const pos = new Int32Array(2 * (poolUsed + m));
    const w = new Float64Array(2 * (poolUsed + m));
    pos.set(poolPos.subarray(0, poolUsed));
    w.set(poolW.subarray(0, poolUsed));
    poolPos = pos;
    poolW = w;
  }
  const pos = scratchPos;
  const w = scratchW;
  const { vals, max, temperature } = scale;
  // Filled from the end: the list runs from the highest index down (tokens near a bound were
  // added last, at its head), so each run of equal weights comes out in id order, which the
  // sort then finds as one run.
  let k = m;
  let lastV = NaN;
  let lastW = 0;
  for (let i = head[b]; i >= 0; i = next[i]) {
    const v = vals[i];
    // Equal logits have equal weights: one exponential per distinct logit in a run.
    if (v !== lastV) {
      lastV = v;
      lastW = Math.exp((v - max) / temperature);
    }
    pos[--k] = i;
    w[k] = lastW;
  }
  const o = order.subarray(0, m);
  for (let j = 0; j < m; j++) o[j] = j;
  if (ids) {
    const id = ids;
    o.sort((a, c) => w[c] - w[a] || id[pos[a]] - id[pos[c]]);
  } else {
    o.sort((a, c) => w[c] - w[a] || pos[a] - pos[c]);
  }
  const s = poolUsed;
  let sum = 0;
  for (let j = 0; j < m; j++) {
    poolPos[s + j] = pos[o[j]];
    sum += poolW[s + j] = w[o[j]];
  }
  poolUsed += m;
  sortedAt[b] = s;
  sortedList.push(b);
  lo[b] = hi[b] = sum;
  return s;
}
