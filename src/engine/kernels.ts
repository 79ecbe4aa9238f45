/**
 * Thin wrapper over the AssemblyScript kernels (build/kernels-*.wasm).
 *
 * Instantiation only (`new WebAssembly.Instance`): workerd refuses to compile
 * wasm from bytes at run time, so a Worker passes the modules wrangler
 * imported; Node compiles them in node.ts.
 *
 * Choosing a build (docs/kernels.md, "Selection"): a build is usable only if
 * its outputs are bit-identical to the scalar build's on a probe, both on its
 * first calls (V8's baseline compiler, Liftoff) and after warm-up (TurboFan):
 * the kernels are written so that all builds agree bit for bit, and a host's
 * compiler may get an instruction wrong in one tier only (Node 20's Liftoff
 * computes i32x4.relaxed_dot_i8x16_i7x16_add_s wrongly, its TurboFan does
 * not). Among the usable builds, `choose: "first"` takes the first in
 * PREFERENCE (workerd: a Worker's clock does not advance while it computes,
 * so it cannot time anything), `choose: "timed"` (the default) runs a short
 * timed probe on each and takes the fastest (Node, browsers). `force` (the
 * EDGELM_KERNELS env var in Node, the KERNELS var in a Worker) restricts the
 * choice to one build.
 *
 * Memory layouts and each export's contract: docs/kernels.md.
 */

export type BuildKind = "relaxed-fused" | "relaxed" | "simd" | "scalar";

/** Fastest first where each is right, as measured on the hosts we run (docs/kernels.md, "Speed per host"). */
export const PREFERENCE: readonly BuildKind[] = ["relaxed-fused", "relaxed", "simd", "scalar"];

import { seededRandom } from "../util/random";

/** Raw kernel exports. Pointers are byte offsets into the imported memory. */
export interface KernelExports {
  heap_base(): number;
  build_kind(): number;
  fused_dot_probe(p: number): void;
  scratch_bytes(): number;
  /** Points this instance's scratch at a region of scratch_bytes() (every thread's instance needs its own). */
  set_scratch(ptr: number): void;
  q8a_bytes(n: number): number;
  q4r_bytes(rows: number, cols: number): number;
  quantize_q8a(x: number, n: number, dst: number): void;
  repack_q4_0(src: number, dst: number, rows: number, cols: number): void;
  matvec_q4r_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  q8b_bytes(n: number, ntok: number): number;
  quantize_q8b(x: number, n: number, ntok: number, dst: number): void;
  /** As quantize_q8a / quantize_q8b with one scale per 256 values (n % 256 = 0): the input of the Q4_K / Q5_K products. */
  quantize_q8a_k(x: number, n: number, dst: number): void;
  quantize_q8b_k(x: number, n: number, ntok: number, dst: number): void;
  matmul_q4r_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  q8r_bytes(rows: number, cols: number): number;
  repack_q8_0(src: number, dst: number, rows: number, cols: number): void;
  matvec_q8r_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul_q8r_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  matvec_q6k_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  q6r_bytes(rows: number, cols: number): number;
  repack_q6_k(src: number, dst: number, rows: number, cols: number): void;
  matvec_q6r_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul_q6r_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  q4kr_bytes(rows: number, cols: number): number;
  q5kr_bytes(rows: number, cols: number): number;
  repack_q4_k(src: number, dst: number, rows: number, cols: number): void;
  repack_q5_k(src: number, dst: number, rows: number, cols: number): void;
  matvec_q4kr_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matvec_q5kr_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul_q4kr_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  matmul_q5kr_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  dequant_q4_k(src: number, dst: number, n: number): void;
  dequant_q5_k(src: number, dst: number, n: number): void;
  q2kr_bytes(rows: number, cols: number): number;
  q3kr_bytes(rows: number, cols: number): number;
  repack_q2_k(src: number, dst: number, rows: number, cols: number): void;
  repack_q3_k(src: number, dst: number, rows: number, cols: number): void;
  matvec_q2kr_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matvec_q3kr_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul_q2kr_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  matmul_q3kr_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  dequant_q2_k(src: number, dst: number, n: number): void;
  dequant_q3_k(src: number, dst: number, n: number): void;
  q41r_bytes(rows: number, cols: number): number;
  repack_q4_1(src: number, dst: number, rows: number, cols: number): void;
  matvec_q41r_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul_q41r_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  dequant_q4_1(src: number, dst: number, n: number): void;
  q50r_bytes(rows: number, cols: number): number;
  q51r_bytes(rows: number, cols: number): number;
  repack_q5_0(src: number, dst: number, rows: number, cols: number): void;
  repack_q5_1(src: number, dst: number, rows: number, cols: number): void;
  matvec_q50r_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matvec_q51r_q8a(w: number, rows: number, cols: number, xa: number, out: number): void;
  matmul_q50r_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  matmul_q51r_q8b(w: number, rows: number, cols: number, xb: number, ntok: number, out: number): void;
  dequant_q5_0(src: number, dst: number, n: number): void;
  dequant_q5_1(src: number, dst: number, n: number): void;
  dequant_q4_0(src: number, dst: number, n: number): void;
  dequant_q8_0(src: number, dst: number, n: number): void;
  dequant_q6_k(src: number, dst: number, n: number): void;
  matvec_f32(w: number, rows: number, cols: number, x: number, out: number): void;
  matvec_f16(w: number, rows: number, cols: number, x: number, out: number): void;
  matvec_bf16(w: number, rows: number, cols: number, x: number, out: number): void;
  layernorm(x: number, w: number, b: number, out: number, n: number, rows: number, eps: number): void;
  rope_neox(x: number, rowStride: number, ntok: number, nHeads: number, headDim: number, rotaryDim: number, pos0: number, base: number): void;
  attention_f16kv(q: number, table: number, blockPos: number, kOff: number, vOff: number, headBytes: number, out: number, nPast: number, nKV: number, group: number, headDim: number, scores: number): void;
  attention_f16kv_causal(q: number, table: number, blockPos: number, kOff: number, vOff: number, headBytes: number, out: number, ntok: number, nPast: number, nKV: number, group: number, headDim: number, rowStride: number, scores: number): void;
  silu_mul(g: number, u: number, out: number, n: number): void;
  add_f32(a: number, b: number, out: number, n: number): void;
  f16_to_f32(src: number, dst: number, n: number): void;
  bf16_to_f32(src: number, dst: number, n: number): void;
  f32_to_f16(src: number, dst: number, n: number): void;
  store_kv_f16(x: number, cache: number, pos0: number, ntok: number, nKv: number, headDim: number, headStride: number): void;
}

