// The low-bit K-quants Q2_K and Q3_K: their layer matrices repacked at load
// (Q2KR, Q3KR), matrix-vector (decode) and matrix-matrix (prefill) products
// on them against Q8A / Q8B activations, and dequantization of rows as
// stored (the embedding, read a row at a time).
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
//
// The repacked layouts read like Q4R: four rows side by side by quads, so a
// block's products land in row lanes with no 4-row reduction, and a block's
// values for the four rows are two (Q2KR) or three (Q3KR) loads. Groups of
// 4 rows (the last zero-padded); group g starts at g*nsb*SB and holds per
// superblock SB bytes, the four rows' bytes of the file (so dst == src, in
// place, works; SB = 336, 440):
//   Q2KR  [0, 8) d of rows 0..3 (f16), [8, 16) their dmin,
//         [16, 80) their 16 scale bytes, row r at 16 + 16r (as stored),
//         [80, 336) block b (0..7) at 80 + 32b: V0, V1
//   Q3KR  [0, 8) d of rows 0..3, [8, 56) their 12 packed scale bytes, row r
//         at 8 + 12r (as stored), [56, 440) block b at 56 + 48b: V0, V1, V2
// Quad k of a block is its values 4k..4k+3 of the four rows (byte 4r + j:
// row r's value 4k + j); q_k / u_k its values. Byte 4r + j of
//   Q2KR  V0 = q0 | q1 << 2 | q2 << 4 | q3 << 6,  V1 the same of q4..q7
//   Q3KR  V0 = u0 | u1 << 3 | (u6 & 3) << 6
//         V1 = u2 | u3 << 3 | (u7 & 3) << 6
//         V2 = u4 | u5 << 3 | (u6 >> 2) << 6 | (u7 >> 2) << 7
// so a Q2KR quad is a shift and a mask of one vector, and six Q3KR quads are
// (the other two five operations: 19 for eight, where the file's split of
// the two low bits and the high bit takes 37 in this arrangement).

import { FUSED, scratchBase, h2f, h2f_x4_nodenorm, q8aQ8Off, q8aQ16Off, VCONST, VC_NIB8, VC_B3, VC_B4, VC_B7, VC_B32 } from "./common";
import { storeRows, storeFew, groupToScratch, q8bToQ8a, quadsToQ8a, SMALL_X, MV_X, smallStride, smallMost } from "./quant";

// ---------------------------------------------------------------- the file's blocks

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

// ---------------------------------------------------------------- the repacked layouts

// Bytes of a 4-row group's superblock; where its rows' scale bytes start
// (after d, and Q2_K's dmin at 8) and each row's share of them; where its
// blocks start, and their bytes.
@inline function lowSB(three: bool): usize {
  return three ? 440 : 336;
}
@inline function lowSc(three: bool): usize {
  return three ? 8 : 16;
}
@inline function lowScRow(three: bool): usize {
  return three ? 12 : 16;
}
@inline function lowV(three: bool): usize {
  return three ? 56 : 80;
}
@inline function lowVB(three: bool): usize {
  return three ? 48 : 32;
}

export function q2kr_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 8) * lowSB(false);
}

export function q3kr_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 8) * lowSB(true);
}

// GGUF Q2_K / Q3_K rows -> Q2KR / Q3KR (above); dst needs q2kr_bytes /
// q3kr_bytes(rows, cols). Uses the scratch region (four rows of cols/256
// blocks <= SCRATCH_BYTES).
export function repack_q2_k(src: usize, dst: usize, rows: i32, cols: i32): void {
  repackLow(src, dst, rows, cols, false);
}

export function repack_q3_k(src: usize, dst: usize, rows: i32, cols: i32): void {
  repackLow(src, dst, rows, cols, true);
}

