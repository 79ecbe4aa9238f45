// Test support: random valid GGUF Q2_K / Q3_K matrices written byte by byte
// (any scale bytes, values and high bits make a valid block; d and dmin are
// finite halves), so the kernels and the engine can be checked without a
// quantizer for these types. Weights come from src/gguf's reference dequantize.
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { f64ToHalf as halfBits } from "./harness";

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
