// Q8_0 weights: the Q8R layout (repack_q8_0), its matvec (decode) and its
// matmul (prefill, batched decode), bit-identical to one matvec per token.
//
// Q8R: groups of four rows (the last zero-padded); group g at g*nb*144, then
// per 32-column block 144 bytes:
//   d[r0] d[r1] d[r2] d[r3] (4 x f32, the f16 scales converted at load) |
//   qs[r0] (32 x int8) | qs[r1] | qs[r2] | qs[r3]
// The GGUF rows are four short streams 1.6 KiB+ apart, 34-byte blocks read
// unaligned, with four scalar f16 conversions per block; here the kernel
// reads one sequential stream of aligned vectors, and the four scales are one
// load. 8 bytes more per group and block than the file (5.9%), so the repack
// runs in place only from the last group to the first.
//
// The arithmetic is the GGUF kernels': per row and block the exact integer
// dot of the int8 weights and activations, folded as
//   acc += f32(dot) * (d_w * d_x)
// in block order (d_w is h2f of the file's half, exactly), so every build
// agrees with the scalar twin bit for bit.

import { FUSED, scratchBase, h2f, VCONST, VC_ONES16, q8aQ8Off, q8aQ16Off } from "./common";
import {
  MV_X, MM_TOK, MM_DW, MM_ACC, SMALL_X, reduce4, storeRows, storeFew, mmBlock, mmStore, splatPairs,
  q8bToQ8a, smallStride, smallMost, smallImages, foldRows,
} from "./quant";

// Bytes per group of four rows and 32-column block.
const Q8R_BLOCK: usize = 144;

export function q8r_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 5) * Q8R_BLOCK;
}

// GGUF Q8_0 rows (34-byte blocks: f16 d, 32 x int8) -> Q8R. dst == src (in
// place, dst sized q8r_bytes) or disjoint. Each group's source rows are
// copied to scratch first (4 * cols/32 * 34 bytes <= SCRATCH_BYTES: cols up
// to 123360), then written; groups go from the last to the first, so a
// group's destination, which starts at or after its source, only ever
// overwrites bytes already copied.
export function repack_q8_0(src: usize, dst: usize, rows: i32, cols: i32): void {
  const nb = <usize>cols >> 5;
  const rowBytes = nb * 34;
  const tmp = scratchBase();
  for (let g = ((rows + 3) >> 2) - 1; g >= 0; g--) {
    const nr = <usize>min(4, rows - (g << 2));
    memory.copy(tmp, src + <usize>(g << 2) * rowBytes, nr * rowBytes);
    let o = dst + <usize>g * nb * Q8R_BLOCK;
    for (let b: usize = 0; b < nb; b++) {
      for (let r: usize = 0; r < 4; r++) {
        const q = o + 16 + (r << 5);
        if (r < nr) {
          const s = tmp + r * rowBytes + b * 34;
          store<f32>(o + (r << 2), h2f(load<u16>(s)));
          store<u64>(q, load<u64>(s, 2), 0);
          store<u64>(q, load<u64>(s, 10), 8);
          store<u64>(q, load<u64>(s, 18), 16);
          store<u64>(q, load<u64>(s, 26), 24);
        } else {
          store<f32>(o + (r << 2), 0);
          memory.fill(q, 0, 32);
        }
      }
      o += Q8R_BLOCK;
    }
  }
}

// ---------------------------------------------------------------- matvec

// out[r] = sum_b d_w[r,b] * d_x[b] * sum_j w[r,b,j] * x[b,j]
// w: Q8R (rows x cols), xa: Q8A of cols values, out: f32[rows].
export function matvec_q8r_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ8rSimd(w, rows, cols, xa, out);
  else matvecQ8rScalar(w, rows, cols, xa, out);
}

