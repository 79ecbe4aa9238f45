// The low-bit K-quants Q2_K and Q3_K: matrix-vector (decode) and
// matrix-matrix (prefill) products against Q8A / Q8B activations, and row
// dequantization (embedding lookup). Rows are read as stored (no repack).
//
// GGUF Q2_K (84 B per 256 values): 16 scale bytes (sub-block i of 16 values:
// scale in the low nibble, min in the high one), 64 bytes of 2-bit values,
// f16 d, f16 dmin. Q3_K (110 B): 32 bytes of high bits, 64 bytes of 2-bit
// values, 12 bytes of packed 6-bit scales (stored +32), f16 d. In both the 32
// values of 32-block b (b = 4n + j within the superblock) are bits 2j..2j+1
// of the 32 value bytes of half n; its sub-blocks are 2b (bytes 0..15) and
// 2b+1 (bytes 16..31); Q3_K's high bit of value e of block b is bit b of
// high-bit byte e (e = 0..31). A Q2_K value is d*sc*q - dmin*m, a Q3_K value
// d*s*(u - 4) with u = q + 4*high in 0..7 and s the signed scale.
//
// A sub-block is half a Q8A block, so per 32-block b of a row (two
// sub-blocks h = 0, 1; x the int8 activations, sx_h their sum over the 16):
//   Q2_K: sd = sum_h sc_h * sum q*x         sm = sum_h m_h * sx_h
//         acc = acc + (f32(sd)*d - f32(sm)*dmin) * d_x
//   Q3_K: sd = sum_h s_h * (sum u*x - 4*sx_h)
//         acc = acc + (f32(sd)*d) * d_x
// all integers exact in int32 (|sd| <= 2*32*16*4*127 < 2^20), the f32
// operations in that order in every build (the scalar twin defines it), so
// the builds agree bit for bit. The 16-value sums sx_h come from the int8
// activations in the kernel: per pair by extadd_pairwise, the one
// instruction every SIMD build has, so Q8A and Q8B stay as they are.

import { FUSED, scratchBase, h2f, h2fLanes_nodenorm, h2f_x4_nodenorm, q8aQ8Off, q8aQ16Off, VCONST, VC_NIB8, VC_B3, VC_B4, VC_B7, VC_B32 } from "./common";
import { reduce4, storeRows, groupToScratch, q8bToQ8a, quadsToQ8a, SMALL_X, MV_X, smallStride, smallMost } from "./quant";

@inline function lowBytes(three: bool): usize {
  return three ? 110 : 84;
}

// Offsets within a block: the 2-bit values, the f16 d.
@inline function lowQs(three: bool): usize {
  return three ? 32 : 16;
}
@inline function lowD(three: bool): usize {
  return three ? 108 : 80;
}

// Q3_K's signed scale of sub-block i (0..15) from the 12 packed bytes at sc:
// a low nibble (byte i for i < 8, the high nibble of byte i - 8 beyond) and
// bits 2(i >> 2)..+1 of byte 8 + (i & 3) on top.
@inline function q3Scale(sc: usize, i: usize): i32 {
  const low = i < 8 ? <i32>load<u8>(sc + i) & 15 : <i32>load<u8>(sc + i - 8) >> 4;
  const high = (<i32>load<u8>(sc + 8 + (i & 3)) >> <i32>((i >> 2) << 1)) & 3;
  return (low | (high << 4)) - 32;
}

// Where a 4-row group's decoded scales live in scratch (both products):
// row k's 16 sub-block scales as int16 at LS + 64k, Q2_K's 16 mins at
// LS + 64k + 32.
// @ts-ignore: decorator
@inline const LS: usize = 256;

