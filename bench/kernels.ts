/**
 * Kernel micro-benchmarks (not a test): npx tsx bench/kernels.ts
 * With relaxed SIMD: node --experimental-wasm-relaxed-simd --import tsx bench/kernels.ts
 *   [--quick] [--builds relaxed-fused,relaxed,simd,scalar] [--dir build-folder] [--only matmul]
 * --dir compares another set of builds (e.g. a copy of build/ from before a change); --only keeps
 * the rows whose kernel name contains the word. In Node 20 the relaxed-fused build runs its
 * fused dot as TurboFan compiles it (its first, Liftoff, calls are wrong; the warm-up runs them).
 *
 * Q4R matvec (decode) at the StableLM-2-1.6B shapes, the Q6_K / Q6R output
 * head, the Q4R prefill matmul with 128 tokens, and Q8R (repacked Q8_0); GB/s of weights read and G multiply-adds/s,
 * per build, after warm-up. Single thread.
 */
import { compileKernelModules } from "../src/engine/node";
import { warmUp, type BuildKind, type KernelExports } from "../src/engine/kernels";
import { Arena } from "../src/engine/arena";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --experimental-wasm-relaxed-simd --import tsx bench/kernels.ts [--quick] [--builds relaxed-fused,relaxed,simd,scalar] [--dir build-folder] [--only matmul]");

const quick = process.argv.includes("--quick");
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const only = arg("--only");
const minTime = quick ? 0.15 : 0.5;

// Seconds per call. On a shared machine wall time includes time the thread
// was descheduled, so throughput is computed from this process's CPU time
// (single-threaded); wall time per call is kept for the record.
const walls: number[] = [];
function time(fn: () => void): number {
  fn();
  let reps = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let t = t0;
  while (t - t0 < minTime * 1000 || reps < 2) {
    fn();
    reps++;
    t = performance.now();
  }
  const c = process.cpuUsage(c0);
  walls.push((t - t0) / 1000 / reps);
  return Math.min((c.user + c.system) / 1e6, (t - t0) / 1000) / reps;
}

function fillRandom(u8: Uint8Array, seed: number) {
  let s = seed >>> 0;
  for (let i = 0; i < u8.length; i += 4) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u8[i] = s;
    u8[i + 1] = s >>> 8;
    u8[i + 2] = s >>> 16;
    u8[i + 3] = s >>> 24;
  }
}

const { modules, unavailable } = compileKernelModules(arg("--dir"));
const kinds = (arg("--builds")?.split(",") ?? ["relaxed-fused", "relaxed", "simd", "scalar"]) as BuildKind[];
const H = 2048, FF = 5632, V = 100352, NTOK = 128;
const rows: string[] = [];
const row = (...c: Array<string | number>) => {
  if (!only || String(c[1]).includes(only)) rows.push(c.map(String).join(" | "));
};
const want = (name: string) => !only || name.includes(only);

