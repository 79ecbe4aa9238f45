// Test support: random valid GGUF Q2_K / Q3_K matrices written byte by byte
// (any scale bytes, values and high bits make a valid block; d and dmin are
// finite halves), so the kernels and the engine can be checked without a
// quantizer for these types. Weights come from src/gguf's reference dequantize.
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { seededRandom } from "../../src/util/random";
import { f64ToHalf as halfBits } from "./harness";
import { randK } from "./kquant-blocks";

export type LowType = TensorType.Q2_K | TensorType.Q3_K;

export const LOW_BLOCK_BYTES: Record<LowType, number> = { [TensorType.Q2_K]: 84, [TensorType.Q3_K]: 110 };

export interface LowBlockOptions {
  /** Magnitude of d (Q2_K's dmin: d · minRatio). */
  d?: number;
  minRatio?: number;
  /** Every byte of the scales / 2-bit values / Q3_K high bits this value instead of random (extreme blocks). */
  fill?: { scales?: number; qs?: number; hmask?: number };
}

/** A rows × cols matrix of random blocks: its bytes and its weights (float64 of the reference's f32). */
export function randLow(type: LowType, r: () => number, rows: number, cols: number, opts: LowBlockOptions = {}): { bytes: Uint8Array; w: Float64Array } {
  const B = LOW_BLOCK_BYTES[type];
  const n = (rows * cols) / 256;
  const bytes = new Uint8Array(n * B);
  const dv = new DataView(bytes.buffer);
  const d = opts.d ?? 1 / 64;
  const byte = (v: number | undefined) => v ?? Math.floor(r() * 256);
  for (let i = 0; i < n; i++) {
    const o = i * B;
    if (type === TensorType.Q2_K) {
      for (let j = 0; j < 16; j++) bytes[o + j] = byte(opts.fill?.scales);
      for (let j = 0; j < 64; j++) bytes[o + 16 + j] = byte(opts.fill?.qs);
      dv.setUint16(o + 80, halfBits(d * (0.5 + r())), true);
      dv.setUint16(o + 82, halfBits(d * (opts.minRatio ?? 1.5) * (0.5 + r())), true);
    } else {
      for (let j = 0; j < 32; j++) bytes[o + j] = byte(opts.fill?.hmask);
      for (let j = 0; j < 64; j++) bytes[o + 32 + j] = byte(opts.fill?.qs);
      for (let j = 0; j < 12; j++) bytes[o + 96 + j] = byte(opts.fill?.scales);
      dv.setUint16(o + 108, halfBits(d * (0.5 + r())), true);
    }
  }
  const w32 = new Float32Array(rows * cols);
  dequantize(type, bytes, rows * cols, w32);
  return { bytes, w: Float64Array.from(w32) };
}

export interface LowModelShape {
  hidden: number;
  ffn: number;
  layers: number;
  vocab: number;
  /** Rows of attn_k / attn_v (numKVHeads · headDim); default hidden. */
  kvDim?: number;
}

/** Which type each of a StableLM's matrices gets (llama.cpp's mixes): layers, attn_v and ffn_down, embedding. */
export interface LowMix {
  layers: LowType;
  /** attn_v and ffn_down, which llama.cpp's Q2_K / Q3_K_M mixes keep at more bits. */
  vDown: LowType | TensorType.Q4_K;
  embed: LowType;
}

/**
 * Random bytes for a StableLM's matrices of a Q2_K / Q3_K mix (for
 * smallGGUF's `raw`; the head is left to smallGGUF). Spreads match
 * smallGGUF's other matrices (uniform in ±scale, std 0.58·scale): a Q2_K
 * value d·sc·q − dmin·m with dmin = 1.5·d (centred) has std ~14·d, a Q3_K
 * value d·s·(u − 4) ~43·d, a Q4_K one as in kquant-blocks.ts.
 */
export function lowQuantTensors(s: LowModelShape, mix: LowMix, seed: number): Record<string, { type: TensorType; bytes: Uint8Array }> {
  const r = seededRandom(seed);
  const raw: Record<string, { type: TensorType; bytes: Uint8Array }> = {};
  const mat = (name: string, type: LowType | TensorType.Q4_K, rows: number, cols: number, scale: number) => {
    raw[name] = type === TensorType.Q4_K
      ? { type, bytes: randK(type, r, rows, cols, { d: scale / 450, minRatio: 7.5 }).bytes }
      : { type, bytes: randLow(type, r, rows, cols, { d: scale / (type === TensorType.Q2_K ? 24 : 75) }).bytes };
  };
  const { hidden: H, ffn: F } = s;
  const kv = s.kvDim ?? H;
  mat("token_embd.weight", mix.embed, s.vocab, H, 1);
  for (let i = 0; i < s.layers; i++) {
    for (const [m, rows, cols] of [["attn_q", H, H], ["attn_k", kv, H], ["attn_v", kv, H], ["attn_output", H, H], ["ffn_gate", F, H], ["ffn_up", F, H], ["ffn_down", H, F]] as const) {
      mat(`blk.${i}.${m}.weight`, m === "attn_v" || m === "ffn_down" ? mix.vDown : mix.layers, rows, cols, 1.7 / Math.sqrt(cols));
    }
  }
  return raw;
}
