// Float kernels: F32/F16/BF16 matvec, LayerNorm, rotary, attention over an f16
// KV cache, SiLU gate, vector helpers. SIMD versions accumulate in four lanes;
// the scalar twins keep four explicit lane accumulators and combine them in
// the same order, so the builds agree bit for bit.

import { scratchBase, SCRATCH_BYTES, h2f, f2h, f2h_x8, h2fLanes_c, hsum_f32x4, VCONST, VC_HMASK, VC_HMUL, VC_H16, expf, expf4 } from "./common";

// ---------------------------------------------------------------- float matvecs

// out[r] = dot(W[r,:], x). W row-major f32, cols a multiple of 4.
export function matvec_f32(w: usize, rows: i32, cols: i32, x: usize, out: usize): void {
  const rowBytes = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const p = w + <usize>r * rowBytes;
    let res: f32;
    if (ASC_FEATURE_SIMD) {
      let acc = f32x4.splat(0);
      for (let i: usize = 0; i < rowBytes; i += 16) acc = f32x4.add(acc, f32x4.mul(v128.load(p + i), v128.load(x + i)));
      res = hsum_f32x4(acc);
    } else {
      let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
      for (let i: usize = 0; i < rowBytes; i += 16) {
        a0 += load<f32>(p + i) * load<f32>(x + i);
        a1 += load<f32>(p + i, 4) * load<f32>(x + i, 4);
        a2 += load<f32>(p + i, 8) * load<f32>(x + i, 8);
        a3 += load<f32>(p + i, 12) * load<f32>(x + i, 12);
      }
      res = (a0 + a1) + (a2 + a3);
    }
    store<f32>(out + (<usize>r << 2), res);
  }
}

// W row-major f16 (IEEE half), cols a multiple of 8. Eight weights a step,
// in two accumulators (elements 8i..8i+3 and 8i+4..8i+7): with one, the
// chain of f32 adds (two per step) bounded the kernel well below the memory
// reads. The scalar twin keeps the eight lane sums apart and adds them as
// hsum_f32x4 of the two vectors' sum does. Halves convert by h2fLanes_c.
export function matvec_f16(w: usize, rows: i32, cols: i32, x: usize, out: usize): void {
  const rowBytes = <usize>cols << 1;
  for (let r = 0; r < rows; r++) {
    const p = w + <usize>r * rowBytes;
    let res: f32;
    if (ASC_FEATURE_SIMD) {
      const hmask = v128.load(VCONST + VC_HMASK), hmul = v128.load(VCONST + VC_HMUL);
      let acc0 = f32x4.splat(0), acc1 = acc0;
      for (let i: usize = 0; i < rowBytes; i += 16) {
        const v = v128.load(p + i);
        const xp = x + (i << 1);
        acc0 = f32x4.add(acc0, f32x4.mul(h2fLanes_c(i32x4.extend_low_i16x8_s(v), hmask, hmul), v128.load(xp)));
        acc1 = f32x4.add(acc1, f32x4.mul(h2fLanes_c(i32x4.extend_high_i16x8_s(v), hmask, hmul), v128.load(xp, 16)));
      }
      res = hsum_f32x4(f32x4.add(acc0, acc1));
    } else {
      let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0, a4: f32 = 0, a5: f32 = 0, a6: f32 = 0, a7: f32 = 0;
      for (let i: usize = 0; i < rowBytes; i += 16) {
        const xp = x + (i << 1);
        a0 += h2f(load<u16>(p + i)) * load<f32>(xp);
        a1 += h2f(load<u16>(p + i, 2)) * load<f32>(xp, 4);
        a2 += h2f(load<u16>(p + i, 4)) * load<f32>(xp, 8);
        a3 += h2f(load<u16>(p + i, 6)) * load<f32>(xp, 12);
        a4 += h2f(load<u16>(p + i, 8)) * load<f32>(xp, 16);
        a5 += h2f(load<u16>(p + i, 10)) * load<f32>(xp, 20);
        a6 += h2f(load<u16>(p + i, 12)) * load<f32>(xp, 24);
        a7 += h2f(load<u16>(p + i, 14)) * load<f32>(xp, 28);
      }
      res = ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7));
    }
    store<f32>(out + (<usize>r << 2), res);
  }
}

@inline function bf2f(h: u32): f32 { return reinterpret<f32>(h << 16); }

// W row-major bf16, cols a multiple of 8; two accumulators as matvec_f16.
export function matvec_bf16(w: usize, rows: i32, cols: i32, x: usize, out: usize): void {
  const rowBytes = <usize>cols << 1;
  for (let r = 0; r < rows; r++) {
    const p = w + <usize>r * rowBytes;
    let res: f32;
    if (ASC_FEATURE_SIMD) {
      let acc0 = f32x4.splat(0), acc1 = acc0;
      for (let i: usize = 0; i < rowBytes; i += 16) {
        const v = v128.load(p + i);
        const xp = x + (i << 1);
        acc0 = f32x4.add(acc0, f32x4.mul(i32x4.shl(i32x4.extend_low_i16x8_u(v), 16), v128.load(xp)));
        acc1 = f32x4.add(acc1, f32x4.mul(i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), v128.load(xp, 16)));
      }
      res = hsum_f32x4(f32x4.add(acc0, acc1));
    } else {
      let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0, a4: f32 = 0, a5: f32 = 0, a6: f32 = 0, a7: f32 = 0;
      for (let i: usize = 0; i < rowBytes; i += 16) {
        const xp = x + (i << 1);
        a0 += bf2f(load<u16>(p + i)) * load<f32>(xp);
        a1 += bf2f(load<u16>(p + i, 2)) * load<f32>(xp, 4);
        a2 += bf2f(load<u16>(p + i, 4)) * load<f32>(xp, 8);
        a3 += bf2f(load<u16>(p + i, 6)) * load<f32>(xp, 12);
        a4 += bf2f(load<u16>(p + i, 8)) * load<f32>(xp, 16);
        a5 += bf2f(load<u16>(p + i, 10)) * load<f32>(xp, 20);
        a6 += bf2f(load<u16>(p + i, 12)) * load<f32>(xp, 24);
        a7 += bf2f(load<u16>(p + i, 14)) * load<f32>(xp, 28);
      }
      res = ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7));
    }
    store<f32>(out + (<usize>r << 2), res);
  }
}