function matvecQ8rScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nb = <usize>cols >> 5;
  const x8 = xa + q8aQ8Off(nb);
  const gBytes = nb * Q8R_BLOCK;
  for (let r = 0; r < rows; r++) {
    const lane = <usize>(r & 3);
    let p = w + <usize>(r >> 2) * gBytes;
    let acc: f32 = 0;
    for (let b: usize = 0; b < nb; b++) {
      const q = p + 16 + (lane << 5);
      const xb = x8 + (b << 5);
      let s: i32 = 0;
      for (let j: usize = 0; j < 32; j++) s += <i32>load<i8>(q + j) * <i32>load<i8>(xb + j);
      acc += <f32>s * (load<f32>(p + (lane << 2)) * load<f32>(xa + (b << 2)));
      p += Q8R_BLOCK;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// acc + f32(s) * (d_w * d_x) for the four rows of the block at p.
@inline function q8rFold(acc: v128, s: v128, p: usize, xd: usize): v128 {
  return foldRows(acc, s, v128.load(p), xd);
}

// Plain SIMD: a row's 32 int8 weights sign-extended to int16 in lane pairs
// (even bytes, odd bytes), against Q8A's permuted int16 activations.
@inline function q8rRow16(q: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const a = v128.load(q);
  const b = v128.load(q, 16);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(a, 8), 8), x0), i32x4.dot_i16x8_s(i16x8.shr_s(a, 8), x1)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(b, 8), 8), x2), i32x4.dot_i16x8_s(i16x8.shr_s(b, 8), x3)),
  );
}

// Relaxed builds: the 7-bit operand is |x| (0..127: the quantizer never
// makes -128) and the signed one the weights with x's sign folded in as a
// one's complement, w' = w ^ m (m = 0 where x >= 0, -1 where x < 0): w' = w
// or -w - 1, always in -128..127, so w = -128 needs no special case. Then
//   sum w' * |x| = sum w * x - sum_{x<0} |x|
// and the block's sum of |x| over its negative values, C (a per-call table,
// as |x| and m), puts the dot back: dot = sum w' * |x| + C. Two-step: each
// pair's dot fits int16 (|.| <= 2*128*127), widened by a dot with ones; C is
// added to the four rows' sums at once. Fused: C starts lane 0 of the int32
// chain, so the 4-row reduction adds it. Per row and block 2 xors and 2
// relaxed dots where the split activations, max(x,0) and max(-x,0), took 4
// dots and 2 subtractions.
@inline function q8rRowRelaxed(qa: v128, qb: v128, xl: v128, ml: v128, xh: v128, mh: v128, c: v128, ones: v128): v128 {
  const a = v128.xor(qa, ml);
  const b = v128.xor(qb, mh);
  if (FUSED) return i32x4.relaxed_dot_i8x16_i7x16_add_s(b, xh, i32x4.relaxed_dot_i8x16_i7x16_add_s(a, xl, c));
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, xl), ones),
    i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(b, xh), ones),
  );
}

// Per-call table at MV_X: per block 80 bytes, |x| (32), the sign masks m
// (32), then C as an i32 in lane 0 of 16 bytes (the fused chain's start).
// It ends below SMALL_X, where the matmul's small path keeps the Q8A it
// passes in, for cols up to 45856 (nb*80 <= SMALL_X - MV_X).
const MV_BLOCK: usize = 80;

// The relaxed builds' per-call table for the Q8A at xa (nb blocks), at t.
function q8rTable(xa: usize, nb: usize, t: usize): void {
  const x8 = xa + q8aQ8Off(nb);
  const zero = i8x16.splat(0);
  for (let b: usize = 0; b < nb; b++) {
    const lo = v128.load(x8 + (b << 5));
    const hi = v128.load(x8 + (b << 5), 16);
    const o = t + b * MV_BLOCK;
    v128.store(o, i8x16.abs(lo));
    v128.store(o, i8x16.abs(hi), 16);
    v128.store(o, i8x16.lt_s(lo, zero), 32);
    v128.store(o, i8x16.lt_s(hi, zero), 48);
    const n = i32x4.extadd_pairwise_i16x8_u(i16x8.add(
      i16x8.extadd_pairwise_i8x16_u(i8x16.max_s(i8x16.neg(lo), zero)),
      i16x8.extadd_pairwise_i8x16_u(i8x16.max_s(i8x16.neg(hi), zero)),
    ));
    const c = (i32x4.extract_lane(n, 0) + i32x4.extract_lane(n, 1)) + (i32x4.extract_lane(n, 2) + i32x4.extract_lane(n, 3));
    v128.store(o, i32x4.replace_lane(i32x4.splat(0), 0, c), 64);
  }
}

