/**
 * The exact draw: every weight computed and summed in the order the sampler has
 * always used, so every rounding is the same one. It serves small candidate sets
 * (top-k ≤ a few thousand, where it is cheap) and the rare draws the bucketed path
 * cannot decide. Its cost is the old sampler's, less the allocations.
 */
import type { SamplingOptions } from "./sampler";

let weight = new Float64Array(0);

/**
 * Draws from the warped distribution over candidates `0..n-1`, candidate i being token
 * `cand[i]` (or i when `cand` is null), with `r` uniform in [0, 1). `logits` are
 * already penalised; `opts.temperature` > 0.
 */
export function drawExact(logits: Float32Array, cand: Int32Array | null, n: number, opts: SamplingOptions, r: number): number {
  const tok = cand ? (i: number) => cand[i] : (i: number) => i;
  if (weight.length < n) weight = new Float64Array(n);
  const w = weight;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[tok(i)]);
  let total = 0;
  for (let i = 0; i < n; i++) total += w[i] = Math.exp((logits[tok(i)] - max) / opts.temperature);

  if (opts.topK === 0 && opts.topP >= 1 && opts.minP <= 0) {
    // No truncation: the plain softmax, walked in vocabulary order.
    for (let i = 0; i < n; i++) {
      r -= w[i] / total;
      if (r < 0) return tok(i);
    }
    return tok(n - 1);
  }

  // Only tokens that can survive are sorted: those at or above the min-p cut, and a
  // threshold whose mass reaches top_p, found by bisection, with a factor 2 of margin.
  let floor = opts.minP > 0 ? opts.minP / total : 0;
  if (opts.topP < 1 && n > 256) {
    let lo = 0;
    let hi = 1;
    for (let iter = 0; iter < 40; iter++) {
      const mid = (lo + hi) / 2;
      const at = mid * total;
      let mass = 0;
      for (let i = 0; i < n; i++) if (w[i] >= at) mass += w[i];
      if (mass / total >= opts.topP) lo = mid;
      else hi = mid;
    }
    floor = Math.max(floor, lo / 2);
  }
  const at = floor * total;
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (w[i] >= at) order.push(i);
  // The same comparator on the same input order as always: with NaN weights it is not a
  // consistent order, and only the same sort of the same array gives the same result.
  order.sort((a, b) => w[b] - w[a] || tok(a) - tok(b));
  if (order.length === 0) return tok(argmaxOf(w, n)); // min_p rounded past the top weight: keep the top token

  let kept = order.length;
  if (opts.topP < 1) {
    // The smallest prefix whose mass reaches top_p (at least one token).
    let mass = 0;
    let k = 0;
    while (k < kept && mass < opts.topP) mass += w[order[k++]] / total;
    kept = Math.max(k, 1);
  }
  if (opts.minP > 0) {
    const cut = opts.minP * w[order[0]];
    let k = 1;
    while (k < kept && w[order[k]] >= cut) k++;
    kept = k;
  }
  let mass = 0;
  for (let k = 0; k < kept; k++) mass += w[order[k]];
  for (let k = 0; k < kept; k++) {
    r -= w[order[k]] / mass;
    if (r < 0) return tok(order[k]);
  }
  return tok(order[kept - 1]);
}

function argmaxOf(w: Float64Array, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (w[i] > w[best]) best = i;
  return best;
}
