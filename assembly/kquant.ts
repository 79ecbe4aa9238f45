// The K-quants Q4_K and Q5_K: repack to Q4KR / Q5KR, matrix-vector (decode)
// and matrix-matrix (prefill) products against Q8A / Q8B activations, and
// row dequantization (embedding lookup).
//
// GGUF Q4_K (144 B per 256 values): f16 d, f16 dmin, 12 bytes of packed
// six-bit scales and mins of eight 32-wide sub-blocks, 128 nibble bytes (the
// 32 bytes of chunk c hold sub-block 2c in their low nibbles and 2c+1 in
// their high ones). Q5_K (176 B) adds 32 bytes of fifth bits before the
// nibbles (bit j of byte l is element l of sub-block j). A value is
// d*sc*q - dmin*m with q unsigned (0..15, 0..31).
//
// The sub-blocks are 32 wide, Q8A/Q8B's blocks (block b: d_x, sum x). The
// activations must come from quantize_q8a_k / quantize_q8b_k: one d_x per
// 256 values, so a superblock's sums stay integer. Per superblock of a row,
// sub-blocks j = 0..7 (from isq = ism = 0):
//   isq += sc_j * sum_l q_l x_l        exact int32, |isq| <= 8*63*32*31*127 < 2^26
//   ism += m_j * sum x_j               exact int32, |ism| <= 8*63*32*127 < 2^21
// then, with d_x that of the superblock's first block,
//   acc = acc + (f32(isq)*(d*d_x) - f32(ism)*(dmin*d_x))
// in that order of f32 operations in every build (the scalar twin defines
// it), so all builds agree bit for bit. One f32 fold per superblock instead
// of two per sub-block (llama.cpp's Q8_K does the same).

// Q4KR / Q5KR: groups of four rows (the last zero-padded); group g at
// g*nsb*B (B = 592 / 1104), per superblock column B bytes:
//   [0, 8)     d of rows 0..3 (f16)         [8, 16)   dmin of rows 0..3 (f16)
//   [16, 48)   sub-block j at 16 + 4j: the scales of rows 0..3 (u8, 0..63)
//   [48, 80)   the mins (u8, 0..63), per pair of sub-blocks (j, j+1) eight
//              bytes at 48 + 8*(j >> 1): row r's m_j, m_j+1 at + 2r, + 2r + 1
//   Q4KR [80, 592): sub-block j at 80 + 64j, four vectors V(k) at + 16k
//              (k = 0..3): bytes 4r..4r+3 of V(k) are row r's nibble bytes
//              4k..4k+3, byte l holding q_l | q_{l+16} << 4 (the GGUF order
//              within a row; the four rows side by side by quads)
//   Q5KR [80, 1104): sub-block j of row r at 80 + 128j + 32r: 32 bytes,
//              byte l holding q_l (0..31)
// The scales are unpacked once at load instead of per row and superblock in
// every product: a sub-block's four scales are one widening load (shuffling
// them out of a wider vector cost V8 a rebuilt mask per shuffle), two
// sub-blocks' mins one widening load and one dot (kMinSums), and the rows'
// data one sequential stream (as Q6R). Q4KR: the
// four rows side by side by quads (as Q6R), so a relaxed dot of a vector's
// nibbles with a splatted activation quad puts two rows' pair sums in its
// int16 lanes, and the eight dots of a sub-block add up to each row's even
// and odd pairs with no 4-row reduction (the rows one vector each, before
// this, took 10 shuffles and adds per sub-block to reduce). Q5KR
// spends a byte per value (1.078 B per weight in memory, 1.57x the file's
// 0.6875), so a row's sub-block is two loads and two relaxed dots with no
// bit work at all: five bits packed beside others (the layout before this
// one: the low five bits and three of value l+16 in a byte, the four rows'
// top pairs in a shared vector) took nine operations per row and sub-block
// to unpack, and kept the matvec compute-bound at 1.38x Q4R per weight;
// read as bytes it is bound by memory, as Q8R.

import {
  FUSED, scratchBase, h2f, h2f_x4_nodenorm, VCONST, VC_NIB8, VC_NIB16,
  q8aSumOff, q8aQ8Off, q8aQ16Off,
} from "./common";
import {
  reduce4, rowDot16, storeRows, storeFew, SMALL_X, MV_X, quadsNibRelaxed, quadsNibSimd, q4rFewFusedDot, q4rFewDot16, smallStride, smallMost, smallImages,
} from "./quant";
import { matvec_q6r_q8a } from "./q6matvec";

// @ts-ignore: decorator
@inline const K_SC: usize = 16;
// @ts-ignore: decorator
@inline const K_MIN: usize = 48;
// @ts-ignore: decorator
@inline const K_QS: usize = 80;

@inline function kBytes(five: bool): usize {
  return five ? 1104 : 592;
}

// Q5KR: sub-block j of row r of the superblock column at p (32 bytes).
@inline function kSubAt(p: usize, j: i32, r: i32): usize {
  return p + K_QS + (<usize>j << 7) + (<usize>r << 5);
}

// Q4KR: nibble byte l (0..15) of row r in sub-block j of the superblock column at p.
@inline function kNibAt(p: usize, j: usize, r: usize, l: usize): usize {
  return p + K_QS + (j << 6) + ((l >> 2) << 4) + (r << 2) + (l & 3);
}

