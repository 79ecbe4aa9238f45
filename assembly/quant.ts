// Quantized matrix-vector (decode) and matrix-matrix (prefill) kernels.
// Weights: Q4R (repacked Q4_0, see repack_q4_0) and GGUF Q6_K. Q6R, the
// repacked Q6_K, is in q6matvec.ts; Q8_0 (Q8R) is in q8quant.ts.
// Activations: Q8A (see common.ts) for matvecs, Q8B (see quantize_q8b) for
// the prefill matmuls; both carry the same int8 values and scales.
//
// Every dot product is computed per 32-block in exact integer arithmetic and
// folded into an f32 accumulator per output, block after block, as
//   acc += f32(int_dot) * (d_w * d_x)
// The SIMD matvecs keep four rows in the four lanes of one accumulator
// (transposing the per-row integer partial sums), the matmuls four tokens,
// so the order of f32 operations per output is the same as in the scalar
// twins: all builds agree bit for bit, which the start-up self-test relies on.

import {
  FUSED, SCRATCH_BYTES, scratchBase, h2f, h2f_x4, h2fBits_x4c, VCONST, VC_NIB8, VC_NIB16, VC_ONES16, VC_HMASK, VC_EVEN16, VC_ODD16, VC_Q6M4, VC_Q6M2,
  q8aSumOff, q8aQ8Off, q8aQ16Off, q8aBytes,
} from "./common";

// ---------------------------------------------------------------- sizes

export function q8a_bytes(n: i32): usize {
  return q8aBytes(<usize>n >> 5);
}

export function q4r_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 5) * 72;
}

// ---------------------------------------------------------------- activations

// f32[n] -> Q8A, d = max|x|/127, q = round-half-even(x * (1/d)). The SIMD
// builds do the scalar loop's f32 operations four lanes at a time
// (q8BlockSimd), so the Q8A bytes are identical across builds (the kernel
// tests compare them with a TS reference per build). Was scalar: 1.5 ms per
// decoded token, 1.3 ms per prompt token on the 1.6B shape.
export function quantize_q8a(x: usize, n: i32, dst: usize): void {
  quantizeQ8a(x, n, dst, false);
}

// The same bytes with one d per 256 values (n % 256 = 0): d = max|x| over the
// block's superblock / 127, written for each of its eight blocks, so the
// K-quant kernels keep a superblock's sums in int32 (docs/kernels.md, "The
// K-quants"); every other kernel reads it as ordinary Q8A.
export function quantize_q8a_k(x: usize, n: i32, dst: usize): void {
  quantizeQ8a(x, n, dst, true);
}

// max|x| over the block of b (32 values) or, with `sb`, over its superblock
// (256 values) of the row at x. A NaN is skipped (the scalar `>`, pmax).
@inline function blockAmax(x: usize, b: usize, sb: bool): f32 {
  const p = sb ? x + ((b >> 3) << 10) : x + (b << 7);
  const bytes: usize = sb ? 1024 : 128;
  if (ASC_FEATURE_SIMD) {
    let m = f32x4.splat(0);
    for (let j: usize = 0; j < bytes; j += 16) m = f32x4.pmax(m, f32x4.abs(v128.load(p + j)));
    m = f32x4.pmax(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
    m = f32x4.pmax(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
    return f32x4.extract_lane(m, 0);
  }
  let amax: f32 = 0;
  for (let j: usize = 0; j < bytes; j += 4) {
    const a = abs<f32>(load<f32>(p + j));
    if (a > amax) amax = a;
  }
  return amax;
}

@inline function quantizeQ8a(x: usize, n: i32, dst: usize, sb: bool): void {
  const nb = <usize>n >> 5;
  const sOff = q8aSumOff(nb);
  const q8 = dst + q8aQ8Off(nb);
  const q16 = dst + q8aQ16Off(nb);
  let amax: f32 = 0;
  for (let b: usize = 0; b < nb; b++) {
    const xb = x + (b << 7);
    if (!sb || (b & 7) == 0) amax = blockAmax(x, b, sb);
    if (ASC_FEATURE_SIMD) {
      const d = q8BlockSimd(xb, amax);
      store<f32>(dst + (b << 2), d);
      const t = scratchBase() + Q8T;
      const v0 = v128.load(t), v1 = v128.load(t, 16), v2 = v128.load(t, 32), v3 = v128.load(t, 48);
      v128.store(q8 + (b << 5), i8x16.narrow_i16x8_s(v0, v1));
      v128.store(q8 + (b << 5), i8x16.narrow_i16x8_s(v2, v3), 16);
      const o16 = q16 + (b << 6);
      v128.store(o16, i16x8.shuffle(v0, v1, 0, 2, 4, 6, 8, 10, 12, 14));
      v128.store(o16, i16x8.shuffle(v0, v1, 1, 3, 5, 7, 9, 11, 13, 15), 16);
      v128.store(o16, i16x8.shuffle(v2, v3, 0, 2, 4, 6, 8, 10, 12, 14), 32);
      v128.store(o16, i16x8.shuffle(v2, v3, 1, 3, 5, 7, 9, 11, 13, 15), 48);
      store<i32>(dst + sOff + (b << 2), load<i32>(t, 64));
      continue;
    }
    const d = amax / <f32>127;
    const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
    store<f32>(dst + (b << 2), d);
    let sum: i32 = 0;
    const o8 = q8 + (b << 5);
    const o16 = q16 + (b << 6);
    for (let j: usize = 0; j < 32; j++) {
      const q = <i32>nearest<f32>(load<f32>(xb + (j << 2)) * id);
      sum += q;
      store<i8>(o8 + j, <i8>q);
      const pos = ((j >> 4) << 4) + ((j & 1) << 3) + ((j & 15) >> 1);
      store<i16>(o16 + (pos << 1), <i16>q);
    }
    store<i32>(dst + sOff + (b << 2), sum);
  }
}

// Scratch offset of q8BlockSimd's output: 4 x i16x8 (q0..q31), then the i32 sum.
const Q8T: usize = 8192;

// SIMD twin of one block of the scalar quantizer above (same d, same q, same
// sum, bit for bit), given the block's amax (blockAmax): q =
// trunc(nearest(x * id)). Writes q as int16 (natural order) and the sum to
// scratch at Q8T; returns d.
@inline function q8BlockSimd(xb: usize, amax: f32): f32 {
  const d = amax / <f32>127;
  const id = f32x4.splat(d != 0 ? <f32>1 / d : <f32>0);
  const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb), id)));
  const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 16), id)));
  const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 32), id)));
  const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 48), id)));
  const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 64), id)));
  const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 80), id)));
  const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 96), id)));
  const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb, 112), id)));
  let sv = i32x4.add(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7)));
  sv = i32x4.add(sv, i32x4.shuffle(sv, sv, 2, 3, 0, 1));
  sv = i32x4.add(sv, i32x4.shuffle(sv, sv, 1, 0, 3, 2));
  const t = scratchBase() + Q8T;
  v128.store(t, i16x8.narrow_i32x4_s(q0, q1));
  v128.store(t, i16x8.narrow_i32x4_s(q2, q3), 16);
  v128.store(t, i16x8.narrow_i32x4_s(q4, q5), 32);
  v128.store(t, i16x8.narrow_i32x4_s(q6, q7), 48);
  store<i32>(t, i32x4.extract_lane(sv, 0), 64);
  return d;
}

// ---------------------------------------------------------------- Q4_0 repack

// Rows 4g..4g+3 of src (rowBytes each) copied to scratch, rows past the end
// zeroed: a repack reads its group from there, so it may write over src.
@inline export function groupToScratch(src: usize, rows: i32, g: i32, rowBytes: usize): usize {
  const tmp = scratchBase();
  const nr = min(4, rows - (g << 2));
  memory.copy(tmp, src + <usize>(g << 2) * rowBytes, <usize>nr * rowBytes);
  if (nr < 4) memory.fill(tmp + <usize>nr * rowBytes, 0, <usize>(4 - nr) * rowBytes);
  return tmp;
}

// Row k of four rows side by side by quads (v_j: the rows' quads j, row r
// at bytes 4r..4r+3): the rows' 4x4 transpose of 32-bit words. Pure, so V8
// shares the shuffles between the four calls on the same vectors.
@inline export function rowOfQuads(v0: v128, v1: v128, v2: v128, v3: v128, k: i32): v128 {
  if (k == 0) return i32x4.shuffle(i32x4.shuffle(v0, v1, 0, 4, 1, 5), i32x4.shuffle(v2, v3, 0, 4, 1, 5), 0, 1, 4, 5);
  if (k == 1) return i32x4.shuffle(i32x4.shuffle(v0, v1, 0, 4, 1, 5), i32x4.shuffle(v2, v3, 0, 4, 1, 5), 2, 3, 6, 7);
  if (k == 2) return i32x4.shuffle(i32x4.shuffle(v0, v1, 2, 6, 3, 7), i32x4.shuffle(v2, v3, 2, 6, 3, 7), 0, 1, 4, 5);
  return i32x4.shuffle(i32x4.shuffle(v0, v1, 2, 6, 3, 7), i32x4.shuffle(v2, v3, 2, 6, 3, 7), 2, 3, 6, 7);
}

// GGUF Q4_0 rows (18-byte blocks: f16 d, 16 nibble bytes) -> Q4R.
// Q4R: groups of 4 rows (the last group zero-padded); group g starts at
// dst + g*nb*72 and holds, for each column block b, 72 bytes:
//   d[r0] d[r1] d[r2] d[r3] (4 x f16) | V(0) | V(1) | V(2) | V(3)
// where bytes 4r..4r+3 of V(k) (16 B) are row r's GGUF nibble bytes
// 4k..4k+3 (byte l holds q_l | q_{l+16} << 4): the four rows side by side by
// quads, so the relaxed matvec's dots land in row lanes with no 4-row
// reduction (docs/kernels.md, Memory layouts). A group occupies exactly the bytes its four
// source rows did, so dst == src (in place) works; otherwise src and dst must
// not overlap. dst needs q4r_bytes(rows, cols). Uses the scratch region
// (4 rows: cols/32*72 bytes <= SCRATCH_BYTES).
export function repack_q4_0(src: usize, dst: usize, rows: i32, cols: i32): void {
  const nb = <usize>cols >> 5;
  const rowBytes = nb * 18;
  const groups = (rows + 3) >> 2;
  for (let g = 0; g < groups; g++) {
    const tmp = groupToScratch(src, rows, g, rowBytes);
    let o = dst + <usize>g * nb * 72;
    let s = tmp;
    for (let b: usize = 0; b < nb; b++) {
      if (ASC_FEATURE_SIMD) {
        // Same bytes, fewer moves: 16-byte loads and stores.
        store<u16>(o, load<u16>(s));
        store<u16>(o, load<u16>(s + rowBytes), 2);
        store<u16>(o, load<u16>(s + rowBytes * 2), 4);
        store<u16>(o, load<u16>(s + rowBytes * 3), 6);
        // The rows' nibbles transposed by quads (the same transpose turns quads back into rows).
        const R0 = v128.load(s, 2), R1 = v128.load(s + rowBytes, 2), R2 = v128.load(s + rowBytes * 2, 2), R3 = v128.load(s + rowBytes * 3, 2);
        v128.store(o, rowOfQuads(R0, R1, R2, R3, 0), 8);
        v128.store(o, rowOfQuads(R0, R1, R2, R3, 1), 24);
        v128.store(o, rowOfQuads(R0, R1, R2, R3, 2), 40);
        v128.store(o, rowOfQuads(R0, R1, R2, R3, 3), 56);
      } else {
        for (let r: usize = 0; r < 4; r++) {
          const sr = s + r * rowBytes;
          store<u16>(o + (r << 1), load<u16>(sr));
          for (let k: usize = 0; k < 4; k++) store<u32>(o + 8 + (k << 4) + (r << 2), load<u32>(sr + 2 + (k << 2)));
        }
      }
      s += 18;
      o += 72;
    }
  }
}

// ---------------------------------------------------------------- SIMD helpers

