// Matrix-matrix products for Q6R (repacked Q6_K, see q6matvec.ts): prefill,
// and the decode step of a few streams. out[t*rows + r] for ntok tokens of
// Q8B, bit-identical to ntok matvec_q6r_q8a calls. Per 32-block of a row the
// matvec forms
//   s = sc0 * sum_{l<16} (q_l - 32) x_l + sc1 * sum_{l>=16} (q_l - 32) x_l
// exactly in integers and folds acc + f32(s) * (d_w * d_x); so does the pass
// here.
//
// Both relaxed builds: every token count in passes of up to eight tokens over
// the weights (matmulQ6Few). They beat the token tiles these builds had
// (relaxed: int16 chains per quarter block, eight tokens in lanes;
// relaxed-fused: int32 chains per half, four tokens) at every count measured,
// 64 tokens included, and replaced them (docs/kernels.md, "Small batches in
// workerd" and "Q6R's pass in Node"). The plain SIMD and scalar builds: one
// matvec per token.

import { FUSED, scratchBase, h2f_x4_nodenorm, q8aQ8Off } from "./common";
import { SMALL_X, smallStride, smallMost, smallImages, storeFew, foldRows } from "./quant";
import { matvecsPerToken } from "./kquant";
import { Q6R_SC, Q6R_XT, Q6R_CONST, M6, MC, q6rQuads, q6rTable, matvec_q6r_q8a } from "./q6matvec";

export function matmul_q6r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  if (!ASC_FEATURE_RELAXED_SIMD) {
    matvecsPerToken(w, rows, cols, xb, 0, ntok, out, 6);
    return;
  }
  matmulQ6Passes(w, rows, cols, xb, ntok, out);
}

// Relaxed builds: the tokens of Q8B xb up to eight at a time (four where
// eight images or tables do not fit in scratch) in one pass over the weights
// (matmulQ6Few); a lone token takes the matvec, and so do two in the relaxed
// build, where their pass ran at 0.87x of two matvecs (three: 0.98x).
function matmulQ6Passes(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const stride = smallStride(nb);
  const xa = scratchBase() + SMALL_X;
  const outStride = <usize>rows << 2;
  // Eight tokens' tables of -32 * sum(x) must fit below the images too.
  const most = Q6R_XT + (nb << 8) <= SMALL_X ? smallMost(stride) : 4;
  for (let t = 0; t < ntok; t += most) {
    const n = min(most, ntok - t);
    smallImages(xb, nb, t, n, xa, stride);
    const o = out + <usize>t * outStride;
    if (n == 1) matvec_q6r_q8a(w, rows, cols, xa, o);
    else if (n == 2 && !FUSED) {
      matvec_q6r_q8a(w, rows, cols, xa, o);
      matvec_q6r_q8a(w, rows, cols, xa + stride, o + outStride);
    } else if (n == 2) matmulQ6Few2(w, rows, cols, xa, stride, o);
    else if (n == 3) matmulQ6Few3(w, rows, cols, xa, stride, o);
    else if (n == 4) matmulQ6Few4(w, rows, cols, xa, stride, o);
    else if (n == 5) matmulQ6Few5(w, rows, cols, xa, stride, o);
    else if (n == 6) matmulQ6Few6(w, rows, cols, xa, stride, o);
    else if (n == 7) matmulQ6Few7(w, rows, cols, xa, stride, o);
    else matmulQ6Few8(w, rows, cols, xa, stride, o);
  }
}

