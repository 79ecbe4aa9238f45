/**
 * The peer for bench/concurrency.ts: llama.cpp (node-llama-cpp prebuilt) with
 * `--concurrency` sequences in one context, the same file and thread count.
 * Each sequence is a closed-loop client: it evaluates a prompt and samples
 * `--decode` tokens (the model card's settings), then starts the next request,
 * until `--requests` have run; node-llama-cpp batches the sequences' pending
 * evaluations into shared decode calls. Request r's prompt and seed are those edgelm's request r
 * gets (`--first` offsets r as bench/concurrency.ts does per level). Progress on stderr; prints
 * one JSON line on stdout.
 *
 *   node --import tsx bench/concurrency-llama.ts --model F.gguf --concurrency 4 --requests 100 --prompt 16 --decode 32 [--threads 1] [--first 0]
 */
import { parseArgs } from "node:util";
import { promptTokens } from "./common";
import { progress, promptOf } from "./concurrency-client";
import { summarize, type RequestTiming } from "./concurrency-stats";

const USAGE = "usage: node --import tsx bench/concurrency-llama.ts --model F.gguf [--concurrency 1] [--requests 100] [--prompt 16] [--decode 32] [--threads 1] [--first 0]";
const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    concurrency: { type: "string" },
    requests: { type: "string" },
    prompt: { type: "string" },
    decode: { type: "string" },
    threads: { type: "string" },
    first: { type: "string" },
    help: { type: "boolean" },
  },
});
if (a.help || !a.model) {
  console.log(`${USAGE}\n  llama.cpp with --concurrency sequences in one context, closed-loop clients; one JSON line of figures`);
  process.exit(a.help ? 0 : 2);
}
const C = Number(a.concurrency ?? 1);
const REQUESTS = Number(a.requests ?? 100);
const PROMPT = Number(a.prompt ?? 16);
const DECODE = Number(a.decode ?? 32);
const THREADS = Number(a.threads ?? 1);
const FIRST = Number(a.first ?? 0);

const { getLlama } = await import("node-llama-cpp");
type Token = import("node-llama-cpp").Token;
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" as never, maxThreads: 0 });
const model = await llama.loadModel({ modelPath: a.model!, useMmap: true });
const context = await model.createContext({ sequences: C, contextSize: C * (PROMPT + DECODE + 16), batchSize: Math.max(PROMPT, C), threads: { ideal: THREADS, min: THREADS } });

const seqs = Array.from({ length: C }, () => context.getSequence());
// Warm-up, as the edgelm servers get one: every sequence evaluates a short prompt and samples two
// tokens at once, so the mmap'd weights are paged in and the batched decode path has run.
await Promise.all(
  seqs.map(async (seq, i) => {
    let n = 0;
    for await (const _tok of seq.evaluate(promptTokens(8 + i).slice(i) as Token[], { temperature: 0.7, topP: 0.95, topK: 0, seed: i })) if (++n === 2) break;
  }),
);
let next = 0;
const timings: RequestTiming[] = [];
const t0 = performance.now();
await Promise.all(
  seqs.map(async (seq) => {
    for (let r = next++; r < REQUESTS; r = next++) {
      await seq.clearHistory();
      const prompt = promptOf(FIRST + r, PROMPT) as Token[];
      const start = performance.now();
      const at: number[] = [];
      for await (const _tok of seq.evaluate(prompt, { temperature: 0.7, topP: 0.95, topK: 0, seed: FIRST + r })) {
        at.push(performance.now());
        if (at.length === DECODE) break;
      }
      timings.push({ start, tokens: at });
      progress(`llama.cpp ×${C}`, timings.length, REQUESTS, t0);
    }
  }),
);
const wall = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ engine: "llama.cpp", detail: `node-llama-cpp prebuilt, ${C} sequences in one context, threads ${context.currentThreads}`, ...summarize(timings, wall, C) }));
await context.dispose();
await model.dispose();
