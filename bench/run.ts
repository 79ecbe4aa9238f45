/**
 * `npm run bench`: edgelm's wasm engine vs llama.cpp (node-llama-cpp, prebuilt
 * CPU binary) on the synthetic Stable LM 2 1.6B-shaped Q4_0 GGUF, same file,
 * each engine in its own child process (bench/engine-child.ts), hosted by
 * Node: both at one thread (edgelm's relaxed and plain SIMD builds), then
 * both at N threads. Each engine is warmed up the same way (a short prompt
 * and one token, as llama-bench does) and then timed R times over in its
 * process (--reps, default 3), and the medians are reported, as llama-bench
 * reports the mean of its repetitions; edgelm's first prefill, which writes
 * fresh KV pages, is printed as well. Measures load time, prefill tok/s (128-token prompt),
 * decode tok/s (64 greedy tokens after it, then the same positions again
 * sampled with the model card's temperature 0.7, top_p 0.95: a row of its own)
 * and peak RSS; prints a table with ratios against llama.cpp at the same
 * thread count and against the same engine at one thread, and writes
 * bench/results/engines-<time>.json.
 *
 *   npm run bench [-- --quick] [-- --threads N] [-- --reps R] [-- --rounds N] [-- --all] [-- --concurrency|--structured|--quants|--browser [options]]
 *   --quick      32-token prompt, 16 decoded tokens, one rep, one round
 *   --reps R     timed repetitions per engine process (default 3; the medians are reported)
 *   --rounds N   every engine N times in turn, each in a fresh process (default 3, 1 with --quick; the
 *                medians over the rounds are reported): a slow spell of the machine then falls on
 *                every engine alike, and the targets' ratios, which sit within a run's spread of
 *                each other, are not read off one process each
 *   --threads N  the multi-threaded rows' thread count (default: the cores, os.availableParallelism());
 *                1 leaves them out
 *   --all        also run bench/kernels.ts (per-kernel GB/s, G mult-adds/s), bench/tokenizer.ts and
 *                bench/worker.ts (the Worker in workerd vs the engine in Node)
 *   --concurrency  instead: many users at once (bench/concurrency.ts: edgelm serve, the Worker in workerd and
 *                the sharded full2l deployment at 1, 2, 4 and 8 streams, llama.cpp with as many sequences,
 *                the prefix-reuse and short-request cases; the options after it are its own: --help lists them)
 *   --structured instead: what structured output costs (bench/structured.ts: mask time per token
 *                against the decode step, first-token latency with a new schema)
 *   --quants     instead: the quant types people download (bench/quants.ts: Q4_K_M, Q5_K_M, Q4_1, Q8_0
 *                files vs llama.cpp on each, one thread, alternating runs; a Q6_K head vs all Q4_0)
 *   --browser    instead: edgelm/local in headless Chromium vs the engine in Node (bench/browser.ts:
 *                decode tok/s at one thread, first-visit vs cached load time)
 *
 * With --concurrency, --structured, --quants or --browser, every other argument goes to that bench
 * (e.g. `npm run bench -- --quants --rounds 5 --types q4_k_m`; `--help` after it lists its options).
 *
 * Timings only here, never in tests. The machine is shared and noisy: compare
 * ratios within one run.
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchModel, engineChild, mergeRounds, root, type EngineResult } from "./common";
import { footprintTargets, nodeSpeedTargets, type EngineRounds } from "./engine-targets";
import { f, ratio, targetLines } from "./targets";
import { enableRelaxedSimd } from "../src/engine/node";

// The other benches have options of their own: with one of their flags, every other argument goes to
// that bench as given (its --help lists them).
const SUB_BENCHES: Record<string, string> = {
  "--concurrency": "bench/concurrency.ts",
  "--structured": "bench/structured.ts",
  "--quants": "bench/quants.ts",
  "--browser": "bench/browser.ts",
};
const sub = process.argv.slice(2).find((a) => a in SUB_BENCHES);
if (sub) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, SUB_BENCHES[sub]), ...process.argv.slice(2).filter((a) => a !== sub)], { cwd: root, stdio: "inherit" });
  process.exit(r.status ?? 1);
}
const USAGE = "usage: npm run bench [-- --quick] [-- --threads N] [-- --reps R] [-- --rounds N] [-- --all] [-- --concurrency | --structured | --quants | --browser [that bench's options; add --help to list them]]";
const { values: cli } = parseArgs({ options: { quick: { type: "boolean" }, all: { type: "boolean" }, threads: { type: "string" }, reps: { type: "string" }, rounds: { type: "string" }, help: { type: "boolean", short: "h" } } });
if (cli.help) {
  console.log(`${USAGE}\n  (bench/run.ts's header comment says what each runs)`);
  process.exit(0);
}
const quick = cli.quick ?? false;
const all = cli.all ?? false;
const THREADS = Number(cli.threads ?? availableParallelism());
if (!Number.isInteger(THREADS) || THREADS < 1) throw new Error(`--threads must be a positive integer, got ${cli.threads}`);
const REPS = Number(cli.reps ?? (quick ? 1 : 3));
const ROUNDS = Number(cli.rounds ?? (quick ? 1 : 3));
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive integer, got ${cli.rounds}`);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps must be a positive integer, got ${cli.reps}`);
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
const child = (engine: string[], threads: number) => engineChild(["--model", path, ...engine, "--threads", String(threads), "--reps", String(REPS)], PROMPT, DECODE);
const runs: [string[], number][] = [
  ...builds.map((b): [string[], number] => [["--engine", "edgelm", "--build", b], 1]),
  [["--engine", "llama.cpp"], 1],
  // At N threads, the faster build only.
  ...(THREADS > 1 ? ([[["--engine", "edgelm", "--build", builds[0]], THREADS], [["--engine", "llama.cpp"], THREADS]] as [string[], number][]) : []),
];
// Rounds run every engine in turn, so that a slow spell of the machine falls on all of them alike.
const rounds = runs.map(() => [] as ReturnType<typeof child>[]);
for (let r = 0; r < ROUNDS; r++) {
  runs.forEach(([engine, threads], i) => rounds[i].push(child(engine, threads)));
  if (ROUNDS > 1) process.stderr.write(`round ${r + 1} of ${ROUNDS} done\n`);
}
const results = rounds.map(mergeRounds);

const ok = results.filter((r): r is EngineResult => !("error" in r));
/** runs[i]'s figures round by round; undefined where a round failed. */
const roundsOf = (i: number): EngineRounds | undefined => {
  const rs = rounds[i];
  if (i < 0 || rs.some((r) => "error" in r)) return undefined;
  const e = rs as EngineResult[];
  return { prefill_tok_s: e.map((r) => r.prefill_tok_s), decode_tok_s: e.map((r) => r.decode_tok_s), decode_sampled_tok_s: e.map((r) => r.decode_sampled_tok_s ?? NaN) };
};
const runIndex = (engine: string, threads: number) => runs.findIndex(([argv, t]) => t === threads && argv[1] === engine && (engine !== "edgelm" || argv[3] === builds[0]));
const llamaAt = (threads: number) => ok.find((r) => r.engine === "llama.cpp" && r.threads === threads);
const oneThread = (r: EngineResult) => ok.find((o) => o.engine === r.engine && o.threads === 1);
const kvMB = (24 * 2 * 2048 * 2 * (PROMPT + DECODE)) / 2 ** 20;
const fastest1 = ok.find((r) => r.engine === `edgelm ${builds[0]}` && r.threads === 1);
const weightsMB = size / 2 ** 20;

