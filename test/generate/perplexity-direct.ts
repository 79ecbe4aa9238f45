/**
 * The oracle for the perplexity tests: llama-perplexity's method written out plainly over the
 * reference model — whole chunks fed at once with every position's logits, log-softmax in
 * float64 — sharing no code with src/generate/perplexity.ts. `logProbs` may come from another
 * engine (llama.cpp) instead.
 */
import type { ReferenceModel } from "../../src/model/reference";
import { logSoftmax } from "../helpers/llama";

/** Arbitrary English, long enough for a few chunks of 16 tokens; fixed so runs compare. */
export const TEXT =
  "The lighthouse keeper wrote down the weather every morning at six. Wind from the north-west, " +
  "a grey sea, two fishing boats leaving the harbour before the tide turned. In the afternoon he " +
  "painted the railings, fed the cat, and read old letters from his sister, who lived inland and " +
  "had never once seen a storm break over the rocks. At night the lamp turned slowly, sweeping " +
  "its long white arm across the water, and somewhere out there a ship counted the flashes.";

/** Every position's log-probabilities for one chunk fed from position 0. */
export type ChunkLogProbs = (chunk: number[]) => Float64Array[] | Promise<Float64Array[]>;

function source(model: ReferenceModel | ChunkLogProbs): ChunkLogProbs {
  if (typeof model === "function") return model;
  return (chunk) => model.forward(model.newSequence(), chunk, 0, { allLogits: true }).map(logSoftmax);
}

/** Log-softmax of the scored positions (context/2 … context−2) of each chunk, and the tokens they predict. */
export async function scoredLogProbs(model: ReferenceModel | ChunkLogProbs, tokens: readonly number[], context: number, chunks: number, bos?: number) {
  const out: { logp: Float64Array; target: number }[] = [];
  for (let c = 0; c < chunks; c++) {
    const chunk = tokens.slice(c * context, (c + 1) * context);
    if (bos !== undefined) chunk[0] = bos;
    const all = await source(model)(chunk);
    for (let p = context / 2; p <= context - 2; p++) out.push({ logp: all[p], target: chunk[p + 1] });
  }
  return out;
}

export async function directPerplexity(model: ReferenceModel | ChunkLogProbs, tokens: readonly number[], context: number, chunks: number, bos?: number): Promise<number> {
  const scored = await scoredLogProbs(model, tokens, context, chunks, bos);
  return Math.exp(-scored.reduce((s, { logp, target }) => s + logp[target], 0) / scored.length);
}

/** Per scored position: KL(base ‖ model) as Σ p_base·ln(p_base/p), and whether both argmaxes agree. */
export async function directKl(model: ReferenceModel, base: ReferenceModel, tokens: readonly number[], context: number, chunks: number) {
  const q = await scoredLogProbs(model, tokens, context, chunks);
  const b = await scoredLogProbs(base, tokens, context, chunks);
  const top = (a: Float64Array) => a.reduce((best, x, i) => (x > a[best] ? i : best), 0);
  return q.map(({ logp }, i) => {
    const pb = b[i].logp;
    let kl = 0;
    for (let t = 0; t < pb.length; t++) {
      const p = Math.exp(pb[t]);
      if (p > 0) kl += p * Math.log(p / Math.exp(logp[t]));
    }
    return { kl, sameTop: top(logp) === top(pb) };
  });
}
