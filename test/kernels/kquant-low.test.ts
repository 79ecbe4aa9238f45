// The low-bit K-quant kernels (Q2_K, Q3_K: matvec and matmul on the rows
// repacked at load, Q2KR and Q3KR; row dequantize on rows as stored),
// checked as the other quantized kernels are:
//  1. SIMD build == scalar build, bit for bit;
//  2. == a plain-TS emulation of the integer sub-block sums and the f32 fold
//     (exact), written from the GGUF block layout (docs/kernels.md), on the
//     rows as stored (the kernels see them repacked);
//  3. within quantBound() of float64 math on src/gguf's dequantized weights.
// Run against the relaxed builds by select.test.ts (KERNELS_SIMD_BUILD).
import { describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import { type Harness, both, rng, randVec, quantRef, quantBound, bitsEqual, halfToF64 } from "./harness";
import { LOW_BLOCK_BYTES, type LowType, randLow } from "./kquant-low-blocks";

const f = Math.fround;
/** The rows are repacked (repack_q2_k / repack_q3_k, in place as the loader does) before the products. */
type Kind = { type: LowType };
const TYPES: [string, Kind][] = [
  ["Q2_K", { type: TensorType.Q2_K }],
  ["Q3_K", { type: TensorType.Q3_K }],
];

function ops(h: Harness, kind: Kind) {
  const k = h.k;
  return kind.type === TensorType.Q2_K
    ? { matvec: k.matvec_q2kr_q8a, matmul: k.matmul_q2kr_q8b, dequant: k.dequant_q2_k, repack: k.repack_q2_k, bytes: k.q2kr_bytes, group: 336 }
    : { matvec: k.matvec_q3kr_q8a, matmul: k.matmul_q3kr_q8b, dequant: k.dequant_q3_k, repack: k.repack_q3_k, bytes: k.q3kr_bytes, group: 440 };
}

/** Q3_K's signed scale of sub-block i from the 12 packed bytes at o. */
function q3Scale(bytes: Uint8Array, o: number, i: number): number {
  const low = i < 8 ? bytes[o + i] & 15 : bytes[o + i - 8] >> 4;
  return (low | (((bytes[o + 8 + (i & 3)] >> (2 * (i >> 2))) & 3) << 4)) - 32;
}

/** Per row and 32-block b: integer sub-block sums sd (and Q2_K's sm), then acc = f32(acc + f32(f32(f32(sd)·d) − f32(sm·dmin))·d_x). */
function lowEmulate(type: LowType, bytes: Uint8Array, rows: number, cols: number, x: Float32Array, grain: 32 | 256 = 32): Float32Array {
  const { d: dx, q: xq } = quantRef(x, grain);
  const B = LOW_BLOCK_BYTES[type];
  const three = type === TensorType.Q3_K;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const nsb = cols / 256;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let sb = 0; sb < nsb; sb++) {
      const o = (r * nsb + sb) * B;
      const d = halfToF64(dv.getUint16(o + (three ? 108 : 80), true));
      const dmin = three ? 0 : halfToF64(dv.getUint16(o + 82, true));
      for (let b = 0; b < 8; b++) {
        const g = sb * 8 + b;
        let sd = 0, sm = 0;
        for (let h = 0; h < 2; h++) {
          let dot = 0, sx = 0;
          for (let l = 0; l < 16; l++) {
            const e = 16 * h + l;
            let q = (bytes[o + (three ? 32 : 16) + 32 * (b >> 2) + e] >> (2 * (b & 3))) & 3;
            if (three) q = q + 4 * ((bytes[o + e] >> b) & 1) - 4;
            dot += q * xq[g * 32 + e];
            sx += xq[g * 32 + e];
          }
          const i = 2 * b + h;
          if (three) sd += q3Scale(bytes, o + 96, i) * dot;
          else {
            sd += (bytes[o + i] & 15) * dot;
            sm += (bytes[o + i] >> 4) * sx;
          }
        }
        acc = three ? f(acc + f(f(sd * d) * dx[g])) : f(acc + f(f(f(sd * d) - f(sm * dmin)) * dx[g]));
      }
    }
    out[r] = acc;
  }
  return out;
}

/** The stored rows in the harness's memory, repacked in place (the last group padded past them). */
function place(h: Harness, kind: Kind, bytes: Uint8Array, rows: number, cols: number): number {
  const o = ops(h, kind);
  const need = o.bytes(rows, cols) >>> 0;
  expect(need).toBe(Math.ceil(rows / 4) * (cols / 256) * o.group);
  const w = h.alloc(Math.max(need, bytes.length));
  new Uint8Array(h.memory.buffer, w, bytes.length).set(bytes);
  o.repack(w, w, rows, cols);
  return w;
}