// The sub-block scales (Q2_K: and mins) of a superblock, from its scale
// bytes at sc (Q2_K: the block's start; Q3_K: its 12 packed bytes), decoded once
// for its eight blocks into o as int16 (the layout of LS), in vector
// operations: per block the kernels then load a scale where they decoded it
// with ~7 scalar operations (Q3_K's six bits from two bytes, Q2_K's nibbles
// from a u16) and splatted it. Q3_K's scale i is its low nibble (byte i, or
// the high nibble of byte i - 8) with bits 2(i >> 2)..+1 of byte 8 + (i & 3)
// on top, less 32: the four high-bit bytes shifted by 0, 2, 4, 6 in the four
// int32 lanes put exactly those bits at the bottom of byte lane i.
@inline function lowScales(o: usize, sc: usize, m4: v128, b3: v128, b32: v128, three: bool): void {
  if (three) {
    const v = v128.load64_zero(sc);
    const low = i8x16.shuffle(v128.and(v, m4), v128.and(i16x8.shr_u(v, 4), m4), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const hb = load<u32>(sc + 8);
    let h = i32x4.replace_lane(i32x4.splat(hb), 1, hb >> 2);
    h = i32x4.replace_lane(i32x4.replace_lane(h, 2, hb >> 4), 3, hb >> 6);
    const s = i8x16.sub(v128.or(low, i8x16.shl(v128.and(h, b3), 4)), b32);
    v128.store(o, i16x8.extend_low_i8x16_s(s));
    v128.store(o, i16x8.extend_high_i8x16_s(s), 16);
    return;
  }
  const v = v128.load(sc);
  const s = v128.and(v, m4), mn = v128.and(i16x8.shr_u(v, 4), m4);
  v128.store(o, i16x8.extend_low_i8x16_u(s));
  v128.store(o, i16x8.extend_high_i8x16_u(s), 16);
  v128.store(o, i16x8.extend_low_i8x16_u(mn), 32);
  v128.store(o, i16x8.extend_high_i8x16_u(mn), 48);
}

// The four rows' scales of the superblocks at p0..p3 to ls (Q2_K: and the
// min table). The constants are loaded here, once per superblock, not
// rematerialized for every row (VCONST).
@inline function lowScales4(ls: usize, p0: usize, p1: usize, p2: usize, p3: usize, three: bool): void {
  const m4 = v128.load(VCONST + VC_NIB8), b3 = v128.load(VCONST + VC_B3), b32 = v128.load(VCONST + VC_B32);
  const o = three ? 96 : 0;
  lowScales(ls, p0 + o, m4, b3, b32, three);
  lowScales(ls + 64, p1 + o, m4, b3, b32, three);
  lowScales(ls + 128, p2 + o, m4, b3, b32, three);
  lowScales(ls + 192, p3 + o, m4, b3, b32, three);
  if (!three) lowPairTable(ls, ls + LMT, 32);
}

// Q2_K's min term, sm = sum_h m_h * sx_h per row, for the four rows at once:
// per block b the rows' min pairs (m_2b, m_2b+1) side by side as int16 at
// LS + LMT + 16b (lowPairTable, a 4x4 transpose of the rows' pairs once per
// superblock), and one dot_i16x8_s with the sub-blocks' activation sums
// (sx_0, sx_1) in every lane pair gives each row's sm in its int32 lane:
// the same integers as one min dot per row and a reduce4.
// @ts-ignore: decorator
@inline const LMT: usize = 256;

// The four rows' int16 values at ls + at (16 per row, rows 64 bytes apart:
// their scales at 0, Q2_K's mins at 32) as pairs by block: at o + 16b the
// four rows' pairs (2b, 2b + 1) side by side.
@inline function lowPairTable(ls: usize, o: usize, at: usize): void {
  lowQuadsT(o, v128.load(ls + at), v128.load(ls + 64 + at), v128.load(ls + 128 + at), v128.load(ls + 192 + at));
  lowQuadsT(o + 64, v128.load(ls + at, 16), v128.load(ls + 64 + at, 16), v128.load(ls + 128 + at, 16), v128.load(ls + 192 + at, 16));
}

// Four vectors' int32 lanes transposed to o: vector j at o + 16j holds lane
// j of a, b, c, d (four rows' min or scale pairs of a block side by side;
// the quads of four rows).
@inline function lowQuadsT(o: usize, a: v128, b: v128, c: v128, d: v128): void {
  const t0 = i32x4.shuffle(a, b, 0, 4, 1, 5), t1 = i32x4.shuffle(c, d, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(a, b, 2, 6, 3, 7), t3 = i32x4.shuffle(c, d, 2, 6, 3, 7);
  v128.store(o, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
  v128.store(o, i32x4.shuffle(t0, t1, 2, 3, 6, 7), 16);
  v128.store(o, i32x4.shuffle(t2, t3, 0, 1, 4, 5), 32);
  v128.store(o, i32x4.shuffle(t2, t3, 2, 3, 6, 7), 48);
}

// Block b's sm of the four rows (int32 lanes) from the min table at mt and
// the sub-blocks' sums s (subSums).
@inline function lowMins(mt: usize, b: i32, s: v128): v128 {
  return i32x4.dot_i16x8_s(v128.load(mt + (<usize>b << 4)), s);
}

// (sx_0, sx_1) in every lane pair, from the sub-blocks' pair sums pl, ph (|sx| <= 16*128: int16).
@inline function subSums(pl: v128, ph: v128): v128 {
  let s = i16x8.add(i16x8.shuffle(pl, ph, 0, 8, 1, 9, 2, 10, 3, 11), i16x8.shuffle(pl, ph, 4, 12, 5, 13, 6, 14, 7, 15));
  s = i16x8.add(s, i16x8.shuffle(s, s, 4, 5, 6, 7, 0, 1, 2, 3));
  return i16x8.add(s, i16x8.shuffle(s, s, 2, 3, 0, 1, 6, 7, 4, 5));
}

// ---------------------------------------------------------------- matvec (Q8A)

// out[r] for rows x cols stored Q2_K / Q3_K rows at w (cols a multiple of 256).
export function matvec_q2_k_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecLowSimd(w, rows, cols, xa, out, false);
  else matvecLowScalar(w, rows, cols, xa, out, false);
}

export function matvec_q3_k_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecLowSimd(w, rows, cols, xa, out, true);
  else matvecLowScalar(w, rows, cols, xa, out, true);
}

function matvecLowScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize, three: bool): void {
  const nsb = <usize>cols >> 8;
  const x8 = xa + q8aQ8Off(nsb << 3);
  const B = lowBytes(three);
  for (let r = 0; r < rows; r++) {
    let p = w + <usize>r * nsb * B;
    let acc: f32 = 0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      const d = h2f(load<u16>(p + lowD(three)));
      const dm = three ? <f32>0 : h2f(load<u16>(p + 82));
      for (let b: usize = 0; b < 8; b++) {
        const q = p + lowQs(three) + ((b >> 2) << 5);
        const shift = <i32>((b & 3) << 1);
        const xb = x8 + (((sb << 3) + b) << 5);
        let sd: i32 = 0, sm: i32 = 0;
        for (let h: usize = 0; h < 2; h++) {
          let dot: i32 = 0, sx: i32 = 0;
          for (let e = h << 4; e < (h << 4) + 16; e++) {
            let u = (<i32>load<u8>(q + e) >> shift) & 3;
            if (three) u |= ((<i32>load<u8>(p + e) >> <i32>b) & 1) << 2;
            const x = <i32>load<i8>(xb + e);
            dot += u * x;
            sx += x;
          }
          const i = (b << 1) + h;
          if (three) {
            sd += q3Scale(p + 96, i) * (dot - (sx << 2));
          } else {
            const s = <i32>load<u8>(p + i);
            sd += (s & 15) * dot;
            sm += (s >> 4) * sx;
          }
        }
        const dx = load<f32>(xa + (((sb << 3) + b) << 2));
        if (three) acc += <f32>sd * d * dx;
        else acc += (<f32>sd * d - <f32>sm * dm) * dx;
      }
      p += B;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// Relaxed: the 16 values of block b at byte offset o (0: sub-block 2b, 16:
// 2b+1) of the superblock at p, as unsigned bytes (0..3, Q3_K's u 0..7).
// m3, m4: bytes 3 and 4 (VC_B3, VC_B4), loaded once per call of the product.
@inline function lowValues(p: usize, b: i32, o: usize, m3: v128, m4: v128, three: bool): v128 {
  const q = p + lowQs(three) + (<usize>(b >> 2) << 5);
  let a = v128.and(i16x8.shr_u(v128.load(q + o), (b & 3) << 1), m3);
  if (three) {
    // Bit b of every byte to bit 2: a 16-bit shift carries no bit of one byte into bit 2 of the other.
    const h = v128.load(p + o);
    a = v128.or(a, v128.and(b >= 2 ? i16x8.shr_u(h, b - 2) : i16x8.shl(h, 2 - b), m4));
  }
  return a;
}

// One row's block b (superblock at p; its decoded scales at sc, lowScales)
// against the block's activations: the int32 partials of sd to t; the
// lanes' sum is the value. pl / ph: the activations' pair sums of the two
// sub-blocks (Q3_K: times 4, its offset).
//
// Relaxed: the unsigned values (0..3, Q3_K's u 0..7) are the 7-bit operand;
// each pair's dot |.| <= 2*7*127 fits int16, and Q3_K's offset is applied
// per pair (u*x - 4*x, |.| <= 2*4*127) before one dot_i16x8_s with the
// splatted scale widens and scales at once. Plain SIMD: the values widened
// to int16 by mask and shift (even elements from the low bytes, odd from the
// high, the order of Q8A's int16 section), Q3_K's already signed.
@inline function lowRow(t: usize, p: usize, b: i32, xl: v128, xh: v128, x16: usize, pl: v128, ph: v128, sc: usize, m3: v128, m4: v128, three: bool): void {
  const q = p + lowQs(three) + (<usize>(b >> 2) << 5);
  const shift = (b & 3) << 1;
  const si = sc + (<usize>b << 2);
  let dl: v128, dh: v128;
  if (ASC_FEATURE_RELAXED_SIMD) {
    dl = i16x8.relaxed_dot_i8x16_i7x16_s(xl, lowValues(p, b, 0, m3, m4, three));
    dh = i16x8.relaxed_dot_i8x16_i7x16_s(xh, lowValues(p, b, 16, m3, m4, three));
    if (three) {
      dl = i16x8.sub(dl, pl);
      dh = i16x8.sub(dh, ph);
    }
    v128.store(t, i32x4.add(i32x4.dot_i16x8_s(dl, v128.load16_splat(si)), i32x4.dot_i16x8_s(dh, v128.load16_splat(si, 2))));
    return;
  }
  const v = v128.load(q), w = v128.load(q, 16);
  const k3 = i16x8.splat(3);
  let e0 = v128.and(i16x8.shr_u(v, shift), k3), o0 = v128.and(i16x8.shr_u(v, shift + 8), k3);
  let e1 = v128.and(i16x8.shr_u(w, shift), k3), o1 = v128.and(i16x8.shr_u(w, shift + 8), k3);
  if (three) {
    const one = i16x8.splat(1), four = i16x8.splat(4);
    const hl = v128.load(p), hh = v128.load(p, 16);
    e0 = i16x8.sub(v128.or(e0, i16x8.shl(v128.and(i16x8.shr_u(hl, b), one), 2)), four);
    o0 = i16x8.sub(v128.or(o0, i16x8.shl(v128.and(i16x8.shr_u(hl, b + 8), one), 2)), four);
    e1 = i16x8.sub(v128.or(e1, i16x8.shl(v128.and(i16x8.shr_u(hh, b), one), 2)), four);
    o1 = i16x8.sub(v128.or(o1, i16x8.shl(v128.and(i16x8.shr_u(hh, b + 8), one), 2)), four);
  }
  dl = i32x4.add(i32x4.dot_i16x8_s(e0, v128.load(x16)), i32x4.dot_i16x8_s(o0, v128.load(x16, 16)));
  dh = i32x4.add(i32x4.dot_i16x8_s(e1, v128.load(x16, 32)), i32x4.dot_i16x8_s(o1, v128.load(x16, 48)));
  v128.store(t, i32x4.add(i32x4.mul(dl, i32x4.splat(<i32>load<i16>(si))), i32x4.mul(dh, i32x4.splat(<i32>load<i16>(si, 2)))));
}

// A sub-block's 16 activations as the pair sums lowRow takes: Q3_K's times 4.
@inline function lowPairs(x: v128, three: bool): v128 {
  const s = i16x8.extadd_pairwise_i8x16_s(x);
  return three ? i16x8.shl(s, 2) : s;
}

// The four rows' f16 at offset o of their blocks as f32x4, exactly h2f's
// values, converted without a float operation on a subnormal half: d is
// about max|w|/128 (Q3_K), a subnormal half for a superblock whose weights
// stay below ~0.008, and h2f's multiply on the denormal it makes costs an
// x86 microcode assist (docs/kernels.md, "Subnormal scales").
@inline function halves4(p0: usize, p1: usize, p2: usize, p3: usize, o: usize): v128 {
  let h = i32x4.splat(<i32>load<u16>(p0 + o));
  h = i32x4.replace_lane(h, 1, <i32>load<u16>(p1 + o));
  h = i32x4.replace_lane(h, 2, <i32>load<u16>(p2 + o));
  return h2fLanes_nodenorm(i32x4.replace_lane(h, 3, <i32>load<u16>(p3 + o)));
}

// Block b of a superblock of four rows (p0..p3; their scales decoded at
// ls) against the activations of its superblock (x8: int8, x16: the plain
// SIMD build's int16, xs: d_x), folded into acc.
@inline function lowBlock(acc: v128, t: usize, p0: usize, p1: usize, p2: usize, p3: usize, b: i32,
  x8: usize, x16: usize, xs: usize, ls: usize, d: v128, dm: v128, m3: v128, m4: v128, three: bool): v128 {
  const xb = x8 + (<usize>b << 5), xw = x16 + (<usize>b << 6);
  const xl = v128.load(xb), xh = v128.load(xb, 16);
  const pl = lowPairs(xl, three), ph = lowPairs(xh, three);
  lowRow(t, p0, b, xl, xh, xw, pl, ph, ls, m3, m4, three);
  lowRow(t + 16, p1, b, xl, xh, xw, pl, ph, ls + 64, m3, m4, three);
  lowRow(t + 32, p2, b, xl, xh, xw, pl, ph, ls + 128, m3, m4, three);
  lowRow(t + 48, p3, b, xl, xh, xw, pl, ph, ls + 192, m3, m4, three);
  const sd = f32x4.convert_i32x4_s(reduce4(v128.load(t), v128.load(t, 16), v128.load(t, 32), v128.load(t, 48)));
  const dx = v128.load32_splat(xs + (<usize>b << 2));
  if (three) return f32x4.add(acc, f32x4.mul(f32x4.mul(sd, d), dx));
  const sm = f32x4.convert_i32x4_s(lowMins(ls + LMT, b, subSums(pl, ph)));
  return f32x4.add(acc, f32x4.mul(f32x4.sub(f32x4.mul(sd, d), f32x4.mul(sm, dm)), dx));
}

// Four rows per pass, the rows' accumulators in the lanes of one f32x4.
// Lane k takes row i + k*q of the first 4q rows (q = rows / 4): each lane
// then reads its quarter of the matrix front to back, four long streams
// that the hardware prefetches, where four adjacent rows (each 880 B at
// 2048 columns) are four short ones it does not, and the matvec waited on
// memory (docs/kernels.md, "The low-bit K-quants"). The last rows % 4 are one group, its last row
// repeated and only the real ones stored. Each row's partials pass through
// scratch [0, 128), which keeps the live set small (see q6Step in quant.ts).
function matvecLowSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize, three: bool): void {
  const nsb = <usize>cols >> 8;
  const rowBytes = nsb * lowBytes(three);
  const q = rows >> 2;
  const qBytes = <usize>q * rowBytes;
  for (let i = 0; i < q; i++) {
    const p = w + <usize>i * rowBytes;
    lowStore4(out, i, q, matvecLow4(p, p + qBytes, p + 2 * qBytes, p + 3 * qBytes, nsb, xa, three));
  }
  const r0 = q << 2;
  if (r0 < rows) {
    const p = w + <usize>r0 * rowBytes, last = w + <usize>(rows - 1) * rowBytes;
    storeRows(out, r0, rows, matvecLow4(p, <usize>min(p + rowBytes, last), <usize>min(p + 2 * rowBytes, last), last, nsb, xa, three));
  }
}

// Rows i, q + i, 2q + i, 3q + i of out from the lanes of acc.
@inline function lowStore4(out: usize, i: i32, q: i32, acc: v128): void {
  const o = out + (<usize>i << 2), qo = <usize>q << 2;
  store<f32>(o, f32x4.extract_lane(acc, 0));
  store<f32>(o + qo, f32x4.extract_lane(acc, 1));
  store<f32>(o + 2 * qo, f32x4.extract_lane(acc, 2));
  store<f32>(o + 3 * qo, f32x4.extract_lane(acc, 3));
}

// The four rows at p0..p3 against the activations (Q8A at xa): their sums in the lanes.
function matvecLow4(p0: usize, p1: usize, p2: usize, p3: usize, nsb: usize, xa: usize, three: bool): v128 {
  const nb = nsb << 3;
  const x8 = xa + q8aQ8Off(nb);
  const x16 = xa + q8aQ16Off(nb);
  const B = lowBytes(three);
  const t = scratchBase();
  const ls = t + LS;
  const m3 = v128.load(VCONST + VC_B3), m4 = v128.load(VCONST + VC_B4);
  let acc = f32x4.splat(0);
  for (let sb: usize = 0; sb < nsb; sb++) {
    const d = halves4(p0, p1, p2, p3, lowD(three));
    const dm = three ? d : halves4(p0, p1, p2, p3, 82);
    lowScales4(ls, p0, p1, p2, p3, three);
    // The eight blocks written out: b is then a constant in each, and so are its shifts.
    const xb = x8 + (sb << 8), xw = x16 + (sb << 9), xs = xa + (sb << 5);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 0, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 1, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 2, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 3, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 4, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 5, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 6, xb, xw, xs, ls, d, dm, m3, m4, three);
    acc = lowBlock(acc, t, p0, p1, p2, p3, 7, xb, xw, xs, ls, d, dm, m3, m4, three);
    p0 += B;
    p1 += B;
    p2 += B;
    p3 += B;
  }
  return acc;
}

