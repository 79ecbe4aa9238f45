// Q4_1: repack to Q41R, matrix-vector (decode) products against Q8A
// activations, and row dequantization (the matrix-matrix products are in
// q41q5matmul.ts).
//
// GGUF Q4_1 (20 B per 32 values): f16 d, f16 m, 16 nibble bytes (byte j
// holds value j in its low nibble, j+16 in its high one). A value is q*d + m
// with q unsigned (0..15), so per 32-block of a row
//   s  = sum_j q_j x_j                 exact int32 (|.| <= 32*15*127)
//   sx = sum_j x_j                     exact int32 (Q8A/Q8B carry it)
//   acc = acc + (f32(s)*(d*d_x) + f32(sx)*(m*d_x))
// in that order of f32 operations in every build (the scalar twin defines
// it), so all builds agree bit for bit.
//
// Q41R: groups of four rows (the last zero-padded); group g at g*nb*80, per
// block column 80 bytes:
//   [0, 8) d of rows 0..3 (f16) | [8, 16) m of rows 0..3 | [16, 80) row r's
//   16 nibble bytes at 16 + 16r (GGUF order)
// This is Q4R plus the four mins: the four rows' scales are one load each,
// and the nibble dots are Q4R's (quant.ts), unsigned with no offset.

import { FUSED, scratchBase, h2f, h2f_x4c, VCONST, VC_NIB8, VC_NIB16, VC_ONES16, VC_HMASK, VC_HMUL, q8aSumOff, q8aQ8Off, q8aQ16Off } from "./common";
import { matvec_q50r_q8a, matvec_q51r_q8a } from "./q5quant";
import { dotNib16, nibRelaxed16, rowDot32, q4rBlockDot, reduce4, reduce4i16, storeRows, q8bToQ8a, quadsToQ8a, SMALL_X } from "./quant";

// ---------------------------------------------------------------- size and repack

export function q41r_bytes(rows: i32, cols: i32): usize {
  return <usize>((rows + 3) >> 2) * (<usize>cols >> 5) * 80;
}

// GGUF Q4_1 rows -> Q41R. A group occupies exactly the bytes of its four
// source rows, so dst == src (in place) works; otherwise src and dst must not
// overlap. Uses the scratch region (4 rows: cols/32*80 bytes).
export function repack_q4_1(src: usize, dst: usize, rows: i32, cols: i32): void {
  const nb = <usize>cols >> 5;
  const rowBytes = nb * 20;
  const tmp = scratchBase();
  for (let g = 0; g < (rows + 3) >> 2; g++) {
    const nr = min(4, rows - (g << 2));
    memory.copy(tmp, src + <usize>(g << 2) * rowBytes, <usize>nr * rowBytes);
    if (nr < 4) memory.fill(tmp + <usize>nr * rowBytes, 0, <usize>(4 - nr) * rowBytes);
    let o = dst + <usize>g * nb * 80;
    for (let b: usize = 0; b < nb; b++) {
      for (let r: usize = 0; r < 4; r++) {
        const s = tmp + r * rowBytes + b * 20;
        store<u16>(o + (r << 1), load<u16>(s));
        store<u16>(o + 8 + (r << 1), load<u16>(s, 2));
        memory.copy(o + 16 + (r << 4), s + 4, 16);
      }
      o += 80;
    }
  }
}

// ---------------------------------------------------------------- matvec (Q8A)

export function matvec_q41r_q8a(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  if (ASC_FEATURE_SIMD) matvecQ41Simd(w, rows, cols, xa, out);
  else matvecQ41Scalar(w, rows, cols, xa, out);
}

function matvecQ41Scalar(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nb = <usize>cols >> 5;
  const xs = xa + q8aSumOff(nb);
  const x8 = xa + q8aQ8Off(nb);
  const gBytes = nb * 80;
  for (let r = 0; r < rows; r++) {
    const lane = <usize>(r & 3);
    let p = w + <usize>(r >> 2) * gBytes;
    let acc: f32 = 0;
    for (let b: usize = 0; b < nb; b++) {
      const s = q4rBlockDot(p + 16 + (lane << 4), x8 + (b << 5));
      const dx = load<f32>(xa + (b << 2));
      const d = h2f(load<u16>(p + (lane << 1)));
      const m = h2f(load<u16>(p + 8 + (lane << 1)));
      acc += <f32>s * (d * dx) + <f32>load<i32>(xs + (b << 2)) * (m * dx);
      p += 80;
    }
    store<f32>(out + (<usize>r << 2), acc);
  }
}

