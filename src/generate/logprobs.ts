/**
 * Log-probabilities reported to clients. They are the model's own distribution (log-softmax of
 * the raw logits, before penalties and warpers), as vLLM reports by default: a client comparing
 * runs with different sampling settings then sees the same numbers for the same context.
 */

export interface TokenLogprob {
  id: number;
  logprob: number;
}

/** log Σ exp(x), computed around the max so large logits don't overflow. */
export function logSumExp(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/**
 * The `k` most likely tokens, best first, by a single pass with a small sorted buffer:
 * k ≤ 5 here, so this beats sorting a 100k vocabulary per token.
 */
export function topK(logits: ArrayLike<number>, k: number, lse: number): TokenLogprob[] {
  const best: TokenLogprob[] = [];
  if (k <= 0) return best;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (best.length === k && v <= best[k - 1].logprob) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].logprob < v) at--;
    best.splice(at, 0, { id: i, logprob: v });
    if (best.length > k) best.pop();
  }
  for (const b of best) b.logprob -= lse;
  return best;
}