// ---------------------------------------------------------------- matmul (Q8B)

// out[t*rows + r] for ntok tokens (Q8B, q8b_bytes(cols, ntok)), from the
// tokens' Q8A images made from the Q8B (O(cols) per token). Relaxed builds:
// up to eight tokens per pass over the weights (smallMost), each block of four rows
// unpacked once into scratch for them as quads (four rows side by side, as
// Q4R's), then per token the matvec's integer sums, rows in lanes with no
// reduce4, and its fold; plain SIMD and scalar: one matvec per token.
// Bit-identical to the matvecs in every build.
export function matmul_q2_k_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulLow(w, rows, cols, xb, ntok, out, false, false);
}

export function matmul_q3_k_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulLow(w, rows, cols, xb, ntok, out, true, false);
}

// q3kr: the rows are Q3KR (three is then true).
function matmulLow(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize, three: bool, q3kr: bool): void {
  const nb = <usize>cols >> 5;
  const xa = scratchBase() + SMALL_X;
  // The pass needs a token's activation table to fit (cols up to ~114,000): wider rows take the matvecs.
  if (ASC_FEATURE_RELAXED_SIMD && (nb << 5) <= LT_BYTES) {
    const stride = smallStride(nb);
    const most = min(smallMost(stride), <i32>(LT_BYTES / (nb << 5)));
    for (let t = 0; t < ntok; t += most) {
      const n = min(most, ntok - t);
      for (let i = 0; i < n; i++) {
        const xi = xa + <usize>i * stride;
        if (FUSED) quadsToQ8a(xb, nb, t + i, xi);
        else q8bToQ8a(xb, nb, t + i, xi);
        lowActTable(xi, nb, scratchBase() + LT + <usize>i * (nb << 5), three);
      }
      const o = out + <usize>t * (<usize>rows << 2);
      if (q3kr) matmulQ3krFew(w, rows, cols, xa, stride, o, n);
      else matmulLowFew(w, rows, cols, xa, stride, o, n, three);
    }
    return;
  }
  for (let t = 0; t < ntok; t++) {
    if (FUSED) quadsToQ8a(xb, nb, t, xa);
    else q8bToQ8a(xb, nb, t, xa);
    const o = out + <usize>t * (<usize>rows << 2);
    if (q3kr) matvec_q3kr_q8a(w, rows, cols, xa, o);
    else if (ASC_FEATURE_SIMD) matvecLowSimd(w, rows, cols, xa, o, three);
    else matvecLowScalar(w, rows, cols, xa, o, three);
  }
}

