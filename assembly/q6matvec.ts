// Q6R: Q6_K repacked for the 4-row kernels (the output head of most
// published files, and the Q6_K layer matrices of K-quant files), and its
// matvec. Per 32-block of activations a row's integer is
//   s = sc[2b] * sum_{l<16} (q_l - 32) x_l + sc[2b+1] * sum_{l>=16} (q_l - 32) x_l
// exactly (|s| < 2^24), folded as acc + f32(s) * (d_w * d_x), block after
// block: the scalar twin's order, so every build gives the same bits, and
// the same bits as the GGUF-layout matvec (matvec_q6k_q8a in quant.ts).
//
// Layout (q6r_bytes; docs/kernels.md "Memory layouts"): groups of four rows
// (the last zero-padded), group g at g*nsb*840, then per superblock column
// 840 bytes, the four GGUF blocks' bytes rearranged:
//   [0, 8)     d of rows 0..3 (f16)
//   [8, 72)    scale of 16-wide sub-block j, row r at 8 + 4j + r (int8)
//   [72, 840)  the six-bit values, per pair of 32-blocks (2m, 2m+1) 192
//              bytes at 72 + 192m: twelve vectors S(k, j) at + 64k + 16j
//              (k = 0..2, j = 0..3). Bytes 4r..4r+3 of S(k, j) hold, in
//              bits 0..5, values 4j..4j+3 of row r in the 16-wide half
//              k = 0: block 2m's first half, 1: its second, 2: block
//              2m+1's first; their bits 6..7 hold block 2m+1's second
//              half at the same place (value bits 0-1 in S(0, j), 2-3 in
//              S(1, j), 4-5 in S(2, j)).
// Why: a half's four vectors S(k, 0..3) are four rows side by side by
// quads, so a relaxed dot of one with a splatted activation quad puts two
// rows' pair sums in its lanes, and adding the four dots leaves each lane
// the sum over one row's even or odd pairs: the 4-row reduction costs 3 adds
// per half instead of 9 shuffles and adds. A block's values unpack with one
// AND per vector (the odd block's second half: 8 operations), the four rows'
// scales are one 8-byte load, and the fused matmul's block transposed by
// quads is the layout itself. The same 840 bytes per group as the four GGUF
// rows, so a range of whole groups repacks in place on its own (the loader
// repacks as bytes arrive).

import { FUSED, scratchBase, h2f, h2f_x4_nodenorm, q8aQ8Off, q8aQ16Off } from "./common";
import { storeRows, groupToScratch, foldRows } from "./quant";

// @ts-ignore: decorator
@inline export const Q6R_SC: usize = 8;
// @ts-ignore: decorator
@inline export const Q6R_Q: usize = 72;

// Scratch: the per-call activation table (32 bytes per 32-block, see
// q6rTable). The relaxed Q8_0 matvec keeps its own per-call table in the
// same region; only one matvec runs at a time per instance.
// @ts-ignore: decorator
@inline export const Q6R_XT: usize = 16384;

export function q6r_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 8) * 840;
}

// ---------------------------------------------------------------- repack

// @ts-ignore: decorator
@inline const NIB8: u64 = 0x0f0f0f0f0f0f0f0f;
// @ts-ignore: decorator
@inline const LOW2: u64 = 0x0303030303030303;

// Eight six-bit values (elements 32b + l .. + 7 of a GGUF Q6_K block at p) in
// eight bytes: the low nibble from ql, the bit pair from qh.
@inline function ggufQ6x8(p: usize, b: usize, l: usize): u64 {
  const h = b >> 2, k = b & 3;
  const L = load<u64>(p + (h << 6) + ((k & 1) << 5) + l);
  const H = load<u64>(p + 128 + (h << 5) + l);
  const lo = (k >= 2 ? L >> 4 : L) & NIB8;
  return lo | (((H >> (<u64>k << 1)) & LOW2) << 4);
}

// Eight values (two quads) of one row: quad 2w to S(k, 2w), 2w+1 to S(k, 2w+1).
@inline function q6rStoreQuads(p: usize, v: u64): void {
  store<u32>(p, <u32>v);
  store<u32>(p + 16, <u32>(v >> 32));
}

