/**
 * Models whose matrices are all Q4_1, all Q5_0 or all Q5_1 (layers,
 * embedding, head: llama.cpp's files of those types) in the wasm engine
 * against the reference forward pass: the same greedy tokens up to the first
 * near-tie, and top-1 agreement at the clear positions teacher-forced (int8
 * activations move logits by up to ~2.5% of their scale here, so a position
 * is clear past a 3% margin; helpers.ts `agreement`). The blocks are random
 * valid bytes written straight into the GGUF (../kernels/q41-blocks.ts), so
 * this runs without quantizers for these types. Runs once per kernel build in
 * BUILDS (default simd and scalar).
 */
import { describe, expect, it } from "vitest";
import { loadReferenceModelFromStream } from "../../src/model/load";
import { TensorType } from "../../src/gguf/types";
import { q41Tensors } from "../kernels/q41-blocks";
import { BUILDS, agreement, engineFromBytes, randomTokens, relErr, smallGGUF, streamOf, top2 } from "./helpers";

const H = 256, F = 512, L = 2, V = 510;

const TYPES = [["Q4_1", TensorType.Q4_1, "q41r"], ["Q5_0", TensorType.Q5_0, "q50r"], ["Q5_1", TensorType.Q5_1, "q51r"]] as const;

describe.each(BUILDS)("wasm engine (%s kernels), Q4_1 / Q5_0 / Q5_1 matrices, vs reference", (build) => {
  it.each(TYPES)("%s: same greedy tokens; top-1 agrees at ≥ 99% of clear positions over 96 (prefill in chunks of 40)", async (name, type, kind) => {
    const raw = q41Tensors({ hidden: H, ffn: F, layers: L, vocab: V }, 41, type);
    const bytes = await smallGGUF({ hidden: H, ffn: F, layers: L, vocab: V, heads: 4, matrix: TensorType.Q4_0, seed: 41, raw });
    const { model } = await loadReferenceModelFromStream(streamOf(bytes));
    const e = await engineFromBytes(bytes, build, { prefillChunk: 40 });
    expect(e.weights.layers[0].q.kind).toBe(kind);
    const tokens = randomTokens(96, V, 21);
    const ref = model.forward(model.newSequence(), tokens, 0, { allLogits: true });
    const ours = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    // Clear: a top-2 margin over 3% of the scale, above the largest logit error measured here (2.5%).
    const a = agreement(ours, ref, 0.03);
    const worst = Math.max(...ours.map((o, i) => relErr(o, ref[i])));
    console.log(`[engine ${build} ${name}] top-1 agrees at ${a.agree}/${a.clear} clear positions (of ${a.total}); max rel err ${worst.toExponential(2)}`);
    expect(a.clear).toBeGreaterThan(a.total / 2);
    expect(a.agree).toBeGreaterThanOrEqual(Math.ceil(0.99 * a.clear));
    expect(worst).toBeLessThan(0.05);
    // The metric can fail: logits one position off are far outside it.
    expect(relErr(ours[1], ref[0])).toBeGreaterThan(0.1);
    // Greedy: a 20-token prefill, then 12 single-position steps in each engine. Random weights
    // give near-ties; the tokens must agree up to the first step whose reference top-2 margin is
    // under 1% of the logits' scale (int8 activations may break such a tie either way).
    const prompt = tokens.slice(0, 20);
    const greedy = (fwd: (t: number[], pos: number) => Float32Array) => {
      let logits = fwd(prompt, 0);
      const steps: { token: number; clear: boolean }[] = [];
      for (let i = 0; i < 12; i++) {
        const { top, margin, scale } = top2(logits);
        steps.push({ token: top, clear: margin > 0.01 * scale });
        logits = fwd([top], prompt.length + i);
      }
      return steps;
    };
    const rs = model.newSequence(), es = e.newSequence();
    const want = greedy((t, pos) => model.forward(rs, t, pos)[0]);
    const got = greedy((t, pos) => e.forward(es, t, pos)[0]);
    const tie = want.findIndex((s) => !s.clear);
    const n = tie < 0 ? want.length : tie;
    console.log(`[engine ${build} ${name}] greedy: ${n} steps before the first near-tie compared`);
    expect(n).toBeGreaterThanOrEqual(6);
    expect(got.slice(0, n).map((s) => s.token)).toEqual(want.slice(0, n).map((s) => s.token));
  });
});