// ---------------------------------------------------------------- LayerNorm

// For each of `rows` rows of n floats (n a multiple of 4):
//   out = (x - mean) / sqrt(var + eps) * w + b, population variance.
// Two passes (mean, then squared deviations) to avoid cancellation. out may
// alias x.
export function layernorm(x: usize, w: usize, b: usize, out: usize, n: i32, rows: i32, eps: f32): void {
  const nBytes = <usize>n << 2;
  const inv_n: f32 = <f32>1 / <f32>n;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * nBytes;
    const or = out + <usize>r * nBytes;
    if (ASC_FEATURE_SIMD) {
      let acc = f32x4.splat(0);
      for (let i: usize = 0; i < nBytes; i += 16) acc = f32x4.add(acc, v128.load(xr + i));
      const mean = hsum_f32x4(acc) * inv_n;
      const mv = f32x4.splat(mean);
      acc = f32x4.splat(0);
      for (let i: usize = 0; i < nBytes; i += 16) {
        const d = f32x4.sub(v128.load(xr + i), mv);
        acc = f32x4.add(acc, f32x4.mul(d, d));
      }
      const rstd = <f32>1 / sqrt<f32>(hsum_f32x4(acc) * inv_n + eps);
      const rv = f32x4.splat(rstd);
      for (let i: usize = 0; i < nBytes; i += 16) {
        const d = f32x4.mul(f32x4.sub(v128.load(xr + i), mv), rv);
        v128.store(or + i, f32x4.add(f32x4.mul(d, v128.load(w + i)), v128.load(b + i)));
      }
    } else {
      let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
      for (let i: usize = 0; i < nBytes; i += 16) {
        a0 += load<f32>(xr + i); a1 += load<f32>(xr + i, 4); a2 += load<f32>(xr + i, 8); a3 += load<f32>(xr + i, 12);
      }
      const mean = ((a0 + a1) + (a2 + a3)) * inv_n;
      a0 = 0; a1 = 0; a2 = 0; a3 = 0;
      for (let i: usize = 0; i < nBytes; i += 16) {
        const d0 = load<f32>(xr + i) - mean, d1 = load<f32>(xr + i, 4) - mean;
        const d2 = load<f32>(xr + i, 8) - mean, d3 = load<f32>(xr + i, 12) - mean;
        a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3;
      }
      const rstd = <f32>1 / sqrt<f32>(((a0 + a1) + (a2 + a3)) * inv_n + eps);
      for (let i: usize = 0; i < nBytes; i += 4) {
        store<f32>(or + i, ((load<f32>(xr + i) - mean) * rstd) * load<f32>(w + i) + load<f32>(b + i));
      }
    }
  }
}

// ---------------------------------------------------------------- rotary

// Partial NeoX rotary, in place. x: ntok rows (row stride `row_stride` floats),
// each holding n_heads heads of head_dim floats from the row start. Only the
// first rotary_dim dims of a head rotate, as pairs (j, j + rotary_dim/2), by
// angle (pos0 + t) * base^(-2j/rotary_dim). Angles and cos/sin in f64 (exact
// enough at long positions), then f32. Scalar in all builds: O(ntok*heads*R).
export function rope_neox(x: usize, row_stride: i32, ntok: i32, n_heads: i32, head_dim: i32, rotary_dim: i32, pos0: i32, base: f32): void {
  const half = rotary_dim >> 1;
  const cs = scratchBase();
  for (let t = 0; t < ntok; t++) {
    const pos = <f64>(pos0 + t);
    for (let j = 0; j < half; j++) {
      const ang = pos * Math.pow(<f64>base, -2.0 * <f64>j / <f64>rotary_dim);
      store<f32>(cs + (<usize>j << 3), <f32>Math.cos(ang));
      store<f32>(cs + (<usize>j << 3), <f32>Math.sin(ang), 4);
    }
    const row = x + <usize>t * (<usize>row_stride << 2);
    for (let h = 0; h < n_heads; h++) {
      const hp = row + <usize>(h * head_dim) * 4;
      for (let j = 0; j < half; j++) {
        const c = load<f32>(cs + (<usize>j << 3));
        const s = load<f32>(cs + (<usize>j << 3), 4);
        const p0 = hp + (<usize>j << 2);
        const p1 = hp + (<usize>(j + half) << 2);
        const x0 = load<f32>(p0);
        const x1 = load<f32>(p1);
        store<f32>(p0, x0 * c - x1 * s);
        store<f32>(p1, x1 * c + x0 * s);
      }
    }
  }
}

// ---------------------------------------------------------------- attention

// One position's queries against n_kv KV heads' caches of n_past positions
// each (keys 0..n_past-1; the caller has already written the current
// position). KV head j has the `group` query heads j*group..j*group+group-1
// of q and out (head_dim f32 each, heads side by side). The cache is paged:
// position p's key of KV head j is [head_dim] f16 at
//   load<u32>(table + 4*(p / block_pos)) + k_off + j*head_bytes + (p % block_pos)*head_dim*2
// and its value likewise at v_off (one block holds block_pos positions of
// every layer and head; a contiguous cache is one block at address 0).
// head_dim a multiple of 8. scores: n_kv*group*n_past f32 of scratch.
// Softmax subtracts the max, so huge scores do not overflow. Every query head
// gets the same bits as if it were alone; several KV heads in one call let
// the head_dim-64 path read each block's heads as one run (attnHeads64).
export function attention_f16kv(q: usize, table: usize, block_pos: i32, k_off: usize, v_off: usize, head_bytes: usize, out: usize, n_past: i32, n_kv: i32, group: i32, head_dim: i32, scores: usize): void {
  const hdB = <usize>head_dim << 2;
  const scale: f32 = <f32>1 / sqrt<f32>(<f32>head_dim);
  const nh = n_kv * group;
  if (ASC_FEATURE_SIMD && head_dim == 64 && qFolds(q, nh)) {
    attnHeads64(q, table, block_pos, k_off, v_off, head_bytes, out, n_past, n_kv, group, scale, scores);
    return;
  }
  for (let h = 0; h < nh; h++) {
    const qh = q + <usize>h * hdB;
    const oh = out + <usize>h * hdB;
    const hk = <usize>(h / group) * head_bytes;
    if (ASC_FEATURE_SIMD) attnHeadSimd(qh, table, block_pos, k_off + hk, v_off + hk, oh, n_past, head_dim, scale, scores);
    else attnHeadScalar(qh, table, block_pos, k_off + hk, v_off + hk, oh, n_past, head_dim, scale, scores);
  }
}