// The scales of sub-block j's four rows.
@inline function kScAt(p: usize, j: i32): usize {
  return p + K_SC + (<usize>j << 2);
}

// Row r's min of sub-block j: per pair of sub-blocks (j, j+1) eight bytes,
// the rows' two mins side by side.
@inline function kMinAt(p: usize, j: i32, r: i32): usize {
  return p + K_MIN + (<usize>(j >> 1) << 3) + (<usize>r << 1) + <usize>(j & 1);
}

// The SIMD build's mask of the low byte of every int16 lane (Q5KR's even
// values; see VCONST in common.ts for why in memory).
const K_LOW8: usize = memory.data<u32>([0x00ff00ff, 0x00ff00ff, 0x00ff00ff, 0x00ff00ff], 16);

// ---------------------------------------------------------------- sizes and repack

export function q4kr_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 8) * 592;
}

export function q5kr_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 8) * 1104;
}

// GGUF rows -> Q4KR / Q5KR. A group takes more bytes per superblock column
// than its four GGUF rows (Q4KR 16 more, Q5KR 400: 1104 against 704), so an
// in-place repack (dst == src, sized q4kr_bytes / q5kr_bytes) goes from the
// last group to the first, each group's rows copied to scratch first: group
// g's destination starts at or after its source and ends where group g+1's
// destination begins, so only sources already copied are overwritten.
// Otherwise src and dst must not overlap. Uses the scratch region (4 rows:
// Q5_K cols up to 190464).
export function repack_q4_k(src: usize, dst: usize, rows: i32, cols: i32): void {
  repackK(src, dst, rows, cols, false);
}

export function repack_q5_k(src: usize, dst: usize, rows: i32, cols: i32): void {
  repackK(src, dst, rows, cols, true);
}

// Sub-block j's six-bit scale | min << 8 from the 12 packed bytes at s:
// sub-blocks 0..3 keep theirs in the low six bits of bytes j and j+4; 4..7
// take a nibble of byte j+4 and the top two bits of bytes j-4 (scale) and j
// (min).
@inline function scaleMin(s: usize, j: usize): u32 {
  const a = <u32>load<u8>(s + j);
  const b = <u32>load<u8>(s + ((j + 4) & 7));
  if (j < 4) return (a & 63) | ((b & 63) << 8);
  const c = <u32>load<u8>(s + j + 4);
  return ((c & 15) | ((b >> 6) << 4)) | (((c >> 4) | ((a >> 6) << 4)) << 8);
}

// Value l (0..31) of sub-block j of a GGUF block: nibbles at q, fifth bits at qh.
@inline function ggufValue(q: usize, qh: usize, j: usize, l: usize, five: bool): i32 {
  const v = <i32>load<u8>(q + ((j >> 1) << 5) + l);
  let x = j & 1 ? v >> 4 : v & 15;
  if (five) x |= ((<i32>load<u8>(qh + l) >> <i32>j) & 1) << 4;
  return x;
}

function repackK(src: usize, dst: usize, rows: i32, cols: i32, five: bool): void {
  const nsb = <usize>cols >> 8;
  const inB: usize = five ? 176 : 144;
  const outB = kBytes(five);
  const rowBytes = nsb * inB;
  const tmp = scratchBase();
  for (let g = ((rows + 3) >> 2) - 1; g >= 0; g--) {
    const nr = min(4, rows - (g << 2));
    memory.copy(tmp, src + <usize>(g << 2) * rowBytes, <usize>nr * rowBytes);
    if (nr < 4) memory.fill(tmp + <usize>nr * rowBytes, 0, <usize>(4 - nr) * rowBytes);
    let o = dst + <usize>g * nsb * outB;
    for (let sb: usize = 0; sb < nsb; sb++) {
      for (let r = 0; r < 4; r++) {
        const s = tmp + <usize>r * rowBytes + sb * inB;
        store<u16>(o + (<usize>r << 1), load<u16>(s));
        store<u16>(o + 8 + (<usize>r << 1), load<u16>(s, 2));
        for (let j: usize = 0; j < 8; j++) {
          const sm = scaleMin(s + 4, j);
          store<u8>(kScAt(o, <i32>j) + <usize>r, <u8>sm);
          store<u8>(kMinAt(o, <i32>j, r), <u8>(sm >> 8));
        }
        const q = s + (five ? 48 : 16), qh = s + 16;
        for (let j = 0; j < 8; j++) {
          if (five) {
            const v = kSubAt(o, j, r);
            for (let l: usize = 0; l < 32; l++) store<u8>(v + l, <u8>ggufValue(q, qh, j, l, true));
          } else {
            for (let l: usize = 0; l < 16; l++) store<u8>(kNibAt(o, j, r, l), <u8>(ggufValue(q, qh, j, l, false) | (ggufValue(q, qh, j, l + 16, false) << 4)));
          }
        }
      }
      o += outB;
    }
  }
}

// ---------------------------------------------------------------- matvec (Q8A)

export function matvec_q4kr_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ4kSimd(w, rows, cols, xa, out);
  else matvecKScalar(w, rows, cols, xa, out, false);
}

export function matvec_q5kr_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ5kSimd(w, rows, cols, xa, out);
  else matvecKScalar(w, rows, cols, xa, out, true);
}

