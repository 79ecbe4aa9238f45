/**
 * Quantizers for the block types llama.cpp publishes beyond Q4_0/Q8_0/Q6_K
 * (docs/quantization.md): Q4_1, Q5_0, Q5_1 (32 elements) and the K-quants
 * Q2_K, Q3_K, Q4_K, Q5_K (256 elements). Plain rules, not llama.cpp's
 * error-minimising searches: each block or sub-block takes its min/max (or
 * signed max-abs), and every stored scale is rounded *up* to its f16 or
 * integer grid, so the range it spans always covers the values and the error
 * stays within half a stored step (one step on the clamped side of the
 * symmetric types). The byte layouts are the inverse of ./dequant-blocks.ts.
 *
 * Every function writes `x.length / blockSize` whole blocks into `out`.
 */
import { f16ToF32, f32ToF16 } from "./quant";

/** The smallest f16 ≥ v (v ≥ 0, finite): a scale rounded up never shrinks the range it must span. */
function f16Up(v: number): number {
  let h = f32ToF16(v);
  if (f16ToF32(h) < v) h++;
  return h;
}

const setHalf = (out: Uint8Array, o: number, h: number) => {
  out[o] = h & 0xff;
  out[o + 1] = h >> 8;
};

const setU32 = (out: Uint8Array, o: number, v: number) => {
  out[o] = v & 0xff;
  out[o + 1] = (v >>> 8) & 0xff;
  out[o + 2] = (v >>> 16) & 0xff;
  out[o + 3] = v >>> 24;
};

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/** Min and max of x[start .. start+n). */
function range(x: Float32Array, start: number, n: number): [min: number, max: number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = start; i < start + n; i++) {
    lo = Math.min(lo, x[i]);
    hi = Math.max(hi, x[i]);
  }
  return [lo, hi];
}

/** The value of largest magnitude in x[start .. start+n), with its sign. */
function signedMax(x: Float32Array, start: number, n: number): number {
  let best = 0;
  for (let i = start; i < start + n; i++) if (Math.abs(x[i]) > Math.abs(best)) best = x[i];
  return best;
}

/**
 * An affine 32-block (Q4_1, Q5_1): m = the block's min rounded down to f16,
 * d = the span over `levels` steps rounded up, q = round((x − m)/d).
 * Returns the quantized values in q[0..32) and the f16 bits of d and m.
 */
function affine32(x: Float32Array, src: number, levels: number, q: Uint8Array): [d: number, m: number] {
  const [lo, hi] = range(x, src, 32);
  // The min rounded down (towards −∞), so no value lies below the grid.
  let mh = f32ToF16(lo);
  if (f16ToF32(mh) > lo) mh = lo > 0 ? mh - 1 : mh + 1; // one f16 step towards −∞ (sign-magnitude bits)
  const m = f16ToF32(mh);
  const dh = f16Up((hi - m) / levels);
  const d = f16ToF32(dh);
  const id = d ? 1 / d : 0;
  for (let j = 0; j < 32; j++) q[j] = clamp(Math.round((x[src + j] - m) * id), 0, levels);
  return [dh, mh];
}

/**
 * A symmetric 32-block (Q5_0): d = (the signed max) / −16, so that value
 * lands on −16 exactly; values of the other sign reach at most +15 (clamped).
 */
function symmetric32(x: Float32Array, src: number, q: Uint8Array): number {
  const max = signedMax(x, src, 32);
  const dh = max < 0 ? f16Up(-max / 16) : f16Up(max / 16) | 0x8000;
  const d = f16ToF32(dh);
  const id = d ? 1 / d : 0;
  for (let j = 0; j < 32; j++) q[j] = clamp(Math.round(x[src + j] * id) + 16, 0, 31);
  return dh;
}

/** Packs 32 values < 16 as Q4_0 does: byte j holds element j (low nibble) and j + 16 (high). */
function packNibbles32(q: Uint8Array, out: Uint8Array, o: number): void {
  for (let j = 0; j < 16; j++) out[o + j] = (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4);
}

/** Bit j of the result is the fifth bit of element j. */
function fifthBits32(q: Uint8Array): number {
  let qh = 0;
  for (let j = 0; j < 32; j++) qh |= (q[j] >> 4) << j;
  return qh >>> 0;
}

/** Q4_1 (20 B): d, m, 16 nibble bytes; w = q·d + m. */
export function quantizeQ4_1(x: Float32Array, out: Uint8Array): void {
  const q = new Uint8Array(32);
  for (let b = 0; b < x.length / 32; b++) {
    const o = b * 20;
    const [d, m] = affine32(x, b * 32, 15, q);
    setHalf(out, o, d);
    setHalf(out, o + 2, m);
    packNibbles32(q, out, o + 4);
  }
}

