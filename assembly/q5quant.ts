// Q5_0 and Q5_1: repack to Q50R / Q51R, matrix-vector (decode) products
// against Q8A activations, and row dequantization (the matrix-matrix products
// are in q41q5matmul.ts).
//
// GGUF Q5_0 (22 B per 32 values): f16 d, u32 fifth bits (bit j: element j),
// 16 nibble bytes (byte j: element j low, j+16 high); a value is (q-16)*d
// with q = nibble | fifth bit << 4 (0..31). Q5_1 (24 B) has f16 d, f16 m
// before the fifth bits; a value is q*d + m. Per 32-block of a row:
//   s  = sum_j q_j x_j                 exact int32 (|.| <= 32*31*127)
//   sx = sum_j x_j                     exact int32 (Q8A/Q8B carry it)
//   Q5_0: acc = acc + f32(s - 16*sx) * (d*d_x)
//   Q5_1: acc = acc + (f32(s)*(d*d_x) + f32(sx)*(m*d_x))
// in that order of f32 operations in every build (the scalar twin defines
// it), so all builds agree bit for bit.
//
// Q50R / Q51R: groups of four rows (the last zero-padded), per block column
// of a group 88 / 96 bytes, the four GGUF blocks' bytes regrouped:
//   d of rows 0..3 (f16) at 0 | Q51R: m of rows 0..3 at 8 | the rows' fifth
//   bits as one 16-byte plane at H = 8 / 16 | row r's 16 nibble bytes at
//   H + 16 + 16r
// Plane byte i holds element i's fifth bit of row r at bit 2r and element
// 16 + i's at bit 2r + 1, so a row's fifth bits line up with its nibble
// bytes: one shift and one AND put them at 0x10 (GGUF's u32 per row needed a
// splat, a byte shuffle, an AND and a compare per half). The four rows'
// scales are one load each and their data one stream (as Q4R).

import { scratchBase, h2f, h2f_x4c, VCONST, VC_NIB8, VC_B16, VC_HMASK, VC_HMUL, q8aSumOff, q8aQ8Off, q8aQ16Off } from "./common";
import { reduce4, storeRows, rowDot32 } from "./quant";

@inline function hOff(withMin: bool): usize { return withMin ? 16 : 8; }
@inline function outBytes(withMin: bool): usize { return withMin ? 96 : 88; }
@inline function inBytes(withMin: bool): usize { return withMin ? 24 : 22; }

// ---------------------------------------------------------------- sizes and repack

export function q50r_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 5) * 88;
}

export function q51r_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 5) * 96;
}

// GGUF rows -> Q50R / Q51R. A group occupies exactly the bytes of its four
// source rows, so dst == src (in place) works; otherwise src and dst must not
// overlap. Uses the scratch region (4 rows).
export function repack_q5_0(src: usize, dst: usize, rows: i32, cols: i32): void {
  repack5(src, dst, rows, cols, false);
}

export function repack_q5_1(src: usize, dst: usize, rows: i32, cols: i32): void {
  repack5(src, dst, rows, cols, true);
}

// Bit i of the byte b to bit 0 of byte i of the result.
@inline function spread8(b: u32): u64 {
  let x = <u64>b;
  x = (x | (x << 28)) & 0x0000000F0000000F;
  x = (x | (x << 14)) & 0x0003000300030003;
  return (x | (x << 7)) & 0x0101010101010101;
}

