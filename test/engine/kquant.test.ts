/**
 * A model whose matrices are Q4_K and Q5_K (as in llama.cpp's Q4_K_M and
 * Q5_K_M files: K-quant layers and embedding, a Q6_K or Q5_K head) in the
 * wasm engine against the reference forward pass: the same greedy tokens,
 * and top-1 agreement at the clear positions teacher-forced (int8
 * activations move logits by ~1–2% of their scale; helpers.ts `agreement`).
 * The blocks are random valid bytes written straight into the GGUF
 * (../kernels/kquant-blocks.ts), so this runs without a K-quant quantizer.
 *
 * Runs once per kernel build in BUILDS (default simd and scalar).
 */
import { describe, expect, it } from "vitest";
import { loadReferenceModelFromStream } from "../../src/model/load";
import type { WasmEngine } from "../../src/engine";
import { quantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { seededRandom } from "../../src/generate/sampler";
import { kQuantTensors, type KType } from "../kernels/kquant-blocks";
import { BUILDS, agreement, engineFromBytes, randomTokens, relErr, smallGGUF, streamOf } from "./helpers";

const H = 256, F = 512, L = 2, V = 510;

/** A small model (hidden 256, ffn 512, 2 layers, 510-row vocabulary) whose matrices are random K-quant blocks. */
function kModel(layers: KType, embed: KType, output: TensorType, seed: number): Promise<Uint8Array> {
  const raw = kQuantTensors({ hidden: H, ffn: F, layers: L, vocab: V }, layers, embed, output, seed);
  return smallGGUF({ hidden: H, ffn: F, layers: L, vocab: V, heads: 4, matrix: TensorType.Q4_0, output, seed, raw });
}

/** Greedy continuation of `prompt` by `steps` tokens: one prefill, then one position at a time. */
async function greedy(engine: { newSequence(): unknown; forward(seq: unknown, tokens: number[], startPos?: number): Float32Array[] | Promise<Float32Array[]> }, prompt: number[], steps: number): Promise<number[]> {
  const seq = engine.newSequence();
  let logits = (await engine.forward(seq, prompt, 0))[0];
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    out.push(best);
    logits = (await engine.forward(seq, [best], prompt.length + i))[0];
  }
  return out;
}

const report = (what: string, s: string) => console.log(`[engine ${what}] ${s}`);

describe.each(BUILDS)("wasm engine (%s kernels), K-quant matrices, vs reference", (build) => {
  const cases: [string, KType, KType, TensorType][] = [
    ["Q4_K layers and embedding, Q6_K head (Q4_K_M's types)", TensorType.Q4_K, TensorType.Q4_K, TensorType.Q6_K],
    ["Q5_K layers and embedding, Q5_K head", TensorType.Q5_K, TensorType.Q5_K, TensorType.Q5_K],
  ];
  for (const [name, layers, embed, output] of cases) {
    it(`${name}: same greedy tokens; top-1 agrees at ≥ 99% of clear positions over 96 (prefill in chunks of 40)`, async () => {
      const bytes = await kModel(layers, embed, output, 3 + layers);
      const { model } = await loadReferenceModelFromStream(streamOf(bytes));
      const e = await engineFromBytes(bytes, build, { prefillChunk: 40 });
      expect(e.weights.layers[0].q.kind).toBe(layers === TensorType.Q4_K ? "q4kr" : "q5kr");
      const tokens = randomTokens(96, V, 21);
      const ref = model.forward(model.newSequence(), tokens, 0, { allLogits: true });
      const ours = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
      const a = agreement(ours, ref);
      const worst = Math.max(...ours.map((o, i) => relErr(o, ref[i])));
      report(`${build} ${name}`, `top-1 agrees at ${a.agree}/${a.clear} clear positions (of ${a.total}); max rel err ${worst.toExponential(2)}`);
      expect(a.clear).toBeGreaterThan(a.total / 2);
      expect(a.agree).toBeGreaterThanOrEqual(Math.ceil(0.99 * a.clear));
      expect(worst).toBeLessThan(0.05); // measured ≤ 3.2e-2 (one activation scale per 256 values; ≤ 2.1e-2 with one per 32)
      // The metric can fail: logits one position off are far outside it.
      expect(relErr(ours[1], ref[0])).toBeGreaterThan(0.1);
      const prompt = tokens.slice(0, 20);
      const want = await greedy(model, prompt, 12);
      expect(await greedy(e, prompt, 12)).toEqual(want);
    });
  }
});