// Value l (0..31) of sub-block j of row r in the Q4KR / Q5KR superblock column at p.
@inline function krValue(p: usize, r: i32, j: i32, l: usize, five: bool): i32 {
  if (five) return <i32>load<u8>(kSubAt(p, j, r) + l);
  const v = <i32>load<u8>(kNibAt(p, <usize>j, <usize>r, l & 15));
  return l < 16 ? v & 15 : v >> 4;
}

function matvecKScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize, five: bool): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const xs = xa + q8aSumOff(nb);
  const x8 = xa + q8aQ8Off(nb);
  const B = kBytes(five);
  for (let r = 0; r < rows; r++) {
    const lane = r & 3;
    let p = w + <usize>(r >> 2) * nsb * B;
    let acc: f32 = 0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      let isq: i32 = 0, ism: i32 = 0;
      for (let j = 0; j < 8; j++) {
        const b = (sb << 3) + <usize>j;
        let dot: i32 = 0;
        for (let l: usize = 0; l < 32; l++) dot += krValue(p, lane, j, l, five) * <i32>load<i8>(x8 + (b << 5) + l);
        isq += dot * <i32>load<u8>(kScAt(p, j) + <usize>lane);
        ism += <i32>load<u8>(kMinAt(p, j, lane)) * load<i32>(xs + (b << 2));
      }
      acc = kFold(acc, isq, ism, h2f(load<u16>(p + (<usize>lane << 1))), h2f(load<u16>(p + 8 + (<usize>lane << 1))), load<f32>(xa + (sb << 5)));
      p += B;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// One superblock of a row: acc + (f32(isq)*(d*dx) - f32(ism)*(dmin*dx)), dx
// the superblock's activation scale (Q8A from quantize_q8a_k: the same for
// its eight blocks). isq = sum_j sc_j * sum_l q_l x_l and ism = sum_j m_j *
// sum x_j are exact int32: |isq| <= 8*63*32*31*127 < 2^26 (Q4_K: 15 for 31),
// |ism| <= 8*63*32*127 < 2^21.
@inline function kFold(acc: f32, isq: i32, ism: i32, d: f32, dm: f32, dx: f32): f32 {
  return acc + (<f32>isq * (d * dx) - <f32>ism * (dm * dx));
}

// The same fold, four lanes.
@inline function kFoldSuper(acc: v128, isq: v128, ism: v128, d: v128, dm: v128, dx: v128): v128 {
  return f32x4.add(acc, f32x4.sub(
    f32x4.mul(f32x4.convert_i32x4_s(isq), f32x4.mul(d, dx)),
    f32x4.mul(f32x4.convert_i32x4_s(ism), f32x4.mul(dm, dx)),
  ));
}

// Two rows' int16 partials transposed and added (reduce4i16's first step):
// lanes 0-1 row 0's, 2-3 row 1's, 4-5 row 0's, 6-7 row 1's.
@inline function kPairAdd(p0: v128, p1: v128): v128 {
  return i16x8.add(i32x4.shuffle(p0, p1, 0, 4, 1, 5), i32x4.shuffle(p0, p1, 2, 6, 3, 7));
}

// Row 0's sub-block j = i/8 of the superblock column at p, and the stride
// from one row's to the next.
@inline function kSubOf(p: usize, i: usize, five: bool): usize {
  return five ? p + K_QS + (i << 4) : p + K_QS + (i << 3);
}
@inline function kRowStride(five: bool): usize {
  return five ? 32 : 16;
}

// Relaxed: sub-block j = i/8 of the four rows of the superblock column at
// p against its activations (xq: the superblock's): [sc_r * sum_l q_l x_l].
// The four rows' int16 partials are transposed and added in int16, then one
// dot with [sc0, sc0, sc1, sc1, ...] widens and scales at once. Q4_K: sums
// of 8 lanes <= 30480 stay exact in int16; Q5_K's (<= 62992) would not, so
// its last add is done after two scaled widenings.
@inline function kSubRelaxed(p: usize, i: usize, five: bool, xq: usize, m: v128, t: usize): v128 {
  const q = kSubOf(p, i, five);
  const sc = v128.load8x8_u(p + K_SC + (i >> 1));
  const pr = i16x8.shuffle(sc, sc, 0, 0, 1, 1, 2, 2, 3, 3);
  // Q4KR: the quads' dots in int16 row lanes (quant.ts), widened and scaled at once.
  if (!five) return i32x4.dot_i16x8_s(quadsNibRelaxed(q, xq + (i << 2), m, t), pr);
  return kSub5(v128.load(q), v128.load(q, 16), v128.load(q, 32), v128.load(q, 48),
    v128.load(q, 64), v128.load(q, 80), v128.load(q, 96), v128.load(q, 112), xq + (i << 2), pr);
}

// Relaxed, Q5KR: a sub-block of the four rows (row r's halves q_2r, q_2r+1,
// 32 bytes apart in a row's 32; the rows 32 apart) against its activations
// at x, [sc_r * sum_l q_l x_l] as kSubRelaxed describes.
@inline function kSub5(q0: v128, q1: v128, q2: v128, q3: v128, q4: v128, q5: v128, q6: v128, q7: v128, x: usize, pr: v128): v128 {
  const xl = v128.load(x), xh = v128.load(x, 16);
  // A row's sub-block (values 0..31, the 7-bit operand as they lie) in int16 pair sums, |lane| <= 15748.
  const a = kPairAdd(rowDot16(xl, xh, q0, q1), rowDot16(xl, xh, q2, q3));
  const c = kPairAdd(rowDot16(xl, xh, q4, q5), rowDot16(xl, xh, q6, q7));
  const lo = i32x4.shuffle(a, c, 0, 1, 4, 5), hi = i32x4.shuffle(a, c, 2, 3, 6, 7);
  return i32x4.add(i32x4.dot_i16x8_s(lo, pr), i32x4.dot_i16x8_s(hi, pr));
}

// SIMD build, Q5KR: a row's sub-block as int32 sums against Q8A's permuted
// int16 activations (a vector of weight bytes viewed as int16 lanes holds the
// even elements in its low bytes, the odd in its high). m: 0x00ff per lane.
@inline function kRow5Simd(q: usize, x0: v128, x1: v128, x2: v128, x3: v128, m: v128): v128 {
  const a = v128.load(q), b = v128.load(q, 16);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(a, m), x0), i32x4.dot_i16x8_s(i16x8.shr_u(a, 8), x1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(b, m), x2), i32x4.dot_i16x8_s(i16x8.shr_u(b, 8), x3)),
  );
}