// The four rows' integer dots of the block at p; xp: the block's entry in
// the relaxed table, or its permuted int16 activations in Q8A (plain SIMD).
@inline function q8rBlockSimd(p: usize, xp: usize, ones: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return q8rBlockRelaxed(
      v128.load(p, 16), v128.load(p, 32), v128.load(p, 48), v128.load(p, 64),
      v128.load(p, 80), v128.load(p, 96), v128.load(p, 112), v128.load(p, 128), xp, ones,
    );
  }
  const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
  return reduce4(q8rRow16(p + 16, x0, x1, x2, x3), q8rRow16(p + 48, x0, x1, x2, x3), q8rRow16(p + 80, x0, x1, x2, x3), q8rRow16(p + 112, x0, x1, x2, x3));
}

// Relaxed builds: the four rows' integer dots of a block whose weights are
// loaded (row r's halves q_2r, q_2r+1) against its table entry at xp.
@inline function q8rBlockRelaxed(q0: v128, q1: v128, q2: v128, q3: v128, q4: v128, q5: v128, q6: v128, q7: v128, xp: usize, ones: v128): v128 {
  const xl = v128.load(xp), xh = v128.load(xp, 16), ml = v128.load(xp, 32), mh = v128.load(xp, 48);
  const c = v128.load(xp, 64);
  const s = reduce4(
    q8rRowRelaxed(q0, q1, xl, ml, xh, mh, c, ones),
    q8rRowRelaxed(q2, q3, xl, ml, xh, mh, c, ones),
    q8rRowRelaxed(q4, q5, xl, ml, xh, mh, c, ones),
    q8rRowRelaxed(q6, q7, xl, ml, xh, mh, c, ones),
  );
  return FUSED ? s : i32x4.add(s, v128.load32_splat(xp, 64));
}

function matvecQ8rSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nb = <usize>cols >> 5;
  let x0 = xa + q8aQ16Off(nb);
  if (ASC_FEATURE_RELAXED_SIMD) {
    x0 = scratchBase() + MV_X;
    q8rTable(xa, nb, x0);
  }
  const xStep: usize = ASC_FEATURE_RELAXED_SIMD ? MV_BLOCK : 64;
  const ones = v128.load(VCONST + VC_ONES16);
  const xEnd = xa + (nb << 2);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    let xp = x0;
    for (let xd = xa; xd < xEnd; xd += 4) {
      acc = q8rFold(acc, q8rBlockSimd(p, xp, ones), p, xd);
      p += Q8R_BLOCK;
      xp += xStep;
    }
    storeRows(out, r0, rows, acc);
  }
}

// ---------------------------------------------------------------- matmul

