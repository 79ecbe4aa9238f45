/**
 * Many users at once, on every host: at each concurrency level, that many closed-loop clients send
 * streamed completions (a distinct token-id prompt each, the model card's sampling) back to back
 * until `--requests` have run, over real HTTP and SSE, to
 *   node     `edgelm serve --threads 1 --max-batch 8` on the synthetic 1.6B Q4_0 file,
 *   worker   the Worker in the bare workerd binary (one isolate: one thread), same file, with
 *            MAX_BATCH / MAX_BATCH_TOKENS set (a Worker that ignores them serves one at a time),
 *   sharded  the sharded full2l deployment in workerd (scripts/shards-dev.mjs --preset full2l's),
 * and, as the Node and Worker rows' peer, llama.cpp with as many sequences in one context, same
 * file, one thread. Reported per level: aggregate generated tokens/s, the ratio to one stream and
 * to llama.cpp, time to first token and inter-token latency (p50/p99). Then, on Node: the
 * prefix-reuse case (bench/concurrency-prefix.ts); on Node and the Worker: the short-request case
 * (bench/concurrency-short.ts); and the Node engine's prefill alone (a 128-token prompt), the
 * base of the decode ceiling. Every target is evaluated from this run's numbers
 * (bench/concurrency-report.ts); the figures go to bench/results/concurrency-<time>.json.
 *
 *   npm run bench -- --concurrency [options]      (or: node --import tsx bench/concurrency.ts [options])
 *
 * Timings only here, never in tests; run it on a quiet machine and compare ratios within one run.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawnSync } from "node:child_process";
import { benchModel, engineChild, root } from "./common";
import { closedLoop, streamCompletion, promptOf } from "./concurrency-client";
import { startServe, startShardedHost, startWorker, type BatchSettings, type Host } from "./concurrency-hosts";
import { prefixReuseCase } from "./concurrency-prefix";
import { SHARDED_PRESETS } from "../test/shard/presets";
import { HOSTS, report, type ConcurrencyRun, type HostName, type HostRun, type LevelFigures } from "./concurrency-report";
import { shortRequestCase } from "./concurrency-short";
import type { ConcurrencyFigures } from "./concurrency-stats";

const USAGE = `usage: npm run bench -- --concurrency [options]   (or: node --import tsx bench/concurrency.ts [options])
  --hosts node,worker,sharded  which hosts to load (default all three; llama.cpp runs when node or worker does)
  --levels 1,2,4,8             concurrent streams per level (default 1,2,4,8)
  --requests N                 requests per level and host (default 100; lower for a quick look)
  --prompt N                   prompt tokens per request (default 16)
  --decode N                   tokens generated per request (default 32)
  --short-trials N             short requests sent while 3 streams decode (default 10)
  --model FILE.gguf            the Node and Worker rows' (and llama.cpp's) file (default the synthetic 1.6B Q4_0
                               in models/bench/, made once)
  --sharded-preset full2l|tiny|1_6b  the sharded deployment's synthetic model (default full2l)
  --quick                      12 requests per level, levels 1,4, 16 generated, 5 short trials
  --only prefix                only the prefix-reuse case on the node host (no levels, llama.cpp or short case; ~2 min);
                               the report then holds only that case and its target
  --only short                 only the short-request case, on the node and worker hosts (or --hosts node / worker;
                               no levels, llama.cpp or prefix case; ~3 min a host)
  --help                       this text
Progress goes to stderr; the table and the targets to stdout; the figures to bench/results/concurrency-<time>.json.
The default run takes ~55 min on a quiet 2-core machine (an estimate is printed at start).`;

let cli;
try {
  ({ values: cli } = parseArgs({
    options: {
      hosts: { type: "string" },
      levels: { type: "string" },
      requests: { type: "string" },
      prompt: { type: "string" },
      decode: { type: "string" },
      "short-trials": { type: "string" },
      model: { type: "string" },
      "sharded-preset": { type: "string" },
      quick: { type: "boolean" },
      only: { type: "string" },
      help: { type: "boolean", short: "h" },
      // `npm run bench -- --concurrency` passes its own flag along.
      concurrency: { type: "boolean" },
    },
  }));
} catch (e) {
  console.error(`bench/concurrency: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (cli.help) {
  console.log(USAGE);
  process.exit(0);
}
const fail = (msg: string): never => {
  console.error(`bench/concurrency: ${msg}\n${USAGE}`);
  process.exit(2);
};
const positive = (name: string, v: string | undefined, def: number): number => {
  if (v === undefined) return def;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 ? n : fail(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
};
const quick = cli.quick ?? false;
const REQUESTS = positive("requests", cli.requests, quick ? 12 : 100);
const PROMPT = positive("prompt", cli.prompt, 16);
const DECODE = positive("decode", cli.decode, quick ? 16 : 32);
const SHORT_TRIALS = positive("short-trials", cli["short-trials"], quick ? 5 : 10);
const LEVELS = [...new Set((cli.levels ?? (quick ? "1,4" : "1,2,4,8")).split(",").map((s) => positive("levels", s.trim(), 1)))].sort((a, b) => a - b);
if (cli.only !== undefined && cli.only !== "prefix" && cli.only !== "short") fail(`--only takes "prefix" or "short", got ${JSON.stringify(cli.only)}`);
const ONLY_PREFIX = cli.only === "prefix";
const ONLY_SHORT = cli.only === "short";
if (ONLY_PREFIX && cli.hosts !== undefined && cli.hosts !== "node") fail("--only prefix runs on the node host only: leave out --hosts or pass --hosts node");
const HOSTS_RUN = (ONLY_PREFIX ? "node" : (cli.hosts ?? (ONLY_SHORT ? "node,worker" : HOSTS.join(",")))).split(",").map((s) => s.trim()) as HostName[];
if (ONLY_SHORT && HOSTS_RUN.includes("sharded")) fail("--only short runs on the node and worker hosts: the sharded host has no short-request case");
const unknownHost = HOSTS_RUN.find((h) => !HOSTS.includes(h));
if (unknownHost !== undefined || HOSTS_RUN.length === 0) fail(`--hosts takes a comma-separated list of ${HOSTS.join(", ")}, got ${JSON.stringify(cli.hosts)}`);
const SHARDED_PRESET = cli["sharded-preset"] ?? "full2l";
if (!SHARDED_PRESETS[SHARDED_PRESET]) fail(`--sharded-preset must be one of ${Object.keys(SHARDED_PRESETS).join(", ")}, got ${JSON.stringify(SHARDED_PRESET)}`);
const BATCH: BatchSettings = {
  maxBatch: Math.max(8, ...LEVELS),
  maxBatchTokens: 64,
  // Every stream of the largest level, the short case's four requests, and room to spare: none is refused.
  queueDepth: Math.max(64, 2 * Math.max(...LEVELS)),
};
if (cli.model !== undefined && !existsSync(cli.model)) fail(`--model: no such file: ${cli.model}`);
const needsModel = HOSTS_RUN.includes("node") || HOSTS_RUN.includes("worker");
const withLlama = needsModel && !ONLY_PREFIX && !ONLY_SHORT;

/**
 * A rough start-time estimate from nominal rates on a quiet 2-core machine (aggregate tok/s: the
 * Node engine's batched decode per docs/engine.md, "Batching"; the Worker as Node at one stream;
 * the issue's sharded full2l baseline), prefill ~28 tok/s, plus start-up and the cases.
 */
