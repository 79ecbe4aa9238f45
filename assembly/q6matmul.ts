// Prefill matmul for Q6R (repacked Q6_K, see q6matvec.ts):
// out[t*rows + r] for ntok tokens of Q8B, bit-identical to ntok
// matvec_q6r_q8a calls. Per 32-block of a row the matvec forms
//   s = sc0 * sum_{l<16} (q_l - 32) x_l + sc1 * sum_{l>=16} (q_l - 32) x_l
// exactly in integers and folds acc + f32(s) * (d_w * d_x); so does every
// tile here.
//
// Relaxed build (pairs, eight tokens in lanes, int16): a sum of 16 values
// (q - 32) x reaches 32*127*16 = 65024, past int16, so each quarter block
// (four pairs, eight values, |.| <= 32512) runs its own chain from
// -32 * sum(x) of the quarter (a per-call table) and is widened and scaled
// at once by a dot with [sc, 0, sc, 0, ...] / [0, sc, 0, sc, ...] into int32
// sums kept in scratch; its few tokens (and the SIMD and scalar builds' every
// token): one matvec per token. Relaxed-fused build: every token count in
// passes of up to eight tokens over the weights (matmulQ6Few), which beat its
// four-token tile (int32 chains per 16-wide half, the fused dot) at every
// count measured, 64 tokens included (docs/kernels.md, "Small batches in
// workerd").

import { FUSED, scratchBase, h2f_nodenorm, h2f_x4_nodenorm, q8aQ8Off } from "./common";
import { MM_TOK, MM_DW, MM_ACC, Q8B_PAIRS, q8bPlainBytes, storePairsAcc, smallTail, SMALL_X, smallStride, smallMost, smallImages, storeFew, foldRows } from "./quant";
import { matvecsPerToken } from "./kquant";
import { Q6R_SC, Q6R_XT, Q6R_CONST, M6, MC, q6rQuads, q6rTable, matvec_q6r_q8a } from "./q6matvec";

export function matmul_q6r_q8b(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize): void {
  if (!ASC_FEATURE_RELAXED_SIMD) {
    matvecsPerToken(w, rows, cols, xb, 0, ntok, out, 6);
    return;
  }
  const tiled = FUSED ? 0 : ntok - smallTail(ntok);
  if (tiled > 0) matmulQ6Tiled(w, rows, cols, xb + q8bPlainBytes(<usize>cols >> 5, ntok), tiled, out);
  if (tiled < ntok) {
    if (FUSED) matmulQ6Small(w, rows, cols, xb, tiled, ntok, out);
    else matvecsPerToken(w, rows, cols, xb, tiled, ntok, out, 6);
  }
}