// Per call, the blocks' sums of x as int16 (|.| <= 32*127 = 4064) at tab,
// so that two sub-blocks' sums are one 32-bit splat (kMinSums). Scratch at
// MV_X, as the other matvecs' per-call tables: one matvec at a time per
// instance.
@inline function kSumTable(xs: usize, nb: usize, tab: usize): void {
  for (let b: usize = 0; b < nb; b += 8) {
    v128.store(tab + (b << 1), i16x8.narrow_i32x4_s(v128.load(xs + (b << 2)), v128.load(xs + (b << 2), 16)));
  }
}

// A superblock's ism = sum_j m_j * sum x_j for the four rows: per pair of
// sub-blocks (j, j+1) the rows' mins (kMinAt) widened to int16 lanes
// [m_j r0, m_j+1 r0, m_j r1, ...], and one dot with the pair's two sums
// splatted puts row r's m_j sx_j + m_j+1 sx_j+1 in lane r. Exact: |.| <=
// 8*63*4064 < 2^21. Four dots a superblock, where one per sub-block with the
// mins beside the scales took five operations each.
@inline function kMinSums(p: usize, sx: usize): v128 {
  return kMinSumsWith(p, v128.load32_splat(sx), v128.load32_splat(sx, 4), v128.load32_splat(sx, 8), v128.load32_splat(sx, 12));
}

// kMinSums with the four pairs of sums already splatted.
@inline function kMinSumsWith(p: usize, s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const a = i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_u(p + K_MIN), s0), i32x4.dot_i16x8_s(v128.load8x8_u(p + K_MIN + 8), s1));
  const b = i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_u(p + K_MIN + 16), s2), i32x4.dot_i16x8_s(v128.load8x8_u(p + K_MIN + 24), s3));
  return i32x4.add(a, b);
}

