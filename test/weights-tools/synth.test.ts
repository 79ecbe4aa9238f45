import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openGGUF } from "../../src/gguf/node";
import { metaBool, metaNumber, metaString } from "../../src/gguf/metadata";
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { synthGGUF } from "../../weights-tools/fixtures";
import { expectedHFTensors } from "../../weights-tools/mapping";
import { presetParams, synthSource, writeSynthGGUF } from "../../weights-tools/synth";
import { tempDir } from "./helpers";

const root = tempDir("synth");
afterAll(() => rmSync(root, { recursive: true, force: true }));

function stats(x: Float32Array): { mean: number; std: number; zeros: number } {
  let s = 0;
  let s2 = 0;
  let zeros = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
    if (v === 0) zeros++;
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean), zeros };
}

describe("synthetic weights", () => {
  const hp = presetParams("tiny");

  it("are pinned: these exact values on every machine", async () => {
    // Integer-only PRNG + exactly rounded arithmetic; if these change, every cached fixture and cross-check changes.
    const s = synthSource(hp, 0);
    expect(Array.from((await s.readRows("model.layers.0.self_attn.q_proj.weight", 5, 1)).slice(0, 4))).toEqual([-0.051513671875, -0.0703125, 0.2197265625, 0.154296875]);
    expect(Array.from((await s.readRows("model.layers.1.input_layernorm.bias", 0, 1)).slice(0, 3))).toEqual([0.007080078125, -0.01019287109375, -0.00152587890625]);
    const big = synthSource(hp, 12345678901);
    expect(Array.from((await big.readRows("model.embed_tokens.weight", 100351, 1)).slice(0, 3))).toEqual([0.765625, -1.4609375, -0.1787109375]);
  });

  it("do not depend on how rows are sliced", async () => {
    const s = synthSource(hp, 4);
    const whole = await s.readRows("model.layers.0.mlp.down_proj.weight", 0, 64);
    const part = await s.readRows("model.layers.0.mlp.down_proj.weight", 10, 3);
    expect(Array.from(part)).toEqual(Array.from(whole.subarray(10 * 160, 13 * 160)));
  });

  it("differ between seeds and between tensors", async () => {
    const a = await synthSource(hp, 0).readRows("model.layers.0.self_attn.k_proj.weight", 0, 64);
    const b = await synthSource(hp, 1).readRows("model.layers.0.self_attn.k_proj.weight", 0, 64);
    const c = await synthSource(hp, 0).readRows("model.layers.0.self_attn.v_proj.weight", 0, 64);
    const same = (x: Float32Array, y: Float32Array) => x.filter((v, i) => v === y[i]).length;
    expect(same(a, b)).toBeLessThan(100);
    expect(same(a, c)).toBeLessThan(100);
  });

  it("have sane scales: linear std ≈ 1/√fan_in, non-zero biases, LayerNorm weights near 1", async () => {
    const s = synthSource(hp, 0);
    const down = stats(await s.readRows("model.layers.1.mlp.down_proj.weight", 0, 64));
    expect(down.std).toBeGreaterThan(0.9 / Math.sqrt(160));
    expect(down.std).toBeLessThan(1.1 / Math.sqrt(160));
    expect(Math.abs(down.mean)).toBeLessThan(0.01);
    for (const bias of ["model.layers.0.self_attn.q_proj.bias", "model.layers.0.input_layernorm.bias", "model.norm.bias"]) {
      const b = stats(await s.readRows(bias, 0, 1));
      expect(b.std, bias).toBeGreaterThan(0.02);
      expect(b.zeros, bias).toBeLessThan(4);
    }
    const ln = stats(await s.readRows("model.layers.0.post_attention_layernorm.weight", 0, 1));
    expect(Math.abs(ln.mean - 1)).toBeLessThan(0.05);
    expect(ln.std).toBeGreaterThan(0.05);
    expect(ln.std).toBeLessThan(0.2);
  });

  it("are bf16-exact", async () => {
    const x = await synthSource(hp, 9).readRows("lm_head.weight", 77, 2);
    const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
    expect(bits.every((b) => (b & 0xffff) === 0)).toBe(true);
  });
});