// Scratch of the few-token pass: at LW + 128b, block b of the superblock as
// eight quad vectors of the four rows (quad k at + 16k: byte 4r + e is row
// r's value 4k + e); at LS + LST + 16b, block b's scale pairs of the four
// rows (lowPairTable, as Q2_K's mins); at LA + 16k token k's f32 accumulators (rows in
// lanes); at LT, per token and activation block, what the activations bring
// to every row group (lowActTable).
// @ts-ignore: decorator
@inline const LW: usize = 1024;
// @ts-ignore: decorator
@inline const LST: usize = 384;
// @ts-ignore: decorator
@inline const LA: usize = 4096;
// @ts-ignore: decorator
@inline const LT: usize = MV_X;
// @ts-ignore: decorator
@inline const LT_BYTES: usize = SMALL_X - LT;

// Per activation block of the Q8A at xa, 32 bytes at t. Q3_K: its two
// sub-blocks' offsets as the quads' int16 lanes see them, times 4 (even lanes
// sum x[4k] + x[4k+1], odd lanes x[4k+2] + x[4k+3], over the sub-block's four
// quads; |.| <= 4*8*128). Q2_K: the sub-blocks' sums in every lane pair
// (subSums). Made once per token and pass, not per row group.
function lowActTable(xa: usize, nb: usize, t: usize, three: bool): void {
  const x8 = xa + q8aQ8Off(nb);
  for (let b: usize = 0; b < nb; b++) {
    const pl = i16x8.extadd_pairwise_i8x16_s(v128.load(x8 + (b << 5)));
    const ph = i16x8.extadd_pairwise_i8x16_s(v128.load(x8 + (b << 5), 16));
    const o = t + (b << 5);
    if (three) {
      v128.store(o, i16x8.shl(quadPairs(pl), 2));
      v128.store(o, i16x8.shl(quadPairs(ph), 2), 16);
    } else {
      v128.store(o, subSums(pl, ph));
    }
  }
}

// [E, O] in every lane pair: E the sum of p's even lanes, O of its odd ones.
@inline function quadPairs(p: v128): v128 {
  const v = i16x8.add(p, i16x8.shuffle(p, p, 4, 5, 6, 7, 0, 1, 2, 3));
  return i16x8.add(v, i16x8.shuffle(v, v, 2, 3, 0, 1, 6, 7, 4, 5));
}