// Causal attention of ntok consecutive positions over n_kv KV heads: query t,
// at q + t*row_stride floats, sees positions 0..n_past+t-1 and writes out +
// t*row_stride floats: the bits of ntok attention_f16kv calls. One call for a
// range of positions and heads keeps a thread's share of attention one call.
// With head_dim 64 (SIMD builds) the rows go through attnRows64 several at a
// time, so each cached half is converted once for all of them; `scores`
// needs room for n_kv*group*(n_past+ntok-1) f32 either way.
export function attention_f16kv_causal(q: usize, table: usize, block_pos: i32, k_off: usize, v_off: usize, head_bytes: usize, out: usize, ntok: i32, n_past: i32, n_kv: i32, group: i32, head_dim: i32, row_stride: i32, scores: usize): void {
  const strideB = <usize>row_stride << 2;
  let t = 0;
  if (ASC_FEATURE_SIMD && head_dim == 64 && ntok > 1) {
    const rows = rowsPerPass(n_past + ntok - 1, group);
    if (rows >= 2) {
      const hB = <usize>group << 8;
      for (; t < ntok; t += rows) {
        const r = min(rows, ntok - t);
        for (let j = 0; j < n_kv; j++) {
          const o = <usize>t * strideB + <usize>j * hB;
          const kv = <usize>j * head_bytes;
          attnRows64(q + o, table, block_pos, k_off + kv, v_off + kv, out + o, n_past + t, r, group, strideB, scores);
        }
      }
      return;
    }
  }
  for (; t < ntok; t++) {
    attention_f16kv(q + <usize>t * strideB, table, block_pos, k_off, v_off, head_bytes, out + <usize>t * strideB, n_past + t, n_kv, group, head_dim, scores);
  }
}

// attnRows64's scratch: a sub-block of ROWS_SUB positions' keys or values as
// f32 bits (64 each), then per (row, query head) unit its q', its weighted
// sum of values, its softmax sum, its fold flag and its scores row.
const ROWS_SUB: i32 = 16;
const ROWS_KV_BYTES: usize = <usize>ROWS_SUB << 8;
const ROWS_MAX_UNITS: i32 = 32;

// Rows attnRows64 takes at once for a last row that sees n_max positions:
// as many (row, query head) units as the scratch holds, at most
// ROWS_MAX_UNITS (32 ran 1.02-1.07x 16 and 1.06-1.12x 8 on 64-row chunks
// after 448 and 1984 positions: each half is converted for more rows, while
// the units' scores outgrow L1 either way).
@inline function rowsPerPass(n_max: i32, group: i32): i32 {
  const fit = <i32>((SCRATCH_BYTES - ROWS_KV_BYTES - 16) / ((<usize>n_max << 2) + 520));
  return min(fit, ROWS_MAX_UNITS) / group;
}

// nrows consecutive query rows (row r at q + r*strideB sees n0 + r positions)
// against one KV head (its cache at k_off, v_off) and its `group` query heads:
// the bits attnHeads64 gives each (row, head) unit alone. Per sub-block of
// the cache, its halves are converted to f32 bits (hb8lo/hb8hi, the 2^112 on
// the other factor as there) once, and every unit that sees the position
// reads them from scratch: per unit and position the scores and the weighted
// sum are then 32 multiplies and adds each, against ~40 more operations to
// convert 64 halves. The scores, softmax, sums and output are computed as
// attnHeads64 does, position after position in the same order, so nothing
// rounds differently. A unit whose query does not fold (qFoldHead) takes
// attnHeadSimd, as attention_f16kv would; scores is its buffer then.
function attnRows64(q: usize, table: usize, block_pos: i32, k_off: usize, v_off: usize, out: usize, n0: i32, nrows: i32, group: i32, strideB: usize, scores: usize): void {
  const hmul = v128.load(VCONST + VC_HMUL);
  const m16 = v128.load(VCONST + VC_H16);
  const scale: f32 = <f32>1 / sqrt<f32>(<f32>64);
  const units = nrows * group;
  const nMax = n0 + nrows - 1;
  const rowsB = <usize>nMax << 2;
  const kv = scratchBase();
  const qs = kv + ROWS_KV_BYTES;
  const acc = qs + (<usize>units << 8);
  const sums = acc + (<usize>units << 8);
  const oks = sums + (<usize>units << 2);
  const sc = (oks + (<usize>units << 2) + 15) & ~(<usize>15);
  const g = <usize>group;
  for (let u = 0; u < units; u++) {
    const r = <usize>(u / group), i = <usize>u - r * g;
    store<i32>(oks + (<usize>u << 2), qFoldHead(q + r * strideB + (i << 8), qs + (<usize>u << 8)) ? 1 : 0);
  }
  rowsWalk(false, table, block_pos, k_off, n0, nMax, group, units, kv, qs, oks, sc, rowsB, acc, sums, scale, m16);
  for (let u = 0; u < units; u++) {
    if (!load<i32>(oks + (<usize>u << 2))) continue;
    softmax64(sc + <usize>u * rowsB, n0 + u / group, hmul);
    memory.fill(acc + (<usize>u << 8), 0, 256);
    store<f32>(sums + (<usize>u << 2), 0);
  }
  rowsWalk(true, table, block_pos, v_off, n0, nMax, group, units, kv, qs, oks, sc, rowsB, acc, sums, scale, m16);
  for (let u = 0; u < units; u++) {
    const r = <usize>(u / group), i = <usize>u - r * g;
    const op = out + r * strideB + (i << 8);
    if (load<i32>(oks + (<usize>u << 2))) {
      const inv = f32x4.splat(<f32>1 / (load<f32>(sums + (<usize>u << 2)) * <f32>1.925929944387236e-34));
      const ap = acc + (<usize>u << 8);
      for (let d: usize = 0; d < 256; d += 16) v128.store(op + d, f32x4.mul(v128.load(ap + d), inv));
    } else {
      attnHeadSimd(q + r * strideB + (i << 8), table, block_pos, k_off, v_off, op, n0 + u / group, 64, scale, scores);
    }
  }
}

