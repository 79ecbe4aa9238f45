/**
 * One engine, one process (so peak RSS is that engine's alone), run by
 * bench/run.ts:  node --import tsx bench/engine-child.ts --model F.gguf --engine edgelm|llama.cpp [--build relaxed-fused|relaxed|simd] [--threads N]
 * [--build-dir folder] (another set of kernel builds, e.g. a copy of build/ from before a change, for A/B runs)
 * [--warmup] (edgelm: the prompt once before the timed prefill, so its first-call costs are not timed)
 * Prints one JSON line: load time, prefill and decode throughput, peak RSS.
 * Both engines get the same prompt ids and decode greedily, then decode the same
 * positions again sampling with the model card's settings (temperature 0.7,
 * top_p 0.95): edgelm with its production sampler on each step's logits,
 * llama.cpp with its own. Both run on N threads (default 1). llama.cpp
 * evaluates a short prompt and one token first, as llama-bench's warm-up does
 * (its first evaluation pays one-time set-up); edgelm's kernels are warmed up
 * at load.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { BuildKind } from "../src/engine/kernels";
import { promptTokens, type EngineResult } from "./common";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/engine-child.ts --model F.gguf --engine edgelm|llama.cpp [--build relaxed-fused|relaxed|simd] [--threads N] [--build-dir folder] [--prompt 128] [--decode 64] [--warmup]");

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    engine: { type: "string" },
    build: { type: "string" },
    threads: { type: "string", default: "1" },
    "build-dir": { type: "string" },
    prompt: { type: "string", default: "128" },
    decode: { type: "string", default: "64" },
    warmup: { type: "boolean" },
  },
});
const PROMPT = Number(args.prompt);
const DECODE = Number(args.decode);
const THREADS = Number(args.threads);

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

/** The model card's sampling settings. */
const TEMPERATURE = 0.7;
const TOP_P = 0.95;

async function edgelm(path: string, build: BuildKind): Promise<EngineResult> {
  const baseline = rss().now;
  const { loadWasmEngine } = await import("../src/engine/node");
  const { DEFAULT_SAMPLING, sample, seededRandom } = await import("../src/generate/sampler");
  const t0 = performance.now();
  const e = await loadWasmEngine(path, { force: build, relaxed: build.startsWith("relaxed"), buildDir: args["build-dir"], threads: THREADS });
  const t1 = performance.now();
  if (e.kernels.kind !== build) throw new Error(`wanted the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
  if (e.threads !== THREADS) throw new Error(`wanted ${THREADS} threads, got ${e.threads}: ${e.name}`);
  const seq = e.newSequence();
  const prompt = promptTokens(PROMPT);
  if (args.warmup) {
    e.forward(seq, prompt);
    seq.truncate(0);
  }
  const t2 = performance.now();
  let logits = e.forward(seq, prompt)[0];
  const t3 = performance.now();
  const afterPrompt = logits.slice(); // forward's result is overwritten by the next forward
  let pos = PROMPT;
  for (let i = 0; i < DECODE; i++) logits = e.forward(seq, [argmax(logits)], pos++)[0];
  const t4 = performance.now();
  // Sampled: back to the prompt, the same positions again, the production sampler on each
  // step's logits (with the context list the generator builds).
  seq.truncate(PROMPT);
  logits = afterPrompt;
  pos = PROMPT;
  const opts = { ...DEFAULT_SAMPLING, temperature: TEMPERATURE, topP: TOP_P };
  // A server has sampled before: its first few calls run before V8 optimizes them (~40 ms in
  // all), which would weigh on 16 tokens. llama.cpp's sampler is native code.
  const warm = seededRandom(1);
  for (let i = 0; i < 8; i++) sample(afterPrompt, opts, warm, prompt, []);
  const random = seededRandom(0);
  const generated: number[] = [];
  const t5 = performance.now();
  for (let i = 0; i < DECODE; i++) {
    const id = sample(logits, opts, random, [...prompt, ...generated], generated);
    generated.push(id);
    logits = e.forward(seq, [id], pos++)[0];
  }
  const t6 = performance.now();
  const detail = e.name; // before close(), which drops the thread count from it
  await e.close();
  return {
    engine: `edgelm ${build}`,
    host: "Node",
    threads: THREADS,
    detail,
    load_s: (t1 - t0) / 1000,
    prefill_tok_s: (PROMPT * 1000) / (t3 - t2),
    decode_tok_s: (DECODE * 1000) / (t4 - t3),
    decode_sampled_tok_s: (DECODE * 1000) / (t6 - t5),
    sampled_detail: "engine decode loop + src/generate/sampler.ts on each step's logits",
    peak_rss_mb: rss().peak / 2 ** 20,
    baseline_rss_mb: baseline / 2 ** 20,
  };
}

async function llamaCpp(path: string): Promise<EngineResult> {
  const baseline = rss().now;
  const { getLlama } = await import("node-llama-cpp");
  type Token = import("node-llama-cpp").Token;
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" as never, maxThreads: 0 });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: path, useMmap: true });
  const context = await model.createContext({ contextSize: 512, batchSize: PROMPT, threads: { ideal: THREADS, min: THREADS } });
  const t1 = performance.now();
  const seq = context.getSequence();
  const prompt = promptTokens(PROMPT) as Token[];
  // Warm-up: a short prompt and one generated token, then an empty cache again.
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 8));
  for await (const tok of seq.evaluate([prompt[8]], { temperature: 0 })) {
    void tok;
    break;
  }
  await seq.clearHistory();
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
  // Sampled: back to the prompt, the same positions again with llama.cpp's own sampler. top_k 0
  // turns off node-llama-cpp's default top-k of 40; its chain applies temperature last.
  await seq.eraseContextTokenRanges([{ start: PROMPT - 1, end: seq.nextTokenIndex }]);
  const t5 = performance.now();
  n = 0;
  for await (const tok of seq.evaluate([prompt[PROMPT - 1]], { temperature: TEMPERATURE, topP: TOP_P, topK: 0, seed: 0 })) {
    void tok;
    if (++n >= DECODE) break;
  }
  const t6 = performance.now();
  const result: EngineResult = {
    engine: "llama.cpp",
    host: "Node",
    threads: THREADS,
    detail: `node-llama-cpp prebuilt (${llama.buildType}, ${llama.cpuMathCores} math cores), threads ${context.currentThreads}, f16 KV, mmap, warmed up`,
    load_s: (t1 - t0) / 1000,
    prefill_tok_s: ((PROMPT - 1) * 1000) / (t3 - t2),
    decode_tok_s: (DECODE * 1000) / (t4 - t3),
    decode_sampled_tok_s: (DECODE * 1000) / (t6 - t5),
    sampled_detail: "node-llama-cpp's sampler chain: top_k off, top_p 0.95, then temperature 0.7",
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