// Prefill and batched decode: out[t*rows + r] for ntok tokens given as Q8B
// (q8b_bytes(cols, ntok)); w is Q8R. Bit-identical to ntok calls of
// matvec_q8r_q8a on the same tokens' Q8A. Relaxed-fused build: every token
// count in passes over the weights for up to eight tokens (matmulQ8rSmall).
// SIMD and relaxed builds: one matvec per token on its Q8A image below 16
// tokens, and past that the tile for whole groups of eight tokens and a
// matvec for each of the rest (in Node's relaxed build the pass ran 0.98x of
// the matvecs).
export function matmul_q8r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const outStride = <usize>rows << 2;
  if (!ASC_FEATURE_SIMD) {
    const xa = scratchBase();
    for (let t = 0; t < ntok; t++) {
      q8bToQ8a(xb, nb, t, xa);
      matvecQ8rScalar(w, rows, cols, xa, out + <usize>t * outStride);
    }
    return;
  }
  if (FUSED) {
    // Passes over the weights for a few tokens at a time beat the fused tile
    // at every count measured, 64 tokens included (docs/kernels.md).
    matmulQ8rSmall(w, rows, cols, xb, 0, ntok, out);
    return;
  }
  // One matvec per token beats the 8-token tile below 16 tokens (7 tokens:
  // 1.99 against 2.76 ms at 5632x2048, 8: 2.27 against 2.74, 12: 3.41
  // against 3.82 with a tile; 16: 4.54 against the tile's 4.33), so the tile
  // takes whole 8-token groups from 16 tokens on and the matvecs the rest.
  const tiled = ntok < 16 ? 0 : ntok & ~7;
  if (tiled > 0) matmulQ8rTiles(w, rows, cols, xb, tiled, out);
  const xa = scratchBase() + SMALL_X;
  for (let t = tiled; t < ntok; t++) {
    smallImages(xb, nb, t, 1, xa, 0);
    matvec_q8r_q8a(w, rows, cols, xa, out + <usize>t * outStride);
  }
}

// Relaxed-fused build: tokens [t0, t1) of Q8B xb on their Q8A images, in
// passes over the weights for up to eight tokens at a time (matmulQ8rFew), as
// many as their per-call tables fit below SMALL_X (two or more up to 22,937
// columns; wider, one matvec per token); a lone token takes the matvec.
function matmulQ8rSmall(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const stride = smallStride(nb);
  const xa = scratchBase() + SMALL_X;
  const outStride = <usize>rows << 2;
  const step = max(1, min(smallMost(stride), <i32>((SMALL_X - MV_X) / (nb * MV_BLOCK))));
  for (let t = t0; t < t1; t += step) {
    const n = min(step, t1 - t);
    smallImages(xb, nb, t, n, xa, stride);
    const o = out + <usize>t * outStride;
    if (n == 1) matvec_q8r_q8a(w, rows, cols, xa, o);
    else if (n == 2) matmulQ8rFew2(w, rows, cols, xa, stride, o);
    else if (n == 3) matmulQ8rFew3(w, rows, cols, xa, stride, o);
    else if (n == 4) matmulQ8rFew4(w, rows, cols, xa, stride, o);
    else if (n == 5) matmulQ8rFew5(w, rows, cols, xa, stride, o);
    else if (n == 6) matmulQ8rFew6(w, rows, cols, xa, stride, o);
    else if (n == 7) matmulQ8rFew7(w, rows, cols, xa, stride, o);
    else matmulQ8rFew8(w, rows, cols, xa, stride, o);
  }
}

