// Quantized kernels: Q8A activation quantization, Q4_0 repack, Q4_0/Q6_K
// matvec and the prefill matmul (Q8_0: q8.test.ts). Each is checked three ways:
//  1. SIMD build == scalar build, bit for bit (the kernels are written so the
//     per-row f32 operation order is the same in every build);
//  2. == a plain-TS emulation of the integer dot + f32 accumulation (exact);
//  3. within quantBound() of float64 math on dequantized weights and the
//     unquantized activations (the activation rounding error, see harness).
import { describe, expect, it } from "vitest";
import { q8bBytes } from "../../src/engine/kernel-sizes";
import type { BuildKind } from "../../src/engine/kernels";
import {
  type Harness, both, rng, randVec, randQ4_0, randQ8_0, randQ6K, dequantQ6K, withHalves, AWKWARD_HALVES, quantRef, quantBound, bitsEqual, halfToF64, expectWithinQuantBound, matmulAndMatvecs, emulateBlocks,
} from "./harness";

const BUILD_OF: Record<number, BuildKind> = { 3: "relaxed-fused", 2: "relaxed", 1: "simd", 0: "scalar" };

const f = Math.fround;

/** The Q4R matmul of xs and each token's Q4R matvec (harness.ts). */
const q4rProducts = (h: Harness, w: number, rows: number, cols: number, xs: Float32Array, ntok: number) =>
  matmulAndMatvecs(h, h.k.matmul_q4r_q8b, h.k.matvec_q4r_q8a, w, rows, cols, xs, ntok);

function q4Emulate(bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  return emulateBlocks(bytes, rows, cols, x, 18, (o, b, q) => {
    let s = 0;
    for (let j = 0; j < 16; j++) {
      const v = bytes[o + 2 + j];
      s += ((v & 15) - 8) * q[b * 32 + j] + ((v >> 4) - 8) * q[b * 32 + j + 16];
    }
    return s;
  });
}

/** Q6_K: per 32-block, int = sum over its two 16-wide sub-blocks of sc * sum (q - 32) x, then the same f32 fold. */
function q6Emulate(bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const { d, q } = quantRef(x);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const nsb = cols / 256;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let sb = 0; sb < nsb; sb++) {
      const o = (r * nsb + sb) * 210;
      const dd = f(halfToF64(dv.getUint16(o + 208, true)));
      for (let blk = 0; blk < 8; blk++) {
        const h = blk >> 2, k = blk & 3;
        let s = 0;
        for (let half = 0; half < 2; half++) {
          let t = 0;
          for (let l = half * 16; l < half * 16 + 16; l++) {
            const qlb = bytes[o + h * 64 + (k & 1) * 32 + l];
            const qhb = bytes[o + 128 + h * 32 + l];
            const v = ((k >= 2 ? qlb >> 4 : qlb & 15) | (((qhb >> (2 * k)) & 3) << 4)) - 32;
            t += v * q[(sb * 8 + blk) * 32 + l];
          }
          s += t * dv.getInt8(o + 192 + h * 8 + k * 2 + half);
        }
        acc = f(acc + f(s * f(dd * d[sb * 8 + blk])));
      }
    }
    out[r] = acc;
  }
  return out;
}

