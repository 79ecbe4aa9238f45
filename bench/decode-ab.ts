/**
 * One model file, two folders of kernel builds, alternating in one process: the time of a decode
 * step (one sequence, one token at `--context` positions) with each. For a kernel change whose
 * end-to-end effect the per-kernel benches (bench/kquant.ts, bench/kernels-ab.ts) only predict:
 * copy build/ aside before the change, rebuild, and compare. Not a test.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/decode-ab.ts A_DIR B_DIR
 *        [--model file.gguf] [--build relaxed|relaxed-fused|simd|scalar] [--context 128]
 *        [--steps 8] [--turns 3]
 *
 * Default model: the synthetic 1.6B Q4_0 file (bench/common.ts). One thread. Each turn loads the
 * file with A's builds, then B's, and keeps each one's best CPU time of `steps` steps; the best
 * per folder over the turns is printed, with B / A (the machine is shared: compare within a run).
 */
import { parseArgs } from "node:util";
import type { BuildKind } from "../src/engine/kernels";
import { loadWasmEngine } from "../src/engine/node";
import { benchModel, promptTokens } from "./common";

const USAGE = "usage: bench/decode-ab.ts A_DIR B_DIR [--model file.gguf] [--build relaxed] [--context 128] [--steps 8] [--turns 3]";
const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" },
    build: { type: "string", default: "relaxed" },
    context: { type: "string", default: "128" },
    steps: { type: "string", default: "8" },
    turns: { type: "string", default: "3" },
    help: { type: "boolean" },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals.length !== 2) throw new Error(USAGE);
const build = args.build as BuildKind;
const [ctx, steps, turns] = [args.context, args.steps, args.turns].map((v, i) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${["context", "steps", "turns"][i]} must be a positive integer, got ${v}`);
  return n;
});
const model = args.model ?? (await benchModel());

/** Best CPU ms of `steps` decode steps with the builds in `dir`. */
async function stepMs(dir: string): Promise<number> {
  const e = await loadWasmEngine(model, { force: build, relaxed: build.startsWith("relaxed"), buildDir: dir, threads: 1, maxBatch: 1, sequences: 1, contextLength: ctx + steps + 1 });
  try {
    if (e.kernels.kind !== build) throw new Error(`${dir}: wanted the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
    const seq = e.newSequence();
    e.forward(seq, promptTokens(ctx), 0);
    let best = Infinity;
    for (let i = 0; i < steps; i++) {
      const c0 = process.cpuUsage();
      e.forward(seq, [1000 + i], ctx + i);
      const c = process.cpuUsage(c0);
      best = Math.min(best, (c.user + c.system) / 1e3);
    }
    return best;
  } finally {
    await e.close();
  }
}

const best = [Infinity, Infinity];
for (let t = 0; t < turns; t++) for (const i of [0, 1]) best[i] = Math.min(best[i], await stepMs(positionals[i]));
console.log(`${model}, ${build} build, one thread, context ${ctx}; best of ${turns} turns × ${steps} steps`);
console.log(`A ${positionals[0]}: ${best[0].toFixed(1)} ms/token`);
console.log(`B ${positionals[1]}: ${best[1].toFixed(1)} ms/token (B / A ${(best[1] / best[0]).toFixed(3)})`);
