/**
 * What a decode step's logits cost to hand out (not a test): B sequences decode greedily, step
 * after step, on the synthetic 1.6B Q4_0 file (or --model), one thread, with each step's logits
 * in new arrays (forward's default) and in one array per sequence (ForwardOptions.into), the two
 * ways alternating round by round in one process (this machine is shared: a process-to-process
 * comparison would be noise). Prints the median and best tokens/s of each way per B, and the minor
 * page faults a step (a new array's pages are often fresh from the kernel: glibc maps and unmaps
 * arrays this large).
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/logits-into.ts [--batches 1,4] [--rounds 8] [--steps 16] [--model file.gguf]
 */
import { parseArgs } from "node:util";
import { loadWasmEngine } from "../src/engine/node";
import { percentiles } from "../src/generate/eval-stats";
import { argmax } from "../src/generate/sampler";
import { benchModel, promptedSequences } from "./common";
import { exitOnHelp } from "./usage";

const USAGE = "usage: node --experimental-wasm-relaxed-simd --import tsx bench/logits-into.ts [--batches 1,4] [--rounds 8] [--steps 16] [--model file.gguf]";
exitOnHelp(USAGE);
const { values: args } = parseArgs({
  options: {
    batches: { type: "string", default: "1,4" },
    rounds: { type: "string", default: "8" },
    steps: { type: "string", default: "16" },
    model: { type: "string" },
  },
});
const batches = args.batches!.split(",").map(Number);
const rounds = Number(args.rounds), steps = Number(args.steps);
if (!batches.every((b) => Number.isInteger(b) && b >= 1) || !(rounds >= 1) || !(steps >= 1)) {
  console.error(USAGE);
  process.exit(2);
}
const PROMPT = 64;
const maxB = Math.max(...batches);
const e = await loadWasmEngine(args.model ?? (await benchModel()), { relaxed: true, threads: 1, maxBatch: maxB, sequences: maxB, contextLength: PROMPT + steps + 16 });
const seqs = promptedSequences(e, PROMPT, maxB);
const arrays = seqs.map(() => new Float32Array(e.config.vocabSize));

/** tok/s of `steps` greedy steps of b sequences from position PROMPT, with or without the arrays; adds the steps' minor page faults to faults[way]. */
const faults = { fresh: 0, into: 0 };
function run(b: number, into: boolean): number {
  let next = seqs.slice(0, b).map((_, i) => 1000 + i);
  const f0 = process.resourceUsage().minorPageFault;
  const t0 = performance.now();
  for (let k = 0; k < steps; k++) {
    const out = e.forwardBatch(seqs.slice(0, b).map((seq, i) => ({ seq, tokens: [next[i]], startPos: PROMPT + k, into: into ? arrays[i] : undefined })));
    next = out.map(([l]) => argmax(l));
  }
  const t1 = performance.now();
  faults[into ? "into" : "fresh"] += process.resourceUsage().minorPageFault - f0;
  return (b * steps * 1000) / (t1 - t0);
}

console.log(`${e.name}; ${steps} steps a round after a ${PROMPT}-token prompt, ${rounds} rounds`);
for (const b of batches) {
  const fresh: number[] = [], into: number[] = [];
  run(b, false); // warm-up
  faults.fresh = faults.into = 0;
  for (let r = 0; r < rounds; r++) {
    fresh.push(run(b, false));
    into.push(run(b, true));
  }
  const f = percentiles(fresh).median, i = percentiles(into).median;
  const perStep = (n: number) => (n / (rounds * steps)).toFixed(0);
  console.log(`B=${b}: new arrays ${f.toFixed(2)} tok/s (best ${Math.max(...fresh).toFixed(2)}, ${perStep(faults.fresh)} page faults a step), into ${i.toFixed(2)} (best ${Math.max(...into).toFixed(2)}, ${perStep(faults.into)} a step): ${(i / f).toFixed(3)}x`);
}
await e.close();