export type KernelModules = Partial<Record<BuildKind, WebAssembly.Module>>;

export interface LoadKernelsOptions {
  /** A shared memory takes the shared-memory builds (build/kernels-*-shared.wasm), and they are self-tested in shared memories. */
  memory: WebAssembly.Memory;
  /** The candidate builds (any subset). */
  modules?: KernelModules;
  /** A single module to use as is (still self-tested when `modules.scalar` is given). */
  module?: WebAssembly.Module;
  /** Why a build is missing (e.g. its compile error), folded into `reason`. */
  unavailable?: Partial<Record<BuildKind, string>>;
  /** Restrict the choice to this build (falls back to scalar if it fails the self-test). */
  force?: BuildKind;
  /** Among the builds that pass the self-test: the fastest on a timed probe (default) or the first in PREFERENCE. */
  choose?: "timed" | "first";
  /** Short calls after instantiation so V8 tiers the kernels up (default true; a SIMD build is warmed by its self-test in any case). */
  warmup?: boolean;
}

export interface Kernels {
  kind: BuildKind;
  /** Human-readable account of the choice, for logs and /health. */
  reason: string;
  exports: KernelExports;
  instance: WebAssembly.Instance;
  /** The chosen build: more threads instantiate it over the same (shared) memory. */
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** First byte the host may allocate (after static data and kernel scratch). */
  heapBase: number;
}

const KIND_CODE: Record<number, BuildKind> = { 3: "relaxed-fused", 2: "relaxed", 1: "simd", 0: "scalar" };

/** The build names a user may give (EDGELM_KERNELS, the Worker's KERNELS): a build, or "auto" for the normal choice. */
export function parseBuildKind(value: string | undefined, source: string): BuildKind | undefined {
  const v = value?.trim();
  if (!v || v === "auto") return undefined;
  if ((PREFERENCE as readonly string[]).includes(v)) return v as BuildKind;
  throw new Error(`${source} must be one of auto, ${PREFERENCE.join(", ")}; got ${JSON.stringify(v)}`);
}

