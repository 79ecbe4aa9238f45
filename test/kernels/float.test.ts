// Float kernels vs float64 references (docs/model.md, The forward pass) and SIMD vs scalar
// (bit-identical: the scalar twins use the SIMD lane order).
// Tolerances: results are f32 with f32 accumulation over at most a few
// thousand terms, so 2e-5 of the output scale (or of sum |terms|) is ample
// while any indexing mistake is off by O(1).
import { describe, expect, it } from "vitest";
import { both, rng, randn, randVec, bitsEqual, relErr, halfToF64, f64ToHalf, bf16ToF64, Harness } from "./harness";

function refMatvec(w: ArrayLike<number>, rows: number, cols: number, x: Float32Array) {
  const out = new Float64Array(rows);
  const mag = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      out[r] += w[r * cols + j] * x[j];
      mag[r] += Math.abs(w[r * cols + j] * x[j]);
    }
  }
  return { out, mag };
}

function randHalves(r: () => number, n: number): Uint16Array {
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = f64ToHalf((r() - 0.5) * 4);
  return a;
}

describe("float matvecs", () => {
  it.each([[1, 8], [7, 64], [13, 2048]])("f32/f16/bf16 rows=%i cols=%i", (rows, cols) => {
    const r = rng(rows * 31 + cols);
    const x = randVec(r, cols);
    const w32 = randVec(r, rows * cols, 0.5);
    const w16 = randHalves(r, rows * cols);
    const wb = new Uint16Array(rows * cols);
    for (let i = 0; i < wb.length; i++) wb[i] = Math.floor(r() * 0x7f00) | (r() < 0.5 ? 0x8000 : 0) & 0xffff;
    for (let i = 0; i < wb.length; i++) wb[i] = (wb[i] & 0x803f) | 0x3f00; // bf16 values in +-[0.5, 1)
    const cases: Array<[string, ArrayLike<number>, (h: Harness) => number]> = [
      ["f32", w32, (h) => h.putF32(w32)],
      ["f16", Array.from(w16, halfToF64), (h) => h.putU16(w16)],
      ["bf16", Array.from(wb, bf16ToF64), (h) => h.putU16(wb)],
    ];
    for (const [name, wRef, put] of cases) {
      const { out: ref, mag } = refMatvec(wRef, rows, cols, x);
      const outs: Float32Array[] = [];
      for (const h of both()) {
        const wp = put(h);
        const xp = h.putF32(x);
        const op = h.alloc(rows * 4);
        const fn = name === "f32" ? h.k.matvec_f32 : name === "f16" ? h.k.matvec_f16 : h.k.matvec_bf16;
        fn(wp, rows, cols, xp, op);
        outs.push(h.f32(op, rows));
      }
      expect(bitsEqual(outs[0], outs[1]), name).toBe(true);
      for (let i = 0; i < rows; i++) expect(Math.abs(outs[0][i] - ref[i]), `${name} row ${i}`).toBeLessThanOrEqual(2e-6 * mag[i] + 1e-30);
    }
  });
});

describe("layernorm", () => {
  it.each([[4, 1], [36, 3], [2048, 2]])("n=%i rows=%i", (n, rows) => {
    const r = rng(n + rows);
    const x = randVec(r, n * rows, 3);
    for (let i = 0; i < n; i++) x[i] += 100; // large mean: two-pass variance must cope
    const w = randVec(r, n);
    const b = randVec(r, n);
    const eps = 1e-5;
    const ref = new Float64Array(n * rows);
    for (let row = 0; row < rows; row++) {
      let mean = 0;
      for (let i = 0; i < n; i++) mean += x[row * n + i];
      mean /= n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (x[row * n + i] - mean) ** 2;
      v /= n;
      for (let i = 0; i < n; i++) ref[row * n + i] = ((x[row * n + i] - mean) / Math.sqrt(v + eps)) * w[i] + b[i];
    }
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const xp = h.putF32(x);
      h.k.layernorm(xp, h.putF32(w), h.putF32(b), xp, n, rows, eps); // in place
      outs.push(h.f32(xp, n * rows));
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(relErr(outs[0], ref)).toBeLessThan(2e-5);
  });
});

