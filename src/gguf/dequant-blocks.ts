/**
 * Dequantization of the block types llama.cpp's quantizer writes beyond
 * Q4_0/Q8_0/Q6_K (docs/model.md, Quant block layouts): the 32-element Q5_0
 * and Q5_1, and the 256-element K-quants Q2_K, Q3_K, Q4_K and Q5_K. Plain
 * scalar code, block by block, in the element order of the file: this is the
 * reference the WASM kernels and the quantizers are checked against.
 *
 * Every function reads `count / blockSize` whole blocks from `bytes` (which
 * starts at a block boundary) and writes `count` values to `out`.
 */
import { f16ToF32 } from "./quant";

const half = (b: Uint8Array, o: number) => f16ToF32(b[o] | (b[o + 1] << 8));
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

/**
 * Q5_0 (22 B): f16 d, 32 high bits (u32 little-endian), 16 nibble bytes.
 * Element j < 16 is the low nibble of byte j, element j + 16 the high one;
 * bit j of the high bits is element j's fifth bit. Values are (q − 16)·d.
 */
export function dequantizeQ5_0(bytes: Uint8Array, count: number, out: Float32Array): void {
  for (let b = 0; b < count / 32; b++) {
    const o = b * 22;
    const d = half(bytes, o);
    const qh = u32(bytes, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 6 + j];
      out[b * 32 + j] = (((q & 0xf) | (((qh >>> j) & 1) << 4)) - 16) * d;
      out[b * 32 + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  }
}

/** Q5_1 (24 B): f16 d, f16 m, 32 high bits, 16 nibble bytes; values q·d + m (q in 0..31). */
export function dequantizeQ5_1(bytes: Uint8Array, count: number, out: Float32Array): void {
  for (let b = 0; b < count / 32; b++) {
    const o = b * 24;
    const d = half(bytes, o);
    const m = half(bytes, o + 2);
    const qh = u32(bytes, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 8 + j];
      out[b * 32 + j] = ((q & 0xf) | (((qh >>> j) & 1) << 4)) * d + m;
      out[b * 32 + j + 16] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
    }
  }
}

/**
 * The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at
 * `o` shared by Q4_K and Q5_K: sub-blocks 0..3 keep theirs in the low six
 * bits of bytes j and j + 4; 4..7 take a nibble from byte j + 4 and their top
 * two bits from the spare bits of bytes j − 4 and j.
 */
export function kScaleMin(bytes: Uint8Array, o: number, j: number): [scale: number, min: number] {
  if (j < 4) return [bytes[o + j] & 63, bytes[o + j + 4] & 63];
  return [(bytes[o + j + 4] & 0xf) | ((bytes[o + j - 4] >> 6) << 4), (bytes[o + j + 4] >> 4) | ((bytes[o + j] >> 6) << 4)];
}

/**
 * Q4_K (144 B per 256): f16 d, f16 dmin, 12 bytes of packed 6-bit scales and
 * mins for eight sub-blocks of 32, then 128 nibble bytes. Each 64-element
 * chunk c takes 32 bytes: their low nibbles are sub-block 2c, their high
 * nibbles sub-block 2c + 1. Values d·scale·q − dmin·min.
 */
export function dequantizeQ4_K(bytes: Uint8Array, count: number, out: Float32Array): void {
  for (let b = 0; b < count / 256; b++) {
    const o = b * 144;
    const d = half(bytes, o);
    const dmin = half(bytes, o + 2);
    for (let c = 0; c < 4; c++) {
      const [s0, m0] = kScaleMin(bytes, o + 4, 2 * c);
      const [s1, m1] = kScaleMin(bytes, o + 4, 2 * c + 1);
      const d0 = d * s0, min0 = dmin * m0, d1 = d * s1, min1 = dmin * m1;
      const q = o + 16 + 32 * c;
      const y = b * 256 + 64 * c;
      for (let l = 0; l < 32; l++) {
        out[y + l] = d0 * (bytes[q + l] & 0xf) - min0;
        out[y + 32 + l] = d1 * (bytes[q + l] >> 4) - min1;
      }
    }
  }
}