// One walk of the cache for attnRows64: each sub-block's keys (values) are
// converted to f32 bits once, then every unit that sees its positions takes
// its scores (values: its softmax sum and weighted sums) over them.
@inline function rowsWalk(values: bool, table: usize, block_pos: i32, off: usize, n0: i32, nMax: i32, group: i32, units: i32, kv: usize, qs: usize, oks: usize, sc: usize, rowsB: usize, acc: usize, sums: usize, scale: f32, m16: v128): void {
  for (let p0 = 0, blk: usize = table; p0 < nMax; p0 += block_pos, blk += 4) {
    const end = min(p0 + block_pos, nMax);
    const b = <usize>load<u32>(blk) + off;
    for (let s = p0; s < end; s += ROWS_SUB) {
      const cnt = min(ROWS_SUB, end - s);
      halvesToBits(b + (<usize>(s - p0) << 7), cnt, kv, m16);
      for (let u = 0; u < units; u++) {
        const c = min(cnt, n0 + u / group - s);
        if (c <= 0 || !load<i32>(oks + (<usize>u << 2))) continue;
        const sp = sc + <usize>u * rowsB + (<usize>s << 2);
        if (values) {
          const op = acc + (<usize>u << 8);
          const sh = sums + (<usize>u << 2);
          store<f32>(sh, sumBlock(sp, c, load<f32>(sh)));
          vBits64(kv, c, sp, op);
          vBits64(kv + 128, c, sp, op + 128);
        } else {
          scoresBits64(qs + (<usize>u << 8), kv, c, sp, scale);
        }
      }
    }
  }
}

// qFolds for one head of 64: q' = q·2^112 to qs, and whether every |q| < 2^16.
function qFoldHead(q: usize, qs: usize): bool {
  const hmul = v128.load(VCONST + VC_HMUL);
  const lim = f32x4.splat(65536);
  let ok = i32x4.splat(-1);
  for (let d: usize = 0; d < 256; d += 16) {
    const v = v128.load(q + d);
    ok = v128.and(ok, f32x4.lt(f32x4.abs(v), lim));
    v128.store(qs + d, f32x4.mul(v, hmul));
  }
  return i32x4.all_true(ok);
}

// cnt cached rows of 64 halves (128 bytes apart) from src -> f32 bits without
// the 2^112 (hb8lo/hb8hi), 64 floats a row in dim order, to dst.
@inline function halvesToBits(src: usize, cnt: i32, dst: usize, m16: v128): void {
  const end = src + (<usize>cnt << 7);
  for (; src < end; src += 128, dst += 256) {
    for (let k: usize = 0; k < 128; k += 16) {
      const v = v128.load(src + k);
      v128.store(dst + (k << 1), hb8lo(v, m16));
      v128.store(dst + (k << 1), hb8hi(v, m16), 16);
    }
  }
}

// scoresBlock64 on keys already in f32 bits (kf, 256 bytes a position): the
// same products and adds in the same order.
@inline function scoresBits64(qs: usize, kf: usize, c: i32, sp: usize, scale: f32): void {
  const sc = f32x4.splat(scale);
  let p = 0;
  for (; p + 4 <= c; p += 4) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let d: usize = 0; d < 256; d += 32) {
      const q0 = v128.load(qs + d), q1 = v128.load(qs + d, 16);
      const k = kf + d;
      a0 = f32x4.add(f32x4.add(a0, f32x4.mul(q0, v128.load(k))), f32x4.mul(q1, v128.load(k, 16)));
      a1 = f32x4.add(f32x4.add(a1, f32x4.mul(q0, v128.load(k, 256))), f32x4.mul(q1, v128.load(k, 272)));
      a2 = f32x4.add(f32x4.add(a2, f32x4.mul(q0, v128.load(k, 512))), f32x4.mul(q1, v128.load(k, 528)));
      a3 = f32x4.add(f32x4.add(a3, f32x4.mul(q0, v128.load(k, 768))), f32x4.mul(q1, v128.load(k, 784)));
    }
    v128.store(sp + (<usize>p << 2), f32x4.mul(hsum4(a0, a1, a2, a3), sc));
    kf += 1024;
  }
  for (; p < c; p++) {
    let a = f32x4.splat(0);
    for (let d: usize = 0; d < 256; d += 16) a = f32x4.add(a, f32x4.mul(v128.load(qs + d), v128.load(kf + d)));
    store<f32>(sp + (<usize>p << 2), hsum_f32x4(a) * scale);
    kf += 256;
  }
}

// vBlock64 on values already in f32 bits (vf: this half's 32 dims, 256 bytes
// a position): op[d] += e'·vbits in position order.
@inline function vBits64(vf: usize, c: i32, sp: usize, op: usize): void {
  let o0 = v128.load(op), o1 = v128.load(op, 16), o2 = v128.load(op, 32), o3 = v128.load(op, 48);
  let o4 = v128.load(op, 64), o5 = v128.load(op, 80), o6 = v128.load(op, 96), o7 = v128.load(op, 112);
  const end = sp + (<usize>c << 2);
  for (; sp < end; sp += 4, vf += 256) {
    const e = v128.load32_splat(sp);
    o0 = f32x4.add(o0, f32x4.mul(e, v128.load(vf)));
    o1 = f32x4.add(o1, f32x4.mul(e, v128.load(vf, 16)));
    o2 = f32x4.add(o2, f32x4.mul(e, v128.load(vf, 32)));
    o3 = f32x4.add(o3, f32x4.mul(e, v128.load(vf, 48)));
    o4 = f32x4.add(o4, f32x4.mul(e, v128.load(vf, 64)));
    o5 = f32x4.add(o5, f32x4.mul(e, v128.load(vf, 80)));
    o6 = f32x4.add(o6, f32x4.mul(e, v128.load(vf, 96)));
    o7 = f32x4.add(o7, f32x4.mul(e, v128.load(vf, 112)));
  }
  store8(op, o0, o1, o2, o3, o4, o5, o6, o7);
}

