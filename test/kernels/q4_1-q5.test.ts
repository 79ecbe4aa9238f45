// The Q4_1, Q5_0 and Q5_1 kernels (repack to Q41R / Q50R / Q51R, matvec, matmul, row
// dequantize), checked
// as the other quantized kernels are (quant.test.ts, kquant.test.ts):
//  1. SIMD build == scalar build, bit for bit;
//  2. == a plain-TS emulation of the integer block sums and the f32 fold
//     (exact), written from the GGUF block, not from the repacked layout;
//  3. within quantBound() of float64 math on src/gguf's dequantized weights.
// Run against the relaxed builds by select.test.ts (KERNELS_SIMD_BUILD).
import { describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import { type Harness, both, rng, randVec, quantRef, quantBound, bitsEqual, halfToF64 } from "./harness";
import { randQ4_1 } from "./q41-blocks";
import { type Q5Type, randQ5 } from "./q5-blocks";

const f = Math.fround;
type QType = TensorType.Q4_1 | Q5Type;
const TYPES: [string, QType][] = [["Q4_1", TensorType.Q4_1], ["Q5_0", TensorType.Q5_0], ["Q5_1", TensorType.Q5_1]];
const BLOCK_BYTES: Record<QType, number> = { [TensorType.Q4_1]: 20, [TensorType.Q5_0]: 22, [TensorType.Q5_1]: 24 };

/** Random blocks: mins of either sign, or every data byte `fill`. */
const randBlocks = (type: QType, r: () => number, rows: number, cols: number, fill?: number) =>
  type === TensorType.Q4_1 ? randQ4_1(r, rows, cols, 1 / 16, { anySign: true, fill }) : randQ5(type, r, rows, cols, 1 / 16, { anySign: true, fill });

function ops(h: Harness, type: QType) {
  const k = h.k;
  if (type === TensorType.Q4_1) return { bytes: k.q41r_bytes, repack: k.repack_q4_1, matvec: k.matvec_q41r_q8a, matmul: k.matmul_q41r_q8b, dequant: k.dequant_q4_1, placed: 80 };
  return type === TensorType.Q5_0
    ? { bytes: k.q50r_bytes, repack: k.repack_q5_0, matvec: k.matvec_q50r_q8a, matmul: k.matmul_q50r_q8b, dequant: k.dequant_q5_0, placed: 88 }
    : { bytes: k.q51r_bytes, repack: k.repack_q5_1, matvec: k.matvec_q51r_q8a, matmul: k.matmul_q51r_q8b, dequant: k.dequant_q5_1, placed: 96 };
}

/**
 * Per row and block: s = Σq·x, sx = Σx (integers, q = nibble | fifth bit << 4 for Q5);
 * Q5_0: acc = f32(acc + f32(f32(s − 16·sx)·f32(d·d_x))); Q4_1, Q5_1: acc = f32(acc + f32(f32(s·f32(d·d_x)) + f32(sx·f32(m·d_x)))).
 */
function emulate(type: QType, bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const { d: dx, q: xq, sum } = quantRef(x);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const withMin = type !== TensorType.Q5_0;
  const five = type !== TensorType.Q4_1;
  const B = BLOCK_BYTES[type];
  const nb = cols / 32;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let b = 0; b < nb; b++) {
      const o = (r * nb + b) * B;
      const d = halfToF64(dv.getUint16(o, true));
      const qh = five ? dv.getUint32(o + (withMin ? 4 : 2), true) : 0;
      const qs = o + (five ? 4 : 0) + (withMin ? 4 : 2);
      let s = 0;
      for (let j = 0; j < 16; j++) {
        const v = bytes[qs + j];
        s += ((v & 15) | (((qh >>> j) & 1) << 4)) * xq[b * 32 + j] + ((v >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * xq[b * 32 + j + 16];
      }
      if (withMin) acc = f(acc + f(f(s * f(d * dx[b])) + f(sum[b] * f(halfToF64(dv.getUint16(o + 2, true)) * dx[b]))));
      else acc = f(acc + f((s - 16 * sum[b]) * f(d * dx[b])));
    }
    out[r] = acc;
  }
  return out;
}

function place(h: Harness, type: QType, bytes: Uint8Array, rows: number, cols: number): number {
  const o = ops(h, type);
  const w = h.alloc(o.bytes(rows, cols) >>> 0);
  o.repack(h.putU8(bytes), w, rows, cols);
  return w;
}

function matvecOf(h: Harness, type: QType, w: number, rows: number, cols: number, x: Float32Array): Float32Array {
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  h.k.quantize_q8a(h.putF32(x), cols, xa);
  const out = h.alloc(rows * 4);
  ops(h, type).matvec(w, rows, cols, xa, out);
  return h.f32(out, rows);
}

function matmulOf(h: Harness, type: QType, w: number, rows: number, cols: number, xs: Float32Array, ntok: number): Float32Array {
  const xb = h.alloc(h.k.q8b_bytes(cols, ntok) >>> 0);
  h.k.quantize_q8b(h.putF32(xs), cols, ntok, xb);
  const out = h.alloc(rows * ntok * 4);
  ops(h, type).matmul(w, rows, cols, xb, ntok, out);
  return h.f32(out, rows * ntok);
}

describe.each(TYPES)("%s: repack + matvec", (_name, type) => {
  it.each([[1, 32], [5, 256], [13, 768], [8, 2048]])("rows=%i cols=%i: simd == scalar == TS emulation, within the quantization bound", (rows, cols) => {
    const r = rng(rows * 977 + cols + type);
    const { bytes, w } = randBlocks(type, r, rows, cols);
    const x = randVec(r, cols, 2);
    const want = emulate(type, bytes, rows, cols, x);
    const outs = both().map((h) => matvecOf(h, type, place(h, type, bytes, rows, cols), rows, cols, x));
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], want)).toBe(true);
    for (let row = 0; row < rows; row++) {
      let ref = 0;
      for (let j = 0; j < cols; j++) ref += w[row * cols + j] * x[j];
      expect(Math.abs(outs[0][row] - ref), `row ${row}: ${outs[0][row]} vs ${ref}`).toBeLessThanOrEqual(quantBound(w, row * cols, x));
    }
  });

  it("repack in place == out of place, sizes as stated, padding rows compute 0", () => {
    const rows = 6, cols = 256;
    const { bytes } = randBlocks(type, rng(5), rows, cols);
    const x = randVec(rng(6), cols);
    for (const h of both()) {
      const o = ops(h, type);
      const size = o.bytes(rows, cols) >>> 0;
      expect(size).toBe(2 * (cols / 32) * o.placed);
      const a = h.alloc(size);
      h.arena.u8(a, bytes.length).set(bytes);
      o.repack(a, a, rows, cols);
      expect(h.u8(a, size)).toEqual(h.u8(place(h, type, bytes, rows, cols), size));
      const out8 = matvecOf(h, type, a, 8, cols, x);
      expect(Array.from(out8.subarray(6))).toEqual([0, 0]);
      expect(bitsEqual(out8.subarray(0, 6), emulate(type, bytes, rows, cols, x))).toBe(true);
    }
  });

  it("dequantize rows: equal to src/gguf's reference dequantize", () => {
    const n = 768;
    const { bytes, w } = randBlocks(type, rng(8), 1, n);
    for (const h of both()) {
      const out = h.alloc(n * 4);
      ops(h, type).dequant(h.putU8(bytes), out, n);
      expect(Array.from(h.f32(out, n))).toEqual(Array.from(w));
    }
  });
});