/**
 * Q5_K (176 B per 256): Q4_K's d, dmin and scales, then 32 bytes of fifth
 * bits (element l of sub-block k has its bit at bit k of byte l), then the
 * 128 nibble bytes in Q4_K's order.
 */
export function dequantizeQ5_K(bytes: Uint8Array, count: number, out: Float32Array): void {
  for (let b = 0; b < count / 256; b++) {
    const o = b * 176;
    const d = half(bytes, o);
    const dmin = half(bytes, o + 2);
    const qh = o + 16;
    for (let c = 0; c < 4; c++) {
      const [s0, m0] = kScaleMin(bytes, o + 4, 2 * c);
      const [s1, m1] = kScaleMin(bytes, o + 4, 2 * c + 1);
      const d0 = d * s0, min0 = dmin * m0, d1 = d * s1, min1 = dmin * m1;
      const q = o + 48 + 32 * c;
      const y = b * 256 + 64 * c;
      for (let l = 0; l < 32; l++) {
        const h = bytes[qh + l];
        out[y + l] = d0 * ((bytes[q + l] & 0xf) | (((h >> (2 * c)) & 1) << 4)) - min0;
        out[y + 32 + l] = d1 * ((bytes[q + l] >> 4) | (((h >> (2 * c + 1)) & 1) << 4)) - min1;
      }
    }
  }
}

/**
 * Q3_K (110 B per 256): 32 bytes of high bits, 64 bytes of 2-bit values, 12
 * bytes of packed 6-bit scales (16 sub-blocks of 16), f16 d. Sub-block scales
 * are signed (stored + 32). Values d·(scale − 32)·(q − 4·(high bit clear)),
 * q the 2-bit value: a set high bit means q, a clear one q − 4.
 */
export function dequantizeQ3_K(bytes: Uint8Array, count: number, out: Float32Array): void {
  const scales = new Int8Array(16);
  for (let b = 0; b < count / 256; b++) {
    const o = b * 110;
    const hm = o, qs = o + 32, sc = o + 96;
    const d = half(bytes, o + 108);
    // Sub-block i: a low nibble (byte i for i < 8, high nibble of byte i − 8 beyond) and two high bits from bytes 8..11.
    for (let i = 0; i < 16; i++) {
      const low = i < 8 ? bytes[sc + i] & 0xf : bytes[sc + i - 8] >> 4;
      const high = (bytes[sc + 8 + (i & 3)] >> (2 * (i >> 2))) & 3;
      scales[i] = (low | (high << 4)) - 32;
    }
    for (let n = 0; n < 2; n++) {
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        const bit = 1 << (4 * n + j);
        for (let half16 = 0; half16 < 2; half16++) {
          const dl = d * scales[8 * n + 2 * j + half16];
          const y = b * 256 + 128 * n + 32 * j + 16 * half16;
          for (let l = 0; l < 16; l++) {
            const k = 16 * half16 + l;
            const q = (bytes[qs + 32 * n + k] >> shift) & 3;
            out[y + l] = dl * (q - (bytes[hm + k] & bit ? 0 : 4));
          }
        }
      }
    }
  }
}

/**
 * Q2_K (84 B per 256): 16 scale bytes (low nibble scale, high nibble min, for
 * sub-blocks of 16), 64 bytes of 2-bit values, f16 d, f16 dmin. Values
 * d·scale·q − dmin·min.
 */
export function dequantizeQ2_K(bytes: Uint8Array, count: number, out: Float32Array): void {
  for (let b = 0; b < count / 256; b++) {
    const o = b * 84;
    const sc = o, qs = o + 16;
    const d = half(bytes, o + 80);
    const dmin = half(bytes, o + 82);
    for (let n = 0; n < 2; n++) {
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        for (let half16 = 0; half16 < 2; half16++) {
          const s = bytes[sc + 8 * n + 2 * j + half16];
          const dl = d * (s & 0xf), ml = dmin * (s >> 4);
          const y = b * 256 + 128 * n + 32 * j + 16 * half16;
          for (let l = 0; l < 16; l++) out[y + l] = dl * ((bytes[qs + 32 * n + 16 * half16 + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}
