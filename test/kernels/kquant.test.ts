// The K-quant kernels (Q4_K, Q5_K: repack to Q4KR / Q5KR, matvec, matmul,
// row dequantize), checked as the other quantized kernels are (quant.test.ts):
//  1. SIMD build == scalar build, bit for bit;
//  2. == a plain-TS emulation of the integer sub-block sums and the f32 fold
//     (exact), written from the GGUF block (src/gguf's kScaleMin unpacks the
//     scales), not from the repacked layout;
//  3. within quantBound() of float64 math on src/gguf's dequantized weights.
// Run against the relaxed builds by select.test.ts (KERNELS_SIMD_BUILD).
import { describe, expect, it } from "vitest";
import { q4krBytes, q5krBytes } from "../../src/engine/kernel-sizes";
import { kScaleMin } from "../../src/gguf/dequant-blocks";
import { TensorType } from "../../src/gguf/types";
import { type Harness, both, rng, randVec, quantRef, quantBound, bitsEqual, halfToF64, withHalves } from "./harness";
import { K_BLOCK_BYTES, type KType, randK } from "./kquant-blocks";

const f = Math.fround;
const TYPES: [string, KType][] = [["Q4_K", TensorType.Q4_K], ["Q5_K", TensorType.Q5_K]];

interface KOps {
  bytes(rows: number, cols: number): number;
  repack(src: number, dst: number, rows: number, cols: number): void;
  matvec(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  dequant(src: number, dst: number, n: number): void;
}

function ops(h: Harness, type: KType): KOps {
  const k = h.k;
  return type === TensorType.Q4_K
    ? { bytes: k.q4kr_bytes, repack: k.repack_q4_k, matvec: k.matvec_q4kr_q8a, matmul: k.matmul_q4kr_q8b, dequant: k.dequant_q4_k }
    : { bytes: k.q5kr_bytes, repack: k.repack_q5_k, matvec: k.matvec_q5kr_q8a, matmul: k.matmul_q5kr_q8b, dequant: k.dequant_q5_k };
}

/** The GGUF rows repacked (out of place) into h's memory. */
function placeK(h: Harness, type: KType, bytes: Uint8Array, rows: number, cols: number): number {
  const o = ops(h, type);
  const w = h.alloc(o.bytes(rows, cols) >>> 0);
  o.repack(h.putU8(bytes), w, rows, cols);
  return w;
}

/**
 * Per row and superblock, its 32-blocks b in order: isq += sc·Σq·x, ism += m·Σx (exact integers, as
 * int32), from 0; then acc = f32(acc + f32(f32(isq·f32(d·d_x)) − f32(ism·f32(dmin·d_x)))) with d_x
 * the superblock's (one per 256 values: quantize_q8a_k).
 */
function kEmulate(type: KType, bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const { d: dx, q: xq, sum } = quantRef(x, 256);
  const B = K_BLOCK_BYTES[type];
  const five = type === TensorType.Q5_K;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const nsb = cols / 256;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let sb = 0; sb < nsb; sb++) {
      const o = (r * nsb + sb) * B;
      const d = halfToF64(dv.getUint16(o, true));
      const dmin = halfToF64(dv.getUint16(o + 2, true));
      const qs = o + (five ? 48 : 16);
      let isq = 0, ism = 0;
      for (let j = 0; j < 8; j++) {
        const [sc, m] = kScaleMin(bytes, o + 4, j);
        const b = sb * 8 + j;
        let dot = 0;
        for (let l = 0; l < 32; l++) {
          const byte = bytes[qs + 32 * (j >> 1) + l];
          let v = j & 1 ? byte >> 4 : byte & 15;
          if (five) v |= ((bytes[o + 16 + l] >> j) & 1) << 4;
          dot += v * xq[b * 32 + l];
        }
        isq += sc * dot;
        ism += m * sum[b];
      }
      expect(Math.max(Math.abs(isq), Math.abs(ism))).toBeLessThan(2 ** 31);
      const x0 = dx[sb * 8];
      acc = f(acc + f(f(f(isq) * f(d * x0)) - f(f(ism) * f(dmin * x0))));
    }
    out[r] = acc;
  }
  return out;
}