function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Instance {
  return new WebAssembly.Instance(module, { env: { memory } });
}

/**
 * A private memory for probes and warm-up, shared when the builds import a
 * shared one (a shared-memory build cannot be instantiated over a plain
 * memory, nor the other way round).
 */
function privateMemory(pages: number, shared: boolean): WebAssembly.Memory {
  return shared ? new WebAssembly.Memory({ initial: pages, maximum: 1024, shared: true }) : new WebAssembly.Memory({ initial: pages });
}

/** Deterministic draws so every build sees the same probe data. */
const rng = seededRandom;

/** A random finite half with magnitude in about [2^-10, 2^-3]: realistic block scales. */
function randHalf(r: () => number): number {
  const exp = 5 + Math.floor(r() * 8);
  return ((r() < 0.5 ? 0x8000 : 0) | (exp << 10) | Math.floor(r() * 1024)) & 0xffff;
}

interface ProbeSizes {
  q4Rows: number;
  q4Cols: number;
  ntok: number;
  /** Further matmuls over the first few tokens alone. */
  few: number[];
  q8Rows: number;
  q6Rows: number;
  /** Rows of each K-quant matrix (Q4_K, Q5_K, Q2_K, Q3_K; 256 columns). */
  kRows: number;
}

// 27 tokens: the tiles' two-group and one-group passes (24) and a small tail of 3; then 2 and 4
// tokens: the small-batch path alone (docs/kernels.md, Small batches), each of its token counts.
const PROBE: ProbeSizes = { q4Rows: 7, q4Cols: 96, ntok: 27, few: [2, 4], q8Rows: 6, q6Rows: 5, kRows: 6 };
const WARM: ProbeSizes = { q4Rows: 64, q4Cols: 256, ntok: 27, few: [2, 4], q8Rows: 16, q6Rows: 8, kRows: 16 };

/** The probe's last outputs: fused_dot_probe's int32 lanes, the fused dot past the kernels' operand range. */
const DOT_PROBE_LANES = 4;

/**
 * Runs the quantized kernels on deterministic data in a private memory and
 * returns every output float's bits. Extreme values are included on purpose
 * (nibbles 0 and 15, activations at +-max) to catch saturating or
 * mis-implemented integer dots.
 */