function repack5(src: usize, dst: usize, rows: i32, cols: i32, withMin: bool): void {
  const nb = <usize>cols >> 5;
  const inB = inBytes(withMin);
  const outB = outBytes(withMin);
  const h = hOff(withMin);
  const rowBytes = nb * inB;
  const tmp = scratchBase();
  for (let g = 0; g < (rows + 3) >> 2; g++) {
    const nr = min(4, rows - (g << 2));
    memory.copy(tmp, src + <usize>(g << 2) * rowBytes, <usize>nr * rowBytes);
    if (nr < 4) memory.fill(tmp + <usize>nr * rowBytes, 0, <usize>(4 - nr) * rowBytes);
    let o = dst + <usize>g * nb * outB;
    for (let b: usize = 0; b < nb; b++) {
      // The plane's bytes 0..7 (elements 0..7 and 16..23) and 8..15 (8..15 and 24..31).
      let p0: u64 = 0, p1: u64 = 0;
      for (let r: usize = 0; r < 4; r++) {
        const s = tmp + r * rowBytes + b * inB;
        store<u16>(o + (r << 1), load<u16>(s));
        if (withMin) store<u16>(o + 8 + (r << 1), load<u16>(s, 2));
        const sh = s + (withMin ? 4 : 2);
        const qh = load<u32>(sh);
        const k = <u64>(r << 1);
        p0 |= (spread8(qh & 0xff) << k) | (spread8((qh >> 16) & 0xff) << (k + 1));
        p1 |= (spread8((qh >> 8) & 0xff) << k) | (spread8(qh >> 24) << (k + 1));
        memory.copy(o + h + 16 + (r << 4), sh + 4, 16);
      }
      store<u64>(o + h, p0);
      store<u64>(o + h + 8, p1);
      o += outB;
    }
  }
}

// ---------------------------------------------------------------- matvec (Q8A)

export function matvec_q50r_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvec5Simd(w, rows, cols, xa, out, false);
  else matvec5Scalar(w, rows, cols, xa, out, false);
}

export function matvec_q51r_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvec5Simd(w, rows, cols, xa, out, true);
  else matvec5Scalar(w, rows, cols, xa, out, true);
}

function matvec5Scalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize, withMin: bool): void {
  const nb = <usize>cols >> 5;
  const xs = xa + q8aSumOff(nb);
  const x8 = xa + q8aQ8Off(nb);
  const outB = outBytes(withMin);
  const h = hOff(withMin);
  const gBytes = nb * outB;
  for (let r = 0; r < rows; r++) {
    const lane = <usize>(r & 3);
    let p = w + <usize>(r >> 2) * gBytes;
    let acc: f32 = 0;
    for (let b: usize = 0; b < nb; b++) {
      const q = p + h + 16 + (lane << 4);
      const xb = x8 + (b << 5);
      let s: i32 = 0;
      for (let j: usize = 0; j < 16; j++) {
        const v = <i32>load<u8>(q + j);
        const f = <i32>load<u8>(p + h + j) >> <i32>(lane << 1);
        const lo = (v & 15) | ((f & 1) << 4);
        const hi = (v >> 4) | ((f & 2) << 3);
        s += lo * <i32>load<i8>(xb + j) + hi * <i32>load<i8>(xb + j + 16);
      }
      const dx = load<f32>(xa + (b << 2));
      const sx = load<i32>(xs + (b << 2));
      const d = h2f(load<u16>(p + (lane << 1)));
      if (withMin) acc += <f32>s * (d * dx) + <f32>sx * (h2f(load<u16>(p + 8 + (lane << 1))) * dx);
      else acc += <f32>(s - (sx << 4)) * (d * dx);
      p += outB;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// Row r's 32 values (0..31) as bytes: elements 0..15 (values5) and 16..31
// (values5hi), from its nibble bytes at q and the group's fifth-bit plane P
// (bit 2r, resp. 2r + 1, of each byte), shifted to 0x10 in int16 lanes:
// within each byte, since only bit 4 is kept.
@inline export function values5(q: usize, P: v128, r: i32, m4: v128, b5: v128): v128 {
  return v128.or(v128.and(v128.load(q), m4), fifthAt4(P, r << 1, b5));
}

@inline export function values5hi(q: usize, P: v128, r: i32, m4: v128, b5: v128): v128 {
  return v128.or(v128.and(i16x8.shr_u(v128.load(q), 4), m4), fifthAt4(P, (r << 1) + 1, b5));
}

@inline function fifthAt4(P: v128, k: i32, b5: v128): v128 {
  if (k < 4) return v128.and(i16x8.shl(P, 4 - k), b5);
  if (k > 4) return v128.and(i16x8.shr_u(P, k - 4), b5);
  return v128.and(P, b5);
}

// One row's integer dot sum_j q_j x_j as four int32 partials. Relaxed: the
// values (0..31) are the 7-bit operand (rowDot32: the fused dot, or pair
// sums of both halves in int16, widened before the rows are added). Plain:
// Q8A's permuted int16 activations (even elements, then odd, per half).
@inline function dot5(q: usize, P: v128, r: i32, xq: usize, m4: v128, b5: v128): v128 {
  const lo = values5(q, P, r, m4, b5);
  const hi = values5hi(q, P, r, m4, b5);
  if (ASC_FEATURE_RELAXED_SIMD) return rowDot32(v128.load(xq), v128.load(xq, 16), lo, hi);
  const lane = i16x8.splat(0xff);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(lo, lane), v128.load(xq)), i32x4.dot_i16x8_s(i16x8.shr_u(lo, 8), v128.load(xq, 16))),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(hi, lane), v128.load(xq, 32)), i32x4.dot_i16x8_s(i16x8.shr_u(hi, 8), v128.load(xq, 48))),
  );
}