/** Q5_0 (22 B): d, 32 fifth bits, 16 nibble bytes; w = (q − 16)·d. */
export function quantizeQ5_0(x: Float32Array, out: Uint8Array): void {
  const q = new Uint8Array(32);
  for (let b = 0; b < x.length / 32; b++) {
    const o = b * 22;
    setHalf(out, o, symmetric32(x, b * 32, q));
    setU32(out, o + 2, fifthBits32(q));
    packNibbles32(q, out, o + 6);
  }
}

/** Q5_1 (24 B): d, m, 32 fifth bits, 16 nibble bytes; w = q·d + m. */
export function quantizeQ5_1(x: Float32Array, out: Uint8Array): void {
  const q = new Uint8Array(32);
  for (let b = 0; b < x.length / 32; b++) {
    const o = b * 24;
    const [d, m] = affine32(x, b * 32, 31, q);
    setHalf(out, o, d);
    setHalf(out, o + 2, m);
    setU32(out, o + 4, fifthBits32(q));
    packNibbles32(q, out, o + 8);
  }
}

/**
 * The scale-and-min K-quants (Q2_K, Q4_K, Q5_K): `subs` sub-blocks of
 * 256/subs values, w = d·sc·q − dmin·mn, with sc and mn integers in
 * 0..scaleMax and q in 0..levels. Each sub-block's min (never above 0, as the
 * format subtracts it) is rounded down onto dmin's grid, then its scale is
 * rounded up so that min + levels·step reaches the sub-block's max.
 */
interface ScaleMinBlock {
  d: number;
  dmin: number;
  sc: Uint8Array;
  mn: Uint8Array;
  /** The 256 quantized values. */
  q: Uint8Array;
}

function scaleMinBlock(x: Float32Array, src: number, subs: number, levels: number, scaleMax: number, blk: ScaleMinBlock): void {
  const n = 256 / subs;
  const lo = new Float64Array(subs);
  const hi = new Float64Array(subs);
  let maxNegMin = 0;
  for (let s = 0; s < subs; s++) {
    [lo[s], hi[s]] = range(x, src + s * n, n);
    lo[s] = Math.min(lo[s], 0);
    maxNegMin = Math.max(maxNegMin, -lo[s]);
  }
  blk.dmin = f16Up(maxNegMin / scaleMax);
  const dmin = f16ToF32(blk.dmin);
  const span = new Float64Array(subs);
  let maxSpan = 0;
  for (let s = 0; s < subs; s++) {
    blk.mn[s] = dmin ? Math.min(scaleMax, Math.ceil(-lo[s] / dmin)) : 0;
    span[s] = Math.max(0, hi[s] + dmin * blk.mn[s]);
    maxSpan = Math.max(maxSpan, span[s]);
  }
  blk.d = f16Up(maxSpan / levels / scaleMax);
  const d = f16ToF32(blk.d);
  for (let s = 0; s < subs; s++) {
    blk.sc[s] = d ? Math.min(scaleMax, Math.ceil(span[s] / levels / d)) : 0;
    const step = d * blk.sc[s];
    const id = step ? 1 / step : 0;
    const min = dmin * blk.mn[s];
    for (let j = 0; j < n; j++) blk.q[s * n + j] = clamp(Math.round((x[src + s * n + j] + min) * id), 0, levels);
  }
}

function newScaleMinBlock(subs: number): ScaleMinBlock {
  return { d: 0, dmin: 0, sc: new Uint8Array(subs), mn: new Uint8Array(subs), q: new Uint8Array(256) };
}

/** The 12 bytes of eight 6-bit scales and mins (the inverse of kScaleMin in ./dequant-blocks.ts). */
function packScaleMin12(sc: Uint8Array, mn: Uint8Array, out: Uint8Array, o: number): void {
  for (let j = 0; j < 4; j++) {
    out[o + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    out[o + j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
    out[o + j + 8] = (sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4);
  }
}

/** Q4_K/Q5_K's 16-byte head (d, dmin, packed scales and mins) for block b at out[o]; the values land in blk.q. */
function kBlockHead(x: Float32Array, b: number, levels: number, blk: ScaleMinBlock, out: Uint8Array, o: number): void {
  scaleMinBlock(x, b * 256, 8, levels, 63, blk);
  setHalf(out, o, blk.d);
  setHalf(out, o + 2, blk.dmin);
  packScaleMin12(blk.sc, blk.mn, out, o + 4);
}

/** Q4_K/Q5_K's 128 nibble bytes (the low four bits): 64-element chunk c holds sub-block 2c low, 2c + 1 high. */
function packKNibbles(q: Uint8Array, out: Uint8Array, o: number): void {
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) out[o + 32 * c + l] = (q[64 * c + l] & 0xf) | ((q[64 * c + 32 + l] & 0xf) << 4);
  }
}