// One Q4_0 block row (16 nibble bytes as 8 int16 lanes) dotted with the
// permuted int16 activations; nibbles are unsigned (0..15), the -8 offset is
// applied once per block through the activation block sum.
@inline export function dotNib16(v: v128, x0: v128, x1: v128, x2: v128, x3: v128, m: v128): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(v, m), x0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 8), m), x1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 4), m), x2), i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), x3)),
  );
}

// Relaxed: a row's 32 values as bytes (lo: elements 0..15, hi: 16..31; the
// 7-bit operand, so 0..127) against its activations xl, xh (the signed one),
// left in int16: lane i holds two pairs' dots of both halves, |lane| <=
// 2*2*v*127 for values <= v (Q4_0/Q4_1 nibbles 7620, five-bit values 15748).
@inline export function rowDot16(xl: v128, xh: v128, lo: v128, hi: v128): v128 {
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, lo), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi));
}

// The same as int32 partial sums (values <= 31): one fused chain where the
// build has it, else the int16 pair sums widened.
@inline export function rowDot32(xl: v128, xh: v128, lo: v128, hi: v128): v128 {
  if (FUSED) return i32x4.relaxed_dot_i8x16_i7x16_add_s(xh, hi, i32x4.relaxed_dot_i8x16_i7x16_add_s(xl, lo, i32x4.splat(0)));
  return i32x4.extadd_pairwise_i16x8_s(rowDot16(xl, xh, lo, hi));
}

// rowDot16 of a row's 16 nibble bytes v (nibbles 0..15: a valid 7-bit operand).
@inline export function nibRelaxed16(v: v128, xlo: v128, xhi: v128, m: v128): v128 {
  return rowDot16(xlo, xhi, v128.and(v, m), v128.and(i16x8.shr_u(v, 4), m));
}

// [sum(r0), sum(r1), sum(r2), sum(r3)] from four rows' int16x8 partials
// (|lane| <= 7620): two transpose-and-add steps in int16 (lanes then hold
// sums of four, <= 30480: still exact), then one widening pairwise add (a dot
// with ones). 5 shuffles, 3 adds and 1 pmaddwd instead of 4 widenings and
// the 32-bit reduce4.
@inline export function reduce4i16(p0: v128, p1: v128, p2: v128, p3: v128, ones: v128): v128 {
  const a = i16x8.add(i32x4.shuffle(p0, p1, 0, 4, 1, 5), i32x4.shuffle(p0, p1, 2, 6, 3, 7));
  const c = i16x8.add(i32x4.shuffle(p2, p3, 0, 4, 1, 5), i32x4.shuffle(p2, p3, 2, 6, 3, 7));
  return i32x4.dot_i16x8_s(i16x8.add(i32x4.shuffle(a, c, 0, 1, 4, 5), i32x4.shuffle(a, c, 2, 3, 6, 7)), ones);
}

// [sum(r0), sum(r1), sum(r2), sum(r3)] from four int32x4 partial sums.
@inline export function reduce4(r0: v128, r1: v128, r2: v128, r3: v128): v128 {
  const a = i32x4.add(i32x4.shuffle(r0, r1, 0, 1, 4, 5), i32x4.shuffle(r0, r1, 2, 3, 6, 7));
  const c = i32x4.add(i32x4.shuffle(r2, r3, 0, 1, 4, 5), i32x4.shuffle(r2, r3, 2, 3, 6, 7));
  return i32x4.add(i32x4.shuffle(a, c, 0, 2, 4, 6), i32x4.shuffle(a, c, 1, 3, 5, 7));
}

@inline function f32x4of(a: f32, b: f32, c: f32, d: f32): v128 {
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(a), 1, b), 2, c), 3, d);
}

@inline export function storeRows(out: usize, r0: i32, rows: i32, acc: v128): void {
  if (r0 + 4 <= rows) {
    v128.store(out + (<usize>r0 << 2), acc);
  } else {
    const n = rows - r0;
    store<f32>(out + (<usize>r0 << 2), f32x4.extract_lane(acc, 0));
    if (n > 1) store<f32>(out + (<usize>r0 << 2), f32x4.extract_lane(acc, 1), 4);
    if (n > 2) store<f32>(out + (<usize>r0 << 2), f32x4.extract_lane(acc, 2), 8);
  }
}

// A few-token pass's rows r0..r0+3 of its n (2..8, a constant where it is
// inlined) tokens: accumulator a_i to out + i*outStride.
@inline export function storeFew(out: usize, outStride: usize, r0: i32, rows: i32, n: i32,
  a0: v128, a1: v128, a2: v128, a3: v128, a4: v128, a5: v128, a6: v128, a7: v128): void {
  storeRows(out, r0, rows, a0);
  storeRows(out + outStride, r0, rows, a1);
  if (n > 2) storeRows(out + outStride * 2, r0, rows, a2);
  if (n > 3) storeRows(out + outStride * 3, r0, rows, a3);
  if (n > 4) storeRows(out + outStride * 4, r0, rows, a4);
  if (n > 5) storeRows(out + outStride * 5, r0, rows, a5);
  if (n > 6) storeRows(out + outStride * 6, r0, rows, a6);
  if (n > 7) storeRows(out + outStride * 7, r0, rows, a7);
}

// acc + f32(s) * (d_w * d_x) for four rows' exact integer sums s of one
// block, d_w the rows' scales, d_x the f32 at d: the scalar twins' order (the
// Q6R and Q8R kernels' fold).
@inline export function foldRows(acc: v128, s: v128, dw: v128, d: usize): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(dw, v128.load32_splat(d))));
}

// ---------------------------------------------------------------- Q4R x Q8A

// out[r] = sum_b d_w[r,b] * d_x[b] * sum_j (q[r,b,j] - 8) * x[b,j]
// w: Q4R (rows x cols), xa: Q8A of cols values, out: f32[rows].
export function matvec_q4r_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ4rSimd(w, rows, cols, xa, out);
  else matvecQ4rScalar(w, rows, cols, xa, out);
}

// Relaxed: four rows side by side by quads at q (V(k) at q + 16k: the rows'
// nibble bytes 4k..4k+3; Q4R's block, a Q4KR sub-block) against their 32
// activations at x: a relaxed dot of V(k)'s low nibbles with x[4k..4k+3]
// splatted puts row r's two pair sums in lanes 2r, 2r+1 (high nibbles:
// x[16+4k..]), so the eight dots add up in row lanes: [r0 even pairs, r0 odd
// pairs, r1 ..., r3 odd], each the sum of eight pairs of q*x, |.| <=
// 8*2*15*127 = 30480 (no wrap). The store to scratch t orders the last two
// quads' loads after it (V8 would load all four weight vectors and eight
// activation splats first, and spill).
@inline export function quadsNibRelaxed(q: usize, x: usize, m: v128, t: usize): v128 {
  const v0 = v128.load(q), v1 = v128.load(q, 16);
  let a = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x), v128.and(v0, m));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 16), v128.and(i16x8.shr_u(v0, 4), m)));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 4), v128.and(v1, m)));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 20), v128.and(i16x8.shr_u(v1, 4), m)));
  v128.store(t, a);
  const v2 = v128.load(q, 32), v3 = v128.load(q, 48);
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 8), v128.and(v2, m)));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 24), v128.and(i16x8.shr_u(v2, 4), m)));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 12), v128.and(v3, m)));
  return i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 28), v128.and(i16x8.shr_u(v3, 4), m)));
}

// Plain SIMD build: the four rows' quads at q (V(k) at q + 16k) against a
// block's permuted int16 activations at x (Q8A: each 16-value half's even
// elements, then its odd ones). V(k) as int16 lanes holds, per row, values
// (4k, 4k+1) and (4k+2, 4k+3) with 16 added in the high nibbles, so
// dotNib16's four masks pair each lane with x[4k], x[4k+2] (one int32 of the
// even section, splatted), x[4k+1], x[4k+3], and the same at 16 + 4k: every
// dot lands in the row's int32 lane, with no 4-row reduction. Exact row sums
// of q*x. The store to scratch t orders the last two quads' loads after it.
@inline export function quadsNibSimd(q: usize, x: usize, m: v128, t: usize): v128 {
  let a = dotNib16(v128.load(q), v128.load32_splat(x), v128.load32_splat(x, 16), v128.load32_splat(x, 32), v128.load32_splat(x, 48), m);
  a = i32x4.add(a, dotNib16(v128.load(q, 16), v128.load32_splat(x, 4), v128.load32_splat(x, 20), v128.load32_splat(x, 36), v128.load32_splat(x, 52), m));
  v128.store(t, a);
  a = i32x4.add(a, dotNib16(v128.load(q, 32), v128.load32_splat(x, 8), v128.load32_splat(x, 24), v128.load32_splat(x, 40), v128.load32_splat(x, 56), m));
  return i32x4.add(a, dotNib16(v128.load(q, 48), v128.load32_splat(x, 12), v128.load32_splat(x, 28), v128.load32_splat(x, 44), v128.load32_splat(x, 60), m));
}

// Relaxed-fused (workerd, where every load is bounds-checked): the
// activations as two checked loads, each quad splatted in registers, and
// the fused dot adds each row's four products to its int32 lane: the rows'
// sums of q*x with no widening.
@inline function q4rQuadsFused(p: usize, xq: usize, m: v128): v128 {
  const v0 = v128.load(p, 8), v1 = v128.load(p, 24), v2 = v128.load(p, 40), v3 = v128.load(p, 56);
  return q4rFewFusedDot(
    v128.and(v0, m), v128.and(i16x8.shr_u(v0, 4), m), v128.and(v1, m), v128.and(i16x8.shr_u(v1, 4), m),
    v128.and(v2, m), v128.and(i16x8.shr_u(v2, 4), m), v128.and(v3, m), v128.and(i16x8.shr_u(v3, 4), m),
    xq, i32x4.splat(0),
  );
}

// One Q4R block (4 rows x 32 columns) of the SIMD matvec: the four rows'
// integer dots in the four lanes, folded into acc (q4rFold). xs, xd: the
// block's entries in a fold table (q4rFoldTable). Constants come in as
// registers (see VCONST); t: this instance's scratch, for the ordering stores.
@inline function q4rBlockSimd(p: usize, xq: usize, xs: usize, xd: usize, acc: v128, m: v128, ones: v128, hmask: v128, t: usize): v128 {
  let s: v128;
  if (ASC_FEATURE_RELAXED_SIMD) {
    s = FUSED ? q4rQuadsFused(p, xq, m) : i32x4.dot_i16x8_s(quadsNibRelaxed(p + 8, xq, m, t), ones);
  } else {
    s = quadsNibSimd(p + 8, xq, m, t);
  }
  return q4rFold(s, xs, xd, h2fBits_x4c(p, hmask), acc);
}

// acc + f32(s - 8*sum(x)) * (d_w * d_x), the scalar twin's fold of one block,
// four rows, from a fold table: xs holds 8*sum(x) and xd holds d_x * 2^112,
// so dw is the scales' h2fBits_x4c. d_w = dw * 2^112 exactly, and dw * (d_x * 2^112) is
// the same real number as d_w * d_x, rounded once: the same bits, for two
// vector operations fewer per block (of ~38).
@inline function q4rFold(s: v128, xs: usize, xd: usize, dw: v128, acc: v128): v128 {
  return q4rFoldWith(s, v128.load32_splat(xs), v128.load32_splat(xd), dw, acc);
}

// q4rFold with the table's entries already splatted (sx, dx).
@inline function q4rFoldWith(s: v128, sx: v128, dx: v128, dw: v128, acc: v128): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(s, sx)), f32x4.mul(dw, dx)));
}

// The fold table of the Q8A at xa (nb blocks) at dst, laid out as the Q8A's
// first two sections: d_x * 2^112 (f32) at dst + 4b, 8 * sum(x) (i32) at
// dst + q8aSumOff(nb) + 4b. d_x * 2^112 is exact while d_x < 2^16 (|x| below
// ~8.3e6); false when some block's is not, and the caller then folds with
// the scalar twin.
@inline function q4rFoldTable(xa: usize, nb: usize, dst: usize): bool {
  const so = q8aSumOff(nb);
  let ok = true;
  for (let b: usize = 0; b < nb; b++) {
    const d = load<f32>(xa + (b << 2));
    if (!(d < <f32>65536)) ok = false;
    store<f32>(dst + (b << 2), d * <f32>5.192296858534828e33); // 2^112
    store<i32>(dst + so + (b << 2), load<i32>(xa + so + (b << 2)) << 3);
  }
  return ok;
}

