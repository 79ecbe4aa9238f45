/**
 * Batched decode steps (not a test): the time of one forwardBatch of B sequences, one new token
 * each, on the synthetic 1.6B Q4_0 file (or --model), for several B in turn.
 *
 *   node --import tsx bench/batch-step.ts [--build relaxed|relaxed-fused|simd|scalar] [--threads 1]
 *        [--batches 1,2,4,8] [--context 128] [--rounds 8] [--build-dir folder] [--model file.gguf]
 *
 * Every sequence holds the same `context` positions (one prompt, the rest of the sequences take
 * its cached blocks), and every step rewrites position `context` (startPos), so each step attends
 * over the same cache and the rounds are alike. The batch sizes alternate round by round and the
 * best CPU time of each is kept (this machine is shared: see bench/kernels.ts). Prints per B the
 * step time, its ratio to B = 1, and tokens/s across the B streams.
 */
import { parseArgs } from "node:util";
import type { BuildKind } from "../src/engine/kernels";
import { loadWasmEngine } from "../src/engine/node";
import { benchModel, promptedSequences } from "./common";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/batch-step.ts [--build relaxed|relaxed-fused|simd|scalar] [--threads 1] [--batches 1,2,4,8] [--context 128] [--rounds 8] [--build-dir folder] [--model file.gguf]");

const { values: args } = parseArgs({
  options: {
    build: { type: "string", default: "relaxed" },
    threads: { type: "string", default: "1" },
    batches: { type: "string", default: "1,2,4,8" },
    context: { type: "string", default: "128" },
    rounds: { type: "string", default: "8" },
    "build-dir": { type: "string" },
    model: { type: "string" },
  },
});
const build = args.build as BuildKind;
const batches = args.batches!.split(",").map(Number);
const CTX = Number(args.context);
const maxB = Math.max(...batches);

const e = await loadWasmEngine(args.model ?? (await benchModel()), {
  force: build,
  relaxed: build.startsWith("relaxed"),
  buildDir: args["build-dir"],
  threads: Number(args.threads),
  maxBatch: maxB,
  sequences: maxB,
  contextLength: CTX + 16,
});
if (e.kernels.kind !== build) throw new Error(`wanted the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
const seqs = promptedSequences(e, CTX, maxB);
// Each sequence's logits go to an array of its own, step after step, as in a generation loop.
const into = seqs.map(() => new Float32Array(e.config.vocabSize));
const step = (b: number) => e.forwardBatch(seqs.slice(0, b).map((seq, i) => ({ seq, tokens: [1000 + i], startPos: CTX, into: into[i] })));

for (const b of batches) step(b); // warm-up
const best = new Map(batches.map((b) => [b, Infinity]));
for (let r = 0; r < Number(args.rounds); r++) {
  for (const b of batches) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    step(b);
    const c = process.cpuUsage(c0);
    const wall = (performance.now() - t0) / 1000;
    best.set(b, Math.min(best.get(b)!, Number(args.threads) > 1 ? wall : Math.min(wall, (c.user + c.system) / 1e6)));
  }
}
const one = best.get(1) ?? best.get(batches[0])!;
console.log(`${e.name}; context ${CTX}, best of ${args.rounds}`);
for (const b of batches) {
  const s = best.get(b)!;
  console.log(`B=${b}: ${(s * 1e3).toFixed(1)} ms/step, ${(s / one).toFixed(2)}x B=1, ${(b / s).toFixed(1)} tok/s`);
}
await e.close();