// Block b of the four rows (p0..p3) as eight quad vectors at o: each row's
// two value vectors (lowValues) with their int32 lanes (quads) transposed
// four rows by four.
@inline function lowUnpackQuads(o: usize, p0: usize, p1: usize, p2: usize, p3: usize, b: i32, m3: v128, m4: v128, three: bool): void {
  lowQuadsT(o, lowValues(p0, b, 0, m3, m4, three), lowValues(p1, b, 0, m3, m4, three),
    lowValues(p2, b, 0, m3, m4, three), lowValues(p3, b, 0, m3, m4, three));
  lowQuadsT(o + 64, lowValues(p0, b, 16, m3, m4, three), lowValues(p1, b, 16, m3, m4, three),
    lowValues(p2, b, 16, m3, m4, three), lowValues(p3, b, 16, m3, m4, three));
}

// One token's sub-block of the four rows from its quads at u: the four
// quads' dots against the splatted activation quads at xq, added in int16
// (|.| <= 4*2*7*128), less Q3_K's offset off, widened and scaled by the
// rows' scales sp (lane pair r: row r's scale twice): each row's integer in
// its int32 lane, the one lowRow's dot and reduce4 give.
@inline function lowQuadsDot(u: usize, xq: usize, off: v128, sp: v128, three: bool): v128 {
  let a = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq), v128.load(u));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 4), v128.load(u, 16)));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 8), v128.load(u, 32)));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 12), v128.load(u, 48)));
  if (three) a = i16x8.sub(a, off);
  return i32x4.dot_i16x8_s(a, sp);
}

// n (1..8) tokens' Q8A images at xa + k*stride; out[k*rows + r]. Rows as
// the matvec takes them (matvecLowSimd): lane k row i + k*q, then the last
// rows % 4 as one group.
function matmulLowFew(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32, three: bool): void {
  const nsb = <usize>cols >> 8;
  const rowBytes = nsb * lowBytes(three);
  const la = scratchBase() + LA;
  const q = rows >> 2;
  const qBytes = <usize>q * rowBytes;
  for (let i = 0; i < q; i++) {
    const p = w + <usize>i * rowBytes;
    matmulLow4(p, p + qBytes, p + 2 * qBytes, p + 3 * qBytes, nsb, xa, stride, n, three);
    for (let k = 0; k < n; k++) lowStore4(out + <usize>k * (<usize>rows << 2), i, q, v128.load(la + (<usize>k << 4)));
  }
  const r0 = q << 2;
  if (r0 < rows) {
    const p = w + <usize>r0 * rowBytes, last = w + <usize>(rows - 1) * rowBytes;
    matmulLow4(p, <usize>min(p + rowBytes, last), <usize>min(p + 2 * rowBytes, last), last, nsb, xa, stride, n, three);
    for (let k = 0; k < n; k++) storeRows(out + <usize>k * (<usize>rows << 2), r0, rows, v128.load(la + (<usize>k << 4)));
  }
}

// The four rows at p0..p3 against the n tokens: token k's sums to LA + 16k
// (rows in lanes). Per superblock the rows' scales are decoded and each
// block's values unpacked to quads once for the n tokens; per block and
// token the sub-blocks' quads dots (lowQuadsDot) and the fold.
function matmulLow4(p0: usize, p1: usize, p2: usize, p3: usize, nsb: usize, xa: usize, stride: usize, n: i32, three: bool): void {
  const nb = nsb << 3;
  const B = lowBytes(three);
  const ws = scratchBase();
  const u = ws + LW;
  const ls = ws + LS;
  const m3 = v128.load(VCONST + VC_B3), m4 = v128.load(VCONST + VC_B4);
  for (let k = 0; k < n; k++) v128.store(ws + LA + (<usize>k << 4), f32x4.splat(0));
  for (let sb: usize = 0; sb < nsb; sb++) {
    const d = halves4(p0, p1, p2, p3, lowD(three));
    const dm = three ? d : halves4(p0, p1, p2, p3, 82);
    lowScales4(ls, p0, p1, p2, p3, three);
    lowPairTable(ls, ls + LST, 0);
    // The eight blocks' unpacking written out, so that each one's shifts are constants.
    lowUnpackQuads(u, p0, p1, p2, p3, 0, m3, m4, three);
    lowUnpackQuads(u + 128, p0, p1, p2, p3, 1, m3, m4, three);
    lowUnpackQuads(u + 256, p0, p1, p2, p3, 2, m3, m4, three);
    lowUnpackQuads(u + 384, p0, p1, p2, p3, 3, m3, m4, three);
    lowUnpackQuads(u + 512, p0, p1, p2, p3, 4, m3, m4, three);
    lowUnpackQuads(u + 640, p0, p1, p2, p3, 5, m3, m4, three);
    lowUnpackQuads(u + 768, p0, p1, p2, p3, 6, m3, m4, three);
    lowUnpackQuads(u + 896, p0, p1, p2, p3, 7, m3, m4, three);
    lowPassTokens(ws, sb, nb, xa, stride, n, d, dm, three);
    p0 += B;
    p1 += B;
    p2 += B;
    p3 += B;
  }
}

// The n tokens' part of superblock sb (of nb activation blocks in all) of a
// 4-row group whose eight blocks are unpacked to quads at ws + LW and whose
// scale pairs are at ws + LS + LST (Q2_K: its min table at ws + LS + LMT):
// per block and token the sub-blocks' quads dots (lowQuadsDot) and the
// fold, into token k's accumulators at ws + LA + 16k. Shared by the pass on
// stored rows (matmulLow4) and on Q3KR (matmulQ3kr4).
@inline function lowPassTokens(ws: usize, sb: usize, nb: usize, xa: usize, stride: usize, n: i32, d: v128, dm: v128, three: bool): void {
  const x8 = q8aQ8Off(nb);
  const tb = nb << 5;
  const u = ws + LW, ls = ws + LS, lt = ws + LT;
  for (let b = 0; b < 8; b++) {
    const bg = (sb << 3) + <usize>b;
    const ub = u + (<usize>b << 7);
    // The rows' scale pairs of sub-blocks 2b and 2b + 1, each scale twice (one per int16 lane of its row).
    const sp = v128.load(ls + LST + (<usize>b << 4));
    const s0 = i16x8.shuffle(sp, sp, 0, 0, 2, 2, 4, 4, 6, 6), s1 = i16x8.shuffle(sp, sp, 1, 1, 3, 3, 5, 5, 7, 7);
    // Per token the pointers step (V8 would multiply for each).
    let xk = xa, at = lt + (bg << 5), pa = ws + LA;
    const paEnd = pa + (<usize>n << 4);
    for (; pa < paEnd; pa += 16) {
      const xq = xk + x8 + (bg << 5);
      const sd = f32x4.convert_i32x4_s(i32x4.add(
        lowQuadsDot(ub, xq, v128.load(at), s0, three),
        lowQuadsDot(ub + 64, xq + 16, v128.load(at, 16), s1, three)));
      const dx = v128.load32_splat(xk + (bg << 2));
      // Where the steps go changes V8's schedule: these places measured fastest for each type.
      if (three) {
        xk += stride;
        at += tb;
        v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(f32x4.mul(sd, d), dx)));
      } else {
        const sm = f32x4.convert_i32x4_s(lowMins(ls + LMT, b, v128.load(at)));
        v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(f32x4.sub(f32x4.mul(sd, d), f32x4.mul(sm, dm)), dx)));
        xk += stride;
        at += tb;
      }
    }
  }
}

