/**
 * The last layer runs only the rows whose logits are wanted, past every row's
 * keys and values (WasmEngine.layers' `keep`). What each caller gets must be
 * the bits of the full computation, which `allLogits` still runs (every row
 * is wanted there): a prompt's last logits, the decode steps after it (they
 * read the keys and values the shortened layer wrote), and a batch whose
 * kept rows are scattered — for every matrix kind, K-quants (activations in
 * the 256 grain) included, with prompts longer than a chunk (a chunk whose
 * rows are all dropped), and on 3 threads. Then the work itself: the Q4_0
 * products of a prompt multiply exactly the rows the rule says.
 */
import { afterAll, describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import type { WasmEngine } from "../../src/engine/index";
import type { BatchEntry } from "../../src/model/engine";
import { kQuantTensors } from "../kernels/kquant-blocks";
import { argmax, BUILDS, engineFor, randomTokens, sameBits, tempModels, type SmallModelSpec } from "./helpers";

const VOCAB = 510;
const MODELS: [string, SmallModelSpec][] = [
  ["Q4_0 layers, Q6_K head", { vocab: VOCAB, ffn: 544, kvHeads: 2, output: TensorType.Q6_K, seed: 41 }],
  ["Q8_0", { vocab: VOCAB, ffn: 544, kvHeads: 2, matrix: TensorType.Q8_0, seed: 42 }],
  ["F16 layers, F32 head", { vocab: VOCAB, ffn: 544, kvHeads: 2, matrix: TensorType.F16, output: TensorType.F32, seed: 43 }],
  ["BF16, parallel residual with qk-norm", { vocab: VOCAB, ffn: 544, kvHeads: 2, matrix: TensorType.BF16, parallel: true, seed: 44 }],
  [
    "Q4_K layers and embedding, Q6_K head",
    { hidden: 256, ffn: 512, layers: 2, vocab: VOCAB, heads: 4, matrix: TensorType.Q4_0, output: TensorType.Q6_K, seed: 45, raw: kQuantTensors({ hidden: 256, ffn: 512, layers: 2, vocab: VOCAB }, TensorType.Q4_K, TensorType.Q4_K, TensorType.Q6_K, 45) },
  ],
];

const models = tempModels("kept-rows");
afterAll(models.remove);

/** A prompt's last logits and three greedy steps after it; `allLogits` runs every row through every layer. */
function continuation(e: WasmEngine, prompt: number[], allLogits: boolean): Float32Array[] {
  const seq = e.newSequence();
  const out = [e.forward(seq, prompt, 0, { allLogits }).at(-1)!];
  for (let s = 0; s < 3; s++) out.push(e.forward(seq, [argmax(out.at(-1)!)])[0]);
  seq.release();
  return out;
}

/**
 * Three prompts in one step (chunks of 16: the first 16 rows are the 23-token prompt's and all
 * dropped; the next chunk keeps rows 6, 11 and 12, the last two of different sequences side by
 * side), then three batched decode steps. Returns each prompt's last logits and its steps'.
 */
function batched(e: WasmEngine, prompts: number[][]): Float32Array[][] {
  const seqs = prompts.map(() => e.newSequence());
  const seen = e.forwardBatch(prompts.map((tokens, i): BatchEntry => ({ seq: seqs[i], tokens }))).map((l) => [l.at(-1)!]);
  for (let s = 0; s < 3; s++) {
    e.forwardBatch(seqs.map((seq, i) => ({ seq, tokens: [argmax(seen[i].at(-1)!)] }))).forEach((l, i) => seen[i].push(l[0]));
  }
  for (const s of seqs) s.release();
  return seen;
}

function differences(got: Float32Array[][], want: Float32Array[][]): string[] {
  return got.flatMap((g, u) => g.map((x, i) => [u, i, sameBits(x, want[u][i])] as const).filter(([, , d]) => d !== "same").map(([u, i, d]) => `prompt ${u}, logits #${i}: ${d}`));
}

const PROMPTS = [randomTokens(40, VOCAB, 1), randomTokens(16, VOCAB, 2), randomTokens(7, VOCAB, 3), randomTokens(1, VOCAB, 4)];
const BATCH = [randomTokens(23, VOCAB, 5), randomTokens(5, VOCAB, 6), randomTokens(1, VOCAB, 7)];

describe.each(BUILDS)("the last layer's kept rows (%s kernels): the bits of the full computation", (build) => {
  for (const [name, spec] of MODELS) {
    it(name, async () => {
      const e = await engineFor(await models.file(spec), build, { prefillChunk: 16, sequences: 4 });
      const full = PROMPTS.map((p) => continuation(e, p, true));
      expect(differences(PROMPTS.map((p) => continuation(e, p, false)), full)).toEqual([]);
      const fullBatch = BATCH.map((p) => continuation(e, p, true));
      expect(differences(batched(e, BATCH), fullBatch)).toEqual([]);
    });
  }
});

describe("the last layer's kept rows on threads", () => {
  it("3 threads: the same bits as one thread with every row", async () => {
    const file = await models.file(MODELS[0][1]);
    const one = await engineFor(file, "simd", { prefillChunk: 16, sequences: 4 });
    const full = BATCH.map((p) => continuation(one, p, true));
    const e = await engineFor(file, "simd", { prefillChunk: 16, sequences: 4, threads: 3 });
    expect(e.threads).toBe(3);
    expect(differences(batched(e, BATCH), full)).toEqual([]);
    expect(differences(PROMPTS.map((p) => continuation(e, p, false)), PROMPTS.map((p) => continuation(one, p, true)))).toEqual([]);
    await e.close();
  });
});

describe("the work the last layer skips", () => {
  it("a 40-token prompt's Q4_0 products: every row through the first layer and the last's keys and values, one row through the rest of the last layer and the head", async () => {
    const e = await engineFor(await models.file({ vocab: VOCAB, ffn: 544, kvHeads: 2, output: TensorType.Q4_0, seed: 46 }), "simd", { prefillChunk: 16 });
    const { hiddenSize: H, intermediateSize: F, numKVHeads, headDim, numLayers } = e.config;
    expect(numLayers).toBe(2);
    const kv = numKVHeads * headDim;
    // Multiply-adds per row: the keys and values, then the rest of a layer (queries, attention output, MLP).
    const keysValues = 2 * kv * H;
    const rest = H * H + H * H + 3 * F * H;
    // The engine calls its kernels through its private `k` (as bench/decode-profile.ts wraps them): count the Q4_0 products' multiply-adds.
    const eng = e as unknown as { k: Record<string, unknown> };
    let macs = 0;
    const counted: Record<string, unknown> = { ...eng.k };
    for (const name of ["matmul_q4r_q8b", "matvec_q4r_q8a"]) {
      const kernel = eng.k[name] as (...a: number[]) => unknown;
      counted[name] = (...a: number[]) => {
        macs += a[1] * a[2] * (name.startsWith("matmul") ? a[4] : 1); // (w, rows, cols, x, [positions,] out)
        return kernel(...a);
      };
    }
    eng.k = counted;
    const n = 40;
    e.forward(e.newSequence(), randomTokens(n, VOCAB, 8));
    expect(macs).toBe(n * (keysValues + rest) + n * keysValues + 1 * rest + VOCAB * H);
    macs = 0;
    e.forward(e.newSequence(), randomTokens(n, VOCAB, 8), 0, { allLogits: true });
    expect(macs).toBe(2 * n * (keysValues + rest) + n * VOCAB * H);
  });
});
