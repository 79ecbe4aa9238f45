/**
 * One engine, one process (so peak RSS is that engine's alone), run by
 * bench/run.ts:  node --import tsx bench/engine-child.ts --model F.gguf --engine edgelm|llama.cpp [--build relaxed-fused|relaxed|simd]
 * [--build-dir folder] (another set of kernel builds, e.g. a copy of build/ from before a change, for A/B runs)
 * Prints one JSON line: load time, prefill and decode throughput, peak RSS.
 * Both engines get the same prompt ids and decode greedily.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { BuildKind } from "../src/engine/kernels";
import { promptTokens, type EngineResult } from "./common";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    engine: { type: "string" },
    build: { type: "string" },
    "build-dir": { type: "string" },
    prompt: { type: "string", default: "128" },
    decode: { type: "string", default: "64" },
  },
});
const PROMPT = Number(args.prompt);
const DECODE = Number(args.decode);

/** Peak and current resident set from the kernel (bytes). */
function rss(): { peak: number; now: number } {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN) * 1024;
  return { peak: kb("VmHWM"), now: kb("VmRSS") };
}

const argmax = (x: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
};

async function edgelm(path: string, build: BuildKind): Promise<EngineResult> {
  const baseline = rss().now;
  const { loadWasmEngine } = await import("../src/engine/node");
  const t0 = performance.now();
  const e = await loadWasmEngine(path, { force: build, relaxed: build.startsWith("relaxed"), buildDir: args["build-dir"] });
  const t1 = performance.now();
  if (e.kernels.kind !== build) throw new Error(`wanted the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
  const seq = e.newSequence();
  const prompt = promptTokens(PROMPT);
  const t2 = performance.now();
  let logits = e.forward(seq, prompt)[0];
  const t3 = performance.now();
  let pos = PROMPT;
  for (let i = 0; i < DECODE; i++) logits = e.forward(seq, [argmax(logits)], pos++)[0];
  const t4 = performance.now();
  return {
    engine: `edgelm ${build}`,
    detail: e.name,
    load_s: (t1 - t0) / 1000,
    prefill_tok_s: (PROMPT * 1000) / (t3 - t2),
    decode_tok_s: (DECODE * 1000) / (t4 - t3),
    peak_rss_mb: rss().peak / 2 ** 20,
    baseline_rss_mb: baseline / 2 ** 20,
  };
}

async function llamaCpp(path: string): Promise<EngineResult> {
  const baseline = rss().now;
  const { getLlama } = await import("node-llama-cpp");
  type Token = import("node-llama-cpp").Token;
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" as never });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: path, useMmap: true });
  const context = await model.createContext({ contextSize: 512, batchSize: PROMPT, threads: 1 });
  const t1 = performance.now();
  const seq = context.getSequence();
  const prompt = promptTokens(PROMPT) as Token[];
  const t2 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
  const t3 = performance.now();
  // Decode: each yielded token costs one single-token evaluation (the first evaluates the prompt's last token).
  let n = 0;
  for await (const tok of seq.evaluate([prompt[PROMPT - 1]], { temperature: 0 })) {
    void tok;
    if (++n >= DECODE) break;
  }
  const t4 = performance.now();
  const result: EngineResult = {
    engine: "llama.cpp",
    detail: `node-llama-cpp prebuilt (${llama.buildType}, ${llama.cpuMathCores} math cores), threads 1, f16 KV, mmap`,
    load_s: (t1 - t0) / 1000,
    prefill_tok_s: ((PROMPT - 1) * 1000) / (t3 - t2),
    decode_tok_s: (DECODE * 1000) / (t4 - t3),
    peak_rss_mb: rss().peak / 2 ** 20,
    baseline_rss_mb: baseline / 2 ** 20,
  };
  await context.dispose();
  await model.dispose();
  return result;
}

const path = args.model!;
const result = args.engine === "llama.cpp" ? await llamaCpp(path) : await edgelm(path, (args.build ?? "simd") as BuildKind);
console.log(JSON.stringify(result));
process.exit(0);