function probe(module: WebAssembly.Module, s: ProbeSizes, rounds = 1, shared = false): Uint32Array {
  const memory = privateMemory(64, shared);
  const e = instantiate(module, memory).exports as unknown as KernelExports;
  let top = e.heap_base() >>> 0;
  const alloc = (n: number) => {
    const p = Math.ceil(top / 64) * 64;
    top = p + n;
    if (top > memory.buffer.byteLength) memory.grow(Math.ceil((top - memory.buffer.byteLength) / 65536));
    return p;
  };
  const r = rng(0x5eed);
  const cols = s.q4Cols;
  const ntok = s.ntok;
  const nb = cols / 32;
  const x = alloc(ntok * cols * 4);
  const xa = alloc(e.q8a_bytes(cols) >>> 0);
  const xb = alloc(e.q8b_bytes(cols, ntok) >>> 0);
  const q4 = alloc(e.q4r_bytes(s.q4Rows, cols) >>> 0);
  const q8 = alloc(e.q8r_bytes(s.q8Rows, cols) >>> 0);
  const q6cols = 256;
  const q6 = alloc(s.q6Rows * 210);
  const xa6 = alloc(e.q8a_bytes(q6cols) >>> 0);
  const q6r = alloc(e.q6r_bytes(s.q6Rows, 256) >>> 0);
  const counts = [ntok, ...s.few];
  // Q4_K, Q5_K and Q4_1, 256 columns: row 0 all values at their max against tokens 1 and 2 (all +-127),
  // every scale and min 63 — the relaxed tiles' int16 chains and the matvec's int16 sums at their limits.
  const kCols = 256;
  const xk = alloc(ntok * kCols * 4);
  const xka = alloc(e.q8a_bytes(kCols) >>> 0);
  const xkb = alloc(e.q8b_bytes(kCols, ntok) >>> 0);
  const kMats = [
    // Q4_K and Q5_K read activations with one scale per 256 values (quantize_q8a_k).
    { bytes: 144, grain256: true, w: alloc(e.q4kr_bytes(s.kRows, kCols) >>> 0), repack: e.repack_q4_k, matvec: e.matvec_q4kr_q8a, matmul: e.matmul_q4kr_q8b },
    { bytes: 176, grain256: true, w: alloc(e.q5kr_bytes(s.kRows, kCols) >>> 0), repack: e.repack_q5_k, matvec: e.matvec_q5kr_q8a, matmul: e.matmul_q5kr_q8b },
    // Q4_1: eight 20-byte blocks (f16 d, f16 m, nibbles) per row; row 0's nibbles all 15.
    { bytes: 160, block: 20, w: alloc(e.q41r_bytes(s.kRows, kCols) >>> 0), repack: e.repack_q4_1, matvec: e.matvec_q41r_q8a, matmul: e.matmul_q41r_q8b },
    // Q5_0 (d, fifth bits, nibbles: the random half at 2 is part of the bits) and Q5_1 (d, m, bits, nibbles); row 0's bytes past offset 4 all 0xff.
    { bytes: 176, block: 22, w: alloc(e.q50r_bytes(s.kRows, kCols) >>> 0), repack: e.repack_q5_0, matvec: e.matvec_q50r_q8a, matmul: e.matmul_q50r_q8b },
    { bytes: 192, block: 24, w: alloc(e.q51r_bytes(s.kRows, kCols) >>> 0), repack: e.repack_q5_1, matvec: e.matvec_q51r_q8a, matmul: e.matmul_q51r_q8b },
  ];
  // Q2_K and Q3_K, 256 columns, repacked in place to Q2KR / Q3KR (the last group padded past the rows):
  // row 0 all 0xff bytes (values at their max, scales and mins 15 / Q3_K scale 31), row 1 all zeros
  // (Q3_K: values -4 under scale -32).
  const lowMats = [
    { bytes: 84, halves: [80, 82], w: alloc(Math.max(s.kRows * 84, e.q2kr_bytes(s.kRows, kCols) >>> 0)), repack: e.repack_q2_k, matvec: e.matvec_q2kr_q8a, matmul: e.matmul_q2kr_q8b },
    { bytes: 110, halves: [108], w: alloc(Math.max(s.kRows * 110, e.q3kr_bytes(s.kRows, kCols) >>> 0)), repack: e.repack_q3_k, matvec: e.matvec_q3kr_q8a, matmul: e.matmul_q3kr_q8b },
  ];
  const kOut = (kMats.length + lowMats.length) * s.kRows * (counts.reduce((a, n) => a + n, 0) + 1) + s.q6Rows * counts.reduce((a, n) => a + n, 0);
  const outN = (s.q4Rows + s.q8Rows) * counts.reduce((a, n) => a + n, 0) + s.q4Rows + s.q8Rows + 2 * s.q6Rows + kOut + DOT_PROBE_LANES;
  const out = alloc(outN * 4);
  const dot = alloc(64);
  const buf = memory.buffer;
  const xf = new Float32Array(buf, x, ntok * cols);
  for (let i = 0; i < xf.length; i++) xf[i] = (r() - 0.5) * 8;
  xf[0] = 1000; // one block dominated by a single value: other entries quantize to 0
  for (let i = 32; i < 64 && i < xf.length; i++) xf[i] = i % 2 ? 3 : -3; // exact +-127
  // Tokens 1 and 2: every activation +127 / -127. Against Q4_0 row 0 (blocks of nibbles all 0 or
  // all 15) they give the extreme block dots -32512 and 28448 (the relaxed matmul's int16 sums
  // wrap on the way there); against Q8_0 row 0 (127 and -128) the largest pair dots.
  if (ntok > 2) {
    xf.fill(3, cols, 2 * cols);
    xf.fill(-3, 2 * cols, 3 * cols);
  }
  const q4src = new Uint8Array(buf, q4, s.q4Rows * nb * 18);
  const dv = new DataView(buf);
  for (let row = 0; row < s.q4Rows; row++) {
    for (let b = 0; b < nb; b++) {
      const o = q4 + (row * nb + b) * 18;
      dv.setUint16(o, randHalf(r), true);
      for (let j = 0; j < 16; j++) q4src[o - q4 + 2 + j] = row === 0 ? (b % 2 ? 0xff : 0x00) : Math.floor(r() * 256);
    }
  }
  for (let row = 0; row < s.q8Rows; row++) {
    for (let b = 0; b < nb; b++) {
      const o = q8 + (row * nb + b) * 34;
      dv.setUint16(o, randHalf(r), true);
      for (let j = 0; j < 32; j++) dv.setInt8(o + 2 + j, row === 0 ? (j % 2 ? 127 : -128) : Math.floor(r() * 255) - 127);
    }
  }
  for (let row = 0; row < s.q6Rows; row++) {
    const o = q6 + row * 210;
    for (let j = 0; j < 192; j++) dv.setUint8(o + j, Math.floor(r() * 256));
    for (let j = 0; j < 16; j++) dv.setInt8(o + 192 + j, row === 0 ? -128 : Math.floor(r() * 256) - 128);
    dv.setUint16(o + 208, randHalf(r), true);
  }
  const xkf = new Float32Array(buf, xk, ntok * kCols);
  for (let i = 0; i < xkf.length; i++) xkf[i] = (r() - 0.5) * 8;
  if (ntok > 2) {
    xkf.fill(3, kCols, 2 * kCols);
    xkf.fill(-3, 2 * kCols, 3 * kCols);
  }
  for (const m of kMats) {
    // In place, as the loader does (the repacked rows are larger, so the file's bytes sit at the start).
    const block = m.block ?? m.bytes;
    for (let o = m.w; o < m.w + s.kRows * m.bytes; o += block) {
      const row0 = o < m.w + m.bytes;
      for (let j = 4; j < block; j++) dv.setUint8(o + j, row0 ? 0xff : Math.floor(r() * 256));
      dv.setUint16(o, randHalf(r) & 0x7fff, true);
      dv.setUint16(o + 2, randHalf(r) & 0x7fff, true);
    }
    m.repack(m.w, m.w, s.kRows, kCols);
  }
  for (const m of lowMats) {
    for (let row = 0; row < s.kRows; row++) {
      const o = m.w + row * m.bytes;
      for (let j = 0; j < m.bytes; j++) dv.setUint8(o + j, row === 0 ? 0xff : row === 1 ? 0 : Math.floor(r() * 256));
      for (const h of m.halves) dv.setUint16(o + h, randHalf(r) & 0x7fff, true);
    }
    m.repack(m.w, m.w, s.kRows, kCols);
  }
  const outF = new Float32Array(buf, out, outN);
  for (let round = 0; round < rounds; round++) {
    e.quantize_q8a(x, cols, xa);
    e.quantize_q8a(x, q6cols <= ntok * cols ? q6cols : 0, xa6);
    // Warm-up (rounds > 1) repacks every round, so the loader's repacks run optimized code.
    if (round === 0 || rounds > 1) e.repack_q4_0(q4, q4, s.q4Rows, cols);
    // In place from the file's bytes, as the loader does; on later rounds q8 holds the first
    // round's Q8R, so it is repacked only once.
    if (round === 0) e.repack_q8_0(q8, q8, s.q8Rows, cols);
    let o = out;
    for (const n of counts) {
      e.quantize_q8b(x, cols, n, xb);
      e.matmul_q4r_q8b(q4, s.q4Rows, cols, xb, n, o);
      o += s.q4Rows * n * 4;
      e.matmul_q8r_q8b(q8, s.q8Rows, cols, xb, n, o);
      o += s.q8Rows * n * 4;
    }
    e.matvec_q4r_q8a(q4, s.q4Rows, cols, xa, o);
    o += s.q4Rows * 4;
    e.matvec_q8r_q8a(q8, s.q8Rows, cols, xa, o);
    o += s.q8Rows * 4;
    e.matvec_q6k_q8a(q6, s.q6Rows, q6cols, xa6, o);
    o += s.q6Rows * 4;
    if (round === 0 || rounds > 1) e.repack_q6_k(q6, q6r, s.q6Rows, q6cols);
    e.matvec_q6r_q8a(q6r, s.q6Rows, q6cols, xa6, o);
    o += s.q6Rows * 4;
    // The Q6R matmul over the K-quants' activations (256 columns; tokens 1 and 2 all +-127).
    for (const n of counts) {
      e.quantize_q8b(xk, kCols, n, xkb);
      e.matmul_q6r_q8b(q6r, s.q6Rows, kCols, xkb, n, o);
      o += s.q6Rows * n * 4;
    }
    for (const m of [...kMats, ...lowMats]) {
      const grain256 = "grain256" in m && m.grain256;
      for (const n of counts) {
        (grain256 ? e.quantize_q8b_k : e.quantize_q8b)(xk, kCols, n, xkb);
        m.matmul(m.w, s.kRows, kCols, xkb, n, o);
        o += s.kRows * n * 4;
      }
      (grain256 ? e.quantize_q8a_k : e.quantize_q8a)(xk, kCols, xka);
      m.matvec(m.w, s.kRows, kCols, xka, o);
      o += s.kRows * 4;
    }
  }
  // a: 127, -128 and mixed; b (the 7-bit operand): 255, 200, 128..255; c: non-zero. VNNI gives
  // 4*127*255 + 1000 in lane 0; pmaddubsw's saturating pair sums give 2*32767 + 1000.
  new Int8Array(buf, dot, 16).set([127, 127, 127, 127, -128, -128, -128, -128, 127, -128, 127, -128, 1, -2, 3, -4]);
  new Uint8Array(buf, dot + 16, 16).set([255, 255, 255, 255, 255, 255, 255, 255, 200, 200, 130, 130, 129, 128, 255, 7]);
  new Int32Array(buf, dot + 32, 4).set([1000, -1000, 0, 7]);
  e.fused_dot_probe(dot);
  new Uint32Array(buf, out + (outN - DOT_PROBE_LANES) * 4, DOT_PROBE_LANES).set(new Uint32Array(buf, dot + 48, DOT_PROBE_LANES));
  return new Uint32Array(outF.buffer.slice(out, out + outN * 4));
}