function repackLow(src: usize, dst: usize, rows: i32, cols: i32, three: bool): void {
  const nsb = <usize>cols >> 8;
  const B = lowBytes(three);
  const rowBytes = nsb * B;
  const groups = (rows + 3) >> 2;
  for (let g = 0; g < groups; g++) {
    const tmp = groupToScratch(src, rows, g, rowBytes);
    const u = tmp + rowBytes * 4; // a block's eight quads of a row as words, past the group's rows
    let o = dst + <usize>g * nsb * lowSB(three);
    for (let sb: usize = 0; sb < nsb; sb++) {
      for (let r: usize = 0; r < 4; r++) {
        const p = tmp + r * rowBytes + sb * B;
        store<u16>(o + (r << 1), load<u16>(p + lowD(three)));
        if (!three) store<u16>(o + 8 + (r << 1), load<u16>(p + 82));
        memory.copy(o + lowSc(three) + r * lowScRow(three), p + (three ? 96 : 0), lowScRow(three));
        for (let b: usize = 0; b < 8; b++) {
          // Quad k's values, the four bytes of a word: value e of block b is bits 2(b & 3).. of
          // value byte 32(b >> 2) + e (Q3_K: with bit b of high-bit byte e on top).
          const q = p + lowQs(three) + ((b >> 2) << 5);
          const s = <u32>((b & 3) << 1);
          for (let k: usize = 0; k < 8; k++) {
            let w = (load<u32>(q + (k << 2)) >> s) & 0x03030303;
            if (three) w |= ((load<u32>(p + (k << 2)) >> <u32>b) & 0x01010101) << 2;
            store<u32>(u + (k << 2), w);
          }
          const v = o + lowV(three) + b * lowVB(three) + (r << 2);
          if (three) {
            const u6 = load<u32>(u, 24), u7 = load<u32>(u, 28);
            store<u32>(v, load<u32>(u) | (load<u32>(u, 4) << 3) | ((u6 & 0x03030303) << 6));
            store<u32>(v + 16, load<u32>(u, 8) | (load<u32>(u, 12) << 3) | ((u7 & 0x03030303) << 6));
            store<u32>(v + 32, load<u32>(u, 16) | (load<u32>(u, 20) << 3) | (((u6 >> 2) & 0x01010101) << 6) | (((u7 >> 2) & 0x01010101) << 7));
          } else {
            store<u32>(v, load<u32>(u) | (load<u32>(u, 4) << 2) | (load<u32>(u, 8) << 4) | (load<u32>(u, 12) << 6));
            store<u32>(v + 16, load<u32>(u, 16) | (load<u32>(u, 20) << 2) | (load<u32>(u, 24) << 4) | (load<u32>(u, 28) << 6));
          }
        }
      }
      o += lowSB(three);
    }
  }
}