// GGUF Q6_K rows -> Q6R; dst == src (in place, dst sized q6r_bytes) or
// disjoint. Eight values at a time in 64-bit words, the same code in every
// build.
export function repack_q6_k(src: usize, dst: usize, rows: i32, cols: i32): void {
  const nsb = <usize>cols >> 8;
  const rowBytes = nsb * 210;
  for (let g = 0; g < ((rows + 3) >> 2); g++) {
    const tmp = groupToScratch(src, rows, g, rowBytes);
    let o = dst + <usize>g * nsb * 840;
    for (let sb: usize = 0; sb < nsb; sb++) {
      for (let r: usize = 0; r < 4; r++) {
        const p = tmp + r * rowBytes + sb * 210;
        store<u16>(o + (r << 1), load<u16>(p, 208));
        for (let j: usize = 0; j < 16; j++) store<i8>(o + Q6R_SC + (j << 2) + r, load<i8>(p + 192 + j));
        for (let m: usize = 0; m < 4; m++) {
          const v = o + Q6R_Q + m * 192 + (r << 2);
          const b = m << 1;
          for (let w: usize = 0; w < 2; w++) {
            const l = w << 3;
            const e = ggufQ6x8(p, b + 1, 16 + l);
            q6rStoreQuads(v + (w << 5), ggufQ6x8(p, b, l) | ((e & LOW2) << 6));
            q6rStoreQuads(v + 64 + (w << 5), ggufQ6x8(p, b, 16 + l) | (((e >> 2) & LOW2) << 6));
            q6rStoreQuads(v + 128 + (w << 5), ggufQ6x8(p, b + 1, l) | (((e >> 4) & LOW2) << 6));
          }
        }
      }
      o += 840;
    }
  }
}

// ---------------------------------------------------------------- matvec

// w: Q6R (rows x cols), xa: Q8A of cols values (cols % 256 = 0), out: f32[rows].
export function matvec_q6r_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ6rSimd(w, rows, cols, xa, out);
  else matvecQ6rScalar(w, rows, cols, xa, out);
}

// Value l (0..31) of 32-block b (0..7) of row r in the Q6R superblock
// column at p, minus 32.
@inline function q6rAt(p: usize, r: usize, b: usize, l: usize): i32 {
  const i = l & 15;
  const v = p + Q6R_Q + (b >> 1) * 192 + ((i >> 2) << 4) + (r << 2) + (i & 3);
  if ((b & 1) == 0) return (<i32>load<u8>(v + ((l >> 4) << 6)) & 63) - 32;
  if (l < 16) return (<i32>load<u8>(v + 128) & 63) - 32;
  return ((<i32>load<u8>(v) >> 6) | ((<i32>load<u8>(v + 64) >> 6) << 2) | ((<i32>load<u8>(v + 128) >> 6) << 4)) - 32;
}

