/**
 * Element types' block layouts (docs/model.md, Quant block layouts): sizes, f16/bf16 conversion, and
 * quantize/dequantize for every type we read or write. Plain scalar code: this
 * is the reference the WASM kernels are checked against.
 */
import { dequantizeQ2_K, dequantizeQ3_K, dequantizeQ4_K, dequantizeQ5_0, dequantizeQ5_1, dequantizeQ5_K } from "./dequant-blocks";
import { quantizeQ2_K, quantizeQ3_K, quantizeQ4_1, quantizeQ4_K, quantizeQ5_0, quantizeQ5_1, quantizeQ5_K } from "./quantize-blocks";
import { TensorType } from "./types";

export interface TypeLayout {
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  blockBytes: number;
}

const TYPE_LAYOUT: Partial<Record<TensorType, TypeLayout>> = {
  [TensorType.F32]: { name: "F32", blockSize: 1, blockBytes: 4 },
  [TensorType.F16]: { name: "F16", blockSize: 1, blockBytes: 2 },
  [TensorType.BF16]: { name: "BF16", blockSize: 1, blockBytes: 2 },
  [TensorType.Q4_0]: { name: "Q4_0", blockSize: 32, blockBytes: 18 },
  [TensorType.Q4_1]: { name: "Q4_1", blockSize: 32, blockBytes: 20 },
  [TensorType.Q8_0]: { name: "Q8_0", blockSize: 32, blockBytes: 34 },
  [TensorType.Q5_0]: { name: "Q5_0", blockSize: 32, blockBytes: 22 },
  [TensorType.Q5_1]: { name: "Q5_1", blockSize: 32, blockBytes: 24 },
  [TensorType.Q2_K]: { name: "Q2_K", blockSize: 256, blockBytes: 84 },
  [TensorType.Q3_K]: { name: "Q3_K", blockSize: 256, blockBytes: 110 },
  [TensorType.Q4_K]: { name: "Q4_K", blockSize: 256, blockBytes: 144 },
  [TensorType.Q5_K]: { name: "Q5_K", blockSize: 256, blockBytes: 176 },
  [TensorType.Q6_K]: { name: "Q6_K", blockSize: 256, blockBytes: 210 },
};

/** Types we can place and measure (so `inspect` shows any llama.cpp file) but not compute with. */
const KNOWN_ONLY: Partial<Record<TensorType, TypeLayout>> = {
  [TensorType.Q8_1]: { name: "Q8_1", blockSize: 32, blockBytes: 36 },
  [TensorType.Q8_K]: { name: "Q8_K", blockSize: 256, blockBytes: 292 },
};

/** Layout of any type GGUF files may hold, computable or not; undefined for unknown ids. */
export function storageLayout(type: number): TypeLayout | undefined {
  return TYPE_LAYOUT[type as TensorType] ?? KNOWN_ONLY[type as TensorType];
}

export function typeName(type: number): string {
  return storageLayout(type)?.name ?? `type ${type}`;
}

export function layoutOf(type: number): TypeLayout {
  const layout = TYPE_LAYOUT[type as TensorType];
  if (!layout) {
    const supported = Object.values(TYPE_LAYOUT).map((l) => l!.name).join(", ");
    throw new Error(`unsupported tensor type ${typeName(type)} (supported: ${supported})`);
  }
  return layout;
}

/** Bytes of a tensor of these dims (ggml order). Rows must hold whole blocks. */
export function tensorByteLength(type: number, dims: readonly number[]): number {
  const layout = storageLayout(type);
  if (!layout) throw new Error(`unknown tensor type ${type}`);
  const { blockSize, blockBytes, name } = layout;
  const row = dims[0] ?? 1;
  if (row % blockSize !== 0) throw new Error(`a ${name} row must be a multiple of ${blockSize} elements, got ${row}`);
  const count = dims.reduce((a, b) => a * b, 1);
  return (count / blockSize) * blockBytes;
}

