/**
 * The sampler as it was before the fast one: kept unchanged in behaviour as the
 * independent reference the fast sampler (src/generate/sampler.ts) must match
 * draw for draw. Warpers in Hugging Face's order (repetition penalty,
 * temperature, top-k, top-p, min-p), each written the direct way: a full
 * softmax, a pruned sort, one walk of the sorted distribution per draw.
 */

import type { SamplingOptions } from "../../src/generate/sampler";

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Applies the penalties to a copy of the logits. `context` is every token so far, `generated` only the new ones. */
export function applyPenalties(logits: Float32Array, opts: SamplingOptions, context: readonly number[], generated: readonly number[]): Float32Array {
  const out = Float32Array.from(logits);
  if (opts.repetitionPenalty !== 1) {
    for (const t of new Set(context)) out[t] = out[t] > 0 ? out[t] / opts.repetitionPenalty : out[t] * opts.repetitionPenalty;
  }
  if (opts.presencePenalty !== 0 || opts.frequencyPenalty !== 0) {
    const counts = new Map<number, number>();
    for (const t of generated) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [t, c] of counts) out[t] -= opts.presencePenalty + opts.frequencyPenalty * c;
  }
  return out;
}

/**
 * The distribution tokens are drawn from after temperature, top-k, top-p and
 * min-p, as (token, probability) pairs summing to 1: sorted by probability
 * when any truncation applies, in vocabulary order otherwise.
 */
export function warpedDistribution(logits: Float32Array, opts: SamplingOptions): { token: number; p: number }[] {
  const V = logits.length;
  // Top-k on the raw logits (temperature does not change the order).
  const candidates = opts.topK > 0 && opts.topK < V ? topKIndices(logits, opts.topK) : Int32Array.from(logits.keys());
  let max = -Infinity;
  for (const t of candidates) max = Math.max(max, logits[t]);
  const weight = new Float64Array(candidates.length);
  let total = 0;
  for (let i = 0; i < candidates.length; i++) total += weight[i] = Math.exp((logits[candidates[i]] - max) / opts.temperature);
  if (opts.topK === 0 && opts.topP >= 1 && opts.minP <= 0) return Array.from(candidates, (token, i) => ({ token, p: weight[i] / total }));

  // Only tokens that can survive need sorting: those at or above the min-p cut, and
  // a probability threshold whose mass already reaches top_p (found by bisection).
  let floor = opts.minP > 0 ? opts.minP / total : 0; // the largest weight is 1
  if (opts.topP < 1 && candidates.length > 256) {
    let lo = 0;
    let hi = 1;
    for (let iter = 0; iter < 40; iter++) {
      const mid = (lo + hi) / 2;
      let mass = 0;
      for (let i = 0; i < weight.length; i++) if (weight[i] >= mid * total) mass += weight[i];
      if (mass / total >= opts.topP) lo = mid;
      else hi = mid;
    }
    floor = Math.max(floor, lo / 2); // a margin for rounding: the prefix summed in sorted order may need a token more
  }
  const order = Array.from(candidates.keys())
    .filter((i) => weight[i] >= floor * total)
    .sort((a, b) => weight[b] - weight[a] || candidates[a] - candidates[b]);
  let n = order.length;
  if (opts.topP < 1) {
    // HF keeps the smallest prefix whose mass reaches top_p (at least one token).
    let mass = 0;
    let k = 0;
    while (k < n && mass < opts.topP) mass += weight[order[k++]] / total;
    n = Math.max(k, 1);
  }
  if (opts.minP > 0) {
    const cut = opts.minP * weight[order[0]];
    let k = 1;
    while (k < n && weight[order[k]] >= cut) k++;
    n = k;
  }
  let kept = 0;
  for (let k = 0; k < n; k++) kept += weight[order[k]];
  return order.slice(0, n).map((i) => ({ token: candidates[i], p: weight[i] / kept }));
}

/** Indices of the k largest values (ties: lower index first), unordered. */
function topKIndices(x: Float32Array, k: number): Int32Array {
  // A min-heap of the best k seen so far: O(V log k) instead of sorting V.
  const heap = new Int32Array(k);
  let size = 0;
  const worse = (a: number, b: number) => x[a] < x[b] || (x[a] === x[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(heap[l], heap[m])) m = l;
      if (r < size && worse(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let t = 0; t < x.length; t++) {
    if (size < k) {
      heap[size] = t;
      for (let i = size++; i > 0 && worse(heap[i], heap[(i - 1) >> 1]); i = (i - 1) >> 1) {
        [heap[i], heap[(i - 1) >> 1]] = [heap[(i - 1) >> 1], heap[i]];
      }
    } else if (worse(heap[0], t)) {
      heap[0] = t;
      down(0);
    }
  }
  return heap;
}

/** Picks the next token; `random` gives uniform [0, 1) draws. */
export function sample(logits: Float32Array, opts: SamplingOptions, random: () => number, context: readonly number[] = [], generated: readonly number[] = []): number {
  const penalised = applyPenalties(logits, opts, context, generated);
  if (opts.temperature === 0) return argmax(penalised);
  const dist = warpedDistribution(penalised, opts);
  let r = random();
  for (const { token, p } of dist) {
    r -= p;
    if (r < 0) return token;
  }
  return dist[dist.length - 1].token;
}