function matvec5Simd(w: usize, rows: i32, cols: i32, xa: usize, out: usize, withMin: bool): void {
  const nb = <usize>cols >> 5;
  const xq0 = ASC_FEATURE_RELAXED_SIMD ? xa + q8aQ8Off(nb) : xa + q8aQ16Off(nb);
  const xqStep: usize = ASC_FEATURE_RELAXED_SIMD ? 32 : 64;
  const m4 = v128.load(VCONST + VC_NIB8);
  const b5 = v128.load(VCONST + VC_B16);
  const hmask = v128.load(VCONST + VC_HMASK);
  const hmul = v128.load(VCONST + VC_HMUL);
  const h = hOff(withMin);
  const outB = outBytes(withMin);
  const xs0 = xa + q8aSumOff(nb);
  const xEnd = xa + (nb << 2);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    let xq = xq0, xs = xs0;
    for (let xd = xa; xd < xEnd; xd += 4) {
      const q = p + h + 16;
      const P = v128.load(p + h);
      let s = reduce4(
        dot5(q, P, 0, xq, m4, b5), dot5(q + 16, P, 1, xq, m4, b5),
        dot5(q + 32, P, 2, xq, m4, b5), dot5(q + 48, P, 3, xq, m4, b5),
      );
      const dx = v128.load32_splat(xd);
      const dd = f32x4.mul(h2f_x4c(p, hmask, hmul), dx);
      if (withMin) {
        const md = f32x4.mul(h2f_x4c(p + 8, hmask, hmul), dx);
        acc = f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s), dd), f32x4.mul(f32x4.convert_i32x4_s(v128.load32_splat(xs)), md)));
      } else {
        s = i32x4.sub(s, i32x4.shl(v128.load32_splat(xs), 4));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), dd));
      }
      p += outB;
      xq += xqStep;
      xs += 4;
    }
    storeRows(out, r0, rows, acc);
  }
}

// ---------------------------------------------------------------- dequantize (embedding rows)

// n values (a multiple of 32) at src -> f32 at dst: (q-16)*d or q*d + m,
// each product exact in f32, one rounding, as src/gguf's reference.
export function dequant_q5_0(src: usize, dst: usize, n: i32): void {
  dequant5(src, dst, n, false);
}

export function dequant_q5_1(src: usize, dst: usize, n: i32): void {
  dequant5(src, dst, n, true);
}

function dequant5(src: usize, dst: usize, n: i32, withMin: bool): void {
  const inB = inBytes(withMin);
  for (let b: usize = 0; b < (<usize>n >> 5); b++) {
    const s = src + b * inB;
    const d = h2f(load<u16>(s));
    const m: f32 = withMin ? h2f(load<u16>(s, 2)) : 0;
    const sh = s + (withMin ? 4 : 2);
    const qh = load<u32>(sh);
    const o = dst + (b << 7);
    for (let j: usize = 0; j < 16; j++) {
      const v = <i32>load<u8>(sh + 4 + j);
      const lo = (v & 15) | (<i32>((qh >> <u32>j) & 1) << 4);
      const hi = (v >> 4) | (<i32>((qh >> <u32>(j + 16)) & 1) << 4);
      if (withMin) {
        store<f32>(o + (j << 2), <f32>lo * d + m);
        store<f32>(o + ((j + 16) << 2), <f32>hi * d + m);
      } else {
        store<f32>(o + (j << 2), <f32>(lo - 16) * d);
        store<f32>(o + ((j + 16) << 2), <f32>(hi - 16) * d);
      }
    }
  }
}