export interface SelfTestResult {
  ok: boolean;
  detail: string;
}

/** Candidate build vs reference (scalar) build: all probe outputs bit-identical. */
export function selfTest(candidate: WebAssembly.Module, reference: WebAssembly.Module, shared = false): SelfTestResult {
  let got: Uint32Array, want: Uint32Array;
  try {
    got = probe(candidate, PROBE, 1, shared);
  } catch (e) {
    return { ok: false, detail: `probe failed: ${(e as Error).message}` };
  }
  want = probe(reference, PROBE, 1, shared);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad === 0) return { ok: true, detail: `${want.length} outputs bit-identical to scalar` };
  const f = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
  const what = first >= want.length - DOT_PROBE_LANES
    ? `the fused-dot probe: ${got[first] | 0} vs ${want[first] | 0}, this CPU's fused dot is not one AVX-VNNI instruction`
    : `${f(got[first])} vs ${f(want[first])}`;
  return { ok: false, detail: `${bad}/${want.length} outputs differ from scalar (first #${first}, ${what})` };
}

/**
 * The self-test on first calls, then warm-up, then the self-test again (now
 * TurboFan code: compiled code is shared by all instances of a Module). A
 * build that passes is left warm.
 */
function selfTestBothTiers(candidate: WebAssembly.Module, reference: WebAssembly.Module, shared: boolean): SelfTestResult {
  const cold = selfTest(candidate, reference, shared);
  if (!cold.ok) return { ok: false, detail: `on first calls: ${cold.detail}` };
  warmUp(candidate, undefined, shared);
  const warm = selfTest(candidate, reference, shared);
  if (!warm.ok) return { ok: false, detail: `after warm-up: ${warm.detail}` };
  return { ok: true, detail: `${cold.detail}, on first calls and after warm-up` };
}