// Address of position p's row at offset off of its block.
@inline function kvRow(table: usize, block_pos: i32, off: usize, p: i32, rowB: usize): usize {
  return <usize>load<u32>(table + (<usize>(p / block_pos) << 2)) + off + <usize>(p % block_pos) * rowB;
}

function attnHeadScalar(qh: usize, table: usize, block_pos: i32, k_off: usize, v_off: usize, oh: usize, n_past: i32, head_dim: i32, scale: f32, scores: usize): void {
  const hdB = <usize>head_dim << 2;
  const rowB = <usize>head_dim << 1;
  let mx: f32 = -Infinity;
  for (let p = 0; p < n_past; p++) {
    const kp = kvRow(table, block_pos, k_off, p, rowB);
    let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
    for (let d: usize = 0; d < <usize>head_dim; d += 4) {
      a0 += load<f32>(qh + (d << 2)) * h2f(load<u16>(kp + (d << 1)));
      a1 += load<f32>(qh + (d << 2), 4) * h2f(load<u16>(kp + (d << 1), 2));
      a2 += load<f32>(qh + (d << 2), 8) * h2f(load<u16>(kp + (d << 1), 4));
      a3 += load<f32>(qh + (d << 2), 12) * h2f(load<u16>(kp + (d << 1), 6));
    }
    const s = ((a0 + a1) + (a2 + a3)) * scale;
    store<f32>(scores + (<usize>p << 2), s);
    if (s > mx) mx = s;
  }
  let sum: f32 = 0;
  for (let p = 0; p < n_past; p++) {
    const e = expf(load<f32>(scores + (<usize>p << 2)) - mx);
    store<f32>(scores + (<usize>p << 2), e);
    sum += e;
  }
  memory.fill(oh, 0, hdB);
  for (let p = 0; p < n_past; p++) {
    const e = load<f32>(scores + (<usize>p << 2));
    const vp = kvRow(table, block_pos, v_off, p, rowB);
    for (let d: usize = 0; d < <usize>head_dim; d++) {
      const op = oh + (d << 2);
      store<f32>(op, load<f32>(op) + e * h2f(load<u16>(vp + (d << 1))));
    }
  }
  const inv: f32 = <f32>1 / sum;
  for (let d: usize = 0; d < <usize>head_dim; d++) {
    const op = oh + (d << 2);
    store<f32>(op, load<f32>(op) * inv);
  }
}

// Four f16 at p -> f32x4 (h2f_x4 with its constants in registers).
@inline function h4(p: usize, hmask: v128, hmul: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(v128.load16x4_s(p), 13), hmask), hmul);
}

// Partial q.k of one position, lane i = sum over d = i mod 4 in d order (the
// scalar twin's a_i).
@inline function qkLanes(qh: usize, kp: usize, hdB: usize, hmask: v128, hmul: v128): v128 {
  let acc = f32x4.splat(0);
  for (let d: usize = 0; d < hdB; d += 16) acc = f32x4.add(acc, f32x4.mul(v128.load(qh + d), h4(kp + (d >> 1), hmask, hmul)));
  return acc;
}