// Relaxed-fused (workerd): four groups of four rows a quarter of the matrix
// apart, against one block of activations at a time. workerd checks the
// bounds of every load, so the activations, their splats and the fold
// table's entries are read once for the four groups (per block: 6 checked
// loads and 2 shuffles per group instead of 9 and 8). The groups are far
// apart, not adjacent: four streams from DRAM run faster than one, while two
// streams one group (4.6 KB) apart ran at half speed. Each group's lanes see
// the operations of q4rQuadsFused and q4rFold, so the bits are the same.
// Returns the rows done (whole sets of four groups); the rest go one group
// at a time.
function matvecQ4rFused4(w: usize, rows: i32, nb: usize, xq0: usize, ft: usize, out: usize): i32 {
  const m = v128.load(VCONST + VC_NIB8);
  const hmask = v128.load(VCONST + VC_HMASK);
  const z = i32x4.splat(0);
  const gBytes = nb * 72;
  const xs0 = ft + q8aSumOff(nb);
  const xEnd = ft + (nb << 2);
  const quarter = ((rows + 3) >> 2) >> 2; // groups per stream
  const far = <usize>quarter * gBytes;
  for (let g = 0; g < quarter; g++) {
    let pA = w + <usize>g * gBytes;
    let accA = f32x4.splat(0), accB = f32x4.splat(0), accC = f32x4.splat(0), accD = f32x4.splat(0);
    let xq = xq0, xs = xs0;
    for (let xd = ft; xd < xEnd; xd += 4) {
      const pB = pA + far, pC = pB + far, pD = pC + far;
      const xl = v128.load(xq), xh = v128.load(xq, 16);
      // Quad k: each group's low nibbles against x[4k..4k+3], high against x[16+4k..]; chains a and b per group.
      let l = i32x4.shuffle(xl, xl, 0, 0, 0, 0), h = i32x4.shuffle(xh, xh, 0, 0, 0, 0);
      let vA = v128.load(pA, 8);
      let aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), z); let bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), z);
      let vB = v128.load(pB, 8);
      let aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), z); let bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), z);
      let vC = v128.load(pC, 8);
      let aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), z); let bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), z);
      let vD = v128.load(pD, 8);
      let aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), z); let bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), z);
      l = i32x4.shuffle(xl, xl, 1, 1, 1, 1); h = i32x4.shuffle(xh, xh, 1, 1, 1, 1);
      vA = v128.load(pA, 24);
      aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), aA); bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), bA);
      vB = v128.load(pB, 24);
      aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), aB); bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), bB);
      vC = v128.load(pC, 24);
      aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), aC); bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), bC);
      vD = v128.load(pD, 24);
      aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), aD); bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), bD);
      l = i32x4.shuffle(xl, xl, 2, 2, 2, 2); h = i32x4.shuffle(xh, xh, 2, 2, 2, 2);
      vA = v128.load(pA, 40);
      aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), aA); bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), bA);
      vB = v128.load(pB, 40);
      aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), aB); bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), bB);
      vC = v128.load(pC, 40);
      aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), aC); bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), bC);
      vD = v128.load(pD, 40);
      aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), aD); bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), bD);
      l = i32x4.shuffle(xl, xl, 3, 3, 3, 3); h = i32x4.shuffle(xh, xh, 3, 3, 3, 3);
      vA = v128.load(pA, 56);
      aA = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vA, m), aA); bA = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vA, 4), m), bA);
      vB = v128.load(pB, 56);
      aB = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vB, m), aB); bB = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vB, 4), m), bB);
      vC = v128.load(pC, 56);
      aC = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vC, m), aC); bC = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vC, 4), m), bC);
      vD = v128.load(pD, 56);
      aD = i32x4.relaxed_dot_i8x16_i7x16_add_s(l, v128.and(vD, m), aD); bD = i32x4.relaxed_dot_i8x16_i7x16_add_s(h, v128.and(i16x8.shr_u(vD, 4), m), bD);
      const sx = v128.load32_splat(xs), dx = v128.load32_splat(xd);
      accA = q4rFoldWith(i32x4.add(aA, bA), sx, dx, h2fBits_x4c(pA, hmask), accA);
      accB = q4rFoldWith(i32x4.add(aB, bB), sx, dx, h2fBits_x4c(pB, hmask), accB);
      accC = q4rFoldWith(i32x4.add(aC, bC), sx, dx, h2fBits_x4c(pC, hmask), accC);
      accD = q4rFoldWith(i32x4.add(aD, bD), sx, dx, h2fBits_x4c(pD, hmask), accD);
      pA += 72;
      xq += 32;
      xs += 4;
    }
    const r0 = g << 2, q = quarter << 2;
    storeRows(out, r0, rows, accA);
    storeRows(out, r0 + q, rows, accB);
    storeRows(out, r0 + 2 * q, rows, accC);
    storeRows(out, r0 + 3 * q, rows, accD);
  }
  return quarter << 4;
}

function matvecQ4rSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nb = <usize>cols >> 5;
  const ft = scratchBase() + MV_X;
  if (!q4rFoldTable(xa, nb, ft)) {
    matvecQ4rScalar(w, rows, cols, xa, out);
    return;
  }
  const xs0 = ft + q8aSumOff(nb);
  // Relaxed path: int8 activations, byte mask 0x0f; plain path: permuted int16, lane mask 0x000f.
  const xq0 = ASC_FEATURE_RELAXED_SIMD ? xa + q8aQ8Off(nb) : xa + q8aQ16Off(nb);
  const xqStep: usize = ASC_FEATURE_RELAXED_SIMD ? 32 : 64;
  const m = v128.load(VCONST + (ASC_FEATURE_RELAXED_SIMD ? VC_NIB8 : VC_NIB16));
  const ones = v128.load(VCONST + VC_ONES16);
  const hmask = v128.load(VCONST + VC_HMASK);
  const t = scratchBase();
  const rStart = FUSED ? matvecQ4rFused4(w, rows, nb, xq0, ft, out) : 0;
  let p = w + <usize>(rStart >> 2) * nb * 72;
  const xEnd = ft + (nb << 2);
  for (let r0 = rStart; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    let xq = xq0, xs = xs0;
    for (let xd = ft; xd < xEnd; xd += 4) {
      acc = q4rBlockSimd(p, xq, xs, xd, acc, m, ones, hmask, t);
      p += 72;
      xq += xqStep;
      xs += 4;
    }
    storeRows(out, r0, rows, acc);
  }
}

// The integer dot sum_j q_j x_j of a row's 16 nibble bytes at q (byte j
// holding q_j | q_{j+16} << 4) with its block's 32 int8 activations.
@inline export function q4rBlockDot(q: usize, x8: usize): i32 {
  return nibRowDot(q, 1, x8);
}

// The same for Q4R's quads: row r's byte j at q + 16*(j >> 2) + (j & 3), q
// its first quad (block + 8 + 4r).
@inline function q4rQuadsDot(q: usize, x8: usize): i32 {
  return nibRowDot(q, 4, x8);
}

// Byte j of the row at q + 16*(j >> 2) + (j & 3) when quads (q4 = 4), else q + j.
@inline function nibRowDot(q: usize, q4: usize, x8: usize): i32 {
  let s: i32 = 0;
  for (let j: usize = 0; j < 16; j++) {
    const v = <i32>load<u8>(q4 == 4 ? q + ((j >> 2) << 4) + (j & 3) : q + j);
    s += (v & 15) * <i32>load<i8>(x8 + j) + (v >> 4) * <i32>load<i8>(x8 + j + 16);
  }
  return s;
}

function matvecQ4rScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nb = <usize>cols >> 5;
  const xs = xa + q8aSumOff(nb);
  const x8 = xa + q8aQ8Off(nb);
  const gBytes = nb * 72;
  for (let r = 0; r < rows; r++) {
    const lane = <usize>(r & 3);
    let p = w + <usize>(r >> 2) * gBytes;
    let acc: f32 = 0;
    for (let b: usize = 0; b < nb; b++) {
      const s = q4rQuadsDot(p + 8 + (lane << 2), x8 + (b << 5)) - (load<i32>(xs + (b << 2)) << 3);
      acc += <f32>s * (h2f(load<u16>(p + (lane << 1))) * load<f32>(xa + (b << 2)));
      p += 72;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// Scratch of the relaxed Q8R and Q6R matvecs: a per-call table derived
// from the activations, read by every row (Q8R: |x|, x's sign masks and the
// sum of |x| over its negative values per block, 80 bytes; Q6R: 32 * (x[2i] + x[2i+1]) as int16). Clear of the 4-row partials
// the Q6 kernels pass through scratch [0, 64).
export const MV_X: usize = 16384;

// ---------------------------------------------------------------- Q6_K x Q8A

// w: GGUF Q6_K rows (210-byte blocks of 256: ql[128] qh[64] sc[16] i8, d f16),
// cols a multiple of 256. Per 32-block of activations:
//   int = sc[2k]*dot16(q, x[0..15]) + sc[2k+1]*dot16(q, x[16..31])
// with q in -32..31; |int| < 2^24, so f32(int) is exact.
export function matvec_q6k_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ6kSimd(w, rows, cols, xa, out);
  else matvecQ6kScalar(w, rows, cols, xa, out);
}

// Six-bit values of one 16-wide sub-block as int16 pairs (low byte, high byte)
// in 0..63: group k picks the nibble half of ql and the bit pair of qh.
@inline function q6Bytes(L: v128, H: v128, k: i32): v128 {
  const m4 = i16x8.splat(0x0f0f);
  const m2 = i16x8.splat(0x3030);
  if (k == 0) return v128.or(v128.and(L, m4), v128.and(i16x8.shl(H, 4), m2));
  if (k == 1) return v128.or(v128.and(L, m4), v128.and(i16x8.shl(H, 2), m2));
  if (k == 2) return v128.or(v128.and(i16x8.shr_u(L, 4), m4), v128.and(H, m2));
  return v128.or(v128.and(i16x8.shr_u(L, 4), m4), v128.and(i16x8.shr_u(H, 2), m2));
}

@inline function q6SubDot(q: v128, xe: v128, xo: v128): v128 {
  const c32 = i16x8.splat(32);
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.sub(v128.and(q, i16x8.splat(0xff)), c32), xe),
    i32x4.dot_i16x8_s(i16x8.sub(i16x8.shr_u(q, 8), c32), xo),
  );
}

@inline function q6Dot(p: usize, h: usize, k: i32, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const ql = p + (h << 6) + (<usize>(k & 1) << 5);
  const qh = p + 128 + (h << 5);
  const sc = p + 192 + (h << 3) + (<usize>k << 1);
  const s0 = q6SubDot(q6Bytes(v128.load(ql), v128.load(qh), k), x0, x1);
  const s1 = q6SubDot(q6Bytes(v128.load(ql, 16), v128.load(qh, 16), k), x2, x3);
  return i32x4.add(
    i32x4.mul(s0, i32x4.splat(<i32>load<i8>(sc))),
    i32x4.mul(s1, i32x4.splat(<i32>load<i8>(sc, 1))),
  );
}

// Relaxed builds: the six-bit values (0..63) are a valid 7-bit operand
// against the int8 activations; each pair's dot minus 32*(x pair sum) (a
// per-call table) is the exact sum of (q-32)x over the pair (|.| <= 2*32*127)
// in int16, and one dot with the splatted sub-block scale widens and scales
// it: three instructions per 16 values instead of seven.
@inline function q6DotRelaxed(p: usize, h: usize, k: i32, xl: v128, xh: v128, cl: v128, ch: v128, m4: v128, m2: v128): v128 {
  const ql = p + (h << 6) + (<usize>(k & 1) << 5);
  const qh = p + 128 + (h << 5);
  const sc = p + 192 + (h << 3) + (<usize>k << 1);
  const t0 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(xl, q6BytesC(v128.load(ql), v128.load(qh), k, m4, m2)), cl);
  const t1 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(xh, q6BytesC(v128.load(ql, 16), v128.load(qh, 16), k, m4, m2)), ch);
  return i32x4.add(
    i32x4.dot_i16x8_s(t0, i16x8.splat(<i16>load<i8>(sc))),
    i32x4.dot_i16x8_s(t1, i16x8.splat(<i16>load<i8>(sc, 1))),
  );
}