// ---------------------------------------------------------------- f16 / bf16

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits → number. */
export function f16ToF32(h: number): number {
  return (f16Table ??= buildF16Table())[h & 0xffff];
}

let f16Table: Float32Array | undefined;

// Block scales are f16: a 256 KiB table makes dequantizing a row cheap.
function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToNumber(h);
  return t;
}

function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** number → binary16 bits, round to nearest even (as numpy and torch do). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** number → bfloat16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBF16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------- quantize

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Q4_0 (llama.cpp's reference rule): d = (signed value of max |x|) / -8, q = clamp(round(x/d) + 8). */
function quantizeQ4_0(x: Float32Array, out: Uint8Array): void {
  const dv = view(out);
  for (let b = 0; b < x.length / 32; b++) {
    const src = b * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[src + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d ? 1 / d : 0;
    const o = b * 18;
    dv.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(Math.fround(x[src + j] * id) + 8.5));
      const hi = Math.min(15, Math.trunc(Math.fround(x[src + j + 16] * id) + 8.5));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
}

function quantizeQ8_0(x: Float32Array, out: Uint8Array): void {
  const dv = view(out);
  const qs = new Int8Array(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0; b < x.length / 32; b++) {
    const src = b * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[src + j]));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    const o = b * 34;
    dv.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) qs[o + 2 + j] = Math.round(x[src + j] * id);
  }
}

/**
 * Q6_K: 16 sub-blocks of 16 with int8 scales under one f16 super-scale. A plain
 * max-abs rule (not llama.cpp's error-minimising search): valid blocks whose
 * error is bounded by half a quantization step.
 */