// ---------------------------------------------------------------- Q3KR (Q3_K matrices, repacked)

// Q3_K layer matrices are repacked at load into Q3KR, which reads like Q4R:
// four rows side by side by quads, so a block's products land in row lanes
// with no 4-row reduction, and a block's values come from three loads for
// the four rows instead of four per row. Groups of 4 rows (the last
// zero-padded); group g starts at g*nsb*440 and holds per superblock 440
// bytes, the four rows' 4*110 (so in place, dst == src, works):
//   [0, 8)     d of rows 0..3 (f16)
//   [8, 56)    the rows' 12 packed scale bytes, row r at 8 + 12r (as stored)
//   [56, 440)  block b (0..7) at 56 + 48b: V0, V1, V2 of 16 bytes each
// Quad k of a block is its values 4k..4k+3 of the four rows (byte 4r + j:
// row r's value 4k + j, Q4R's arrangement); u_k = q + 4*high (0..7) its
// 3-bit values. Byte 4r + j of
//   V0 = u0 | u1 << 3 | (u6 & 3) << 6
//   V1 = u2 | u3 << 3 | (u7 & 3) << 6
//   V2 = u4 | u5 << 3 | (u6 >> 2) << 6 | (u7 >> 2) << 7
// so six quads are one mask (or a shift and a mask) of one vector, and the
// other two five operations: 19 for the block's eight, where the stored
// rows' split of the two low bits and the high bit took 37 in this
// arrangement. The bits of every product are those of the stored rows'
// (the same integers, the same fold).
// @ts-ignore: decorator
@inline const Q3KR_SB: usize = 440;

export function q3kr_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 8) * Q3KR_SB;
}

// GGUF Q3_K rows -> Q3KR (above); dst needs q3kr_bytes(rows, cols). Uses
// the scratch region (four rows of cols/256*110 bytes <= SCRATCH_BYTES).
export function repack_q3_k(src: usize, dst: usize, rows: i32, cols: i32): void {
  const nsb = <usize>cols >> 8;
  const rowBytes = nsb * 110;
  const groups = (rows + 3) >> 2;
  for (let g = 0; g < groups; g++) {
    const tmp = groupToScratch(src, rows, g, rowBytes);
    let o = dst + <usize>g * nsb * Q3KR_SB;
    for (let sb: usize = 0; sb < nsb; sb++) {
      for (let r: usize = 0; r < 4; r++) {
        const p = tmp + r * rowBytes + sb * 110;
        store<u16>(o + (r << 1), load<u16>(p + 108));
        memory.copy(o + 8 + r * 12, p + 96, 12);
        for (let b: usize = 0; b < 8; b++) {
          // Quad k's u, four rows' bytes in a word: value e of block b is bits 2(b & 3).. of value
          // byte 32(b >> 2) + e, with bit b of high-bit byte e on top.
          const q = p + 32 + ((b >> 2) << 5);
          const s = <u32>((b & 3) << 1);
          const u = tmp + rowBytes * 4; // eight words past the group's rows
          for (let k: usize = 0; k < 8; k++) {
            store<u32>(u + (k << 2), ((load<u32>(q + (k << 2)) >> s) & 0x03030303) | (((load<u32>(p + (k << 2)) >> <u32>b) & 0x01010101) << 2));
          }
          const u6 = load<u32>(u, 24), u7 = load<u32>(u, 28);
          const v = o + 56 + b * 48 + (r << 2);
          store<u32>(v, load<u32>(u) | (load<u32>(u, 4) << 3) | ((u6 & 0x03030303) << 6));
          store<u32>(v + 16, load<u32>(u, 8) | (load<u32>(u, 12) << 3) | ((u7 & 0x03030303) << 6));
          store<u32>(v + 32, load<u32>(u, 16) | (load<u32>(u, 20) << 3) | (((u6 >> 2) & 0x01010101) << 6) | (((u7 >> 2) & 0x01010101) << 7));
        }
      }
      o += Q3KR_SB;
    }
  }
}

// out[r] for rows x cols Q3KR at w against the Q8A at xa.
export function matvec_q3kr_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    // The offsets' table must fit (cols up to ~114,000); wider rows make them per block.
    if (<usize>cols <= LT_BYTES) matvecQ3krSimd(w, rows, cols, xa, out, true);
    else matvecQ3krSimd(w, rows, cols, xa, out, false);
  } else if (ASC_FEATURE_SIMD) {
    matvecQ3krSimd(w, rows, cols, xa, out, false);
  } else {
    matvecQ3krScalar(w, rows, cols, xa, out);
  }
}

// The scalar twin: the stored rows' arithmetic (matvecLowScalar) on Q3KR.
function matvecQ3krScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nsb = <usize>cols >> 8;
  const x8 = xa + q8aQ8Off(nsb << 3);
  for (let r0 = 0; r0 < rows; r0 += 4) {
    for (let r = 0; r < 4 && r0 + r < rows; r++) {
      let p = w + <usize>(r0 >> 2) * nsb * Q3KR_SB;
      let acc: f32 = 0;
      for (let sb: usize = 0; sb < nsb; sb++) {
        const d = h2f(load<u16>(p + (<usize>r << 1)));
        for (let b: usize = 0; b < 8; b++) {
          const v = p + 56 + b * 48 + (<usize>r << 2);
          const xb = x8 + (((sb << 3) + b) << 5);
          let sd: i32 = 0;
          for (let h: usize = 0; h < 2; h++) {
            let dot: i32 = 0, sx: i32 = 0;
            for (let e = h << 4; e < (h << 4) + 16; e++) {
              const u = q3krValue(v + (e & 3), <i32>(e >> 2));
              const x = <i32>load<i8>(xb + e);
              dot += u * x;
              sx += x;
            }
            sd += q3Scale(p + 8 + 12 * <usize>r, (b << 1) + h) * (dot - (sx << 2));
          }
          const dx = load<f32>(xa + (((sb << 3) + b) << 2));
          acc += <f32>sd * d * dx;
        }
        p += Q3KR_SB;
      }
      store<f32>(out + (<usize>(r0 + r) << 2), acc);
    }
  }
}

// u_k of the byte at v of a block's V0 (V1, V2 at + 16, + 32): the scalar twin's.
@inline function q3krValue(v: usize, k: i32): i32 {
  const v0 = <i32>load<u8>(v), v1 = <i32>load<u8>(v, 16), v2 = <i32>load<u8>(v, 32);
  if (k == 0) return v0 & 7;
  if (k == 1) return (v0 >> 3) & 7;
  if (k == 2) return v1 & 7;
  if (k == 3) return (v1 >> 3) & 7;
  if (k == 4) return v2 & 7;
  if (k == 5) return (v2 >> 3) & 7;
  if (k == 6) return (v0 >> 6) | ((v2 >> 4) & 4);
  return (v1 >> 6) | ((v2 >> 5) & 4);
}

