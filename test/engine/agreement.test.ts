/**
 * The wasm engine against the reference forward pass (src/model/reference.ts)
 * on the same GGUF files, teacher-forced: every position's logits.
 *
 * Float files (F32, F16, BF16): the engine keeps f32 activations and an f16 KV
 * cache; the metric is, per position, max |Δ logit| / max |reference logit|,
 * bound 1e-3 at every position (measured ~2.4e-4: the f16 cache dominates).
 * Quantized files (Q4_0, Q8_0): activations are rounded to int8 per 32-block
 * before each product (as llama.cpp does), which moves logits by ~1–2% of
 * their scale, so the check is top-1 agreement at ≥ 99% of the positions whose
 * reference top-2 margin exceeds 1% of max |logit| (helpers.ts `agreement`).
 *
 * Runs once per kernel build in BUILDS (default simd and scalar).
 */
import { afterAll, describe, expect, it } from "vitest";
import { loadReferenceModelFromStream } from "../../src/model/load";
import { loadReferenceModel } from "../../src/model/node";
import { TensorType } from "../../src/gguf/types";
import { synthGGUF } from "../../weights-tools/fixtures";
import { BUILDS, agreement, engineFor, engineFromBytes, randomTokens, relErr, smallGGUF, streamOf } from "./helpers";

// Reference logits are slow (float64 TypeScript): computed once per file, shared by every build.
const refCache = new Map<string, Promise<Float32Array[]>>();
function referenceLogits(path: string, tokens: number[]): Promise<Float32Array[]> {
  const key = `${path}:${tokens.length}:${tokens[0]}`;
  let p = refCache.get(key);
  if (!p) {
    p = loadReferenceModel(path).then(({ model }) => model.forward(model.newSequence(), tokens, 0, { allLogits: true }));
    refCache.set(key, p);
  }
  return p;
}
afterAll(() => refCache.clear());

const report = (what: string, s: string) => console.log(`[engine ${what}] ${s}`);

describe.each(BUILDS)("wasm engine (%s kernels) vs reference", (build) => {
  for (const [preset, type] of [["tiny", "f32"], ["tiny", "f16"], ["tiny", "bf16"], ["tiny-parallel", "f32"]] as const) {
    it(`${preset} ${type.toUpperCase()}: logits within 1e-3 of max |logit| at every position`, async () => {
      const path = await synthGGUF(preset, type);
      const tokens = randomTokens(64, 100256, 3);
      const ref = await referenceLogits(path, tokens);
      const e = await engineFor(path, build, { prefillChunk: 24 });
      const ours = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
      expect(ours).toHaveLength(tokens.length);
      const errs = ours.map((o, i) => relErr(o, ref[i]));
      const worst = Math.max(...errs);
      report(`${build} ${preset} ${type}`, `max over ${tokens.length} positions of max|Δ|/max|logit| = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-3);
      // The metric can fail: a one-position shift of the input is far outside it.
      expect(relErr(ours[1], ref[0])).toBeGreaterThan(1e-2);
    });
  }

  it("tiny Q4_0: top-1 agrees at ≥ 99% of clear positions, teacher-forced over 256 positions", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    const tokens = randomTokens(256, 100256, 5);
    const ref = await referenceLogits(path, tokens);
    const e = await engineFor(path, build);
    const ours = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    const a = agreement(ours, ref);
    report(`${build} tiny q4_0`, `top-1 agrees at ${a.agree}/${a.clear} clear positions (of ${a.total}); max rel err ${Math.max(...ours.map((o, i) => relErr(o, ref[i]))).toExponential(2)}`);
    expect(a.clear).toBeGreaterThan(a.total / 2);
    expect(a.agree).toBeGreaterThanOrEqual(Math.ceil(0.99 * a.clear));
  });

  it("tiny Q8_0: top-1 agrees at ≥ 99% of clear positions (64 positions)", async () => {
    const path = await synthGGUF("tiny", "q8_0");
    const tokens = randomTokens(64, 100256, 7);
    const ref = await referenceLogits(path, tokens);
    const e = await engineFor(path, build);
    const a = agreement(e.forward(e.newSequence(), tokens, 0, { allLogits: true }), ref);
    report(`${build} tiny q8_0`, `top-1 agrees at ${a.agree}/${a.clear} clear positions`);
    expect(a.clear).toBeGreaterThan(a.total / 2);
    expect(a.agree).toBeGreaterThanOrEqual(Math.ceil(0.99 * a.clear));
  });

  it("Q4_0 layers + Q6_K output head (llama.cpp's layout), 510-row vocabulary: agrees with the reference", async () => {
    const bytes = await smallGGUF({ output: TensorType.Q6_K, vocab: 510, seed: 11 });
    const tokens = randomTokens(96, 510, 9);
    const { model } = await loadReferenceModelFromStream(streamOf(bytes));
    const ref = model.forward(model.newSequence(), tokens, 0, { allLogits: true });
    const e = await engineFromBytes(bytes, build);
    expect(e.weights.output!.kind).toBe("q6r");
    const ours = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    const a = agreement(ours, ref);
    report(`${build} small q4_0 + q6_k head`, `top-1 agrees at ${a.agree}/${a.clear} clear positions`);
    expect(a.clear).toBeGreaterThan(a.total / 2);
    expect(a.agree).toBeGreaterThanOrEqual(Math.ceil(0.99 * a.clear));
  });

  it("F16 layers, BF16 embedding, F32 head, GQA 8/2, qk-norm, parallel, no output_norm bias: within 1e-3", async () => {
    const bytes = await smallGGUF({ matrix: TensorType.F16, embed: TensorType.BF16, output: TensorType.F32, vocab: 301, heads: 8, kvHeads: 2, parallel: true, seed: 4 });
    const tokens = randomTokens(40, 301, 2);
    const { model } = await loadReferenceModelFromStream(streamOf(bytes));
    const ref = model.forward(model.newSequence(), tokens, 0, { allLogits: true });
    const e = await engineFromBytes(bytes, build, { prefillChunk: 16 });
    const worst = Math.max(...e.forward(e.newSequence(), tokens, 0, { allLogits: true }).map((o, i) => relErr(o, ref[i])));
    report(`${build} small f16/bf16 gqa parallel`, `max rel err ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-3);
  });
});

// Every 1.6B tensor shape (hidden 2048, 32 heads, ffn 5632, vocab 100352), 2 layers. The
// reference costs seconds per position here, so a few positions, one build.
describe("wasm engine at 1.6B shapes (full2l Q4_0)", () => {
  it("top-1 agrees with the reference at the clear positions of 6", async () => {
    const path = await synthGGUF("full2l", "q4_0");
    const tokens = randomTokens(6, 100256, 13);
    const ref = await referenceLogits(path, tokens);
    const e = await engineFor(path, BUILDS[0]);
    const ours = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    const a = agreement(ours, ref);
    report(`${BUILDS[0]} full2l q4_0`, `top-1 agrees at ${a.agree}/${a.clear} clear positions; max rel err ${Math.max(...ours.map((o, i) => relErr(o, ref[i]))).toExponential(2)}`);
    expect(a.clear).toBeGreaterThanOrEqual(3);
    expect(a.agree).toBe(a.clear);
  });
});
