// Q8_0 weights: the Q8R repack (docs/kernels.md, Memory layouts), its matvec
// and its matmul. Each product is checked as the other quantized kernels are:
// SIMD build == scalar build bit for bit, == a plain-TS emulation of the
// integer dot and f32 fold written from the GGUF block (exact), and within
// quantBound of float64 math; the matmul == one matvec per token, bit for bit.
// Run against the relaxed builds by select.test.ts (KERNELS_SIMD_BUILD).
import { describe, expect, it } from "vitest";
import { q8rBytes, Q8R_MAX_COLS } from "../../src/engine/kernel-sizes";
import { type Harness, both, rng, randVec, randQ8_0, bitsEqual, halfToF64, expectWithinQuantBound, matmulAndMatvecs, emulateBlocks } from "./harness";


/** GGUF Q8_0 bytes placed in a region of q8r_bytes and repacked in place, as the loader does. */
function placeQ8r(h: Harness, bytes: Uint8Array, rows: number, cols: number): number {
  const p = h.alloc(h.k.q8r_bytes(rows, cols) >>> 0);
  h.arena.u8(p, bytes.length).set(bytes);
  h.k.repack_q8_0(p, p, rows, cols);
  return p;
}

/** Per row and block: the exact integer dot of the GGUF int8 weights and Q8A values, then the kernels' fold. */
function q8Emulate(bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const w = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  return emulateBlocks(bytes, rows, cols, x, 34, (o, b, q) => {
    let s = 0;
    for (let j = 0; j < 32; j++) s += w[o + 2 + j] * q[b * 32 + j];
    return s;
  });
}

/** The Q8R matmul of xs and each token's Q8R matvec (harness.ts). */
const q8rProducts = (h: Harness, w: number, rows: number, cols: number, xs: Float32Array, ntok: number) =>
  matmulAndMatvecs(h, h.k.matmul_q8r_q8b, h.k.matvec_q8r_q8a, w, rows, cols, xs, ntok);

/** The Q8R matvec of x over the GGUF Q8_0 rows in bytes, placed in h. */
function q8rMatvec(h: Harness, bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const wp = placeQ8r(h, bytes, rows, cols);
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  h.k.quantize_q8a(h.putF32(x), cols, xa);
  const out = h.alloc(rows * 4);
  h.k.matvec_q8r_q8a(wp, rows, cols, xa, out);
  return h.f32(out, rows);
}

/** Q8_0 blocks whose row r holds pattern[r % patterns](j) and scale half `scale(r, b)`. */
function patternQ8_0(rows: number, cols: number, pattern: ((j: number) => number)[], scale: (r: number, b: number) => number): Uint8Array {
  const nb = cols / 32;
  const bytes = new Uint8Array(rows * nb * 34);
  const dv = new DataView(bytes.buffer);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      dv.setUint16((r * nb + b) * 34, scale(r, b), true);
      for (let j = 0; j < 32; j++) dv.setInt8((r * nb + b) * 34 + 2 + j, pattern[r % pattern.length](j));
    }
  }
  return bytes;
}

describe("Q8R repack", () => {
  it.each([[1, 32], [4, 64], [6, 96], [9, 64], [11, 160]])("rows=%i cols=%i: in place == out of place; Q8R holds the GGUF values, f32 scales and zero padding", (rows, cols) => {
    const r = rng(rows * 31 + cols);
    const { bytes, w } = randQ8_0(r, rows, cols);
    const nb = cols / 32;
    const groups = Math.ceil(rows / 4);
    for (const h of both()) {
      const size = h.k.q8r_bytes(rows, cols) >>> 0;
      expect(size).toBe(q8rBytes(rows, cols));
      const a = placeQ8r(h, bytes, rows, cols);
      const b = h.alloc(size);
      h.arena.u8(b, size).fill(0xa5); // the repack must write every byte, padding included
      h.k.repack_q8_0(h.putU8(bytes), b, rows, cols);
      const A = h.u8(a, size);
      expect(A).toEqual(h.u8(b, size));
      const dv = new DataView(A.buffer);
      for (let row = 0; row < groups * 4; row++) {
        for (let blk = 0; blk < nb; blk++) {
          const o = (row >> 2) * nb * 144 + blk * 144;
          const d = dv.getFloat32(o + 4 * (row & 3), true);
          for (let j = 0; j < 32; j++) {
            const q = dv.getInt8(o + 16 + 32 * (row & 3) + j);
            if (row < rows) {
              expect(q * d).toBe(w[row * cols + blk * 32 + j]);
              expect(d).toBe(halfToF64(new DataView(bytes.buffer).getUint16((row * nb + blk) * 34, true)));
            } else {
              expect([d, q]).toEqual([0, 0]);
            }
          }
        }
      }
    }
  });
});

