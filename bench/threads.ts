/**
 * How the engine scales with threads on a noisy machine: one engine per thread
 * count in one process, all over the synthetic 1.6B Q4_0 file, run in turn
 * (interleaved, so that each sees the same spells of other load) for many
 * rounds: a 128-token prefill from position 0, then 16 decode steps from
 * position 128 (the same tokens every round). Prints, per engine, the best
 * and the median round (tok/s) and the best over the one-thread best. Other
 * work on the machine only ever slows a round down, so the best rounds say
 * what the engine does with the cores free; `npm run bench` runs each engine
 * once, where one disturbed run moves a ratio by 2×. --baseline adds the
 * same engines from another checkout (its src/ and build/; a worktree of
 * the commit to compare with), interleaved with these.
 *
 *   node --import tsx bench/threads.ts [--rounds 12] [--threads 1,2] [--build relaxed] [--baseline DIR]
 *
 * Timings only here, never in tests.
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { benchModel, promptTokens, root } from "./common";
import type { BuildKind } from "../src/engine/kernels";
import type { loadWasmEngine as LoadWasmEngine } from "../src/engine/node";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/threads.ts [--rounds 12] [--threads 1,2] [--build relaxed] [--baseline DIR]");

const { values: cli } = parseArgs({
  options: { rounds: { type: "string", default: "12" }, threads: { type: "string", default: "1,2" }, build: { type: "string", default: "relaxed" }, baseline: { type: "string" } },
});
const rounds = Number(cli.rounds);
const counts = cli.threads.split(",").map(Number);
if (!Number.isInteger(rounds) || rounds < 2 || counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error("--rounds must be an integer ≥ 2 and --threads positive integers");
const build = cli.build as BuildKind;
const PROMPT = 128;
const DECODE = 16;

const path = await benchModel();
const trees = [{ name: "this tree", dir: root }, ...(cli.baseline ? [{ name: "baseline", dir: resolve(cli.baseline) }] : [])];
const engines = [];
for (const tree of trees) {
  const { loadWasmEngine } = (await import(resolve(tree.dir, "src/engine/node.ts"))) as { loadWasmEngine: typeof LoadWasmEngine };
  for (const threads of counts) {
    const opts = { threads, force: build, relaxed: build.startsWith("relaxed"), sequences: 1, contextLength: PROMPT + DECODE, buildDir: resolve(tree.dir, "build") };
    const e = await loadWasmEngine(path, opts);
    if (e.threads !== threads || e.kernels.kind !== build) throw new Error(`${tree.name}: wanted ${threads} threads of the ${build} build, got ${e.name}`);
    engines.push({ tree: tree.name, threads, e, seq: e.newSequence(), prefill: [] as number[], decode: [] as number[] });
  }
}
const prompt = promptTokens(PROMPT);
const next = promptTokens(PROMPT + DECODE).slice(PROMPT);

// Round 0 warms each engine up (first touch of its KV pages, V8's tiers) and is not counted.
for (let r = 0; r <= rounds; r++) {
  for (const x of r % 2 ? [...engines].reverse() : engines) {
    const t0 = performance.now();
    x.e.forward(x.seq, prompt, 0);
    const t1 = performance.now();
    for (let i = 0; i < DECODE; i++) x.e.forward(x.seq, [next[i]], PROMPT + i);
    const t2 = performance.now();
    if (r === 0) continue;
    x.prefill.push((PROMPT * 1000) / (t1 - t0));
    x.decode.push((DECODE * 1000) / (t2 - t1));
  }
}

const best = (a: number[]) => Math.max(...a);
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
console.log(`${path}, ${build} build, ${rounds} rounds: prefill ${PROMPT} tokens, then ${DECODE} decode steps (tok/s)`);
console.log("| tree | threads | prefill best | prefill median | decode best | decode median | prefill best / 1 thread's | decode best / 1 thread's |");
console.log("|---|---|---|---|---|---|---|---|");
for (const x of engines) {
  const one = engines.find((o) => o.tree === x.tree && o.threads === 1);
  const vsOne = (a: number[], b: number[] | undefined) => (b && x !== one ? `${(best(a) / best(b)).toFixed(2)}×` : "—");
  console.log(`| ${x.tree} | ${x.threads} | ${best(x.prefill).toFixed(1)} | ${median(x.prefill).toFixed(1)} | ${best(x.decode).toFixed(1)} | ${median(x.decode).toFixed(1)} | ${vsOne(x.prefill, one?.prefill)} | ${vsOne(x.decode, one?.decode)} |`);
}
for (const x of engines) await x.e.close();
