/**
 * The K-quant kernels against the Q4R kernels they stand beside, per weight:
 * matvec (decode) and matmul (prefill, 128 tokens by default) of Q4R, Q8R,
 * Q4KR, Q5KR, Q6R, Q2KR and Q3KR (Q2_K, Q3_K), Q41R, Q50R and Q51R (Q4_1, Q5_0,
 * Q5_1) at the 1.6B's FFN shapes, one thread. Not a test.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/kquant.ts [--builds relaxed,relaxed-fused,simd] [--formats Q8R,Q6R] [--ntok 128] [--turns 6] [--build-dir build]
 *
 * `--formats` measures only the named formats (and Q4R, the yardstick);
 * `--build-dir` reads the kernel builds from another folder (a copy of
 * build/ from before a change: the before and after of a layout).
 *
 * The formats are measured in turn, `turns` times, for ~150 ms each,
 * and the best CPU time per call is kept (the machine is shared: turns even
 * out a noisy neighbour). Reported: ms per call, G multiply-adds/s, GB/s of
 * placed weights, and the ratio to Q4R's time per weight.
 */
import { compileKernelModules } from "../src/engine/node";
import { warmUp, type BuildKind, type KernelExports } from "../src/engine/kernels";
import { Arena } from "../src/engine/arena";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --experimental-wasm-relaxed-simd --import tsx bench/kquant.ts [--builds relaxed,relaxed-fused,simd] [--formats Q8R,Q6R] [--ntok 128] [--turns 6] [--build-dir build]");

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
};
const builds = arg("--builds", "relaxed,relaxed-fused,simd").split(",") as BuildKind[];
const NTOK = Number(arg("--ntok", "128"));
const TURNS = Number(arg("--turns", "6"));
const only = process.argv.includes("--formats") ? new Set(["Q4R", ...arg("--formats", "").split(",")]) : undefined;

/** CPU seconds per call, best of the turns: fn runs for ~150 ms per turn. */
function timer(): { run(fn: () => void): number } {
  return {
    run(fn) {
      fn();
      let reps = 0;
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      while (performance.now() - t0 < 150 || reps < 2) {
        fn();
        reps++;
      }
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1e6 / reps;
    },
  };
}

function fillRandom(u8: Uint8Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < u8.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u8[i] = s >>> 24;
  }
}

const { modules, unavailable } = compileKernelModules(process.argv.includes("--build-dir") ? arg("--build-dir", "") : undefined);
const H = 2048, FF = 5632;