/** Q4_K (144 B): the head, then 128 nibble bytes. */
export function quantizeQ4_K(x: Float32Array, out: Uint8Array): void {
  const blk = newScaleMinBlock(8);
  for (let b = 0; b < x.length / 256; b++) {
    kBlockHead(x, b, 15, blk, out, b * 144);
    packKNibbles(blk.q, out, b * 144 + 16);
  }
}

/** Q5_K (176 B): the head, 32 bytes of fifth bits (sub-block k's element l: bit k of byte l), 128 nibble bytes. */
export function quantizeQ5_K(x: Float32Array, out: Uint8Array): void {
  const blk = newScaleMinBlock(8);
  for (let b = 0; b < x.length / 256; b++) {
    const o = b * 176;
    kBlockHead(x, b, 31, blk, out, o);
    for (let l = 0; l < 32; l++) {
      let h = 0;
      for (let k = 0; k < 8; k++) h |= (blk.q[32 * k + l] >> 4) << k;
      out[o + 16 + l] = h;
    }
    packKNibbles(blk.q, out, o + 48);
  }
}

/**
 * Where element e (0..255) of a Q2_K/Q3_K block keeps its two low bits: byte
 * 32·(e >> 7) + (e & 31) of the 64 value bytes, at bit 2·((e >> 5) & 3).
 */
const lowBitsByte = (e: number) => 32 * (e >> 7) + (e & 31);
const lowBitsShift = (e: number) => 2 * ((e >> 5) & 3);

/** Q2_K (84 B): 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values, d, dmin. */
export function quantizeQ2_K(x: Float32Array, out: Uint8Array): void {
  const blk = newScaleMinBlock(16);
  for (let b = 0; b < x.length / 256; b++) {
    const o = b * 84;
    scaleMinBlock(x, b * 256, 16, 3, 15, blk);
    for (let s = 0; s < 16; s++) out[o + s] = blk.sc[s] | (blk.mn[s] << 4);
    out.fill(0, o + 16, o + 80);
    for (let e = 0; e < 256; e++) out[o + 16 + lowBitsByte(e)] |= blk.q[e] << lowBitsShift(e);
    setHalf(out, o + 80, blk.d);
    setHalf(out, o + 82, blk.dmin);
  }
}

/**
 * Q3_K (110 B): 32 bytes of high bits, 64 bytes of 2-bit values, 12 bytes of
 * 6-bit signed sub-block scales (stored + 32), d. Each sub-block of 16 is
 * symmetric like Q5_0 (its signed max lands on −4; the other side clamps at
 * +3); its scale is rounded away from zero onto d's grid, d = max|scale|/31.
 */
export function quantizeQ3_K(x: Float32Array, out: Uint8Array): void {
  const want = new Float64Array(16);
  const ls = new Int8Array(16);
  for (let b = 0; b < x.length / 256; b++) {
    const o = b * 110;
    const src = b * 256;
    let maxScale = 0;
    for (let s = 0; s < 16; s++) {
      want[s] = signedMax(x, src + s * 16, 16) / -4;
      maxScale = Math.max(maxScale, Math.abs(want[s]));
    }
    const dh = f16Up(maxScale / 31);
    const d = f16ToF32(dh);
    out.fill(0, o, o + 108);
    for (let s = 0; s < 16; s++) {
      ls[s] = d ? Math.sign(want[s]) * Math.min(31, Math.ceil(Math.abs(want[s]) / d)) : 0;
      const u = ls[s] + 32;
      // Sub-block s: low nibble in byte s (s < 8) or the high nibble of byte s − 8; two high bits in bytes 8..11.
      if (s < 8) out[o + 96 + s] |= u & 0xf;
      else out[o + 96 + s - 8] |= (u & 0xf) << 4;
      out[o + 104 + (s & 3)] |= (u >> 4) << (2 * (s >> 2));
      const step = d * ls[s];
      const id = step ? 1 / step : 0;
      for (let j = 0; j < 16; j++) {
        const e = s * 16 + j;
        const v = clamp(Math.round(x[src + e] * id), -4, 3) + 4;
        out[o + 32 + lowBitsByte(e)] |= (v & 3) << lowBitsShift(e);
        if (v & 4) out[o + (e & 31)] |= 1 << (e >> 5);
      }
    }
    setHalf(out, o + 108, dh);
  }
}