function quantizeQ6_K(x: Float32Array, out: Uint8Array): void {
  const dv = view(out);
  const subScale = new Float32Array(16);
  const q = new Uint8Array(256);
  for (let b = 0; b < x.length / 256; b++) {
    const src = b * 256;
    let maxScale = 0;
    for (let s = 0; s < 16; s++) {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 16; j++) {
        const v = x[src + s * 16 + j];
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      subScale[s] = max / -32;
      maxScale = Math.max(maxScale, Math.abs(subScale[s]));
    }
    const d = maxScale / 127;
    const dh = f16ToF32(f32ToF16(d));
    const o = b * 210;
    for (let s = 0; s < 16; s++) {
      const sc = dh ? Math.max(-128, Math.min(127, Math.round(subScale[s] / dh))) : 0;
      dv.setInt8(o + 192 + s, sc);
      const step = dh * sc;
      const id = step ? 1 / step : 0;
      for (let j = 0; j < 16; j++) {
        q[s * 16 + j] = Math.max(0, Math.min(63, Math.round(x[src + s * 16 + j] * id) + 32));
      }
    }
    dv.setUint16(o + 208, f32ToF16(d), true);
    // Pack per docs/model.md, Quant block layouts: two halves of 128; ql holds low nibbles, qh the top two bits.
    for (let half = 0; half < 2; half++) {
      const ql = o + half * 64;
      const qh = o + 128 + half * 32;
      const y = half * 128;
      for (let l = 0; l < 32; l++) {
        const q1 = q[y + l], q2 = q[y + l + 32], q3 = q[y + l + 64], q4 = q[y + l + 96];
        out[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        out[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
}

/** f32 values → the bytes of `type`. x.length must be a multiple of the block size. */
export function quantize(type: TensorType, x: Float32Array): Uint8Array {
  const out = new Uint8Array(tensorByteLength(type, [x.length]));
  const dv = view(out);
  switch (type) {
    case TensorType.F32:
      for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i], true);
      break;
    case TensorType.F16:
      for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, f32ToF16(x[i]), true);
      break;
    case TensorType.BF16:
      for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, f32ToBF16(x[i]), true);
      break;
    case TensorType.Q4_0:
      quantizeQ4_0(x, out);
      break;
    case TensorType.Q8_0:
      quantizeQ8_0(x, out);
      break;
    case TensorType.Q6_K:
      quantizeQ6_K(x, out);
      break;
    case TensorType.Q4_1:
      quantizeQ4_1(x, out);
      break;
    case TensorType.Q5_0:
      quantizeQ5_0(x, out);
      break;
    case TensorType.Q5_1:
      quantizeQ5_1(x, out);
      break;
    case TensorType.Q2_K:
      quantizeQ2_K(x, out);
      break;
    case TensorType.Q3_K:
      quantizeQ3_K(x, out);
      break;
    case TensorType.Q4_K:
      quantizeQ4_K(x, out);
      break;
    case TensorType.Q5_K:
      quantizeQ5_K(x, out);
      break;
    default:
      throw new Error(`quantizing to ${typeName(type)} is not supported`);
  }
  return out;
}

// ---------------------------------------------------------------- dequantize

/**
 * The bytes of `count` elements of `type` → f32, written to `out` (allocated if
 * not given). `bytes` must start at a block boundary.
 */
export function dequantize(type: TensorType, bytes: Uint8Array, count: number, out: Float32Array = new Float32Array(count)): Float32Array {
  const need = tensorByteLength(type, [count]);
  if (bytes.byteLength < need) throw new Error(`dequantize ${typeName(type)}: ${count} elements need ${need} bytes, got ${bytes.byteLength}`);
  const dv = view(bytes);
  switch (type) {
    case TensorType.F32:
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case TensorType.F16: {
      const table = (f16Table ??= buildF16Table());
      for (let i = 0; i < count; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      break;
    }
    case TensorType.BF16: {
      const bits = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) bits[i] = (bytes[2 * i] << 16) | (bytes[2 * i + 1] << 24);
      break;
    }
    case TensorType.Q4_0:
      for (let b = 0; b < count / 32; b++) {
        const o = b * 18;
        const d = f16ToF32(bytes[o] | (bytes[o + 1] << 8));
        for (let j = 0; j < 16; j++) {
          const q = bytes[o + 2 + j];
          out[b * 32 + j] = ((q & 0xf) - 8) * d;
          out[b * 32 + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      break;
    case TensorType.Q4_1:
      for (let b = 0; b < count / 32; b++) {
        const o = b * 20;
        const d = f16ToF32(dv.getUint16(o, true));
        const m = f16ToF32(dv.getUint16(o + 2, true));
        for (let j = 0; j < 16; j++) {
          const q = bytes[o + 4 + j];
          out[b * 32 + j] = (q & 0xf) * d + m;
          out[b * 32 + j + 16] = (q >> 4) * d + m;
        }
      }
      break;
    case TensorType.Q8_0:
      for (let b = 0; b < count / 32; b++) {
        const o = b * 34;
        const d = f16ToF32(dv.getUint16(o, true));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = dv.getInt8(o + 2 + j) * d;
      }
      break;
    case TensorType.Q6_K:
      for (let b = 0; b < count / 256; b++) {
        const o = b * 210;
        const d = f16ToF32(dv.getUint16(o + 208, true));
        for (let half = 0; half < 2; half++) {
          const ql = o + half * 64;
          const qh = o + 128 + half * 32;
          const sc = o + 192 + half * 8;
          const y = b * 256 + half * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const h = bytes[qh + l];
            const q1 = ((bytes[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
            out[y + l] = d * dv.getInt8(sc + is) * q1;
            out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
            out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
            out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
          }
        }
      }
      break;
    case TensorType.Q5_0:
      dequantizeQ5_0(bytes, count, out);
      break;
    case TensorType.Q5_1:
      dequantizeQ5_1(bytes, count, out);
      break;
    case TensorType.Q2_K:
      dequantizeQ2_K(bytes, count, out);
      break;
    case TensorType.Q3_K:
      dequantizeQ3_K(bytes, count, out);
      break;
    case TensorType.Q4_K:
      dequantizeQ4_K(bytes, count, out);
      break;
    case TensorType.Q5_K:
      dequantizeQ5_K(bytes, count, out);
      break;
    default:
      throw new Error(`dequantizing ${typeName(type)} is not supported`);
  }
  return out;
}