// Relaxed-fused (workerd), Q4KR: 4 groups of four rows, 1/4 of the matrix
// apart, against one superblock of activations at a time, as matvecQ4rFused4
// in quant.ts does for Q4R: the bounds-checked loads of the activations, their
// sums and scale are shared, and the streams are far apart. Per group, the
// integer sums are exact (sc_j * sum q*x, summed over the sub-blocks as
// matvecKSimd does), then one kFoldSuper per superblock: the same bits.
// xq0: the activations' int8 section, xm0: their kSumTable. Returns the
// rows done; the rest go one group at a time.
function matvecQ4kFused(w: usize, rows: i32, nsb: usize, xa: usize, xq0: usize, xm0: usize, out: usize): i32 {
  const m = v128.load(VCONST + VC_NIB8);
  const z = i32x4.splat(0);
  const gBytes = nsb * kBytes(false);
  const per = ((rows + 3) >> 2) / 4; // groups per stream
  const far = <usize>per * gBytes;
  for (let g = 0; g < per; g++) {
    let pA = w + <usize>g * gBytes;
    let accA = f32x4.splat(0), accB = f32x4.splat(0), accC = f32x4.splat(0), accD = f32x4.splat(0);
    let xq = xq0, xm = xm0, xd = xa;
    for (let sb: usize = 0; sb < nsb; sb++) {
      const pB = pA + far, pC = pB + far, pD = pC + far;
      let isqA = z, isqB = z, isqC = z, isqD = z;
      for (let i: usize = 0; i < 64; i += 8) {
        const xl = v128.load(xq + (i << 2)), xh = v128.load(xq + (i << 2), 16);
        // Quad k of each group against x[4k..4k+3] (low nibbles) and x[16+4k..] (high); chains a and b per group.
        let l = i32x4.shuffle(xl, xl, 0, 0, 0, 0), h = i32x4.shuffle(xh, xh, 0, 0, 0, 0);
        let vA = v128.load(pA + (i << 3), 80);
        let aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), z); let bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), z);
        let vB = v128.load(pB + (i << 3), 80);
        let aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), z); let bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), z);
        let vC = v128.load(pC + (i << 3), 80);
        let aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), z); let bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), z);
        let vD = v128.load(pD + (i << 3), 80);
        let aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), z); let bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), z);
        l = i32x4.shuffle(xl, xl, 1, 1, 1, 1); h = i32x4.shuffle(xh, xh, 1, 1, 1, 1);
        vA = v128.load(pA + (i << 3), 96);
        aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), aA); bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), bA);
        vB = v128.load(pB + (i << 3), 96);
        aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), aB); bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), bB);
        vC = v128.load(pC + (i << 3), 96);
        aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), aC); bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), bC);
        vD = v128.load(pD + (i << 3), 96);
        aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), aD); bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), bD);
        l = i32x4.shuffle(xl, xl, 2, 2, 2, 2); h = i32x4.shuffle(xh, xh, 2, 2, 2, 2);
        vA = v128.load(pA + (i << 3), 112);
        aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), aA); bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), bA);
        vB = v128.load(pB + (i << 3), 112);
        aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), aB); bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), bB);
        vC = v128.load(pC + (i << 3), 112);
        aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), aC); bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), bC);
        vD = v128.load(pD + (i << 3), 112);
        aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), aD); bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), bD);
        l = i32x4.shuffle(xl, xl, 3, 3, 3, 3); h = i32x4.shuffle(xh, xh, 3, 3, 3, 3);
        vA = v128.load(pA + (i << 3), 128);
        aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), aA); bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), bA);
        vB = v128.load(pB + (i << 3), 128);
        aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), aB); bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), bB);
        vC = v128.load(pC + (i << 3), 128);
        aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), aC); bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), bC);
        vD = v128.load(pD + (i << 3), 128);
        aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), aD); bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), bD);
        isqA = i32x4.add(isqA, i32x4.mul(i32x4.add(aA, bA), i32x4.extend_low_i16x8_u(v128.load8x8_u(pA + (i >> 1), K_SC))));
        isqB = i32x4.add(isqB, i32x4.mul(i32x4.add(aB, bB), i32x4.extend_low_i16x8_u(v128.load8x8_u(pB + (i >> 1), K_SC))));
        isqC = i32x4.add(isqC, i32x4.mul(i32x4.add(aC, bC), i32x4.extend_low_i16x8_u(v128.load8x8_u(pC + (i >> 1), K_SC))));
        isqD = i32x4.add(isqD, i32x4.mul(i32x4.add(aD, bD), i32x4.extend_low_i16x8_u(v128.load8x8_u(pD + (i >> 1), K_SC))));
      }
      const s0 = v128.load32_splat(xm), s1 = v128.load32_splat(xm, 4), s2 = v128.load32_splat(xm, 8), s3 = v128.load32_splat(xm, 12);
      const dx = v128.load32_splat(xd);
      accA = kFoldSuper(accA, isqA, kMinSumsWith(pA, s0, s1, s2, s3), h2f_x4_nodenorm(pA), h2f_x4_nodenorm(pA + 8), dx);
      accB = kFoldSuper(accB, isqB, kMinSumsWith(pB, s0, s1, s2, s3), h2f_x4_nodenorm(pB), h2f_x4_nodenorm(pB + 8), dx);
      accC = kFoldSuper(accC, isqC, kMinSumsWith(pC, s0, s1, s2, s3), h2f_x4_nodenorm(pC), h2f_x4_nodenorm(pC + 8), dx);
      accD = kFoldSuper(accD, isqD, kMinSumsWith(pD, s0, s1, s2, s3), h2f_x4_nodenorm(pD), h2f_x4_nodenorm(pD + 8), dx);
      xq += 256;
      xm += 16;
      xd += 32;
      pA += kBytes(false);
    }
    const r0 = g << 2, q = per << 2;
    storeRows(out, r0, rows, accA);
    storeRows(out, r0 + q, rows, accB);
    storeRows(out, r0 + 2 * q, rows, accC);
    storeRows(out, r0 + 3 * q, rows, accD);
  }
  return per * 16;
}

// One copy per type, so that no test of `five` is left in the loop.
function matvecQ4kSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  matvecKSimd(w, rows, cols, xa, out, false);
}

function matvecQ5kSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  matvecKSimd(w, rows, cols, xa, out, true);
}

