/**
 * One engine, one process (so peak RSS is that engine's alone), run by
 * bench/run.ts:  node --import tsx bench/engine-child.ts --model F.gguf --engine edgelm|llama.cpp [--build relaxed-fused|relaxed|simd] [--threads N]
 * [--build-dir folder] (another set of kernel builds, e.g. a copy of build/ from before a change, for A/B runs)
 * [--reps R] (default 1: the timed prefill and decodes R times over, each from an empty sequence; the
 * figures are the medians, and the first rep's prefill is kept as well)
 * Prints one JSON line: load time, prefill and decode throughput, peak RSS.
 * Both engines get the same prompt ids and decode greedily, then decode the same
 * positions again sampling with the model card's settings (temperature 0.7,
 * top_p 0.95): edgelm with its production sampler on each step's logits,
 * llama.cpp with its own. Both run on N threads (default 1). Both are warmed
 * up the same way, as llama-bench warms llama.cpp up: a short prompt (8
 * tokens) and one generated token, then an empty sequence again. That pays
 * the first evaluation's one-time costs (llama.cpp's set-up, our threads'
 * first calls), not the first write to each KV page: llama.cpp clears its KV
 * buffer when it creates its context, at load; ours is touched as positions
 * are written, so the first rep's prefill pays it, and later reps reuse the
 * same blocks (llama-bench reports the mean of its repetitions in the same way).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { BuildKind } from "../src/engine/kernels";
import { percentiles } from "../src/generate/eval-stats";
import { promptTokens, type EngineResult } from "./common";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/engine-child.ts --model F.gguf --engine edgelm|llama.cpp [--build relaxed-fused|relaxed|simd] [--threads N] [--build-dir folder] [--prompt 128] [--decode 64] [--reps 1]");

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    engine: { type: "string" },
    build: { type: "string" },
    threads: { type: "string", default: "1" },
    "build-dir": { type: "string" },
    prompt: { type: "string", default: "128" },
    decode: { type: "string", default: "64" },
    reps: { type: "string", default: "1" },
  },
});
const PROMPT = Number(args.prompt);
const DECODE = Number(args.decode);
const THREADS = Number(args.threads);
const REPS = Number(args.reps);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps must be a positive integer, got ${args.reps}`);
/** The warm-up prompt's length: llama-bench's is short too. */
const WARM_PROMPT = 8;

/** Peak and current resident set from the kernel (bytes). */
function rss(): { peak: number; now: number } {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN) * 1024;
  return { peak: kb("VmHWM"), now: kb("VmRSS") };
}

/** The model card's sampling settings. */
const TEMPERATURE = 0.7;
const TOP_P = 0.95;

/** Each rep's three timings (tok/s). */
interface Rep {
  prefill: number;
  decode: number;
  sampled: number;
}

/** The medians over the reps, and the first rep's prefill (the one that writes fresh KV pages). */
function summary(reps: Rep[]) {
  const median = (xs: number[]) => percentiles(xs).median;
  return {
    prefill_tok_s: median(reps.map((r) => r.prefill)),
    decode_tok_s: median(reps.map((r) => r.decode)),
    decode_sampled_tok_s: median(reps.map((r) => r.sampled)),
    prefill_first_tok_s: reps[0].prefill,
    reps: reps.length,
  };
}

async function edgelm(path: string, build: BuildKind): Promise<EngineResult> {
  const baseline = rss().now;
  const { loadWasmEngine } = await import("../src/engine/node");
  const { DEFAULT_SAMPLING, argmax, sample, seededRandom } = await import("../src/generate/sampler");
  const t0 = performance.now();
  const e = await loadWasmEngine(path, { force: build, relaxed: build.startsWith("relaxed"), buildDir: args["build-dir"], threads: THREADS });
  const t1 = performance.now();
  if (e.kernels.kind !== build) throw new Error(`wanted the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
  if (e.threads !== THREADS) throw new Error(`wanted ${THREADS} threads, got ${e.threads}: ${e.name}`);
  const seq = e.newSequence();
  const prompt = promptTokens(PROMPT);
  // Warm-up: a short prompt and one generated token, then an empty sequence.
  const warmLogits = e.forward(seq, prompt.slice(0, WARM_PROMPT))[0];
  e.forward(seq, [argmax(warmLogits)], WARM_PROMPT);
  seq.truncate(0);
  const opts = { ...DEFAULT_SAMPLING, temperature: TEMPERATURE, topP: TOP_P };
  // A server has sampled before: its first few calls run before V8 optimizes them (~40 ms in
  // all), which would weigh on 16 tokens. llama.cpp's sampler is native code.
  const warm = seededRandom(1);
  for (let i = 0; i < 8; i++) sample(warmLogits, opts, warm, prompt, []);

  const into = new Float32Array(e.config.vocabSize);
  const reps: Rep[] = [];
  for (let r = 0; r < REPS; r++) {
    seq.truncate(0);
    const t2 = performance.now();
    let logits = e.forward(seq, prompt)[0];
    const t3 = performance.now();
    const afterPrompt = logits; // forward returns an array of its own (copied out of WASM memory): kept for the sampled pass
    let pos = PROMPT;
    // Each decode step fills one array, as the generation loop's steps do (ForwardOptions.into).
    for (let i = 0; i < DECODE; i++) logits = e.forward(seq, [argmax(logits)], pos++, { into })[0];
    const t4 = performance.now();
    // Sampled: back to the prompt, the same positions again, the production sampler on each
    // step's logits (with the context list the generator builds).
    seq.truncate(PROMPT);
    logits = afterPrompt;
    pos = PROMPT;
    const random = seededRandom(0);
    const generated: number[] = [];
    const t5 = performance.now();
    for (let i = 0; i < DECODE; i++) {
      const id = sample(logits, opts, random, [...prompt, ...generated], generated);
      generated.push(id);
      logits = e.forward(seq, [id], pos++, { into })[0];
    }
    const t6 = performance.now();
    reps.push({ prefill: (PROMPT * 1000) / (t3 - t2), decode: (DECODE * 1000) / (t4 - t3), sampled: (DECODE * 1000) / (t6 - t5) });
  }
  const detail = e.name; // before close(), which drops the thread count from it
  await e.close();
  return {
    engine: `edgelm ${build}`,
    host: "Node",
    threads: THREADS,
    detail,
    load_s: (t1 - t0) / 1000,
    ...summary(reps),
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
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, WARM_PROMPT));
  for await (const tok of seq.evaluate([prompt[WARM_PROMPT]], { temperature: 0 })) {
    void tok;
    break;
  }
  const reps: Rep[] = [];
  for (let r = 0; r < REPS; r++) {
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
    reps.push({ prefill: ((PROMPT - 1) * 1000) / (t3 - t2), decode: (DECODE * 1000) / (t4 - t3), sampled: (DECODE * 1000) / (t6 - t5) });
  }
  const result: EngineResult = {
    engine: "llama.cpp",
    host: "Node",
    threads: THREADS,
    detail: `node-llama-cpp prebuilt (${llama.buildType}, ${llama.cpuMathCores} math cores), threads ${context.currentThreads}, f16 KV, mmap, warmed up`,
    load_s: (t1 - t0) / 1000,
    ...summary(reps),
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