// Lane i: (a_i[0]+a_i[1])+(a_i[2]+a_i[3]), hsum_f32x4 of each of four
// vectors at once (a 4x4 transpose, then the same two rounds of adds).
@inline function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const t0 = i32x4.shuffle(a0, a1, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(a0, a1, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(a2, a3, 0, 4, 1, 5);
  const t3 = i32x4.shuffle(a2, a3, 2, 6, 3, 7);
  const l01 = f32x4.add(i32x4.shuffle(t0, t2, 0, 1, 4, 5), i32x4.shuffle(t0, t2, 2, 3, 6, 7));
  const l23 = f32x4.add(i32x4.shuffle(t1, t3, 0, 1, 4, 5), i32x4.shuffle(t1, t3, 2, 3, 6, 7));
  return f32x4.add(l01, l23);
}

// One head, SIMD: same f32 operations per output as the scalar twin above.
// Scores four positions at a time (independent accumulator chains instead of
// one 16-add chain per position, and a 4x4 transpose instead of four
// horizontal sums: (l0+l1)+(l2+l3) per position, as hsum_f32x4); the
// weighted sum of values runs over 16 output dims at a time in registers.
// Both walk the cache a block at a time, positions in order.
function attnHeadSimd(qh: usize, table: usize, block_pos: i32, k_off: usize, v_off: usize, oh: usize, n_past: i32, head_dim: i32, scale: f32, scores: usize): void {
  const hmask = v128.load(VCONST + VC_HMASK);
  const hmul = v128.load(VCONST + VC_HMUL);
  const hdB = <usize>head_dim << 2;
  const rowB = <usize>head_dim << 1;
  const sc = f32x4.splat(scale);
  for (let p = 0, blk: usize = table; p < n_past; blk += 4) {
    const end = min(p + block_pos, n_past);
    let kp = <usize>load<u32>(blk) + k_off;
    for (; p + 4 <= end; p += 4) {
      const a0 = qkLanes(qh, kp, hdB, hmask, hmul);
      const a1 = qkLanes(qh, kp + rowB, hdB, hmask, hmul);
      const a2 = qkLanes(qh, kp + rowB * 2, hdB, hmask, hmul);
      const a3 = qkLanes(qh, kp + rowB * 3, hdB, hmask, hmul);
      v128.store(scores + (<usize>p << 2), f32x4.mul(hsum4(a0, a1, a2, a3), sc));
      kp += rowB << 2;
    }
    for (; p < end; p++) {
      store<f32>(scores + (<usize>p << 2), hsum_f32x4(qkLanes(qh, kp, hdB, hmask, hmul)) * scale);
      kp += rowB;
    }
  }
  let mx: f32 = -Infinity;
  for (let i = 0; i < n_past; i++) {
    const s = load<f32>(scores + (<usize>i << 2));
    if (s > mx) mx = s;
  }
  // exp four at a time (expf4 == expf lane by lane), then the sum in position order.
  const mxv = f32x4.splat(mx);
  let i = 0;
  for (; i + 4 <= n_past; i += 4) {
    const sp = scores + (<usize>i << 2);
    v128.store(sp, expf4(f32x4.sub(v128.load(sp), mxv)));
  }
  for (; i < n_past; i++) store<f32>(scores + (<usize>i << 2), expf(load<f32>(scores + (<usize>i << 2)) - mx));
  let sum: f32 = 0;
  for (let j = 0; j < n_past; j++) sum += load<f32>(scores + (<usize>j << 2));
  const inv = f32x4.splat(<f32>1 / sum);
  const blockB = <usize>block_pos << 2;
  let d: usize = 0;
  for (; d + 64 <= hdB; d += 64) {
    let o0 = f32x4.splat(0), o1 = f32x4.splat(0), o2 = f32x4.splat(0), o3 = f32x4.splat(0);
    for (let s0: usize = 0, blk: usize = table; s0 < (<usize>n_past << 2); s0 += blockB, blk += 4) {
      let vp = <usize>load<u32>(blk) + v_off + (d >> 1);
      const end = scores + min(s0 + blockB, <usize>n_past << 2);
      for (let sp = scores + s0; sp < end; sp += 4) {
        const e = v128.load32_splat(sp);
        o0 = f32x4.add(o0, f32x4.mul(e, h4(vp, hmask, hmul)));
        o1 = f32x4.add(o1, f32x4.mul(e, h4(vp + 8, hmask, hmul)));
        o2 = f32x4.add(o2, f32x4.mul(e, h4(vp + 16, hmask, hmul)));
        o3 = f32x4.add(o3, f32x4.mul(e, h4(vp + 24, hmask, hmul)));
        vp += rowB;
      }
    }
    v128.store(oh + d, f32x4.mul(o0, inv));
    v128.store(oh + d, f32x4.mul(o1, inv), 16);
    v128.store(oh + d, f32x4.mul(o2, inv), 32);
    v128.store(oh + d, f32x4.mul(o3, inv), 48);
  }
  for (; d < hdB; d += 32) {
    let o0 = f32x4.splat(0), o1 = f32x4.splat(0);
    for (let s0: usize = 0, blk: usize = table; s0 < (<usize>n_past << 2); s0 += blockB, blk += 4) {
      let vp = <usize>load<u32>(blk) + v_off + (d >> 1);
      const end = scores + min(s0 + blockB, <usize>n_past << 2);
      for (let sp = scores + s0; sp < end; sp += 4) {
        const e = v128.load32_splat(sp);
        o0 = f32x4.add(o0, f32x4.mul(e, h4(vp, hmask, hmul)));
        o1 = f32x4.add(o1, f32x4.mul(e, h4(vp + 8, hmask, hmul)));
        vp += rowB;
      }
    }
    v128.store(oh + d, f32x4.mul(o0, inv));
    v128.store(oh + d, f32x4.mul(o1, inv), 16);
  }
}

// Whether the 2^112 of h2f can move from each key onto the query: q' = q·2^112
// is exact for finite |q| < 2^16, and then q'·kbits, kbits the half's bits in
// f32 position (the key times 2^-112), is the exact product q·k rounded once,
// the same bits as q·h2f(k). Writes q' of nh heads of 64 to scratch. A NaN or
// a larger q fails the test and takes the general path.
function qFolds(q: usize, nh: i32): bool {
  const qs = scratchBase();
  const n = <usize>nh << 8;
  if (n + (<usize>nh << 2) > SCRATCH_BYTES) return false;
  for (let d: usize = 0; d < n; d += 256) if (!qFoldHead(q + d, qs + d)) return false;
  return true;
}

// Key or value bits of four halves (sign-extended to i32 lanes) in f32
// position: h2f without its multiply by 2^112, which the other factor
// carries. Callers load with literal offsets, which V8 folds into the
// instruction's address (an added constant costs an lea per load).
@inline function hb(h: v128, hmask: v128): v128 {
  return v128.and(i32x4.shl(h, 13), hmask);
}

// head_dim 64, every query head of n_kv KV heads, the same f32 operations per
// head as the scalar twin. Block by block, each pass reads a block's heads in
// address order (one run of n_kv*head_bytes when heads are adjacent, as in
// the engine's cache) instead of one short run per block and head, which the
// hardware prefetcher does not follow across pages. The 2^112 rides on the
// query (qFolds) and on each weight (e·2^112 is exact for every e in (0, 1]),
// so a half costs three vector operations, and no multiply reads a tiny e.
// Passes: scores (q·k for four positions at a time); per head the max (pmax
// in lanes skips a NaN like the scalar >; which of +0/-0 wins changes no later
// bit) and the numerators; the weighted sums into out, block after block (the
// same adds in the same order as registers held across blocks), each head's
// softmax sum beside them; out times 1/sum.
function attnHeads64(q: usize, table: usize, block_pos: i32, k_off: usize, v_off: usize, head_bytes: usize, out: usize, n_past: i32, n_kv: i32, group: i32, scale: f32, scores: usize): void {
  const hmask = v128.load(VCONST + VC_HMASK);
  const hmul = v128.load(VCONST + VC_HMUL);
  const m16 = v128.load(VCONST + VC_H16);
  const nh = n_kv * group;
  const qs = scratchBase();
  const sums = qs + (<usize>nh << 8);
  const rowsB = <usize>n_past << 2;
  const g = <usize>group;
  for (let p0 = 0, blk: usize = table; p0 < n_past; p0 += block_pos, blk += 4) {
    const cnt = min(block_pos, n_past - p0);
    let kb = <usize>load<u32>(blk) + k_off;
    for (let h: usize = 0; h < <usize>nh; h += g, kb += head_bytes) {
      for (let i: usize = 0; i < g; i++) scoresBlock64(qs + ((h + i) << 8), kb, cnt, scores + (h + i) * rowsB + (<usize>p0 << 2), hmask, m16, scale);
    }
  }
  for (let h: usize = 0; h < <usize>nh; h++) softmax64(scores + h * rowsB, n_past, hmul);
  memory.fill(out, 0, <usize>nh << 8);
  memory.fill(sums, 0, <usize>nh << 2);
  for (let p0 = 0, blk: usize = table; p0 < n_past; p0 += block_pos, blk += 4) {
    const cnt = min(block_pos, n_past - p0);
    let vb = <usize>load<u32>(blk) + v_off;
    for (let h: usize = 0; h < <usize>nh; h += g, vb += head_bytes) {
      for (let i: usize = 0; i < g; i++) {
        const sp = scores + (h + i) * rowsB + (<usize>p0 << 2);
        const op = out + ((h + i) << 8);
        const sh = sums + ((h + i) << 2);
        store<f32>(sh, sumBlock(sp, cnt, load<f32>(sh)));
        vBlock64(vb, cnt, sp, op, m16);
        vBlock64(vb + 64, cnt, sp, op + 128, m16);
      }
    }
  }
  for (let h: usize = 0; h < <usize>nh; h++) {
    const inv = f32x4.splat(<f32>1 / (load<f32>(sums + (h << 2)) * <f32>1.925929944387236e-34));
    const op = out + (h << 8);
    for (let d: usize = 0; d < 256; d += 16) v128.store(op + d, f32x4.mul(v128.load(op + d), inv));
  }
}

// Scores of cnt positions of one block (keys from kp, 128 bytes each) against
// q' at qs, to sp: ((l0+l1)+(l2+l3))*scale per position, l_i the sum over
// d = i mod 4 in d order (the scalar twin's a_i). Four positions per pass:
// independent accumulator chains, and a 4x4 transpose for their sums.
@inline function scoresBlock64(qs: usize, kp: usize, cnt: i32, sp: usize, hmask: v128, m16: v128, scale: f32): void {
  const sc = f32x4.splat(scale);
  let p = 0;
  for (; p + 4 <= cnt; p += 4) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let kq = kp, qq = qs; kq < kp + 128; kq += 16, qq += 32) {
      const q0 = v128.load(qq, 0), q1 = v128.load(qq, 16);
      const k0 = v128.load(kq, 0), k1 = v128.load(kq, 128), k2 = v128.load(kq, 256), k3 = v128.load(kq, 384);
      a0 = f32x4.add(f32x4.add(a0, f32x4.mul(q0, hb8lo(k0, m16))), f32x4.mul(q1, hb8hi(k0, m16)));
      a1 = f32x4.add(f32x4.add(a1, f32x4.mul(q0, hb8lo(k1, m16))), f32x4.mul(q1, hb8hi(k1, m16)));
      a2 = f32x4.add(f32x4.add(a2, f32x4.mul(q0, hb8lo(k2, m16))), f32x4.mul(q1, hb8hi(k2, m16)));
      a3 = f32x4.add(f32x4.add(a3, f32x4.mul(q0, hb8lo(k3, m16))), f32x4.mul(q1, hb8hi(k3, m16)));
    }
    v128.store(sp + (<usize>p << 2), f32x4.mul(hsum4(a0, a1, a2, a3), sc));
    kp += 512;
  }
  for (; p < cnt; p++) {
    let a = f32x4.splat(0);
    for (let d: usize = 0; d < 128; d += 8) a = f32x4.add(a, f32x4.mul(v128.load(qs + (d << 1)), hb(v128.load16x4_s(kp + d), hmask)));
    store<f32>(sp + (<usize>p << 2), hsum_f32x4(a) * scale);
    kp += 128;
  }
}