const TIMED: ProbeSizes = { q4Rows: 256, q4Cols: 1024, ntok: 32, few: [], q8Rows: 4, q6Rows: 4, kRows: 4 };

/**
 * Seconds for one prefill-and-decode-shaped probe (a Q4R matmul of 32 tokens
 * and 32 Q4R matvecs, 256 × 1024), best of `rounds`; 0 when the clock did not
 * advance (a Worker's clock stands still while it computes).
 */
function timeProbe(module: WebAssembly.Module, shared: boolean, rounds = 3): number {
  const memory = privateMemory(64, shared);
  const e = instantiate(module, memory).exports as unknown as KernelExports;
  const base = Math.ceil((e.heap_base() >>> 0) / 64) * 64;
  const { q4Rows: rows, q4Cols: cols, ntok } = TIMED;
  const w = base, x = w + (e.q4r_bytes(rows, cols) >>> 0);
  const xb = Math.ceil((x + ntok * cols * 4) / 64) * 64;
  const xa = Math.ceil((xb + (e.q8b_bytes(cols, ntok) >>> 0)) / 64) * 64;
  const out = Math.ceil((xa + (e.q8a_bytes(cols) >>> 0)) / 64) * 64;
  const end = out + rows * ntok * 4;
  if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
  const r = rng(7);
  const u8 = new Uint8Array(memory.buffer, w, e.q4r_bytes(rows, cols) >>> 0);
  for (let i = 0; i < u8.length; i++) u8[i] = Math.floor(r() * 256);
  const dv = new DataView(memory.buffer);
  for (let i = 0; i < u8.length; i += 72) dv.setBigUint64(w + i, 0x2c002c002c002c00n, true); // small finite scales
  const xf = new Float32Array(memory.buffer, x, ntok * cols);
  for (let i = 0; i < xf.length; i++) xf[i] = r() - 0.5;
  e.quantize_q8b(x, cols, ntok, xb);
  e.quantize_q8a(x, cols, xa);
  let best = Infinity;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    e.matmul_q4r_q8b(w, rows, cols, xb, ntok, out);
    for (let j = 0; j < 32; j++) e.matvec_q4r_q8a(w, rows, cols, xa, out);
    best = Math.min(best, performance.now() - t0);
  }
  return best / 1000;
}