describe("quantize_q8a", () => {
  it("matches the reference quantizer and the documented layout", () => {
    const r = rng(1);
    const n = 32 * 7;
    const x = randVec(r, n, 3);
    x.fill(0, 64, 96); // an all-zero block: d = 0, q = 0
    x[100] = 1e6; // one huge value: the rest of its block rounds to 0
    const ref = quantRef(x);
    for (const h of both()) {
      const xp = h.putF32(x);
      const size = h.k.q8a_bytes(n) >>> 0;
      const nb = n / 32;
      const S = Math.ceil((4 * nb) / 16) * 16;
      expect(size).toBe(2 * S + 32 * nb + 64 * nb);
      const dst = h.alloc(size);
      h.k.quantize_q8a(xp, n, dst);
      const bytes = h.u8(dst, size);
      const dv = new DataView(bytes.buffer);
      for (let b = 0; b < nb; b++) {
        expect(dv.getFloat32(4 * b, true)).toBe(ref.d[b]);
        expect(dv.getInt32(S + 4 * b, true)).toBe(ref.sum[b]);
      }
      for (let i = 0; i < n; i++) expect(dv.getInt8(2 * S + i)).toBe(ref.q[i]);
      const q16 = 2 * S + 32 * nb;
      for (let b = 0; b < nb; b++) {
        for (let j = 0; j < 32; j++) {
          const pos = (j >> 4) * 16 + (j & 1) * 8 + ((j & 15) >> 1);
          expect(dv.getInt16(q16 + b * 64 + pos * 2, true)).toBe(ref.q[b * 32 + j]);
        }
      }
      expect(ref.d[2]).toBe(0);
    }
  });
});

