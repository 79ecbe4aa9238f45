/**
 * The shard planner as a table: for each model shape and budget, how many shards of which kind,
 * and every shard within the budget. The 1.6B shape is planned from a header built in memory.
 */
import { describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import { formatPlan, planShards, ShardPlanError, type ShardPlan } from "../../src/shard/plan";
import { SHAPES, stablelmHeader, type Shape } from "./headers";

const MiB = 2 ** 20;

function plan(shape: Shape, budgetMb: number, context: number, sequences: number): ShardPlan {
  return planShards(stablelmHeader(shape), { budgetBytes: budgetMb * MiB, contextLength: context, sequences, key: "m.gguf" });
}

/** Layer ranges as "a-b" (inclusive) and head slices' row counts. */
function summary(p: ShardPlan) {
  return {
    layers: p.shards.filter((s) => s.kind === "layers").map((s) => `${s.layers![0]}-${s.layers![1] - 1}`),
    heads: p.shards.filter((s) => s.kind === "head").map((s) => s.rows![1] - s.rows![0]),
  };
}

function checkInvariants(p: ShardPlan, shape: Shape): void {
  // Every layer exactly once, in order; every vocabulary row exactly once, in order.
  const layerShards = p.shards.filter((s) => s.kind === "layers");
  expect(layerShards.flatMap((s) => Array.from({ length: s.layers![1] - s.layers![0] }, (_, i) => s.layers![0] + i))).toEqual(Array.from({ length: shape.layers }, (_, i) => i));
  const heads = p.shards.filter((s) => s.kind === "head");
  expect(heads[0].rows![0]).toBe(0);
  heads.forEach((h, i) => i > 0 && expect(h.rows![0]).toBe(heads[i - 1].rows![1]));
  expect(heads.at(-1)!.rows![1]).toBe(shape.vocab);
  for (const s of p.shards) {
    expect(s.memory.total, s.script).toBeLessThanOrEqual(p.budgetBytes);
    expect(s.maxPages * 65536).toBe(s.memory.wasm);
    expect(s.memory.wasm).toBeGreaterThanOrEqual(s.memory.weights + s.memory.kv + s.memory.buffers);
    expect(new Set(s.tensors.map((t) => t.name)).size, s.script).toBe(s.tensors.length);
  }
  // Each layer shard reads exactly its layers' tensors; the head slices' bytes add up to output.weight.
  const header = stablelmHeader(shape);
  const out = header.tensorByName.get("output.weight")!;
  const sliceBytes = heads.reduce((a, h) => a + h.tensors.find((t) => t.name === "output.weight")!.byteLength, 0);
  expect(sliceBytes).toBe(out.byteLength);
  expect(heads[0].tensors.find((t) => t.name === "output.weight")!.offset).toBe(header.dataOffset + out.offset);
  for (const s of layerShards) {
    const want = header.tensors.filter((t) => { const l = Number(t.name.split(".")[1]); return t.name.startsWith("blk.") && l >= s.layers![0] && l < s.layers![1]; });
    expect(s.tensors.map((t) => t.name)).toEqual(want.map((t) => t.name));
    expect(s.tensors.every((t, i) => t.offset === header.dataOffset + want[i].offset)).toBe(true);
  }
}

describe("planShards", () => {
  const cases: { name: string; shape: Shape; budget: number; ctx: number; seqs: number; layers: string[]; heads: number[] }[] = [
    { name: "tiny, roomy budget: one layer shard, one head", shape: SHAPES.tiny, budget: 120, ctx: 2048, seqs: 1, layers: ["0-1"], heads: [100352] },
    { name: "tiny, tight budget: the head is split in even, 64-row-aligned slices", shape: SHAPES.tiny, budget: 19, ctx: 256, seqs: 1, layers: ["0-1"], heads: [16768, 16768, 16768, 16768, 16768, 16512] },
    { name: "full2l Q4_0, 120 MB, ctx 2048: two layers fit one shard; head in two", shape: SHAPES.full2l, budget: 120, ctx: 2048, seqs: 1, layers: ["0-1"], heads: [50176, 50176] },
    { name: "full2l, 2 sequences: KV doubles, one layer per shard", shape: SHAPES.full2l, budget: 120, ctx: 2048, seqs: 2, layers: ["0-0", "1-1"], heads: [50176, 50176] },
    {
      name: "1.6B Q4_0, 120 MB, ctx 2048, 1 sequence: 12 shards of 2 layers",
      shape: SHAPES["1_6b"], budget: 120, ctx: 2048, seqs: 1,
      layers: ["0-1", "2-3", "4-5", "6-7", "8-9", "10-11", "12-13", "14-15", "16-17", "18-19", "20-21", "22-23"], heads: [50176, 50176],
    },
    {
      name: "1.6B, ctx 512: 3 layers per shard",
      shape: SHAPES["1_6b"], budget: 120, ctx: 512, seqs: 1,
      layers: ["0-2", "3-5", "6-8", "9-11", "12-14", "15-17", "18-20", "21-23"], heads: [50176, 50176],
    },
    {
      name: "1.6B with a Q6_K head (llama.cpp's Q4_0 files): ~169 MB of head in two slices",
      shape: { ...SHAPES["1_6b"], outputType: TensorType.Q6_K }, budget: 120, ctx: 2048, seqs: 1,
      layers: ["0-1", "2-3", "4-5", "6-7", "8-9", "10-11", "12-13", "14-15", "16-17", "18-19", "20-21", "22-23"], heads: [50176, 50176],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const p = plan(c.shape, c.budget, c.ctx, c.seqs);
      expect(summary(p)).toEqual({ layers: c.layers, heads: c.heads });
      checkInvariants(p, c.shape);
    });
  }

  it("1.6B numbers: 28.9 MiB of Q4_0 weights and 16 MiB of f16 KV (ctx 2048) per layer; the Q4_0 head is ~110 MiB", () => {
    const p = plan(SHAPES["1_6b"], 120, 2048, 1);
    const s0 = p.shards[0];
    expect(s0.memory.kv).toBe(2 * 16 * MiB); // 2 layers × 2 × 2048 × 2 B × 2048 positions
    expect(s0.memory.weights / 2 / MiB).toBeCloseTo(27.6, 0);
    const headBytes = p.shards.filter((s) => s.kind === "head").reduce((a, s) => a + s.tensors.at(-1)!.byteLength, 0);
    expect(headBytes).toBe(100352 * 1152);
    expect(p.embedding).toMatchObject({ name: "token_embd.weight", rowBytes: 1152 });
    const table = formatPlan(p);
    expect(table).toMatch(/edgelm-shard-0\s+layers 0–1/);
    expect(table).toMatch(/14 shards \(12 layer, 2 head\)/);
  });

  it("a budget too small for one layer is refused with the numbers", () => {
    expect(() => plan(SHAPES["1_6b"], 40, 2048, 1)).toThrow(ShardPlanError);
    expect(() => plan(SHAPES["1_6b"], 40, 2048, 1)).toThrow(/budget 40\.0 MiB is too small for even one layer: layer 0 needs [\d.]+ MiB \(weights [\d.]+ MiB, KV 16\.0 MiB for 1 × 2048 positions/);
  });

  it("bad options are refused", () => {
    expect(() => plan(SHAPES.tiny, 120, 5000, 1)).toThrow(/context must be an integer in 1\.\.4096/);
    expect(() => plan(SHAPES.tiny, 120, 256, 0)).toThrow(/sequences must be a positive integer/);
  });
});