function matvecOf(h: Harness, type: KType, w: number, rows: number, cols: number, x: Float32Array): Float32Array {
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  h.k.quantize_q8a_k(h.putF32(x), cols, xa);
  const out = h.alloc(rows * 4);
  ops(h, type).matvec(w, rows, cols, xa, out);
  return h.f32(out, rows);
}

/** The matmul of ntok rows of xs, and each token's own matvec. */
function matmulAndMatvecs(h: Harness, type: KType, w: number, rows: number, cols: number, xs: Float32Array, ntok: number): { matmul: Float32Array; matvecs: Float32Array[] } {
  const xp = h.putF32(xs);
  const xb = h.alloc(h.k.q8b_bytes(cols, ntok) >>> 0);
  h.k.quantize_q8b_k(xp, cols, ntok, xb);
  const mm = h.alloc(rows * ntok * 4);
  ops(h, type).matmul(w, rows, cols, xb, ntok, mm);
  const matvecs = Array.from({ length: ntok }, (_, t) => matvecOf(h, type, w, rows, cols, xs.subarray(t * cols, (t + 1) * cols)));
  return { matmul: h.f32(mm, rows * ntok), matvecs };
}

/** Matvec and matmul of every ntok 1..maxTok, in every build, == the exact emulation per token, bit for bit. */
function expectExact(type: KType, bytes: Uint8Array, rows: number, cols: number, xs: Float32Array, maxTok: number): void {
  const wants = Array.from({ length: maxTok }, (_, t) => kEmulate(type, bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols)));
  for (let ntok = 1; ntok <= maxTok; ntok++) {
    for (const h of both()) {
      const { matmul, matvecs } = matmulAndMatvecs(h, type, placeK(h, type, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok);
      for (let t = 0; t < ntok; t++) {
        expect(bitsEqual(matvecs[t], wants[t]), `${h.kind}, ${ntok} tokens: matvec token ${t}`).toBe(true);
        expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), wants[t]), `${h.kind}, ${ntok} tokens: matmul token ${t}`).toBe(true);
      }
    }
  }
}

function refMatvec(w: Float64Array, rows: number, cols: number, x: Float32Array): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[r] += w[r * cols + j] * x[j];
  return out;
}