describe("presets", () => {
  it("full2l and 1_6b have the Stable LM 2 1.6B shapes", () => {
    for (const [preset, layers] of [["full2l", 2], ["1_6b", 24]] as const) {
      const hp = presetParams(preset);
      expect(hp).toMatchObject({ vocabSize: 100352, hiddenSize: 2048, intermediateSize: 5632, numLayers: layers, numHeads: 32, numKVHeads: 32, rotaryDim: 16, useQkvBias: true, parallelResidual: false });
    }
    const t = expectedHFTensors(presetParams("1_6b"));
    expect(t).toHaveLength(340); // docs/model.md, Tensors
    expect(t.reduce((a, x) => a + x.shape.reduce((p, d) => p * d, 1), 0)).toBe(1_644_515_328);
  });

  it("tiny: same seed gives the same bytes, another seed different bytes", async () => {
    const cached = await synthGGUF("tiny", "f32", 0);
    const again = join(root, "tiny-again.gguf");
    const other = join(root, "tiny-seed1.gguf");
    await writeSynthGGUF("tiny", again, "f32", 0);
    await writeSynthGGUF("tiny", other, "f32", 1);
    const a = readFileSync(cached);
    expect(a.equals(readFileSync(again))).toBe(true);
    const b = readFileSync(other);
    expect(b.length).toBe(a.length);
    expect(a.equals(b)).toBe(false);
    const g = await openGGUF(cached);
    expect(metaString(g.metadata, "general.name")).toBe("edgelm-synth-tiny (random weights)");
    expect(g.tensor("blk.0.attn_q.bias").type).toBe(TensorType.F32);
    await g.close();
  });

  it("tiny-parallel has the 12B layout: GQA, stacked per-head q/k norms, no ffn_norm, no qkv bias", async () => {
    const path = await synthGGUF("tiny-parallel", "q8_0", 0);
    const g = await openGGUF(path);
    try {
      const m = g.metadata;
      expect(metaString(m, "general.name")).toBe("edgelm-synth-tiny-parallel (random weights)");
      expect(metaBool(m, "stablelm.use_parallel_residual")).toBe(true);
      expect(metaNumber(m, "stablelm.attention.head_count")).toBe(4);
      expect(metaNumber(m, "stablelm.attention.head_count_kv")).toBe(2);
      expect(metaNumber(m, "stablelm.rope.dimension_count")).toBe(4);
      const names = new Set(g.tensors.map((t) => t.name));
      expect([...names].filter((n) => n.includes("ffn_norm") || /attn_[qkv]\.bias/.test(n))).toEqual([]);
      expect(g.tensor("blk.1.attn_k.weight").dims).toEqual([64, 32]);
      expect(g.tensor("blk.1.attn_v.weight").dims).toEqual([64, 32]);
      const qn = g.tensor("blk.1.attn_q_norm.weight");
      const kn = g.tensor("blk.1.attn_k_norm.weight");
      expect([qn.dims, qn.type, kn.dims, kn.type]).toEqual([[16, 4], TensorType.F32, [16, 2], TensorType.F32]);
      // Head h's weights are row h of the stacked tensor.
      const src = synthSource(presetParams("tiny-parallel"), 0);
      const k = dequantize(TensorType.F32, await g.readTensor(kn), 32);
      expect(Array.from(k.subarray(16, 32))).toEqual(Array.from(await src.readRows("model.layers.1.self_attn.k_layernorm.norms.1.weight", 0, 1)));
      const q = dequantize(TensorType.F32, await g.readTensor(qn), 64);
      expect(Array.from(q.subarray(48, 64))).toEqual(Array.from(await src.readRows("model.layers.1.self_attn.q_layernorm.norms.3.weight", 0, 1)));
    } finally {
      await g.close();
    }
  });
});

describe("synthGGUF fixtures", () => {
  it("writes each fixture once, also when asked concurrently, and names it by preset, type and seed", async () => {
    const [a, b] = await Promise.all([synthGGUF("tiny", "q4_0", 5), synthGGUF("tiny", "q4_0", 5)]);
    expect(a).toBe(b);
    expect(a).toMatch(/edgelm-fixtures[/\\]synth-tiny-q4_0-seed5-[0-9a-f]{12}\.gguf$/);
    const g = await openGGUF(a);
    expect(g.tensor("token_embd.weight").type).toBe(TensorType.Q4_0);
    await g.close();
    // A second call returns the same file without writing it again (a rewrite renames a new inode in).
    const before = statSync(a);
    expect(await synthGGUF("tiny", "q4_0", 5)).toBe(a);
    const after = statSync(a);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it("rejects unknown presets and types", async () => {
    await expect(synthGGUF("huge", "f32")).rejects.toThrow(/unknown preset/);
    await expect(synthGGUF("tiny", "q5_k")).rejects.toThrow(/unknown type/);
  });
});
