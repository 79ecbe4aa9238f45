/**
 * Next-token selection. Warpers run in Hugging Face's order (repetition
 * penalty, temperature, top-k, top-p, min-p) so `temperature 0.7, top_p 0.95,
 * top_k 50` draws from the same distribution as HF's generate(do_sample=True).
 */

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

/** mulberry32: a small seeded PRNG, identical on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
 * min-p, as (token, probability) pairs sorted by probability, summing to 1.
 */
export function warpedDistribution(logits: Float32Array, opts: SamplingOptions): { token: number; p: number }[] {
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  let kept = opts.topK > 0 ? order.slice(0, Math.min(opts.topK, order.length)) : order;
  const max = logits[kept[0]];
  const weights = kept.map((t) => Math.exp((logits[t] - max) / opts.temperature));
  let total = weights.reduce((a, b) => a + b, 0);
  let probs = weights.map((w) => w / total);
  if (opts.topP < 1) {
    // HF keeps the smallest prefix whose mass reaches top_p (at least one token).
    let mass = 0;
    let n = 0;
    while (n < probs.length && mass < opts.topP) mass += probs[n++];
    kept = kept.slice(0, Math.max(n, 1));
    probs = probs.slice(0, kept.length);
  }
  if (opts.minP > 0) {
    const threshold = opts.minP * probs[0];
    const n = Math.max(1, probs.findIndex((p) => p < threshold) === -1 ? probs.length : probs.findIndex((p) => p < threshold));
    kept = kept.slice(0, n);
    probs = probs.slice(0, n);
  }
  total = probs.reduce((a, b) => a + b, 0);
  return kept.map((token, i) => ({ token, p: probs[i] / total }));
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