// One head's softmax numerators in place, times 2^112 (exact; vBlock64's
// factor), as the scalar twin computes them: e = expf(s - max).
function softmax64(sp: usize, n: i32, hmul: v128): void {
  let mxv = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) mxv = f32x4.pmax(mxv, v128.load(sp + (<usize>i << 2)));
  mxv = f32x4.pmax(mxv, i32x4.shuffle(mxv, mxv, 2, 3, 0, 1));
  mxv = f32x4.pmax(mxv, i32x4.shuffle(mxv, mxv, 1, 0, 3, 2));
  let mx = f32x4.extract_lane(mxv, 0);
  for (; i < n; i++) {
    const s = load<f32>(sp + (<usize>i << 2));
    if (s > mx) mx = s;
  }
  const mxs = f32x4.splat(mx);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = sp + (<usize>i << 2);
    v128.store(p, f32x4.mul(expf4(f32x4.sub(v128.load(p), mxs)), hmul));
  }
  for (; i < n; i++) {
    const p = sp + (<usize>i << 2);
    store<f32>(p, expf(load<f32>(p) - mx) * <f32>5.192296858534828e33);
  }
}

// sum + the cnt numerators at sp, in position order. They carry 2^112, and
// so does every partial sum, exactly: each unscaled sum is either rounded to
// 24 bits as its scaled twin is, or an exact sum of denormals; the total is
// at least 2^112 (the maximum's e is exactly 1), so times 2^-112 it is the
// scalar twin's sum, bit for bit. Called beside vBlock64, whose products
// hide this chain of dependent adds.
@inline function sumBlock(sp: usize, cnt: i32, sum: f32): f32 {
  const end = sp + (<usize>cnt << 2);
  for (; sp < end; sp += 4) sum += load<f32>(sp);
  return sum;
}