// q6Bytes with its masks passed in (loaded once per call from VCONST).
@inline function q6BytesC(L: v128, H: v128, k: i32, m4: v128, m2: v128): v128 {
  if (k == 0) return v128.or(v128.and(L, m4), v128.and(i16x8.shl(H, 4), m2));
  if (k == 1) return v128.or(v128.and(L, m4), v128.and(i16x8.shl(H, 2), m2));
  if (k == 2) return v128.or(v128.and(i16x8.shr_u(L, 4), m4), v128.and(H, m2));
  return v128.or(v128.and(i16x8.shr_u(L, 4), m4), v128.and(i16x8.shr_u(H, 2), m2));
}

@inline function q6StepRelaxed(acc: v128, p0: usize, p1: usize, p2: usize, p3: usize, h: usize, k: i32, dd: v128, xa: usize, x8: usize, xc: usize, xb: usize, m4: v128, m2: v128): v128 {
  const xl = v128.load(x8 + (xb << 5)), xh = v128.load(x8 + (xb << 5), 16);
  const cl = v128.load(xc + (xb << 5)), ch = v128.load(xc + (xb << 5), 16);
  // Through scratch memory, as in q6Step.
  const t = scratchBase();
  v128.store(t, q6DotRelaxed(p0, h, k, xl, xh, cl, ch, m4, m2), 0);
  v128.store(t, q6DotRelaxed(p1, h, k, xl, xh, cl, ch, m4, m2), 16);
  v128.store(t, q6DotRelaxed(p2, h, k, xl, xh, cl, ch, m4, m2), 32);
  v128.store(t, q6DotRelaxed(p3, h, k, xl, xh, cl, ch, m4, m2), 48);
  const s = reduce4(v128.load(t, 0), v128.load(t, 16), v128.load(t, 32), v128.load(t, 48));
  const scale = f32x4.mul(dd, f32x4.splat(load<f32>(xa + (xb << 2))));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), scale));
}

@inline function q6Step(acc: v128, p0: usize, p1: usize, p2: usize, p3: usize, h: usize, k: i32, dd: v128, xa: usize, x16: usize, xb: usize): v128 {
  const xp = x16 + (xb << 6);
  const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
  // Each row's partial goes through scratch memory: the stores order the next
  // row's loads after them, which keeps V8 from scheduling all four rows'
  // loads up front and spilling most of the registers.
  const t = scratchBase();
  v128.store(t, q6Dot(p0, h, k, x0, x1, x2, x3), 0);
  v128.store(t, q6Dot(p1, h, k, x0, x1, x2, x3), 16);
  v128.store(t, q6Dot(p2, h, k, x0, x1, x2, x3), 32);
  v128.store(t, q6Dot(p3, h, k, x0, x1, x2, x3), 48);
  const s = reduce4(v128.load(t, 0), v128.load(t, 16), v128.load(t, 32), v128.load(t, 48));
  const scale = f32x4.mul(dd, f32x4.splat(load<f32>(xa + (xb << 2))));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), scale));
}

function matvecQ6kSimd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const x16 = xa + q8aQ16Off(nb);
  const x8 = xa + q8aQ8Off(nb);
  const xc = scratchBase() + MV_X;
  const m4 = v128.load(VCONST + VC_Q6M4);
  const m2 = v128.load(VCONST + VC_Q6M2);
  if (ASC_FEATURE_RELAXED_SIMD) {
    for (let j: usize = 0; j < (nb << 5); j += 16) v128.store(xc + j, i16x8.shl(i16x8.extadd_pairwise_i8x16_s(v128.load(x8 + j)), 5));
  }
  const rowBytes = nsb * 210;
  const last = rows - 1;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    // Rows past the end re-read the last row; their lanes are not stored.
    let p0 = w + <usize>r0 * rowBytes;
    let p1 = w + <usize>min(r0 + 1, last) * rowBytes;
    let p2 = w + <usize>min(r0 + 2, last) * rowBytes;
    let p3 = w + <usize>min(r0 + 3, last) * rowBytes;
    let acc = f32x4.splat(0);
    let xb: usize = 0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      const dd = f32x4of(h2f(load<u16>(p0, 208)), h2f(load<u16>(p1, 208)), h2f(load<u16>(p2, 208)), h2f(load<u16>(p3, 208)));
      // k unrolled by hand so q6Bytes' branches fold at compile time.
      for (let h: usize = 0; h < 2; h++) {
        if (ASC_FEATURE_RELAXED_SIMD) {
          acc = q6StepRelaxed(acc, p0, p1, p2, p3, h, 0, dd, xa, x8, xc, xb, m4, m2);
          acc = q6StepRelaxed(acc, p0, p1, p2, p3, h, 1, dd, xa, x8, xc, xb + 1, m4, m2);
          acc = q6StepRelaxed(acc, p0, p1, p2, p3, h, 2, dd, xa, x8, xc, xb + 2, m4, m2);
          acc = q6StepRelaxed(acc, p0, p1, p2, p3, h, 3, dd, xa, x8, xc, xb + 3, m4, m2);
        } else {
          acc = q6Step(acc, p0, p1, p2, p3, h, 0, dd, xa, x16, xb);
          acc = q6Step(acc, p0, p1, p2, p3, h, 1, dd, xa, x16, xb + 1);
          acc = q6Step(acc, p0, p1, p2, p3, h, 2, dd, xa, x16, xb + 2);
          acc = q6Step(acc, p0, p1, p2, p3, h, 3, dd, xa, x16, xb + 3);
        }
        xb += 4;
      }
      p0 += 210; p1 += 210; p2 += 210; p3 += 210;
    }
    storeRows(out, r0, rows, acc);
  }
}

// The six-bit value of element e (0..255) of a Q6_K block, minus 32.
@inline function q6At(p: usize, e: usize): i32 {
  const h = e >> 7;
  const k = (e >> 5) & 3;
  const l = e & 31;
  const qlb = <i32>load<u8>(p + (h << 6) + ((k & 1) << 5) + l);
  const qhb = <i32>load<u8>(p + 128 + (h << 5) + l);
  const lo = k >= 2 ? qlb >> 4 : qlb & 15;
  return (lo | (((qhb >> (<i32>k << 1)) & 3) << 4)) - 32;
}

function matvecQ6kScalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const x8 = xa + q8aQ8Off(nb);
  const rowBytes = nsb * 210;
  for (let r = 0; r < rows; r++) {
    let p = w + <usize>r * rowBytes;
    let acc: f32 = 0;
    let xb: usize = 0;
    for (let sb: usize = 0; sb < nsb; sb++) {
      const d = h2f(load<u16>(p, 208));
      for (let e0: usize = 0; e0 < 256; e0 += 32) {
        let s: i32 = 0;
        for (let half: usize = 0; half < 2; half++) {
          let t: i32 = 0;
          for (let l: usize = 0; l < 16; l++) {
            const e = e0 + (half << 4) + l;
            t += q6At(p, e) * <i32>load<i8>(x8 + (xb << 5) + (half << 4) + l);
          }
          // Sub-block scale index: element e lies in 16-wide sub-block (h*8 + k*2 + half).
          const h = e0 >> 7;
          const k = (e0 >> 5) & 3;
          s += t * <i32>load<i8>(p + 192 + (h << 3) + (k << 1) + half);
        }
        acc += <f32>s * (d * load<f32>(xa + (xb << 2)));
        xb++;
      }
      p += 210;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

// ---------------------------------------------------------------- dequantize (embedding rows)

// n values (multiple of 32) of GGUF Q4_0 at src -> f32 at dst.
export function dequant_q4_0(src: usize, dst: usize, n: i32): void {
  const nb = <usize>n >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const p = src + b * 18;
    const d = h2f(load<u16>(p));
    const o = dst + (b << 7);
    for (let j: usize = 0; j < 16; j++) {
      const v = <i32>load<u8>(p + 2 + j);
      store<f32>(o + (j << 2), <f32>((v & 15) - 8) * d);
      store<f32>(o + ((j + 16) << 2), <f32>((v >> 4) - 8) * d);
    }
  }
}

export function dequant_q8_0(src: usize, dst: usize, n: i32): void {
  const nb = <usize>n >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const p = src + b * 34;
    const d = h2f(load<u16>(p));
    const o = dst + (b << 7);
    for (let j: usize = 0; j < 32; j++) store<f32>(o + (j << 2), <f32>load<i8>(p + 2 + j) * d);
  }
}

// n a multiple of 256.
export function dequant_q6_k(src: usize, dst: usize, n: i32): void {
  const nsb = <usize>n >> 8;
  for (let sb: usize = 0; sb < nsb; sb++) {
    const p = src + sb * 210;
    const d = h2f(load<u16>(p, 208));
    const o = dst + (sb << 10);
    for (let e: usize = 0; e < 256; e++) {
      const sc = <f32>load<i8>(p + 192 + (e >> 4));
      store<f32>(o + (e << 2), d * sc * <f32>q6At(p, e));
    }
  }
}

// ---------------------------------------------------------------- prefill: Q8B batches and matmul

// Q8B: ntok activation vectors of n = 32*nb values, quantized exactly like
// Q8A (same d and q), laid out for the prefill matmuls. Which sections a build
// writes depends on which products it runs (docs/kernels.md, "Integer
// products"):
//
// Plain (SIMD and relaxed builds; the scalar build reads it too), tokens in
// groups of four (the last group zero-padded); group g, block b at
// (g*nb + b)*288:
//   [0, 256)    16 x 16 bytes: pair p = (x[2p], x[2p+1]) as int16 for tokens
//               t0..t3 of the group, i.e. one i32x4.dot_i16x8_s with a
//               splatted weight pair gives four tokens' partial sums at once
//   [256, 272)  f32 d of the four tokens
//   [272, 288)  i32 sum of q of the four tokens
//
// Pairs (relaxed build, after the plain section): groups of eight tokens,
// block b of group g at (g*nb + b)*320:
//   [0, 256)    16 x 16 bytes: pair p = (x[2p], x[2p+1]) as int8 for t0..t7
//   [256, 288)  f32 d of t0, t2, t4, t6, then of t1, t3, t5, t7 (the order in
//               which the even/odd widening of the int16 dots yields them)
//   [288, 304)  int16 -8*sum(q) of t0..t7 (|8*sum| <= 8*32*127 < 2^15)
//   [304, 320)  zero
//
// Quads (relaxed-fused build, the only section): groups of four tokens,
// block b of group g at (g*nb + b)*160:
//   [0, 128)    8 x 16 bytes: quad k = x[4k..4k+3] of t0..t3 (one i32 lane each)
//   [128, 144)  f32 d of t0..t3
//   [144, 160)  i32 -8*sum(q) of t0..t3
export function q8b_bytes(n: i32, ntok: i32): usize {
  const nb = <usize>n >> 5;
  if (FUSED) return q8bQuadBytes(nb, ntok);
  const plain = q8bPlainBytes(nb, ntok);
  if (ASC_FEATURE_RELAXED_SIMD) return plain + <usize>((ntok + 7) >> 3) * nb * Q8B_PAIRS;
  return plain;
}

export const Q8B_PAIRS: usize = 320;
export const Q8B_QUAD: usize = 160;

@inline export function q8bPlainBytes(nb: usize, ntok: i32): usize {
  return <usize>((ntok + 3) >> 2) * nb * 288;
}

@inline function q8bQuadBytes(nb: usize, ntok: i32): usize {
  return <usize>((ntok + 3) >> 2) * nb * Q8B_QUAD;
}