function ropeRef(x: Float32Array, rowStride: number, ntok: number, nh: number, hd: number, R: number, pos0: number, base: number) {
  const y = Float64Array.from(x);
  for (let t = 0; t < ntok; t++) {
    for (let h = 0; h < nh; h++) {
      const o = t * rowStride + h * hd;
      for (let j = 0; j < R / 2; j++) {
        const th = (pos0 + t) * Math.pow(base, (-2 * j) / R);
        const a = x[o + j], b = x[o + j + R / 2];
        y[o + j] = a * Math.cos(th) - b * Math.sin(th);
        y[o + j + R / 2] = b * Math.cos(th) + a * Math.sin(th);
      }
    }
  }
  return y;
}

describe("rope_neox", () => {
  it.each([
    [2, 4, 64, 16, 0],
    [3, 2, 64, 64, 7],
    [2, 3, 32, 8, 4000],
  ])("ntok=%i heads=%i head_dim=%i rotary=%i pos0=%i", (ntok, nh, hd, R, pos0) => {
    const r = rng(ntok * 100 + R + pos0);
    const rowStride = nh * hd + 8; // rows padded: the kernel must honour the stride
    const x = randVec(r, ntok * rowStride);
    const ref = ropeRef(x, rowStride, ntok, nh, hd, R, pos0, 10000);
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const xp = h.putF32(x);
      h.k.rope_neox(xp, rowStride, ntok, nh, hd, R, pos0, 10000);
      outs.push(h.f32(xp, x.length));
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    for (let i = 0; i < x.length; i++) {
      const inHead = i % rowStride;
      const d = inHead % hd;
      if (inHead >= nh * hd || d >= R) expect(outs[0][i]).toBe(x[i]); // untouched
      else expect(Math.abs(outs[0][i] - ref[i])).toBeLessThan(1e-5 * (Math.abs(x[i]) + 1));
    }
  });
});

function attnRef(q: Float32Array, k: Float64Array, v: Float64Array, nPast: number, nh: number, nkv: number, hd: number) {
  const out = new Float64Array(nh * hd);
  const group = nh / nkv;
  for (let h = 0; h < nh; h++) {
    const kvh = Math.floor(h / group);
    const s = new Float64Array(nPast);
    for (let p = 0; p < nPast; p++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[h * hd + i] * k[(p * nkv + kvh) * hd + i];
      s[p] = d / Math.sqrt(hd);
    }
    const m = Math.max(...s);
    let z = 0;
    for (let p = 0; p < nPast; p++) z += Math.exp(s[p] - m);
    for (let p = 0; p < nPast; p++) {
      const a = Math.exp(s[p] - m) / z;
      for (let i = 0; i < hd; i++) out[h * hd + i] += a * v[(p * nkv + kvh) * hd + i];
    }
  }
  return out;
}

/**
 * Writes position-major halves [nPast][nkv][hd] into blocks of P positions, placed in
 * memory in reverse order (so a kernel that ignored the table would read the wrong
 * block): block i at table[i], K of kv head j at +j·P·hd·2, V at +(nkv + j)·P·hd·2.
 */
function paged(h: { alloc(n: number): number; arena: { u16(p: number, n: number): Uint16Array; u32(p: number, n: number): Uint32Array } }, k: Uint16Array, v: Uint16Array, nPast: number, nkv: number, hd: number, P: number) {
  const nb = Math.ceil(nPast / P);
  const blockBytes = 2 * nkv * P * hd * 2;
  const base = h.alloc(nb * blockBytes);
  const table = h.alloc(nb * 4);
  const t = h.arena.u32(table, nb);
  for (let i = 0; i < nb; i++) t[i] = base + (nb - 1 - i) * blockBytes;
  for (let p = 0; p < nPast; p++) {
    const blk = t[Math.floor(p / P)];
    for (let j = 0; j < nkv; j++) {
      const src = (p * nkv + j) * hd;
      h.arena.u16(blk + (j * P + (p % P)) * hd * 2, hd).set(k.subarray(src, src + hd));
      h.arena.u16(blk + ((nkv + j) * P + (p % P)) * hd * 2, hd).set(v.subarray(src, src + hd));
    }
  }
  return { table, kOff: (j: number) => j * P * hd * 2, vOff: (j: number) => (nkv + j) * P * hd * 2, headBytes: P * hd * 2 };
}