function matvecQ6rScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nsb = <usize>cols >> 8;
  const x8 = xa + q8aQ8Off(nsb << 3);
  for (let r = 0; r < rows; r++) {
    const rr = <usize>(r & 3);
    let p = w + <usize>(r >> 2) * nsb * 840;
    let acc: f32 = 0;
    let xb: usize = 0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      const d = h2f(load<u16>(p + (rr << 1)));
      for (let b: usize = 0; b < 8; b++) {
        let s: i32 = 0;
        for (let half: usize = 0; half < 2; half++) {
          let t: i32 = 0;
          for (let l = half << 4; l < (half << 4) + 16; l++) t += q6rAt(p, rr, b, l) * <i32>load<i8>(x8 + (xb << 5) + l);
          s += t * <i32>load<i8>(p + Q6R_SC + (((b << 1) + half) << 2) + rr);
        }
        acc += <f32>s * (d * load<f32>(xa + (xb << 2)));
        xb++;
      }
      p += 840;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// Bits 6..7 of S(0, j), S(1, j), S(2, j) -> the odd block's second half (0..63).
@inline export function q6rTop(v1: v128, v2: v128, v3: v128, mc: v128): v128 {
  return v128.or(
    v128.or(i16x8.shr_u(v128.and(v1, mc), 6), i16x8.shr_u(v128.and(v2, mc), 4)),
    i16x8.shr_u(v128.and(v3, mc), 2),
  );
}

// The four rows' values 4j..4j+3 of half h of block b (0..7) of the Q6R
// superblock column at p, side by side (row r at bytes 4r..4r+3).
@inline export function q6rQuads(p: usize, b: usize, h: usize, j: usize, m6: v128, mc: v128): v128 {
  const v = p + Q6R_Q + (b >> 1) * 192 + (j << 4);
  if ((b & 1) == 0) return v128.and(v128.load(v + (h << 6)), m6);
  if (h == 0) return v128.and(v128.load(v, 128), m6);
  return q6rTop(v128.load(v), v128.load(v, 64), v128.load(v, 128), mc);
}

// Per-call table of -32*sum(x) per 32-block and 16-wide half, two vectors
// per block. Relaxed: int16 lanes [e, o, e, o, ...], e over the pairs 0, 2,
// 4, 6 and o over 1, 3, 5, 7 (what q6rHalfRelaxed's lanes sum); SIMD and
// relaxed-fused: the half's in every int32 lane.
export function q6rTable(x8: usize, nb: usize, xt: usize): void {
  for (let j: usize = 0; j < (nb << 5); j += 16) {
    const p = i16x8.extadd_pairwise_i8x16_s(v128.load(x8 + j));
    if (ASC_FEATURE_RELAXED_SIMD && !FUSED) {
      const t = i16x8.add(p, i32x4.shuffle(p, p, 2, 3, 0, 1));
      v128.store(xt + j, i16x8.neg(i16x8.shl(i16x8.add(t, i32x4.shuffle(t, t, 1, 0, 3, 2)), 5)));
    } else {
      const q = i32x4.extadd_pairwise_i16x8_s(p);
      const t = i32x4.add(q, i32x4.shuffle(q, q, 2, 3, 0, 1));
      v128.store(xt + j, i32x4.neg(i32x4.shl(i32x4.add(t, i32x4.shuffle(t, t, 1, 0, 3, 2)), 5)));
    }
  }
}

// Masks in static memory: loaded once per call they stay in registers
// (written inline, V8 rematerializes them in the loop: docs/kernels.md,
// Memory layouts, Constants).
// @ts-ignore: decorator
@inline export const M6: usize = 0;
// @ts-ignore: decorator
@inline export const MC: usize = 16;
// @ts-ignore: decorator
@inline const M8: usize = 32;
export const Q6R_CONST: usize = memory.data<u8>([
  0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
  0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
  0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0,
], 16);

// Relaxed builds, half h of block b, four rows: quad j of the activations
// (x[4j..4j+3] splatted) against S(., j), whose lanes are then
// [r0: pair 2j, r0: pair 2j+1, r1: ..., r3: pair 2j+1] (values 0..63, the
// 7-bit operand; |pair| <= 2*63*127). Relaxed: the four dots added in
// wrapping int16 to the table's -32*sum(x) of the same eight values leave
// [r0e, r0o, r1e, ..., r3o], each sum (q - 32) x over one row's even or odd
// pairs, |.| <= 8*32*127 = 32512: the wrapped lanes are exact.
// Relaxed-fused: the fused dot adds each row's four products to its int32
// lane, so four fused dots from -32*sum(x) of the half give the row's exact
// sum with no reduction at all (workerd: one AVX-VNNI instruction each).
@inline function q6rDot(x: v128, q: v128, acc: v128): v128 {
  if (FUSED) return i32x4.relaxed_dot_i8x16_i7x16_add_s(x, q, acc);
  return i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(x, q));
}

@inline function q6rHalfRelaxed(p: usize, b: usize, h: usize, xq: usize, xt: usize, t: usize, m6: v128, mc: v128): v128 {
  let a = q6rDot(v128.load32_splat(xq), q6rQuads(p, b, h, 0, m6, mc), v128.load(xt));
  a = q6rDot(v128.load32_splat(xq, 4), q6rQuads(p, b, h, 1, m6, mc), a);
  // Stores to scratch order the loads after them: V8 would otherwise load
  // all of a block's quads first and spill them.
  v128.store(t, a, 16);
  a = q6rDot(v128.load32_splat(xq, 8), q6rQuads(p, b, h, 2, m6, mc), a);
  a = q6rDot(v128.load32_splat(xq, 12), q6rQuads(p, b, h, 3, m6, mc), a);
  v128.store(t, a, 32);
  return a;
}

// Both halves times the rows' scales, [s_r] per row in int32. Relaxed: one
// dot per half with [s0, s0, s1, s1, ...] widens and scales the int16 sums.
@inline function q6rBlockRelaxed(p: usize, b: usize, xq: usize, xt: usize, t: usize, m6: v128, mc: v128): v128 {
  const s0 = q6rHalfRelaxed(p, b, 0, xq, xt, t, m6, mc);
  const s1 = q6rHalfRelaxed(p, b, 1, xq + 16, xt + 16, t, m6, mc);
  const sv = v128.load8x8_s(p + Q6R_SC + (b << 3));
  if (FUSED) return i32x4.add(i32x4.mul(s0, i32x4.extend_low_i16x8_s(sv)), i32x4.mul(s1, i32x4.extend_high_i16x8_s(sv)));
  return i32x4.add(
    i32x4.dot_i16x8_s(s0, i16x8.shuffle(sv, sv, 0, 0, 1, 1, 2, 2, 3, 3)),
    i32x4.dot_i16x8_s(s1, i16x8.shuffle(sv, sv, 4, 4, 5, 5, 6, 6, 7, 7)),
  );
}