// ntok rows of n floats (row stride n) -> Q8B.
export function quantize_q8b(x: usize, n: i32, ntok: i32, dst: usize): void {
  quantizeQ8b(x, n, ntok, dst, false);
}

// The same with one d per 256 values per token, as quantize_q8a_k.
export function quantize_q8b_k(x: usize, n: i32, ntok: i32, dst: usize): void {
  quantizeQ8b(x, n, ntok, dst, true);
}

@inline function quantizeQ8b(x: usize, n: i32, ntok: i32, dst: usize, sb: bool): void {
  const nb = <usize>n >> 5;
  if (FUSED) {
    quantizeQ8bQuads(x, nb, ntok, dst, sb);
    return;
  }
  const groups = <usize>((ntok + 3) >> 2);
  if (ntok & 3) memory.fill(dst + (groups - 1) * nb * 288, 0, nb * 288);
  const dst8 = dst + q8bPlainBytes(nb, ntok);
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (ntok & 7) memory.fill(dst8 + <usize>((ntok - 1) >> 3) * nb * Q8B_PAIRS, 0, nb * Q8B_PAIRS);
  }
  for (let t = 0; t < ntok; t++) {
    const xt = x + <usize>t * (<usize>n << 2);
    const lane = <usize>(t & 3);
    const lane8 = <usize>(t & 7);
    let o8 = dst8 + <usize>(t >> 3) * nb * Q8B_PAIRS;
    let o = dst + <usize>(t >> 2) * nb * 288;
    let amax: f32 = 0;
    for (let b: usize = 0; b < nb; b++) {
      const xb = xt + (b << 7);
      if (!sb || (b & 7) == 0) amax = blockAmax(xt, b, sb);
      if (ASC_FEATURE_SIMD) {
        const d = q8BlockSimd(xb, amax);
        const tq = scratchBase() + Q8T;
        // Pair p = (q[2p], q[2p+1]) is one i32 lane of the int16 vectors: lane p&3 of vector p>>2.
        const ol = o + (lane << 2);
        for (let k: usize = 0; k < 4; k++) {
          const v = v128.load(tq + (k << 4));
          const ok = ol + (k << 6);
          v128.store32_lane(ok, v, 0, 0);
          v128.store32_lane(ok, v, 1, 16);
          v128.store32_lane(ok, v, 2, 32);
          v128.store32_lane(ok, v, 3, 48);
        }
        store<f32>(o + 256 + (lane << 2), d);
        const sum = load<i32>(tq, 64);
        store<i32>(o + 272 + (lane << 2), sum);
        if (ASC_FEATURE_RELAXED_SIMD) {
          // int8 pairs: i16 lane p of the narrowed bytes.
          const b0 = i8x16.narrow_i16x8_s(v128.load(tq), v128.load(tq, 16));
          const b1 = i8x16.narrow_i16x8_s(v128.load(tq, 32), v128.load(tq, 48));
          const ol8 = o8 + (lane8 << 1);
          v128.store16_lane(ol8, b0, 0, 0);
          v128.store16_lane(ol8, b0, 1, 16);
          v128.store16_lane(ol8, b0, 2, 32);
          v128.store16_lane(ol8, b0, 3, 48);
          v128.store16_lane(ol8, b0, 4, 64);
          v128.store16_lane(ol8, b0, 5, 80);
          v128.store16_lane(ol8, b0, 6, 96);
          v128.store16_lane(ol8, b0, 7, 112);
          v128.store16_lane(ol8, b1, 0, 128);
          v128.store16_lane(ol8, b1, 1, 144);
          v128.store16_lane(ol8, b1, 2, 160);
          v128.store16_lane(ol8, b1, 3, 176);
          v128.store16_lane(ol8, b1, 4, 192);
          v128.store16_lane(ol8, b1, 5, 208);
          v128.store16_lane(ol8, b1, 6, 224);
          v128.store16_lane(ol8, b1, 7, 240);
          store<f32>(o8 + 256 + (((lane8 >> 1) + ((lane8 & 1) << 2)) << 2), d);
          store<i16>(o8 + 288 + (lane8 << 1), <i16>(-(sum << 3)));
        }
        o += 288;
        o8 += Q8B_PAIRS;
        continue;
      }
      const d = amax / <f32>127;
      const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
      let sum: i32 = 0;
      for (let j: usize = 0; j < 32; j++) {
        const q = <i32>nearest<f32>(load<f32>(xb + (j << 2)) * id);
        sum += q;
        store<i16>(o + ((j >> 1) << 4) + (lane << 2) + ((j & 1) << 1), <i16>q);
      }
      store<f32>(o + 256 + (lane << 2), d);
      store<i32>(o + 272 + (lane << 2), sum);
      o += 288;
      o8 += Q8B_PAIRS;
    }
  }
}

// The quads section (relaxed-fused build).
@inline function quantizeQ8bQuads(x: usize, nb: usize, ntok: i32, dst: usize, sb: bool): void {
  const gBytes = nb * Q8B_QUAD;
  if (ntok & 3) memory.fill(dst + <usize>((ntok - 1) >> 2) * gBytes, 0, gBytes);
  for (let t = 0; t < ntok; t++) {
    const xt = x + <usize>t * (nb << 7);
    const lane = <usize>(t & 3) << 2;
    let o = dst + <usize>(t >> 2) * gBytes + lane;
    let amax: f32 = 0;
    for (let b: usize = 0; b < nb; b++) {
      if (!sb || (b & 7) == 0) amax = blockAmax(xt, b, sb);
      const d = q8BlockSimd(xt + (b << 7), amax);
      const tq = scratchBase() + Q8T;
      const lo = i8x16.narrow_i16x8_s(v128.load(tq), v128.load(tq, 16));
      const hi = i8x16.narrow_i16x8_s(v128.load(tq, 32), v128.load(tq, 48));
      storeQuads(o, lo, hi);
      store<f32>(o, d, 128);
      store<i32>(o, -(load<i32>(tq, 64) << 3), 144);
      o += Q8B_QUAD;
    }
  }
}

// Quad k of one token (bytes 4k..4k+3 of lo, then of hi) into lane 0 of vector k (o already at the lane).
@inline function storeQuads(o: usize, lo: v128, hi: v128): void {
  v128.store32_lane(o, lo, 0, 0);
  v128.store32_lane(o, lo, 1, 16);
  v128.store32_lane(o, lo, 2, 32);
  v128.store32_lane(o, lo, 3, 48);
  v128.store32_lane(o, hi, 0, 64);
  v128.store32_lane(o, hi, 1, 80);
  v128.store32_lane(o, hi, 2, 96);
  v128.store32_lane(o, hi, 3, 112);
}

// Rows per pass of the SIMD matmul and tokens per chunk. Four rows times two
// token groups is 8 int32x4 accumulators + 4 weight pairs + 2 activation
// vectors: that fits V8's 15 usable xmm registers, so the inner loop does not
// spill (8 rows x 1 group did).
const MM_ROWS: i32 = 4;
export const MM_TOK: i32 = 64;
// Scratch (SIMD build): [0, 1024) splatted weight pairs of 4 rows for one
// block, [2048, 2064) their f32 scales, [4096, 6144) f32 accumulators
// [group][row]; the relaxed builds share MM_DW and MM_ACC (see below).
export const MM_DW: usize = 2048;
export const MM_ACC: usize = 4096;

// One block row, unpacked to signed int16 weights in natural order and
// stored as 16 splatted (w[2p], w[2p+1]) pairs.
@inline export function splatPairs(ws: usize, r: usize, w0: v128, w1: v128, w2: v128, w3: v128): void {
  const o = ws + (r << 8);
  v128.store(o, i32x4.shuffle(w0, w0, 0, 0, 0, 0), 0);
  v128.store(o, i32x4.shuffle(w0, w0, 1, 1, 1, 1), 16);
  v128.store(o, i32x4.shuffle(w0, w0, 2, 2, 2, 2), 32);
  v128.store(o, i32x4.shuffle(w0, w0, 3, 3, 3, 3), 48);
  v128.store(o, i32x4.shuffle(w1, w1, 0, 0, 0, 0), 64);
  v128.store(o, i32x4.shuffle(w1, w1, 1, 1, 1, 1), 80);
  v128.store(o, i32x4.shuffle(w1, w1, 2, 2, 2, 2), 96);
  v128.store(o, i32x4.shuffle(w1, w1, 3, 3, 3, 3), 112);
  v128.store(o, i32x4.shuffle(w2, w2, 0, 0, 0, 0), 128);
  v128.store(o, i32x4.shuffle(w2, w2, 1, 1, 1, 1), 144);
  v128.store(o, i32x4.shuffle(w2, w2, 2, 2, 2, 2), 160);
  v128.store(o, i32x4.shuffle(w2, w2, 3, 3, 3, 3), 176);
  v128.store(o, i32x4.shuffle(w3, w3, 0, 0, 0, 0), 192);
  v128.store(o, i32x4.shuffle(w3, w3, 1, 1, 1, 1), 208);
  v128.store(o, i32x4.shuffle(w3, w3, 2, 2, 2, 2), 224);
  v128.store(o, i32x4.shuffle(w3, w3, 3, 3, 3, 3), 240);
}

@inline function unpackQ4Row(ws: usize, r: usize, v: v128): void {
  const m = i8x16.splat(0x0f);
  const c8 = i16x8.splat(8);
  const lo = v128.and(v, m);
  const hi = v128.and(i16x8.shr_u(v, 4), m);
  splatPairs(ws, r,
    i16x8.sub(i16x8.extend_low_i8x16_u(lo), c8), i16x8.sub(i16x8.extend_high_i8x16_u(lo), c8),
    i16x8.sub(i16x8.extend_low_i8x16_u(hi), c8), i16x8.sub(i16x8.extend_high_i8x16_u(hi), c8));
}

// acc[g][r] += f32(dot) * (d_w[r] * d_x[t]) for one token group (lanes = tokens).
@inline function mmFold(ws: usize, g: i32, xg: usize, a0: v128, a1: v128, a2: v128, a3: v128): void {
  const dx = v128.load(xg, 256);
  const ap = ws + MM_ACC + (<usize>g << 6);
  const dw = ws + MM_DW;
  v128.store(ap, f32x4.add(v128.load(ap, 0), f32x4.mul(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load32_splat(dw, 0), dx))), 0);
  v128.store(ap, f32x4.add(v128.load(ap, 16), f32x4.mul(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load32_splat(dw, 4), dx))), 16);
  v128.store(ap, f32x4.add(v128.load(ap, 32), f32x4.mul(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load32_splat(dw, 8), dx))), 32);
  v128.store(ap, f32x4.add(v128.load(ap, 48), f32x4.mul(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load32_splat(dw, 12), dx))), 48);
}

// For the current block (4 rows unpacked in scratch), every token group of
// the chunk: exact int32 dots of 4 rows x 4 tokens per group, two groups at
// a time, then folded into the f32 accumulators in block order (the
// matvec's per-row order, hence bit-identical results).
export function mmBlock(ws: usize, xg0: usize, gStride: usize, ng: i32): void {
  let xg = xg0;
  let g = 0;
  for (; g + 2 <= ng; g += 2) {
    const xh = xg + gStride;
    let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
    let b0 = i32x4.splat(0), b1 = i32x4.splat(0), b2 = i32x4.splat(0), b3 = i32x4.splat(0);
    for (let p: usize = 0; p < 256; p += 16) {
      const wp = ws + p;
      const x = v128.load(xg + p);
      const y = v128.load(xh + p);
      const w0 = v128.load(wp, 0), w1 = v128.load(wp, 256), w2 = v128.load(wp, 512), w3 = v128.load(wp, 768);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(w0, x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(w1, x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(w2, x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(w3, x));
      b0 = i32x4.add(b0, i32x4.dot_i16x8_s(w0, y));
      b1 = i32x4.add(b1, i32x4.dot_i16x8_s(w1, y));
      b2 = i32x4.add(b2, i32x4.dot_i16x8_s(w2, y));
      b3 = i32x4.add(b3, i32x4.dot_i16x8_s(w3, y));
    }
    mmFold(ws, g, xg, a0, a1, a2, a3);
    mmFold(ws, g + 1, xh, b0, b1, b2, b3);
    xg = xh + gStride;
  }
  if (g < ng) {
    let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
    for (let p: usize = 0; p < 256; p += 16) {
      const wp = ws + p;
      const x = v128.load(xg + p);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(wp, 0), x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(wp, 256), x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(wp, 512), x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(wp, 768), x));
    }
    mmFold(ws, g, xg, a0, a1, a2, a3);
  }
}