function estimateSeconds(): number {
  if (ONLY_PREFIX) return 15 + 90;
  if (ONLY_SHORT) return HOSTS_RUN.length * 150;
  const nodeRate = (c: number) => (c >= 8 ? 27.5 : c >= 4 ? 24 : c >= 2 ? 22 : 20);
  const perLevel = (rate: number) => REQUESTS * (DECODE / rate + PROMPT / 28);
  let s = 0;
  for (const c of LEVELS) {
    if (withLlama) s += 5 + perLevel(20);
    if (HOSTS_RUN.includes("node")) s += perLevel(nodeRate(c));
    if (HOSTS_RUN.includes("worker")) s += perLevel(18);
    if (HOSTS_RUN.includes("sharded")) s += REQUESTS * (DECODE / (c >= 4 ? 46.8 : 33.6));
  }
  if (HOSTS_RUN.includes("node")) s += 15 + 40 + 30 + 10; // start, prefix case, short case, prefill child
  if (HOSTS_RUN.includes("worker")) s += 30 + 30;
  if (HOSTS_RUN.includes("sharded")) s += 90;
  return s;
}

function llamaLevel(path: string, c: number, first: number): ConcurrencyFigures & { detail: string } {
  const args = ["--model", path, "--concurrency", String(c), "--requests", String(REQUESTS), "--prompt", String(PROMPT), "--decode", String(DECODE), "--threads", "1", "--first", String(first)];
  // stderr passes through: the peer's progress lines.
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "bench/concurrency-llama.ts"), ...args], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 3_600_000, maxBuffer: 16 << 20 });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`the llama.cpp peer at ${c} sequences failed (exit ${r.status ?? r.signal}; its stderr is above): ${line.slice(-300)}`);
  }
}

/**
 * Request indices of level i start here, the same for every host and llama.cpp, so no two levels
 * share a prompt (request r's prompt is a window of one token stream starting at r: windows at
 * different starts differ from their first token); the short and prefix cases come after the levels.
 */
const firstOf = (i: number) => i * REQUESTS;
/** The short case takes 5 + 3 + --short-trials requests, the prefix case 4. */
const SHORT_FROM = firstOf(LEVELS.length);
const PREFIX_FROM = SHORT_FROM + SHORT_TRIALS + 10;
const WARM_UP_FROM = PREFIX_FROM + 10;

/** First-call costs (JIT, the batched step's code, a sharded deployment's shard loads) are not the steady state: as many streams as the largest level, 4 tokens each, once. */
async function warmUp(url: string): Promise<void> {
  const c = Math.max(...LEVELS);
  await Promise.all(Array.from({ length: c }, (_, i) => streamCompletion(url, promptOf(WARM_UP_FROM + i, PROMPT), 4, i)));
}

