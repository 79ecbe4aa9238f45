// Matrix-matrix products (prefill, and the decode step of a few streams) for
// Q41R, Q50R and Q51R against Q8B activations: out[t*rows + r] for ntok
// tokens, bit-identical to ntok matvec calls (q41quant.ts, q5quant.ts).
//
// Relaxed builds: passes of up to eight tokens over the weights. Per four-row
// group and 32-block the rows' 32 values are unpacked once into eight byte
// vectors (Q4_1: the nibbles; Q5: the nibbles with their fifth bits, most of
// a Q5 matvec's work), and each token then costs the matvec's dots, row
// reduction and fold on them. The sums are exact integers and the fold is
// the matvec's expression, so every token gets the matvec's bits. Each
// token's Q8A image (the matvec's input) is made from the Q8B first, O(cols)
// per token. The plain SIMD and scalar builds run one matvec per token.
// docs/kernels.md ("Q4_1, Q5_0, Q5_1") has the measurements.

import { FUSED, scratchBase, h2f_x4c, VCONST, VC_NIB8, VC_B16, VC_ONES16, VC_HMASK, VC_HMUL, q8aSumOff, q8aQ8Off } from "./common";
import { reduce4, reduce4i16, rowDot16, rowDot32, storeFew, smallImages, smallStride, smallMost, SMALL_X } from "./quant";
import { matvecsPerToken32, matvec_q41r_q8a } from "./q41quant";
import { matvec_q50r_q8a, matvec_q51r_q8a, values5, values5hi } from "./q5quant";

// Which layout a call is for (compile-time constants in the passes below).
const Q41: i32 = 0;
const Q50: i32 = 1;
const Q51: i32 = 2;

export function matmul_q41r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmul32(w, rows, cols, xb, ntok, out, Q41);
}

export function matmul_q50r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmul32(w, rows, cols, xb, ntok, out, Q50);
}

export function matmul_q51r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  matmul32(w, rows, cols, xb, ntok, out, Q51);
}

@inline function matmul32(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize, kind: i32): void {
  if (!ASC_FEATURE_RELAXED_SIMD) {
    matvecsPerToken32(w, rows, cols, xb, ntok, out, kind);
    return;
  }
  const nb = <usize>cols >> 5;
  const stride = smallStride(nb);
  const xa = scratchBase() + SMALL_X;
  const outStride = <usize>rows << 2;
  const most = smallMost(stride);
  for (let t = 0; t < ntok; t += most) {
    const n = min(most, ntok - t);
    smallImages(xb, nb, t, n, xa, stride);
    const o = out + <usize>t * outStride;
    if (n == 1) {
      if (kind == Q41) matvec_q41r_q8a(w, rows, cols, xa, o);
      else if (kind == Q50) matvec_q50r_q8a(w, rows, cols, xa, o);
      else matvec_q51r_q8a(w, rows, cols, xa, o);
    } else if (kind == Q41) {
      if (n == 2) q41Few2(w, rows, cols, xa, stride, o);
      else if (n == 3) q41Few3(w, rows, cols, xa, stride, o);
      else if (n == 4) q41Few4(w, rows, cols, xa, stride, o);
      else if (n == 5) q41Few5(w, rows, cols, xa, stride, o);
      else if (n == 6) q41Few6(w, rows, cols, xa, stride, o);
      else if (n == 7) q41Few7(w, rows, cols, xa, stride, o);
      else q41Few8(w, rows, cols, xa, stride, o);
    } else if (kind == Q50) {
      if (n == 2) q50Few2(w, rows, cols, xa, stride, o);
      else if (n == 3) q50Few3(w, rows, cols, xa, stride, o);
      else if (n == 4) q50Few4(w, rows, cols, xa, stride, o);
      else if (n == 5) q50Few5(w, rows, cols, xa, stride, o);
      else if (n == 6) q50Few6(w, rows, cols, xa, stride, o);
      else if (n == 7) q50Few7(w, rows, cols, xa, stride, o);
      else q50Few8(w, rows, cols, xa, stride, o);
    } else {
      if (n == 2) q51Few2(w, rows, cols, xa, stride, o);
      else if (n == 3) q51Few3(w, rows, cols, xa, stride, o);
      else if (n == 4) q51Few4(w, rows, cols, xa, stride, o);
      else if (n == 5) q51Few5(w, rows, cols, xa, stride, o);
      else if (n == 6) q51Few6(w, rows, cols, xa, stride, o);
      else if (n == 7) q51Few7(w, rows, cols, xa, stride, o);
      else q51Few8(w, rows, cols, xa, stride, o);
    }
  }
}