// Writes acc[g][r] lanes (tokens) of one chunk to out[t*rows + r0 + r].
export function mmStore(ws: usize, out: usize, rows: i32, r0: i32, t0: i32, tn: i32): void {
  const nr = min(MM_ROWS, rows - r0);
  for (let t = 0; t < tn; t++) {
    const src = ws + MM_ACC + (<usize>(t >> 2) << 6) + (<usize>(t & 3) << 2);
    const dst = out + (<usize>(t0 + t) * <usize>rows + <usize>r0) * 4;
    for (let r = 0; r < nr; r++) store<f32>(dst + (<usize>r << 2), load<f32>(src + (<usize>r << 4)));
  }
}

// Prefill: out[t*rows + r] = sum_b d_w d_x int_dot, for ntok tokens given as
// Q8B (q8b_bytes(cols, ntok)); w is Q4R. Bit-identical to ntok calls of
// matvec_q4r_q8a on the same tokens' Q8A. The tiles take whole groups of
// eight tokens; a few tokens (a decode step of a few streams, or the last
// ntok % 8 of a prompt) take the small-batch path (see smallTail).
export function matmul_q4r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  if (!ASC_FEATURE_SIMD) {
    const xa = scratchBase();
    for (let t = 0; t < ntok; t++) {
      q8bToQ8a(xb, nb, t, xa);
      matvecQ4rScalar(w, rows, cols, xa, out + <usize>t * (<usize>rows << 2));
    }
    return;
  }
  const tiled = ntok - (ASC_FEATURE_RELAXED_SIMD ? q4rSmallTail(ntok) : smallTail(ntok));
  if (tiled > 0) {
    if (FUSED) matmulQ4rFused(w, rows, cols, xb, tiled, out);
    else if (ASC_FEATURE_RELAXED_SIMD) matmulQ4rRelaxed(w, rows, cols, xb + q8bPlainBytes(nb, ntok), tiled, out);
    else matmulQ4rPlain(w, rows, cols, xb, tiled, out);
  }
  if (tiled < ntok) matmulSmall(w, rows, cols, xb, tiled, ntok, out);
}

function matmulQ4rPlain(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const ws = scratchBase();
  const gStride = nb * 288;
  for (let t0 = 0; t0 < ntok; t0 += MM_TOK) {
    const tn = min(MM_TOK, ntok - t0);
    const ng = (tn + 3) >> 2;
    const xg0 = xb + <usize>(t0 >> 2) * gStride;
    for (let r0 = 0; r0 < rows; r0 += MM_ROWS) {
      memory.fill(ws + MM_ACC, 0, <usize>ng << 6);
      let p = w + <usize>(r0 >> 2) * nb * 72;
      for (let b: usize = 0; b < nb; b++) {
        v128.store(ws + MM_DW, h2f_x4(p));
        const v0 = v128.load(p, 8), v1 = v128.load(p, 24), v2 = v128.load(p, 40), v3 = v128.load(p, 56);
        unpackQ4Row(ws, 0, rowOfQuads(v0, v1, v2, v3, 0));
        unpackQ4Row(ws, 1, rowOfQuads(v0, v1, v2, v3, 1));
        unpackQ4Row(ws, 2, rowOfQuads(v0, v1, v2, v3, 2));
        unpackQ4Row(ws, 3, rowOfQuads(v0, v1, v2, v3, 3));
        mmBlock(ws, xg0 + b * 288, gStride, ng);
        p += 72;
      }
      mmStore(ws, out, rows, r0, t0, tn);
    }
  }
}

// Token t of a Q8B batch (its plain section) -> Q8A, for the matvecs that
// stand in for the matmul: the sections they read, d, sum and int8, and in
// the plain SIMD build the permuted int16 as well. O(cols) per token.
export function q8bToQ8a(xb: usize, nb: usize, t: i32, xa: usize): void {
  const lane = <usize>(t & 3);
  let o = xb + <usize>(t >> 2) * nb * 288;
  const sOff = q8aSumOff(nb);
  const q8 = xa + q8aQ8Off(nb);
  const q16 = xa + q8aQ16Off(nb);
  for (let b: usize = 0; b < nb; b++) {
    store<f32>(xa + (b << 2), load<f32>(o + 256 + (lane << 2)));
    store<i32>(xa + sOff + (b << 2), load<i32>(o + 272 + (lane << 2)));
    for (let j: usize = 0; j < 32; j++) {
      const q = load<i16>(o + ((j >> 1) << 4) + (lane << 2) + ((j & 1) << 1));
      store<i8>(q8 + (b << 5) + j, <i8>q);
      if (ASC_FEATURE_SIMD && !ASC_FEATURE_RELAXED_SIMD) {
        store<i16>(q16 + (b << 6) + ((((j >> 4) << 4) + ((j & 1) << 3) + ((j & 15) >> 1)) << 1), q);
      }
    }
    o += 288;
  }
}

// The same from the quads section (relaxed-fused build): d, sum (from its
// -8*sum) and int8; the relaxed matvecs read no more.
export function quadsToQ8a(xq: usize, nb: usize, t: i32, xa: usize): void {
  let o = xq + <usize>(t >> 2) * nb * Q8B_QUAD + (<usize>(t & 3) << 2);
  const sOff = q8aSumOff(nb);
  const q8 = xa + q8aQ8Off(nb);
  for (let b: usize = 0; b < nb; b++) {
    store<f32>(xa + (b << 2), load<f32>(o, 128));
    store<i32>(xa + sOff + (b << 2), -(load<i32>(o, 144) >> 3));
    for (let k: usize = 0; k < 8; k++) store<u32>(q8 + (b << 5) + (k << 2), load<u32>(o + (k << 4)));
    o += Q8B_QUAD;
  }
}

// ---------------------------------------------------------------- relaxed prefill
//
// Both relaxed builds keep the weights' unsigned values (Q4_0 nibbles, 0..15)
// as the 7-bit operand and the activations as the signed one; tokens lie in
// the lanes of the activation vectors (Q8B pairs or quads) and each weight
// pair (quad) is broadcast straight from the unpacked block in scratch with
// one v128.load16_splat (load32_splat), so a block is unpacked with five
// instructions per row and no splat table. Per block and tile the f32 fold is
// acc += f32(dot) * (d_w * d_x) per output, the scalar matvec's order, hence
// bit-identical results.

// Scratch of the relaxed matmuls: [0, 128) the tile's four rows of unpacked
// weight bytes for the current block (row r at 32r: low nibbles, then high
// nibbles; Q8R: the row's 32 bytes), [MM_QT, MM_QT + 128) the same
// transposed by quads (fused build), MM_DW their f32 scales (the fused tiles
// splat them into registers instead), MM_ACC the f32 accumulators of the
// chunk's outputs.

// Low and high nibbles of four rows side by side by quads at q (Q4R's block
// at + 8, a Q4KR sub-block), back in rows: 32 bytes per row (pair p of row r
// at 32r + 2p, quad k at 32r + 4k).
@inline export function unpackNib4(ws: usize, q: usize, m: v128): void {
  const q0 = v128.load(q), q1 = v128.load(q, 16), q2 = v128.load(q, 32), q3 = v128.load(q, 48);
  const v0 = rowOfQuads(q0, q1, q2, q3, 0), v1 = rowOfQuads(q0, q1, q2, q3, 1);
  const v2 = rowOfQuads(q0, q1, q2, q3, 2), v3 = rowOfQuads(q0, q1, q2, q3, 3);
  v128.store(ws, v128.and(v0, m), 0);
  v128.store(ws, v128.and(i16x8.shr_u(v0, 4), m), 16);
  v128.store(ws, v128.and(v1, m), 32);
  v128.store(ws, v128.and(i16x8.shr_u(v1, 4), m), 48);
  v128.store(ws, v128.and(v2, m), 64);
  v128.store(ws, v128.and(i16x8.shr_u(v2, 4), m), 80);
  v128.store(ws, v128.and(v3, m), 96);
  v128.store(ws, v128.and(i16x8.shr_u(v3, 4), m), 112);
}

// Relaxed build: four rows x sixteen tokens (two groups of eight) of one
// block, entirely in int16. Each lane starts at -8*sum(x) and adds 16 pair
// products, at most 32*15*127 = 60960 in all, which wraps — but the final
// value is the exact signed dot sum_j (q_j - 8) x_j, |dot| <= 32*8*127 =
// 32512 < 2^15, so the wrapped int16 value IS the dot. (pmaddubsw's pair sums,
// <= 2*15*127, never saturate.) 8 int16 accumulators + 2 activation vectors +
// 4 broadcast weight pairs: no spills. (Two pairs per loop pass would halve
// V8's loop overhead, but V8 hoists all loads of a loop body to its top and
// then spills.)
function mmPairs2(ws: usize, ap: usize, xg: usize, xh: usize): void {
  let s0 = v128.load(xg, 288), u0 = v128.load(xh, 288);
  let s1 = s0, s2 = s0, s3 = s0, u1 = u0, u2 = u0, u3 = u0;
  for (let p: usize = 0; p < 32; p += 2) {
    const x = v128.load(xg + (p << 3));
    const y = v128.load(xh + (p << 3));
    const w0 = v128.load16_splat(ws + p), w1 = v128.load16_splat(ws + p, 32), w2 = v128.load16_splat(ws + p, 64), w3 = v128.load16_splat(ws + p, 96);
    s0 = i16x8.add(s0, i16x8.relaxed_dot_i8x16_i7x16_s(x, w0));
    s1 = i16x8.add(s1, i16x8.relaxed_dot_i8x16_i7x16_s(x, w1));
    s2 = i16x8.add(s2, i16x8.relaxed_dot_i8x16_i7x16_s(x, w2));
    s3 = i16x8.add(s3, i16x8.relaxed_dot_i8x16_i7x16_s(x, w3));
    u0 = i16x8.add(u0, i16x8.relaxed_dot_i8x16_i7x16_s(y, w0));
    u1 = i16x8.add(u1, i16x8.relaxed_dot_i8x16_i7x16_s(y, w1));
    u2 = i16x8.add(u2, i16x8.relaxed_dot_i8x16_i7x16_s(y, w2));
    u3 = i16x8.add(u3, i16x8.relaxed_dot_i8x16_i7x16_s(y, w3));
  }
  mmPairsFold(ws, ap, xg, s0, s1, s2, s3);
  mmPairsFold(ws, ap + 128, xh, u0, u1, u2, u3);
}

function mmPairs1(ws: usize, ap: usize, xg: usize): void {
  let s0 = v128.load(xg, 288);
  let s1 = s0, s2 = s0, s3 = s0;
  for (let p: usize = 0; p < 32; p += 2) {
    const x = v128.load(xg + (p << 3));
    s0 = i16x8.add(s0, i16x8.relaxed_dot_i8x16_i7x16_s(x, v128.load16_splat(ws + p)));
    s1 = i16x8.add(s1, i16x8.relaxed_dot_i8x16_i7x16_s(x, v128.load16_splat(ws + p, 32)));
    s2 = i16x8.add(s2, i16x8.relaxed_dot_i8x16_i7x16_s(x, v128.load16_splat(ws + p, 64)));
    s3 = i16x8.add(s3, i16x8.relaxed_dot_i8x16_i7x16_s(x, v128.load16_splat(ws + p, 96)));
  }
  mmPairsFold(ws, ap, xg, s0, s1, s2, s3);
}