async function runHost(name: HostName, start: () => Promise<Host>, extra: (h: Host, run: HostRun) => Promise<void>): Promise<HostRun> {
  const run: HostRun = { host: name, detail: "", levels: [] };
  let host: Host | undefined;
  try {
    process.stderr.write(`${name}: starting …\n`);
    host = await start();
    run.detail = host.detail;
    await warmUp(host.url);
    for (const [i, c] of (ONLY_PREFIX || ONLY_SHORT ? [] : LEVELS).entries()) {
      const figures = await closedLoop(host.url, { clients: c, requests: REQUESTS, prompt: PROMPT, decode: DECODE, first: firstOf(i), label: `${name} ×${c}` });
      run.levels.push({ streams: c, figures });
      process.stderr.write(`${name} ×${c}: ${figures.aggregate_tok_s} tok/s aggregate in ${figures.wall_s} s\n`);
    }
    await extra(host, run);
  } catch (e) {
    run.error = (e as Error).message;
    process.stderr.write(`${name}: FAILED: ${run.error}\n`);
  } finally {
    await host?.stop();
  }
  return run;
}

const model = needsModel ? (cli.model ?? (await benchModel())) : "";
const t0 = performance.now();
process.stderr.write(
  `bench/concurrency: hosts ${HOSTS_RUN.join(", ")}${withLlama ? " + llama.cpp" : ""}; ${ONLY_PREFIX ? "the prefix-reuse case only" : ONLY_SHORT ? "the short-request case only" : `levels ${LEVELS.join(",")}; ${REQUESTS} requests each`}; ` +
    `estimated ~${Math.round(estimateSeconds() / 60)} min${cli.model ? " (the estimate assumes the 1.6B file)" : ""}\n`,
);

const run: ConcurrencyRun = { model, shardedPreset: SHARDED_PRESET, requests: REQUESTS, prompt: PROMPT, decode: DECODE, maxBatch: BATCH.maxBatch, maxBatchTokens: BATCH.maxBatchTokens, llama: [], hosts: [], ...(ONLY_PREFIX ? { only: "prefix" as const } : ONLY_SHORT ? { only: "short" as const } : {}) };
if (withLlama) {
  try {
    for (const [i, c] of LEVELS.entries()) {
      process.stderr.write(`llama.cpp, ${c} sequence${c > 1 ? "s" : ""} …\n`);
      const { detail, ...figures } = llamaLevel(model, c, firstOf(i));
      run.llama.push({ streams: c, figures } as LevelFigures);
      run.llamaDetail = detail;
    }
  } catch (e) {
    run.llamaError = (e as Error).message;
    process.stderr.write(`llama.cpp: FAILED: ${run.llamaError}\n`);
  }
}
const shortSpec = (label: string) => ({ prompt: PROMPT, trials: SHORT_TRIALS, first: SHORT_FROM, label });
if (HOSTS_RUN.includes("node")) {
  let build = "simd";
  run.hosts.push(
    await runHost(
      "node",
      () => startServe(model, BATCH),
      async (h, r) => {
        build = /^wasm \((\S+) kernels/.exec(h.engine)?.[1] ?? build;
        if (!ONLY_SHORT) {
          process.stderr.write("node: prefix-reuse case …\n");
          r.prefix = await prefixReuseCase(h.url, PREFIX_FROM);
          if (ONLY_PREFIX) return;
        }
        process.stderr.write("node: short-request case …\n");
        r.short = await shortRequestCase(h.url, shortSpec("node"));
      },
    ),
  );
  if (!ONLY_PREFIX && !ONLY_SHORT) {
    // After the server has gone: the engine alone, the build the server chose, nothing else on the CPUs.
    process.stderr.write(`node: the engine's prefill alone (${build} build, 128-token prompt) …\n`);
    const p = engineChild(["--model", model, "--engine", "edgelm", "--build", build, "--threads", "1", "--reps", "3"], 128, 1);
    if ("error" in p) process.stderr.write(`node: prefill measurement FAILED: ${p.error}\n`);
    else run.prefill = { tok_s: p.prefill_tok_s, detail: p.detail };
  }
}
if (HOSTS_RUN.includes("worker")) {
  run.hosts.push(
    await runHost(
      "worker",
      () => startWorker(model, BATCH),
      async (h, r) => {
        process.stderr.write("worker: short-request case …\n");
        r.short = await shortRequestCase(h.url, shortSpec("worker"));
      },
    ),
  );
}
if (HOSTS_RUN.includes("sharded")) run.hosts.push(await runHost("sharded", () => startShardedHost(SHARDED_PRESET, BATCH), async () => {}));

console.log(report(run).join("\n"));
process.stderr.write(`bench/concurrency: ${Math.round((performance.now() - t0) / 1000)} s in all\n`);
mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `concurrency-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, ...run }, null, 2));
console.log(`\nwrote ${out}`);