for (const kind of kinds) {
  const mod = modules[kind];
  if (!mod) {
    console.log(`${kind}: skipped (${unavailable[kind]})`);
    continue;
  }
  warmUp(mod);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const e = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as KernelExports;
  const arena = new Arena(memory, e.heap_base() >>> 0);
  const x = arena.alloc(NTOK * FF * 4);
  const xa = arena.alloc(e.q8b_bytes(FF, NTOK) >>> 0);
  const out = arena.alloc(NTOK * V * 4);
  const xf = arena.f32(x, NTOK * FF);
  for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;

  const q4 = (r: number, c: number) => {
    const bytes = e.q4r_bytes(r, c) >>> 0;
    const p = arena.alloc(bytes);
    const u8 = arena.u8(p, bytes);
    fillRandom(u8, r ^ c);
    const nb = c / 32;
    const dv = new DataView(memory.buffer, p, bytes);
    for (let g = 0; g < Math.ceil(r / 4); g++)
      for (let b = 0; b < nb; b++) for (let k = 0; k < 4; k++) dv.setUint16((g * nb + b) * 72 + 2 * k, 0x2000 + ((g + b + k) & 0x3ff), true);
    return { p, bytes };
  };

  // Decode: Q4R matvec.
  for (const [r, c, label] of [[H, FF, "down 2048x5632"], [FF, H, "up/gate 5632x2048"], [V, H, "head 100352x2048 (Q4_0)"]] as const) {
    if (!want(`matvec Q4R ${label}`)) continue;
    const mark = arena.mark();
    const w = q4(r, c);
    e.quantize_q8a(x, c, xa);
    const s = time(() => e.matvec_q4r_q8a(w.p, r, c, xa, out));
    row(kind, `matvec Q4R ${label}`, `${(s * 1e3).toFixed(3)} ms`, `${(w.bytes / s / 1e9).toFixed(2)} GB/s`, `${((r * c) / s / 1e9).toFixed(2)} GMAC/s`);
    arena.reset(mark);
  }
  // Decode: Q6_K output head (what llama.cpp's Q4_0 files carry), GGUF layout and Q6R.
  for (const q6r of [false, true]) {
    if (!want(`matvec ${q6r ? "Q6R" : "Q6_K"} head`)) continue;
    const mark = arena.mark();
    const bytes = V * (H / 256) * 210;
    const p = arena.alloc(bytes);
    fillRandom(arena.u8(p, bytes), 7);
    const dv = new DataView(memory.buffer, p, bytes);
    for (let i = 0; i < V * (H / 256); i++) dv.setUint16(i * 210 + 208, 0x1800, true);
    e.quantize_q8a(x, H, xa);
    const s = q6r ? time(() => e.matvec_q6r_q8a(p, V, H, xa, out)) : time(() => e.matvec_q6k_q8a(p, V, H, xa, out));
    row(kind, `matvec ${q6r ? "Q6R" : "Q6_K"} head 100352x2048`, `${(s * 1e3).toFixed(3)} ms`, `${(bytes / s / 1e9).toFixed(2)} GB/s`, `${((V * H) / s / 1e9).toFixed(2)} GMAC/s`);
    arena.reset(mark);
  }
  // Prefill: Q4R matmul, 128 tokens.
  for (const [r, c, label] of [[FF, H, "5632x2048"], [H, FF, "2048x5632"]] as const) {
    if (!want(`matmul Q4R ${label}`)) continue;
    const mark = arena.mark();
    const w = q4(r, c);
    e.quantize_q8b(x, c, NTOK, xa);
    const s = time(() => e.matmul_q4r_q8b(w.p, r, c, xa, NTOK, out));
    row(kind, `matmul Q4R ${label} x ${NTOK} tok`, `${(s * 1e3).toFixed(2)} ms`, `-`, `${((r * c * NTOK) / s / 1e9).toFixed(2)} GMAC/s`);
    arena.reset(mark);
  }
  // Batched decode (a step of a few streams) and the tail of a prompt: the matmul over a few
  // tokens, as a multiple of one matvec (n tokens' matvecs cost n).
  for (const [r, c, label] of [[FF, H, "5632x2048"], [H, FF, "2048x5632"]] as const) {
    if (!want(`small matmul Q4R ${label}`)) continue;
    const mark = arena.mark();
    const w = q4(r, c);
    const xq = arena.alloc(e.q8a_bytes(c) >>> 0);
    e.quantize_q8a(x, c, xq);
    const one = time(() => e.matvec_q4r_q8a(w.p, r, c, xq, out));
    row(kind, `small matmul Q4R ${label}: 1 matvec`, `${(one * 1e3).toFixed(3)} ms`, "-", "1.00");
    for (const n of [1, 2, 3, 4, 5, 6, 8]) {
      e.quantize_q8b(x, c, n, xa);
      const s = time(() => e.matmul_q4r_q8b(w.p, r, c, xa, n, out));
      row(kind, `small matmul Q4R ${label} x ${n} tok`, `${(s * 1e3).toFixed(3)} ms`, "-", `${(s / one).toFixed(2)} matvecs`);
    }
    arena.reset(mark);
  }
  // Q8R (Q8_0 repacked as the loader does) at the up/gate shape, decode and prefill.
  if (want("matvec Q8R") || want("matmul Q8R")) {
    const mark = arena.mark();
    const file = FF * (H / 32) * 34;
    const bytes = e.q8r_bytes(FF, H) >>> 0;
    const p = arena.alloc(bytes);
    fillRandom(arena.u8(p, file), 11);
    const dv = new DataView(memory.buffer, p, file);
    for (let i = 0; i < FF * (H / 32); i++) dv.setUint16(i * 34, 0x2000 + (i & 0x3ff), true);
    e.repack_q8_0(p, p, FF, H);
    e.quantize_q8a(x, H, xa);
    const s = time(() => e.matvec_q8r_q8a(p, FF, H, xa, out));
    row(kind, "matvec Q8R 5632x2048", `${(s * 1e3).toFixed(3)} ms`, `${(bytes / s / 1e9).toFixed(2)} GB/s`, `${((FF * H) / s / 1e9).toFixed(2)} GMAC/s`);
    e.quantize_q8b(x, H, NTOK, xa);
    const s2 = time(() => e.matmul_q8r_q8b(p, FF, H, xa, NTOK, out));
    row(kind, `matmul Q8R 5632x2048 x ${NTOK} tok`, `${(s2 * 1e3).toFixed(2)} ms`, "-", `${((FF * H * NTOK) / s2 / 1e9).toFixed(2)} GMAC/s`);
    arena.reset(mark);
  }
  // Load: the in-place Q4_0 -> Q4R repack (what the loader runs on every layer matrix).
  if (want("repack")) {
    const mark = arena.mark();
    const w = q4(FF, H);
    const s = time(() => e.repack_q4_0(w.p, w.p, FF, H));
    row(kind, "repack Q4_0 -> Q4R 5632x2048 (in place)", `${(s * 1e3).toFixed(3)} ms`, `${(w.bytes / s / 1e9).toFixed(2)} GB/s`, "-");
    arena.reset(mark);
  }
  // Decode attention over a head-major f16 cache in one block (the engine's blocks of 16 positions add a table lookup per block): 24 layers x 32 heads x 160 positions, head_dim 64.
  if (want("attention")) {
    const mark = arena.mark();
    const ctx = 4096, hd = 64, np = 160;
    const kc = arena.alloc(32 * ctx * hd * 2), vc = arena.alloc(32 * ctx * hd * 2);
    const u16 = arena.u16(kc, 32 * ctx * hd);
    for (let i = 0; i < 32 * ctx * hd; i++) u16[i] = 0x3000 + ((i * 37) & 0x3ff); // every half set: old arena bytes could be NaN or subnormal
    const v16 = arena.u16(vc, 32 * ctx * hd);
    for (let i = 0; i < 32 * ctx * hd; i++) v16[i] = 0xb000 + ((i * 11) & 0x3ff);
    const qp = arena.alloc(32 * hd * 4), op = arena.alloc(32 * hd * 4), sc = arena.alloc(32 * ctx * 4), table = arena.alloc(4);
    arena.u32(table, 1)[0] = 0;
    arena.f32(qp, 32 * hd).forEach((_, i, a) => (a[i] = Math.sin(i))); // finite, normal (old arena bytes could be denormals)
    const s = time(() => {
      for (let l = 0; l < 24; l++) e.attention_f16kv(qp, table, ctx, kc, vc, ctx * hd * 2, op, np, 32, 1, hd, sc);
    });
    row(kind, "attention per decoded token (24 x 32 heads x 160 pos)", `${(s * 1e3).toFixed(3)} ms`, "-", "-");
    arena.reset(mark);
  }
  // Per-token decode estimate for StableLM-2-1.6B (Q4_0 layers, Q6_K head as Q6R).
  if (want("decode matvecs")) {
    const mark = arena.mark();
    const wq = q4(H, H), wu = q4(FF, H), wd = q4(H, FF);
    e.quantize_q8a(x, FF, xa);
    const tq = time(() => e.matvec_q4r_q8a(wq.p, H, H, xa, out));
    const tu = time(() => e.matvec_q4r_q8a(wu.p, FF, H, xa, out));
    const td = time(() => e.matvec_q4r_q8a(wd.p, H, FF, xa, out));
    arena.reset(mark);
    const headBytes = V * (H / 256) * 210;
    const p = arena.alloc(headBytes);
    fillRandom(arena.u8(p, headBytes), 9);
    const th = time(() => e.matvec_q6r_q8a(p, V, H, xa, out));
    const perTok = 24 * (4 * tq + 2 * tu + td) + th;
    row(kind, "decode matvecs per token (24 Q4R layers + Q6R head)", `${(perTok * 1e3).toFixed(1)} ms`, `${(1 / perTok).toFixed(1)} tok/s`, "-");
    arena.reset(mark);
  }
}
console.log("build | kernel | CPU time/call | bandwidth | throughput   (from CPU time; see comment at time())");
for (const r of rows) console.log(r);