// One pass for n = 2..8 tokens (constants, as is kind: each caller below gets
// its own copy with the other tokens' code removed; with n a variable the
// pass ran at half the speed). Q8A images at xa + i*stride; out[i*rows + r].
@inline function few32(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32, kind: i32): void {
  const nb = <usize>cols >> 5;
  const outStride = <usize>rows << 2;
  const blockBytes: usize = kind == Q41 ? 80 : kind == Q50 ? 88 : 96;
  // Q5: the rows' fifth-bit plane, then their nibble bytes.
  const h: usize = kind == Q51 ? 16 : 8;
  const m = v128.load(VCONST + VC_NIB8);
  const ones = v128.load(VCONST + VC_ONES16);
  const hmask = v128.load(VCONST + VC_HMASK);
  const hmul = v128.load(VCONST + VC_HMUL);
  const b5 = v128.load(VCONST + VC_B16);
  const x8 = xa + q8aQ8Off(nb), xs0 = xa + q8aSumOff(nb);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (let b: usize = 0; b < nb; b++) {
      // Row r's values 0..15 in l_r, 16..31 in h_r, as bytes.
      let l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128;
      if (kind == Q41) {
        const v0 = v128.load(p, 16), v1 = v128.load(p, 32), v2 = v128.load(p, 48), v3 = v128.load(p, 64);
        l0 = v128.and(v0, m); h0 = v128.and(i16x8.shr_u(v0, 4), m);
        l1 = v128.and(v1, m); h1 = v128.and(i16x8.shr_u(v1, 4), m);
        l2 = v128.and(v2, m); h2 = v128.and(i16x8.shr_u(v2, 4), m);
        l3 = v128.and(v3, m); h3 = v128.and(i16x8.shr_u(v3, 4), m);
      } else {
        const q = p + h + 16;
        const P = v128.load(p + h);
        l0 = values5(q, P, 0, m, b5); h0 = values5hi(q, P, 0, m, b5);
        l1 = values5(q + 16, P, 1, m, b5); h1 = values5hi(q + 16, P, 1, m, b5);
        l2 = values5(q + 32, P, 2, m, b5); h2 = values5hi(q + 32, P, 2, m, b5);
        l3 = values5(q + 48, P, 3, m, b5); h3 = values5hi(q + 48, P, 3, m, b5);
      }
      const dW = h2f_x4c(p, hmask, hmul);
      const mW = kind == Q51 || kind == Q41 ? h2f_x4c(p + 8, hmask, hmul) : dW;
      const xq = x8 + (b << 5), xd = xa + (b << 2), xs = xs0 + (b << 2);
      a0 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq, xd, xs, dW, mW, a0, ones, kind);
      a1 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride, xd + stride, xs + stride, dW, mW, a1, ones, kind);
      if (n > 2) a2 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 2, xd + stride * 2, xs + stride * 2, dW, mW, a2, ones, kind);
      if (n > 3) a3 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 3, xd + stride * 3, xs + stride * 3, dW, mW, a3, ones, kind);
      if (n > 4) a4 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 4, xd + stride * 4, xs + stride * 4, dW, mW, a4, ones, kind);
      if (n > 5) a5 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 5, xd + stride * 5, xs + stride * 5, dW, mW, a5, ones, kind);
      if (n > 6) a6 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 6, xd + stride * 6, xs + stride * 6, dW, mW, a6, ones, kind);
      if (n > 7) a7 = token32(l0, h0, l1, h1, l2, h2, l3, h3, xq + stride * 7, xd + stride * 7, xs + stride * 7, dW, mW, a7, ones, kind);
      p += blockBytes;
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// One token's block, folded into acc: the four rows' exact sums (Q4_1 in the
// relaxed build as its matvec: int16 row sums, reduce4i16; else int32 row
// sums and reduce4: Q5's pair sums of four rows would pass int16, and the
// fused dot's chains are int32 already), then the matvec's fold with the
// rows' scales dW (and mins mW) times d_x.
@inline function token32(l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128,
  xq: usize, xd: usize, xs: usize, dW: v128, mW: v128, acc: v128, ones: v128, kind: i32): v128 {
  const xl = v128.load(xq), xh = v128.load(xq, 16);
  let s: v128;
  if (kind == Q41 && !FUSED) {
    s = reduce4i16(rowDot16(xl, xh, l0, h0), rowDot16(xl, xh, l1, h1), rowDot16(xl, xh, l2, h2), rowDot16(xl, xh, l3, h3), ones);
  } else {
    s = reduce4(rowDot32(xl, xh, l0, h0), rowDot32(xl, xh, l1, h1), rowDot32(xl, xh, l2, h2), rowDot32(xl, xh, l3, h3));
  }
  const dx = v128.load32_splat(xd);
  if (kind == Q50) {
    s = i32x4.sub(s, i32x4.shl(v128.load32_splat(xs), 4));
    return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(dW, dx)));
  }
  const sx = f32x4.convert_i32x4_s(v128.load32_splat(xs));
  return f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(dW, dx)), f32x4.mul(sx, f32x4.mul(mW, dx))));
}

function q41Few2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 2, Q41); }
function q41Few3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 3, Q41); }
function q41Few4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 4, Q41); }
function q50Few2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 2, Q50); }
function q50Few3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 3, Q50); }
function q50Few4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 4, Q50); }
function q51Few2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 2, Q51); }
function q51Few3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 3, Q51); }
function q51Few4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 4, Q51); }
function q50Few5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 5, Q50); }
function q50Few6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 6, Q50); }
function q50Few7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 7, Q50); }
function q50Few8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 8, Q50); }
function q51Few5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 5, Q51); }
function q51Few6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 6, Q51); }
function q51Few7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 7, Q51); }
function q51Few8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 8, Q51); }
function q41Few5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 5, Q41); }
function q41Few6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 6, Q41); }
function q41Few7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 7, Q41); }
function q41Few8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { few32(w, rows, cols, xa, stride, out, 8, Q41); }
