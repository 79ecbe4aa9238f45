/**
 * Our reference forward pass against llama.cpp on the same GGUF files,
 * teacher-forced position by position over random token sequences.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/generate/sampler";
import { loadReferenceModel } from "../../src/model/node";
import { synthGGUF } from "../../weights-tools/fixtures";
import { llamaLogProbs, logSoftmax, top2 } from "../helpers/llama";

const POSITIONS = 48;

async function compare(preset: string, type: string, positions = POSITIONS, seed = 1) {
  const path = await synthGGUF(preset, type);
  const { model } = await loadReferenceModel(path);
  const r = seededRandom(seed);
  const tokens = Array.from({ length: positions }, () => Math.floor(r() * 100256));
  const ours = model.forward(model.newSequence(), tokens, 0, { allLogits: true }).map(logSoftmax);
  const theirs = await llamaLogProbs(path, tokens, model.config.vocabSize);
  let maxDiff = 0;
  let clear = 0;
  let agree = 0;
  for (let i = 0; i < tokens.length; i++) {
    for (let t = 0; t < ours[i].length; t++) {
      // Tokens llama.cpp gives (near-)zero probability carry no signal in f32.
      if (theirs[i][t] > -30) maxDiff = Math.max(maxDiff, Math.abs(ours[i][t] - theirs[i][t]));
    }
    const a = top2(ours[i]);
    const b = top2(theirs[i]);
    if (a.margin > 0.05) {
      clear++;
      if (a.top === b.top) agree++;
    }
  }
  // Reported so the tolerances in the issue notes can be re-measured: npx vitest run test/model/llama-crosscheck.test.ts
  console.log(`[${preset} ${type}] max |Δ log p| = ${maxDiff.toExponential(2)}; top-1 agrees at ${agree}/${clear} clear positions (of ${tokens.length})`);
  return { maxDiff, clear, agree };
}

describe("reference vs llama.cpp (node-llama-cpp 3.21.1)", () => {
  // F32 weights and an f32 KV cache on both sides: only float rounding differs.
  it("tiny F32: next-token log-probs agree within 1e-4 at every position", async () => {
    const { maxDiff, clear, agree } = await compare("tiny", "f32");
    expect(maxDiff).toBeLessThan(1e-4);
    expect(agree).toBe(clear);
  });

  it("tiny-parallel F32 (parallel residual, qk-norm, GQA): within 1e-4", async () => {
    const { maxDiff, clear, agree } = await compare("tiny-parallel", "f32");
    expect(maxDiff).toBeLessThan(1e-4);
    expect(agree).toBe(clear);
  });

  // llama.cpp rounds activations to f16 for F16/BF16 weights and to Q8_0 for
  // quantized ones; we dequantize weights and keep activations exact. Same
  // weights, so the top token must agree wherever its margin is clear.
  // Bounds on |Δ log p| sit about 3× above what was measured (2.9e-3, 2.1e-2, 7.2e-2, 7.1e-2).
  const bound: Record<string, number> = { f16: 0.01, bf16: 0.06, q8_0: 0.2, q4_0: 0.2 };
  for (const type of ["f16", "bf16", "q8_0", "q4_0"]) {
    it(`tiny ${type.toUpperCase()}: same top-1 token wherever the margin is clear`, async () => {
      const { maxDiff, clear, agree } = await compare("tiny", type);
      expect(clear).toBeGreaterThan(POSITIONS / 2);
      expect(agree).toBe(clear);
      expect(maxDiff).toBeLessThan(bound[type]);
    });
  }

  // All 1.6B shapes (hidden 2048, 32 heads, rotary 16, ffn 5632, vocab 100352), 2 layers.
  it("full2l F32: within 1e-4 at 1.6B shapes", async () => {
    const { maxDiff, clear, agree } = await compare("full2l", "f32", 16);
    expect(maxDiff).toBeLessThan(1e-4);
    expect(agree).toBe(clear);
  });

  it("full2l Q4_0: same top-1 token wherever the margin is clear", async () => {
    const { maxDiff, clear, agree } = await compare("full2l", "q4_0", 12);
    expect(clear).toBeGreaterThan(6);
    expect(agree).toBe(clear);
    expect(maxDiff).toBeLessThan(0.2);
  });
});