// Quad k (0..7) of a block, its four rows' u as bytes, from the block's
// vectors x, y, z (V0, V1, V2; k a constant, so the branches fold away). A
// 16-bit shift carries no bit of one byte into the bits the masks keep.
@inline function q3krQuad(x: v128, y: v128, z: v128, k: i32, m3: v128, m4: v128, m7: v128): v128 {
  if (k == 0) return v128.and(x, m7);
  if (k == 1) return v128.and(i16x8.shr_u(x, 3), m7);
  if (k == 2) return v128.and(y, m7);
  if (k == 3) return v128.and(i16x8.shr_u(y, 3), m7);
  if (k == 4) return v128.and(z, m7);
  if (k == 5) return v128.and(i16x8.shr_u(z, 3), m7);
  if (k == 6) return v128.or(v128.and(i16x8.shr_u(x, 6), m3), v128.and(i16x8.shr_u(z, 4), m4));
  return v128.or(v128.and(i16x8.shr_u(y, 6), m3), v128.and(i16x8.shr_u(z, 5), m4));
}

// Block b's eight quads (Q3KR at v) to o + 16k: the few-token pass's scratch.
@inline function q3krUnpack(o: usize, v: usize, m3: v128, m4: v128, m7: v128): void {
  const x = v128.load(v), y = v128.load(v, 16), z = v128.load(v, 32);
  v128.store(o, q3krQuad(x, y, z, 0, m3, m4, m7));
  v128.store(o, q3krQuad(x, y, z, 1, m3, m4, m7), 16);
  v128.store(o, q3krQuad(x, y, z, 2, m3, m4, m7), 32);
  v128.store(o, q3krQuad(x, y, z, 3, m3, m4, m7), 48);
  v128.store(o, q3krQuad(x, y, z, 4, m3, m4, m7), 64);
  v128.store(o, q3krQuad(x, y, z, 5, m3, m4, m7), 80);
  v128.store(o, q3krQuad(x, y, z, 6, m3, m4, m7), 96);
  v128.store(o, q3krQuad(x, y, z, 7, m3, m4, m7), 112);
}

// The scales of a group's superblock at p to ls (lowScales' layout) and its
// blocks' scale pairs to ls + LST (lowPairTable).
@inline function q3krScales(ls: usize, p: usize): void {
  const m4 = v128.load(VCONST + VC_NIB8), b3 = v128.load(VCONST + VC_B3), b32 = v128.load(VCONST + VC_B32);
  lowScales(ls, p + 8, m4, b3, b32, true);
  lowScales(ls + 64, p + 20, m4, b3, b32, true);
  lowScales(ls + 128, p + 32, m4, b3, b32, true);
  lowScales(ls + 192, p + 44, m4, b3, b32, true);
  lowPairTable(ls, ls + LST, 0);
}

// Relaxed: one sub-block of one token, quads k0..k0 + 3 of the block (x, y,
// z) against the splatted activation quads at xq, added in int16
// (|.| <= 4*2*7*128), less the offsets off (lowActTable's), widened and
// scaled by the rows' scales sp: lowQuadsDot on quads in registers.
@inline function q3krHalfRelaxed(x: v128, y: v128, z: v128, k0: i32, xq: usize, off: v128, sp: v128, m3: v128, m4: v128, m7: v128): v128 {
  let s = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq), q3krQuad(x, y, z, k0, m3, m4, m7));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 4), q3krQuad(x, y, z, k0 + 1, m3, m4, m7)));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 8), q3krQuad(x, y, z, k0 + 2, m3, m4, m7)));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 12), q3krQuad(x, y, z, k0 + 3, m3, m4, m7)));
  return i32x4.dot_i16x8_s(i16x8.sub(s, off), sp);
}

// Plain SIMD: quad k's products as int32 row lanes. A quad's int16 lanes hold
// its bytes in pairs, so its u widened to int16 and made signed (u - 4) are
// the even bytes (values 4k, 4k + 2 of each row) and the odd ones (4k + 1,
// 4k + 3), dotted with the splatted int16 pairs of Q8A's permuted section
// that hold those activations: at xw + 4i for the even ones, xw + 16 + 4i for
// the odd ones (xw: the sub-block's section, i = k & 3).
@inline function q3krQuadSimd(u: v128, xw: usize, i: i32, lo: v128, four: v128): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.sub(v128.and(u, lo), four), v128.load32_splat(xw + (<usize>i << 2))),
    i32x4.dot_i16x8_s(i16x8.sub(i16x8.shr_u(u, 8), four), v128.load32_splat(xw + 16 + (<usize>i << 2))));
}

// Plain SIMD: one sub-block's four quads, times the rows' scales s (int32 lanes).
@inline function q3krHalfSimd(x: v128, y: v128, z: v128, k0: i32, xw: usize, s: v128, m3: v128, m4: v128, m7: v128): v128 {
  const lo = i16x8.splat(0xff), four = i16x8.splat(4);
  let acc = q3krQuadSimd(q3krQuad(x, y, z, k0, m3, m4, m7), xw, 0, lo, four);
  acc = i32x4.add(acc, q3krQuadSimd(q3krQuad(x, y, z, k0 + 1, m3, m4, m7), xw, 1, lo, four));
  acc = i32x4.add(acc, q3krQuadSimd(q3krQuad(x, y, z, k0 + 2, m3, m4, m7), xw, 2, lo, four));
  acc = i32x4.add(acc, q3krQuadSimd(q3krQuad(x, y, z, k0 + 3, m3, m4, m7), xw, 3, lo, four));
  return i32x4.mul(acc, s);
}

