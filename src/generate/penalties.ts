/**
 * Repetition, presence and frequency penalties, written into the logits in place
 * and undone after the draw. Only the tokens seen so far change, so a step costs
 * the length of the context, not a copy of the 100k-entry vocabulary; the values
 * written are the ones a penalised copy would hold (the same float32 roundings,
 * the same order: repetition first, then the additive penalties).
 */
import type { SamplingOptions } from "./sampler";

/** Undoes what `penalise` wrote; call it exactly once. */
export type Restore = () => void;

const noop: Restore = () => {};

// Scratch shared by every call: sampling is synchronous, so one call owns it at a time.
// `mark[t] === epoch` means t was already saved (and counted) in this call.
let mark = new Int32Array(0);
let count = new Int32Array(0);
let epoch = 0;
let savedIds = new Int32Array(64);
let savedVals = new Float32Array(64);

function ensure(vocab: number, touched: number): void {
  if (mark.length < vocab) {
    mark = new Int32Array(vocab);
    count = new Int32Array(vocab);
    epoch = 0;
  }
  if (savedIds.length < touched) {
    savedIds = new Int32Array(touched);
    savedVals = new Float32Array(touched);
  }
  // A fresh epoch stands for clearing `mark`; clear for real only when the counter wraps.
  if (++epoch === 0x7fffffff) {
    mark.fill(0);
    epoch = 1;
  }
}

/**
 * Penalises `logits` in place: `context` is every token so far (repetition penalty, HF),
 * `generated` only the new ones (presence and frequency penalties, OpenAI). Ids outside
 * the vocabulary are skipped, as writes past a typed array's end would be.
 */
export function penalise(logits: Float32Array, opts: SamplingOptions, context: readonly number[], generated: readonly number[]): Restore {
  const rep = opts.repetitionPenalty !== 1;
  const additive = opts.presencePenalty !== 0 || opts.frequencyPenalty !== 0;
  if (!rep && !additive) return noop;
  const V = logits.length;
  ensure(V, (rep ? context.length : 0) + (additive ? generated.length : 0));
  const inVocab = (t: number) => Number.isInteger(t) && t >= 0 && t < V;
  let saved = 0;
  const save = (t: number) => {
    if (mark[t] === epoch) return;
    mark[t] = epoch;
    count[t] = 0;
    savedIds[saved] = t;
    savedVals[saved++] = logits[t];
  };

  if (rep) {
    const p = opts.repetitionPenalty;
    for (const t of context) {
      if (!inVocab(t) || mark[t] === epoch) continue; // each distinct token once
      save(t);
      logits[t] = logits[t] > 0 ? logits[t] / p : logits[t] * p;
    }
  }
  if (additive) {
    // Count first: a token's subtraction uses its final count, once.
    for (const t of generated) {
      if (!inVocab(t)) continue;
      save(t);
      count[t]++;
    }
    for (let k = 0; k < saved; k++) {
      const t = savedIds[k];
      const c = count[t];
      if (c > 0) logits[t] -= opts.presencePenalty + opts.frequencyPenalty * c;
    }
  }
  const n = saved;
  const ids = savedIds;
  const vals = savedVals;
  return () => {
    for (let k = 0; k < n; k++) logits[ids[k]] = vals[k];
  };
}

/** The penalised logits as a new array (the input is left as it was). */
export function applyPenalties(logits: Float32Array, opts: SamplingOptions, context: readonly number[], generated: readonly number[]): Float32Array {
  const out = logits.slice();
  penalise(out, opts, context, generated);
  return out;
}