@inline function matvecKSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize, five: bool): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const xq0 = ASC_FEATURE_RELAXED_SIMD ? xa + q8aQ8Off(nb) : xa + q8aQ16Off(nb);
  const xm0 = scratchBase() + MV_X;
  kSumTable(xa + q8aSumOff(nb), nb, xm0);
  // Relaxed: Q4KR's nibble mask per byte; SIMD: 0x000f (Q4KR's nibbles) or 0x00ff (Q5KR's bytes) per int16 lane.
  const m = v128.load(ASC_FEATURE_RELAXED_SIMD ? VCONST + VC_NIB8 : five ? K_LOW8 : VCONST + VC_NIB16);
  const B = kBytes(five);
  const rs = kRowStride(five);
  const t = scratchBase();
  const rStart = FUSED && !five ? matvecQ4kFused(w, rows, nsb, xa, xq0, xm0, out) : 0;
  let p = w + <usize>(rStart >> 2) * nsb * B;
  for (let r0 = rStart; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    let xq = xq0, xm = xm0, xd = xa;
    for (let sb: usize = 0; sb < nsb; sb++) {
      // Per superblock, exact in int32: isq = sum_j sd_j (ism: kMinSums).
      let isq = i32x4.splat(0);
      // i = 8j: every address below is a base plus i times a power of two
      // (V8 then spends one add per sub-block on the loop, not one per pointer).
      for (let i: usize = 0; i < 64; i += 8) {
        let sd: v128;
        if (ASC_FEATURE_RELAXED_SIMD) {
          sd = kSubRelaxed(p, i, five, xq, m, t);
        } else {
          const q = kSubOf(p, i, five);
          const x = xq + (i << 3);
          let rs4: v128;
          if (five) {
            const x0 = v128.load(x), x1 = v128.load(x, 16), x2 = v128.load(x, 32), x3 = v128.load(x, 48);
            rs4 = reduce4(
              kRow5Simd(q, x0, x1, x2, x3, m), kRow5Simd(q + rs, x0, x1, x2, x3, m),
              kRow5Simd(q + 2 * rs, x0, x1, x2, x3, m), kRow5Simd(q + 3 * rs, x0, x1, x2, x3, m),
            );
          } else {
            rs4 = quadsNibSimd(q, x, m, t); // Q4KR's quads: the rows' sums in row lanes (quant.ts)
          }
          sd = i32x4.mul(rs4, i32x4.extend_low_i16x8_u(v128.load8x8_u(p + K_SC + (i >> 1))));
        }
        isq = i32x4.add(isq, sd);
      }
      acc = kFoldSuper(acc, isq, kMinSums(p, xm), h2f_x4_nodenorm(p), h2f_x4_nodenorm(p + 8), v128.load32_splat(xd));
      xq += ASC_FEATURE_RELAXED_SIMD ? 256 : 512;
      xm += 16;
      xd += 32;
      p += B;
    }
    storeRows(out, r0, rows, acc);
  }
}

// ---------------------------------------------------------------- matmul (Q8B)

// out[t*rows + r] for ntok tokens (Q8B, q8b_bytes(cols, ntok)); bit-identical
// to ntok matvec calls. Relaxed builds: Q4KR and Q5KR in passes over the
// weights for up to eight tokens at a time, from the tokens' Q8A images
// (matmulQ4kSmall, matmulQ5kSmall). The SIMD and scalar builds run
// a matvec per token.
export function matmul_q4kr_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulK(w, rows, cols, xb, ntok, out, false);
}

export function matmul_q5kr_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmulK(w, rows, cols, xb, ntok, out, true);
}

function matmulK(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize, five: bool): void {
  if (!ASC_FEATURE_RELAXED_SIMD) {
    matvecsPerToken(w, rows, cols, xb, 0, ntok, out, five ? 5 : 4);
    return;
  }
  // Passes over the weights for a few tokens at a time beat the tiles these
  // kinds had at every count measured, 64 tokens included (docs/kernels.md).
  if (five) matmulQ5kSmall(w, rows, cols, xb, 0, ntok, out);
  else matmulQ4kSmall(w, rows, cols, xb, 0, ntok, out);
}

// The K-quants' few tokens, relaxed builds: tokens [t0, t1) of Q8B xb in one
// pass over the weights (matmulKFew), up to eight at a time (four where
// eight images do not fit in scratch); a lone token takes the matvec.
function matmulQ4kSmall(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize): void {
  matmulKSmall(w, rows, cols, xb, t0, t1, out, false);
}

function matmulQ5kSmall(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize): void {
  matmulKSmall(w, rows, cols, xb, t0, t1, out, true);
}

@inline function matmulKSmall(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize, five: bool): void {
  const nb = <usize>cols >> 5;
  const stride = smallStride(nb);
  const xa = scratchBase() + SMALL_X;
  const outStride = <usize>rows << 2;
  const most = smallMost(stride);
  for (let t = t0; t < t1; t += most) {
    const n = min(most, t1 - t);
    smallImages(xb, nb, t, n, xa, stride);
    const o = out + <usize>t * outStride;
    if (n == 1) {
      if (five) matvecQ5kSimd(w, rows, cols, xa, o);
      else matvecQ4kSimd(w, rows, cols, xa, o);
    } else if (five) {
      if (n == 2) matmulQ5kFew2(w, rows, cols, xa, stride, o);
      else if (n == 3) matmulQ5kFew3(w, rows, cols, xa, stride, o);
      else if (n == 4) matmulQ5kFew4(w, rows, cols, xa, stride, o);
      else if (n == 5) matmulQ5kFew5(w, rows, cols, xa, stride, o);
      else if (n == 6) matmulQ5kFew6(w, rows, cols, xa, stride, o);
      else if (n == 7) matmulQ5kFew7(w, rows, cols, xa, stride, o);
      else matmulQ5kFew8(w, rows, cols, xa, stride, o);
    } else {
      if (n == 2) matmulQ4kFew2(w, rows, cols, xa, stride, o);
      else if (n == 3) matmulQ4kFew3(w, rows, cols, xa, stride, o);
      else if (n == 4) matmulQ4kFew4(w, rows, cols, xa, stride, o);
      else if (n == 5) matmulQ4kFew5(w, rows, cols, xa, stride, o);
      else if (n == 6) matmulQ4kFew6(w, rows, cols, xa, stride, o);
      else if (n == 7) matmulQ4kFew7(w, rows, cols, xa, stride, o);
      else matmulQ4kFew8(w, rows, cols, xa, stride, o);
    }
  }
}

