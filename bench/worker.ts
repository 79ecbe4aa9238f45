/**
 * The Worker's own cost: the same synthetic 1.6B Q4_0 file served by the Worker in workerd (the
 * bare binary, as a self-hosted deployment runs it; weights from a folder binding) against the
 * same WASM engine in a Node child process and llama.cpp, in one run. The Worker gets a token-id
 * prompt and streams tokens over SSE, greedy and then with the model card's sampling settings
 * (temperature 0.7, top_p 0.95); the ratio to Node is what workerd, the API layer and SSE add.
 *
 *   node --import tsx bench/worker.ts [--quick] [--rounds 3] [--kernels relaxed-fused|relaxed|simd] [--v8-flags "..."]
 *   (also part of `npm run bench -- --all`)
 *
 * --rounds N (default 3; 1 with --quick): llama.cpp, the Node peer and the Worker N times in turn,
 * each round a fresh child process per peer (3 reps each) and three greedy and two sampled streams
 * from the Worker; the medians over the rounds are reported, and each round's ratios beside them,
 * so that a slow spell of this machine falls on every host alike and shows as spread. Then the
 * sampler alone in a bare workerd (bench/sampler-workerd.ts), and the Worker's targets judged from
 * the run (bench/engine-targets.ts).
 *
 * --kernels sets the Worker's KERNELS var (default: its own choice, relaxed-fused where it passes
 * the self-test) and, for relaxed and simd, the Node peer's build (default relaxed: the fused dot
 * is wrong in Node 20); --v8-flags are workerd's, e.g. to compare its tiers or CPU features.
 *
 * Timings only here, never in tests; compare ratios within one run.
 */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { sseEventsOf } from "../test/helpers/sse";
import { startBareWorkerd } from "../test/worker/bare-workerd";
import { percentiles } from "../src/generate/eval-stats";
import { benchModel, engineChild, mergeRounds, promptTokens, root, waitReady, type EngineResult } from "./common";
import { workerSpeedTargets } from "./engine-targets";
import { samplerInWorkerd } from "./sampler-workerd";
import { f, ratio as vs, targetLines } from "./targets";

const quick = process.argv.includes("--quick");
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const kernels = arg("--kernels");
if (process.argv.includes("--help")) {
  console.log("usage: node --import tsx bench/worker.ts [--quick] [--rounds N] [--kernels build] [--v8-flags flags]\n  the Worker in workerd vs the WASM engine in Node and llama.cpp on the synthetic 1.6B Q4_0 model, N rounds in turn (default 3)");
  process.exit(0);
}
const ROUNDS = Number(arg("--rounds") ?? (quick ? 1 : 3));
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`bench/worker.ts: --rounds must be a positive integer, got ${arg("--rounds")}`);
  process.exit(2);
}
const PROMPT = quick ? 32 : 128;
const DECODE = quick ? 16 : 64;

interface WorkerResult {
  load_s: number;
  /** Of load_s: streaming the weights in (the rest builds the tokenizer from the GGUF vocabulary). */
  weights_s: number;
  ttft_ms: number;
  prefill_ms: number;
  decode_tok_s: number;
  server_decode_tok_s: number | null;
  tokens: number;
  /** The same prompt, sampled with the model card's settings (client-side decode tok/s). */
  sampled_decode_tok_s: number;
}

/** The model card's settings; a fixed seed so every run draws the same tokens. */
const SAMPLED = { temperature: 0.7, top_p: 0.95, seed: 7 };

/** Each request's prompt differs from the others' from its first token on, so none is served from the Worker's prefix cache. */
let requests = 0;

/** One streamed completion (greedy unless `sampling` is given); event arrival times measured here, at the client. */
async function streamOnce(url: string, sampling: Record<string, number> = { temperature: 0 }): Promise<Omit<WorkerResult, "load_s" | "weights_s" | "sampled_decode_tok_s">> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: promptTokens(PROMPT + ++requests).slice(requests), max_tokens: DECODE, ...sampling, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`completion: HTTP ${res.status}: ${await res.text()}`);
  const arrivals: number[] = [];
  let usage: { prefill_ms?: number; decode_tokens_per_s?: number | null } = {};
  for await (const event of sseEventsOf(res)) {
    const block = event.trimEnd();
    if (!block.startsWith("data: ") || block === "data: [DONE]") continue;
    const ev = JSON.parse(block.slice(6)) as { choices: { finish_reason: string | null }[]; usage?: typeof usage };
    // A token's chunk; the closing chunk (finish_reason) and the usage chunk carry none.
    if (ev.choices[0]?.finish_reason === null) arrivals.push(performance.now());
    if (ev.usage) usage = ev.usage;
  }
  const n = arrivals.length;
  return {
    ttft_ms: arrivals[0] - t0,
    prefill_ms: usage.prefill_ms ?? NaN,
    decode_tok_s: n > 1 ? ((n - 1) * 1000) / (arrivals[n - 1] - arrivals[0]) : NaN,
    server_decode_tok_s: usage.decode_tokens_per_s ?? null,
    tokens: n,
  };
}