// Value k (quad k) of the byte at v of a block's V0 (V1, V2 at + 16, + 32):
// the scalar twin's q (Q2KR) or u (Q3KR).
@inline function lowValue(v: usize, k: i32, three: bool): i32 {
  if (!three) return (<i32>load<u8>(v + (k < 4 ? 0 : 16)) >> ((k & 3) << 1)) & 3;
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

// Quad k (0..7) of a block, its four rows' values as bytes, from the
// block's vectors x, y, z (V0, V1, V2; k a constant, so the branches fold
// away). A 16-bit shift carries no bit of one byte into the bits the masks
// keep. m3, m4, m7: bytes 3, 4, 7 (loaded once per call: VCONST).
@inline function lowQuad(x: v128, y: v128, z: v128, k: i32, m3: v128, m4: v128, m7: v128, three: bool): v128 {
  if (!three) {
    const v = k < 4 ? x : y;
    return (k & 3) == 0 ? v128.and(v, m3) : v128.and(i16x8.shr_u(v, (k & 3) << 1), m3);
  }
  if (k == 0) return v128.and(x, m7);
  if (k == 1) return v128.and(i16x8.shr_u(x, 3), m7);
  if (k == 2) return v128.and(y, m7);
  if (k == 3) return v128.and(i16x8.shr_u(y, 3), m7);
  if (k == 4) return v128.and(z, m7);
  if (k == 5) return v128.and(i16x8.shr_u(z, 3), m7);
  if (k == 6) return v128.or(v128.and(i16x8.shr_u(x, 6), m3), v128.and(i16x8.shr_u(z, 4), m4));
  return v128.or(v128.and(i16x8.shr_u(y, 6), m3), v128.and(i16x8.shr_u(z, 5), m4));
}

// ---------------------------------------------------------------- scales

// Where a 4-row group's decoded scales live in scratch (both products):
// row k's 16 sub-block scales as int16 at LS + 64k, Q2_K's 16 mins at
// LS + 64k + 32.
// @ts-ignore: decorator
@inline const LS: usize = 256;

// The sub-block scales (Q2_K: and mins) of a row's superblock, from its
// scale bytes at sc (Q2_K: 16 bytes; Q3_K: its 12 packed bytes), decoded
// once for its eight blocks into o as int16 (the layout of LS), in vector
// operations. Q3_K's scale i is its low nibble (byte i, or the high nibble of
// byte i - 8) with bits 2(i >> 2)..+1 of byte 8 + (i & 3) on top, less 32:
// the four high-bit bytes shifted by 0, 2, 4, 6 in the four int32 lanes put
// exactly those bits at the bottom of byte lane i. nib: bytes 0x0f.
@inline function lowScales(o: usize, sc: usize, nib: v128, b3: v128, b32: v128, three: bool): void {
  if (three) {
    const v = v128.load64_zero(sc);
    const low = i8x16.shuffle(v128.and(v, nib), v128.and(i16x8.shr_u(v, 4), nib), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const hb = load<u32>(sc + 8);
    let h = i32x4.replace_lane(i32x4.splat(hb), 1, hb >> 2);
    h = i32x4.replace_lane(i32x4.replace_lane(h, 2, hb >> 4), 3, hb >> 6);
    const s = i8x16.sub(v128.or(low, i8x16.shl(v128.and(h, b3), 4)), b32);
    v128.store(o, i16x8.extend_low_i8x16_s(s));
    v128.store(o, i16x8.extend_high_i8x16_s(s), 16);
    return;
  }
  const v = v128.load(sc);
  const s = v128.and(v, nib), mn = v128.and(i16x8.shr_u(v, 4), nib);
  v128.store(o, i16x8.extend_low_i8x16_u(s));
  v128.store(o, i16x8.extend_high_i8x16_u(s), 16);
  v128.store(o, i16x8.extend_low_i8x16_u(mn), 32);
  v128.store(o, i16x8.extend_high_i8x16_u(mn), 48);
}

// Q2_K's min term, sm = sum_h m_h * sx_h per row, for the four rows at once:
// per block b the rows' min pairs (m_2b, m_2b+1) side by side as int16 at
// LS + LMT + 16b (lowPairTable), and one dot_i16x8_s with the sub-blocks'
// activation sums (sx_0, sx_1) in every lane pair gives each row's sm in
// its int32 lane.
// @ts-ignore: decorator
@inline const LMT: usize = 256;
// At LS + LST + 16b, block b's scale pairs of the four rows (lowPairTable).
// @ts-ignore: decorator
@inline const LST: usize = 384;

// The scales (Q2_K: and mins) of a group's superblock at p to LS, and the
// tables of pairs by block (scales at LS + LST; Q2_K's mins at LS + LMT).
@inline function lowGroupScales(ls: usize, p: usize, three: bool): void {
  const nib = v128.load(VCONST + VC_NIB8), b3 = v128.load(VCONST + VC_B3), b32 = v128.load(VCONST + VC_B32);
  const sc = p + lowSc(three), step = lowScRow(three);
  lowScales(ls, sc, nib, b3, b32, three);
  lowScales(ls + 64, sc + step, nib, b3, b32, three);
  lowScales(ls + 128, sc + 2 * step, nib, b3, b32, three);
  lowScales(ls + 192, sc + 3 * step, nib, b3, b32, three);
  lowPairTable(ls, ls + LST, 0);
  if (!three) lowPairTable(ls, ls + LMT, 32);
}

// The four rows' int16 values at ls + at (16 per row, rows 64 bytes apart:
// their scales at 0, Q2_K's mins at 32) as pairs by block: at o + 16b the
// four rows' pairs (2b, 2b + 1) side by side.
@inline function lowPairTable(ls: usize, o: usize, at: usize): void {
  lowQuadsT(o, v128.load(ls + at), v128.load(ls + 64 + at), v128.load(ls + 128 + at), v128.load(ls + 192 + at));
  lowQuadsT(o + 64, v128.load(ls + at, 16), v128.load(ls + 64 + at, 16), v128.load(ls + 128 + at, 16), v128.load(ls + 192 + at, 16));
}

// Four vectors' int32 lanes transposed to o: vector j at o + 16j holds lane
// j of a, b, c, d.
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
@inline function lowMins(mt: usize, b: usize, s: v128): v128 {
  return i32x4.dot_i16x8_s(v128.load(mt + (b << 4)), s);
}

// (sx_0, sx_1) in every lane pair, from the sub-blocks' pair sums pl, ph (|sx| <= 16*128: int16).
@inline function subSums(pl: v128, ph: v128): v128 {
  let s = i16x8.add(i16x8.shuffle(pl, ph, 0, 8, 1, 9, 2, 10, 3, 11), i16x8.shuffle(pl, ph, 4, 12, 5, 13, 6, 14, 7, 15));
  s = i16x8.add(s, i16x8.shuffle(s, s, 4, 5, 6, 7, 0, 1, 2, 3));
  return i16x8.add(s, i16x8.shuffle(s, s, 2, 3, 0, 1, 6, 7, 4, 5));
}

// [E, O] in every lane pair: E the sum of p's even lanes, O of its odd ones.
@inline function quadPairs(p: v128): v128 {
  const v = i16x8.add(p, i16x8.shuffle(p, p, 4, 5, 6, 7, 0, 1, 2, 3));
  return i16x8.add(v, i16x8.shuffle(v, v, 2, 3, 0, 1, 6, 7, 4, 5));
}

// What the 32 activations at xq bring to every row group, 32 bytes at o.
// Q3_K: its two sub-blocks' offsets as the quads' int16 lanes see them,
// times 4 (even lanes sum x[4k] + x[4k+1], odd lanes x[4k+2] + x[4k+3], over
// the sub-block's four quads; |.| <= 4*8*128), or with the fused dot 4*sx_h
// in every int32 lane. Q2_K: the sub-blocks' sums in every lane pair
// (subSums).
@inline function lowActBlock(o: usize, xq: usize, three: bool): void {
  const pl = i16x8.extadd_pairwise_i8x16_s(v128.load(xq));
  const ph = i16x8.extadd_pairwise_i8x16_s(v128.load(xq, 16));
  if (three && FUSED) {
    // The fused dots sum each row's 16 products in int32: the offsets 4*sx_h as int32 in every lane.
    const ss = subSums(pl, ph);
    v128.store(o, i32x4.shl(i32x4.shr_s(i32x4.shl(ss, 16), 16), 2));
    v128.store(o, i32x4.shl(i32x4.shr_s(ss, 16), 2), 16);
  } else if (three) {
    v128.store(o, i16x8.shl(quadPairs(pl), 2));
    v128.store(o, i16x8.shl(quadPairs(ph), 2), 16);
  } else {
    v128.store(o, subSums(pl, ph));
  }
}

// lowActBlock for every block of the Q8A at xa, at t + 32b: made once per
// token and call, not per row group.
function lowActTable(xa: usize, nb: usize, t: usize, three: bool): void {
  const x8 = xa + q8aQ8Off(nb);
  for (let b: usize = 0; b < nb; b++) lowActBlock(t + (b << 5), x8 + (b << 5), three);
}

// Scratch of both products (T its start): at T the ordering stores; at T +
// LD (+ 16: Q2_K's dmin) the group's superblock d as f32 (V8 would convert
// it again in every block otherwise); at T + LT, per token and activation
// block, lowActBlock's 32 bytes; at T + LX, a block's lowActBlock when the
// table would not fit.
// @ts-ignore: decorator
@inline const LD: usize = 16;
// @ts-ignore: decorator
@inline const LX: usize = 64;
// @ts-ignore: decorator
@inline const LT: usize = MV_X;
// @ts-ignore: decorator
@inline const LT_BYTES: usize = SMALL_X - LT;

// The group's superblock d (Q2_K: and dmin) at p to t + LD.
@inline function lowGroupD(t: usize, p: usize, three: bool): void {
  v128.store(t + LD, h2f_x4_nodenorm(p));
  if (!three) v128.store(t + LD, h2f_x4_nodenorm(p + 8), 16);
}

// acc + the fold of block b's sd (Q2_K: and sm = its min dot with the
// activations' sums s) with the group's d (Q2_K: and dmin dm) and d_x.
@inline function lowFold(acc: v128, sd: v128, d: v128, dm: v128, mt: usize, b: usize, s: v128, dx: v128, three: bool): v128 {
  const fd = f32x4.convert_i32x4_s(sd);
  if (three) return f32x4.add(acc, f32x4.mul(f32x4.mul(fd, d), dx));
  const fm = f32x4.convert_i32x4_s(lowMins(mt, b, s));
  return f32x4.add(acc, f32x4.mul(f32x4.sub(f32x4.mul(fd, d), f32x4.mul(fm, dm)), dx));
}

// ---------------------------------------------------------------- matvec (Q8A)

// out[r] for rows x cols Q2KR / Q3KR at w against the Q8A at xa.
export function matvec_q2kr_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  matvecLow(w, rows, cols, xa, out, false);
}

export function matvec_q3kr_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  matvecLow(w, rows, cols, xa, out, true);
}

