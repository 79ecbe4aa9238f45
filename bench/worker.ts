/**
 * The Worker's own cost: the same synthetic 1.6B Q4_0 file served by the Worker in workerd (the
 * bare binary, as a self-hosted deployment runs it; weights from a folder binding) against the
 * same WASM engine in a Node child process and llama.cpp, in one run. The Worker gets a token-id
 * prompt and streams tokens over SSE, greedy and then with the model card's sampling settings
 * (temperature 0.7, top_p 0.95); the ratio to Node is what workerd, the API layer and SSE add.
 *
 *   node --import tsx bench/worker.ts [--quick] [--kernels relaxed-fused|relaxed|simd] [--v8-flags "..."]
 *   (also part of `npm run bench -- --all`)
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
import { sseEventsOf } from "../test/helpers/sse";
import { startBareWorkerd } from "../test/worker/bare-workerd";
import { benchModel, engineChild, promptTokens, root, waitReady, type EngineResult } from "./common";

const quick = process.argv.includes("--quick");
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const kernels = arg("--kernels");
if (process.argv.includes("--help")) {
  console.log("usage: node --import tsx bench/worker.ts [--quick] [--kernels build] [--v8-flags flags]\n  the Worker in workerd vs the WASM engine in Node on the synthetic 1.6B Q4_0 model");
  process.exit(0);
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
const node = engineChild(["--model", path, "--engine", "edgelm", "--build", nodeBuild], PROMPT, DECODE);
if ("error" in node) throw new Error(`the Node peer failed: ${node.error}`);
const llama = engineChild(["--model", path, "--engine", "llama.cpp"], PROMPT, DECODE);
if ("error" in llama) throw new Error(`the llama.cpp peer failed: ${llama.error}`);

const w = await startBareWorkerd({
  model: path,
  // One prefill pass, as the Node peer does; no CPU-budget refusal; greedy tokens only.
  vars: { MODEL_KEY: "synth-1_6b-q4_0.gguf", MODEL_ID: "bench", ENGINE: "wasm", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: String(PROMPT), ...(kernels ? { KERNELS: kernels } : {}) },
  v8Flags: arg("--v8-flags")?.split(/\s+/).filter(Boolean),
});
let worker: WorkerResult;
let engine: string;
try {
  const ready = await waitReady(w.url, 300_000);
  engine = ready.engine;
  await streamOnce(w.url); // warm-up: first-call costs (tokenizer caches, JIT) are not the steady state
  const runs = [await streamOnce(w.url), await streamOnce(w.url)];
  const best = runs.reduce((a, b) => (b.decode_tok_s > a.decode_tok_s ? b : a));
  const sampled = Math.max((await streamOnce(w.url, SAMPLED)).decode_tok_s, (await streamOnce(w.url, SAMPLED)).decode_tok_s);
  const weights = w.logs().match(/loading \S+: 100% \([^,]+, ([\d.]+) s\)/);
  worker = { load_s: ready.load_ms / 1000, weights_s: weights ? Number(weights[1]) : NaN, ...best, sampled_decode_tok_s: sampled };
} finally {
  await w.close();
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const peer = node as EngineResult;
const ref = llama as EngineResult;
const vs = (x: number, y: number | undefined) => (y && Number.isFinite(x) ? `${f(x / y, 2)}×` : "—");
const ms = (tokS: number) => (PROMPT * 1000) / tokS;
const lines = [
  `model: ${path} (${f(statSync(path).size / 1e9, 2)} GB, synthetic 1.6B shape, Q4_0); prompt ${PROMPT} token ids, ${DECODE} tokens greedy, then sampled (temperature 0.7, top_p 0.95); one thread each`,
  `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}; Worker engine: ${engine}`,
  "",
  "| host | path | load s | prefill ms | first token ms (client) | decode tok/s (client) | decode tok/s (server) | sampled decode tok/s | prefill vs llama.cpp | decode vs llama.cpp | sampled vs llama.cpp |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
  `| Node | llama.cpp (${ref.detail}) | ${f(ref.load_s, 2)} | ${f(ms(ref.prefill_tok_s), 0)} | — | ${f(ref.decode_tok_s)} | — | ${f(ref.decode_sampled_tok_s ?? NaN)} | 1× | 1× | 1× |`,
  `| Node | edgelm engine in-process (${peer.engine}) | ${f(peer.load_s, 2)} | ${f(ms(peer.prefill_tok_s), 0)} | — | ${f(peer.decode_tok_s)} | — | ${f(peer.decode_sampled_tok_s ?? NaN)} | ${vs(peer.prefill_tok_s, ref.prefill_tok_s)} | ${vs(peer.decode_tok_s, ref.decode_tok_s)} | ${vs(peer.decode_sampled_tok_s ?? NaN, ref.decode_sampled_tok_s)} |`,
  `| workerd | edgelm Worker, SSE over HTTP (${worker.tokens} tokens) | ${f(worker.load_s, 2)} | ${f(worker.prefill_ms, 0)} | ${f(worker.ttft_ms, 0)} | ${f(worker.decode_tok_s)} | ${f(worker.server_decode_tok_s ?? NaN)} | ${f(worker.sampled_decode_tok_s)} | ${vs(ms(ref.prefill_tok_s), worker.prefill_ms)} | ${vs(worker.decode_tok_s, ref.decode_tok_s)} | ${vs(worker.sampled_decode_tok_s, ref.decode_sampled_tok_s)} |`,
  "",
  `Worker load: ${f(worker.weights_s, 1)} s streaming the weights from the folder binding, the rest building the tokenizer from the GGUF vocabulary (the Node peer loads weights only)`,
  `Worker / Node: decode ${f(worker.decode_tok_s / peer.decode_tok_s, 2)}×, prefill ${f(((PROMPT * 1000) / peer.prefill_tok_s) / worker.prefill_ms, 2)}× (speed; > 1 = the Worker is faster)`,
];
console.log(lines.join("\n"));
mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `worker-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), model: path, prompt: PROMPT, decode: DECODE, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, node: peer, llama: ref, worker, workerEngine: engine }, null, 2));
console.log(`\nwrote ${out}`);