// acc[r] += f32(dot) * (d_w[r] * d_x) for one group of eight tokens: a dot
// with (1, 0, ...) / (0, 1, ...) widens the even / odd tokens' int16 lanes
// in one instruction each; Q8B stores d in that order, and so are the
// accumulators (row r at ap + 32r: t0, t2, t4, t6, then t1, t3, t5, t7).
@inline function mmPairsFold(ws: usize, ap: usize, xg: usize, s0: v128, s1: v128, s2: v128, s3: v128): void {
  const ev = v128.load(VCONST + VC_EVEN16);
  const od = v128.load(VCONST + VC_ODD16);
  const de = v128.load(xg, 256);
  const dd = v128.load(xg, 272);
  mmPairsFoldRow(ap, v128.load32_splat(ws + MM_DW), s0, de, dd, ev, od);
  mmPairsFoldRow(ap + 32, v128.load32_splat(ws + MM_DW, 4), s1, de, dd, ev, od);
  mmPairsFoldRow(ap + 64, v128.load32_splat(ws + MM_DW, 8), s2, de, dd, ev, od);
  mmPairsFoldRow(ap + 96, v128.load32_splat(ws + MM_DW, 12), s3, de, dd, ev, od);
}

@inline function mmPairsFoldRow(pa: usize, dr: v128, s: v128, de: v128, dd: v128, ev: v128, od: v128): void {
  v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(f32x4.convert_i32x4_s(i32x4.dot_i16x8_s(s, ev)), f32x4.mul(dr, de))));
  v128.store(pa, f32x4.add(v128.load(pa, 16), f32x4.mul(f32x4.convert_i32x4_s(i32x4.dot_i16x8_s(s, od)), f32x4.mul(dr, dd))), 16);
}

function matmulQ4rRelaxed(w: usize, rows: i32, cols: i32, x8b: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const ws = scratchBase();
  const gStride = nb * Q8B_PAIRS;
  const m = v128.load(VCONST + VC_NIB8);
  for (let t0 = 0; t0 < ntok; t0 += MM_TOK) {
    const tn = min(MM_TOK, ntok - t0);
    const ng = (tn + 7) >> 3;
    const xg0 = x8b + <usize>(t0 >> 3) * gStride;
    for (let r0 = 0; r0 < rows; r0 += 4) {
      memory.fill(ws + MM_ACC, 0, <usize>ng << 7);
      let p = w + <usize>(r0 >> 2) * nb * 72;
      for (let b: usize = 0; b < nb; b++) {
        v128.store(ws + MM_DW, h2f_x4(p));
        unpackNib4(ws, p + 8, m);
        let xg = xg0 + b * Q8B_PAIRS;
        let g = 0;
        for (; g + 2 <= ng; g += 2) {
          mmPairs2(ws, ws + MM_ACC + (<usize>g << 7), xg, xg + gStride);
          xg += gStride << 1;
        }
        if (g < ng) mmPairs1(ws, ws + MM_ACC + (<usize>g << 7), xg);
        p += 72;
      }
      storePairsAcc(ws, out, rows, r0, t0, tn);
    }
  }
}

// Writes the relaxed tiles' accumulators of one chunk (per 8-token group
// 128 bytes: row r at 32r, even tokens then odd) to out[t*rows + r0 + r].
export function storePairsAcc(ws: usize, out: usize, rows: i32, r0: i32, t0: i32, tn: i32): void {
  const nr = min(4, rows - r0);
  for (let t = 0; t < tn; t++) {
    const src = ws + MM_ACC + (<usize>(t >> 3) << 7) + (<usize>(t & 1) << 4) + (<usize>((t >> 1) & 3) << 2);
    const dst = out + (<usize>(t0 + t) * <usize>rows + <usize>r0) * 4;
    for (let r = 0; r < nr; r++) store<f32>(dst + (<usize>r << 2), load<f32>(src + (<usize>r << 5)));
  }
}

// ---------------------------------------------------------------- relaxed-fused prefill
//
// i32x4.relaxed_dot_i8x16_i7x16_add_s sums four products per int32 lane into
// an accumulator: no int16 wrap-around to reason about, no widening, and the
// Q4_0 offset (-8*sum(x), from Q8B) is the accumulator's start. Tokens are
// the lanes (quads of four tokens), each weight quad is one load32_splat.

// One Q4R block of four rows against every token group of the tile: pairs
// of groups (mmQuads2), then a last odd one. The rows' scales dw are splatted
// here once per block and passed in registers, not loaded per group from
// scratch (in workerd every load is bounds-checked: +3–4%).
function mmQuadsBlock(ws: usize, xg: usize, gStride: usize, ng: i32, dw: v128): void {
  const d0 = i32x4.shuffle(dw, dw, 0, 0, 0, 0), d1 = i32x4.shuffle(dw, dw, 1, 1, 1, 1);
  const d2 = i32x4.shuffle(dw, dw, 2, 2, 2, 2), d3 = i32x4.shuffle(dw, dw, 3, 3, 3, 3);
  let ap = ws + MM_ACC;
  let g = 0;
  for (; g + 2 <= ng; g += 2) {
    mmQuads2(ws, ap, xg, xg + gStride, d0, d1, d2, d3);
    xg += gStride << 1;
    ap += 128;
  }
  if (g < ng) mmQuads1(ws, ap, xg, d0, d1, d2, d3);
}

// Four rows x eight tokens (two groups of four) of one Q4R block; one quad
// per loop pass (see mmPairs2). The four rows' quad k is one load from the
// transposed block (transposeQuads) and four lane splats: workerd compiles
// with explicit bounds checks, and there three fewer checked loads per pass
// were +9–13%.
function mmQuads2(ws: usize, ap: usize, xg: usize, xh: usize, d0: v128, d1: v128, d2: v128, d3: v128): void {
  let a0 = v128.load(xg, 144), b0 = v128.load(xh, 144);
  let a1 = a0, a2 = a0, a3 = a0, b1 = b0, b2 = b0, b3 = b0;
  for (let k: usize = 0; k < 32; k += 4) {
    const x = v128.load(xg + (k << 2));
    const y = v128.load(xh + (k << 2));
    const q = v128.load(ws + MM_QT + (k << 2));
    const w0 = i32x4.shuffle(q, q, 0, 0, 0, 0), w1 = i32x4.shuffle(q, q, 1, 1, 1, 1);
    const w2 = i32x4.shuffle(q, q, 2, 2, 2, 2), w3 = i32x4.shuffle(q, q, 3, 3, 3, 3);
    a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, a0);
    a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, a1);
    a2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w2, a2);
    a3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w3, a3);
    b0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(y, w0, b0);
    b1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(y, w1, b1);
    b2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(y, w2, b2);
    b3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(y, w3, b3);
  }
  mmQuadsFold(ap, xg, a0, a1, a2, a3, d0, d1, d2, d3);
  mmQuadsFold(ap + 64, xh, b0, b1, b2, b3, d0, d1, d2, d3);
}

// Scratch offset of the transposed block: quad k of rows 0..3 side by side at MM_QT + 16k.
export const MM_QT: usize = 256;

// The unpacked block (row r's 32 bytes at 32r) transposed by quads: two 4x4 transposes of int32 lanes.
@inline function transposeQuads(ws: usize): void {
  let r0 = v128.load(ws), r1 = v128.load(ws, 32), r2 = v128.load(ws, 64), r3 = v128.load(ws, 96);
  let t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  let t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5), t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(ws + MM_QT, i64x2.shuffle(t0, t2, 0, 2), 0);
  v128.store(ws + MM_QT, i64x2.shuffle(t0, t2, 1, 3), 16);
  v128.store(ws + MM_QT, i64x2.shuffle(t1, t3, 0, 2), 32);
  v128.store(ws + MM_QT, i64x2.shuffle(t1, t3, 1, 3), 48);
  r0 = v128.load(ws, 16); r1 = v128.load(ws, 48); r2 = v128.load(ws, 80); r3 = v128.load(ws, 112);
  t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5); t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5); t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(ws + MM_QT, i64x2.shuffle(t0, t2, 0, 2), 64);
  v128.store(ws + MM_QT, i64x2.shuffle(t0, t2, 1, 3), 80);
  v128.store(ws + MM_QT, i64x2.shuffle(t1, t3, 0, 2), 96);
  v128.store(ws + MM_QT, i64x2.shuffle(t1, t3, 1, 3), 112);
}

function mmQuads1(ws: usize, ap: usize, xg: usize, d0: v128, d1: v128, d2: v128, d3: v128): void {
  let a0 = v128.load(xg, 144);
  let a1 = a0, a2 = a0, a3 = a0;
  for (let k: usize = 0; k < 32; k += 4) {
    const x = v128.load(xg + (k << 2));
    const q = v128.load(ws + MM_QT + (k << 2));
    a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, i32x4.shuffle(q, q, 0, 0, 0, 0), a0);
    a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, i32x4.shuffle(q, q, 1, 1, 1, 1), a1);
    a2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, i32x4.shuffle(q, q, 2, 2, 2, 2), a2);
    a3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, i32x4.shuffle(q, q, 3, 3, 3, 3), a3);
  }
  mmQuadsFold(ap, xg, a0, a1, a2, a3, d0, d1, d2, d3);
}

// acc[r] += f32(dot) * (d_w[r] * d_x) for one group of four tokens (row r at
// ap + 16r); d_r is d_w[r] in every lane.
@inline function mmQuadsFold(ap: usize, xg: usize, a0: v128, a1: v128, a2: v128, a3: v128, d0: v128, d1: v128, d2: v128, d3: v128): void {
  const dx = v128.load(xg, 128);
  v128.store(ap, f32x4.add(v128.load(ap), f32x4.mul(f32x4.convert_i32x4_s(a0), f32x4.mul(d0, dx))));
  v128.store(ap, f32x4.add(v128.load(ap, 16), f32x4.mul(f32x4.convert_i32x4_s(a1), f32x4.mul(d1, dx))), 16);
  v128.store(ap, f32x4.add(v128.load(ap, 32), f32x4.mul(f32x4.convert_i32x4_s(a2), f32x4.mul(d2, dx))), 32);
  v128.store(ap, f32x4.add(v128.load(ap, 48), f32x4.mul(f32x4.convert_i32x4_s(a3), f32x4.mul(d3, dx))), 48);
}

function matmulQ4rFused(w: usize, rows: i32, cols: i32, xq: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const ws = scratchBase();
  const gStride = nb * Q8B_QUAD;
  const m = v128.load(VCONST + VC_NIB8);
  for (let t0 = 0; t0 < ntok; t0 += MM_TOK) {
    const tn = min(MM_TOK, ntok - t0);
    const ng = (tn + 3) >> 2;
    const xg0 = xq + <usize>(t0 >> 2) * gStride;
    for (let r0 = 0; r0 < rows; r0 += 4) {
      memory.fill(ws + MM_ACC, 0, <usize>ng << 6);
      let p = w + <usize>(r0 >> 2) * nb * 72;
      for (let b: usize = 0; b < nb; b++) {
        unpackNib4(ws, p + 8, m);
        transposeQuads(ws);
        mmQuadsBlock(ws, xg0 + b * Q8B_QUAD, gStride, ng, h2f_x4(p));
        p += 72;
      }
      mmStore(ws, out, rows, r0, t0, tn);
    }
  }
}

// ---------------------------------------------------------------- small batches
//
// A decode step of a few streams multiplies each matrix by a few token rows,
// and the last ntok % 8 tokens of a prompt are a few rows too. The tiles
// above put tokens in the lanes of 8- or 4-token groups and pay for a whole
// tile whatever the count (a group of 8 costs about 5.8 matvecs in the
// relaxed build); one matvec per token pays for the weights' loads and
// nibble split again per token. Here the tokens' Q8A images (made from the
// Q8B, O(cols) each) are read by one pass over the weights for up to eight
// tokens: per 4 rows and block the quads are split once (4 loads, 12
// instructions) and each token costs the matvec's own arithmetic (8
// broadcast loads, 8 relaxed dots and 7 adds in int16 row lanes, one
// widening dot, the fold: ~22 vector operations) — bit for bit one matvec
// per token. The plain SIMD build,
// whose tiles cost more than per-token matvecs below eight tokens, runs the
// matvec per token on the images (as the Q8R matmul does below 16 tokens in
// the SIMD and relaxed builds). docs/kernels.md, "Small
// batches", has the measurements and the designs that lost.