describe.each(TYPES)("%s: repack + matvec", (_name, type) => {
  // Rows not a multiple of four (a padded group), several superblocks (aq and am restart per superblock).
  it.each([[1, 256], [5, 512], [13, 768], [8, 2048], [7, 1280], [23, 512], [37, 256]])("rows=%i cols=%i: simd == scalar == TS emulation, within the quantization bound", (rows, cols) => {
    const r = rng(rows * 977 + cols + type);
    const { bytes, w } = randK(type, r, rows, cols);
    const x = randVec(r, cols, 2);
    const want = kEmulate(type, bytes, rows, cols, x);
    const outs = both().map((h) => matvecOf(h, type, placeK(h, type, bytes, rows, cols), rows, cols, x));
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], want)).toBe(true);
    const ref = refMatvec(w, rows, cols, x);
    for (let row = 0; row < rows; row++) {
      const bound = quantBound(w, row * cols, x, 256);
      expect(Math.abs(outs[0][row] - ref[row]), `row ${row}: ${outs[0][row]} vs ${ref[row]}`).toBeLessThanOrEqual(bound);
    }
  });

  // Q5KR is 1.57× the file (1104 B against 704 per 4 rows and 256 columns), Q4KR 1.03×: the in-place
  // repack runs from the last group, each group's rows copied aside first. Several groups, the last
  // partial, so a group written over a source not yet copied would show; a guard past the end.
  it.each([[6, 512], [13, 1280], [4, 256]])("rows=%i cols=%i: repack in place == out of place, sizes as kernel-sizes.ts states, nothing written past them, padding rows compute 0", (rows, cols) => {
    const { bytes } = randK(type, rng(5 + type + rows), rows, cols);
    const x = randVec(rng(6), cols);
    const padded = Math.ceil(rows / 4) * 4;
    for (const h of both()) {
      const o = ops(h, type);
      const size = o.bytes(rows, cols) >>> 0;
      expect(size).toBe(type === TensorType.Q4_K ? q4krBytes(rows, cols) : q5krBytes(rows, cols));
      expect(size).toBeGreaterThan(bytes.length);
      const a = h.alloc(size + 64);
      h.arena.u8(a, size + 64).fill(0xa5);
      h.arena.u8(a, bytes.length).set(bytes);
      o.repack(a, a, rows, cols);
      const b = placeK(h, type, bytes, rows, cols);
      expect(h.u8(a, size)).toEqual(h.u8(b, size));
      expect(h.u8(a + size, 64).every((v) => v === 0xa5), "bytes past the repacked matrix").toBe(true);
      // The padded group's rows are zeros: d = dmin = 0, so their outputs are exactly 0.
      const out = matvecOf(h, type, a, padded, cols, x);
      expect(Array.from(out.subarray(rows))).toEqual(new Array(padded - rows).fill(0));
      expect(bitsEqual(out.subarray(0, rows), kEmulate(type, bytes, rows, cols, x))).toBe(true);
    }
  });

  it("dequantize rows: equal to src/gguf's reference dequantize", () => {
    const n = 768;
    const { bytes, w } = randK(type, rng(8 + type), 1, n);
    for (const h of both()) {
      const out = h.alloc(n * 4);
      ops(h, type).dequant(h.putU8(bytes), out, n);
      expect(Array.from(h.f32(out, n))).toEqual(Array.from(w));
    }
  });
});

describe.each(TYPES)("%s: matmul", (_name, type) => {
  it("d and dmin that are f16 subnormals, negative or zero (real Q4_K/Q5_K files have subnormal d): matvec and matmul == exact emulation, every ntok 1..9", () => {
    const rows = 7, cols = 512, NTOK = 9;
    const r = rng(93 + type);
    const { bytes } = randK(type, r, rows, cols);
    withHalves(bytes, K_BLOCK_BYTES[type], [0, 2]);
    const xs = randVec(r, NTOK * cols, 2);
    expectExact(type, bytes, rows, cols, xs, NTOK);
  });

  it("every ntok 1..20 (per-token matvecs, tiles, tiles with a tail): matmul == one matvec per token, bit for bit, == scalar", () => {
    // Rows not a multiple of four (a padded last group), two superblocks.
    const rows = 13, cols = 512;
    const r = rng(31 + type);
    const { bytes } = randK(type, r, rows, cols);
    const xs = randVec(r, 20 * cols, 1.5);
    for (let ntok = 1; ntok <= 20; ntok++) {
      const res = both().map((h) => {
        const { matmul, matvecs } = matmulAndMatvecs(h, type, placeK(h, type, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok);
        for (let t = 0; t < ntok; t++) expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${ntok} tokens: token ${t}`).toBe(true);
        return matmul;
      });
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens: vs scalar`).toBe(true);
    }
  });

  it("70 tokens (two chunks of the tiles) at 2048 columns: == TS emulation per token", () => {
    const rows = 8, cols = 2048, ntok = 70;
    const r = rng(77 + type);
    const { bytes } = randK(type, r, rows, cols);
    const xs = randVec(r, ntok * cols);
    const h = both()[0];
    const { matmul } = matmulAndMatvecs(h, type, placeK(h, type, bytes, rows, cols), rows, cols, xs, ntok);
    for (let t = 0; t < ntok; t++) {
      expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), kEmulate(type, bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols))), `token ${t}`).toBe(true);
    }
  });

  it("extreme blocks (values all max or all 0, scales and mins 63, activations all ±127): matvec and matmul == exact emulation, every ntok 1..20", () => {
    // Values at their max (15 / 31) against x = +127 drive the relaxed tiles' int16 chains to their
    // limits (Q4_K: Σ(q−8)x = 7·127·32 and −8·127·32 = −32512; Q5_K per half: 15·127·16, −16·127·16) and
    // the matvec's 4-row int16 sums to 30480 (Q4_K); all-0x3f scale bytes make every scale and min 63.
    const cols = 512, NTOK = 20;
    const blocks = [
      randK(type, rng(1), 2, cols, { fill: { scales: 0xff, qs: 0xff, qh: 0xff } }),
      randK(type, rng(2), 2, cols, { fill: { scales: 0xff, qs: 0x00, qh: 0x00 } }),
      randK(type, rng(3), 2, cols, { fill: { scales: 0x3f, qs: 0x0f, qh: 0x55 } }),
    ];
    const bytes = new Uint8Array(blocks.reduce((a, b) => a + b.bytes.length, 0));
    blocks.reduce((o, b) => (bytes.set(b.bytes, o), o + b.bytes.length), 0);
    const rows = 6;
    const xs = new Float32Array(NTOK * cols);
    for (let t = 0; t < NTOK; t++) for (let j = 0; j < cols; j++) xs[t * cols + j] = t % 3 === 0 ? 1 : t % 3 === 1 ? -1 : j % 5 ? 1 : -1;
    expectExact(type, bytes, rows, cols, xs, NTOK);
  });
});