@inline function matvecLow(w: usize, rows: i32, cols: i32, xa: usize, out: usize, three: bool): void {
  if (ASC_FEATURE_SIMD) matvecLowSimd(w, rows, cols, xa, out, three);
  else matvecLowScalar(w, rows, cols, xa, out, three);
}

// The scalar twin: per row, block and sub-block the integer sums and the fold above.
function matvecLowScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize, three: bool): void {
  const nsb = <usize>cols >> 8;
  const x8 = xa + q8aQ8Off(nsb << 3);
  for (let r0 = 0; r0 < rows; r0 += 4) {
    for (let r = 0; r < 4 && r0 + r < rows; r++) {
      let p = w + <usize>(r0 >> 2) * nsb * lowSB(three);
      let acc: f32 = 0;
      for (let sb: usize = 0; sb < nsb; sb++) {
        const d = h2f(load<u16>(p + (<usize>r << 1)));
        const dm = three ? <f32>0 : h2f(load<u16>(p + 8 + (<usize>r << 1)));
        for (let b: usize = 0; b < 8; b++) {
          const v = p + lowV(three) + b * lowVB(three) + (<usize>r << 2);
          const xb = x8 + (((sb << 3) + b) << 5);
          let sd: i32 = 0, sm: i32 = 0;
          for (let h: usize = 0; h < 2; h++) {
            let dot: i32 = 0, sx: i32 = 0;
            for (let e = h << 4; e < (h << 4) + 16; e++) {
              const x = <i32>load<i8>(xb + e);
              dot += lowValue(v + (e & 3), <i32>(e >> 2), three) * x;
              sx += x;
            }
            const i = (b << 1) + h;
            const sc = p + lowSc(three) + <usize>r * lowScRow(three);
            if (three) {
              sd += q3Scale(sc, i) * (dot - (sx << 2));
            } else {
              const s = <i32>load<u8>(sc + i);
              sd += (s & 15) * dot;
              sm += (s >> 4) * sx;
            }
          }
          const dx = load<f32>(xa + (((sb << 3) + b) << 2));
          if (three) acc += <f32>sd * d * dx;
          else acc += (<f32>sd * d - <f32>sm * dm) * dx;
        }
        p += lowSB(three);
      }
      store<f32>(out + (<usize>(r0 + r) << 2), acc);
    }
  }
}

