// Test support: the three kernel builds side by side, each in its own memory,
// plus independent plain-TypeScript references (float64 math, written from
// docs/model.md, Quant block layouts and The forward pass, not from the kernels).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Arena } from "../../src/engine/arena";
import type { KernelExports } from "../../src/engine/kernels";
import { DEFAULT_BUILD_DIR } from "../../src/engine/node";
import { emulateFusedDot } from "./fused-emulation";

/**
 * A build by name: "relaxed-fused", "relaxed", "simd", "scalar", or "relaxed-fused-emulated" —
 * the relaxed-fused build with its fused dot computed by instructions Node 20 gets right
 * (fused-emulation.ts), which is how Node checks that build's kernels.
 */
export const moduleOf = (() => {
  const cache = new Map<string, WebAssembly.Module>();
  return (kind: string): WebAssembly.Module => {
    let m = cache.get(kind);
    if (!m) {
      const file = join(DEFAULT_BUILD_DIR, `kernels-${kind.replace(/-emulated$/, "")}.wasm`);
      const bytes = kind.endsWith("-emulated") ? emulateFusedDot(readFileSync(file)).bytes : readFileSync(file);
      m = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
      cache.set(kind, m);
    }
    return m;
  };
})();

export class Harness {
  readonly memory = new WebAssembly.Memory({ initial: 16, maximum: 4096 });
  readonly k: KernelExports;
  readonly arena: Arena;
  constructor(readonly kind: string) {
    const inst = new WebAssembly.Instance(moduleOf(kind), { env: { memory: this.memory } });
    this.k = inst.exports as unknown as KernelExports;
    this.arena = new Arena(this.memory, this.k.heap_base() >>> 0);
  }
  reset(): void {
    this.arena.reset(this.arena.base);
  }
  alloc(bytes: number): number {
    return this.arena.alloc(bytes, 64);
  }
  putF32(a: ArrayLike<number>): number {
    const p = this.alloc(a.length * 4);
    this.arena.f32(p, a.length).set(a);
    return p;
  }
  putU8(a: Uint8Array): number {
    const p = this.alloc(a.length);
    this.arena.u8(p, a.length).set(a);
    return p;
  }
  putU16(a: Uint16Array): number {
    const p = this.alloc(a.length * 2);
    this.arena.u16(p, a.length).set(a);
    return p;
  }
  f32(p: number, n: number): Float32Array {
    return this.arena.f32(p, n).slice();
  }
  u8(p: number, n: number): Uint8Array {
    return this.arena.u8(p, n).slice();
  }
}

/**
 * One harness per build, reset per use: [SIMD, scalar]. With KERNELS_SIMD_BUILD=relaxed or
 * relaxed-fused-emulated (and --experimental-wasm-relaxed-simd) the whole suite checks that
 * build against scalar instead.
 */
export const both = (() => {
  let hs: Harness[] | undefined;
  return (): Harness[] => {
    hs ??= [new Harness(process.env.KERNELS_SIMD_BUILD ?? "simd"), new Harness("scalar")];
    for (const h of hs) h.reset();
    return hs;
  };
})();

// ------------------------------------------------------------------ random

export { seededRandom as rng } from "../../src/util/random";

export function randn(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

export function randVec(r: () => number, n: number, scale = 1): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = randn(r) * scale;
  return v;
}

// ------------------------------------------------------------------ f16 / bf16