// n = 2..8 tokens' Q8A images at xa + i*stride, one pass (a constant: each
// caller below gets its own copy). Per four rows and 32-block the eight
// quad vectors are unpacked once (q6rQuads) with the rows' scales, and each
// token costs its build's matvec work on them (q6rFewBlock) and the fold acc
// + f32(s) * (d_w * d_x): integer sums and the same fold, so the matvec's
// bits. In the relaxed build a store to scratch after each token orders the
// next token's loads after it (without it V8 hoisted them and spilled: the
// pass ran at 0.76-0.84x of per-token matvecs instead of 1.10x at four
// tokens).
@inline function matmulQ6Few(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32): void {
  const nb = <usize>cols >> 5;
  const outStride = <usize>rows << 2;
  const ts = nb << 5;
  const xt = scratchBase() + Q6R_XT;
  for (let i = 0; i < n; i++) q6rTable(xa + <usize>i * stride + q8aQ8Off(nb), nb, xt + <usize>i * ts);
  const m6 = v128.load(Q6R_CONST + M6), mc = v128.load(Q6R_CONST + MC);
  const x8 = xa + q8aQ8Off(nb);
  const ord = scratchBase();
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (let xb: usize = 0; xb < nb; xb += 8) {
      const dd = h2f_x4_nodenorm(p);
      for (let b: usize = 0; b < 8; b++) {
        const l0 = q6rQuads(p, b, 0, 0, m6, mc), l1 = q6rQuads(p, b, 0, 1, m6, mc);
        const l2 = q6rQuads(p, b, 0, 2, m6, mc), l3 = q6rQuads(p, b, 0, 3, m6, mc);
        const h0 = q6rQuads(p, b, 1, 0, m6, mc), h1 = q6rQuads(p, b, 1, 1, m6, mc);
        const h2 = q6rQuads(p, b, 1, 2, m6, mc), h3 = q6rQuads(p, b, 1, 3, m6, mc);
        const sv = v128.load8x8_s(p + Q6R_SC + (b << 3));
        // Fused: the halves' int32 sums times the scales; relaxed: their int16 lanes widened by a dot with the scales.
        const sc0 = FUSED ? i32x4.extend_low_i16x8_s(sv) : i16x8.shuffle(sv, sv, 0, 0, 1, 1, 2, 2, 3, 3);
        const sc1 = FUSED ? i32x4.extend_high_i16x8_s(sv) : i16x8.shuffle(sv, sv, 4, 4, 5, 5, 6, 6, 7, 7);
        const g = xb + b;
        const x = x8 + (g << 5), t = xt + (g << 5), d = xa + (g << 2);
        a0 = q6rFewToken(a0, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x, t, dd, d, ord);
        a1 = q6rFewToken(a1, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride, t + ts, dd, d + stride, ord);
        if (n > 2) a2 = q6rFewToken(a2, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 2, t + ts * 2, dd, d + stride * 2, ord);
        if (n > 3) a3 = q6rFewToken(a3, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 3, t + ts * 3, dd, d + stride * 3, ord);
        if (n > 4) a4 = q6rFewToken(a4, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 4, t + ts * 4, dd, d + stride * 4, ord);
        if (n > 5) a5 = q6rFewToken(a5, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 5, t + ts * 5, dd, d + stride * 5, ord);
        if (n > 6) a6 = q6rFewToken(a6, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 6, t + ts * 6, dd, d + stride * 6, ord);
        if (n > 7) a7 = q6rFewToken(a7, l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 7, t + ts * 7, dd, d + stride * 7, ord);
      }
      p += 840;
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// One token's block folded into acc; in the relaxed build acc is then stored
// to ord, which orders the next token's loads after this token's work.
@inline function q6rFewToken(acc: v128, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128,
  sc0: v128, sc1: v128, x: usize, t: usize, dd: v128, d: usize, ord: usize): v128 {
  const a = foldRows(acc, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x, t), dd, d);
  if (!FUSED) v128.store(ord, a);
  return a;
}

// One token's block: s_r = sc0_r * sum (q - 32) x over the first half +
// sc1_r * the same over the second, exact in int32, as q6rBlockRelaxed forms
// them. Relaxed: per half four two-step dots with the activation quads
// splatted by broadcast loads, added in wrapping int16 to the table's -32 *
// sum(x) (the lanes end exact), widened by a dot with the scales (sc0, sc1:
// [s_r0, s_r0, s_r1, ...]). Fused: the 32 activations as two loads and eight
// splat shuffles, four fused dots per half from the table, times the scales
// (sc0, sc1: int32).
@inline function q6rFewBlock(l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, sc0: v128, sc1: v128, x: usize, t: usize): v128 {
  if (!FUSED) {
    let a = i16x8.add(v128.load(t), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x), l0));
    let b = i16x8.add(v128.load(t, 16), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 16), h0));
    a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 4), l1));
    b = i16x8.add(b, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 20), h1));
    a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 8), l2));
    b = i16x8.add(b, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 24), h2));
    a = i16x8.add(a, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 12), l3));
    b = i16x8.add(b, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 28), h3));
    return i32x4.add(i32x4.dot_i16x8_s(a, sc0), i32x4.dot_i16x8_s(b, sc1));
  }
  const xl = v128.load(x), xh = v128.load(x, 16);
  let a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 0, 0, 0, 0), l0, v128.load(t));
  let b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 0, 0, 0, 0), h0, v128.load(t, 16));
  a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 1, 1, 1, 1), l1, a);
  b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 1, 1, 1, 1), h1, b);
  a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 2, 2, 2, 2), l2, a);
  b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 2, 2, 2, 2), h2, b);
  a = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xl, xl, 3, 3, 3, 3), l3, a);
  b = i32x4.relaxed_dot_i8x16_i7x16_add_s(i32x4.shuffle(xh, xh, 3, 3, 3, 3), h3, b);
  return i32x4.add(i32x4.mul(a, sc0), i32x4.mul(b, sc1));
}

function matmulQ6Few2(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 2); }
function matmulQ6Few3(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 3); }
function matmulQ6Few4(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 4); }
function matmulQ6Few5(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 5); }
function matmulQ6Few6(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 6); }
function matmulQ6Few7(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 7); }
function matmulQ6Few8(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize): void { matmulQ6Few(w, rows, cols, xa, stride, out, 8); }
