// The Q6R prefill matmul (assembly/q6matmul.ts): equal bit for bit to one
// Q6R matvec per token (which quant.test.ts checks against the exact TS
// emulation and float64 math) in every build, and to the scalar build, for
// every path: the passes of 3 to 8 tokens, the 1- and 2-token ones that take
// matvecs, 70 tokens (passes of eight and a remainder); on random blocks and
// on blocks at the integer limits (six-bit values 0 / 63, scales -128 / 127,
// activations ±127: the relaxed build's int16 chains wrap on the way, a
// 16-wide half's sum reaches 65024).
import { describe, expect, it } from "vitest";
import { type Harness, both, rng, randVec, randQ6K, bitsEqual, withHalves } from "./harness";

function q6r(h: Harness, bytes: Uint8Array, rows: number, cols: number): number {
  const w = h.alloc(h.k.q6r_bytes(rows, cols) >>> 0);
  h.k.repack_q6_k(h.putU8(bytes), w, rows, cols);
  return w;
}

function matmulAndMatvecs(h: Harness, w: number, rows: number, cols: number, xs: Float32Array, ntok: number): { matmul: Float32Array; matvecs: Float32Array[] } {
  const xp = h.putF32(xs);
  const xb = h.alloc(h.k.q8b_bytes(cols, ntok) >>> 0);
  h.k.quantize_q8b(xp, cols, ntok, xb);
  const mm = h.alloc(rows * ntok * 4);
  h.k.matmul_q6r_q8b(w, rows, cols, xb, ntok, mm);
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  const mv = h.alloc(rows * 4);
  const matvecs: Float32Array[] = [];
  for (let t = 0; t < ntok; t++) {
    h.k.quantize_q8a(xp + t * cols * 4, cols, xa);
    h.k.matvec_q6r_q8a(w, rows, cols, xa, mv);
    matvecs.push(h.f32(mv, rows));
  }
  return { matmul: h.f32(mm, rows * ntok), matvecs };
}

function check(bytes: Uint8Array, rows: number, cols: number, xs: Float32Array, counts: number[]): void {
  for (const ntok of counts) {
    const res = both().map((h) => {
      const { matmul, matvecs } = matmulAndMatvecs(h, q6r(h, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok);
      for (let t = 0; t < ntok; t++) expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${h.kind}, ${ntok} tokens: token ${t}`).toBe(true);
      return matmul;
    });
    expect(bitsEqual(res[0], res[1]), `${ntok} tokens: vs scalar`).toBe(true);
  }
}

describe("Q6R matmul", () => {
  const upTo20 = Array.from({ length: 20 }, (_, i) => i + 1);

  it("random blocks, every ntok 1..20, a padded last row group: == one matvec per token, == scalar", () => {
    const rows = 13, cols = 512;
    const r = rng(606);
    check(randQ6K(r, rows, cols).bytes, rows, cols, randVec(r, 20 * cols, 1.5), upTo20);
  });

  it("70 tokens (two chunks) at 2048 columns", () => {
    const rows = 8, cols = 2048;
    const r = rng(607);
    check(randQ6K(r, rows, cols).bytes, rows, cols, randVec(r, 70 * cols), [70]);
  });

  it("blocks at the integer limits, every ntok 1..20", () => {
    const rows = 6, cols = 256;
    const bytes = new Uint8Array(rows * 210);
    const dv = new DataView(bytes.buffer);
    for (let r = 0; r < rows; r++) {
      const o = r * 210;
      bytes.fill(r % 2 ? 0xff : 0x00, o, o + 192); // every value 63 or 0
      for (let j = 0; j < 16; j++) dv.setInt8(o + 192 + j, r < 2 ? -128 : r < 4 ? 127 : j * 17 - 128);
      dv.setUint16(o + 208, 0x2000 + r, true);
    }
    const xs = new Float32Array(20 * cols);
    for (let t = 0; t < 20; t++) for (let j = 0; j < cols; j++) xs[t * cols + j] = t % 3 === 0 ? 1 : t % 3 === 1 ? -1 : j % 5 ? 1 : -1;
    check(bytes, rows, cols, xs, upTo20);
  });

  it("superblock scales d that are f16 subnormals, negative or zero (the Q6_K d of most real files is a subnormal half): == one matvec per token, == scalar, every ntok 1..20", () => {
    const rows = 9, cols = 512;
    const r = rng(608);
    const { bytes } = randQ6K(r, rows, cols);
    withHalves(bytes, 210, [208]);
    check(bytes, rows, cols, randVec(r, 20 * cols, 1.5), upTo20);
  });
});

