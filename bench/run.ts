/**
 * `npm run bench`: edgelm's wasm engine vs llama.cpp (node-llama-cpp, prebuilt
 * CPU binary) on the synthetic Stable LM 2 1.6B-shaped Q4_0 GGUF, one thread,
 * same file, each engine in its own child process (bench/engine-child.ts).
 * Measures load time, prefill tok/s (128-token prompt), decode tok/s (64
 * greedy tokens after it, then the same positions again sampled with the model
 * card's temperature 0.7, top_p 0.95: a row of its own) and peak RSS; prints a
 * table with edgelm/llama.cpp ratios and writes bench/results/engines-<time>.json.
 *
 *   npm run bench [-- --quick] [-- --all]
 *   --quick   32-token prompt, 16 decoded tokens
 *   --all     also run bench/kernels.ts (per-kernel GB/s, G mult-adds/s), bench/tokenizer.ts and
 *             bench/worker.ts (the Worker in workerd vs the engine in Node)
 *
 * Timings only here, never in tests. The machine is shared and noisy: compare
 * ratios within one run.
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { benchModel, engineChild, root, type EngineResult } from "./common";
import { enableRelaxedSimd } from "../src/engine/node";

const quick = process.argv.includes("--quick");
const all = process.argv.includes("--all");
const PROMPT = quick ? 32 : 128;
const DECODE = quick ? 16 : 64;

/** Seconds to read the file front to back once (4 MiB reads into one reused buffer): the floor for any loader. */
function readTime(path: string): number {
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(path, "r");
  const t0 = performance.now();
  while (readSync(fd, buf, 0, buf.length, null) > 0);
  const t = (performance.now() - t0) / 1000;
  closeSync(fd);
  return t;
}

const path = await benchModel();
const size = statSync(path).size;
readTime(path); // once to settle the page cache, then best of 2
const fileRead = Math.min(readTime(path), readTime(path));
const builds: ("relaxed" | "simd")[] = enableRelaxedSimd() ? ["relaxed", "simd"] : ["simd"];
const results = [...builds.map((b) => engineChild(["--model", path, "--engine", "edgelm", "--build", b], PROMPT, DECODE)), engineChild(["--model", path, "--engine", "llama.cpp"], PROMPT, DECODE)];

const ok = results.filter((r): r is EngineResult => !("error" in r));
const llama = ok.find((r) => r.engine === "llama.cpp");
const f = (x: number, d = 1) => x.toFixed(d);
const ratio = (a: number, b: number | undefined) => (b ? `${f(a / b, 2)}×` : "—");
const kvMB = (24 * 2 * 2048 * 2 * (PROMPT + DECODE)) / 2 ** 20;
const weightsMB = size / 2 ** 20;

const lines = [
  `model: ${path} (${f(size / 1e9, 2)} GB, synthetic Stable LM 2 1.6B shape, Q4_0); prompt ${PROMPT} tokens, decode ${DECODE}; one thread`,
  `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}; reading the file into a reused 4 MiB buffer: ${f(fileRead, 2)} s (page cache warm, best of 2)`,
  "",
  "| engine | load s | prefill tok/s | decode tok/s | peak RSS MB | RSS above node's baseline MB | load / file read | prefill vs llama.cpp | decode vs llama.cpp | RSS vs llama.cpp |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...ok.map(
    (r) =>
      `| ${r.engine} | ${f(r.load_s, 2)} | ${f(r.prefill_tok_s)} | ${f(r.decode_tok_s)} | ${f(r.peak_rss_mb, 0)} | ${f(r.peak_rss_mb - r.baseline_rss_mb, 0)} | ${f(r.load_s / fileRead, 2)}× | ${ratio(r.prefill_tok_s, llama?.prefill_tok_s)} | ${ratio(r.decode_tok_s, llama?.decode_tok_s)} | ${ratio(r.peak_rss_mb, llama?.peak_rss_mb)} |`,
  ),
  ...ok
    .filter((r) => r.decode_sampled_tok_s !== undefined)
    .map((r) => `| ${r.engine}, sampled (temperature 0.7, top_p 0.95) | — | — | ${f(r.decode_sampled_tok_s!)} | — | — | — | — | ${ratio(r.decode_sampled_tok_s!, llama?.decode_sampled_tok_s)} | — |`),
  "",
  "sampled rows: the decode again over the same positions, sampling each token instead of taking the argmax:",
  ...ok.filter((r) => r.sampled_detail).map((r) => `  ${r.engine}: ${r.sampled_detail}`),
  "",
  `targets (edgelm, one thread): decode ≥ 12 tok/s, prefill ≥ 25 tok/s, load ≤ 1.5× file read, RSS ≤ weights + KV + 64 MB = ${f(weightsMB, 0)} + ${f(kvMB, 0)} + 64 = ${f(weightsMB + kvMB + 64, 0)} MB,`,
  `  counted above node's own baseline (the child's RSS after node + tsx start, before the engine module loads: ${ok[0] ? f(ok[0].baseline_rss_mb, 0) : "?"} MB — not ours)`,
  ...ok.map((r) => `  ${r.engine}: ${r.detail}`),
  ...results.filter((r) => "error" in r).map((r) => `  FAILED ${r.engine}: ${(r as { error: string }).error}`),
];
console.log(lines.join("\n"));

mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `engines-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(
  out,
  JSON.stringify({ date: new Date().toISOString(), model: path, size, prompt: PROMPT, decode: DECODE, fileRead_s: fileRead, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, results }, null, 2),
);
console.log(`\nwrote ${out}`);

if (all) {
  for (const [what, argv] of [
    ["kernels (relaxed build included)", ["--experimental-wasm-relaxed-simd", "--import", "tsx", "bench/kernels.ts", ...(quick ? ["--quick"] : [])]],
    ["tokenizer", ["--import", "tsx", "bench/tokenizer.ts"]],
    ["the Worker in workerd vs the engine in Node", ["--import", "tsx", "bench/worker.ts", ...(quick ? ["--quick"] : [])]],
  ] as const) {
    console.log(`\n== ${what} ==`);
    spawnSync(process.execPath, [...argv], { cwd: root, stdio: "inherit" });
  }
}