/** Attention over the paged cache of `paged`, every KV head in one call. */
function attendAll(h: Harness, c: ReturnType<typeof paged>, qp: number, out: number, nPast: number, nkv: number, group: number, hd: number, P: number) {
  h.k.attention_f16kv(qp, c.table, P, c.kOff(0), c.vOff(0), c.headBytes, out, nPast, nkv, group, hd, h.alloc(nkv * group * nPast * 4));
}

describe("attention over a paged f16 KV cache", () => {
  it.each([
    [1, 4, 4, 64, 1],
    [3, 4, 4, 64, 1],
    [17, 2, 2, 64, 1],
    [37, 4, 4, 64, 1],
    [130, 3, 3, 64, 1],
    [50, 8, 2, 64, 1], // GQA: 4 query heads per KV head
    [19, 6, 3, 32, 1],
    [23, 4, 2, 64, 300], // huge scores: softmax must subtract the max
    [6, 2, 1, 24, 1], // head_dim not a multiple of 16: the SIMD kernel's 8-wide tail
    [9, 2, 2, 40, 1],
  ])("n_past=%i heads=%i kv=%i head_dim=%i qscale=%i; blocks of 1, 3, 4, 5, 16 and one block, all KV heads in one call or one each: the same bits", (nPast, nh, nkv, hd, qscale) => {
    const r = rng(nPast * 13 + nh + nkv + qscale);
    const q = randVec(r, nh * hd, qscale);
    const kf = randVec(r, nPast * nkv * hd);
    const vf = randVec(r, nPast * nkv * hd);
    const group = nh / nkv;
    const outs: Float32Array[] = [];
    let kq: Float64Array | undefined, vq: Float64Array | undefined;
    for (const h of both()) {
      // Cache written through the kernel's f32 -> f16 conversion, as the engine will.
      const kc = h.alloc(kf.length * 2), vc = h.alloc(vf.length * 2);
      h.k.f32_to_f16(h.putF32(kf), kc, kf.length);
      h.k.f32_to_f16(h.putF32(vf), vc, vf.length);
      const k16 = h.arena.u16(kc, kf.length).slice(), v16 = h.arena.u16(vc, vf.length).slice();
      kq ??= Float64Array.from(k16, halfToF64);
      vq ??= Float64Array.from(v16, halfToF64);
      const qp = h.putF32(q);
      for (const P of [1, 3, 4, 5, 16, nPast + 3]) {
        const c = paged(h, k16, v16, nPast, nkv, hd, P);
        const out = h.alloc(nh * hd * 4);
        attendAll(h, c, qp, out, nPast, nkv, group, hd, P);
        outs.push(h.f32(out, nh * hd));
        if (P !== 5) continue;
        const each = h.alloc(nh * hd * 4);
        for (let j = 0; j < nkv; j++) h.k.attention_f16kv(qp + j * group * hd * 4, c.table, P, c.kOff(j), c.vOff(j), c.headBytes, each + j * group * hd * 4, nPast, 1, group, hd, h.alloc(group * nPast * 4));
        outs.push(h.f32(each, nh * hd));
      }
    }
    for (const o of outs.slice(1)) expect(bitsEqual(o, outs[0])).toBe(true);
    const ref = attnRef(q, kq!, vq!, nPast, nh, nkv, hd);
    expect(outs[0].every(Number.isFinite)).toBe(true);
    // Scores carry ~1e-7 * |q||k| relative error; with qscale the softmax
    // amplifies it, hence the scaled tolerance.
    expect(relErr(outs[0], ref)).toBeLessThan(2e-5 * qscale);
  });

  // Halves at the ends of the format and queries on both sides of the SIMD
  // path's 2^16 limit: zero and subnormal keys and values (their products are
  // tiny or denormal f32), the largest half, scores far apart (weights that
  // underflow to denormals or zero); with `big`, one query element at 2^16
  // sends the call down the general path.
  it.each([
    [67, 4, 5, false],
    [130, 2, 16, false],
    [9, 3, 4, false],
    [67, 4, 5, true],
    [9, 3, 4, true],
  ])("special halves and large queries, n_past=%i kv=%i blocks of %i, a query at 2^16 %s: SIMD and scalar agree bit for bit, and with float64", (nPast, nkv, P, big) => {
    const hd = 64;
    const r = rng(nPast * 7 + nkv);
    const special = [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400, 0x8400, 0x7bff, 0xfbff, 0x0200, 0x3c00];
    const halves = (n: number) => {
      const a = new Uint16Array(n);
      for (let i = 0; i < n; i++) a[i] = r() < 0.3 ? special[Math.floor(r() * special.length)] : f64ToHalf(randn(r) * (r() < 0.1 ? 1e-5 : 1));
      return a;
    };
    const k16 = halves(nPast * nkv * hd), v16 = halves(nPast * nkv * hd);
    const q = randVec(r, nkv * hd, 0.05);
    q[0] = 1.5e-40; // a denormal query element
    q[1] = 65535; // just under 2^16: still the folded path
    q[hd + 5] = big ? -65536 : -65535.99;
    q[2 * hd - 1] = 3e-3;
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const c = paged(h, k16, v16, nPast, nkv, hd, P);
      const out = h.alloc(nkv * hd * 4);
      attendAll(h, c, h.putF32(q), out, nPast, nkv, 1, hd, P);
      outs.push(h.f32(out, nkv * hd));
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    expect(outs[0].every(Number.isFinite)).toBe(true);
    const ref = attnRef(q, Float64Array.from(k16, halfToF64), Float64Array.from(v16, halfToF64), nPast, nkv, nkv, hd);
    for (let j = 0; j < nkv; j++) {
      // Scores of |q|·|k| up to ~4e9 carry f32 rounding of ~1e3 in absolute terms: a softmax that picks the same maximum agrees closely.
      expect(relErr(outs[0].subarray(j * hd, (j + 1) * hd), ref.subarray(j * hd, (j + 1) * hd)), `head ${j}`).toBeLessThan(j === 0 || j === 1 ? 0.05 : 1e-4);
    }
  });
});

