// Test support: random valid GGUF Q4_1 matrices written byte by byte (any
// nibbles are a valid block; d and m are finite halves), so the kernels and
// the engine can be checked before a Q4_1 quantizer exists. Weights come
// from src/gguf's reference dequantize.
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { seededRandom } from "../../src/util/random";
import { f64ToHalf as halfBits } from "./harness";
import type { KModelShape } from "./kquant-blocks";
import { type Q5Type, randQ5 } from "./q5-blocks";

/**
 * rows × cols of Q4_1 blocks: d about `scale`/7.5 and m about −7.5·d (values
 * q·d + m centred, spread over about ±scale), each drawn per block. Options:
 * `anySign`, m of either sign and any size up to `scale` (the kernels'
 * arithmetic); `fill`, every nibble byte this value (extreme blocks).
 */
export function randQ4_1(r: () => number, rows: number, cols: number, scale = 1 / 16, opts: { anySign?: boolean; fill?: number } = {}): { bytes: Uint8Array; w: Float64Array } {
  const n = (rows * cols) / 32;
  const bytes = new Uint8Array(n * 20);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) {
    const d = (scale / 7.5) * (0.5 + r());
    dv.setUint16(i * 20, halfBits(d), true);
    const m = opts.anySign ? halfBits(scale * (0.5 + r())) | (r() < 0.5 ? 0x8000 : 0) : halfBits(7.5 * d * (0.9 + 0.2 * r())) | 0x8000;
    dv.setUint16(i * 20 + 2, m, true);
    for (let j = 0; j < 16; j++) bytes[i * 20 + 4 + j] = opts.fill ?? Math.floor(r() * 256);
  }
  const w32 = new Float32Array(rows * cols);
  dequantize(TensorType.Q4_1, bytes, rows * cols, w32);
  return { bytes, w: Float64Array.from(w32) };
}

/**
 * Random Q4_1 (or Q5_0 / Q5_1) bytes for every matrix of a StableLM (for
 * smallGGUF's `raw`), spread as smallGGUF's own (uniform in ±scale).
 */
export function q41Tensors(s: KModelShape, seed: number, type: TensorType.Q4_1 | Q5Type = TensorType.Q4_1): Record<string, { type: TensorType; bytes: Uint8Array }> {
  const r = seededRandom(seed);
  const raw: Record<string, { type: TensorType; bytes: Uint8Array }> = {};
  const mat = (name: string, rows: number, cols: number, scale: number) => {
    raw[name] = { type, bytes: (type === TensorType.Q4_1 ? randQ4_1(r, rows, cols, scale) : randQ5(type, r, rows, cols, scale)).bytes };
  };
  const { hidden: H, ffn: F } = s;
  const kv = s.kvDim ?? H;
  mat("token_embd.weight", s.vocab, H, 1);
  for (let i = 0; i < s.layers; i++) {
    for (const [m, rows, cols] of [["attn_q", H, H], ["attn_k", kv, H], ["attn_v", kv, H], ["attn_output", H, H], ["ffn_gate", F, H], ["ffn_up", F, H], ["ffn_down", H, F]] as const) {
      mat(`blk.${i}.${m}.weight`, rows, cols, 1.7 / Math.sqrt(cols));
    }
  }
  mat("output.weight", s.vocab, H, 1.7 / Math.sqrt(H));
  return raw;
}
