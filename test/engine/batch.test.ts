/**
 * Batched steps (WasmEngine.forwardBatch): several sequences' positions share
 * every matrix product, yet each sequence gets exactly the logits it gets
 * alone — for every matrix kind (the float kinds too: their products run a
 * row at a time, so the bound is 0), with prompts of mixed lengths split
 * across chunks, sequences joining and leaving between steps, a batch larger
 * than the LM head's batch, and on 3 threads. Bad batches are refused before
 * any cache is touched.
 */
import { afterAll, describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import type { WasmEngine } from "../../src/engine/index";
import type { WasmSequence } from "../../src/engine/kv-cache";
import type { BatchEntry } from "../../src/model/engine";
import { argmax, BUILDS, engineFor, randomTokens, sameBits, tempModels, type SmallModelSpec } from "./helpers";

const VOCAB = 509;
const MODELS: [string, SmallModelSpec][] = [
  ["Q4_0 layers, Q6_K head", { vocab: VOCAB, ffn: 544, kvHeads: 2, output: TensorType.Q6_K, seed: 31 }],
  ["Q4_0 layers and head", { vocab: VOCAB, ffn: 544, kvHeads: 2, output: TensorType.Q4_0, seed: 32 }],
  ["Q8_0", { vocab: VOCAB, ffn: 544, kvHeads: 2, matrix: TensorType.Q8_0, seed: 33 }],
  ["F16 layers, F32 head", { vocab: VOCAB, ffn: 544, kvHeads: 2, matrix: TensorType.F16, output: TensorType.F32, seed: 34 }],
  ["BF16, parallel residual with qk-norm", { vocab: VOCAB, ffn: 544, kvHeads: 2, matrix: TensorType.BF16, parallel: true, seed: 35 }],
];

const models = tempModels("batch");
afterAll(models.remove);
const modelFile = models.file;

/** Four users: prompt lengths that fill, straddle and undershoot the 16-row chunks; each decodes greedily for `steps` steps. */
const USERS = [
  { prompt: randomTokens(23, VOCAB, 1), steps: 6, joins: 0 },
  { prompt: randomTokens(5, VOCAB, 2), steps: 3, joins: 0 },
  { prompt: randomTokens(40, VOCAB, 3), steps: 5, joins: 1 },
  { prompt: randomTokens(1, VOCAB, 4), steps: 4, joins: 3 },
];

/** Every logit user u sees alone: the prompt's (allLogits), then each greedy step's. */
function alone(e: WasmEngine, u: (typeof USERS)[number]): Float32Array[] {
  const seq = e.newSequence();
  const out = e.forward(seq, u.prompt, 0, { allLogits: true });
  for (let s = 0; s < u.steps; s++) out.push(e.forward(seq, [argmax(out.at(-1)!)])[0]);
  seq.release();
  return out;
}

/** The same users served together: user u joins at step `joins` with its prompt, then decodes one token a step until done. */
function together(e: WasmEngine): Float32Array[][] {
  const seen: Float32Array[][] = USERS.map(() => []);
  const seqs: (WasmSequence | undefined)[] = USERS.map(() => undefined);
  const left = USERS.map((u) => u.steps);
  for (let step = 0; left.some((n) => n > 0); step++) {
    const entries: BatchEntry[] = [];
    const who: number[] = [];
    USERS.forEach((u, i) => {
      if (u.joins === step) {
        seqs[i] = e.newSequence();
        entries.push({ seq: seqs[i], tokens: u.prompt, allLogits: true });
        who.push(i);
      } else if (u.joins < step && left[i] > 0) {
        entries.push({ seq: seqs[i], tokens: [argmax(seen[i].at(-1)!)] });
        left[i]--;
        who.push(i);
      }
    });
    e.forwardBatch(entries).forEach((logits, j) => seen[who[j]].push(...logits));
  }
  return seen;
}

function differences(got: Float32Array[][], want: Float32Array[][]): string[] {
  const bad: string[] = [];
  got.forEach((g, u) => {
    expect(g).toHaveLength(want[u].length);
    g.forEach((x, i) => {
      const d = sameBits(x, want[u][i]);
      if (d !== "same") bad.push(`user ${u}, logits #${i}: ${d}`);
    });
  });
  return bad;
}

describe.each(BUILDS)("batched steps (%s kernels): each sequence's logits are its logits alone", (build) => {
  for (const [name, spec] of MODELS) {
    it(name, async () => {
      const file = await modelFile(spec);
      // The LM head runs over at most 2 positions at a time here (sequences 2 → logitsBatch 2), so a step's logits take several head products.
      const single = await engineFor(file, build, { prefillChunk: 16, sequences: 2 });
      const want = USERS.map((u) => alone(single, u));
      const e = await engineFor(file, build, { prefillChunk: 16, sequences: 4 });
      expect(e.logitsBatch).toBe(4);
      expect(differences(together(e), want)).toEqual([]);
    });
  }
});

describe("batched steps on threads", () => {
  it("3 threads (the LM head over a batch split into chunks that fit the threads' tiles): the same bits as one thread alone", async () => {
    // A vocabulary of 4093 against an ffn of 544: a thread's tile holds [16 × 184] outputs, while 3 threads' 12 shares of the head are 344 rows each.
    for (const output of [TensorType.Q4_0, TensorType.Q8_0, TensorType.Q6_K]) {
      const file = await modelFile({ vocab: 4093, ffn: 544, kvHeads: 2, output, seed: 36 });
      const single = await engineFor(file, "simd", { prefillChunk: 16, sequences: 2 });
      const want = USERS.map((u) => alone(single, u));
      const e = await engineFor(file, "simd", { prefillChunk: 16, sequences: 16, threads: 3 });
      expect([e.threads, e.logitsBatch]).toEqual([3, 16]);
      expect(differences(together(e), want)).toEqual([]);
      await e.close();
    }
  });
});

describe("bad batches", () => {
  it("are refused, naming the entry, before any cache is touched", async () => {
    const file = await modelFile(MODELS[0][1]);
    const e = await engineFor(file, "simd", { prefillChunk: 16, sequences: 3 });
    const a = e.newSequence();
    const b = e.newSequence();
    e.forward(a, [1, 2, 3]);
    const before = () => [a.length(0), b.length(0)];
    expect(() => e.forwardBatch([{ seq: a, tokens: [4] }, { seq: a, tokens: [5] }])).toThrow(/^batch entry 1: the same sequence twice in one step$/);
    expect(() => e.forwardBatch([{ seq: a, tokens: [4] }, { seq: b, tokens: [] }])).toThrow(/^batch entry 1: no tokens$/);
    expect(() => e.forwardBatch([{ seq: a, tokens: [4] }, { seq: b, tokens: [VOCAB] }])).toThrow(/outside the vocabulary/);
    expect(() => e.forwardBatch([{ seq: a, tokens: [4] }, { seq: b, tokens: [1], startPos: 2 }])).toThrow(/caches 0 positions; cannot start at 2/);
    expect(() => e.forwardBatch([{ seq: a, tokens: [4] }, { seq: {}, tokens: [1] }])).toThrow(/not a sequence of this engine/);
    expect(before()).toEqual([3, 0]);
    expect(e.forwardBatch([])).toEqual([]);
  });
});