const lines = [
  `model: ${path} (${f(size / 1e9, 2)} GB, synthetic Stable LM 2 1.6B shape, Q4_0); prompt ${PROMPT} tokens, decode ${DECODE}; 1 and ${THREADS} threads; each engine warmed up (8 tokens + 1), then the median of ${REPS} rep${REPS > 1 ? "s" : ""}${ROUNDS > 1 ? ` per process, and of ${ROUNDS} rounds of fresh processes run in turn` : ""}`,
  `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}; reading the file into a reused 4 MiB buffer: ${f(fileRead, 2)} s (page cache warm, best of 2)`,
  "",
  "| engine | host | threads | load s | prefill tok/s | decode tok/s | peak RSS MB | RSS above node's baseline MB | load / file read | prefill vs llama.cpp (same threads) | decode vs llama.cpp | RSS vs llama.cpp | prefill vs its 1 thread | decode vs its 1 thread |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...ok.map((r) => {
    const llama = llamaAt(r.threads);
    const one = r.threads > 1 ? oneThread(r) : undefined;
    return `| ${r.engine} | ${r.host} | ${r.threads} | ${f(r.load_s, 2)} | ${f(r.prefill_tok_s)} | ${f(r.decode_tok_s)} | ${f(r.peak_rss_mb, 0)} | ${f(r.peak_rss_mb - r.baseline_rss_mb, 0)} | ${f(r.load_s / fileRead, 2)}× | ${ratio(r.prefill_tok_s, llama?.prefill_tok_s)} | ${ratio(r.decode_tok_s, llama?.decode_tok_s)} | ${ratio(r.peak_rss_mb, llama?.peak_rss_mb)} | ${ratio(r.prefill_tok_s, one?.prefill_tok_s)} | ${ratio(r.decode_tok_s, one?.decode_tok_s)} |`;
  }),
  ...ok
    .filter((r) => r.decode_sampled_tok_s !== undefined)
    .map((r) => `| ${r.engine}, sampled (temperature 0.7, top_p 0.95) | ${r.host} | ${r.threads} | — | — | ${f(r.decode_sampled_tok_s!)} | — | — | — | — | ${ratio(r.decode_sampled_tok_s!, llamaAt(r.threads)?.decode_sampled_tok_s)} | — | — | ${r.threads > 1 ? ratio(r.decode_sampled_tok_s!, oneThread(r)?.decode_sampled_tok_s) : "—"} |`),
  "",
  ...(REPS > 1
    ? [`first prefill of the ${REPS} reps (edgelm's writes its KV pages for the first time; llama.cpp cleared its KV buffer at load): ${ok.map((r) => `${r.engine} ${r.threads}T ${f(r.prefill_first_tok_s ?? NaN)}`).join(", ")} tok/s`, ""]
    : []),
  "sampled rows: the decode again over the same positions, sampling each token instead of taking the argmax:",
  ...ok.filter((r) => r.sampled_detail && r.threads === 1).map((r) => `  ${r.engine}: ${r.sampled_detail}`),
  "",
  ...targetLines([
    ...nodeSpeedTargets({
      one: { ours: roundsOf(runIndex("edgelm", 1)), llama: roundsOf(runIndex("llama.cpp", 1)) },
      ...(THREADS > 1 ? { many: { threads: THREADS, ours: roundsOf(runIndex("edgelm", THREADS)), llama: roundsOf(runIndex("llama.cpp", THREADS)) } } : {}),
    }),
    ...(fastest1 ? footprintTargets({ load_s: fastest1.load_s, rss_mb: fastest1.peak_rss_mb - fastest1.baseline_rss_mb }, fileRead, { weightsMB, kvMB }) : []),
  ]),
  `  (RSS is counted above Node's own baseline: the child's RSS after node + tsx start, before the engine module loads, ${ok[0] ? f(ok[0].baseline_rss_mb, 0) : "?"} MB, is not ours)`,
  ...(quick ? ["  (--quick: a 32-token prompt and 16 tokens; the targets are set for the default run)"] : []),
  "",
  ...ok.map((r) => `  ${r.engine}, ${r.threads} thread${r.threads > 1 ? "s" : ""}: ${r.detail}`),
  ...results.filter((r) => "error" in r).map((r) => `  FAILED ${r.engine}: ${(r as { error: string }).error}`),
];
console.log(lines.join("\n"));

mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `engines-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(
  out,
  JSON.stringify({ date: new Date().toISOString(), model: path, size, prompt: PROMPT, decode: DECODE, threads: THREADS, reps: REPS, rounds: ROUNDS, fileRead_s: fileRead, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, results, perRound: rounds }, null, 2),
);
console.log(`\nwrote ${out}`);
// A failed engine leaves its rows and targets out: say so in the exit status too, for scripts.
if (results.some((r) => "error" in r)) process.exitCode = 1;

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
