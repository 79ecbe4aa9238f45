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

import { FUSED, scratchBase, h2f, h2fLanes_nodenorm, q8aQ8Off, q8aQ16Off, VCONST, VC_NIB8, VC_B3, VC_B4, VC_B32 } from "./common";
import { reduce4, storeRows, q8bToQ8a, quadsToQ8a, SMALL_X, MV_X, smallStride, smallMost } from "./quant";

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

// The sub-block scales (Q2_K: and mins) of the superblock at p, decoded once
// for its eight blocks into o as int16 (the layout of LS), in vector
// operations: per block the kernels then load a scale where they decoded it
// with ~7 scalar operations (Q3_K's six bits from two bytes, Q2_K's nibbles
// from a u16) and splatted it. Q3_K's scale i is its low nibble (byte i, or
// the high nibble of byte i - 8) with bits 2(i >> 2)..+1 of byte 8 + (i & 3)
// on top, less 32: the four high-bit bytes shifted by 0, 2, 4, 6 in the four
// int32 lanes put exactly those bits at the bottom of byte lane i.
@inline function lowScales(o: usize, p: usize, m4: v128, b3: v128, b32: v128, three: bool): void {
  if (three) {
    const v = v128.load64_zero(p + 96);
    const low = i8x16.shuffle(v128.and(v, m4), v128.and(i16x8.shr_u(v, 4), m4), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const hb = load<u32>(p + 104);
    let h = i32x4.replace_lane(i32x4.splat(hb), 1, hb >> 2);
    h = i32x4.replace_lane(i32x4.replace_lane(h, 2, hb >> 4), 3, hb >> 6);
    const s = i8x16.sub(v128.or(low, i8x16.shl(v128.and(h, b3), 4)), b32);
    v128.store(o, i16x8.extend_low_i8x16_s(s));
    v128.store(o, i16x8.extend_high_i8x16_s(s), 16);
    return;
  }
  const v = v128.load(p);
  const sc = v128.and(v, m4), mn = v128.and(i16x8.shr_u(v, 4), m4);
  v128.store(o, i16x8.extend_low_i8x16_u(sc));
  v128.store(o, i16x8.extend_high_i8x16_u(sc), 16);
  v128.store(o, i16x8.extend_low_i8x16_u(mn), 32);
  v128.store(o, i16x8.extend_high_i8x16_u(mn), 48);
}

// The four rows' scales of the superblocks at p0..p3 to ls (Q2_K: and the
// min table). The constants are loaded here, once per superblock, not
// rematerialized for every row (VCONST).
@inline function lowScales4(ls: usize, p0: usize, p1: usize, p2: usize, p3: usize, three: bool): void {
  const m4 = v128.load(VCONST + VC_NIB8), b3 = v128.load(VCONST + VC_B3), b32 = v128.load(VCONST + VC_B32);
  lowScales(ls, p0, m4, b3, b32, three);
  lowScales(ls + 64, p1, m4, b3, b32, three);
  lowScales(ls + 128, p2, m4, b3, b32, three);
  lowScales(ls + 192, p3, m4, b3, b32, three);
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
  matmulLow(w, rows, cols, xb, ntok, out, false);
}

export function matmul_q3_k_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulLow(w, rows, cols, xb, ntok, out, true);
}

function matmulLow(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize, three: bool): void {
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
      matmulLowFew(w, rows, cols, xa, stride, out + <usize>t * (<usize>rows << 2), n, three);
    }
    return;
  }
  for (let t = 0; t < ntok; t++) {
    if (FUSED) quadsToQ8a(xb, nb, t, xa);
    else q8bToQ8a(xb, nb, t, xa);
    const o = out + <usize>t * (<usize>rows << 2);
    if (ASC_FEATURE_SIMD) matvecLowSimd(w, rows, cols, xa, o, three);
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
  const x8 = q8aQ8Off(nb);
  const B = lowBytes(three);
  const ws = scratchBase();
  const u = ws + LW;
  const ls = ws + LS;
  const lt = ws + LT;
  const tb = nb << 5;
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
    for (let b = 0; b < 8; b++) {
      const bg = (sb << 3) + <usize>b;
      const ub = u + (<usize>b << 7);
      // The rows' scale pairs of sub-blocks 2b and 2b + 1, each scale twice (one per int16 lane of its row).
      const sp = v128.load(ls + LST + (<usize>b << 4));
      const s0 = i16x8.shuffle(sp, sp, 0, 0, 2, 2, 4, 4, 6, 6), s1 = i16x8.shuffle(sp, sp, 1, 1, 3, 3, 5, 5, 7, 7);
      for (let k = 0; k < n; k++) {
        const xk = xa + <usize>k * stride;
        const xq = xk + x8 + (bg << 5);
        const at = lt + <usize>k * tb + (bg << 5);
        const sd = f32x4.convert_i32x4_s(i32x4.add(
          lowQuadsDot(ub, xq, v128.load(at), s0, three),
          lowQuadsDot(ub + 64, xq + 16, v128.load(at, 16), s1, three)));
        const dx = v128.load32_splat(xk + (bg << 2));
        const pa = ws + LA + (<usize>k << 4);
        if (three) {
          v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(f32x4.mul(sd, d), dx)));
        } else {
          const sm = f32x4.convert_i32x4_s(lowMins(ls + LMT, b, v128.load(at)));
          v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(f32x4.sub(f32x4.mul(sd, d), f32x4.mul(sm, dm)), dx)));
        }
      }
    }
    p0 += B;
    p1 += B;
    p2 += B;
    p3 += B;
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