// Block b of a Q3KR superblock at p (its scale pairs at sp, lowPairTable's)
// against the token's activations: the four rows' sd in the int32 lanes.
// The first half's sum is stored to t before the second half's quads are
// made: V8 would otherwise schedule all sixteen dots' operands first and spill.
@inline function q3krBlock(p: usize, b: usize, xa: usize, bg: usize, nb: usize, lt: usize, sp: v128, m3: v128, m4: v128, m7: v128, t: usize, tabled: bool): v128 {
  const v = p + 56 + b * 48;
  const x = v128.load(v), y = v128.load(v, 16), z = v128.load(v, 32);
  if (ASC_FEATURE_RELAXED_SIMD) {
    const xq = xa + q8aQ8Off(nb) + (bg << 5);
    let offL: v128, offH: v128;
    if (tabled) {
      offL = v128.load(lt + (bg << 5));
      offH = v128.load(lt + (bg << 5), 16);
    } else {
      offL = i16x8.shl(quadPairs(i16x8.extadd_pairwise_i8x16_s(v128.load(xq))), 2);
      offH = i16x8.shl(quadPairs(i16x8.extadd_pairwise_i8x16_s(v128.load(xq, 16))), 2);
    }
    const s0 = q3krHalfRelaxed(x, y, z, 0, xq, offL, i16x8.shuffle(sp, sp, 0, 0, 2, 2, 4, 4, 6, 6), m3, m4, m7);
    v128.store(t, s0);
    return i32x4.add(s0, q3krHalfRelaxed(x, y, z, 4, xq + 16, offH, i16x8.shuffle(sp, sp, 1, 1, 3, 3, 5, 5, 7, 7), m3, m4, m7));
  }
  // sp's int32 lane r is row r's (s_2b, s_2b+1) as two int16.
  const xw = xa + q8aQ16Off(nb) + (bg << 6);
  const s0 = q3krHalfSimd(x, y, z, 0, xw, i32x4.shr_s(i32x4.shl(sp, 16), 16), m3, m4, m7);
  v128.store(t, s0);
  return i32x4.add(s0, q3krHalfSimd(x, y, z, 4, xw + 32, i32x4.shr_s(sp, 16), m3, m4, m7));
}

// acc + (f32(sd) * d) * d_x for block b of superblock sb: the stored rows' fold.
@inline function q3krFold(acc: v128, p: usize, b: usize, sb: usize, xa: usize, nb: usize, lt: usize, ls: usize, d: v128, m3: v128, m4: v128, m7: v128, t: usize, tabled: bool): v128 {
  const bg = (sb << 3) + b;
  const sd = q3krBlock(p, b, xa, bg, nb, lt, v128.load(ls + LST + (b << 4)), m3, m4, m7, t, tabled);
  return f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(sd), d), v128.load32_splat(xa + (bg << 2))));
}

// SIMD builds: a group's four rows in the lanes, its blocks' products
// against the token's Q8A. tabled (relaxed): Q3_K's offsets from a table
// made once per call (lowActTable at LT), else per block.
@inline function matvecQ3krSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize, tabled: bool): void {
  const nsb = <usize>cols >> 8, nb = nsb << 3;
  const t = scratchBase(), ls = t + LS, lt = t + LT;
  if (tabled) lowActTable(xa, nb, lt, true);
  const m3 = v128.load(VCONST + VC_B3), m4 = v128.load(VCONST + VC_B4), m7 = v128.load(VCONST + VC_B7);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    for (let sb: usize = 0; sb < nsb; sb++) {
      // d through scratch: V8 would otherwise convert it again in every pass of the block loop.
      v128.store(t, h2f_x4_nodenorm(p), 16);
      q3krScales(ls, p);
      for (let b: usize = 0; b < 8; b++) acc = q3krFold(acc, p, b, sb, xa, nb, lt, ls, v128.load(t, 16), m3, m4, m7, t, tabled);
      p += Q3KR_SB;
    }
    storeRows(out, r0, rows, acc);
  }
}

// out[t*rows + r] for ntok tokens (Q8B) against Q3KR at w: the stored rows'
// driver (matmulLow) with the pass on Q3KR.
export function matmul_q3kr_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulLow(w, rows, cols, xb, ntok, out, true, true);
}

// The few-token pass on Q3KR, a group at a time (matmulQ3kr4).
function matmulQ3krFew(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32): void {
  const nsb = <usize>cols >> 8;
  const la = scratchBase() + LA;
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    matmulQ3kr4(p, nsb, xa, stride, n);
    for (let k = 0; k < n; k++) storeRows(out + <usize>k * (<usize>rows << 2), r0, rows, v128.load(la + (<usize>k << 4)));
    p += nsb * Q3KR_SB;
  }
}

// The group at p against the n tokens: token k's sums to LA + 16k (rows in
// lanes). Per superblock the scales are decoded and the eight blocks
// unpacked to quads once (q3krUnpack: the layout of lowUnpackQuads), then
// the stored rows' token loop (lowPassTokens).
function matmulQ3kr4(p: usize, nsb: usize, xa: usize, stride: usize, n: i32): void {
  const ws = scratchBase(), u = ws + LW, ls = ws + LS;
  for (let k = 0; k < n; k++) v128.store(ws + LA + (<usize>k << 4), f32x4.splat(0));
  for (let sb: usize = 0; sb < nsb; sb++) {
    // d through scratch, as in the matvec; the masks loaded here, not kept in registers over the token loop.
    v128.store(ws, h2f_x4_nodenorm(p), 32);
    q3krScales(ls, p);
    const m3 = v128.load(VCONST + VC_B3), m4 = v128.load(VCONST + VC_B4), m7 = v128.load(VCONST + VC_B7);
    for (let b: usize = 0; b < 8; b++) q3krUnpack(u + (b << 7), p + 56 + b * 48, m3, m4, m7);
    const d = v128.load(ws, 32);
    lowPassTokens(ws, sb, nsb << 3, xa, stride, n, d, d, true);
    p += Q3KR_SB;
  }
}

// ---------------------------------------------------------------- dequantize (embedding rows)

// n values (a multiple of 256) of GGUF Q2_K / Q3_K at src -> f32 at dst:
// Q2_K (d*sc)*q - dmin*m (each product exact in f32, one rounding), Q3_K
// (d*s)*(u - 4) (exact).
export function dequant_q2_k(src: usize, dst: usize, n: i32): void {
  dequantLow(src, dst, n, false);
}

export function dequant_q3_k(src: usize, dst: usize, n: i32): void {
  dequantLow(src, dst, n, true);
}

function dequantLow(src: usize, dst: usize, n: i32, three: bool): void {
  const nsb = <usize>n >> 8;
  const B = lowBytes(three);
  for (let sb: usize = 0; sb < nsb; sb++) {
    const p = src + sb * B;
    const d = h2f(load<u16>(p + lowD(three)));
    const dm = three ? <f32>0 : h2f(load<u16>(p + 82));
    for (let b: usize = 0; b < 8; b++) {
      const q = p + lowQs(three) + ((b >> 2) << 5);
      const shift = <i32>((b & 3) << 1);
      for (let h: usize = 0; h < 2; h++) {
        const i = (b << 1) + h;
        let ds: f32, mm: f32 = 0;
        if (three) {
          ds = d * <f32>q3Scale(p + 96, i);
        } else {
          const s = <i32>load<u8>(p + i);
          ds = d * <f32>(s & 15);
          mm = dm * <f32>(s >> 4);
        }
        for (let e = h << 4; e < (h << 4) + 16; e++) {
          let u = (<i32>load<u8>(q + e) >> shift) & 3;
          const o = dst + (((sb << 8) + (b << 5) + e) << 2);
          if (three) {
            u |= ((<i32>load<u8>(p + e) >> <i32>b) & 1) << 2;
            store<f32>(o, ds * <f32>(u - 4));
          } else {
            store<f32>(o, ds * <f32>u - mm);
          }
        }
      }
    }
  }
}