/**
 * Calls the hot kernels repeatedly on small shapes in a private memory. V8
 * runs a function's first calls in its baseline compiler and cannot switch
 * inside a running loop, so one long first call would stay slow; compiled
 * code is shared by all instances of a Module, so warming a throwaway
 * instance warms the real one.
 */
export function warmUp(module: WebAssembly.Module, rounds = 40, shared = false): void {
  probe(module, WARM, rounds, shared);
  const memory = privateMemory(32, shared);
  const e = instantiate(module, memory).exports as unknown as KernelExports;
  const base = Math.ceil((e.heap_base() >>> 0) / 64) * 64;
  const need = base + 256 * 1024;
  if (need > memory.buffer.byteLength) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
  // Memory is zero: a zero vector and zero weights are valid inputs for all of these.
  const a = base, b = base + 16384, c = base + 32768, d = base + 65536, kv = base + 98304, sc = base + 200000, table = base + 250000;
  for (let i = 0; i < rounds; i++) {
    e.matvec_f32(a, 16, 256, b, c);
    e.matvec_f16(a, 16, 256, b, c);
    e.matvec_bf16(a, 16, 256, b, c);
    e.layernorm(a, b, c, d, 256, 4, 1e-5);
    e.rope_neox(a, 256, 2, 4, 64, 16, i, 10000);
    // Blocks of 16 positions, both at kv (the table's two entries are zero-memory words).
    new Uint32Array(memory.buffer, table, 2).fill(kv);
    e.attention_f16kv(a, table, 16, 0, 0, 2048, d, 32, 2, 2, 64, sc);
    e.attention_f16kv_causal(a, table, 16, 0, 0, 2048, d, 4, 28, 1, 2, 64, 256, sc);
    e.silu_mul(a, b, c, 1024);
    e.add_f32(a, b, c, 1024);
  }
}

function describeMissing(kind: BuildKind, why?: string): string {
  return `${kind}: ${why ?? "not provided"}`;
}

/**
 * Instantiates the kernels over `memory`, choosing the build as described in
 * the module comment. Synchronous. Call before placing data in `memory`
 * (instantiation writes the modules' small static data below heapBase).
 */