for (const build of builds) {
  const mod = modules[build];
  if (!mod) {
    console.log(`${build}: skipped (${unavailable[build]})`);
    continue;
  }
  warmUp(mod);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const e = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as KernelExports;
  const arena = new Arena(memory, e.heap_base() >>> 0);
  const x = arena.alloc(NTOK * FF * 4);
  const xf = arena.f32(x, NTOK * FF);
  for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;
  const xb = arena.alloc(e.q8b_bytes(FF, NTOK) >>> 0);
  const xa = arena.alloc(e.q8a_bytes(FF) >>> 0);
  // Q4KR / Q5KR read activations with one scale per 256 values, as the engine makes them for them
  // (a build from before that grain, given with --build-dir, has no such quantizer: 32 then).
  const xbk = arena.alloc(e.q8b_bytes(FF, NTOK) >>> 0);
  const xak = arena.alloc(e.q8a_bytes(FF) >>> 0);
  const out = arena.alloc(NTOK * FF * 4);

  for (const [rows, cols] of [[FF, H], [H, FF]] as const) {
    const mark = arena.mark();
    // GGUF bytes with small positive f16 scales, repacked as the loader does.
    const place = (blockBytes: number, blockSize: number, scales: number[], repack: (p: number) => void, placed: number) => {
      const file = rows * (cols / blockSize) * blockBytes;
      const p = arena.alloc(Math.max(file, placed));
      fillRandom(arena.u8(p, file), rows ^ cols ^ blockBytes);
      const dv = new DataView(memory.buffer, p, file);
      for (let o = 0; o < file; o += blockBytes) for (const s of scales) dv.setUint16(o + s, 0x1c00 + ((o >> 4) & 0x1ff), true);
      repack(p);
      return { p, bytes: placed };
    };
    const formats = [
      { name: "Q4R", w: place(18, 32, [0], (p) => e.repack_q4_0(p, p, rows, cols), e.q4r_bytes(rows, cols) >>> 0), mv: e.matvec_q4r_q8a, mm: e.matmul_q4r_q8b },
      { name: "Q8R", w: place(34, 32, [0], (p) => e.repack_q8_0(p, p, rows, cols), e.q8r_bytes(rows, cols) >>> 0), mv: e.matvec_q8r_q8a, mm: e.matmul_q8r_q8b },
      { name: "Q4KR", w: place(144, 256, [0, 2], (p) => e.repack_q4_k(p, p, rows, cols), e.q4kr_bytes(rows, cols) >>> 0), mv: e.matvec_q4kr_q8a, mm: e.matmul_q4kr_q8b },
      { name: "Q5KR", w: place(176, 256, [0, 2], (p) => e.repack_q5_k(p, p, rows, cols), e.q5kr_bytes(rows, cols) >>> 0), mv: e.matvec_q5kr_q8a, mm: e.matmul_q5kr_q8b },
      { name: "Q6R", w: place(210, 256, [208], (p) => e.repack_q6_k(p, p, rows, cols), e.q6r_bytes(rows, cols) >>> 0), mv: e.matvec_q6r_q8a, mm: e.matmul_q6r_q8b },
      { name: "Q2KR", w: place(84, 256, [80, 82], (p) => e.repack_q2_k(p, p, rows, cols), e.q2kr_bytes(rows, cols) >>> 0), mv: e.matvec_q2kr_q8a, mm: e.matmul_q2kr_q8b },
      { name: "Q3KR", w: place(110, 256, [108], (p) => e.repack_q3_k(p, p, rows, cols), e.q3kr_bytes(rows, cols) >>> 0), mv: e.matvec_q3kr_q8a, mm: e.matmul_q3kr_q8b },
      { name: "Q41R", w: place(20, 32, [0, 2], (p) => e.repack_q4_1(p, p, rows, cols), e.q41r_bytes(rows, cols) >>> 0), mv: e.matvec_q41r_q8a, mm: e.matmul_q41r_q8b },
      { name: "Q50R", w: place(22, 32, [0], (p) => e.repack_q5_0(p, p, rows, cols), e.q50r_bytes(rows, cols) >>> 0), mv: e.matvec_q50r_q8a, mm: e.matmul_q50r_q8b },
      { name: "Q51R", w: place(24, 32, [0, 2], (p) => e.repack_q5_1(p, p, rows, cols), e.q51r_bytes(rows, cols) >>> 0), mv: e.matvec_q51r_q8a, mm: e.matmul_q51r_q8b },
    ].filter((f) => !only || only.has(f.name));
    e.quantize_q8a(x, cols, xa);
    e.quantize_q8b(x, cols, NTOK, xb);
    (e.quantize_q8a_k ?? e.quantize_q8a)(x, cols, xak);
    (e.quantize_q8b_k ?? e.quantize_q8b)(x, cols, NTOK, xbk);
    const grain256 = new Set(["Q4KR", "Q5KR"]);
    const best = formats.map(() => ({ mv: Infinity, mm: Infinity }));
    const t = timer();
    for (let turn = 0; turn < TURNS; turn++) {
      formats.forEach((f, i) => {
        const k = grain256.has(f.name);
        best[i].mv = Math.min(best[i].mv, t.run(() => f.mv(f.w.p, rows, cols, k ? xak : xa, out)));
        best[i].mm = Math.min(best[i].mm, t.run(() => f.mm(f.w.p, rows, cols, k ? xbk : xb, NTOK, out)));
      });
    }
    formats.forEach((f, i) => {
      const { mv, mm } = best[i];
      console.log(
        `${build} ${rows}x${cols} ${f.name.padEnd(5)}` +
          ` | matvec ${(mv * 1e3).toFixed(3)} ms, ${((rows * cols) / mv / 1e9).toFixed(1)} GMAC/s, ${(f.w.bytes / mv / 1e9).toFixed(1)} GB/s, ${(mv / best[0].mv).toFixed(2)}x Q4R` +
          ` | matmul x${NTOK} ${(mm * 1e3).toFixed(2)} ms, ${((rows * cols * NTOK) / mm / 1e9).toFixed(1)} GMAC/s, ${(mm / best[0].mm).toFixed(2)}x Q4R`,
      );
    });
    arena.reset(mark);
  }
}
