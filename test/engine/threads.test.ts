/**
 * The wasm engine on several threads (src/engine/thread-pool.ts, row-split.ts,
 * position-split.ts): the big products split by rows, and the rest of a layer
 * by positions and KV heads, give the same bits as one thread — prefill in
 * chunks of several sizes, allLogits, decode steps, the LM head — for every
 * kernel build and every matrix kind, with 2 and 3 threads on shapes whose
 * rows, positions and heads do not split evenly (3 threads cut each product
 * into 12 chunks of 4-row groups: hidden 256 → 64 groups, 5 or 6 a chunk; kv
 * 128 → 32 groups, 2 or 3; ffn 544 → 136; a 509-row vocabulary whose last
 * group is partial; a chunk of 70 positions into 8-position groups, the last
 * one partial; 2 KV heads into 6 ranges of positions each). A thread that throws
 * gives the caller a ThreadError and the
 * engine goes on with one thread; a thread that never runs does not hold a
 * job up, and one that never answers times out; threads end on close and
 * never keep the process alive.
 */
import { spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import { ThreadError, ThreadPool, type WasmEngine } from "../../src/engine/index";
import type { BuildKind, KernelExports } from "../../src/engine/kernels";
import { enableRelaxedSimd, loadWasmEngine } from "../../src/engine/node";
import type { WasmMatrix } from "../../src/engine/load";
import { attentionChunks, MAX_CHUNK_POSITIONS, positionRanges } from "../../src/engine/position-split";
import { shareRows, shareRowsMax, splitProducts } from "../../src/engine/row-split";
import { controlBytes, TILE, type Arg } from "../../src/engine/thread-pool";
import { kQuantTensors } from "../kernels/kquant-blocks";
import { lowQuantTensors } from "../kernels/kquant-low-blocks";
import { q41Tensors } from "../kernels/q41-blocks";
import { argmax, engineFor, randomTokens, sameBits, tempModels, type SmallModelSpec } from "./helpers";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
// relaxed-fused: its kernels with the fused dot emulated (engineFor; Node 20 computes the instruction wrongly on first calls).
const BUILDS: BuildKind[] = enableRelaxedSimd() ? ["relaxed-fused", "relaxed", "simd", "scalar"] : ["simd", "scalar"];
const VOCAB = 509;
const odd: SmallModelSpec = { vocab: VOCAB, ffn: 544, kvHeads: 2 };
const MODELS: [string, SmallModelSpec][] = [
  ["Q4_0 layers, Q6_K head", { ...odd, output: TensorType.Q6_K, seed: 21 }],
  ["Q8_0", { ...odd, matrix: TensorType.Q8_0, seed: 22 }],
  ["F16 layers, F32 head", { ...odd, matrix: TensorType.F16, output: TensorType.F32, seed: 23 }],
  ["BF16, parallel residual with qk-norm", { ...odd, matrix: TensorType.BF16, parallel: true, seed: 24 }],
  ["Q6_K layers and head", { vocab: VOCAB, ffn: 768, kvHeads: 2, matrix: TensorType.Q6_K, seed: 25 }],
  // Q4KR/Q5KR groups are larger than four stored rows: each chunk must start at its group's repacked offset.
  ["Q4_K layers and embedding, Q5_K head", {
    vocab: VOCAB, ffn: 768, kvHeads: 2, output: TensorType.Q5_K, seed: 26,
    raw: kQuantTensors({ hidden: 256, ffn: 768, layers: 2, vocab: VOCAB, kvDim: 128 }, TensorType.Q4_K, TensorType.Q4_K, TensorType.Q5_K, 26),
  }],
  // Q2KR and Q3KR: each chunk starts at its 4-row group (the embedding, read as stored, is Q2_K).
  ["Q3_K layers, Q2_K attn_v, ffn_down and embedding, Q6_K head", {
    vocab: VOCAB, ffn: 768, kvHeads: 2, output: TensorType.Q6_K, seed: 27,
    raw: lowQuantTensors({ hidden: 256, ffn: 768, layers: 2, vocab: VOCAB, kvDim: 128 }, { layers: TensorType.Q3_K, vDown: TensorType.Q2_K, embed: TensorType.Q2_K }, 27),
  }],
  ["Q4_1 layers, embedding and head", {
    vocab: VOCAB, ffn: 768, kvHeads: 2, seed: 29,
    raw: q41Tensors({ hidden: 256, ffn: 768, layers: 2, vocab: VOCAB, kvDim: 128 }, 29),
  }],
  ["Q5_1 layers, embedding and head", {
    vocab: VOCAB, ffn: 768, kvHeads: 2, seed: 30,
    raw: q41Tensors({ hidden: 256, ffn: 768, layers: 2, vocab: VOCAB, kvDim: 128 }, 30, TensorType.Q5_1),
  }],
];

const models = tempModels("threads");
afterAll(models.remove);
const modelFile = models.file;
const PROMPT = randomTokens(70, VOCAB, 8);

/** Every logit the engine gives: a 70-token prompt in prefill chunks (of 32: 32, 32, 6) with allLogits, then 4 greedy decode steps. */
function run(e: WasmEngine): Float32Array[] {
  const seq = e.newSequence();
  const out = e.forward(seq, PROMPT, 0, { allLogits: true });
  for (let pos = PROMPT.length; pos < PROMPT.length + 4; pos++) out.push(e.forward(seq, [argmax(out.at(-1)!)], pos)[0]);
  return out;
}

function differences(a: Float32Array[], b: Float32Array[]): string[] {
  expect(a).toHaveLength(b.length);
  return a.map((x, i) => `#${i}: ${sameBits(x, b[i])}`).filter((s) => !s.endsWith(": same"));
}

describe("row shares", () => {
  it("cover the rows once, in whole 4-row groups, as evenly as groups allow", () => {
    for (const rows of [1, 3, 4, 5, 128, 256, 509, 544, 2048, 100352]) {
      for (const threads of [1, 2, 3, 4, 7]) {
        let next = 0;
        const sizes: number[] = [];
        for (let i = 0; i < threads; i++) {
          const [r0, r1] = shareRows(rows, threads, i);
          expect(r0).toBe(next);
          expect(r0 % 4).toBe(0);
          next = r1;
          sizes.push(r1 - r0);
        }
        expect(next).toBe(rows);
        expect(Math.max(...sizes)).toBeLessThanOrEqual(shareRowsMax(rows, threads));
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(rows % 4 ? 7 : 4);
      }
    }
    expect([0, 1, 2].map((i) => shareRows(256, 3, i))).toEqual([[0, 84], [84, 168], [168, 256]]);
  });

  it("a matmul chunk's [m × rows] output fits the thread's tile, however many rows the matrix has", () => {
    const w = { name: "output.weight", kind: "q4r", type: TensorType.Q4_0, rows: 100352, cols: 2048, ptr: 0 } as unknown as WasmMatrix;
    for (const [m, tileBytes] of [[2, 720_896], [8, 720_896], [64, 720_896], [64, 4096]] as const) {
      const chunks = splitProducts([{ w, out: 1 << 20 }], { x: 0, xq: 0, m, tileBytes }, 2);
      let rows = 0;
      for (const [mm] of chunks) {
        const n = mm.args[1] as number;
        expect(n * m * 4).toBeLessThanOrEqual(tileBytes);
        rows += n;
      }
      expect(rows).toBe(100352);
      expect(chunks.length).toBeGreaterThanOrEqual(Math.max(8, Math.ceil((100352 * m * 4) / tileBytes)));
    }
    expect(() => splitProducts([{ w, out: 0 }], { x: 0, xq: 0, m: 64, tileBytes: 1000 }, 2)).toThrow(/cannot hold 4 rows of 64 positions/);
  });
});

describe("position ranges and attention chunks", () => {
  it("cover the positions once, in whole 8-position groups of at most MAX_CHUNK_POSITIONS, one range on one thread", () => {
    for (const m of [1, 5, 8, 9, 32, 64, 70, 100, 512]) {
      expect(positionRanges(m, 1)).toEqual([[0, m]]);
      for (const threads of [2, 3, 4]) {
        const ranges = positionRanges(m, threads);
        let next = 0;
        for (const [t0, t1] of ranges) {
          expect(t0).toBe(next);
          expect(t0 % 8).toBe(0);
          expect(t1 - t0).toBeGreaterThan(0);
          expect(t1 - t0).toBeLessThanOrEqual(MAX_CHUNK_POSITIONS);
          next = t1;
        }
        expect(next).toBe(m);
        expect(ranges.length).toBe(Math.min(Math.ceil(m / 8), Math.max(threads * 4, Math.ceil(m / MAX_CHUNK_POSITIONS))));
      }
    }
  });

  it("attention: every query head of every segment's positions once, in ranges of about even cost", () => {
    const [numHeads, headDim, headBytes] = [8, 16, 1 << 20];
    const kOff = 1 << 28, vOff = 1 << 29, out = 1 << 30;
    const batches = [[[1, 0]], [[1, 300]], [[3, 10]], [[64, 0]], [[70, 130]], [[1, 40], [5, 0], [30, 7]]];
    for (const numKVHeads of [1, 2, 8]) {
      for (const batch of batches) {
        let row = 0;
        const segments = batch.map(([m, pos0], i) => ({ row: (row += m) - m, m, pos0, table: 1000 + i }));
        const rows = row;
        for (const threads of [1, 2, 3]) {
          const chunks = attentionChunks({ q: 0, out, kOff, vOff, headBytes, blockPositions: 16, numHeads, numKVHeads, headDim, segments }, threads);
          const group = numHeads / numKVHeads;
          const seen = new Int32Array(rows * numHeads);
          const costs: number[] = [];
          for (const chunk of chunks) {
            let cost = 0;
            for (const { op, args } of chunk) {
              expect(op).toBe("attention_f16kv_causal");
              const [q, table, P, k, v, hb, o, ntok, nPast, nkv, g, hd, stride] = args as number[];
              const s = segments[table - 1000];
              const j = (k - kOff) / headBytes;
              const t0 = nPast - s.pos0 - 1;
              expect([P, v - vOff, hb, o - out, g, hd, stride]).toEqual([16, j * headBytes, headBytes, q, group, headDim, numHeads * headDim]);
              expect(q).toBe(((s.row + t0) * numHeads + j * group) * headDim * 4);
              expect(j + nkv).toBeLessThanOrEqual(numKVHeads);
              for (let t = t0; t < t0 + ntok; t++) for (let h = j * group; h < (j + nkv) * group; h++) seen[(s.row + t) * numHeads + h]++;
              for (let t = t0; t < t0 + ntok; t++) cost += (s.pos0 + t + 1) * nkv;
            }
            costs.push(cost);
          }
          expect(seen.every((n) => n === 1)).toBe(true);
          // One thread: one call per segment over every KV head (the kernel reads each block's heads as one run).
          if (threads === 1) expect(chunks).toEqual([segments.map(() => expect.anything())]);
          else expect(chunks.length).toBeGreaterThanOrEqual(Math.min(threads * 4, segments.reduce((a, s) => a + s.m, 0) * numKVHeads) - numKVHeads * segments.length);
          if (threads > 1 && segments.length === 1) {
            // No chunk costs more than twice an even share, or than one position of one head (neither is cut).
            const [{ m, pos0 }] = segments;
            expect(Math.max(...costs)).toBeLessThanOrEqual(Math.max((2 * costs.reduce((a, b) => a + b)) / chunks.length, pos0 + m));
          }
        }
      }
    }
  });
});

describe.each(BUILDS)("threads (%s kernels): the same bits as one thread", (build) => {
  for (const [name, spec] of MODELS) {
    it(name, async () => {
      const file = await modelFile(spec);
      const one = await engineFor(file, build, { prefillChunk: 32 });
      const want = run(one);
      for (const threads of [2, 3]) {
        const e = await engineFor(file, build, { prefillChunk: 32, threads });
        expect(e.threads).toBe(threads);
        expect(e.name).toContain(`; ${threads} threads`);
        expect(differences(run(e), want)).toEqual([]);
        // Which thread runs which chunk depends on timing; with the main thread out of it, every row comes from the others.
        const pool = e.threadPool!;
        pool.mainClaims = false;
        const before = pool.chunksRun();
        expect(differences(run(e), want)).toEqual([]);
        const ran = pool.chunksRun().map((n, i) => n - before[i]);
        expect(ran[0]).toBe(0);
        expect(ran.slice(1).reduce((a, b) => a + b)).toBeGreaterThan(0);
        await e.close();
      }
    });
  }
});

describe("the build the threads run", () => {
  it.runIf(BUILDS.includes("relaxed"))("EDGELM_KERNELS=relaxed with 2 threads: the shared-memory relaxed build, the one every thread instantiates", async () => {
    const file = await modelFile(MODELS[0][1]);
    const want = run(await engineFor(file, "relaxed", { prefillChunk: 32 }));
    const saved = process.env.EDGELM_KERNELS;
    process.env.EDGELM_KERNELS = "relaxed";
    let e: WasmEngine;
    try {
      e = await loadWasmEngine(file, { prefillChunk: 32, threads: 2 });
    } finally {
      if (saved === undefined) delete process.env.EDGELM_KERNELS;
      else process.env.EDGELM_KERNELS = saved;
    }
    expect(e.threads).toBe(2);
    expect(e.kernels.kind).toBe("relaxed");
    expect(e.kernels.reason).toMatch(/^relaxed build \(forced: relaxed\), self-test passed/);
    // The module the threads are started with (node.ts startThreads) is the relaxed build, and it imports a shared memory.
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    expect((new WebAssembly.Instance(e.kernels.module, { env: { memory: shared } }).exports as unknown as KernelExports).build_kind()).toBe(2);
    e.threadPool!.mainClaims = false;
    expect(differences(run(e), want)).toEqual([]);
    await e.close();
  });
});

describe("prefill in chunks of several sizes on 3 threads", () => {
  const cases: [string, SmallModelSpec][] = [
    ["Q4_0, 4 KV heads", { vocab: VOCAB, ffn: 544, kvHeads: 4, seed: 31 }],
    ["BF16, GQA 4/2, parallel residual with qk-norm", { ...odd, matrix: TensorType.BF16, parallel: true, seed: 32 }],
  ];
  for (const [name, spec] of cases) {
    it(`${name}: the same bits as one thread with chunks of 1, 5, 8, 17 and 64 positions`, async () => {
      const file = await modelFile(spec);
      for (const prefillChunk of [1, 5, 8, 17, 64]) {
        const want = run(await engineFor(file, BUILDS[0], { prefillChunk }));
        const e = await engineFor(file, BUILDS[0], { prefillChunk, threads: 3 });
        expect(differences(run(e), want), `chunks of ${prefillChunk}`).toEqual([]);
        await e.close();
      }
    });
  }
});

describe("a thread that fails", () => {
  it("throws a ThreadError naming it, in prefill or decode; the engine continues on one thread with the same bits", async () => {
    const file = await modelFile(MODELS[0][1]);
    const want = run(await engineFor(file, "simd", { prefillChunk: 32 }));

    const e = await engineFor(file, "simd", { prefillChunk: 32, threads: 3 });
    e.threadPool!.failNext(2);
    expect(() => e.forward(e.newSequence(), PROMPT)).toThrow(ThreadError);
    expect(e.threads).toBe(1);
    expect(e.threadPool).toBeUndefined();
    expect(e.name).toMatch(/; 1 thread \(engine thread 2 failed: Error: failing on purpose \(test hook\)\)\)$/);
    expect(differences(run(e), want)).toEqual([]);

    const d = await engineFor(file, "simd", { prefillChunk: 32, threads: 2 });
    const seq = d.newSequence();
    d.forward(seq, PROMPT.slice(0, 10));
    d.threadPool!.failNext(1);
    let error: unknown;
    try {
      d.forward(seq, [PROMPT[10]], 10);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ThreadError);
    expect((error as Error).message).toBe("engine thread 1 failed: Error: failing on purpose (test hook); the engine continues on one thread");
    expect(differences(run(d), want)).toEqual([]);
    await Promise.all([e.close(), d.close()]);
  });

  it("that never runs: its chunks are taken by the others, and a job waiting on it (the test hook) times out, not hangs", () => {
    // A pool whose one extra thread was never started.
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 16, shared: true });
    const u8 = new Uint8Array(memory.buffer);
    u8.set([1, 2, 3, 4, 5, 6, 7, 8], 150_000);
    let terminated = 0;
    const pool = new ThreadPool({ memory, control: 0, exports: {} as KernelExports, own: { tile: 170_000, scores: 180_000 }, handles: [{ terminate: async () => terminated++ }], timeoutMs: 300 });
    expect(controlBytes(2)).toBeLessThan(150_000);
    const copy = (src: number, dst: Arg) => [{ op: "copy" as const, args: [src, dst, 2, 2, 4, 2] }];
    // Rows of 2 bytes, 4 apart → 2 apart; then out of "this thread's tile".
    pool.run([copy(150_000, 160_000), copy(150_002, 160_004)]);
    expect([...u8.subarray(160_000, 160_008)]).toEqual([1, 2, 5, 6, 3, 4, 7, 8]);
    pool.run([copy(150_000, TILE)]);
    expect([...u8.subarray(170_000, 170_004)]).toEqual([1, 2, 5, 6]);

    pool.failNext(1);
    const t0 = performance.now();
    expect(() => pool.run([copy(150_000, 160_000)])).toThrow(/^engine thread 1 did not finish a job within 0.3 s; the engine continues on one thread$/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
    expect(pool.usable).toBe(false);
    expect(terminated).toBe(1);
    expect(() => pool.run([copy(150_000, 160_000)])).toThrow(ThreadError);
  });
});

describe("closing", () => {
  it("close() ends the threads; the engine goes on with one, same bits", async () => {
    const file = await modelFile(MODELS[1][1]);
    const want = run(await engineFor(file, "scalar", { prefillChunk: 32 }));
    const e = await engineFor(file, "scalar", { prefillChunk: 32, threads: 3 });
    const pool = e.threadPool!;
    await e.close();
    expect(pool.usable).toBe(false);
    expect(pool.reason).toBe("closed");
    expect(e.threads).toBe(1);
    expect(e.name).not.toMatch(/thread/);
    expect(differences(run(e), want)).toEqual([]);
  });

  it("an engine nobody closed does not keep the process alive", () => {
    const script = `
      import { loadWasmEngine } from "./src/engine/node.ts";
      import { synthGGUF } from "./weights-tools/fixtures.ts";
      const e = await loadWasmEngine(await synthGGUF("tiny", "q4_0"), { threads: 3 });
      e.forward(e.newSequence(), [1, 2, 3]);
      console.log(e.threads);`;
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("3");
    expect(performance.now() - t0).toBeLessThan(60_000);
  });
});