/** grain 256: activations from quantize_q8a_k / quantize_q8b_k, as the engine gives a Q3_K matrix that shares them with a Q4_K one. */
function matvecOf(h: Harness, kind: Kind, w: number, rows: number, cols: number, x: Float32Array, grain: 32 | 256 = 32): Float32Array {
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  (grain === 256 ? h.k.quantize_q8a_k : h.k.quantize_q8a)(h.putF32(x), cols, xa);
  const out = h.alloc(rows * 4);
  ops(h, kind).matvec(w, rows, cols, xa, out);
  return h.f32(out, rows);
}

function matmulAndMatvecs(h: Harness, kind: Kind, w: number, rows: number, cols: number, xs: Float32Array, ntok: number, grain: 32 | 256 = 32) {
  const xb = h.alloc(h.k.q8b_bytes(cols, ntok) >>> 0);
  (grain === 256 ? h.k.quantize_q8b_k : h.k.quantize_q8b)(h.putF32(xs), cols, ntok, xb);
  const mm = h.alloc(rows * ntok * 4);
  ops(h, kind).matmul(w, rows, cols, xb, ntok, mm);
  const matvecs = Array.from({ length: ntok }, (_, t) => matvecOf(h, kind, w, rows, cols, xs.subarray(t * cols, (t + 1) * cols), grain));
  return { matmul: h.f32(mm, rows * ntok), matvecs };
}

function concat(parts: { bytes: Uint8Array }[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((a, b) => a + b.bytes.length, 0));
  parts.reduce((o, b) => (bytes.set(b.bytes, o), o + b.bytes.length), 0);
  return bytes;
}

/** Every build's matvec and matmul of ntok tokens equal the exact emulation, token by token. */
function expectEmulated(kind: Kind, bytes: Uint8Array, rows: number, cols: number, xs: Float32Array, ntok: number): void {
  for (const h of both()) {
    const { matmul, matvecs } = matmulAndMatvecs(h, kind, place(h, kind, bytes, rows, cols), rows, cols, xs, ntok);
    for (let t = 0; t < ntok; t++) {
      const want = lowEmulate(kind.type, bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols));
      expect(bitsEqual(matvecs[t], want), `${h.kind}: matvec token ${t}`).toBe(true);
      expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), want), `${h.kind}: matmul token ${t}`).toBe(true);
    }
  }
}

describe.each(TYPES)("%s: matvec", (_name, kind) => {
  const type = kind.type;
  it.each([[1, 256], [5, 512], [13, 768], [8, 2048]])("rows=%i cols=%i: simd == scalar == TS emulation, within the quantization bound", (rows, cols) => {
    const r = rng(rows * 991 + cols + type);
    const { bytes, w } = randLow(type, r, rows, cols);
    const x = randVec(r, cols, 2);
    const want = lowEmulate(type, bytes, rows, cols, x);
    const outs = both().map((h) => matvecOf(h, kind, place(h, kind, bytes, rows, cols), rows, cols, x));
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(bitsEqual(outs[1], want)).toBe(true);
    for (let row = 0; row < rows; row++) {
      let ref = 0;
      for (let j = 0; j < cols; j++) ref += w[row * cols + j] * x[j];
      const bound = quantBound(w, row * cols, x);
      expect(Math.abs(outs[0][row] - ref), `row ${row}: ${outs[0][row]} vs ${ref}`).toBeLessThanOrEqual(bound);
    }
  });

  it("activations with one scale per 256 values (quantize_q8a_k / q8b_k): matvec and matmul, every ntok 1..12, == the emulation on those activations, every build", () => {
    const rows = 7, cols = 768, NTOK = 12;
    const r = rng(57 + type);
    const { bytes } = randLow(type, r, rows, cols);
    const xs = randVec(r, NTOK * cols, 2);
    xs[300] = 25; // superblock 1 of token 0 scaled by one value
    const wants = Array.from({ length: NTOK }, (_, t) => lowEmulate(type, bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols), 256));
    expect(bitsEqual(wants[0], lowEmulate(type, bytes, rows, cols, xs.subarray(0, cols))), "the grains differ here").toBe(false);
    for (let ntok = 1; ntok <= NTOK; ntok++) {
      for (const h of both()) {
        const { matmul, matvecs } = matmulAndMatvecs(h, kind, place(h, kind, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok, 256);
        for (let t = 0; t < ntok; t++) {
          expect(bitsEqual(matvecs[t], wants[t]), `${h.kind}, ${ntok} tokens: matvec token ${t}`).toBe(true);
          expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), wants[t]), `${h.kind}, ${ntok} tokens: matmul token ${t}`).toBe(true);
        }
      }
    }
  });

  it("dequantize rows: equal to src/gguf's reference dequantize", () => {
    const n = 768;
    const { bytes, w } = randLow(type, rng(8 + type), 1, n);
    for (const h of both()) {
      const out = h.alloc(n * 4);
      ops(h, kind).dequant(h.putU8(bytes), out, n);
      expect(Array.from(h.f32(out, n))).toEqual(Array.from(w));
    }
  });
});