// Relaxed builds: one sub-block of one token, its four quads qa..qd against
// the splatted activation quads at xq, each row's integer in its int32
// lane. Two-step dot: added in int16 (|.| <= 4*2*7*128), less Q3_K's offsets
// off (int16 lanes), widened and scaled by the rows' scales sc (lane pair r:
// row r's scale twice) in one dot_i16x8_s. Fused dot (workerd): each row's
// sum straight into its int32 lane in two chains (so that the dots' latency
// overlaps), less off (int32), times sc (int32 lane r: row r's scale).
@inline function lowHalfDot(qa: v128, qb: v128, qc: v128, qd: v128, xq: usize, off: v128, sc: v128, three: bool): v128 {
  if (FUSED) {
    // One checked load and four splats in registers, not four checked splat loads (workerd checks the bounds of every load).
    const z = i32x4.splat(0), x = v128.load(xq);
    let a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(x, x, 0, 0, 0, 0), qa, z);
    let b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(x, x, 1, 1, 1, 1), qb, z);
    a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(x, x, 2, 2, 2, 2), qc, a);
    b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(x, x, 3, 3, 3, 3), qd, b);
    let s = i32x4.add(a, b);
    if (three) s = i32x4.sub(s, off);
    return i32x4.mul(s, sc);
  }
  let s = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq), qa);
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 4), qb));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 8), qc));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 12), qd));
  if (three) s = i16x8.sub(s, off);
  return i32x4.dot_i16x8_s(s, sc);
}

// The rows' scales of sub-block 2b + h from the block's scale pairs sp
// (lowPairTable, whose int32 lane r is row r's (s_2b, s_2b+1) as two
// int16), as the products take them: int32 lanes for the fused dot and the
// plain SIMD build, each scale twice in its row's int16 lane pair for the
// two-step dot's widening.
@inline function lowScaleOf(sp: v128, h: i32): v128 {
  if (FUSED || !ASC_FEATURE_RELAXED_SIMD) return h == 0 ? i32x4.shr_s(i32x4.shl(sp, 16), 16) : i32x4.shr_s(sp, 16);
  return h == 0 ? i16x8.shuffle(sp, sp, 0, 0, 2, 2, 4, 4, 6, 6) : i16x8.shuffle(sp, sp, 1, 1, 3, 3, 5, 5, 7, 7);
}