describe("quantize_q8a_k / quantize_q8b_k (one activation scale per 256 values)", () => {
  it("d_x equal for the eight blocks of a superblock (max|x| over its 256 / 127), q and Σq as the reference; q·d_x within d_x/2 of x (the Q8B: quant.test.ts)", () => {
    const n = 768;
    const xs = randVec(rng(21), n, 3);
    xs[300] = 40; // one large value in superblock 1: its d_x is 40/127 for all eight blocks
    xs.fill(0, 512, 768); // an all-zero superblock: d_x = 0, q = 0
    for (const h of both()) {
      const xa = h.alloc(h.k.q8a_bytes(n) >>> 0);
      h.k.quantize_q8a_k(h.putF32(xs.subarray(0, n)), n, xa);
      const nb = n / 32, S = Math.ceil((4 * nb) / 16) * 16;
      const dv = new DataView(h.u8(xa, h.k.q8a_bytes(n) >>> 0).slice().buffer);
      const ref = quantRef(xs.subarray(0, n), 256);
      for (let b = 0; b < nb; b++) {
        const d = dv.getFloat32(4 * b, true);
        let amax = 0;
        for (let j = (b >> 3) * 256; j < (b >> 3) * 256 + 256; j++) amax = Math.max(amax, Math.abs(xs[j]));
        expect(d, `${h.kind} block ${b}`).toBe(Math.fround(amax / 127));
        expect(d).toBe(dv.getFloat32(4 * (b & ~7), true));
        expect(dv.getInt32(S + 4 * b, true)).toBe(ref.sum[b]);
        for (let j = 0; j < 32; j++) {
          const q = dv.getInt8(2 * S + 32 * b + j);
          expect(q).toBe(ref.q[32 * b + j]);
          expect(Math.abs(q * d - xs[32 * b + j]), `${h.kind} x[${32 * b + j}]`).toBeLessThanOrEqual(d / 2 * (1 + 1e-6));
        }
      }
      expect(dv.getFloat32(4 * 8, true)).toBe(Math.fround(40 / 127));
      expect(dv.getFloat32(4 * 16, true)).toBe(0);
    }
  });
});

