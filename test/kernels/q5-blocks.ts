// Test support: random valid GGUF Q5_0 / Q5_1 matrices written byte by byte
// (any nibbles and fifth bits are a valid block; d and m finite halves), so
// the kernels can be checked before a quantizer for them exists. Weights come
// from src/gguf's reference dequantize.
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { f64ToHalf as halfBits } from "./harness";

export type Q5Type = TensorType.Q5_0 | TensorType.Q5_1;

const Q5_BLOCK_BYTES: Record<Q5Type, number> = { [TensorType.Q5_0]: 22, [TensorType.Q5_1]: 24 };

/**
 * rows × cols of blocks with d about `scale`/16 (Q5_1: m about −15.5·d, so
 * values centred, spread over about ±scale). Options: `anySign`, Q5_1's m of
 * either sign and any size up to `scale` (the kernels' arithmetic); `fill`,
 * every nibble byte and every fifth-bit byte this value (extreme blocks).
 */
export function randQ5(type: Q5Type, r: () => number, rows: number, cols: number, scale = 1 / 16, opts: { anySign?: boolean; fill?: number } = {}): { bytes: Uint8Array; w: Float64Array } {
  const B = Q5_BLOCK_BYTES[type];
  const n = (rows * cols) / 32;
  const bytes = new Uint8Array(n * B);
  const dv = new DataView(bytes.buffer);
  const withMin = type === TensorType.Q5_1;
  for (let i = 0; i < n; i++) {
    const o = i * B;
    const d = (scale / 16) * (0.5 + r());
    dv.setUint16(o, halfBits(d) | (!withMin && r() < 0.5 ? 0x8000 : 0), true);
    if (withMin) {
      const m = opts.anySign ? halfBits(scale * (0.5 + r())) | (r() < 0.5 ? 0x8000 : 0) : halfBits(15.5 * d * (0.9 + 0.2 * r())) | 0x8000;
      dv.setUint16(o + 2, m, true);
    }
    for (let j = withMin ? 4 : 2; j < B; j++) bytes[o + j] = opts.fill ?? Math.floor(r() * 256);
  }
  const w32 = new Float32Array(rows * cols);
  dequantize(type, bytes, rows * cols, w32);
  return { bytes, w: Float64Array.from(w32) };
}