describe("Q8R matvec", () => {
  it.each([[1, 32], [3, 64], [5, 96], [9, 256], [33, 1024], [100, 2048]])("rows=%i cols=%i: SIMD == scalar == emulation, within the bound", (rows, cols) => {
    const r = rng(rows * 7 + cols);
    const { bytes, w } = randQ8_0(r, rows, cols);
    const x = randVec(r, cols);
    const want = q8Emulate(bytes, rows, cols, x);
    const outs: Float32Array[] = [];
    for (const h of both()) outs.push(q8rMatvec(h, bytes, rows, cols, x));
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], want)).toBe(true);
    expectWithinQuantBound(outs[0], w, rows, cols, x);
  });

  it("scales at the ends of the half range (65504, the smallest subnormal, negative) == emulation", () => {
    const rows = 7, cols = 128;
    const halves = [0x7bff, 0x0001, 0xfbff, 0x8001, 0x3c00, 0x0400, 0xbc00];
    const r = rng(5);
    const bytes = patternQ8_0(rows, cols, [() => Math.floor(r() * 256) - 128], (row, b) => halves[(row + b) % halves.length]);
    const x = randVec(r, cols, 3);
    const want = q8Emulate(bytes, rows, cols, x);
    for (const h of both()) expect(bitsEqual(q8rMatvec(h, bytes, rows, cols, x), want), h.kind).toBe(true);
  });
});

describe("Q8R matmul", () => {
  it.each([[70, 9, 256], [130, 6, 32], [33, 13, 96]])("%i tokens, rows=%i cols=%i (more than one 64-token chunk) == one matvec per token, bit for bit", (ntok, rows, cols) => {
    const r = rng(99 + ntok);
    const { bytes } = randQ8_0(r, rows, cols);
    const xs = randVec(r, ntok * cols, 1.5);
    const res: Float32Array[] = [];
    for (const h of both()) {
      const { matmul, matvecs } = q8rProducts(h, placeQ8r(h, bytes, rows, cols), rows, cols, xs, ntok);
      for (let t = 0; t < ntok; t++) expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${h.kind} token ${t}`).toBe(true);
      res.push(matmul);
    }
    expect(bitsEqual(res[0], res[1])).toBe(true);
  });

  it("every ntok 1..20 (small batches, tiles, tiles with a tail) == one matvec per token, bit for bit", () => {
    // Rows not a multiple of four (a padded last group) and a single 4-row group.
    for (const [rows, cols] of [[13, 96], [4, 256], [2, 64]]) {
      const r = rng(rows * 131 + cols);
      const { bytes } = randQ8_0(r, rows, cols);
      const xs = randVec(r, 20 * cols, 1.5);
      for (let ntok = 1; ntok <= 20; ntok++) {
        const res: Float32Array[] = [];
        for (const h of both()) {
          const { matmul, matvecs } = q8rProducts(h, placeQ8r(h, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok);
          for (let t = 0; t < ntok; t++) {
            expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${rows}x${cols}, ${ntok} tokens: token ${t}`).toBe(true);
          }
          res.push(matmul);
        }
        expect(bitsEqual(res[0], res[1]), `${rows}x${cols}, ${ntok} tokens: SIMD vs scalar`).toBe(true);
      }
    }
  });
});

describe("Q8R at its widest", () => {
  it("Q8R_MAX_COLS columns: the small path's activations survive the relaxed matvec's per-call table (matmul == matvecs)", () => {
    const rows = 5, cols = Q8R_MAX_COLS, ntok = 3;
    const r = rng(45);
    const { bytes } = randQ8_0(r, rows, cols);
    const xs = randVec(r, ntok * cols);
    for (const h of both()) {
      const { matmul, matvecs } = q8rProducts(h, placeQ8r(h, bytes, rows, cols), rows, cols, xs, ntok);
      for (let t = 0; t < ntok; t++) expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${h.kind} token ${t}`).toBe(true);
    }
  });
});

describe("Q8R extremes", () => {
  it("weights -128 and 127 against activations +-127: matvec == matmul == exact TS emulation in every build, every ntok 1..20", () => {
    // w = -128 with x = -127 (one half of the activation split at its largest) and pair dots at
    // 2*128*127, the largest the two-step relaxed matvec holds in int16; 6 rows: a padded group.
    const rows = 6, cols = 96, NTOK = 20;
    const bytes = patternQ8_0(rows, cols, [() => -128, () => 127, (j) => (j % 2 ? 127 : -128), (j) => (j % 3 ? -128 : 127), () => 0, (j) => (j * 37) % 256 - 128], (r) => 0x3c00 + r);
    const xs = new Float32Array(NTOK * cols);
    for (let t = 0; t < NTOK; t++) for (let j = 0; j < cols; j++) xs[t * cols + j] = t % 3 === 0 ? 1 : t % 3 === 1 ? -1 : j % 2 ? 1 : -1;
    const wants = Array.from({ length: NTOK }, (_, t) => q8Emulate(bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols)));
    for (let ntok = 1; ntok <= NTOK; ntok++) {
      const res: Float32Array[] = [];
      for (const h of both()) {
        const { matmul, matvecs } = q8rProducts(h, placeQ8r(h, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok);
        for (let t = 0; t < ntok; t++) {
          expect(bitsEqual(matvecs[t], wants[t]), `${ntok} tokens: matvec token ${t}`).toBe(true);
          expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), wants[t]), `${ntok} tokens: matmul token ${t}`).toBe(true);
        }
        res.push(matmul);
      }
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens`).toBe(true);
    }
  });
});