/**
 * The repacked bytes of 7 rows (a zero-padded last group) read as docs/kernels.md (Memory layouts)
 * describes them: per 4 rows and superblock column, d, dmin, the unpacked scales (sub-block j's rows at
 * 16 + 4j), the mins (per pair of sub-blocks eight bytes at 48 + 8·(j >> 1), row r's two at 2r), then the
 * values, whose reading `values` gives against the GGUF block (row r's sub-block j, `want`).
 */
function checkKLayout(type: KType, seed: number, values: (q: Uint8Array, p: number, lane: number, j: number) => number[], want: (bytes: Uint8Array, o: number, j: number) => number[]) {
  const rows = 7, cols = 512, nsb = cols / 256;
  const B = type === TensorType.Q4_K ? 592 : 1104, inB = K_BLOCK_BYTES[type];
  const { bytes } = randK(type, rng(seed), rows, cols);
  for (const h of both()) {
    const q = h.u8(placeK(h, type, bytes, rows, cols), type === TensorType.Q4_K ? q4krBytes(rows, cols) : q5krBytes(rows, cols));
    for (let r = 0; r < 8; r++) {
      for (let sb = 0; sb < nsb; sb++) {
        const p = (Math.floor(r / 4) * nsb + sb) * B, lane = r % 4;
        const o = (r * nsb + sb) * inB;
        const src = (i: number) => (r < rows ? bytes[o + i] : 0);
        expect([q[p + 2 * lane], q[p + 2 * lane + 1], q[p + 8 + 2 * lane], q[p + 9 + 2 * lane]], `${h.kind} row ${r} superblock ${sb}: d, dmin`).toEqual([src(0), src(1), src(2), src(3)]);
        for (let j = 0; j < 8; j++) {
          const [sc, m] = r < rows ? kScaleMin(bytes, o + 4, j) : [0, 0];
          expect([q[p + 16 + 4 * j + lane], q[p + 48 + 8 * (j >> 1) + 2 * lane + (j & 1)]], `${h.kind} row ${r} sb ${sb} sub-block ${j}: scale, min`).toEqual([sc, m]);
          const expected = want(bytes, o, j).map((v) => (r < rows ? v : 0));
          expect(values(q, p, lane, j), `${h.kind} row ${r} sb ${sb} sub-block ${j}: values`).toEqual(expected);
        }
      }
    }
  }
}

describe("Q4KR / Q5KR layouts (docs/kernels.md, Memory layouts)", () => {
  it("Q5KR: sub-block j of row r at 80 + 128j + 32r, one value (0..31) a byte", () => {
    checkKLayout(
      TensorType.Q5_K, 404,
      (q, p, lane, j) => Array.from(q.subarray(p + 80 + 128 * j + 32 * lane, p + 80 + 128 * j + 32 * lane + 32)),
      (bytes, o, j) => Array.from({ length: 32 }, (_, l) => ((bytes[o + 48 + 32 * (j >> 1) + l] >> (4 * (j & 1))) & 15) | (((bytes[o + 16 + l] >> j) & 1) << 4)),
    );
  });

  it("Q4KR: sub-block j's four rows side by side by quads, row r's nibble byte l (q_l | q_l+16 << 4) at 80 + 64j + 16·(l >> 2) + 4r + (l & 3)", () => {
    // GGUF: the 32 bytes of chunk j >> 1 hold sub-block j's values in their low (even j) or high nibbles.
    const value = (bytes: Uint8Array, o: number, j: number, l: number) => (bytes[o + 16 + 32 * (j >> 1) + l] >> (4 * (j & 1))) & 15;
    checkKLayout(
      TensorType.Q4_K, 405,
      (q, p, lane, j) => Array.from({ length: 16 }, (_, l) => q[p + 80 + 64 * j + 16 * (l >> 2) + 4 * lane + (l & 3)]),
      (bytes, o, j) => Array.from({ length: 16 }, (_, l) => value(bytes, o, j, l) | (value(bytes, o, j, l + 16) << 4)),
    );
  });
});