export function loadKernels(opts: LoadKernelsOptions): Kernels {
  const { memory } = opts;
  // A runtime without SharedArrayBuffer has no shared memories to tell apart.
  const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
  const mods: KernelModules = { ...opts.modules };
  const notes: string[] = [];
  const choose = opts.choose ?? "timed";

  let chosen: { kind: BuildKind; module: WebAssembly.Module; why: string } | undefined;
  let warm = false;

  if (opts.module) {
    const inst = instantiate(opts.module, privateMemory(16, shared));
    const kind = KIND_CODE[(inst.exports as unknown as KernelExports).build_kind()] ?? "scalar";
    if (kind !== "scalar" && mods.scalar) {
      const t = selfTestBothTiers(opts.module, mods.scalar, shared);
      if (t.ok) chosen = { kind, module: opts.module, why: `given module (${kind}), self-test passed: ${t.detail}` };
      else notes.push(`given module (${kind}) failed self-test: ${t.detail}`);
      warm = t.ok;
    } else {
      chosen = { kind, module: opts.module, why: `given module (${kind}), not self-tested` + (kind === "scalar" ? " (scalar is the reference)" : ": no scalar build to compare") };
    }
  }

  // The SIMD builds that pass, in preference order (warm after their self-test).
  const passed: { kind: BuildKind; module: WebAssembly.Module; detail: string }[] = [];
  for (const kind of PREFERENCE) {
    if (chosen || kind === "scalar") continue;
    if (opts.force && kind !== opts.force) continue;
    const m = mods[kind];
    if (!m) {
      notes.push(describeMissing(kind, opts.unavailable?.[kind]));
      continue;
    }
    if (!mods.scalar) {
      notes.push(`${kind}: no scalar build to self-test against`);
      continue;
    }
    const t = selfTestBothTiers(m, mods.scalar, shared);
    if (t.ok) passed.push({ kind, module: m, detail: t.detail });
    else notes.push(`${kind}: self-test FAILED ${t.detail}`);
    if (t.ok && choose === "first") break;
  }
  if (!chosen && passed.length > 0) {
    const forced = opts.force ? ` (forced: ${opts.force})` : "";
    if (passed.length === 1 || choose === "first") {
      const c = passed[0];
      chosen = { kind: c.kind, module: c.module, why: `${c.kind} build${forced}, self-test passed (${c.detail})` };
    } else {
      // Builds alternate, so that a noisy neighbour slows each about alike.
      const times = passed.map(() => Infinity);
      for (let round = 0; round < 2; round++) passed.forEach((c, i) => (times[i] = Math.min(times[i], timeProbe(c.module, shared))));
      if (times.every((t) => t === 0)) {
        const c = passed[0];
        chosen = { kind: c.kind, module: c.module, why: `${c.kind} build, self-test passed (${c.detail}); the clock did not advance, so the first that passed` };
      } else {
        // The fastest, unless an earlier one in PREFERENCE is within 3% of it.
        const best = Math.min(...times);
        const i = times.findIndex((t) => t <= best * 1.03);
        const c = passed[i];
        const timing = passed.map((p, j) => `${p.kind} ${(times[j] * 1e3).toFixed(2)} ms`).join(", ");
        chosen = { kind: c.kind, module: c.module, why: `${c.kind} build, self-test passed (${c.detail}); fastest on the timed probe (${timing})` };
      }
    }
    warm = true;
  }
  if (!chosen && mods.scalar) {
    chosen = { kind: "scalar", module: mods.scalar, why: "scalar build (reference, no SIMD)" };
  }
  if (!chosen) throw new Error(`loadKernels: no usable kernel build (${notes.length ? notes.join("; ") : "no builds given"})`);

  if (opts.warmup !== false && !warm) warmUp(chosen.module, undefined, shared);
  const instance = instantiate(chosen.module, memory);
  const exports = instance.exports as unknown as KernelExports;
  const heapBase = exports.heap_base() >>> 0;
  if (memory.buffer.byteLength < heapBase) memory.grow(Math.ceil((heapBase - memory.buffer.byteLength) / 65536));
  const reason = notes.length ? `${chosen.why}; skipped ${notes.join("; ")}` : chosen.why;
  return {
    kind: chosen.kind,
    reason,
    exports,
    instance,
    module: chosen.module,
    memory,
    heapBase,
  };
}