// Relaxed-fused (workerd): tokens [t0, t1) of Q8B xb up to eight at a time
// (four where eight images or tables do not fit in scratch) in one pass over
// the weights (matmulQ6Few); a lone token takes the matvec.
function matmulQ6Small(w: usize, rows: i32, cols: i32, xb: usize, t0: i32, t1: i32, out: usize): void {
  const nb = <usize>cols >> 5;
  const stride = smallStride(nb);
  const xa = scratchBase() + SMALL_X;
  const outStride = <usize>rows << 2;
  // Eight tokens' tables of -32 * sum(x) must fit below the images too.
  const most = Q6R_XT + (nb << 8) <= SMALL_X ? smallMost(stride) : 4;
  for (let t = t0; t < t1; t += most) {
    const n = min(most, t1 - t);
    smallImages(xb, nb, t, n, xa, stride);
    const o = out + <usize>t * outStride;
    if (n == 1) matvec_q6r_q8a(w, rows, cols, xa, o);
    else if (n == 2) matmulQ6Few2(w, rows, cols, xa, stride, o);
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
// token costs the fused matvec's own work on them: its 32 activations as two
// loads and eight splat shuffles, four fused dots per half from its table's
// -32 * sum(x), the halves times their scales, and the fold acc + f32(s) *
// (d_w * d_x): integer sums and the same fold, so the matvec's bits.
@inline function matmulQ6Few(w: usize, rows: i32, cols: i32, xa: usize, stride: usize, out: usize, n: i32): void {
  const nb = <usize>cols >> 5;
  const outStride = <usize>rows << 2;
  const ts = nb << 5;
  const xt = scratchBase() + Q6R_XT;
  for (let i = 0; i < n; i++) q6rTable(xa + <usize>i * stride + q8aQ8Off(nb), nb, xt + <usize>i * ts);
  const m6 = v128.load(Q6R_CONST + M6), mc = v128.load(Q6R_CONST + MC);
  const x8 = xa + q8aQ8Off(nb);
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
        const sc0 = i32x4.extend_low_i16x8_s(sv), sc1 = i32x4.extend_high_i16x8_s(sv);
        const g = xb + b;
        const x = x8 + (g << 5), t = xt + (g << 5), d = xa + (g << 2);
        a0 = foldRows(a0, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x, t), dd, d);
        a1 = foldRows(a1, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride, t + ts), dd, d + stride);
        if (n > 2) a2 = foldRows(a2, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 2, t + ts * 2), dd, d + stride * 2);
        if (n > 3) a3 = foldRows(a3, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 3, t + ts * 3), dd, d + stride * 3);
        if (n > 4) a4 = foldRows(a4, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 4, t + ts * 4), dd, d + stride * 4);
        if (n > 5) a5 = foldRows(a5, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 5, t + ts * 5), dd, d + stride * 5);
        if (n > 6) a6 = foldRows(a6, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 6, t + ts * 6), dd, d + stride * 6);
        if (n > 7) a7 = foldRows(a7, q6rFewBlock(l0, l1, l2, l3, h0, h1, h2, h3, sc0, sc1, x + stride * 7, t + ts * 7), dd, d + stride * 7);
      }
      p += 840;
    }
    storeFew(out, outStride, r0, rows, n, a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// One token's block: s_r = sc0_r * sum (q - 32) x over the first half +
// sc1_r * the same over the second, exact in int32 (q6rBlockRelaxed's sums).
@inline function q6rFewBlock(l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, sc0: v128, sc1: v128, x: usize, t: usize): v128 {
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

// The relaxed tile's scratch: [0, 128) the current 32-block's six-bit values
// of rows 0..3 (row r at 32r); at MM_DW: f32 d[4]; per row and half the
// int16 widening vectors [sc,0,..] / [0,sc,..] at Q6_SC + 64r + 32h (+16
// odd); [Q6_T, +64) the row pass's ordering stores; MM_ACC the f32
// accumulators; Q6_TAB the chains' starting values per token group and
// block.
// @ts-ignore: decorator
@inline const Q6_SC: usize = 2304;
// @ts-ignore: decorator
@inline const Q6_T: usize = 3072;
// @ts-ignore: decorator
@inline const Q6_TAB: usize = 256 * 1024;

// Block k (0..7) of Q6R superblock column p of the four rows: values
// (0..63) to ws (row r's 32 at 32r, the quads transposed back), scales to
// Q6_SC (q6matvec.ts's layout and unpacking).
@inline function q6Unpack(ws: usize, p: usize, k: i32, m6: v128, mc: v128): void {
  for (let h: usize = 0; h < 2; h++) {
    const q0 = q6rQuads(p, k, h, 0, m6, mc), q1 = q6rQuads(p, k, h, 1, m6, mc);
    const q2 = q6rQuads(p, k, h, 2, m6, mc), q3 = q6rQuads(p, k, h, 3, m6, mc);
    const t0 = i32x4.shuffle(q0, q1, 0, 4, 1, 5), t1 = i32x4.shuffle(q0, q1, 2, 6, 3, 7);
    const t2 = i32x4.shuffle(q2, q3, 0, 4, 1, 5), t3 = i32x4.shuffle(q2, q3, 2, 6, 3, 7);
    const o = ws + (h << 4);
    v128.store(o, i64x2.shuffle(t0, t2, 0, 2));
    v128.store(o, i64x2.shuffle(t0, t2, 1, 3), 32);
    v128.store(o, i64x2.shuffle(t1, t3, 0, 2), 64);
    v128.store(o, i64x2.shuffle(t1, t3, 1, 3), 96);
  }
  for (let r: usize = 0; r < 4; r++) {
    for (let half: usize = 0; half < 2; half++) {
      const sc = <i32>load<i8>(p + Q6R_SC + ((<usize>(k << 1) + half) << 2) + r);
      const o = ws + Q6_SC + (r << 6) + (half << 5);
      v128.store(o, i32x4.splat(sc & 0xffff));
      v128.store(o, i32x4.splat(sc << 16), 16);
    }
  }
}

// ---------------------------------------------------------------- relaxed

// -32 * sum(x) of each quarter block (four pairs) of the chunk's groups: per
// group and block four int16 vectors (tokens in lanes).
function q6PairsTable(xg0: usize, gStride: usize, ng: i32, nb: usize, tab: usize): void {
  const ones = i8x16.splat(1);
  for (let g = 0; g < ng; g++) {
    let xg = xg0 + <usize>g * gStride;
    let o = tab + <usize>g * nb * 64;
    for (let b: usize = 0; b < nb; b++) {
      for (let qt: usize = 0; qt < 4; qt++) {
        let s = i16x8.splat(0);
        for (let p: usize = 0; p < 4; p++) s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xg + (qt << 6) + (p << 4)), ones));
        v128.store(o + (qt << 4), i16x8.neg(i16x8.shl(s, 5)));
      }
      xg += Q8B_PAIRS;
      o += 64;
    }
  }
}

// One quarter (pairs 4qt..4qt+3, from pair p = 8qt) of a row's eight tokens:
// its int16 chain from the table's -32 * sum(x) of the quarter (s).
@inline function q6QuarterRow(w: usize, xg: usize, s: v128, p: usize): v128 {
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xg + (p << 3)), v128.load16_splat(w + p)));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xg + (p << 3), 16), v128.load16_splat(w + p, 2)));
  s = i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xg + (p << 3), 32), v128.load16_splat(w + p, 4)));
  return i16x8.add(s, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xg + (p << 3), 48), v128.load16_splat(w + p, 6)));
}