export function halfToF64(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Reference f32 -> f16 (nearest even), saturating at +-65504 like the kernels. */
export function f64ToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const s = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return s | 0x7bff;
  if (a < 2 ** -14) return s | roundHalfEven(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return s | 0x7bff;
  return s | ((e + 15) << 10) | m;
}

export function bf16ToF64(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
}

/** A random half block scale with magnitude ~[2^-9, 2^-2]. */
export function randScaleHalf(r: () => number): number {
  return (r() < 0.5 ? 0x8000 : 0) | ((6 + Math.floor(r() * 7)) << 10) | Math.floor(r() * 1024);
}

// ------------------------------------------------------------------ quant blocks (docs/model.md, Quant block layouts)

/** Random GGUF Q4_0 matrix; returns bytes and the dequantized weights. */
export function randQ4_0(r: () => number, rows: number, cols: number, zeroBlockEvery = 0): { bytes: Uint8Array; w: Float64Array } {
  const nb = cols / 32;
  const bytes = new Uint8Array(rows * nb * 18);
  const w = new Float64Array(rows * cols);
  const dv = new DataView(bytes.buffer);
  for (let row = 0; row < rows; row++) {
    for (let b = 0; b < nb; b++) {
      const o = (row * nb + b) * 18;
      const zero = zeroBlockEvery > 0 && (row * nb + b) % zeroBlockEvery === 0;
      const dh = zero ? 0 : randScaleHalf(r);
      dv.setUint16(o, dh, true);
      const d = halfToF64(dh);
      for (let j = 0; j < 16; j++) {
        const q = Math.floor(r() * 256);
        bytes[o + 2 + j] = q;
        w[row * cols + b * 32 + j] = ((q & 15) - 8) * d;
        w[row * cols + b * 32 + j + 16] = ((q >> 4) - 8) * d;
      }
    }
  }
  return { bytes, w };
}

export function randQ8_0(r: () => number, rows: number, cols: number): { bytes: Uint8Array; w: Float64Array } {
  const nb = cols / 32;
  const bytes = new Uint8Array(rows * nb * 34);
  const w = new Float64Array(rows * cols);
  const dv = new DataView(bytes.buffer);
  for (let row = 0; row < rows; row++) {
    for (let b = 0; b < nb; b++) {
      const o = (row * nb + b) * 34;
      const dh = randScaleHalf(r);
      dv.setUint16(o, dh, true);
      const d = halfToF64(dh);
      for (let j = 0; j < 32; j++) {
        const q = Math.floor(r() * 256) - 128;
        dv.setInt8(o + 2 + j, q);
        w[row * cols + b * 32 + j] = q * d;
      }
    }
  }
  return { bytes, w };
}

/** Q6_K dequantization written from the unpack loop in docs/model.md (Quant block layouts) (halves of 128, l = 0..31). */
export function dequantQ6K(bytes: Uint8Array, n: number): Float64Array {
  const y = new Float64Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let blk = 0; blk < n / 256; blk++) {
    const base = blk * 210;
    const d = halfToF64(dv.getUint16(base + 208, true));
    let ql = base;
    let qh = base + 128;
    let sc = base + 192;
    let yo = blk * 256;
    for (let half = 0; half < 2; half++) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const q1 = ((bytes[ql + l] & 0xf) | (((bytes[qh + l] >> 0) & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 0xf) | (((bytes[qh + l] >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((bytes[qh + l] >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((bytes[qh + l] >> 6) & 3) << 4)) - 32;
        y[yo + l] = d * dv.getInt8(sc + is) * q1;
        y[yo + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
        y[yo + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
        y[yo + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
      }
      yo += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
  return y;
}

export function randQ6K(r: () => number, rows: number, cols: number): { bytes: Uint8Array; w: Float64Array } {
  const nsb = cols / 256;
  const bytes = new Uint8Array(rows * nsb * 210);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < rows * nsb; i++) {
    const o = i * 210;
    for (let j = 0; j < 192; j++) bytes[o + j] = Math.floor(r() * 256);
    for (let j = 0; j < 16; j++) dv.setInt8(o + 192 + j, Math.floor(r() * 256) - 128);
    dv.setUint16(o + 208, (6 << 10) | Math.floor(r() * 1024), true); // small positive d
  }
  return { bytes, w: dequantQ6K(bytes, rows * cols) };
}

// ------------------------------------------------------------------ activation quantization reference

/** Reference Q8 quantization of one vector: per 32-block d = max|x|/127 (f32), q = nearest-even(x * (1/d)). */
/** Q8A's values: d = max|x|/127 per block of `grain` (32, or 256 for quantize_q8a_k), q and Σq per 32-block. */
export function quantRef(x: Float32Array, grain: 32 | 256 = 32): { d: Float32Array; q: Int8Array; sum: Int32Array } {
  const f = Math.fround;
  const nb = x.length / 32;
  const d = new Float32Array(nb);
  const q = new Int8Array(x.length);
  const sum = new Int32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    const g0 = Math.floor((b * 32) / grain) * grain;
    for (let j = g0; j < g0 + grain; j++) amax = Math.max(amax, Math.abs(x[j]));
    const db = f(amax / 127);
    const id = db !== 0 ? f(1 / db) : 0;
    d[b] = db;
    for (let j = 0; j < 32; j++) {
      const v = roundHalfEven(f(x[b * 32 + j] * id));
      q[b * 32 + j] = v;
      sum[b] += v;
    }
  }
  return { d, q, sum };
}

/**
 * Bound on |kernel - exact| for a quantized matvec row against float64 math on
 * dequantized weights and unquantized activations: activation rounding moves
 * each x_j by at most d_x/2 = amax_b/254 (amax over its block of `grain`), so the dot moves by at most
 * sum_j |w_j| * amax_b/254; f32 accumulation adds at most ~nb*2^-23 relative
 * of sum |w_j x_j| (plus the same for the quantized terms), covered by 1e-5.
 */
export function quantBound(w: Float64Array, off: number, x: Float32Array, grain: 32 | 256 = 32): number {
  let b = 0;
  let mag = 0;
  for (let blk = 0; blk < x.length / grain; blk++) {
    let amax = 0;
    for (let j = 0; j < grain; j++) amax = Math.max(amax, Math.abs(x[blk * grain + j]));
    for (let j = 0; j < grain; j++) {
      const wj = Math.abs(w[off + blk * grain + j]);
      b += (wj * amax) / 254;
      mag += wj * (Math.abs(x[blk * grain + j]) + amax / 254);
    }
  }
  return b * (1 + 1e-6) + mag * 1e-5 + 1e-30;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** max_i |a_i - b_i| / (max_i |b_i| + floor) */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-30): number {
  let m = 0;
  let s = floor;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return m / s;
}

/** Float64 W·x over dequantized weights and the unquantized activations. */
export function refMatvec(w: Float64Array, rows: number, cols: number, x: Float32Array): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[r * cols + j] * x[j];
    out[r] = s;
  }
  return out;
}

/** Throws unless every row of a quantized product is within quantBound of the float64 product. */
export function expectWithinQuantBound(got: Float32Array, w: Float64Array, rows: number, cols: number, x: Float32Array) {
  const ref = refMatvec(w, rows, cols, x);
  for (let r = 0; r < rows; r++) {
    const bound = quantBound(w, r * cols, x);
    if (!(Math.abs(got[r] - ref[r]) <= bound)) {
      throw new Error(`row ${r}: |${got[r]} - ${ref[r]}| > bound ${bound}`);
    }
  }
}

type Matmul = (w: number, rows: number, cols: number, xb: number, ntok: number, out: number) => void;
type Matvec = (w: number, rows: number, cols: number, xa: number, out: number) => void;

/**
 * In harness h, over weights w already in its memory: the prefill matmul of the ntok activation
 * rows xs, and each token's matvec on its own Q8A, which it must equal.
 */
export function matmulAndMatvecs(h: Harness, matmul: Matmul, matvec: Matvec, w: number, rows: number, cols: number, xs: Float32Array, ntok: number): { matmul: Float32Array; matvecs: Float32Array[] } {
  const xp = h.putF32(xs);
  const xb = h.alloc(h.k.q8b_bytes(cols, ntok) >>> 0);
  h.k.quantize_q8b(xp, cols, ntok, xb);
  const mm = h.alloc(rows * ntok * 4);
  matmul(w, rows, cols, xb, ntok, mm);
  const xa = h.alloc(h.k.q8a_bytes(cols) >>> 0);
  const mv = h.alloc(rows * 4);
  const matvecs: Float32Array[] = [];
  for (let t = 0; t < ntok; t++) {
    h.k.quantize_q8a(xp + t * cols * 4, cols, xa);
    matvec(w, rows, cols, xa, mv);
    matvecs.push(h.f32(mv, rows));
  }
  return { matmul: h.f32(mm, rows * ntok), matvecs };
}

/**
 * The kernels' arithmetic for 32-value blocks with an f16 scale at the block's start: per row and
 * block the exact integer dot (from `dot(o, b, q)`: the block at byte o, activation block b, Q8A
 * values q), folded as acc + f32(s) · (d_w · d_x), blocks in order.
 */
export function emulateBlocks(bytes: Uint8Array, rows: number, cols: number, x: Float32Array, blockBytes: number, dot: (o: number, b: number, q: Int8Array) => number): Float32Array {
  const f = Math.fround;
  const { d, q } = quantRef(x);
  const nb = cols / 32;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let b = 0; b < nb; b++) {
      const o = (r * nb + b) * blockBytes;
      acc = f(acc + f(dot(o, b, q) * f(f(halfToF64(dv.getUint16(o, true))) * d[b])));
    }
    out[r] = acc;
  }
  return out;
}

/** Halves that a kernel must convert exactly and without an f32 denormal: subnormals of both signs, ±0, the smallest normal and one more. */
export const AWKWARD_HALVES = [0x0001, 0x03ff, 0x8123, 0x0000, 0x0200, 0x8001, 0x0400, 0x8000, 0x1c00];

/** Writes AWKWARD_HALVES, in turn, over the half at each of `offsets` in every block of `blockBytes`. */
export function withHalves(bytes: Uint8Array, blockBytes: number, offsets: number[]): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let i = 0;
  for (let b = 0; b < bytes.length / blockBytes; b++) for (const o of offsets) dv.setUint16(b * blockBytes + o, AWKWARD_HALVES[i++ % AWKWARD_HALVES.length], true);
}