const path = await benchModel();
const nodeBuild = kernels === "simd" ? "simd" : "relaxed";
const peer = (engine: string[]) => {
  const r = engineChild(["--model", path, ...engine, "--reps", quick ? "1" : "3"], PROMPT, DECODE);
  if ("error" in r) throw new Error(`the ${engine.join(" ")} peer failed: ${r.error}`);
  return r;
};
const median = (xs: number[]) => percentiles(xs).median;
/** The server's decode rate over streams or rounds: none where any of them went without it. */
const medianOrNull = (xs: (number | null)[]) => (xs.every((x) => x !== null) ? median(xs as number[]) : null);

const w = await startBareWorkerd({
  model: path,
  // One prefill pass, as the Node peer does; no CPU-budget refusal; greedy tokens only.
  vars: { MODEL_KEY: "synth-1_6b-q4_0.gguf", MODEL_ID: "bench", ENGINE: "wasm", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: String(PROMPT), ...(kernels ? { KERNELS: kernels } : {}) },
  v8Flags: arg("--v8-flags")?.split(/\s+/).filter(Boolean),
});
const llamaRounds: EngineResult[] = [], nodeRounds: EngineResult[] = [], workerRounds: WorkerResult[] = [];
let engine: string;
try {
  const ready = await waitReady(w.url, 300_000);
  engine = ready.engine;
  await streamOnce(w.url); // warm-up: first-call costs (tokenizer caches, JIT) are not the steady state
  const weights = w.logs().match(/loading \S+: 100% \([^,]+, ([\d.]+) s\)/);
  for (let r = 0; r < ROUNDS; r++) {
    llamaRounds.push(peer(["--engine", "llama.cpp"]));
    nodeRounds.push(peer(["--engine", "edgelm", "--build", nodeBuild]));
    // The peers ran with this process's event loop stopped (spawnSync): let it pass a timer and an
    // I/O poll, so that the kept-alive connection to workerd, closed meanwhile, is dropped before
    // the next request is sent on it ("other side closed").
    await sleep(10);
    // The Worker's reps: three greedy streams and two sampled ones, their medians.
    const greedy = [await streamOnce(w.url), await streamOnce(w.url), await streamOnce(w.url)];
    const sampled = [await streamOnce(w.url, SAMPLED), await streamOnce(w.url, SAMPLED)];
    workerRounds.push({
      load_s: ready.load_ms / 1000,
      weights_s: weights ? Number(weights[1]) : NaN,
      ttft_ms: median(greedy.map((g) => g.ttft_ms)),
      prefill_ms: median(greedy.map((g) => g.prefill_ms)),
      decode_tok_s: median(greedy.map((g) => g.decode_tok_s)),
      server_decode_tok_s: medianOrNull(greedy.map((g) => g.server_decode_tok_s)),
      tokens: greedy[0].tokens,
      sampled_decode_tok_s: median(sampled.map((g) => g.decode_tok_s)),
    });
    if (ROUNDS > 1) process.stderr.write(`round ${r + 1} of ${ROUNDS} done\n`);
  }
} finally {
  await w.close();
}
// The sampler alone in workerd, on flat (random-weight) logits like this model's, for its share of a step.
const samplerMs = (await samplerInWorkerd([{ temperature: SAMPLED.temperature, topP: SAMPLED.top_p }], ["flat"], quick ? 40 : 100))[0][0];
const node = mergeRounds(nodeRounds) as EngineResult;
const ref = mergeRounds(llamaRounds) as EngineResult;
const overRounds = (k: "ttft_ms" | "prefill_ms" | "decode_tok_s" | "sampled_decode_tok_s") => median(workerRounds.map((r) => r[k]));
const worker: WorkerResult = {
  ...workerRounds[0],
  ttft_ms: overRounds("ttft_ms"),
  prefill_ms: overRounds("prefill_ms"),
  decode_tok_s: overRounds("decode_tok_s"),
  server_decode_tok_s: medianOrNull(workerRounds.map((r) => r.server_decode_tok_s)),
  sampled_decode_tok_s: overRounds("sampled_decode_tok_s"),
};