// n = 2..8 tokens' Q8A images at xa + i*stride, one pass (a constant: each
// caller below gets its own copy). Each token's table (q8rTable) first, one
// after another at MV_X; then per four rows and block the rows' 128 weight
// bytes are loaded once and each token costs the matvec's own work on them
// (q8rBlockRelaxed, foldRows): the matvec's bits. Q8R's matvec is bound by
// reading the weights; here they are read once for all n tokens.
@inline function matmulQ8rFew(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32): void {
  const nb = <usize>cols >> 5;
  const outStride = <usize>rows << 2;
  const tab = scratchBase() + MV_X;
  const ts = nb * MV_BLOCK;
  for (let i = 0; i < n; i++) q8rTable(xa + <usize>i * stride, nb, tab + <usize>i * ts);
  const ones = v128.load(VCONST + VC_ONES16);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    let xp = tab, xd = xa;
    for (let b: usize = 0; b < nb; b++) {
      const q0 = v128.load(p, 16), q1 = v128.load(p, 32), q2 = v128.load(p, 48), q3 = v128.load(p, 64);
      const q4 = v128.load(p, 80), q5 = v128.load(p, 96), q6 = v128.load(p, 112), q7 = v128.load(p, 128);
      const dw = v128.load(p);
      a0 = q8rFewToken(a0, q0, q1, q2, q3, q4, q5, q6, q7, xp, ones, dw, xd);
      a1 = q8rFewToken(a1, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts, ones, dw, xd + stride);
      if (n > 2) a2 = q8rFewToken(a2, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts * 2, ones, dw, xd + stride * 2);
      if (n > 3) a3 = q8rFewToken(a3, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts * 3, ones, dw, xd + stride * 3);
      if (n > 4) a4 = q8rFewToken(a4, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts * 4, ones, dw, xd + stride * 4);
      if (n > 5) a5 = q8rFewToken(a5, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts * 5, ones, dw, xd + stride * 5);
      if (n > 6) a6 = q8rFewToken(a6, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts * 6, ones, dw, xd + stride * 6);
      if (n > 7) a7 = q8rFewToken(a7, q0, q1, q2, q3, q4, q5, q6, q7, xp + ts * 7, ones, dw, xd + stride * 7);
      p += Q8R_BLOCK;
      xp += MV_BLOCK;
      xd += 4;
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

@inline function q8rFewToken(acc: v128, q0: v128, q1: v128, q2: v128, q3: v128, q4: v128, q5: v128, q6: v128, q7: v128,
  xp: usize, ones: v128, dw: v128, xd: usize): v128 {
  return foldRows(acc, q8rBlockRelaxed(q0, q1, q2, q3, q4, q5, q6, q7, xp, ones), dw, xd);
}

function matmulQ8rFew2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 2); }
function matmulQ8rFew3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 3); }
function matmulQ8rFew4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 4); }
function matmulQ8rFew5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 5); }
function matmulQ8rFew6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 6); }
function matmulQ8rFew7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 7); }
function matmulQ8rFew8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ8rFew(w, rows, cols, xa, stride, out, 8); }

// One block row sign-extended to int16 and stored as 16 splatted pairs.
@inline function unpackQ8rRow(ws: usize, r: usize, q: usize): void {
  const a = v128.load(q);
  const b = v128.load(q, 16);
  splatPairs(ws, r, i16x8.extend_low_i8x16_s(a), i16x8.extend_high_i8x16_s(a), i16x8.extend_low_i8x16_s(b), i16x8.extend_high_i8x16_s(b));
}

// The tile of the SIMD and relaxed builds, 4 rows x the chunk's tokens per
// pass: the 16-bit tile (mmBlock), the block's rows unpacked to splatted
// int16 pairs; the relaxed build keeps it because signed weights times signed
// activations need two 8-bit dots per pair, and widening their int16 results
// costs more than the 16-bit dot saves (docs/kernels.md).
function matmulQ8rTiles(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const ws = scratchBase();
  const gStride = nb * 288;
  const gBytes = nb * Q8R_BLOCK;
  for (let t0 = 0; t0 < ntok; t0 += MM_TOK) {
    const tn = min(MM_TOK, ntok - t0);
    const ng = (tn + 3) >> 2;
    const xg0 = xb + <usize>(t0 >> 2) * gStride;
    for (let r0 = 0; r0 < rows; r0 += 4) {
      memory.fill(ws + MM_ACC, 0, <usize>ng << 6);
      let p = w + <usize>(r0 >> 2) * gBytes;
      for (let b: usize = 0; b < nb; b++) {
        v128.store(ws + MM_DW, v128.load(p));
        unpackQ8rRow(ws, 0, p + 16);
        unpackQ8rRow(ws, 1, p + 48);
        unpackQ8rRow(ws, 2, p + 80);
        unpackQ8rRow(ws, 3, p + 112);
        mmBlock(ws, xg0 + b * 288, gStride, ng);
        p += Q8R_BLOCK;
      }
      mmStore(ws, out, rows, r0, t0, tn);
    }
  }
}
