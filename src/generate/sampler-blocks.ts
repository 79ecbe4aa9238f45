/**
 * The fast draw without truncation: the plain softmax, walked in vocabulary
 * order as the exact path walks it, without 100k calls to Math.exp.
 *
 * The exact path returns the first token whose cumulative weight exceeds r
 * times the total. Tokens are taken in blocks of 256: a block whose mass
 * clearly stays below that is skipped by its mass; the block where it may be
 * crossed is walked with exact weights. Block masses are first bounded from
 * each token's bucket (sampler-scale.ts: its weight lies between the bucket's
 * bounds, about 1% apart), which decides most draws on peaked logits; when
 * not, they are summed from a cheap exponential (within 3e-13). As in
 * sampler-buckets.ts, a decision needs `TOL` of the total to spare on both
 * sides, or this returns -1 and the exact path decides.
 */
import { NB as BUCKETS, TOL, WIDEN, bound, boundBelow, middle, rangePerUnit, scale, scan, useScale } from "./sampler-scale";

// A local copy: imported bindings may compile to getters (tsx), too slow for the hot loops.
const NB = BUCKETS;
const UNDECIDED = -1;
const BLOCK = 256;

let blockLo = new Float64Array(0);
let blockHi = new Float64Array(0);
/** Blocks whose mass is the sum of their exact weights. */
let blockExact = new Uint8Array(0);

/**
 * Draws like `drawExact` with no truncation: the first token whose cumulative mass exceeds
 * `r` times the total. Returns -1 when too close to call.
 */
export function drawUntruncated(logits: Float32Array, temperature: number, r: number): number {
  if (!scan(logits, logits.length, temperature)) return UNDECIDED;
  useScale(logits, logits.length, rangePerUnit());
  const blocks = Math.ceil(scale.n / BLOCK);
  if (blockLo.length < blocks) {
    blockLo = new Float64Array(blocks);
    blockHi = new Float64Array(blocks);
    blockExact = new Uint8Array(blocks);
  }
  blockExact.fill(0, 0, blocks);
  boundBlocks(scale.vals, scale.n, scale.max, scale.c, bound, boundBelow, blockLo, blockHi);
  const token = decide(blocks, r);
  if (token !== UNDECIDED) return token;
  sumBlocks(scale.vals, scale.n, scale.max, scale.c, 1 / scale.perUnit, middle, bound[NB] * (1 + WIDEN), blockExact, blockLo, blockHi);
  return decide(blocks, r);
}

/**
 * Each token's weight lies between the bounds of the bucket of t = (max − x) × c (in
 * [0, bound[NB]] past the last); t is within a few ulp of its true value, so widening by
 * WIDEN covers any move of the weight.
 */
function boundBlocks(x: Float32Array, len: number, top: number, c: number, up: Float64Array, down: Float64Array, outLo: Float64Array, outHi: Float64Array): void {
  for (let k = 0, start = 0; start < len; k++, start += BLOCK) {
    let sLo = 0;
    let sHi = 0;
    for (let i = start, e = Math.min(len, start + BLOCK); i < e; i++) {
      const t = (top - x[i]) * c;
      const b = t < NB ? t | 0 : NB;
      sLo += down[b];
      sHi += up[b];
    }
    outLo[k] = sLo * (1 - WIDEN);
    outHi[k] = sHi * (1 + WIDEN);
  }
}

/**
 * Block masses from the middle weight of each token's bucket times a 4th-power Taylor
 * polynomial of its offset (|d| ≤ 1/128: within 3e-13); tail tokens only bounded.
 */
function sumBlocks(x: Float32Array, len: number, top: number, c: number, h: number, mid: Float64Array, tailWeight: number, exact: Uint8Array, outLo: Float64Array, outHi: Float64Array): void {
  for (let k = 0, start = 0; start < len; k++, start += BLOCK) {
    if (exact[k]) continue;
    let s = 0;
    let tail = 0;
    for (let i = start, e = Math.min(len, start + BLOCK); i < e; i++) {
      const t = (top - x[i]) * c;
      if (t < NB) {
        const b = t | 0;
        const d = (b + 0.5 - t) * h;
        s += mid[b] * (1 + d * (1 + d * (0.5 + d * (1 / 6 + d * (1 / 24)))));
      } else {
        tail++;
      }
    }
    outLo[k] = s;
    outHi[k] = s + tail * tailWeight;
  }
}

function decide(blocks: number, r: number): number {
  const { vals, n, max, temperature } = scale;
  let totalLo = 0;
  let totalHi = 0;
  for (let k = 0; k < blocks; k++) {
    totalLo += blockLo[k];
    totalHi += blockHi[k];
  }
  const slack = TOL * totalHi;
  const xLo = r * totalLo - slack;
  const xHi = r * totalHi + slack;
  let sumLo = 0;
  let sumHi = 0;
  for (let k = 0; k < blocks; k++) {
    if (sumHi + blockHi[k] < xLo) {
      sumLo += blockLo[k];
      sumHi += blockHi[k];
      continue;
    }
    // Exact weights in vocabulary order: the first token after which the mass may exceed r × total.
    let part = 0;
    for (let i = k * BLOCK, e = Math.min(n, i + BLOCK); i < e; i++) {
      part += Math.exp((vals[i] - max) / temperature);
      if (sumHi + part >= xLo) return sumLo + part > xHi ? i : UNDECIDED;
    }
    blockLo[k] = blockHi[k] = part;
    blockExact[k] = 1;
    sumLo += part;
    sumHi += part;
  }
  return UNDECIDED;
}