describe("Q4_0 repack + matvec / matmul", () => {
  const shapes: Array<[number, number]> = [[1, 32], [3, 64], [7, 96], [11, 64], [13, 256], [17, 128], [64, 512], [37, 2048]];

  it.each(shapes)("rows=%i cols=%i: simd == scalar == TS emulation, within the quantization bound", (rows, cols) => {
    const r = rng(rows * 1000 + cols);
    const { bytes, w } = randQ4_0(r, rows, cols, 5);
    const x = randVec(r, cols, 2);
    const want = q4Emulate(bytes, rows, cols, x);
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const size = h.k.q4r_bytes(rows, cols) >>> 0;
      expect(size).toBe(Math.ceil(rows / 4) * (cols / 32) * 72);
      const wp = h.alloc(size);
      h.arena.u8(wp, bytes.length).set(bytes);
      h.k.repack_q4_0(wp, wp, rows, cols); // in place
      const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
      h.k.quantize_q8a(h.putF32(x), cols, xa);
      const out = h.alloc(rows * 4);
      h.k.matvec_q4r_q8a(wp, rows, cols, xa, out);
      outs.push(h.f32(out, rows));
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], want)).toBe(true);
    expectWithinQuantBound(outs[0], w, rows, cols, x);
  });

  it("repack: in place == out of place, and Q4R decodes to the GGUF weights", () => {
    const r = rng(7);
    const rows = 6, cols = 64, nb = 2;
    const { bytes, w } = randQ4_0(r, rows, cols);
    for (const h of both()) {
      const size = h.k.q4r_bytes(rows, cols) >>> 0;
      const a = h.alloc(size);
      h.arena.u8(a, bytes.length).set(bytes);
      const src = h.putU8(bytes);
      const b = h.alloc(size);
      h.k.repack_q4_0(a, a, rows, cols);
      h.k.repack_q4_0(src, b, rows, cols);
      const A = h.u8(a, size);
      expect(A).toEqual(h.u8(b, size));
      const dv = new DataView(A.buffer);
      for (let row = 0; row < 8; row++) {
        for (let blk = 0; blk < nb; blk++) {
          const o = (row >> 2) * nb * 72 + blk * 72;
          const d = halfToF64(dv.getUint16(o + 2 * (row & 3), true));
          for (let j = 0; j < 16; j++) {
            // The four rows side by side by quads: row r's nibble byte j in quad j >> 2 (docs/kernels.md, Q4R).
            const v = A[o + 8 + 16 * (j >> 2) + 4 * (row & 3) + (j & 3)];
            const lo = ((v & 15) - 8) * d, hi = ((v >> 4) - 8) * d;
            if (row < rows) {
              expect(lo).toBe(w[row * cols + blk * 32 + j]);
              expect(hi).toBe(w[row * cols + blk * 32 + j + 16]);
            } else {
              expect(d).toBe(0); // padding rows
            }
          }
        }
      }
    }
  });

  it.each([[1, 11, 160], [5, 8, 64], [33, 13, 96], [70, 9, 256], [130, 20, 32]])(
    "matmul with %i tokens, rows=%i cols=%i == per-token matvec (bit-exact) in both builds",
    (ntok, rows, cols) => {
      const r = rng(99 + ntok);
      const q4 = randQ4_0(r, rows, cols, 7);
      const xs = randVec(r, ntok * cols, 1.5);
      const res: Float32Array[] = [];
      for (const h of both()) {
        const wr = h.alloc(h.k.q4r_bytes(rows, cols) >>> 0);
        h.k.repack_q4_0(h.putU8(q4.bytes), wr, rows, cols);
        expect(h.k.q8b_bytes(cols, ntok) >>> 0).toBe(q8bBytes(BUILD_OF[h.k.build_kind()], cols, ntok));
        const q4r = q4rProducts(h, wr, rows, cols, xs, ntok);
        const got = q4r.matmul;
        for (let t = 0; t < ntok; t++) {
          expect(bitsEqual(got.subarray(t * rows, (t + 1) * rows), q4r.matvecs[t]), `q4 token ${t}`).toBe(true);
        }
        res.push(got);
      }
      expect(bitsEqual(res[0], res[1])).toBe(true);
    },
  );

  it.each([[32, 64], [256, 512]] as const)("quantize_q8b (one scale per 32 values) and quantize_q8b_k (per 256) lay out the reference quantization in each build's sections (docs/kernels.md, Q8B): grain %i, n = %i", (grain, n) => {
    const r = rng(17);
    const ntok = 6, nb = n / 32;
    const xs = randVec(r, ntok * n, 2);
    if (grain === 256) xs[ntok * n - 300] = 30; // the last token's superblock 0 scaled by one value
    const refs = Array.from({ length: 8 }, (_, t) =>
      t < ntok ? quantRef(xs.subarray(t * n, (t + 1) * n), grain) : { d: new Float32Array(nb), q: new Int8Array(n), sum: new Int32Array(nb) },
    );
    for (const h of both()) {
      const build = BUILD_OF[h.k.build_kind()];
      const size = h.k.q8b_bytes(n, ntok) >>> 0;
      const xb = h.alloc(size);
      h.arena.u8(xb, size).fill(0xaa); // padding tokens must be zeroed
      (grain === 32 ? h.k.quantize_q8b : h.k.quantize_q8b_k)(h.putF32(xs), n, ntok, xb);
      const dv = new DataView(h.u8(xb, size).buffer);
      if (build === "relaxed-fused") {
        // Quads: x of tokens in groups of four, then d and -8*sum.
        for (let t = 0; t < 8; t++) {
          for (let b = 0; b < nb; b++) {
            const o = ((t >> 2) * nb + b) * 160 + (t & 3) * 4;
            expect(dv.getFloat32(o + 128, true)).toBe(refs[t].d[b]);
            expect(dv.getInt32(o + 144, true)).toBe((-8 * refs[t].sum[b]) | 0);
            for (let j = 0; j < 32; j++) {
              const q = refs[t].q[b * 32 + j];
              expect(dv.getInt8(o + (j >> 2) * 16 + (j & 3))).toBe(q);
            }
          }
        }
        continue;
      }
      for (let t = 0; t < 8; t++) {
        const ref = refs[t];
        for (let b = 0; b < nb; b++) {
          const o = ((t >> 2) * nb + b) * 288;
          expect(dv.getFloat32(o + 256 + 4 * (t & 3), true)).toBe(ref.d[b]);
          expect(dv.getInt32(o + 272 + 4 * (t & 3), true)).toBe(ref.sum[b]);
          for (let j = 0; j < 32; j++) expect(dv.getInt16(o + (j >> 1) * 16 + (t & 3) * 4 + (j & 1) * 2, true)).toBe(ref.q[b * 32 + j]);
        }
      }
      if (build === "relaxed") {
        // Pairs: int8 pairs of tokens in groups of eight, d of the even then the odd tokens, int16 -8*sum.
        const base = Math.ceil(ntok / 4) * nb * 288;
        for (let t = 0; t < 8; t++) {
          for (let b = 0; b < nb; b++) {
            const o = base + ((t >> 3) * nb + b) * 320;
            expect(dv.getFloat32(o + 256 + 4 * ((t >> 1) + 4 * (t & 1)), true)).toBe(refs[t].d[b]);
            expect(dv.getInt16(o + 288 + 2 * t, true)).toBe((-8 * refs[t].sum[b]) | 0);
            for (let j = 0; j < 32; j++) expect(dv.getInt8(o + (j >> 1) * 16 + 2 * t + (j & 1))).toBe(refs[t].q[b * 32 + j]);
          }
        }
      }
    }
  });

  it("extreme blocks (nibbles all 15 or all 0, activations all +-127): matmul == matvec == exact integer dot, every ntok 1..20", () => {
    // Nibbles 15 with x = +127 make the unsigned pair-product sum 32*15*127 = 60960 (past int16; the
    // relaxed matmul's int16 accumulators wrap and are corrected exactly); nibbles 0 give -8*127*32 = -32512.
    // Every token count takes each path the matmul has: the small batch (up to 6), the tiles, and
    // the tiles with a small tail (ntok % 8 up to 6).
    const rows = 4, cols = 64, NTOK = 20;
    const nb = cols / 32;
    const bytes = new Uint8Array(rows * nb * 18);
    const dv = new DataView(bytes.buffer);
    const fill = [0xff, 0x00, 0xff, 0x0f]; // per row: all 15, all 0, all 15, low 15 / high 0
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < nb; b++) {
        dv.setUint16((r * nb + b) * 18, 0x3c00, true); // d = 1
        bytes.fill(fill[r], (r * nb + b) * 18 + 2, (r * nb + b) * 18 + 18);
      }
    }
    const xs = new Float32Array(NTOK * cols);
    for (let t = 0; t < NTOK; t++) xs.fill(t % 2 ? -1 : 1, t * cols, (t + 1) * cols); // q = +-127 everywhere
    const want = (r: number, t: number) => {
      const s = t % 2 ? -127 : 127;
      const w = [7, -8, 7, 0][r]; // mean weight over the block: row 3 is 16 x 7 and 16 x -8
      return r === 3 ? nb * s * (16 * 7 - 16 * 8) * (1 / 127) : nb * 32 * w * s * (1 / 127);
    };
    for (let ntok = 1; ntok <= NTOK; ntok++) {
      const res: Float32Array[] = [];
      for (const h of both()) {
        const wr = h.alloc(h.k.q4r_bytes(rows, cols) >>> 0);
        h.k.repack_q4_0(h.putU8(bytes), wr, rows, cols);
        const { matmul: got, matvecs } = q4rProducts(h, wr, rows, cols, xs.subarray(0, ntok * cols), ntok);
        for (let t = 0; t < ntok; t++) {
          expect(bitsEqual(got.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${ntok} tokens: token ${t}`).toBe(true);
          for (let r = 0; r < rows; r++) expect(got[t * rows + r]).toBeCloseTo(want(r, t), 3);
        }
        res.push(got);
      }
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens`).toBe(true);
    }
  });

  it("f16 scales at their edges and activations at the fold table's limit: matvec and small batches == scalar == TS emulation", () => {
    // The SIMD folds take d_w as the f16's f32 bits and d_x · 2^112 from a per-call table, exact
    // while d_x < 2^16 (max |x| below 127 · 2^16 ≈ 8.32e6); past it a call folds with the scalar
    // twin. Token 1 sits just under the limit, tokens 2 and 7 past it (in their last block only),
    // so the small-batch passes of 2..8 tokens meet a token they must hand to the matvecs.
    const rows = 9, cols = 128, nb = cols / 32;
    const halves = [...AWKWARD_HALVES, 0x7bff, 0xfbff, 0x3c00];
    const q4 = randQ4_0(rng(77), rows, cols);
    const dv = new DataView(q4.bytes.buffer);
    for (let i = 0; i < rows * nb; i++) dv.setUint16(i * 18, halves[i % halves.length], true);
    const r = rng(78);
    const tokens = [1, 8.3e6, 1e7, 3, 2, 5, 8.3e6, 1e7].map((peak) => {
      const x = randVec(r, cols, 1);
      x[cols - 5] = peak; // the last block's max |x|
      return x;
    });
    const xs = new Float32Array(tokens.length * cols);
    tokens.forEach((x, t) => xs.set(x, t * cols));
    expect(quantRef(tokens[1]).d[nb - 1]).toBeLessThan(2 ** 16);
    expect(quantRef(tokens[2]).d[nb - 1]).toBeGreaterThan(2 ** 16);
    for (let ntok = 1; ntok <= tokens.length; ntok++) {
      const res: Float32Array[] = [];
      for (const h of both()) {
        const wr = h.alloc(h.k.q4r_bytes(rows, cols) >>> 0);
        h.k.repack_q4_0(h.putU8(q4.bytes), wr, rows, cols);
        const got = q4rProducts(h, wr, rows, cols, xs.subarray(0, ntok * cols), ntok);
        for (let t = 0; t < ntok; t++) {
          const want = q4Emulate(q4.bytes, rows, cols, tokens[t]);
          expect(bitsEqual(got.matvecs[t], want), `matvec, token ${t}`).toBe(true);
          expect(bitsEqual(got.matmul.subarray(t * rows, (t + 1) * rows), want), `${ntok} tokens: token ${t}`).toBe(true);
        }
        res.push(got.matmul);
      }
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens`).toBe(true);
    }
  });

  it("every ntok 1..20 (small batches, tiles, tiles with a tail): matmul == one matvec per token, bit for bit", () => {
    // Rows not a multiple of four (a padded last group) and a single 4-row group.
    for (const [rows, cols] of [[13, 96], [4, 256]]) {
      const r = rng(rows * 131 + cols);
      const q4 = randQ4_0(r, rows, cols, 7);
      const xs = randVec(r, 20 * cols, 1.5);
      for (let ntok = 1; ntok <= 20; ntok++) {
        const res: Float32Array[] = [];
        for (const h of both()) {
          const wr = h.alloc(h.k.q4r_bytes(rows, cols) >>> 0);
          h.k.repack_q4_0(h.putU8(q4.bytes), wr, rows, cols);
          const x = xs.subarray(0, ntok * cols);
          const q4r = q4rProducts(h, wr, rows, cols, x, ntok);
          for (let t = 0; t < ntok; t++) {
            expect(bitsEqual(q4r.matmul.subarray(t * rows, (t + 1) * rows), q4r.matvecs[t]), `${rows}x${cols}, ${ntok} tokens: q4 token ${t}`).toBe(true);
          }
          res.push(q4r.matmul);
        }
        expect(bitsEqual(res[0], res[1]), `${rows}x${cols}, ${ntok} tokens: q4 vs scalar`).toBe(true);
      }
    }
  });

  it("all-zero weights and all-zero activations give exact zeros", () => {
    for (const h of both()) {
      const rows = 5, cols = 64;
      const wr = h.alloc(h.k.q4r_bytes(rows, cols) >>> 0);
      h.arena.u8(wr, h.k.q4r_bytes(rows, cols) >>> 0).fill(0x88);
      const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
      h.k.quantize_q8a(h.putF32(randVec(rng(3), cols)), cols, xa);
      const out = h.alloc(rows * 4);
      h.k.matvec_q4r_q8a(wr, rows, cols, xa, out); // nibbles 8 -> weight 0
      expect(Array.from(h.f32(out, rows))).toEqual([0, 0, 0, 0, 0]);
      h.k.quantize_q8a(h.putF32(new Float32Array(cols)), cols, xa);
      h.arena.u8(wr, h.k.q4r_bytes(rows, cols) >>> 0).fill(0x3f);
      h.k.matvec_q4r_q8a(wr, rows, cols, xa, out);
      expect(Array.from(h.f32(out, rows)).every((v) => v === 0)).toBe(true);
    }
  });
});

/** Six-bit value (0..63) of element e of row r's superblock sb, from the GGUF Q6_K block (docs/model.md). */
function ggufQ6Value(bytes: Uint8Array, nsb: number, r: number, sb: number, e: number): number {
  const o = (r * nsb + sb) * 210;
  const h = e >> 7, k = (e >> 5) & 3, l = e & 31;
  const qlb = bytes[o + h * 64 + (k & 1) * 32 + l];
  const qhb = bytes[o + 128 + h * 32 + l];
  return (k >= 2 ? qlb >> 4 : qlb & 15) | (((qhb >> (2 * k)) & 3) << 4);
}

/**
 * The same element read from Q6R bytes as docs/kernels.md (Memory layouts, Q6R) describes them:
 * group g, superblock column sb at (g*nsb + sb)*840; in it, block pair m at 72 + 192m, vector
 * S(k, j) at + 64k + 16j, row r's quad at bytes 4r..4r+3.
 */
function q6rValue(q6r: Uint8Array, nsb: number, r: number, sb: number, e: number): number {
  const blk = e >> 5, l = e & 31, half = l >> 4, i = l & 15;
  const at = (k: number) => q6r[((r >> 2) * nsb + sb) * 840 + 72 + 192 * (blk >> 1) + 64 * k + 16 * (i >> 2) + 4 * (r & 3) + (i & 3)];
  if (blk % 2 === 0) return at(half) & 63;
  if (half === 0) return at(2) & 63;
  return (at(0) >> 6) | ((at(1) >> 6) << 2) | ((at(2) >> 6) << 4);
}

describe("Q6_K matvec (GGUF layout and Q6R)", () => {
  it("superblock scales d that are f16 subnormals, negative or zero: GGUF layout == Q6R == exact TS emulation in every build", () => {
    // Q6_K's d is about max|w|/4096, below the smallest normal half for ordinary weights: the
    // kernels convert it without an f32 denormal (an x86 microcode assist per superblock otherwise).
    const rows = 9, cols = 512;
    const r = rng(64);
    const { bytes } = randQ6K(r, rows, cols);
    withHalves(bytes, 210, [208]);
    const x = randVec(r, cols, 2);
    const want = q6Emulate(bytes, rows, cols, x);
    for (const h of both()) {
      const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
      h.k.quantize_q8a(h.putF32(x), cols, xa);
      const gguf = h.alloc(rows * 4), q6r = h.alloc(rows * 4);
      h.k.matvec_q6k_q8a(h.putU8(bytes), rows, cols, xa, gguf);
      const w = h.alloc(h.k.q6r_bytes(rows, cols) >>> 0);
      h.k.repack_q6_k(h.putU8(bytes), w, rows, cols);
      h.k.matvec_q6r_q8a(w, rows, cols, xa, q6r);
      expect(bitsEqual(h.f32(gguf, rows), want), `${h.kind}: GGUF layout`).toBe(true);
      expect(bitsEqual(h.f32(q6r, rows), want), `${h.kind}: Q6R`).toBe(true);
    }
  });

  it("extremes (six-bit values 0 and 63, scales -128 and 127, activations +-127) == exact TS emulation in every build", () => {
    const rows = 5, cols = 512;
    const bytes = new Uint8Array(rows * (cols / 256) * 210);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < rows * (cols / 256); i++) {
      const o = i * 210;
      const r = Math.floor(i / (cols / 256));
      bytes.fill(r % 2 ? 0xff : 0x00, o, o + 192); // all values 63 or all 0
      for (let j = 0; j < 16; j++) dv.setInt8(o + 192 + j, r < 2 ? -128 : r < 4 ? 127 : j * 17 - 128);
      dv.setUint16(o + 208, 0x2000 + r, true);
    }
    for (const sign of [1, -1]) {
      const x = new Float32Array(cols).fill(sign);
      for (let j = 0; j < cols; j += 5) x[j] = -sign; // mixed signs, still +-127 after quantization
      const want = q6Emulate(bytes, rows, cols, x);
      for (const h of both()) {
        const wp = h.putU8(bytes);
        const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
        h.k.quantize_q8a(h.putF32(x), cols, xa);
        const out = h.alloc(rows * 4);
        h.k.matvec_q6k_q8a(wp, rows, cols, xa, out);
        expect(bitsEqual(h.f32(out, rows), want)).toBe(true);
        const q6r = h.alloc(h.k.q6r_bytes(rows, cols) >>> 0);
        h.k.repack_q6_k(wp, q6r, rows, cols);
        h.k.matvec_q6r_q8a(q6r, rows, cols, xa, out);
        expect(bitsEqual(h.f32(out, rows), want)).toBe(true);
      }
    }
  });

  it.each([[1, 256], [6, 512], [11, 2048], [16, 256], [23, 512], [37, 256]])("rows=%i cols=%i", (rows, cols) => {
    const r = rng(rows + cols * 3);
    const { bytes, w } = randQ6K(r, rows, cols);
    const x = randVec(r, cols);
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const wp = h.putU8(bytes);
      const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
      h.k.quantize_q8a(h.putF32(x), cols, xa);
      const out = h.alloc(rows * 4);
      h.k.matvec_q6k_q8a(wp, rows, cols, xa, out);
      outs.push(h.f32(out, rows));
      // Q6R, repacked in place and out of place: same numbers as the GGUF layout.
      const size = h.k.q6r_bytes(rows, cols) >>> 0;
      expect(size).toBe(Math.ceil(rows / 4) * (cols / 256) * 840);
      const inPlace = h.alloc(size);
      h.arena.u8(inPlace, bytes.length).set(bytes);
      h.k.repack_q6_k(inPlace, inPlace, rows, cols);
      const other = h.alloc(size);
      h.k.repack_q6_k(wp, other, rows, cols);
      expect(h.u8(inPlace, size)).toEqual(h.u8(other, size));
      h.k.matvec_q6r_q8a(inPlace, rows, cols, xa, out);
      expect(bitsEqual(h.f32(out, rows), outs[outs.length - 1])).toBe(true);
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], q6Emulate(bytes, rows, cols, x))).toBe(true);
    expectWithinQuantBound(outs[0], w, rows, cols, x);
  });

  it("Q6R bytes are the documented layout (values, scales, d; a zero-padded last group), the same from every build", () => {
    const rows = 7, cols = 512, nsb = cols / 256;
    const { bytes } = randQ6K(rng(61), rows, cols);
    const dv = new DataView(bytes.buffer);
    const repacked = both().map((h) => {
      const size = h.k.q6r_bytes(rows, cols) >>> 0;
      const q6r = h.alloc(size);
      h.k.repack_q6_k(h.putU8(bytes), q6r, rows, cols);
      return h.u8(q6r, size);
    });
    expect(repacked[0]).toEqual(repacked[1]);
    const q6r = repacked[0];
    const qv = new DataView(q6r.buffer);
    for (let r = 0; r < 8; r++) {
      for (let sb = 0; sb < nsb; sb++) {
        const o = ((r >> 2) * nsb + sb) * 840;
        expect(qv.getUint16(o + 2 * (r & 3), true)).toBe(r < rows ? dv.getUint16((r * nsb + sb) * 210 + 208, true) : 0);
        for (let j = 0; j < 16; j++) expect(qv.getInt8(o + 8 + 4 * j + (r & 3))).toBe(r < rows ? dv.getInt8((r * nsb + sb) * 210 + 192 + j) : 0);
        for (let e = 0; e < 256; e++) expect(q6rValue(q6r, nsb, r, sb, e)).toBe(r < rows ? ggufQ6Value(bytes, nsb, r, sb, e) : 0);
      }
    }
  });

  it("a range of whole 4-row groups repacks in place on its own (as the loader repacks arriving bytes)", () => {
    const rows = 11, cols = 768;
    const { bytes } = randQ6K(rng(62), rows, cols);
    const groupBytes = 4 * (cols / 256) * 210;
    for (const h of both()) {
      const size = h.k.q6r_bytes(rows, cols) >>> 0;
      const whole = h.alloc(size);
      h.k.repack_q6_k(h.putU8(bytes), whole, rows, cols);
      const parts = h.alloc(size);
      h.arena.u8(parts, bytes.length).set(bytes);
      h.k.repack_q6_k(parts + groupBytes, parts + groupBytes, 4, cols); // group 1 first
      h.k.repack_q6_k(parts + 2 * groupBytes, parts + 2 * groupBytes, rows - 8, cols); // the padded last group
      h.k.repack_q6_k(parts, parts, 4, cols);
      expect(h.u8(parts, size)).toEqual(h.u8(whole, size));
    }
  });

  it("random extremes (values 0 or 63 and some between, scales -128 / 127 / any, activations +-127), 7 rows: == exact TS emulation in every build", () => {
    const rows = 7, cols = 768;
    const r = rng(63);
    const bytes = new Uint8Array(rows * (cols / 256) * 210);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < rows * (cols / 256); i++) {
      const o = i * 210;
      // Bytes 0x00 / 0xff give values 0 / 63 in every place; one byte in eight is anything.
      for (let j = 0; j < 192; j++) bytes[o + j] = r() < 0.125 ? Math.floor(r() * 256) : r() < 0.5 ? 0 : 0xff;
      for (let j = 0; j < 16; j++) dv.setInt8(o + 192 + j, [-128, 127, Math.floor(r() * 256) - 128][Math.floor(r() * 3)]);
      dv.setUint16(o + 208, 0x2000 + Math.floor(r() * 512), true);
    }
    const x = new Float32Array(cols);
    for (let j = 0; j < cols; j++) x[j] = r() < 0.5 ? 1 : -1; // every block's d is 1/127: all +-127
    const want = q6Emulate(bytes, rows, cols, x);
    for (const h of both()) {
      const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
      h.k.quantize_q8a(h.putF32(x), cols, xa);
      const q6r = h.alloc(h.k.q6r_bytes(rows, cols) >>> 0);
      h.k.repack_q6_k(h.putU8(bytes), q6r, rows, cols);
      const out = h.alloc(rows * 4);
      h.k.matvec_q6r_q8a(q6r, rows, cols, xa, out);
      expect(bitsEqual(h.f32(out, rows), want), h.kind).toBe(true);
    }
  });
});

describe("dequantize rows", () => {
  it("Q4_0, Q8_0, Q6_K rows decode exactly to the reference (f32 of the f64 value)", () => {
    const r = rng(42);
    const n = 512;
    const q4 = randQ4_0(r, 1, n, 3);
    const q8 = randQ8_0(r, 1, n);
    const q6 = randQ6K(r, 1, n);
    expect(dequantQ6K(q6.bytes, n)).toEqual(q6.w);
    for (const h of both()) {
      const out = h.alloc(n * 4);
      h.k.dequant_q4_0(h.putU8(q4.bytes), out, n);
      expect(Array.from(h.f32(out, n))).toEqual(Array.from(q4.w, f));
      h.k.dequant_q8_0(h.putU8(q8.bytes), out, n);
      expect(Array.from(h.f32(out, n))).toEqual(Array.from(q8.w, f));
      h.k.dequant_q6_k(h.putU8(q6.bytes), out, n);
      const got = h.f32(out, n);
      for (let i = 0; i < n; i++) expect(Math.abs(got[i] - q6.w[i])).toBeLessThanOrEqual(Math.abs(q6.w[i]) * 2 ** -23);
    }
  });
});
