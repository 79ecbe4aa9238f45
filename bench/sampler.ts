/**
 * Sampler micro-benchmark (not a test): node --import tsx bench/sampler.ts [--quick] [--host node|workerd]
 *
 * Milliseconds per token for the reference sampler (test/generate/reference-sampler.ts,
 * the sampler before the fast one) and the production one, at Stable LM 2's vocabulary
 * of 100,352, on flat logits (random weights: all within a small range, top-p's worst
 * case) and peaked ones (a few large values over noise), with a 200-token history that
 * the penalties act on. Median of many calls, each on one of 8 logit vectors; prints a
 * markdown table. The machine is shared and noisy: compare within one run.
 *
 * --host workerd: the production sampler only, inside the bare workerd binary (the Worker's
 * host), timed from outside the process (bench/sampler-workerd.ts), beside the same in Node.
 */
import { cpus } from "node:os";
import { DEFAULT_SAMPLING, sample, seededRandom, type SamplingOptions } from "../src/generate/sampler";
import * as reference from "../test/generate/reference-sampler";
import { samplerCase } from "./sampler-cases";
import { samplerInWorkerd } from "./sampler-workerd";
import { V, type Shape } from "../test/generate/sampler-harness";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/sampler.ts [--quick] [--host node|workerd]");

const quick = process.argv.includes("--quick");
const hostAt = process.argv.indexOf("--host");
const host = hostAt >= 0 ? process.argv[hostAt + 1] : "node";
if (host !== "node" && host !== "workerd") {
  console.error(`bench/sampler: --host must be node or workerd, got ${host}`);
  process.exit(2);
}
const PENALTIES = { repetitionPenalty: 1.1, presencePenalty: 0.5, frequencyPenalty: 0.3 };
const configs: [string, Partial<SamplingOptions>][] = [
  ["greedy", { temperature: 0 }],
  ["temperature 0.7, top_p 0.95 (model card)", { temperature: 0.7, topP: 0.95 }],
  ["temperature 0.7, top_k 40", { temperature: 0.7, topK: 40 }],
  ["temperature 0.7, min_p 0.05", { temperature: 0.7, minP: 0.05 }],
  ["temperature 0.7 alone", { temperature: 0.7 }],
  ["top_p 0.95, min_p 0.05, all penalties", { temperature: 0.7, topP: 0.95, minP: 0.05, ...PENALTIES }],
  ["top_k 50, top_p 0.95, min_p 0.05, all penalties", { temperature: 0.7, topK: 50, topP: 0.95, minP: 0.05, ...PENALTIES }],
];
const shapes: Shape[] = ["flat", "peaked"];

type Sample = typeof sample;

/** Median ms per call over `minCalls` calls or `minMs` of calls, whichever ends later (after a warm-up). */
function time(fn: Sample, inputs: Float32Array[], opts: SamplingOptions, context: number[], generated: number[], minCalls: number, minMs: number): number {
  const rng = seededRandom(1);
  for (let i = 0; i < Math.min(minCalls, 20); i++) fn(inputs[i % inputs.length], opts, rng, context, generated);
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; times.length < minCalls || performance.now() - t0 < minMs; i++) {
    const a = performance.now();
    fn(inputs[i % inputs.length], opts, rng, context, generated);
    times.push(performance.now() - a);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

const inWorkerd = host === "workerd" ? await samplerInWorkerd(configs.map(([, c]) => c), shapes, quick ? 40 : 100) : undefined;
const rows = shapes.flatMap((shape, s) => {
  const { context, generated, inputs } = samplerCase(shape);
  return configs.map(([name, sampling], c) => {
    const opts = { ...DEFAULT_SAMPLING, ...sampling };
    const fast = time(sample, inputs, opts, context, generated, quick ? 50 : 300, quick ? 300 : 1500);
    if (inWorkerd) return `| ${shape} | ${name} | ${fast.toFixed(3)} | ${inWorkerd[s][c].toFixed(3)} |`;
    const ref = time(reference.sample, inputs, opts, context, generated, quick ? 3 : 8, quick ? 200 : 1000);
    return `| ${shape} | ${name} | ${ref.toFixed(2)} | ${fast.toFixed(3)} | ${(ref / fast).toFixed(0)}× |`;
  });
});

if (inWorkerd) {
  console.log(`vocab ${V}; ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}; ms per token: Node the median of many calls, workerd (best of 6 requests of 2n calls − best of n) / n\n`);
  console.log("| logits | sampling | Node ms | workerd ms |");
  console.log("|---|---|---|---|");
} else {
  console.log(`vocab ${V}; ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}; median ms per token\n`);
  console.log("| logits | sampling | reference ms | fast ms | speed-up |");
  console.log("|---|---|---|---|---|");
}
console.log(rows.join("\n"));
