/**
 * The peer for bench/concurrency.ts: llama.cpp (node-llama-cpp prebuilt) with
 * `--concurrency` sequences in one context, the same file and thread count.
 * Each sequence is a closed-loop client: it evaluates a prompt and samples
 * `--decode` tokens (the model card's settings), then starts the next request,
 * until `--requests` have run; node-llama-cpp batches the sequences' pending
 * evaluations into shared decode calls. Prints one JSON line.
 *
 *   node --import tsx bench/concurrency-llama.ts --model F.gguf --concurrency 4 --requests 100 --prompt 16 --decode 32 [--threads 1]
 */
import { parseArgs } from "node:util";
import { promptTokens } from "./common";
import { summarize, type RequestTiming } from "./concurrency-stats";

const { values: a } = parseArgs({
  options: { model: { type: "string" }, concurrency: { type: "string" }, requests: { type: "string" }, prompt: { type: "string" }, decode: { type: "string" }, threads: { type: "string" } },
});
const C = Number(a.concurrency ?? 1);
const REQUESTS = Number(a.requests ?? 100);
const PROMPT = Number(a.prompt ?? 16);
const DECODE = Number(a.decode ?? 32);
const THREADS = Number(a.threads ?? 1);

const { getLlama } = await import("node-llama-cpp");
type Token = import("node-llama-cpp").Token;
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" as never, maxThreads: 0 });
const model = await llama.loadModel({ modelPath: a.model!, useMmap: true });
const context = await model.createContext({ sequences: C, contextSize: C * (PROMPT + DECODE + 16), batchSize: Math.max(PROMPT, C), threads: { ideal: THREADS, min: THREADS } });

// Warm-up as llama-bench does: a short evaluation, so the mmap'd weights are paged in.
{
  const seq = context.getSequence();
  await seq.evaluateWithoutGeneratingNewTokens(promptTokens(8) as Token[]);
  seq.dispose();
}

const seqs = Array.from({ length: C }, () => context.getSequence());
let next = 0;
const timings: RequestTiming[] = [];
const t0 = performance.now();
await Promise.all(
  seqs.map(async (seq) => {
    for (let r = next++; r < REQUESTS; r = next++) {
      await seq.clearHistory();
      // A distinct prompt per request (no prefix sharing between them), the same for every engine.
      const prompt = promptTokens(PROMPT + r).slice(r) as Token[];
      const start = performance.now();
      const at: number[] = [];
      for await (const _tok of seq.evaluate(prompt, { temperature: 0.7, topP: 0.95, topK: 0, seed: r })) {
        at.push(performance.now());
        if (at.length === DECODE) break;
      }
      timings.push({ start, tokens: at });
    }
  }),
);
const wall = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ engine: "llama.cpp", detail: `node-llama-cpp prebuilt, ${C} sequences in one context, threads ${context.currentThreads}`, ...summarize(timings, wall) }));
await context.dispose();
await model.dispose();