const ms = (tokS: number) => (PROMPT * 1000) / tokS;
const lines = [
  `model: ${path} (${f(statSync(path).size / 1e9, 2)} GB, synthetic 1.6B shape, Q4_0); prompt ${PROMPT} token ids, ${DECODE} tokens greedy, then sampled (temperature 0.7, top_p 0.95); one thread each`,
  `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}; Worker engine: ${engine}`,
  "",
  "| host | path | load s | prefill ms | first token ms (client) | decode tok/s (client) | decode tok/s (server) | sampled decode tok/s | prefill vs llama.cpp | decode vs llama.cpp | sampled vs llama.cpp |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
  `| Node | llama.cpp (${ref.detail}) | ${f(ref.load_s, 2)} | ${f(ms(ref.prefill_tok_s), 0)} | — | ${f(ref.decode_tok_s)} | — | ${f(ref.decode_sampled_tok_s ?? NaN)} | 1× | 1× | 1× |`,
  `| Node | edgelm engine in-process (${node.engine}) | ${f(node.load_s, 2)} | ${f(ms(node.prefill_tok_s), 0)} | — | ${f(node.decode_tok_s)} | — | ${f(node.decode_sampled_tok_s ?? NaN)} | ${vs(node.prefill_tok_s, ref.prefill_tok_s)} | ${vs(node.decode_tok_s, ref.decode_tok_s)} | ${vs(node.decode_sampled_tok_s ?? NaN, ref.decode_sampled_tok_s)} |`,
  `| workerd | edgelm Worker, SSE over HTTP (${worker.tokens} tokens) | ${f(worker.load_s, 2)} | ${f(worker.prefill_ms, 0)} | ${f(worker.ttft_ms, 0)} | ${f(worker.decode_tok_s)} | ${f(worker.server_decode_tok_s ?? NaN)} | ${f(worker.sampled_decode_tok_s)} | ${vs(ms(ref.prefill_tok_s), worker.prefill_ms)} | ${vs(worker.decode_tok_s, ref.decode_tok_s)} | ${vs(worker.sampled_decode_tok_s, ref.decode_sampled_tok_s)} |`,
  "",
  `Worker load: ${f(worker.weights_s, 1)} s streaming the weights from the folder binding, the rest building the tokenizer from the GGUF vocabulary (the Node peer loads weights only)`,
  `Worker / Node: decode ${f(worker.decode_tok_s / node.decode_tok_s, 2)}×, prefill ${f(((PROMPT * 1000) / node.prefill_tok_s) / worker.prefill_ms, 2)}× (speed; > 1 = the Worker is faster)`,
  ...(ROUNDS > 1
    ? [
        `medians of ${ROUNDS} rounds (llama.cpp, Node, Worker in turn; each peer's figure the median of its 3 reps, the Worker's of 3 greedy and 2 sampled streams); the prefill and decode ratios round by round are in the targets below, the sampled decode's (Worker / llama.cpp): ${workerRounds.map((r, i) => f(r.sampled_decode_tok_s / (llamaRounds[i].decode_sampled_tok_s ?? NaN), 2)).join(", ")}`,
      ]
    : []),
  "",
  ...targetLines(
    workerSpeedTargets(
      PROMPT,
      { prefill_ms: workerRounds.map((r) => r.prefill_ms), decode_tok_s: workerRounds.map((r) => r.decode_tok_s) },
      { prefill_tok_s: llamaRounds.map((r) => r.prefill_tok_s), decode_tok_s: llamaRounds.map((r) => r.decode_tok_s) },
      samplerMs,
    ),
  ),
  ...(quick ? ["  (--quick: a 32-token prompt and 16 tokens; the targets are set for the default run)"] : []),
];
console.log(lines.join("\n"));
mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `worker-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), model: path, prompt: PROMPT, decode: DECODE, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, rounds: ROUNDS, node, llama: ref, worker, workerEngine: engine, samplerMs, perRound: { llama: llamaRounds, node: nodeRounds, worker: workerRounds } }, null, 2));
console.log(`\nwrote ${out}`);
