/**
 * Next-token selection. Warpers run in Hugging Face's order (repetition
 * penalty, temperature, top-k, top-p, min-p) so `temperature 0.7, top_p 0.95,
 * top_k 50` draws from the same distribution as HF's generate(do_sample=True).
 *
 * The same seed gives the same tokens as the sampler always has: most draws are
 * decided by the bucketed path (sampler-buckets.ts) at a fraction of a
 * millisecond for 100k logits; small candidate sets, unusual inputs and draws
 * too close to call go to the exact path (sampler-exact.ts). docs/engine.md,
 * "Sampling", says why both give the same token.
 */

import { seededRandom } from "../util/random";
import { penalise } from "./penalties";
import { drawUntruncated } from "./sampler-blocks";
import { drawBucketed } from "./sampler-buckets";
import { drawExact } from "./sampler-exact";
import { topKIndices } from "./top-k-indices";

export { seededRandom };

export interface SamplingOptions {
  /** 0 means greedy (argmax). */
  temperature: number;
  topP: number;
  /** 0 disables. */
  topK: number;
  /** 0 disables. */
  minP: number;
  /** HF-style: logits of seen tokens divided (if > 0) or multiplied (if < 0) by this; 1 disables. */
  repetitionPenalty: number;
  /** OpenAI-style additive penalties over generated tokens; 0 disables. */
  presencePenalty: number;
  frequencyPenalty: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = {
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
};


export { applyPenalties } from "./penalties";

/** Candidate sets up to this size go straight to the exact path: sorting them is cheap. */
const EXACT_MAX = 2048;

let compact = new Float32Array(0);

/** The first index of the largest entry (0 for an empty array or when every entry is NaN). */
export function argmax(logits: ArrayLike<number>): number {
  // Length and best value in locals: callers pass several array kinds, and a
  // polymorphic `.length` per element cost as much as the comparisons.
  const n = logits.length;
  let best = 0;
  let top = logits[0];
  for (let i = 1; i < n; i++) {
    const v = logits[i];
    if (v > top) {
      top = v;
      best = i;
    }
  }
  return best;
}

/**
 * Picks the next token; `random` gives uniform [0, 1) draws (one per call, none when greedy).
 * `context` is every token so far, `generated` only the new ones. `logits` is penalised in
 * place for the call and restored before it returns.
 */
export function sample(logits: Float32Array, opts: SamplingOptions, random: () => number, context: readonly number[] = [], generated: readonly number[] = []): number {
  // The draw first: no caller code runs while the logits hold the penalised values.
  const r = opts.temperature === 0 ? 0 : random();
  const restore = penalise(logits, opts, context, generated);
  try {
    return opts.temperature === 0 ? argmax(logits) : draw(logits, opts, r);
  } finally {
    restore();
  }
}

function draw(logits: Float32Array, opts: SamplingOptions, r: number): number {
  const V = logits.length;
  const T = opts.temperature;
  const plain = !(T > 0 && T < Infinity); // a temperature the fast paths do not model
  if (opts.topK > 0 && opts.topK < V) {
    const k = opts.topK;
    const cand = topKIndices(logits, k);
    if (plain || k <= EXACT_MAX) return drawExact(logits, cand, k, opts, r);
    if (compact.length < k) compact = new Float32Array(k);
    for (let i = 0; i < k; i++) compact[i] = logits[cand[i]];
    const t = drawBucketed(compact, cand, k, opts, r);
    return t >= 0 ? t : drawExact(logits, cand, k, opts, r);
  }
  if (plain || V <= EXACT_MAX) return drawExact(logits, null, V, opts, r);
  const t = opts.topK === 0 && opts.topP >= 1 && opts.minP <= 0 ? drawUntruncated(logits, T, r) : drawBucketed(logits, null, V, opts, r);
  return t >= 0 ? t : drawExact(logits, null, V, opts, r);
}
