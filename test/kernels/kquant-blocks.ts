// Test support: random valid GGUF Q4_K / Q5_K matrices written byte by byte
// (any scale bytes, nibbles and fifth bits are a valid block; d and dmin are
// finite halves), so the kernels and the engine can be checked before a
// K-quant quantizer exists. Weights come from src/gguf's reference dequantize.
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { seededRandom } from "../../src/util/random";
import { f64ToHalf as halfBits } from "./harness";

export type KType = TensorType.Q4_K | TensorType.Q5_K;

export const K_BLOCK_BYTES: Record<KType, number> = { [TensorType.Q4_K]: 144, [TensorType.Q5_K]: 176 };

export interface KBlockOptions {
  /** Magnitude of d (and of dmin, times minRatio): values lie within about ±d·63·31. */
  d?: number;
  minRatio?: number;
  /** Every byte of the scales / nibbles / fifth bits this value instead of random (extreme blocks). */
  fill?: { scales?: number; qs?: number; qh?: number };
}


/** A rows × cols matrix of random blocks: its bytes and its weights (float64 of the reference's f32). */
export function randK(type: KType, r: () => number, rows: number, cols: number, opts: KBlockOptions = {}): { bytes: Uint8Array; w: Float64Array } {
  const B = K_BLOCK_BYTES[type];
  const n = (rows * cols) / 256;
  const bytes = new Uint8Array(n * B);
  const dv = new DataView(bytes.buffer);
  const d = opts.d ?? 1 / 256;
  const minRatio = opts.minRatio ?? 8;
  const byte = (v: number | undefined) => v ?? Math.floor(r() * 256);
  for (let i = 0; i < n; i++) {
    const o = i * B;
    dv.setUint16(o, halfBits(d * (0.5 + r())), true);
    dv.setUint16(o + 2, halfBits(d * minRatio * (0.5 + r())), true);
    for (let j = 0; j < 12; j++) bytes[o + 4 + j] = byte(opts.fill?.scales);
    const qs = type === TensorType.Q5_K ? o + 48 : o + 16;
    if (type === TensorType.Q5_K) for (let j = 0; j < 32; j++) bytes[o + 16 + j] = byte(opts.fill?.qh);
    for (let j = 0; j < 128; j++) bytes[qs + j] = byte(opts.fill?.qs);
  }
  const w32 = new Float32Array(rows * cols);
  dequantize(type, bytes, rows * cols, w32);
  return { bytes, w: Float64Array.from(w32) };
}

export interface KModelShape {
  hidden: number;
  ffn: number;
  layers: number;
  vocab: number;
  /** Rows of attn_k / attn_v (numKVHeads · headDim); default hidden. */
  kvDim?: number;
}

/**
 * Random K-quant bytes for a StableLM's matrices (for smallGGUF's `raw`): the
 * layers' as `layers`, the embedding as `embed`, output.weight as `output`
 * when that is a K-quant (else left to smallGGUF). Values d·sc·q − dmin·m
 * with sc, m, q uniform: dmin = 7.5·d (Q5_K: 15.5·d) centres them and their
 * spread is ~260·d (~515·d), so d = scale/450 (scale/900) matches the spread
 * of smallGGUF's other matrices (uniform in ±scale).
 */
export function kQuantTensors(s: KModelShape, layers: KType, embed: KType, output: TensorType, seed: number): Record<string, { type: KType; bytes: Uint8Array }> {
  const r = seededRandom(seed);
  const raw: Record<string, { type: KType; bytes: Uint8Array }> = {};
  const mat = (name: string, type: KType, rows: number, cols: number, scale: number) => {
    const five = type === TensorType.Q5_K;
    raw[name] = { type, bytes: randK(type, r, rows, cols, { d: scale / (five ? 900 : 450), minRatio: five ? 15.5 : 7.5 }).bytes };
  };
  const { hidden: H, ffn: F } = s;
  const kv = s.kvDim ?? H;
  mat("token_embd.weight", embed, s.vocab, H, 1);
  for (let i = 0; i < s.layers; i++) {
    for (const [m, rows, cols] of [["attn_q", H, H], ["attn_k", kv, H], ["attn_v", kv, H], ["attn_output", H, H], ["ffn_gate", F, H], ["ffn_up", F, H], ["ffn_down", H, F]] as const) {
      mat(`blk.${i}.${m}.weight`, layers, rows, cols, 1.7 / Math.sqrt(cols));
    }
  }
  if (output === TensorType.Q4_K || output === TensorType.Q5_K) mat("output.weight", output, s.vocab, H, 1.7 / Math.sqrt(H));
  return raw;
}
