/**
 * One model file, two folders of kernel builds, alternating in one process: the time of a decode
 * step (one sequence, one token at `--context` positions) with each, or with `--prefill P` of a
 * P-token prompt from position 0. For a kernel change whose end-to-end effect the per-kernel
 * benches (bench/kquant.ts, bench/kernels-ab.ts) only predict: copy build/ aside before the
 * change, rebuild, and compare. Not a test.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/decode-ab.ts A_DIR B_DIR
 *        [--model file.gguf] [--build relaxed|relaxed-fused|simd|scalar] [--context 128]
 *        [--prefill P] [--steps 8] [--turns 3] [--engine-a TREE]
 *
 * --engine-a: A's engine comes from the checkout at TREE (its src/engine/node.ts), for a change
 * that alters a kernel's arguments, where the old builds need the old engine: e.g. `git archive`
 * the base commit into TREE with its own build/ and pass TREE/build as A_DIR. With the same
 * folder twice, it compares two versions of the engine's TypeScript on the same kernels.
 *
 * --prefill: each step is the whole prompt again over the same sequence (its KV blocks are
 * written once before timing, so no step pays their first page faults).
 *
 * Default model: the synthetic 1.6B Q4_0 file (bench/common.ts). One thread. Each turn loads the
 * file with A's builds, then B's, and keeps each one's best CPU time of `steps` steps; the best
 * per folder over the turns is printed, with B / A (the machine is shared: compare within a run).
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { BuildKind } from "../src/engine/kernels";
import { loadWasmEngine } from "../src/engine/node";
import { benchModel, promptTokens } from "./common";

const USAGE = "usage: bench/decode-ab.ts A_DIR B_DIR [--model file.gguf] [--build relaxed] [--context 128] [--prefill P] [--steps 8] [--turns 3] [--engine-a TREE]";
const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" },
    build: { type: "string", default: "relaxed" },
    context: { type: "string", default: "128" },
    prefill: { type: "string" },
    steps: { type: "string", default: "8" },
    turns: { type: "string", default: "3" },
    "engine-a": { type: "string" },
    help: { type: "boolean" },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals.length !== 2) throw new Error(USAGE);
const build = args.build as BuildKind;
const [ctx, steps, turns, prefill] = [args.context, args.steps, args.turns, args.prefill ?? "1"].map((v, i) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${["context", "steps", "turns", "prefill"][i]} must be a positive integer, got ${v}`);
  return n;
});
const prompt = args.prefill !== undefined;
const model = args.model ?? (await benchModel());

const engineA: typeof loadWasmEngine = args["engine-a"] ? (await import(pathToFileURL(resolve(args["engine-a"], "src/engine/node.ts")).href)).loadWasmEngine : loadWasmEngine;

/** Best CPU ms of `steps` decode steps (or prompts) with the builds in `dir` (A's engine for the first folder). */
async function stepMs(dir: string, load: typeof loadWasmEngine): Promise<number> {
  const e = await load(model, { force: build, relaxed: build.startsWith("relaxed"), buildDir: dir, threads: 1, maxBatch: 1, sequences: 1, contextLength: Math.max(ctx + steps + 1, prefill) });
  try {
    if (e.kernels.kind !== build) throw new Error(`${dir}: wanted the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
    const seq = e.newSequence();
    const tokens = promptTokens(prompt ? prefill : ctx);
    e.forward(seq, tokens, 0);
    let best = Infinity;
    for (let i = 0; i < steps; i++) {
      const c0 = process.cpuUsage();
      if (prompt) e.forward(seq, tokens, 0);
      else e.forward(seq, [1000 + i], ctx + i);
      const c = process.cpuUsage(c0);
      best = Math.min(best, (c.user + c.system) / 1e3);
    }
    return best;
  } finally {
    await e.close();
  }
}

const best = [Infinity, Infinity];
for (let t = 0; t < turns; t++) for (const i of [0, 1]) best[i] = Math.min(best[i], await stepMs(positionals[i], i === 0 ? engineA : loadWasmEngine));
const unit = prompt ? `ms/prompt of ${prefill}` : "ms/token";
const rate = (ms: number) => (prompt ? `, ${((prefill * 1000) / ms).toFixed(1)} tok/s` : "");
console.log(`${model}, ${build} build, one thread, ${prompt ? `${prefill}-token prompts` : `context ${ctx}`}; best of ${turns} turns × ${steps} steps`);
console.log(`A ${positionals[0]}${args["engine-a"] ? ` (engine ${args["engine-a"]})` : ""}: ${best[0].toFixed(1)} ${unit}${rate(best[0])}`);
console.log(`B ${positionals[1]}: ${best[1].toFixed(1)} ${unit}${rate(best[1])} (B / A ${(best[1] / best[0]).toFixed(3)})`);