// SIMD build, half h: the quads' even bytes (values 4j, 4j+2 of each row) and
// odd bytes (4j+1, 4j+3) as int16 against Q8A's permuted int16 section
// (x0, x2, .. | x1, x3, ..: x[4j], x[4j+2] are one int32 there, splatted):
// each dot's int32 lanes are the four rows, so the rows need no reduction.
// Raw sum q*x per row (|.| <= 16*63*127), plus the table's -32*sum(x).
@inline function q6rQuadSimd(p: usize, b: usize, h: usize, j: usize, xs: usize, m6: v128, mc: v128, m8: v128): v128 {
  const q = q6rQuads(p, b, h, j, m6, mc);
  return i32x4.add(
    i32x4.dot_i16x8_s(v128.and(q, m8), v128.load32_splat(xs + (j << 2))),
    i32x4.dot_i16x8_s(i16x8.shr_u(q, 8), v128.load32_splat(xs + 16 + (j << 2))),
  );
}

@inline function q6rHalfSimd(p: usize, b: usize, h: usize, xs: usize, xt: usize, t: usize, m6: v128, mc: v128, m8: v128): v128 {
  const a = i32x4.add(q6rQuadSimd(p, b, h, 0, xs, m6, mc, m8), q6rQuadSimd(p, b, h, 1, xs, m6, mc, m8));
  v128.store(t, a, 16); // orders the loads after it, as in q6rHalfRelaxed
  const s = i32x4.add(i32x4.add(a, i32x4.add(q6rQuadSimd(p, b, h, 2, xs, m6, mc, m8), q6rQuadSimd(p, b, h, 3, xs, m6, mc, m8))), v128.load(xt));
  v128.store(t, s, 32);
  return s;
}

@inline function q6rBlockSimd(p: usize, b: usize, x16: usize, xt: usize, t: usize, m6: v128, mc: v128, m8: v128): v128 {
  const s0 = q6rHalfSimd(p, b, 0, x16, xt, t, m6, mc, m8);
  const s1 = q6rHalfSimd(p, b, 1, x16 + 32, xt + 16, t, m6, mc, m8);
  const sv = v128.load8x8_s(p + Q6R_SC + (b << 3));
  return i32x4.add(i32x4.mul(s0, i32x4.extend_low_i16x8_s(sv)), i32x4.mul(s1, i32x4.extend_high_i16x8_s(sv)));
}

// acc + f32(s) * (d_w * d_x) for block b (0..7) of the superblock column at
// p; the store of acc to scratch orders the next block's loads after this
// block's work (V8 would hoist them and spill).
@inline function q6rStep(acc: v128, p: usize, b: usize, dd: v128, xa: usize, xb: usize, x8: usize, x16: usize, xt: usize, t: usize, m6: v128, mc: v128, m8: v128): v128 {
  const g = xb + b;
  const s = ASC_FEATURE_RELAXED_SIMD
    ? q6rBlockRelaxed(p, b, x8 + (g << 5), xt + (g << 5), t, m6, mc)
    : q6rBlockSimd(p, b, x16 + (g << 6), xt + (g << 5), t, m6, mc, m8);
  const a = foldRows(acc, s, dd, xa + (g << 2));
  v128.store(t, a);
  return a;
}


function matvecQ6rSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const x8 = xa + q8aQ8Off(nb);
  const x16 = xa + q8aQ16Off(nb);
  const t = scratchBase();
  const xt = t + Q6R_XT;
  q6rTable(x8, nb, xt);
  const m6 = v128.load(Q6R_CONST + M6), mc = v128.load(Q6R_CONST + MC), m8 = v128.load(Q6R_CONST + M8);
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let p = w + <usize>(r0 >> 2) * nsb * 840;
    let acc = f32x4.splat(0);
    for (let xb: usize = 0; xb < nb; xb += 8) {
      const dd = h2f_x4_nodenorm(p);
      // Unrolled so that each block's offsets are constants.
      acc = q6rStep(acc, p, 0, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 1, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 2, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 3, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 4, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 5, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 6, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      acc = q6rStep(acc, p, 7, dd, xa, xb, x8, x16, xt, t, m6, mc, m8);
      p += 840;
    }
    storeRows(out, r0, rows, acc);
  }
}