/**
 * The engine's kernel exports wrapped (as bench/decode-profile.ts does) to see, for every quantized
 * product, which quantizer made the activations it reads: the one just before it.
 */
function watchGrains(e: WasmEngine): { k: string[]; other: string[]; quantizers: Set<string> } {
  const eng = e as unknown as { k: Record<string, unknown> };
  const seen = { k: [] as string[], other: [] as string[], quantizers: new Set<string>() };
  let last = "none";
  const wrapped: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(eng.k)) {
    if (typeof f !== "function") {
      wrapped[name] = f;
      continue;
    }
    wrapped[name] = (...a: number[]) => {
      if (name.startsWith("quantize_q8")) seen.quantizers.add((last = name));
      else if (/^mat(vec|mul)_q\w+_q8[ab]$/.test(name)) (/_q[45]kr_/.test(name) ? seen.k : seen.other).push(`${name} after ${last}`);
      return (f as (...x: number[]) => unknown)(...a);
    };
  }
  eng.k = wrapped;
  return seen;
}

describe("activation grain (one scale per 256 values for Q4_K / Q5_K products)", () => {
  const K_GRAIN = /after quantize_q8[ab]_k$/;

  it("Q4_K_M's mix (Q4_K q/k/o/gate/up, Q6_K v and down, Q6_K head): every Q4_K product, decode and prefill, reads 256-grain activations; v with q and k shares them; down and the head alone get the 32 grain", async () => {
    const r = seededRandom(7);
    const q6 = (rows: number, cols: number) => ({ type: TensorType.Q6_K, dims: [cols, rows], bytes: quantize(TensorType.Q6_K, Float32Array.from({ length: rows * cols }, () => (r() * 2 - 1) / Math.sqrt(cols))) });
    const raw = Object.fromEntries(Array.from({ length: L }, (_, i) => [[`blk.${i}.attn_v.weight`, q6(H, H)], [`blk.${i}.ffn_down.weight`, q6(H, F)]]).flat());
    const bytes = await smallGGUF({ hidden: H, ffn: F, layers: L, vocab: V, heads: 4, matrix: TensorType.Q4_K, embed: TensorType.Q4_K, output: TensorType.Q6_K, seed: 5, raw });
    const e = await engineFromBytes(bytes, BUILDS[0], { prefillChunk: 40 });
    expect([e.weights.layers[0].q.kind, e.weights.layers[0].v.kind, e.weights.layers[0].down.kind]).toEqual(["q4kr", "q6r", "q6r"]);
    const seen = watchGrains(e);
    const seq = e.newSequence();
    e.forward(seq, randomTokens(20, V, 3), 0);
    e.forward(seq, [7], 20);
    expect(seen.k.length).toBeGreaterThan(0);
    expect(seen.k.filter((s) => !K_GRAIN.test(s))).toEqual([]);
    expect(seen.other.filter((s) => s.startsWith("matvec_q6r") || s.startsWith("matmul_q6r")).some((s) => K_GRAIN.test(s))).toBe(true); // v
    expect(seen.other.some((s) => !K_GRAIN.test(s))).toBe(true); // down, head
  });

  it("a file without Q4_K / Q5_K (Q4_0 layers, Q6_K head) never calls the 256-grain quantizers: its activations are as before", async () => {
    const bytes = await smallGGUF({ hidden: H, ffn: F, layers: L, vocab: V, heads: 4, matrix: TensorType.Q4_0, output: TensorType.Q6_K, seed: 6 });
    const e = await engineFromBytes(bytes, BUILDS[0], { prefillChunk: 40 });
    const seen = watchGrains(e);
    const seq = e.newSequence();
    e.forward(seq, randomTokens(20, V, 3), 0);
    e.forward(seq, [7], 20);
    expect([...seen.quantizers].sort()).toEqual(["quantize_q8a", "quantize_q8b"]);
    expect(seen.other.length).toBeGreaterThan(0);
  });

  it("a Q4_K product over activations quantized for other readers throws instead of computing wrong numbers", async () => {
    const bytes = await kModel(TensorType.Q4_K, TensorType.Q4_K, TensorType.Q6_K, 9);
    const e = await engineFromBytes(bytes, BUILDS[0]);
    // The engine's choice of grain forced wrong (as a bug in it would): the guard before the product catches it.
    (e as unknown as { grainFor(): 32 | 256 }).grainFor = function (this: { q8Grain: number }) {
      return (this.q8Grain = 32);
    };
    expect(() => e.forward(e.newSequence(), [1, 2, 3], 0)).toThrow(/q4kr product over activations with one scale per 32 values/);
  });
});
