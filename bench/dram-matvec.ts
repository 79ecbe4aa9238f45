/**
 * Matrix-vector products at the 1.6B's real shapes with the weights far
 * larger than cache: `--mb` MB of copies of one matrix, called in turn, so
 * each call reads its weights from DRAM (as a decode step does); beside the
 * same matrix called over and over (cache-resident). Q4R, Q4KR, Q6R. One
 * thread, relaxed build. Not a test.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/dram-matvec.ts [--mb 320] [--turns 3] [--subnormal]
 *
 * `--subnormal` gives every block an f16-subnormal scale (as the Q6_K `d` of
 * real and synthetic files: the superblock scale of small weights is below
 * 2^-14) instead of a normal one.
 */
import { compileKernelModules } from "../src/engine/node";
import { warmUp, type KernelExports } from "../src/engine/kernels";
import { Arena } from "../src/engine/arena";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
};
if (process.argv.includes("--help")) {
  console.log("usage: bench/dram-matvec.ts [--mb 320] [--turns 3] [--subnormal]");
  process.exit(0);
}
const MB = Number(arg("--mb", "320"));
const TURNS = Number(arg("--turns", "3"));
const SUB = process.argv.includes("--subnormal");

function fillRandom(u8: Uint8Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < u8.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u8[i] = s >>> 24;
  }
}

const { modules } = compileKernelModules();
const mod = modules.relaxed!;
warmUp(mod);
const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
const e = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as KernelExports;
const arena = new Arena(memory, e.heap_base() >>> 0);
const FF = 5632;
const x = arena.alloc(FF * 4);
const xf = arena.f32(x, FF);
for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;
const xa = arena.alloc(e.q8a_bytes(FF) >>> 0);
const out = arena.alloc(100352 * 4);

for (const [rows, cols] of [[2048, 2048], [5632, 2048], [2048, 5632], [100352, 2048]] as const) {
  const mark = arena.mark();
  const formats = [
    { name: "Q4R", bb: 18, bs: 32, sc: [0], repack: e.repack_q4_0, placed: e.q4r_bytes(rows, cols) >>> 0, mv: e.matvec_q4r_q8a },
    { name: "Q4KR", bb: 144, bs: 256, sc: [0, 2], repack: e.repack_q4_k, placed: e.q4kr_bytes(rows, cols) >>> 0, mv: e.matvec_q4kr_q8a },
    { name: "Q6R", bb: 210, bs: 256, sc: [208], repack: e.repack_q6_k, placed: e.q6r_bytes(rows, cols) >>> 0, mv: e.matvec_q6r_q8a },
  ].map((f) => {
    const file = rows * (cols / f.bs) * f.bb;
    const copies = Math.max(1, Math.ceil((MB * 1e6) / Math.max(file, f.placed)));
    const ptrs: number[] = [];
    for (let c = 0; c < copies; c++) {
      const p = arena.alloc(Math.max(file, f.placed));
      fillRandom(arena.u8(p, file), rows ^ cols ^ f.bb ^ c);
      const dv = new DataView(memory.buffer, p, file);
      for (let o = 0; o < file; o += f.bb) for (const s of f.sc) dv.setUint16(o + s, (SUB ? 0x0100 : 0x1c00) + ((o >> 4) & 0x1ff), true);
      f.repack(p, p, rows, cols);
      ptrs.push(p);
    }
    return { ...f, ptrs };
  });
  e.quantize_q8a(x, cols, xa);
  const best = formats.map(() => ({ dram: Infinity, cache: Infinity }));
  for (let t = 0; t < TURNS; t++) {
    formats.forEach((f, i) => {
      // DRAM: each copy once per pass, two passes.
      for (let pass = 0; pass < 2; pass++) {
        const t0 = performance.now();
        for (const p of f.ptrs) f.mv(p, rows, cols, xa, out);
        best[i].dram = Math.min(best[i].dram, (performance.now() - t0) / f.ptrs.length);
      }
      // Cache: the first copy, over and over.
      const reps = Math.max(3, Math.ceil(2e7 / (rows * cols)));
      f.mv(f.ptrs[0], rows, cols, xa, out);
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) f.mv(f.ptrs[0], rows, cols, xa, out);
      best[i].cache = Math.min(best[i].cache, (performance.now() - t0) / reps);
    });
  }
  formats.forEach((f, i) => {
    const { dram, cache } = best[i];
    const w = rows * cols;
    console.log(
      `${rows}x${cols} ${f.name.padEnd(4)} ${f.ptrs.length} copies` +
        ` | DRAM ${dram.toFixed(3)} ms, ${((dram * 1e6) / w).toFixed(4)} ns/w, ${(f.placed / dram / 1e6).toFixed(1)} GB/s, ${(dram / best[0].dram).toFixed(2)}x Q4R` +
        ` | repeated ${cache.toFixed(3)} ms, ${((cache * 1e6) / w).toFixed(4)} ns/w, ${(f.placed / cache / 1e6).toFixed(1)} GB/s, ${(cache / best[0].cache).toFixed(2)}x Q4R`,
    );
  });
  arena.reset(mark);
}
