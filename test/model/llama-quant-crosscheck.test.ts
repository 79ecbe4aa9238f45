/**
 * Every quantized type convert/synth write, on the `small` preset (rows of
 * 256 and 768: real K-quant blocks), loaded by llama.cpp (node-llama-cpp
 * 3.21.1) and by our reference pass from the same file, teacher-forced over
 * the same tokens. Both dequantize the same weights; llama.cpp also rounds
 * activations to 8 bits (Q8_0/Q8_K) before each product, so the next-token
 * distributions differ a little (small KL), and the top token agrees where
 * its margin is clear.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../../src/generate/sampler";
import { typeName } from "../../src/gguf/quant";
import { openGGUF } from "../../src/gguf/node";
import { writeStableLMGGUF } from "../../weights-tools/convert";
import { synthGGUF } from "../../weights-tools/fixtures";
import { planTensors, planTypes } from "../../weights-tools/mapping";
import type { OutType } from "../../weights-tools/quant-mix";
import { rowsOf, type TensorSource } from "../../weights-tools/safetensors";
import { presetParams, synthModelName, synthSource } from "../../weights-tools/synth";
import { crosscheckFile } from "../helpers/distributions";

const POSITIONS = 8;
const hp = presetParams("small");
const dir = mkdtempSync(join(tmpdir(), "edgelm-quant-crosscheck-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The synthetic weights drawn once and kept: every type below quantizes the same values. */
function keptSource(inner: TensorSource): TensorSource {
  const kept = new Map<string, Float32Array>();
  return {
    ...inner,
    async readRows(name, start, count) {
      let all = kept.get(name);
      if (!all) kept.set(name, (all = await inner.readRows(name, 0, rowsOf(inner.shape(name)).rows)));
      const { rowLength } = rowsOf(inner.shape(name));
      return all.slice(start * rowLength, (start + count) * rowLength);
    },
  };
}
const source = keptSource(synthSource(hp, 0));
// Drawing the weights (~51M values, mostly the embedding and the head) is a few seconds; not part of any one type's test.
beforeAll(async () => {
  for (const name of source.names()) await source.readRows(name, 0, 1);
}, 300_000);

async function crosscheck(type: OutType) {
  const path = join(dir, `small-${type}.gguf`);
  await writeStableLMGGUF(hp, source, path, type, { name: synthModelName("small"), onWarning: () => {} });
  const file = await openGGUF(path);
  await file.close();
  // The file holds the mix's types, tensor by tensor.
  const plan = planTensors(hp, () => true);
  const want = planTypes(plan, type, hp).map((t, i) => `${plan[i].name} ${typeName(t.type)}`);
  expect(file.tensors.map((t) => `${t.name} ${typeName(t.type)}`)).toEqual(want);

  const r = seededRandom(11);
  const tokens = Array.from({ length: POSITIONS }, () => Math.floor(r() * 100256));
  const d = await crosscheckFile(path, tokens);
  console.log(`[small ${type}] mean KL ${d.meanKL.toExponential(2)}, max KL ${d.maxKL.toExponential(2)}, max |Δ log p| ${d.maxDiff.toExponential(2)}; top-1 agrees at ${d.agree}/${d.clear} clear positions (of ${POSITIONS})`);
  return d;
}

/**
 * Bounds about 5× and 3× above what was measured on 12 positions (largest
 * per-position KL 1.0e-4 for the 32-element types, 2.0e-4 for the K-quants;
 * |Δ log p| up to 9.2e-2; docs/quantization.md, Checked against llama.cpp).
 * The K-quants' activations are rounded in blocks of 256 (Q8_K), the others'
 * in blocks of 32: the same order of error, so one bound serves all.
 */
const MAX_KL = 1e-3;
const MAX_DIFF = 0.3;
const TYPES: OutType[] = ["q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"];

describe("our quantized files in llama.cpp vs our reference pass (small preset)", () => {
  for (const type of TYPES) {
    it(`${type}: llama.cpp loads it; small KL, same top-1 token wherever the margin is clear`, async () => {
      const { maxKL, maxDiff, clear, agree } = await crosscheck(type);
      expect(maxKL).toBeLessThan(MAX_KL);
      expect(maxDiff).toBeLessThan(MAX_DIFF);
      expect(clear).toBeGreaterThanOrEqual(POSITIONS / 2);
      expect(agree).toBe(clear);
    }, 180_000);
  }

  // tiny's rows (64, 160) are not whole 256-blocks: q3_k_m falls back to Q4_0, Q5_0 and Q5_1, output.weight to Q8_0.
  it("tiny q3_k_m (every fallback type): llama.cpp loads it and agrees", async () => {
    const path = await synthGGUF("tiny", "q3_k_m");
    const file = await openGGUF(path);
    await file.close();
    expect(new Set(file.tensors.map((t) => typeName(t.type)))).toEqual(new Set(["F32", "Q4_0", "Q5_0", "Q5_1", "Q8_0"]));
    const r = seededRandom(12);
    const d = await crosscheckFile(path, Array.from({ length: POSITIONS }, () => Math.floor(r() * 100256)));
    console.log(`[tiny q3_k_m] max KL ${d.maxKL.toExponential(2)}, max |Δ log p| ${d.maxDiff.toExponential(2)}; top-1 agrees at ${d.agree}/${d.clear}`);
    expect(d.maxKL).toBeLessThan(MAX_KL);
    expect(d.agree).toBe(d.clear);
  }, 180_000);
});