// Plain SIMD: quad k's products as int32 row lanes. A quad's int16 lanes hold
// its bytes in pairs, so its values widened to int16 (Q3_K's made signed, u
// - 4) are the even bytes (values 4k, 4k + 2 of each row) and the odd ones
// (4k + 1, 4k + 3), dotted with the splatted int16 pairs of Q8A's permuted
// section that hold those activations: at xw + 4i for the even ones, xw + 16
// + 4i for the odd ones (xw: the sub-block's section, i = k & 3).
@inline function lowQuadSimd(u: v128, xw: usize, i: i32, lo: v128, four: v128, three: bool): v128 {
  let e = v128.and(u, lo), o = i16x8.shr_u(u, 8);
  if (three) {
    e = i16x8.sub(e, four);
    o = i16x8.sub(o, four);
  }
  return i32x4.add(
    i32x4.dot_i16x8_s(e, v128.load32_splat(xw + (<usize>i << 2))),
    i32x4.dot_i16x8_s(o, v128.load32_splat(xw + 16 + (<usize>i << 2))));
}

// Plain SIMD: one sub-block's four quads, times the rows' scales s (int32 lanes).
@inline function lowHalfSimd(x: v128, y: v128, z: v128, k0: i32, xw: usize, s: v128, m3: v128, m4: v128, m7: v128, three: bool): v128 {
  const lo = i16x8.splat(0xff), four = i16x8.splat(4);
  let acc = lowQuadSimd(lowQuad(x, y, z, k0, m3, m4, m7, three), xw, 0, lo, four, three);
  acc = i32x4.add(acc, lowQuadSimd(lowQuad(x, y, z, k0 + 1, m3, m4, m7, three), xw, 1, lo, four, three));
  acc = i32x4.add(acc, lowQuadSimd(lowQuad(x, y, z, k0 + 2, m3, m4, m7, three), xw, 2, lo, four, three));
  acc = i32x4.add(acc, lowQuadSimd(lowQuad(x, y, z, k0 + 3, m3, m4, m7, three), xw, 3, lo, four, three));
  return i32x4.mul(acc, s);
}

// Block b of a group's superblock at p against the token's activations,
// folded into acc. ls: the group's decoded scales (LS); ab: the block's
// lowActBlock. The first half's sum is stored to t before the second half's
// quads are made: V8 would otherwise schedule all sixteen dots' operands
// first and spill.
@inline function lowBlock(acc: v128, p: usize, b: usize, xa: usize, bg: usize, nb: usize, ab: usize, ls: usize, m3: v128, m4: v128, m7: v128, t: usize, three: bool): v128 {
  const v = p + lowV(three) + b * lowVB(three);
  const x = v128.load(v), y = v128.load(v, 16), z = three ? v128.load(v, 32) : x;
  const sp = v128.load(ls + LST + (b << 4));
  let sd: v128;
  if (ASC_FEATURE_RELAXED_SIMD) {
    const xq = xa + q8aQ8Off(nb) + (bg << 5);
    const s0 = lowHalfDot(lowQuad(x, y, z, 0, m3, m4, m7, three), lowQuad(x, y, z, 1, m3, m4, m7, three),
      lowQuad(x, y, z, 2, m3, m4, m7, three), lowQuad(x, y, z, 3, m3, m4, m7, three),
      xq, three ? v128.load(ab) : sp, lowScaleOf(sp, 0), three);
    v128.store(t, s0);
    sd = i32x4.add(s0, lowHalfDot(lowQuad(x, y, z, 4, m3, m4, m7, three), lowQuad(x, y, z, 5, m3, m4, m7, three),
      lowQuad(x, y, z, 6, m3, m4, m7, three), lowQuad(x, y, z, 7, m3, m4, m7, three),
      xq + 16, three ? v128.load(ab, 16) : sp, lowScaleOf(sp, 1), three));
  } else {
    const xw = xa + q8aQ16Off(nb) + (bg << 6);
    const s0 = lowHalfSimd(x, y, z, 0, xw, lowScaleOf(sp, 0), m3, m4, m7, three);
    v128.store(t, s0);
    sd = i32x4.add(s0, lowHalfSimd(x, y, z, 4, xw + 32, lowScaleOf(sp, 1), m3, m4, m7, three));
  }
  return lowFold(acc, sd, v128.load(t + LD), three ? sd : v128.load(t + LD, 16), ls + LMT, b, three ? sd : v128.load(ab), v128.load32_splat(xa + (bg << 2)), three);
}