// n = 2..8 tokens' Q8A images at xa + i*stride, one pass (n and five are
// constants: each caller below gets its own copy). Per four rows and
// sub-block the weights are loaded once, and each token costs the matvec's
// own work on them into its isq, then per superblock its kFoldSuper: integer
// sums and the same fold, so the matvec's bits. Q4KR: the quads split once;
// per token q4rFewFusedDot times the scales (relaxed-fused) or q4rFewDot16
// widened by a dot with the scales, as kSubRelaxed (relaxed). Q5KR: the
// rows' 128 bytes in eight registers; per token kSub5. Relaxed Q4KR and both
// Q5KR builds store each token's sums, which keeps V8 from hoisting the next
// token's loads. Q5KR reads a byte per weight, so its matvec is bound by
// memory: here the weights are read once for all n tokens.
@inline function matmulKFew(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32, five: bool): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const outStride = <usize>rows << 2;
  // Each token's block sums as int16 (kSumTable), one table after another.
  const tab = scratchBase() + MV_X;
  const ts = ((nb << 1) + 15) & ~(<usize>15);
  for (let i = 0; i < n; i++) kSumTable(xa + <usize>i * stride + q8aSumOff(nb), nb, tab + <usize>i * ts);
  const m = v128.load(VCONST + VC_NIB8);
  const z = i32x4.splat(0);
  const xq0 = xa + q8aQ8Off(nb);
  const t = scratchBase();
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      let q0 = z, q1 = z, q2 = z, q3 = z, q4 = z, q5 = z, q6 = z, q7 = z;
      const xq = xq0 + (sb << 8);
      for (let i: usize = 0; i < 64; i += 8) {
        if (five) {
          const q = kSubOf(p, i, true);
          const w0 = v128.load(q), w1 = v128.load(q, 16), w2 = v128.load(q, 32), w3 = v128.load(q, 48);
          const w4 = v128.load(q, 64), w5 = v128.load(q, 80), w6 = v128.load(q, 96), w7 = v128.load(q, 112);
          const sc = v128.load8x8_u(p + K_SC + (i >> 1));
          const pr = i16x8.shuffle(sc, sc, 0, 0, 1, 1, 2, 2, 3, 3);
          const x = xq + (i << 2);
          q0 = i32x4.add(q0, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x, pr, t));
          q1 = i32x4.add(q1, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride, pr, t));
          if (n > 2) q2 = i32x4.add(q2, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride * 2, pr, t));
          if (n > 3) q3 = i32x4.add(q3, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride * 3, pr, t));
          if (n > 4) q4 = i32x4.add(q4, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride * 4, pr, t));
          if (n > 5) q5 = i32x4.add(q5, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride * 5, pr, t));
          if (n > 6) q6 = i32x4.add(q6, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride * 6, pr, t));
          if (n > 7) q7 = i32x4.add(q7, kFew5(w0, w1, w2, w3, w4, w5, w6, w7, x + stride * 7, pr, t));
        } else {
          const v0 = v128.load(p + (i << 3), 80), v1 = v128.load(p + (i << 3), 96);
          const v2 = v128.load(p + (i << 3), 112), v3 = v128.load(p + (i << 3), 128);
          const l0 = v128.and(v0, m), h0 = v128.and(i16x8.shr_u(v0, 4), m);
          const l1 = v128.and(v1, m), h1 = v128.and(i16x8.shr_u(v1, 4), m);
          const l2 = v128.and(v2, m), h2 = v128.and(i16x8.shr_u(v2, 4), m);
          const l3 = v128.and(v3, m), h3 = v128.and(i16x8.shr_u(v3, 4), m);
          const sc8 = v128.load8x8_u(p + (i >> 1), K_SC);
          const sc = FUSED ? i32x4.extend_low_i16x8_u(sc8) : i16x8.shuffle(sc8, sc8, 0, 0, 1, 1, 2, 2, 3, 3);
          const x = xq + (i << 2);
          q0 = i32x4.add(q0, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x, z, sc, t));
          q1 = i32x4.add(q1, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride, z, sc, t));
          if (n > 2) q2 = i32x4.add(q2, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride * 2, z, sc, t));
          if (n > 3) q3 = i32x4.add(q3, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride * 3, z, sc, t));
          if (n > 4) q4 = i32x4.add(q4, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride * 4, z, sc, t));
          if (n > 5) q5 = i32x4.add(q5, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride * 5, z, sc, t));
          if (n > 6) q6 = i32x4.add(q6, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride * 6, z, sc, t));
          if (n > 7) q7 = i32x4.add(q7, kFewSub(l0, h0, l1, h1, l2, h2, l3, h3, x + stride * 7, z, sc, t));
        }
      }
      const d = h2f_x4_nodenorm(p), dm = h2f_x4_nodenorm(p + 8);
      const xm = tab + (sb << 4), xd = xa + (sb << 5);
      a0 = kFoldSuper(a0, q0, kMinSums(p, xm), d, dm, v128.load32_splat(xd));
      a1 = kFoldSuper(a1, q1, kMinSums(p, xm + ts), d, dm, v128.load32_splat(xd + stride));
      if (n > 2) a2 = kFoldSuper(a2, q2, kMinSums(p, xm + ts * 2), d, dm, v128.load32_splat(xd + stride * 2));
      if (n > 3) a3 = kFoldSuper(a3, q3, kMinSums(p, xm + ts * 3), d, dm, v128.load32_splat(xd + stride * 3));
      if (n > 4) a4 = kFoldSuper(a4, q4, kMinSums(p, xm + ts * 4), d, dm, v128.load32_splat(xd + stride * 4));
      if (n > 5) a5 = kFoldSuper(a5, q5, kMinSums(p, xm + ts * 5), d, dm, v128.load32_splat(xd + stride * 5));
      if (n > 6) a6 = kFoldSuper(a6, q6, kMinSums(p, xm + ts * 6), d, dm, v128.load32_splat(xd + stride * 6));
      if (n > 7) a7 = kFoldSuper(a7, q7, kMinSums(p, xm + ts * 7), d, dm, v128.load32_splat(xd + stride * 7));
      p += kBytes(five);
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// One token's sub-block of the four rows, sc_r * sum q*x in lane r: fused,
// the dots times the widened scales sc; relaxed, the int16 row lanes widened
// by a dot with sc = [sc0, sc0, sc1, sc1, ...], then stored to t.
@inline function kFewSub(l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128, x: usize, z: v128, sc: v128, t: usize): v128 {
  if (FUSED) return i32x4.mul(q4rFewFusedDot(l0, h0, l1, h1, l2, h2, l3, h3, x, z), sc);
  const s = i32x4.dot_i16x8_s(q4rFewDot16(l0, h0, l1, h1, l2, h2, l3, h3, x), sc);
  v128.store(t, s);
  return s;
}

