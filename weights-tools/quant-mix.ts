/**
 * The file types `convert` and `synth` write, and which element type each
 * tensor gets in them (docs/quantization.md). The mixes (q2_k, q3_k_m,
 * q4_k_m, q5_k_m) and the fallbacks for rows that are not whole blocks follow
 * llama-quantize's rules for a StableLM model as of llama.cpp release v0.4.0
 * (the one node-llama-cpp 3.21.1 bundles), so our files hold the same type
 * per tensor as theirs; the values inside are our own quantizers'.
 */
import { layoutOf } from "../src/gguf/quant";
import { TensorType } from "../src/gguf/types";

export type OutType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q2_k" | "q3_k_m" | "q4_k_m" | "q5_k_m" | "q6_k";

interface TypeRule {
  /** The type of every quantized tensor the mix does not single out. */
  base: TensorType;
  /** llama_ftype (general.file_type). */
  fileType: number;
  /**
   * Written as llama-quantize would: output.weight gets Q6_K (or Q8_0), and
   * the mix's rules apply. Otherwise the file is pure: every matrix is `base`
   * (our q4_0 and q8_0 files, made by convert, not by quantizing).
   */
  llamaRules: boolean;
}

const RULES: Record<OutType, TypeRule> = {
  f32: { base: TensorType.F32, fileType: 0, llamaRules: false },
  f16: { base: TensorType.F16, fileType: 1, llamaRules: false },
  bf16: { base: TensorType.BF16, fileType: 32, llamaRules: false },
  q8_0: { base: TensorType.Q8_0, fileType: 7, llamaRules: false },
  q4_0: { base: TensorType.Q4_0, fileType: 2, llamaRules: false },
  q4_1: { base: TensorType.Q4_1, fileType: 3, llamaRules: true },
  q5_0: { base: TensorType.Q5_0, fileType: 8, llamaRules: true },
  q5_1: { base: TensorType.Q5_1, fileType: 9, llamaRules: true },
  q2_k: { base: TensorType.Q2_K, fileType: 10, llamaRules: true },
  q3_k_m: { base: TensorType.Q3_K, fileType: 12, llamaRules: true },
  q4_k_m: { base: TensorType.Q4_K, fileType: 15, llamaRules: true },
  q5_k_m: { base: TensorType.Q5_K, fileType: 17, llamaRules: true },
  q6_k: { base: TensorType.Q6_K, fileType: 18, llamaRules: true },
};

export const OUT_TYPES = Object.keys(RULES) as OutType[];

export function isOutType(s: string): s is OutType {
  return Object.hasOwn(RULES, s);
}

/** general.file_type of a file of this type. */
export function fileTypeOf(type: OutType): number {
  return RULES[type].fileType;
}

export function isQuantizedOutType(type: OutType): boolean {
  const base = RULES[type].base;
  return base !== TensorType.F32 && base !== TensorType.F16 && base !== TensorType.BF16;
}

/** What the rules need to know of a tensor. */
export interface MixTensor {
  name: string;
  /** Elements per row (ggml's ne[0]). */
  rowLength: number;
  /** Norm weights and 1-D tensors: never quantized. */
  keepF32: boolean;
}

export interface MixModel {
  numLayers: number;
  numHeads: number;
  numKVHeads: number;
}

export interface TypeChoice {
  type: TensorType;
  /** Set when the rows are not whole blocks of the type the rules chose. */
  note?: string;
}

/** llama.cpp's "more bits" layers: the first and last eighth, and every third one between. */
function useMoreBits(layer: number, layers: number): boolean {
  return layer < Math.trunc(layers / 8) || layer >= Math.trunc((7 * layers) / 8) || (layer - Math.trunc(layers / 8)) % 3 === 2;
}

/** The type a mix gives a tensor of `role` in `layer`, before checking that its rows hold whole blocks. */
function mixType(type: OutType, base: TensorType, t: MixTensor, layer: number, m: MixModel): TensorType {
  if (t.name === "output.weight") {
    if (t.rowLength % layoutOf(base).blockSize !== 0) return TensorType.Q8_0;
    return base === TensorType.Q8_0 ? base : TensorType.Q6_K;
  }
  const gqa = m.numHeads / m.numKVHeads;
  const role = /\.(attn_v|ffn_down|attn_output)\.weight$/.exec(t.name)?.[1];
  if (role === "attn_v") {
    if (type === "q2_k") return gqa >= 4 ? TensorType.Q4_K : TensorType.Q3_K;
    if (type === "q3_k_m") return layer < 2 ? TensorType.Q5_K : TensorType.Q4_K;
    if ((type === "q4_k_m" || type === "q5_k_m") && useMoreBits(layer, m.numLayers)) return TensorType.Q6_K;
  } else if (role === "ffn_down") {
    if (type === "q2_k") return TensorType.Q3_K;
    if (type === "q3_k_m") return layer < Math.trunc(m.numLayers / 16) ? TensorType.Q5_K : TensorType.Q4_K;
    if ((type === "q4_k_m" || type === "q5_k_m") && useMoreBits(layer, m.numLayers)) return TensorType.Q6_K;
  } else if (role === "attn_output") {
    if (type === "q2_k") return TensorType.Q3_K;
    if (type === "q3_k_m") return TensorType.Q4_K;
  }
  return base;
}

/** llama.cpp's fallback when a row is not whole blocks: a 32-element type of about the same size, else F16. */
const FALLBACK: Partial<Record<TensorType, TensorType>> = {
  [TensorType.Q2_K]: TensorType.Q4_0,
  [TensorType.Q3_K]: TensorType.Q4_0,
  [TensorType.Q4_K]: TensorType.Q5_0,
  [TensorType.Q5_K]: TensorType.Q5_1,
  [TensorType.Q6_K]: TensorType.Q8_0,
};

function fitRows(t: MixTensor, want: TensorType): TypeChoice {
  const fits = (type: TensorType) => t.rowLength % layoutOf(type).blockSize === 0;
  if (fits(want)) return { type: want };
  let type = FALLBACK[want] ?? want;
  if (!fits(type)) type = TensorType.F16;
  const { name, blockSize } = layoutOf(want);
  return { type, note: `${t.name}: row length ${t.rowLength} is not a multiple of ${blockSize}, stored as ${layoutOf(type).name} instead of ${name}` };
}

/**
 * The element type of each tensor (in file order, which is layer order) in a
 * file of `type`. A layer's attn_v and ffn_down are counted by their position
 * among their kind, as llama-quantize counts them.
 */
export function tensorTypes(tensors: readonly MixTensor[], type: OutType, model: MixModel): TypeChoice[] {
  const rule = RULES[type];
  const seen = new Map<string, number>();
  return tensors.map((t) => {
    if (t.keepF32) return { type: TensorType.F32 };
    if (!isQuantizedOutType(type)) return { type: rule.base };
    if (!rule.llamaRules) return fitRows(t, rule.base);
    const kind = /\.(attn_v|ffn_down)\.weight$/.exec(t.name)?.[1] ?? "";
    const index = seen.get(kind) ?? 0;
    seen.set(kind, index + 1);
    return fitRows(t, mixType(type, rule.base, t, index, model));
  });
}