// SIMD builds: a group's four rows in the lanes, the token's lowActBlocks
// made once per call (LT) where they fit (cols up to ~114,000), else per
// block (at LX, for every group: only such wide rows pay it). The plain SIMD
// build's Q3_K makes its values signed instead, and needs none.
@inline function matvecLowSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize, three: bool): void {
  const nsb = <usize>cols >> 8, nb = nsb << 3;
  const t = scratchBase(), ls = t + LS;
  const acts = ASC_FEATURE_RELAXED_SIMD || !three;
  const tabled = (nb << 5) <= LT_BYTES;
  if (acts && tabled) lowActTable(xa, nb, t + LT, three);
  const m3 = v128.load(VCONST + VC_B3), m4 = v128.load(VCONST + VC_B4), m7 = v128.load(VCONST + VC_B7);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    for (let sb: usize = 0; sb < nsb; sb++) {
      lowGroupD(t, p, three);
      lowGroupScales(ls, p, three);
      for (let b: usize = 0; b < 8; b++) {
        const bg = (sb << 3) + b;
        let ab = t + LT + (bg << 5);
        if (acts && !tabled) {
          ab = t + LX;
          lowActBlock(ab, xa + q8aQ8Off(nb) + (bg << 5), three);
        }
        acc = lowBlock(acc, p, b, xa, bg, nb, ab, ls, m3, m4, m7, t, three);
      }
      p += lowSB(three);
    }
    storeRows(out, r0, rows, acc);
  }
}

// ---------------------------------------------------------------- matmul (Q8B)

// out[t*rows + r] for ntok tokens (Q8B, q8b_bytes(cols, ntok)) against Q2KR /
// Q3KR at w, from the tokens' Q8A images made from the Q8B (O(cols) per
// token). Relaxed builds: up to eight tokens per pass over the weights
// (smallMost), each block of a group unpacked once for them as quads in
// registers, then per token the matvec's integer sums and its fold; plain
// SIMD and scalar: one matvec per token. Bit-identical to the matvecs in every
// build.
export function matmul_q2kr_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulLow(w, rows, cols, xb, ntok, out, false);
}

export function matmul_q3kr_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulLow(w, rows, cols, xb, ntok, out, true);
}

@inline function matmulLow(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize, three: bool): void {
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
    if (three) matvec_q3kr_q8a(w, rows, cols, xa, o);
    else matvec_q2kr_q8a(w, rows, cols, xa, o);
  }
}

// n (1..8) tokens' Q8A images at xa + k*stride; out[k*rows + r]. One token
// is the matvec; from two on, a pass specialized for the count, so that
// every token's accumulator stays in a register (as Q4R's pass).
@inline function matmulLowFew(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32, three: bool): void {
  if (n == 1) {
    if (three) matvec_q3kr_q8a(w, rows, cols, xa, out);
    else matvec_q2kr_q8a(w, rows, cols, xa, out);
  } else if (three) {
    if (n == 2) matmulQ3krFew2(w, rows, cols, xa, stride, out);
    else if (n == 3) matmulQ3krFew3(w, rows, cols, xa, stride, out);
    else if (n == 4) matmulQ3krFew4(w, rows, cols, xa, stride, out);
    else if (n == 5) matmulQ3krFew5(w, rows, cols, xa, stride, out);
    else if (n == 6) matmulQ3krFew6(w, rows, cols, xa, stride, out);
    else if (n == 7) matmulQ3krFew7(w, rows, cols, xa, stride, out);
    else matmulQ3krFew8(w, rows, cols, xa, stride, out);
  } else {
    if (n == 2) matmulQ2krFew2(w, rows, cols, xa, stride, out);
    else if (n == 3) matmulQ2krFew3(w, rows, cols, xa, stride, out);
    else if (n == 4) matmulQ2krFew4(w, rows, cols, xa, stride, out);
    else if (n == 5) matmulQ2krFew5(w, rows, cols, xa, stride, out);
    else if (n == 6) matmulQ2krFew6(w, rows, cols, xa, stride, out);
    else if (n == 7) matmulQ2krFew7(w, rows, cols, xa, stride, out);
    else matmulQ2krFew8(w, rows, cols, xa, stride, out);
  }
}

function matmulQ2krFew2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 2, false); }
function matmulQ2krFew3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 3, false); }
function matmulQ2krFew4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 4, false); }
function matmulQ2krFew5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 5, false); }
function matmulQ2krFew6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 6, false); }
function matmulQ2krFew7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 7, false); }
function matmulQ2krFew8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 8, false); }
function matmulQ3krFew2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 2, true); }
function matmulQ3krFew3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 3, true); }
function matmulQ3krFew4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 4, true); }
function matmulQ3krFew5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 5, true); }
function matmulQ3krFew6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 6, true); }
function matmulQ3krFew7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 7, true); }
function matmulQ3krFew8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulLowN(w, rows, cols, xa, stride, out, 8, true); }