describe("causal attention over KV heads' positions", () => {
  it.each([
    [1, 4, 1, 1, 64, 512], // one position, a group of 4 query heads
    [7, 0, 1, 2, 64, 256],
    [6, 11, 2, 2, 64, 512], // two KV heads per call, four query heads
    [5, 30, 1, 1, 24, 96], // head_dim not a multiple of 16
  ])("ntok=%i after %i cached positions, %i KV heads of %i query heads, head_dim=%i, row stride %i: ntok attention_f16kv calls, bit for bit", (ntok, past, nkv, group, hd, stride) => {
    const r = rng(ntok * 7 + past + hd);
    const positions = past + ntok;
    const nh = nkv * group;
    const q = randVec(r, ntok * stride);
    const kf = randVec(r, positions * nkv * hd);
    const vf = randVec(r, positions * nkv * hd);
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const kc = h.alloc(kf.length * 2), vc = h.alloc(vf.length * 2);
      h.k.f32_to_f16(h.putF32(kf), kc, kf.length);
      h.k.f32_to_f16(h.putF32(vf), vc, vf.length);
      const c = paged(h, h.arena.u16(kc, kf.length).slice(), h.arena.u16(vc, vf.length).slice(), positions, nkv, hd, 4);
      const qp = h.putF32(q);
      const scores = h.alloc(nh * positions * 4);
      const one = h.putF32(new Float32Array(ntok * stride)), rows = h.putF32(new Float32Array(ntok * stride));
      h.k.attention_f16kv_causal(qp, c.table, 4, c.kOff(0), c.vOff(0), c.headBytes, rows, ntok, past + 1, nkv, group, hd, stride, scores);
      for (let t = 0; t < ntok; t++) h.k.attention_f16kv(qp + t * stride * 4, c.table, 4, c.kOff(0), c.vOff(0), c.headBytes, one + t * stride * 4, past + t + 1, nkv, group, hd, scores);
      const got = h.f32(rows, ntok * stride);
      expect(bitsEqual(got, h.f32(one, ntok * stride))).toBe(true);
      // Only each position's nh heads are written.
      for (let t = 0; t < ntok; t++) expect(got.subarray(t * stride + nh * hd, (t + 1) * stride).every((x) => x === 0)).toBe(true);
      outs.push(got);
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
  });
});

