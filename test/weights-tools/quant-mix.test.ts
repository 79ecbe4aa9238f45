/**
 * The per-tensor type rules of each file type on real tensor lists: the 1.6B
 * shape (whose published Q4_K_M file holds 145 Q4_K, 25 Q6_K and 170 F32
 * tensors), the `small` preset (every row whole K-quant blocks) and `tiny`
 * (rows of 64 and 160: llama.cpp's fallbacks). Plans only: nothing is written.
 */
import { describe, expect, it } from "vitest";
import { typeName } from "../../src/gguf/quant";
import { planTensors, planTypes } from "../../weights-tools/mapping";
import { OUT_TYPES, type OutType } from "../../weights-tools/quant-mix";
import { presetParams, type PresetName } from "../../weights-tools/synth";

function plan(preset: PresetName, type: OutType) {
  const hp = presetParams(preset);
  const tensors = planTensors(hp, () => true);
  const types = planTypes(tensors, type, hp);
  const byName = new Map(tensors.map((t, i) => [t.name, typeName(types[i].type)]));
  const counts: Record<string, number> = {};
  for (const t of types) counts[typeName(t.type)] = (counts[typeName(t.type)] ?? 0) + 1;
  return { byName, counts, notes: types.flatMap((t) => (t.note ? [t.note] : [])) };
}

/** Layers 0-2, 21-23 and every third from 5 get more bits in a 24-layer model. */
const MORE_BITS_24 = [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23];

describe("quant mixes on the 1.6B tensor list (24 layers)", () => {
  it("q4_k_m: 145 Q4_K, 25 Q6_K, 170 F32, as in Stability's published Q4_K_M file", () => {
    const { byName, counts, notes } = plan("1_6b", "q4_k_m");
    expect(counts).toEqual({ Q4_K: 145, Q6_K: 25, F32: 170 });
    expect(notes).toEqual([]);
    expect(byName.get("output.weight")).toBe("Q6_K");
    expect(byName.get("token_embd.weight")).toBe("Q4_K");
    for (let l = 0; l < 24; l++) {
      const more = MORE_BITS_24.includes(l) ? "Q6_K" : "Q4_K";
      expect([l, byName.get(`blk.${l}.attn_v.weight`), byName.get(`blk.${l}.ffn_down.weight`)]).toEqual([l, more, more]);
      expect(byName.get(`blk.${l}.attn_k.weight`)).toBe("Q4_K");
      expect(byName.get(`blk.${l}.ffn_norm.bias`)).toBe("F32");
    }
  });

  it("the other types, counted by hand from llama.cpp's rules", () => {
    const expected: Partial<Record<OutType, Record<string, number>>> = {
      q5_k_m: { Q5_K: 145, Q6_K: 25, F32: 170 },
      q6_k: { Q6_K: 170, F32: 170 },
      // attn_v: the first two Q5_K, the rest Q4_K; ffn_down: layer 0 (< 24/16) Q5_K, the rest Q4_K; attn_output Q4_K.
      q3_k_m: { Q3_K: 97, Q4_K: 22 + 23 + 24, Q5_K: 3, Q6_K: 1, F32: 170 },
      // attn_v, ffn_down and attn_output Q3_K (MHA: no GQA bump to Q4_K).
      q2_k: { Q2_K: 97, Q3_K: 72, Q6_K: 1, F32: 170 },
      q4_1: { Q4_1: 169, Q6_K: 1, F32: 170 },
      q5_0: { Q5_0: 169, Q6_K: 1, F32: 170 },
      q5_1: { Q5_1: 169, Q6_K: 1, F32: 170 },
      // Ours, not llama-quantize's: pure files, output.weight included.
      q4_0: { Q4_0: 170, F32: 170 },
      q8_0: { Q8_0: 170, F32: 170 },
    };
    for (const [type, counts] of Object.entries(expected)) expect([type, plan("1_6b", type as OutType).counts]).toEqual([type, counts]);
  });
});

describe("quant mixes on the small preset (hidden 256, ffn 768, 2 layers)", () => {
  it("every K-quant stays a K-quant (rows are whole 256-blocks); layer 1 is a more-bits layer", () => {
    const { byName, counts, notes } = plan("small", "q4_k_m");
    expect(notes).toEqual([]);
    expect(counts).toEqual({ Q4_K: 13, Q6_K: 3, F32: 16 });
    expect([byName.get("blk.0.attn_v.weight"), byName.get("blk.1.attn_v.weight"), byName.get("blk.1.ffn_down.weight")]).toEqual(["Q4_K", "Q6_K", "Q6_K"]);
    expect(plan("small", "q3_k_m").counts).toEqual({ Q3_K: 9, Q5_K: 2, Q4_K: 4, Q6_K: 1, F32: 16 });
    expect(plan("small", "q2_k").counts).toEqual({ Q2_K: 9, Q3_K: 6, Q6_K: 1, F32: 16 });
    for (const type of OUT_TYPES) expect([type, plan("small", type).notes]).toEqual([type, []]);
  });
});

describe("fallbacks for rows that are not whole blocks (tiny: hidden 64, ffn 160)", () => {
  it("Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K/Q3_K → Q4_0, each with a note", () => {
    expect(plan("tiny", "q4_k_m").counts).toEqual({ Q5_0: 13, Q8_0: 3, F32: 16 });
    expect(plan("tiny", "q5_k_m").counts).toEqual({ Q5_1: 13, Q8_0: 3, F32: 16 });
    expect(plan("tiny", "q6_k").counts).toEqual({ Q8_0: 16, F32: 16 });
    expect(plan("tiny", "q2_k").counts).toEqual({ Q4_0: 15, Q8_0: 1, F32: 16 });
    const { notes, byName } = plan("tiny", "q4_k_m");
    expect(notes).toContain("blk.0.ffn_down.weight: row length 160 is not a multiple of 256, stored as Q5_0 instead of Q4_K");
    // output.weight's Q8_0 is the rule for an output row that is not whole blocks of the base type, not a fallback.
    expect(byName.get("output.weight")).toBe("Q8_0");
    expect(notes.some((n) => n.startsWith("output.weight"))).toBe(false);
  });
});
