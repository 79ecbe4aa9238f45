import { describe, expect, it } from "vitest";
import { Moments, percentile } from "../../src/generate/eval-stats";
import { comparePosition } from "../../src/generate/kl-divergence";
import { perplexity, planChunks } from "../../src/generate/perplexity";
import { referenceEngine } from "../../src/model/engine";
import { loadReferenceModel } from "../../src/model/node";
import { Tokenizer } from "../../src/tokenizer/node";
import { synthGGUF } from "../../weights-tools/fixtures";
import { llamaLogProbs } from "../helpers/llama";
import { TEXT, directKl, directPerplexity } from "./perplexity-direct";

/** Relative agreement with the oracle: both are float64 over the same reference logits, differing only in summation order. */
const REL = 1e-12;
const close = (got: number, want: number, rel = REL) => expect(Math.abs(got - want), `${got} vs ${want}`).toBeLessThanOrEqual(rel * Math.abs(want));

describe("chunk plan (llama-perplexity's)", () => {
  it("cuts whole chunks, scores the second half but the last position, and refuses what it cannot score", () => {
    expect(planChunks(1100, 512)).toEqual({ context: 512, chunks: 2, first: 256, scoredPerChunk: 255 });
    expect(planChunks(1536, 512)).toMatchObject({ chunks: 3 });
    expect(planChunks(5000, 512, 3)).toMatchObject({ chunks: 3 });
    expect(planChunks(10, 4)).toEqual({ context: 4, chunks: 2, first: 2, scoredPerChunk: 1 });
    expect(() => planChunks(1023, 512)).toThrow("the text is 1023 tokens; a context of 512 needs at least 1024 (two chunks)");
    expect(() => planChunks(1000, 15)).toThrow(/even integer ≥ 4/);
    expect(() => planChunks(1000, 2)).toThrow(/even integer ≥ 4/);
    expect(() => planChunks(1000, 16, 0)).toThrow(/chunk limit/);
  });
});

describe("sample statistics", () => {
  it("mean ± standard error and interpolated percentiles", () => {
    const m = new Moments();
    for (const x of [1, 2, 3, 4]) m.add(x);
    // Population variance 1.25, so the mean's error is √(1.25 / 3).
    expect(m.mean()).toEqual({ value: 2.5, uncertainty: Math.sqrt(1.25 / 3) });
    const sorted = [1, 2, 3, 4];
    expect(percentile(sorted, 0.5)).toBe(2.5);
    expect(percentile(sorted, 0.99)).toBeCloseTo(3.97, 12);
    expect(percentile(sorted, 0)).toBe(1);
    expect(percentile(sorted, 1)).toBe(4);
  });
});

