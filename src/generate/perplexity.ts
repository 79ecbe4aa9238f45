/**
 * Perplexity of a token stream under an Engine, by the method of llama.cpp's `llama-perplexity`
 * (its default, non-strided mode), so our figures and its can be compared on the same file:
 *
 * - the stream is cut into consecutive, non-overlapping chunks of `context` tokens from its
 *   start (a partial last chunk is dropped), and each chunk runs in a fresh sequence from
 *   position 0;
 * - when the vocabulary adds a BOS token, it replaces each chunk's first token;
 * - only the second half of each chunk is scored: the logits at positions context/2 …
 *   context − 2, each against the token that follows, so every scored prediction sees at least
 *   context/2 tokens;
 * - PPL = exp(mean NLL over all scored positions), ± exp(mean) · the mean's standard error.
 *
 * With a base engine (same vocabulary), both run over the same chunks and every scored
 * position is also compared (./kl-divergence.ts).
 */
import type { Engine } from "../model/engine";
import { Moments, expEstimate, type Estimate } from "./eval-stats";
import { KlAccumulator, comparePosition, type KlDivergence } from "./kl-divergence";
import { logSumExp } from "./logprobs";

export interface ChunkPlan {
  context: number;
  chunks: number;
  /** Positions before `first` are context only; the logits at first … context − 2 are scored. */
  first: number;
  scoredPerChunk: number;
}

/** The smallest context that scores anything: context/2 … context − 2 must not be empty. */
export const MIN_CONTEXT = 4;

/**
 * The chunks a stream of `tokenCount` tokens gives. Like llama-perplexity, a stream shorter than
 * two chunks is refused: the first chunk's scored half would be all there is to average.
 */
export function planChunks(tokenCount: number, context: number, maxChunks = Infinity): ChunkPlan {
  if (!Number.isInteger(context) || context < MIN_CONTEXT || context % 2 !== 0) {
    throw new RangeError(`the context must be an even integer ≥ ${MIN_CONTEXT} (half of it is scored), got ${context}`);
  }
  if (!(maxChunks >= 1)) throw new RangeError(`the chunk limit must be ≥ 1, got ${maxChunks}`);
  if (tokenCount < 2 * context) {
    throw new RangeError(`the text is ${tokenCount} tokens; a context of ${context} needs at least ${2 * context} (two chunks)`);
  }
  const first = context / 2;
  return { context, chunks: Math.min(Math.floor(tokenCount / context), maxChunks), first, scoredPerChunk: context - first - 1 };
}

export interface PerplexityOptions {
  context: number;
  maxChunks?: number;
  /** The BOS id when the vocabulary adds one (the stream should then start with it): it replaces each chunk's first token. */
  bos?: number;
  /** A base model to compare against, over the same chunks. */
  base?: Engine;
  /** Scored positions per forward call: each holds that many logit vectors at once (default 64). */
  piece?: number;
  /** After each chunk: chunks done, chunks in all, and the perplexity so far. */
  onChunk?(done: number, total: number, ppl: number): void;
}

export interface PerplexityResult {
  plan: ChunkPlan;
  /** Each scored position's negative log-likelihood (nats), in stream order. */
  nll: Float64Array;
  /** exp(mean NLL) ± its uncertainty. */
  ppl: Estimate;
  meanNll: Estimate;
  /** The perplexity over chunks 1 … i, for each i (llama-perplexity's running [i] list). */
  runningPpl: number[];
  kl?: KlDivergence;
}

export async function perplexity(model: Engine, tokens: readonly number[], opts: PerplexityOptions): Promise<PerplexityResult> {
  const plan = planChunks(tokens.length, opts.context, opts.maxChunks);
  const { base } = opts;
  const engines = base ? [model, base] : [model];
  const vocab = model.config.vocabSize;
  if (base && base.config.vocabSize !== vocab) {
    throw new RangeError(`the model has ${vocab} tokens and the base ${base.config.vocabSize}: they must share a vocabulary`);
  }
  for (const e of engines) {
    if (plan.context > e.config.contextLength) throw new RangeError(`a context of ${plan.context} exceeds the model's context length ${e.config.contextLength}`);
  }
  const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
  if (bad !== undefined) throw new RangeError(`token id ${bad} is outside the vocabulary (0..${vocab - 1})`);
  const piece = opts.piece ?? 64;
  if (!Number.isInteger(piece) || piece < 1) throw new RangeError(`piece must be a positive integer, got ${piece}`);

  const { context, first, chunks, scoredPerChunk } = plan;
  const nll = new Float64Array(chunks * scoredPerChunk);
  const moments = new Moments();
  const kl = base ? new KlAccumulator() : undefined;
  const runningPpl: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const chunk = tokens.slice(c * context, (c + 1) * context);
    if (opts.bos !== undefined) chunk[0] = opts.bos;
    const seqs = engines.map((e) => e.newSequence());
    try {
      // The context half's logits are not scored; forward() still returns its last position's.
      for (let e = 0; e < engines.length; e++) await engines[e].forward(seqs[e], chunk.slice(0, first), 0);
      // The last token is only ever a target, so it is never fed.
      for (let p0 = first; p0 < context - 1; p0 += piece) {
        const p1 = Math.min(p0 + piece, context - 1);
        const logits: Float32Array[][] = [];
        for (let e = 0; e < engines.length; e++) logits.push(await engines[e].forward(seqs[e], chunk.slice(p0, p1), p0, { allLogits: true }));
        for (let j = 0; j < p1 - p0; j++) {
          const target = chunk[p0 + j + 1];
          const q = logits[0][j];
          let v: number;
          if (kl) {
            const cmp = comparePosition(q, logits[1][j], target);
            kl.add(cmp);
            v = cmp.nll;
          } else v = logSumExp(q) - q[target];
          nll[c * scoredPerChunk + (p0 - first) + j] = v;
          moments.add(v);
        }
      }
    } finally {
      for (let e = 0; e < engines.length; e++) engines[e].releaseSequence?.(seqs[e]);
    }
    runningPpl.push(Math.exp(moments.sum / moments.n));
    opts.onChunk?.(c + 1, chunks, runningPpl[c]);
  }
  const meanNll = moments.mean();
  return { plan, nll, ppl: expEstimate(meanNll), meanNll, runningPpl, kl: kl?.result() };
}