describe.each(TYPES)("%s: matmul", (_name, kind) => {
  const type = kind.type;
  it("every ntok 1..12: matmul == one matvec per token, bit for bit, == scalar, == TS emulation", () => {
    const rows = 7, cols = 512;
    const r = rng(41 + type);
    const { bytes } = randLow(type, r, rows, cols);
    const xs = randVec(r, 12 * cols, 1.5);
    for (let ntok = 1; ntok <= 12; ntok++) {
      const res = both().map((h) => {
        const { matmul, matvecs } = matmulAndMatvecs(h, kind, place(h, kind, bytes, rows, cols), rows, cols, xs.subarray(0, ntok * cols), ntok);
        for (let t = 0; t < ntok; t++) expect(bitsEqual(matmul.subarray(t * rows, (t + 1) * rows), matvecs[t]), `${h.kind}, ${ntok} tokens: token ${t}`).toBe(true);
        return matmul;
      });
      expect(bitsEqual(res[0], res[1]), `${ntok} tokens: vs scalar`).toBe(true);
      const t = ntok - 1;
      expect(bitsEqual(res[0].subarray(t * rows, (t + 1) * rows), lowEmulate(type, bytes, rows, cols, xs.subarray(t * cols, (t + 1) * cols)))).toBe(true);
    }
  });

  it("subnormal, negative and zero superblock scales (d, Q2_K's dmin): matvec and matmul == exact emulation, every build", () => {
    // d ≈ max|w|/128 is a subnormal half for small weights; the kernels convert it without a float
    // operation on the denormal (a microcode assist on x86), and must give h2f's exact value.
    const cols = 512, rows = 9, NTOK = 5;
    const r = rng(77 + type);
    const parts = [randLow(type, r, 3, cols, { d: 3e-6 }), randLow(type, r, 3, cols, { d: -3e-6 }), randLow(type, r, 3, cols, { d: 0 })];
    const bytes = concat(parts);
    const dv = new DataView(bytes.buffer);
    const dOff = type === TensorType.Q3_K ? 108 : 80;
    const halves = Array.from({ length: bytes.length / LOW_BLOCK_BYTES[type] }, (_, i) => dv.getUint16(i * LOW_BLOCK_BYTES[type] + dOff, true));
    expect(halves.some((h) => (h & 0x7c00) === 0 && (h & 0x3ff) !== 0 && !(h & 0x8000)), "a positive subnormal d").toBe(true);
    expect(halves.some((h) => (h & 0x7c00) === 0 && (h & 0x3ff) !== 0 && h & 0x8000), "a negative subnormal d").toBe(true);
    const xs = randVec(r, NTOK * cols, 2);
    expectEmulated(kind, bytes, rows, cols, xs, NTOK);
  });

  it("extreme blocks (values all max or all min, scales at their extremes, activations all ±127): matvec and matmul == exact emulation", () => {
    // All-0xff bytes: Q2_K values 3 with scale and min 15; Q3_K u = 7 (value 3) with scale 31. All-0x00:
    // Q2_K values 0 and scale 0; Q3_K u = 0 (value −4) with scale −32 — a pair's dot at its limit
    // 2·4·127 and, times −32, the widest scaled pair. Against x = ±127 these reach every bound.
    const cols = 512, NTOK = 6, rows = 6;
    const blocks = [
      randLow(type, rng(1), 2, cols, { fill: { scales: 0xff, qs: 0xff, hmask: 0xff } }),
      randLow(type, rng(2), 2, cols, { fill: { scales: 0x00, qs: 0x00, hmask: 0x00 } }),
      randLow(type, rng(3), 2, cols, { fill: { scales: 0xf0, qs: 0xe4, hmask: 0x55 } }),
    ];
    const bytes = concat(blocks);
    const xs = new Float32Array(NTOK * cols);
    for (let t = 0; t < NTOK; t++) for (let j = 0; j < cols; j++) xs[t * cols + j] = t % 3 === 0 ? 1 : t % 3 === 1 ? -1 : j % 5 ? 1 : -1;
    expectEmulated(kind, bytes, rows, cols, xs, NTOK);
  });
});