// Eight halves (a v128 of them) in f32 position, h2f's bits without its
// 2^112, as two f32x4 (halves 0..3, 4..7): the high 16 bits of a lane are
// sign | 000 | (h & 0x7fff) >> 3 (an arithmetic shift copies the sign, the
// mask clears the copies), the low 16 bits h << 13. One load and five
// operations per eight halves; only a quarter as many loaded vectors stay
// live as with four-half loads, which V8 hoists to the loop's top.
@inline function hb8lo(v: v128, m16: v128): v128 {
  return i16x8.shuffle(i16x8.shl(v, 13), v128.and(i16x8.shr_s(v, 3), m16), 0, 8, 1, 9, 2, 10, 3, 11);
}
@inline function hb8hi(v: v128, m16: v128): v128 {
  return i16x8.shuffle(i16x8.shl(v, 13), v128.and(i16x8.shr_s(v, 3), m16), 4, 12, 5, 13, 6, 14, 7, 15);
}

// 32 of the 64 output dims (the value bytes at vp..vp+63 of each row) over cnt
// positions of one block: op[d] += e'·vbits in position order, e' from sp.
@inline function vBlock64(vp: usize, cnt: i32, sp: usize, op: usize, m16: v128): void {
  let o0 = v128.load(op), o1 = v128.load(op, 16), o2 = v128.load(op, 32), o3 = v128.load(op, 48);
  let o4 = v128.load(op, 64), o5 = v128.load(op, 80), o6 = v128.load(op, 96), o7 = v128.load(op, 112);
  const end = sp + (<usize>cnt << 2);
  for (; sp < end; sp += 4) {
    const e = v128.load32_splat(sp);
    const v0 = v128.load(vp), v1 = v128.load(vp, 16), v2 = v128.load(vp, 32), v3 = v128.load(vp, 48);
    o0 = f32x4.add(o0, f32x4.mul(e, hb8lo(v0, m16)));
    o1 = f32x4.add(o1, f32x4.mul(e, hb8hi(v0, m16)));
    o2 = f32x4.add(o2, f32x4.mul(e, hb8lo(v1, m16)));
    o3 = f32x4.add(o3, f32x4.mul(e, hb8hi(v1, m16)));
    o4 = f32x4.add(o4, f32x4.mul(e, hb8lo(v2, m16)));
    o5 = f32x4.add(o5, f32x4.mul(e, hb8hi(v2, m16)));
    o6 = f32x4.add(o6, f32x4.mul(e, hb8lo(v3, m16)));
    o7 = f32x4.add(o7, f32x4.mul(e, hb8hi(v3, m16)));
    vp += 128;
  }
  store8(op, o0, o1, o2, o3, o4, o5, o6, o7);
}

// 32 output floats at op from eight vectors (vBlock64's and vBits64's accumulators).
@inline function store8(op: usize, o0: v128, o1: v128, o2: v128, o3: v128, o4: v128, o5: v128, o6: v128, o7: v128): void {
  v128.store(op, o0);
  v128.store(op, o1, 16);
  v128.store(op, o2, 32);
  v128.store(op, o3, 48);
  v128.store(op, o4, 64);
  v128.store(op, o5, 80);
  v128.store(op, o6, 96);
  v128.store(op, o7, 112);
}

// ---------------------------------------------------------------- elementwise

// out = silu(g) * u = g / (1 + exp(-g)) * u. out may alias g or u.
// exp is expf (common.ts), the same in every build.
export function silu_mul(g: usize, u: usize, out: usize, n: i32): void {
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    const one = f32x4.splat(1);
    for (; i + 4 <= <usize>n; i += 4) {
      const o = i << 2;
      const gv = v128.load(g + o);
      v128.store(out + o, f32x4.mul(f32x4.div(gv, f32x4.add(one, expf4(f32x4.neg(gv)))), v128.load(u + o)));
    }
  }
  for (; i < <usize>n; i++) {
    const o = i << 2;
    const gv = load<f32>(g + o);
    store<f32>(out + o, gv / (<f32>1 + expf(-gv)) * load<f32>(u + o));
  }
}

// out = a + b (n floats; any aliasing).
export function add_f32(a: usize, b: usize, out: usize, n: i32): void {
  const nB = <usize>n << 2;
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 16 <= nB; i += 16) v128.store(out + i, f32x4.add(v128.load(a + i), v128.load(b + i)));
  }
  for (; i < nB; i += 4) store<f32>(out + i, load<f32>(a + i) + load<f32>(b + i));
}

// ---------------------------------------------------------------- conversions

export function f16_to_f32(src: usize, dst: usize, n: i32): void {
  for (let i: usize = 0; i < <usize>n; i++) store<f32>(dst + (i << 2), h2f(load<u16>(src + (i << 1))));
}

export function bf16_to_f32(src: usize, dst: usize, n: i32): void {
  for (let i: usize = 0; i < <usize>n; i++) store<f32>(dst + (i << 2), bf2f(load<u16>(src + (i << 1))));
}

// KV store: x holds ntok rows of n_kv * head_dim f32 (one row per position);
// head j of row t goes, as f16 (f32_to_f16's rounding), to
// cache + j * head_stride + (pos0 + t) * head_dim * 2 — the head-major cache
// layout (src/engine/kv-cache.ts). One call per layer instead of one per
// (position, head). Scalar in every build.
export function store_kv_f16(x: usize, cache: usize, pos0: i32, ntok: i32, n_kv: i32, head_dim: i32, head_stride: usize): void {
  const hd = <usize>head_dim;
  let src = x;
  for (let t = 0; t < ntok; t++) {
    let dst = cache + <usize>(pos0 + t) * (hd << 1);
    for (let j = 0; j < n_kv; j++) {
      f32ToF16(src, dst, hd);
      src += hd << 2;
      dst += head_stride;
    }
  }
}

// Round to nearest even; saturates at +-65504 (no infinities in the cache).
export function f32_to_f16(src: usize, dst: usize, n: i32): void {
  f32ToF16(src, dst, <usize>n);
}

// SIMD: eight at a time with f2h_x8 (same bits as f2h), the rest one by one.
// Was scalar: 4.6% of a 128-token prefill on the 1.6B shape (the KV store).
@inline function f32ToF16(src: usize, dst: usize, n: usize): void {
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) f2h_x8(src + (i << 2), dst + (i << 1));
  }
  for (; i < n; i++) store<u16>(dst + (i << 1), <u16>f2h(load<f32>(src + (i << 2))));
}