function matvecQ41Simd(w: usize, rows: i32, cols: i32, xa: usize, out: usize): void {
  const nb = <usize>cols >> 5;
  // Relaxed: int8 activations, byte mask 0x0f; plain: Q8A's permuted int16, lane mask 0x000f.
  const xq0 = ASC_FEATURE_RELAXED_SIMD ? xa + q8aQ8Off(nb) : xa + q8aQ16Off(nb);
  const xqStep: usize = ASC_FEATURE_RELAXED_SIMD ? 32 : 64;
  const m = v128.load(VCONST + (ASC_FEATURE_RELAXED_SIMD ? VC_NIB8 : VC_NIB16));
  const ones = v128.load(VCONST + VC_ONES16);
  const hmask = v128.load(VCONST + VC_HMASK);
  const hmul = v128.load(VCONST + VC_HMUL);
  const xs0 = xa + q8aSumOff(nb);
  const xEnd = xa + (nb << 2);
  let p = w;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    let acc = f32x4.splat(0);
    let xq = xq0, xs = xs0;
    for (let xd = xa; xd < xEnd; xd += 4) {
      let s: v128;
      if (ASC_FEATURE_RELAXED_SIMD) {
        const xl = v128.load(xq);
        const xh = v128.load(xq, 16);
        // The fused dot sums each row in int32 (two dots), so the rows reduce as int32.
        if (FUSED) s = reduce4(nib32(v128.load(p, 16), xl, xh, m), nib32(v128.load(p, 32), xl, xh, m), nib32(v128.load(p, 48), xl, xh, m), nib32(v128.load(p, 64), xl, xh, m));
        else s = reduce4i16(
          nibRelaxed16(v128.load(p, 16), xl, xh, m), nibRelaxed16(v128.load(p, 32), xl, xh, m),
          nibRelaxed16(v128.load(p, 48), xl, xh, m), nibRelaxed16(v128.load(p, 64), xl, xh, m), ones,
        );
      } else {
        const x0 = v128.load(xq), x1 = v128.load(xq, 16), x2 = v128.load(xq, 32), x3 = v128.load(xq, 48);
        s = reduce4(
          dotNib16(v128.load(p, 16), x0, x1, x2, x3, m), dotNib16(v128.load(p, 32), x0, x1, x2, x3, m),
          dotNib16(v128.load(p, 48), x0, x1, x2, x3, m), dotNib16(v128.load(p, 64), x0, x1, x2, x3, m),
        );
      }
      const dx = v128.load32_splat(xd);
      const dd = f32x4.mul(h2f_x4c(p, hmask, hmul), dx);
      const md = f32x4.mul(h2f_x4c(p + 8, hmask, hmul), dx);
      const sx = f32x4.convert_i32x4_s(v128.load32_splat(xs));
      acc = f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s), dd), f32x4.mul(sx, md)));
      p += 80;
      xq += xqStep;
      xs += 4;
    }
    storeRows(out, r0, rows, acc);
  }
}

// A row's 16 nibble bytes v against xl, xh as int32 partial sums.
@inline function nib32(v: v128, xl: v128, xh: v128, m: v128): v128 {
  return rowDot32(xl, xh, v128.and(v, m), v128.and(i16x8.shr_u(v, 4), m));
}

// ---------------------------------------------------------------- matmul (Q8B)

// out[t*rows + r] for ntok tokens (Q8B, q8b_bytes(cols, ntok)): one matvec
// per token on its Q8A image, for kind 0 Q41R, 1 Q50R, 2 Q51R (the plain
// SIMD and scalar builds' matmul, q41q5matmul.ts).
export function matvecsPerToken32(w: usize, rows: i32, cols: i32, xb: usize, ntok: i32, out: usize, kind: i32): void {
  const nb = <usize>cols >> 5;
  const xa = scratchBase() + SMALL_X;
  for (let t = 0; t < ntok; t++) {
    if (FUSED) quadsToQ8a(xb, nb, t, xa);
    else q8bToQ8a(xb, nb, t, xa);
    const o = out + <usize>t * (<usize>rows << 2);
    if (kind == 0) matvec_q41r_q8a(w, rows, cols, xa, o);
    else if (kind == 1) matvec_q50r_q8a(w, rows, cols, xa, o);
    else matvec_q51r_q8a(w, rows, cols, xa, o);
  }
}

// ---------------------------------------------------------------- dequantize (embedding rows)

// n values (a multiple of 32) of GGUF Q4_1 at src -> f32 at dst: q*d is
// exact in f32, so q*d + m rounds once, as src/gguf's reference does.
export function dequant_q4_1(src: usize, dst: usize, n: i32): void {
  for (let b: usize = 0; b < (<usize>n >> 5); b++) {
    const s = src + b * 20;
    const d = h2f(load<u16>(s));
    const m = h2f(load<u16>(s, 2));
    const o = dst + (b << 7);
    for (let j: usize = 0; j < 16; j++) {
      const v = <u32>load<u8>(s + 4 + j);
      store<f32>(o + (j << 2), <f32>(v & 15) * d + m);
      store<f32>(o + ((j + 16) << 2), <f32>(v >> 4) * d + m);
    }
  }
}