// A prompt's rows, several at a time (head_dim 64 in the SIMD builds: each
// cached half converted once for all rows of a pass): every row must get the
// bits its own attention_f16kv call gives, whichever rows share a pass, where
// the passes and the cache's blocks cut the positions, and when one (row,
// head)'s query is too large for the folded path.
describe("causal attention, rows several at a time", () => {
  it.each([
    // ntok, cached before, KV heads, query heads per KV head, positions per block, row stride (floats), the (row, head) with a query at 2^16
    [40, 0, 2, 1, 16, 128, -1, -1], // from an empty cache: passes of 16, 16 and 8 rows
    [33, 37, 1, 2, 16, 160, -1, -1], // two query heads per KV head: 8 rows a pass; padding after the heads
    [17, 5, 3, 1, 5, 192, -1, -1], // blocks of 5 positions: each pass's rows end in different blocks
    [20, 70, 2, 1, 100, 128, -1, -1], // one block of 100 positions, taken 16 at a time
    [9, 3, 1, 4, 4, 256, -1, -1], // four query heads per KV head: four rows a pass
    [12, 2, 2, 1, 1, 128, -1, -1], // a block per position
    [21, 9, 2, 2, 16, 256, 13, 3], // one (row, head) with a query at 2^16: that one alone takes the general path
    [18, 8300, 1, 1, 16, 64, -1, -1], // a long cache: 15 rows a pass fit the scratch
    [3, 70000, 1, 1, 16, 64, -1, -1], // longer: one row a pass would fit, so the rows go one by one
  ])("ntok=%i after %i cached, %i KV heads × %i, blocks of %i, row stride %i, a query at 2^16 in (row, head) (%i, %i): each row's own bits", (ntok, past, nkv, group, P, stride, bigRow, bigHead) => {
    const hd = 64;
    const r = rng(ntok * 31 + past + nkv * 7 + group + P);
    const positions = past + ntok;
    const nh = nkv * group;
    const q = randVec(r, ntok * stride);
    if (bigRow >= 0) q[bigRow * stride + bigHead * hd + 9] = 65536;
    const special = [0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0xfbff, 0x3c00];
    const halves = (n: number) => {
      const a = new Uint16Array(n);
      for (let i = 0; i < n; i++) a[i] = r() < 0.05 ? special[Math.floor(r() * special.length)] : f64ToHalf(randn(r));
      return a;
    };
    const k16 = halves(positions * nkv * hd), v16 = halves(positions * nkv * hd);
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const c = paged(h, k16, v16, positions, nkv, hd, P);
      const qp = h.putF32(q);
      const scores = h.alloc(nh * positions * 4);
      const rows = h.putF32(new Float32Array(ntok * stride)), one = h.putF32(new Float32Array(ntok * stride));
      h.k.attention_f16kv_causal(qp, c.table, P, c.kOff(0), c.vOff(0), c.headBytes, rows, ntok, past + 1, nkv, group, hd, stride, scores);
      for (let t = 0; t < ntok; t++) h.k.attention_f16kv(qp + t * stride * 4, c.table, P, c.kOff(0), c.vOff(0), c.headBytes, one + t * stride * 4, past + t + 1, nkv, group, hd, scores);
      const got = h.f32(rows, ntok * stride);
      const alone = h.f32(one, ntok * stride);
      for (let t = 0; t < ntok; t++) expect(bitsEqual(got.subarray(t * stride, (t + 1) * stride), alone.subarray(t * stride, (t + 1) * stride)), `row ${t}`).toBe(true);
      for (let t = 0; t < ntok; t++) expect(got.subarray(t * stride + nh * hd, (t + 1) * stride).every((x) => x === 0)).toBe(true);
      outs.push(got);
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true);
    // And against float64 for the last row (the longest), where the cache is short enough to compute it quickly.
    if (positions <= 200) {
      const t = ntok - 1;
      const n = past + t + 1;
      const ref = attnRef(q.subarray(t * stride, t * stride + nh * hd), Float64Array.from(k16.subarray(0, n * nkv * hd), halfToF64), Float64Array.from(v16.subarray(0, n * nkv * hd), halfToF64), n, nh, nkv, hd);
      expect(relErr(outs[0].subarray(t * stride, t * stride + nh * hd), ref)).toBeLessThan(bigRow === t ? 0.05 : 2e-5);
    }
  });
});

