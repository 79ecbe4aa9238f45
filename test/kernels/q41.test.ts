// The Q4_1 kernels (repack to Q41R, matvec, matmul, row dequantize), checked
// as the other quantized kernels are (quant.test.ts, kquant.test.ts):
//  1. SIMD build == scalar build, bit for bit;
//  2. == a plain-TS emulation of the integer block sums and the f32 fold
//     (exact), written from the GGUF block, not from the repacked layout;
//  3. within quantBound() of float64 math on src/gguf's dequantized weights.
// Run against the relaxed builds by select.test.ts (KERNELS_SIMD_BUILD).
import { describe, expect, it } from "vitest";
import { q41rBytes } from "../../src/engine/kernel-sizes";
import { type Harness, both, rng, randVec, quantRef, quantBound, bitsEqual, halfToF64 } from "./harness";
import { randQ4_1 } from "./q41-blocks";

const f = Math.fround;

/** Per row and block: s = Σq·x, sx = Σx (integers), acc = f32(acc + f32(f32(s·f32(d·d_x)) + f32(sx·f32(m·d_x)))). */
function q41Emulate(bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const { d: dx, q: xq, sum } = quantRef(x);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const nb = cols / 32;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let b = 0; b < nb; b++) {
      const o = (r * nb + b) * 20;
      const d = halfToF64(dv.getUint16(o, true));
      const m = halfToF64(dv.getUint16(o + 2, true));
      let s = 0;
      for (let j = 0; j < 16; j++) {
        const v = bytes[o + 4 + j];
        s += (v & 15) * xq[b * 32 + j] + (v >> 4) * xq[b * 32 + j + 16];
      }
      acc = f(acc + f(f(s * f(d * dx[b])) + f(sum[b] * f(m * dx[b]))));
    }
    out[r] = acc;
  }
  return out;
}

function place(h: Harness, bytes: Uint8Array, rows: number, cols: number): number {
  const w = h.alloc(h.k.q41r_bytes(rows, cols) >>> 0);
  h.k.repack_q4_1(h.putU8(bytes), w, rows, cols);
  return w;
}

function matvecOf(h: Harness, w: number, rows: number, cols: number, x: Float32Array): Float32Array {
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  h.k.quantize_q8a(h.putF32(x), cols, xa);
  const out = h.alloc(rows * 4);
  h.k.matvec_q41r_q8a(w, rows, cols, xa, out);
  return h.f32(out, rows);
}

function matmulOf(h: Harness, w: number, rows: number, cols: number, xs: Float32Array, ntok: number): Float32Array {
  const xb = h.alloc(h.k.q8b_bytes(cols, ntok) >>> 0);
  h.k.quantize_q8b(h.putF32(xs), cols, ntok, xb);
  const out = h.alloc(rows * ntok * 4);
  h.k.matmul_q41r_q8b(w, rows, cols, xb, ntok, out);
  return h.f32(out, rows * ntok);
}

describe("Q4_1: repack + matvec", () => {
  it.each([[1, 32], [5, 256], [13, 768], [8, 2048]])("rows=%i cols=%i: simd == scalar == TS emulation, within the quantization bound", (rows, cols) => {
    const r = rng(rows * 977 + cols);
    const { bytes, w } = randQ4_1(r, rows, cols, 1 / 16, { anySign: true });
    const x = randVec(r, cols, 2);
    const want = q41Emulate(bytes, rows, cols, x);
    const outs = both().map((h) => matvecOf(h, place(h, bytes, rows, cols), rows, cols, x));
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], want)).toBe(true);
    for (let row = 0; row < rows; row++) {
      let ref = 0;
      for (let j = 0; j < cols; j++) ref += w[row * cols + j] * x[j];
      expect(Math.abs(outs[0][row] - ref), `row ${row}: ${outs[0][row]} vs ${ref}`).toBeLessThanOrEqual(quantBound(w, row * cols, x));
    }
  });

  it("repack in place == out of place, sizes as kernel-sizes.ts states, padding rows compute 0", () => {
    const rows = 6, cols = 256;
    const { bytes } = randQ4_1(rng(5), rows, cols, 1 / 16, { anySign: true });
    const x = randVec(rng(6), cols);
    for (const h of both()) {
      const size = h.k.q41r_bytes(rows, cols) >>> 0;
      expect(size).toBe(q41rBytes(rows, cols));
      const a = h.alloc(size);
      h.arena.u8(a, bytes.length).set(bytes);
      h.k.repack_q4_1(a, a, rows, cols);
      expect(h.u8(a, size)).toEqual(h.u8(place(h, bytes, rows, cols), size));
      const out8 = matvecOf(h, a, 8, cols, x);
      expect(Array.from(out8.subarray(6))).toEqual([0, 0]);
      expect(bitsEqual(out8.subarray(0, 6), q41Emulate(bytes, rows, cols, x))).toBe(true);
    }
  });

  it("dequantize rows: equal to src/gguf's reference dequantize", () => {
    const n = 768;
    const { bytes, w } = randQ4_1(rng(8), 1, n, 1 / 16, { anySign: true });
    for (const h of both()) {
      const out = h.alloc(n * 4);
      h.k.dequant_q4_1(h.putU8(bytes), out, n);
      expect(Array.from(h.f32(out, n))).toEqual(Array.from(w));
    }
  });
});

describe("Q4_1: matmul", () => {
  it("every ntok 1..20, random and extreme blocks (nibbles all 15 / all 0 against activations all ±127): == the emulation per token, == scalar", () => {
    const rows = 7, cols = 256, NTOK = 20;
    const parts = [randQ4_1(rng(31), 3, cols, 1 / 16, { anySign: true }), randQ4_1(rng(32), 2, cols, 1 / 16, { anySign: true, fill: 0xff }), randQ4_1(rng(33), 2, cols, 1 / 16, { anySign: true, fill: 0x00 })];
    const bytes = new Uint8Array(parts.reduce((a, p) => a + p.bytes.length, 0));
    parts.reduce((o, p) => (bytes.set(p.bytes, o), o + p.bytes.length), 0);
    const xs = randVec(rng(34), NTOK * cols, 1.5);
    for (let t = 0; t < NTOK; t += 3) xs.fill(t % 2 ? -1 : 1, t * cols, (t + 1) * cols);
    const wants = Array.from({ length: NTOK }, (_, t) => q41Emulate(bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols)));
    for (let ntok = 1; ntok <= NTOK; ntok++) {
      const res = both().map((h) => matmulOf(h, place(h, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok));
      for (let t = 0; t < ntok; t++) expect(bitsEqual(res[0].subarray(t * rows, (t + 1) * rows), wants[t]), `${ntok} tokens: token ${t}`).toBe(true);
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens: vs scalar`).toBe(true);
    }
  });
});