describe.each(TYPES)("%s: matmul", (_name, type) => {
  it("every ntok 1..20, random and extreme blocks (values all at their max / all 0 against activations all ±127): == the emulation per token, == scalar", () => {
    const rows = 7, cols = 256, NTOK = 20;
    const parts = [randBlocks(type, rng(31), 3, cols), randBlocks(type, rng(32), 2, cols, 0xff), randBlocks(type, rng(33), 2, cols, 0x00)];
    const bytes = new Uint8Array(parts.reduce((a, p) => a + p.bytes.length, 0));
    parts.reduce((o, p) => (bytes.set(p.bytes, o), o + p.bytes.length), 0);
    const xs = randVec(rng(34), NTOK * cols, 1.5);
    for (let t = 0; t < NTOK; t += 3) xs.fill(t % 2 ? -1 : 1, t * cols, (t + 1) * cols);
    const wants = Array.from({ length: NTOK }, (_, t) => emulate(type, bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols)));
    for (let ntok = 1; ntok <= NTOK; ntok++) {
      const res = both().map((h) => matmulOf(h, type, place(h, type, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok));
      for (let t = 0; t < ntok; t++) expect(bitsEqual(res[0].subarray(t * rows, (t + 1) * rows), wants[t]), `${ntok} tokens: token ${t}`).toBe(true);
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens: vs scalar`).toBe(true);
    }
  });
});