describe("elementwise and conversions", () => {
  it("silu_mul and add_f32", () => {
    const r = rng(8);
    const n = 1001; // odd: add_f32 has a scalar tail
    const g = randVec(r, n, 4);
    g[0] = -200; g[1] = 200; g[2] = 0;
    const u = randVec(r, n);
    for (let i = 3; i < 300; i++) g[i] = -100 + (200 * i) / 300; // the exp's clamp ends and everything between
    const outs: Float32Array[] = [];
    for (const h of both()) {
      const gp = h.putF32(g), up = h.putF32(u), op = h.alloc(n * 4);
      h.k.silu_mul(gp, up, op, n);
      const got = h.f32(op, n);
      outs.push(got.slice());
      for (let i = 0; i < n; i++) {
        const ref = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
        expect(Math.abs(got[i] - ref)).toBeLessThanOrEqual(3e-7 * Math.abs(g[i] * u[i]) + 1e-30);
      }
      h.k.add_f32(gp, up, op, n);
      expect(Array.from(h.f32(op, n))).toEqual(Array.from(g, (v, i) => Math.fround(v + u[i])));
    }
    expect(bitsEqual(outs[0], outs[1])).toBe(true); // vector exp == scalar exp, lane by lane
  });

  it("store_kv_f16 writes each head of each position where f32_to_f16 per head would (head-major cache)", () => {
    const ntok = 3, nkv = 2, hd = 24, ctx = 10, pos0 = 5;
    const x = randVec(rng(12), ntok * nkv * hd, 3);
    x[0] = 1e6; // saturates like f32_to_f16
    for (const h of both()) {
      const stride = ctx * hd * 2;
      const a = h.alloc(nkv * stride), b = h.alloc(nkv * stride);
      h.arena.u8(a, nkv * stride).fill(0);
      h.arena.u8(b, nkv * stride).fill(0);
      const xp = h.putF32(x);
      h.k.store_kv_f16(xp, a, pos0, ntok, nkv, hd, stride);
      for (let t = 0; t < ntok; t++) {
        for (let j = 0; j < nkv; j++) h.k.f32_to_f16(xp + (t * nkv + j) * hd * 4, b + j * stride + (pos0 + t) * hd * 2, hd);
      }
      expect(Array.from(h.arena.u16(a, nkv * ctx * hd))).toEqual(Array.from(h.arena.u16(b, nkv * ctx * hd)));
      expect(h.arena.u16(a, 1)[0]).toBe(0); // position 0 untouched
    }
  });

  it("f16 <-> f32 over every finite half, bf16 -> f32, rounding and saturation", () => {
    const halves = new Uint16Array(65536 - 2 * 1024); // all but Inf/NaN patterns
    let k = 0;
    for (let hbits = 0; hbits < 65536; hbits++) if (((hbits >> 10) & 31) !== 31) halves[k++] = hbits;
    const specials = new Float32Array([0, -0, 65504, 65519.99, 65520, 1e9, -1e9, Infinity, -Infinity, NaN, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14 - 2 ** -25, 2 ** -14, -(2 ** -15), 1 + 2 ** -11, 1 + 3 * 2 ** -11]);
    const r = rng(9);
    const rnd = new Float32Array(20000);
    for (let i = 0; i < rnd.length; i++) rnd[i] = (r() - 0.5) * 2 ** Math.floor(r() * 40 - 28);
    for (const h of both()) {
      const n = halves.length;
      const dst = h.alloc(n * 4);
      h.k.f16_to_f32(h.putU16(halves), dst, n);
      const f32s = h.f32(dst, n);
      let bad = 0;
      for (let i = 0; i < n; i++) if (f32s[i] !== halfToF64(halves[i])) bad++;
      expect(bad).toBe(0);
      const back = h.alloc(n * 2);
      h.k.f32_to_f16(h.putF32(f32s), back, n);
      expect(Array.from(h.arena.u16(back, n))).toEqual(Array.from(halves));
      const all = new Float32Array([...specials, ...rnd]);
      const hp = h.alloc(all.length * 2);
      h.k.f32_to_f16(h.putF32(all), hp, all.length);
      const got = h.arena.u16(hp, all.length);
      const wrong: string[] = [];
      for (let i = 0; i < all.length; i++) if (got[i] !== f64ToHalf(all[i])) wrong.push(`${all[i]} -> ${got[i]}`);
      expect(wrong).toEqual([]);
      const bf = new Uint16Array([0x3f80, 0xbf80, 0x0001, 0x7f7f, 0x4049]);
      const bp = h.alloc(bf.length * 4);
      h.k.bf16_to_f32(h.putU16(bf), bp, bf.length);
      expect(Array.from(h.f32(bp, bf.length))).toEqual(Array.from(bf, bf16ToF64));
    }
  });
});