// Tokens that take the small path: all of them up to SMALL_MAX, else the
// last ntok % 8 unless that is 7 (then one more 8-token group costs less).
const SMALL_MAX: i32 = 6;

@inline export function smallTail(ntok: i32): i32 {
  if (ntok <= SMALL_MAX) return ntok;
  const r = ntok & 7;
  return r <= SMALL_MAX ? r : 0;
}

// Q4R's small-batch pass (eight tokens at once) beats the tiles up to 16
// tokens in both relaxed builds (relaxed, 5632x2048: 8 tokens 1.35 ms against
// the 8-token tile's ~2.1, 12 tokens 1.12x tile + pass, 16 tokens 0.97x the
// tile); past that the tile takes the whole 8-token groups and gives the pass
// the rest (relaxed) or a tail of up to six (relaxed-fused, smallTail).
@inline function q4rSmallTail(ntok: i32): i32 {
  if (ntok <= 16) return ntok;
  return FUSED ? smallTail(ntok) : ntok & 7;
}

// Scratch offset of the (up to eight) tokens' Q8A images: clear of the tiles'
// scratch and of the per-call tables at MV_X (the relaxed Q8R matvec's nb*80
// bytes, the small passes' fold and sum tables).
export const SMALL_X: usize = 128 * 1024;

@inline export function smallStride(nb: usize): usize {
  return (q8aBytes(nb) + 63) & ~(<usize>63);
}

// Tokens a small-batch pass takes at once: eight where their Q8A images fit
// in scratch, else four.
@inline export function smallMost(stride: usize): i32 {
  return SMALL_X + stride * 8 <= SCRATCH_BYTES ? 8 : 4;
}

// The Q8A images of tokens [t, t + n) of Q8B xb at xa + i*stride (from the
// quads in the relaxed-fused build, the plain section otherwise).
@inline export function smallImages(xb: usize, nb: usize, t: i32, n: i32, xa: usize, stride: usize): void {
  for (let i = 0; i < n; i++) {
    if (FUSED) quadsToQ8a(xb, nb, t + i, xa + <usize>i * stride);
    else q8bToQ8a(xb, nb, t + i, xa + <usize>i * stride);
  }
}

// out[t*rows + r] for tokens [t0, t1) of Q8B xb, eight at a time where
// their images fit in scratch, else four.
function matmulSmall(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const stride = smallStride(nb);
  const xa = scratchBase() + SMALL_X;
  const outStride = <usize>rows << 2;
  const most = smallMost(stride);
  for (let t = t0; t < t1; t += most) {
    const n = min(most, t1 - t);
    smallImages(xb, nb, t, n, xa, stride);
    const o = out + <usize>t * outStride;
    if (ASC_FEATURE_RELAXED_SIMD && n > 1) {
      if (n == 2) matmulQ4rFew2(w, rows, cols, xa, stride, o);
      else if (n == 3) matmulQ4rFew3(w, rows, cols, xa, stride, o);
      else if (n == 4) matmulQ4rFew4(w, rows, cols, xa, stride, o);
      else if (n == 5) matmulQ4rFew5(w, rows, cols, xa, stride, o);
      else if (n == 6) matmulQ4rFew6(w, rows, cols, xa, stride, o);
      else if (n == 7) matmulQ4rFew7(w, rows, cols, xa, stride, o);
      else matmulQ4rFew8(w, rows, cols, xa, stride, o);
      continue;
    }
    for (let i = 0; i < n; i++) matvecQ4rSimd(w, rows, cols, xa + <usize>i * stride, o + <usize>i * outStride);
  }
}

// One pass for n = 2..8 tokens (a constant: each caller below gets its own
// copy with the other tokens' code removed, so the accumulators stay in
// registers; eight per pass ran 1.08-1.10x passes of four at 5-8 tokens in
// the relaxed build). Q8A images at xa +
// i*stride; out[i*rows + r]. Per 4 rows and block the quads are loaded and
// split once, and each token costs the matvec's own dot and fold on them
// (q4rFewToken). In the relaxed build up to four tokens go quad by quad
// instead (one quad split, then its two dots for every token): the eight
// split vectors are never live at once, so V8 spills less (1.04-1.06x at 2-4
// tokens); with more tokens their int16 sums outgrow the registers (0.69x at
// 8), so those go token by token. int16 adds wrap, so either order gives the
// same row sums. Each token's fold table (q4rFoldTable) goes to MV_X; a
// token whose table cannot be made takes the matvec (and so the scalar
// twin), as do the others then.
@inline function matmulQ4rFew(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32): void {
  const nb = <usize>cols >> 5;
  const outStride = <usize>rows << 2;
  const ft = scratchBase() + MV_X;
  const fs = q8aSumOff(nb) << 1;
  let ok = true;
  for (let i = 0; i < n; i++) ok = q4rFoldTable(xa + <usize>i * stride, nb, ft + <usize>i * fs) && ok;
  if (!ok) {
    for (let i = 0; i < n; i++) matvecQ4rSimd(w, rows, cols, xa + <usize>i * stride, out + <usize>i * outStride);
    return;
  }
  const m = v128.load(VCONST + VC_NIB8);
  // The fused dot's chains start from zero; the two-step dot's int16 lanes are widened by a dot with ones.
  const c = FUSED ? i32x4.splat(0) : v128.load(VCONST + VC_ONES16);
  const hmask = v128.load(VCONST + VC_HMASK);
  const t = scratchBase();
  const xEnd = ft + (nb << 2);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    let xq = xa + q8aQ8Off(nb), xs = ft + q8aSumOff(nb);
    for (let xd = ft; xd < xEnd; xd += 4) {
      if (!FUSED && n <= 4) {
        let v = v128.load(p, 8);
        let l = v128.and(v, m), h = v128.and(i16x8.shr_u(v, 4), m);
        let s0 = q4rQuadDot(l, h, xq), s1 = q4rQuadDot(l, h, xq + stride), s2 = s0, s3 = s0;
        if (n > 2) s2 = q4rQuadDot(l, h, xq + stride * 2);
        if (n > 3) s3 = q4rQuadDot(l, h, xq + stride * 3);
        for (let k: usize = 1; k < 4; k++) {
          v = v128.load(p + 8 + (k << 4));
          l = v128.and(v, m);
          h = v128.and(i16x8.shr_u(v, 4), m);
          const x = xq + (k << 2);
          s0 = i16x8.add(s0, q4rQuadDot(l, h, x));
          s1 = i16x8.add(s1, q4rQuadDot(l, h, x + stride));
          if (n > 2) s2 = i16x8.add(s2, q4rQuadDot(l, h, x + stride * 2));
          if (n > 3) s3 = i16x8.add(s3, q4rQuadDot(l, h, x + stride * 3));
        }
        const dw = h2fBits_x4c(p, hmask);
        a0 = q4rFold(i32x4.dot_i16x8_s(s0, c), xs, xd, dw, a0);
        a1 = q4rFold(i32x4.dot_i16x8_s(s1, c), xs + fs, xd + fs, dw, a1);
        if (n > 2) a2 = q4rFold(i32x4.dot_i16x8_s(s2, c), xs + fs * 2, xd + fs * 2, dw, a2);
        if (n > 3) a3 = q4rFold(i32x4.dot_i16x8_s(s3, c), xs + fs * 3, xd + fs * 3, dw, a3);
      } else {
        // Quad k of the four rows: low nibbles l_k (values 4k..4k+3), high h_k (16+4k..).
        const v0 = v128.load(p, 8), v1 = v128.load(p, 24), v2 = v128.load(p, 40), v3 = v128.load(p, 56);
        const l0 = v128.and(v0, m), h0 = v128.and(i16x8.shr_u(v0, 4), m);
        const l1 = v128.and(v1, m), h1 = v128.and(i16x8.shr_u(v1, 4), m);
        const l2 = v128.and(v2, m), h2 = v128.and(i16x8.shr_u(v2, 4), m);
        const l3 = v128.and(v3, m), h3 = v128.and(i16x8.shr_u(v3, 4), m);
        const dw = h2fBits_x4c(p, hmask);
        a0 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq, xs, xd, dw, a0, c, t);
        a1 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride, xs + fs, xd + fs, dw, a1, c, t);
        if (n > 2) a2 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 2, xs + fs * 2, xd + fs * 2, dw, a2, c, t);
        if (n > 3) a3 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 3, xs + fs * 3, xd + fs * 3, dw, a3, c, t);
        if (n > 4) a4 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 4, xs + fs * 4, xd + fs * 4, dw, a4, c, t);
        if (n > 5) a5 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 5, xs + fs * 5, xd + fs * 5, dw, a5, c, t);
        if (n > 6) a6 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 6, xs + fs * 6, xd + fs * 6, dw, a6, c, t);
        if (n > 7) a7 = q4rFewToken(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 7, xs + fs * 7, xd + fs * 7, dw, a7, c, t);
      }
      p += 72;
      xq += 32;
      xs += 4;
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// One quad's split nibbles (l: values 4k..4k+3 of the four rows, h: 16+4k..)
// against one token's activations at x (x = the block's + 4k): two of
// quadsNibRelaxed's eight dots, in its int16 row lanes.
@inline function q4rQuadDot(l: v128, h: v128, x: usize): v128 {
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x), l), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 16), h));
}

// One token's block of the pass: its four row sums (relaxed-fused: the fused
// dot, q4rFewFusedDot, c zero; relaxed: the two-step dot, q4rFewDot, c the
// widening ones) folded into acc. In the relaxed build a store to t then
// orders the next token's activation loads after it (V8 would hoist all of
// them to the top of the block and spill); the relaxed-fused pass was
// measured without one.
@inline function q4rFewToken(l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128,
  xq: usize, xs: usize, xd: usize, dw: v128, acc: v128, c: v128, t: usize): v128 {
  const s = FUSED ? q4rFewFusedDot(l0, h0, l1, h1, l2, h2, l3, h3, xq, c) : q4rFewDot(l0, h0, l1, h1, l2, h2, l3, h3, xq, c);
  const a = q4rFold(s, xs, xd, dw, acc);
  if (!FUSED) v128.store(t, a);
  return a;
}

// One token's four row sums of a block, as the relaxed matvec forms them
// (quadsNibRelaxed), from the quads' nibbles already split: exact, no wrap.
@inline function q4rFewDot(l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128, xq: usize, ones: v128): v128 {
  return i32x4.dot_i16x8_s(q4rFewDot16(l0, h0, l1, h1, l2, h2, l3, h3, xq), ones);
}

// The same before its widening: the eight dots' int16 row lanes [r0 even
// pairs, r0 odd, r1 ..., r3 odd] (quadsNibRelaxed's), for a caller that
// widens them with other weights (Q4KR's scales).
@inline export function q4rFewDot16(l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128, xq: usize): v128 {
  let a = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq), l0);
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 16), h0));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 4), l1));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 20), h1));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 8), l2));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 24), h2));
  a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 12), l3));
  return i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xq, 28), h3));
}

// One token's four row sums of a block with the fused dot, from the split
// quads: its 32 activations as two loads, each quad splatted by a shuffle.
@inline export function q4rFewFusedDot(l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128, xq: usize, z: v128): v128 {
  const xl = v128.load(xq), xh = v128.load(xq, 16);
  let a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 0, 0, 0, 0), l0, z);
  let b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 0, 0, 0, 0), h0, z);
  a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 1, 1, 1, 1), l1, a);
  b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 1, 1, 1, 1), h1, b);
  a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 2, 2, 2, 2), l2, a);
  b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 2, 2, 2, 2), h2, b);
  a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 3, 3, 3, 3), l3, a);
  b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 3, 3, 3, 3), h3, b);
  return i32x4.add(a, b);
}

function matmulQ4rFew2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 2);
}
function matmulQ4rFew3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 3);
}
function matmulQ4rFew4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 4);
}
function matmulQ4rFew5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 5);
}
function matmulQ4rFew6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 6);
}
function matmulQ4rFew7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 7);
}
function matmulQ4rFew8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void {
  matmulQ4rFew(w, rows, cols, xa, stride, out, 8);
}
