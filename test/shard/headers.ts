/**
 * GGUF headers of StableLM shapes built in memory (no file, no tensor data): the planner only
 * reads the header, so the real 1.6B shape can be planned in a test without a 0.93 GB file.
 * Tensor order and names follow weights-tools/mapping.ts (token_embd, blk.N.*, output_norm, output).
 */
import type { GGUFHeader } from "../../src/gguf/reader";
import { tensorByteLength } from "../../src/gguf/quant";
import { TensorType, ValueType, type Metadata, type TensorInfo } from "../../src/gguf/types";

export interface Shape {
  vocab: number;
  hidden: number;
  ffn: number;
  layers: number;
  heads: number;
  /** Matrices' type (Q4_0 file). */
  type: TensorType;
  /** output.weight's type (llama.cpp's quantizer writes Q6_K in Q4_0 files). */
  outputType?: TensorType;
}

export const SHAPES = {
  tiny: { vocab: 100352, hidden: 64, ffn: 160, layers: 2, heads: 4, type: TensorType.Q4_0 },
  full2l: { vocab: 100352, hidden: 2048, ffn: 5632, layers: 2, heads: 32, type: TensorType.Q4_0 },
  "1_6b": { vocab: 100352, hidden: 2048, ffn: 5632, layers: 24, heads: 32, type: TensorType.Q4_0 },
} satisfies Record<string, Shape>;

export function stablelmHeader(s: Shape): Pick<GGUFHeader, "metadata" | "tensorByName" | "tensors" | "dataOffset" | "totalSize"> {
  const metadata: Metadata = new Map();
  const u32 = (key: string, value: number) => metadata.set(key, { type: ValueType.UINT32, value });
  metadata.set("general.architecture", { type: ValueType.STRING, value: "stablelm" });
  u32("stablelm.embedding_length", s.hidden);
  u32("stablelm.block_count", s.layers);
  u32("stablelm.attention.head_count", s.heads);
  u32("stablelm.attention.head_count_kv", s.heads);
  u32("stablelm.rope.dimension_count", (s.hidden / s.heads) / 4);
  u32("stablelm.feed_forward_length", s.ffn);
  u32("stablelm.context_length", 4096);
  const tensors: TensorInfo[] = [];
  let offset = 0;
  const add = (name: string, dims: number[], type: TensorType) => {
    const byteLength = tensorByteLength(type, dims);
    tensors.push({ name, dims, type, offset, byteLength, count: dims.reduce((a, b) => a * b, 1) });
    offset += Math.ceil(byteLength / 32) * 32;
  };
  const H = s.hidden;
  add("token_embd.weight", [H, s.vocab], s.type);
  for (let i = 0; i < s.layers; i++) {
    const b = `blk.${i}`;
    add(`${b}.attn_norm.weight`, [H], TensorType.F32);
    add(`${b}.attn_norm.bias`, [H], TensorType.F32);
    for (const m of ["q", "k", "v"]) {
      add(`${b}.attn_${m}.weight`, [H, H], s.type);
      add(`${b}.attn_${m}.bias`, [H], TensorType.F32);
    }
    add(`${b}.attn_output.weight`, [H, H], s.type);
    add(`${b}.ffn_norm.weight`, [H], TensorType.F32);
    add(`${b}.ffn_norm.bias`, [H], TensorType.F32);
    add(`${b}.ffn_gate.weight`, [H, s.ffn], s.type);
    add(`${b}.ffn_up.weight`, [H, s.ffn], s.type);
    add(`${b}.ffn_down.weight`, [s.ffn, H], s.type);
  }
  add("output_norm.weight", [H], TensorType.F32);
  add("output_norm.bias", [H], TensorType.F32);
  add("output.weight", [H, s.vocab], s.outputType ?? s.type);
  const dataOffset = 4096;
  return { metadata, tensors, tensorByName: new Map(tensors.map((t) => [t.name, t])), dataOffset, totalSize: dataOffset + offset };
}