function matmulQ4kFew2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 2, false); }
function matmulQ4kFew3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 3, false); }
function matmulQ4kFew4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 4, false); }
function matmulQ4kFew5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 5, false); }
function matmulQ4kFew6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 6, false); }
function matmulQ4kFew7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 7, false); }
function matmulQ4kFew8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 8, false); }

// Q5KR: one token's sub-block of the four rows, then stored to t.
@inline function kFew5(w0: v128, w1: v128, w2: v128, w3: v128, w4: v128, w5: v128, w6: v128, w7: v128, x: usize, pr: v128, t: usize): v128 {
  const s = kSub5(w0, w1, w2, w3, w4, w5, w6, w7, x, pr);
  v128.store(t, s);
  return s;
}

function matmulQ5kFew2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 2, true); }
function matmulQ5kFew3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 3, true); }
function matmulQ5kFew4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 4, true); }
function matmulQ5kFew5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 5, true); }
function matmulQ5kFew6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 6, true); }
function matmulQ5kFew7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 7, true); }
function matmulQ5kFew8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulKFew(w, rows, cols, xa, stride, out, 8, true); }

// Tokens [t0, t1) of Q8B xb one matvec each, on their Q8A images: kind 4
// Q4KR, 5 Q5KR, 6 Q6R (q6matmul.ts).
export function matvecsPerToken(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize, kind: i32): void {
  const nb = <usize>cols >> 5;
  const xa = scratchBase() + SMALL_X;
  for (let t = t0; t < t1; t++) {
    smallImages(xb, nb, t, 1, xa, 0);
    const o = out + <usize>t * (<usize>rows << 2);
    if (kind == 6) matvec_q6r_q8a(w, rows, cols, xa, o);
    else if (!ASC_FEATURE_SIMD) matvecKScalar(w, rows, cols, xa, o, kind == 5);
    else if (kind == 5) matvecQ5kSimd(w, rows, cols, xa, o);
    else matvecQ4kSimd(w, rows, cols, xa, o);
  }
}

// ---------------------------------------------------------------- dequantize (embedding rows)

// n values (a multiple of 256) of GGUF Q4_K / Q5_K at src -> f32 at dst:
// (d*sc)*q - dmin*m, each product exact in f32, one rounding.
export function dequant_q4_k(src: usize, dst: usize, n: i32): void {
  dequantK(src, dst, n, false);
}

export function dequant_q5_k(src: usize, dst: usize, n: i32): void {
  dequantK(src, dst, n, true);
}

function dequantK(src: usize, dst: usize, n: i32, five: bool): void {
  const nsb = <usize>n >> 8;
  const inB: usize = five ? 176 : 144;
  for (let sb: usize = 0; sb < nsb; sb++) {
    const p = src + sb * inB;
    const d = h2f(load<u16>(p));
    const dm = h2f(load<u16>(p, 2));
    const q = p + (five ? 48 : 16);
    const qh = p + 16;
    for (let j: usize = 0; j < 8; j++) {
      const sm = scaleMin(p + 4, j);
      const ds = d * <f32>(sm & 255), mm = dm * <f32>(sm >> 8);
      const o = dst + (sb << 10) + (j << 7);
      for (let l: usize = 0; l < 32; l++) store<f32>(o + (l << 2), ds * <f32>ggufValue(q, qh, j, l, five) - mm);
    }
  }
}