// n (2..8, a constant) tokens against every group: per group and block the
// quads are made once, in registers, and each token costs the matvec's dots
// and fold on them (lowFewToken), its accumulator a register across the
// group's blocks.
@inline function matmulLowN(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32, three: bool): void {
  const nsb = <usize>cols >> 8, nb = nsb << 3;
  const t = scratchBase(), ls = t + LS, lt = t + LT;
  const x8 = q8aQ8Off(nb), tb = nb << 5;
  const outStride = <usize>rows << 2;
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      lowGroupD(t, p, three);
      lowGroupScales(ls, p, three);
      const m3 = v128.load(VCONST + VC_B3), m4 = v128.load(VCONST + VC_B4), m7 = v128.load(VCONST + VC_B7);
      for (let b: usize = 0; b < 8; b++) {
        const bg = (sb << 3) + b;
        const v = p + lowV(three) + b * lowVB(three);
        const x = v128.load(v), y = v128.load(v, 16), z = three ? v128.load(v, 32) : x;
        const q0 = lowQuad(x, y, z, 0, m3, m4, m7, three), q1 = lowQuad(x, y, z, 1, m3, m4, m7, three);
        const q2 = lowQuad(x, y, z, 2, m3, m4, m7, three), q3 = lowQuad(x, y, z, 3, m3, m4, m7, three);
        const q4 = lowQuad(x, y, z, 4, m3, m4, m7, three), q5 = lowQuad(x, y, z, 5, m3, m4, m7, three);
        const q6 = lowQuad(x, y, z, 6, m3, m4, m7, three), q7 = lowQuad(x, y, z, 7, m3, m4, m7, three);
        // The rows' scales of sub-blocks 2b and 2b + 1.
        const sp = v128.load(ls + LST + (b << 4));
        const s0 = lowScaleOf(sp, 0), s1 = lowScaleOf(sp, 1);
        const xq = xa + x8 + (bg << 5), at = lt + (bg << 5), xd = xa + (bg << 2);
        a0 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq, at, xd, s0, s1, t, ls, b, a0, three);
        a1 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride, at + tb, xd + stride, s0, s1, t, ls, b, a1, three);
        if (n > 2) a2 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride * 2, at + tb * 2, xd + stride * 2, s0, s1, t, ls, b, a2, three);
        if (n > 3) a3 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride * 3, at + tb * 3, xd + stride * 3, s0, s1, t, ls, b, a3, three);
        if (n > 4) a4 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride * 4, at + tb * 4, xd + stride * 4, s0, s1, t, ls, b, a4, three);
        if (n > 5) a5 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride * 5, at + tb * 5, xd + stride * 5, s0, s1, t, ls, b, a5, three);
        if (n > 6) a6 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride * 6, at + tb * 6, xd + stride * 6, s0, s1, t, ls, b, a6, three);
        if (n > 7) a7 = lowFewToken(q0, q1, q2, q3, q4, q5, q6, q7, xq + stride * 7, at + tb * 7, xd + stride * 7, s0, s1, t, ls, b, a7, three);
      }
      p += lowSB(three);
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// One token's block b from the quads q0..q7 (its activation quads at xq, its
// lowActBlock at at, its d_x at xd): the matvec's sub-block dots and fold,
// into acc. A store to scratch then orders the next token's activation loads
// after it (V8 would hoist all of them to the top of the block and spill).
@inline function lowFewToken(q0: v128, q1: v128, q2: v128, q3: v128, q4: v128, q5: v128, q6: v128, q7: v128,
  xq: usize, at: usize, xd: usize, s0: v128, s1: v128, t: usize, ls: usize, b: usize, acc: v128, three: bool): v128 {
  const sd = i32x4.add(lowHalfDot(q0, q1, q2, q3, xq, three ? v128.load(at) : s0, s0, three),
    lowHalfDot(q4, q5, q6, q7, xq + 16, three ? v128.load(at, 16) : s1, s1, three));
  const a = lowFold(acc, sd, v128.load(t + LD), three ? sd : v128.load(t + LD, 16), ls + LMT, b, three ? sd : v128.load(at), v128.load32_splat(xd), three);
  v128.store(t, a);
  return a;
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