// acc[r] += f32(s) * (d_w * d_x) for one group of eight tokens (row r at ap
// + 32r: even tokens, then odd, as Q8B's d). A row at a time: its four
// quarter chains, each widened and scaled at once (a dot with [sc,0,..] /
// [0,sc,..]) into the row's even- and odd-token int32 sums, which stay in
// registers. Four rows at a time (the x vectors loaded once for four dots,
// as in the Q4R tile) the sums did not fit the registers: kept in scratch,
// each quarter's widening was a load, add and store per row and parity, at
// 0.88-0.94x of this; two rows or two token groups at a time ran no faster
// than that (0.87-0.99x of it).
function q6PairsGroup(ws: usize, ap: usize, xg: usize, tg: usize): void {
  const de = v128.load(xg, 256), dd = v128.load(xg, 272);
  const t = ws + Q6_T;
  for (let r: usize = 0; r < 4; r++) {
    const w = ws + (r << 5);
    const lo = ws + Q6_SC + (r << 6), hi = lo + 32;
    // Each chain's store to scratch orders the next chain's loads after it (V8 would load all
    // four chains' operands first and spill, at 0.7x).
    const s0 = q6QuarterRow(w, xg, v128.load(tg), 0);
    v128.store(t, s0);
    const s1 = q6QuarterRow(w, xg, v128.load(tg, 16), 8);
    v128.store(t, s1, 16);
    let e = i32x4.add(i32x4.dot_i16x8_s(s0, v128.load(lo)), i32x4.dot_i16x8_s(s1, v128.load(lo)));
    let o = i32x4.add(i32x4.dot_i16x8_s(s0, v128.load(lo, 16)), i32x4.dot_i16x8_s(s1, v128.load(lo, 16)));
    const s2 = q6QuarterRow(w, xg, v128.load(tg, 32), 16);
    v128.store(t, s2, 32);
    const s3 = q6QuarterRow(w, xg, v128.load(tg, 48), 24);
    v128.store(t, s3, 48);
    e = i32x4.add(e, i32x4.add(i32x4.dot_i16x8_s(s2, v128.load(hi)), i32x4.dot_i16x8_s(s3, v128.load(hi))));
    o = i32x4.add(o, i32x4.add(i32x4.dot_i16x8_s(s2, v128.load(hi, 16)), i32x4.dot_i16x8_s(s3, v128.load(hi, 16))));
    const dw = v128.load32_splat(ws + MM_DW + (r << 2));
    const pa = ap + (r << 5);
    v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(f32x4.convert_i32x4_s(e), f32x4.mul(dw, de))));
    v128.store(pa, f32x4.add(v128.load(pa, 16), f32x4.mul(f32x4.convert_i32x4_s(o), f32x4.mul(dw, dd))), 16);
  }
}

// ---------------------------------------------------------------- the driver

// The relaxed build's tiles of four rows, every 8-token group of a 64-token
// chunk per block, in block order (the matvec's fold order per output). x:
// Q8B's pairs section.
function matmulQ6Tiled(w: usize, rows: i32, cols: i32, x: usize, ntok: i32, out: usize): void {
  const nsb = <usize>cols >> 8;
  const nb = nsb << 3;
  const ws = scratchBase();
  const tab = ws + Q6_TAB;
  const gTok = 8;
  const gStride = nb * Q8B_PAIRS;
  const tStride = nb << 6;
  const m6 = i8x16.splat(0x3f);
  const mc = i8x16.splat(<i8>0xc0);
  for (let t0 = 0; t0 < ntok; t0 += MM_TOK) {
    const tn = min(MM_TOK, ntok - t0);
    const ng = (tn + gTok - 1) / gTok;
    const xg0 = x + <usize>(t0 / gTok) * gStride;
    q6PairsTable(xg0, gStride, ng, nb, tab);
    for (let r0 = 0; r0 < rows; r0 += 4) {
      memory.fill(ws + MM_ACC, 0, <usize>ng << 7);
      let p = w + <usize>(r0 >> 2) * nsb * 840;
      for (let sb: usize = 0; sb < nsb; sb++) {
        for (let r: usize = 0; r < 4; r++) store<f32>(ws + MM_DW + (r << 2), h2f_nodenorm(load<u16>(p + (r << 1))));
        for (let k = 0; k < 8; k++) {
          q6Unpack(ws, p, k, m6, mc);
          const b = (sb << 3) + <usize>k;
          let xg = xg0 + b * Q8B_PAIRS;
          let tg = tab + b * (tStride / nb);
          for (let g = 0; g < ng; g++) {
            q6PairsGroup(ws, ws + MM_ACC + (<usize>g << 7), xg, tg);
            xg += gStride;
            tg += tStride;
          }
        }
        p += 840;
      }
      storePairsAcc(ws, out, rows, r0, t0, tn);
    }
  }
}