describe("perplexity over the reference engine equals a direct float64 computation", async () => {
  const f32 = await synthGGUF("tiny", "f32");
  const { model, file } = await loadReferenceModel(f32);
  const { model: q8 } = await loadReferenceModel(await synthGGUF("tiny", "q8_0"));
  const tokens = Tokenizer.fromGGUF(file.metadata).encode(TEXT);
  const context = 16;

  it("the text gives enough tokens for these tests", () => {
    expect(tokens.length).toBeGreaterThanOrEqual(4 * context);
  });

  it("PPL, in pieces smaller than a chunk's half, matches whole-chunk log-softmax", async () => {
    const chunks: [number, number][] = [];
    const r = await perplexity(referenceEngine(model), tokens, { context, maxChunks: 3, piece: 3, onChunk: (d, t) => chunks.push([d, t]) });
    expect(chunks).toEqual([[1, 3], [2, 3], [3, 3]]);
    expect(r.nll.length).toBe(3 * 7);
    close(r.ppl.value, await directPerplexity(model, tokens, context, 3));
    close(r.runningPpl[0], await directPerplexity(model, tokens, context, 1));
    expect(r.runningPpl[2]).toBe(r.ppl.value);
    expect(r.ppl.uncertainty).toBeGreaterThan(0);
    expect(r.kl).toBeUndefined();
  });

  it("llama.cpp's log-probs (node-llama-cpp) over the same chunks give the same PPL, within its f32 rounding", async () => {
    const r = await perplexity(referenceEngine(model), tokens, { context, maxChunks: 2 });
    const theirs = await directPerplexity((chunk) => llamaLogProbs(f32, chunk, model.config.vocabSize), tokens, context, 2);
    // Their log-probs agree with the reference's within 1e-4 per token (test/model/llama-crosscheck.test.ts), so exp(mean) within ~1e-4.
    console.log(`[perplexity vs llama.cpp] ours ${r.ppl.value}, theirs ${theirs}, relative difference ${(Math.abs(r.ppl.value - theirs) / theirs).toExponential(2)}`);
    expect(Math.abs(r.ppl.value - theirs) / theirs).toBeLessThan(1e-4);
  });

  it("a BOS id replaces each chunk's first token, and changes the result", async () => {
    const bos = 100257;
    const r = await perplexity(referenceEngine(model), tokens, { context, maxChunks: 2, bos });
    close(r.ppl.value, await directPerplexity(model, tokens, context, 2, bos));
    expect(Math.abs(r.ppl.value - await directPerplexity(model, tokens, context, 2))).toBeGreaterThan(1e-6 * r.ppl.value);
  });

  it("a model against itself: KL 0 everywhere, 100% top-1 agreement, the same PPL", async () => {
    const e = referenceEngine(model);
    const r = await perplexity(e, tokens, { context, maxChunks: 2, base: e });
    const kl = r.kl!;
    expect(kl.positions).toBe(14);
    expect(kl.kld.mean.value).toBe(0);
    expect(kl.kld.percentiles.max).toBe(0);
    expect(kl.sameTop).toEqual({ value: 1, uncertainty: 0 });
    expect(kl.pplBase.value).toBe(r.ppl.value);
    expect(kl.lnPplRatio.value).toBe(0);
    expect(kl.deltaP.rms.value).toBe(0);
  });

  it("Q8_0 against its F32 source: KL > 0 and small, equal to Σ p_base·ln(p_base/p) per position", async () => {
    // A short context keeps the float64 head (100352 × 64, per position, both models, twice) affordable.
    const ctx = 8;
    const r = await perplexity(referenceEngine(q8), tokens, { context: ctx, maxChunks: 2, base: referenceEngine(model), piece: 2 });
    const kl = r.kl!;
    const want = await directKl(q8, model, tokens, ctx, 2);
    expect(kl.positions).toBe(6);
    expect(want).toHaveLength(6);
    const mean = want.reduce((s, w) => s + w.kl, 0) / want.length;
    close(kl.kld.mean.value, mean, 1e-9);
    expect(kl.kld.mean.value).toBeGreaterThan(0);
    expect(kl.kld.mean.value).toBeLessThan(0.01);
    const sorted = want.map((w) => w.kl).sort((a, b) => a - b);
    close(kl.kld.percentiles.p99, percentile(sorted, 0.99), 1e-9);
    close(kl.kld.percentiles.max, sorted[sorted.length - 1], 1e-9);
    expect(kl.sameTop.value).toBe(want.filter((w) => w.sameTop).length / want.length);
    close(r.ppl.value, await directPerplexity(q8, tokens, ctx, 2));
    close(kl.pplBase.value, await directPerplexity(model, tokens, ctx, 2));
  });

  it("refuses a base of another vocabulary size, a context beyond the model's, and ids outside the vocabulary", async () => {
    const e = referenceEngine(model);
    const small = { ...e, config: { ...e.config, vocabSize: 1000 } };
    await expect(perplexity(e, tokens, { context, base: small })).rejects.toThrow("they must share a vocabulary");
    await expect(perplexity({ ...e, config: { ...e.config, contextLength: 8 } }, tokens, { context })).rejects.toThrow("exceeds the model's context length 8");
    await expect(perplexity(e, [...tokens.slice(0, 40), 100352], { context })).rejects.toThrow("token id 100352 is outside the vocabulary");
  });

  it("comparePosition: identical logits give exactly zero", () => {
    const logits = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
    expect(comparePosition(logits, logits, 7)).toEqual({ nll: expect.any(Number), nllBase: expect.any(Number), kld: 0, pDiff: 0, sameTop: true });
  });
});
